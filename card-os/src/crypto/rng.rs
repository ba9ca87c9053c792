//! Random numbers for GET CHALLENGE and the purse's card random.
//!
//! The card OS asks for randomness only through [`Rng`]. A real chip implements the trait over its
//! true random number generator (with whatever health tests its certification requires); this
//! crate ships two implementations for the simulator and for tests, neither of which is a source of
//! secrets:
//!
//! * [`CounterRng`]: a deterministic stream from a 16-byte seed, so a simulated card started with
//!   the same seed answers the same challenges (reproducible transcripts);
//! * [`FixedRng`]: replays bytes given by a test, so a test can fix the challenge it expects.

use cipher::{BlockCipherEncrypt, KeyInit};
use sm4::Sm4;

use super::block::MAX_BLOCK_SIZE;

/// A source of random bytes.
pub trait Rng {
    /// Fills `out` entirely with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn fill(&mut self, out: &mut [u8]) {
        (**self).fill(out);
    }
}

/// A deterministic generator: SM4 in counter mode keyed with the seed,
/// `SM4(seed, 0) ‖ SM4(seed, 1) ‖ …` with the counter as a 128-bit big-endian block. The stream
/// does not depend on how it is cut into [`Rng::fill`] calls. For the simulator and tests only:
/// anyone who knows the seed knows every challenge.
#[derive(Clone)]
pub struct CounterRng {
    // SM4 directly rather than a `BlockCipher`: the generator lives in the card's RAM for good, and
    // an SM4 key schedule is half the size of the largest `BlockCipher` variant.
    cipher: Sm4,
    counter: u128,
    block: [u8; MAX_BLOCK_SIZE],
    used: usize,
}

impl CounterRng {
    /// A generator whose stream is determined by `seed`.
    pub fn from_seed(seed: [u8; 16]) -> CounterRng {
        CounterRng {
            cipher: Sm4::new((&seed).into()),
            counter: 0,
            block: [0; MAX_BLOCK_SIZE],
            used: MAX_BLOCK_SIZE,
        }
    }
}

impl Rng for CounterRng {
    fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used >= MAX_BLOCK_SIZE {
                self.block = self.counter.to_be_bytes();
                self.cipher.encrypt_block((&mut self.block).into());
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            if let Some(next) = self.block.get(self.used) {
                *byte = *next;
            }
            self.used += 1;
        }
    }
}

/// Replays the given bytes in order, starting over when they run out (all zeros if none were
/// given). Tests use it to fix challenges and card randoms, and [`FixedRng::consumed`] to check
/// how many bytes the card drew.
#[derive(Clone, Debug)]
pub struct FixedRng<'a> {
    bytes: &'a [u8],
    position: usize,
    consumed: usize,
}

impl<'a> FixedRng<'a> {
    /// A generator that replays `bytes`.
    pub fn new(bytes: &'a [u8]) -> FixedRng<'a> {
        FixedRng {
            bytes,
            position: 0,
            consumed: 0,
        }
    }

    /// How many bytes have been drawn so far (counting repeats).
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl Rng for FixedRng<'_> {
    fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            *byte = match self.bytes.get(self.position) {
                Some(&b) => b,
                None => match self.bytes.first() {
                    Some(&b) => {
                        self.position = 0;
                        b
                    }
                    None => 0,
                },
            };
            self.position = self.position.saturating_add(1);
            self.consumed = self.consumed.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{BlockCipher, Key};

    #[test]
    fn counter_rng_is_sm4_of_the_counter() {
        let seed = [0x42; 16];
        let mut rng = CounterRng::from_seed(seed);
        let mut out = [0u8; 40];
        rng.fill(&mut out);
        let cipher = BlockCipher::new(&Key::Sm4(seed));
        for (i, chunk) in out.chunks(16).enumerate() {
            let mut expected = (i as u128).to_be_bytes();
            cipher.encrypt_ecb(&mut expected).unwrap();
            assert_eq!(chunk, &expected[..chunk.len()]);
        }
    }

    #[test]
    fn counter_rng_stream_ignores_call_boundaries() {
        let mut whole = [0u8; 50];
        CounterRng::from_seed([7; 16]).fill(&mut whole);
        let mut rng = CounterRng::from_seed([7; 16]);
        let mut pieces = [0u8; 50];
        let (a, rest) = pieces.split_at_mut(3);
        let (b, c) = rest.split_at_mut(17);
        rng.fill(a);
        rng.fill(&mut []);
        rng.fill(b);
        rng.fill(c);
        assert_eq!(pieces, whole);
        let mut other = [0u8; 50];
        CounterRng::from_seed([8; 16]).fill(&mut other);
        assert_ne!(other, whole);
    }

    #[test]
    fn fixed_rng_replays_and_repeats() {
        let mut rng = FixedRng::new(&[0xBB, 0x83, 0xBF, 0xF3]);
        let mut challenge = [0u8; 4];
        rng.fill(&mut challenge);
        assert_eq!(challenge, [0xBB, 0x83, 0xBF, 0xF3]);
        let mut more = [0u8; 6];
        rng.fill(&mut more);
        assert_eq!(more, [0xBB, 0x83, 0xBF, 0xF3, 0xBB, 0x83]);
        assert_eq!(rng.consumed(), 10);
        let mut empty = FixedRng::new(&[]);
        let mut zeros = [0xFFu8; 3];
        empty.fill(&mut zeros);
        assert_eq!(zeros, [0; 3]);
    }

    #[test]
    fn rng_works_through_a_mutable_reference() {
        fn draw(mut rng: impl Rng) -> [u8; 2] {
            let mut out = [0u8; 2];
            rng.fill(&mut out);
            out
        }
        let mut rng = FixedRng::new(&[1, 2, 3, 4]);
        assert_eq!(draw(&mut rng), [1, 2]);
        assert_eq!(draw(&mut rng), [3, 4]);
    }
}
