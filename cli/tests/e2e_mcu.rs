//! The card OS on the emulated Cortex-M0 chip (card-os/firmware in QEMU) through a real pcscd:
//! `citizencard sim serve --mcu` puts the chip into vsmartcard's vpcd reader, and the tools drive
//! it as any card: the FMCOS file transcript with `citizencard script`, a full personalization
//! with the default profile with `citizencard issue`, then `citizencard purse load` and
//! `purse purchase`; the image written back when serving stops holds the new balance.
//!
//! Run by `scripts/test.sh` (pcscd started, firmware built, `CITIZENCARD_E2E=1` and
//! `CITIZENCARD_MCU=1`); without both variables every test here prints a note and passes without
//! doing anything.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use card_os::sim::SimCard;
use host_lib::keys::{KeySet, TerminalCounter};
use host_lib::terminal::{Terminal, TerminalConfig};
use host_lib::testing::{
    e2e_context, mcu_context, run_tool, vpcd_reader_prefix, Firmware, SlotLock, ToolOutput,
};
use host_lib::transport::sim::SimTransport;

// A bound, not a timing check: the emulated chip answers pcscd's power-on through QEMU, which on a
// loaded 2-core machine once took longer than 20 s (seen in a full scripts/test.sh run while
// other builds ran; 3–4 s when the machine is quiet).
const VISIBLE: Duration = Duration::from_secs(60);
const TOOL: Duration = Duration::from_secs(120);
const SLOT: u16 = 1;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.env_remove("CITIZENCARD_READER")
        .env_remove("CITIZENCARD_KEYS")
        .env_remove("CITIZENCARD_REGISTRY")
        .current_dir(root());
    c
}

fn ok(out: &ToolOutput, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// A blank card image the chip holds (16 KiB of NVM).
fn blank(dir: &Path, name: &str, serial: &str) -> PathBuf {
    let image = dir.join(name);
    let mut c = bin();
    c.args([
        "sim", "new", "--force", "--size", "16384", "--serial", serial, "--image",
    ])
    .arg(&image);
    ok(&run_tool(&mut c, TOOL), "sim new");
    image
}

fn atr_of(image: &Path) -> Vec<u8> {
    let (_, nvm) = card_os::sim::image::load(image).unwrap();
    let Ok(card) = SimCard::from_nvm(nvm) else {
        panic!("{} does not power up", image.display())
    };
    card.atr().to_vec()
}

/// `citizencard sim serve --mcu` in a child process on the locked slot, its stderr in a file.
struct Served {
    child: Child,
    log: PathBuf,
    lock: SlotLock,
}

impl Served {
    fn start(ctx: &::pcsc::Context, image: &Path, firmware: &Path) -> Served {
        let lock = SlotLock::acquire(SLOT);
        lock.wait_empty(ctx, VISIBLE);
        let log = image.with_extension("serve.log");
        let child = bin()
            .args(["sim", "serve", "-v", "--image"])
            .arg(image)
            .args(["--vpcd", &format!("127.0.0.1:{}", 35963 + SLOT), "--mcu"])
            .arg(firmware)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let served = Served { child, log, lock };
        let atr = atr_of(image);
        let start = Instant::now();
        let prefix = vpcd_reader_prefix(SLOT);
        while !host_lib::transport::pcsc::list_readers(ctx)
            .unwrap_or_default()
            .iter()
            .any(|r| r.name.starts_with(&prefix) && r.state.has_card() && r.atr == atr)
        {
            assert!(
                start.elapsed() < VISIBLE,
                "the chip did not appear in `{prefix}`; serve said:\n{}",
                std::fs::read_to_string(&served.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        served
    }

    /// Stops serving (SIGTERM, as Ctrl-C would: the image is written back) and returns the log.
    fn stop(mut self, ctx: &::pcsc::Context) -> String {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(
            status.success(),
            "sim serve --mcu ended with {status}:\n{log}"
        );
        self.lock.wait_empty(ctx, VISIBLE);
        log
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_chip_in_the_vpcd_reader_runs_the_transcript_an_issuance_and_purse_commands() {
    let test = "the_chip_in_the_vpcd_reader_runs_the_transcript_an_issuance_and_purse_commands";
    let Some(ctx) = e2e_context(test) else {
        return;
    };
    let Some(config) = mcu_context(test, Firmware::Production) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reader = vpcd_reader_prefix(SLOT);

    // The FMCOS file transcript, every expectation checked by `citizencard script`.
    let files = blank(dir.path(), "files.img", "00004710");
    let served = Served::start(&ctx, &files, &config.firmware);
    let mut c = bin();
    c.args([
        "-r",
        &reader,
        "script",
        "test-vectors/transcripts/fmcos-files.apdu",
    ])
    .arg("--no-auto-get-response");
    ok(
        &run_tool(&mut c, TOOL),
        "script fmcos-files.apdu on the chip",
    );
    let log = served.stop(&ctx);
    assert!(log.contains("emulated nRF51822"), "{log}");

    // A full personalization with the default profile, then a load and a purchase.
    let card = blank(dir.path(), "card.img", "00004711");
    let served = Served::start(&ctx, &card, &config.firmware);
    let registry = dir.path().join("registry.db");
    let mut c = bin();
    c.args([
        "-r",
        &reader,
        "issue",
        "--applicant",
        "test-vectors/applicants/one.toml",
    ])
    .args(["--operator", "e2e", "--registry"])
    .arg(&registry);
    ok(&run_tool(&mut c, TOOL), "issue on the chip");
    let state = dir.path().join("terminal-state");
    let purse = |args: &[&str]| {
        let mut c = bin();
        c.args(["-r", &reader, "purse"])
            .args(args)
            .env("CITIZENCARD_TERMINAL_STATE", &state);
        run_tool(&mut c, TOOL)
    };
    ok(&purse(&["load", "100"]), "purse load on the chip");
    let out = purse(&["purchase", "2.50"]);
    ok(&out, "purse purchase on the chip");
    assert!(
        out.stdout
            .contains("purchase of 2.50 yuan done: balance 100.00 -> 97.50 yuan"),
        "{}",
        out.stdout
    );
    served.stop(&ctx);

    // The image the chip wrote back holds the card as the chip left it.
    let keys = KeySet::load(&root().join("test-vectors/keys/dev.toml"))
        .unwrap()
        .with_terminal_counter(TerminalCounter::in_memory(1000));
    let mut t = Terminal::new(
        SimTransport::open_image(&card).unwrap(),
        &keys,
        TerminalConfig::default(),
    );
    assert_eq!(t.balance().unwrap(), 9_750);
}
