//! The in-process simulated card as a transport: the real card OS (`card_os::sim::SimCard`) over a
//! card image file or a fresh blank card, with no reader and no `pcscd` in between.
//!
//! An image opened with [`SimTransport::open_image`] is live: every NVM page write of the card
//! goes to the file at once (the card's own journal makes that tear-safe), so nothing needs saving
//! and a crash loses nothing the card had committed.

use std::path::{Path, PathBuf};

use card_os::card::{HistoricalBytes, PowerUpError};
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};

use super::{Error, Transport};
use crate::lock::{self, FileLock, LockError};

/// A simulated card in a simulated reader.
pub struct SimTransport {
    card: SimCard,
    name: String,
    image: Option<PathBuf>,
    /// The image is this process's while the transport lives: two processes writing one image
    /// would interleave two cards' transactions (and hand out one purse counter twice).
    _lock: Option<FileLock>,
}

/// Why a simulated card could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The image file could not be read or is not an image.
    #[error("card image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What was wrong.
        source: image::ImageError,
    },
    /// Another process uses the image.
    #[error(transparent)]
    Busy(#[from] LockError),
    /// The card did not power up.
    #[error("card image {path}: the card does not power up: {reason}")]
    PowerUp {
        /// The image file (or `<blank>`).
        path: PathBuf,
        /// What the card reported.
        reason: String,
    },
}

/// Why a simulated card did not power up, in words for an operator.
pub fn power_up_failure(e: PowerUpError) -> String {
    match e {
        PowerUpError::NotFormatted => "its memory is not a formatted card".into(),
        PowerUpError::LayoutVersion(found) => format!(
            "its memory has card layout version {found}, this card OS reads version {} only \
             (version 2 made room for the ED's overdraft limit in the purse file); create the card \
             again with `citizencard sim new` and personalize it",
            card_os::card::system::LAYOUT_VERSION
        ),
        PowerUpError::Memory(m) => format!("memory error during recovery: {m:?}"),
    }
}

impl SimTransport {
    /// Opens a card image file; the card's writes go straight back into the file. The image is
    /// locked for this process until the transport is dropped; a lock another process holds is
    /// waited for up to [`lock::DEFAULT_WAIT`].
    pub fn open_image(path: &Path) -> Result<Self, SimError> {
        SimTransport::open_image_waiting(path, lock::DEFAULT_WAIT)
    }

    /// [`open_image`](Self::open_image), waiting up to `wait` for another process's lock.
    pub fn open_image_waiting(path: &Path, wait: std::time::Duration) -> Result<Self, SimError> {
        let guard = match FileLock::existing(path, "card image", "a simulated card in use", wait) {
            Ok(l) => Some(l),
            // A missing file is reported by the image reader below, with its own words.
            Err(LockError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(SimError::Busy(e)),
        };
        let (_, nvm) = image::open_live(path).map_err(|source| SimError::Image {
            path: path.to_path_buf(),
            source,
        })?;
        let card = SimCard::from_nvm(nvm).map_err(|(_, e)| SimError::PowerUp {
            path: path.to_path_buf(),
            reason: power_up_failure(e),
        })?;
        Ok(SimTransport {
            card,
            name: format!("simulated card ({})", path.display()),
            image: Some(path.to_path_buf()),
            _lock: guard,
        })
    }

    /// A factory-fresh card in memory only.
    pub fn blank(geometry: Geometry, historical: &HistoricalBytes) -> Result<Self, SimError> {
        let card = SimCard::blank(geometry, historical).map_err(|e| SimError::PowerUp {
            path: PathBuf::from("<blank>"),
            reason: power_up_failure(e),
        })?;
        Ok(SimTransport::from_card(
            card,
            "simulated card (blank, in memory)",
        ))
    }

    /// Wraps an existing simulated card.
    pub fn from_card(card: SimCard, name: &str) -> Self {
        SimTransport {
            card,
            name: name.to_string(),
            image: None,
            _lock: None,
        }
    }

    /// The card (to arm power cuts, read counters, inspect).
    pub fn card_mut(&mut self) -> &mut SimCard {
        &mut self.card
    }

    /// The image file behind the card, if any.
    pub fn image(&self) -> Option<&Path> {
        self.image.as_deref()
    }

    /// Takes the card out.
    pub fn into_card(self) -> SimCard {
        self.card
    }
}

impl Transport for SimTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        if !self.card.is_on() {
            self.card.power_on().map_err(|e| Error::Protocol {
                reader: self.name.clone(),
                detail: format!(
                    "the simulated card does not power up: {}",
                    power_up_failure(e)
                ),
            })?;
        }
        let response = self.card.transmit(command);
        if response.len() < 2 {
            // The card stopped answering: a simulated power cut during the command.
            return Err(Error::CardRemoved {
                reader: self.name.clone(),
            });
        }
        Ok(response)
    }

    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        if self.card.is_on() {
            self.card.reset();
        } else {
            self.card.power_on().map_err(|e| Error::Protocol {
                reader: self.name.clone(),
                detail: format!(
                    "the simulated card does not power up: {}",
                    power_up_failure(e)
                ),
            })?;
        }
        Ok(self.card.atr().to_vec())
    }

    /// The card is taken out and put back: power off (if it still had power), then a cold start
    /// with the card's recovery. Never waits: a simulated card is always there.
    fn reconnect(&mut self, _wait: std::time::Duration) -> Result<Vec<u8>, Error> {
        self.card.power_off();
        self.card.power_on().map_err(|e| Error::Protocol {
            reader: self.name.clone(),
            detail: format!(
                "the simulated card does not power up: {}",
                power_up_failure(e)
            ),
        })?;
        Ok(self.card.atr().to_vec())
    }

    fn atr(&self) -> &[u8] {
        self.card.atr()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.card.set_rng(card_os::sim::card::SimRng::fixed(bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_of_an_older_card_layout_is_refused_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.img");
        let mut card =
            SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 7])).unwrap();
        // A command after the format, so that power-up's journal replay is not the format's.
        let create_key_file = [0x80, 0xE0, 0, 0, 7, 0x3F, 0, 0x90, 1, 0xF0, 0xFF, 0xFF];
        assert_eq!(card.transmit(&create_key_file), [0x90, 0x00]);
        let mut bytes = card.nvm().bytes().to_vec();
        // System area byte 4: the layout version (apdu-specs/memory.md); 1 had 22-byte purses.
        bytes[4] = 1;
        let old = card_os::sim::MemoryNvm::from_bytes(bytes, Geometry::DEFAULT.page_size);
        let header =
            image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
        image::save(&path, &header, &old).unwrap();
        let e = SimTransport::open_image(&path).err().expect("refused");
        let text = e.to_string();
        assert!(
            text.contains("layout version 1") && text.contains("reads version 2"),
            "{text}"
        );
    }

    #[test]
    fn a_blank_card_answers_and_an_image_keeps_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.img");
        let card =
            SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 7])).unwrap();
        let header =
            image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
        image::save(&path, &header, card.nvm()).unwrap();

        let mut t = SimTransport::open_image(&path).unwrap();
        assert_eq!(t.atr().len(), 18);
        let create = hex::decode("80E0000107 28 0010 F0 F0 FF FF".replace(' ', "")).unwrap();
        assert_eq!(t.transmit(&create).unwrap(), [0x90, 0x00]);
        assert_eq!(
            t.transmit(&hex::decode("00D6810002AABB").unwrap()).unwrap(),
            [0x90, 0x00]
        );
        drop(t);

        // Nothing was saved explicitly: the writes reached the file as the card made them.
        let mut again = SimTransport::open_image(&path).unwrap();
        assert_eq!(
            again.transmit(&hex::decode("00B0810002").unwrap()).unwrap(),
            [0xAA, 0xBB, 0x90, 0x00]
        );
        assert_eq!(again.reset().unwrap(), again.atr());
        assert!(matches!(
            SimTransport::open_image(&dir.path().join("missing.img")),
            Err(SimError::Image { .. })
        ));
    }

    #[test]
    fn an_image_in_use_is_refused_to_a_second_user_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.img");
        let card =
            SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 7])).unwrap();
        let header =
            image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
        image::save(&path, &header, card.nvm()).unwrap();
        let first = SimTransport::open_image(&path).unwrap();
        let e = SimTransport::open_image_waiting(&path, std::time::Duration::from_millis(30))
            .err()
            .unwrap();
        assert!(matches!(e, SimError::Busy(_)), "{e}");
        assert!(e.to_string().contains("in use by another process"), "{e}");
        drop(first);
        SimTransport::open_image_waiting(&path, std::time::Duration::ZERO).unwrap();
    }
}
