//! The registry load benchmark's small configuration as a test (issue 10): two stations — two
//! `citizencard bench registry-station` processes — issue ten cards each to one registry while
//! their shops load, buy and report losses; then `bench registry-check` must find every count
//! right (no card number twice, every completed transaction in the ledger once, the losses
//! refused, `registry verify` clean) and the invariants of `host_lib::testing::invariants` hold
//! over the card images. Times are printed, never asserted: the figures come from
//! `scripts/registry-load.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use host_lib::keys::KeySet;
use host_lib::registry::Registry;
use host_lib::terminal::DEFAULT_AID;
use host_lib::testing::invariants;

const STATIONS: u32 = 2;
const CARDS: u32 = 10;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn citizencard(registry: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.args(["--registry", registry, "--operator", "load-test"])
        .env_remove("CITIZENCARD_KEYS")
        .env_remove("CITIZENCARD_REGISTRY_CONFIG")
        .current_dir(root())
        .stdin(Stdio::null());
    c
}

/// Runs the stations at once on `registry`, then the check; returns the check's JSON.
fn run_load(registry: &str, dir: &Path) -> serde_json::Value {
    // The schema is made once, before the stations race to open a new registry (the
    // bureau's first station does it).
    let out = citizencard(registry)
        .args(["registry", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stations: Vec<_> = (0..STATIONS)
        .map(|s| {
            citizencard(registry)
                .args([
                    "bench",
                    "registry-station",
                    "--station-number",
                    &s.to_string(),
                ])
                .args([
                    "--cards",
                    &CARDS.to_string(),
                    "--dir",
                    dir.to_str().unwrap(),
                ])
                .args(["--shop-every", "2", "--loss-every", "5"])
                .args(["--photo", "test-vectors/applicants/photos/p01.jpg"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (s, child) in stations.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "station {s}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = citizencard(registry)
        .args(["--json", "bench", "registry-check", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    println!("{v:#}");
    assert!(out.status.success(), "registry-check: {v:#}");
    v
}

fn assert_counts(v: &serde_json::Value) {
    let c = &v["counts"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    assert_eq!(n("stations"), u64::from(STATIONS), "{c}");
    assert_eq!(n("cards_issued"), u64::from(STATIONS * CARDS), "{c}");
    assert_eq!(n("station_failures"), 0, "{c}");
    assert_eq!(n("duplicate_numbers"), 0, "{c}");
    assert_eq!(n("missing_cards"), 0, "{c}");
    assert_eq!(n("unreported_cards"), 0, "{c}");
    // Every other card: a load and two purchases.
    assert_eq!(
        n("transactions"),
        u64::from(STATIONS * CARDS / 2 * 3),
        "{c}"
    );
    assert_eq!(n("lost_ledger_rows"), 0, "{c}");
    assert_eq!(n("doubled_ledger_rows"), 0, "{c}");
    assert_eq!(n("phantom_ledger_rows"), 0, "{c}");
    assert_eq!(n("losses"), u64::from(STATIONS * CARDS / 5), "{c}");
    assert_eq!(n("refused_after_loss"), n("losses"), "{c}");
    assert_eq!(n("verify_findings"), 0, "{c}");
    assert!(n("audit_records") > 0, "{c}");
    assert_eq!(v["clean"], true, "{v}");
    // Every card's timings were taken (their size is the benchmark's business).
    let all = v["figures"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(all["cards"], STATIONS * CARDS, "{all}");
    assert!(all["card_mean_ms"].as_f64().unwrap() > 0.0, "{all}");
    assert!(all["registry_mean_ms"].as_f64().unwrap() > 0.0, "{all}");
}

fn assert_invariants(reg: &Registry, dir: &Path) {
    let cards: Vec<PathBuf> = (0..STATIONS)
        .map(|s| dir.join(format!("cards-{s}")))
        .collect();
    let journals: Vec<PathBuf> = (0..STATIONS)
        .map(|s| dir.join(format!("terminal-{s}")))
        .collect();
    let keys = KeySet::load(&root().join("test-vectors/keys/dev.toml")).unwrap();
    let r = invariants::check(reg, &cards, &journals, &keys, &DEFAULT_AID);
    assert!(r.ok(), "{:#?}", r.violations);
    assert_eq!(r.duplicates, 0);
    assert!(r.void_copies.is_empty(), "{:?}", r.void_copies);
    // Active cards: all but the lost ones.
    assert_eq!(r.cards, u64::from(STATIONS * CARDS - STATIONS * CARDS / 5));
}

/// The same on PostgreSQL (`CITIZENCARD_PG=1`, a database of its own on `CITIZENCARD_PG_URL`'s
/// server), the stations given the registry as `--registry postgres://…`.
#[test]
fn two_stations_on_one_postgres_registry_lose_and_double_nothing() {
    use host_lib::registry::testing::{pg_enabled, PgTestDb};
    if !pg_enabled("two_stations_on_one_postgres_registry_lose_and_double_nothing") {
        return;
    }
    let db = PgTestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let v = run_load(db.url(), dir.path());
    assert_counts(&v);
    let reg = Registry::open_postgres(db.url(), Default::default()).unwrap();
    assert_invariants(&reg, dir.path());
}

#[test]
fn two_stations_on_one_sqlite_registry_lose_and_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let v = run_load(db.to_str().unwrap(), dir.path());
    assert_counts(&v);
    let reg = Registry::open(&db, Default::default()).unwrap();
    assert_invariants(&reg, dir.path());
}
