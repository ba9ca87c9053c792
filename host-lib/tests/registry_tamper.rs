//! The registry's audit chain against an attacker with the `sqlite3` shell: each tampering of
//! issue 9 (and a few more) done with raw SQL on the database file, triggers dropped where they
//! stand in the way, and `Registry::verify` naming the row. A registry after a whole card life is
//! clean; so is one migrated from the schemas before the chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use host_lib::holder::input::load_csv;
use host_lib::holder::{Applicant, Validator};
use host_lib::registry::operators::Role;
use host_lib::registry::{
    schema, AppState, CancelReason, CardStatus, ChipCredit, ChipInfo, Clock, Finding, FindingKind,
    LoadRecord, ManualClock, Registry, RegistryConfig, ReplaceReason, VerifiedPurchase,
    VerifyReport,
};
use rusqlite::Connection;
use time::macros::datetime;
use time::Duration;

const OP: &str = "op-tamper";

fn samples() -> Vec<Applicant> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/applicants/sample.csv");
    load_csv(&path, &Validator::new(time::macros::date!(2026 - 01 - 10)))
        .unwrap()
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect()
}

/// The cards of the life below.
struct Life {
    /// Replaced (cancelled) after a loss report.
    first: String,
    /// Its replacement, then cancelled (reason death) with a refund.
    replacement: String,
    /// Another person's active card with a load and a purchase.
    active: String,
    /// The holder of `active`.
    active_holder: String,
}

/// A registry file after a demo-like life: issue, load, purchase, loss, replace (balance carried
/// over and credited to the new chip), an application enabled, changed data, cancel.
fn life(path: &Path) -> Life {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-10 01:00 UTC)));
    let mut reg =
        Registry::open_with_clock(path, RegistryConfig::default(), clock.clone()).unwrap();
    let people = samples();
    let issue = |reg: &mut Registry, a: &Applicant| {
        let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
        reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap();
        p.card_number
    };
    let first = issue(&mut reg, &people[0]);
    reg.record_load(
        OP,
        &first,
        &LoadRecord {
            amount_cents: 10_000,
            txn_counter: Some(0),
            terminal_id: Some("000001000050".into()),
        },
    )
    .unwrap();
    reg.record_purchase(
        OP,
        &first,
        &VerifiedPurchase {
            amount_cents: 200,
            at: clock.now(),
            terminal_id: "000001000051".into(),
            txn_counter: 0,
            tac: [1, 2, 3, 4],
        },
    )
    .unwrap();
    clock.advance(Duration::hours(1));
    reg.report_loss(OP, &first).unwrap();
    let p = reg
        .begin_replace(OP, &first, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap();
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.transferred_cents, 9_800);
    let replacement = p.card_number;
    // The load host writes its intent before CREDIT FOR LOAD; the recorded credit settles it.
    reg.record_carry_over_intent(OP, &replacement, 9_800, 0, "{}")
        .unwrap();
    reg.record_chip_credit(
        OP,
        &replacement,
        &ChipCredit {
            amount_cents: 9_800,
            txn_counter: 0,
            tac: [5, 6, 7, 8],
        },
    )
    .unwrap();
    reg.record_application(
        OP,
        &replacement,
        "public",
        AppState::Enabled,
        serde_json::json!({"df": "PUBLIC"}),
    )
    .unwrap();
    let mut changed = people[0].to_record();
    changed.phone = Some("13900000009".into());
    let changed = Validator::new(time::macros::date!(2026 - 01 - 10))
        .validate_with_photo(&changed, None)
        .unwrap();
    assert_eq!(reg.update_person(OP, &changed).unwrap(), ["phone"]);
    clock.advance(Duration::hours(1));
    let c = reg.cancel(OP, &replacement, CancelReason::Death).unwrap();
    assert_eq!(c.refund_cents, 9_800);
    let active = issue(&mut reg, &people[1]);
    reg.record_load(
        OP,
        &active,
        &LoadRecord {
            amount_cents: 5_000,
            ..Default::default()
        },
    )
    .unwrap();
    reg.record_purchase(
        OP,
        &active,
        &VerifiedPurchase {
            amount_cents: 150,
            at: clock.now(),
            terminal_id: "000001000051".into(),
            txn_counter: 0,
            tac: [9, 9, 9, 9],
        },
    )
    .unwrap();
    reg.record_application(
        OP,
        &active,
        "purse",
        AppState::Blocked,
        serde_json::json!({"by": "terminal"}),
    )
    .unwrap();
    // A counter-console operator (schema 6): who may approve fees, refunds and blacklist lifts.
    reg.add_operator(
        OP,
        "clerk",
        "柜员",
        Role::Operator,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    )
    .unwrap();
    let report = reg.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.cards_by_status["cancelled"], 2);
    assert_eq!(report.cards_by_status["active"], 1);
    assert_eq!(report.open_blacklist, 2);
    assert_eq!(report.ledger_total_cents, 5_000 - 150);
    Life {
        first: first.to_string(),
        replacement: replacement.to_string(),
        active: active.to_string(),
        active_holder: people[1].id_number().to_string(),
    }
}

/// A fresh registry after [`life`], the attack done on it with its own connection (as the
/// `sqlite3` shell would), then verified.
fn tampered(attack: impl FnOnce(&Connection, &Life)) -> (VerifyReport, Life) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let life = life(&path);
    {
        let c = Connection::open(&path).unwrap();
        attack(&c, &life);
    }
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let report = reg.verify().unwrap();
    assert!(!report.is_clean(), "the tampering went unnoticed");
    for f in &report.findings {
        println!("  {f}");
    }
    (report, life)
}

fn named<'a>(r: &'a VerifyReport, kind: FindingKind, table: &str, row: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.kind == kind && f.table == table && f.row == row)
        .unwrap_or_else(|| panic!("no {kind:?} finding for {table} {row}: {:#?}", r.findings))
}

#[test]
fn a_full_life_verifies_clean_and_stays_clean_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    life(&path);
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let r = reg.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
    assert!(r.audit_records > 10 && r.rows_checked > 20, "{r:?}");
    assert_eq!(r.head.as_ref().unwrap().id as usize, r.audit_records);
}

#[test]
fn cancelled_card_set_back_to_active() {
    let (r, life) = tampered(|c, l| {
        c.execute(
            "UPDATE cards SET status = 'active' WHERE card_number = ?1",
            [&l.replacement],
        )
        .unwrap();
    });
    let f = named(&r, FindingKind::ChangedRow, "cards", &life.replacement);
    assert_eq!(f.field.as_deref(), Some("status"));
    assert_eq!(
        (f.chain.as_str(), f.table_value.as_str()),
        (Some("cancelled"), Some("active"))
    );
    assert!(f.message.contains("the chain says \"cancelled\""), "{f}");
}

#[test]
fn blacklist_row_lifted() {
    let (r, life) = tampered(|c, l| {
        c.execute(
            "UPDATE blacklist SET lifted_at = '2026-01-10T05:00:00Z' WHERE card_number = ?1",
            [&l.replacement],
        )
        .unwrap();
    });
    let f = r
        .findings
        .iter()
        .find(|f| f.table == "blacklist" && f.card_number.as_deref() == Some(&life.replacement))
        .expect("the lifted entry is named");
    assert_eq!(f.kind, FindingKind::ChangedRow);
    assert_eq!(f.field.as_deref(), Some("lifted_at"));
    assert!(f.chain.is_null());
}

#[test]
fn a_5000_yuan_load_inserted() {
    let (r, life) = tampered(|c, l| {
        c.execute(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, operator) \
             VALUES (?1, 'load', 500000, '2026-01-10T04:00:00Z', '2026-01-10T04:00:00Z', 'op-01')",
            [&l.active],
        )
        .unwrap();
    });
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnauditedRow && f.table == "purse_ledger")
        .expect("the inserted row is named");
    assert_eq!(f.card_number.as_deref(), Some(life.active.as_str()));
    assert_eq!(f.table_value["amount_cents"], 500_000);
    let b = named(&r, FindingKind::LedgerBalance, "purse_ledger", &life.active);
    assert_eq!(
        (b.chain.as_i64(), b.table_value.as_i64()),
        (Some(4_850), Some(504_850))
    );
    assert!(
        b.message.contains("48.50") && b.message.contains("5048.50"),
        "{b}"
    );
}

#[test]
fn a_person_renamed() {
    let (r, life) = tampered(|c, l| {
        c.execute(
            "UPDATE people SET name = '测试王五' WHERE id_number = ?1",
            [&l.active_holder],
        )
        .unwrap();
    });
    let f = r
        .findings
        .iter()
        .find(|f| f.table == "people" && f.field.as_deref() == Some("name"))
        .expect("the renamed person is named");
    assert_eq!(f.kind, FindingKind::ChangedRow);
    assert!(f.message.contains(&life.active_holder), "{f}");
    // The audit log holds no names: only their hashes.
    assert!(f.chain.as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn an_audit_record_edited() {
    let (r, _) = tampered(|c, _| {
        c.execute_batch(
            "DROP TRIGGER audit_no_update; \
             UPDATE audit_log SET operator = 'mallory' WHERE id = 5;",
        )
        .unwrap();
    });
    let f = named(&r, FindingKind::RecordHash, "audit_log", "5");
    assert!(f.message.contains("changed"), "{f}");
    assert_eq!(
        r.findings.len(),
        1,
        "only the edited record: {:#?}",
        r.findings
    );
}

#[test]
fn an_audit_record_edited_with_its_hash_recomputed_breaks_the_next_link() {
    let (r, _) = tampered(|c, _| {
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        c.execute(
            "UPDATE audit_log SET details = '{\"amount_cents\":1}', hash = ?1 WHERE id = 5",
            ["f".repeat(64)],
        )
        .unwrap();
    });
    named(&r, FindingKind::RecordHash, "audit_log", "5");
    named(&r, FindingKind::ChainLink, "audit_log", "6");
}

#[test]
fn an_audit_record_deleted() {
    let (r, _) = tampered(|c, _| {
        c.execute_batch(
            "DROP TRIGGER audit_no_delete; \
             DELETE FROM audit_log WHERE id = 6;",
        )
        .unwrap();
    });
    let f = named(&r, FindingKind::ChainLink, "audit_log", "7");
    assert!(f.message.contains("does not follow record 5"), "{f}");
}

#[test]
fn the_chains_tail_truncated() {
    let (r, _) = tampered(|c, _| {
        let last: i64 = c
            .query_row("SELECT MAX(id) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        c.execute_batch("DROP TRIGGER audit_no_delete;").unwrap();
        c.execute("DELETE FROM audit_log WHERE id > ?1", [last - 3])
            .unwrap();
    });
    let f = named(&r, FindingKind::ChainHead, "audit_head", "1");
    assert!(f.message.contains("tail was cut off"), "{f}");
}

#[test]
fn the_chains_tail_truncated_and_its_head_moved_back() {
    // The attacker also rewinds the head: the rows the lost records wrote still give it away.
    let (r, life) = tampered(|c, _| {
        let last: i64 = c
            .query_row("SELECT MAX(id) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        let keep = last - 3;
        let hash: String = c
            .query_row("SELECT hash FROM audit_log WHERE id = ?1", [keep], |r| {
                r.get(0)
            })
            .unwrap();
        c.execute_batch("DROP TRIGGER audit_no_delete; DROP TRIGGER audit_head_forward;")
            .unwrap();
        c.execute("DELETE FROM audit_log WHERE id > ?1", [keep])
            .unwrap();
        c.execute(
            "UPDATE audit_head SET last_id = ?1, last_hash = ?2",
            rusqlite::params![keep, hash],
        )
        .unwrap();
    });
    assert!(r.findings.iter().all(|f| f.kind != FindingKind::ChainHead));
    // The last records were the active card's load, purchase and purse block.
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == FindingKind::UnauditedRow
                && f.card_number.as_deref() == Some(life.active.as_str())),
        "{:#?}",
        r.findings
    );
}

#[test]
fn a_verified_registry_opened_read_only_by_an_attacker_changes_nothing() {
    // Control: a connection that only reads leaves the registry clean.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let life = life(&path);
    {
        let c = Connection::open(&path).unwrap();
        let s: String = c
            .query_row(
                "SELECT status FROM cards WHERE card_number = ?1",
                [&life.first],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(s, CardStatus::Cancelled.as_str());
    }
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    assert!(reg.verify().unwrap().is_clean());
}

#[test]
fn registries_from_before_the_chain_are_anchored_on_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    // A version-3 registry with history and audit records, written by hand as the old code did.
    {
        let db = host_lib::registry::db::Db::Sqlite(Connection::open(&path).unwrap());
        schema::migrate_to(&db, 3).unwrap();
        let c = db.sqlite().unwrap();
        let r = samples()[2].to_record();
        c.execute_batch("BEGIN").unwrap();
        c.execute(
            "INSERT INTO people (id_number, name, sex, ethnicity, birthplace, birth_date, \
             card_class, eligibility, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, '1985-03-12', '3', 'household', 't', 't')",
            rusqlite::params![r.id_number, r.name, r.sex, r.ethnicity, r.birthplace],
        )
        .unwrap();
        c.execute(
            "INSERT INTO cards (card_number, serial, person_id, status, card_class, issue_date, \
             expiry_date, created_at, updated_at) \
             VALUES ('W00000018', 1, 1, 'active', '3', '2020-05-01', '2030-05-01', 't', 't')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, operator) \
             VALUES ('W00000018', 'load', 1000, 't', 't', 'old')",
            [],
        )
        .unwrap();
        for (action, details) in [
            ("issue.begin", "{}"),
            ("issue.complete", "{}"),
            ("purse.load", "{\"amount_cents\":1000}"),
        ] {
            c.execute(
                "INSERT INTO audit_log (at, operator, action, card_number, details) \
                 VALUES ('2020-05-01T00:00:00Z', 'old', ?1, 'W00000018', ?2)",
                [action, details],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    let mut reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    assert_eq!(reg.schema_version().unwrap(), schema::latest_version());
    let r = reg.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
    // The three old records are chained, then one anchor attests the rows as found.
    assert_eq!(r.audit_records, 4);
    let log = reg.audit_log(&Default::default()).unwrap();
    assert_eq!(log[3].action, "registry.anchor");
    assert_eq!(log[3].details["rows_attested"], 3);
    assert_eq!(r.ledger_total_cents, 1000);
    // Life goes on, and an old record edited afterwards is still caught.
    let card = host_lib::holder::items::CardNumber::parse("W00000018").unwrap();
    reg.report_loss(OP, &card).unwrap();
    assert!(reg.verify().unwrap().is_clean());
    drop(reg);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit_log SET details = '{}' WHERE id = 3;",
    )
    .unwrap();
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let r = reg.verify().unwrap();
    named(&r, FindingKind::RecordHash, "audit_log", "3");
}

#[test]
fn verify_reads_one_snapshot_while_other_processes_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let life = life(&path);
    let active = host_lib::holder::items::CardNumber::parse(&life.active).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (checked, loads) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (path, active) = (&path, &active);
                s.spawn(move || {
                    let mut reg = Registry::open(path, RegistryConfig::default()).unwrap();
                    for i in 0..25 {
                        reg.record_load(
                            &format!("writer-{w}"),
                            active,
                            &LoadRecord {
                                amount_cents: 100 + i,
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        let verifier = s.spawn(|| {
            let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
            let mut n = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let r = reg.verify().unwrap();
                assert!(r.is_clean(), "{:#?}", r.findings);
                n += 1;
                if finished {
                    return n;
                }
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (verifier.join().unwrap(), 50)
    });
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let r = reg.verify().unwrap();
    assert!(r.is_clean());
    assert_eq!(
        r.ledger_total_cents,
        5_000 - 150 + 2 * (0..25).map(|i| 100 + i).sum::<i64>()
    );
    println!("{checked} clean verifications during {loads} concurrent loads");
}

#[test]
fn a_chip_credit_inserted_and_a_history_row_deleted() {
    let (r, life) = tampered(|c, l| {
        c.execute(
            "INSERT INTO chip_credits (card_number, amount_cents, txn_counter, tac, at, operator) \
             VALUES (?1, 9800, 7, '00000000', '2026-01-10T04:00:00Z', 'op-01')",
            [&l.replacement],
        )
        .unwrap();
        c.execute_batch(
            "DROP TRIGGER history_no_delete; \
             DELETE FROM card_status_history WHERE id = (SELECT MAX(id) FROM card_status_history);",
        )
        .unwrap();
    });
    let f = r
        .findings
        .iter()
        .find(|f| f.table == "chip_credits")
        .expect("the inserted credit is named");
    assert_eq!(f.kind, FindingKind::UnauditedRow);
    assert_eq!(f.card_number.as_deref(), Some(life.replacement.as_str()));
    let f = r
        .findings
        .iter()
        .find(|f| f.table == "card_status_history")
        .expect("the deleted history row is named");
    assert_eq!(f.kind, FindingKind::MissingRow);
    assert!(f.message.contains("the table lacks it"), "{f}");
}

#[test]
fn a_settled_carry_over_intent_rewritten_as_not_done() {
    // Setting a `done` intent to `not_done` would free its counter for another load: the money
    // side of the carry-over, so the chain covers it.
    let (r, life) = tampered(|c, l| {
        c.execute_batch("DROP TRIGGER carry_over_settle_once;")
            .unwrap();
        let n = c
            .execute(
                "UPDATE carry_over_intents SET outcome = 'not_done' WHERE card_number = ?1",
                [&l.replacement],
            )
            .unwrap();
        assert_eq!(n, 1);
    });
    let f = r
        .findings
        .iter()
        .find(|f| f.table == "carry_over_intents")
        .expect("the rewritten intent is named");
    assert_eq!(f.kind, FindingKind::ChangedRow);
    assert_eq!(f.field.as_deref(), Some("outcome"));
    assert_eq!(f.card_number.as_deref(), Some(life.replacement.as_str()));
    assert_eq!(f.chain, serde_json::json!("done"));
    assert_eq!(f.table_value, serde_json::json!("not_done"));
}

#[test]
fn issuance_leases_are_operational_and_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let life = life(&path);
    {
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO issue_leases (card_number, station, host, pid, taken_at, expires_at) \
             VALUES (?1, 'desk-9', 'elsewhere', 1, '2026-01-10T04:00:00Z', '2026-01-10T04:10:00Z')",
            [&life.active],
        )
        .unwrap();
    }
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let r = reg.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
}

#[test]
fn an_operator_raised_to_supervisor() {
    let (r, _) = tampered(|c, _| {
        c.execute(
            "UPDATE operators SET role = 'supervisor' WHERE login = 'clerk'",
            [],
        )
        .unwrap();
    });
    let f = named(&r, FindingKind::ChangedRow, "operators", "clerk");
    assert_eq!(f.field.as_deref(), Some("role"), "{f}");
}
