//! The card OS on an emulated Cortex-M0 chip: `card-os/firmware` running in QEMU's `microbit`
//! machine (an nRF51822 with 32 KiB of RAM), driven over its UART.
//!
//! [`McuCard`] starts `qemu-system-arm` with the chip's UART on the child's stdin/stdout, loads
//! the card's NVM image into the chip and then speaks the chip's link protocol
//! (`card-os/firmware/src/link.rs`): vpcd's framing (a big-endian `u16` length, then the bytes),
//! one-byte control codes (power, reset, ATR) and APDUs. It is both a [`VirtualCard`], so
//! `citizencard sim serve --mcu` shows the chip to pcscd through vsmartcard's vpcd reader, and a
//! [`Transport`], so tests and tools can drive the chip directly.
//!
//! The chip keeps the NVM image in RAM; [`McuCard::image`] reads it back (the caller saves it).

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use card_os::sim::vpcd::VirtualCard;

use crate::transport::{self, Transport};

/// Control codes of the chip's link (vpcd's, then the chip's own).
const CTRL_POWER_OFF: u8 = 0x00;
const CTRL_POWER_ON: u8 = 0x01;
const CTRL_RESET: u8 = 0x02;
const CTRL_GET_ATR: u8 = 0x04;
const CTRL_NVM_READ: u8 = 0x10;
const CTRL_NVM_WRITE: u8 = 0x11;
/// `test-hooks` builds only: the RNG replays the next message's bytes.
const CTRL_FIX_RANDOM: u8 = 0x12;
/// `test-hooks` builds only: SysTick ticks of the last APDU, and of its RNG waits.
const CTRL_BENCH: u8 = 0x20;

/// The largest NVM image the chip holds (16 KiB; `card-os/firmware/src/ram_nvm.rs`).
pub const CHIP_NVM_MAX: usize = 16 * 1024;
/// The chip's NVM page size.
pub const CHIP_PAGE_SIZE: usize = 64;

/// Why the emulated chip could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum McuError {
    /// `qemu-system-arm` could not be started.
    #[error("cannot start {qemu}: {source} (Debian: apt-get install qemu-system-arm)")]
    Spawn {
        /// The emulator that was run.
        qemu: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The link to the chip failed (the emulator exited, or a pipe broke).
    #[error("the emulated chip's UART: {0}")]
    Link(#[from] io::Error),
    /// The chip did not send its boot byte: not the card-os firmware, or it did not start.
    #[error("the emulated chip did not come up (boot byte {0:#04x} instead of 0x00): is {1} the card-os firmware?")]
    NoBoot(u8, PathBuf),
    /// The image does not fit the chip's NVM.
    #[error("the chip holds NVM images of up to {CHIP_NVM_MAX} bytes in {CHIP_PAGE_SIZE}-byte pages; this one has {0} bytes (make one with `citizencard sim new --size {CHIP_NVM_MAX}`)")]
    ImageRefused(usize),
    /// A test hook was asked of the production firmware.
    #[error("{0} need the test firmware (built with --features test-hooks)")]
    NoHooks(&'static str),
    /// The chip answered something the protocol does not allow.
    #[error("the emulated chip answered {0} to {1}")]
    Protocol(String, &'static str),
}

/// How to start the chip.
#[derive(Clone, Debug)]
pub struct McuConfig {
    /// The firmware ELF (`card-os/firmware/target/thumbv6m-none-eabi/release/card-os-firmware`).
    pub firmware: PathBuf,
    /// The emulator, `qemu-system-arm` by default.
    pub qemu: PathBuf,
    /// Extra emulator arguments (the bench adds `-icount`).
    pub extra_args: Vec<String>,
    /// The firmware was built with `--features test-hooks` (fixed random bytes, measurements).
    /// The production firmware ignores those controls, so they are refused here without it.
    pub test_hooks: bool,
}

impl McuConfig {
    /// The default emulator for `firmware`.
    pub fn new(firmware: impl Into<PathBuf>) -> Self {
        McuConfig {
            firmware: firmware.into(),
            qemu: PathBuf::from("qemu-system-arm"),
            extra_args: Vec::new(),
            test_hooks: false,
        }
    }

    /// The emulator's command line.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.qemu);
        c.args(["-M", "microbit", "-global", "nrf51-soc.sram-size=32768"])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-kernel")
            .arg(&self.firmware)
            .args(&self.extra_args);
        c
    }
}

/// The card OS on the emulated chip.
pub struct McuCard {
    child: Child,
    to_chip: ChildStdin,
    from_chip: BufReader<ChildStdout>,
    atr: Vec<u8>,
    name: String,
    test_hooks: bool,
}

/// What the last APDU cost on the chip (`test-hooks` firmware).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    /// SysTick ticks (core clock) of `Card::process`.
    pub total: u32,
    /// Of those, ticks spent waiting for the RNG peripheral.
    pub rng: u32,
}

impl McuCard {
    /// Starts the chip with `nvm` (the NVM bytes of a card image, without the image header) as
    /// its memory. The card is not powered yet ([`VirtualCard::power_on`] or
    /// [`McuCard::power_on_atr`]).
    pub fn start(config: &McuConfig, nvm: &[u8]) -> Result<McuCard, McuError> {
        if nvm.len() > CHIP_NVM_MAX || !nvm.len().is_multiple_of(CHIP_PAGE_SIZE) {
            return Err(McuError::ImageRefused(nvm.len()));
        }
        let mut child = config
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| McuError::Spawn {
                qemu: config.qemu.display().to_string(),
                source,
            })?;
        let (Some(to_chip), Some(from_chip)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(McuError::Link(io::Error::other("no pipes to the emulator")));
        };
        let mut card = McuCard {
            child,
            to_chip,
            from_chip: BufReader::new(from_chip),
            atr: Vec::new(),
            name: format!("emulated nRF51822 ({})", file_name(&config.firmware)),
            test_hooks: config.test_hooks,
        };
        let mut boot = [0u8; 1];
        card.from_chip.read_exact(&mut boot)?;
        if boot[0] != 0 {
            return Err(McuError::NoBoot(boot[0], config.firmware.clone()));
        }
        card.send(&[CTRL_NVM_WRITE])?;
        card.send(nvm)?;
        match card.receive()?.as_slice() {
            [0x00] => Ok(card),
            [0x01] => Err(McuError::ImageRefused(nvm.len())),
            other => Err(McuError::Protocol(hex::encode_upper(other), "NVM write")),
        }
    }

    /// Powers the card on and returns its ATR (empty when the image does not power up).
    pub fn power_on_atr(&mut self) -> Result<Vec<u8>, McuError> {
        self.send(&[CTRL_POWER_ON])?;
        self.read_atr()
    }

    /// Sends one APDU and returns the response APDU (empty when the card is off or mute).
    pub fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, McuError> {
        if apdu.len() < 2 {
            return Err(McuError::Protocol(
                hex::encode_upper(apdu),
                "an APDU (at least 2 bytes)",
            ));
        }
        self.send(apdu)?;
        self.receive()
    }

    /// The card's NVM image as the chip holds it now (the card is powered off to read it, as a
    /// reader does before the card leaves it).
    pub fn image(&mut self) -> Result<Vec<u8>, McuError> {
        self.send(&[CTRL_NVM_READ])?;
        self.atr.clear();
        self.receive()
    }

    /// What the last APDU cost (`test-hooks` firmware only).
    pub fn last_ticks(&mut self) -> Result<Ticks, McuError> {
        self.require_hooks("measurements")?;
        self.send(&[CTRL_BENCH])?;
        let r = self.receive()?;
        match (r.get(..4), r.get(4..)) {
            (Some(total), Some(rng)) if r.len() == 8 => Ok(Ticks {
                total: u32::from_be_bytes(total.try_into().unwrap_or_default()),
                rng: u32::from_be_bytes(rng.try_into().unwrap_or_default()),
            }),
            _ => Err(McuError::Protocol(hex::encode_upper(&r), "bench")),
        }
    }

    /// Makes the card's random source replay `bytes` (at most 32) from now on (`test-hooks`
    /// firmware only).
    pub fn fix_random_bytes(&mut self, bytes: &[u8]) -> Result<(), McuError> {
        self.require_hooks("fixed random bytes")?;
        self.send(&[CTRL_FIX_RANDOM])?;
        self.send(bytes)?;
        match self.receive()?.as_slice() {
            [0x00] => Ok(()),
            other => Err(McuError::Protocol(hex::encode_upper(other), "fix random")),
        }
    }

    fn require_hooks(&self, what: &'static str) -> Result<(), McuError> {
        if self.test_hooks {
            Ok(())
        } else {
            Err(McuError::NoHooks(what))
        }
    }

    fn read_atr(&mut self) -> Result<Vec<u8>, McuError> {
        self.send(&[CTRL_GET_ATR])?;
        self.atr = self.receive()?;
        Ok(self.atr.clone())
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), McuError> {
        let len =
            u16::try_from(payload.len()).map_err(|_| McuError::ImageRefused(payload.len()))?;
        let mut frame = Vec::with_capacity(2 + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.to_chip.write_all(&frame)?;
        self.to_chip.flush()?;
        Ok(())
    }

    fn receive(&mut self) -> Result<Vec<u8>, McuError> {
        let mut len = [0u8; 2];
        self.from_chip.read_exact(&mut len)?;
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.from_chip.read_exact(&mut payload)?;
        Ok(payload)
    }
}

impl McuCard {
    fn link_error(&self, detail: &str) -> transport::Error {
        transport::Error::Protocol {
            reader: self.name.clone(),
            detail: detail.to_string(),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl Drop for McuCard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chip in vsmartcard's reader. A broken link (the emulator died) leaves the card mute: the
/// bridge answers nothing and pcscd reports an unresponsive card.
impl VirtualCard for McuCard {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn power_on(&mut self) {
        let _ = self.power_on_atr();
    }

    fn power_off(&mut self) {
        // The ATR stays: vpcd's presence poll asks for it while the card is unpowered, and an
        // empty answer tells pcscd the card left the reader (pcscd powers a new card off and
        // polls again before powering it up, so clearing it here made the chip vanish).
        let _ = self.send(&[CTRL_POWER_OFF]);
    }

    fn reset(&mut self) {
        if self.send(&[CTRL_RESET]).is_ok() {
            let _ = self.read_atr();
        }
    }

    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.exchange(apdu).unwrap_or_default()
    }
}

impl Transport for McuCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        match self.exchange(command) {
            Ok(r) if r.len() >= 2 => Ok(r),
            Ok(_) => {
                Err(self
                    .link_error("the card is mute (not powered, or its image does not power up)"))
            }
            Err(e) => Err(self.link_error(&e.to_string())),
        }
    }

    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        self.send(&[CTRL_RESET])
            .and_then(|()| self.read_atr())
            .map_err(|e| self.link_error(&e.to_string()))
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), transport::Error> {
        self.fix_random_bytes(bytes)
            .map_err(|e| self.link_error(&e.to_string()))
    }

    fn name(&self) -> &str {
        &self.name
    }
}
