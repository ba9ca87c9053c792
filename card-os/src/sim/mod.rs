//! The simulator (feature `sim`, std): card-os over simulated memory, and the bridges that show it
//! to the host.
//!
//! * [`vpcd`] — a client of vsmartcard's vpcd reader driver, so a simulated card appears in a real
//!   `pcscd` as `Virtual PCD 00 00` (or `00 01`).

pub mod vpcd;
