//! # The issuance registry
//!
//! A SQLite database (bundled SQLite, one file) of the people who applied, the cards issued to
//! them and everything that happened to those cards: status history, fees, the purse ledger, the
//! blacklist for terminals and an append-only audit log. Its operations follow the card life
//! cycle of the Wenzhou citizen-card regulation; each one runs in a single SQLite transaction
//! together with its audit record, so a change is never made without its audit line, nor audited
//! without being made.
//!
//! ## Life cycle
//!
//! ```text
//!                begin_issue / begin_replace
//!                          │
//!                          ▼
//!   abort_issue ◄── personalizing ──► complete_issue ──► active ◄──► lost
//!        │                                                 │  revoke_loss │
//!        ▼                                                 │   report_loss│
//!     aborted                                              ▼              ▼
//!                                      cancel / replacement completed: cancelled
//! ```
//!
//! * **Issue** (Art. 13–14): only applicants with a Wenzhou household registration or insured in
//!   Wenzhou; a person holds one card at a time (active or lost). Issuance has two steps so that a
//!   card pulled from the reader mid-personalization is never recorded as issued:
//!   [`begin_issue`](Registry::begin_issue) reserves a card number (status `personalizing`),
//!   [`complete_issue`](Registry::complete_issue) marks it `active` once the card was verified.
//!   [`resume_issue`](Registry::resume_issue) hands the same card number back for a re-run;
//!   [`abort_issue`](Registry::abort_issue) gives up (the number is never reused). The first
//!   card of a person is free (Art. 19: a fee of 0 is recorded).
//! * **Replace** (Art. 15: damaged, unreadable, data changed, other; and after a loss report):
//!   [`begin_replace`](Registry::begin_replace) then `complete_issue`. On completion the old card
//!   is cancelled and blacklisted, the configured fee is recorded, and the balance the ledger knows
//!   moves to the new card (a `transfer_out` on the old card, a `transfer_in` on the new one).
//! * **Report loss** (Art. 16–17): [`report_loss`](Registry::report_loss) blacklists the card from
//!   that instant. [`loss_statement`](Registry::loss_statement) splits the card's purchases into
//!   those before the report (the holder's loss) and those after it (the issuer's concern).
//!   [`revoke_loss`](Registry::revoke_loss) is for a card found again (see the docs of that
//!   method for the reading of the regulation).
//! * **Cancel** (Art. 18: death, moving away, no longer needed): [`cancel`](Registry::cancel)
//!   refunds the ledger balance, closes and blacklists the card.
//! * **Applications on demand** (Art. 11–12): [`record_application`](Registry::record_application)
//!   records an application added to, switched off or blocked on an issued card; a balance
//!   carried over to a replacement is owed to the new chip until
//!   [`record_chip_credit`](Registry::record_chip_credit) records the load host's credit
//!   ([`apps`]).
//!
//! Amounts are integer cents (分); instants are RFC 3339 UTC text; card dates (issue, expiry) are
//! dates in China time. The clock is injectable ([`Clock`]).
//!
//! ## Example: issuing a card
//!
//! ```
//! use std::sync::Arc;
//! use host_lib::holder::{ApplicantRecord, Validator};
//! use host_lib::registry::{ChipInfo, Registry, RegistryConfig, SystemClock};
//!
//! let mut reg = Registry::open_in_memory(RegistryConfig::default(), Arc::new(SystemClock))?;
//! let record = ApplicantRecord {
//!     id_number: Some("11010519491231002X".into()),
//!     name: Some("测试李二".into()),
//!     sex: Some("2".into()),
//!     ethnicity: Some("01".into()),
//!     birthplace: Some("110105".into()),
//!     birth_date: Some("1949-12-31".into()),
//!     eligibility: Some("insured".into()),
//!     ..Default::default()
//! };
//! let applicant = Validator::today_in_china().validate_with_photo(&record, None)?;
//! let pending = reg.begin_issue("operator-7", &applicant, &ChipInfo::default())?;
//! // Personalization writes these records (and the photo), then reads them back.
//! let ef05 = pending.issuer_items([0; 4]).records();
//! let ef06 = pending.cardholder_items().records();
//! assert_eq!((ef05.len(), ef06.len()), (7, 7));
//! let issued = reg.complete_issue("operator-7", &pending.card_number, &ChipInfo::default())?;
//! assert_eq!(issued.fee_cents, 0); // Art. 19: the first card is free
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apps;
pub mod blacklist;
pub mod card_number;
mod carry;
pub mod clock;
pub mod config;
pub mod error;
pub mod lease;
mod ledger;
mod lifecycle;
pub mod operators;
mod queries;
pub mod schema;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use serde::{Serialize, Serializer};
use time::{Date, OffsetDateTime};

pub use apps::{AppState, ApplicationEntry, ChipCredit};
pub use blacklist::{BlacklistEntry, BlacklistFormat, BlacklistReason};
pub use carry::CarryOverIntent;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use lease::{Lease, LeaseRequest, Station, DEFAULT_LEASE};
pub use ledger::{
    LedgerEntry, LedgerKind, Liability, LoadRecord, LossStatement, LossWindow, PurchaseEntry,
    VerifiedPurchase,
};
pub use lifecycle::{Cancellation, ChipInfo, IssuedCard, PendingCard};
pub use queries::{
    AuditEntry, AuditFilter, CardDetails, CardFilter, CardSummary, FeeEntry, PersonDetails,
    PersonSummary, StatusChange,
};

use crate::holder::items::CardNumber;
use crate::holder::{Validator, CHINA_TIME};

/// Result of registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A card's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardStatus {
    /// Number reserved, card being written; not issued.
    Personalizing,
    /// Issued and in use.
    Active,
    /// Reported lost; blacklisted.
    Lost,
    /// Closed: cancelled or replaced; blacklisted.
    Cancelled,
    /// Personalization given up; never issued.
    Aborted,
}

impl CardStatus {
    /// Every status.
    pub const ALL: [CardStatus; 5] = [
        CardStatus::Personalizing,
        CardStatus::Active,
        CardStatus::Lost,
        CardStatus::Cancelled,
        CardStatus::Aborted,
    ];

    /// The keyword stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            CardStatus::Personalizing => "personalizing",
            CardStatus::Active => "active",
            CardStatus::Lost => "lost",
            CardStatus::Cancelled => "cancelled",
            CardStatus::Aborted => "aborted",
        }
    }

    /// Parses a keyword.
    pub fn parse(s: &str) -> Option<CardStatus> {
        CardStatus::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }
}

impl fmt::Display for CardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CardStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The keyword.
            pub const fn as_str(self) -> &'static str { match self { $($name::$v => $s),* } }
            /// Parses a keyword (`-` and `_` are interchangeable).
            pub fn parse(s: &str) -> Option<$name> {
                let t = s.trim().replace('-', "_");
                $name::ALL.iter().copied().find(|v| v.as_str() == t)
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use keyword_enum;

keyword_enum! {
    /// Why a card is replaced (Art. 15, and Art. 16–17 for a card reported lost).
    ReplaceReason {
        /// The card was reported lost (it must be in status `lost`).
        Lost = "lost",
        /// Physically damaged.
        Damaged = "damaged",
        /// The chip no longer answers.
        Unreadable = "unreadable",
        /// The holder's data changed (update the person first).
        DataChanged = "data_changed",
        /// Any other reason.
        Other = "other",
    }
}

keyword_enum! {
    /// Why a card is cancelled (Art. 18).
    CancelReason {
        /// The holder died (the balance is refunded to the heirs).
        Death = "death",
        /// The holder moved away from Wenzhou.
        MovedAway = "moved_away",
        /// The holder no longer needs the card.
        NoLongerNeeded = "no_longer_needed",
    }
}

/// The issuance registry.
pub struct Registry {
    conn: Connection,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    path: Option<PathBuf>,
    /// Write transactions begun so far (fault injection counts them).
    writes: std::cell::Cell<u64>,
    /// Fault injection (tests): the write transaction with this number fails.
    fail_write: std::cell::Cell<Option<u64>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The default registry file for the given `XDG_DATA_HOME` and `HOME` values:
/// `$XDG_DATA_HOME/citizencard/registry.db`, or `$HOME/.local/share/citizencard/registry.db` when
/// `XDG_DATA_HOME` is unset, empty or relative (the XDG base-directory rules).
pub fn default_path_from(
    xdg_data_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Result<PathBuf> {
    let base = match xdg_data_home.map(Path::new).filter(|p| p.is_absolute()) {
        Some(xdg) => xdg.to_owned(),
        None => match home.filter(|h| !h.is_empty()) {
            Some(h) => Path::new(h).join(".local/share"),
            None => return Err(RegistryError::NoDataDir),
        },
    };
    Ok(base.join("citizencard").join("registry.db"))
}

/// The default registry file, from the environment (see [`default_path_from`]).
pub fn default_path() -> Result<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_DATA_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

impl Registry {
    /// Opens (creating it and its parent directories if needed) the registry at `path`, with the
    /// system clock, and brings its schema up to date.
    pub fn open(path: &Path, config: RegistryConfig) -> Result<Registry> {
        Registry::open_with_clock(path, config, Arc::new(SystemClock))
    }

    /// Like [`open`](Self::open) with a given clock.
    pub fn open_with_clock(
        path: &Path,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RegistryError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Registry::setup(conn, config, clock, Some(path.to_owned()))
    }

    /// An in-memory registry (tests, dry runs).
    pub fn open_in_memory(config: RegistryConfig, clock: Arc<dyn Clock>) -> Result<Registry> {
        Registry::setup(Connection::open_in_memory()?, config, clock, None)
    }

    fn setup(
        mut conn: Connection,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
        path: Option<PathBuf>,
    ) -> Result<Registry> {
        config.check().map_err(|message| RegistryError::Config {
            path: PathBuf::from("(configuration)"),
            message,
        })?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(Registry {
            conn,
            clock,
            config,
            path,
            writes: std::cell::Cell::new(0),
            fail_write: std::cell::Cell::new(None),
        })
    }

    /// Write transactions begun through this handle so far (each registry operation that
    /// changes something is one).
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Test support: makes write transaction number `n` (counted by [`writes`](Self::writes),
    /// the next one being `writes() + 1`) fail with [`RegistryError::InjectedFault`], as a full
    /// disk or a lost database server would; nothing of it is written. `None` turns it off.
    #[cfg(any(test, feature = "test-support"))]
    pub fn fail_write_number(&self, n: Option<u64>) {
        self.fail_write.set(n);
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        schema::version(&self.conn)
    }

    /// Now, from the registry's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Today in China (for card dates).
    pub fn today(&self) -> Date {
        self.now().to_offset(CHINA_TIME).date()
    }

    /// The status of a card.
    pub fn status(&self, card: &CardNumber) -> Result<CardStatus> {
        card_status(&self.conn, card)
    }
}

fn card_status(conn: &Connection, card: &CardNumber) -> Result<CardStatus> {
    let s: Option<String> = conn
        .query_row(
            "SELECT status FROM cards WHERE card_number = ?1",
            [card.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let s = s.ok_or_else(|| RegistryError::NoSuchCard(card.to_string()))?;
    CardStatus::parse(&s).ok_or_else(|| RegistryError::Corrupt(format!("card status {s:?}")))
}
