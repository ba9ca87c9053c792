//! `citizencard registry verify` after a whole card life (the demo: issue, load, purchase, loss,
//! replace, cancel), then after tampering with the `sqlite3` shell's means; the modes of every
//! file the demo leaves; a read-only registry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn citizencard(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["--registry", db.to_str().unwrap(), "--operator", "clerk-9"])
        .args(args)
        .env_remove("CITIZENCARD_REGISTRY_CONFIG")
        .env(
            "PCSCLITE_CSOCK_NAME",
            "/nonexistent/citizencard-test/pcscd.comm",
        )
        .output()
        .unwrap()
}

/// A demo's kept directory: its registry went through a card's whole life. Run with umask 000,
/// so that only the modes citizencard asks for can keep files private.
fn demo(dir: &Path) -> PathBuf {
    let keep = dir.join("demo");
    let out = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_citizencard"))
        .args(["demo", "--keep", keep.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("CITIZENCARD_REGISTRY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    keep
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn verify_is_clean_after_a_whole_life_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let keep = demo(dir.path());
    let db = keep.join("registry.db");
    let out = citizencard(&db, &["registry", "verify"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("clean: every row agrees"), "{stdout}");
    assert!(stdout.contains("2 cancelled"), "{stdout}");
    let head = stdout
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .to_owned();
    println!("{stdout}");
    // The head given back: still clean.
    let out = citizencard(&db, &["registry", "verify", "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // An auditor's own few lines of Python recompute the same chain and head.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/audit-chain.py");
    let py = Command::new("python3")
        .arg(&script)
        .arg(&db)
        .args(["--expect-head", &head])
        .output()
        .expect("python3 (scripts/test.sh installs it)");
    assert_eq!(py.status.code(), Some(0), "{}", text(&py.stdout));
    assert!(
        text(&py.stdout).contains(&format!("head: {head}")),
        "{}",
        text(&py.stdout)
    );

    // The cancelled replacement card set back to active with raw SQL.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "UPDATE cards SET status = 'active' WHERE card_number = 'W00000026'",
            [],
        )
        .unwrap();
    }
    let out = citizencard(&db, &["registry", "verify"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "cards W00000026: status: the chain says \"cancelled\", the table says \"active\""
        ),
        "{stdout}"
    );
    println!("{stdout}");
    let out = citizencard(&db, &["--json", "registry", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["findings"][0];
    assert_eq!(
        (&f["kind"], &f["table"], &f["row"], &f["field"]),
        (
            &"changed_row".into(),
            &"cards".into(),
            &"W00000026".into(),
            &"status".into()
        )
    );
    assert_eq!(
        (&f["chain"], &f["in_table"]),
        (&"cancelled".into(), &"active".into())
    );

    // A consistent rewrite of the whole chain from an early record on is what the chain alone
    // cannot show; the head kept outside catches it.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP TRIGGER audit_no_update; UPDATE audit_log SET hash = 'x' WHERE id = 2;",
        )
        .unwrap();
    }
    let out = citizencard(&db, &["registry", "verify", "--expect-head", &head]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("audit_log 2 (issue.complete)"), "{stdout}");
    let py = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/audit-chain.py"))
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(py.status.code(), Some(1));
    assert!(
        text(&py.stdout).contains("audit_log 2: its contents do not match its hash"),
        "{}",
        text(&py.stdout)
    );
    let bad = citizencard(&db, &["registry", "verify", "--expect-head", "12"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[test]
fn the_demo_leaves_nothing_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let keep = demo(dir.path());
    let mut checked = 0;
    let mut stack = vec![keep.clone()];
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                // The exported blacklist is meant for terminals: card numbers, no personal data.
                if name != "blacklist.txt" {
                    assert_eq!(mode(&p), 0o600, "{}", p.display());
                    checked += 1;
                }
                assert!(!name.ends_with(".tmp"), "{} left behind", p.display());
            }
        }
    }
    for f in [
        "registry.db",
        "cards/W00000018.img",
        "terminal/psam-counter",
    ] {
        assert!(keep.join(f).exists(), "{f}");
    }
    assert!(checked >= 5, "{checked}");
    // SQLite's -wal and -shm files take the database's mode while it is open.
    let db = keep.join("registry.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.query_row("SELECT count(*) FROM cards", [], |r| r.get::<_, i64>(0))
        .unwrap();
    for side in ["registry.db-wal", "registry.db-shm"] {
        assert_eq!(mode(&keep.join(side)), 0o600, "{side}");
    }
}

#[test]
fn a_read_only_registry_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let keep = demo(dir.path());
    let db = keep.join("registry.db");
    // Readable by everyone, writable by nobody; the directory too.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    for d in [dir.path(), keep.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    // Root writes through any mode: run as `nobody` then (setpriv, util-linux).
    let as_user = |args: &[&str]| -> Output {
        let root = std::fs::metadata("/proc/self").unwrap();
        let mut c = if std::os::unix::fs::MetadataExt::uid(&root) == 0 {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            c.arg(env!("CARGO_BIN_EXE_citizencard"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_citizencard"))
        };
        c.args(["--registry", db.to_str().unwrap(), "--operator", "clerk-9"])
            .args(args)
            .env(
                "PCSCLITE_CSOCK_NAME",
                "/nonexistent/citizencard-test/pcscd.comm",
            )
            .output()
            .unwrap()
    };
    let out = as_user(&["card", "report-loss", "W00000018"]);
    let stderr = text(&out.stderr);
    let reading = as_user(&["registry", "verify"]);
    for d in [dir.path(), keep.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is read-only"), "{stderr}");
    println!("{stderr}");
    // Reading needs no write access.
    assert_eq!(
        reading.status.code(),
        Some(0),
        "{}{}",
        text(&reading.stdout),
        text(&reading.stderr)
    );
}
