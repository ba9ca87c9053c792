//! The card in the station's reader: a PC/SC reader, or simulated cards.
//!
//! Simulated cards are a directory of card images, one per card number (`<number>.img`): the
//! card "in the reader" for a card number being issued is its image, made as a blank chip (whose
//! ATR serial is the reserved serial) when it does not exist yet — as `citizencard issue
//! --sim-dir` does. The test hook `pull_next_after(n)` makes the next card opened fail after `n`
//! APDUs, as a card pulled out of the reader mid-way; the page then offers to resume.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};
use host_lib::holder::items::CardNumber;
use host_lib::transport::sim::SimTransport;
use host_lib::transport::{self, Error, OpenOptions, Transport};

/// Where the station's cards come from.
#[derive(Debug, Clone)]
pub enum Reader {
    /// Simulated cards in this directory.
    SimDir(PathBuf),
    /// A PC/SC reader.
    Pcsc(OpenOptions),
}

/// The station's reader, with the pull test hook.
#[derive(Debug)]
pub struct Cards {
    reader: Reader,
    /// 0: off; n + 1: the next card opened is pulled after n APDUs.
    pull: AtomicUsize,
}

impl Cards {
    /// The reader.
    pub fn new(reader: Reader) -> Cards {
        Cards {
            reader,
            pull: AtomicUsize::new(0),
        }
    }

    /// What the pages say the reader is.
    pub fn describe(&self) -> String {
        match &self.reader {
            Reader::SimDir(d) => format!("simulated cards in {}", d.display()),
            Reader::Pcsc(o) => format!(
                "PC/SC {}",
                o.reader.as_deref().unwrap_or("(the reader holding a card)")
            ),
        }
    }

    /// Test hook: the next card opened is pulled out after `apdus` APDUs.
    pub fn pull_next_after(&self, apdus: usize) {
        self.pull.store(apdus + 1, Ordering::SeqCst);
    }

    fn take_pull(&self) -> Option<usize> {
        match self.pull.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Some(n - 1),
        }
    }

    fn image(dir: &Path, card: &CardNumber) -> PathBuf {
        dir.join(format!("{card}.img"))
    }

    /// The card for `card` with card serial `serial` (a blank simulated chip if new).
    pub fn open(&self, card: &CardNumber, serial: u32) -> anyhow::Result<Box<dyn Transport>> {
        let t: Box<dyn Transport> = match &self.reader {
            Reader::SimDir(dir) => {
                let path = Cards::image(dir, card);
                if !path.exists() {
                    blank_image(&path, serial)?;
                }
                let sim = SimTransport::open_image_waiting(&path, Duration::from_secs(2))?;
                transport::wrap(Box::new(sim), &OpenOptions::default())
            }
            Reader::Pcsc(options) => transport::open(options)?,
        };
        Ok(match self.take_pull() {
            Some(after) => Box::new(Pulled {
                inner: t,
                left: after,
            }),
            None => t,
        })
    }

    /// The card at hand for `card`, if there is one: its image (simulated), the reader's card.
    pub fn at_hand(&self, card: &CardNumber) -> anyhow::Result<Option<Box<dyn Transport>>> {
        match &self.reader {
            Reader::SimDir(dir) => {
                let path = Cards::image(dir, card);
                if !path.exists() {
                    return Ok(None);
                }
                let sim = SimTransport::open_image_waiting(&path, Duration::from_secs(2))?;
                Ok(Some(transport::wrap(
                    Box::new(sim),
                    &OpenOptions::default(),
                )))
            }
            Reader::Pcsc(options) => Ok(Some(transport::open(options)?)),
        }
    }
}

/// A blank chip image whose ATR serial is `serial`.
pub fn blank_image(path: &Path, serial: u32) -> anyhow::Result<()> {
    let card = SimCard::blank(
        Geometry::DEFAULT,
        &HistoricalBytes::wenzhou(serial.to_be_bytes()),
    )
    .map_err(|e| anyhow!("making a blank card: {e:?}"))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = image::ImageHeader::new(
        Geometry::DEFAULT.capacity,
        Geometry::DEFAULT.page_size,
        created,
    );
    image::save(path, &header, card.nvm()).with_context(|| format!("writing {}", path.display()))
}

/// A card that is pulled out of the reader after `left` more APDUs (test hook).
struct Pulled {
    inner: Box<dyn Transport>,
    left: usize,
}

impl Pulled {
    fn gone(&self) -> Error {
        Error::Protocol {
            reader: self.inner.name().to_owned(),
            detail: "the card was pulled out of the reader".into(),
        }
    }
}

impl Transport for Pulled {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        if self.left == 0 {
            return Err(self.gone());
        }
        self.left -= 1;
        self.inner.transmit(command)
    }
    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        if self.left == 0 {
            return Err(self.gone());
        }
        self.inner.reset()
    }
    fn reconnect(&mut self, _wait: Duration) -> Result<Vec<u8>, Error> {
        Err(self.gone())
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_card_fails_after_its_apdus_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let cards = Cards::new(Reader::SimDir(dir.path().to_owned()));
        let n = host_lib::registry::card_number::make('A', 1).unwrap();
        check(&cards, &n)
    }

    fn check(cards: &Cards, n: &CardNumber) {
        let select_mf = [0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00];
        cards.pull_next_after(2);
        let mut t = cards.open(n, 7).unwrap();
        assert!(t.transmit(&select_mf).is_ok());
        assert!(t.transmit(&select_mf).is_ok());
        let e = t.transmit(&select_mf).unwrap_err();
        assert!(e.to_string().contains("pulled out"), "{e}");
        assert!(t.reconnect(Duration::ZERO).is_err());
        drop(t);
        let mut t = cards.open(n, 7).unwrap();
        for _ in 0..5 {
            assert!(t.transmit(&select_mf).is_ok(), "the hook fires once");
        }
    }
}
