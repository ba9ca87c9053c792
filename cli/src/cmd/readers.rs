//! `citizencard readers`: the readers pcscd knows, their card state and ATR.

use clap::Args;
use host_lib::transport::{pcsc, reader};

use crate::exit::Failure;
use crate::Global;

/// Arguments of `citizencard readers`.
#[derive(Args, Debug)]
pub struct ReadersArgs {}

/// Lists the readers (text table, or one JSON object per reader with --json).
pub fn run(global: &Global, _args: ReadersArgs) -> Result<(), Failure> {
    let ctx = pcsc::establish()?;
    let readers = pcsc::list_readers(&ctx)?;
    if global.json {
        for r in &readers {
            println!("{}", serde_json::to_string(r).map_err(Failure::card)?);
        }
    } else {
        print!("{}", reader::format_list(&readers));
    }
    Ok(())
}
