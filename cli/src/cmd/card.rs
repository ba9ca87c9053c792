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
    let at = reg
        .report_loss(&global.operator(), card)
        .map_err(registry_failure)?;
    let balance = reg.balance(card).map_err(registry_failure)?;
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

/// Opens the card at hand and checks that it is `card` (EF05 item 07).
fn open_this_card(
    global: &Global,
    card: &CardNumber,
) -> Result<Box<dyn host_lib::transport::Transport>, Failure> {
    let mut transport = host_lib::transport::open(&global.open_options())?;
    let found =
        host_lib::apps::guard::read_card_number(transport.as_mut()).map_err(Failure::card)?;
    match found {
        Some(n) if &n == card => Ok(transport),
        Some(n) => Err(Failure::card(anyhow::anyhow!(
            "the card in {} is {n}, not {card}: nothing was changed",
            transport.name()
        ))),
        None => Err(Failure::card(anyhow::anyhow!(
            "the card in {} is not an issued citizen card (no EF05 card number): nothing was \
             changed",
            transport.name()
        ))),
    }
}

fn cancel(global: &Global, reg: &mut Registry, args: CancelArgs) -> Result<(), Failure> {
    use host_lib::apps::{targets, OnCard, Session};
    use host_lib::registry::AppState;

    let reason: CancelReason = args.reason.into();
    // With the card at hand, check it is this card before anything changes.
    let at_hand = if card_at_hand(global) {
        let (keys, profile) = args.setup.load_for_reading()?;
        let transport = open_this_card(global, &args.card)?;
        Some((keys, profile, transport))
    } else {
        None
    };
    let status = reg.status(&args.card).map_err(registry_failure)?;
    let refund = if status == CardStatus::Cancelled && at_hand.is_some() {
        // Cancelled before; this run finishes the block of its purse.
        None
    } else {
        Some(
            reg.cancel(&global.operator(), &args.card, reason)
                .map_err(registry_failure)?,
        )
    };
    let mut blocked: Option<OnCard> = None;
    if let Some((keys, profile, mut transport)) = at_hand {
        let purse = targets(&profile)
            .into_iter()
            .find(|t| t.name == "purse")
            .ok_or_else(|| Failure::usage(anyhow::anyhow!("the profile has no purse")))?;
        let mut s = Session::new(transport.as_mut(), &keys);
        let result = s.identify().and_then(|id| s.block_for_good(&id, &purse));
        let before = result.map_err(|e| {
            Failure::card(anyhow::anyhow!(
                "{}: blocking its purse failed: {e}; the card is cancelled and blacklisted in \
                 the registry; run the command again with the card to block its purse",
                args.card
            ))
        })?;
        if before != OnCard::Absent {
            reg.record_application(
                &global.operator(),
                &args.card,
                "purse",
                AppState::Blocked,
                serde_json::json!({ "by": "cancel", "reason": reason, "was": before }),
            )
            .map_err(registry_failure)?;
        }
        blocked = Some(before);
    }
    if global.json {
        return print_json(&serde_json::json!({
            "card_number": args.card, "status": "cancelled", "reason": reason,
            "refund_cents": refund.as_ref().map(|c| c.refund_cents),
            "purse_blocked": blocked.map(|b| b != host_lib::apps::OnCard::Absent),
        }));
    }
    match &refund {
        Some(c) => println!(
            "{}: cancelled ({reason}); refund {} recorded; the card is blacklisted",
            c.card_number,
            yuan(c.refund_cents)
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
    use host_lib::keys::KeyStore;
    use host_lib::personalize::register::issue_pending;
    use host_lib::registry::{ChipInfo, RegistryError};

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

    // Where are we? A new replacement, one under way, or one whose balance is not on the chip.
    let chip = ChipInfo {
        chip_id: None,
        key_set: Some(keys.identity().id.clone()),
    };
    let already_new = match (&details.card.status, &details.card.replaced_by) {
        (CardStatus::Cancelled, Some(new)) => Some(
            CardNumber::parse(new)
                .map_err(|e| Failure::card(anyhow::anyhow!("the registry's card number: {e}")))?,
        ),
        _ => None,
    };
    let mut out = Replaced {
        old_card: args.card.to_string(),
        new_card: String::new(),
        reason,
        fee_cents: None,
        transferred_cents: None,
        carried_onto_chip_cents: 0,
        still_owed_cents: 0,
        image: None,
        apdus: None,
        ms: None,
    };
    let new_card;
    let mut transport;
    match already_new {
        Some(new) if reg.owed_to_chip(&new).map_err(registry_failure)? > 0 => {
            say(format!(
                "{}: replaced by {new} already; its carried-over balance is not on the new \
                 chip yet: loading it",
                args.card
            ));
            let pending_like = reg.card_details(&new).map_err(registry_failure)?.card;
            transport = open_new_card(global, &cards, &new, pending_like.serial, &say)?;
            new_card = new;
        }
        _ => {
            if let Some(a) = &new_data {
                let changed = reg.update_person(&op, a).map_err(registry_failure)?;
                if !changed.is_empty() {
                    say(format!("holder's data updated: {}", changed.join(", ")));
                }
            }
            let pending = match reg.begin_replace(&op, &args.card, reason, &chip) {
                Ok(p) => p,
                Err(RegistryError::UnfinishedIssue { card_number, .. }) => {
                    let n = CardNumber::parse(&card_number)
                        .map_err(|e| Failure::card(anyhow::anyhow!("{e}")))?;
                    let p = reg.resume_issue(&op, &n, &chip).map_err(registry_failure)?;
                    if p.replaces.as_ref() != Some(&args.card) {
                        return Err(Failure::card(anyhow::anyhow!(
                            "{} is being personalized for the holder and is not a \
                             replacement of {}: finish it with `citizencard issue`, or abort it",
                            p.card_number,
                            args.card
                        )));
                    }
                    say(format!(
                        "resuming the replacement {} of {}",
                        p.card_number, args.card
                    ));
                    p
                }
                Err(e) => return Err(registry_failure(e)),
            };
            say(format!(
                "{}: replacement card {} reserved ({reason}); personalizing it",
                args.card, pending.card_number
            ));
            transport = open_new_card(global, &cards, &pending.card_number, pending.serial, &say)?;
            let (report, issued) = issue_pending(
                reg,
                &op,
                transport.as_mut(),
                &keys,
                &profile,
                &pending,
                &mut |_| {},
            )
            .map_err(|e| {
                Failure::card(anyhow::anyhow!(
                    "{e} — the old card {} is unchanged; run the same command again with this \
                     card to finish",
                    args.card
                ))
            })?;
            say(format!(
                "{}: personalized and verified ({} APDUs, {:.1} ms); {} cancelled and \
                 blacklisted; fee {} recorded; balance {} moved to the new card",
                pending.card_number,
                report.apdus.total(),
                report.elapsed.as_secs_f64() * 1e3,
                args.card,
                yuan(i64::from(issued.fee_cents)),
                yuan(issued.transferred_cents)
            ));
            out.fee_cents = Some(issued.fee_cents);
            out.transferred_cents = Some(issued.transferred_cents);
            out.apdus = Some(report.apdus.total());
            out.ms = Some(report.elapsed.as_secs_f64() * 1e3);
            new_card = pending.card_number.clone();
            // The chip was reset by the verification; the purse comes next.
        }
    }
    out.new_card = new_card.to_string();
    if let crate::cmd::issue::Cards::SimDir(dir) = &cards {
        out.image = Some(
            crate::cmd::issue::image_path(dir, &new_card)
                .display()
                .to_string(),
        );
    } else if let crate::cmd::issue::Cards::Image(p) = &cards {
        out.image = Some(p.display().to_string());
    }
    let (credited, owed) = carry_over(
        global,
        reg,
        &keys,
        &profile,
        transport,
        &new_card,
        args.terminal,
    )?;
    out.carried_onto_chip_cents = credited;
    out.still_owed_cents = owed;
    if credited > 0 {
        say(format!(
            "{new_card}: {} loaded onto the new card's purse (load host, TAC verified) and \
             recorded as carried over",
            yuan(credited)
        ));
    }
    if global.json {
        print_json(&out)?;
    }
    if owed > 0 {
        return Err(Failure::card(anyhow::anyhow!(
            "{new_card}: {} of carried-over balance is still not on the chip; run the same \
             command again with this card",
            yuan(owed)
        )));
    }
    Ok(())
}

/// Opens the new card of a replacement: DIR/<card number>.img (a blank chip whose ATR serial is
/// the card serial, made if missing, as `issue --sim-dir` does), the image of --sim, or a reader.
fn open_new_card(
    global: &Global,
    cards: &crate::cmd::issue::Cards<'_>,
    card: &CardNumber,
    serial: u32,
    say: &impl Fn(String),
) -> Result<Box<dyn host_lib::transport::Transport>, Failure> {
    use card_os::card::HistoricalBytes;
    use card_os::nvm::Geometry;
    use card_os::sim::{image, SimCard};
    use host_lib::transport::sim::SimTransport;

    let options = global.open_options();
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
                let blank = SimCard::blank(
                    Geometry::DEFAULT,
                    &HistoricalBytes::wenzhou(serial.to_be_bytes()),
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

/// Loads the carried-over balance of `card` (what the registry owes its chip) onto its purse
/// through the load host, settling first a load that an interrupted earlier run left pending,
/// and records each credit. Returns (credited now, still owed).
fn carry_over(
    global: &Global,
    reg: &mut Registry,
    keys: &host_lib::keys::KeySet,
    profile: &host_lib::profile::Profile,
    transport: Box<dyn host_lib::transport::Transport>,
    card: &CardNumber,
    terminal_id: [u8; 6],
) -> Result<(i64, i64), Failure> {
    if reg.owed_to_chip(card).map_err(registry_failure)? <= 0 {
        return Ok((0, 0));
    }
    let state = match std::env::var_os(crate::cmd::purse::STATE_ENV) {
        Some(s) => std::path::PathBuf::from(s),
        None => crate::cmd::purse::default_state(global)?,
    };
    carry_over_with(
        reg,
        keys,
        profile,
        transport,
        card,
        terminal_id,
        &global.operator(),
        &state,
        host_lib::terminal::china_time_now,
    )
}

/// [`carry_over`] with the operator, the terminal-state directory (its journal of pending
/// loads) and the load host's clock given.
#[allow(clippy::too_many_arguments)]
pub fn carry_over_with(
    reg: &mut Registry,
    keys: &host_lib::keys::KeySet,
    profile: &host_lib::profile::Profile,
    transport: Box<dyn host_lib::transport::Transport>,
    card: &CardNumber,
    terminal_id: [u8; 6],
    op: &str,
    state: &std::path::Path,
    clock: impl FnMut() -> host_lib::keys::HostTime,
) -> Result<(i64, i64), Failure> {
    use host_lib::registry::ChipCredit;
    use host_lib::terminal::{
        FileJournal, Terminal, TerminalConfig, TerminalEvent, TransactionKind,
    };
    use std::cell::RefCell;

    let owed = reg.owed_to_chip(card).map_err(registry_failure)?;
    if owed <= 0 {
        return Ok((0, owed.max(0)));
    }
    let purse = host_lib::apps::targets(profile)
        .into_iter()
        .find(|t| t.name == "purse")
        .ok_or_else(|| Failure::usage(anyhow::anyhow!("the profile has no purse application")))?;
    host_lib::private_fs::create_private_dir_all(state)
        .map_err(|e| Failure::usage(anyhow::anyhow!("terminal state {}: {e}", state.display())))?;
    let settled: RefCell<Vec<host_lib::terminal::TransactionRecord>> = RefCell::new(Vec::new());
    let config = TerminalConfig {
        aid: purse.df_name.clone(),
        terminal_id,
        ..TerminalConfig::default()
    };
    let mut terminal = Terminal::new(transport, keys, config)
        .with_journal(FileJournal::new(state))
        .with_clock(clock)
        .on_event(|e| {
            if let TerminalEvent::EarlierSettled(Ok(r)) = e {
                settled.borrow_mut().push(r.clone());
            }
        });
    let mut credited = 0i64;
    // A load an interrupted run left pending is settled first (balance: SELECT, settle, GET
    // BALANCE); if it was the carry-over, it is recorded, not loaded again.
    terminal
        .balance()
        .map_err(|e| Failure::card(anyhow::anyhow!("{card}: the new card's purse: {e}")))?;
    let earlier: Vec<_> = settled.borrow_mut().drain(..).collect();
    for r in earlier {
        if r.kind == TransactionKind::Load && r.verified && i64::from(r.amount) == owed - credited {
            reg.record_chip_credit(
                op,
                card,
                &ChipCredit {
                    amount_cents: r.amount,
                    txn_counter: r.card_counter,
                    tac: r.tac,
                },
            )
            .map_err(registry_failure)?;
            credited += i64::from(r.amount);
        }
    }
    let rest = owed - credited;
    if rest > 0 {
        let amount = u32::try_from(rest)
            .map_err(|_| Failure::card(anyhow::anyhow!("{rest} cents cannot be loaded at once")))?;
        let r = terminal.load(amount).map_err(|e| {
            Failure::card(anyhow::anyhow!(
                "{card}: loading the carried-over {} failed: {e}; the registry still owes it to \
                 the chip: run the same command again with this card",
                yuan(rest)
            ))
        })?;
        reg.record_chip_credit(
            op,
            card,
            &ChipCredit {
                amount_cents: r.amount,
                txn_counter: r.card_counter,
                tac: r.tac,
            },
        )
        .map_err(registry_failure)?;
        credited += i64::from(r.amount);
    }
    Ok((credited, owed - credited))
}

/// The blacklist options of `purse purchase`.
#[derive(Args, Debug, Clone, Default)]
pub struct GuardArgs {
    /// Check the card against this exported blacklist (`registry blacklist --export FILE`)
    /// instead of the registry's list. The registry, if there is one, still records a block.
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<std::path::PathBuf>,
}

/// The name, in the key set, of the purse's line-protection key `36 00` that APPLICATION BLOCK
/// is MAC'd with (apdu-specs/keys.md §2: the purse maintenance key).
pub const PURSE_BLOCK_KEY: &str = "DAMK";

/// The registry at the path the global options name, if that file exists (a terminal never
/// creates a registry as a side effect).
fn existing_registry(global: &Global) -> Result<Option<Registry>, Failure> {
    let path = match &global.registry {
        Some(p) => p.clone(),
        None => match host_lib::registry::default_path() {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
    };
    if !path.exists() {
        return Ok(None);
    }
    global.open_registry().map(Some)
}

/// The blacklist check of `purse purchase`, before any money moves: identifies the card (EF05
/// item 07, else its purse serial through the registry) and, when the blacklist lists it, blocks
/// its purse application for good (APPLICATION BLOCK `84 1E 00 01`, MAC'd with the purse's DAMK),
/// records the block in the registry's audit log and refuses the purchase (exit status 1).
///
/// The list is `--blacklist FILE`, else the registry's (global `--registry`, else the default
/// file). With neither, the check cannot be made: a warning says so and the purchase goes on.
pub fn guard_purchase<T: host_lib::transport::Transport>(
    global: &Global,
    args: &GuardArgs,
    terminal: &mut host_lib::terminal::Terminal<'_, T>,
    keys: &dyn host_lib::keys::KeyStore,
) -> Result<Option<Ledger>, Failure> {
    use host_lib::apps::Blacklist;

    let mut registry = existing_registry(global)?;
    let blacklist = match (&args.blacklist, &registry) {
        (Some(path), _) => Blacklist::from_file(path).map_err(Failure::usage)?,
        (None, Some(reg)) => Blacklist::from_registry(reg).map_err(Failure::card)?,
        (None, None) => {
            eprintln!(
                "citizencard: warning: no registry and no --blacklist: the card is not checked \
                 against the blacklist"
            );
            return Ok(None);
        }
    };
    let card = screen(
        registry.as_mut(),
        &blacklist,
        terminal,
        keys,
        &global.operator(),
        time::OffsetDateTime::now_utc(),
    )?;
    // The purchase goes on; it is recorded for a card this registry issued (by EF05).
    Ok(match (registry, card) {
        (Some(registry), Some(card)) => Some(Ledger { registry, card }),
        _ => None,
    })
}

/// The core of [`guard_purchase`] (the demo calls it too): identifies the card, and when the
/// blacklist refuses it at `now`, blocks its purse for good, records the block in `registry` and
/// returns the refusal as the error. Otherwise returns the card number EF05 gave, if any.
pub fn screen<T: host_lib::transport::Transport>(
    mut registry: Option<&mut Registry>,
    blacklist: &host_lib::apps::Blacklist,
    terminal: &mut host_lib::terminal::Terminal<'_, T>,
    keys: &dyn host_lib::keys::KeyStore,
    operator: &str,
    now: time::OffsetDateTime,
) -> Result<Option<CardNumber>, Failure> {
    use host_lib::apps::{guard, lock_current_df, Lock};
    use host_lib::keys::KeyRef;
    use host_lib::registry::AppState;

    let app = terminal
        .select()
        .map_err(|e| Failure::card(anyhow::anyhow!("{e}")))?;
    let verdict = guard::check(
        terminal.transport_mut(),
        blacklist,
        registry.as_deref(),
        Some(&app.serial),
        now,
    )
    .map_err(Failure::card)?;
    if !verdict.refused() {
        return Ok(
            match (&verdict.identity.card_number, verdict.identity.source) {
                (Some(n), "ef05") => Some(n.clone()),
                _ => None,
            },
        );
    }
    // Block the purse for good: back into the purse application, then the MAC'd command.
    let app = terminal
        .select()
        .map_err(|e| Failure::card(anyhow::anyhow!("{e}")))?;
    let factors = app.factors();
    let blocked = lock_current_df(
        terminal.transport_mut(),
        keys,
        KeyRef::new(PURSE_BLOCK_KEY, &factors),
        Lock::Permanent,
    );
    let refusal = guard::refusal_text(&verdict);
    if let Err(e) = &blocked {
        return Err(Failure::card(anyhow::anyhow!(
            "{refusal}; blocking its purse application failed: {e}"
        )));
    }
    let mut recorded = String::from("not recorded: no registry");
    if let (Some(reg), Some(card)) = (registry.as_mut(), &verdict.identity.card_number) {
        let details = serde_json::json!({
            "by": "terminal",
            "terminal_id": hex::encode_upper(terminal.config().terminal_id),
            "app_serial": app.serial_hex(),
            "blacklist": verdict.listed,
            "inconsistent": verdict.inconsistent,
            "blacklist_source": blacklist.source,
        });
        recorded = match reg.record_application(operator, card, "purse", AppState::Blocked, details)
        {
            Ok(_) => "recorded in the registry's audit log".into(),
            Err(e) => format!("not recorded: {e}"),
        };
    }
    Err(Failure::card(anyhow::anyhow!(
        "{refusal}; its purse application is now blocked for good ({recorded})"
    )))
}

/// The registry's purse ledger for the card at the terminal: a load or purchase that the card
/// made is recorded there (the ledger is what a replacement carries over and a cancellation
/// refunds).
pub struct Ledger {
    registry: Registry,
    card: CardNumber,
}

/// Before `purse load`: with a registry (global `--registry`, else the default file if it
/// exists), the card is identified by EF05 item 07 (2 APDUs); a card this registry issued must be
/// active to be loaded (a lost, replaced or cancelled card's balance belongs elsewhere), and the
/// load is then recorded ([`record_transaction`]). A card the registry does not know, or one
/// without EF05 (a purse-only card), is loaded without a ledger entry.
pub fn before_load<T: host_lib::transport::Transport>(
    global: &Global,
    terminal: &mut host_lib::terminal::Terminal<'_, T>,
) -> Result<Option<Ledger>, Failure> {
    let Some(registry) = existing_registry(global)? else {
        return Ok(None);
    };
    let Some(card) =
        host_lib::apps::guard::read_card_number(terminal.transport_mut()).map_err(Failure::card)?
    else {
        return Ok(None);
    };
    match registry.status(&card) {
        Ok(CardStatus::Active) => Ok(Some(Ledger { registry, card })),
        Ok(status) => Err(Failure::card(anyhow::anyhow!(
            "card {card} is {status} in the registry: it cannot be loaded (nothing was loaded)"
        ))),
        Err(host_lib::registry::RegistryError::NoSuchCard(_)) => Ok(None),
        Err(e) => Err(registry_failure(e)),
    }
}

/// After a load or purchase whose TAC verified: records it in the registry's purse ledger. The
/// money has moved on the card either way: a registry that refuses is reported as a warning (the
/// card's log keeps the transaction), never as a failure of the transaction.
pub fn record_transaction(
    global: &Global,
    ledger: Option<Ledger>,
    r: &host_lib::terminal::TransactionRecord,
) {
    let Some(mut l) = ledger else { return };
    let op = global.operator();
    let result = match (r.load_record(), r.verified_purchase()) {
        (Some(load), _) => l.registry.record_load(&op, &l.card, &load).map(Some),
        (None, Some(p)) => l.registry.record_purchase(&op, &l.card, &p).map(|_| None),
        (None, None) => {
            eprintln!(
                "citizencard: warning: the transaction was not verified: not recorded in the \
                 registry"
            );
            return;
        }
    };
    match result {
        Ok(_) if global.json => {}
        Ok(_) => {
            let balance = l.registry.balance(&l.card).map(yuan).unwrap_or_default();
            println!(
                "  recorded in the registry: card {}, ledger balance {balance}",
                l.card
            );
        }
        Err(e) => eprintln!(
            "citizencard: warning: card {}: the registry did not record the transaction: {e}",
            l.card
        ),
    }
}
