//! `citizencard purse balance|load|purchase|log`: the e-purse terminal (host_lib::terminal) at the
//! command line.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use host_lib::keys::KeyStore;
use host_lib::terminal::{
    format_yuan, parse_yuan, CappRecord, CappUpdate, LogRecord, TerminalConfig, TerminalError,
    TerminalEvent, TransactionKind, TransactionRecord,
};
use host_lib::transport;
use serde_json::json;

use crate::exit::Failure;
use crate::Global;

/// The terminal-state directory's environment variable.
pub const STATE_ENV: &str = "CITIZENCARD_TERMINAL_STATE";

/// Arguments of `citizencard purse`.
#[derive(Args, Debug)]
#[command(
    after_help = "Amounts are yuan with up to two decimals: 12.34, 12.3 or 12.\n\
    The terminal's state directory holds the PSAM's terminal transaction number (psam-counter) \
    and, while a load or purchase is under way, pending-<serial>.json: if the card or the reader \
    fails after CREDIT/DEBIT was sent, the terminal waits for the card (--recover-wait) and asks it \
    (GET TRANSACTION PROOF) whether the transaction was made; an outcome it cannot learn stays \
    pending and is settled by the next purse command with that card.\n\
    Exit status: 0 done; 1 not done, refused (insufficient balance, blocked, wrong key set…), \
    unknown outcome or reader failure; 2 usage error (a bad amount, terminal id or key-set file)."
)]
pub struct PurseArgs {
    #[command(subcommand)]
    command: PurseCommand,
    #[command(flatten)]
    options: PurseOptions,
}

/// Options of every `purse` subcommand.
#[derive(Args, Debug)]
pub struct PurseOptions {
    /// The issuer's key set [default: test-vectors/keys/dev.toml if it exists, else the same
    /// public development set built into citizencard].
    #[arg(long, global = true, value_name = "FILE", env = "CITIZENCARD_KEYS")]
    keys: Option<PathBuf>,
    /// This terminal's id: 12 hex digits (6 bytes), written into the card's log.
    #[arg(long, global = true, value_name = "ID", default_value = "000000000001", value_parser = parse_terminal)]
    terminal: [u8; 6],
    /// The purse application's DF name, in hex.
    #[arg(long, global = true, value_name = "HEX", default_value = "A00000000386980701", value_parser = parse_aid)]
    aid: Aid,
    /// The terminal's state directory (PSAM transaction number, pending transactions)
    /// [default: `terminal` beside the registry: $XDG_DATA_HOME/citizencard/terminal].
    #[arg(long, global = true, value_name = "DIR", env = STATE_ENV)]
    state: Option<PathBuf>,
    /// How long to wait for the card to be back after it was lost during CREDIT or DEBIT.
    #[arg(long, global = true, value_name = "SECONDS", default_value = "30", value_parser = crate::parse_seconds)]
    recover_wait: Duration,
}

#[derive(Subcommand, Debug)]
enum PurseCommand {
    /// Show the purse's balance (SELECT, GET BALANCE).
    Balance,
    /// Load money into the purse: INITIALIZE FOR LOAD, MAC1 checked and MAC2 made with the key
    /// set's DLK, CREDIT FOR LOAD, the TAC checked with its DTK.
    Load {
        /// Yuan, e.g. 100, 12.5 or 12.34.
        #[arg(value_name = "AMOUNT", allow_hyphen_values = true)]
        amount: String,
    },
    /// Pay from the purse: INITIALIZE FOR PURCHASE, MAC1 from the PSAM (the key set's DPK and
    /// the next terminal transaction number), DEBIT FOR PURCHASE, MAC2 and TAC checked.
    Purchase {
        /// Yuan, e.g. 2, 1.5 or 12.34.
        #[arg(value_name = "AMOUNT", allow_hyphen_values = true)]
        amount: String,
        /// A composite (CAPP) purchase that also writes a record of a composite-application file
        /// with the debit: `sfi=17,tag=02,data=HEX` (the first record with that tag) or
        /// `sfi=17,record=1,data=HEX`. The amount may then be 0.
        #[arg(long, value_name = "SPEC", value_parser = parse_capp)]
        capp: Option<CappUpdate>,
        /// The blacklist check: a listed card is refused and its purse blocked for good.
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Show the purse's transaction log, newest first (READ RECORD SFI 18); --json for JSON.
    Log,
}

fn parse_terminal(s: &str) -> Result<[u8; 6], String> {
    let bytes = hex::decode(s.trim())
        .map_err(|_| format!("{s:?}: a terminal id is 12 hex digits, e.g. 000000000001"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{s:?}: a terminal id is 12 hex digits (6 bytes), e.g. 000000000001"))
}

/// A DF name (a newtype, so clap takes it as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Aid(Vec<u8>);

fn parse_aid(s: &str) -> Result<Aid, String> {
    match hex::decode(s.trim()) {
        Ok(b) if (5..=16).contains(&b.len()) => Ok(Aid(b)),
        _ => Err(format!(
            "{s:?}: a DF name is 5 to 16 bytes of hex, e.g. A000000632010105"
        )),
    }
}

fn parse_capp(s: &str) -> Result<CappUpdate, String> {
    let (mut sfi, mut record, mut data) = (None, None, None);
    for part in s.split(',').map(str::trim) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part}: expected key=value (sfi=, tag= or record=, data=)"))?;
        let byte = |v: &str| {
            u8::from_str_radix(v, 16).map_err(|_| format!("{part}: one byte in hex is expected"))
        };
        match k {
            "sfi" => sfi = Some(byte(v)?).filter(|s| (1..=30).contains(s)),
            "tag" => record = Some(CappRecord::Tag(byte(v)?)),
            "record" => {
                record =
                    Some(CappRecord::Number(v.parse().map_err(|_| {
                        format!("{part}: a record number 1..254 is expected")
                    })?))
            }
            "data" => data = Some(hex::decode(v).map_err(|_| format!("{part}: hex is expected"))?),
            _ => return Err(format!("{part}: unknown; use sfi=, tag= or record=, data=")),
        }
    }
    let data = data.ok_or("data=HEX (the whole new record) is required")?;
    if data.is_empty() || data.len() > 240 {
        return Err(format!("data: {} bytes; a record has 1 to 240", data.len()));
    }
    Ok(CappUpdate {
        sfi: sfi.ok_or("sfi=HH (1..1E) is required, e.g. sfi=17")?,
        record: record.ok_or("tag=HH or record=N is required")?,
        data,
    })
}

/// A terminal outcome for `--json`.
fn outcome_json(status: &str, message: &str, extra: serde_json::Value) -> String {
    let mut v = json!({ "status": status, "message": message });
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v.to_string()
}

fn print_record(r: &TransactionRecord, json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = write_record(&mut out, r, json);
}

fn write_record(out: &mut dyn Write, r: &TransactionRecord, json: bool) -> std::io::Result<()> {
    if json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("status".into(), "done".into());
        }
        return writeln!(out, "{v}");
    }
    let what = match r.kind {
        TransactionKind::Load => "load",
        TransactionKind::Purchase => "purchase",
        TransactionKind::CappPurchase => "composite purchase",
    };
    writeln!(
        out,
        "{what} of {} yuan done: balance {} -> {} yuan",
        format_yuan(r.amount),
        format_yuan(r.balance_before),
        format_yuan(r.balance_after)
    )?;
    let counter = if r.kind == TransactionKind::Load {
        "online"
    } else {
        "offline"
    };
    writeln!(
        out,
        "  card {}, {counter} counter {}, terminal {}{}, {}",
        r.serial_hex(),
        r.card_counter,
        r.terminal_hex(),
        r.terminal_seq
            .map(|s| format!(", terminal transaction {}", u32::from_be_bytes(s)))
            .unwrap_or_default(),
        host_lib::terminal::record::format_host_time(&r.at)
    )?;
    let proof = if r.kind == TransactionKind::Load {
        format!("TAC {}", hex::encode_upper(r.tac))
    } else {
        format!(
            "MAC2 {} and TAC {}",
            hex::encode_upper(r.mac2),
            hex::encode_upper(r.tac)
        )
    };
    writeln!(
        out,
        "  {proof} {}; {} APDUs{}",
        if r.verified {
            "verified"
        } else {
            "NOT verified"
        },
        r.apdus,
        if r.recovered {
            " (the answer was lost; the card proved the transaction when it was back)"
        } else {
            ""
        }
    )
}

/// Prints what a failed operation means and gives the exit status.
fn failure(e: TerminalError, json: bool) -> Failure {
    if json {
        let extra = match &e {
            TerminalError::NotDone {
                kind,
                amount,
                balance,
                ..
            } => json!({"kind": kind, "amount_cents": amount, "balance_cents": balance}),
            TerminalError::Unverified { record, problem } => {
                json!({"record": record, "problem": problem})
            }
            TerminalError::Unsettled { pending, .. } => json!({ "pending": pending }),
            _ => json!({}),
        };
        let status = match &e {
            TerminalError::NotDone { .. } => "not_done",
            TerminalError::Unverified { .. } => "unverified",
            TerminalError::Unsettled { .. } => "unknown",
            _ => "refused",
        };
        println!("{}", outcome_json(status, &e.to_string(), extra));
    } else if let TerminalError::Unverified { record, .. } = &e {
        print_record(record, false);
    }
    match e {
        TerminalError::Transport(t) => Failure::from(t),
        e => Failure::card(e),
    }
}

fn print_log(log: &[LogRecord], json: bool) {
    if json {
        for r in log {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    if log.is_empty() {
        println!("the log is empty: no load or purchase yet");
        return;
    }
    println!(
        "{:>3}  {:>7}  {:<18}  {:>12}  {:<12}  date and time",
        "#", "counter", "type", "amount", "terminal"
    );
    for r in log {
        let sign = if r.is_load() { "+" } else { "-" };
        println!(
            "{:>3}  {:>7}  {:<18}  {:>12}  {:<12}  {}",
            r.number,
            r.counter,
            format!("{:02X} {}", r.txn_type, r.type_name()),
            format!("{sign}{}", format_yuan(r.amount)),
            hex::encode_upper(r.terminal_id),
            r.date_time()
        );
    }
}

fn describe_event(e: &TerminalEvent<'_>) {
    match e {
        TerminalEvent::Interrupted {
            pending,
            error,
            wait,
        } if wait.is_zero() => eprintln!(
            "citizencard: the card was lost during {} ({error}); --recover-wait 0: not waiting \
             for it, so the outcome of the {} stays pending until the next purse command with \
             this card asks it",
            pending.kind.completing_command(),
            pending.kind.as_str()
        ),
        TerminalEvent::Interrupted {
            pending,
            error,
            wait,
        } => eprintln!(
            "citizencard: the card was lost during {} ({error}); waiting up to {} s for it to be \
             back to ask whether the {} was made — put the card back in the reader",
            pending.kind.completing_command(),
            wait.as_secs_f64(),
            pending.kind.as_str()
        ),
        TerminalEvent::Reconnected(atr) => eprintln!(
            "citizencard: the card is back (ATR {}); asking it with GET TRANSACTION PROOF",
            hex::encode_upper(atr)
        ),
        TerminalEvent::EarlierSettled(outcome) => match outcome {
            Ok(r) => {
                eprintln!("citizencard: a transaction an earlier run left pending was made:");
                let _ = write_record(&mut std::io::stderr().lock(), r, false);
            }
            Err(e) => eprintln!("citizencard: a transaction an earlier run left pending: {e}"),
        },
        TerminalEvent::JournalProblem(p) => eprintln!(
            "citizencard: warning: cannot remove a settled transaction from the terminal state \
             ({p}); the card will be asked about it again"
        ),
        TerminalEvent::NotRecorded { record, error } => eprintln!(
            "citizencard: warning: the {} with counter {} is not in the registry yet ({error}); \
             it stays in the terminal state and is recorded when the card is next seen",
            record.kind.as_str(),
            record.card_counter
        ),
    }
}

/// What the command was asked to do, checked before the card is touched.
enum Plan {
    Balance,
    Load(u32),
    Purchase(u32, Option<CappUpdate>, GuardArgs),
    Log,
}

fn plan(command: PurseCommand) -> Result<Plan, Failure> {
    let amount = |text: &str| parse_yuan(text).map_err(|e| Failure::usage(anyhow!("amount {e}")));
    Ok(match command {
        PurseCommand::Balance => Plan::Balance,
        PurseCommand::Log => Plan::Log,
        PurseCommand::Load { amount: a } => match amount(&a)? {
            0 => {
                return Err(Failure::usage(anyhow!(
                    "amount 0: a load must be more than 0.00 yuan"
                )))
            }
            cents => Plan::Load(cents),
        },
        PurseCommand::Purchase {
            amount: a,
            capp,
            guard,
        } => match (amount(&a)?, capp) {
            (0, None) => {
                return Err(Failure::usage(anyhow!(
                    "amount 0: a purchase must be more than 0.00 yuan (only a composite \
                     purchase, --capp, may be 0)"
                )))
            }
            (cents, capp) => Plan::Purchase(cents, capp, guard),
        },
    })
}

/// Runs `citizencard purse …`.
pub fn run(global: &Global, args: PurseArgs) -> Result<(), Failure> {
    use host_lib::service::purse::{BlacklistSource, PurseDesk};
    use host_lib::service::state::TerminalState;

    let plan = plan(args.command)?;
    let o = args.options;
    let (keys, keys_label) = crate::keyset::load(o.keys.as_deref())?;
    let state_dir = match o.state {
        Some(s) => s,
        None => global.terminal_state_dir()?,
    };
    // One terminal run at a time per state directory: its PSAM counter and journal are this
    // run's until it ends.
    let state = TerminalState::open(
        &state_dir,
        "citizencard purse",
        host_lib::lock::DEFAULT_WAIT,
    )?;
    let moves_money = matches!(plan, Plan::Load(_) | Plan::Purchase(..));
    let keys = keys.with_terminal_counter(state.counter()?);
    if moves_money && keys.is_development() && !global.json {
        eprintln!(
            "citizencard: note: {keys_label} is a PUBLIC development key set ({}): only for \
             development cards",
            keys.identity().id
        );
    }
    let config = TerminalConfig {
        aid: o.aid.0,
        terminal_id: o.terminal,
        recovery_wait: o.recover_wait,
        ..TerminalConfig::default()
    };
    // A blacklist file is checked before anything touches the card.
    let list = match &plan {
        Plan::Purchase(_, _, guard) => match &guard.blacklist {
            Some(path) => Some(host_lib::apps::Blacklist::from_file(path).map_err(Failure::usage)?),
            None => None,
        },
        _ => None,
    };
    let mut registry = existing_registry(global)?;
    let transport = transport::open(&global.exclusive_options())?;
    let json = global.json;
    let operator = global.operator();
    let desk = PurseDesk {
        keys: &keys,
        config,
        state: &state,
        registry: registry.as_mut(),
        operator: &operator,
        clock: None,
    };
    let mut events = describe_event;
    let outcome = match plan {
        Plan::Balance => {
            let b = desk
                .balance(transport, &mut events)
                .map_err(|e| service_failure(e, json))?;
            if json {
                println!(
                    "{}",
                    json!({"card_serial": b.card_serial, "balance_cents": b.cents, "balance": format_yuan(b.cents), "apdus": b.apdus})
                );
            } else {
                println!("card {}: balance {} yuan", b.card_serial, format_yuan(b.cents));
            }
            return Ok(());
        }
        Plan::Log => {
            let log = desk
                .log(transport, &mut events)
                .map_err(|e| service_failure(e, json))?;
            print_log(&log, json);
            return Ok(());
        }
        Plan::Load(cents) => desk.load(transport, cents, &mut events),
        Plan::Purchase(cents, capp, _) => desk.purchase(
            transport,
            cents,
            capp.as_ref(),
            match list {
                Some(l) => BlacklistSource::List(l),
                None => BlacklistSource::Registry,
            },
            time::OffsetDateTime::now_utc(),
            &mut events,
        ),
    }
    .map_err(|e| service_failure(e, json))?;
    for note in &outcome.notes {
        eprintln!("citizencard: warning: {note}");
    }
    print_record(&outcome.record, json);
    report_recording(&outcome, json);
    Ok(())
}

/// What the registry made of the transaction.
fn report_recording(o: &host_lib::service::purse::PurseOutcome, json: bool) {
    use host_lib::service::ledger::Recorded;
    if let Some(e) = &o.not_recorded {
        eprintln!(
            "citizencard: warning: the registry did not record the transaction ({e}); the \
             terminal keeps it and records it when the card is next seen"
        );
    }
    if json {
        return;
    }
    let balance = o
        .ledger_balance_cents
        .map(crate::table::yuan)
        .unwrap_or_default();
    match &o.recorded {
        Some(Recorded::New { card_number, .. }) => {
            println!("  recorded in the registry: card {card_number}, ledger balance {balance}")
        }
        Some(Recorded::Already { card_number, .. }) => {
            println!("  in the registry already: card {card_number}, ledger balance {balance}")
        }
        _ => {}
    }
}

/// A failed purse workflow: a terminal outcome is printed as such.
fn service_failure(e: host_lib::service::ServiceError, json: bool) -> Failure {
    match e {
        host_lib::service::ServiceError::Terminal(t) => failure(t, json),
        other => Failure::from(other),
    }
}

/// The blacklist options of `purse purchase`.
#[derive(Args, Debug, Clone, Default)]
pub struct GuardArgs {
    /// Check the card against this exported blacklist (`registry blacklist --export FILE`)
    /// instead of the registry's list. The registry, if there is one, still records a block.
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<std::path::PathBuf>,
}

/// The registry at the path the global options name, if that file exists (a terminal never
/// creates a registry as a side effect).
pub(crate) fn existing_registry(
    global: &Global,
) -> Result<Option<host_lib::registry::Registry>, Failure> {
    let path = match global.registry_location() {
        // A database server: it exists (opening it says so clearly when it cannot be reached).
        Some(host_lib::registry::Location::Postgres(_)) => return global.open_registry().map(Some),
        Some(host_lib::registry::Location::Sqlite(p)) => p,
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

#[cfg(test)]
mod tests {
    use super::*;
    use host_lib::terminal::DEFAULT_AID;

    #[test]
    fn option_parsers() {
        assert_eq!(parse_terminal("000000000001"), Ok([0, 0, 0, 0, 0, 1]));
        assert!(parse_terminal("0001")
            .unwrap_err()
            .contains("12 hex digits"));
        assert!(parse_terminal("zz").is_err());
        assert_eq!(parse_aid("A000000632010105").unwrap().0.len(), 8);
        assert!(parse_aid("A0").is_err());
        let c = parse_capp("sfi=17,tag=02,data=0201FF").unwrap();
        assert_eq!(
            (c.sfi, c.record, c.data),
            (0x17, CappRecord::Tag(2), vec![2, 1, 0xFF])
        );
        let c = parse_capp("sfi=17,record=3,data=00").unwrap();
        assert_eq!(c.record, CappRecord::Number(3));
        for (bad, says) in [
            ("sfi=17,tag=02", "data=HEX"),
            ("tag=02,data=00", "sfi=HH"),
            ("sfi=17,data=00", "tag=HH or record=N"),
            ("sfi=17,tag=02,data=0", "hex is expected"),
            ("sfi=17,colour=red,data=00", "unknown"),
            ("sfi=17,tag", "key=value"),
        ] {
            let e = parse_capp(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_default_aid_is_the_terminal_s() {
        assert_eq!(parse_aid("A00000000386980701").unwrap().0, DEFAULT_AID);
    }

    #[test]
    fn built_in_keys_are_the_development_set() {
        let k = host_lib::keys::KeySet::from_toml(crate::keyset::DEVELOPMENT_KEYS).unwrap();
        assert!(k.is_development());
        assert_eq!(k.identity().id, "citizencard-dev-3des");
    }
}
