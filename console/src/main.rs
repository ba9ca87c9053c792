//! `citizencard-console` (also `citizencard console`): the counter's web console.

use std::path::PathBuf;
use std::process::ExitCode;

use citizencard_console::{ConsoleArgs, StationOptions};
use clap::Parser;

/// The counter's web console for a city social security · citizen card service point.
#[derive(Parser, Debug)]
#[command(
    name = "citizencard console",
    version,
    about,
    long_about = "The counter's web console: a local web application for the operators of a \
    service point. They log in (argon2-hashed passwords in the registry; roles operator and \
    supervisor: replacement fees, cancellations and lifting a loss report need a supervisor), then \
    enter applicants (each field checked), issue to the card in the reader with live progress (a \
    pulled card is resumed from the page), look cards up by card number or ID number, load purses, \
    report cards lost, replace them (fee and carried-over balance shown), cancel them (refund), \
    print receipts and loss statements, read the audit log and export the blacklist. Pages are in \
    Chinese, with English on a switch. Every action is recorded with the operator's login in the \
    registry's audit log.\n\n\
    `--demo` starts on a temporary registry with simulated cards and prints the passwords of a demo \
    operator and a demo supervisor. Otherwise the registry is --registry (or its default), the \
    reader -r (or --sim-dir DIR for simulated cards); add operators first with --add-operator \
    LOGIN:ROLE and the password in CITIZENCARD_CONSOLE_PASSWORD."
)]
struct Cli {
    /// The issuance registry: an SQLite file, default `$XDG_DATA_HOME/citizencard/registry.db`,
    /// or a PostgreSQL database shared by several stations, `postgres://user@host[:port]/db`
    /// (not used with --demo).
    #[arg(long, value_name = "FILE|URL", env = "CITIZENCARD_REGISTRY")]
    registry: Option<PathBuf>,
    /// The registry's configuration (fees, card series, city; TOML).
    #[arg(long, value_name = "FILE", env = "CITIZENCARD_REGISTRY_CONFIG")]
    registry_config: Option<PathBuf>,
    /// The station's PC/SC reader: its index in `citizencard readers`, or part of its name.
    #[arg(
        short = 'r',
        long,
        value_name = "INDEX|NAME",
        env = "CITIZENCARD_READER"
    )]
    reader: Option<String>,
    #[command(flatten)]
    console: ConsoleArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let station = StationOptions {
        registry: cli.registry,
        registry_config: cli.registry_config,
        reader: cli.reader,
    };
    match citizencard_console::run(cli.console, station) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("citizencard console: {e:#}");
            ExitCode::FAILURE
        }
    }
}
