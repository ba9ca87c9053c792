//! One module per subcommand group.

pub mod apdu;
pub mod readers;
pub mod sim;
