//! One module per subcommand group.

pub mod apdu;
pub mod bench;
pub mod demo;
pub mod info;
pub mod issue;
pub mod keys;
pub mod purse;
pub mod readers;
pub mod sim;
