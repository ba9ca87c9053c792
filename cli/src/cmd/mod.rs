//! One module per subcommand group.

pub mod apdu;
pub mod keys;
pub mod readers;
