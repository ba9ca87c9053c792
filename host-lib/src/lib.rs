//! # host-lib — the host side of the citizen card
//!
//! Transports ([`transport`]: PC/SC and the in-process simulated card, with T=0 and tracing
//! middleware), issuer keys ([`keys`]), the e-purse terminal ([`terminal`]), applicant data
//! ([`holder`]), the declarative card layout ([`profile`]), personalization ([`personalize`]),
//! reading a card's social-security data ([`ssse`]), the issuance registry ([`registry`]) and a
//! card's applications over its life ([`apps`]: blocks, the blacklist on the terminal,
//! applications on demand).
//!
//! The APDU codec, status words and crypto come from `card-os`, so host and card cannot drift apart.

pub mod apps;
pub mod hexfmt;
pub mod holder;
pub mod keys;
pub mod lock;
pub mod mcu;
pub mod personalize;
pub mod private_fs;
pub mod profile;
pub mod registry;
pub mod script;
pub mod service;
pub mod ssse;
pub mod terminal;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod transport;
