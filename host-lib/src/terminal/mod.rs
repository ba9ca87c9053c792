//! # The e-purse terminal
//!
//! The host side of the PBOC purse (apdu-specs/purse.md): a **load host** and a **purchase
//! terminal** whose PSAM is emulated by the issuer's [`KeyStore`](crate::keys::KeyStore), over any
//! [`Transport`](crate::transport::Transport) (a PC/SC reader or the simulated card).
//!
//! | file | what |
//! |---|---|
//! | [`session`] | [`Terminal`]: balance, log, load, purchase (plain and composite), recovery |
//! | [`apdu`] | the command APDUs, byte for byte |
//! | [`record`] | [`TransactionRecord`]: what a load or purchase did, for people, JSON and the registry |
//! | [`log`] | [`LogRecord`]: the card's 23-byte transaction records |
//! | [`journal`] | [`Pending`] transactions and where they wait for their outcome |
//! | [`amount`] | yuan ↔ integer cents |
//! | `error.rs` | [`TerminalError`] |
//!
//! **Recovery.** When the reader fails after CREDIT FOR LOAD or DEBIT FOR PURCHASE was sent (the
//! card pulled out, a power cut, a reader error), the terminal waits for the card to be back,
//! selects the purse, checks it is the same card and asks GET TRANSACTION PROOF with the
//! counter of the INITIALIZE. `9000` with MAC2 and TAC that verify: **done**; `9406`: **not done**
//! (nothing moved). If the card was used elsewhere in between, the proof may be another
//! transaction's: then the purse log decides (a record with our counter that is ours: done but
//! unprovable; another's: not done). A transaction whose outcome cannot be learnt is reported as
//! unsettled and kept in the journal until the card is seen again, and settled before anything
//! else then.

pub mod amount;
pub mod apdu;
mod error;
pub mod journal;
pub mod log;
pub mod record;
pub mod session;

pub use amount::{format_yuan, parse_yuan, AmountError, Yuan};
pub use apdu::{CappRecord, CappUpdate, PurseKind};
pub use error::TerminalError;
pub use journal::{FileJournal, Journal, NoJournal, Pending};
pub use log::LogRecord;
pub use record::{TransactionKind, TransactionRecord};
pub use session::{
    china_time_now, KeyNames, PurseApplication, Terminal, TerminalConfig, TerminalEvent,
    DEFAULT_AID, DEFAULT_TERMINAL_ID,
};
