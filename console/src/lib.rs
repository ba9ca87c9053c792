//! `citizencard console`: the service point's web console, over host-lib's service layer.
//!
//! A local web application (axum, server-rendered pages, Chinese first, English on a switch)
//! that operators log in to all day: applicant entry with per-field validation and a photo,
//! issuance to the card in the reader with live progress and resumption after a pulled card,
//! lookup by card number or ID number, loss report and its revocation, replacement (fee and
//! carry-over shown), cancellation (refund), the loss statement, the purse ledger, the audit log,
//! the blacklist export and printable receipts.
//!
//! Layout: [`desk`] is the only module that calls host-lib's registry and service layer;
//! [`routes`] holds the handlers, [`pages`] the HTML, [`i18n`] the words, [`auth`] passwords,
//! sessions and CSRF, [`cards`] the reader (PC/SC or simulated cards), [`jobs`] issuances in
//! progress.
//!
//! It is a crate and a program of its own (`citizencard-console`; `citizencard console` starts
//! it), so that the web stack (tokio, axum, argon2) stays out of the `citizencard` binary and its
//! start-up memory.

pub mod auth;
pub mod cards;
pub mod desk;
pub mod i18n;
pub mod jobs;
pub mod pages;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use host_lib::keys::KeySet;
use host_lib::profile::Profile;
use host_lib::registry::operators::Role;
use host_lib::registry::RegistryConfig;
use host_lib::transport::OpenOptions;

use crate::cards::{Cards, Reader};
use crate::desk::Desk;

/// The public development key set (simulated cards and the demo only).
pub const DEVELOPMENT_KEYS: &str = include_str!("../../test-vectors/keys/dev.toml");

/// The environment variable `--add-operator` reads the new operator's password from.
pub const PASSWORD_ENV: &str = "CITIZENCARD_CONSOLE_PASSWORD";

/// Arguments of `citizencard console`.
#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Start on a temporary registry with simulated cards and two demo operators (an operator and
    /// a supervisor) whose passwords are printed; everything is removed on exit.
    #[arg(long, conflicts_with_all = ["sim_dir", "add_operator"])]
    pub demo: bool,
    /// Address to listen on (localhost by default: the console is for this station only).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The issuer key set (TOML); default: the public development set (simulated cards only).
    #[arg(long, value_name = "FILE", env = "CITIZENCARD_KEYS")]
    pub keys: Option<PathBuf>,
    /// Simulated cards: one card image per card number in this directory (a blank chip is made
    /// for a new card number, as `citizencard issue --sim-dir` does).
    #[arg(long, value_name = "DIR")]
    pub sim_dir: Option<PathBuf>,
    /// Log operators out after this many minutes without a request.
    #[arg(long, value_name = "MINUTES", default_value_t = 30)]
    pub session_minutes: u64,
    /// Add an operator (`LOGIN:operator` or `LOGIN:supervisor`) with the password in
    /// CITIZENCARD_CONSOLE_PASSWORD, then exit.
    #[arg(long, value_name = "LOGIN:ROLE")]
    pub add_operator: Option<String>,
}

/// The station's registry and reader, from the `citizencard` global options (`--registry`,
/// `--registry-config`, `-r/--reader`).
#[derive(Debug, Clone, Default)]
pub struct StationOptions {
    /// The registry: an SQLite file (default: `$XDG_DATA_HOME/citizencard/registry.db`) or a
    /// PostgreSQL database, `postgres://user@host[:port]/db`.
    pub registry: Option<PathBuf>,
    /// The registry's configuration.
    pub registry_config: Option<PathBuf>,
    /// The PC/SC reader (index or part of its name).
    pub reader: Option<String>,
}

/// A console ready to serve.
pub struct Console {
    /// The shared state.
    pub app: Arc<routes::App>,
    _temp: Option<tempfile::TempDir>,
}

fn default_registry() -> anyhow::Result<PathBuf> {
    Ok(host_lib::registry::default_path()?)
}

impl Console {
    /// A console over `desk`.
    pub fn new(desk: Desk, session_idle: Duration, demo: bool) -> Console {
        Console {
            app: Arc::new(routes::App {
                desk: Arc::new(desk),
                sessions: auth::Sessions::new(session_idle),
                jobs: jobs::Jobs::default(),
                demo,
            }),
            _temp: None,
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(listener, routes::router(self.app.clone()))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the console")
    }
}

/// A desk on simulated cards in `dir` (registry, card images, terminal state inside it), with
/// the development keys.
pub fn simulated_desk(dir: &std::path::Path) -> anyhow::Result<Desk> {
    std::fs::create_dir_all(dir.join("cards"))?;
    Ok(Desk::new(
        dir.join("registry.db"),
        RegistryConfig::default(),
        KeySet::from_toml(DEVELOPMENT_KEYS).map_err(|e| anyhow!("{e}"))?,
        Profile::wenzhou(),
        Cards::new(Reader::SimDir(dir.join("cards"))),
        dir.join("terminal"),
    ))
}

fn demo_password() -> anyhow::Result<String> {
    Ok(auth::random_token()?[..12].to_owned())
}

/// Runs `citizencard console`.
pub fn run(args: ConsoleArgs, station: StationOptions) -> anyhow::Result<()> {
    let idle = Duration::from_secs(args.session_minutes.max(1) * 60);
    let console = if args.demo {
        let temp = tempfile::tempdir().context("creating a temporary directory")?;
        let desk = simulated_desk(temp.path())?;
        let (op, sup) = (demo_password()?, demo_password()?);
        desk.add_operator("console-demo", "demo", "演示柜员", Role::Operator, &op)?;
        desk.add_operator("console-demo", "boss", "演示主管", Role::Supervisor, &sup)?;
        println!(
            "citizencard console --demo: simulated cards, a temporary registry in {}",
            temp.path().display()
        );
        println!("   operator:   login demo, password {op}");
        println!("   supervisor: login boss, password {sup}");
        println!("   WARNING: the PUBLIC development key set: simulated cards only.");
        let mut c = Console::new(desk, idle, true);
        c._temp = Some(temp);
        c
    } else {
        let registry = match &station.registry {
            Some(r) => r.clone(),
            None => default_registry()?,
        };
        let config = match &station.registry_config {
            Some(p) => RegistryConfig::load(p)?,
            None => RegistryConfig::default(),
        };
        let keys = match &args.keys {
            Some(p) => KeySet::load(p).map_err(|e| anyhow!("key set {}: {e}", p.display()))?,
            None => KeySet::from_toml(DEVELOPMENT_KEYS).map_err(|e| anyhow!("{e}"))?,
        };
        let reader = match &args.sim_dir {
            Some(_) if station.reader.is_some() => {
                return Err(anyhow!(
                    "--sim-dir uses simulated cards, not a reader: give one"
                ))
            }
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                Reader::SimDir(d.clone())
            }
            None => Reader::Pcsc(OpenOptions {
                reader: station.reader.clone(),
                ..OpenOptions::default()
            }),
        };
        let desk = Desk::new(
            registry.clone(),
            config,
            keys,
            Profile::wenzhou(),
            Cards::new(reader),
            desk::terminal_state_beside(&registry),
        );
        if let Some(spec) = &args.add_operator {
            let (login, role) = spec
                .split_once(':')
                .ok_or_else(|| anyhow!("--add-operator takes LOGIN:ROLE"))?;
            let role = Role::parse(role)
                .ok_or_else(|| anyhow!("the role is `operator` or `supervisor`, not {role:?}"))?;
            let password = std::env::var(PASSWORD_ENV)
                .ok()
                .filter(|p| p.len() >= 8)
                .ok_or_else(|| {
                    anyhow!(
                        "set {PASSWORD_ENV} to the new operator's password (8 characters or more)"
                    )
                })?;
            desk.add_operator("console-setup", login, login, role, &password)?;
            println!(
                "operator {login} ({}) added to {}",
                role.as_str(),
                desk.location()
            );
            return Ok(());
        }
        Console::new(desk, idle, false)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the web server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "Counter console on http://{addr}/ — {} (Ctrl-C stops it)",
            console.app.desk.cards.describe()
        );
        console
            .serve(listener, async {
                // Ctrl-C or SIGTERM: stop serving; the demo's temporary directory goes with it.
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            })
            .await
    })
}
