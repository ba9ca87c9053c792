//! `citizencard demo`: the main job on the embedded default, with nothing to install — a simulated
//! card, personalized and read back.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use clap::Args;
use host_lib::script::{self, RunOptions, Script};
use host_lib::transport::sim::SimTransport;

use crate::exit::Failure;
use crate::Global;

/// The FMCOS personalization transcript the demo runs (every file type, reads by FID, SFI, record
/// number and tag).
const PERSONALIZATION: &str = include_str!("../../../test-vectors/transcripts/fmcos-files.apdu");

/// Arguments of `citizencard demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the card image in this directory (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(global: &Global, args: DemoArgs) -> Result<(), Failure> {
    demo(global, args).map_err(Failure::card)
}

fn demo(global: &Global, args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let path = dir.join("demo-card.img");

    println!("1. A factory-fresh simulated card (MF 3F00 \"1PAY.SYS.DDF01\", no keys):");
    let card = SimCard::blank(
        Geometry::DEFAULT,
        &HistoricalBytes::wenzhou([0x00, 0x00, 0xD3, 0x01]),
    )
    .map_err(|e| anyhow!("formatting the card: {e:?}"))?;
    let header =
        image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
    image::save(&path, &header, card.nvm())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "   {} (ATR {})",
        path.display(),
        hex::encode_upper(card.atr())
    );

    println!("2. Personalize it with an FMCOS script and read every file back:");
    let script = Script::parse(PERSONALIZATION).map_err(|e| anyhow!("the demo script: {e}"))?;
    let mut transport = SimTransport::open_image(&path)?;
    let mut failed = 0usize;
    let summary = script::run(
        &mut transport,
        &script,
        RunOptions {
            keep_going: true,
            require_success: false,
        },
        |o| {
            if !o.ok {
                failed += 1;
                eprint!("{}", o.to_text());
            }
        },
    )
    .map_err(|e| anyhow!("{e}"))?;
    println!(
        "   {} exchanges, {} expectations unmet (test-vectors/transcripts/fmcos-files.apdu)",
        summary.steps, summary.unmet
    );
    if summary.unmet > 0 || failed > 0 {
        return Err(anyhow!("the simulated card did not answer as expected"));
    }
    drop(transport);

    println!(
        "3. What the card holds now (`citizencard sim info --image {}`):",
        path.display()
    );
    crate::cmd::sim::print_info(global, &path).map_err(|f| anyhow!("{:?}", f.error))?;
    if args.keep.is_some() {
        println!(
            "\nThe image stays in {}. Serve it to pcscd with `citizencard sim serve --image {}`.",
            dir.display(),
            path.display()
        );
    }
    Ok(())
}
