//! `citizencard`: a thin clap layer over host-lib.
//!
//! Each subcommand group lives in its own module under `cmd/` and gets the global options
//! ([`Global`]); adding a group (`sim`, `purse`, `issue`, `keys`, …) means one module, one variant
//! in [`Command`] and one line in [`run`].

mod cmd;
mod exit;
mod keyset;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use host_lib::transport::OpenOptions;

use exit::Failure;

/// Script APDUs and manage city social security · citizen cards (社会保障·市民卡).
#[derive(Parser, Debug)]
#[command(
    name = "citizencard",
    version,
    about,
    long_about = "Script APDUs and manage city social security · citizen cards (社会保障·市民卡) \
                  through a PC/SC reader.\n\n\
                  Reader selection: -r/--reader (or CITIZENCARD_READER) takes a reader's index in \
                  `citizencard readers` or part of its name. Without it, the one reader that holds \
                  a card is used; with several, the command lists them and asks you to choose.",
    after_help = "Exit status: 0 success; 1 an expectation was not met, or the card or reader \
                  failed; 2 usage error (bad arguments, bad script, unknown reader).\n\
                  pcscd must be running (`pcscd`, or `scripts/test.sh` for the tests)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options that every subcommand understands.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Reader to use: its index in `citizencard readers`, or part of its name.
    #[arg(
        short = 'r',
        long,
        global = true,
        env = "CITIZENCARD_READER",
        value_name = "INDEX|NAME"
    )]
    pub reader: Option<String>,
    /// Wait for a card (and reader) to appear instead of failing when there is none.
    #[arg(long, global = true)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS", requires = "wait", value_parser = parse_seconds)]
    pub wait_timeout: Option<Duration>,
    /// Print every exchange with the card to stderr: direction, hex, length, time, status meaning.
    #[arg(short = 't', long, global = true)]
    pub trace: bool,
    /// Show the card's raw 61xx/6Cxx answers instead of sending GET RESPONSE / re-sending with
    /// the right Le (for debugging T=0 behaviour).
    #[arg(long, global = true)]
    pub no_auto_get_response: bool,
    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Talk to the simulated card in this image file instead of a reader (no pcscd needed; make
    /// one with `citizencard sim new`).
    #[arg(long, global = true, value_name = "IMAGE", conflicts_with_all = ["reader", "wait"])]
    pub sim: Option<std::path::PathBuf>,
    /// The issuance registry: an SQLite file (default `$XDG_DATA_HOME/citizencard/registry.db`),
    /// or a PostgreSQL database shared by several stations, `postgres://user@host[:port]/db`.
    #[arg(
        long,
        global = true,
        value_name = "FILE|URL",
        env = "CITIZENCARD_REGISTRY"
    )]
    pub registry: Option<std::path::PathBuf>,
    /// The registry's configuration (fees, card series, city; TOML); built-in defaults otherwise.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "CITIZENCARD_REGISTRY_CONFIG"
    )]
    pub registry_config: Option<std::path::PathBuf>,
    /// Who is at the counter: recorded with every change in the registry's audit log.
    #[arg(long, global = true, value_name = "NAME", env = "CITIZENCARD_OPERATOR")]
    pub operator: Option<String>,
    /// This service point's name (e.g. `lucheng-centre/desk-2`): recorded with every change in
    /// the registry's audit log, before the host, process and run that tell two runs apart.
    #[arg(long, global = true, value_name = "NAME", env = "CITIZENCARD_STATION")]
    pub station: Option<String>,
}

impl Global {
    /// The transport options these flags ask for.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            reader: self.reader.clone(),
            wait: self.wait,
            wait_timeout: self.wait_timeout,
            trace: self.trace,
            auto_get_response: !self.no_auto_get_response,
            sim: self.sim.clone(),
            exclusive: false,
        }
    }

    /// [`open_options`](Self::open_options) with the card held exclusively: for workflows whose
    /// APDUs belong together (purse transactions, personalization, MAC'd commands).
    pub fn exclusive_options(&self) -> OpenOptions {
        OpenOptions {
            exclusive: true,
            ..self.open_options()
        }
    }
}

impl Global {
    /// The operator's name for the audit log: `--operator`, else the login name.
    pub fn operator(&self) -> String {
        self.operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".to_string())
    }

    /// The terminal's state directory (load host and purchase terminal): `CITIZENCARD_TERMINAL_STATE`,
    /// else `terminal/` beside the registry (`--registry`, or its default).
    pub fn terminal_state_dir(&self) -> Result<std::path::PathBuf, Failure> {
        use host_lib::registry::Location;
        if let Some(s) = std::env::var_os(cmd::purse::STATE_ENV) {
            return Ok(s.into());
        }
        let beside = match self.registry_location() {
            Some(Location::Sqlite(path)) => Some(path),
            // A PostgreSQL registry has no directory: the default data directory then.
            Some(Location::Postgres(_)) | None => None,
        };
        let registry = match beside {
            Some(r) => r,
            None => host_lib::registry::default_path().map_err(|e| {
                Failure::usage(anyhow::anyhow!(
                    "{e}; give the terminal's state directory with --state DIR or {}",
                    cmd::purse::STATE_ENV
                ))
            })?,
        };
        Ok(registry
            .parent()
            .map(|p| p.join("terminal"))
            .unwrap_or_else(|| std::path::PathBuf::from("terminal")))
    }

    /// Opens the registry these flags name (creating it, and its directory, if needed).
    pub fn open_registry(&self) -> Result<host_lib::registry::Registry, Failure> {
        use host_lib::registry::{default_path, Location, Registry, RegistryConfig, SystemClock};
        use std::sync::Arc;
        let config = match &self.registry_config {
            Some(path) => RegistryConfig::load(path).map_err(Failure::usage)?,
            None => RegistryConfig::default(),
        };
        let location = match self.registry_location() {
            Some(l) => l,
            None => Location::Sqlite(default_path().map_err(Failure::card)?),
        };
        // A bad name is refused before the registry is opened (or created).
        let name = match &self.station {
            Some(name) => {
                let name = name.trim();
                if name.is_empty()
                    || name.chars().count() > 64
                    || name.chars().any(char::is_control)
                {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--station: a station name is 1 to 64 printable characters, got {name:?}"
                    )));
                }
                Some(name)
            }
            None => None,
        };
        let mut reg = Registry::open_location(&location, config, Arc::new(SystemClock))
            .map_err(Failure::card)?;
        if let Some(name) = name {
            // The name leads; host/pid/run keep two runs of one desk apart (leases are per run).
            let mut station = reg.station().clone();
            station.id = format!("{name}@{}", station.id);
            reg.set_station(station);
        }
        Ok(reg)
    }

    /// The registry `--registry` / `CITIZENCARD_REGISTRY` names: a `postgres://` address is
    /// PostgreSQL, anything else an SQLite file; `None` for the default file.
    pub fn registry_location(&self) -> Option<host_lib::registry::Location> {
        self.registry
            .as_ref()
            .map(|r| host_lib::registry::Location::parse(&r.to_string_lossy()))
    }
}

/// Seconds (possibly fractional) as a duration.
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on a simulated card, nothing to install: make a card, personalize it, read it
    /// back.
    Demo(cmd::demo::DemoArgs),
    /// List readers with their card state and ATR.
    Readers(cmd::readers::ReadersArgs),
    /// Send APDUs given on the command line, e.g. `citizencard apdu "00A4040006F043495A5401 => 9000"`.
    Apdu(cmd::apdu::ApduArgs),
    /// Run an APDU script (scriptor-compatible, with optional `=> expectations`).
    #[command(
        long_about = "Run an APDU script: one APDU per line in hex (spaces or colons \
    optional), `#` comments, `reset`, `exit`, a trailing `\\` to continue an APDU on the next line, \
    and an optional expectation after an APDU: `=> 9000` (status word only), `=> 61xx` (`x` = any \
    hex digit), or a whole response such as `=> 6F xx 84 * 90 00` (`*` = any number of bytes). \
    scriptor scripts run unchanged. The run stops at the first unmet expectation (exit status 1) \
    unless --keep-going."
    )]
    Script(cmd::apdu::ScriptArgs),
    /// The simulated card: make a blank card image, serve it to pcscd as a real reader, inspect it.
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
    /// Measure APDU throughput (in process, through PC/SC); see scripts/bench.py.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Create and inspect issuer key-set files (`keys init`, `keys show`); never prints key bytes.
    Keys(cmd::keys::KeysArgs),
    /// A card's life under the regulation: status, report loss, replace, cancel.
    #[command(subcommand)]
    Card(cmd::card::CardCommand),
    /// Read the issuance registry: cards, people, the audit log, the blacklist for terminals.
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// Applications on demand (Art. 11-12): add one to the card at hand, switch it off or on.
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// The e-purse terminal: balance, load, purchase, log (amounts in yuan, e.g. 12.34).
    Purse(cmd::purse::PurseArgs),
    /// Issue cards: applicants (one TOML file or a CSV batch) personalized, verified and recorded
    /// in the registry.
    #[command(
        long_about = "Issue cards: each applicant gets a card number from the registry, \
    the card is personalized with the profile and the key set (keys loaded encrypted under the \
    transport key), read back and compared, and only then recorded as issued. A card pulled out \
    (or a power cut) mid-way is finished by running the same command again with the same card: \
    the registry hands back the same card number and the card is completed or redone.\n\n\
    Cards come from a reader (-r, --wait: in a batch each next card is waited for, and each \
    finished one must be taken out), from one image (--sim IMAGE, one applicant) or from a \
    directory of simulated cards (--sim-dir DIR: one image per card, named by card number). \
    A bad row of a batch is reported and skipped; a summary ends the run (APDUs and time per \
    card). Exit status 0 when every applicant was issued, 1 when any was not, 2 for unusable \
    arguments or files (nothing is issued then)."
    )]
    Issue(cmd::issue::IssueArgs),
    /// Show what a card holds: issuer and cardholder data (after RKSSSE authentication), photo,
    /// purse information; a table or --json.
    Info(cmd::info::InfoArgs),
    /// The counter's web console (the `citizencard-console` program beside this one): operators
    /// log in with a browser on this station and issue, look up, report lost, replace and cancel
    /// cards. `citizencard console --help` shows its options.
    #[command(disable_help_flag = true)]
    Console(cmd::console::ConsoleArgs),
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo(args) => cmd::demo::run(&cli.global, args),
        Command::Console(args) => cmd::console::run(&cli.global, args),
        Command::Readers(args) => cmd::readers::run(&cli.global, args),
        Command::Apdu(args) => cmd::apdu::run_apdu(&cli.global, args),
        Command::Script(args) => cmd::apdu::run_script(&cli.global, args),
        Command::Sim(command) => cmd::sim::run(&cli.global, command),
        Command::Bench(command) => cmd::bench::run(&cli.global, command),
        Command::Keys(args) => cmd::keys::run(&cli.global, args),
        Command::Card(command) => cmd::card::run(&cli.global, command),
        Command::Registry(command) => cmd::registry::run(&cli.global, command),
        Command::App(command) => cmd::app::run(&cli.global, command),
        Command::Purse(args) => cmd::purse::run(&cli.global, args),
        Command::Issue(args) => cmd::issue::run(&cli.global, args),
        Command::Info(args) => cmd::info::run(&cli.global, args),
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`citizencard … | head`), as Unix tools do, instead of panicking.
    sigpipe::reset();
    // clap prints its own usage errors and exits with status 2.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "citizencard",
            "apdu",
            "-t",
            "--reader",
            "PCD 00 01",
            "--no-auto-get-response",
            "00A40000",
        ])
        .unwrap();
        assert!(cli.global.trace && cli.global.no_auto_get_response);
        assert_eq!(cli.global.reader.as_deref(), Some("PCD 00 01"));
        let o = cli.global.open_options();
        assert!(!o.auto_get_response && o.trace && !o.wait);
    }

    #[test]
    fn wait_timeout_needs_wait() {
        assert!(Cli::try_parse_from(["citizencard", "--wait-timeout", "3", "readers"]).is_err());
        let cli =
            Cli::try_parse_from(["citizencard", "--wait", "--wait-timeout", "2.5", "readers"])
                .unwrap();
        let o = cli.global.open_options();
        assert_eq!(o.wait_timeout, Some(Duration::from_millis(2500)));
        assert!(
            Cli::try_parse_from(["citizencard", "--wait", "--wait-timeout=-1", "readers"]).is_err()
        );
    }
}
