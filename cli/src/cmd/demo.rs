//! `citizencard demo`: a card's whole life on simulated cards, nothing to install — issue, read
//! back, load, pay, an application on demand, loss report, the blacklist at a terminal, loss
//! statement, replacement with the balance carried over, cancellation.
//!
//! Everything runs in process on card images (the real card OS over simulated memory) with a
//! registry file, the shipped profile and the public development key set. The demo's clock
//! starts now and moves on a minute per step, so that the loss statement has a purchase on each
//! side of the loss report; the registry and the terminals read the same clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use clap::Args;
use host_lib::apps::{targets, Blacklist, Session};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{input, Validator, CHINA_TIME};
use host_lib::keys::{HostTime, KeySet, KeyStore};
use host_lib::profile::Profile;
use host_lib::registry::Station;
use host_lib::registry::{
    AppState, BlacklistFormat, CancelReason, Clock, ManualClock, PendingCard, Registry,
    RegistryConfig, ReplaceReason,
};
use host_lib::service::issue::{personalize_and_complete, reserve, IssueDesk};
use host_lib::service::purse::{BlacklistSource, PurseDesk};
use host_lib::service::state::TerminalState;
use host_lib::ssse::{read_card, ReadMode, ReadOptions};
use host_lib::terminal::record::host_time;
use host_lib::terminal::{format_yuan, NoJournal, Terminal, TerminalConfig};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;

use crate::exit::Failure;
use crate::table::yuan;
use crate::Global;

/// The sample applicant (test-vectors/applicants/one.toml) and the photo it names.
const APPLICANT: &str = include_str!("../../../test-vectors/applicants/one.toml");
const PHOTO: &[u8] = include_bytes!("../../../test-vectors/applicants/photos/p01.jpg");

/// Arguments of `citizencard demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the card images, the registry and the exported blacklist in this directory (default:
    /// a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(global: &Global, args: DemoArgs) -> Result<(), Failure> {
    let _ = global;
    demo(args).map_err(|e| Failure::card(anyhow!("demo: {e:#}")))
}

/// The demo's clock: starts now, moves on when told.
struct DemoClock(Arc<ManualClock>);

impl DemoClock {
    fn step(&self) {
        self.0.advance(time::Duration::minutes(1));
    }
    /// The terminals' local time (China), as they send it.
    fn host_time(clock: &ManualClock) -> HostTime {
        let t = clock.now().to_offset(CHINA_TIME);
        host_time(time::PrimitiveDateTime::new(t.date(), t.time()))
    }
}

fn heading(n: &mut usize, text: &str) {
    *n += 1;
    println!("\n{n}. {text}");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("   {l}\n")
            }
        })
        .collect()
}

fn blank_image(path: &Path, serial: u32) -> anyhow::Result<()> {
    let card = SimCard::blank(
        Geometry::DEFAULT,
        &HistoricalBytes::wenzhou(serial.to_be_bytes()),
    )
    .map_err(|e| anyhow!("making a blank card: {e:?}"))?;
    let header =
        image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
    image::save(path, &header, card.nvm()).with_context(|| format!("writing {}", path.display()))
}

fn open(path: &Path) -> anyhow::Result<Box<dyn Transport>> {
    Ok(Box::new(
        SimTransport::open_image(path).with_context(|| format!("opening {}", path.display()))?,
    ))
}

struct Demo {
    dir: PathBuf,
    keys: KeySet,
    profile: Profile,
    reg: Registry,
    clock: Arc<ManualClock>,
    purse_aid: Vec<u8>,
    op: String,
    station: Station,
}

impl Demo {
    fn image(&self, card: &CardNumber) -> PathBuf {
        self.dir.join("cards").join(format!("{card}.img"))
    }

    fn terminal<'a>(
        &'a self,
        transport: Box<dyn Transport>,
        terminal_id: [u8; 6],
    ) -> Terminal<'a, Box<dyn Transport>> {
        let clock = Arc::clone(&self.clock);
        Terminal::new(
            transport,
            &self.keys,
            TerminalConfig {
                aid: self.purse_aid.clone(),
                terminal_id,
                recovery_wait: Duration::from_secs(1),
                ..TerminalConfig::default()
            },
        )
        .with_journal(NoJournal)
        .with_clock(move || DemoClock::host_time(&clock))
    }

    /// Runs `f` at a purse desk (the terminal state in `terminal/`, held for this step only;
    /// the registry's ledger; the demo's clock) with the card `card`.
    fn purse_desk<R>(
        &mut self,
        terminal_id: [u8; 6],
        f: impl FnOnce(PurseDesk<'_>, Box<dyn Transport>) -> Result<R, host_lib::service::ServiceError>,
        card: &CardNumber,
    ) -> anyhow::Result<R> {
        let state = TerminalState::open(
            &self.dir.join("terminal"),
            "citizencard demo",
            host_lib::lock::DEFAULT_WAIT,
        )?;
        let transport = open(&self.image(card))?;
        let clock = Arc::clone(&self.clock);
        let desk = PurseDesk {
            keys: &self.keys,
            config: TerminalConfig {
                aid: self.purse_aid.clone(),
                terminal_id,
                recovery_wait: Duration::from_secs(1),
                ..TerminalConfig::default()
            },
            state: &state,
            registry: Some(&mut self.reg),
            operator: &self.op,
            clock: Some(Box::new(move || DemoClock::host_time(&clock))),
        };
        Ok(f(desk, transport)?)
    }

    /// Personalizes `pending` (reserved by this station) on a new blank image and records it
    /// issued.
    fn personalize(&mut self, pending: &PendingCard) -> anyhow::Result<String> {
        let path = self.image(&pending.card_number);
        blank_image(&path, pending.serial)?;
        let mut t = open(&path)?;
        let desk = IssueDesk {
            operator: &self.op,
            station: &self.station,
            lease: host_lib::registry::DEFAULT_LEASE,
        };
        let host_lib::service::issue::Completed { report, issued, .. } = personalize_and_complete(
            &mut self.reg,
            &desk,
            t.as_mut(),
            &self.keys,
            &self.profile,
            pending,
            &mut |_| {},
        )?;
        Ok(format!(
            "{}: personalized, read back and verified: {} APDUs ({} written, {} read back), \
             {:.1} ms; fee {} ({})\n{}",
            pending.card_number,
            report.apdus.total(),
            report.apdus.probe + report.apdus.personalization,
            report.apdus.verification,
            report.elapsed.as_secs_f64() * 1e3,
            yuan(i64::from(issued.fee_cents)),
            issued.fee_kind,
            path.display()
        ))
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let temp;
    let dir = match &args.keep {
        Some(dir) => {
            host_lib::private_fs::create_private_dir_all(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                return Err(anyhow!(
                    "{} is not empty: --keep needs a new or empty directory (the demo makes a \
                     fresh registry there)",
                    dir.display()
                ));
            }
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    host_lib::private_fs::create_private_dir_all(&dir.join("cards"))?;
    host_lib::private_fs::create_private_dir_all(&dir.join("applicant/photos"))?;
    host_lib::private_fs::write_private_atomic(
        &dir.join("applicant/one.toml"),
        APPLICANT.as_bytes(),
    )?;
    host_lib::private_fs::write_private_atomic(&dir.join("applicant/photos/p01.jpg"), PHOTO)?;

    // The purchase terminals' PSAM: its transaction number lives in a file, as `purse` keeps it.
    host_lib::private_fs::create_private_dir_all(&dir.join("terminal"))?;
    let counter = host_lib::keys::TerminalCounter::open(&dir.join("terminal").join("psam-counter"))
        .map_err(|e| anyhow!("{e}"))?;
    let keys = KeySet::from_toml(crate::keyset::DEVELOPMENT_KEYS)
        .map_err(|e| anyhow!("{e}"))?
        .with_terminal_counter(counter);
    let profile = Profile::wenzhou();
    let clock = Arc::new(ManualClock::new(
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    ));
    let reg = Registry::open_with_clock(
        &dir.join("registry.db"),
        RegistryConfig::default(),
        clock.clone() as Arc<dyn Clock>,
    )?;
    let purse = targets(&profile)
        .into_iter()
        .find(|t| t.name == "purse")
        .ok_or_else(|| anyhow!("the profile has no purse"))?;
    let public = targets(&profile)
        .into_iter()
        .find(|t| t.name == "public")
        .ok_or_else(|| anyhow!("no public-services application"))?;
    // Leases name the station the registry records in every audit record.
    let station = reg.station().clone();
    let mut d = Demo {
        dir: dir.clone(),
        keys,
        profile,
        reg,
        clock: clock.clone(),
        purse_aid: purse.df_name.clone(),
        op: "demo-clerk".into(),
        station,
    };
    let tick = DemoClock(clock.clone());
    let mut n = 0;

    println!(
        "citizencard demo: a Wenzhou social security · citizen card's life, on simulated cards"
    );
    println!(
        "   registry {}, card images in {}",
        dir.join("registry.db").display(),
        dir.join("cards").display()
    );
    println!(
        "   WARNING: the key set is {}, the PUBLIC development key set: fine for simulated \
         cards, never for real ones (make one with `citizencard keys init FILE`).",
        d.keys.identity().id
    );

    // 1. Issue.
    let applicant = input::load_toml(
        &dir.join("applicant/one.toml"),
        &Validator::today_in_china(),
    )?;
    heading(
        &mut n,
        &format!(
            "Issue a card to {} ({}): a card number from the registry, personalization, \
             read-back, then recorded as issued",
            applicant.name(),
            applicant.id_number()
        ),
    );
    let pending = {
        let desk = IssueDesk {
            operator: &d.op,
            station: &d.station,
            lease: host_lib::registry::DEFAULT_LEASE,
        };
        reserve(&mut d.reg, &desk, &applicant, &d.keys)?.pending
    };
    let first = pending.card_number.clone();
    println!("{}", indent(&d.personalize(&pending)?).trim_end());

    // 2. Read back.
    tick.step();
    heading(
        &mut n,
        "Read it back as a social-security reader does (`citizencard info`)",
    );
    {
        let mut t = open(&d.image(&first))?;
        let c = read_card(
            t.as_mut(),
            &d.keys,
            &d.profile,
            ReadOptions {
                mode: ReadMode::ByTag,
                photo: true,
            },
        )?;
        print!("{}", indent(&crate::cmd::info::table(&c, None)));
    }

    // 3. Load.
    tick.step();
    heading(
        &mut n,
        "Load 100.00 yuan at a service point (the load host: MAC1 checked, MAC2, TAC)",
    );
    {
        let o = d.purse_desk(
            [0x00, 0x00, 0x00, 0x00, 0x01, 0x01],
            |desk, t| desk.load(t, 10_000, &mut |_| {}),
            &first,
        )?;
        let r = &o.record;
        println!(
            "   card balance {} yuan (TAC {} verified); registry ledger {}",
            format_yuan(r.balance_after),
            hex::encode_upper(r.tac),
            yuan(o.ledger_balance_cents.unwrap_or_default())
        );
    }

    // 4. Pay.
    tick.step();
    heading(
        &mut n,
        "Pay 2.00 on a bus (the purchase terminal checks the blacklist first)",
    );
    let paid_before = pay(&mut d, &first, 200, [0, 0, 0, 0, 0x0B, 0x05])?;
    println!("{}", indent(&paid_before).trim_end());

    // 5. Application on demand.
    tick.step();
    heading(
        &mut n,
        "Add the public-services application on demand (Art. 11-12: library card number)",
    );
    {
        let mut t = open(&d.image(&first))?;
        let mut s = Session::new(t.as_mut(), &d.keys);
        let id = s.identify()?;
        let values = vec![("library".to_string(), "WZL-0000123".to_string())];
        let done = s.enable(&id, &d.profile, &public, false, &values)?;
        d.reg.record_application(
            &d.op,
            &first,
            "public",
            AppState::Enabled,
            serde_json::json!({ "done": done, "apdus": s.apdus() }),
        )?;
        let def = public
            .definition
            .as_ref()
            .ok_or_else(|| anyhow!("no definition"))?;
        let fields = s.read_fields(def)?;
        println!(
            "   DF {:?} created under the MF master's authority, its keys loaded under the \
             transport key, {} APDUs; it reads back library = {}",
            def.df_name_text,
            s.apdus(),
            fields[0].1
        );
    }

    // 6. Loss.
    tick.step();
    heading(
        &mut n,
        "The holder reports the card lost: it is blacklisted from this instant",
    );
    let at = d.reg.report_loss(&d.op, &first)?;
    println!("   {first}: lost, blacklisted from {at}");

    // 7. The lost card at a terminal.
    tick.step();
    heading(
        &mut n,
        "Someone pays with the lost card: the terminal refuses it and blocks its purse for good",
    );
    match pay(&mut d, &first, 500, [0, 0, 0, 0, 0x0C, 0x01]) {
        Ok(_) => return Err(anyhow!("the blacklisted card paid")),
        Err(e) => println!("   refused: {e:#}"),
    }
    {
        let mut terminal = d.terminal(open(&d.image(&first))?, [0, 0, 0, 0, 0x0C, 0x01]);
        match terminal.balance() {
            Ok(_) => return Err(anyhow!("the blocked purse still answers")),
            Err(e) => println!("   the card now answers: {e}"),
        }
    }

    // 8. Loss statement.
    tick.step();
    heading(
        &mut n,
        "The loss statement: purchases before the report are the holder's loss",
    );
    let statement = d.reg.loss_statement(&first)?;
    print!(
        "{}",
        indent(&crate::cmd::card::loss_statement_text(&statement))
    );

    // 9. Replace.
    tick.step();
    heading(
        &mut n,
        "Replace the lost card: a new card, the old one cancelled, the fee, the balance carried over",
    );
    let replaced = {
        let desk = IssueDesk {
            operator: &d.op,
            station: &d.station,
            lease: host_lib::registry::DEFAULT_LEASE,
        };
        let cards = dir.join("cards");
        let keys = &d.keys;
        host_lib::service::replace::replace(
            &mut d.reg,
            &desk,
            keys,
            &d.profile,
            &first,
            ReplaceReason::Lost,
            None,
            &mut |card, serial| {
                let path = cards.join(format!("{card}.img"));
                blank_image(&path, serial).map_err(|e| format!("{e:#}"))?;
                open(&path).map_err(|e| format!("{e:#}"))
            },
            &dir.join("terminal"),
            [0, 0, 0, 0, 0x01, 0x01],
            {
                let c = Arc::clone(&clock);
                move || DemoClock::host_time(&c)
            },
            &mut |_| {},
        )?
    };
    let second = replaced.new_card.clone();
    if let (Some(report), Some(fee)) = (&replaced.report, replaced.fee_cents) {
        println!(
            "   {second}: personalized, read back and verified: {} APDUs ({} written, {} read \
             back), {:.1} ms; fee {} (replacement)\n   {}",
            report.apdus.total(),
            report.apdus.probe + report.apdus.personalization,
            report.apdus.verification,
            report.elapsed.as_secs_f64() * 1e3,
            yuan(i64::from(fee)),
            d.image(&second).display()
        );
    }
    let carried = replaced.carry_over;
    let (credited, owed) = (carried.credited_cents, carried.still_owed_cents);
    if owed != 0 {
        return Err(anyhow!("{} not carried over", yuan(owed)));
    }
    {
        let mut terminal = d.terminal(open(&d.image(&second))?, [0, 0, 0, 0, 0x01, 0x01]);
        let chip = terminal.balance()?;
        println!(
            "   {} carried over: the new card's purse holds {} yuan, the registry's ledger {}",
            yuan(credited),
            format_yuan(chip),
            yuan(d.reg.balance(&second)?)
        );
    }
    println!(
        "   {first} is now {}; blacklisted since the loss report",
        d.reg.status(&first)?
    );

    // 10. Cancel.
    tick.step();
    heading(
        &mut n,
        "The holder moves away: cancel the new card (refund, closed, blacklisted, purse blocked)",
    );
    let c = {
        let mut t = open(&d.image(&second))?;
        let state = TerminalState::open(
            &dir.join("terminal"),
            "citizencard demo",
            host_lib::lock::DEFAULT_WAIT,
        )?;
        host_lib::service::cancel::cancel(
            &mut d.reg,
            &d.op,
            &second,
            CancelReason::MovedAway,
            Some(host_lib::service::cancel::AtHand {
                transport: t.as_mut(),
                keys: &d.keys,
                profile: &d.profile,
                state: Some(&state),
            }),
        )?
    };
    println!(
        "   {second}: cancelled; refund {} recorded; its purse blocked for good (card at hand)",
        yuan(c.refund_cents.unwrap_or_default())
    );

    // 11. The registry.
    heading(
        &mut n,
        "What the registry now holds (`citizencard registry …`)",
    );
    let cards = d.reg.list_cards(&Default::default())?;
    for c in &cards {
        println!(
            "   {}  {:<9}  {}{}",
            c.card_number,
            c.status.as_str(),
            c.name,
            c.replaced_by
                .as_deref()
                .map(|r| format!(", replaced by {r}"))
                .unwrap_or_default()
        );
    }
    let audit = d.reg.audit_log(&Default::default())?;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    println!(
        "   audit log: {} records: {}",
        audit.len(),
        actions.join(", ")
    );
    // `citizencard registry verify`: the tables replayed from the audit hash chain.
    let check = d.reg.verify()?;
    if !check.is_clean() {
        anyhow::bail!(
            "the registry disagrees with its audit chain: {} finding(s)",
            check.findings.len()
        );
    }
    println!(
        "   audit chain: {} records, {} table rows checked, no disagreement (`registry verify`)",
        check.audit_records, check.rows_checked
    );
    let list = dir.join("blacklist.txt");
    let mut f = std::fs::File::create(&list)?;
    let entries = d.reg.export_blacklist(&mut f, BlacklistFormat::Text)?;
    println!(
        "   blacklist for terminals: {} card(s), written to {}",
        entries,
        list.display()
    );
    // The exported list is what an offline terminal loads.
    Blacklist::from_file(&list)?;

    println!(
        "\nDone in {:.2} s (everything in process: the card OS runs on simulated memory).",
        started.elapsed().as_secs_f64()
    );
    if args.keep.is_some() {
        println!(
            "Kept in {}: `citizencard --registry {} registry list`, `citizencard --sim {} info`.",
            dir.display(),
            dir.join("registry.db").display(),
            d.image(&first).display()
        );
    }
    Ok(())
}

/// A purchase at terminal `terminal_id`, after the blacklist check; recorded in the ledger.
fn pay(
    d: &mut Demo,
    card: &CardNumber,
    cents: u32,
    terminal_id: [u8; 6],
) -> anyhow::Result<String> {
    let now = d.reg.now();
    let o = d.purse_desk(
        terminal_id,
        |desk, t| desk.purchase(t, cents, None, BlacklistSource::Registry, now, &mut |_| {}),
        card,
    )?;
    let r = o.record;
    Ok(format!(
        "card balance {} yuan (MAC2 and TAC verified); registry ledger {}",
        format_yuan(r.balance_after),
        yuan(d.reg.balance(card)?)
    ))
}
