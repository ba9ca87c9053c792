//! Test support (feature `test-support`): a small test card, and helpers for end-to-end tests that
//! go through a real `pcscd` and vsmartcard's vpcd reader.
//!
//! * [`ToyCard`] — a tiny, strict T=0-style card (SELECT, GET DATA of any length, GET RESPONSE,
//!   `61xx`/`6Cxx`), usable in process (it is a [`Transport`]) and through vpcd (it is a
//!   [`VirtualCard`]). It stands in until the real card engine can be served the same way.
//! * [`e2e_context`] — the gate: with `CITIZENCARD_E2E=1` an unreachable pcscd is a test
//!   **failure**; without the variable the test is skipped with a note.
//! * [`ServedCard`] — serves any [`VirtualCard`] on a vpcd slot in a background thread, holds a
//!   lock file per slot so e2e tests (also across processes) never share a slot, waits until the
//!   card is visible through PC/SC, and stops it again (also on drop).
//! * [`run_tool`] — runs a third-party program with a time limit, capturing its output.
//! * [`purse`] — a personalized purse application (keys loaded with the issuer's key store) to
//!   test terminals against.

pub mod invariants;
pub mod purse;

use std::fs::File;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use card_os::apdu::{Command as Apdu, Sw};
use card_os::sim::vpcd::{self, VirtualCard};

use crate::transport::{self, pcsc, ReaderInfo, Transport};

/// The toy card's application identifier: `F0` (proprietary RID) + "TOYC" + `01`.
pub const TOY_AID: [u8; 6] = [0xF0, 0x54, 0x4F, 0x59, 0x43, 0x01];

/// Largest GET DATA length the toy card serves (P1-P2 = length).
pub const TOY_MAX_DATA: usize = 1024;

/// A small test card with strict T=0 behaviour:
///
/// | command | answer |
/// |---|---|
/// | `00 A4 04 00 Lc TOY_AID [Le]` | FCI `6F .. 84 06 AID A5 03 88 01 01`: with no Le `61xx` (then GET RESPONSE), with Le ≥ its length FCI + `9000`, with a smaller Le `6Cxx` |
/// | `00 A4 04 00 Lc other` | `6A82` |
/// | `80 CA P1 P2 [Le]` | N = P1P2 bytes (`i ^ 0x5A`): with no Le `61xx`; with Le = N (or Le = 256 when N > 256) the data (the rest via `61xx`); another Le `6Cxx` (`6C00` when N > 256) |
/// | `00 C0 00 00 Le` | the next Le pending bytes (`61xx` while more remain); Le larger than what is pending `6Cxx`; nothing pending `6985` |
/// | malformed | `6700`; another CLA `6E00`; another INS `6D00` |
///
/// Any command other than GET RESPONSE drops pending data, as do reset and power-off.
#[derive(Clone, Debug)]
pub struct ToyCard {
    atr: Vec<u8>,
    selected: bool,
    pending: Vec<u8>,
    /// Commands processed so far.
    pub apdus: u64,
}

impl ToyCard {
    /// A toy card whose ATR carries a fresh 4-byte serial, so tests can recognise their own card.
    pub fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let serial = (std::process::id() ^ nanos).wrapping_add(n.wrapping_mul(0x9E37_79B9));
        Self::with_serial(serial.to_be_bytes())
    }

    /// A toy card with the given serial in its ATR.
    pub fn with_serial(serial: [u8; 4]) -> Self {
        // TS=3B; T0=88: TD1 follows, 8 historical bytes; TD1=80: T=0, TD2 follows; TD2=01: T=1.
        let mut atr = vec![0x3B, 0x88, 0x80, 0x01];
        atr.extend_from_slice(b"TOYC");
        atr.extend_from_slice(&serial);
        // TCK: XOR of T0 up to the last historical byte (required when T=1 is offered).
        let tck = atr[1..].iter().fold(0, |a, b| a ^ b);
        atr.push(tck);
        ToyCard {
            atr,
            selected: false,
            pending: Vec::new(),
            apdus: 0,
        }
    }

    /// The ATR.
    pub fn atr_bytes(&self) -> &[u8] {
        &self.atr
    }

    /// Whether the toy application is selected.
    pub fn is_selected(&self) -> bool {
        self.selected
    }

    /// The FCI returned by SELECT.
    pub fn fci() -> Vec<u8> {
        let mut inner = vec![0x84, TOY_AID.len() as u8];
        inner.extend_from_slice(&TOY_AID);
        inner.extend_from_slice(&[0xA5, 0x03, 0x88, 0x01, 0x01]);
        let mut fci = vec![0x6F, inner.len() as u8];
        fci.extend_from_slice(&inner);
        fci
    }

    /// The GET DATA payload of length `n`.
    pub fn data_of_len(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i as u8) ^ 0x5A).collect()
    }

    fn clear(&mut self) {
        self.selected = false;
        self.pending.clear();
    }

    /// Answers `data` as T=0 does: with no Le, park it and say `61xx`; with Le, send up to Le
    /// bytes (strictly: a short case-2 Le that differs from the length gets `6Cxx`).
    fn respond(&mut self, data: Vec<u8>, ne: Option<usize>) -> Vec<u8> {
        match ne {
            _ if data.is_empty() => Sw::SUCCESS.to_bytes().to_vec(),
            None => {
                let sw = Sw::more_data(data.len());
                self.pending = data;
                sw.to_bytes().to_vec()
            }
            Some(n) if n == data.len() || (n == 256 && data.len() > 256) => {
                self.pending = data;
                self.take_pending(n)
            }
            // 6C00 (= re-send with Le 256) when more than 256 bytes wait.
            Some(_) => Sw::wrong_le(data.len().min(256)).to_bytes().to_vec(),
        }
    }

    /// The next `n` pending bytes with `61xx` (more remain) or `9000`.
    fn take_pending(&mut self, n: usize) -> Vec<u8> {
        let rest = self.pending.split_off(n.min(self.pending.len()));
        let mut out = std::mem::replace(&mut self.pending, rest);
        let sw = if self.pending.is_empty() {
            Sw::SUCCESS
        } else {
            Sw::more_data(self.pending.len())
        };
        out.extend_from_slice(&sw.to_bytes());
        out
    }

    /// Processes one command APDU.
    pub fn process(&mut self, raw: &[u8]) -> Vec<u8> {
        self.apdus += 1;
        let sw = |sw: Sw| sw.to_bytes().to_vec();
        let cmd = match Apdu::parse(raw) {
            Ok(c) => c,
            Err(_) => {
                self.pending.clear();
                return sw(Sw::WRONG_LENGTH);
            }
        };
        if cmd.ins != 0xC0 {
            self.pending.clear();
        }
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => {
                if (cmd.p1, cmd.p2) != (0x04, 0x00) {
                    return sw(Sw::WRONG_P1_P2);
                }
                if cmd.data != TOY_AID {
                    self.selected = false;
                    return sw(Sw::FILE_NOT_FOUND);
                }
                self.selected = true;
                let fci = Self::fci();
                match cmd.ne {
                    Some(n) if n < fci.len() => sw(Sw::wrong_le(fci.len())),
                    Some(_) => {
                        let mut r = fci;
                        r.extend_from_slice(&Sw::SUCCESS.to_bytes());
                        r
                    }
                    None => self.respond(fci, None),
                }
            }
            (0x80, 0xCA) => {
                let n = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
                if n > TOY_MAX_DATA || !cmd.data.is_empty() {
                    return sw(Sw::WRONG_P1_P2);
                }
                self.respond(Self::data_of_len(n), cmd.ne)
            }
            (0x00, 0xC0) => {
                if self.pending.is_empty() {
                    return sw(Sw::CONDITIONS_NOT_SATISFIED);
                }
                let n = cmd.ne.unwrap_or(256);
                if n > self.pending.len() {
                    return sw(Sw::wrong_le(self.pending.len()));
                }
                self.take_pending(n)
            }
            (0x00 | 0x80, _) => sw(Sw::INS_NOT_SUPPORTED),
            _ => sw(Sw::CLA_NOT_SUPPORTED),
        }
    }
}

impl Default for ToyCard {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualCard for ToyCard {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }
    fn power_on(&mut self) {
        self.clear();
    }
    fn power_off(&mut self) {
        self.clear();
    }
    fn reset(&mut self) {
        self.clear();
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        ToyCard::process(self, apdu)
    }
}

impl Transport for ToyCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        Ok(self.process(command))
    }
    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        self.clear();
        Ok(self.atr.clone())
    }
    fn atr(&self) -> &[u8] {
        &self.atr
    }
    fn name(&self) -> &str {
        "toy card (in process)"
    }
}

/// The environment variable that makes end-to-end tests mandatory.
pub const E2E_VAR: &str = "CITIZENCARD_E2E";

/// The gate of every end-to-end test. With `CITIZENCARD_E2E=1`: returns a PC/SC context, or
/// **panics** (fails the test) when pcscd cannot be reached. Without it: prints a note and returns
/// `None`, and the caller returns early.
pub fn e2e_context(test: &str) -> Option<::pcsc::Context> {
    if std::env::var(E2E_VAR).ok().as_deref() != Some("1") {
        eprintln!(
            "note: {test}: end-to-end test skipped; run `scripts/test.sh` (or set {E2E_VAR}=1 \
             with pcscd and vsmartcard-vpcd running) to run it"
        );
        return None;
    }
    match pcsc::establish() {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!("{test}: {E2E_VAR}=1 but pcscd cannot be reached: {e}"),
    }
}

/// The name prefix of vpcd's reader for `slot` (`Virtual PCD 00 00` for slot 0).
pub fn vpcd_reader_prefix(slot: u16) -> String {
    format!("Virtual PCD 00 {slot:02}")
}

/// A card served on a vpcd slot from a background thread.
pub struct ServedCard<C: VirtualCard + Send + 'static> {
    slot: u16,
    atr: Vec<u8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(C, vpcd::Stats)>>,
    _lock: SlotLock,
}

/// Exclusive use of a vpcd slot by one test: a lock file per slot in the temp directory, so tests
/// in parallel threads and in other processes (other test binaries, other people's runs against
/// the same pcscd) take turns. Released on drop.
pub struct SlotLock {
    slot: u16,
    _file: File,
}

impl SlotLock {
    /// Waits until the slot is free and takes it.
    pub fn acquire(slot: u16) -> SlotLock {
        let path = std::env::temp_dir().join(format!("citizencard-e2e-vpcd-slot{slot}.lock"));
        let file =
            File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        SlotLock { slot, _file: file }
    }

    /// The slot.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// Polls PC/SC until the slot's reader is empty (a card served before may take a few hundred
    /// milliseconds to disappear); panics after `timeout`.
    pub fn wait_empty(&self, ctx: &::pcsc::Context, timeout: Duration) {
        let prefix = vpcd_reader_prefix(self.slot);
        let start = Instant::now();
        loop {
            let readers = pcsc::list_readers(ctx).unwrap_or_default();
            let reader = readers.iter().find(|r| r.name.starts_with(&prefix));
            match reader {
                Some(r) if !r.state.has_card() => return,
                _ => {}
            }
            assert!(
                start.elapsed() < timeout,
                "`{prefix}` did not become empty within {timeout:?}; readers:\n{}",
                transport::reader::format_list(&readers)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl<C: VirtualCard + Send + 'static> ServedCard<C> {
    /// Locks `slot` (waiting for other tests, in this or another process, to release it) and
    /// serves `card` on it (port 35963 + slot).
    pub fn start(card: C, slot: u16) -> Self {
        Self::start_locked(card, SlotLock::acquire(slot))
    }

    /// Serves `card` on the slot that `lock` holds.
    pub fn start_locked(card: C, lock: SlotLock) -> Self {
        let slot = lock.slot;
        let atr = card.atr();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let config = vpcd::Config::slot(slot);
        let thread = std::thread::Builder::new()
            .name(format!("vpcd-slot{slot}"))
            .spawn(move || {
                let mut card = card;
                let stats = vpcd::serve(&mut card, &config, &flag);
                (card, stats)
            })
            .expect("spawn the vpcd thread");
        ServedCard {
            slot,
            atr,
            stop,
            thread: Some(thread),
            _lock: lock,
        }
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Polls PC/SC until the slot's reader shows this card (by its ATR); panics after `timeout`.
    pub fn wait_visible(&self, ctx: &::pcsc::Context, timeout: Duration) -> ReaderInfo {
        let prefix = vpcd_reader_prefix(self.slot);
        let start = Instant::now();
        loop {
            let readers = pcsc::list_readers(ctx).unwrap_or_default();
            if let Some(r) = readers
                .iter()
                .find(|r| r.name.starts_with(&prefix) && r.state.has_card() && r.atr == self.atr)
            {
                return r.clone();
            }
            if start.elapsed() > timeout {
                panic!(
                    "the served card did not appear in `{prefix}` within {timeout:?}; readers:\n{}\
                     (is vsmartcard-vpcd installed and pcscd started after it?)",
                    transport::reader::format_list(&readers)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls PC/SC until the slot's reader no longer shows this card; panics after `timeout`.
    pub fn wait_gone(ctx: &::pcsc::Context, slot: u16, atr: &[u8], timeout: Duration) {
        let prefix = vpcd_reader_prefix(slot);
        let start = Instant::now();
        while pcsc::list_readers(ctx)
            .unwrap_or_default()
            .iter()
            .any(|r| r.name.starts_with(&prefix) && r.atr == atr)
        {
            assert!(
                start.elapsed() < timeout,
                "the card stayed in `{prefix}` for {timeout:?} after it was stopped"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops serving (pcscd sees the card removed) and gives the card back with its counters.
    pub fn stop(mut self) -> (C, vpcd::Stats) {
        self.stop_inner().expect("the vpcd thread ran")
    }

    fn stop_inner(&mut self) -> Option<(C, vpcd::Stats)> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(r) => Some(r),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl<C: VirtualCard + Send + 'static> Drop for ServedCard<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a program printed and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `cmd` (stdin closed) and waits at most `timeout`; on expiry the program is killed and the
/// test fails with what it printed. Panics with a hint when the program is not installed.
pub fn run_tool(cmd: &mut Command, timeout: Duration) -> ToolOutput {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {shown}: {e} (scripts/test.sh installs the e2e tools)")
        });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout =
                String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
            let stderr =
                String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
            panic!(
                "{shown} did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    ToolOutput {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::t0::AutoGetResponse;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn select() -> Vec<u8> {
        let mut v = h("00A4040006");
        v.extend_from_slice(&TOY_AID);
        v
    }

    #[test]
    fn atr_is_well_formed() {
        let c = ToyCard::with_serial([1, 2, 3, 4]);
        let atr = c.atr_bytes();
        assert_eq!(atr.len(), 4 + 8 + 1);
        assert_eq!(atr[1..].iter().fold(0u8, |a, b| a ^ b), 0, "TCK");
        assert_ne!(ToyCard::new().atr_bytes(), ToyCard::new().atr_bytes());
    }

    #[test]
    fn toy_card_is_strict_t0() {
        let mut c = ToyCard::with_serial([0; 4]);
        let fci = ToyCard::fci();
        // SELECT without Le: 61xx, then GET RESPONSE.
        assert_eq!(c.process(&select()), vec![0x61, fci.len() as u8]);
        assert!(c.is_selected());
        assert_eq!(c.process(&h("00C0000020")), vec![0x6C, fci.len() as u8]);
        let mut want = fci.clone();
        want.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(c.process(&[0, 0xC0, 0, 0, fci.len() as u8]), want);
        assert_eq!(c.process(&h("00C0000001")), h("6985"));
        // GET DATA with exact Le, wrong Le, and 300 bytes in parts.
        let mut want = ToyCard::data_of_len(4);
        want.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(c.process(&h("80CA000404")), want);
        assert_eq!(c.process(&h("80CA000410")), h("6C04"));
        let r = c.process(&h("80CA012C00"));
        assert_eq!(r.len(), 258);
        assert_eq!(&r[256..], &h("612C")[..]);
        assert_eq!(c.process(&h("00C000002C")).len(), 0x2C + 2);
        assert_eq!(c.process(&h("80CA0000")), h("9000"));
        // Errors.
        assert_eq!(c.process(&h("00A4040002 3F00")), h("6A82"));
        assert_eq!(c.process(&h("00A4")), h("6700"));
        assert_eq!(c.process(&h("0012000000")), h("6D00"));
        assert_eq!(c.process(&h("A0A40000")), h("6E00"));
        // Another command drops pending data.
        assert_eq!(c.process(&h("80CA0010")), h("6110"));
        assert_eq!(c.process(&h("0012000000")), h("6D00"));
        assert_eq!(c.process(&h("00C0000010")), h("6985"));
    }

    /// The T=0 middleware and the strict toy card together: every length comes back whole.
    #[test]
    fn auto_get_response_against_the_toy_card() {
        let mut t = AutoGetResponse::new(ToyCard::with_serial([0; 4]));
        let mut want = ToyCard::fci();
        want.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(t.transmit(&select()).unwrap(), want);
        for n in [0usize, 1, 2, 100, 255, 256, 257, 511, 512, 513, 1024] {
            let [p1, p2] = (n as u16).to_be_bytes();
            let mut want = ToyCard::data_of_len(n);
            want.extend_from_slice(&[0x90, 0x00]);
            // Case 1 (61xx path), a wrong short Le (6Cxx path), Le = 00.
            for cmd in [
                vec![0x80, 0xCA, p1, p2],
                vec![0x80, 0xCA, p1, p2, 0x07],
                vec![0x80, 0xCA, p1, p2, 0x00],
            ] {
                let got = t.transmit(&cmd).unwrap();
                assert_eq!(got, want, "n={n} cmd={}", hex::encode_upper(&cmd));
            }
        }
    }
}

/// The variable that turns on the tests on the emulated chip (`scripts/test.sh` sets it after
/// building the firmware).
pub const MCU_VAR: &str = "CITIZENCARD_MCU";

/// Which build of `card-os/firmware` a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// `cargo build --release`: the served card.
    Production,
    /// `cargo build --release --features test-hooks --target-dir target/hooks`: fixed random
    /// bytes and measurements.
    TestHooks,
}

/// The path of a firmware build inside the repository.
pub fn firmware_path(build: Firmware) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../card-os/firmware");
    match build {
        Firmware::Production => dir.join("target/thumbv6m-none-eabi/release/card-os-firmware"),
        Firmware::TestHooks => dir.join("target/hooks/thumbv6m-none-eabi/release/card-os-firmware"),
    }
}

/// The gate of every test on the emulated chip. With `CITIZENCARD_MCU=1`: the chip's
/// configuration, or **panics** (fails the test) when the firmware has not been built. Without
/// it: prints a note and returns `None`, and the caller returns early.
pub fn mcu_context(test: &str, build: Firmware) -> Option<crate::mcu::McuConfig> {
    if std::env::var(MCU_VAR).ok().as_deref() != Some("1") {
        eprintln!(
            "note: {test}: test on the emulated chip skipped; run `scripts/test.sh` (or build \
             card-os/firmware and set {MCU_VAR}=1) to run it"
        );
        return None;
    }
    let path = firmware_path(build);
    assert!(
        path.is_file(),
        "{test}: {MCU_VAR}=1 but {} is missing: build it (see scripts/test.sh)",
        path.display()
    );
    let mut config = crate::mcu::McuConfig::new(path);
    config.test_hooks = build == Firmware::TestHooks;
    Some(config)
}
