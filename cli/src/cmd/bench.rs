//! `citizencard bench`: APDU throughput of a SELECT + READ BINARY loop, in process and through
//! PC/SC. `scripts/bench.py` runs these next to scriptor, opensc-tool and pyscard and prints the
//! ratios the README records.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use card_os::apdu::RESPONSE_BUFFER_SIZE;
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::SimCard;
use clap::{Args, Subcommand};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::{self, Transport};
use serde::Serialize;

use crate::exit::Failure;
use crate::Global;

/// The loop: select EF 0001, read 32 bytes of it.
pub const SELECT_EF: [u8; 7] = [0x00, 0xA4, 0x02, 0x00, 0x02, 0x00, 0x01];
/// READ BINARY of 32 bytes at offset 0 of the current EF.
pub const READ_BINARY: [u8; 5] = [0x00, 0xB0, 0x00, 0x00, 0x20];
/// CREATE FILE of the binary EF 0001 (32 bytes, free access) the loop reads.
pub const CREATE_EF: [u8; 12] = [
    0x80, 0xE0, 0x00, 0x01, 0x07, 0x28, 0x00, 0x20, 0xF0, 0xF0, 0xFF, 0xFF,
];

/// `citizencard bench …`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The loop on the in-process card: straight into the card OS, and through host-lib's
    /// simulated-card transport.
    InProcess(LoopArgs),
    /// The loop through pcscd on the card in the chosen reader (it needs EF 0001, e.g. an image
    /// made by `scripts/bench.py`): through host-lib's PC/SC transport, and as a bare loop over the
    /// `pcsc` crate (the floor).
    Pcsc(LoopArgs),
    /// The registry load benchmark: one station issuing cards (with purchases and loss reports
    /// beside), its figures written to --dir. Run by scripts/registry-load.sh.
    RegistryStation(super::load::StationArgs),
    /// The registry load benchmark: every station's figures checked against the registry (no
    /// card number twice, no lost ledger row, `registry verify` clean) and printed.
    RegistryCheck(super::load::CheckArgs),
}

/// Arguments of the loops.
#[derive(Args, Debug)]
pub struct LoopArgs {
    /// SELECT + READ BINARY pairs to run (twice as many APDUs).
    #[arg(long, default_value_t = 100_000)]
    pub pairs: u64,
}

#[derive(Serialize)]
struct Measurement {
    path: &'static str,
    apdus: u64,
    seconds: f64,
    apdus_per_second: f64,
    micros_per_apdu: f64,
}

impl Measurement {
    fn new(path: &'static str, apdus: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Measurement {
            path,
            apdus,
            seconds,
            apdus_per_second: apdus as f64 / seconds,
            micros_per_apdu: seconds * 1e6 / apdus as f64,
        }
    }

    fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).unwrap_or_default());
        } else {
            println!(
                "{:<28} {:>9} APDUs in {:>8.3} s: {:>12.0} APDUs/s, {:>9.3} µs/APDU",
                self.path, self.apdus, self.seconds, self.apdus_per_second, self.micros_per_apdu
            );
        }
    }
}

/// Runs a `bench` subcommand.
pub fn run(global: &Global, command: BenchCommand) -> Result<(), Failure> {
    match command {
        BenchCommand::InProcess(args) => in_process(global, &args).map_err(Failure::card),
        BenchCommand::Pcsc(args) => pcsc(global, &args).map_err(Failure::card),
        BenchCommand::RegistryStation(args) => super::load::station(global, args),
        BenchCommand::RegistryCheck(args) => super::load::check(global, args),
    }
}

fn bench_card() -> anyhow::Result<SimCard> {
    let mut card = SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 1]))
        .map_err(|e| anyhow!("formatting the card: {e:?}"))?;
    if card.transmit(&CREATE_EF) != [0x90, 0x00] {
        bail!("could not create EF 0001 on the bench card");
    }
    Ok(card)
}

fn check(response: &[u8]) -> anyhow::Result<()> {
    match response {
        [.., 0x90, 0x00] => Ok(()),
        _ => bail!("unexpected answer {}", hex::encode_upper(response)),
    }
}

fn in_process(global: &Global, args: &LoopArgs) -> anyhow::Result<()> {
    // Straight into the card OS.
    let mut card = bench_card()?;
    let os = card.card().ok_or_else(|| anyhow!("the card is off"))?;
    let mut out = [0u8; RESPONSE_BUFFER_SIZE];
    let start = Instant::now();
    for _ in 0..args.pairs {
        let n = os.process(black_box(&SELECT_EF), &mut out);
        check(&out[..n])?;
        let n = os.process(black_box(&READ_BINARY), &mut out);
        check(&out[..n])?;
    }
    Measurement::new("card OS (Card::process)", 2 * args.pairs, start.elapsed()).print(global.json);

    // Through host-lib's transport stack (allocation per response, T=0 layer).
    let sim = SimTransport::from_card(bench_card()?, "bench");
    let mut t = transport::wrap(Box::new(sim), &global.open_options());
    let start = Instant::now();
    for _ in 0..args.pairs {
        check(&t.transmit(black_box(&SELECT_EF))?)?;
        check(&t.transmit(black_box(&READ_BINARY))?)?;
    }
    Measurement::new("host-lib sim transport", 2 * args.pairs, start.elapsed()).print(global.json);
    Ok(())
}

fn pcsc(global: &Global, args: &LoopArgs) -> anyhow::Result<()> {
    // Both paths are connected to the same card at once and measured in alternating rounds, so
    // that drift (CPU frequency, pcscd warming up, other load) hits both alike.
    const ROUNDS: u64 = 10;
    let options = global.open_options();
    let mut ours = transport::open(&options)?;
    let reader = ours.name().to_string();
    // The floor: a bare loop over the pcsc crate, no host-lib in between.
    let ctx = pcsc::Context::establish(pcsc::Scope::User).context("SCardEstablishContext")?;
    let name = std::ffi::CString::new(reader.clone())?;
    let bare = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .context("SCardConnect")?;
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    for _ in 0..50 {
        bare.transmit(&SELECT_EF, &mut buf)?;
        ours.transmit(&SELECT_EF)?;
    }
    let per_round = args.pairs.div_ceil(ROUNDS);
    let (mut bare_time, mut ours_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..per_round {
            check(bare.transmit(black_box(&SELECT_EF), &mut buf)?)?;
            check(bare.transmit(black_box(&READ_BINARY), &mut buf)?)?;
        }
        bare_time += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_round {
            check(&ours.transmit(black_box(&SELECT_EF))?)?;
            check(&ours.transmit(black_box(&READ_BINARY))?)?;
        }
        ours_time += start.elapsed();
    }
    let _ = bare.disconnect(pcsc::Disposition::LeaveCard);
    let apdus = 2 * per_round * ROUNDS;
    let bare = Measurement::new("pcsc crate, bare loop", apdus, bare_time);
    let ours = Measurement::new("host-lib PC/SC transport", apdus, ours_time);
    bare.print(global.json);
    ours.print(global.json);
    if !global.json {
        println!(
            "host-lib / bare loop: {:.3} (time per APDU; 1.000 = no overhead) on {reader}",
            ours.micros_per_apdu / bare.micros_per_apdu
        );
    }
    Ok(())
}
