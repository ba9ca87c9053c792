//! One module per subcommand group.

pub mod apdu;
pub mod app;
pub mod bench;
pub mod card;
pub mod console;
pub mod demo;
pub mod info;
pub mod issue;
pub mod keys;
pub mod load;
pub mod purse;
pub mod readers;
pub mod registry;
pub mod sim;
