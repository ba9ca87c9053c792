//! `citizencard console`: starts the counter's web console, the `citizencard-console` program
//! (crate `console/`), with this command's registry and reader options.
//!
//! The console is a program of its own so that this one stays small: the web stack (tokio, axum,
//! argon2) would add about 1.5 MB to `citizencard` and raise the peak memory of every command
//! (the 5 MB goal of `scripts/bench.py`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::anyhow;
use clap::Args;

use crate::exit::Failure;
use crate::Global;

/// The console's program.
pub const PROGRAM: &str = "citizencard-console";

/// Arguments of `citizencard console`: handed to `citizencard-console` as they are.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Options of `citizencard-console` (`--demo`, `--sim-dir DIR`, `--listen ADDR:PORT`,
    /// `--help`, …).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// `citizencard-console` beside this program, else the one on PATH.
fn program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(PROGRAM)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(PROGRAM))
}

/// Replaces this process with the console.
pub fn run(global: &Global, args: ConsoleArgs) -> Result<(), Failure> {
    let exe = program();
    let mut cmd = Command::new(&exe);
    if let Some(r) = &global.registry {
        cmd.arg("--registry").arg(r);
    }
    if let Some(c) = &global.registry_config {
        cmd.arg("--registry-config").arg(c);
    }
    if let Some(r) = &global.reader {
        cmd.arg("--reader").arg(r);
    }
    cmd.args(&args.args);
    let e = cmd.exec();
    Err(Failure::usage(anyhow!(
        "cannot start {}: {e}; build it with `cargo build --release -p citizencard-console` (it \
         is installed beside citizencard)",
        exe.display()
    )))
}
