//! `citizencard registry list|show|audit|blacklist|verify|migrate`: read and check the issuance
//! registry, and move it to a PostgreSQL server.
//!
//! Everything here only reads, except `blacklist --export`, which writes a file (never the
//! registry), and `migrate`, which writes the copy (never the source). Tables by default,
//! `--json` for one JSON object per line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand, ValueEnum};
use host_lib::holder::items::CardNumber;
use host_lib::holder::CitizenId;
use host_lib::registry::{
    AuditEntry, AuditFilter, BlacklistFormat, CardDetails, CardFilter, CardStatus, CardSummary,
    ChainHead, PersonDetails, Registry, RegistryError,
};

use crate::exit::Failure;
use crate::table::{yuan, Table};
use crate::Global;

/// `citizencard registry …`
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// List cards (all, or those in one status).
    List(ListArgs),
    /// Everything about a card (by card number) or a person (by citizen ID number).
    #[command(
        long_about = "Everything the registry knows about a card or a person. Give a card number \
        (nine characters, e.g. W00000018) for the card's holder, status history, fees, purse \
        ledger, blacklist entries and applications; or an 18-character citizen ID number for the \
        person's data and all their cards."
    )]
    Show(ShowArgs),
    /// The audit log: every change, who made it and when (oldest first).
    Audit(AuditArgs),
    /// The cards terminals must refuse; `--export` writes the file terminals load.
    #[command(
        long_about = "The cards terminals must refuse: cards reported lost (from the instant of \
        the report), replaced or cancelled. Without options, a table of the open entries. \
        `--export FILE` writes the list in the `citizencard-blacklist 1` format \
        (host-lib/docs/blacklist-format.md) for terminals to load: text (default) or JSON; \
        `-` writes to standard output. The file is replaced atomically, so a terminal never \
        reads half a list."
    )]
    Blacklist(BlacklistArgs),
    /// Check the registry against its audit chain: exit 0 clean, 1 naming every row that
    /// disagrees.
    #[command(
        long_about = "Check the registry against its audit chain (host-lib/docs/registry.md, \
        \"The audit chain\"): every audit record's hash and its link to the record before it, the \
        chain's head, then the chain replayed — card statuses, blacklist entries, ledger entries \
        and balances, people, fees, applications, credits — and compared with the tables. Prints \
        every row that disagrees with what the chain says and what the table says, and exits with \
        status 1; exit status 0 when everything agrees. Read-only. The head it prints (record id \
        and hash) can be kept elsewhere and given back with --expect-head: a chain rewritten \
        before that record is then caught too."
    )]
    Verify(VerifyArgs),
    /// Copy this (SQLite) registry into an empty PostgreSQL database, for several stations.
    #[command(
        long_about = "Copy this registry (the SQLite file --registry names) into an empty \
        PostgreSQL database, for a bureau whose service points share one registry. The source's \
        audit chain is verified first (a broken one is refused), every row is copied as it is in \
        one transaction, and the copy must verify clean with the same head before it is \
        committed. The source file is left as it is; point the stations at the new registry with \
        --registry postgres://… or CITIZENCARD_REGISTRY."
    )]
    Migrate(MigrateArgs),
}

/// Arguments of `registry migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The empty PostgreSQL database: `postgres://user@host[:port]/db`.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Arguments of `registry verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A head printed by an earlier run (`ID:HASH`): the chain must still hold that record with
    /// that hash.
    #[arg(long, value_name = "ID:HASH", value_parser = parse_head)]
    pub expect_head: Option<ChainHead>,
}

fn parse_head(s: &str) -> Result<ChainHead, String> {
    let (id, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected ID:HASH, e.g. 42:3f5a…"))?;
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| format!("{id:?} is not a record id"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a SHA-256 hash (64 hex digits)"));
    }
    Ok(ChainHead { id, hash })
}

/// Arguments of `registry list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only cards in this status.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<CardStatus>,
    /// Only the cards of this person (citizen ID number).
    #[arg(long = "id", value_name = "ID-NUMBER", value_parser = parse_id)]
    pub id_number: Option<CitizenId>,
}

/// Arguments of `registry show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A card number (e.g. W00000018) or a citizen ID number (18 characters).
    #[arg(value_name = "CARD|ID-NUMBER")]
    pub what: String,
}

/// Arguments of `registry audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only records about this card.
    #[arg(long, value_name = "CARD", value_parser = parse_card)]
    pub card: Option<CardNumber>,
    /// Only records about this person (and their cards).
    #[arg(long = "id", value_name = "ID-NUMBER", value_parser = parse_id)]
    pub id_number: Option<CitizenId>,
    /// Only the newest N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// Arguments of `registry blacklist`.
#[derive(Args, Debug)]
pub struct BlacklistArgs {
    /// Write the list for terminals to FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Encoding of the exported list.
    #[arg(long, value_enum, default_value_t = ExportFormat::Text, requires = "export")]
    pub format: ExportFormat,
    /// Also show lifted entries (loss reports taken back); not with --export.
    #[arg(long, conflicts_with = "export")]
    pub all: bool,
}

/// Encodings of the exported blacklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Line-based `citizencard-blacklist 1` text.
    Text,
    /// One JSON document with the same content.
    Json,
}

/// Parses a card number's shape (nine letters or digits); the registry checks the rest.
pub fn parse_card(s: &str) -> Result<CardNumber, String> {
    CardNumber::parse(s).map_err(|e| e.to_string())
}

fn parse_id(s: &str) -> Result<CitizenId, String> {
    CitizenId::parse(s).map_err(|e| e.to_string())
}

fn parse_status(s: &str) -> Result<CardStatus, String> {
    CardStatus::parse(s).ok_or_else(|| {
        let all: Vec<&str> = CardStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("{s:?} is not a status; one of {}", all.join(", "))
    })
}

/// The exit status a registry error deserves: 2 when the input itself was wrong (a mistyped card
/// number, a bad configuration file, no operator), 1 when the registry refused or failed.
pub fn registry_failure(e: RegistryError) -> Failure {
    match e {
        RegistryError::CardNumber(_) | RegistryError::Config { .. } | RegistryError::NoOperator => {
            Failure::usage(e)
        }
        _ => Failure::card(e),
    }
}

/// Runs a `registry` subcommand.
pub fn run(global: &Global, command: RegistryCommand) -> Result<(), Failure> {
    let reg = global.open_registry()?;
    match command {
        RegistryCommand::List(args) => list(global, &reg, args),
        RegistryCommand::Show(args) => show(global, &reg, args),
        RegistryCommand::Audit(args) => audit(global, &reg, args),
        RegistryCommand::Blacklist(args) => blacklist(global, &reg, args),
        RegistryCommand::Verify(args) => verify(global, &reg, args),
        RegistryCommand::Migrate(args) => migrate(global, &reg, args),
    }
}

fn migrate(global: &Global, reg: &Registry, args: MigrateArgs) -> Result<(), Failure> {
    use host_lib::registry::copy::{copy_to_postgres, CopyProgress};
    use host_lib::registry::Location;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !matches!(Location::parse(&args.to), Location::Postgres(_)) {
        return Err(Failure::usage(anyhow!(
            "--to takes a PostgreSQL address, postgres://user@host[:port]/db"
        )));
    }
    let bar = if global.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = copy_to_postgres(reg, &args.to, &mut |p| match p {
        CopyProgress::VerifyingSource => bar.set_message("verifying the source's audit chain"),
        CopyProgress::Table { table, rows, total } => {
            bar.set_length(total as u64);
            bar.set_position(rows as u64);
            bar.set_message(format!("copying {table}"));
        }
        CopyProgress::VerifyingCopy => bar.set_message("verifying the copy"),
    })
    .map_err(registry_failure)?;
    bar.finish_and_clear();
    if global.json {
        return print_json(&report);
    }
    let target = Location::parse(&args.to);
    for (table, n) in &report.rows {
        println!("  {table:<20} {n:>8} rows");
    }
    println!(
        "copied {} to {target}: {} audit records, verified before and after",
        reg.describe(),
        report.audit_records
    );
    match &report.head {
        Some(h) => println!("head: {}:{}", h.id, h.hash),
        None => println!("head: (empty chain)"),
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(Failure::card)?;
    println!("{line}");
    Ok(())
}

/// What a card's NOTE column says: what replaced it, what it replaced, why it closed.
fn note(c: &CardSummary) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &c.replaces {
        parts.push(format!("replaces {r}"));
    }
    if let Some(r) = &c.replaced_by {
        parts.push(format!("replaced by {r}"));
    } else if let Some(r) = &c.closed_reason {
        parts.push(r.clone());
    }
    parts.join("; ")
}

fn list(global: &Global, reg: &Registry, args: ListArgs) -> Result<(), Failure> {
    let cards = reg
        .list_cards(&CardFilter {
            status: args.status,
            id_number: args.id_number,
        })
        .map_err(registry_failure)?;
    if global.json {
        for c in &cards {
            print_json(c)?;
        }
        return Ok(());
    }
    if cards.is_empty() {
        println!("no cards{}", filter_text(args.status));
        return Ok(());
    }
    print!("{}", cards_table(&cards).render());
    Ok(())
}

fn filter_text(status: Option<CardStatus>) -> String {
    status.map_or(String::new(), |s| format!(" in status {s}"))
}

fn cards_table(cards: &[CardSummary]) -> Table {
    let mut t = Table::new(&[
        "CARD",
        "STATUS",
        "HOLDER",
        "ID NUMBER",
        "ISSUED",
        "EXPIRES",
        "NOTE",
    ]);
    for c in cards {
        t.row([
            c.card_number.clone(),
            c.status.to_string(),
            c.name.clone(),
            c.id_number.clone(),
            c.issue_date.clone(),
            c.expiry_date.clone(),
            note(c),
        ]);
    }
    t
}

/// A card number, or an ID number, as the user typed it.
enum Subject {
    Card(CardNumber),
    Person(CitizenId),
}

fn subject(what: &str) -> Result<Subject, Failure> {
    let t = what.trim();
    if t.chars().count() == 18 {
        return CitizenId::parse(t)
            .map(Subject::Person)
            .map_err(|e| Failure::usage(anyhow!("{e}")));
    }
    CardNumber::parse(t).map(Subject::Card).map_err(|_| {
        Failure::usage(anyhow!(
            "{t:?} is neither a card number (nine letters or digits, e.g. W00000018) nor a \
             citizen ID number (18 characters)"
        ))
    })
}

fn show(global: &Global, reg: &Registry, args: ShowArgs) -> Result<(), Failure> {
    match subject(&args.what)? {
        Subject::Card(card) => {
            let details = reg.card_details(&card).map_err(registry_failure)?;
            let apps = reg.applications(&card).map_err(registry_failure)?;
            if global.json {
                let mut v = serde_json::to_value(&details).map_err(Failure::card)?;
                v["applications"] = serde_json::to_value(&apps).map_err(Failure::card)?;
                return print_json(&v);
            }
            print!("{}", card_text(&details));
            if !apps.is_empty() {
                println!("\napplications:");
                let mut t = Table::new(&["NAME", "STATE", "SINCE", "OPERATOR"]);
                for a in &apps {
                    t.row([
                        a.name.clone(),
                        a.state.to_string(),
                        a.since.clone(),
                        a.operator.clone(),
                    ]);
                }
                print!("{}", indent(&t.render()));
            }
            Ok(())
        }
        Subject::Person(id) => {
            let details = reg.person_details(&id).map_err(registry_failure)?;
            if global.json {
                return print_json(&details);
            }
            print!("{}", person_text(&details));
            Ok(())
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The text of `registry show CARD` (without applications).
pub fn card_text(d: &CardDetails) -> String {
    let c = &d.card;
    let mut out = String::new();
    let mut field = |k: &str, v: &str| out.push_str(&format!("{k:<14}{v}\n"));
    field("card", &c.card_number);
    field("status", c.status.as_str());
    field("holder", &format!("{} ({})", c.name, c.id_number));
    field("class", &c.card_class);
    field("issued", &c.issue_date);
    field("expires", &c.expiry_date);
    field("serial", &c.serial.to_string());
    if let Some(chip) = &c.chip_id {
        field("chip", chip);
    }
    if let Some(k) = &c.key_set {
        field("key set", k);
    }
    if let Some(r) = &c.replaces {
        field("replaces", r);
    }
    if let Some(r) = &c.replaced_by {
        field("replaced by", r);
    }
    if let Some(r) = &c.closed_reason {
        field("closed", r);
    }
    field("balance", &format!("{} (ledger)", yuan(d.balance_cents)));
    for b in &d.blacklist {
        let lifted = b
            .lifted_at
            .as_deref()
            .map_or(String::new(), |l| format!(", lifted {l}"));
        field(
            "blacklisted",
            &format!("{} since {}{lifted}", b.reason, b.since),
        );
    }
    out.push_str("\nhistory:\n");
    let mut t = Table::new(&["AT", "FROM", "TO", "REASON", "OPERATOR"]);
    for h in &d.history {
        t.row([
            h.at.clone(),
            h.from.clone().unwrap_or_else(|| "-".into()),
            h.to.clone(),
            h.reason.clone().unwrap_or_default(),
            h.operator.clone(),
        ]);
    }
    out.push_str(&indent(&t.render()));
    if !d.fees.is_empty() {
        out.push_str("\nfees:\n");
        let mut t = Table::new(&["AT", "KIND", "REASON", "AMOUNT", "OPERATOR"]);
        for f in &d.fees {
            t.row([
                f.at.clone(),
                f.kind.clone(),
                f.reason.clone().unwrap_or_default(),
                yuan(f.amount_cents),
                f.operator.clone(),
            ]);
        }
        out.push_str(&indent(&t.render()));
    }
    if !d.ledger.is_empty() {
        out.push_str("\npurse ledger:\n");
        let mut t = Table::new(&["AT", "KIND", "AMOUNT", "COUNTER", "TERMINAL", "OTHER CARD"]);
        for e in &d.ledger {
            t.row([
                e.at.clone(),
                e.kind.to_string(),
                yuan(e.amount_cents),
                e.txn_counter.map_or(String::new(), |c| c.to_string()),
                e.terminal_id.clone().unwrap_or_default(),
                e.counterpart.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&indent(&t.render()));
    }
    out
}

fn person_text(d: &PersonDetails) -> String {
    let p = &d.person.data;
    let mut out = String::new();
    let mut field = |k: &str, v: &str| out.push_str(&format!("{k:<14}{v}\n"));
    field("name", &p.name().to_string());
    field("id number", p.id_number().as_str());
    field("sex", &p.sex().to_string());
    field("ethnicity", &p.ethnicity().to_string());
    field("birthplace", &p.birthplace().to_string());
    field("born", &p.birth_date().to_string());
    field("card class", &p.card_class().to_string());
    field("eligibility", &p.eligibility().to_string());
    if let Some(phone) = p.phone() {
        field("phone", phone);
    }
    if let Some(address) = p.address() {
        field("address", address);
    }
    field(
        "photo",
        if p.photo().is_some() {
            "on file"
        } else {
            "none"
        },
    );
    field("recorded", &d.person.created_at);
    field("updated", &d.person.updated_at);
    out.push_str("\ncards:\n");
    if d.cards.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&indent(&cards_table(&d.cards).render()));
    }
    out
}

fn audit(global: &Global, reg: &Registry, args: AuditArgs) -> Result<(), Failure> {
    if let Some(card) = &args.card {
        // A mistyped or unknown card is an error, not an empty log.
        reg.status(card)
            .or_else(|e| match e {
                RegistryError::NoSuchCard(_) => {
                    host_lib::registry::card_number::verify(card)?;
                    Err(e)
                }
                other => Err(other),
            })
            .map_err(registry_failure)?;
    }
    let entries = reg
        .audit_log(&AuditFilter {
            card: args.card,
            id_number: args.id_number,
            limit: args.limit,
        })
        .map_err(registry_failure)?;
    if global.json {
        for e in &entries {
            print_json(e)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        println!("no audit records");
        return Ok(());
    }
    print!("{}", audit_table(&entries).render());
    Ok(())
}

fn verify(global: &Global, reg: &Registry, args: VerifyArgs) -> Result<(), Failure> {
    let report = reg
        .verify_from(args.expect_head.as_ref())
        .map_err(registry_failure)?;
    if global.json {
        print_json(&report)?;
    } else {
        let statuses: Vec<String> = report
            .cards_by_status
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        println!(
            "{} audit records, {} table rows checked; the chain knows {} card(s) ({}), {} open \
             blacklist entr{}, ledger balances totalling {} yuan",
            report.audit_records,
            report.rows_checked,
            report.cards_by_status.values().sum::<usize>(),
            if statuses.is_empty() {
                "none".to_owned()
            } else {
                statuses.join(", ")
            },
            report.open_blacklist,
            if report.open_blacklist == 1 {
                "y"
            } else {
                "ies"
            },
            yuan(report.ledger_total_cents)
        );
        match &report.head {
            Some(h) => println!("head: {}:{}", h.id, h.hash),
            None => println!("head: (empty chain)"),
        }
        if report.is_clean() {
            println!("clean: every row agrees with the audit chain");
        } else {
            println!(
                "{} disagreement{} with the audit chain:",
                report.findings.len(),
                if report.findings.len() == 1 { "" } else { "s" }
            );
            for f in &report.findings {
                println!("  {f}");
            }
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(Failure::unmet())
    }
}

/// The audit log as a table; DETAILS is the compact JSON of the record's details.
pub fn audit_table(entries: &[AuditEntry]) -> Table {
    let mut t = Table::new(&["#", "AT", "OPERATOR", "ACTION", "CARD", "DETAILS"]);
    for e in entries {
        let details = match &e.details {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            v => v.to_string(),
        };
        let card = match (&e.card_number, &e.id_number) {
            (Some(c), _) => c.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        };
        t.row([
            e.id.to_string(),
            e.at.clone(),
            e.operator.clone(),
            e.action.clone(),
            card,
            details,
        ]);
    }
    t
}

fn blacklist(global: &Global, reg: &Registry, args: BlacklistArgs) -> Result<(), Failure> {
    if let Some(path) = &args.export {
        let format = match args.format {
            ExportFormat::Text => BlacklistFormat::Text,
            ExportFormat::Json => BlacklistFormat::Json,
        };
        let n = export(reg, path, format)?;
        if path.as_os_str() != "-" {
            if global.json {
                print_json(&serde_json::json!({
                    "exported": path.display().to_string(),
                    "format": match args.format { ExportFormat::Text => "text", ExportFormat::Json => "json" },
                    "entries": n,
                }))?;
            } else {
                println!("{}: {n} blacklisted card(s)", path.display());
            }
        }
        return Ok(());
    }
    let entries = reg.blacklist(args.all).map_err(registry_failure)?;
    if global.json {
        for e in &entries {
            print_json(e)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        println!("no blacklisted cards");
        return Ok(());
    }
    let mut t = Table::new(&["CARD", "REASON", "SINCE", "LIFTED"]);
    for e in &entries {
        t.row([
            e.card_number.clone(),
            e.reason.to_string(),
            e.since.clone(),
            e.lifted_at.clone().unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// Writes the export to `path` through a temporary file in the same directory, renamed over the
/// target once complete: an interrupted export leaves the previous list as it was.
fn export(reg: &Registry, path: &Path, format: BlacklistFormat) -> Result<usize, Failure> {
    if path.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let n = reg
            .export_blacklist(&mut lock, format)
            .map_err(registry_failure)?;
        lock.flush().map_err(Failure::card)?;
        return Ok(n);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
        .map_err(Failure::card)?;
    let n = reg
        .export_blacklist(tmp.as_file_mut(), format)
        .map_err(registry_failure)?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))
        .map_err(Failure::card)?;
    tmp.persist(path)
        .map_err(|e| Failure::card(anyhow!("writing {}: {}", path.display(), e.error)))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(matches!(subject("w00000018"), Ok(Subject::Card(_))));
        assert!(matches!(
            subject("11010519491231002X"),
            Ok(Subject::Person(_))
        ));
        let e = subject("110105194912310021").err().unwrap();
        assert_eq!(e.code, 2);
        let e = subject("W12").err().unwrap();
        assert_eq!(e.code, 2);
        assert!(e
            .error
            .unwrap()
            .to_string()
            .contains("neither a card number"));
    }

    #[test]
    fn statuses_parse_with_a_list_of_choices() {
        assert_eq!(parse_status("lost"), Ok(CardStatus::Lost));
        let e = parse_status("gone").unwrap_err();
        assert!(
            e.contains("personalizing, active, lost, cancelled, aborted"),
            "{e}"
        );
    }
}
