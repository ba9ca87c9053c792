//! A registry database server that goes away in the middle of a batch (issue 10).
//!
//! The test starts a PostgreSQL cluster of its own (`scripts/pg-cluster.sh start` on a free port,
//! never the shared 54329/54330), runs `citizencard issue --batch` against it, and stops the server
//! (`scripts/pg-cluster.sh stop`) once the first cards are issued. Then:
//!
//! * the station says so in words — the registry's server cannot be reached, the batch stops, run
//!   the same command again — not with a driver's dump;
//! * nothing is recorded half: after a restart the registry holds as issued only cards whose
//!   images read back as issued, at most the one card under way is left `personalizing`, and the
//!   invariants of `host_lib::testing::invariants` (`registry verify` among them) hold;
//! * the same command run again finishes the card under way and issues the rest: every applicant
//!   of the batch ends with exactly one card.
//!
//! Gated by `CITIZENCARD_PG=1` like the other PostgreSQL tests (the server binaries of Debian's
//! `postgresql` package must be there; `scripts/test.sh` installs them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use host_lib::holder::citizen_id;
use host_lib::keys::KeySet;
use host_lib::registry::testing::pg_enabled;
use host_lib::registry::{CardFilter, CardStatus, Registry};
use host_lib::terminal::DEFAULT_AID;
use host_lib::testing::invariants;

/// Applicants in the batch: enough that it cannot finish before the server is down.
const APPLICANTS: u32 = 300;
/// Cards issued before the server is stopped.
const BEFORE_STOP: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A throw-away cluster in a directory of its own, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let port = loop {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            if p != 54329 && p != 54330 {
                break p;
            }
        };
        // Not under a 0700 temporary directory: the server may run as the `postgres` user.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "citizencard-dbdown-{}-{nanos:x}",
            std::process::id()
        ));
        let c = Cluster { dir, port };
        c.run("start");
        c
    }

    fn run(&self, what: &str) {
        let mut cmd = Command::new(root().join("scripts/pg-cluster.sh"));
        cmd.arg(what).arg(&self.dir);
        if what == "start" {
            cmd.arg(self.port.to_string());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pg-cluster.sh {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/pg-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A batch of synthetic applicants (Wenzhou ID numbers with their check character, a photo).
fn batch(dir: &Path) -> PathBuf {
    let photo = root().join("test-vectors/applicants/photos/p01.jpg");
    let mut csv = String::from(
        "id_number,name,sex,ethnicity,birthplace,birth_date,card_class,eligibility,photo,phone,address\n",
    );
    for n in 0..APPLICANTS {
        let birth = time::macros::date!(1970 - 01 - 01) + time::Duration::days(i64::from(n / 300));
        let seq = 100 + n % 300;
        let first17 = format!(
            "330302{:04}{:02}{:02}{seq:03}",
            birth.year(),
            u8::from(birth.month()),
            birth.day()
        );
        let check = citizen_id::check_character(first17.as_bytes().try_into().unwrap());
        let sex = if seq % 2 == 1 { 1 } else { 2 };
        csv.push_str(&format!(
            "{first17}{check},测试停{},{sex},01,330302,{birth},3,household,{},,\n",
            ["甲", "乙", "丙", "丁"][(n % 4) as usize],
            photo.display()
        ));
    }
    let path = dir.join("batch.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn issue(url: &str, batch: &Path, cards: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.args([
        "--json",
        "--registry",
        url,
        "--operator",
        "db-down",
        "issue",
        "--batch",
    ])
    .arg(batch)
    .arg("--sim-dir")
    .arg(cards)
    .env_remove("CITIZENCARD_KEYS")
    .env_remove("CITIZENCARD_REGISTRY_CONFIG")
    .current_dir(root())
    .stdin(Stdio::null());
    c
}

fn lines_with(lines: &[serde_json::Value], status: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|v| v["status"] == status)
        .cloned()
        .collect()
}

fn check_invariants(url: &str, cards: &Path) -> Registry {
    let reg = Registry::open_postgres(url, Default::default()).unwrap();
    let keys = KeySet::load(&root().join("test-vectors/keys/dev.toml")).unwrap();
    let r = invariants::check(&reg, &[cards.to_owned()], &[], &keys, &DEFAULT_AID);
    assert!(r.ok(), "{:#?}", r.violations);
    assert_eq!(r.duplicates, 0);
    assert!(r.void_copies.is_empty(), "{:?}", r.void_copies);
    reg
}

#[test]
fn a_registry_server_stopped_mid_batch_is_reported_and_the_same_command_finishes() {
    if !pg_enabled("a_registry_server_stopped_mid_batch_is_reported_and_the_same_command_finishes")
    {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let batch = batch(dir.path());
    let cards = dir.path().join("cards");

    // The first run: the server goes away after the first cards.
    let mut child = issue(&url, &batch, &cards)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut stopped = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        lines.push(v);
        if !stopped && lines_with(&lines, "issued").len() >= BEFORE_STOP {
            cluster.run("stop");
            stopped = true;
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = || format!("{lines:#?}\n{stderr}");
    assert!(
        stopped,
        "the batch ended before {BEFORE_STOP} cards: {}",
        all()
    );
    assert_eq!(out.status.code(), Some(1), "{}", all());
    let issued_first = lines_with(&lines, "issued").len();
    // Each issued card's line says where its time went.
    for v in lines_with(&lines, "issued") {
        assert!(v["timings"]["registry_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["timings"]["card_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
    assert!(
        issued_first < APPLICANTS as usize,
        "the batch finished before the server stopped: {}",
        all()
    );

    // Said clearly: the failure names the unreachable server, the batch stops with what to do.
    let failures: Vec<_> = lines
        .iter()
        .filter(|v| v["status"] == "failed" || v["status"] == "refused")
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "one card fails, then the batch stops: {}",
        all()
    );
    let error = failures[0]["error"].as_str().unwrap();
    println!("the station said: {error}");
    assert!(
        error.contains("cannot reach the registry's PostgreSQL server"),
        "{error}"
    );
    assert!(
        error.contains("run the command again") || error.contains("run the issuance again"),
        "{error}"
    );
    for raw in ["Error {", "DbError", "kind:", "Some(", "panicked"] {
        assert!(!error.contains(raw), "a driver's dump in {error:?}");
        assert!(!stderr.contains(raw), "a driver's dump in {stderr:?}");
    }
    let stop = lines_with(&lines, "stopped");
    assert_eq!(stop.len(), 1, "{}", all());
    let stop_text = stop[0]["error"].as_str().unwrap();
    println!("and: {stop_text}");
    assert!(stop_text.contains("cannot be reached"), "{stop_text}");
    assert!(
        stop_text.contains("run the same command again"),
        "{stop_text}"
    );
    assert_eq!(
        stop[0]["not_attempted"].as_u64().unwrap() as usize,
        APPLICANTS as usize - issued_first - 1,
        "{}",
        all()
    );

    // Back up: nothing recorded half.
    cluster.run("start");
    let reg = check_invariants(&url, &cards);
    let list = reg.list_cards(&CardFilter::default()).unwrap();
    let active = list
        .iter()
        .filter(|c| c.status == CardStatus::Active)
        .count();
    let under_way: Vec<_> = list
        .iter()
        .filter(|c| c.status == CardStatus::Personalizing)
        .collect();
    // A commit the server made as it went down may not have reached the station: one more
    // active card than reported is the most there can be.
    assert!(
        active == issued_first || active == issued_first + 1,
        "{active} active, {issued_first} reported issued"
    );
    assert!(under_way.len() <= 1, "{under_way:?}");
    assert!(list
        .iter()
        .all(|c| matches!(c.status, CardStatus::Active | CardStatus::Personalizing)));
    drop(reg);

    // The same command again: the card under way is finished, the rest issued.
    let out = issue(&url, &batch, &cards).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg = check_invariants(&url, &cards);
    let list = reg.list_cards(&CardFilter::default()).unwrap();
    assert_eq!(list.len(), APPLICANTS as usize, "one card per applicant");
    assert!(
        list.iter().all(|c| c.status == CardStatus::Active),
        "{:?}",
        list.iter()
            .filter(|c| c.status != CardStatus::Active)
            .collect::<Vec<_>>()
    );
    for c in &under_way {
        assert!(
            text.contains(&c.card_number),
            "the card under way {} is finished by the re-run",
            c.card_number
        );
    }
    println!(
        "server stopped after {issued_first} card(s) (1 failed, {} not attempted, {} under way); \
         the re-run finished every card: {} active, registry verify clean",
        APPLICANTS as usize - issued_first - 1,
        under_way.len(),
        list.len()
    );
}
