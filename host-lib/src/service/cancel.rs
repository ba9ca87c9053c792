//! Cancellation (Art. 18) and loss reports (Art. 16–17).
//!
//! With the card at hand, [`cancel`] first checks that the card in the reader is the card being
//! cancelled, then cancels it in the registry (refund of the ledger balance, blacklist) and blocks
//! its purse for good; a run on a card cancelled before only finishes the block. Without the
//! card, terminals block its purse when they meet it (blacklist).

use serde::Serialize;

use super::state::TerminalState;
use super::ServiceError;
use crate::apps::{guard, targets, OnCard, Session};
use crate::holder::items::CardNumber;
use crate::keys::KeyStore;
use crate::profile::Profile;
use crate::registry::{AppState, CancelReason, CardStatus, Registry};
use crate::terminal::{Terminal, TerminalConfig, TerminalError};
use crate::transport::Transport;

/// What [`cancel`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CancelOutcome {
    /// The card.
    pub card_number: CardNumber,
    /// The refund recorded now (`None`: the card was cancelled before).
    pub refund_cents: Option<i64>,
    /// The purse on the card at hand before its block (`None`: no card at hand).
    pub purse_before_block: Option<OnCard>,
    /// The chip's purse balance before the block, after a transaction an earlier terminal run
    /// left pending on it was settled and recorded (`None`: not read).
    pub chip_balance_cents: Option<u32>,
}

/// The card at hand, for [`cancel`].
pub struct AtHand<'a> {
    /// The card.
    pub transport: &'a mut dyn Transport,
    /// The issuer's keys (the purse's block key).
    pub keys: &'a dyn KeyStore,
    /// The card's profile (where its purse is).
    pub profile: &'a Profile,
    /// The load host's state: a transaction left pending on this card is settled and recorded
    /// before the refund is computed, so the refund is what the card holds.
    pub state: Option<&'a TerminalState>,
}

/// Checks that the card behind `transport` is `card` (EF05 item 07).
pub fn check_card_at_hand(
    transport: &mut dyn Transport,
    card: &CardNumber,
) -> Result<(), ServiceError> {
    match guard::read_card_number(transport)? {
        Some(n) if &n == card => Ok(()),
        Some(n) => Err(ServiceError::WrongCard(format!(
            "the card in {} is {n}, not {card}: nothing was changed",
            transport.name()
        ))),
        None => Err(ServiceError::WrongCard(format!(
            "the card in {} is not an issued citizen card (no EF05 card number): nothing was \
             changed",
            transport.name()
        ))),
    }
}

/// Cancels `card` (see the module docs).
pub fn cancel(
    registry: &mut Registry,
    operator: &str,
    card: &CardNumber,
    reason: CancelReason,
    at_hand: Option<AtHand<'_>>,
) -> Result<CancelOutcome, ServiceError> {
    let mut at_hand = at_hand;
    let mut chip_balance_cents = None;
    if let Some(h) = at_hand.as_mut() {
        check_card_at_hand(h.transport, card)?;
        if let Some(state) = h.state {
            chip_balance_cents = settle_pending(registry, operator, h, state)?;
        }
    }
    let status = registry.status(card)?;
    let refund_cents = if status == CardStatus::Cancelled && at_hand.is_some() {
        None
    } else {
        Some(registry.cancel(operator, card, reason)?.refund_cents)
    };
    let mut purse_before_block = None;
    if let Some(h) = at_hand {
        let purse = targets(h.profile)
            .into_iter()
            .find(|t| t.name == "purse")
            .ok_or_else(|| ServiceError::Refused("the profile has no purse".into()))?;
        let mut s = Session::new(h.transport, h.keys);
        let before = s
            .identify()
            .and_then(|id| s.block_for_good(&id, &purse))
            .map_err(|e| {
                ServiceError::Refused(format!(
                    "{card}: blocking its purse failed: {e}; the card is cancelled and \
                     blacklisted in the registry; run the command again with the card to block \
                     its purse"
                ))
            })?;
        if before != OnCard::Absent {
            registry.record_application(
                operator,
                card,
                "purse",
                AppState::Blocked,
                serde_json::json!({ "by": "cancel", "reason": reason, "was": before }),
            )?;
        }
        purse_before_block = Some(before);
    }
    Ok(CancelOutcome {
        card_number: card.clone(),
        refund_cents,
        purse_before_block,
        chip_balance_cents,
    })
}

/// Settles (and records) a transaction the terminal journal holds for the card at hand, and
/// reads its purse balance. A purse that does not answer (blocked already) is `None`.
fn settle_pending(
    registry: &mut Registry,
    operator: &str,
    h: &mut AtHand<'_>,
    state: &TerminalState,
) -> Result<Option<u32>, ServiceError> {
    let Some(purse) = targets(h.profile).into_iter().find(|t| t.name == "purse") else {
        return Ok(None);
    };
    let failed: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    let config = TerminalConfig {
        aid: purse.df_name.clone(),
        ..TerminalConfig::default()
    };
    let mut terminal = Terminal::new(&mut *h.transport, h.keys, config)
        .with_journal(state.journal())
        .with_recorder(|r| {
            super::ledger::record(registry, operator, r)
                .map(drop)
                .map_err(|e| {
                    let text = e.to_string();
                    *failed.borrow_mut() = Some(text.clone());
                    text
                })
        });
    let balance = match terminal.balance() {
        Ok(b) => Some(b),
        Err(TerminalError::Transport(e)) => return Err(e.into()),
        Err(TerminalError::Unsettled { .. }) | Err(_) => None,
    };
    drop(terminal);
    if let Some(e) = failed.into_inner() {
        return Err(ServiceError::Refused(format!(
            "{}: a transaction an earlier run left pending on the card is not in the registry \
             yet ({e}); nothing was cancelled: run the command again",
            h.transport.name()
        )));
    }
    Ok(balance)
}

/// Reports `card` lost: blacklisted from the instant returned, with its ledger balance.
pub fn report_loss(
    registry: &mut Registry,
    operator: &str,
    card: &CardNumber,
) -> Result<(String, i64), ServiceError> {
    let at = registry.report_loss(operator, card)?;
    Ok((at, registry.balance(card)?))
}
