//! `citizencard app list|enable|disable|show`: applications on demand (Art. 11–12) on the card
//! at hand, recorded in the registry.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use host_lib::apps::{targets, AppError, AppTarget, OnCard, Session};
use host_lib::holder::items::CardNumber;
use host_lib::keys::KeySet;
use host_lib::profile::Profile;
use host_lib::registry::AppState;
use serde::Serialize;

use crate::cmd::registry::{parse_card, registry_failure};
use crate::exit::Failure;
use crate::table::Table;
use crate::Global;

/// `citizencard app …`
#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// The applications a card can carry: where each is on the card at hand and in the registry.
    #[command(
        long_about = "The applications a card can carry and where each one is. With the card at \
        hand (-r/--reader or --sim IMAGE): what SELECT by each application's name answers \
        (enabled, disabled, blocked for good, absent) and what the registry recorded. With a \
        card number instead: the registry's record only."
    )]
    List(ListArgs),
    /// Add an application to the card at hand (or switch a disabled one on again).
    #[command(
        long_about = "Add an application to an issued, active card at hand (Art. 11-12), under \
        the issuer's keys: with the MF master's authority its DF is created, its keys loaded \
        encrypted under the transport key, its records written with line-protection MACs, and \
        its own master put in last; then the card is reset and read back. A disabled \
        application is switched on again (APPLICATION UNBLOCK). --set FIELD=VALUE writes its \
        records (on an enabled application: updates them). The registry records the change \
        after the card has it.\n\n\
        Interrupted? Run the same command again with the card: a DF left half-built is erased \
        and built again.\n\n\
        Applications: `public` (public services: library card, health record and provident \
        fund numbers; host-lib/src/apps/public.toml) and `purse` (the e-purse of the card's \
        profile: only switched off and on, never added)."
    )]
    Enable(EnableArgs),
    /// Switch an application of the card at hand off (APPLICATION BLOCK until enabled again).
    Disable(NameArgs),
    /// The values an application holds on the card at hand.
    Show(NameArgs),
}

/// Arguments of `app list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// A card number: the registry's record only (no card needed).
    #[arg(value_name = "CARD", value_parser = parse_card)]
    pub card: Option<CardNumber>,
    #[command(flatten)]
    pub setup: crate::cmd::issue::Setup,
}

/// Arguments of `app enable`.
#[derive(Args, Debug)]
pub struct EnableArgs {
    /// The application (`public`, `purse`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A field value, e.g. `--set library=WZL-000123` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    #[command(flatten)]
    pub setup: crate::cmd::issue::Setup,
}

/// An application name and the setup.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The application (`public`, `purse`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub setup: crate::cmd::issue::Setup,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?}: give FIELD=VALUE, e.g. library=WZL-000123")),
    }
}

/// Runs an `app` subcommand.
pub fn run(global: &Global, command: AppCommand) -> Result<(), Failure> {
    match command {
        AppCommand::List(a) => list(global, a),
        AppCommand::Enable(a) => enable(global, a),
        AppCommand::Disable(a) => disable(global, a),
        AppCommand::Show(a) => show(global, a),
    }
}

fn app_failure(e: AppError) -> Failure {
    match e {
        AppError::Usage(_) => Failure::usage(e),
        AppError::Registry(r) => registry_failure(r),
        AppError::Transport(t) => Failure::from(t),
        other => Failure::card(other),
    }
}

fn target(profile: &Profile, name: &str) -> Result<AppTarget, Failure> {
    let all = targets(profile);
    let names: Vec<String> = all.iter().map(|t| t.name.clone()).collect();
    all.into_iter().find(|t| t.name == name).ok_or_else(|| {
        Failure::usage(anyhow!(
            "no application {name:?}; the applications are: {}",
            names.join(", ")
        ))
    })
}

/// The card at hand, identified; refuses when there is none.
fn card_at_hand(global: &Global) -> Result<Box<dyn host_lib::transport::Transport>, Failure> {
    if global.sim.is_none() && global.reader.is_none() {
        return Err(Failure::usage(anyhow!(
            "this needs the card: give -r/--reader (or CITIZENCARD_READER) or --sim IMAGE"
        )));
    }
    Ok(host_lib::transport::open(&global.exclusive_options())?)
}

/// The key set and profile; `writes_keys` (adding an application writes its keys under the
/// transport key) also applies the transport key's policy.
fn setup(
    s: &crate::cmd::issue::Setup,
    global: &Global,
    writes_keys: bool,
) -> Result<(KeySet, Profile), Failure> {
    let (keys, profile) = if writes_keys {
        s.load()?
    } else {
        s.load_for_reading()?
    };
    if let (Some(w), false) = (crate::cmd::issue::development_warning(&keys), global.json) {
        eprintln!("citizencard: {w}");
    }
    Ok((keys, profile))
}

fn service_failure(e: host_lib::service::ServiceError) -> Failure {
    match e {
        host_lib::service::ServiceError::Card(a) => app_failure(a),
        other => Failure::from(other),
    }
}

fn enable(global: &Global, args: EnableArgs) -> Result<(), Failure> {
    let (keys, profile) = setup(&args.setup, global, true)?;
    let target = target(&profile, &args.name)?;
    if let Some(def) = &target.definition {
        Session::records(def, &args.set).map_err(app_failure)?;
    }
    let mut reg = global.open_registry()?;
    let mut transport = card_at_hand(global)?;
    let change = host_lib::service::apps::enable(
        &mut reg,
        &global.operator(),
        transport.as_mut(),
        &keys,
        &profile,
        &target,
        &args.set,
    )
    .map_err(service_failure)?;
    report(global, &change)
}

fn report(global: &Global, c: &host_lib::service::apps::AppChange) -> Result<(), Failure> {
    if global.json {
        println!("{}", serde_json::to_string(c).map_err(Failure::card)?);
    } else {
        println!(
            "card {}: application {} {} ({} APDUs); recorded in the registry",
            c.card_number, c.application, c.done, c.apdus
        );
    }
    Ok(())
}

fn disable(global: &Global, args: NameArgs) -> Result<(), Failure> {
    let (keys, profile) = setup(&args.setup, global, false)?;
    let target = target(&profile, &args.name)?;
    let mut reg = global.open_registry()?;
    let mut transport = card_at_hand(global)?;
    let change = host_lib::service::apps::disable(
        &mut reg,
        &global.operator(),
        transport.as_mut(),
        &keys,
        &target,
    )
    .map_err(service_failure)?;
    report(global, &change)
}

fn show(global: &Global, args: NameArgs) -> Result<(), Failure> {
    let (keys, profile) = setup(&args.setup, global, false)?;
    let target = target(&profile, &args.name)?;
    let def = target.definition.as_ref().ok_or_else(|| {
        Failure::usage(anyhow!(
            "application {} has no fields to show (try `citizencard purse balance`)",
            target.name
        ))
    })?;
    let mut transport = card_at_hand(global)?;
    let mut s = Session::new(transport.as_mut(), &keys);
    let id = s.identify().map_err(app_failure)?;
    let fields = s.read_fields(def).map_err(app_failure)?;
    if global.json {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "card_number": id.card_number, "application": def.name, "fields": map })
        );
        return Ok(());
    }
    println!(
        "card {}: application {} ({})",
        id.card_number, def.name, def.label
    );
    let mut t = Table::new(&["FIELD", "VALUE", "WHAT"]);
    for ((name, value), f) in fields.iter().zip(&def.fields) {
        t.row([
            name.clone(),
            if value.is_empty() {
                "-".into()
            } else {
                value.clone()
            },
            f.label.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

#[derive(Serialize)]
struct ListRow {
    application: String,
    label: String,
    on_card: Option<OnCard>,
    registry: Option<AppState>,
    since: Option<String>,
}

fn list(global: &Global, args: ListArgs) -> Result<(), Failure> {
    let reg = global.open_registry()?;
    let (keys, profile) = match &args.card {
        Some(_) => (None, args.setup.load_for_reading().map(|(_, p)| p)?),
        None => {
            let (k, p) = args.setup.load_for_reading()?;
            (Some(k), p)
        }
    };
    let all = targets(&profile);
    let (card, on_card): (CardNumber, Vec<Option<OnCard>>) = match (&args.card, keys) {
        (Some(c), _) => (c.clone(), vec![None; all.len()]),
        (None, Some(keys)) => {
            let mut transport = card_at_hand(global)?;
            let mut s = Session::new(transport.as_mut(), &keys);
            let id = s.identify().map_err(app_failure)?;
            let mut states = Vec::new();
            for t in &all {
                states.push(Some(s.probe(t).map_err(app_failure)?));
            }
            (id.card_number, states)
        }
        (None, None) => unreachable!("keys are loaded without a card number"),
    };
    let recorded = reg.applications(&card).map_err(registry_failure)?;
    let rows: Vec<ListRow> = all
        .iter()
        .zip(on_card)
        .map(|(t, on)| {
            let r = recorded.iter().find(|a| a.name == t.name);
            ListRow {
                application: t.name.clone(),
                label: t.label.clone(),
                on_card: on,
                registry: r.map(|a| a.state),
                since: r.map(|a| a.since.clone()),
            }
        })
        .collect();
    if global.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).map_err(Failure::card)?);
        }
        return Ok(());
    }
    println!("card {card}:");
    let mut t = Table::new(&["APPLICATION", "ON CARD", "REGISTRY", "SINCE", "WHAT"]);
    for r in &rows {
        t.row([
            r.application.clone(),
            r.on_card.map_or("-".into(), |o| o.as_str().to_owned()),
            r.registry.map_or("-".into(), |s| s.to_string()),
            r.since.clone().unwrap_or_default(),
            r.label.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
