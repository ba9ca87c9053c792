//! A simulated card: the real [`Card`] over [`MemoryNvm`], with power switched on and off the way a
//! reader does it. Power-off drops every volatile state (the [`Card`] value itself); power-on runs
//! the card's power-up (journal recovery) on the NVM that survived.

use super::nvm::MemoryNvm;
use crate::apdu::RESPONSE_BUFFER_SIZE;
use crate::card::{Card, HistoricalBytes, PowerUpError};
use crate::nvm::Geometry;
use std::boxed::Box;
use std::vec::Vec;

enum Power {
    On(Box<Card<MemoryNvm>>),
    Off(MemoryNvm),
}

/// A placeholder while the power state is being switched (an empty memory costs nothing).
fn placeholder() -> Power {
    Power::Off(MemoryNvm::new(0, 1))
}

/// A card in a simulated reader.
pub struct SimCard {
    power: Power,
    atr: Vec<u8>,
}

impl SimCard {
    /// A factory-fresh card (MF only) with `geometry` and these ATR historical bytes, powered on.
    pub fn blank(geometry: Geometry, historical: &HistoricalBytes) -> Result<Self, PowerUpError> {
        let nvm = MemoryNvm::new(geometry.capacity, geometry.page_size);
        let card = Card::format(nvm, historical).map_err(|(_, e)| e)?;
        Ok(SimCard {
            atr: card.atr().to_vec(),
            power: Power::On(Box::new(card)),
        })
    }

    /// A card over existing memory (an image), powered on; on failure the memory comes back.
    #[allow(clippy::result_large_err)]
    pub fn from_nvm(nvm: MemoryNvm) -> Result<Self, (MemoryNvm, PowerUpError)> {
        let card = Card::power_up(nvm)?;
        Ok(SimCard {
            atr: card.atr().to_vec(),
            power: Power::On(Box::new(card)),
        })
    }

    /// The answer to reset.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Whether the card is powered.
    pub fn is_on(&self) -> bool {
        matches!(self.power, Power::On(_))
    }

    /// Cold start: power up (journal recovery) if the card is off; nothing if it is on.
    pub fn power_on(&mut self) -> Result<(), PowerUpError> {
        match core::mem::replace(&mut self.power, placeholder()) {
            Power::Off(mut nvm) => {
                nvm.restore_power();
                match Card::power_up(nvm) {
                    Ok(card) => {
                        self.power = Power::On(Box::new(card));
                        Ok(())
                    }
                    Err((nvm, e)) => {
                        self.power = Power::Off(nvm);
                        Err(e)
                    }
                }
            }
            on => {
                self.power = on;
                Ok(())
            }
        }
    }

    /// Power off: all volatile state is gone.
    pub fn power_off(&mut self) {
        self.power = match core::mem::replace(&mut self.power, placeholder()) {
            Power::On(card) => Power::Off(card.into_nvm()),
            other => other,
        };
    }

    /// Warm reset (the card stays powered; volatile state cleared).
    pub fn reset(&mut self) {
        match &mut self.power {
            Power::On(card) => card.reset(),
            _ => {
                let _ = self.power_on();
            }
        }
    }

    /// Sends one command APDU; returns the response APDU, or nothing if the card is off (or lost
    /// power during the command).
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let mut out = [0u8; RESPONSE_BUFFER_SIZE];
        let n = match &mut self.power {
            Power::On(card) => card.process(apdu, &mut out),
            _ => return Vec::new(),
        };
        if let Power::On(card) = &mut self.power {
            if !card.nvm_mut().is_powered() {
                // A simulated power cut: the card stops answering.
                self.power_off();
                return Vec::new();
            }
        }
        out.get(..n).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// The card, when powered.
    pub fn card(&mut self) -> Option<&mut Card<MemoryNvm>> {
        match &mut self.power {
            Power::On(card) => Some(card),
            _ => None,
        }
    }

    /// The NVM (powered or not).
    pub fn nvm(&self) -> &MemoryNvm {
        match &self.power {
            Power::On(card) => card.storage().nvm(),
            Power::Off(nvm) => nvm,
        }
    }

    /// The NVM, mutably (to arm cuts or reset counters).
    pub fn nvm_mut(&mut self) -> &mut MemoryNvm {
        match &mut self.power {
            Power::On(card) => card.nvm_mut(),
            Power::Off(nvm) => nvm,
        }
    }

    /// Powers off and returns the memory.
    pub fn into_nvm(mut self) -> MemoryNvm {
        self.power_off();
        match self.power {
            Power::Off(nvm) => nvm,
            Power::On(card) => card.into_nvm(),
        }
    }
}
