//! The e-purse end to end through a real pcscd (vsmartcard's vpcd reader): `citizencard purse`
//! against `citizencard sim serve` (also with `--tear`, the card pulled out during DEBIT and
//! CREDIT), and the sequence a phone reading a Chinese transit card sends, through host-lib and
//! through opensc-tool.
//!
//! Run by `scripts/test.sh` (pcscd started, `CITIZENCARD_E2E=1`); without the variable every test
//! here prints a note and passes without doing anything. In a private namespace:
//! `/tmp/hostpriv/ns-bare.sh /tmp/e2e-one.sh cargo test -p citizencard --test e2e_purse`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use card_os::sim::SimCard;
use host_lib::keys::{KeySet, TerminalCounter};
use host_lib::terminal::{LogRecord, Terminal, TerminalConfig, DEFAULT_AID};
use host_lib::testing::purse::{purse_card, purse_image, PurseSetup};
use host_lib::testing::{e2e_context, run_tool, vpcd_reader_prefix, ServedCard, SlotLock};
use host_lib::transport::pcsc::{self, PcscTransport};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;

const VISIBLE: Duration = Duration::from_secs(15);
const TOOL: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dev_keys() -> KeySet {
    KeySet::load(&root().join("test-vectors/keys/dev.toml"))
        .unwrap()
        .with_terminal_counter(TerminalCounter::in_memory(1000))
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn hx(b: &[u8]) -> String {
    hex::encode_upper(b)
}

/// A purse image in `dir` with `cents` loaded (in process, before serving).
fn purse_with(dir: &Path, cents: u32) -> PathBuf {
    let path = dir.join("card.img");
    let keys = dev_keys();
    purse_image(&path, &keys, &PurseSetup::default(), [0x0E, 0x2E, 0, 1]).unwrap();
    let t = SimTransport::open_image(&path).unwrap();
    let mut terminal = Terminal::new(t, &keys, TerminalConfig::default());
    terminal.load(cents).unwrap();
    path
}

/// The ATR of the card in `image`, read from a copy in memory: the image may be in use by
/// `sim serve` (which holds its lock).
fn atr_of(image: &Path) -> Vec<u8> {
    let (_, nvm) = card_os::sim::image::load(image).unwrap();
    let card = card_os::sim::SimCard::from_nvm(nvm)
        .map_err(|(_, e)| format!("{e:?}"))
        .unwrap();
    card.atr().to_vec()
}

/// `citizencard sim serve` in a child process on a locked vpcd slot, its stderr in a file.
struct Served {
    child: Child,
    log: PathBuf,
    lock: SlotLock,
}

impl Served {
    fn start(ctx: &::pcsc::Context, image: &Path, slot: u16, extra: &[&str]) -> Served {
        let lock = SlotLock::acquire(slot);
        lock.wait_empty(ctx, VISIBLE);
        let log = image.with_extension(format!("serve{slot}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_citizencard"))
            .args(["sim", "serve", "-v", "--image"])
            .arg(image)
            .args(["--vpcd", &format!("127.0.0.1:{}", 35963 + slot)])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let served = Served { child, log, lock };
        served.wait_visible(ctx, &atr_of(image));
        served
    }

    fn reader(&self) -> String {
        vpcd_reader_prefix(self.lock.slot())
    }

    fn wait_visible(&self, ctx: &::pcsc::Context, atr: &[u8]) {
        let start = Instant::now();
        let prefix = self.reader();
        loop {
            let readers = pcsc::list_readers(ctx).unwrap_or_default();
            if readers
                .iter()
                .any(|r| r.name.starts_with(&prefix) && r.state.has_card() && r.atr == atr)
            {
                return;
            }
            assert!(
                start.elapsed() < VISIBLE,
                "the served card did not appear in `{prefix}`; serve said:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops serving (SIGTERM, as Ctrl-C would) and returns what it printed.
    fn stop(mut self, ctx: &::pcsc::Context) -> String {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if term.is_ok_and(|s| s.success()) {
            let status = self.child.wait().unwrap();
            assert!(status.success(), "sim serve ended with {status}");
        } else {
            // No kill(1): stop it the hard way (the image is written as the card goes).
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.lock.wait_empty(ctx, VISIBLE);
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `citizencard -r READER purse ARGS` with its own terminal state.
fn purse(reader: &str, state: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.args(["-r", reader, "purse"])
        .args(args)
        .env_remove("CITIZENCARD_READER")
        .env_remove("CITIZENCARD_KEYS")
        .env("CITIZENCARD_TERMINAL_STATE", state)
        .current_dir(root());
    run_tool(&mut c, TOOL).into_output()
}

trait IntoOutput {
    fn into_output(self) -> Output;
}

impl IntoOutput for host_lib::testing::ToolOutput {
    fn into_output(self) -> Output {
        Output {
            status: self.status,
            stdout: self.stdout.into_bytes(),
            stderr: self.stderr.into_bytes(),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr))
}

/// The commands (INS bytes) the served card received, from `sim serve -v`'s log.
fn ins_seen(log: &str) -> Vec<u8> {
    log.lines()
        .filter_map(|l| l.strip_prefix("citizencard: > "))
        .map(|l| h(&l[2..4])[0])
        .collect()
}

fn balance_in(image: &Path) -> u32 {
    let keys = dev_keys();
    let mut t = Terminal::new(
        SimTransport::open_image(image).unwrap(),
        &keys,
        TerminalConfig::default(),
    );
    t.balance().unwrap()
}

#[test]
fn purse_purchase_and_load_through_pcscd() {
    let Some(ctx) = e2e_context("purse_purchase_and_load_through_pcscd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = purse_with(dir.path(), 10_000);
    let state = dir.path().join("state");
    let served = Served::start(&ctx, &image, 1, &[]);
    let reader = served.reader();

    let o = purse(&reader, &state, &["purchase", "12.34"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(
        out.contains("purchase of 12.34 yuan done: balance 100.00 -> 87.66 yuan"),
        "{out}"
    );
    assert!(out.contains("verified; 3 APDUs"), "{out}");
    let o = purse(
        &reader,
        &state,
        &["load", "10", "--terminal", "330300009001"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        text(&o.stdout).contains("verified; 3 APDUs"),
        "{}",
        show(&o)
    );
    let o = purse(&reader, &state, &["--json", "balance"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["balance_cents"], 9_766);

    let log = served.stop(&ctx);
    // What the card received: a purchase is SELECT, INITIALIZE, DEBIT; a load SELECT,
    // INITIALIZE, CREDIT; a balance SELECT, GET BALANCE.
    assert_eq!(
        ins_seen(&log),
        [0xA4, 0x50, 0x54, 0xA4, 0x50, 0x52, 0xA4, 0x5C],
        "{log}"
    );
    eprintln!(
        "APDUs through pcscd: purchase 3 (SELECT, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE), \
         load 3 (SELECT, INITIALIZE FOR LOAD, CREDIT FOR LOAD)"
    );
    assert_eq!(balance_in(&image), 9_766);
}

/// The page writes of a DEBIT FOR PURCHASE (or CREDIT FOR LOAD) on this card, by length.
fn writes_of(image: &Path, purchase: bool) -> Vec<usize> {
    let keys = dev_keys();
    let (_, nvm) = card_os::sim::image::load(image).unwrap();
    let card = SimCard::from_nvm(nvm).map_err(|(_, e)| e).unwrap();
    let mut t = Terminal::new(
        SimTransport::from_card(card, "copy"),
        &keys,
        TerminalConfig::default(),
    );
    t.balance().unwrap();
    t.transport_mut().card_mut().nvm_mut().start_recording();
    if purchase {
        t.purchase(250, None).unwrap();
    } else {
        t.load(250).unwrap();
    }
    t.transport_mut().card_mut().nvm_mut().take_recording()
}

fn log_of(image: &Path) -> Vec<LogRecord> {
    let keys = dev_keys();
    let mut t = Terminal::new(
        SimTransport::open_image(image).unwrap(),
        &keys,
        TerminalConfig::default(),
    );
    t.log().unwrap()
}

/// Serves the image with `tear`, runs `purse ARGS`, stops; returns the outcome and serve's log.
fn torn_run(
    ctx: &::pcsc::Context,
    image: &Path,
    state: &Path,
    tear: &[&str],
    args: &[&str],
) -> (Output, String) {
    let served = Served::start(ctx, image, 1, tear);
    let o = purse(&served.reader(), state, args);
    // After a tear the card comes back; let pcscd see it before stopping.
    served.wait_visible(ctx, &atr_of(image));
    let log = served.stop(ctx);
    (o, log)
}

#[test]
fn purchase_torn_at_debit_through_pcscd() {
    let Some(ctx) = e2e_context("purchase_torn_at_debit_through_pcscd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = purse_with(dir.path(), 10_000);
    let state = dir.path().join("state");
    let writes = writes_of(&image, true);
    let last = writes.len() - 1;

    // Cut before the DEBIT's first write: not done, nothing debited.
    let (o, log) = torn_run(
        &ctx,
        &image,
        &state,
        &["--tear", "ins=54,write=0", "--tear-away", "1"],
        &["purchase", "2.50"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = text(&o.stderr);
    assert!(
        err.contains("the card was lost during DEBIT FOR PURCHASE"),
        "{err}"
    );
    assert!(err.contains("the card is back"), "{err}");
    assert!(err.contains("purchase of 2.50 yuan was NOT made"), "{err}");
    assert!(err.contains("the balance is 100.00 yuan"), "{err}");
    assert!(
        log.contains("power cut at write 0 after 0 byte(s)"),
        "{log}"
    );
    assert_eq!(balance_in(&image), 10_000);
    assert_eq!(log_of(&image).len(), 1);

    // Cut right after the DEBIT's last write: done, proven, debited once.
    let cut = format!("ins=54,write={last},byte=255");
    let (o, log) = torn_run(
        &ctx,
        &image,
        &state,
        &["--tear", &cut],
        &["purchase", "2.50"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(
        out.contains("purchase of 2.50 yuan done: balance 100.00 -> 97.50 yuan"),
        "{out}"
    );
    assert!(out.contains("verified"), "{out}");
    assert!(out.contains("the card proved the transaction"), "{out}");
    assert!(log.contains(&format!("power cut at write {last}")), "{log}");
    assert_eq!(balance_in(&image), 9_750);
    assert_eq!(log_of(&image).len(), 2);

    // Random cuts (seeded): whatever the outcome, the report and the card agree.
    for seed in ["6", "3"] {
        let before = balance_in(&image);
        let records = log_of(&image).len();
        let (o, log) = torn_run(
            &ctx,
            &image,
            &state,
            &["--tear", "ins=54,random", "--seed", seed],
            &["purchase", "1"],
        );
        assert!(log.contains("power cut at write"), "{log}");
        let after = balance_in(&image);
        eprintln!(
            "--tear ins=54,random --seed {seed}: {} -> exit {:?}{}",
            log.lines()
                .find(|l| l.contains("power cut"))
                .unwrap_or_default()
                .trim_start_matches("citizencard: tear: "),
            o.status.code(),
            text(&o.stderr)
                .lines()
                .chain(text(&o.stdout).lines())
                .find(|l| l.contains("NOT made") || l.contains("done"))
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        );
        match o.status.code() {
            Some(0) => {
                assert!(text(&o.stdout).contains("done"), "{}", show(&o));
                assert_eq!(after, before - 100, "{}", show(&o));
                assert_eq!(log_of(&image).len(), records + 1);
            }
            Some(1) => {
                assert!(text(&o.stderr).contains("was NOT made"), "{}", show(&o));
                assert_eq!(after, before, "{}", show(&o));
                assert_eq!(log_of(&image).len(), records);
            }
            other => panic!("{other:?}: {}", show(&o)),
        }
    }
    // Nothing is left pending.
    let pending: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("pending-"))
        .collect();
    assert!(pending.is_empty());
}

#[test]
fn load_torn_at_credit_through_pcscd() {
    let Some(ctx) = e2e_context("load_torn_at_credit_through_pcscd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = purse_with(dir.path(), 1_000);
    let state = dir.path().join("state");
    let last = writes_of(&image, false).len() - 1;
    let (o, _) = torn_run(
        &ctx,
        &image,
        &state,
        &["--tear", "ins=52,write=0,byte=1"],
        &["load", "20"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        text(&o.stderr).contains("load of 20.00 yuan was NOT made"),
        "{}",
        show(&o)
    );
    assert!(
        text(&o.stderr).contains("lost during CREDIT FOR LOAD"),
        "{}",
        show(&o)
    );
    assert_eq!(balance_in(&image), 1_000);
    let (o, _) = torn_run(
        &ctx,
        &image,
        &state,
        &["--tear", &format!("ins=52,write={last},byte=255")],
        &["load", "20", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["recovered"].as_bool(),
            v["verified"].as_bool()
        ),
        (Some("done"), Some(true), Some(true))
    );
    assert_eq!(v["balance_after_cents"], 3_000);
    assert_eq!(balance_in(&image), 3_000);
}

/// opensc-tool's answers: the hex of each `Received (SW1=0x.., SW2=0x..):` block, data then SW.
/// A data line holds up to 16 bytes as `XX ` groups in its first 48 columns, then their text.
fn opensc_answers(out: &str) -> Vec<String> {
    let mut answers = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Received (SW1=0x") else {
            continue;
        };
        let sw: String = [&rest[..2], &rest[rest.find("SW2=0x").unwrap() + 6..][..2]].concat();
        let mut data = String::new();
        while let Some(next) = lines.peek() {
            if next.is_empty() || next.starts_with("Sending:") || next.starts_with("Received") {
                break;
            }
            let groups: String = next.chars().take(48).collect();
            data.extend(
                groups
                    .split(' ')
                    .filter(|g| g.len() == 2 && g.chars().all(|c| c.is_ascii_hexdigit())),
            );
            lines.next();
        }
        answers.push(format!("{data}{sw}").to_uppercase());
    }
    answers
}

/// A phone reading a transit card: SELECT the purse by name, READ BINARY SFI 15, GET BALANCE
/// `80 5C 00 02 04`, READ RECORD SFI 18 records 1..10, through pcscd with host-lib and with
/// opensc-tool, against a card with 12 transactions (so the cyclic log is full and wrapped).
#[test]
fn phone_reader_sequence_through_pcscd() {
    let Some(ctx) = e2e_context("phone_reader_sequence_through_pcscd") else {
        return;
    };
    let keys = dev_keys();
    let setup = PurseSetup::default();
    let card = purse_card(&keys, &setup, [0x0E, 0x2E, 0, 2]).unwrap();
    let mut t = Terminal::new(
        SimTransport::from_card(card, "phone test"),
        &keys,
        TerminalConfig::default(),
    );
    t.load(5_000).unwrap();
    for i in 0..10u32 {
        t.purchase(100 + i, None).unwrap();
    }
    t.load(1_000).unwrap();
    let expected_balance = 5_000 + 1_000 - (100..110).sum::<u32>();
    let expected_log = t.log().unwrap();
    assert_eq!(expected_log.len(), 10);
    let mut card = t.into_transport().into_card();
    card.power_off();
    let served = ServedCard::start(card, 0);
    let reader = served.wait_visible(&ctx, VISIBLE);

    let mut select = vec![0x00, 0xA4, 0x04, 0x00, DEFAULT_AID.len() as u8];
    select.extend_from_slice(&DEFAULT_AID);
    select.push(0x00);
    let mut commands = vec![select, h("00B0950000"), h("805C000204")];
    commands.extend((1..=10u8).map(|n| vec![0x00, 0xB2, n, 0xC4, 0x00]));

    // host-lib's PC/SC transport, no T=0 layer: every answer must come in one exchange.
    let mut raw = PcscTransport::open(Some(&reader.name), None).unwrap();
    let answers: Vec<Vec<u8>> = commands.iter().map(|c| raw.transmit(c).unwrap()).collect();
    drop(raw);
    for a in &answers {
        assert_eq!(a[a.len() - 2..], [0x90, 0x00], "{}", hx(a));
    }
    assert_eq!(&answers[1][..30], setup.public_data().as_slice());
    assert_eq!(
        answers[2],
        [&expected_balance.to_be_bytes()[..], &[0x90, 0x00]].concat()
    );
    let log: Vec<LogRecord> = answers[3..]
        .iter()
        .enumerate()
        .map(|(i, a)| LogRecord::parse(i as u8 + 1, &a[..a.len() - 2]).unwrap())
        .collect();
    assert_eq!(log, expected_log);
    assert_eq!((log[0].txn_type, log[0].amount), (0x02, 1_000));
    assert_eq!(
        (log[1].txn_type, log[1].amount, log[1].counter),
        (0x06, 109, 9)
    );

    // opensc-tool sends the same APDUs and must show the same answers.
    let mut cmd = Command::new("opensc-tool");
    cmd.args(["-r", &reader.index.to_string(), "-c", "default"]);
    for c in &commands {
        cmd.args(["-s", &hx(c)]);
    }
    let out = run_tool(&mut cmd, TOOL);
    assert!(out.status.success(), "opensc-tool: {out:?}");
    let expected: Vec<String> = answers.iter().map(|a| hx(a)).collect();
    assert_eq!(opensc_answers(&out.stdout), expected, "{}", out.stdout);
    served.stop();
}

/// How long a purchase takes through pcscd and vpcd, and how many APDUs the card receives for it
/// (counted by the card's bridge, not by the terminal).
#[test]
fn purchase_apdus_and_time_through_pcscd() {
    let Some(ctx) = e2e_context("purchase_apdus_and_time_through_pcscd") else {
        return;
    };
    let keys = dev_keys();
    let card = purse_card(&keys, &PurseSetup::default(), [0x0E, 0x2E, 0, 3]).unwrap();
    let mut t = Terminal::new(
        SimTransport::from_card(card, "timing"),
        &keys,
        TerminalConfig::default(),
    );
    t.load(100_000).unwrap();
    let mut card = t.into_transport().into_card();
    card.power_off();
    let served = ServedCard::start(card, 0);
    let reader = served.wait_visible(&ctx, VISIBLE);
    let pcsc = PcscTransport::open(Some(&reader.name), None).unwrap();
    let mut t = Terminal::new(pcsc, &keys, TerminalConfig::default());
    let n = 50u32;
    let start = Instant::now();
    for _ in 0..n {
        let r = t.purchase(1, None).unwrap();
        assert!(r.verified);
        assert_eq!(r.apdus, 3);
    }
    let per = start.elapsed() / n;
    let load_start = Instant::now();
    let r = t.load(n).unwrap();
    let load_time = load_start.elapsed();
    assert_eq!((r.apdus, r.balance_after), (3, 100_000));
    drop(t);
    let (_, stats) = served.stop();
    assert_eq!(stats.apdus, u64::from(3 * n + 3), "APDUs the card received");
    eprintln!(
        "through pcscd + vpcd: a purchase is 3 APDUs (SELECT, INITIALIZE FOR PURCHASE, DEBIT FOR \
         PURCHASE) and takes {per:?} ({n} purchases, MACs by the development key set); a load is \
         3 APDUs and took {load_time:?}"
    );
}
