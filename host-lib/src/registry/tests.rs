//! Registry tests: every transition allowed and refused, the audit and append-only rules,
//! migrations, money conservation.

use std::path::PathBuf;
use std::sync::Arc;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::holder::input::load_csv;
use crate::holder::items::{CardholderItems, IssuerItems, Record};
use crate::holder::{Applicant, ApplicantRecord, Eligibility, Validator};

const OP: &str = "op-01";
const T0: OffsetDateTime = datetime!(2026-01-10 01:00 UTC);

fn samples() -> Vec<Applicant> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/applicants/sample.csv");
    load_csv(&path, &Validator::new(time::macros::date!(2026 - 01 - 10)))
        .unwrap()
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

thread_local! {
    /// The backend of the test running on this thread (the harness gives each test a thread).
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Sqlite) };
    /// The PostgreSQL databases this test made, dropped when its thread ends.
    static PG_DBS: std::cell::RefCell<Vec<testing::PgTestDb>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn backend() -> Backend {
    BACKEND.with(|b| b.get())
}

/// Runs `body` on `backend` (PostgreSQL only with `CITIZENCARD_PG=1`).
fn run_on(backend: Backend, name: &str, body: fn()) {
    if backend == Backend::Postgres && !testing::pg_enabled(name) {
        return;
    }
    BACKEND.with(|b| b.set(backend));
    body();
}

/// A registry on the test's backend: SQLite in memory, or a fresh PostgreSQL database.
fn open_registry(config: RegistryConfig, clock: Arc<dyn Clock>) -> Result<Registry> {
    match backend() {
        Backend::Sqlite => Registry::open_in_memory(config, clock),
        Backend::Postgres => {
            let db = testing::PgTestDb::create();
            let url = db.url().to_owned();
            PG_DBS.with(|d| d.borrow_mut().push(db));
            Registry::open_postgres_with_clock(&url, config, clock)
        }
    }
}

/// The same test on SQLite and on PostgreSQL: `name::sqlite` and `name::postgres`.
macro_rules! on_both {
    (fn $name:ident() $body:block) => {
        mod $name {
            use super::*;
            fn body() $body
            #[test]
            fn sqlite() {
                run_on(Backend::Sqlite, stringify!($name), body);
            }
            #[test]
            fn postgres() {
                run_on(Backend::Postgres, stringify!($name), body);
            }
        }
    };
}

fn fixture_with(config: RegistryConfig) -> (Registry, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let reg = open_registry(config, clock.clone()).unwrap();
    (reg, clock)
}

/// A session on the registry's database behind the registry's back: SQLite through the
/// registry's own connection, PostgreSQL through a session of its own.
enum Raw<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Raw<'_> {
    fn of(reg: &Registry) -> Raw<'_> {
        match backend() {
            Backend::Sqlite => Raw::Sqlite(reg.sqlite()),
            Backend::Postgres => Raw::Postgres(Box::new(PG_DBS.with(|d| {
                d.borrow()
                    .last()
                    .expect("a PostgreSQL registry of this test")
                    .client()
            }))),
        }
    }

    /// Runs statements; the error as text (with the database's message).
    fn exec(&mut self, sql: &str) -> std::result::Result<(), String> {
        match self {
            Raw::Sqlite(c) => c.execute_batch(sql).map_err(|e| e.to_string()),
            Raw::Postgres(c) => c.batch_execute(sql).map_err(|e| {
                let db = e.as_db_error().map(|d| d.message().to_owned());
                format!("{e}: {}", db.unwrap_or_default())
            }),
        }
    }
}

fn fixture() -> (Registry, Arc<ManualClock>) {
    fixture_with(RegistryConfig::default())
}

fn cn(s: &str) -> CardNumber {
    CardNumber::parse(s).unwrap()
}

/// Issues an active card to `a`.
fn issue(reg: &mut Registry, a: &Applicant) -> CardNumber {
    let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    p.card_number
}

fn purchase(counter: u16, cents: u32, at: OffsetDateTime) -> VerifiedPurchase {
    VerifiedPurchase {
        amount_cents: cents,
        at,
        terminal_id: "000001000050".into(),
        txn_counter: counter,
        tac: [0xED, 0x0F, 0x87, 0x55],
    }
}

fn load(cents: u32) -> LoadRecord {
    LoadRecord {
        amount_cents: cents,
        ..Default::default()
    }
}

fn actions(reg: &Registry, card: &CardNumber) -> Vec<String> {
    reg.audit_log(&AuditFilter {
        card: Some(card.clone()),
        ..Default::default()
    })
    .unwrap()
    .into_iter()
    .map(|e| e.action)
    .collect()
}

fn audit_count(reg: &Registry) -> usize {
    reg.audit_log(&AuditFilter::default()).unwrap().len()
}

fn fee_cents(reg: &Registry, card: &CardNumber) -> Vec<(String, i64)> {
    reg.card_details(card)
        .unwrap()
        .fees
        .into_iter()
        .map(|f| (f.kind, f.amount_cents))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Issue

on_both! {
fn issue_in_two_steps() {
    let (mut reg, _) = fixture();
    let a = &samples()[0];
    let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    assert_eq!(p.serial, 1);
    assert_eq!(card_number::verify(&p.card_number), Ok(1));
    assert!(p.card_number.as_str().starts_with('W'));
    assert_eq!(p.issue_date, time::macros::date!(2026 - 01 - 10));
    assert_eq!(p.expiry_date, time::macros::date!(2036 - 01 - 10));
    assert_eq!(p.holder, *a);
    assert_eq!(
        reg.status(&p.card_number).unwrap(),
        CardStatus::Personalizing
    );

    // What personalization writes round-trips through the item codecs.
    let ef05: Vec<Vec<u8>> = p
        .issuer_items([1, 2, 3, 4])
        .records()
        .iter()
        .map(Record::to_bytes)
        .collect();
    let back = IssuerItems::decode(ef05.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(back.card_number, p.card_number);
    assert_eq!(back.card_id.serial, 1);
    assert_eq!(back.card_id.city.digits(), "330300");
    let ef06: Vec<Vec<u8>> = p
        .cardholder_items()
        .records()
        .iter()
        .map(Record::to_bytes)
        .collect();
    assert_eq!(
        CardholderItems::decode(ef06.iter().map(Vec::as_slice))
            .unwrap()
            .id_number,
        *a.id_number()
    );

    let chip = ChipInfo {
        chip_id: Some("3B6800000073C84013009000".into()),
        key_set: Some("dev-1".into()),
    };
    let issued = reg.complete_issue(OP, &p.card_number, &chip).unwrap();
    assert_eq!(issued.fee_kind, "first_issue");
    assert_eq!(issued.fee_cents, 0);
    assert_eq!(reg.status(&p.card_number).unwrap(), CardStatus::Active);
    // Art. 19: the free first card is still recorded, with 0.
    assert_eq!(
        fee_cents(&reg, &p.card_number),
        vec![("first_issue".into(), 0)]
    );
    let d = reg.card_details(&p.card_number).unwrap();
    assert_eq!(d.card.chip_id.as_deref(), Some("3B6800000073C84013009000"));
    assert_eq!(
        d.history.iter().map(|h| h.to.as_str()).collect::<Vec<_>>(),
        ["personalizing", "active"]
    );
    assert_eq!(
        actions(&reg, &p.card_number),
        ["issue.begin", "issue.complete"]
    );
}
}

on_both! {
fn ineligible_applicant_is_refused_and_nothing_recorded() {
    let (mut reg, _) = fixture();
    let mut r = samples()[0].to_record();
    r.eligibility = Some("none".into());
    let a = Validator::new(reg.today())
        .validate_with_photo(&r, None)
        .unwrap();
    assert_eq!(a.eligibility(), Eligibility::Neither);
    let e = reg.begin_issue(OP, &a, &ChipInfo::default()).unwrap_err();
    assert!(matches!(e, RegistryError::NotEligible { .. }), "{e}");
    assert!(
        e.to_string().contains("Wenzhou household registration"),
        "{e}"
    );
    assert!(reg.list_cards(&CardFilter::default()).unwrap().is_empty());
    assert_eq!(audit_count(&reg), 0);
}
}

#[test]
fn one_card_per_person() {
    let (mut reg, _) = fixture();
    let a = &samples()[1];
    let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    let e = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap_err();
    assert!(matches!(e, RegistryError::UnfinishedIssue { .. }), "{e}");
    reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    let e = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::AlreadyHasCard {
                status: CardStatus::Active,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("replace"), "{e}");
    reg.report_loss(OP, &p.card_number).unwrap();
    let e = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::AlreadyHasCard {
                status: CardStatus::Lost,
                ..
            }
        ),
        "{e}"
    );
    // The database itself refuses a second card in use, whatever the code does.
    let pid: i64 = reg
        .sqlite()
        .query_row("SELECT person_id FROM cards", [], |r| r.get(0))
        .unwrap();
    let err = reg
        .sqlite()
        .execute(
            "INSERT INTO cards (card_number, serial, person_id, status, card_class, issue_date, \
             expiry_date, created_at, updated_at) VALUES ('W99999999', 999, ?1, 'active', '3', \
             '2026-01-10', '2036-01-10', 'x', 'x')",
            [pid],
        )
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
}

on_both! {
fn resume_and_abort() {
    let (mut reg, clock) = fixture();
    let a = &samples()[2];
    let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    // The card is pulled; the next day the operator runs personalization again.
    clock.advance(Duration::days(1));
    let again = reg
        .resume_issue(
            OP,
            &p.card_number,
            &ChipInfo {
                chip_id: Some("chip-2".into()),
                key_set: None,
            },
        )
        .unwrap();
    assert_eq!(again.card_number, p.card_number);
    // The dates reserved at the start stay: a card finished on the first day still matches.
    assert_eq!(again.issue_date, p.issue_date);
    assert_eq!(again.chip.chip_id.as_deref(), Some("chip-2"));
    // Give up: the number is never used again.
    reg.abort_issue(OP, &p.card_number, "card destroyed")
        .unwrap();
    assert_eq!(reg.status(&p.card_number).unwrap(), CardStatus::Aborted);
    for e in [
        reg.resume_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap_err(),
        reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap_err(),
        reg.abort_issue(OP, &p.card_number, "").unwrap_err(),
        reg.report_loss(OP, &p.card_number).unwrap_err(),
        reg.cancel(OP, &p.card_number, CancelReason::NoLongerNeeded)
            .unwrap_err(),
        reg.begin_replace(
            OP,
            &p.card_number,
            ReplaceReason::Damaged,
            &ChipInfo::default(),
        )
        .unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                RegistryError::Transition {
                    status: CardStatus::Aborted,
                    ..
                }
            ),
            "{e}"
        );
    }
    let p2 = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    assert_eq!(p2.serial, 2);
    assert_ne!(p2.card_number, p.card_number);
    let issued = reg
        .complete_issue(OP, &p2.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(
        issued.fee_kind, "first_issue",
        "an aborted card was never issued"
    );
    assert_eq!(
        actions(&reg, &p.card_number),
        ["issue.begin", "issue.resume", "issue.abort"]
    );
}
}

on_both! {
fn issued_card_cannot_be_aborted_or_completed_again() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[3]);
    let e = reg.abort_issue(OP, &c, "").unwrap_err();
    assert!(
        e.to_string().contains("cancel or replace it instead"),
        "{e}"
    );
    let e = reg
        .complete_issue(OP, &c, &ChipInfo::default())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Transition { .. }), "{e}");
    let e = reg.resume_issue(OP, &c, &ChipInfo::default()).unwrap_err();
    assert!(matches!(e, RegistryError::Transition { .. }), "{e}");
}
}

on_both! {
fn operator_is_required_and_numbers_are_checked() {
    let (mut reg, _) = fixture();
    let a = &samples()[0];
    assert!(matches!(
        reg.begin_issue("  ", a, &ChipInfo::default()),
        Err(RegistryError::NoOperator)
    ));
    let c = issue(&mut reg, a);
    // A mistyped number (wrong check digit) is reported as such, an unknown one as unknown.
    let mut typo = c.as_str().as_bytes().to_vec();
    typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
    let typo = cn(std::str::from_utf8(&typo).unwrap());
    let e = reg.report_loss(OP, &typo).unwrap_err();
    assert!(matches!(e, RegistryError::CardNumber(_)), "{e}");
    assert!(e.to_string().contains("mistyped"), "{e}");
    let unknown = card_number::make('W', 4242).unwrap();
    assert!(matches!(
        reg.report_loss(OP, &unknown),
        Err(RegistryError::NoSuchCard(_))
    ));
    assert!(matches!(
        reg.balance(&unknown),
        Err(RegistryError::NoSuchCard(_))
    ));
}
}

// ---------------------------------------------------------------------------------------------
// Loss

on_both! {
fn report_loss_and_revoke() {
    let (mut reg, clock) = fixture();
    let c = issue(&mut reg, &samples()[4]);
    clock.advance(Duration::hours(3));
    let at = reg.report_loss(OP, &c).unwrap();
    assert_eq!(at, "2026-01-10T04:00:00Z");
    assert_eq!(reg.status(&c).unwrap(), CardStatus::Lost);
    let bl = reg.blacklist(false).unwrap();
    assert_eq!(bl.len(), 1);
    assert_eq!(bl[0].reason, BlacklistReason::Lost);
    assert_eq!(bl[0].since, at);
    let e = reg.report_loss(OP, &c).unwrap_err();
    assert!(e.to_string().contains(&at), "says when: {e}");
    // Loads are refused while lost.
    assert!(matches!(
        reg.record_load(OP, &c, &load(100)),
        Err(RegistryError::Transition { .. })
    ));
    clock.advance(Duration::hours(1));
    reg.revoke_loss(OP, &c).unwrap();
    assert_eq!(reg.status(&c).unwrap(), CardStatus::Active);
    assert!(reg.blacklist(false).unwrap().is_empty());
    let all = reg.blacklist(true).unwrap();
    assert_eq!(all[0].lifted_at.as_deref(), Some("2026-01-10T05:00:00Z"));
    let e = reg.revoke_loss(OP, &c).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Transition {
                status: CardStatus::Active,
                ..
            }
        ),
        "{e}"
    );
    // It can be lost again.
    reg.report_loss(OP, &c).unwrap();
    assert_eq!(reg.blacklist(false).unwrap().len(), 1);
    assert_eq!(
        actions(&reg, &c),
        [
            "issue.begin",
            "issue.complete",
            "card.report_loss",
            "card.revoke_loss",
            "card.report_loss"
        ]
    );
}
}

on_both! {
fn loss_statement_splits_purchases_at_the_report() {
    let (mut reg, clock) = fixture();
    let c = issue(&mut reg, &samples()[5]);
    reg.record_load(OP, &c, &load(10_000)).unwrap();
    let e = reg.loss_statement(&c).unwrap_err();
    assert!(matches!(e, RegistryError::NeverReportedLost(_)), "{e}");
    clock.advance(Duration::hours(2)); // 03:00
    let reported = reg.report_loss(OP, &c).unwrap();
    assert_eq!(reported, "2026-01-10T03:00:00Z");
    // Terminals upload later; the transaction times decide.
    clock.advance(Duration::days(1));
    let before = reg
        .record_purchase(
            OP,
            &c,
            &purchase(1, 300, datetime!(2026-01-10 02:59:59 UTC)),
        )
        .unwrap();
    let at_report = reg
        .record_purchase(OP, &c, &purchase(2, 500, datetime!(2026-01-10 11:00 +8)))
        .unwrap();
    let after = reg
        .record_purchase(
            OP,
            &c,
            &purchase(
                3,
                700,
                VerifiedPurchase::terminal_time(datetime!(2026-01-10 12:30)),
            ),
        )
        .unwrap();
    assert_eq!(before, Liability::Holder);
    assert_eq!(
        at_report,
        Liability::Issuer,
        "the very second of the report counts as after"
    );
    assert_eq!(after, Liability::Issuer);
    let s = reg.loss_statement(&c).unwrap();
    assert_eq!(s.holder_total_cents, 300);
    assert_eq!(s.issuer_total_cents, 1200);
    assert_eq!(s.issuer.len(), 2);
    assert_eq!(s.windows.len(), 1);
    // A purchase uploaded twice is refused.
    let e = reg
        .record_purchase(OP, &c, &purchase(3, 700, datetime!(2026-01-10 04:30 UTC)))
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::AlreadyRecorded { counter: 3, .. }),
        "{e}"
    );

    // Found again: later purchases are the holder's again; the window stays.
    reg.revoke_loss(OP, &c).unwrap(); // 2026-01-11T03:00Z
    let later = reg
        .record_purchase(OP, &c, &purchase(4, 100, datetime!(2026-01-11 03:00 UTC)))
        .unwrap();
    assert_eq!(later, Liability::Holder);
    let s = reg.loss_statement(&c).unwrap();
    assert_eq!(
        s.windows[0].revoked_at.as_deref(),
        Some("2026-01-11T03:00:00Z")
    );
    assert_eq!(s.holder_total_cents, 400);
    assert_eq!(s.issuer_total_cents, 1200);
}
}

on_both! {
fn purse_entry_checks() {
    let (mut reg, _) = fixture();
    let p = reg
        .begin_issue(OP, &samples()[6], &ChipInfo::default())
        .unwrap();
    let c = p.card_number.clone();
    let e = reg
        .record_purchase(OP, &c, &purchase(1, 100, T0))
        .unwrap_err();
    assert!(e.to_string().contains("never issued"), "{e}");
    assert!(matches!(
        reg.record_load(OP, &c, &load(100)),
        Err(RegistryError::Transition { .. })
    ));
    reg.complete_issue(OP, &c, &ChipInfo::default()).unwrap();
    assert!(matches!(
        reg.record_load(OP, &c, &load(0)),
        Err(RegistryError::ZeroAmount)
    ));
    let mut bad = purchase(1, 100, T0);
    bad.terminal_id = "xyz".into();
    assert!(matches!(
        reg.record_purchase(OP, &c, &bad),
        Err(RegistryError::TerminalId(_))
    ));
    let with_counter = LoadRecord {
        amount_cents: 500,
        txn_counter: Some(1),
        terminal_id: Some("0000010000AA".into()),
    };
    assert_eq!(reg.record_load(OP, &c, &with_counter).unwrap(), 500);
    assert!(matches!(
        reg.record_load(OP, &c, &with_counter),
        Err(RegistryError::AlreadyRecorded { kind: "load", .. })
    ));
    reg.record_purchase(OP, &c, &purchase(1, 120, T0)).unwrap();
    assert_eq!(reg.balance(&c).unwrap(), 380);
    let ledger = reg.ledger(&c).unwrap();
    assert_eq!(ledger[1].tac.as_deref(), Some("ED0F8755"));
    assert_eq!(ledger[0].terminal_id.as_deref(), Some("0000010000AA"));
}
}

// ---------------------------------------------------------------------------------------------
// Replace

on_both! {
fn replace_damaged_card_moves_balance_and_charges_fee() {
    let mut cfg = RegistryConfig::default();
    cfg.fees.replacement.damaged = 1234;
    let (mut reg, clock) = fixture_with(cfg);
    let a = &samples()[7];
    let old = issue(&mut reg, a);
    reg.record_load(OP, &old, &load(5_000)).unwrap();
    reg.record_purchase(OP, &old, &purchase(1, 1_200, T0))
        .unwrap();
    clock.advance(Duration::hours(1));
    let p = reg
        .begin_replace(OP, &old, ReplaceReason::Damaged, &ChipInfo::default())
        .unwrap();
    assert_eq!(p.replaces.as_ref(), Some(&old));
    assert_eq!(p.holder, *a);
    // Until the new card is verified, the old one stays in use.
    assert_eq!(reg.status(&old).unwrap(), CardStatus::Active);
    assert!(reg.blacklist(false).unwrap().is_empty());
    let e = reg
        .begin_replace(OP, &old, ReplaceReason::Damaged, &ChipInfo::default())
        .unwrap_err();
    assert!(matches!(e, RegistryError::UnfinishedIssue { .. }), "{e}");
    let e = reg.cancel(OP, &old, CancelReason::MovedAway).unwrap_err();
    assert!(matches!(e, RegistryError::ReplacementPending { .. }), "{e}");

    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.fee_kind, "replacement");
    assert_eq!(issued.fee_cents, 1234);
    assert_eq!(issued.transferred_cents, 3_800);
    assert_eq!(issued.replaced.as_ref(), Some(&old));
    assert_eq!(reg.status(&old).unwrap(), CardStatus::Cancelled);
    assert_eq!(reg.status(&p.card_number).unwrap(), CardStatus::Active);
    assert_eq!(reg.balance(&old).unwrap(), 0);
    assert_eq!(reg.balance(&p.card_number).unwrap(), 3_800);
    let od = reg.card_details(&old).unwrap();
    assert_eq!(od.card.replaced_by.as_deref(), Some(p.card_number.as_str()));
    assert!(od.card.closed_reason.unwrap().contains("damaged"));
    assert_eq!(od.ledger.last().unwrap().kind, LedgerKind::TransferOut);
    assert_eq!(od.blacklist[0].reason, BlacklistReason::Replaced);
    let nd = reg.card_details(&p.card_number).unwrap();
    assert_eq!(nd.ledger[0].kind, LedgerKind::TransferIn);
    assert_eq!(nd.ledger[0].counterpart.as_deref(), Some(old.as_str()));
    assert_eq!(nd.fees[0].reason.as_deref(), Some("damaged"));

    // The closed card is closed for good.
    for e in [
        reg.begin_replace(OP, &old, ReplaceReason::Other, &ChipInfo::default())
            .unwrap_err(),
        reg.report_loss(OP, &old).unwrap_err(),
        reg.cancel(OP, &old, CancelReason::Death).unwrap_err(),
        reg.revoke_loss(OP, &old).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                RegistryError::Transition {
                    status: CardStatus::Cancelled,
                    ..
                }
            ),
            "{e}"
        );
    }
    assert_eq!(
        actions(&reg, &old),
        [
            "issue.begin",
            "issue.complete",
            "purse.load",
            "purse.purchase",
            "card.cancel"
        ]
    );
}
}

on_both! {
fn replace_after_loss_keeps_the_loss_instant() {
    let (mut reg, clock) = fixture();
    let old = issue(&mut reg, &samples()[8]);
    let e = reg
        .begin_replace(OP, &old, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap_err();
    assert!(e.to_string().contains("report the loss first"), "{e}");
    let reported = reg.report_loss(OP, &old).unwrap();
    let e = reg
        .begin_replace(OP, &old, ReplaceReason::Damaged, &ChipInfo::default())
        .unwrap_err();
    assert!(e.to_string().contains("reason lost"), "{e}");
    clock.advance(Duration::days(2));
    let p = reg
        .begin_replace(OP, &old, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap();
    // A replacement in progress blocks taking the loss report back.
    let e = reg.revoke_loss(OP, &old).unwrap_err();
    assert!(matches!(e, RegistryError::ReplacementPending { .. }), "{e}");
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.fee_cents, 2000, "default fee for a lost card");
    let bl = reg.blacklist(false).unwrap();
    assert_eq!(bl.len(), 1);
    assert_eq!(bl[0].reason, BlacklistReason::Lost);
    assert_eq!(bl[0].since, reported, "the earlier instant stands");
}
}

on_both! {
fn aborted_replacement_leaves_the_old_card_alone() {
    let (mut reg, _) = fixture();
    let old = issue(&mut reg, &samples()[9]);
    reg.record_load(OP, &old, &load(800)).unwrap();
    let p = reg
        .begin_replace(OP, &old, ReplaceReason::Unreadable, &ChipInfo::default())
        .unwrap();
    reg.abort_issue(OP, &p.card_number, "printer jam").unwrap();
    assert_eq!(reg.status(&old).unwrap(), CardStatus::Active);
    assert_eq!(reg.balance(&old).unwrap(), 800);
    assert!(reg.blacklist(false).unwrap().is_empty());
    // And it can be replaced afterwards; unreadable is free by default.
    let p = reg
        .begin_replace(OP, &old, ReplaceReason::Unreadable, &ChipInfo::default())
        .unwrap();
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.fee_cents, 0);
    assert_eq!(issued.transferred_cents, 800);
}
}

on_both! {
fn data_change_then_replacement_uses_new_data() {
    let (mut reg, _) = fixture();
    let a = samples()[10].clone();
    let old = issue(&mut reg, &a);
    let mut r: ApplicantRecord = a.to_record();
    r.name = Some("测试吴八改".into());
    r.phone = Some("13800000099".into());
    let changed = Validator::new(reg.today())
        .validate_with_photo(&r, None)
        .unwrap();
    assert_eq!(reg.update_person(OP, &changed).unwrap(), ["name", "phone"]);
    assert!(
        reg.update_person(OP, &changed).unwrap().is_empty(),
        "no change, no audit"
    );
    let p = reg
        .begin_replace(OP, &old, ReplaceReason::DataChanged, &ChipInfo::default())
        .unwrap();
    assert_eq!(p.holder.name().as_str(), "测试吴八改");
    assert_eq!(p.cardholder_items().name.as_str(), "测试吴八改");
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.fee_cents, 0, "data change is free by default");
    let updates: Vec<AuditEntry> = reg
        .audit_log(&AuditFilter {
            id_number: Some(*a.id_number()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "person.update")
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].details["changed"],
        serde_json::json!(["name", "phone"])
    );
    // Unknown people cannot be updated.
    let stranger = samples()[11].clone();
    assert!(matches!(
        reg.update_person(OP, &stranger),
        Err(RegistryError::NoSuchPerson(_))
    ));
}
}

on_both! {
fn person_no_longer_eligible_cannot_get_a_replacement() {
    let (mut reg, _) = fixture();
    let a = samples()[12].clone();
    let old = issue(&mut reg, &a);
    let mut r = a.to_record();
    r.eligibility = Some("none".into());
    let moved = Validator::new(reg.today())
        .validate_with_photo(&r, None)
        .unwrap();
    reg.update_person(OP, &moved).unwrap();
    let e = reg
        .begin_replace(OP, &old, ReplaceReason::Damaged, &ChipInfo::default())
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotEligible { .. }), "{e}");
    // Cancelling (moved away) is still possible.
    reg.cancel(OP, &old, CancelReason::MovedAway).unwrap();
}
}

// ---------------------------------------------------------------------------------------------
// Cancel

on_both! {
fn cancel_refunds_and_blacklists() {
    let (mut reg, _) = fixture();
    let a = samples()[13].clone();
    let c = issue(&mut reg, &a);
    reg.record_load(OP, &c, &load(2_500)).unwrap();
    reg.record_purchase(OP, &c, &purchase(7, 500, T0)).unwrap();
    let done = reg.cancel(OP, &c, CancelReason::Death).unwrap();
    assert_eq!(done.refund_cents, 2_000);
    assert_eq!(reg.balance(&c).unwrap(), 0);
    assert_eq!(reg.status(&c).unwrap(), CardStatus::Cancelled);
    let bl = reg.blacklist(false).unwrap();
    assert_eq!(
        (bl[0].card_number.as_str(), bl[0].reason),
        (c.as_str(), BlacklistReason::Cancelled)
    );
    let d = reg.card_details(&c).unwrap();
    assert_eq!(d.card.closed_reason.as_deref(), Some("death"));
    assert_eq!(d.ledger.last().unwrap().kind, LedgerKind::Refund);
    let e = reg.cancel(OP, &c, CancelReason::Death).unwrap_err();
    assert!(matches!(e, RegistryError::Transition { .. }), "{e}");
    // A late upload of a purchase made before the cancellation is still recorded.
    reg.record_purchase(OP, &c, &purchase(8, 100, T0)).unwrap();
    assert_eq!(reg.balance(&c).unwrap(), -100);

    // Someone whose cards are all cancelled may apply again; that card is not the free first one.
    let p = reg.begin_issue(OP, &a, &ChipInfo::default()).unwrap();
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!((issued.fee_kind, issued.fee_cents), ("reissue", 2000));
}
}

on_both! {
fn cancel_lost_card_keeps_loss_entry() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[14]);
    let at = reg.report_loss(OP, &c).unwrap();
    reg.cancel(OP, &c, CancelReason::NoLongerNeeded).unwrap();
    let bl = reg.blacklist(false).unwrap();
    assert_eq!(bl.len(), 1);
    assert_eq!(
        (bl[0].reason, bl[0].since.as_str()),
        (BlacklistReason::Lost, at.as_str())
    );
}
}

on_both! {
fn personalizing_card_cannot_be_cancelled_or_reported() {
    let (mut reg, _) = fixture();
    let p = reg
        .begin_issue(OP, &samples()[15], &ChipInfo::default())
        .unwrap();
    let e = reg
        .cancel(OP, &p.card_number, CancelReason::Death)
        .unwrap_err();
    assert!(e.to_string().contains("abort its personalization"), "{e}");
    let e = reg.report_loss(OP, &p.card_number).unwrap_err();
    assert!(e.to_string().contains("never issued"), "{e}");
    let e = reg
        .begin_replace(
            OP,
            &p.card_number,
            ReplaceReason::Other,
            &ChipInfo::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("resume or abort"), "{e}");
}
}

// ---------------------------------------------------------------------------------------------
// Money

/// Over a whole scenario: money in (loads) = money out (purchases, refunds) + what the ledger
/// still holds on cards; transfers net to zero; every closed card ends at zero.
#[test]
fn money_is_conserved_across_replace_and_cancel() {
    let (mut reg, clock) = fixture();
    let people = samples();
    let mut cards = Vec::new();
    for (i, a) in people.iter().take(6).enumerate() {
        let c = issue(&mut reg, a);
        reg.record_load(OP, &c, &load(1_000 * (i as u32 + 1)))
            .unwrap();
        reg.record_purchase(OP, &c, &purchase(1, 150 + i as u32, T0))
            .unwrap();
        cards.push(c);
    }
    clock.advance(Duration::hours(1));
    // Replace two (one after a loss), cancel two, chain-replace one twice.
    let replace = |reg: &mut Registry, c: &CardNumber, r: ReplaceReason| {
        if r == ReplaceReason::Lost {
            reg.report_loss(OP, c).unwrap();
        }
        let p = reg.begin_replace(OP, c, r, &ChipInfo::default()).unwrap();
        reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap();
        p.card_number
    };
    let r0 = replace(&mut reg, &cards[0], ReplaceReason::Damaged);
    let r1 = replace(&mut reg, &cards[1], ReplaceReason::Lost);
    reg.record_purchase(OP, &r1, &purchase(1, 99, T0)).unwrap();
    let r1b = replace(&mut reg, &r1, ReplaceReason::Other);
    reg.record_load(OP, &r1b, &load(321)).unwrap();
    reg.cancel(OP, &cards[2], CancelReason::Death).unwrap();
    reg.cancel(OP, &r0, CancelReason::MovedAway).unwrap();

    let sum = |sql: &str| -> i64 { reg.sqlite().query_row(sql, [], |r| r.get(0)).unwrap() };
    let loads = sum("SELECT COALESCE(SUM(amount_cents),0) FROM purse_ledger WHERE kind='load'");
    let purchases =
        -sum("SELECT COALESCE(SUM(amount_cents),0) FROM purse_ledger WHERE kind='purchase'");
    let refunds =
        -sum("SELECT COALESCE(SUM(amount_cents),0) FROM purse_ledger WHERE kind='refund'");
    let transfers = sum(
        "SELECT COALESCE(SUM(amount_cents),0) FROM purse_ledger WHERE kind IN ('transfer_in','transfer_out')",
    );
    assert_eq!(transfers, 0);
    let all = reg.list_cards(&CardFilter::default()).unwrap();
    let mut held = 0;
    for c in &all {
        let b = reg.balance(&cn(&c.card_number)).unwrap();
        match c.status {
            CardStatus::Cancelled => assert_eq!(b, 0, "{} closed with money left", c.card_number),
            _ => assert!(b >= 0),
        }
        held += b;
    }
    assert!(loads > 0 && purchases > 0 && refunds > 0);
    assert_eq!(loads, purchases + refunds + held);
    // And the replacement chain carried the right balance.
    assert_eq!(reg.balance(&r1b).unwrap(), 2_000 - 151 - 99 + 321);
}

// ---------------------------------------------------------------------------------------------
// Audit and append-only tables

on_both! {
fn audit_and_money_tables_are_append_only() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[16]);
    reg.record_load(OP, &c, &load(100)).unwrap();
    reg.report_loss(OP, &c).unwrap();
    let mut raw = Raw::of(&reg);
    for (sql, table) in [
        ("UPDATE audit_log SET operator = 'mallory'", "audit_log"),
        ("DELETE FROM audit_log", "audit_log"),
        (
            "UPDATE card_status_history SET operator = 'mallory'",
            "card_status_history",
        ),
        ("DELETE FROM card_status_history", "card_status_history"),
        (
            "UPDATE purse_ledger SET amount_cents = 1000000",
            "purse_ledger",
        ),
        ("DELETE FROM purse_ledger", "purse_ledger"),
        ("UPDATE fees SET amount_cents = 5", "fees"),
        ("DELETE FROM fees", "fees"),
        ("DELETE FROM blacklist", "blacklist"),
        (
            "UPDATE blacklist SET from_at = '2000-01-01T00:00:00Z'",
            "blacklist",
        ),
    ] {
        let e = raw.exec(sql).unwrap_err();
        assert!(e.contains(table), "{sql}: {e}");
    }
    if backend() == Backend::Postgres {
        // TRUNCATE fires no row trigger: refused by a statement trigger of its own.
        for table in ["audit_log", "purse_ledger", "fees", "cards", "audit_head"] {
            let e = raw.exec(&format!("TRUNCATE {table} CASCADE")).unwrap_err();
            assert!(e.contains("cannot be") || e.contains("audited"), "{table}: {e}");
        }
    }
    // Lifting a blacklist entry is the one change the triggers allow, and only once (inside a
    // transaction rolled back: the database refuses to commit an unaudited change).
    raw.exec("BEGIN").unwrap();
    raw.exec("UPDATE blacklist SET lifted_at = 'x' WHERE lifted_at IS NULL")
        .unwrap();
    assert!(raw.exec("UPDATE blacklist SET lifted_at = 'y'").is_err());
    raw.exec("ROLLBACK").unwrap();
    drop(raw);
    assert_eq!(reg.blacklist(false).unwrap().len(), 1);
    assert!(reg.verify().unwrap().is_clean());
}
}

on_both! {
fn an_unaudited_change_is_not_committed() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[16]);
    reg.record_load(OP, &c, &load(100)).unwrap();
    let n = audit_count(&reg);
    let refused = match backend() {
        Backend::Sqlite => "constraint failed",
        Backend::Postgres => "without an audit record",
    };
    let mut raw = Raw::of(&reg);
    // Without an audit record: refused at commit.
    let e = raw
        .exec(&format!(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, operator) \
             VALUES ('{c}', 'load', 500000, 't', 't', 'mallory')"
        ))
        .unwrap_err();
    assert!(e.contains(refused), "{e}");
    raw.exec("BEGIN").unwrap();
    raw.exec(&format!(
        "UPDATE cards SET status = 'cancelled' WHERE card_number = '{c}'"
    ))
    .unwrap();
    let e = raw.exec("COMMIT").unwrap_err();
    assert!(e.contains(refused), "{e}");
    // A change after the transaction's audit record is refused too.
    if backend() == Backend::Postgres {
        raw.exec("BEGIN").unwrap();
        raw.exec(
            "INSERT INTO audit_log (id, at, operator, action, details) \
             VALUES (100000, 't', 'mallory', 'x', '{}')",
        )
        .unwrap();
        raw.exec(&format!(
            "UPDATE cards SET status = 'cancelled' WHERE card_number = '{c}'"
        ))
        .unwrap();
        assert!(raw.exec("COMMIT").is_err());
    }
    drop(raw);
    assert_eq!(reg.status(&c).unwrap(), CardStatus::Active);
    assert_eq!(reg.balance(&c).unwrap(), 100);
    assert_eq!(audit_count(&reg), n);
    // The registry goes on normally afterwards.
    reg.record_load(OP, &c, &load(50)).unwrap();
    assert!(reg.verify().unwrap().is_clean());
}
}

#[test]
fn a_change_whose_audit_fails_is_rolled_back() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[17]);
    reg.record_load(OP, &c, &load(700)).unwrap();
    // Make audit inserts for this action fail, as a full disk or a bug would.
    reg.sqlite()
        .execute_batch(
            "CREATE TEMP TRIGGER break_audit BEFORE INSERT ON audit_log \
             WHEN NEW.action IN ('card.report_loss', 'card.cancel') \
             BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;",
        )
        .unwrap();
    let n = audit_count(&reg);
    assert!(reg.report_loss(OP, &c).is_err());
    assert!(reg.cancel(OP, &c, CancelReason::Death).is_err());
    assert_eq!(reg.status(&c).unwrap(), CardStatus::Active);
    assert!(reg.blacklist(true).unwrap().is_empty());
    assert_eq!(reg.balance(&c).unwrap(), 700, "no refund was kept");
    assert_eq!(reg.card_details(&c).unwrap().history.len(), 2);
    assert_eq!(audit_count(&reg), n);
}

on_both! {
fn refused_operations_leave_no_trace() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[18]);
    let n = audit_count(&reg);
    let _ = reg.revoke_loss(OP, &c).unwrap_err();
    let _ = reg
        .begin_replace(OP, &c, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap_err();
    let _ = reg
        .begin_issue(OP, &samples()[18], &ChipInfo::default())
        .unwrap_err();
    assert_eq!(audit_count(&reg), n);
    assert_eq!(reg.list_cards(&CardFilter::default()).unwrap().len(), 1);
}
}

// ---------------------------------------------------------------------------------------------
// Queries and export

on_both! {
fn queries() {
    let (mut reg, _) = fixture();
    let people = samples();
    let a = issue(&mut reg, &people[0]);
    let b = issue(&mut reg, &people[1]);
    let pending = reg
        .begin_issue(OP, &people[2], &ChipInfo::default())
        .unwrap();
    reg.report_loss(OP, &b).unwrap();
    let by = |s| {
        reg.list_cards(&CardFilter {
            status: Some(s),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.card_number)
        .collect::<Vec<_>>()
    };
    assert_eq!(by(CardStatus::Active), [a.to_string()]);
    assert_eq!(by(CardStatus::Lost), [b.to_string()]);
    assert_eq!(
        by(CardStatus::Personalizing),
        [pending.card_number.to_string()]
    );
    assert!(by(CardStatus::Cancelled).is_empty());
    let mine = reg
        .list_cards(&CardFilter {
            id_number: Some(*people[1].id_number()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, people[1].name().as_str());

    let pd = reg.person_details(people[0].id_number()).unwrap();
    assert_eq!(pd.person.data, people[0]);
    assert_eq!(pd.cards.len(), 1);
    assert!(matches!(
        reg.person_details(people[5].id_number()),
        Err(RegistryError::NoSuchPerson(_))
    ));
    assert_eq!(reg.holder_of(&b).unwrap(), people[1]);

    let last = reg
        .audit_log(&AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        last.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["issue.begin", "card.report_loss"]
    );
    assert!(last[0].id < last[1].id);
    // JSON for the CLI.
    let json = serde_json::to_value(reg.card_details(&b).unwrap()).unwrap();
    assert_eq!(json["card"]["status"], "lost");
    assert_eq!(json["blacklist"][0]["reason"], "lost");
    let json = serde_json::to_value(&pd).unwrap();
    assert_eq!(json["person"]["name"], people[0].name().as_str());
    assert_eq!(
        json["person"]["photo"]["bytes"],
        people[0].photo().unwrap().bytes().len()
    );
}
}

on_both! {
fn blacklist_export_formats() {
    let (mut reg, clock) = fixture();
    let people = samples();
    let lost = issue(&mut reg, &people[0]);
    let gone = issue(&mut reg, &people[1]);
    let found = issue(&mut reg, &people[2]);
    reg.report_loss(OP, &lost).unwrap();
    clock.advance(Duration::minutes(5));
    reg.cancel(OP, &gone, CancelReason::NoLongerNeeded).unwrap();
    reg.report_loss(OP, &found).unwrap();
    reg.revoke_loss(OP, &found).unwrap();

    let mut text = Vec::new();
    assert_eq!(
        reg.export_blacklist(&mut text, BlacklistFormat::Text)
            .unwrap(),
        2
    );
    let text = String::from_utf8(text).unwrap();
    let expected = format!(
        "# citizencard-blacklist 1\n# issuer 330300\n# generated 2026-01-10T01:05:00Z\n\
         {lost} lost 2026-01-10T01:00:00Z\n{gone} cancelled 2026-01-10T01:05:00Z\n# end 2\n"
    );
    assert_eq!(text, expected);
    // The example in the format's documentation is exactly this export.
    let doc = include_str!("../../docs/blacklist-format.md");
    let block = |lang: &str| -> String {
        let start = doc.find(&format!("```{lang}\n")).unwrap() + 4 + lang.len();
        doc[start..start + doc[start..].find("```").unwrap()].to_owned()
    };
    assert_eq!(text, block(""));
    let parsed = blacklist::parse_text(&text).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].card_number, lost.as_str());

    let mut json = Vec::new();
    reg.export_blacklist(&mut json, BlacklistFormat::Json)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let documented: serde_json::Value = serde_json::from_str(&block("json")).unwrap();
    assert_eq!(v, documented);
    assert_eq!(v["format"], "citizencard-blacklist");
    assert_eq!(v["version"], 1);
    assert_eq!(v["count"], 2);
    assert_eq!(v["entries"][1]["card_number"], gone.as_str());
    assert_eq!(v["entries"][1]["reason"], "cancelled");
    assert!(v["entries"][0].get("lifted_at").is_none());
}
}

// ---------------------------------------------------------------------------------------------
// Files, paths and migrations

#[test]
fn default_path_follows_xdg() {
    use std::ffi::OsStr;
    let p = default_path_from(Some(OsStr::new("/data")), Some(OsStr::new("/home/u"))).unwrap();
    assert_eq!(p, PathBuf::from("/data/citizencard/registry.db"));
    let p = default_path_from(None, Some(OsStr::new("/home/u"))).unwrap();
    assert_eq!(
        p,
        PathBuf::from("/home/u/.local/share/citizencard/registry.db")
    );
    // A relative or empty XDG_DATA_HOME is ignored, as the XDG rules say.
    let p = default_path_from(Some(OsStr::new("rel")), Some(OsStr::new("/home/u"))).unwrap();
    assert_eq!(
        p,
        PathBuf::from("/home/u/.local/share/citizencard/registry.db")
    );
    let p = default_path_from(Some(OsStr::new("")), Some(OsStr::new("/home/u"))).unwrap();
    assert_eq!(
        p,
        PathBuf::from("/home/u/.local/share/citizencard/registry.db")
    );
    assert!(matches!(
        default_path_from(None, None),
        Err(RegistryError::NoDataDir)
    ));
}

#[test]
fn file_registry_persists_and_creates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/registry.db");
    let clock = Arc::new(ManualClock::new(T0));
    let card = {
        let mut reg =
            Registry::open_with_clock(&path, RegistryConfig::default(), clock.clone()).unwrap();
        assert_eq!(reg.path(), Some(path.as_path()));
        issue(&mut reg, &samples()[0])
    };
    let reg = Registry::open_with_clock(&path, RegistryConfig::default(), clock).unwrap();
    assert_eq!(reg.status(&card).unwrap(), CardStatus::Active);
    assert_eq!(reg.schema_version().unwrap(), schema::latest_version());
}

#[test]
fn version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A registry written by the first schema: a person with an active card.
        let db = db::Db::Sqlite(rusqlite::Connection::open(&path).unwrap());
        schema::migrate_to(&db, 1).unwrap();
        assert_eq!(schema::version(&db.conn().unwrap()).unwrap(), 1);
        let c = db.sqlite().unwrap();
        let r = samples()[0].to_record();
        c.execute(
            "INSERT INTO people (id_number, name, sex, ethnicity, birthplace, birth_date, \
             card_class, eligibility, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, '1985-03-12', '3', 'household', 't', 't')",
            rusqlite::params![r.id_number, r.name, r.sex, r.ethnicity, r.birthplace],
        )
        .unwrap();
        let number = card_number::make('W', 1).unwrap();
        c.execute(
            "INSERT INTO cards (card_number, serial, person_id, status, card_class, issue_date, \
             expiry_date, created_at, updated_at) \
             VALUES (?1, 1, 1, 'active', '3', '2020-05-01', '2030-05-01', 't', 't')",
            [number.as_str()],
        )
        .unwrap();
        assert!(c
            .query_row("SELECT count(*) FROM purse_ledger", [], |r| r
                .get::<_, i64>(0))
            .is_err());
    }
    let clock = Arc::new(ManualClock::new(T0));
    let mut reg = Registry::open_with_clock(&path, RegistryConfig::default(), clock).unwrap();
    assert_eq!(reg.schema_version().unwrap(), schema::latest_version());
    let card = card_number::make('W', 1).unwrap();
    assert_eq!(reg.status(&card).unwrap(), CardStatus::Active);
    // The migrated card goes on through the life cycle with the new tables.
    reg.record_load(OP, &card, &load(900)).unwrap();
    reg.report_loss(OP, &card).unwrap();
    let p = reg
        .begin_replace(OP, &card, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap();
    assert_eq!(p.serial, 2);
    let issued = reg
        .complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    assert_eq!(issued.transferred_cents, 900);
}

#[test]
fn newer_database_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = Registry::open(&path, RegistryConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::SchemaTooNew {
                found: 99,
                supported
            } if supported == schema::latest_version()
        ),
        "{e}"
    );
    assert!(e.to_string().contains("use a newer citizencard"), "{e}");
}

#[test]
fn invalid_configuration_is_refused_on_open() {
    let mut cfg = RegistryConfig::default();
    cfg.card.city = "12".into();
    let e = Registry::open_in_memory(cfg, Arc::new(SystemClock)).unwrap_err();
    assert!(matches!(e, RegistryError::Config { .. }), "{e}");
}

#[test]
fn statuses_and_reasons_parse() {
    for s in CardStatus::ALL {
        assert_eq!(CardStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(
        ReplaceReason::parse("data-changed"),
        Some(ReplaceReason::DataChanged)
    );
    assert_eq!(
        CancelReason::parse("moved_away"),
        Some(CancelReason::MovedAway)
    );
    assert_eq!(CancelReason::parse("bored"), None);
}

#[test]
fn two_processes_never_get_the_same_card_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // Create the schema once, then two independent connections issue at the same time.
    Registry::open(&path, RegistryConfig::default()).unwrap();
    let people = samples();
    let halves: Vec<Vec<Applicant>> = vec![people[..8].to_vec(), people[8..16].to_vec()];
    let handles: Vec<_> = halves
        .into_iter()
        .map(|group| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut reg = Registry::open(&path, RegistryConfig::default()).unwrap();
                group
                    .iter()
                    .map(|a| issue(&mut reg, a).to_string())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut numbers: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 16);
    let reg = Registry::open(&path, RegistryConfig::default()).unwrap();
    let serials: Vec<u32> = reg
        .list_cards(&CardFilter::default())
        .unwrap()
        .iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(serials, (1..=16).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// The audit chain across later migrations

#[test]
fn a_later_migration_anchors_what_it_changed_and_lists_what_it_found_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let clock = Arc::new(ManualClock::new(T0));
    let mut reg = Registry::open_with_clock(&path, RegistryConfig::default(), clock).unwrap();
    let c = issue(&mut reg, &samples()[5]);
    reg.record_load(OP, &c, &load(300)).unwrap();
    assert!(reg.verify().unwrap().is_clean());
    // Someone edits a fee around the registry before the upgrade.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TRIGGER fees_no_update; UPDATE fees SET reason = 'hand-edited';")
        .unwrap();
    assert!(!reg.verify().unwrap().is_clean());
    // A later step of the schema, as svc's or anyone's would be: a new column on the ledger,
    // filled in for existing rows; then what every migration from version 4 on runs.
    let tx = db::Tx::begin(reg.conn().unwrap(), db::Begin::Write, None).unwrap();
    tx.execute_batch(
        "DROP TRIGGER ledger_no_update; \
         ALTER TABLE purse_ledger ADD COLUMN application_serial TEXT; \
         UPDATE purse_ledger SET application_serial = '0000000000000001';",
    )
    .unwrap();
    chain::after_migration(&tx, 99, "2026-01-10T02:00:00Z").unwrap();
    tx.commit().unwrap();
    let r = reg.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
    let anchor = reg
        .audit_log(&AuditFilter {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()
        .remove(0);
    assert_eq!(anchor.action, "registry.anchor");
    assert_eq!(anchor.operator, chain::MIGRATION_OPERATOR);
    let rows: Vec<&str> = anchor.details["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The ledger row the migration changed, and the fee found edited: the latter stays visible.
    assert!(
        rows.iter().any(|r| r.starts_with("purse_ledger ")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.starts_with("fees ")), "{rows:?}");
    assert_eq!(reg.balance(&c).unwrap(), 300);
}

// ---------------------------------------------------------------------------------------------
// Many stations on one PostgreSQL registry; station identity; fault injection on both backends

/// Applicant number `i` (up to 27 000): valid ID numbers born 1985-03-01 to 1985-03-27.
fn synthetic(i: u32) -> Applicant {
    let day = 1 + i / 1000;
    let seq = i % 1000;
    let first17 = format!("330302198503{day:02}{seq:03}");
    let bytes: [u8; 17] = first17.as_bytes().try_into().unwrap();
    let id = format!(
        "{first17}{}",
        crate::holder::citizen_id::check_character(&bytes)
    );
    let record = ApplicantRecord {
        id_number: Some(id),
        name: Some(format!(
            "测试{}",
            i.to_string()
                .chars()
                .map(|d| "零一二三四五六七八九"
                    .chars()
                    .nth(d as usize - '0' as usize)
                    .unwrap())
                .collect::<String>()
        )),
        sex: Some(if seq % 2 == 1 { "1" } else { "2" }.into()),
        ethnicity: Some("01".into()),
        birthplace: Some("330302".into()),
        birth_date: Some(format!("1985-03-{day:02}")),
        eligibility: Some("household".into()),
        ..Default::default()
    };
    Validator::new(time::macros::date!(2026 - 01 - 10))
        .validate_with_photo(&record, None)
        .unwrap()
}

#[test]
fn stations_issuing_at_once_on_postgres_never_share_a_card_number() {
    if !testing::pg_enabled("stations_issuing_at_once_on_postgres") {
        return;
    }
    const STATIONS: u32 = 8;
    const CARDS: u32 = 12;
    let db = testing::PgTestDb::create();
    // The schema once, then every station with its own registry handle (its own connections).
    Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    let threads: Vec<_> = (0..STATIONS)
        .map(|s| {
            let url = db.url().to_owned();
            std::thread::spawn(move || {
                let mut reg = Registry::open_postgres(&url, RegistryConfig::default()).unwrap();
                let mut station = Station::this_process();
                station.id = format!("{}#{s}", station.id);
                reg.set_station(station);
                let mut mine = Vec::new();
                for i in 0..CARDS {
                    let a = synthetic(s * 100 + i);
                    let c = issue(&mut reg, &a);
                    // Money moves and cards are reported lost while other stations issue.
                    reg.record_load(OP, &c, &load(1000 + i)).unwrap();
                    reg.record_purchase(OP, &c, &purchase(1, 250, T0)).unwrap();
                    if i % 3 == 0 {
                        reg.report_loss(OP, &c).unwrap();
                    }
                    mine.push(c.to_string());
                }
                mine
            })
        })
        .collect();
    let mut numbers: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let total = (STATIONS * CARDS) as usize;
    assert_eq!(numbers.len(), total);
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), total, "duplicate card numbers");
    let reg = Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    let mut serials: Vec<u32> = reg
        .list_cards(&CardFilter::default())
        .unwrap()
        .iter()
        .map(|c| c.serial)
        .collect();
    serials.sort_unstable();
    assert_eq!(serials, (1..=total as u32).collect::<Vec<_>>());
    let report = reg.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    // No ledger row lost: every load and purchase of every station is there.
    let loads: i64 = (0..STATIONS)
        .map(|_| (0..CARDS).map(|i| 1000 + i64::from(i)).sum::<i64>())
        .sum();
    let purchases = 250 * total as i64;
    assert_eq!(report.ledger_total_cents, loads - purchases);
    assert_eq!(
        report.cards_by_status.get("lost").copied().unwrap_or(0),
        (STATIONS * CARDS.div_ceil(3)) as usize
    );
    // Every change is recorded with the station that made it.
    let stations: std::collections::BTreeSet<String> = reg
        .audit_log(&AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action != "registry.anchor")
        .map(|e| e.station.unwrap())
        .collect();
    assert_eq!(stations.len(), STATIONS as usize);
}

#[test]
fn newer_postgres_database_is_refused_on_open() {
    if !testing::pg_enabled("newer_postgres_database_is_refused_on_open") {
        return;
    }
    let db = testing::PgTestDb::create();
    Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    db.client()
        .batch_execute("UPDATE citizencard_schema SET version = 99")
        .unwrap();
    let e = Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap_err();
    assert!(
        matches!(e, RegistryError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
}

#[test]
fn stations_opening_an_empty_postgres_database_at_once_migrate_it_once() {
    // Stations that waited on the migration lock while another created the schema must see the
    // schema (a catalog lookup through the backend's cache did not, and ran step 1 again).
    if !testing::pg_enabled("stations_opening_an_empty_postgres_database_at_once_migrate_it_once") {
        return;
    }
    for _round in 0..3 {
        let db = testing::PgTestDb::create();
        let url = db.url().to_owned();
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    Registry::open_postgres(&url, RegistryConfig::default())
                        .map(|reg| reg.schema_version().unwrap())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for station in opened {
            assert_eq!(station.join().unwrap(), Ok(super::schema::latest_version()));
        }
    }
}

#[test]
fn an_unreachable_server_is_named_as_such() {
    // Nothing listens on port 1: refused at once.
    let e = Registry::open_postgres(
        "postgres://cc:secret@127.0.0.1:1/registry",
        RegistryConfig::default(),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("cannot reach the registry's PostgreSQL server 127.0.0.1:1/registry"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

on_both! {
fn every_change_names_its_station_and_old_records_still_verify() {
    let (mut reg, _) = fixture();
    let mut station = Station::this_process();
    station.id = "counter-3/desk-1".into();
    reg.set_station(station);
    let c = issue(&mut reg, &samples()[3]);
    reg.record_load(OP, &c, &load(200)).unwrap();
    let log = reg.audit_log(&AuditFilter { card: Some(c.clone()), ..Default::default() }).unwrap();
    assert!(!log.is_empty());
    for e in &log {
        assert_eq!(e.station.as_deref(), Some("counter-3/desk-1"), "{}", e.action);
        assert_eq!(e.operator, OP);
    }
    assert!(reg.verify().unwrap().is_clean());
}
}

on_both! {
fn an_injected_write_failure_records_nothing() {
    let (mut reg, _) = fixture();
    let c = issue(&mut reg, &samples()[4]);
    let n = audit_count(&reg);
    reg.fail_write_number(Some(reg.writes() + 1));
    assert!(matches!(
        reg.record_load(OP, &c, &load(300)),
        Err(RegistryError::InjectedFault(_))
    ));
    reg.fail_write_number(None);
    assert_eq!(reg.balance(&c).unwrap(), 0);
    assert_eq!(audit_count(&reg), n);
    reg.record_load(OP, &c, &load(300)).unwrap();
    assert_eq!(reg.balance(&c).unwrap(), 300);
    assert!(reg.verify().unwrap().is_clean());
}
}

/// One history: issue, load, purchase, loss report, replacement, cancellation, an operator.
fn a_day_at_the_counter(reg: &mut Registry, clock: &ManualClock) {
    let mut station = Station::this_process();
    station.id = "lucheng-2/desk-1".into();
    reg.set_station(station);
    let people = samples();
    let c1 = issue(reg, &people[0]);
    let c2 = issue(reg, &people[1]);
    reg.record_load(OP, &c1, &load(5000)).unwrap();
    clock.advance(Duration::minutes(5));
    reg.record_purchase(OP, &c1, &purchase(1, 1250, clock.now()))
        .unwrap();
    reg.report_loss(OP, &c1).unwrap();
    clock.advance(Duration::hours(1));
    let p = reg
        .begin_replace(OP, &c1, ReplaceReason::Lost, &ChipInfo::default())
        .unwrap();
    reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    reg.cancel(OP, &c2, CancelReason::MovedAway).unwrap();
    reg.add_operator(
        OP,
        "wang",
        "王",
        operators::Role::Operator,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    )
    .unwrap();
}

#[test]
fn the_same_history_gives_the_same_chain_on_both_backends() {
    if !testing::pg_enabled("the_same_history_gives_the_same_chain_on_both_backends") {
        return;
    }
    let chain_of = |backend: Backend| {
        BACKEND.with(|b| b.set(backend));
        let (mut reg, clock) = fixture();
        a_day_at_the_counter(&mut reg, &clock);
        let report = reg.verify().unwrap();
        assert!(report.is_clean(), "{backend:?}: {:#?}", report.findings);
        let log = reg.audit_log(&AuditFilter::default()).unwrap();
        let records: Vec<String> = log
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {:?} {}",
                    e.id, e.at, e.action, e.station, e.details
                )
            })
            .collect();
        (
            report.head,
            report.audit_records,
            report.ledger_total_cents,
            records,
        )
    };
    let sqlite = chain_of(Backend::Sqlite);
    let postgres = chain_of(Backend::Postgres);
    assert!(sqlite.0.is_some());
    assert_eq!(sqlite, postgres, "the two chains differ");
}

#[test]
fn tampering_behind_the_triggers_is_found_on_postgres() {
    if !testing::pg_enabled("tampering_behind_the_triggers_is_found_on_postgres") {
        return;
    }
    BACKEND.with(|b| b.set(Backend::Postgres));
    let (mut reg, clock) = fixture();
    a_day_at_the_counter(&mut reg, &clock);
    assert!(reg.verify().unwrap().is_clean());
    // A superuser switches the triggers off for the session and edits money and a status.
    let mut raw = Raw::of(&reg);
    raw.exec(
        "SET session_replication_role = replica; \
         UPDATE purse_ledger SET amount_cents = 900000 WHERE kind = 'load'; \
         UPDATE cards SET status = 'active' WHERE status = 'cancelled' AND replaced_by IS NULL",
    )
    .unwrap();
    drop(raw);
    let report = reg.verify().unwrap();
    let tables: Vec<&str> = report.findings.iter().map(|f| f.table.as_str()).collect();
    assert!(tables.contains(&"purse_ledger"), "{:#?}", report.findings);
    assert!(tables.contains(&"cards"), "{:#?}", report.findings);
}

#[test]
fn an_sqlite_registry_is_copied_to_postgres_with_the_same_chain() {
    if !testing::pg_enabled("an_sqlite_registry_is_copied_to_postgres_with_the_same_chain") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let clock = Arc::new(ManualClock::new(T0));
    let mut source =
        Registry::open_with_clock(&path, RegistryConfig::default(), clock.clone()).unwrap();
    a_day_at_the_counter(&mut source, &clock);
    let head = source.verify().unwrap().head;
    let db = testing::PgTestDb::create();
    let mut steps = Vec::new();
    let report = copy::copy_to_postgres(&source, db.url(), &mut |p| steps.push(p)).unwrap();
    assert_eq!(report.head, head);
    assert!(steps.contains(&copy::CopyProgress::VerifyingSource));
    assert!(steps.contains(&copy::CopyProgress::VerifyingCopy));
    let cards = report.rows.iter().find(|(t, _)| t == "cards").unwrap().1;
    assert_eq!(cards, 3);
    // The copy verifies as the source does, and the stations go on from where it ended.
    let mut target =
        Registry::open_postgres_with_clock(db.url(), RegistryConfig::default(), clock.clone())
            .unwrap();
    let r = target.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
    assert_eq!(r.head, head);
    assert_eq!(
        target.list_cards(&CardFilter::default()).unwrap(),
        source.list_cards(&CardFilter::default()).unwrap()
    );
    let next = issue(&mut target, &samples()[7]);
    assert_eq!(card_number::verify(&next), Ok(4));
    target.record_load(OP, &next, &load(100)).unwrap();
    assert!(target.verify().unwrap().is_clean());
    // A second copy into the same (no longer empty) database is refused.
    let e = copy::copy_to_postgres(&source, db.url(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("already holds registry data"), "{e}");
    // A source whose chain is broken is refused before anything is written.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TRIGGER fees_no_update; UPDATE fees SET amount_cents = 1;")
        .unwrap();
    let empty = testing::PgTestDb::create();
    let e = copy::copy_to_postgres(&source, empty.url(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("does not verify clean"), "{e}");
    let mut c = empty.client();
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was written to the target");
}

on_both! {
fn a_leased_issuance_is_recorded_with_the_leasing_station() {
    let (mut reg, _) = fixture();
    let mut desk = Station::this_process();
    desk.id = "wenzhou-centre/desk-9".into();
    let lease = LeaseRequest {
        station: &desk,
        ttl: DEFAULT_LEASE,
    };
    let p = reg
        .begin_issue_leased(OP, &samples()[6], &ChipInfo::default(), &lease)
        .unwrap();
    reg.complete_issue_leased(OP, &p.card_number, &ChipInfo::default(), &desk)
        .unwrap();
    let log = reg
        .audit_log(&AuditFilter {
            card: Some(p.card_number.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(log.len() >= 2);
    for e in log {
        assert_eq!(e.station.as_deref(), Some("wenzhou-centre/desk-9"), "{}", e.action);
    }
    assert!(reg.verify().unwrap().is_clean());
}
}

#[test]
fn a_location_is_a_file_unless_it_is_a_postgres_address() {
    assert_eq!(
        Location::parse("postgres://cc@db.bureau:5432/registry"),
        Location::Postgres("postgres://cc@db.bureau:5432/registry".into())
    );
    assert_eq!(
        Location::parse("postgresql://cc@db/registry"),
        Location::Postgres("postgresql://cc@db/registry".into())
    );
    assert_eq!(
        Location::parse("/var/lib/citizencard/registry.db"),
        Location::Sqlite("/var/lib/citizencard/registry.db".into())
    );
    assert_eq!(
        Location::parse("postgres.db"),
        Location::Sqlite("postgres.db".into())
    );
    assert_eq!(
        Location::parse("postgres://cc:secret@db/registry").to_string(),
        "postgres://cc:***@db/registry"
    );
}

#[test]
fn stations_racing_for_one_applicant_on_postgres_get_one_card_and_clear_refusals() {
    if !testing::pg_enabled("stations_racing_for_one_applicant_on_postgres") {
        return;
    }
    let db = testing::PgTestDb::create();
    Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = db.url().to_owned();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut reg = Registry::open_postgres(&url, RegistryConfig::default()).unwrap();
                barrier.wait();
                reg.begin_issue(OP, &samples()[9], &ChipInfo::default())
                    .map(|p| p.card_number)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    // The others are told what the registry says (checked under the chain-head lock), not a
    // constraint violation.
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(RegistryError::UnfinishedIssue { .. })),
            "{r:?}"
        );
    }
    let reg = Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    assert_eq!(reg.list_cards(&CardFilter::default()).unwrap().len(), 1);
    assert!(reg.verify().unwrap().is_clean());
}

#[test]
fn handles_opened_per_request_share_one_pool_on_postgres() {
    if !testing::pg_enabled("handles_opened_per_request_share_one_pool_on_postgres") {
        return;
    }
    let db = testing::PgTestDb::create();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
    let card = {
        let mut first =
            Registry::open_postgres_shared(db.url(), RegistryConfig::default(), clock.clone())
                .unwrap();
        issue(&mut first, &samples()[11])
    };
    for _ in 0..20 {
        let reg =
            Registry::open_postgres_shared(db.url(), RegistryConfig::default(), clock.clone())
                .unwrap();
        assert_eq!(reg.status(&card).unwrap(), CardStatus::Active);
    }
    let (Db::Postgres { pool: a, .. }, Db::Postgres { pool: b, .. }) = (
        Db::connect_postgres_shared(db.url()).unwrap(),
        Db::connect_postgres_shared(db.url()).unwrap(),
    ) else {
        panic!("PostgreSQL pools");
    };
    // The pool the handles above used, with its connections (a new pool would have none).
    let used = a.state().connections;
    assert!((1..=8).contains(&used), "{used}");
    assert_eq!(b.state().connections, used);
}

#[test]
fn records_from_before_stations_keep_their_hash_and_a_removed_station_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    {
        // A version-6 registry with one record, hashed as version 6 hashed it (no station).
        let db = db::Db::Sqlite(rusqlite::Connection::open(&path).unwrap());
        schema::migrate_to(&db, chain::STATION_VERSION - 1).unwrap();
        let tx = db::Tx::begin(db.conn().unwrap(), db::Begin::Write, None).unwrap();
        chain::append(
            &tx,
            "2026-01-09T08:00:00Z",
            "op-old",
            "registry.note",
            None,
            None,
            "{}",
            vec![],
            None,
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let clock = Arc::new(ManualClock::new(T0));
    let mut reg = Registry::open_with_clock(&path, RegistryConfig::default(), clock).unwrap();
    assert_eq!(reg.schema_version().unwrap(), chain::STATION_VERSION);
    let c = issue(&mut reg, &samples()[12]);
    let log = reg.audit_log(&AuditFilter::default()).unwrap();
    assert_eq!(log[0].station, None);
    assert!(log[1..].iter().all(|e| e.station.is_some()));
    let r = reg.verify().unwrap();
    assert!(r.is_clean(), "{:#?}", r.findings);
    // A station taken off a newer record no longer matches its hash.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "DROP TRIGGER audit_no_update; UPDATE audit_log SET station = NULL \
             WHERE card_number = '{c}'"
        ))
        .unwrap();
    let r = reg.verify().unwrap();
    assert!(
        r.findings.iter().any(|f| f.kind == FindingKind::RecordHash),
        "{:#?}",
        r.findings
    );
}
