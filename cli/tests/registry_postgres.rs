//! The registry on a PostgreSQL server: `--registry postgres://…` and `CITIZENCARD_REGISTRY`
//! select it; an unreachable server is reported as such. With `CITIZENCARD_PG=1` (and
//! `CITIZENCARD_PG_URL`), each test makes a database of its own on that server.

use std::process::{Command, Output};

use host_lib::holder::input::load_csv;
use host_lib::holder::Validator;
use host_lib::registry::testing::{pg_enabled, PgTestDb};
use host_lib::registry::{ChipInfo, LoadRecord, Registry, RegistryConfig};

fn citizencard(registry: Option<&str>, env: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    if let Some(r) = registry {
        cmd.args(["--registry", r]);
    }
    cmd.args(["--operator", "clerk-7"])
        .args(args)
        .env_remove("CITIZENCARD_REGISTRY")
        .env_remove("CITIZENCARD_REGISTRY_CONFIG")
        .env(
            "PCSCLITE_CSOCK_NAME",
            "/nonexistent/citizencard-test/pcscd.comm",
        );
    if let Some(e) = env {
        cmd.env("CITIZENCARD_REGISTRY", e);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn an_unreachable_server_is_reported_for_the_counter() {
    let out = citizencard(
        Some("postgres://clerk:hunter2@127.0.0.1:1/registry"),
        None,
        &["registry", "list"],
    );
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the registry's PostgreSQL server 127.0.0.1:1/registry"),
        "{err}"
    );
    assert!(err.contains("run the command again"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_postgres_registry_is_selected_by_flag_and_by_environment() {
    if !pg_enabled("a_postgres_registry_is_selected_by_flag_and_by_environment") {
        return;
    }
    let db = PgTestDb::create();
    let card = {
        let mut reg = Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
        let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../test-vectors/applicants/sample.csv");
        let a = load_csv(&csv, &Validator::new(time::macros::date!(2026 - 01 - 10)))
            .unwrap()
            .remove(0)
            .result
            .unwrap();
        let p = reg
            .begin_issue("clerk-7", &a, &ChipInfo::default())
            .unwrap();
        reg.complete_issue("clerk-7", &p.card_number, &ChipInfo::default())
            .unwrap();
        reg.record_load(
            "clerk-7",
            &p.card_number,
            &LoadRecord {
                amount_cents: 1234,
                ..Default::default()
            },
        )
        .unwrap();
        p.card_number.to_string()
    };
    let out = citizencard(Some(db.url()), None, &["registry", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&card), "{}", text(&out.stdout));
    let out = citizencard(None, Some(db.url()), &["registry", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("1 active"),
        "{}",
        text(&out.stdout)
    );
    // A change through the command line lands in the same database.
    let out = citizencard(Some(db.url()), None, &["card", "report-loss", &card]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reg = Registry::open_postgres(db.url(), RegistryConfig::default()).unwrap();
    let n = host_lib::holder::items::CardNumber::parse(&card).unwrap();
    assert_eq!(
        reg.status(&n).unwrap(),
        host_lib::registry::CardStatus::Lost
    );
    assert!(reg.verify().unwrap().is_clean());
}

#[test]
fn registry_migrate_copies_a_file_to_postgres_with_the_same_head() {
    if !pg_enabled("registry_migrate_copies_a_file_to_postgres_with_the_same_head") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.db");
    {
        let mut reg = Registry::open(&file, RegistryConfig::default()).unwrap();
        let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../test-vectors/applicants/sample.csv");
        for row in load_csv(&csv, &Validator::new(time::macros::date!(2026 - 01 - 10)))
            .unwrap()
            .into_iter()
            .take(5)
        {
            let a = row.result.unwrap();
            let p = reg
                .begin_issue("clerk-7", &a, &ChipInfo::default())
                .unwrap();
            reg.complete_issue("clerk-7", &p.card_number, &ChipInfo::default())
                .unwrap();
        }
    }
    let file = file.to_str().unwrap();
    let verify = citizencard(Some(file), None, &["registry", "verify"]);
    let head = text(&verify.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("head: ").map(str::to_owned))
        .unwrap();
    let db = PgTestDb::create();
    let out = citizencard(Some(file), None, &["registry", "migrate", "--to", db.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("head: {head}")), "{stdout}");
    assert!(stdout.contains("verified before and after"), "{stdout}");
    // The stations now verify the PostgreSQL registry against the head noted before.
    let out = citizencard(
        Some(db.url()),
        None,
        &["registry", "verify", "--expect-head", &head],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("5 active"),
        "{}",
        text(&out.stdout)
    );
    // Not twice into the same database.
    let out = citizencard(Some(file), None, &["registry", "migrate", "--to", db.url()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("already holds registry data"),
        "{}",
        text(&out.stderr)
    );
}
