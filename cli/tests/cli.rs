//! The `citizencard` binary without a card: help, usage errors and their exit statuses, and the
//! message when pcscd is not there. Needs no pcscd.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn citizencard(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.args(args).env_remove("CITIZENCARD_READER");
    // Point the PC/SC client library at a socket that does not exist: no pcscd, whatever runs.
    c.env(
        "PCSCLITE_CSOCK_NAME",
        "/nonexistent/citizencard-test/pcscd.comm",
    );
    c
}

fn run(args: &[&str]) -> Output {
    citizencard(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_explains() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in [
        "readers",
        "apdu",
        "script",
        "--reader",
        "CITIZENCARD_READER",
        "--wait",
        "--trace",
        "--no-auto-get-response",
        "--json",
        "Exit status",
    ] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
    let out = run(&["script", "--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("=> 9000") && help.contains("--keep-going"),
        "{help}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["apdu"]).status.code(), Some(2));

    // Bad hex is found before any reader is opened.
    let out = run(&["apdu", "00A40400", "00 A4 0G"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("argument 2, column 8: `G` is not a hex digit"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.apdu");
    std::fs::write(&path, "# ok\n00A40400 => 9000\n00A4 04000 => 9000\n").unwrap();
    let out = run(&["script", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.apdu: line 3, column 6: odd number of hex digits"),
        "{err}"
    );
    assert!(err.contains("\n  00A4 04000 => 9000\n       ^"), "{err}");

    let out = run(&["script", "/nonexistent/script.apdu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/script.apdu"));

    // From standard input.
    let mut child = citizencard(&["script", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"00A40400 => 9x0\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>: line 1, column 13"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn no_pcscd_is_a_readable_card_error() {
    for args in [
        &["readers"][..],
        &["apdu", "00A40000"],
        &["-r", "1", "apdu", "00A40000"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("PC/SC service is not running (SCARD_E_NO_SERVICE)")
                && err.contains("pcscd"),
            "{args:?}: {err}"
        );
    }
}
