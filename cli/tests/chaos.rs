//! Chaos at the host seams (issue 9), with the real `citizencard` binary:
//!
//! * stations issuing the same and different batches at once, on one registry (SQLite, and
//!   PostgreSQL with `CITIZENCARD_PG=1`: the `_on_postgres` variants, as for purchases at once);
//! * a station killed while another issues the same applicants, then run again (the cards it wrote
//!   that the other finished must be reported as void);
//! * purchases at once on one card image (one terminal state, and two);
//! * `kill -9` at random points of issue, load, purchase, replace and cancel, each followed by the
//!   operator's re-run (or, for a load or purchase, the next command with the card);
//!
//! and after each, the invariants of `host_lib::testing::invariants` (one card in use per person
//! and per number, every card reads back, card balance == ledger balance, a carry-over credited
//! once, nothing left pending). The RNG seed is printed (`CHAOS_SEED=N` repeats a run).
//!
//! `cargo test -p citizencard --test chaos -- --nocapture --test-threads 1` prints the counts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use host_lib::keys::KeySet;
use host_lib::registry::{Registry, RegistryConfig};
use host_lib::terminal::DEFAULT_AID;
use host_lib::testing::invariants::{self, InvariantReport};

const OP: &str = "chaos";
const AID: &str = "A00000000386980701";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dev_keys() -> KeySet {
    KeySet::load(&root().join("test-vectors/keys/dev.toml")).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// splitmix64: a seeded, printed sequence, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("CHAOS_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

thread_local! {
    /// The registry backend of the worlds this test thread makes: SQLite unless an `_on_postgres`
    /// variant of a test switched it (each test runs on its own thread).
    static ON_POSTGRES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `test` with its worlds' registries on PostgreSQL (a database of their own each), when
/// the PostgreSQL tier is on (`CITIZENCARD_PG=1`, see `scripts/test.sh`).
fn on_postgres(name: &str, test: fn()) {
    if !host_lib::registry::testing::pg_enabled(name) {
        return;
    }
    ON_POSTGRES.with(|p| p.set(true));
    test();
}

/// One registry, its card images and its terminal state.
struct World {
    dir: tempfile::TempDir,
    /// The PostgreSQL database of this world's registry (dropped with it), if on PostgreSQL.
    pg: Option<host_lib::registry::testing::PgTestDb>,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            pg: ON_POSTGRES
                .with(|p| p.get())
                .then(host_lib::registry::testing::PgTestDb::create),
        }
    }
    /// The registry as `--registry` takes it: the SQLite file or the PostgreSQL address.
    fn db(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url().to_owned(),
            None => self.dir.path().join("registry.db").display().to_string(),
        }
    }
    fn open_registry(&self) -> Registry {
        Registry::open_location(
            &host_lib::registry::Location::parse(&self.db()),
            RegistryConfig::default(),
            std::sync::Arc::new(host_lib::registry::SystemClock),
        )
        .unwrap()
    }
    fn cards(&self, station: usize) -> PathBuf {
        self.dir.path().join(format!("cards-{station}"))
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("terminal")
    }
    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
        c.args(["--registry", self.db().as_str(), "--operator", OP])
            .args(args)
            .env("CITIZENCARD_TERMINAL_STATE", self.state())
            .env_remove("CITIZENCARD_KEYS")
            .env_remove("CITIZENCARD_REGISTRY_CONFIG")
            .env(
                "PCSCLITE_CSOCK_NAME",
                "/nonexistent/citizencard-test/pcscd.comm",
            )
            .current_dir(root())
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[String]) -> Output {
        self.command(args).output().unwrap()
    }
    fn ok(&self, args: &[String]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "citizencard {args:?}\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
    fn spawn(&self, args: &[String]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    fn invariants(&self, stations: usize) -> InvariantReport {
        let reg = self.open_registry();
        let dirs: Vec<PathBuf> = (0..stations).map(|s| self.cards(s)).collect();
        invariants::check(&reg, &dirs, &[self.state()], &dev_keys(), &DEFAULT_AID)
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn assert_clean(r: &InvariantReport, context: &str) {
    assert!(r.ok(), "{context}: {:#?}", r.violations);
    assert_eq!(r.duplicates, 0, "{context}");
}

/// The sample batch with photo paths made absolute, whole or in part.
fn batch(dir: &Path, name: &str, rows: impl Fn(usize) -> bool) -> PathBuf {
    let sample = root().join("test-vectors/applicants/sample.csv");
    let photos = root().join("test-vectors/applicants/");
    let text = std::fs::read_to_string(&sample).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 || rows(i) {
            out.push_str(&line.replace(",photos/", &format!(",{}photos/", photos.display())));
            out.push('\n');
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// Four stations at once on one registry, each with its own cards: two with the same whole
/// batch, two with its halves. Every applicant ends with one card, no card number is on two
/// cards, and a station that met an applicant another station was personalizing said so.
#[test]
fn chaos_stations_issuing_the_same_and_different_batches_at_once_on_postgres() {
    on_postgres(
        "chaos_stations_issuing_the_same_and_different_batches_at_once_on_postgres",
        chaos_stations_issuing_the_same_and_different_batches_at_once,
    );
}

#[test]
fn chaos_stations_issuing_the_same_and_different_batches_at_once() {
    let (mut issued, mut refused_leased, mut checks, mut runs) = (0u64, 0u64, 0u64, 0u64);
    for round in 0..3 {
        let w = World::new();
        let whole = batch(w.dir.path(), "whole.csv", |_| true);
        let odd = batch(w.dir.path(), "odd.csv", |i| i % 2 == 1);
        let even = batch(w.dir.path(), "even.csv", |i| i % 2 == 0);
        let batches = [&whole, &whole, &odd, &even];
        let children: Vec<Child> = batches
            .iter()
            .enumerate()
            .map(|(s, b)| {
                w.spawn(&args(&[
                    "--json",
                    "issue",
                    "--batch",
                    b.to_str().unwrap(),
                    "--sim-dir",
                    w.cards(s).to_str().unwrap(),
                ]))
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            runs += 1;
            for line in text(&out.stdout).lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                match v["status"].as_str() {
                    Some("issued") => issued += 1,
                    Some("refused") | Some("failed")
                        if v["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("another station")) =>
                    {
                        refused_leased += 1
                    }
                    _ => {}
                }
                assert!(
                    !line.contains("VOID CARD"),
                    "round {round}: a station wrote a void card: {line}"
                );
            }
        }
        let r = w.invariants(4);
        assert_clean(&r, &format!("round {round}"));
        checks += r.checks;
        // Every valid applicant of the batch holds exactly one card.
        let reg = w.open_registry();
        let active = reg
            .list_cards(&host_lib::registry::CardFilter {
                status: Some(host_lib::registry::CardStatus::Active),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(active.len() as u64, r.cards);
        assert!(r.cards >= 15, "round {round}: {} cards", r.cards);
    }
    println!(
        "stations at once: {runs} station runs in 3 rounds, {issued} cards issued, \
         {refused_leased} refusals because another station held the issuance, {checks} invariant \
         checks, 0 duplicates"
    );
}

/// Two stations on the same batch, one killed at a random instant and then run again: nothing
/// is issued twice, and every card the killed station wrote that another station finished is
/// reported as void by its re-run.
#[test]
fn chaos_a_station_killed_while_another_issues_the_same_batch() {
    let mut rng = Rng::from_env();
    let (mut voids, mut checks, mut issued) = (0usize, 0u64, 0u64);
    // One applicant: station 0 killed late in its personalization (the card may already read back
    // as the card), station 1 takes the issuance over (station 0's process is gone) and finishes
    // it, station 0 runs again.
    let one = root().join("test-vectors/applicants/one.toml");
    let single = |w: &World, s: usize| {
        args(&[
            "issue",
            "--applicant",
            one.to_str().unwrap(),
            "--sim-dir",
            w.cards(s).to_str().unwrap(),
        ])
    };
    let took = {
        let w = World::new();
        let t = Instant::now();
        w.ok(&single(&w, 0));
        t.elapsed().as_micros() as u64
    };
    let mut single_rounds = 0;
    let mut window = took;
    for round in 0..20 {
        let w = World::new();
        let mut victim = w.spawn(&single(&w, 0));
        // Late in the personalization: the card may read back already.
        std::thread::sleep(Duration::from_micros(
            window / 3 + rng.below(window * 2 / 3),
        ));
        if victim.try_wait().unwrap().is_some() {
            window = window * 4 / 5;
            continue;
        }
        let _ = victim.kill();
        let _ = victim.wait();
        single_rounds += 1;
        let other = w.run(&single(&w, 1));
        // Station 0 may have completed the issuance just before the kill: then station 1 is
        // refused (the applicant holds a card, and it is not at station 1).
        assert!(
            other.status.success() || text(&other.stdout).contains("already has card"),
            "{}{}",
            text(&other.stdout),
            text(&other.stderr)
        );
        let again = w.run(&single(&w, 0));
        let said = format!("{}{}", text(&again.stdout), text(&again.stderr));
        let r = w.invariants(2);
        assert_clean(&r, &format!("single round {round}"));
        for copy in &r.void_copies {
            let number = copy.file_stem().unwrap().to_str().unwrap();
            assert!(
                said.lines()
                    .any(|l| l.contains("VOID CARD") && l.contains(number)),
                "single round {round}: the void copy {} was not reported:\n{said}",
                copy.display()
            );
        }
        voids += r.void_copies.len();
        checks += r.checks;
        issued += r.cards;
    }
    println!("one applicant, station killed, another takes over: {single_rounds} kills");
    for round in 0..2 {
        let w = World::new();
        let whole = batch(w.dir.path(), "whole.csv", |_| true);
        let run = |s: usize| {
            args(&[
                "issue",
                "--batch",
                whole.to_str().unwrap(),
                "--sim-dir",
                w.cards(s).to_str().unwrap(),
            ])
        };
        let mut victim = w.spawn(&run(0));
        let other = w.spawn(&run(1));
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500)));
        let _ = victim.kill();
        let _ = victim.wait();
        let other = other.wait_with_output().unwrap();
        let again = w.run(&run(0));
        let said = format!("{}{}", text(&other.stdout), text(&again.stdout));
        let r = w.invariants(2);
        assert_clean(&r, &format!("round {round}"));
        for copy in &r.void_copies {
            let number = copy.file_stem().unwrap().to_str().unwrap();
            assert!(
                said.lines()
                    .any(|l| l.contains("VOID CARD") && l.contains(number)),
                "round {round}: the void copy {} was not reported:\n{said}",
                copy.display()
            );
        }
        voids += r.void_copies.len();
        checks += r.checks;
        issued += r.cards;
    }
    println!(
        "a station killed beside another: {single_rounds} + 2 rounds, {issued} cards, {voids} \
         void copies all reported, {checks} invariant checks, 0 duplicates"
    );
}

/// Purchases at once on one card image: with one terminal state directory, and with two (two
/// terminals); every purchase reported done is on the card once, in the ledger once, with its own
/// offline counter and terminal transaction number.
#[test]
fn chaos_purchases_at_once_on_one_card_on_postgres() {
    on_postgres(
        "chaos_purchases_at_once_on_one_card_on_postgres",
        chaos_purchases_at_once_on_one_card,
    );
}

#[test]
fn chaos_purchases_at_once_on_one_card() {
    let w = World::new();
    let applicant = root().join("test-vectors/applicants/one.toml");
    w.ok(&args(&[
        "issue",
        "--applicant",
        applicant.to_str().unwrap(),
        "--sim-dir",
        w.cards(0).to_str().unwrap(),
    ]));
    let image = invariants::images_in(&[w.cards(0)]).remove(0);
    let img = image.to_str().unwrap().to_owned();
    w.ok(&args(&[
        "--sim", &img, "purse", "--aid", AID, "load", "100",
    ]));
    let other_state = w.dir.path().join("terminal-2");
    let (mut done, mut refused) = (0u64, 0u64);
    for pair in 0..10 {
        let mut children = Vec::new();
        for k in 0..2 {
            let mut c = w.command(&args(&[
                "--sim", &img, "purse", "--aid", AID, "purchase", "1",
            ]));
            if pair % 2 == 1 && k == 1 {
                c.env("CITIZENCARD_TERMINAL_STATE", &other_state);
            }
            children.push(
                c.stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        for c in children {
            let out = c.wait_with_output().unwrap();
            if out.status.success() && text(&out.stdout).contains("purchase of 1.00 yuan done") {
                done += 1;
            } else {
                refused += 1;
                eprintln!("{}", text(&out.stderr));
            }
        }
    }
    let r = w.invariants(1);
    assert_clean(&r, "purchases at once");
    let reg = w.open_registry();
    let card =
        host_lib::holder::items::CardNumber::parse(image.file_stem().unwrap().to_str().unwrap())
            .unwrap();
    let purchases = reg
        .ledger(&card)
        .unwrap()
        .iter()
        .filter(|e| e.kind.as_str() == "purchase")
        .count() as u64;
    let balance = reg.balance(&card).unwrap();
    assert_eq!(
        purchases, done,
        "every purchase reported done is in the ledger once"
    );
    assert_eq!(balance, 10_000 - 100 * done as i64, "and on the card once");
    let counter = std::fs::read_to_string(w.state().join("psam-counter")).unwrap();
    println!(
        "purchases at once: 20 purchases in 10 pairs, {done} done, {refused} refused, {purchases} \
         in the ledger, balance {balance} cents, PSAM counter {}, 0 duplicate counters",
        counter.trim()
    );
    assert_eq!(
        done, 20,
        "the image lock makes the second purchase wait, not fail"
    );
}

/// One step of a card's life, as a command.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Issue,
    Load,
    Purchase,
    ReportLoss,
    Replace,
    Cancel,
}

const LIFE: [Step; 6] = [
    Step::Issue,
    Step::Load,
    Step::Purchase,
    Step::ReportLoss,
    Step::Replace,
    Step::Cancel,
];

/// The first card of the life and its replacement, as the registry knows them (placeholders
/// before they exist). On PostgreSQL a kill can cost a card number (a sequence value is spent
/// even when the transaction that drew it never commits), so the numbers are looked up.
fn life_cards(w: &World) -> (String, String) {
    use host_lib::registry::{CardFilter, CardStatus};
    let cards = w
        .open_registry()
        .list_cards(&CardFilter::default())
        .unwrap();
    let live = || cards.iter().filter(|c| c.status != CardStatus::Aborted);
    let first = live()
        .find(|c| c.replaces.is_none())
        .map_or_else(|| "W00000018".to_owned(), |c| c.card_number.clone());
    let second = live()
        .find(|c| c.replaces.as_deref() == Some(first.as_str()))
        .map_or_else(|| "W00000026".to_owned(), |c| c.card_number.clone());
    (first, second)
}

fn step_args(w: &World, step: Step) -> Vec<String> {
    let (first, second) = life_cards(w);
    let (first, second) = (first.as_str(), second.as_str());
    let cards = w.cards(0);
    let dir = cards.to_str().unwrap().to_owned();
    let image = |n: &str| cards.join(format!("{n}.img")).to_str().unwrap().to_owned();
    let applicant = root().join("test-vectors/applicants/one.toml");
    match step {
        Step::Issue => args(&[
            "issue",
            "--applicant",
            applicant.to_str().unwrap(),
            "--sim-dir",
            &dir,
        ]),
        Step::Load => args(&["--sim", &image(first), "purse", "--aid", AID, "load", "50"]),
        Step::Purchase => args(&[
            "--sim",
            &image(first),
            "purse",
            "--aid",
            AID,
            "purchase",
            "2.5",
        ]),
        Step::ReportLoss => args(&["card", "report-loss", first]),
        Step::Replace => args(&[
            "card",
            "replace",
            first,
            "--reason",
            "lost",
            "--sim-dir",
            &dir,
        ]),
        Step::Cancel => args(&[
            "--sim",
            &image(second),
            "card",
            "cancel",
            second,
            "--reason",
            "moved-away",
        ]),
    }
}

/// What the operator does after a step was killed: the same command again, or for a purse
/// operation the next command with the card (never a second load or purchase).
fn recovery_args(w: &World, step: Step) -> Vec<String> {
    let (first, _) = life_cards(w);
    let image = w.cards(0).join(format!("{first}.img"));
    match step {
        Step::Load | Step::Purchase => args(&[
            "--sim",
            image.to_str().unwrap(),
            "purse",
            "--aid",
            AID,
            "balance",
        ]),
        Step::ReportLoss => args(&["card", "status", first.as_str()]),
        other => step_args(w, other),
    }
}

/// `kill -9` at a random instant of a random step of a card's life (issue, load, purchase,
/// replace with its carry-over, cancel), 60 times; after each the operator's re-run, and the
/// invariants after every step.
#[test]
fn chaos_kill_9_at_random_points_on_postgres() {
    on_postgres(
        "chaos_kill_9_at_random_points_on_postgres",
        chaos_kill_9_at_random_points,
    );
}

#[test]
fn chaos_kill_9_at_random_points() {
    let mut rng = Rng::from_env();
    // How long each step takes here (one undisturbed life), so the kills land inside them.
    let w = World::new();
    let mut took = Vec::new();
    for step in LIFE {
        let t = Instant::now();
        w.ok(&step_args(&w, step));
        took.push(t.elapsed());
        assert_clean(&w.invariants(1), &format!("undisturbed {step:?}"));
    }
    println!("undisturbed life: {took:?}");
    let killable = [
        Step::Issue,
        Step::Load,
        Step::Purchase,
        Step::Replace,
        Step::Cancel,
    ];
    let (mut runs, mut kills, mut exited_first, mut checks) = (0u64, 0u64, 0u64, 0u64);
    let mut by_step = std::collections::BTreeMap::new();
    // The window a kill is drawn from, per step: it shrinks when a step finished first.
    let mut window: Vec<u64> = took.iter().map(|t| t.as_micros() as u64).collect();
    let mut run = 0;
    while kills < 60 && run < 150 {
        run += 1;
        let w = World::new();
        // Each step in turn, the instant at random.
        let victim = killable[run % killable.len()];
        let index = LIFE.iter().position(|s| *s == victim).unwrap();
        let delay = Duration::from_micros(rng.below(window[index] + 1));
        for step in LIFE {
            if step == victim {
                let mut child = w.spawn(&step_args(&w, step));
                std::thread::sleep(delay);
                let killed = child.try_wait().unwrap().is_none();
                if killed {
                    child.kill().unwrap(); // SIGKILL
                    kills += 1;
                    *by_step.entry(format!("{step:?}")).or_insert(0u64) += 1;
                } else {
                    exited_first += 1;
                    window[index] = window[index] * 3 / 4;
                }
                let out = child.wait_with_output().unwrap();
                if !killed {
                    assert!(
                        out.status.success(),
                        "run {run}: {step:?} failed: {}",
                        text(&out.stderr)
                    );
                }
                // The operator runs it again (or uses the card again).
                let again = w.run(&recovery_args(&w, step));
                // A replacement the kill did not stop is complete: the re-run says so.
                let complete = step == Step::Replace
                    && text(&again.stderr).contains("the replacement is complete");
                assert!(
                    again.status.success() || complete,
                    "run {run}: {step:?} killed after {delay:?}; the re-run failed:\n{}\n{}",
                    text(&again.stdout),
                    text(&again.stderr)
                );
                // A load or purchase the kill stopped before CREDIT/DEBIT is simply not made;
                // the operator makes it again, as a new transaction.
                if matches!(step, Step::Load | Step::Purchase) {
                    let reg = w.open_registry();
                    let card =
                        host_lib::holder::items::CardNumber::parse(&life_cards(&w).0).unwrap();
                    let kind = if step == Step::Load {
                        "load"
                    } else {
                        "purchase"
                    };
                    let made = reg
                        .ledger(&card)
                        .unwrap()
                        .iter()
                        .any(|e| e.kind.as_str() == kind);
                    drop(reg);
                    if !made {
                        w.ok(&step_args(&w, step));
                    }
                }
            } else {
                w.ok(&step_args(&w, step));
            }
            let r = w.invariants(1);
            assert_clean(
                &r,
                &format!("run {run}: after {step:?} ({victim:?} killed after {delay:?})"),
            );
            checks += r.checks;
        }
        runs += 1;
    }
    println!(
        "kill -9: {runs} runs, {kills} kills ({by_step:?}), {exited_first} finished before the \
         kill, {checks} invariant checks, 0 violations, 0 duplicates"
    );
    assert!(kills >= 50, "{kills} kills in {runs} runs");
}
