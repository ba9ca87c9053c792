//! A transport as personalization and card reading use it: T=0 answers resolved, every APDU that
//! reaches the transport counted, answers split into data and status word.

use std::cell::Cell;
use std::rc::Rc;

use card_os::apdu::Sw;

use crate::transport::t0::AutoGetResponse;
use crate::transport::{Error, Transport};

/// A card's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word.
    pub sw: u16,
}

impl Reply {
    /// Whether the status word is `9000`.
    pub fn ok(&self) -> bool {
        self.sw == 0x9000
    }

    /// The status word's meaning.
    pub fn meaning(&self) -> &'static str {
        Sw(self.sw).meaning()
    }
}

/// Counts the APDUs that reach the transport below.
struct Counting<'t> {
    inner: &'t mut dyn Transport,
    sent: Rc<Cell<usize>>,
}

impl Transport for Counting<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        self.sent.set(self.sent.get() + 1);
        self.inner.transmit(command)
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.inner.reset()
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// The channel.
pub(crate) struct Channel<'t> {
    t: AutoGetResponse<Counting<'t>>,
    sent: Rc<Cell<usize>>,
}

impl<'t> Channel<'t> {
    /// Over `transport` (which may have its own middleware).
    pub(crate) fn new(transport: &'t mut dyn Transport) -> Self {
        let sent = Rc::new(Cell::new(0));
        Channel {
            t: AutoGetResponse::new(Counting {
                inner: transport,
                sent: Rc::clone(&sent),
            }),
            sent,
        }
    }

    /// APDUs sent so far (GET RESPONSEs included).
    pub(crate) fn sent(&self) -> usize {
        self.sent.get()
    }

    /// Sends one command APDU.
    pub(crate) fn send(&mut self, apdu: &[u8]) -> Result<Reply, Error> {
        let mut r = self.t.transmit(apdu)?;
        if r.len() < 2 {
            return Err(Error::Protocol {
                reader: self.t.name().to_owned(),
                detail: "an answer without a status word".into(),
            });
        }
        let sw = r.split_off(r.len() - 2);
        Ok(Reply {
            data: r,
            sw: u16::from_be_bytes([sw[0], sw[1]]),
        })
    }

    /// Resets the card (its security state is cleared).
    pub(crate) fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.t.reset()
    }
}

/// `header ‖ Lc ‖ data` (‖ `Le`) as a short APDU (data of at most 255 bytes).
pub(crate) fn apdu(header: [u8; 4], data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut a = Vec::with_capacity(6 + data.len());
    a.extend_from_slice(&header);
    if !data.is_empty() {
        a.push(data.len() as u8);
        a.extend_from_slice(data);
    }
    a.extend(le);
    a
}
