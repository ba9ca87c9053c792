//! `citizencard issue`: applicants → issued cards, through the registry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use clap::Args;
use host_lib::holder::{input, Applicant, Validator};
use host_lib::keys::{KeySet, KeyStore};
use host_lib::personalize::{self, CardData, IssueReport, Phase};
use host_lib::profile::Profile;
use host_lib::registry::{self, Registry, RegistryConfig};
use host_lib::service::issue::{
    active_card_of, card_at_hand, personalize_and_complete, reserve, AtHand, IssueDesk,
    IssueFailure,
};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::{self, Transport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::exit::Failure;
use crate::Global;

/// Arguments of `citizencard issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// One applicant: a TOML file (see test-vectors/applicants/one.toml).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    pub applicant: Option<PathBuf>,
    /// A batch of applicants: a CSV file, one card per row; a bad row is reported and skipped.
    #[arg(long, value_name = "FILE.csv")]
    pub batch: Option<PathBuf>,
    #[command(flatten)]
    pub setup: Setup,
    /// Simulated cards instead of a reader: one image per card in DIR, named <card number>.img;
    /// a missing image is made blank (with a random chip serial), an existing one is finished or
    /// verified.
    #[arg(long, value_name = "DIR")]
    pub sim_dir: Option<PathBuf>,
    /// Print the plan for the first applicant (every step and its APDUs, on a simulated card's
    /// ATR) and stop: no card is touched, nothing is recorded.
    #[arg(long)]
    pub plan: bool,
}

/// The key set and the profile (shared by `issue` and `info`).
#[derive(Args, Debug)]
pub struct Setup {
    /// The issuer's key set (TOML, apdu-specs/keys.md §4). Default: the PUBLIC development key
    /// set test-vectors/keys/dev.toml if it exists, else the same set built into citizencard;
    /// cards made with it can be read and changed by anyone.
    #[arg(long, value_name = "FILE", env = "CITIZENCARD_KEYS")]
    pub keys: Option<PathBuf>,
    /// The card profile (TOML, apdu-specs/layout.md). Default: the built-in Wenzhou profile.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Personalize with a real key set whose transport key is the public FMCOS default
    /// (16 x FF), with a warning; refused otherwise (a trace would show every card's keys).
    #[arg(long)]
    pub allow_default_transport_key: bool,
}

impl Setup {
    /// Loads the key set and the profile for reading cards, and checks them against each other.
    pub fn load_for_reading(&self) -> Result<(KeySet, Profile), Failure> {
        let (keys, _) = crate::keyset::load(self.keys.as_deref())?;
        let profile = match &self.profile {
            Some(path) => Profile::load(path).map_err(Failure::usage)?,
            None => Profile::wenzhou(),
        };
        profile.check_keys(&keys).map_err(Failure::usage)?;
        Ok((keys, profile))
    }

    /// Loads the key set and the profile for personalizing (writing keys to cards): also the
    /// transport key's policy (`host_lib::keys::transport_key_policy`).
    pub fn load(&self) -> Result<(KeySet, Profile), Failure> {
        let (keys, profile) = self.load_for_reading()?;
        let transport = &profile.card.transport_key;
        if let Some(w) =
            host_lib::keys::transport_key_policy(&keys, transport, self.allow_default_transport_key)
                .map_err(Failure::usage)?
        {
            eprintln!("citizencard: {w}");
        }
        Ok((keys, profile))
    }
}

/// The development-key warning, or nothing.
pub fn development_warning(keys: &dyn KeyStore) -> Option<String> {
    keys.is_development().then(|| {
        format!(
            "WARNING: key set {} is a PUBLIC development key set: anyone can read, change and \
             load the cards made with it. Use it for tests and simulated cards only; make a real \
             one with `citizencard keys init FILE` and pass it with --keys.",
            keys.identity().id
        )
    })
}

/// One applicant of the run: where it came from, and the applicant or why not.
struct Entry {
    /// `line N` of a batch, or the TOML file.
    origin: String,
    applicant: Result<Applicant, String>,
}

fn load_entries(args: &IssueArgs) -> Result<(String, Vec<Entry>), Failure> {
    let validator = Validator::today_in_china();
    if let Some(path) = &args.applicant {
        let a = input::load_toml(path, &validator).map_err(Failure::usage)?;
        return Ok((
            path.display().to_string(),
            vec![Entry {
                origin: path.display().to_string(),
                applicant: Ok(a),
            }],
        ));
    }
    let path = args
        .batch
        .as_ref()
        .ok_or_else(|| Failure::usage(anyhow!("give --applicant FILE or --batch FILE.csv")))?;
    let rows = input::load_csv(path, &validator).map_err(Failure::usage)?;
    let entries = rows
        .into_iter()
        .map(|r| Entry {
            origin: format!("line {}", r.line),
            applicant: r.result.map_err(|e| e.to_string()),
        })
        .collect();
    Ok((path.display().to_string(), entries))
}

/// Where cards come from.
pub(crate) enum Cards<'a> {
    /// One image per card.
    SimDir(&'a Path),
    /// The global `--sim IMAGE`: one card.
    Image(&'a Path),
    /// A PC/SC reader.
    Reader,
}

/// Runs `citizencard issue`.
pub fn run(global: &Global, args: IssueArgs) -> Result<(), Failure> {
    // Parse and check everything before any card or registry change.
    let (keys, profile) = args.setup.load()?;
    let (source, entries) = load_entries(&args)?;
    let valid = entries.iter().filter(|e| e.applicant.is_ok()).count();
    let cards = match (&args.sim_dir, &global.sim) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(anyhow!(
                "--sim-dir and --sim both name simulated cards: give one"
            )))
        }
        (Some(_), None) if global.reader.is_some() => {
            return Err(Failure::usage(anyhow!(
                "--sim-dir uses simulated cards, not reader {:?}",
                global.reader.as_deref().unwrap_or_default()
            )))
        }
        (Some(dir), None) => Cards::SimDir(dir),
        (None, Some(img)) if entries.len() == 1 => Cards::Image(img),
        (None, Some(_)) => {
            return Err(Failure::usage(anyhow!(
                "--sim IMAGE holds one card; for a batch give --sim-dir DIR (one image per card)"
            )))
        }
        (None, None) if entries.len() > 1 && !global.wait && !args.plan => {
            return Err(Failure::usage(anyhow!(
                "a batch with a reader needs --wait: each card is waited for, and taken out \
                 before the next one"
            )))
        }
        (None, None) => Cards::Reader,
    };
    if args.plan {
        return show_plan(global, &keys, &profile, &entries);
    }
    if let Cards::SimDir(dir) = cards {
        host_lib::private_fs::create_private_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(Failure::usage)?;
    }
    let mut reg = global.open_registry()?;
    let operator = global.operator();
    // This run is one station: the cards it reserves are leased to it until it completes them,
    // under the id its registry handle records in every audit record.
    let station = reg.station().clone();
    let desk = IssueDesk {
        operator: &operator,
        station: &station,
        lease: host_lib::registry::DEFAULT_LEASE,
    };
    if let Some(w) = development_warning(&keys) {
        eprintln!("citizencard: {w}");
    }
    if !global.json {
        println!(
            "Issuing {valid} card(s) from {source} ({} invalid row(s)) — profile {}, key set {}, \
             registry {}",
            entries.len() - valid,
            profile.id,
            keys.identity().id,
            reg.describe()
        );
    }

    let bar = if global.json || global.trace {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(Some(valid as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} cards {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    // Lines go to stdout, above the bar (which is on stderr, and only on a terminal).
    let say = |line: String| bar.suspend(|| println!("{line}"));

    let started = Instant::now();
    let mut done: Vec<(String, IssueReport)> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut already = 0usize;
    // Set when the registry's server went away: every next card would fail the same way.
    let mut stopped_at: Option<usize> = None;
    for (index, entry) in entries.iter().enumerate() {
        let applicant = match &entry.applicant {
            Ok(a) => a,
            Err(e) => {
                emit(
                    global.json,
                    &say,
                    json!({"origin": entry.origin, "status": "invalid", "error": e}),
                    format!("{}: not issued: {e}", entry.origin),
                );
                failed.push((entry.origin.clone(), e.clone()));
                continue;
            }
        };
        let who = format!("{} {}", applicant.name(), applicant.id_number());
        let reserved = match reserve(&mut reg, &desk, applicant, &keys) {
            Ok(r) => r,
            Err(e) => {
                // A re-run after the issuance completed (the station stopped just after): the
                // card at hand is that card, so it is reported as issued.
                if let Some(card) = active_card_of(&e) {
                    match card_at_hand_is(global, &reg, &cards, &card) {
                        AtHand::ThisCard => {
                            emit(
                                global.json,
                                &say,
                                json!({"origin": entry.origin, "status": "issued", "card_number": card.to_string(), "already": true}),
                                format!(
                                    "{}: {card} {who}: issued already (this card)",
                                    entry.origin
                                ),
                            );
                            already += 1;
                            bar.inc(1);
                            continue;
                        }
                        AtHand::VoidCopy { chip, recorded } => {
                            let msg = format!(
                                "VOID CARD: the card at hand carries {card}, but it is chip {chip} \
                                 and the registry issued {card} on chip {recorded} (another \
                                 station finished this issuance): do not hand it out; erase it \
                                 (a simulated card: delete its image)"
                            );
                            emit(
                                global.json,
                                &say,
                                json!({"origin": entry.origin, "status": "void", "card_number": card.to_string(), "error": msg}),
                                format!("{}: {who}: {msg}", entry.origin),
                            );
                            failed.push((entry.origin.clone(), msg));
                            bar.inc(1);
                            continue;
                        }
                        AtHand::Other => {}
                    }
                }
                emit(
                    global.json,
                    &say,
                    json!({"origin": entry.origin, "status": "refused", "error": e.to_string()}),
                    format!("{}: {who}: not issued: {e}", entry.origin),
                );
                failed.push((entry.origin.clone(), e.to_string()));
                bar.inc(1);
                if e.registry_unreachable() {
                    stopped_at = Some(index);
                    break;
                }
                continue;
            }
        };
        let card_number = reserved.pending.card_number.clone();
        bar.set_message(format!("{card_number} {who}"));
        let mut transport = match open_card(global, &cards, &reserved.pending, &say) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("{e:#}");
                emit(
                    global.json,
                    &say,
                    json!({"origin": entry.origin, "card_number": card_number.to_string(), "status": "failed", "error": msg}),
                    format!("{}: {card_number} {who}: FAILED: {msg}", entry.origin),
                );
                failed.push((entry.origin.clone(), msg));
                bar.inc(1);
                continue;
            }
        };
        let mut on_progress = |p: &personalize::Progress<'_>| {
            let phase = match p.phase {
                Phase::Probing => "probe",
                Phase::Recovering => "recover",
                Phase::Personalizing => "write",
                Phase::Verifying => "verify",
            };
            bar.set_message(format!(
                "{card_number} {who} [{phase} {}/{}] {}",
                p.done, p.total, p.step
            ));
        };
        let result = personalize_and_complete(
            &mut reg,
            &desk,
            transport.as_mut(),
            &keys,
            &profile,
            &reserved.pending,
            &mut on_progress,
        );
        let reader_name = transport.name().to_owned();
        drop(transport);
        bar.inc(1);
        match result {
            Ok(host_lib::service::issue::Completed {
                report,
                issued,
                timings,
            }) => {
                let mut timings = timings;
                timings += reserved.timings;
                let place = match &cards {
                    Cards::SimDir(dir) => format!(" → {}", image_path(dir, &card_number).display()),
                    Cards::Image(p) => format!(" → {}", p.display()),
                    Cards::Reader => format!(" in {reader_name}"),
                };
                emit(
                    global.json,
                    &say,
                    json!({"origin": entry.origin, "status": "issued", "fee_cents": issued.fee_cents, "report": report, "timings": timings}),
                    format!(
                        "{}: {card_number} {who}: issued ({}{}), {} APDUs ({} + {} verification), {}{place}",
                        entry.origin,
                        report.found,
                        if reserved.resumed { ", resumed" } else { "" },
                        report.apdus.total(),
                        report.apdus.probe + report.apdus.personalization,
                        report.apdus.verification,
                        ms(report.elapsed)
                    ),
                );
                done.push((who, report));
            }
            Err(e) => {
                let hint = match &e {
                    IssueFailure::Personalize { .. } if e.card_touched() => {
                        " — run the same command again with this card to finish it"
                    }
                    _ => "",
                };
                emit(
                    global.json,
                    &say,
                    json!({"origin": entry.origin, "card_number": card_number.to_string(), "status": "failed", "error": e.to_string()}),
                    format!("{}: {who}: FAILED: {e}{hint}", entry.origin),
                );
                failed.push((entry.origin.clone(), e.to_string()));
                if e.registry_unreachable() {
                    stopped_at = Some(index);
                    break;
                }
            }
        }
        if matches!(cards, Cards::Reader) && global.wait && entries.len() > 1 {
            bar.suspend(|| eprintln!("Take the card out of {reader_name}."));
            wait_removed(&reader_name).map_err(Failure::card)?;
        }
    }
    bar.finish_and_clear();
    if let Some(index) = stopped_at {
        let left = entries.len() - index - 1;
        let text = format!(
            "STOPPED: the registry's database server cannot be reached, so the batch stops here \
             ({left} applicant(s) not attempted). Once the server is back, run the same command \
             again: it finishes the card under way and issues the rest."
        );
        emit(
            global.json,
            &say,
            json!({"status": "stopped", "not_attempted": left, "error": text}),
            text.clone(),
        );
    }
    summary(global.json, &done, already, &failed, started.elapsed());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::unmet())
    }
}

fn emit(json: bool, say: &impl Fn(String), value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        say(text);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn image_path(dir: &Path, card: &impl std::fmt::Display) -> PathBuf {
    dir.join(format!("{card}.img"))
}

/// What the simulated card at hand (`--sim-dir`'s image of that number, or `--sim`) is against the
/// registry's active card. A reader is not asked: its card may be another applicant's next card.
fn card_at_hand_is(
    global: &Global,
    reg: &Registry,
    cards: &Cards<'_>,
    card: &host_lib::holder::items::CardNumber,
) -> AtHand {
    let path = match cards {
        Cards::SimDir(dir) => image_path(dir, card),
        Cards::Image(p) => p.to_path_buf(),
        Cards::Reader => return AtHand::Other,
    };
    if !path.exists() {
        return AtHand::Other;
    }
    match SimTransport::open_image(&path) {
        Ok(sim) => card_at_hand(
            reg,
            transport::wrap(Box::new(sim), &global.open_options()).as_mut(),
            card,
        ),
        Err(_) => AtHand::Other,
    }
}

/// The card for one applicant.
fn open_card(
    global: &Global,
    cards: &Cards<'_>,
    pending: &host_lib::registry::PendingCard,
    say: &impl Fn(String),
) -> anyhow::Result<Box<dyn Transport>> {
    let options = global.exclusive_options();
    match cards {
        Cards::SimDir(dir) => {
            let path = image_path(dir, &pending.card_number);
            if !path.exists() {
                // A blank chip with a serial of its own (ATR TA..TD), as real chips have: the
                // registry records it, so two cards written with one number are told apart.
                let historical = HistoricalBytes::wenzhou(crate::cmd::sim::random_serial());
                let card = SimCard::blank(Geometry::DEFAULT, &historical)
                    .map_err(|e| anyhow!("making a blank card: {e:?}"))?;
                let created = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let header = image::ImageHeader::new(
                    Geometry::DEFAULT.capacity,
                    Geometry::DEFAULT.page_size,
                    created,
                );
                image::save(&path, &header, card.nvm())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let sim = SimTransport::open_image(&path)?;
            Ok(transport::wrap(Box::new(sim), &options))
        }
        Cards::Image(path) => {
            let sim = SimTransport::open_image(path)?;
            Ok(transport::wrap(Box::new(sim), &options))
        }
        Cards::Reader => {
            if global.wait {
                say(format!(
                    "Insert the card for {} ({}).",
                    pending.holder.name(),
                    pending.card_number
                ));
            }
            Ok(transport::open(&options)?)
        }
    }
}

/// Waits until the reader is empty.
fn wait_removed(reader: &str) -> anyhow::Result<()> {
    use pcsc::{ReaderState, State};
    let ctx = transport::pcsc::establish()?;
    let name = std::ffi::CString::new(reader)?;
    let mut rs = [ReaderState::new(name, State::UNAWARE)];
    loop {
        ctx.get_status_change(None, &mut rs)
            .map_err(|e| transport::pcsc::map_error(e, "SCardGetStatusChange", reader))?;
        let s = rs[0].event_state();
        if s.contains(State::EMPTY) || s.contains(State::UNKNOWN) || s.contains(State::IGNORE) {
            return Ok(());
        }
        rs[0].sync_current_state();
    }
}

fn summary(
    json: bool,
    done: &[(String, IssueReport)],
    already: usize,
    failed: &[(String, String)],
    all: Duration,
) {
    let n = done.len();
    let apdus: usize = done.iter().map(|(_, r)| r.apdus.total()).sum();
    let time: Duration = done.iter().map(|(_, r)| r.elapsed).sum();
    if json {
        println!(
            "{}",
            json!({"summary": {
                "issued": n,
                "issued_already": already,
                "failed": failed.len(),
                "apdus": apdus,
                "apdus_per_card": if n > 0 { apdus as f64 / n as f64 } else { 0.0 },
                "ms_per_card": if n > 0 { time.as_secs_f64() * 1e3 / n as f64 } else { 0.0 },
                "wall_ms": all.as_secs_f64() * 1e3,
            }})
        );
        return;
    }
    println!();
    if already > 0 {
        println!(
            "Summary: {n} issued, {already} issued already (the card at hand), {} not issued.",
            failed.len()
        );
    } else {
        println!("Summary: {n} issued, {} not issued.", failed.len());
    }
    if n > 0 {
        println!(
            "{:<10} {} {:>6} {:>7} {:>7} {:>6} {:>10}",
            "card",
            truncate("holder", 36),
            "APDUs",
            "written",
            "checked",
            "photo",
            "time"
        );
        for (who, r) in done {
            println!(
                "{:<10} {} {:>6} {:>7} {:>7} {:>6} {:>10}",
                r.card_number.to_string(),
                truncate(who, 36),
                r.apdus.total(),
                r.apdus.probe + r.apdus.personalization,
                r.apdus.verification,
                r.photo_bytes,
                ms(r.elapsed)
            );
        }
        println!(
            "Per card: {:.1} APDUs, {} on the card; {} in all.",
            apdus as f64 / n as f64,
            ms(time / n as u32),
            ms(all)
        );
    }
    for (origin, why) in failed {
        println!("not issued: {origin}: {why}");
    }
}

/// The columns a character takes on a terminal: two for CJK characters.
pub fn char_width(c: char) -> usize {
    if u32::from(c) >= 0x1100 {
        2
    } else {
        1
    }
}

/// `s` cut or padded to `width` terminal columns.
pub fn truncate(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw > width {
            break;
        }
        w += cw;
        out.push(c);
    }
    out.push_str(&" ".repeat(width.saturating_sub(w)));
    out
}

/// `--plan`: the steps for the first valid applicant, with a number reserved in a throwaway
/// registry and the ATR of a simulated card.
fn show_plan(
    global: &Global,
    keys: &KeySet,
    profile: &Profile,
    entries: &[Entry],
) -> Result<(), Failure> {
    let applicant = entries
        .iter()
        .find_map(|e| e.applicant.as_ref().ok())
        .ok_or_else(|| Failure::usage(anyhow!("no valid applicant to plan for")))?;
    let config = match &global.registry_config {
        Some(p) => RegistryConfig::load(p).map_err(Failure::usage)?,
        None => RegistryConfig::default(),
    };
    let mut reg = Registry::open_in_memory(config, std::sync::Arc::new(registry::SystemClock))
        .map_err(Failure::card)?;
    let station = reg.station().clone();
    let desk = IssueDesk {
        operator: "plan",
        station: &station,
        lease: host_lib::registry::DEFAULT_LEASE,
    };
    let pending = reserve(&mut reg, &desk, applicant, keys)
        .map_err(Failure::usage)?
        .pending;
    let historical = HistoricalBytes::wenzhou(pending.serial.to_be_bytes());
    let atr = card_os::card::system::atr(&historical);
    let data = CardData::from_pending(&pending, &historical);
    let plan = personalize::plan(&atr, keys, profile, &data).map_err(Failure::usage)?;
    if global.json {
        for (i, s) in plan.steps().iter().enumerate() {
            println!(
                "{}",
                json!({"step": i + 1, "df": s.df, "what": s.what, "apdus": s.apdus()})
            );
        }
        println!(
            "{}",
            json!({"personalization_apdus": plan.personalization_apdus(), "verification_apdus": plan.verification_apdus()})
        );
        return Ok(());
    }
    println!(
        "Plan for {} {} (card {}), profile {}, key set {}:",
        applicant.name(),
        applicant.id_number(),
        pending.card_number,
        profile.id,
        keys.identity().id
    );
    let mut n = 0;
    for (i, s) in plan.steps().iter().enumerate() {
        n += s.apdus();
        println!("{:>3}. [{:>3}] {:<16} {}", i + 1, n, s.df, s.what);
    }
    println!(
        "Personalization: {} APDUs ({} steps). Read-back verification: {} APDUs:",
        plan.personalization_apdus(),
        plan.steps().len(),
        plan.verification_apdus()
    );
    for c in plan.checks() {
        println!("       {c}");
    }
    Ok(())
}
