//! `citizencard card …` and `registry …` over a registry file: every command, its table and JSON
//! output, refused transitions (exit 1) and bad input (exit 2). Cards are put into the registry
//! through host-lib here; the commands that need a card at hand are tested in `lifecycle_sim.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use host_lib::holder::input::load_csv;
use host_lib::holder::items::CardNumber;
use host_lib::holder::{Applicant, Validator};
use host_lib::registry::{ChipInfo, LoadRecord, Registry, RegistryConfig, VerifiedPurchase};

const OP: &str = "clerk-7";

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("registry.db");
        Fixture { _dir: dir, db }
    }

    fn open(&self) -> Registry {
        Registry::open(&self.db, RegistryConfig::default()).unwrap()
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_citizencard"))
            .args(["--registry", self.db.to_str().unwrap(), "--operator", OP])
            .args(args)
            .env_remove("CITIZENCARD_REGISTRY_CONFIG")
            .env(
                "PCSCLITE_CSOCK_NAME",
                "/nonexistent/citizencard-test/pcscd.comm",
            )
            .output()
            .unwrap()
    }

    /// Runs and expects exit status `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "citizencard {args:?}\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if code == 0 {
            text(&out.stdout)
        } else {
            text(&out.stderr)
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args)
    }

    fn json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn samples() -> Vec<Applicant> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/applicants/sample.csv");
    load_csv(&path, &Validator::today_in_china())
        .unwrap()
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect()
}

fn issue(reg: &mut Registry, a: &Applicant) -> CardNumber {
    let p = reg.begin_issue(OP, a, &ChipInfo::default()).unwrap();
    reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
        .unwrap();
    p.card_number
}

#[test]
fn registry_list_show_audit() {
    let f = Fixture::new();
    assert_eq!(f.ok(&["registry", "list"]).trim(), "no cards");
    let people = samples();
    let (a, b) = {
        let mut reg = f.open();
        (issue(&mut reg, &people[0]), issue(&mut reg, &people[1]))
    };
    let list = f.ok(&["registry", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("CARD") && lines[0].contains("HOLDER"));
    assert!(lines[1].starts_with(a.as_str()) && lines[1].contains("测试张一"));
    assert!(lines[2].contains(b.as_str()) && lines[2].contains("active"));

    let rows = f.json_lines(&["registry", "list", "--status", "active"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["card_number"], a.as_str());
    assert_eq!(rows[0]["status"], "active");
    assert!(f
        .json_lines(&["registry", "list", "--status", "lost"])
        .is_empty());
    assert_eq!(
        f.ok(&["registry", "list", "--status", "lost"]).trim(),
        "no cards in status lost"
    );
    let err = f.expect(2, &["registry", "list", "--status", "gone"]);
    assert!(err.contains("active, lost"), "{err}");

    // show: a card, then a person by ID number.
    let shown = f.ok(&["registry", "show", a.as_str()]);
    assert!(shown.contains("status        active"), "{shown}");
    assert!(
        shown.contains("history:") && shown.contains("first_issue"),
        "{shown}"
    );
    let v = &f.json_lines(&["registry", "show", a.as_str()])[0];
    assert_eq!(v["card"]["card_number"], a.as_str());
    assert_eq!(v["fees"][0]["amount_cents"], 0);
    assert!(v["applications"].as_array().unwrap().is_empty());
    let id = people[0].id_number().as_str();
    let person = f.ok(&["registry", "show", id]);
    assert!(
        person.contains("测试张一") && person.contains(a.as_str()),
        "{person}"
    );
    let v = &f.json_lines(&["registry", "show", id])[0];
    assert_eq!(v["cards"][0]["card_number"], a.as_str());

    // Unknown and mistyped numbers.
    let unknown = host_lib::registry::card_number::make('W', 77).unwrap();
    let err = f.expect(1, &["registry", "show", unknown.as_str()]);
    assert!(err.contains("no card"), "{err}");
    let mut typo = a.as_str().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == '9' { '0' } else { '9' });
    let err = f.expect(2, &["registry", "show", &typo]);
    assert!(err.contains("mistyped"), "{err}");
    let err = f.expect(2, &["registry", "show", "W1"]);
    assert!(err.contains("neither a card number"), "{err}");

    // audit: everything, one card, the newest record.
    let audit = f.ok(&["registry", "audit"]);
    assert!(audit.contains("issue.begin") && audit.contains("issue.complete"));
    assert!(audit.contains(OP));
    let one = f.json_lines(&["registry", "audit", "--card", b.as_str()]);
    assert!(one.iter().all(|e| e["card_number"] == b.as_str()));
    assert_eq!(one.len(), 2);
    let newest = f.json_lines(&["registry", "audit", "--limit", "1"]);
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["action"], "issue.complete");
    f.expect(1, &["registry", "audit", "--card", unknown.as_str()]);
}

#[test]
fn loss_replace_cancel_transitions_and_refusals() {
    let f = Fixture::new();
    let people = samples();
    let card = {
        let mut reg = f.open();
        let c = issue(&mut reg, &people[0]);
        reg.record_load(
            OP,
            &c,
            &LoadRecord {
                amount_cents: 5000,
                ..Default::default()
            },
        )
        .unwrap();
        c
    };
    let c = card.as_str();
    let status = f.ok(&["card", "status", c]);
    assert!(
        status.contains("active") && status.contains("50.00"),
        "{status}"
    );
    assert!(status.contains("blacklisted   no"), "{status}");

    // A loss statement before any report is refused.
    let err = f.expect(1, &["card", "loss-statement", c]);
    assert!(err.contains("never been reported lost"), "{err}");

    let out = f.ok(&["card", "report-loss", c]);
    assert!(out.contains("reported lost; blacklisted from"), "{out}");
    let err = f.expect(1, &["card", "report-loss", c]);
    assert!(err.contains("it was reported lost at"), "{err}");
    let v = &f.json_lines(&["card", "status", c])[0];
    assert_eq!(v["status"], "lost");
    assert_eq!(v["blacklisted"]["reason"], "lost");

    // A purchase uploaded after the report is the issuer's concern.
    {
        let mut reg = f.open();
        let after = reg.now() + std::time::Duration::from_secs(300);
        reg.record_purchase(
            OP,
            &card,
            &VerifiedPurchase {
                amount_cents: 250,
                at: after,
                terminal_id: "000001000050".into(),
                txn_counter: 0,
                tac: [1, 2, 3, 4],
            },
        )
        .unwrap();
    }
    let s = f.ok(&["card", "loss-statement", c]);
    assert!(
        s.contains("while reported lost (the issuer's concern): 1 purchase(s), 2.50"),
        "{s}"
    );
    assert!(s.contains("the holder's loss): 0 purchase(s), 0.00"), "{s}");
    let v = &f.json_lines(&["card", "loss-statement", c])[0];
    assert_eq!(v["issuer_total_cents"], 250);

    // Found again, then lost again.
    f.ok(&["card", "revoke-loss", c]);
    let err = f.expect(1, &["card", "revoke-loss", c]);
    assert!(err.contains("only a card reported lost"), "{err}");
    assert_eq!(f.json_lines(&["registry", "blacklist"]).len(), 0);
    let all = f.json_lines(&["registry", "blacklist", "--all"]);
    assert_eq!(all.len(), 1);
    assert!(all[0]["lifted_at"].is_string());

    // Cancel: refund, blacklisted; everything after is refused.
    let out = f.ok(&["card", "cancel", c, "--reason", "moved-away"]);
    assert!(out.contains("refund 47.50 recorded"), "{out}");
    let err = f.expect(1, &["card", "cancel", c, "--reason", "death"]);
    assert!(
        err.contains("cannot cancel card") && err.contains("cancelled"),
        "{err}"
    );
    let err = f.expect(1, &["card", "report-loss", c]);
    assert!(err.contains("a closed card needs no loss report"), "{err}");
    let err = f.expect(2, &["card", "cancel", c, "--reason", "bored"]);
    assert!(err.contains("moved-away"), "{err}");
    let err = f.expect(2, &["card", "cancel", c]);
    assert!(err.contains("--reason"), "{err}");

    // Export for terminals, both encodings, atomically replacing an older file.
    let path = f.dir().join("blacklist.txt");
    std::fs::write(&path, "old").unwrap();
    let out = f.ok(&["registry", "blacklist", "--export", path.to_str().unwrap()]);
    assert!(out.contains("1 blacklisted card(s)"), "{out}");
    let exported = std::fs::read_to_string(&path).unwrap();
    let entries = host_lib::registry::blacklist::parse_text(&exported).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].card_number, c);
    assert_eq!(entries[0].reason.as_str(), "cancelled");
    let json_path = f.dir().join("blacklist.json");
    f.ok(&[
        "registry",
        "blacklist",
        "--export",
        json_path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(doc["format"], "citizencard-blacklist");
    assert_eq!(doc["entries"][0]["card_number"], c);
    let stdout = f.ok(&["registry", "blacklist", "--export", "-"]);
    assert!(
        stdout.starts_with("# citizencard-blacklist 1\n"),
        "{stdout}"
    );
    let missing = f.dir().join("no/such/dir/list.txt");
    let err = f.expect(
        2,
        &[
            "registry",
            "blacklist",
            "--export",
            missing.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not exist"), "{err}");
    let err = f.expect(2, &["registry", "blacklist", "--format", "json"]);
    assert!(err.contains("--export"), "{err}");
    let table = f.ok(&["registry", "blacklist"]);
    assert!(table.contains(c) && table.contains("cancelled"), "{table}");

    // The audit trail of the card, in order.
    let actions: Vec<String> = f
        .json_lines(&["registry", "audit", "--card", c])
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "issue.begin",
            "issue.complete",
            "purse.load",
            "card.report_loss",
            "purse.purchase",
            "card.revoke_loss",
            "card.cancel"
        ]
    );
}

#[test]
fn one_active_card_per_person_and_operator_required() {
    let f = Fixture::new();
    let people = samples();
    let card = {
        let mut reg = f.open();
        issue(&mut reg, &people[2])
    };
    // The registry's own refusal comes through as exit 1 with its message.
    let mut reg = f.open();
    let e = reg
        .begin_issue(OP, &people[2], &ChipInfo::default())
        .unwrap_err();
    assert!(e.to_string().contains("holds one card at a time"));
    drop(reg);
    // An empty operator is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["--registry", f.db.to_str().unwrap(), "--operator", " "])
        .args(["card", "report-loss", card.as_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("name the operator"));
}

#[test]
fn help_explains_the_life_cycle() {
    let f = Fixture::new();
    let help = f.ok(&["card", "--help"]);
    for word in [
        "report-loss",
        "revoke-loss",
        "loss-statement",
        "cancel",
        "status",
    ] {
        assert!(help.contains(word), "{word}:\n{help}");
    }
    let help = f.ok(&["card", "cancel", "--help"]);
    assert!(
        help.contains("Art. 18") && help.contains("moved-away"),
        "{help}"
    );
    let help = f.ok(&["registry", "blacklist", "--help"]);
    assert!(help.contains("blacklist-format.md"), "{help}");
}

/// `purse purchase` refuses a blacklisted card, blocks its purse for good and records it; a card
/// not listed pays as before.
#[test]
fn terminal_refuses_and_blocks_a_blacklisted_card() {
    use host_lib::keys::KeySet;
    use host_lib::testing::purse::{purse_image, PurseSetup};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let keys = KeySet::load(&root.join("test-vectors/keys/dev.toml")).unwrap();
    let f = Fixture::new();
    // The test purse's application serial ends in card serial 1: the registry's first card.
    let image = f.dir().join("card.img");
    purse_image(&image, &keys, &PurseSetup::default(), [0, 0, 0, 1]).unwrap();
    let people = samples();
    let card = {
        let mut reg = f.open();
        issue(&mut reg, &people[0])
    };
    assert_eq!(card.as_str(), "W00000018");
    let state = f.dir().join("state");
    let purse = |args: &[&str]| {
        let mut a = vec!["--sim", image.to_str().unwrap(), "purse"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--state", state.to_str().unwrap()]);
        let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
            .args(["--registry", f.db.to_str().unwrap(), "--operator", OP])
            .args(&a)
            .env_remove("CITIZENCARD_KEYS")
            .current_dir(&root)
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, _, err) = purse(&["load", "20"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = purse(&["purchase", "1.50"]);
    assert_eq!(code, Some(0), "a card not listed pays: {err}");

    // Reported lost: the next purchase is refused and the purse blocked.
    f.ok(&["card", "report-loss", card.as_str()]);
    let (code, out, err) = purse(&["purchase", "1.50"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("card W00000018 is blacklisted (lost since")
            && err.contains("blocked for good")
            && err.contains("recorded in the registry's audit log"),
        "{err}"
    );
    // The card itself now refuses the purse: even a balance enquiry.
    let (code, _, err) = purse(&["balance"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("permanently blocked"), "{err}");
    let last = f.json_lines(&["registry", "audit", "--card", card.as_str(), "--limit", "1"]);
    assert_eq!(last[0]["action"], "app.block");
    assert_eq!(last[0]["details"]["application"], "purse");
    assert_eq!(last[0]["details"]["by"], "terminal");
    assert_eq!(last[0]["details"]["blacklist"]["reason"], "lost");
    let status = f.ok(&["card", "status", card.as_str()]);
    assert!(status.contains("purse blocked"), "{status}");
}

/// The terminal can check against an exported list instead of the registry; a list cut short is
/// refused before the card is touched.
#[test]
fn terminal_uses_an_exported_blacklist() {
    use host_lib::keys::KeySet;
    use host_lib::testing::purse::{purse_image, PurseSetup};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let keys = KeySet::load(&root.join("test-vectors/keys/dev.toml")).unwrap();
    let f = Fixture::new();
    let image = f.dir().join("card.img");
    purse_image(&image, &keys, &PurseSetup::default(), [0, 0, 0, 1]).unwrap();
    let card = {
        let mut reg = f.open();
        issue(&mut reg, &samples()[1])
    };
    f.ok(&[
        "card",
        "cancel",
        card.as_str(),
        "--reason",
        "no-longer-needed",
    ]);
    let list = f.dir().join("list.txt");
    f.ok(&["registry", "blacklist", "--export", list.to_str().unwrap()]);
    let cut = f.dir().join("cut.txt");
    let full = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&cut, full.lines().take(4).collect::<Vec<_>>().join("\n")).unwrap();
    let state = f.dir().join("state");
    // No registry at all: only the file.
    let elsewhere = f.dir().join("none.db");
    let purse = |list: &Path| {
        Command::new(env!("CARGO_BIN_EXE_citizencard"))
            .args(["--registry", elsewhere.to_str().unwrap()])
            .args(["--sim", image.to_str().unwrap(), "purse", "purchase", "1"])
            .args(["--blacklist", list.to_str().unwrap()])
            .args(["--state", state.to_str().unwrap()])
            .env_remove("CITIZENCARD_KEYS")
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let out = purse(&cut);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cut.txt"),
        "{}",
        text(&out.stderr)
    );
    let out = purse(&list);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // A purse-only card without a registry cannot be identified (the list is keyed on card
    // numbers, which only EF05 or the registry give): the purchase goes on, and finds no money.
    assert!(!err.contains("blacklisted"), "{err}");
    assert!(err.contains("insufficient balance"), "{err}");
    assert!(!elsewhere.exists(), "the terminal created a registry");
}

/// The life of a card through the CLI on simulated cards: issue, load and pay (recorded in the
/// ledger), application on demand, loss, replacement with the balance carried onto the new chip,
/// cancellation with the card at hand.
#[test]
fn replace_and_cancel_on_simulated_cards() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let f = Fixture::new();
    let cards = f.dir().join("cards");
    let state = f.dir().join("state");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
            .args(["--registry", f.db.to_str().unwrap(), "--operator", OP])
            .args(args)
            .env("CITIZENCARD_TERMINAL_STATE", &state)
            .env_remove("CITIZENCARD_KEYS")
            .current_dir(&root)
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}\n{out}\n{err}");
        out
    };
    let applicant = root.join("test-vectors/applicants/one.toml");
    ok(&[
        "issue",
        "--applicant",
        applicant.to_str().unwrap(),
        "--sim-dir",
        cards.to_str().unwrap(),
    ]);
    let old = cards.join("W00000018.img");
    let sim = |img: &Path| vec!["--sim".to_string(), img.to_str().unwrap().to_string()];
    let with = |img: &Path, rest: &[&str]| {
        let mut a = sim(img);
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    fn argv(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let aid = "A00000000386980701";
    let out = ok(&argv(&with(&old, &["purse", "--aid", aid, "load", "30"])));
    assert!(
        out.contains("recorded in the registry: card W00000018, ledger balance 30.00"),
        "{out}"
    );
    let out = ok(&argv(&with(
        &old,
        &["purse", "--aid", aid, "purchase", "4.5"],
    )));
    assert!(out.contains("ledger balance 25.50"), "{out}");

    // An application on demand, then switched off.
    let out = ok(&argv(&with(
        &old,
        &["app", "enable", "public", "--set", "library=L-1"],
    )));
    assert!(out.contains("application public added"), "{out}");
    let out = ok(&argv(&with(&old, &["--json", "app", "show", "public"])));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["fields"]["library"], "L-1");
    ok(&argv(&with(&old, &["app", "disable", "public"])));
    let (code, _, err) = run(&argv(&with(&old, &["app", "show", "public"])));
    assert_eq!(code, Some(1));
    assert!(err.contains("disabled"), "{err}");
    let (code, _, err) = run(&["app", "enable", "public"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs the card"), "{err}");

    // Replacing an active card as lost is refused; after the report it works.
    let (code, _, err) = run(&[
        "card",
        "replace",
        "W00000018",
        "--reason",
        "lost",
        "--sim-dir",
        cards.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("report the loss first"), "{err}");
    let (code, _, err) = run(&["card", "replace", "W00000018", "--reason", "data-changed"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--applicant"), "{err}");
    ok(&["card", "report-loss", "W00000018"]);
    // An offline terminal with only the exported list: the card is identified by EF05 and
    // refused; its purse is blocked although no registry records it.
    let list = f.dir().join("list.txt");
    ok(&["registry", "blacklist", "--export", list.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["--registry", f.dir().join("none.db").to_str().unwrap()])
        .args(argv(&with(&old, &["purse", "--aid", aid, "purchase", "1"])))
        .args(["--blacklist", list.to_str().unwrap()])
        .env("CITIZENCARD_TERMINAL_STATE", &state)
        .env_remove("CITIZENCARD_KEYS")
        .current_dir(&root)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("card W00000018 is blacklisted (lost since") && err.contains("no registry"),
        "{err}"
    );
    // The replacement, interrupted after the registry completed it: the terminal state cannot be
    // made, so the carried-over balance stays owed to the new chip...
    let blocked_state = f.dir().join("list.txt/state");
    let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["--registry", f.db.to_str().unwrap(), "--operator", OP])
        .args([
            "card",
            "replace",
            "W00000018",
            "--reason",
            "lost",
            "--sim-dir",
        ])
        .arg(&cards)
        .env("CITIZENCARD_TERMINAL_STATE", &blocked_state)
        .current_dir(&root)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v = &f.json_lines(&["card", "status", "W00000026"])[0];
    assert_eq!(v["status"], "active");
    assert_eq!(v["owed_to_chip_cents"], 2550);
    // ...and the same command again loads it (the old card is closed by now).
    let out = ok(&[
        "--json",
        "card",
        "replace",
        "W00000018",
        "--reason",
        "lost",
        "--sim-dir",
        cards.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["new_card"], "W00000026");
    assert_eq!(v["carried_onto_chip_cents"], 2550);
    assert_eq!(v["still_owed_cents"], 0);
    let d = &f.json_lines(&["registry", "show", "W00000026"])[0];
    assert_eq!(d["fees"][0]["amount_cents"], 2000);
    assert_eq!(d["balance_cents"], 2550);
    let new = cards.join("W00000026.img");
    let out = ok(&argv(&with(&new, &["purse", "--aid", aid, "balance"])));
    assert!(out.contains("balance 25.50 yuan"), "{out}");
    // Replacing again is refused (the old card is closed; nothing is owed to the new chip).
    let (code, _, err) = run(&[
        "card",
        "replace",
        "W00000018",
        "--reason",
        "lost",
        "--sim-dir",
        cards.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cancelled"), "{err}");

    // Cancel with the wrong card at hand: nothing changes; with the right one, the purse blocks.
    let (code, _, err) = run(&argv(&with(
        &old,
        &["card", "cancel", "W00000026", "--reason", "moved-away"],
    )));
    assert_eq!(code, Some(1));
    assert!(err.contains("is W00000018, not W00000026"), "{err}");
    assert!(f.ok(&["card", "status", "W00000026"]).contains("active"));
    let out = ok(&argv(&with(
        &new,
        &["card", "cancel", "W00000026", "--reason", "moved-away"],
    )));
    assert!(
        out.contains("refund 25.50") && out.contains("blocked for good"),
        "{out}"
    );
    let (code, _, err) = run(&argv(&with(&new, &["purse", "--aid", aid, "balance"])));
    assert_eq!(code, Some(1));
    assert!(err.contains("permanently blocked"), "{err}");
    let actions: Vec<String> = f
        .json_lines(&["registry", "audit", "--card", "W00000026"])
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "replace.begin",
            "issue.complete",
            "purse.carry_over_intent",
            "purse.carry_over",
            "card.cancel",
            "app.block"
        ]
    );
}

#[test]
fn the_demo_tells_the_whole_story_and_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["demo", "--keep", keep.to_str().unwrap()])
        // The demo needs nothing from the source tree or the environment.
        .current_dir(dir.path())
        .env_remove("CITIZENCARD_REGISTRY")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for step in [
        "1. Issue a card",
        "2. Read it back",
        "3. Load 100.00",
        "4. Pay 2.00",
        "6. The holder reports the card lost",
        "refused: card W00000018 is blacklisted",
        "before the report (the holder's loss): 1 purchase(s), 2.00",
        "98.00 carried over: the new card's purse holds 98.00 yuan",
        "refund 98.00 recorded",
        "no disagreement (`registry verify`)",
        "PUBLIC development key set",
    ] {
        assert!(stdout.contains(step), "{step:?} missing:\n{stdout}");
    }
    let db = keep.join("registry.db");
    let list = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args([
            "--registry",
            db.to_str().unwrap(),
            "--json",
            "registry",
            "list",
        ])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = text(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["status"] == "cancelled"));
    assert!(keep.join("cards/W00000026.img").exists());
    // A second run refuses to mix its registry with the first one's.
    let again = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["demo", "--keep", keep.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("not empty"));
}

/// A replacement whose new card was reserved but never finished (the card pulled out during its
/// personalization) is resumed by the same command: the same new card number, the old card
/// untouched until then.
#[test]
fn an_unfinished_replacement_is_resumed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let f = Fixture::new();
    let cards = f.dir().join("cards");
    let issue = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args([
            "--registry",
            f.db.to_str().unwrap(),
            "--operator",
            OP,
            "issue",
        ])
        .args([
            "--applicant",
            "test-vectors/applicants/one.toml",
            "--sim-dir",
        ])
        .arg(&cards)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(issue.status.success(), "{}", text(&issue.stderr));
    let old = CardNumber::parse("W00000018").unwrap();
    let pending = {
        let mut reg = f.open();
        reg.begin_replace(
            OP,
            &old,
            host_lib::registry::ReplaceReason::Damaged,
            &ChipInfo::default(),
        )
        .unwrap()
        .card_number
    };
    // The old card stays active while its replacement is being personalized.
    assert!(f.ok(&["card", "status", "W00000018"]).contains("active"));
    let err = f.expect(1, &["card", "cancel", "W00000018", "--reason", "death"]);
    assert!(err.contains("is being personalized"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_citizencard"))
        .args(["--registry", f.db.to_str().unwrap(), "--operator", OP])
        .args([
            "card",
            "replace",
            "W00000018",
            "--reason",
            "damaged",
            "--sim-dir",
        ])
        .arg(&cards)
        .env("CITIZENCARD_TERMINAL_STATE", f.dir().join("state"))
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("resuming the replacement {pending}")),
        "{stdout}"
    );
    let rows = f.json_lines(&["registry", "list"]);
    let states: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["card_number"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("W00000018".to_owned(), "cancelled".to_owned()),
            (pending.to_string(), "active".to_owned())
        ]
    );
}
