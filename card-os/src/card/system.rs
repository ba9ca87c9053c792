//! The system area (NVM address 0): the format marker, the card's factory data (the ATR historical
//! bytes) and the card-level life cycle. It is written at the factory ([`format`]) and changed
//! only through the journal (CARD BLOCK).
//!
//! | offset | length | content |
//! |---|---|---|
//! | 0 | 4 | `43 43 4F 53` ("CCOS") |
//! | 4 | 1 | layout version (2) |
//! | 5 | 1 | card life cycle: `00` operational, `01` blocked (CARD BLOCK) |
//! | 6 | 2 | page size |
//! | 8 | 4 | capacity |
//! | 12 | 13 | ATR historical bytes T1..TD |
//! | 25 | 39 | reserved (zero) |
//!
//! ## ATR
//!
//! `3B 8D 80 01 T1..TD TCK`: T0 = `8D` (TD1 follows, 13 historical bytes), TD1 = `80` (T=0, TD2
//! follows), TD2 = `01` (T=1), then the historical bytes and the check byte TCK (XOR of T0..TD,
//! present because T=1 is offered). The historical bytes follow the social-security card spec's
//! part 2 table 16 ([`HistoricalBytes`]); the key hierarchy uses T6..TD as its third
//! diversification factor.

use crate::apdu::Sw;
use crate::nvm::{Nvm, NvmError, Storage};

const MAGIC: [u8; 4] = *b"CCOS";
/// Layout version of the NVM image this OS writes and reads. Version 2 (this OS) grew the purse
/// body from 22 to 24 bytes for the ED's overdraft limit (FMCOS 2.0 §8.12). A card of another
/// version does not power up ([`SystemError::LayoutVersion`]): its files are packed, so a longer
/// purse body would move every file after each purse (apdu-specs/memory.md, "Layout versions").
pub const LAYOUT_VERSION: u8 = 2;
const OFFSET_LIFE_CYCLE: usize = 5;

/// Card life cycle byte: operational.
pub const LIFE_CYCLE_OPERATIONAL: u8 = 0x00;
/// Card life cycle byte: blocked by CARD BLOCK; every command answers `6A81`.
pub const LIFE_CYCLE_BLOCKED: u8 = 0x01;

/// The 13 ATR historical bytes T1..TD (LD/T 32 part 2 table 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoricalBytes {
    /// T1–T2: the chip provider's registration identifier.
    pub chip_provider: [u8; 2],
    /// T3–T5: defined by the chip/COS provider (here: `43 43` "CC" and the COS version).
    pub cos_info: [u8; 3],
    /// T6–T7: the card maker's registration identifier.
    pub card_maker: [u8; 2],
    /// T8–T9: the first four digits of the issuing region's code, BCD (`33 03` = Wenzhou).
    pub region: [u8; 2],
    /// TA–TD: the card's unique serial number.
    pub serial: [u8; 4],
}

impl HistoricalBytes {
    /// Wenzhou (`3303`) with placeholder provider and maker identifiers and the given serial.
    pub const fn wenzhou(serial: [u8; 4]) -> Self {
        HistoricalBytes {
            chip_provider: [0x00, 0x00],
            cos_info: [0x43, 0x43, LAYOUT_VERSION],
            card_maker: [0x00, 0x01],
            region: [0x33, 0x03],
            serial,
        }
    }

    /// The 13 bytes in ATR order.
    pub fn to_bytes(&self) -> [u8; 13] {
        let mut b = [0u8; 13];
        for (dst, src) in b.iter_mut().zip(
            self.chip_provider
                .iter()
                .chain(&self.cos_info)
                .chain(&self.card_maker)
                .chain(&self.region)
                .chain(&self.serial),
        ) {
            *dst = *src;
        }
        b
    }

    /// Parses the 13 bytes.
    pub fn from_bytes(b: [u8; 13]) -> Self {
        let [a0, a1, c0, c1, c2, m0, m1, r0, r1, s0, s1, s2, s3] = b;
        HistoricalBytes {
            chip_provider: [a0, a1],
            cos_info: [c0, c1, c2],
            card_maker: [m0, m1],
            region: [r0, r1],
            serial: [s0, s1, s2, s3],
        }
    }

    /// T6..TD, the third-level key diversification factor of the social-security key hierarchy.
    pub fn diversification_factor(&self) -> [u8; 8] {
        let [m0, m1] = self.card_maker;
        let [r0, r1] = self.region;
        let [s0, s1, s2, s3] = self.serial;
        [m0, m1, r0, r1, s0, s1, s2, s3]
    }
}

/// Length of the ATR.
pub const ATR_LEN: usize = 4 + 13 + 1;

/// Builds the ATR from the historical bytes.
pub fn atr(historical: &HistoricalBytes) -> [u8; ATR_LEN] {
    let mut atr = [0u8; ATR_LEN];
    let head = [0x3B, 0x8D, 0x80, 0x01];
    let hist = historical.to_bytes();
    for (dst, src) in atr.iter_mut().zip(head.iter().chain(&hist)) {
        *dst = *src;
    }
    // TCK: XOR of every byte from T0 to the last historical byte (ISO 7816-3 §8.2.5).
    let tck = head.iter().skip(1).chain(&hist).fold(0u8, |acc, b| acc ^ b);
    if let Some(last) = atr.last_mut() {
        *last = tck;
    }
    atr
}

/// Writes the system area and the factory MF in one transaction.
pub fn format<N: Nvm>(storage: &mut Storage<N>, historical: &HistoricalBytes) -> Result<(), Sw> {
    let g = storage.geometry();
    let mut area = [0u8; 25];
    area[..4].copy_from_slice(&MAGIC);
    area[4] = LAYOUT_VERSION;
    area[5] = LIFE_CYCLE_OPERATIONAL;
    area[6..8].copy_from_slice(&(g.page_size as u16).to_be_bytes());
    area[8..12].copy_from_slice(&(g.capacity as u32).to_be_bytes());
    area[12..25].copy_from_slice(&historical.to_bytes());
    storage.write(0, &area)?;
    let space = g.capacity - g.fs_start();
    crate::fs::format(storage, u16::try_from(space).unwrap_or(u16::MAX))?;
    storage.commit()?;
    Ok(())
}

/// The factory data and life cycle read at power-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemArea {
    /// The ATR historical bytes.
    pub historical: HistoricalBytes,
    /// The card life cycle byte.
    pub life_cycle: u8,
}

/// Why the system area was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemError {
    /// Reading failed, or the memory is not a formatted card of this geometry.
    Nvm(NvmError),
    /// A formatted card of another layout version (the byte found).
    LayoutVersion(u8),
}

impl From<NvmError> for SystemError {
    fn from(e: NvmError) -> Self {
        SystemError::Nvm(e)
    }
}

/// Reads and checks the system area.
pub fn read<N: Nvm>(storage: &Storage<N>) -> Result<SystemArea, SystemError> {
    let area = storage.read_array::<25>(0)?;
    let g = storage.geometry();
    let [m0, m1, m2, m3, version, life_cycle, p0, p1, c0, c1, c2, c3, hist @ ..] = area;
    if [m0, m1, m2, m3] != MAGIC
        || usize::from(u16::from_be_bytes([p0, p1])) != g.page_size
        || u32::from_be_bytes([c0, c1, c2, c3]) as usize != g.capacity
    {
        return Err(SystemError::Nvm(NvmError::NotFormatted));
    }
    if version != LAYOUT_VERSION {
        return Err(SystemError::LayoutVersion(version));
    }
    Ok(SystemArea {
        historical: HistoricalBytes::from_bytes(hist),
        life_cycle,
    })
}

/// Queues the card life-cycle byte (CARD BLOCK).
pub fn set_life_cycle<N: Nvm>(storage: &mut Storage<N>, value: u8) -> Result<(), Sw> {
    storage.write_u8(OFFSET_LIFE_CYCLE, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_layout_and_check_byte() {
        let h = HistoricalBytes::wenzhou([0x12, 0x34, 0x56, 0x78]);
        let atr = atr(&h);
        assert_eq!(&atr[..4], &[0x3B, 0x8D, 0x80, 0x01]);
        assert_eq!(&atr[4 + 7..4 + 9], &[0x33, 0x03]);
        assert_eq!(
            atr[1..].iter().fold(0, |a, b| a ^ b),
            0,
            "TCK makes the XOR of T0..TCK zero"
        );
        assert_eq!(HistoricalBytes::from_bytes(h.to_bytes()), h);
        assert_eq!(
            h.diversification_factor(),
            [0, 1, 0x33, 0x03, 0x12, 0x34, 0x56, 0x78]
        );
    }
}
