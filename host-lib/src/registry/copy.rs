//! Moving a registry from its SQLite file to a PostgreSQL database (a bureau going from one
//! service point to many): `citizencard registry migrate --to postgres://…`.
//!
//! The source's audit chain is verified first and a broken one is refused: what is copied is
//! what the chain vouches for. The rows are copied as they are (ids, card serials, the audit
//! records with their hashes) in one PostgreSQL transaction into an empty database, and the
//! copy is verified again: it must be clean and end at the same head.

use super::db::{Begin, Conn, Dialect, Tx, Val};
use super::verify::ChainHead;
use super::{Registry, RegistryConfig, RegistryError, Result};

/// Every table, parents before children, with the column that orders its rows.
const TABLES: &[(&str, &str)] = &[
    ("people", "id"),
    ("cards", "serial"),
    ("card_status_history", "id"),
    ("fees", "id"),
    ("purse_ledger", "id"),
    ("blacklist", "id"),
    ("card_applications", "id"),
    ("chip_credits", "id"),
    ("carry_over_intents", "id"),
    ("operators", "login"),
    ("issue_leases", "card_number"),
    // Last: its records clear the "unaudited" mark the rows above set (chain.rs).
    ("audit_log", "id"),
];

/// Tables whose `id` is an identity column on PostgreSQL: its sequence continues after the copy.
const IDENTITY_TABLES: &[&str] = &[
    "people",
    "card_status_history",
    "fees",
    "purse_ledger",
    "blacklist",
    "card_applications",
    "chip_credits",
    "carry_over_intents",
];

/// How far the copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyProgress {
    /// The source's chain is being verified.
    VerifyingSource,
    /// `rows` rows of `table` (of `total`) copied.
    Table {
        /// The table.
        table: &'static str,
        /// Rows copied so far.
        rows: usize,
        /// Rows to copy.
        total: usize,
    },
    /// The copy is being verified.
    VerifyingCopy,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Rows copied, per table.
    pub rows: Vec<(String, usize)>,
    /// The chain head of the source, and of the copy.
    pub head: Option<ChainHead>,
    /// Audit records copied.
    pub audit_records: usize,
}

fn refused(why: String) -> RegistryError {
    RegistryError::CopyRefused(why)
}

/// Copies the SQLite registry `source` into the empty PostgreSQL database at `url` (its schema
/// is created first). Refused when the source's chain does not verify clean, when the target
/// already holds a registry's data, and (rolled back) when the copy does not verify clean with
/// the same head.
pub fn copy_to_postgres(
    source: &Registry,
    url: &str,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<CopyReport> {
    if source.backend() != Dialect::Sqlite {
        return Err(refused("the source registry is not an SQLite file".into()));
    }
    progress(CopyProgress::VerifyingSource);
    let before = source.verify()?;
    if !before.is_clean() {
        return Err(refused(format!(
            "the source registry does not verify clean ({} findings; see `citizencard registry \
             verify`): a copy would carry them over as if they were the record",
            before.findings.len()
        )));
    }
    let target = Registry::open_postgres(url, RegistryConfig::default())?;
    let tx = Tx::begin(target.db.conn()?, Begin::Migration, None)?;
    for (table, _) in TABLES {
        let n: i64 = tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        if n > 0 {
            return Err(refused(format!(
                "the target database already holds registry data ({n} rows in {table}); copy \
                 into an empty database"
            )));
        }
    }
    let from = source.conn()?;
    let mut counts = Vec::new();
    for (table, order) in TABLES {
        let n = copy_table(&from, &tx, table, order, progress)?;
        counts.push(((*table).to_owned(), n));
    }
    // Identity columns and the card-serial sequence go on after the copied rows.
    for table in IDENTITY_TABLES {
        tx.query_row(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            ),
            [],
            |_| Ok(()),
        )?;
    }
    tx.query_row(
        "SELECT setval('card_serial', COALESCE((SELECT MAX(serial) FROM cards), 0) + 1, false)",
        [],
        |_| Ok(()),
    )?;
    if let Some(h) = &before.head {
        tx.execute(
            "UPDATE audit_head SET last_id = ?1, last_hash = ?2 WHERE one = 1",
            super::db::params![h.id, h.hash],
        )?;
    }
    progress(CopyProgress::VerifyingCopy);
    let after = verify_in(&target, &tx)?;
    if !after.0 || after.1 != before.head {
        return Err(refused(format!(
            "the copy does not verify as the source does (clean: {}, head {:?} instead of {:?}); \
             nothing was committed",
            after.0, after.1, before.head
        )));
    }
    tx.commit()?;
    // And once more from a fresh connection, as every station will see it.
    let report = target.verify()?;
    if !report.is_clean() || report.head != before.head {
        return Err(refused(format!(
            "the committed copy does not verify clean with the source's head ({} findings)",
            report.findings.len()
        )));
    }
    Ok(CopyReport {
        rows: counts,
        head: before.head,
        audit_records: before.audit_records,
    })
}

/// Whether the copy inside `tx` verifies clean, and its head (before commit).
fn verify_in(target: &Registry, tx: &Conn<'_>) -> Result<(bool, Option<ChainHead>)> {
    let report = target.verify_on(tx, None)?;
    Ok((report.is_clean(), report.head))
}

fn copy_table(
    from: &Conn<'_>,
    to: &Conn<'_>,
    table: &'static str,
    order: &str,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<usize> {
    let total: i64 = from.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    let total = usize::try_from(total).unwrap_or(0);
    let rows = from.query_all(
        &format!("SELECT * FROM {table} ORDER BY {order}"),
        [],
        |r| {
            let cols: Vec<String> = (0..r.column_count())
                .map(|i| r.column_name(i).to_owned())
                .collect();
            let vals: Vec<Val> = (0..r.column_count())
                .map(|i| r.get_ref(i).cloned().unwrap_or(Val::Null))
                .collect();
            Ok((cols, vals))
        },
    )?;
    let mut deferred: Vec<(Val, Val)> = Vec::new();
    for (done, (cols, mut vals)) in rows.into_iter().enumerate() {
        // A card's replacement comes after it: its `replaced_by` is set once both exist.
        if table == "cards" {
            if let Some(i) = cols.iter().position(|c| c == "replaced_by") {
                let by = std::mem::replace(&mut vals[i], Val::Null);
                if by != Val::Null {
                    let key = cols
                        .iter()
                        .position(|c| c == "card_number")
                        .map(|k| vals[k].clone())
                        .unwrap_or(Val::Null);
                    deferred.push((key, by));
                }
            }
        }
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        to.execute(
            &format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                cols.join(", "),
                placeholders.join(", ")
            ),
            vals,
        )?;
        if (done + 1) % 500 == 0 || done + 1 == total {
            progress(CopyProgress::Table {
                table,
                rows: done + 1,
                total,
            });
        }
    }
    for (card, by) in deferred {
        to.execute(
            "UPDATE cards SET replaced_by = ?1 WHERE card_number = ?2",
            vec![by, card],
        )?;
    }
    if total == 0 {
        progress(CopyProgress::Table {
            table,
            rows: 0,
            total,
        });
    }
    Ok(total)
}
