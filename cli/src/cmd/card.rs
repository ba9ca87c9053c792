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

fn cancel(global: &Global, reg: &mut Registry, args: CancelArgs) -> Result<(), Failure> {
    let reason: CancelReason = args.reason.into();
    let c = reg
        .cancel(&global.operator(), &args.card, reason)
        .map_err(registry_failure)?;
    if global.json {
        return print_json(&serde_json::json!({
            "card_number": c.card_number, "status": "cancelled", "reason": reason,
            "refund_cents": c.refund_cents,
        }));
    }
    println!(
        "{}: cancelled ({reason}); refund {} recorded; the card is blacklisted",
        c.card_number,
        yuan(c.refund_cents)
    );
    Ok(())
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
) -> Result<(), Failure> {
    use host_lib::apps::{guard, lock_current_df, Blacklist, Lock};
    use host_lib::keys::KeyRef;
    use host_lib::registry::AppState;

    let mut registry = existing_registry(global)?;
    let blacklist = match (&args.blacklist, &registry) {
        (Some(path), _) => Blacklist::from_file(path).map_err(Failure::usage)?,
        (None, Some(reg)) => Blacklist::from_registry(reg).map_err(Failure::card)?,
        (None, None) => {
            eprintln!(
                "citizencard: warning: no registry and no --blacklist: the card is not checked \
                 against the blacklist"
            );
            return Ok(());
        }
    };
    let app = terminal
        .select()
        .map_err(|e| Failure::card(anyhow::anyhow!("{e}")))?;
    let now = time::OffsetDateTime::now_utc();
    let verdict = guard::check(
        terminal.transport_mut(),
        &blacklist,
        registry.as_ref(),
        Some(&app.serial),
        now,
    )
    .map_err(Failure::card)?;
    if !verdict.refused() {
        return Ok(());
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
        recorded = match reg.record_application(
            &global.operator(),
            card,
            "purse",
            AppState::Blocked,
            details,
        ) {
            Ok(_) => "recorded in the registry's audit log".into(),
            Err(e) => format!("not recorded: {e}"),
        };
    }
    Err(Failure::card(anyhow::anyhow!(
        "{refusal}; its purse application is now blocked for good ({recorded})"
    )))
}
