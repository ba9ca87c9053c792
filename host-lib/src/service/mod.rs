//! # The service layer
//!
//! Every workflow that touches both a card and the registry, as one call with a typed outcome
//! and a typed error: no argument parsing, no printing, no exit codes. The `citizencard` CLI and
//! its `demo` are thin callers; a web console or another registry backend can sit on the same
//! calls. Progress and intermediate events come back through callbacks.
//!
//! | module | workflows |
//! |---|---|
//! | [`purse`] | load (registry status check, ledger), screen + purchase (blacklist, permanent block, ledger) |
//! | [`ledger`] | the exactly-once recorder: every proven card transaction, now or settled later, recorded once |
//! | [`state`] | the terminal's state directory: locked, with its PSAM counter and journal |
//! | [`issue`] | issuance by a station: reservation with a lease, personalization, completion, void cards; where each issuance's time went ([`issue::Timings`]: registry calls vs the card) |
//! | [`replace`] | replacement, and the carried-over balance loaded onto the new chip exactly once |
//! | [`cancel`] | cancellation (with the card at hand: its purse blocked for good), loss reports |
//! | [`apps`] | applications on demand: enable, disable on the card at hand, then recorded |
//!
//! ## Guarantees
//!
//! * **Exactly-once ledger.** The terminal hands every transaction whose MAC2/TAC verified to
//!   [`ledger::record`] *before* it removes the transaction from its journal. The ledger keys a
//!   transaction by card (the application serial identifies it), counter and type, and accepts
//!   a transaction it already holds as recorded; a crash between the two steps leaves the journal
//!   entry, which the next run with that card settles and records.
//! * **Carry-over once.** The carry-over credit is written to the registry as an intent (with the
//!   load host's pending transaction) before CREDIT FOR LOAD; a re-run asks the card whether it
//!   happened ([`replace::carry_over`]).
//! * **One station per issuance.** See [`crate::registry::lease`].
//! * **One process per card image and per terminal state directory** ([`crate::lock`]).

pub mod apps;
pub mod cancel;
pub mod issue;
pub mod ledger;
pub mod purse;
pub mod replace;
pub mod state;

use crate::apps::AppError;
use crate::lock::LockError;
use crate::personalize::PersonalizeError;
use crate::registry::RegistryError;
use crate::terminal::TerminalError;
use crate::transport;

/// Gives the card for a reserved card (a reader, a simulated card's image…), or why not.
pub type OpenPending<'c> =
    dyn FnMut(&crate::registry::PendingCard) -> Result<Box<dyn transport::Transport>, String> + 'c;

/// Gives the card with this card number and card serial, or why not.
pub type OpenNumbered<'c> = dyn FnMut(&crate::holder::items::CardNumber, u32) -> Result<Box<dyn transport::Transport>, String>
    + 'c;

/// Why a workflow failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The registry refused or failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The terminal (load host, purchase terminal) failed or the card refused.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The reader or the card failed.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// Another process holds the card image or the terminal state.
    #[error(transparent)]
    Busy(#[from] LockError),
    /// Reading the card's identity or its applications failed.
    #[error(transparent)]
    Card(#[from] AppError),
    /// Personalization failed.
    #[error(transparent)]
    Personalize(#[from] PersonalizeError),
    /// The card at hand is not the card the operation is about.
    #[error("{0}")]
    WrongCard(String),
    /// The operation is refused (a blacklisted card, an inactive card, a profile without purse…);
    /// the message says why and what happened to the card.
    #[error("{0}")]
    Refused(String),
    /// The terminal's state directory cannot be used.
    #[error("terminal state {path}: {source}")]
    State {
        /// The directory or file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl ServiceError {
    /// Whether the error is about the command's input rather than the card or the registry.
    pub fn is_usage(&self) -> bool {
        matches!(self, ServiceError::State { .. })
    }
}
