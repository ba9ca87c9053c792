//! A simulated card: the real [`Card`] over [`MemoryNvm`], with power switched on and off the way a
//! reader does it. Power-off drops every volatile state (the [`Card`] value itself); power-on runs
//! the card's power-up (journal recovery) on the NVM that survived.
//!
//! The card's random source is a [`SimRng`]: seeded ([`CounterRng`], the default: every simulated
//! card draws the same challenges from the same seed, so transcripts are reproducible) or fixed
//! bytes a test chose ([`SimCard::set_rng`]). It survives power cycles, as a chip's TRNG would.

use super::nvm::MemoryNvm;
use crate::apdu::RESPONSE_BUFFER_SIZE;
use crate::card::{Card, HistoricalBytes, PowerUpError};
use crate::crypto::{CounterRng, Rng};
use crate::nvm::Geometry;
use std::boxed::Box;
use std::vec::Vec;

/// The simulator's random source.
#[derive(Clone)]
pub enum SimRng {
    /// A deterministic stream from a seed ([`CounterRng`]).
    Seeded(CounterRng),
    /// Replays these bytes in order, starting over when they run out (all zeros if empty), as
    /// [`crate::crypto::FixedRng`] does over a borrowed slice; this one owns its bytes so a card
    /// can keep it.
    Fixed {
        /// The bytes to replay.
        bytes: Vec<u8>,
        /// How many have been drawn.
        drawn: usize,
    },
}

impl SimRng {
    /// The seed of every simulated card unless a test chooses another.
    pub const DEFAULT_SEED: [u8; 16] = *b"citizencard sim.";

    /// The default: [`CounterRng`] from [`SimRng::DEFAULT_SEED`].
    pub fn default_seeded() -> SimRng {
        SimRng::Seeded(CounterRng::from_seed(Self::DEFAULT_SEED))
    }

    /// Replays `bytes` (a test fixes the challenges it expects).
    pub fn fixed(bytes: &[u8]) -> SimRng {
        SimRng::Fixed {
            bytes: bytes.to_vec(),
            drawn: 0,
        }
    }
}

impl Rng for SimRng {
    fn fill(&mut self, out: &mut [u8]) {
        match self {
            SimRng::Seeded(rng) => rng.fill(out),
            SimRng::Fixed { bytes, drawn } => {
                for byte in out {
                    *byte = match bytes.len() {
                        0 => 0,
                        n => bytes[*drawn % n],
                    };
                    *drawn += 1;
                }
            }
        }
    }
}

/// The card type the simulator runs.
pub type SimulatedCard = Card<MemoryNvm, SimRng>;

enum Power {
    On(Box<SimulatedCard>),
    Off(MemoryNvm, Box<SimRng>),
}

/// A placeholder while the power state is being switched (an empty memory costs nothing).
fn placeholder() -> Power {
    Power::Off(MemoryNvm::new(0, 1), Box::new(SimRng::fixed(&[])))
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
        let card = Card::format(nvm, historical, SimRng::default_seeded()).map_err(|(_, e)| e)?;
        Ok(SimCard {
            atr: card.atr().to_vec(),
            power: Power::On(Box::new(card)),
        })
    }

    /// A card over existing memory (an image), powered on; on failure the memory comes back.
    #[allow(clippy::result_large_err)]
    pub fn from_nvm(nvm: MemoryNvm) -> Result<Self, (MemoryNvm, PowerUpError)> {
        Self::from_nvm_with_rng(nvm, SimRng::default_seeded())
    }

    /// A card over existing memory with this random source, powered on.
    #[allow(clippy::result_large_err)]
    pub fn from_nvm_with_rng(
        nvm: MemoryNvm,
        rng: SimRng,
    ) -> Result<Self, (MemoryNvm, PowerUpError)> {
        let card = Card::power_up(nvm, rng)?;
        Ok(SimCard {
            atr: card.atr().to_vec(),
            power: Power::On(Box::new(card)),
        })
    }

    /// Replaces the card's random source (powered or not).
    pub fn set_rng(&mut self, rng: SimRng) {
        match &mut self.power {
            Power::On(card) => *card.rng_mut() = rng,
            Power::Off(_, old) => **old = rng,
        }
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
            Power::Off(mut nvm, rng) => {
                nvm.restore_power();
                let kept = rng.clone();
                match Card::power_up(nvm, *rng) {
                    Ok(card) => {
                        self.power = Power::On(Box::new(card));
                        Ok(())
                    }
                    Err((nvm, e)) => {
                        self.power = Power::Off(nvm, kept);
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
            Power::On(card) => {
                let (nvm, rng) = card.into_parts();
                Power::Off(nvm, Box::new(rng))
            }
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
    pub fn card(&mut self) -> Option<&mut SimulatedCard> {
        match &mut self.power {
            Power::On(card) => Some(card),
            _ => None,
        }
    }

    /// The NVM (powered or not).
    pub fn nvm(&self) -> &MemoryNvm {
        match &self.power {
            Power::On(card) => card.storage().nvm(),
            Power::Off(nvm, _) => nvm,
        }
    }

    /// The NVM, mutably (to arm cuts or reset counters).
    pub fn nvm_mut(&mut self) -> &mut MemoryNvm {
        match &mut self.power {
            Power::On(card) => card.nvm_mut(),
            Power::Off(nvm, _) => nvm,
        }
    }

    /// Powers off and returns the memory.
    pub fn into_nvm(mut self) -> MemoryNvm {
        self.power_off();
        match self.power {
            Power::Off(nvm, _) => nvm,
            Power::On(card) => card.into_nvm(),
        }
    }
}
