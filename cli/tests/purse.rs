//! `citizencard purse` against a personalized simulated card in an image file (`--sim`): no pcscd
//! needed. The same commands through pcscd, with a card torn during DEBIT, are in e2e_pcsc.rs.

use std::path::PathBuf;
use std::process::{Command, Output};

use host_lib::keys::KeySet;
use host_lib::testing::purse::{purse_image, PurseSetup};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dev_keys() -> KeySet {
    KeySet::load(&root().join("test-vectors/keys/dev.toml")).unwrap()
}

struct Card {
    dir: tempfile::TempDir,
}

impl Card {
    fn new() -> Card {
        let dir = tempfile::tempdir().unwrap();
        purse_image(
            &dir.path().join("card.img"),
            &dev_keys(),
            &PurseSetup::default(),
            [0, 0, 0, 1],
        )
        .unwrap();
        Card { dir }
    }

    fn image(&self) -> PathBuf {
        self.dir.path().join("card.img")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
        c.arg("--sim")
            .arg(self.image())
            .arg("purse")
            .args(args)
            .env_remove("CITIZENCARD_KEYS")
            .env("CITIZENCARD_TERMINAL_STATE", self.state().to_str().unwrap())
            // The default key set is looked up relative to the current directory.
            .current_dir(root());
        c.output().unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out(o),
        err(o)
    );
    out(o)
}

#[test]
fn balance_load_purchase_log() {
    let card = Card::new();
    assert_eq!(
        ok(&card.run(&["balance"])),
        "card 00003303000000000001: balance 0.00 yuan\n"
    );
    let load = card.run(&["load", "100"]);
    let text = ok(&load);
    assert!(
        text.starts_with("load of 100.00 yuan done: balance 0.00 -> 100.00 yuan\n"),
        "{text}"
    );
    assert!(
        text.contains("online counter 0, terminal 000000000001"),
        "{text}"
    );
    assert!(text.contains("verified; 3 APDUs"), "{text}");
    assert!(
        err(&load).contains("PUBLIC development key set"),
        "{}",
        err(&load)
    );

    let text = ok(&card.run(&["purchase", "12.34", "--terminal", "330300000101"]));
    assert!(
        text.contains("purchase of 12.34 yuan done: balance 100.00 -> 87.66 yuan"),
        "{text}"
    );
    assert!(
        text.contains("terminal 330300000101, terminal transaction 1"),
        "{text}"
    );
    assert!(
        text.contains("MAC2 ") && text.contains("verified; 3 APDUs"),
        "{text}"
    );
    // The PSAM's number is kept in the state directory.
    assert_eq!(
        std::fs::read_to_string(card.state().join("psam-counter")).unwrap(),
        "1\n"
    );
    let text = ok(&card.run(&["purchase", "0.5"]));
    assert!(text.contains("terminal transaction 2"), "{text}");
    assert!(text.contains("87.66 -> 87.16 yuan"), "{text}");

    let text = ok(&card.run(&["log"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("counter") && lines[0].contains("date and time"));
    assert!(
        lines[1].contains("06 EP purchase") && lines[1].contains("-0.50"),
        "{text}"
    );
    assert!(
        lines[2].contains("-12.34") && lines[2].contains("330300000101"),
        "{text}"
    );
    assert!(
        lines[3].contains("02 EP load") && lines[3].contains("+100.00"),
        "{text}"
    );

    let json = ok(&card.run(&["--json", "log"]));
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["amount_cents"], 1234);
    assert_eq!(records[1]["counter"], 0);
    assert_eq!(records[2]["txn_type_name"], "EP load");

    let v: serde_json::Value =
        serde_json::from_str(&ok(&card.run(&["purchase", "1", "--json"]))).unwrap();
    assert_eq!(v["status"], "done");
    assert_eq!(v["balance_after_cents"], 8616);
    assert_eq!(v["verified"], true);
    assert_eq!(v["apdus"], 3);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&card.run(&["--json", "balance"]))).unwrap();
    assert_eq!(
        (v["balance_cents"].as_u64(), v["apdus"].as_u64()),
        (Some(8616), Some(2))
    );

    // A composite purchase of 0 writes its record.
    let record = format!("022E{}", "11".repeat(46));
    let text = ok(&card.run(&[
        "purchase",
        "0",
        "--capp",
        &format!("sfi=17,tag=02,data={record}"),
    ]));
    assert!(
        text.contains("composite purchase of 0.00 yuan done"),
        "{text}"
    );
    assert!(text.contains("4 APDUs"), "{text}");
}

#[test]
fn bad_amounts_are_usage_errors_before_the_card_is_touched() {
    let card = Card::new();
    for (amount, says) in [
        ("-1", "no sign"),
        ("1.234", "two decimals"),
        ("abc", "not an amount"),
        ("0", "more than 0.00"),
        ("", "no amount"),
        ("99999999999", "larger than"),
    ] {
        for op in ["load", "purchase"] {
            let o = card.run(&[op, amount]);
            assert_eq!(o.status.code(), Some(2), "{op} {amount}: {}", err(&o));
            assert!(err(&o).contains(says), "{op} {amount}: {}", err(&o));
        }
    }
    let o = card.run(&["purchase", "1", "--terminal", "12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("12 hex digits"), "{}", err(&o));
    let o = card.run(&["balance", "--keys", "/nonexistent/keys.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("/nonexistent/keys.toml"), "{}", err(&o));
    // Nothing happened to the card.
    assert!(ok(&card.run(&["log"])).contains("the log is empty"));
    assert!(!card.state().join("psam-counter").exists());
}

#[test]
fn refusals_say_what_is_wrong() {
    let card = Card::new();
    ok(&card.run(&["load", "5"]));
    let o = card.run(&["purchase", "5.01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(
            "insufficient balance: the purchase is 5.01 yuan and the balance is 5.00 yuan"
        ),
        "{}",
        err(&o)
    );
    let o = card.run(&["load", "995.01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("maximum balance exceeded"), "{}", err(&o));
    let v: serde_json::Value =
        serde_json::from_str(&out(&card.run(&["--json", "load", "995.01"]))).unwrap();
    assert_eq!(v["status"], "refused");

    let sm4 = root().join("test-vectors/keys/dev-sm4.toml");
    for op in [&["load", "1"][..], &["purchase", "1"][..]] {
        let mut args = op.to_vec();
        args.extend(["--keys", sm4.to_str().unwrap()]);
        let o = card.run(&args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err(&o).contains("wrong key set for this card"),
            "{}",
            err(&o)
        );
    }
    assert!(ok(&card.run(&["balance"])).contains("balance 5.00 yuan"));

    let o = card.run(&["balance", "--aid", "A000000632010105"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not personalized"), "{}", err(&o));
}

#[test]
fn a_blank_card_is_not_personalized() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("blank.img");
    let o = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["sim", "new", "--image"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .arg("--sim")
        .arg(&image)
        .args(["purse", "balance", "--state"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("not personalized for the purse"),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("A00000000386980701"), "{}", err(&o));
}

#[test]
fn help_explains_amounts_and_state() {
    let o = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["purse", "--help"])
        .output()
        .unwrap();
    let help = out(&o);
    for word in [
        "balance",
        "load",
        "purchase",
        "log",
        "--keys",
        "--terminal",
        "--state",
        "12.34",
        "psam-counter",
        "GET TRANSACTION PROOF",
    ] {
        assert!(help.contains(word), "purse --help lacks {word}:\n{help}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["purse", "purchase", "--help"])
        .output()
        .unwrap();
    assert!(out(&o).contains("--capp"), "{}", out(&o));
}

/// A terminal that died (or lost the card for good) after DEBIT was sent leaves the purchase
/// pending in its state directory; the next purse command with that card settles it first.
#[test]
fn a_pending_purchase_is_settled_by_the_next_command() {
    use host_lib::keys::TerminalCounter;
    use host_lib::terminal::{FileJournal, Terminal, TerminalConfig, TerminalError};
    use host_lib::transport::{self, sim::SimTransport, Transport};
    use std::time::Duration;

    /// The simulated card, but once it is lost it never comes back.
    struct NeverBack(SimTransport);
    impl Transport for NeverBack {
        fn transmit(&mut self, c: &[u8]) -> Result<Vec<u8>, transport::Error> {
            self.0.transmit(c)
        }
        fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
            self.0.reset()
        }
        fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, transport::Error> {
            Err(transport::Error::WaitTimeout(wait))
        }
        fn atr(&self) -> &[u8] {
            self.0.atr()
        }
        fn name(&self) -> &str {
            self.0.name()
        }
    }

    for (cut_write, made) in [(0u64, false), (3, true)] {
        let card = Card::new();
        ok(&card.run(&["load", "10"]));
        let keys = dev_keys().with_terminal_counter(TerminalCounter::in_memory(50));
        let mut sim = SimTransport::open_image(&card.image()).unwrap();
        let config = TerminalConfig {
            recovery_wait: Duration::from_millis(50),
            ..TerminalConfig::default()
        };
        // SELECT and INITIALIZE write nothing: the cut falls in the DEBIT.
        sim.card_mut().nvm_mut().arm_cut(card_os::sim::PowerCut {
            write: cut_write,
            bytes: 0,
        });
        let mut t = Terminal::new(NeverBack(sim), &keys, config)
            .with_journal(FileJournal::new(&card.state()));
        let e = t.purchase(300, None).unwrap_err();
        assert!(matches!(e, TerminalError::Unsettled { .. }), "{e:?}");
        drop(t);
        let pending = card.state().join("pending-00003303000000000001.json");
        assert!(pending.exists());

        let o = card.run(&["balance"]);
        let (stdout, stderr) = (ok(&o), err(&o));
        assert!(stderr.contains("an earlier run left pending"), "{stderr}");
        if made {
            assert!(stderr.contains("purchase of 3.00 yuan done"), "{stderr}");
            assert!(stdout.contains("balance 7.00 yuan"), "{stdout}");
        } else {
            assert!(
                stderr.contains("purchase of 3.00 yuan was NOT made"),
                "{stderr}"
            );
            assert!(stdout.contains("balance 10.00 yuan"), "{stdout}");
        }
        // Settled: asked once, not again.
        let o = card.run(&["balance"]);
        assert!(!err(&o).contains("pending"), "{}", err(&o));
        assert!(!pending.exists());
    }
}

#[test]
fn the_state_lives_beside_the_registry() {
    let card = Card::new();
    ok(&card.run(&["load", "10"]));
    let run = |args: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
        c.arg("--sim")
            .arg(card.image())
            .args(args)
            .env_remove("CITIZENCARD_TERMINAL_STATE")
            .env_remove("CITIZENCARD_REGISTRY")
            .current_dir(root());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let data = card.dir.path().join("xdg");
    ok(&run(
        &["purse", "purchase", "1"],
        &[("XDG_DATA_HOME", &data)],
    ));
    assert_eq!(
        std::fs::read_to_string(data.join("citizencard/terminal/psam-counter")).unwrap(),
        "1\n"
    );
    let reg = card.dir.path().join("office/registry.db");
    ok(&run(
        &[
            "--registry",
            reg.to_str().unwrap(),
            "purse",
            "purchase",
            "1",
        ],
        &[("XDG_DATA_HOME", &data)],
    ));
    assert!(card
        .dir
        .path()
        .join("office/terminal/psam-counter")
        .exists());
}
