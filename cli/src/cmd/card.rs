//! `citizencard card status|report-loss|revoke-loss|loss-statement|replace|cancel`: a card's
//! life under the regulation, through the issuance registry (and the card, where it is at hand).
//!
//! Every change goes through one registry operation, which refuses what the life cycle does not
//! allow (exit status 1, with the registry's reason) and writes its own audit record.

use clap::{Args, Subcommand, ValueEnum};
use host_lib::holder::items::CardNumber;
use host_lib::registry::{
    CancelReason, CardStatus, LossStatement, PurchaseEntry, Registry, ReplaceReason,
};
use serde::Serialize;

use crate::cmd::registry::{parse_card, registry_failure};
use crate::exit::Failure;
use crate::table::{yuan, Table};
use crate::Global;

/// `citizencard card …`
#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// A card's status, holder, ledger balance, blacklist entry and applications.
    Status(CardArg),
    /// Report a card lost (Art. 16–17): it is blacklisted from this instant.
    #[command(
        long_about = "Report an active card lost (Art. 16-17). The card becomes `lost` and is \
        blacklisted from this very instant (a report cannot be back-dated): purchases made before \
        it are the holder's loss, purchases after it the issuer's concern (`card loss-statement`). \
        Replace it afterwards with `card replace CARD --reason lost`, or take the report back \
        with `card revoke-loss` if the card is found."
    )]
    ReportLoss(CardArg),
    /// Take back a loss report: the card was found (解挂); its blacklist entry is lifted.
    RevokeLoss(CardArg),
    /// The purchases of a card reported lost, split at the report: the holder's and the issuer's.
    LossStatement(CardArg),
    /// Replace a card (Art. 15; after a loss report, Art. 16–17): a new card personalized, the
    /// old one cancelled, the fee recorded, the balance carried over onto the new card.
    #[command(
        long_about = "Replace a card (Art. 15: damaged, unreadable, data changed, other; Art. \
        16-17: lost, after `card report-loss`). A new card number is reserved and a new card is \
        personalized (from a reader, --sim IMAGE, or --sim-dir DIR where a blank image \
        <card number>.img is made), read back and verified; only then does the registry cancel \
        and blacklist the old card, record the replacement fee and move the old card's ledger \
        balance to the new one. That balance is then loaded onto the new card's purse through \
        the load host (DLK, MAC2, TAC checked) and recorded as carried over.\n\n\
        With --reason data-changed, give the holder's new data with --applicant FILE (same ID \
        number): it is recorded (audited) first, and the new card carries it.\n\n\
        Interrupted? Run the same command again with the same new card: a personalization \
        under way is finished (same card number), and a balance not yet on the new chip is \
        loaded (a load torn at CREDIT is settled first through the card's proof, never loaded \
        twice)."
    )]
    Replace(ReplaceArgs),
    /// Cancel a card (Art. 18): refund its balance, close and blacklist it.
    #[command(
        long_about = "Cancel an active or lost card (Art. 18: death, moving away, no longer \
        needed). The balance the registry's ledger knows is refunded (recorded as a refund), the \
        card is closed and blacklisted. A card whose replacement is being personalized cannot be \
        cancelled until that is completed or aborted.\n\n\
        With the card at hand (--sim IMAGE, or -r/--reader), its purse application is also \
        blocked for good (APPLICATION BLOCK with the line-protection MAC), after checking that the \
        card in the reader is this card. Running the command again on a cancelled card with the \
        card at hand finishes a block that was interrupted."
    )]
    Cancel(CancelArgs),
}

/// A card number argument.
#[derive(Args, Debug)]
pub struct CardArg {
    /// The card number (nine characters, e.g. W00000018).
    #[arg(value_name = "CARD", value_parser = parse_card)]
    pub card: CardNumber,
}

/// Arguments of `card cancel`.
#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The card number.
    #[arg(value_name = "CARD", value_parser = parse_card)]
    pub card: CardNumber,
    /// Why (Art. 18).
    #[arg(long, value_enum)]
    pub reason: CancelReasonArg,
    /// Key set and profile, for blocking the purse of a card at hand.
    #[command(flatten)]
    pub setup: crate::cmd::issue::Setup,
}

/// Arguments of `card replace`.
#[derive(Args, Debug)]
pub struct ReplaceArgs {
    /// The card to replace.
    #[arg(value_name = "CARD", value_parser = parse_card)]
    pub card: CardNumber,
    /// Why.
    #[arg(long, value_enum)]
    pub reason: ReplaceReasonArg,
    /// The holder's new data (a TOML applicant file, same ID number); required with
    /// --reason data-changed.
    #[arg(long, value_name = "FILE")]
    pub applicant: Option<std::path::PathBuf>,
    /// Simulated cards instead of a reader: the new card is DIR/<card number>.img (made blank
    /// if missing).
    #[arg(long, value_name = "DIR")]
    pub sim_dir: Option<std::path::PathBuf>,
    /// The load host's terminal id for the carried-over balance (12 hex digits).
    #[arg(long, value_name = "ID", default_value = "000000000001", value_parser = parse_terminal_id)]
    pub terminal: [u8; 6],
    /// Key set and profile of the new card.
    #[command(flatten)]
    pub setup: crate::cmd::issue::Setup,
}

fn parse_terminal_id(s: &str) -> Result<[u8; 6], String> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
        .ok_or_else(|| format!("{s:?}: a terminal id is 12 hex digits, e.g. 000000000001"))
}

/// Art. 18 reasons, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CancelReasonArg {
    /// The holder died (the balance is refunded to the heirs).
    Death,
    /// The holder moved away from Wenzhou.
    MovedAway,
    /// The holder no longer needs the card.
    NoLongerNeeded,
}

impl From<CancelReasonArg> for CancelReason {
    fn from(r: CancelReasonArg) -> Self {
        match r {
            CancelReasonArg::Death => CancelReason::Death,
            CancelReasonArg::MovedAway => CancelReason::MovedAway,
            CancelReasonArg::NoLongerNeeded => CancelReason::NoLongerNeeded,
        }
    }
}

/// Art. 15 (and 16–17) reasons, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplaceReasonArg {
    /// Physically damaged.
    Damaged,
    /// The chip no longer answers.
    Unreadable,
    /// The holder's data changed.
    DataChanged,
    /// The card was reported lost.
    Lost,
    /// Any other reason.
    Other,
}

impl From<ReplaceReasonArg> for ReplaceReason {
    fn from(r: ReplaceReasonArg) -> Self {
        match r {
            ReplaceReasonArg::Damaged => ReplaceReason::Damaged,
            ReplaceReasonArg::Unreadable => ReplaceReason::Unreadable,
            ReplaceReasonArg::DataChanged => ReplaceReason::DataChanged,
            ReplaceReasonArg::Lost => ReplaceReason::Lost,
            ReplaceReasonArg::Other => ReplaceReason::Other,
        }
    }
}

/// Runs a `card` subcommand.
pub fn run(global: &Global, command: CardCommand) -> Result<(), Failure> {
    let mut reg = global.open_registry()?;
    match command {
        CardCommand::Status(a) => status(global, &reg, &a.card),
        CardCommand::ReportLoss(a) => report_loss(global, &mut reg, &a.card),
        CardCommand::RevokeLoss(a) => revoke_loss(global, &mut reg, &a.card),
        CardCommand::LossStatement(a) => loss_statement(global, &reg, &a.card),
        CardCommand::Replace(a) => replace(global, &mut reg, a),
        CardCommand::Cancel(a) => cancel(global, &mut reg, a),
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string(value).map_err(Failure::card)?);
    Ok(())
}

/// What `card status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The card.
    pub card_number: String,
    /// Its status.
    pub status: CardStatus,
    /// Holder's name.
    pub name: String,
    /// Holder's ID number.
    pub id_number: String,
    /// Issue date.
    pub issue_date: String,
    /// Expiry date.
    pub expiry_date: String,
    /// Ledger balance in cents.
    pub balance_cents: i64,
    /// Carried-over balance not yet credited to the chip, in cents.
    pub owed_to_chip_cents: i64,
    /// The open blacklist entry: reason and instant.
    pub blacklisted: Option<host_lib::registry::BlacklistEntry>,
    /// The card it replaced.
    pub replaces: Option<String>,
    /// The card that replaced it.
    pub replaced_by: Option<String>,
    /// Why it was closed.
    pub closed_reason: Option<String>,
    /// Applications recorded for it.
    pub applications: Vec<host_lib::registry::ApplicationEntry>,
}

/// Collects `card status` from the registry.
pub fn status_report(reg: &Registry, card: &CardNumber) -> Result<StatusReport, Failure> {
    let d = reg.card_details(card).map_err(registry_failure)?;
    let apps = reg.applications(card).map_err(registry_failure)?;
    let owed = reg.owed_to_chip(card).map_err(registry_failure)?;
    let c = d.card;
    Ok(StatusReport {
        card_number: c.card_number,
        status: c.status,
        name: c.name,
        id_number: c.id_number,
        issue_date: c.issue_date,
        expiry_date: c.expiry_date,
        balance_cents: d.balance_cents,
        owed_to_chip_cents: owed,
        blacklisted: d.blacklist.into_iter().find(|b| b.lifted_at.is_none()),
        replaces: c.replaces,
        replaced_by: c.replaced_by,
        closed_reason: c.closed_reason,
        applications: apps,
    })
}

/// The text of `card status`.
pub fn status_text(r: &StatusReport) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &str| out.push_str(&format!("{k:<14}{v}\n"));
    field("card", &r.card_number);
    field("status", r.status.as_str());
    field("holder", &format!("{} ({})", r.name, r.id_number));
    field("valid", &format!("{} to {}", r.issue_date, r.expiry_date));
    field("balance", &format!("{} (ledger)", yuan(r.balance_cents)));
    if r.owed_to_chip_cents != 0 {
        field(
            "not on chip",
            &format!(
                "{} carried over, not yet loaded onto the chip (`card replace` again finishes it)",
                yuan(r.owed_to_chip_cents)
            ),
        );
    }
    match &r.blacklisted {
        Some(b) => field("blacklisted", &format!("{} since {}", b.reason, b.since)),
        None => field("blacklisted", "no"),
    }
    if let Some(x) = &r.replaces {
        field("replaces", x);
    }
    if let Some(x) = &r.replaced_by {
        field("replaced by", x);
    }
    if let Some(x) = &r.closed_reason {
        field("closed", x);
    }
    if !r.applications.is_empty() {
        let apps: Vec<String> = r
            .applications
            .iter()
            .map(|a| format!("{} {}", a.name, a.state))
            .collect();
        field("applications", &apps.join(", "));
    }
    out
}

fn status(global: &Global, reg: &Registry, card: &CardNumber) -> Result<(), Failure> {
    let report = status_report(reg, card)?;
    if global.json {
        return print_json(&report);
    }
    print!("{}", status_text(&report));
    Ok(())
}

fn report_loss(global: &Global, reg: &mut Registry, card: &CardNumber) -> Result<(), Failure> {
    let (at, balance) = host_lib::service::cancel::report_loss(reg, &global.operator(), card)?;
    if global.json {
        return print_json(&serde_json::json!({
            "card_number": card, "status": "lost", "blacklisted_from": at,
            "balance_cents": balance,
        }));
    }
    println!("{card}: reported lost; blacklisted from {at}");
    println!(
        "  ledger balance {}; replace it with `citizencard card replace {card} --reason lost`",
        yuan(balance)
    );
    Ok(())
}

fn revoke_loss(global: &Global, reg: &mut Registry, card: &CardNumber) -> Result<(), Failure> {
    reg.revoke_loss(&global.operator(), card)
        .map_err(registry_failure)?;
    if global.json {
        return print_json(&serde_json::json!({
            "card_number": card, "status": "active", "blacklist": "lifted",
        }));
    }
    println!("{card}: loss report taken back; the card is active and off the blacklist");
    Ok(())
}

fn loss_statement(global: &Global, reg: &Registry, card: &CardNumber) -> Result<(), Failure> {
    let s = reg.loss_statement(card).map_err(registry_failure)?;
    if global.json {
        return print_json(&s);
    }
    print!("{}", loss_statement_text(&s));
    Ok(())
}

/// The text of `card loss-statement`.
pub fn loss_statement_text(s: &LossStatement) -> String {
    let mut out = format!("loss statement of {}\n", s.card_number);
    for w in &s.windows {
        match &w.revoked_at {
            Some(r) => out.push_str(&format!(
                "  reported lost {}, report taken back {r}\n",
                w.reported_at
            )),
            None => out.push_str(&format!("  reported lost {}\n", w.reported_at)),
        }
    }
    let section = |title: &str, entries: &[PurchaseEntry], total: i64| {
        let mut out = format!(
            "\n{title}: {} purchase(s), {}\n",
            entries.len(),
            yuan(total)
        );
        if !entries.is_empty() {
            let mut t = Table::new(&["AT", "AMOUNT", "TERMINAL", "COUNTER"]);
            for p in entries {
                t.row([
                    p.at.clone(),
                    yuan(p.amount_cents),
                    p.terminal_id.clone().unwrap_or_default(),
                    p.txn_counter.map_or(String::new(), |c| c.to_string()),
                ]);
            }
            out.extend(t.render().lines().map(|l| format!("  {l}\n")));
        }
        out
    };
    out.push_str(&section(
        "before the report (the holder's loss)",
        &s.holder,
        s.holder_total_cents,
    ));
    out.push_str(&section(
        "while reported lost (the issuer's concern)",
        &s.issuer,
        s.issuer_total_cents,
    ));
    out
}

/// Whether the global options name a card at hand (a reader or a simulated card).
fn card_at_hand(global: &Global) -> bool {
    global.sim.is_some() || global.reader.is_some()
}

fn cancel(global: &Global, reg: &mut Registry, args: CancelArgs) -> Result<(), Failure> {
    use host_lib::apps::OnCard;
    use host_lib::service::cancel::{cancel, AtHand};

    let reason: CancelReason = args.reason.into();
    let outcome = if card_at_hand(global) {
        // Cancelling reads the card and blocks its purse: no key is written to it, so the
        // transport-key policy does not apply.
        let (keys, profile) = args.setup.load_for_reading()?;
        // The load host's state: a transaction left pending on this card is settled and
        // recorded first, so the refund is what the card holds.
        let state = host_lib::service::state::TerminalState::open(
            &global.terminal_state_dir()?,
            "citizencard card cancel",
            host_lib::lock::DEFAULT_WAIT,
        )?;
        let mut transport = host_lib::transport::open(&global.exclusive_options())?;
        cancel(
            reg,
            &global.operator(),
            &args.card,
            reason,
            Some(AtHand {
                transport: transport.as_mut(),
                keys: &keys,
                profile: &profile,
                state: Some(&state),
            }),
        )?
    } else {
        cancel(reg, &global.operator(), &args.card, reason, None)?
    };
    let blocked = outcome.purse_before_block;
    if global.json {
        return print_json(&serde_json::json!({
            "card_number": args.card, "status": "cancelled", "reason": reason,
            "refund_cents": outcome.refund_cents,
            "chip_balance_cents": outcome.chip_balance_cents,
            "purse_blocked": blocked.map(|b| b != OnCard::Absent),
        }));
    }
    match outcome.refund_cents {
        Some(r) => println!(
            "{}: cancelled ({reason}); refund {} recorded; the card is blacklisted",
            args.card,
            yuan(r)
        ),
        None => println!("{}: was cancelled already", args.card),
    }
    match blocked {
        Some(OnCard::Absent) => println!("  the card has no purse application to block"),
        Some(OnCard::Blocked) => println!("  its purse application was blocked for good already"),
        Some(_) => println!("  its purse application is now blocked for good (84 1E 00 01)"),
        None => println!(
            "  the card is not at hand: terminals block its purse when they meet it (blacklist)"
        ),
    }
    Ok(())
}

/// What `card replace` did.
#[derive(Debug, Serialize)]
struct Replaced {
    old_card: String,
    new_card: String,
    reason: ReplaceReason,
    fee_cents: Option<u32>,
    transferred_cents: Option<i64>,
    carried_onto_chip_cents: i64,
    still_owed_cents: i64,
    image: Option<String>,
    apdus: Option<usize>,
    ms: Option<f64>,
}

fn replace(global: &Global, reg: &mut Registry, args: ReplaceArgs) -> Result<(), Failure> {
    use host_lib::holder::{input, Validator};
    use host_lib::service::issue::IssueDesk;
    use host_lib::service::replace::{replace, ReplaceStep};

    let reason: ReplaceReason = args.reason.into();
    let (keys, profile) = args.setup.load()?;
    // Everything about the arguments before anything changes.
    let new_data = match (&args.applicant, reason) {
        (Some(path), _) => {
            Some(input::load_toml(path, &Validator::today_in_china()).map_err(Failure::usage)?)
        }
        (None, ReplaceReason::DataChanged) => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--reason data-changed needs the holder's new data: --applicant FILE"
            )))
        }
        (None, _) => None,
    };
    let cards = match (&args.sim_dir, &global.sim) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--sim-dir and --sim both name the new card: give one"
            )))
        }
        (Some(_), None) if global.reader.is_some() => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--sim-dir uses simulated cards, not a reader"
            )))
        }
        (Some(dir), None) => {
            host_lib::private_fs::create_private_dir_all(dir)
                .map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", dir.display())))?;
            crate::cmd::issue::Cards::SimDir(dir)
        }
        (None, Some(img)) => crate::cmd::issue::Cards::Image(img),
        (None, None) => crate::cmd::issue::Cards::Reader,
    };
    let op = global.operator();
    let details = reg.card_details(&args.card).map_err(registry_failure)?;
    if let Some(a) = &new_data {
        if a.id_number().as_str() != details.card.id_number {
            return Err(Failure::usage(anyhow::anyhow!(
                "{}: the applicant's ID number {} is not the holder's {} (an ID number \
                 identifies the person and cannot change)",
                args.applicant
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                a.id_number(),
                details.card.id_number
            )));
        }
    }
    let warn = crate::cmd::issue::development_warning(&keys);
    if let (Some(w), false) = (&warn, global.json) {
        eprintln!("citizencard: {w}");
    }
    let say = |line: String| {
        if !global.json {
            println!("{line}");
        }
    };
    let state_dir = global.terminal_state_dir()?;
    // The lease's station is the one the registry records in the audit records.
    let station = reg.station().clone();
    let desk = IssueDesk {
        operator: &op,
        station: &station,
        lease: host_lib::registry::DEFAULT_LEASE,
    };
    let mut open = |card: &CardNumber, _card_serial: u32| {
        open_new_card(global, &cards, card, &say).map_err(|f| {
            f.error
                .map(|e| format!("{e:#}"))
                .unwrap_or_else(|| "the new card could not be opened".into())
        })
    };
    let old = args.card.clone();
    let mut step = |s: ReplaceStep<'_>| match s {
        ReplaceStep::Reserved { card, resumed } => {
            if resumed {
                say(format!("resuming the replacement {card} of {old}"));
            }
            say(format!(
                "{old}: replacement card {card} reserved ({reason}); personalizing it"
            ))
        }
        ReplaceStep::AlreadyIssued(new) => say(format!(
            "{old}: replaced by {new} already; loading what is still owed to its chip"
        )),
    };
    let out = replace(
        reg,
        &desk,
        &keys,
        &profile,
        &args.card,
        reason,
        new_data.as_ref(),
        &mut open,
        &state_dir,
        args.terminal,
        host_lib::terminal::china_time_now,
        &mut step,
    )?;
    if !out.person_changed.is_empty() {
        say(format!(
            "holder's data updated: {}",
            out.person_changed.join(", ")
        ));
    }
    if let Some(report) = &out.report {
        say(format!(
            "{}: personalized and verified ({} APDUs, {:.1} ms); {} cancelled and \
             blacklisted; fee {} recorded; balance {} moved to the new card",
            out.new_card,
            report.apdus.total(),
            report.elapsed.as_secs_f64() * 1e3,
            args.card,
            yuan(i64::from(out.fee_cents.unwrap_or(0))),
            yuan(out.transferred_cents.unwrap_or(0))
        ));
    }
    let c = &out.carry_over;
    if c.earlier_credit_cents > 0 {
        say(format!(
            "{}: an earlier run's credit of {} was made on the chip (the card proved it): \
             recorded, not loaded again",
            out.new_card,
            yuan(c.earlier_credit_cents)
        ));
    }
    if c.credited_cents > c.earlier_credit_cents {
        say(format!(
            "{}: {} loaded onto the new card's purse (load host, TAC verified) and recorded as \
             carried over",
            out.new_card,
            yuan(c.credited_cents - c.earlier_credit_cents)
        ));
    }
    if global.json {
        let image = match &cards {
            crate::cmd::issue::Cards::SimDir(dir) => Some(
                crate::cmd::issue::image_path(dir, &out.new_card)
                    .display()
                    .to_string(),
            ),
            crate::cmd::issue::Cards::Image(p) => Some(p.display().to_string()),
            crate::cmd::issue::Cards::Reader => None,
        };
        print_json(&Replaced {
            old_card: out.old_card.to_string(),
            new_card: out.new_card.to_string(),
            reason,
            fee_cents: out.fee_cents,
            transferred_cents: out.transferred_cents,
            carried_onto_chip_cents: c.credited_cents,
            still_owed_cents: c.still_owed_cents,
            image,
            apdus: out.report.as_ref().map(|r| r.apdus.total()),
            ms: out.report.as_ref().map(|r| r.elapsed.as_secs_f64() * 1e3),
        })?;
    }
    if c.still_owed_cents > 0 {
        return Err(Failure::card(anyhow::anyhow!(
            "{}: {} of carried-over balance is still not on the chip; run the same command \
             again with this card",
            out.new_card,
            yuan(c.still_owed_cents)
        )));
    }
    Ok(())
}

/// Opens the new card of a replacement: DIR/<card number>.img (a blank chip with a random chip
/// serial, made if missing, as `issue --sim-dir` does), the image of --sim, or a reader.
fn open_new_card(
    global: &Global,
    cards: &crate::cmd::issue::Cards<'_>,
    card: &CardNumber,
    say: &impl Fn(String),
) -> Result<Box<dyn host_lib::transport::Transport>, Failure> {
    use card_os::card::HistoricalBytes;
    use card_os::nvm::Geometry;
    use card_os::sim::{image, SimCard};
    use host_lib::transport::sim::SimTransport;

    let options = global.exclusive_options();
    let open_image =
        |path: &std::path::Path| -> Result<Box<dyn host_lib::transport::Transport>, Failure> {
            let sim = SimTransport::open_image(path)
                .map_err(|e| Failure::card(anyhow::anyhow!("{}: {e}", path.display())))?;
            Ok(host_lib::transport::wrap(Box::new(sim), &options))
        };
    match cards {
        crate::cmd::issue::Cards::SimDir(dir) => {
            let path = crate::cmd::issue::image_path(dir, card);
            if !path.exists() {
                // A chip serial of its own, as `issue --sim-dir` makes (the card serial goes
                // into the card's data at personalization).
                let blank = SimCard::blank(
                    Geometry::DEFAULT,
                    &HistoricalBytes::wenzhou(crate::cmd::sim::random_serial()),
                )
                .map_err(|e| Failure::card(anyhow::anyhow!("making a blank card: {e:?}")))?;
                let header = image::ImageHeader::new(
                    Geometry::DEFAULT.capacity,
                    Geometry::DEFAULT.page_size,
                    0,
                );
                image::save(&path, &header, blank.nvm())
                    .map_err(|e| Failure::card(anyhow::anyhow!("{}: {e}", path.display())))?;
            }
            open_image(&path)
        }
        crate::cmd::issue::Cards::Image(path) => open_image(path),
        crate::cmd::issue::Cards::Reader => {
            if global.wait {
                say(format!("Insert the new card {card}."));
            }
            Ok(host_lib::transport::open(&options)?)
        }
    }
}
