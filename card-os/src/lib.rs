//! # card-os — the citizen card's operating system
//!
//! A `no_std`, allocation-free card OS: tear-safe persistent memory ([`nvm`]), an FMCOS 2.0-compatible
//! ISO 7816-4 file system ([`fs`]), keys, PIN and secure messaging ([`security`]), the PBOC purse and the
//! social-security environment, behind one entry point: [`card::Card::process`].
//!
//! With the `sim` feature the same OS runs over simulated memory ([`sim`]), with power-cut injection
//! and a vpcd bridge that shows the card to a real `pcscd`.
//!
//! Card-side rules (enforced by lints below and by tests): no heap, no `unsafe`, no panic reachable
//! from any APDU, every persistent change of a command inside one NVM transaction.
// Tests run with std (proptest, hex); the library itself is always no_std.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(all(feature = "std", not(test)))]
extern crate std;

pub mod apdu;
pub mod card;
pub mod crypto;
pub mod fs;
pub mod nvm;
pub mod purse;
pub mod security;

#[cfg(feature = "sim")]
pub mod sim;
