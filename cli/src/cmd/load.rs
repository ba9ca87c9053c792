//! `citizencard bench registry-station` and `citizencard bench registry-check`: the registry load
//! benchmark of issue 10, run by `scripts/registry-load.sh` (which starts the stations, shows
//! their progress and runs the check).
//!
//! A **station** is one process at one registry (the global `--registry FILE|URL`, opened the way
//! every command opens it). It issues `--cards` cards to synthetic applicants on simulated cards
//! (one image file each, as `issue --sim-dir` does) through the service layer, which times every
//! issuance: registry calls against the card's own work
//! ([`host_lib::service::issue::Timings`]). Meanwhile its shop thread — a second registry
//! connection and a purse terminal of its own — loads and spends on every `--shop-every`th card
//! the station issued and reports every `--loss-every`th card lost (a purchase with it must then
//! be refused), so ledger and blacklist writes run against the issuances of every station. Each
//! station writes what it did to `DIR/station-N.json` and its progress to `DIR/station-N.progress`.
//!
//! The **check** reads every station's file back against the registry: no card number issued
//! twice, every load and purchase a station completed in the ledger exactly once (and no ledger
//! row on these cards that no station completed), `registry verify` clean — then prints the
//! figures. (The small configuration's test also runs `host_lib::testing::invariants` over the
//! card images.)
//!
//! Why a `bench` subcommand and not an example: the stations must be separate processes that open
//! the registry exactly as an operator's `citizencard` does (`--registry`, `CITIZENCARD_REGISTRY`,
//! SQLite or PostgreSQL), and the small configuration runs as a test of the `citizencard` binary
//! (`cli/tests/registry_load.rs`), which Cargo builds for its tests; an example binary is not built
//! for `cargo test --test …` and has no path handed to tests. It sits beside the APDU throughput
//! benchmark, outside the main help.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use clap::Args;
use host_lib::holder::items::CardNumber;
use host_lib::holder::{citizen_id, Applicant, ApplicantRecord, Validator};
use host_lib::keys::KeySet;
use host_lib::profile::Profile;
use host_lib::registry::{CardFilter, CardStatus, LedgerKind, Registry};
use host_lib::service::issue::{issue_one, IssueDesk};
use host_lib::service::purse::{BlacklistSource, PurseDesk, PurseOutcome};
use host_lib::service::state::TerminalState;
use host_lib::service::{cancel, ServiceError};
use host_lib::terminal::TerminalConfig;
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;
use serde::{Deserialize, Serialize};

use crate::exit::Failure;
use crate::Global;

/// Arguments of `bench registry-station`.
#[derive(Args, Debug)]
pub struct StationArgs {
    /// This station's number (0, 1, …): it picks the station's applicants, card images and files
    /// (not the global `--station NAME`, which names a service point in the audit log).
    #[arg(long)]
    pub station_number: u32,
    /// Cards to issue.
    #[arg(long, default_value_t = 200)]
    pub cards: u32,
    /// The run's directory: card images (`cards-N/`), the terminal state (`terminal-N/`), this
    /// station's figures (`station-N.json`) and progress (`station-N.progress`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// A photo (JPEG) for every applicant, as a real card carries one; none otherwise.
    #[arg(long, value_name = "FILE")]
    pub photo: Option<PathBuf>,
    /// Every Nth card issued gets a load and two purchases (0: none).
    #[arg(long, default_value_t = 4)]
    pub shop_every: u32,
    /// Every Nth card issued is reported lost, then a purchase with it must be refused (0: none).
    #[arg(long, default_value_t = 10)]
    pub loss_every: u32,
    /// A modelled reader: this many milliseconds per APDU on top of the simulated card's own time
    /// (a contact reader with a real chip: about 12 ms per short APDU; 0: the bare simulator).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub apdu_ms: f64,
    /// A modelled reader: this many microseconds per byte sent or received (about 125 µs: a
    /// 255-byte block takes some 44 ms on a contact reader, the short-APDU cost included).
    #[arg(long, default_value_t = 0.0, value_name = "US")]
    pub byte_us: f64,
}

/// The simulated card behind a modelled reader: each exchange waits as long as a contact reader
/// with a real chip would take (`--apdu-ms`, `--byte-us`; published figures for a contact reader:
/// about 12 ms per short APDU, 44 ms per 255-byte block), so the registry's share can be read
/// against a realistic card time as well as against the bare simulator's.
struct Paced {
    inner: Box<dyn Transport>,
    per_apdu: Duration,
    per_byte: Duration,
}

impl Transport for Paced {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, host_lib::transport::Error> {
        let response = self.inner.transmit(command)?;
        let bytes = (command.len() + response.len()) as u32;
        std::thread::sleep(self.per_apdu + self.per_byte * bytes);
        Ok(response)
    }
    fn reset(&mut self) -> Result<Vec<u8>, host_lib::transport::Error> {
        self.inner.reset()
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Arguments of `bench registry-check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The run's directory (every `station-N.json` in it is read).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// One card issued and where its time went, in microseconds.
#[derive(Debug, Serialize, Deserialize)]
struct IssuedFigure {
    card: String,
    registry_us: u64,
    card_us: u64,
}

/// A load or purchase the card proved (MAC2/TAC verified): it must be in the ledger once.
#[derive(Debug, Serialize, Deserialize)]
struct Completed {
    card: String,
    kind: String,
    counter: u32,
    amount: u32,
}

/// What one station did.
#[derive(Debug, Serialize, Deserialize)]
struct StationReport {
    station: u32,
    station_id: String,
    cards_asked: u32,
    /// The modelled reader (`--apdu-ms`, `--byte-us`).
    apdu_ms: f64,
    byte_us: f64,
    started_ms: u64,
    finished_ms: u64,
    issued: Vec<IssuedFigure>,
    failures: Vec<String>,
    transactions: Vec<Completed>,
    losses: Vec<String>,
    refused_after_loss: u32,
    /// Transactions the registry did not take at once, recorded when the card was next seen.
    settled_later: u32,
    shop_failures: Vec<String>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A synthetic applicant, unique per (station, index): a Wenzhou (Lucheng) ID number whose
/// birth date and sequence code spread the pair, with its GB 11643 check character.
fn applicant(
    validator: &Validator,
    station: u32,
    index: u32,
    photo: Option<&[u8]>,
) -> anyhow::Result<Applicant> {
    const GIVEN: [&str; 10] = ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"];
    let n = station * 10_000 + index;
    let birth = time::macros::date!(1960 - 01 - 01) + time::Duration::days(i64::from(n / 400));
    let sequence = 100 + n % 400;
    let first17 = format!(
        "330302{:04}{:02}{:02}{sequence:03}",
        birth.year(),
        u8::from(birth.month()),
        birth.day()
    );
    let digits: [u8; 17] = first17
        .as_bytes()
        .try_into()
        .map_err(|_| anyhow!("ID number {first17}: not 17 digits"))?;
    let id = format!("{first17}{}", citizen_id::check_character(&digits));
    let record = ApplicantRecord {
        id_number: Some(id.clone()),
        name: Some(format!(
            "测试{}{}",
            GIVEN[(n % 10) as usize],
            GIVEN[(n / 10 % 10) as usize]
        )),
        sex: Some(if sequence % 2 == 1 { "1" } else { "2" }.into()),
        ethnicity: Some("01".into()),
        birthplace: Some("330302".into()),
        birth_date: Some(birth.to_string()),
        card_class: Some("3".into()),
        eligibility: Some("household".into()),
        ..Default::default()
    };
    validator
        .validate_with_photo(&record, photo.map(<[u8]>::to_vec))
        .map_err(|e| anyhow!("synthetic applicant {id}: {e}"))
}

/// The card image for `card` in `dir`, made blank (with the registry's chip serial) when new.
fn open_or_make(dir: &Path, card: &CardNumber, serial: u32) -> Result<Box<dyn Transport>, String> {
    let path = super::issue::image_path(dir, card);
    if !path.exists() {
        let blank = SimCard::blank(
            Geometry::DEFAULT,
            &HistoricalBytes::wenzhou(serial.to_be_bytes()),
        )
        .map_err(|e| format!("making a blank card: {e:?}"))?;
        let header = image::ImageHeader::new(
            Geometry::DEFAULT.capacity,
            Geometry::DEFAULT.page_size,
            unix_ms() / 1000,
        );
        image::save(&path, &header, blank.nvm())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(Box::new(
        SimTransport::open_image(&path).map_err(|e| e.to_string())?,
    ))
}

fn station_file(dir: &Path, station: u32, ext: &str) -> PathBuf {
    dir.join(format!("station-{station}.{ext}"))
}

/// Writes `text` to `path` through a temporary file, so a reader never sees half of it.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}

/// What the shop thread did.
#[derive(Default)]
struct Shop {
    transactions: Vec<Completed>,
    losses: Vec<String>,
    refused_after_loss: u32,
    settled_later: u32,
    failures: Vec<String>,
}

#[derive(Clone, Copy)]
enum PurseStep {
    Load(u32),
    Purchase(u32),
    Balance,
}

/// One purse command with the card image, through the service layer.
fn purse_step(
    reg: &mut Registry,
    state: &TerminalState,
    keys: &KeySet,
    operator: &str,
    image: &Path,
    step: PurseStep,
) -> Result<Option<PurseOutcome>, ServiceError> {
    let t = SimTransport::open_image(image).map_err(|e| ServiceError::Refused(e.to_string()))?;
    let now = reg.now();
    let desk = PurseDesk {
        keys,
        config: TerminalConfig::default(),
        state,
        registry: Some(reg),
        operator,
        clock: None,
    };
    match step {
        PurseStep::Load(cents) => desk.load(t, cents, &mut |_| {}).map(Some),
        PurseStep::Purchase(cents) => desk
            .purchase(t, cents, None, BlacklistSource::Registry, now, &mut |_| {})
            .map(Some),
        PurseStep::Balance => desk.balance(t, &mut |_| {}).map(|_| None),
    }
}

/// The shop: for each card the station issued (in order), a load and two purchases on every
/// `shop_every`th, a loss report (and a refused purchase) on every `loss_every`th.
fn shop(
    global: &Global,
    args: &StationArgs,
    operator: &str,
    cards: mpsc::Receiver<(u32, CardNumber, PathBuf)>,
) -> Shop {
    let mut out = Shop::default();
    let setup = (|| -> anyhow::Result<(Registry, TerminalState, KeySet)> {
        let reg = global
            .open_registry()
            .map_err(|f| f.error.unwrap_or_else(|| anyhow!("registry")))?;
        let state = TerminalState::open(
            &args.dir.join(format!("terminal-{}", args.station_number)),
            "registry load shop",
            Duration::from_secs(10),
        )?;
        let (keys, _) = crate::keyset::load(None).map_err(|f| {
            f.error
                .unwrap_or_else(|| anyhow!("the development key set"))
        })?;
        let keys = keys.with_terminal_counter(state.counter()?);
        Ok((reg, state, keys))
    })();
    let (mut reg, state, keys) = match setup {
        Ok(s) => s,
        Err(e) => {
            out.failures.push(format!("shop: {e:#}"));
            for _ in cards {}
            return out;
        }
    };
    let mut unsettled: Vec<PathBuf> = Vec::new();
    for (index, card, image) in cards {
        let steps: &[PurseStep] = if args.shop_every > 0 && index % args.shop_every == 0 {
            &[
                PurseStep::Load(2_000),
                PurseStep::Purchase(150),
                PurseStep::Purchase(250),
            ]
        } else {
            &[]
        };
        for &step in steps {
            match purse_step(&mut reg, &state, &keys, operator, &image, step) {
                Ok(Some(o)) => {
                    let kind = match o.record.txn_type {
                        0x02 => LedgerKind::Load,
                        _ => LedgerKind::Purchase,
                    };
                    out.transactions.push(Completed {
                        card: card.to_string(),
                        kind: kind.as_str().into(),
                        counter: u32::from(o.record.card_counter),
                        amount: o.record.amount,
                    });
                    if o.not_recorded.is_some() {
                        unsettled.push(image.clone());
                    }
                }
                Ok(None) => {}
                Err(e) => out.failures.push(format!("{card}: {e}")),
            }
        }
        if args.loss_every > 0 && index % args.loss_every == 0 {
            match cancel::report_loss(&mut reg, operator, &card) {
                Ok(_) => {
                    out.losses.push(card.to_string());
                    match purse_step(
                        &mut reg,
                        &state,
                        &keys,
                        operator,
                        &image,
                        PurseStep::Purchase(100),
                    ) {
                        Err(ServiceError::Refused(_)) => out.refused_after_loss += 1,
                        Ok(_) => out.failures.push(format!(
                            "{card}: a purchase after its loss report went through"
                        )),
                        Err(e) => out
                            .failures
                            .push(format!("{card}: after its loss report: {e}")),
                    }
                }
                Err(e) => out.failures.push(format!("{card}: report loss: {e}")),
            }
        }
    }
    // What the registry did not take at once is in the journal: the next command with the card
    // settles and records it.
    for image in unsettled {
        match purse_step(
            &mut reg,
            &state,
            &keys,
            operator,
            &image,
            PurseStep::Balance,
        ) {
            Ok(_) => out.settled_later += 1,
            Err(e) => out
                .failures
                .push(format!("{}: settling: {e}", image.display())),
        }
    }
    out
}

/// Runs `bench registry-station`.
pub fn station(global: &Global, args: StationArgs) -> Result<(), Failure> {
    if args.cards > 9_999 || args.station_number > 99 {
        return Err(Failure::usage(anyhow!(
            "at most 9999 cards per station and stations 0 to 99"
        )));
    }
    let (keys, _) = crate::keyset::load(None)?;
    let profile = Profile::wenzhou();
    let photo = match &args.photo {
        Some(p) => Some(
            std::fs::read(p)
                .with_context(|| format!("reading {}", p.display()))
                .map_err(Failure::usage)?,
        ),
        None => None,
    };
    let cards_dir = args.dir.join(format!("cards-{}", args.station_number));
    host_lib::private_fs::create_private_dir_all(&cards_dir)
        .with_context(|| format!("creating {}", cards_dir.display()))
        .map_err(Failure::usage)?;
    let progress = station_file(&args.dir, args.station_number, "progress");
    let mut reg = global.open_registry()?;
    let operator = format!("{}-{}", global.operator(), args.station_number);
    // The station the registry records with every change holds the leases too.
    let station = reg.station().clone();
    let desk = IssueDesk {
        operator: &operator,
        station: &station,
        lease: host_lib::registry::DEFAULT_LEASE,
    };
    let validator = Validator::today_in_china();
    let pace = |v: f64, unit: f64| {
        Duration::try_from_secs_f64(v / unit)
            .map_err(|e| Failure::usage(anyhow!("--apdu-ms / --byte-us: {e}")))
    };
    let (per_apdu, per_byte) = (pace(args.apdu_ms, 1e3)?, pace(args.byte_us, 1e6)?);
    let started_ms = unix_ms();
    let mut issued = Vec::new();
    let mut failures = Vec::new();
    let shop_result = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let shop = scope.spawn(|| shop(global, &args, &operator, rx));
        for index in 0..args.cards {
            let applicant =
                match applicant(&validator, args.station_number, index, photo.as_deref()) {
                    Ok(a) => a,
                    Err(e) => {
                        failures.push(format!("applicant {index}: {e:#}"));
                        continue;
                    }
                };
            let result = issue_one(
                &mut reg,
                &desk,
                &applicant,
                &keys,
                &profile,
                &mut |p| {
                    let inner = open_or_make(&cards_dir, &p.card_number, p.serial)?;
                    Ok(if per_apdu.is_zero() && per_byte.is_zero() {
                        inner
                    } else {
                        Box::new(Paced {
                            inner,
                            per_apdu,
                            per_byte,
                        })
                    })
                },
                &mut |_| {},
            );
            match result {
                Ok(o) => {
                    let card = o.reservation.pending.card_number;
                    issued.push(IssuedFigure {
                        card: card.to_string(),
                        registry_us: o.timings.registry.as_micros() as u64,
                        card_us: o.timings.card.as_micros() as u64,
                    });
                    let image = super::issue::image_path(&cards_dir, &card);
                    let _ = tx.send((index, card, image));
                }
                Err(e) => failures.push(format!("applicant {index}: {e}")),
            }
            // Progress for the script; a failed write only costs the display.
            let _ = write_whole(&progress, &format!("{}\n", index + 1));
        }
        drop(tx);
        shop.join()
    });
    let shop = shop_result.map_err(|_| Failure::card(anyhow!("the shop thread panicked")))?;
    let report = StationReport {
        station: args.station_number,
        station_id: station.id.clone(),
        cards_asked: args.cards,
        apdu_ms: args.apdu_ms,
        byte_us: args.byte_us,
        started_ms,
        finished_ms: unix_ms(),
        issued,
        failures,
        transactions: shop.transactions,
        losses: shop.losses,
        refused_after_loss: shop.refused_after_loss,
        settled_later: shop.settled_later,
        shop_failures: shop.failures,
    };
    let text = serde_json::to_string(&report).map_err(Failure::card)?;
    write_whole(&station_file(&args.dir, args.station_number, "json"), &text)
        .map_err(Failure::card)?;
    if report.failures.is_empty() && report.shop_failures.is_empty() {
        Ok(())
    } else {
        for f in report.failures.iter().chain(&report.shop_failures) {
            eprintln!("station {}: {f}", args.station_number);
        }
        Err(Failure::unmet())
    }
}

/// The q-quantile (nearest rank) of sorted `v`, in milliseconds.
fn quantile_ms(v: &[u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64 / 1e3
}

fn mean_ms(v: &[u64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e3
    }
}

/// The figures of one station, or of all.
#[derive(Debug, Serialize)]
struct Figures {
    label: String,
    cards: usize,
    failed: usize,
    seconds: f64,
    cards_per_minute: f64,
    registry_p50_ms: f64,
    registry_p99_ms: f64,
    registry_mean_ms: f64,
    card_p50_ms: f64,
    card_p99_ms: f64,
    card_mean_ms: f64,
    /// Mean registry time over mean card time, per card.
    registry_share: f64,
    transactions: usize,
    losses: usize,
}

fn figures(label: String, reports: &[&StationReport]) -> Figures {
    let mut registry: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.issued.iter().map(|f| f.registry_us))
        .collect();
    let mut card: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.issued.iter().map(|f| f.card_us))
        .collect();
    registry.sort_unstable();
    card.sort_unstable();
    let start = reports.iter().map(|r| r.started_ms).min().unwrap_or(0);
    let end = reports.iter().map(|r| r.finished_ms).max().unwrap_or(0);
    let seconds = end.saturating_sub(start) as f64 / 1e3;
    let cards = registry.len();
    Figures {
        label,
        cards,
        failed: reports.iter().map(|r| r.failures.len()).sum(),
        seconds,
        cards_per_minute: if seconds > 0.0 {
            cards as f64 * 60.0 / seconds
        } else {
            0.0
        },
        registry_p50_ms: quantile_ms(&registry, 0.5),
        registry_p99_ms: quantile_ms(&registry, 0.99),
        registry_mean_ms: mean_ms(&registry),
        card_p50_ms: quantile_ms(&card, 0.5),
        card_p99_ms: quantile_ms(&card, 0.99),
        card_mean_ms: mean_ms(&card),
        registry_share: if card.is_empty() {
            0.0
        } else {
            mean_ms(&registry) / mean_ms(&card)
        },
        transactions: reports.iter().map(|r| r.transactions.len()).sum(),
        losses: reports.iter().map(|r| r.losses.len()).sum(),
    }
}

/// The counts the check asserts.
#[derive(Debug, Default, Serialize)]
struct Counts {
    stations: usize,
    cards_issued: usize,
    station_failures: usize,
    /// Card numbers reported issued by more than one issuance.
    duplicate_numbers: usize,
    /// Cards the stations issued that the registry does not hold as active or lost.
    missing_cards: usize,
    /// Cards the registry holds in use that no station reported.
    unreported_cards: usize,
    transactions: usize,
    /// Completed transactions not in the ledger.
    lost_ledger_rows: usize,
    /// Completed transactions in the ledger more than once.
    doubled_ledger_rows: usize,
    /// Load or purchase rows on these cards that no station completed.
    phantom_ledger_rows: usize,
    settled_later: usize,
    losses: usize,
    refused_after_loss: usize,
    audit_records: u64,
    verify_findings: usize,
}

impl Counts {
    fn clean(&self) -> bool {
        self.station_failures == 0
            && self.duplicate_numbers == 0
            && self.missing_cards == 0
            && self.unreported_cards == 0
            && self.lost_ledger_rows == 0
            && self.doubled_ledger_rows == 0
            && self.phantom_ledger_rows == 0
            && self.refused_after_loss == self.losses
            && self.verify_findings == 0
    }
}

fn read_reports(dir: &Path) -> anyhow::Result<Vec<StationReport>> {
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("station-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            reports.push(
                serde_json::from_str::<StationReport>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    reports.sort_by_key(|r| r.station);
    Ok(reports)
}

fn count(reg: &Registry, reports: &[StationReport]) -> anyhow::Result<Counts> {
    let mut c = Counts {
        stations: reports.len(),
        ..Counts::default()
    };
    let mut issued: HashMap<&str, usize> = HashMap::new();
    for r in reports {
        c.station_failures += r.failures.len() + r.shop_failures.len();
        c.settled_later += r.settled_later as usize;
        c.losses += r.losses.len();
        c.refused_after_loss += r.refused_after_loss as usize;
        for f in &r.issued {
            *issued.entry(&f.card).or_default() += 1;
        }
    }
    c.cards_issued = issued.values().sum();
    c.duplicate_numbers = issued.values().filter(|n| **n > 1).count();
    let in_use: BTreeMap<String, CardStatus> = reg
        .list_cards(&CardFilter::default())?
        .into_iter()
        .filter(|s| matches!(s.status, CardStatus::Active | CardStatus::Lost))
        .map(|s| (s.card_number, s.status))
        .collect();
    c.missing_cards = issued.keys().filter(|n| !in_use.contains_key(**n)).count();
    c.unreported_cards = in_use
        .keys()
        .filter(|n| !issued.contains_key(n.as_str()))
        .count();
    // Every completed transaction once; nothing else on these cards.
    let mut completed: HashMap<&str, Vec<&Completed>> = HashMap::new();
    for r in reports {
        for t in &r.transactions {
            completed.entry(&t.card).or_default().push(t);
        }
    }
    c.transactions = completed.values().map(Vec::len).sum();
    for card in issued.keys() {
        let number = CardNumber::parse(card).map_err(|e| anyhow!("card number {card}: {e}"))?;
        let rows: Vec<_> = reg
            .ledger(&number)?
            .into_iter()
            .filter(|e| matches!(e.kind, LedgerKind::Load | LedgerKind::Purchase))
            .collect();
        let done = completed.get(card).map(Vec::as_slice).unwrap_or(&[]);
        let matches = |t: &Completed, e: &host_lib::registry::LedgerEntry| {
            e.kind.as_str() == t.kind
                && e.txn_counter == Some(t.counter)
                && e.amount_cents.unsigned_abs() == u64::from(t.amount)
        };
        for t in done {
            match rows.iter().filter(|e| matches(t, e)).count() {
                0 => c.lost_ledger_rows += 1,
                1 => {}
                _ => c.doubled_ledger_rows += 1,
            }
        }
        c.phantom_ledger_rows += rows
            .iter()
            .filter(|e| !done.iter().any(|t| matches(t, e)))
            .count();
    }
    let verify = reg.verify()?;
    c.audit_records = verify.audit_records as u64;
    c.verify_findings = verify.findings.len();
    for f in &verify.findings {
        eprintln!("registry verify: {f}");
    }
    Ok(c)
}

/// Runs `bench registry-check`.
pub fn check(global: &Global, args: CheckArgs) -> Result<(), Failure> {
    let reports = read_reports(&args.dir).map_err(Failure::usage)?;
    if reports.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no station-N.json in {}",
            args.dir.display()
        )));
    }
    let reg = global.open_registry()?;
    let counts = count(&reg, &reports).map_err(Failure::card)?;
    let mut rows: Vec<Figures> = reports
        .iter()
        .map(|r| figures(format!("station {}", r.station), &[r]))
        .collect();
    let all: Vec<&StationReport> = reports.iter().collect();
    rows.push(figures(format!("all {}", reports.len()), &all));
    if global.json {
        println!(
            "{}",
            serde_json::json!({"figures": rows, "counts": counts, "clean": counts.clean()})
        );
    } else {
        let r = &reports[0];
        if r.apdu_ms > 0.0 || r.byte_us > 0.0 {
            println!(
                "card time: the simulated card behind a modelled reader ({} ms per APDU, {} µs \
                 per byte)",
                r.apdu_ms, r.byte_us
            );
        } else {
            println!("card time: the bare in-process simulated card (no reader)");
        }
        print_table(&rows, &counts);
    }
    if counts.clean() {
        Ok(())
    } else {
        Err(Failure::unmet())
    }
}

fn print_table(rows: &[Figures], c: &Counts) {
    println!(
        "{:<12} {:>6} {:>6} {:>8} {:>9} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>7} {:>5} {:>6}",
        "", "cards", "failed", "seconds", "cards/min", "reg p50", "reg p99", "reg mean", "card p50",
        "card p99", "card mean", "reg/card", "txns", "losses"
    );
    for r in rows {
        println!(
            "{:<12} {:>6} {:>6} {:>8.1} {:>9.1} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>6.1}% {:>5} {:>6}",
            r.label,
            r.cards,
            r.failed,
            r.seconds,
            r.cards_per_minute,
            r.registry_p50_ms,
            r.registry_p99_ms,
            r.registry_mean_ms,
            r.card_p50_ms,
            r.card_p99_ms,
            r.card_mean_ms,
            r.registry_share * 100.0,
            r.transactions,
            r.losses
        );
    }
    println!("(times in ms per card; reg/card = mean registry time / mean card time)");
    println!(
        "cards issued {} · duplicate numbers {} · missing {} · unreported {} · station failures {}",
        c.cards_issued,
        c.duplicate_numbers,
        c.missing_cards,
        c.unreported_cards,
        c.station_failures
    );
    println!(
        "transactions completed {} · lost ledger rows {} · doubled {} · phantom {} · recorded on \
         the next sight {}",
        c.transactions,
        c.lost_ledger_rows,
        c.doubled_ledger_rows,
        c.phantom_ledger_rows,
        c.settled_later
    );
    println!(
        "losses reported {} · purchases refused after them {} · registry verify: {} ({} audit \
         records)",
        c.losses,
        c.refused_after_loss,
        if c.verify_findings == 0 {
            "clean".to_string()
        } else {
            format!("{} finding(s)", c.verify_findings)
        },
        c.audit_records
    );
    println!("{}", if c.clean() { "CLEAN" } else { "NOT CLEAN" });
}
