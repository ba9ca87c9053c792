//! # The issuance registry
//!
//! A database of the people who applied, the cards issued to them and everything that happened
//! to those cards: status history, fees, the purse ledger, the blacklist for terminals and an
//! append-only audit log, chained by hashes. It lives in one SQLite file (bundled SQLite, the
//! zero-install default: [`Registry::open`]) or in a PostgreSQL database shared by several
//! stations ([`Registry::open_postgres`]; [`Location`] tells the two apart); the same code, SQL
//! and migrations serve both through [`db`]. Its operations follow the card life cycle of the
//! Wenzhou citizen-card regulation; each one runs in a single transaction together with its
//! audit record, so a change is never made without its audit line, nor audited without being
//! made. Every audit record names the operator and the station ([`Station`]) that made it.
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
//! * **Tamper evidence**: the audit log is a hash chain whose records carry the images of the
//!   rows each change wrote ([`chain`]); [`verify`](Registry::verify) replays it and names every
//!   row of the tables that disagrees (`host-lib/docs/registry.md`, "The audit chain").
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
pub mod chain;
pub mod clock;
pub mod config;
pub mod copy;
pub mod db;
pub mod error;
pub mod lease;
mod ledger;
mod lifecycle;
pub mod operators;
mod queries;
pub mod schema;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use db::{Conn, Db, DbError, OptionalExtension};
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
pub use verify::{ChainHead, Finding, FindingKind, VerifyReport};

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
    db: Db,
    /// Set while a write transaction is open: every read then goes through it.
    in_tx: std::cell::Cell<bool>,
    /// The station recorded with every change (audit records).
    station: Station,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    path: Option<PathBuf>,
    /// Write transactions begun so far (fault injection counts them).
    writes: std::cell::Cell<u64>,
    /// Fault injection (tests): the write transaction with this number fails.
    fail_write: std::cell::Cell<Option<u64>>,
    /// Why the database cannot be written, when SQLite opened it read-only (reads still work).
    read_only: Option<String>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.db.dialect())
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
        // Personal data: the directories made here are 0700 and the file 0600, created before
        // SQLite opens it (its -wal, -shm and journal files then take the same mode).
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private_fs::create_private_dir_all(parent)
                .map_err(|source| read_only_or(path, source))?;
        }
        crate::private_fs::ensure_private_file(path)
            .map_err(|source| read_only_or(path, source))?;
        let (config_copy, clock_copy) = (config.clone(), clock.clone());
        let opened = (|| {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let mut reg = Registry::setup(conn, config, clock, Some(path.to_owned()))?;
            let read_only = reg.db.sqlite().map(|c| c.is_readonly(rusqlite::MAIN_DB));
            if read_only.transpose()?.unwrap_or(false) {
                reg.read_only = Some(
                    read_only_cause(
                        path,
                        &RegistryError::from(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                            None,
                        )),
                    )
                    .unwrap_or_else(|| "SQLite opened it read-only".into()),
                );
            }
            Ok(reg)
        })();
        let e = match opened {
            Ok(reg) => return Ok(reg),
            Err(e) => e,
        };
        let Some(why) = read_only_cause(path, &e) else {
            return Err(e);
        };
        // Reading needs no write access: open the file as it is, for queries only.
        let uri = format!("file:{}?immutable=1", uri_path(path));
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let read = Connection::open_with_flags(&uri, flags)
            .map_err(RegistryError::from)
            .and_then(|conn| {
                let current = schema::version(&Conn::Sqlite(&conn))? == schema::latest_version();
                if !current {
                    return Err(RegistryError::ReadOnly {
                        path: path.to_owned(),
                        why: format!("{why}; and its schema needs an upgrade, which writes"),
                    });
                }
                Registry::setup(conn, config_copy, clock_copy, Some(path.to_owned()))
            });
        match read {
            Ok(mut reg) => {
                reg.read_only = Some(why);
                Ok(reg)
            }
            Err(e @ RegistryError::ReadOnly { .. }) => Err(e),
            Err(_) => Err(RegistryError::ReadOnly {
                path: path.to_owned(),
                why,
            }),
        }
    }

    /// An in-memory registry (tests, dry runs).
    pub fn open_in_memory(config: RegistryConfig, clock: Arc<dyn Clock>) -> Result<Registry> {
        Registry::setup(Connection::open_in_memory()?, config, clock, None)
    }

    /// Opens the registry on the PostgreSQL server at `url` (`postgres://user@host:port/db`),
    /// with the system clock, and brings its schema up to date (an empty database gets every
    /// migration). The station's connections come from a small pool.
    pub fn open_postgres(url: &str, config: RegistryConfig) -> Result<Registry> {
        Registry::open_postgres_with_clock(url, config, Arc::new(SystemClock))
    }

    /// Like [`open_postgres`](Self::open_postgres) with a given clock.
    pub fn open_postgres_with_clock(
        url: &str,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry> {
        check_config(&config)?;
        let db = Db::connect_postgres(url, 4)?;
        schema::migrate(&db)?;
        Ok(Registry::new(db, config, clock, None))
    }

    /// Like [`open_postgres_with_clock`](Self::open_postgres_with_clock) on a pool shared by
    /// every handle this process opens on the same address (a server that opens a handle per
    /// request: the console). The schema is still checked at each open (one query).
    pub fn open_postgres_shared(
        url: &str,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry> {
        check_config(&config)?;
        let db = Db::connect_postgres_shared(url)?;
        schema::migrate(&db)?;
        Ok(Registry::new(db, config, clock, None))
    }

    /// Opens the registry a [`Location`] names (a file: SQLite; a `postgres://` address:
    /// PostgreSQL).
    pub fn open_location(
        location: &Location,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry> {
        match location {
            Location::Sqlite(path) => Registry::open_with_clock(path, config, clock),
            Location::Postgres(url) => Registry::open_postgres_with_clock(url, config, clock),
        }
    }

    fn setup(
        conn: Connection,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
        path: Option<PathBuf>,
    ) -> Result<Registry> {
        check_config(&config)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let db = Db::Sqlite(conn);
        schema::migrate(&db)?;
        let mut db = db;
        if let Some(conn) = db.sqlite_mut() {
            chain::install(conn)?;
        }
        Ok(Registry::new(db, config, clock, path))
    }

    fn new(
        db: Db,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
        path: Option<PathBuf>,
    ) -> Registry {
        Registry {
            db,
            in_tx: std::cell::Cell::new(false),
            station: Station::this_process(),
            clock,
            config,
            path,
            writes: std::cell::Cell::new(0),
            fail_write: std::cell::Cell::new(None),
            read_only: None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> db::Dialect {
        self.db.dialect()
    }

    /// Where the registry is, for messages: the SQLite file, `(memory)`, or the PostgreSQL
    /// server and database (never a password).
    pub fn describe(&self) -> String {
        match (&self.db, &self.path) {
            (Db::Postgres { server, .. }, _) => format!("PostgreSQL {server}"),
            (Db::Sqlite(_), Some(p)) => p.display().to_string(),
            (Db::Sqlite(_), None) => "(memory)".into(),
        }
    }

    /// A connection for a read (SQLite: the registry's own; PostgreSQL: one from the pool).
    /// Refused while a write transaction is open: reads then go through the transaction, which
    /// alone sees its own changes on PostgreSQL.
    pub(crate) fn conn(&self) -> Result<Conn<'_>> {
        if self.in_tx.get() {
            return Err(RegistryError::Corrupt(
                "internal error: a registry read outside the open transaction".into(),
            ));
        }
        Ok(self.db.conn()?)
    }

    /// The SQLite connection (tests that edit the file behind the registry's back).
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> &Connection {
        self.db.sqlite().expect("an SQLite registry")
    }

    /// The station this registry handle records with every change.
    pub fn station(&self) -> &Station {
        &self.station
    }

    /// Records changes as made by `station` from now on (a service point names itself).
    pub fn set_station(&mut self, station: Station) {
        self.station = station;
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

    /// Why the registry cannot be changed, when it was opened on a file or directory that cannot
    /// be written (reading works; every change is refused with [`RegistryError::ReadOnly`]).
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        schema::version(&self.conn()?)
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
        card_status(&self.conn()?, card)
    }
}

fn check_config(config: &RegistryConfig) -> Result<()> {
    config.check().map_err(|message| RegistryError::Config {
        path: PathBuf::from("(configuration)"),
        message,
    })
}

/// Where a registry lives: an SQLite file, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (the zero-install default).
    Sqlite(PathBuf),
    /// A PostgreSQL address, `postgres://user@host:port/database`.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is an SQLite file.
    pub fn parse(s: &str) -> Location {
        let t = s.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            Location::Postgres(t.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(s))
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(u) => f.write_str(&db::redact_url(u)),
        }
    }
}

/// Why the registry at `path` cannot be written, when that is what `e` comes from: SQLite says
/// "read-only", or cannot open the file while the file or its directory cannot be written.
fn read_only_cause(path: &Path, e: &RegistryError) -> Option<String> {
    use rusqlite::ErrorCode;
    let code = match e {
        RegistryError::Database(DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _))) => f.code,
        RegistryError::Migration { message, .. } if message.contains("readonly") => {
            ErrorCode::ReadOnly
        }
        _ => return None,
    };
    if !matches!(code, ErrorCode::ReadOnly | ErrorCode::CannotOpen) {
        return None;
    }
    let file_writable = std::fs::OpenOptions::new().append(true).open(path);
    if let Err(io) = file_writable {
        return Some(format!("the file cannot be written: {io}"));
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let probe = crate::private_fs::temporary_name(&dir.join("probe"));
        match crate::private_fs::create_private_file(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(io) => {
                return Some(format!(
                    "its directory {} cannot be written (SQLite keeps its -wal and -shm files \
                     there): {io}",
                    dir.display()
                ))
            }
        }
    }
    (code == ErrorCode::ReadOnly).then(|| "SQLite refuses to write it".to_owned())
}

/// A path as the path part of an SQLite `file:` URI (`%`, `?`, `#` and non-ASCII escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' | 0x80..=0xFF | 0..=0x20 => out.push_str(&format!("%{b:02X}")),
            _ => out.push(char::from(*b)),
        }
    }
    out
}

/// An I/O error making the registry's file or directory, as "read-only" when that is the cause.
fn read_only_or(path: &Path, source: std::io::Error) -> RegistryError {
    match source.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            RegistryError::ReadOnly {
                path: path.to_owned(),
                why: format!("it cannot be created: {source}"),
            }
        }
        _ => RegistryError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

fn card_status(conn: &Conn<'_>, card: &CardNumber) -> Result<CardStatus> {
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
