//! The audit log as a hash chain, and the row images that let [`Registry::verify`](super::Registry::verify) replay it.
//!
//! Every audit record carries, besides its human-readable `details`:
//!
//! * `effects`: a JSON array of **row images**, one per row of an audited table that the
//!   operation inserted or changed since the previous audit record of the same transaction:
//!   `{"table": "cards", "key": "W00000018", "row": {…every column…}}` (`row` is `null` for a
//!   deleted row). The rows are collected by temporary triggers this connection installs on the
//!   audited tables (`temp.audit_touched`), so no writer can forget one. Person rows carry the
//!   SHA-256 of each field instead of its value (the audit log holds no names or photos).
//! * `prev_hash`: the `hash` of the record before it (64 zeros for the first one);
//! * `hash`: SHA-256 over a canonical encoding of the record's fields (see [`record_hash`] and
//!   `host-lib/docs/registry.md`, "The audit chain").
//!
//! A single-row table `audit_head` holds the id and hash of the newest record, updated with
//! every append: a tail cut off the chain no longer reaches the head.
//!
//! The connection also refuses to commit a change of an audited table that no audit record
//! follows (`install`): a writer that forgets its audit record fails instead of leaving an
//! unaudited change.
//!
//! On PostgreSQL the same is done by the database for every session (`pg_enforce`, created by
//! the migrations): row triggers note the touched rows in the session's `cc_audit_touched` and
//! mark the transaction unaudited, an audit record clears the mark, and a deferred constraint
//! trigger refuses the commit while it is set. Appends serialize on the row lock of
//! `audit_head`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;

use super::db::{params, Conn, Dialect, OptionalExtension, Row, Val};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{RegistryError, Result};

/// The schema version that introduced the chain.
pub const CHAIN_VERSION: u32 = 4;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The domain-separation prefix of [`record_hash`].
pub const HASH_PREFIX: &str = "citizencard-audit-1\n";

/// The prefix of [`record_hash`] for records that name their station (schema version
/// [`STATION_VERSION`] on): the station is then hashed too.
pub const HASH_PREFIX_STATION: &str = "citizencard-audit-2\n";

/// The schema version that added the station to audit records.
pub const STATION_VERSION: u32 = 7;

/// Operator name of records written by schema migrations.
pub const MIGRATION_OPERATOR: &str = "(schema migration)";

/// A table whose every row is covered by the chain, and the column naming a row.
#[derive(Debug, Clone, Copy)]
pub struct AuditedTable {
    /// Table name.
    pub name: &'static str,
    /// The column that identifies a row for ever (the primary key).
    pub key: &'static str,
    /// Whether the key is an integer.
    pub integer_key: bool,
    /// The schema version that created the table (migrations before it do not anchor it).
    pub since: u32,
}

/// Every audited table. A table added by a later migration is covered by adding it here with that
/// migration's version as `since` (the migration then anchors its existing rows, see
/// `after_migration`). Operational tables (`issue_leases`: which station holds an issuance) are
/// deliberately not here: they say nothing about cards, money or people.
pub const AUDITED: &[AuditedTable] = &[
    AuditedTable {
        name: "people",
        key: "id",
        integer_key: true,
        since: 1,
    },
    AuditedTable {
        name: "cards",
        key: "card_number",
        integer_key: false,
        since: 1,
    },
    AuditedTable {
        name: "card_status_history",
        key: "id",
        integer_key: true,
        since: 1,
    },
    AuditedTable {
        name: "fees",
        key: "id",
        integer_key: true,
        since: 2,
    },
    AuditedTable {
        name: "purse_ledger",
        key: "id",
        integer_key: true,
        since: 2,
    },
    AuditedTable {
        name: "blacklist",
        key: "id",
        integer_key: true,
        since: 2,
    },
    AuditedTable {
        name: "card_applications",
        key: "id",
        integer_key: true,
        since: 3,
    },
    AuditedTable {
        name: "chip_credits",
        key: "id",
        integer_key: true,
        since: 3,
    },
    // Money-relevant: an intent settled `done` is the record that a carried-over balance reached
    // the replacement chip, and its counter must never be loaded again.
    AuditedTable {
        name: "carry_over_intents",
        key: "id",
        integer_key: true,
        since: 5,
    },
    // Who may do what at the counter: a role raised to `supervisor` by hand would let an
    // operator approve fees, refunds and blacklist lifts.
    AuditedTable {
        name: "operators",
        key: "login",
        integer_key: false,
        since: 6,
    },
];

/// The person columns stored in the clear in a row image; every other column is hashed.
const PERSON_CLEAR: &[&str] = &["id", "id_number"];

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One field of the canonical encoding: `~` for NULL, else `<byte length>:<bytes>,`.
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(b'~'),
        Some(s) => {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
            out.push(b',');
        }
    }
}

/// The fields of one audit record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRecord {
    /// `audit_log.id`.
    pub id: i64,
    /// `at`.
    pub at: String,
    /// `operator`.
    pub operator: String,
    /// `action`.
    pub action: String,
    /// `card_number`.
    pub card_number: Option<String>,
    /// `id_number`.
    pub id_number: Option<String>,
    /// `details` (JSON text, as stored).
    pub details: String,
    /// `effects` (JSON text, as stored; NULL for records made before the chain existed).
    pub effects: Option<String>,
    /// `prev_hash`.
    pub prev_hash: Option<String>,
    /// `hash`.
    pub hash: Option<String>,
    /// `station`: the station (service-point process) that made the change; NULL in records
    /// made before schema version [`STATION_VERSION`] and in migration anchors.
    pub station: Option<String>,
}

/// The record's hash: lower-case hex SHA-256 of [`HASH_PREFIX`] followed by the canonical
/// encoding of id (decimal), at, operator, action, card_number, id_number, details, effects and
/// prev_hash, each `~` when NULL, else `<UTF-8 byte length in decimal>:<UTF-8 bytes>,`.
/// A record that names its station is hashed with [`HASH_PREFIX_STATION`] instead, and the
/// station as a tenth field: records made before stations existed keep their hash, and a
/// station removed from a newer record changes its hash.
pub fn record_hash(r: &ChainRecord) -> String {
    let prefix = if r.station.is_some() {
        HASH_PREFIX_STATION
    } else {
        HASH_PREFIX
    };
    let mut buf = prefix.as_bytes().to_vec();
    let id = r.id.to_string();
    for v in [
        Some(id.as_str()),
        Some(r.at.as_str()),
        Some(r.operator.as_str()),
        Some(r.action.as_str()),
        r.card_number.as_deref(),
        r.id_number.as_deref(),
        Some(r.details.as_str()),
        r.effects.as_deref(),
        r.prev_hash.as_deref(),
    ] {
        field(&mut buf, v);
    }
    if let Some(station) = &r.station {
        field(&mut buf, Some(station));
    }
    sha256_hex(&buf)
}

/// Reads the whole chain, oldest first (of a database at the latest schema version).
pub(crate) fn read_chain(conn: &Conn<'_>) -> Result<Vec<ChainRecord>> {
    read_chain_at(conn, u32::MAX)
}

/// Reads the whole chain of a database at schema `version`.
pub(crate) fn read_chain_at(conn: &Conn<'_>, version: u32) -> Result<Vec<ChainRecord>> {
    let station = if version >= STATION_VERSION {
        "station"
    } else {
        "NULL"
    };
    let mut st = conn.prepare(&format!(
        "SELECT id, at, operator, action, card_number, id_number, details, effects, prev_hash, \
         hash, {station} FROM audit_log ORDER BY id"
    ))?;
    let rows = st.query_map([], |r| {
        Ok(ChainRecord {
            id: r.get(0)?,
            at: r.get(1)?,
            operator: r.get(2)?,
            action: r.get(3)?,
            card_number: r.get(4)?,
            id_number: r.get(5)?,
            details: r.get(6)?,
            effects: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
            station: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<super::db::DbResult<_>>()?)
}

/// The chain's head as `audit_head` records it: (id, hash) of the newest record.
pub(crate) fn head(conn: &Conn<'_>) -> Result<Option<(i64, String)>> {
    Ok(conn
        .query_row(
            "SELECT last_id, last_hash FROM audit_head WHERE one = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// A table's row as JSON: integers and text as they are, blobs as `sha256:<hex>`; person rows
/// with every field but `id` and `id_number` hashed. The same on both backends (every integer
/// column is 64-bit, BLOB and BYTEA read as bytes).
fn image(table: &str, row: &Row) -> super::db::DbResult<Map<String, Value>> {
    let mut m = Map::new();
    for i in 0..row.column_count() {
        let name = row.column_name(i).to_owned();
        let hashed = table == "people" && !PERSON_CLEAR.contains(&name.as_str());
        let v = match row.get_ref(i).unwrap_or(&Val::Null) {
            Val::Null => Value::Null,
            Val::Int(n) if hashed => {
                json!(format!("sha256:{}", sha256_hex(n.to_string().as_bytes())))
            }
            Val::Int(n) => json!(n),
            Val::Text(t) if hashed => json!(format!("sha256:{}", sha256_hex(t.as_bytes()))),
            Val::Text(t) => json!(t),
            Val::Bytes(b) => json!(format!("sha256:{}", sha256_hex(b))),
        };
        m.insert(name, v);
    }
    Ok(m)
}

/// An audited table as named in queries: SQLite's `main.` schema, so that no temporary table
/// shadows it; PostgreSQL's `public.`.
fn qualified(conn: &Conn<'_>, name: &str) -> String {
    match conn.dialect() {
        Dialect::Sqlite => format!("main.{name}"),
        Dialect::Postgres => format!("public.{name}"),
    }
}

/// The key of a row image, as text.
fn key_text(t: &AuditedTable, m: &Map<String, Value>) -> String {
    match m.get(t.key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// The current image of one row, `None` when it does not exist.
fn row_image(conn: &Conn<'_>, t: &AuditedTable, key: &str) -> Result<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT * FROM {} WHERE {} = ?1",
        qualified(conn, t.name),
        t.key
    );
    let found = if t.integer_key {
        let k: i64 = key
            .parse()
            .map_err(|_| RegistryError::Corrupt(format!("{} key {key:?}", t.name)))?;
        conn.query_row(&sql, [k], |r| image(t.name, r)).optional()?
    } else {
        conn.query_row(&sql, [key], |r| image(t.name, r))
            .optional()?
    };
    Ok(found)
}

/// Every row of an audited table, by key.
pub(crate) fn table_images(
    conn: &Conn<'_>,
    t: &AuditedTable,
) -> Result<BTreeMap<String, Map<String, Value>>> {
    let mut st = conn.prepare(&format!("SELECT * FROM {}", qualified(conn, t.name)))?;
    let rows = st.query_map([], |r| image(t.name, r))?;
    let mut out = BTreeMap::new();
    for m in rows {
        let m = m?;
        out.insert(key_text(t, &m), m);
    }
    Ok(out)
}

/// Whether two row images say the same: a column one lacks counts as NULL (a column a later
/// migration added to a row the chain described before).
pub(crate) fn same_image(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.keys()
        .chain(b.keys())
        .all(|k| a.get(k).unwrap_or(&Value::Null) == b.get(k).unwrap_or(&Value::Null))
}

fn table(name: &str) -> Option<&'static AuditedTable> {
    AUDITED.iter().find(|t| t.name == name)
}

/// Installs, on this connection, the temporary triggers that note every row an operation
/// touches, and the hooks that refuse a commit of audited changes without an audit record
/// after them.
pub(crate) fn install(conn: &mut Connection) -> Result<()> {
    let mut sql = String::from(
        "CREATE TEMP TABLE IF NOT EXISTS audit_touched (tbl TEXT NOT NULL, key TEXT NOT NULL);\n",
    );
    for t in AUDITED {
        let (n, k) = (t.name, t.key);
        sql.push_str(&format!(
            "CREATE TEMP TRIGGER IF NOT EXISTS audit_touch_{n}_i AFTER INSERT ON main.{n} \
             BEGIN INSERT INTO audit_touched VALUES ('{n}', NEW.{k}); END;\n\
             CREATE TEMP TRIGGER IF NOT EXISTS audit_touch_{n}_u AFTER UPDATE ON main.{n} \
             BEGIN INSERT INTO audit_touched VALUES ('{n}', OLD.{k}), ('{n}', NEW.{k}); END;\n\
             CREATE TEMP TRIGGER IF NOT EXISTS audit_touch_{n}_d AFTER DELETE ON main.{n} \
             BEGIN INSERT INTO audit_touched VALUES ('{n}', OLD.{k}); END;\n"
        ));
    }
    conn.execute_batch(&sql)?;
    // `unaudited` is set by a change of an audited table and cleared by the audit record that
    // follows it; a commit while it is set is turned into a rollback.
    let unaudited = Arc::new(AtomicBool::new(false));
    let on_change = unaudited.clone();
    conn.update_hook(Some(move |_action, db: &str, tbl: &str, _rowid| {
        if db != "main" {
            return;
        }
        if tbl == "audit_log" {
            on_change.store(false, Ordering::SeqCst);
        } else if table(tbl).is_some() {
            on_change.store(true, Ordering::SeqCst);
        }
    }))?;
    let on_commit = unaudited.clone();
    conn.commit_hook(Some(move || on_commit.swap(false, Ordering::SeqCst)))?;
    let on_rollback = unaudited;
    conn.rollback_hook(Some(move || on_rollback.store(false, Ordering::SeqCst)))?;
    Ok(())
}

/// What every PostgreSQL connection of the registry runs first: its list of the rows touched
/// since the last audit record (filled by the `cc_audit_touch` triggers, emptied at commit).
/// It also bounds how long a station waits for the chain head (another station's write) and how
/// long a transaction left open by a hung station may hold it.
pub const PG_SESSION_SETUP: &str = "SET client_min_messages = warning; \
    SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s'; \
    CREATE TEMP TABLE IF NOT EXISTS cc_audit_touched (tbl TEXT NOT NULL, key TEXT NOT NULL) \
    ON COMMIT DELETE ROWS";

/// PostgreSQL: the triggers that enforce the chain on the audited tables a migration step
/// brings in (at [`CHAIN_VERSION`], every table audited by then; later, those whose `since` is
/// the step): `cc_audit_touch` notes each row touched and marks the transaction unaudited until
/// its next audit record; a deferred constraint trigger refuses the commit while the mark is
/// set; TRUNCATE, which fires no row trigger, is refused.
pub(crate) fn pg_enforce(conn: &Conn<'_>, version: u32) -> Result<()> {
    if version < CHAIN_VERSION {
        return Ok(());
    }
    let mut sql = String::new();
    for t in AUDITED
        .iter()
        .filter(|t| t.since == version || (version == CHAIN_VERSION && t.since <= version))
    {
        let (n, k) = (t.name, t.key);
        sql.push_str(&format!(
            "CREATE TRIGGER audit_touch_{n} AFTER INSERT OR UPDATE OR DELETE ON {n} \
             FOR EACH ROW EXECUTE FUNCTION cc_audit_touch('{k}');\n\
             CREATE CONSTRAINT TRIGGER audit_check_{n} AFTER INSERT OR UPDATE OR DELETE ON {n} \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cc_audit_check();\n\
             CREATE TRIGGER audit_no_truncate_{n} BEFORE TRUNCATE ON {n} \
             EXECUTE FUNCTION cc_refuse('{n} is audited: its rows cannot be truncated');\n"
        ));
    }
    conn.execute_batch(&sql)?;
    Ok(())
}

/// The row images of everything touched since the last audit record of this transaction, and
/// the list emptied.
fn take_touched(conn: &Conn<'_>) -> Result<Vec<Value>> {
    let (list, columns) = match conn.dialect() {
        Dialect::Sqlite => ("temp.audit_touched", "tbl, key"),
        // The C collation: the order SQLite's binary comparison gives.
        Dialect::Postgres => (
            "pg_temp.cc_audit_touched",
            "tbl COLLATE \"C\", key COLLATE \"C\"",
        ),
    };
    let touched: Vec<(String, String)> = {
        let mut st = conn.prepare(&format!(
            "SELECT DISTINCT {columns} FROM {list} ORDER BY 1, 2"
        ))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<super::db::DbResult<_>>()?
    };
    conn.execute(&format!("DELETE FROM {list}"), [])?;
    let mut effects = Vec::with_capacity(touched.len());
    for (tbl, key) in touched {
        let t = table(&tbl).ok_or_else(|| RegistryError::Corrupt(format!("table {tbl}")))?;
        let row = row_image(conn, t, &key)?;
        effects.push(json!({ "table": tbl, "key": key, "row": row }));
    }
    Ok(effects)
}

/// Appends one record to the chain, with the images of the rows touched since the previous
/// record, and moves the head. The one place that writes `audit_log`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append(
    conn: &Conn<'_>,
    at: &str,
    operator: &str,
    action: &str,
    card: Option<&str>,
    id_number: Option<&str>,
    details: &str,
    effects: Vec<Value>,
    station: Option<&str>,
) -> Result<()> {
    // PostgreSQL: the head row stays locked until commit, so that concurrent stations append
    // one after the other (the registry's write transactions lock it when they begin).
    let locked = match conn.dialect() {
        Dialect::Sqlite => None,
        Dialect::Postgres => conn
            .query_row(
                "SELECT last_id, last_hash FROM audit_head WHERE one = 1 FOR UPDATE",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
    };
    let found = match locked {
        Some(h) => Some(h),
        None => head(conn)?,
    };
    let (head_id, head_hash): (i64, String) = found.ok_or_else(|| {
        RegistryError::Corrupt(
            "the audit chain has no head record (audit_head): run `citizencard registry verify`"
                .into(),
        )
    })?;
    // The next id of an AUTOINCREMENT table: never one used before, even by a deleted row
    // (PostgreSQL refuses deletions outright; the head remembers the newest id there).
    let seq: i64 = match conn.dialect() {
        Dialect::Sqlite => conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0),
        Dialect::Postgres => 0,
    };
    let max: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_log", [], |r| {
        r.get(0)
    })?;
    let id = seq.max(max).max(head_id) + 1;
    let mut record = ChainRecord {
        id,
        at: at.to_owned(),
        operator: operator.to_owned(),
        action: action.to_owned(),
        card_number: card.map(str::to_owned),
        id_number: id_number.map(str::to_owned),
        details: details.to_owned(),
        effects: Some(Value::Array(effects).to_string()),
        prev_hash: Some(head_hash),
        hash: None,
        station: station.map(str::to_owned),
    };
    let hash = record_hash(&record);
    record.hash = Some(hash.clone());
    // The station column exists from STATION_VERSION on; anchors of earlier steps name none.
    let (station_col, station_val) = match &record.station {
        Some(_) => (", station", ", ?11"),
        None => ("", ""),
    };
    conn.execute(
        &format!(
            "INSERT INTO audit_log (id, at, operator, action, card_number, id_number, details, \
             effects, prev_hash, hash{station_col}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
             ?10{station_val})"
        ),
        &params![
            record.id,
            record.at,
            record.operator,
            record.action,
            record.card_number,
            record.id_number,
            record.details,
            record.effects,
            record.prev_hash,
            record.hash,
            record.station
        ][..if record.station.is_some() { 11 } else { 10 }],
    )?;
    let n = conn.execute(
        "UPDATE audit_head SET last_id = ?1, last_hash = ?2 WHERE one = 1",
        params![id, hash],
    )?;
    if n != 1 {
        return Err(RegistryError::Corrupt(
            "audit_head could not be moved".into(),
        ));
    }
    Ok(())
}

/// Appends an audit record for the operation whose changes were made in this transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append_audit(
    conn: &Conn<'_>,
    at: &str,
    operator: &str,
    action: &str,
    card: Option<&str>,
    id_number: Option<&str>,
    details: &str,
    station: Option<&str>,
) -> Result<()> {
    let effects = take_touched(conn)?;
    append(
        conn, at, operator, action, card, id_number, details, effects, station,
    )
}

fn audit_no_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be changed'); END;"
        }
        Dialect::Postgres => {
            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log FOR EACH ROW
EXECUTE FUNCTION cc_refuse('audit_log is append-only: rows cannot be changed');"
        }
    }
}

/// Runs inside the transaction of every migration from [`CHAIN_VERSION`] on, after its SQL.
///
/// * At [`CHAIN_VERSION`]: the records written before the chain existed are chained in id order
///   (their `effects` stay NULL) and the head is set.
/// * Then, at every such migration: a `registry.anchor` record attests the current image of every
///   row that the chain does not already describe as it is (at [`CHAIN_VERSION`], every row: the
///   state found is taken as the starting point; later, rows a migration changed or added). Its
///   details list the rows it attested, so that what a migration accepted stays visible.
pub(crate) fn after_migration(conn: &Conn<'_>, version: u32, at: &str) -> Result<()> {
    if version == CHAIN_VERSION {
        let mut prev = GENESIS.to_owned();
        let mut last_id = 0;
        for mut r in read_chain_at(conn, version)? {
            r.prev_hash = Some(prev.clone());
            r.effects = None;
            let h = record_hash(&r);
            conn.execute(
                "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                params![prev, h, r.id],
            )?;
            prev = h;
            last_id = r.id;
        }
        conn.execute(
            "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?1, ?2)",
            params![last_id, prev],
        )?;
        conn.execute_batch(audit_no_update(conn.dialect()))?;
    }
    let replay = super::verify::replay(&read_chain_at(conn, version)?);
    let mut effects = Vec::new();
    let mut attested = Vec::new();
    for t in AUDITED.iter().filter(|t| t.since <= version) {
        let expected = replay.images.get(t.name);
        for (key, row) in table_images(conn, t)? {
            let known = expected.and_then(|m| m.get(&key)).and_then(|r| r.as_ref());
            if !known.is_some_and(|k| same_image(k, &row)) {
                attested.push(format!("{} {key}", t.name));
                effects.push(json!({ "table": t.name, "key": key, "row": row }));
            }
        }
    }
    if effects.is_empty() {
        return Ok(());
    }
    let details = json!({
        "schema_version": version,
        "rows_attested": effects.len(),
        "reason": if version == CHAIN_VERSION {
            "the rows as found when the audit chain was introduced"
        } else {
            "rows added or changed by the schema migration, or found differing from the chain"
        },
        "rows": if version == CHAIN_VERSION { Value::Null } else { json!(attested) },
    });
    append(
        conn,
        at,
        MIGRATION_OPERATOR,
        "registry.anchor",
        None,
        None,
        &details.to_string(),
        effects,
        None,
    )
}
