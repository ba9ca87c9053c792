//! The simulator (feature `sim`, std): the real card OS over simulated memory.
//!
//! * [`nvm::MemoryNvm`] — RAM NVM, optionally mirrored into an image file, with power-cut injection
//!   at any byte of any page write and write counters;
//! * [`image`] — the versioned card image file format;
//! * [`card::SimCard`] — a card in a simulated reader: power on/off, reset, transmit;
//! * [`inspect`] — the file tree and a canonical dump of a card's contents;
//! * [`tear`] — power-cut sweeps over a command;
//! * [`tearing`] — a card pulled out of its reader at a chosen or random write of a chosen command
//!   (`citizencard sim serve --tear`);
//! * [`vpcd`] — a client of vsmartcard's vpcd reader driver, so a card appears in a real `pcscd`
//!   as `Virtual PCD 00 00` (or `00 01`).
#![allow(clippy::indexing_slicing)]

pub mod card;
pub mod image;
pub mod inspect;
pub mod nvm;
pub mod tear;
pub mod tearing;
pub mod vpcd;

pub use card::{SimCard, SimRng, SimulatedCard};
pub use nvm::{MemoryNvm, NvmCounters, PowerCut};
