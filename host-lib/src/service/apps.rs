//! Applications on demand (Art. 11–12) on the card at hand: enabled (added, rebuilt or switched
//! on again) or disabled on the chip first, then recorded in the registry. The card must be active
//! in the registry; an application blocked for good stays blocked.

use serde::Serialize;

use super::ServiceError;
use crate::apps::{AppTarget, CardId, Enabled, OnCard, Session};
use crate::holder::items::CardNumber;
use crate::keys::KeyStore;
use crate::profile::Profile;
use crate::registry::{AppState, CardStatus, Registry, RegistryError};
use crate::transport::Transport;

/// What [`enable`] or [`disable`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AppChange {
    /// The card.
    pub card_number: CardNumber,
    /// The application.
    pub application: String,
    /// Its state now.
    pub state: AppState,
    /// What was done on the chip, in words.
    pub done: &'static str,
    /// APDUs sent.
    pub apdus: usize,
}

fn check_active(reg: &Registry, card: &CardNumber) -> Result<(), ServiceError> {
    match reg.status(card)? {
        CardStatus::Active => Ok(()),
        status => Err(RegistryError::Transition {
            card_number: card.to_string(),
            status,
            action: "change the applications of",
            hint: "only an active card's applications change".into(),
        }
        .into()),
    }
}

/// Enables `target` on the card at hand with the records `set` (field = value).
pub fn enable(
    registry: &mut Registry,
    operator: &str,
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    profile: &Profile,
    target: &AppTarget,
    set: &[(String, String)],
) -> Result<AppChange, ServiceError> {
    let mut s = Session::new(transport, keys);
    let id: CardId = s.identify()?;
    check_active(registry, &id.card_number)?;
    let recorded = registry.application_state(&id.card_number, &target.name)?;
    if recorded == Some(AppState::Blocked) {
        return Err(ServiceError::Refused(format!(
            "card {}: application {} is blocked for good; only a new card can carry it again",
            id.card_number, target.name
        )));
    }
    let done = s.enable(
        &id,
        profile,
        target,
        recorded == Some(AppState::Enabled),
        set,
    )?;
    let done_text = match done {
        Enabled::Added => "added",
        Enabled::Rebuilt => "added (an interrupted earlier attempt was erased first)",
        Enabled::Unblocked => "switched on again",
        Enabled::AlreadyEnabled if set.is_empty() => "enabled already",
        Enabled::AlreadyEnabled => "enabled already; records updated",
    };
    let fields: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
    let details = serde_json::json!({ "done": done, "df_name": hex::encode_upper(&target.df_name),
                                      "fields_set": fields, "apdus": s.apdus() });
    if done == Enabled::AlreadyEnabled && recorded == Some(AppState::Enabled) {
        // No change of state: the records' update (if any) is audited on its own.
        if !set.is_empty() {
            registry.record_application_update(operator, &id.card_number, &target.name, details)?;
        }
    } else {
        registry.record_application(
            operator,
            &id.card_number,
            &target.name,
            AppState::Enabled,
            details,
        )?;
    }
    Ok(AppChange {
        card_number: id.card_number,
        application: target.name.clone(),
        state: AppState::Enabled,
        done: done_text,
        apdus: s.apdus(),
    })
}

/// Switches `target` off on the card at hand (a temporary APPLICATION BLOCK).
pub fn disable(
    registry: &mut Registry,
    operator: &str,
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    target: &AppTarget,
) -> Result<AppChange, ServiceError> {
    let mut s = Session::new(transport, keys);
    let id = s.identify()?;
    check_active(registry, &id.card_number)?;
    let before = s.disable(&id, target)?;
    registry.record_application(
        operator,
        &id.card_number,
        &target.name,
        AppState::Disabled,
        serde_json::json!({ "was": before, "apdus": s.apdus() }),
    )?;
    Ok(AppChange {
        card_number: id.card_number,
        application: target.name.clone(),
        state: AppState::Disabled,
        done: if before == OnCard::Disabled {
            "disabled already"
        } else {
            "switched off (APPLICATION BLOCK until enabled again)"
        },
        apdus: s.apdus(),
    })
}
