//! The UART link to the host bridge, in vpcd's framing so that the bridge only relays: every
//! message in both directions is a big-endian `u16` length followed by that many bytes. From the
//! host, a one-byte message is a control code and anything longer is a command APDU; the chip
//! answers an APDU with the response APDU (an empty message when the card is off or mute).
//!
//! | code | meaning | reply |
//! |---|---|---|
//! | `00` | power off | none |
//! | `01` | power on (journal recovery, MF selected) | none |
//! | `02` | warm reset | none |
//! | `04` | get ATR | the ATR, empty when the card cannot power up |
//! | `10` | chip-private: read the NVM image | the image |
//! | `11` | chip-private: the next message is the NVM image (the card is powered off first) | `00` stored, `01` refused (too large, not whole 64-byte pages) |
//! | `12` | `test-hooks` builds only: the next message holds up to 32 bytes the RNG replays from now on (over and over) | `00` |
//! | `20` | `test-hooks` builds only: cost of the last APDU | SysTick ticks of `Card::process`, then those spent waiting for the RNG, two `u32` big-endian |
//!
//! Codes `00` to `04` are vpcd's; `10` and `11` stand in for the chip's flash retention (the NVM
//! lives in RAM here, see `ram_nvm.rs`).

use core::convert::Infallible;
use embedded_io::{Read, Write};

pub const CTRL_POWER_OFF: u8 = 0x00;
pub const CTRL_POWER_ON: u8 = 0x01;
pub const CTRL_RESET: u8 = 0x02;
pub const CTRL_GET_ATR: u8 = 0x04;
pub const CTRL_NVM_READ: u8 = 0x10;
pub const CTRL_NVM_WRITE: u8 = 0x11;
#[cfg(feature = "test-hooks")]
pub const CTRL_FIX_RANDOM: u8 = 0x12;
#[cfg(feature = "test-hooks")]
pub const CTRL_BENCH: u8 = 0x20;

/// One end of the framed link over a byte stream.
pub struct Link<U> {
    uart: U,
}

impl<U: Read<Error = Infallible> + Write<Error = Infallible>> Link<U> {
    pub fn new(uart: U) -> Self {
        Link { uart }
    }

    /// Waits for the next message's length.
    pub fn read_len(&mut self) -> usize {
        let mut len = [0u8; 2];
        self.read_exact(&mut len);
        usize::from(u16::from_be_bytes(len))
    }

    /// Reads exactly `buf.len()` payload bytes.
    pub fn read_exact(&mut self, buf: &mut [u8]) {
        // The UART never fails (Infallible) and never ends.
        let _ = self.uart.read_exact(buf);
    }

    /// Reads and drops `len` payload bytes.
    pub fn skip(&mut self, len: usize) {
        let mut byte = [0u8; 1];
        for _ in 0..len {
            self.read_exact(&mut byte);
        }
    }

    /// Sends one message (at most 65,535 bytes; longer payloads are cut).
    pub fn send(&mut self, payload: &[u8]) {
        self.send_parts(payload, &[]);
    }

    /// Sends `head ‖ tail` as one message (a response APDU straight from the card's reply buffer
    /// and its status word, with no copy into a buffer of the chip's own). At most 65,535 bytes;
    /// a longer message is cut.
    pub fn send_parts(&mut self, head: &[u8], tail: &[u8]) {
        let total = head.len().saturating_add(tail.len());
        let len = u16::try_from(total).unwrap_or(u16::MAX);
        let head = head.get(..usize::from(len).min(head.len())).unwrap_or(&[]);
        let tail = tail
            .get(..usize::from(len).saturating_sub(head.len()))
            .unwrap_or(&[]);
        let _ = self.uart.write_all(&len.to_be_bytes());
        let _ = self.uart.write_all(head);
        let _ = self.uart.write_all(tail);
        let _ = self.uart.flush();
    }
}
