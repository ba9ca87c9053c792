//! `citizencard keys`: create and inspect key-set files. Never prints key bytes.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use host_lib::keys::{
    algorithm_name, permissions_warning, GenerateOptions, KeyInfo, KeySet, KeySetError, KeyStore,
};
use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::Global;

/// Arguments of `citizencard keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a fresh key set from the operating system's random number generator (file mode
    /// 0600). Prints the keys it made, never their bytes.
    #[command(
        long_about = "Create a fresh key set: every key a card of this project needs (card \
    master, social-security, purse), drawn from the operating system's random number generator, \
    written with file mode 0600. The transport key (the temporary master under which \
    personalization writes every other key) is random too, unless --transport-key gives the card \
    maker's batch key; the public FMCOS default 16 x FF is refused unless \
    --allow-default-transport-key (then a warning), since a trace of personalization would show \
    every card's keys. Refuses to overwrite an existing file unless --force. Prints names, \
    algorithms and check values, never key bytes."
    )]
    Init(InitArgs),
    /// Show a key set: names, algorithms, diversification, versions and key check values, never
    /// key bytes.
    Show(ShowArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum AlgorithmArg {
    /// 2-key triple DES (16-byte keys).
    #[value(name = "3des")]
    TripleDes,
    /// SM4 (GB/T 32907).
    Sm4,
    /// AES-128.
    Aes128,
}

/// Arguments of `citizencard keys init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The key-set file to create.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Algorithm of the card keys (the transport key stays 3DES).
    #[arg(long, value_enum, default_value = "3des")]
    algorithm: AlgorithmArg,
    /// The key set's id (default: the file name without its extension).
    #[arg(long)]
    id: Option<String>,
    /// A description for people.
    #[arg(long, default_value = "")]
    description: String,
    /// The card maker's transport (factory) key for this batch, 16 bytes of hex. Default: a
    /// random one.
    #[arg(long, value_name = "HEX")]
    transport_key: Option<String>,
    /// Accept the public FMCOS default transport key (16 x FF) as --transport-key, with a
    /// warning.
    #[arg(long, requires = "transport_key")]
    allow_default_transport_key: bool,
}

/// Arguments of `citizencard keys show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The key-set file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `citizencard keys …`.
pub fn run(global: &Global, args: KeysArgs) -> Result<(), Failure> {
    match args.command {
        KeysCommand::Init(a) => init(global, a),
        KeysCommand::Show(a) => show(global, a),
    }
}

fn key_set_failure(e: KeySetError) -> Failure {
    match e {
        KeySetError::Random(_) => Failure::card(e),
        KeySetError::Io { ref source, .. }
            if source.kind() != std::io::ErrorKind::NotFound
                && source.kind() != std::io::ErrorKind::AlreadyExists =>
        {
            Failure::card(e)
        }
        _ => Failure::usage(e),
    }
}

fn default_id(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        "keyset".into()
    } else {
        id
    }
}

fn init(global: &Global, args: InitArgs) -> Result<(), Failure> {
    let transport_key = match &args.transport_key {
        Some(text) => Some(Zeroizing::new(
            host_lib::hexfmt::parse(text, 1)
                .map_err(|e| Failure::usage(anyhow::anyhow!("--transport-key: {e}")))?,
        )),
        None => None,
    };
    let options = GenerateOptions {
        id: args.id.clone().unwrap_or_else(|| default_id(&args.file)),
        description: args.description.clone(),
        algorithm: match args.algorithm {
            AlgorithmArg::TripleDes => card_os::crypto::Algorithm::TripleDes,
            AlgorithmArg::Sm4 => card_os::crypto::Algorithm::Sm4,
            AlgorithmArg::Aes128 => card_os::crypto::Algorithm::Aes128,
        },
        transport_key,
        allow_default_transport_key: args.allow_default_transport_key,
    };
    let set = KeySet::generate(&options).map_err(key_set_failure)?;
    if set.is_factory_transport_key("TRANSPORT") {
        eprintln!(
            "citizencard: warning: key set {}: its transport key is the public FMCOS default \
             (16 x FF), as --allow-default-transport-key accepted: a trace of personalization \
             shows every card's keys",
            set.identity().id
        );
    }
    set.save(&args.file, args.force).map_err(key_set_failure)?;
    if global.json {
        print_json(&args.file, &set, true)?;
    } else {
        println!(
            "created {} in {} (mode 0600), card keys {}:",
            set,
            args.file.display(),
            algorithm_name(options.algorithm)
        );
        print!("{}", table(&set.keys()));
        println!(
            "Keep {} secret and backed up: whoever has it can read, change and load every card \
             issued with it.",
            args.file.display()
        );
    }
    Ok(())
}

fn show(global: &Global, args: ShowArgs) -> Result<(), Failure> {
    let set = KeySet::load(&args.file).map_err(key_set_failure)?;
    if set.is_development() {
        eprintln!(
            "citizencard: warning: {} is a PUBLIC DEVELOPMENT key set: cards issued with it have \
             no security",
            args.file.display()
        );
    } else {
        if let Some(warning) = permissions_warning(&args.file) {
            eprintln!("citizencard: warning: {warning}");
        }
        if set.is_factory_transport_key("TRANSPORT") {
            eprintln!(
                "citizencard: warning: {}: the transport key is the public FMCOS default (16 x \
                 FF); personalization refuses it unless --allow-default-transport-key",
                args.file.display()
            );
        }
    }
    if global.json {
        return print_json(&args.file, &set, false);
    }
    let id = set.identity();
    println!("key set:     {}", id.id);
    if !id.description.is_empty() {
        println!("description: {}", id.description);
    }
    println!(
        "development: {}",
        if id.development {
            "yes (public keys, never for real cards)"
        } else {
            "no"
        }
    );
    println!("keys:        {}", set.len());
    print!("{}", table(&set.keys()));
    Ok(())
}

fn table(keys: &[KeyInfo]) -> String {
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                k.name.clone(),
                algorithm_name(k.algorithm).to_owned(),
                k.diversification.to_string(),
                format!("{:02X}", k.version),
                hex::encode_upper(k.check_value),
            ]
        })
        .collect();
    let head = ["NAME", "ALGORITHM", "DIVERSIFICATION", "VERSION", "KCV"];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(head.map(String::from)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn print_json(file: &Path, set: &KeySet, created: bool) -> Result<(), Failure> {
    let keys: Vec<serde_json::Value> = set
        .keys()
        .iter()
        .map(|k| {
            serde_json::json!({
                "name": k.name,
                "algorithm": algorithm_name(k.algorithm),
                "diversification": k.diversification.as_str(),
                "version": k.version,
                "kcv": hex::encode_upper(k.check_value),
                "description": k.description,
            })
        })
        .collect();
    let id = set.identity();
    let value = serde_json::json!({
        "file": file.display().to_string(),
        "created": created,
        "id": id.id,
        "description": id.description,
        "development": id.development,
        "keys": keys,
    });
    println!("{}", serde_json::to_string(&value).map_err(Failure::card)?);
    Ok(())
}
