//! Registry errors: each says what was refused and, where there is one, what to do instead.

use std::path::PathBuf;

use crate::holder::FieldError;

use super::CardStatus;

impl From<rusqlite::Error> for RegistryError {
    fn from(e: rusqlite::Error) -> RegistryError {
        RegistryError::Database(e.into())
    }
}

/// A registry operation that failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database (SQLite or PostgreSQL) failed or cannot be reached; the message names the
    /// backend.
    #[error("registry database error: {0}")]
    Database(#[from] super::db::DbError),
    /// A file could not be read or a directory created.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The registry's file or directory cannot be written.
    #[error("the registry {} is read-only: {why}; every registry command records its changes, so it needs write access to the file and its directory (ask for it, or work on a copy)", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// Why it cannot be written.
        why: String,
    },
    /// Neither `XDG_DATA_HOME` nor `HOME` is set.
    #[error("cannot find a place for the registry: neither XDG_DATA_HOME nor HOME is set; pass the registry file explicitly")]
    NoDataDir,
    /// The database was written by a newer version of this software.
    #[error("the registry database has schema version {found}, newer than the {supported} this program knows; use a newer citizencard, or a copy of the registry made before it was upgraded")]
    SchemaTooNew {
        /// The database's version.
        found: u32,
        /// The newest this code knows.
        supported: u32,
    },
    /// A migration step failed (the database stays at the previous version).
    #[error("upgrading the registry schema to version {version} failed: {message}")]
    Migration {
        /// The step.
        version: u32,
        /// The SQLite message.
        message: String,
    },
    /// The configuration file is invalid.
    #[error("{path}: invalid registry configuration: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No operator was named.
    #[error("every registry change is audited: name the operator")]
    NoOperator,
    /// The applicant may not have a card.
    #[error("{id_number} cannot be issued a card: {error}")]
    NotEligible {
        /// The applicant.
        id_number: String,
        /// Why.
        error: FieldError,
    },
    /// One card in use per person.
    #[error("{id_number} already has card {card_number} ({status}); a person holds one card at a time: {hint}")]
    AlreadyHasCard {
        /// The person.
        id_number: String,
        /// Their card.
        card_number: String,
        /// Its status.
        status: CardStatus,
        /// What to do.
        hint: &'static str,
    },
    /// An issuance is in progress for the person.
    #[error("card {card_number} is already being personalized for {id_number}: resume it, or abort it first")]
    UnfinishedIssue {
        /// The person.
        id_number: String,
        /// The card being personalized.
        card_number: String,
    },
    /// Another live station is personalizing this card (it holds the issuance's lease).
    #[error(
        "card {card_number} is being personalized by another station ({station}, lease until \
         {expires_at}); leave it to that station, or run again after the lease ends"
    )]
    Leased {
        /// The card.
        card_number: String,
        /// The station holding the lease.
        station: String,
        /// When its lease ends.
        expires_at: String,
    },
    /// This station's lease on an issuance was taken over by another station (or the issuance
    /// was completed or aborted by another): the card this station personalized is not the one
    /// the registry records.
    #[error("card {card_number}: this station no longer holds the issuance ({why})")]
    LeaseLost {
        /// The card.
        card_number: String,
        /// What happened to it.
        why: String,
    },
    /// A failure injected by a test (write transaction number).
    #[error("injected registry failure at write {0} (test)")]
    InjectedFault(u64),
    /// No such card.
    #[error("no card {0} in the registry")]
    NoSuchCard(String),
    /// No such person.
    #[error("no person with ID number {0} in the registry")]
    NoSuchPerson(String),
    /// A card number that does not follow the registry's scheme (mistyped?).
    #[error(transparent)]
    CardNumber(#[from] super::card_number::SchemeError),
    /// A transition the life cycle does not allow.
    #[error("cannot {action} card {card_number}: it is {status}; {hint}")]
    Transition {
        /// The card.
        card_number: String,
        /// Its status.
        status: CardStatus,
        /// What was attempted.
        action: &'static str,
        /// Why not / what to do.
        hint: String,
    },
    /// A replacement of this card is being personalized.
    #[error("cannot {action} card {card_number}: its replacement {pending} is being personalized; complete or abort that first")]
    ReplacementPending {
        /// The card.
        card_number: String,
        /// The replacement.
        pending: String,
        /// What was attempted.
        action: &'static str,
    },
    /// The same purse transaction was recorded before.
    #[error(
        "card {card_number}: the {kind} with transaction counter {counter} is already recorded"
    )]
    AlreadyRecorded {
        /// The card.
        card_number: String,
        /// `purchase` or `load`.
        kind: &'static str,
        /// The card's transaction counter.
        counter: u32,
    },
    /// A terminal number that is not 6 bytes in hex.
    #[error("terminal number {0:?} is not 12 hex digits")]
    TerminalId(String),
    /// A zero amount.
    #[error("the amount must be more than 0.00")]
    ZeroAmount,
    /// A loss statement for a card never reported lost.
    #[error("card {0} has never been reported lost")]
    NeverReportedLost(String),
    /// The series is used up.
    #[error("card-number series {0} is used up: configure a new series letter")]
    SeriesExhausted(char),
    /// An application name that is empty.
    #[error("an application needs a name")]
    ApplicationName,
    /// A copy of the registry into another database was refused or did not verify.
    #[error("registry copy refused: {0}")]
    CopyRefused(String),
    /// Stored data that no longer validates (edited by hand?).
    #[error("the registry holds invalid data: {0}")]
    Corrupt(String),
}
