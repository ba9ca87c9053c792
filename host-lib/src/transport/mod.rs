//! Transports: how command APDUs reach a card and responses come back.
//!
//! A [`Transport`] moves raw bytes: one command APDU in, one response APDU (data followed by
//! `SW1 SW2`) out, plus reset and the ATR. Backends:
//!
//! * [`pcsc::PcscTransport`] — a card in a PC/SC reader (through `pcscd`), with reader selection
//!   ([`reader`]) and errors that say what to do ([`Error`]);
//! * [`sim::SimTransport`] — the in-process simulated card (the real card OS over a card image
//!   file or a blank card), no reader needed.
//!
//! Middleware wraps any transport and is itself a transport:
//!
//! * [`t0::AutoGetResponse`] — the T=0 conventions: `61xx` → GET RESPONSE until done, `6Cxx` →
//!   re-send with the exact Le;
//! * [`trace::Trace`] — one line per exchange on stderr, with timing and the status word's meaning.
//!
//! [`open`] builds the usual stack from [`OpenOptions`]: PC/SC → trace → T=0 handling, so the trace
//! shows what really went over the wire, internal GET RESPONSEs included.

pub mod pcsc;
pub mod reader;
pub mod sim;
pub mod t0;
pub mod trace;

use std::time::Duration;

pub use reader::{CardState, ReaderInfo};

/// A channel to one card.
///
/// Implementations return the response exactly as the card sent it (at least the two status
/// bytes); interpreting status words is left to middleware and callers.
pub trait Transport {
    /// Sends one command APDU and returns the response APDU, `SW1 SW2` included.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error>;
    /// Resets the card (warm reset) and returns the new ATR. Volatile card state is lost.
    fn reset(&mut self) -> Result<Vec<u8>, Error>;
    /// Connects to the card again after it was lost in the middle of a command (pulled out of the
    /// reader, a power cut, a reader failure): waits up to `wait` for a card to be back in the
    /// same reader and connects to it afresh. The card has been powered up again, so its volatile
    /// state (selected file, security state, an open purse transaction) is gone and its power-up
    /// recovery has run. Returns the new ATR. It may be another card: callers that care check.
    ///
    /// The default resets the card (for transports that cannot lose it).
    fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, Error> {
        let _ = wait;
        self.reset()
    }
    /// The card's ATR as last seen (at connect or the last reset).
    fn atr(&self) -> &[u8];
    /// A name for messages: the reader's name, or a description of the simulated card.
    fn name(&self) -> &str;
    /// Makes the card's random source replay `bytes` from now on (the `random` script line), so
    /// challenges and cryptograms become reproducible. Only the simulated card can do this.
    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let _ = bytes;
        Err(Error::Unsupported {
            reader: self.name().to_string(),
            what: "fixing the card's random bytes (`random` in a script) works only on the \
                   simulated card (--sim IMAGE)",
        })
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).transmit(command)
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        (**self).reset()
    }
    fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, Error> {
        (**self).reconnect(wait)
    }
    fn atr(&self) -> &[u8] {
        (**self).atr()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), Error> {
        (**self).fix_random(bytes)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).transmit(command)
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        (**self).reset()
    }
    fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, Error> {
        (**self).reconnect(wait)
    }
    fn atr(&self) -> &[u8] {
        (**self).atr()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), Error> {
        (**self).fix_random(bytes)
    }
}

/// Why talking to a card failed, phrased so the user knows what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `SCARD_E_NO_SERVICE`: no `pcscd` to talk to.
    #[error(
        "the PC/SC service is not running (SCARD_E_NO_SERVICE): start it with `pcscd` \
         (or `systemctl start pcscd.socket`); `scripts/test.sh` starts one for the tests"
    )]
    NoService,
    /// pcscd knows no reader at all.
    #[error(
        "no smart card reader found: connect a reader; for the simulated card install \
         vsmartcard-vpcd and restart pcscd so it loads the `Virtual PCD` reader"
    )]
    NoReaders,
    /// The chosen reader is empty.
    #[error("no card in reader `{reader}`: insert one, or add --wait to wait for it")]
    NoCard {
        /// The reader's name.
        reader: String,
    },
    /// No reader holds a card (and none was chosen).
    #[error(
        "no reader holds a card: insert one, or add --wait to wait for it\n{}",
        reader::format_list(.readers)
    )]
    NoCardAnywhere {
        /// Every reader, with its state.
        readers: Vec<ReaderInfo>,
    },
    /// Several readers hold a card and none was chosen.
    #[error(
        "several readers hold a card; choose one with -r/--reader <index|name> or \
         CITIZENCARD_READER:\n{}",
        reader::format_list(.readers)
    )]
    SeveralCards {
        /// Every reader, with its state.
        readers: Vec<ReaderInfo>,
    },
    /// `-r` matched no reader.
    #[error(
        "no reader matches `{wanted}` (-r/--reader takes an index or part of a name):\n{}",
        reader::format_list(.readers)
    )]
    ReaderNotFound {
        /// What was asked for.
        wanted: String,
        /// Every reader, with its state.
        readers: Vec<ReaderInfo>,
    },
    /// `-r` matched several readers.
    #[error(
        "`{wanted}` matches several readers; use more of the name or the index:\n{}",
        reader::format_list(.readers)
    )]
    AmbiguousReader {
        /// What was asked for.
        wanted: String,
        /// The readers that matched.
        readers: Vec<ReaderInfo>,
    },
    /// `SCARD_W_REMOVED_CARD` during a command.
    #[error(
        "the card was removed from `{reader}` during the command: the command may or may not \
         have been carried out; insert the card and check its state before retrying"
    )]
    CardRemoved {
        /// The reader's name.
        reader: String,
    },
    /// `SCARD_E_SHARING_VIOLATION`: someone holds the reader exclusively.
    #[error(
        "reader `{reader}` is in use by another process (SCARD_E_SHARING_VIOLATION), for example \
         scdaemon, pcsc_scan or another citizencard: stop that process, or choose another reader \
         with -r"
    )]
    SharingViolation {
        /// The reader's name.
        reader: String,
    },
    /// `SCARD_W_RESET_CARD` after commands were sent: the card lost its state.
    #[error(
        "the card in `{reader}` was reset by another process, so its state (selected file, \
         verified PIN, session keys) is gone; reconnected, but the command was not sent: start \
         again from the SELECT"
    )]
    CardReset {
        /// The reader's name.
        reader: String,
    },
    /// The card does not answer (`SCARD_W_UNRESPONSIVE_CARD`, `SCARD_W_UNPOWERED_CARD`,
    /// `SCARD_E_NOT_TRANSACTED`).
    #[error(
        "the card in `{reader}` does not respond ({source}): it may have been removed; check it, \
         insert it again and retry"
    )]
    Unresponsive {
        /// The reader's name.
        reader: String,
        /// The PC/SC error.
        source: ::pcsc::Error,
    },
    /// `--wait` with a time limit ran out.
    #[error("no card appeared within {0:?}")]
    WaitTimeout(Duration),
    /// Any other PC/SC failure.
    #[error("{op}{} failed: {source} (0x{:08X})", on_reader(.reader), *.source as u32)]
    Pcsc {
        /// The PC/SC call, e.g. `SCardTransmit`.
        op: &'static str,
        /// The reader's name, or `-` when there is none yet.
        reader: String,
        /// The PC/SC error.
        source: ::pcsc::Error,
    },
    /// The transport cannot do what was asked.
    #[error("`{reader}`: {what}")]
    Unsupported {
        /// The reader's or transport's name.
        reader: String,
        /// What is not supported, and where it is.
        what: &'static str,
    },
    /// The simulated card's image could not be opened.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// The card (or the layer below) answered something that is not a response APDU.
    #[error("`{reader}`: {detail}")]
    Protocol {
        /// The reader's or transport's name.
        reader: String,
        /// What was wrong.
        detail: String,
    },
}

/// ` on `NAME`` for messages, or nothing when there is no reader yet (`-`).
fn on_reader(reader: &str) -> String {
    if reader == "-" {
        String::new()
    } else {
        format!(" on `{reader}`")
    }
}

impl Error {
    /// True for errors in what the user asked for (a reader that does not exist, an ambiguous
    /// choice) rather than in the card or the system; the CLI exits with status 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::ReaderNotFound { .. }
                | Error::AmbiguousReader { .. }
                | Error::SeveralCards { .. }
        )
    }
}

/// How to open a transport: which reader, whether to wait, which middleware.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Reader index or name substring (`-r`, `CITIZENCARD_READER`); `None` picks the one reader
    /// that holds a card.
    pub reader: Option<String>,
    /// Wait for a card (and reader) to appear instead of failing.
    pub wait: bool,
    /// Limit for `wait`; `None` waits indefinitely.
    pub wait_timeout: Option<Duration>,
    /// Print one line per exchange to stderr.
    pub trace: bool,
    /// Handle `61xx` and `6Cxx` transparently (see [`t0::AutoGetResponse`]).
    pub auto_get_response: bool,
    /// Use the simulated card in this image file instead of a PC/SC reader (`--sim`).
    pub sim: Option<std::path::PathBuf>,
    /// Hold the card for this process alone while the transport lives (PC/SC exclusive share
    /// mode; a simulated card's image is always locked): for workflows whose APDUs belong
    /// together (a purse transaction, a MAC'd command after its challenge, personalization).
    pub exclusive: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            reader: None,
            wait: false,
            wait_timeout: None,
            trace: false,
            auto_get_response: true,
            sim: None,
            exclusive: false,
        }
    }
}

/// Opens the card [`OpenOptions`] name — the simulated card of an image file, or a card in a PC/SC
/// reader — with the middleware they ask for.
pub fn open(options: &OpenOptions) -> Result<Box<dyn Transport>, Error> {
    if let Some(path) = &options.sim {
        let sim = sim::SimTransport::open_image(path)?;
        return Ok(wrap(Box::new(sim), options));
    }
    let wait = options.wait.then_some(options.wait_timeout);
    let raw = if options.exclusive {
        pcsc::PcscTransport::open_exclusive(options.reader.as_deref(), wait)?
    } else {
        pcsc::PcscTransport::open(options.reader.as_deref(), wait)?
    };
    Ok(wrap(Box::new(raw), options))
}

/// Puts the middleware that `options` ask for around any transport (PC/SC or simulated): tracing
/// next to the card, T=0 handling outside it, so internal GET RESPONSEs appear in the trace.
pub fn wrap(raw: Box<dyn Transport>, options: &OpenOptions) -> Box<dyn Transport> {
    let traced: Box<dyn Transport> = if options.trace {
        Box::new(trace::Trace::stderr(raw))
    } else {
        raw
    };
    if options.auto_get_response {
        Box::new(t0::AutoGetResponse::new(traced))
    } else {
        traced
    }
}
