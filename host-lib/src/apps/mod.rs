//! # A card's applications during its life
//!
//! * [`lock`] — APPLICATION BLOCK (temporary or for good) and APPLICATION UNBLOCK of the current
//!   DF, MAC'd with its line-protection key;
//! * [`guard`] — the blacklist on the purchase terminal: which card this is, whether it is
//!   listed, and the permanent block of a listed card's purse;
//! * [`definition`] — application definitions (TOML): what an application added on demand puts
//!   on a card; the public-services application ships with the library (`public.toml`);
//! * [`ondemand`] — applications on demand (Art. 11–12): add an application DF to an issued card
//!   under its keys, switch it off and on, block it for good.

pub mod definition;
pub mod guard;
pub mod lock;
pub mod ondemand;

use std::path::PathBuf;

use card_os::apdu::Sw;

use crate::keys::KeyError;
use crate::registry::RegistryError;
use crate::transport;

pub use definition::AppDefinition;
pub use guard::{Blacklist, CardIdentity, Verdict};
pub use lock::{lock_current_df, Lock};
pub use ondemand::{targets, AppTarget, CardId, Enabled, OnCard, Session};

/// Why an operation on a card's applications failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The reader or card failed.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The card answered a status word that was not expected.
    #[error("{command}: the card answered {sw} ({}){}", sw.meaning(),
        if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Card {
        /// The command.
        command: &'static str,
        /// Its status word.
        sw: Sw,
        /// More about it (may be empty).
        detail: String,
    },
    /// The card refused our MAC or cryptogram: the key set is not this card's.
    #[error("wrong key set for this card: {0}")]
    WrongKey(String),
    /// The application is blocked for good (`9303`).
    #[error("the application is blocked for good (9303)")]
    PermanentlyBlocked,
    /// The key store refused.
    #[error("keys: {0}")]
    Keys(KeyError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The operation is refused (with why, and what to do).
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong (an unknown field, a bad value).
    #[error("{0}")]
    Usage(String),
    /// An exported blacklist file could not be used.
    #[error("{}: cannot use this blacklist: {detail}", path.display())]
    BlacklistFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl AppError {
    /// A status word that `command` did not expect.
    pub fn card(command: &'static str, sw: Sw) -> AppError {
        AppError::Card {
            command,
            sw,
            detail: String::new(),
        }
    }
}
