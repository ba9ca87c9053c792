//! Instructions and stack per command of the card OS on the emulated Cortex-M0 (nRF51822 in QEMU).
//! Run by `scripts/mcu-bench.sh`, which builds the `test-hooks` firmware and prints flash and RAM.
//!
//! ```text
//! mcu_bench --firmware ELF --stack-floor ADDR --stack-top ADDR [--gdb-port N]
//! ```
//!
//! * Instructions: QEMU runs with `-icount shift=6` (every instruction advances virtual time by
//!   64 ns) and the firmware reports the SysTick ticks (16 MHz core clock, 62.5 ns) of each
//!   `Card::process`, without the ticks spent waiting for the RNG peripheral (virtual time, not
//!   work): instructions = ticks × 62.5 / 64, to about one instruction.
//! * Stack: before each command the bench halts the chip through QEMU's GDB stub, paints the free
//!   stack (from `--stack-floor`, the end of the statics, up to just below the idle stack pointer)
//!   with `0xCC`, and after it finds the lowest byte that changed: the deepest stack of the
//!   command, counted from `--stack-top` (so it includes `main`'s frame, which holds the card's
//!   RAM state and the APDU buffers).
//!
//! The commands come from real work on a card with the default profile: personalization
//! (`issue_pending`), reading it back (RKSSSE's EXTERNAL AUTHENTICATE), a PIN VERIFY, a load, a
//! purchase; before all that, a 200-byte UPDATE BINARY on the factory card; after it, a power-up
//! (stack only: the meter times APDUs). `MCU_BENCH_TRACE=1` prints every APDU with its figures
//! and the GDB packets to stderr.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::SimCard;
use host_lib::holder::{input, Validator};
use host_lib::keys::{KeySet, TerminalCounter};
use host_lib::mcu::{McuCard, McuConfig, CHIP_NVM_MAX, CHIP_PAGE_SIZE};
use host_lib::personalize::register::{issue_pending, reserve};
use host_lib::profile::Profile;
use host_lib::registry::{ManualClock, Registry, RegistryConfig};
use host_lib::ssse::{read_card, ReadMode, ReadOptions};
use host_lib::terminal::{Terminal, TerminalConfig};
use host_lib::transport::{self, Transport};

/// Core clock of the emulated nRF51 (SysTick counts it).
const CORE_HZ: f64 = 16_000_000.0;
/// `-icount shift=6`: 64 ns of virtual time per instruction.
const ICOUNT_SHIFT: u32 = 6;
const PAINT: u8 = 0xCC;

/// A minimal GDB remote-protocol client (QEMU's `-gdb tcp:…` stub, acknowledged mode): halt,
/// resume, memory, registers.
struct Gdb {
    stream: TcpStream,
}

impl Gdb {
    fn connect(port: u16) -> Gdb {
        let mut last = None;
        for _ in 0..100 {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => {
                    // QEMU halts the chip when a debugger attaches and reports the stop; take the
                    // report, then let the chip run.
                    let mut g = Gdb { stream };
                    g.send("?");
                    g.wait_stop();
                    g.resume();
                    return g;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("QEMU's GDB stub on port {port}: {last:?}");
    }

    fn send(&mut self, body: &str) {
        if std::env::var_os("MCU_BENCH_TRACE").is_some() {
            eprintln!("gdb> {}", &body[..body.len().min(40)]);
        }
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.stream, "${body}#{sum:02x}").unwrap();
        self.stream.flush().unwrap();
    }

    /// Reads one packet's body (skipping acks).
    fn reply(&mut self) -> String {
        let mut byte = [0u8; 1];
        loop {
            self.stream.read_exact(&mut byte).unwrap();
            if byte[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            self.stream.read_exact(&mut byte).unwrap();
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut sum = [0u8; 2];
        self.stream.read_exact(&mut sum).unwrap();
        self.stream.write_all(b"+").unwrap();
        let body = String::from_utf8(body).unwrap();
        if std::env::var_os("MCU_BENCH_TRACE").is_some() {
            eprintln!("gdb< {}", &body[..body.len().min(40)]);
        }
        body
    }

    /// Sends a command and returns its answer, skipping stale stop reports (QEMU also reports
    /// the stop it made when the debugger attached).
    fn packet(&mut self, body: &str) -> String {
        self.send(body);
        loop {
            let p = self.reply();
            if !(p.starts_with('T') || p.starts_with('S')) {
                return p;
            }
        }
    }

    /// A QEMU monitor command through the stub (`qRcmd`); the chip must be halted.
    fn monitor(&mut self, command: &str) {
        self.send(&format!("qRcmd,{}", hex::encode(command)));
        loop {
            let p = self.reply();
            if p == "OK" {
                return;
            }
            assert!(!p.starts_with('E'), "monitor {command}: {p}");
        }
    }

    fn halt(&mut self) {
        self.stream.write_all(&[0x03]).unwrap();
        self.wait_stop();
    }

    /// Reads packets up to a stop report (`T…`/`S…`).
    fn wait_stop(&mut self) {
        loop {
            let p = self.reply();
            if p.starts_with('T') || p.starts_with('S') {
                return;
            }
        }
    }

    fn resume(&mut self) {
        self.send("c");
    }

    fn sp(&mut self) -> u32 {
        let regs = self.packet("g");
        let sp = &regs[13 * 8..14 * 8];
        u32::from_le_bytes(hex::decode(sp).unwrap().try_into().unwrap())
    }

    fn read(&mut self, addr: u32, len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = addr;
        while at < addr + len {
            let n = (addr + len - at).min(1024);
            out.extend(hex::decode(self.packet(&format!("m{at:x},{n:x}"))).unwrap());
            at += n;
        }
        out
    }

    fn fill(&mut self, addr: u32, len: u32, byte: u8) {
        let mut at = addr;
        while at < addr + len {
            let n = (addr + len - at).min(1024);
            let data = hex::encode(vec![byte; n as usize]);
            assert_eq!(self.packet(&format!("M{at:x},{n:x}:{data}")), "OK");
            at += n;
        }
    }
}

/// One measured command.
struct Measure {
    label: String,
    instructions: u64,
    rng_ms: f64,
    stack: u32,
}

/// The chip as a transport that measures every APDU.
struct Bench {
    chip: McuCard,
    gdb: Gdb,
    /// `MCU_BENCH_PROFILE=NAME`: the command (as [`name`] calls it) whose executed code QEMU logs
    /// (to `profile_log`), for [`print_profile`].
    profile: Option<(String, PathBuf)>,
    floor: u32,
    top: u32,
    log: Vec<(Vec<u8>, Vec<u8>, Measure)>,
}

impl Bench {
    /// Paints the free stack below the idle frame; returns where the paint ends.
    fn paint(&mut self) -> u32 {
        self.gdb.halt();
        let idle_sp = self.gdb.sp();
        // Leave the idle frame (and a margin for the halt itself) alone.
        let paint_end = idle_sp - 64;
        self.gdb.fill(self.floor, paint_end - self.floor, PAINT);
        self.gdb.resume();
        paint_end
    }

    /// The deepest stack since [`Bench::paint`], counted from the top of RAM.
    fn high_water(&mut self, paint_end: u32) -> u32 {
        self.gdb.halt();
        let painted = self.gdb.read(self.floor, paint_end - self.floor);
        self.gdb.resume();
        let deepest = painted
            .iter()
            .position(|&b| b != PAINT)
            .map(|i| self.floor + i as u32)
            .unwrap_or(paint_end);
        self.top - deepest
    }

    /// The deepest stack of a power-up (journal recovery, system area, reset) and its ATR.
    fn power_up_stack(&mut self) -> u32 {
        let paint_end = self.paint();
        let atr = self.chip.power_on_atr().unwrap();
        assert!(!atr.is_empty(), "the chip did not power up");
        self.high_water(paint_end)
    }

    fn measured(&mut self, command: &[u8]) -> Result<(Vec<u8>, Measure), host_lib::mcu::McuError> {
        let profiled = self
            .profile
            .as_ref()
            .is_some_and(|(n, _)| n == name(command));
        if profiled {
            self.gdb.halt();
            self.gdb.monitor("log in_asm,exec,nochain");
            self.gdb.resume();
        }
        let paint_end = self.paint();
        let response = self.chip.exchange(command)?;
        if profiled {
            self.gdb.halt();
            self.gdb.monitor("log in_asm");
            self.gdb.resume();
        }
        let ticks = self.chip.last_ticks()?;
        let stack = self.high_water(paint_end);
        let ns_per_tick = 1e9 / CORE_HZ;
        let ns_per_insn = f64::from(1u32 << ICOUNT_SHIFT);
        let work = f64::from(ticks.total - ticks.rng);
        Ok((
            response,
            Measure {
                label: String::new(),
                instructions: (work * ns_per_tick / ns_per_insn).round() as u64,
                rng_ms: f64::from(ticks.rng) / CORE_HZ * 1e3,
                stack,
            },
        ))
    }
}

impl Transport for Bench {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        let (response, m) = self
            .measured(command)
            .map_err(|e| transport::Error::Protocol {
                reader: "chip".into(),
                detail: e.to_string(),
            })?;
        if std::env::var_os("MCU_BENCH_TRACE").is_some() {
            eprintln!(
                "{} -> {} {} insns {} B",
                hex::encode_upper(command),
                hex::encode_upper(&response),
                m.instructions,
                m.stack
            );
        }
        self.log.push((command.to_vec(), response.clone(), m));
        Ok(response)
    }
    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        self.chip.reset()
    }
    fn atr(&self) -> &[u8] {
        Transport::atr(&self.chip)
    }
    fn name(&self) -> &str {
        "emulated nRF51822"
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(s: &str) -> u32 {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let firmware = PathBuf::from(arg(&args, "--firmware").expect("--firmware ELF"));
    let floor = number(&arg(&args, "--stack-floor").expect("--stack-floor ADDR"));
    let top = number(&arg(&args, "--stack-top").expect("--stack-top ADDR"));
    // A free port for QEMU's GDB stub (unless one is given).
    let port: u16 = arg(&args, "--gdb-port").map_or_else(
        || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap()
        },
        |p| p.parse().unwrap(),
    );
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");

    let mut config = McuConfig::new(&firmware);
    config.test_hooks = true;
    let profile = std::env::var("MCU_BENCH_PROFILE").ok().map(|n| {
        let log = std::env::temp_dir().join(format!("mcu-bench-{}.log", std::process::id()));
        (n, log)
    });
    config.extra_args = vec![
        "-icount".into(),
        format!("shift={ICOUNT_SHIFT}"),
        "-gdb".into(),
        format!("tcp:127.0.0.1:{port}"),
    ];
    if let Some((_, log)) = &profile {
        // Translated blocks are logged from the start (each once), executions only around the
        // profiled command.
        config.extra_args.extend([
            "-d".into(),
            "in_asm".into(),
            "-D".into(),
            log.display().to_string(),
        ]);
    }
    let geometry = Geometry {
        capacity: CHIP_NVM_MAX,
        page_size: CHIP_PAGE_SIZE,
    };
    let blank = SimCard::blank(geometry, &HistoricalBytes::wenzhou([0, 0, 0x47, 0x11])).unwrap();
    let mut chip = McuCard::start(&config, blank.nvm().bytes()).unwrap();
    chip.power_on_atr().unwrap();
    let gdb = Gdb::connect(port);
    let mut bench = Bench {
        chip,
        gdb,
        profile,
        floor,
        top,
        log: Vec::new(),
    };

    // A 200-byte UPDATE BINARY, on the factory card (its MF has no key file yet, so anything
    // goes): a 256-byte binary EF 0010, written once, then the MF erased again for the issuance.
    let mut update200 = hex::decode("00D69000C8").unwrap();
    update200.extend((0..200u32).map(|i| (i * 7 + 1) as u8));
    for apdu in [
        hex::decode("80E000100728 0100 F0F0 FFFF".replace(' ', "")).unwrap(),
        update200,
        hex::decode("800E000000").unwrap(),
    ] {
        let response = bench.transmit(&apdu).unwrap();
        assert_eq!(response, [0x90, 0x00], "{}", hex::encode_upper(&apdu));
    }

    let before_personalization = bench.log.len();

    // A full personalization with the default profile (the sample applicant with a photo).
    let keys = KeySet::load(&vectors.join("keys/dev.toml"))
        .unwrap()
        .with_terminal_counter(TerminalCounter::in_memory(1000));
    let profile = Profile::wenzhou();
    let validator = Validator::new(time::macros::date!(2026 - 01 - 10));
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-10 02:00 UTC),
    ));
    let mut reg = Registry::open_in_memory(RegistryConfig::default(), clock).unwrap();
    let applicant = input::load_csv(&vectors.join("applicants/sample.csv"), &validator)
        .unwrap()
        .into_iter()
        .filter_map(|row| row.result.ok())
        .find(|a| a.photo().is_some())
        .unwrap();
    let reserved = reserve(&mut reg, "bench", &applicant, &keys).unwrap();
    issue_pending(
        &mut reg,
        "bench",
        &mut bench,
        &keys,
        &profile,
        &reserved.pending,
        &mut |_| {},
    )
    .unwrap();
    let personalization = bench.log.len() - before_personalization;
    read_card(
        &mut bench,
        &keys,
        &profile,
        ReadOptions {
            mode: ReadMode::ByTag,
            photo: false,
        },
    )
    .unwrap();
    // The purse: a load, then a purchase (each SELECT, INITIALIZE, CREDIT/DEBIT).
    let mut terminal = Terminal::new(&mut bench, &keys, TerminalConfig::default());
    terminal.load(10_000).unwrap();
    terminal.purchase(250, None).unwrap();
    drop(terminal);
    // The holder's PIN in the purse application (profile: 123456).
    bench
        .transmit(&hex::decode("0020000003123456").unwrap())
        .unwrap();
    // Power-up after all that: journal recovery replays the newest record.
    let power_up = bench.power_up_stack();
    report(
        &bench.log,
        before_personalization,
        personalization,
        power_up,
    );
    if let Some((command, log)) = &bench.profile {
        print_profile(command, log);
    }
}

/// Where the instructions of the profiled command went, per function: QEMU's `in_asm` log gives
/// each translated block's instruction count, its `exec` log (with `nochain`) every block run.
/// Every run of the command is summed, with the UART loops that receive it and send its answer.
fn print_profile(command: &str, log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut block_len: std::collections::HashMap<u64, u64> = Default::default();
    let mut current: Option<u64> = None;
    let mut by_function: std::collections::HashMap<String, u64> = Default::default();
    let mut total = 0u64;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("0x") {
            // An instruction of a block being listed: "0x000049e0:  b580  push ...".
            let pc = u64::from_str_radix(rest.split(':').next().unwrap_or(""), 16).ok();
            match (current, pc) {
                (None, Some(pc)) => {
                    current = Some(pc);
                    *block_len.entry(pc).or_default() = 1;
                }
                (Some(start), Some(_)) => *block_len.entry(start).or_default() += 1,
                _ => {}
            }
            continue;
        }
        current = None;
        // "Trace 0: 0x7f.. [00000000/000049e0/00000000/ff200000] symbol"
        if let Some(rest) = line.strip_prefix("Trace ") {
            let fields: Vec<&str> = rest.split(['[', ']']).collect();
            let pc = fields
                .get(1)
                .and_then(|f| f.split('/').nth(1))
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            let symbol = fields.get(2).map_or("?", |f| f.trim());
            if let Some(pc) = pc {
                let n = block_len.get(&pc).copied().unwrap_or(0);
                *by_function.entry(symbol.to_string()).or_default() += n;
                total += n;
            }
        }
    }
    let mut rows: Vec<(u64, String)> = by_function.into_iter().map(|(f, n)| (n, f)).collect();
    rows.sort_by(|a, b| b.cmp(a));
    println!(
        "\nprofile of {command} (all its runs; the UART wait loops included): {total} instructions"
    );
    for (n, f) in rows.iter().take(25) {
        let f = demangle(f);
        println!(
            "{:>9} {:>5.1}%  {}",
            n,
            *n as f64 * 100.0 / total.max(1) as f64,
            &f[..f.len().min(100)]
        );
    }
    let _ = std::fs::remove_file(log);
}

fn name(command: &[u8]) -> &'static str {
    match (
        command.first().copied().unwrap_or(0) & 0xF0,
        command.get(1).copied().unwrap_or(0),
    ) {
        (_, 0xA4) => "SELECT",
        (_, 0x20) => "VERIFY",
        (_, 0x82) => "EXTERNAL AUTHENTICATE",
        (_, 0x84) => "GET CHALLENGE",
        (_, 0x50) if command.get(2) == Some(&0x01) => "INITIALIZE FOR PURCHASE",
        (_, 0x50) if command.get(2) == Some(&0x00) => "INITIALIZE FOR LOAD",
        (_, 0x54) => "DEBIT FOR PURCHASE",
        (_, 0x52) => "CREDIT FOR LOAD",
        (_, 0xD6) if command.first().is_some_and(|cla| cla & 0x04 != 0) => "UPDATE BINARY (MAC)",
        (_, 0xD6) => "UPDATE BINARY",
        (_, 0xDC) => "UPDATE RECORD",
        (_, 0xB0) => "READ BINARY",
        (_, 0xB2) => "READ RECORD",
        (_, 0xE0) => "CREATE FILE",
        (_, 0xD4) => "WRITE KEY",
        (_, 0x0E) => "ERASE DF",
        (_, 0x5C) => "GET BALANCE",
        (_, 0xC0) => "GET RESPONSE",
        _ => "other",
    }
}

fn report(
    log: &[(Vec<u8>, Vec<u8>, Measure)],
    first: usize,
    personalization: usize,
    power_up: u32,
) {
    let mut rows: Vec<Measure> = Vec::new();
    let pick = |label: &str, filter: &dyn Fn(&[u8], &[u8]) -> bool| -> Option<Measure> {
        log.iter()
            .filter(|(c, r, _)| filter(c, r) && r.ends_with(&[0x90, 0x00]))
            .last()
            .map(|(_, _, m)| Measure {
                label: label.to_string(),
                instructions: m.instructions,
                rng_ms: m.rng_ms,
                stack: m.stack,
            })
    };
    let is = |n: &'static str| move |c: &[u8], _: &[u8]| name(c) == n;
    rows.extend(pick("SELECT by DF name (purse ADF)", &|c, _| {
        name(c) == "SELECT" && c.get(2) == Some(&0x04)
    }));
    rows.extend(pick("VERIFY (PIN)", &is("VERIFY")));
    rows.extend(pick("GET CHALLENGE (8 bytes)", &is("GET CHALLENGE")));
    rows.extend(pick("EXTERNAL AUTHENTICATE", &is("EXTERNAL AUTHENTICATE")));
    let init_p = pick("INITIALIZE FOR PURCHASE", &is("INITIALIZE FOR PURCHASE"));
    let debit = pick("DEBIT FOR PURCHASE", &is("DEBIT FOR PURCHASE"));
    if let (Some(i), Some(d)) = (&init_p, &debit) {
        rows.push(Measure {
            label: "purchase = INITIALIZE + DEBIT".into(),
            instructions: i.instructions + d.instructions,
            rng_ms: i.rng_ms + d.rng_ms,
            stack: i.stack.max(d.stack),
        });
    }
    rows.extend(init_p);
    rows.extend(debit);
    rows.extend(pick("INITIALIZE FOR LOAD", &is("INITIALIZE FOR LOAD")));
    rows.extend(pick("CREDIT FOR LOAD", &is("CREDIT FOR LOAD")));
    rows.extend(pick("UPDATE BINARY, 200 bytes", &|c, _| {
        name(c) == "UPDATE BINARY" && c.get(4) == Some(&200)
    }));
    rows.extend(pick(
        "UPDATE BINARY with MAC (personalization)",
        &is("UPDATE BINARY (MAC)"),
    ));
    rows.extend(pick("WRITE KEY (personalization)", &is("WRITE KEY")));

    println!(
        "{:<42} {:>13} {:>10} {:>9} {:>8}",
        "command", "instructions", "ms @30MHz", "RNG ms", "stack B"
    );
    for r in &rows {
        println!(
            "{:<42} {:>13} {:>10.2} {:>9.2} {:>8}",
            r.label,
            r.instructions,
            r.instructions as f64 / 30_000.0,
            r.rng_ms,
            r.stack
        );
    }
    println!(
        "{:<42} {:>13} {:>10} {:>9} {:>8}",
        "power-up (journal recovery, reset)", "-", "-", "-", power_up
    );
    let (max_stack, max_at) = log
        .iter()
        .map(|(c, _, m)| (m.stack, name(c)))
        .max()
        .unwrap_or((0, "-"));
    let total: u64 = log[first..first + personalization]
        .iter()
        .map(|(_, _, m)| m.instructions)
        .sum();
    println!(
        "deepest stack of any command: {max_stack} B ({max_at}); personalization: {personalization} \
         APDUs, {total} instructions ({:.0} ms at 30 MHz)",
        total as f64 / 30_000.0
    );
    println!("deepest stack of anything: {} B", max_stack.max(power_up));
}

/// A legacy-mangled Rust symbol (`_ZN…E`, as QEMU's log shows them) made readable, without its
/// hash; other symbols as they are.
fn demangle(symbol: &str) -> String {
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_string();
    };
    let mut parts = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&d| d > 0) {
        let (len, tail) = rest.split_at(digits);
        let len: usize = len.parse().unwrap_or(0);
        let Some(part) = tail.get(..len) else { break };
        parts.push(part);
        rest = &tail[len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    parts
        .join("::")
        .replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("$C$", ",")
        .replace("$RF$", "&")
        .replace("..", "::")
}
