//! What can go wrong at a purse terminal, in terms the operator can act on.

use card_os::apdu::Sw;

use super::amount::format_yuan;
use super::journal::Pending;
use super::record::{TransactionKind, TransactionRecord};
use crate::keys::KeyError;
use crate::transport;

fn balance_text(balance: &Option<u32>) -> String {
    match balance {
        Some(b) => format!("the balance is {} yuan", format_yuan(*b)),
        None => "the balance could not be read".into(),
    }
}

/// Why a terminal operation failed. Errors raised **before** CREDIT or DEBIT was sent mean that
/// nothing moved; [`TerminalError::NotDone`], [`TerminalError::Unverified`] and
/// [`TerminalError::Unsettled`] describe a transaction that was sent.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// The reader or card failed before any money moved.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The card has no (complete) purse application.
    #[error("the card is not personalized for the purse: {0}")]
    NotPersonalized(String),
    /// The application (or the whole card) is blocked.
    #[error("{}", if *.permanent {
        "the purse application is permanently blocked (9303): the card cannot be used for payments"
    } else {
        "the card or its purse application is blocked (6A81): it must be unblocked at a service point"
    })]
    Blocked {
        /// `9303`: for good.
        permanent: bool,
    },
    /// The purchase is larger than the balance.
    #[error("insufficient balance: the purchase is {} yuan and {}", format_yuan(*.amount), balance_text(.balance))]
    InsufficientBalance {
        /// The balance, if it could be read.
        balance: Option<u32>,
        /// The amount asked for.
        amount: u32,
    },
    /// The load would take the balance above the purse's maximum.
    #[error("maximum balance exceeded: loading {} yuan would take the purse above its maximum balance; {}", format_yuan(*.amount), balance_text(.balance))]
    MaxBalanceExceeded {
        /// The balance, if it could be read.
        balance: Option<u32>,
        /// The amount asked for.
        amount: u32,
    },
    /// The key set does not belong to this card (MAC1 does not verify, another key version or
    /// algorithm, or the card refuses our MAC).
    #[error("wrong key set for this card: {0}")]
    WrongKeySet(String),
    /// An access condition of the card is not met (e.g. the ED needs the PIN).
    #[error("{command}: the card refuses: security status not satisfied (6982){hint}")]
    AccessDenied {
        /// The command.
        command: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// The card's transaction counter is used up.
    #[error("the card's {0} counter is at its maximum (9402): the purse cannot make more of these transactions")]
    CounterExhausted(&'static str),
    /// The card answered a status word the terminal does not expect.
    #[error("{command}: the card answered {sw}")]
    Card {
        /// The command.
        command: &'static str,
        /// What the card answered.
        sw: Sw,
    },
    /// The card's answer is malformed.
    #[error("{command}: unexpected answer from the card: {detail}")]
    BadResponse {
        /// The command.
        command: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The key store failed (an unknown key, the terminal counter file…).
    #[error("key store: {0}")]
    Keys(KeyError),
    /// The terminal's journal of pending transactions failed: it could not write one down (so
    /// CREDIT/DEBIT was not sent), or could not read one.
    #[error("terminal state: {0}")]
    Journal(String),
    /// The card proves that the transaction did not happen: nothing moved.
    #[error("the {} of {} yuan was NOT made: {cause}; the card proves it did not happen, nothing was {}; {}",
        .kind.as_str(), format_yuan(*.amount),
        if *.kind == TransactionKind::Load { "loaded" } else { "debited" },
        balance_text(.balance))]
    NotDone {
        /// What was attempted.
        kind: TransactionKind,
        /// Its amount.
        amount: u32,
        /// The balance afterwards, if it could be read.
        balance: Option<u32>,
        /// What interrupted it.
        cause: String,
    },
    /// The transaction happened on the card, but its proof does not verify (or the card's balance
    /// does not match it). The record is kept: the money moved.
    #[error("the {} of {} yuan WAS made on the card, but {problem}", .record.kind.as_str(), format_yuan(.record.amount))]
    Unverified {
        /// The transaction (with `verified: false`).
        record: Box<TransactionRecord>,
        /// What does not verify.
        problem: String,
    },
    /// The outcome is unknown: the card did not come back (or another card did) to prove it. The
    /// pending transaction stays in the journal and is settled when the card is next seen.
    #[error("the outcome of the {} is UNKNOWN: {cause}. Put the card back and run any `citizencard purse` command with it: the terminal asks the card first ({})",
        .pending.kind.as_str(), .pending.describe())]
    Unsettled {
        /// The transaction.
        pending: Box<Pending>,
        /// Why it could not be settled.
        cause: String,
    },
}

impl TerminalError {
    /// A card refusal of `command` with `sw`, mapped to the typed errors every purse command
    /// shares (blocked, not personalized, access). Anything else is [`TerminalError::Card`].
    pub(crate) fn from_sw(command: &'static str, sw: Sw) -> Self {
        match sw {
            Sw::FUNCTION_NOT_SUPPORTED => TerminalError::Blocked { permanent: false },
            Sw::APP_PERMANENTLY_LOCKED => TerminalError::Blocked { permanent: true },
            Sw::SECURITY_STATUS_NOT_SATISFIED => TerminalError::AccessDenied {
                command,
                hint: "; an ED purse needs the PIN (use the EP), and a key's use right may be \
                       unmet",
            },
            Sw::FILE_NOT_FOUND => TerminalError::NotPersonalized(format!(
                "{command}: a file the purse needs is missing (6A82)"
            )),
            Sw::INCOMPATIBLE_FILE_STRUCTURE => TerminalError::NotPersonalized(format!(
                "{command}: a purse file has the wrong structure (6981)"
            )),
            sw => TerminalError::Card { command, sw },
        }
    }

    /// A key-store error: a mismatch between the card and the key set is
    /// [`TerminalError::WrongKeySet`], anything else [`TerminalError::Keys`].
    pub(crate) fn from_keys(e: KeyError) -> Self {
        match e {
            KeyError::Verification { .. }
            | KeyError::KeyVersion { .. }
            | KeyError::AlgorithmId { .. } => TerminalError::WrongKeySet(e.to_string()),
            other => TerminalError::Keys(other),
        }
    }

    /// True when CREDIT or DEBIT was sent (the outcome is not done, done but unverified, or
    /// unknown): the caller must show this error and never simply retry.
    pub fn transaction_was_sent(&self) -> bool {
        matches!(
            self,
            TerminalError::NotDone { .. }
                | TerminalError::Unverified { .. }
                | TerminalError::Unsettled { .. }
        )
    }
}
