//! The service layer driven directly: the regressions of issue 9 (a verified load the registry
//! failed to record, a carry-over whose recording failed after CREDIT, a second station resuming
//! a card the first is writing) and an injected registry failure at every registry write of every
//! workflow, each followed by the operator's re-run and the invariants of
//! `host_lib::testing::invariants`.
//!
//! `cargo test -p host-lib --test service -- --nocapture` prints the counts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{input, Applicant, Validator};
use host_lib::keys::KeySet;
use host_lib::profile::Profile;
use host_lib::registry::testing::{pg_enabled, PgTestDb};
use host_lib::registry::{
    CancelReason, CardStatus, ManualClock, Registry, RegistryConfig, RegistryError, ReplaceReason,
    Station,
};
use host_lib::service::issue::{issue_one, IssueDesk, IssueFailure};
use host_lib::service::purse::{BlacklistSource, PurseDesk};
use host_lib::service::state::TerminalState;
use host_lib::service::{cancel, replace, ServiceError};
use host_lib::terminal::{TerminalConfig, DEFAULT_AID};
use host_lib::testing::invariants;
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;

const OP: &str = "op-service";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

fn dev_keys() -> KeySet {
    KeySet::load(&vectors().join("keys/dev.toml")).unwrap()
}

fn applicants() -> Vec<Applicant> {
    let v = Validator::new(time::macros::date!(2026 - 01 - 10));
    input::load_csv(&vectors().join("applicants/sample.csv"), &v)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.result.ok())
        .filter(|a| a.check_issuable().is_ok())
        .collect()
}

/// Which registry the tests of this thread use (the harness gives each test a thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

thread_local! {
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Sqlite) };
}

/// Runs `test` on `backend` (PostgreSQL only with `CITIZENCARD_PG=1`).
fn run_on(backend: Backend, name: &str, test: fn()) {
    if backend == Backend::Postgres && !pg_enabled(name) {
        return;
    }
    BACKEND.with(|b| b.set(backend));
    test();
}

/// The same test on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::run_on(super::Backend::Sqlite, stringify!($name), super::$name);
            }
            #[test]
            fn postgres() {
                super::run_on(super::Backend::Postgres, stringify!($name), super::$name);
            }
        }
    };
}

/// A registry, its cards and its terminal state, in a temporary directory.
struct World {
    /// The PostgreSQL database of this world, when the test runs on PostgreSQL.
    pg: Option<PgTestDb>,
    _dir: tempfile::TempDir,
    reg: Registry,
    cards: PathBuf,
    state: PathBuf,
    keys: KeySet,
    profile: Profile,
    station: Station,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-10 02:00 UTC),
        ));
        let pg = (BACKEND.with(|b| b.get()) == Backend::Postgres).then(PgTestDb::create);
        let reg = match &pg {
            None => Registry::open_with_clock(
                &dir.path().join("registry.db"),
                RegistryConfig::default(),
                clock,
            ),
            Some(db) => {
                Registry::open_postgres_with_clock(db.url(), RegistryConfig::default(), clock)
            }
        }
        .unwrap();
        let cards = dir.path().join("cards");
        std::fs::create_dir_all(&cards).unwrap();
        World {
            pg,
            cards,
            state: dir.path().join("terminal"),
            _dir: dir,
            reg,
            keys: dev_keys(),
            profile: Profile::wenzhou(),
            station: Station::this_process(),
        }
    }

    /// Another handle on the same registry (another process, another clock).
    fn reopen(&self, clock: Arc<ManualClock>) -> Registry {
        match &self.pg {
            None => {
                let path = self.reg.path().unwrap().to_owned();
                Registry::open_with_clock(&path, RegistryConfig::default(), clock).unwrap()
            }
            Some(db) => {
                Registry::open_postgres_with_clock(db.url(), RegistryConfig::default(), clock)
                    .unwrap()
            }
        }
    }

    fn image(&self, card: &CardNumber) -> PathBuf {
        self.cards.join(format!("{card}.img"))
    }

    fn open(&self, card: &CardNumber) -> SimTransport {
        SimTransport::open_image(&self.image(card)).unwrap()
    }

    fn issue(&mut self, a: &Applicant) -> Result<CardNumber, IssueFailure> {
        let cards = self.cards.clone();
        let desk = IssueDesk {
            operator: OP,
            station: &self.station,
            lease: Duration::from_secs(600),
        };
        issue_one(
            &mut self.reg,
            &desk,
            a,
            &self.keys,
            &self.profile,
            &mut |p| open_or_make(&cards, &p.card_number, p.serial),
            &mut |_| {},
        )
        .map(|o| o.reservation.pending.card_number)
    }

    fn purse_keys(&self, state: &TerminalState) -> KeySet {
        dev_keys().with_terminal_counter(state.counter().unwrap())
    }

    fn load(&mut self, card: &CardNumber, cents: u32) -> Result<(), ServiceError> {
        let state = TerminalState::open(&self.state, "test", Duration::ZERO)?;
        let keys = self.purse_keys(&state);
        let t = self.open(card);
        let desk = PurseDesk {
            keys: &keys,
            config: TerminalConfig::default(),
            state: &state,
            registry: Some(&mut self.reg),
            operator: OP,
            clock: None,
        };
        let o = desk.load(t, cents, &mut |_| {})?;
        match o.not_recorded {
            Some(e) => Err(ServiceError::Refused(format!("not recorded: {e}"))),
            None => Ok(()),
        }
    }

    fn purchase(&mut self, card: &CardNumber, cents: u32) -> Result<(), ServiceError> {
        let state = TerminalState::open(&self.state, "test", Duration::ZERO)?;
        let keys = self.purse_keys(&state);
        let t = self.open(card);
        let now = self.reg.now();
        let desk = PurseDesk {
            keys: &keys,
            config: TerminalConfig::default(),
            state: &state,
            registry: Some(&mut self.reg),
            operator: OP,
            clock: None,
        };
        let o = desk.purchase(t, cents, None, BlacklistSource::Registry, now, &mut |_| {})?;
        match o.not_recorded {
            Some(e) => Err(ServiceError::Refused(format!("not recorded: {e}"))),
            None => Ok(()),
        }
    }

    /// The next purse command with the card: settles (and records) what is pending.
    fn balance(&mut self, card: &CardNumber) -> Result<u32, ServiceError> {
        let state = TerminalState::open(&self.state, "test", Duration::ZERO)?;
        let keys = self.purse_keys(&state);
        let t = self.open(card);
        let desk = PurseDesk {
            keys: &keys,
            config: TerminalConfig::default(),
            state: &state,
            registry: Some(&mut self.reg),
            operator: OP,
            clock: None,
        };
        Ok(desk.balance(t, &mut |_| {})?.cents)
    }

    fn replace(&mut self, old: &CardNumber) -> Result<CardNumber, ServiceError> {
        let cards = self.cards.clone();
        let station = self.station.clone();
        let desk = IssueDesk {
            operator: OP,
            station: &station,
            lease: Duration::from_secs(600),
        };
        let keys = dev_keys();
        replace::replace(
            &mut self.reg,
            &desk,
            &keys,
            &self.profile,
            old,
            ReplaceReason::Lost,
            None,
            &mut |n, serial| open_or_make(&cards, n, serial),
            &self.state.clone(),
            [0, 0, 0, 0, 0, 9],
            host_lib::terminal::china_time_now,
            &mut |_| {},
        )
        .map(|o| o.new_card)
    }

    fn cancel(&mut self, card: &CardNumber) -> Result<(), ServiceError> {
        let state = TerminalState::open(&self.state, "test", Duration::ZERO)?;
        let mut t = self.open(card);
        let keys = dev_keys();
        cancel::cancel(
            &mut self.reg,
            OP,
            card,
            CancelReason::MovedAway,
            Some(cancel::AtHand {
                transport: &mut t,
                keys: &keys,
                profile: &self.profile,
                state: Some(&state),
            }),
        )
        .map(drop)
    }

    fn invariants(&self) -> invariants::InvariantReport {
        invariants::check(
            &self.reg,
            std::slice::from_ref(&self.cards),
            std::slice::from_ref(&self.state),
            &self.keys,
            &DEFAULT_AID,
        )
    }
}

/// The simulated card for a card number: `DIR/<card>.img`, made blank (ATR serial = card serial)
/// if missing.
fn open_or_make(dir: &Path, card: &CardNumber, serial: u32) -> Result<Box<dyn Transport>, String> {
    let path = dir.join(format!("{card}.img"));
    if !path.exists() {
        let blank = SimCard::blank(
            Geometry::DEFAULT,
            &HistoricalBytes::wenzhou(serial.to_be_bytes()),
        )
        .map_err(|e| format!("{e:?}"))?;
        let header =
            image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
        image::save(&path, &header, blank.nvm()).map_err(|e| e.to_string())?;
    }
    Ok(Box::new(
        SimTransport::open_image(&path).map_err(|e| e.to_string())?,
    ))
}

fn assert_holds(w: &World, context: &str) -> invariants::InvariantReport {
    let r = w.invariants();
    assert!(r.ok(), "{context}: {:#?}", r.violations);
    r
}

/// The registry fails while recording a load the card made: the load stays in the terminal's
/// journal (it used to be removed first: card 19.50, ledger 17.50), and the next command with
/// the card records it. Card balance == ledger balance.
fn a_load_the_registry_failed_to_record_is_recorded_by_the_next_command() {
    let mut w = World::new();
    let a = applicants().remove(0);
    let card = w.issue(&a).unwrap();
    w.load(&card, 1750).unwrap();
    w.reg.fail_write_number(Some(w.reg.writes() + 1));
    let e = w.load(&card, 200).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    w.reg.fail_write_number(None);
    assert_eq!(
        w.reg.balance(&card).unwrap(),
        1750,
        "the ledger missed it so far"
    );
    let pending = host_lib::terminal::FileJournal::new(&w.state)
        .all()
        .unwrap();
    assert_eq!(pending.len(), 1, "the load waits in the journal");
    // The next command with the card: settled by GET TRANSACTION PROOF and recorded.
    assert_eq!(w.balance(&card).unwrap(), 1950);
    assert_eq!(w.reg.balance(&card).unwrap(), 1950);
    // A second settlement of the same transaction is not a second ledger row.
    assert_eq!(w.balance(&card).unwrap(), 1950);
    assert_eq!(w.reg.balance(&card).unwrap(), 1950);
    assert_holds(&w, "after the re-run");
    // The card is cancelled for what it holds.
    w.cancel(&card).unwrap();
    let refund = w
        .reg
        .ledger(&card)
        .unwrap()
        .iter()
        .find(|e| e.kind.as_str() == "refund")
        .map(|e| e.amount_cents);
    assert_eq!(refund, Some(-1950));
}

/// A load the registry failed to record, and the next command with the card is the
/// cancellation: the load is settled and recorded first, so the refund is what the card holds
/// (it used to be the ledger's shorter amount).
fn a_cancellation_refunds_what_the_card_holds() {
    let mut w = World::new();
    let a = applicants().remove(4);
    let card = w.issue(&a).unwrap();
    w.load(&card, 1750).unwrap();
    w.reg.fail_write_number(Some(w.reg.writes() + 1));
    assert!(w.load(&card, 200).is_err());
    w.reg.fail_write_number(None);
    assert_eq!(w.reg.balance(&card).unwrap(), 1750);
    w.cancel(&card).unwrap();
    let refund = w
        .reg
        .ledger(&card)
        .unwrap()
        .iter()
        .find(|e| e.kind.as_str() == "refund")
        .map(|e| e.amount_cents);
    assert_eq!(refund, Some(-1950), "the refund is the card's 19.50");
    assert!(host_lib::terminal::FileJournal::new(&w.state)
        .all()
        .unwrap()
        .is_empty());
}

/// The registry fails between CREDIT FOR LOAD of the carried-over balance and its recording:
/// the re-run learns from the card that the credit happened and does not load it again.
fn a_carry_over_is_loaded_once_when_its_recording_failed() {
    let mut w = World::new();
    let a = applicants().remove(1);
    let old = w.issue(&a).unwrap();
    w.load(&old, 3000).unwrap();
    w.purchase(&old, 450).unwrap();
    w.reg.report_loss(OP, &old).unwrap();
    // Find the write of the chip credit: replace once in a scratch world to count writes.
    let mut failed_after_credit = false;
    for n in 1..40 {
        let mut w2 = World::new();
        let old2 = w2.issue(&a).unwrap();
        w2.load(&old2, 3000).unwrap();
        w2.purchase(&old2, 450).unwrap();
        w2.reg.report_loss(OP, &old2).unwrap();
        let base = w2.reg.writes();
        w2.reg.fail_write_number(Some(base + n));
        let first = w2.replace(&old2);
        w2.reg.fail_write_number(None);
        let Err(e) = first else { break };
        let new = CardNumber::parse(
            &w2.reg
                .card_details(&old2)
                .unwrap()
                .card
                .replaced_by
                .unwrap_or_else(|| "W00000026".into()),
        )
        .unwrap();
        let chip_moved =
            w2.image(&new).exists() && invariants_balance(&w2, &new).is_some_and(|b| b == 2550);
        let owed = w2.reg.owed_to_chip(&new).unwrap_or(0);
        if chip_moved && owed > 0 {
            failed_after_credit = true;
            assert!(e.to_string().contains("injected"), "{e}");
        }
        let again = w2.replace(&old2).unwrap();
        assert_eq!(again, new);
        let r = assert_holds(&w2, &format!("replace with write {n} failing"));
        assert_eq!(r.duplicates, 0);
        assert_eq!(
            invariants_balance(&w2, &new),
            Some(2550),
            "loaded once (write {n})"
        );
    }
    assert!(
        failed_after_credit,
        "one of the injected failures fell between CREDIT and its record"
    );
    let new = w.replace(&old).unwrap();
    assert_eq!(invariants_balance(&w, &new), Some(2550));
    assert_holds(&w, "plain replace");
}

fn invariants_balance(w: &World, card: &CardNumber) -> Option<u32> {
    let t = SimTransport::open_image(&w.image(card)).ok()?;
    let keys = dev_keys();
    let mut terminal = host_lib::terminal::Terminal::new(t, &keys, TerminalConfig::default());
    terminal.balance().ok()
}

/// A station meets an applicant whose card another live station is personalizing: refused,
/// nothing touched. A station whose lease was taken over (it expired) finds its card void.
fn one_station_per_issuance_and_a_card_without_its_lease_is_void() {
    let mut w = World::new();
    let a = applicants().remove(2);
    let keys = dev_keys();
    let first = w.station.clone();
    let desk_a = IssueDesk {
        operator: OP,
        station: &first,
        lease: Duration::from_secs(600),
    };
    let pending = host_lib::service::issue::reserve(&mut w.reg, &desk_a, &a, &keys)
        .unwrap()
        .pending;
    // Station B, another process on this host... modelled by another station id whose lease
    // request meets A's live lease (A is this very process, so it is alive).
    let b = Station {
        id: format!("{}/other", first.host),
        host: first.host.clone(),
        pid: first.pid,
    };
    let desk_b = IssueDesk {
        operator: OP,
        station: &b,
        lease: Duration::from_secs(600),
    };
    let e = host_lib::service::issue::reserve(&mut w.reg, &desk_b, &a, &keys).unwrap_err();
    assert!(matches!(e, IssueFailure::Leased(_)), "{e}");
    assert!(
        e.to_string()
            .contains("being personalized by another station"),
        "{e}"
    );
    // A's lease runs out (a station that went away); B takes the issuance over and issues it.
    let lease = w.reg.lease(&pending.card_number).unwrap().unwrap();
    assert_eq!(lease.station, first.id);
    let clock_later = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 03:00 UTC),
    ));
    w.reg = w.reopen(clock_later);
    let cards_b = w.cards.join("b");
    std::fs::create_dir_all(&cards_b).unwrap();
    let out = issue_one(
        &mut w.reg,
        &desk_b,
        &a,
        &keys,
        &w.profile,
        &mut |p| open_or_make(&cards_b, &p.card_number, p.serial),
        &mut |_| {},
    )
    .unwrap();
    assert!(out.reservation.resumed);
    // A comes back with its card: refused before anything is written on it.
    let mut card_a = open_or_make(&w.cards, &pending.card_number, pending.serial).unwrap();
    let e = host_lib::service::issue::personalize_and_complete(
        &mut w.reg,
        &desk_a,
        card_a.as_mut(),
        &keys,
        &w.profile,
        &pending,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, IssueFailure::LostBeforeWriting(_)), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(
        host_lib::apps::guard::read_card_number(card_a.as_mut()).unwrap(),
        None,
        "A's card is still blank"
    );
    // Had A written its card meanwhile, the registry would not record it: the card is void.
    let e = w
        .reg
        .complete_issue_leased(OP, &pending.card_number, &Default::default(), &first)
        .unwrap_err();
    assert!(matches!(e, RegistryError::LeaseLost { .. }), "{e}");
    assert_eq!(
        w.reg.status(&pending.card_number).unwrap(),
        CardStatus::Active
    );
}

/// A registry write fails at every write of every workflow (issue, load, purchase, report loss,
/// replace with carry-over, cancel); after each the operator's re-run (or the next command with
/// the card) brings everything back, and the invariants hold.
#[allow(clippy::ptr_arg)] // every step has the signature of a Step
fn chaos_registry_failure_at_every_write_of_every_workflow() {
    let all = applicants();
    let a = all[3].clone();
    type Step = fn(&mut World, &Applicant, &mut Vec<CardNumber>) -> Result<(), String>;
    fn issue(w: &mut World, a: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let n = w.issue(a).map_err(|e| e.to_string())?;
        c.push(n);
        Ok(())
    }
    fn load(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let card = c.last().unwrap().clone();
        w.load(&card, 2000).map_err(|e| e.to_string())
    }
    fn purchase(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let card = c.last().unwrap().clone();
        w.purchase(&card, 125).map_err(|e| e.to_string())
    }
    fn loss(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let card = c.last().unwrap().clone();
        match w.reg.report_loss(OP, &card) {
            Ok(_) => Ok(()),
            Err(RegistryError::Transition {
                status: CardStatus::Lost,
                ..
            }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
    fn replace_card(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let old = c[0].clone();
        let new = w.replace(&old).map_err(|e| e.to_string())?;
        if c.len() == 1 {
            c.push(new);
        }
        Ok(())
    }
    fn cancel_card(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let card = c.last().unwrap().clone();
        w.cancel(&card).map_err(|e| e.to_string())
    }
    // The next command with the card after a purse operation is a balance (never a second
    // load or purchase: that would be the operator's new transaction).
    fn settle(w: &mut World, _: &Applicant, c: &mut Vec<CardNumber>) -> Result<(), String> {
        let card = c.last().unwrap().clone();
        w.balance(&card).map(drop).map_err(|e| e.to_string())
    }
    let workflows: [(&str, Step, Step); 6] = [
        ("issue", issue, issue),
        ("load", load, settle),
        ("purchase", purchase, settle),
        ("report loss", loss, loss),
        ("replace + carry-over", replace_card, replace_card),
        ("cancel", cancel_card, cancel_card),
    ];
    let (mut runs, mut injected, mut checks) = (0u64, 0u64, 0u64);
    for (i, (name, step, recover)) in workflows.iter().enumerate() {
        let mut writes_seen = 0;
        for n in 1.. {
            let mut w = World::new();
            let mut cards = Vec::new();
            for (_, before, _) in &workflows[..i] {
                before(&mut w, &a, &mut cards).unwrap();
            }
            let base = w.reg.writes();
            w.reg.fail_write_number(Some(base + n));
            let result = step(&mut w, &a, &mut cards);
            w.reg.fail_write_number(None);
            runs += 1;
            match result {
                Ok(()) if w.reg.writes() - base < n => {
                    writes_seen = n - 1;
                    let r = assert_holds(&w, &format!("{name}, no failure"));
                    checks += r.checks;
                    break;
                }
                outcome => {
                    injected += 1;
                    if let Err(e) = &outcome {
                        assert!(!e.is_empty());
                    }
                    recover(&mut w, &a, &mut cards)
                        .unwrap_or_else(|e| panic!("{name}: re-run after write {n} failed: {e}"));
                    let r = assert_holds(&w, &format!("{name} with write {n} failing"));
                    assert_eq!(r.duplicates, 0);
                    checks += r.checks;
                }
            }
        }
        println!("{name}: {writes_seen} registry writes, each failed once and recovered");
    }
    println!(
        "registry fault injection: {runs} runs, {injected} injected failures, {checks} invariant \
         checks, 0 violations, 0 duplicates"
    );
    assert!(injected >= 10, "{injected}");
}

on_both!(a_load_the_registry_failed_to_record_is_recorded_by_the_next_command);
on_both!(a_cancellation_refunds_what_the_card_holds);
on_both!(a_carry_over_is_loaded_once_when_its_recording_failed);
on_both!(one_station_per_issuance_and_a_card_without_its_lease_is_void);
on_both!(chaos_registry_failure_at_every_write_of_every_workflow);
