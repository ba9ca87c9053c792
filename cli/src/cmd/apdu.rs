//! `citizencard apdu` and `citizencard script`: send APDUs, check expectations.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use host_lib::script::{self, Outcome, RunOptions, Script};
use host_lib::transport;

use crate::exit::Failure;
use crate::Global;

/// Arguments of `citizencard apdu`.
#[derive(Args, Debug)]
pub struct ApduArgs {
    /// Go on after a failed APDU (the exit status is still 1).
    #[arg(long)]
    pub keep_going: bool,
    /// APDUs in hex (`00A40400`, `00 A4 04 00`, `00:A4:04:00`), each optionally followed by an
    /// expectation such as `=> 9000`, `=> 6A82`, `=> 61xx` or `=> 6F xx * 9000`; `reset` resets the
    /// card. Without an expectation an APDU must answer 9000.
    #[arg(required = true, value_name = "APDU")]
    pub apdus: Vec<String>,
}

/// Arguments of `citizencard script`.
#[derive(Args, Debug)]
pub struct ScriptArgs {
    /// Go on after an unmet expectation (the exit status is still 1).
    #[arg(long)]
    pub keep_going: bool,
    /// The script file, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

/// `citizencard apdu`.
pub fn run_apdu(global: &Global, args: ApduArgs) -> Result<(), Failure> {
    let script = Script::parse_args(&args.apdus).map_err(Failure::usage)?;
    let options = RunOptions {
        keep_going: args.keep_going,
        require_success: true,
    };
    execute(global, &script, options)
}

/// `citizencard script`.
pub fn run_script(global: &Global, args: ScriptArgs) -> Result<(), Failure> {
    let (label, text) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(anyhow::anyhow!("reading the script from stdin: {e}")))?;
        ("<stdin>".to_string(), text)
    } else {
        let label = args.file.display().to_string();
        let text = std::fs::read_to_string(&args.file)
            .map_err(|e| Failure::usage(anyhow::anyhow!("{label}: {e}")))?;
        (label, text)
    };
    let script =
        Script::parse(&text).map_err(|e| Failure::usage(anyhow::anyhow!("{label}: {e}")))?;
    let options = RunOptions {
        keep_going: args.keep_going,
        require_success: false,
    };
    execute(global, &script, options)
}

fn execute(global: &Global, script: &Script, options: RunOptions) -> Result<(), Failure> {
    let mut transport = transport::open(&global.open_options())?;
    let json = global.json;
    let report = |o: &Outcome| {
        if json {
            match serde_json::to_string(o) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("citizencard: cannot encode JSON: {e}"),
            }
        } else {
            print!("{}", o.to_text());
        }
        if let Some(unmet) = o.unmet_text(script.unit) {
            eprint!("{unmet}");
        }
    };
    let summary = script::run(transport.as_mut(), script, options, report).map_err(|e| {
        let usage = e.source.is_usage();
        let f = Failure::card(e);
        if usage {
            Failure { code: 2, ..f }
        } else {
            f
        }
    })?;
    if summary.ok() {
        Ok(())
    } else {
        Err(Failure::unmet())
    }
}
