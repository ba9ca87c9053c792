//! `citizencard sim new|serve|info`: the simulated card as an image file and as a real reader.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::fs::FileKind;
use card_os::nvm::{Geometry, Nvm};
use card_os::sim::inspect::{self, FileInfo};
use card_os::sim::tearing::{TearEvent, TearSpec, TearingCard};
use card_os::sim::{image, vpcd, SimCard};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::exit::Failure;
use crate::Global;

/// `citizencard sim …`
#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Make a blank (factory) card image: MF 3F00 named 1PAY.SYS.DDF01, no key file, so a
    /// personalization script can build anything on it.
    New(NewArgs),
    /// Show the card in an image to pcscd as a real card in vsmartcard's `Virtual PCD 00 00`
    /// reader, until Ctrl-C (or SIGTERM). Every write the card makes goes to the image at once.
    #[command(
        long_about = "Show the card in an image to pcscd as a real card in vsmartcard's virtual \
        reader: pcscd (with the vsmartcard-vpcd package) listens on 127.0.0.1:35963 for reader \
        `Virtual PCD 00 00` (35964 for `Virtual PCD 00 01`); this command connects to it and \
        answers as the card, so opensc-tool, scriptor, pyscard and `citizencard -r` can talk to it. \
        It reconnects when pcscd restarts. Power-off and reset clear the card's volatile state as \
        a real card's do. Every write the card makes goes to the image file at once; Ctrl-C or \
        SIGTERM stops serving.\n\n\
        With --tear the card is pulled out of the reader in the middle of the commands you name, \
        its memory cut at one NVM page write, and put back after --tear-away (its power-up runs \
        the card's recovery), so a terminal's recovery can be tested through a real pcscd: \
        e.g. `--tear ins=54,random` tears the next DEBIT FOR PURCHASE at a random point of its \
        writes.\n\n\
        With --mcu FIRMWARE the card runs on an emulated Cortex-M0 chip instead: QEMU's `microbit` \
        machine (qemu-system-arm) runs the card-os firmware (card-os/firmware), the image is \
        loaded into the chip's memory at start and written back when serving stops. The chip \
        holds images of up to 16384 bytes: make one with `sim new --size 16384`."
    )]
    Serve(ServeArgs),
    /// Print an image's header, ATR, space used and files.
    Info(InfoArgs),
}

/// Arguments of `sim new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The image file to write.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Card serial number (ATR bytes TA..TD), 8 hex digits; random by default.
    #[arg(long, value_name = "HEX8", value_parser = parse_hex::<4>)]
    pub serial: Option<[u8; 4]>,
    /// Card maker's registration id (ATR bytes T6..T7), 4 hex digits.
    #[arg(long, value_name = "HEX4", value_parser = parse_hex::<2>, default_value = "0001")]
    pub maker: [u8; 2],
    /// NVM size in bytes (at most 65536).
    #[arg(long, value_name = "BYTES", default_value_t = Geometry::DEFAULT.capacity)]
    pub size: usize,
    /// NVM page size in bytes (a power of two, 16..128).
    #[arg(long, value_name = "BYTES", default_value_t = Geometry::DEFAULT.page_size)]
    pub page: usize,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `sim serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The card image to serve.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// vpcd's address (reader slot 0 is port 35963, slot 1 port 35964).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:35963")]
    pub vpcd: String,
    /// Log every APDU and control event to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Pull the card out during a command, its memory cut at an NVM write (repeatable; the first
    /// rule that matches a command applies).
    #[arg(
        long,
        value_name = "SPEC",
        value_parser = parse_tear,
        long_help = "Pull the card out of the reader during a command, with its memory cut at one \
        NVM page write, then put it back after --tear-away. SPEC is comma-separated:\n\
        \x20 ins=HH        the command's INS, e.g. 54 (DEBIT FOR PURCHASE), 52 (CREDIT FOR LOAD); \
        required\n\
        \x20 cla=HH        only with this CLA\n\
        \x20 write=N       cut during page write N of the command (0 = its first)...\n\
        \x20 byte=B        ...after B of its bytes reached the memory (default 0: before it \
        changed anything; its length or more: right after it)\n\
        \x20 random        ...or a write and a byte drawn at random from the writes the command \
        would make (see --seed)\n\
        \x20 after=N       let N matching commands through first (default 0)\n\
        \x20 times=N|all   tear this many matching commands (default 1)\n\
        Examples: --tear ins=54,write=0 (a DEBIT cut before it writes anything: not done), \
        --tear ins=54,random --seed 7, --tear ins=52,random,times=all. A cut past the command's \
        last write leaves it whole (logged). Repeat --tear for several rules."
    )]
    pub tear: Vec<TearSpec>,
    /// Seed of the random cuts (`random` in --tear); without it one is drawn and printed, so a
    /// run can be repeated.
    #[arg(long, value_name = "N", requires = "tear")]
    pub seed: Option<u64>,
    /// How long a torn card stays out of the reader (at least about 0.5 s, so that pcscd notices
    /// the removal).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = crate::parse_seconds)]
    pub tear_away: Duration,
    /// Pull the card out of the reader at the N-th APDU it receives (1 = the first), before it
    /// reaches the card (the effect of killing the serving process there), and put it back after
    /// --tear-away. With --pull-answered, the card runs the command and only its answer is lost.
    /// For sweeps that pull the card at every APDU of a run (cli/tests/e2e_lifecycle.rs).
    #[arg(long, value_name = "N", conflicts_with = "tear", value_parser = clap::value_parser!(u64).range(1..))]
    pub pull_at: Option<u64>,
    /// With --pull-at: the N-th command is run on the card, then the card leaves without
    /// answering.
    #[arg(long, requires = "pull_at")]
    pub pull_answered: bool,
    /// Run the card on an emulated Cortex-M0 (QEMU `microbit`, qemu-system-arm) with this
    /// card-os firmware ELF (`card-os/firmware`, built with `cargo build --release` there); the
    /// image (at most 16384 bytes of NVM) is loaded into the chip and saved when serving stops.
    #[arg(long, value_name = "FIRMWARE", conflicts_with_all = ["tear", "pull_at"])]
    pub mcu: Option<PathBuf>,
}

/// A served card pulled out of the reader at one APDU (`sim serve --pull-at`).
struct PullingCard {
    card: SimCard,
    at: u64,
    answered: bool,
    seen: u64,
    away: Duration,
    pulled: bool,
}

impl vpcd::VirtualCard for PullingCard {
    fn atr(&self) -> Vec<u8> {
        vpcd::VirtualCard::atr(&self.card)
    }
    fn power_on(&mut self) {
        vpcd::VirtualCard::power_on(&mut self.card)
    }
    fn power_off(&mut self) {
        vpcd::VirtualCard::power_off(&mut self.card)
    }
    fn reset(&mut self) {
        vpcd::VirtualCard::reset(&mut self.card)
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.seen += 1;
        if self.seen == self.at {
            self.pulled = true;
            eprintln!(
                "citizencard: pull: the card leaves the reader at APDU {} ({}), {}",
                self.at,
                hex::encode_upper(&apdu[..apdu.len().min(4)]),
                if self.answered {
                    "after running it"
                } else {
                    "before it reaches the card"
                }
            );
            if !self.answered {
                return Vec::new();
            }
        }
        vpcd::VirtualCard::process(&mut self.card, apdu)
    }
    fn take_removal(&mut self) -> Option<Duration> {
        std::mem::take(&mut self.pulled).then_some(self.away)
    }
}

fn parse_tear(s: &str) -> Result<TearSpec, String> {
    s.parse()
}

/// Arguments of `sim info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The card image to describe.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes; expected {N} ({} hex digits)", b.len(), 2 * N))
}

/// Runs a `sim` subcommand.
pub fn run(global: &Global, command: SimCommand) -> Result<(), Failure> {
    match command {
        SimCommand::New(args) => new(args),
        SimCommand::Serve(args) => serve(args),
        SimCommand::Info(args) => info(global, args),
    }
}

/// A random chip serial (ATR TA..TD) for a new blank card.
pub(crate) fn random_serial() -> [u8; 4] {
    // RandomState is seeded from the OS's random source; a serial needs no more.
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    let v = h.finish();
    [(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn new(args: NewArgs) -> Result<(), Failure> {
    let geometry = Geometry {
        capacity: args.size,
        page_size: args.page,
    };
    if !geometry.is_valid() {
        return Err(Failure::usage(anyhow!(
            "--size {} / --page {}: the page size must be a power of two from 16 to 128, the size a \
             multiple of it, at most 65536 and at least {} bytes",
            args.size,
            args.page,
            geometry.fs_start() + 1024
        )));
    }
    if args.image.exists() && !args.force {
        return Err(Failure::usage(anyhow!(
            "{} exists; add --force to overwrite it",
            args.image.display()
        )));
    }
    let mut historical = HistoricalBytes::wenzhou(args.serial.unwrap_or_else(random_serial));
    historical.card_maker = args.maker;
    let card = SimCard::blank(geometry, &historical)
        .map_err(|e| Failure::card(anyhow!("formatting the card failed: {e:?}")))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = image::ImageHeader::new(geometry.capacity, geometry.page_size, created);
    image::save(&args.image, &header, card.nvm())
        .with_context(|| format!("writing {}", args.image.display()))
        .map_err(Failure::card)?;
    println!(
        "{}: blank card, {} bytes of NVM in {}-byte pages, ATR {}",
        args.image.display(),
        geometry.capacity,
        geometry.page_size,
        hex::encode_upper(card.atr())
    );
    Ok(())
}

fn open_card(path: &Path, live: bool) -> Result<(image::ImageHeader, SimCard), Failure> {
    let loaded = if live {
        image::open_live(path)
    } else {
        image::load(path)
    };
    let (header, nvm) = loaded.map_err(|e| Failure::usage(anyhow!("{}: {e}", path.display())))?;
    let card = SimCard::from_nvm(nvm).map_err(|(_, e)| {
        Failure::card(anyhow!(
            "{}: the card does not power up: {}",
            path.display(),
            host_lib::transport::sim::power_up_failure(e)
        ))
    })?;
    Ok((header, card))
}

fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handler")
            .map_err(Failure::card)?;
    }
    Ok(stop)
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    // The image is this server's while it serves: another process writing it (`--sim`, another
    // `sim serve`) would interleave two cards' transactions; the emulated chip writes it back
    // on stop.
    let _lock = host_lib::lock::FileLock::existing(
        &args.image,
        "card image",
        "citizencard sim serve",
        std::time::Duration::ZERO,
    )
    .map_err(Failure::card)?;
    if let Some(firmware) = &args.mcu {
        return serve_mcu(&args, firmware);
    }
    let (_, card) = open_card(&args.image, true)?;
    let stop = stop_on_signals()?;
    let config = vpcd::Config {
        addr: args.vpcd.clone(),
        ..vpcd::Config::default()
    };
    eprintln!(
        "citizencard: serving {} to vpcd at {} (ATR {}); Ctrl-C stops",
        args.image.display(),
        args.vpcd,
        hex::encode_upper(card.atr())
    );
    let on_event = log_events(args.verbose);
    let (card, stats) = if let Some(at) = args.pull_at {
        let mut pulling = PullingCard {
            card,
            at,
            answered: args.pull_answered,
            seen: 0,
            away: args.tear_away,
            pulled: false,
        };
        let stats = vpcd::serve_with(&mut pulling, &config, &stop, on_event);
        (pulling.card, stats)
    } else if args.tear.is_empty() {
        let mut card = card;
        let stats = vpcd::serve_with(&mut card, &config, &stop, on_event);
        (card, stats)
    } else {
        let seed = args
            .seed
            .unwrap_or_else(|| u64::from_be_bytes(random_bytes()));
        let rules: Vec<String> = args.tear.iter().map(ToString::to_string).collect();
        eprintln!(
            "citizencard: tearing {} (seed {seed}: --seed {seed} repeats the random cuts); a torn \
             card stays out {:?}",
            rules.join(" and "),
            args.tear_away
        );
        let mut tearing =
            TearingCard::new(card, &args.tear, seed, args.tear_away).on_event(describe_tear);
        let stats = vpcd::serve_with(&mut tearing, &config, &stop, on_event);
        eprintln!("citizencard: {} command(s) torn", tearing.tears());
        (tearing.into_card(), stats)
    };
    card.nvm()
        .sync_file()
        .with_context(|| format!("flushing {}", args.image.display()))
        .map_err(Failure::card)?;
    eprintln!(
        "citizencard: stopped after {} APDUs over {} connection(s); {} holds the card",
        stats.apdus,
        stats.connections,
        args.image.display()
    );
    Ok(())
}

/// The bridge's log: connections always, control codes and APDUs with `-v`.
fn log_events(verbose: bool) -> impl FnMut(vpcd::Event<'_>) {
    move |event: vpcd::Event<'_>| match event {
        vpcd::Event::Connected(addr) => eprintln!("citizencard: connected to vpcd at {addr}"),
        vpcd::Event::Disconnected(e) => {
            eprintln!("citizencard: vpcd connection ended ({e}); reconnecting")
        }
        vpcd::Event::Removed(away) => {
            eprintln!("citizencard: tear: the card is out of the reader; back in {away:?}")
        }
        vpcd::Event::ConnectFailed(e, delay) if verbose => {
            eprintln!("citizencard: cannot reach vpcd ({e}); retrying in {delay:?}")
        }
        vpcd::Event::Control(code) if verbose => eprintln!("citizencard: control {code:02X}"),
        vpcd::Event::Apdu { command, response } if verbose => eprintln!(
            "citizencard: > {}  < {}",
            hex::encode_upper(command),
            hex::encode_upper(response)
        ),
        _ => {}
    }
}

/// `sim serve --mcu`: the image's card on the emulated chip, in vpcd's reader.
fn serve_mcu(args: &ServeArgs, firmware: &Path) -> Result<(), Failure> {
    let (header, nvm) = image::load(&args.image)
        .map_err(|e| Failure::usage(anyhow!("{}: {e}", args.image.display())))?;
    if nvm.page_size() != host_lib::mcu::CHIP_PAGE_SIZE {
        return Err(Failure::usage(anyhow!(
            "{}: {}-byte NVM pages; the chip programs {}-byte pages",
            args.image.display(),
            nvm.page_size(),
            host_lib::mcu::CHIP_PAGE_SIZE
        )));
    }
    let config = host_lib::mcu::McuConfig::new(firmware);
    let mut chip = host_lib::mcu::McuCard::start(&config, nvm.bytes())
        .with_context(|| format!("starting the chip with {}", args.image.display()))
        .map_err(Failure::card)?;
    let atr = chip
        .power_on_atr()
        .context("powering the chip's card on")
        .map_err(Failure::card)?;
    if atr.is_empty() {
        return Err(Failure::card(anyhow!(
            "{}: the card does not power up on the chip",
            args.image.display()
        )));
    }
    let stop = stop_on_signals()?;
    let vpcd_config = vpcd::Config {
        addr: args.vpcd.clone(),
        ..vpcd::Config::default()
    };
    eprintln!(
        "citizencard: serving {} on an emulated nRF51822 (Cortex-M0, {}) to vpcd at {} (ATR {}); \
         Ctrl-C stops and saves the image",
        args.image.display(),
        firmware.display(),
        args.vpcd,
        hex::encode_upper(&atr)
    );
    let stats = vpcd::serve_with(&mut chip, &vpcd_config, &stop, log_events(args.verbose));
    let bytes = chip
        .image()
        .context("reading the card image back from the chip")
        .map_err(Failure::card)?;
    let saved = card_os::sim::MemoryNvm::from_bytes(bytes, nvm.page_size());
    image::save(&args.image, &header, &saved)
        .with_context(|| format!("writing {}", args.image.display()))
        .map_err(Failure::card)?;
    eprintln!(
        "citizencard: stopped after {} APDUs over {} connection(s); {} holds the card",
        stats.apdus,
        stats.connections,
        args.image.display()
    );
    Ok(())
}

fn describe_tear(e: &TearEvent) {
    match e {
        TearEvent::Torn {
            command,
            cut,
            writes,
        } => eprintln!(
            "citizencard: tear: {}: power cut at write {} after {} byte(s){}; the card does not \
             answer and leaves the reader",
            hex::encode_upper(command),
            cut.write,
            cut.bytes,
            writes
                .map(|n| format!(" (the command makes {n} page writes)"))
                .unwrap_or_default()
        ),
        TearEvent::Untorn { command, reason } => eprintln!(
            "citizencard: tear: {} ran to its end: {reason}",
            hex::encode_upper(command)
        ),
    }
}

/// Eight bytes from the OS-seeded hasher (a seed for random cuts needs no more).
fn random_bytes() -> [u8; 8] {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(1);
    h.finish().to_be_bytes()
}

#[derive(Serialize)]
struct InfoReport {
    image: String,
    format_version: u16,
    header_len: usize,
    created: u64,
    capacity: usize,
    page_size: usize,
    atr: String,
    serial: String,
    file_space: usize,
    file_space_used: usize,
    files: Vec<FileReport>,
}

#[derive(Serialize)]
struct FileReport {
    depth: usize,
    fid: String,
    kind: &'static str,
    type_byte: String,
    sfi: Option<String>,
    name: Option<String>,
    bytes: usize,
    used: usize,
    capacity: usize,
    rights: String,
    mac_on_write: bool,
    encrypted_write: bool,
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Df => "DF",
        FileKind::Binary => "binary",
        FileKind::FixedRecord => "fixed records",
        FileKind::VariableRecord => "variable records",
        FileKind::CyclicRecord => "cyclic records",
        FileKind::Purse => "purse",
        FileKind::KeyFile => "key file",
    }
}

fn file_report(f: &FileInfo) -> FileReport {
    let h = &f.header;
    let rights = match f.kind {
        FileKind::Df => format!("create {:02X} erase {:02X}", h[5], h[6]),
        FileKind::KeyFile => format!("add {:02X}", h[6]),
        FileKind::Purse => format!("use {:02X}", h[5]),
        _ => format!("read {:02X} write {:02X} key byte {:02X}", h[5], h[6], h[7]),
    };
    let name = (!f.name.is_empty()).then(|| {
        if f.name.iter().all(|b| b.is_ascii_graphic()) {
            String::from_utf8_lossy(&f.name).into_owned()
        } else {
            let (text, _, bad) = encoding_rs::GBK.decode(&f.name);
            if bad {
                hex::encode_upper(&f.name)
            } else {
                format!("{text} ({})", hex::encode_upper(&f.name))
            }
        }
    });
    FileReport {
        depth: f.depth,
        fid: format!("{:04X}", f.fid),
        kind: kind_name(f.kind),
        type_byte: format!("{:02X}", h[0]),
        sfi: f.sfi.map(|s| format!("{s:02X}")),
        name,
        bytes: f.footprint,
        used: f.used,
        capacity: f.capacity,
        rights,
        mac_on_write: f.mac_on_write,
        encrypted_write: f.encrypted_write,
    }
}

fn info(global: &Global, args: InfoArgs) -> Result<(), Failure> {
    print_info(global, &args.image)
}

/// Prints what `sim info` prints for the image at `path`.
pub fn print_info(global: &Global, path: &Path) -> Result<(), Failure> {
    let (header, mut card) = open_card(path, false)?;
    let atr = card.atr().to_vec();
    let os = card
        .card()
        .ok_or_else(|| Failure::card(anyhow!("the card is off")))?;
    let serial = hex::encode_upper(os.historical_bytes().serial);
    let tree = inspect::tree(os).map_err(|sw| Failure::card(anyhow!("reading the files: {sw}")))?;
    let mf = tree
        .first()
        .ok_or_else(|| Failure::card(anyhow!("the card has no MF")))?;
    let report = InfoReport {
        image: path.display().to_string(),
        format_version: header.version,
        header_len: header.header_len,
        created: header.created,
        capacity: header.capacity,
        page_size: header.page_size,
        atr: hex::encode_upper(&atr),
        serial,
        file_space: mf.capacity,
        file_space_used: mf.used,
        files: tree.iter().map(file_report).collect(),
    };
    if global.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure::card(anyhow!(e)))?
        );
        return Ok(());
    }
    println!("{}", report.image);
    println!("  {}", image::describe(&header));
    println!("  ATR {}  (serial {})", report.atr, report.serial);
    println!(
        "  files use {} of {} bytes ({:.1} %)",
        report.file_space_used,
        report.file_space,
        100.0 * report.file_space_used as f64 / report.file_space.max(1) as f64
    );
    println!();
    println!(
        "  {:<18} {:<22} {:>4} {:>6} {:>11}  rights / name",
        "FID", "type", "SFI", "bytes", "used/cap"
    );
    for f in &report.files {
        let protection = match (f.mac_on_write, f.encrypted_write) {
            (true, true) => " [MAC+enc write]",
            (true, false) => " [MAC write]",
            (false, true) => " [enc write]",
            _ => "",
        };
        println!(
            "  {:<18} {:<22} {:>4} {:>6} {:>11}  {}{}{}",
            format!("{}{}", "  ".repeat(f.depth), f.fid),
            format!("{} ({})", f.kind, f.type_byte),
            f.sfi.as_deref().unwrap_or("-"),
            f.bytes,
            format!("{}/{}", f.used, f.capacity),
            f.rights,
            f.name
                .as_deref()
                .map(|n| format!("  \"{n}\""))
                .unwrap_or_default(),
            protection
        );
    }
    Ok(())
}
