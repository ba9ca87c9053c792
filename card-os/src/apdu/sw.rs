//! Status words (ISO 7816-4 §5.1.3, FMCOS 2.0 §6.2, PBOC ED/EP, LD/T 32 part 5 table 5).
//!
//! [`Sw`] is a plain 16-bit value, so every status word round-trips through it, including ones the
//! card never sends. The card's own status words are named constants, each listed in
//! [`Sw::DOCUMENTED`] with its meaning; `apdu-specs/status-words.md` is generated from the same
//! meanings and a test keeps the two in step.

use core::fmt;

/// A status word `SW1 SW2`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sw(pub u16);

impl Sw {
    /// `9000` — normal processing.
    pub const SUCCESS: Sw = Sw(0x9000);
    /// `6100` — more data available; `61xx` carries the count (`00` means 256 or more).
    pub const MORE_DATA: Sw = Sw(0x6100);
    /// `6281` — part of the returned data may be corrupted.
    pub const DATA_MAY_BE_CORRUPTED: Sw = Sw(0x6281);
    /// `6282` — end of file or record reached before reading Le bytes.
    pub const END_OF_FILE: Sw = Sw(0x6282);
    /// `6283` — selected file invalidated (application temporarily blocked).
    pub const FILE_INVALIDATED: Sw = Sw(0x6283);
    /// `63C0` — verification failed; `63Cx` carries the tries left.
    pub const TRIES_LEFT: Sw = Sw(0x63C0);
    /// `6400` — state of non-volatile memory unchanged, execution error.
    pub const EXECUTION_ERROR: Sw = Sw(0x6400);
    /// `6581` — memory failure (an NVM write did not complete).
    pub const MEMORY_FAILURE: Sw = Sw(0x6581);
    /// `6700` — wrong length (Lc or Le).
    pub const WRONG_LENGTH: Sw = Sw(0x6700);
    /// `6901` — command not accepted, invalid state (e.g. CREDIT without INITIALIZE).
    pub const INVALID_STATE: Sw = Sw(0x6901);
    /// `6981` — command incompatible with file structure.
    pub const INCOMPATIBLE_FILE_STRUCTURE: Sw = Sw(0x6981);
    /// `6982` — security status not satisfied.
    pub const SECURITY_STATUS_NOT_SATISFIED: Sw = Sw(0x6982);
    /// `6983` — authentication method blocked (no tries left).
    pub const AUTH_METHOD_BLOCKED: Sw = Sw(0x6983);
    /// `6984` — referenced data invalidated (e.g. no challenge was issued).
    pub const REFERENCE_DATA_INVALID: Sw = Sw(0x6984);
    /// `6985` — conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: Sw = Sw(0x6985);
    /// `6986` — command not allowed (no current EF).
    pub const NO_CURRENT_EF: Sw = Sw(0x6986);
    /// `6987` — expected secure-messaging data objects (MAC) missing.
    pub const SM_MAC_MISSING: Sw = Sw(0x6987);
    /// `6988` — secure-messaging data objects incorrect (wrong MAC or cryptogram).
    pub const SM_DATA_INCORRECT: Sw = Sw(0x6988);
    /// `6A80` — incorrect parameters in the data field.
    pub const WRONG_DATA: Sw = Sw(0x6A80);
    /// `6A81` — function not supported (also: card or application blocked).
    pub const FUNCTION_NOT_SUPPORTED: Sw = Sw(0x6A81);
    /// `6A82` — file not found.
    pub const FILE_NOT_FOUND: Sw = Sw(0x6A82);
    /// `6A83` — record not found.
    pub const RECORD_NOT_FOUND: Sw = Sw(0x6A83);
    /// `6A84` — not enough memory space in the file or DF.
    pub const NOT_ENOUGH_SPACE: Sw = Sw(0x6A84);
    /// `6A85` — Lc inconsistent with TLV structure.
    pub const LC_INCONSISTENT_WITH_TLV: Sw = Sw(0x6A85);
    /// `6A86` — incorrect parameters P1-P2.
    pub const WRONG_P1_P2: Sw = Sw(0x6A86);
    /// `6A88` — referenced data (key, PIN) not found.
    pub const REFERENCED_DATA_NOT_FOUND: Sw = Sw(0x6A88);
    /// `6A86` as FMCOS 2.0 §7.13 answers CREATE FILE of an FID that exists (ISO would say `6A89`;
    /// the card follows FMCOS, so this is the same value as [`Sw::WRONG_P1_P2`]).
    pub const FILE_EXISTS: Sw = Sw(0x6A86);
    /// `6B00` — wrong parameters P1-P2 (offset outside the EF).
    pub const WRONG_OFFSET: Sw = Sw(0x6B00);
    /// `6C00` — wrong Le; `6Cxx` carries the exact length available.
    pub const WRONG_LE: Sw = Sw(0x6C00);
    /// `6D00` — instruction code not supported.
    pub const INS_NOT_SUPPORTED: Sw = Sw(0x6D00);
    /// `6E00` — class not supported.
    pub const CLA_NOT_SUPPORTED: Sw = Sw(0x6E00);
    /// `6F00` — no precise diagnosis (data invalid).
    pub const NO_PRECISE_DIAGNOSIS: Sw = Sw(0x6F00);
    /// `9302` — MAC invalid (purse MAC1/MAC2, life-cycle MAC).
    pub const MAC_INVALID: Sw = Sw(0x9302);
    /// `9303` — application permanently locked.
    pub const APP_PERMANENTLY_LOCKED: Sw = Sw(0x9303);
    /// `9401` — insufficient funds (or the load would exceed the maximum balance).
    pub const INSUFFICIENT_FUNDS: Sw = Sw(0x9401);
    /// `9402` — transaction counter at its maximum.
    pub const COUNTER_AT_MAX: Sw = Sw(0x9402);
    /// `9403` — key index not supported.
    pub const KEY_INDEX_NOT_SUPPORTED: Sw = Sw(0x9403);
    /// `9406` — required MAC not available (no transaction to prove).
    pub const MAC_NOT_AVAILABLE: Sw = Sw(0x9406);

    /// Every status word the card can send. `61xx`, `63Cx` and `6Cxx` appear once with a zero
    /// parameter. The apdu-specs status-word table lists exactly these, and tests check that the
    /// card sends no other. (The other constants name status words other cards send, for hosts.)
    pub const DOCUMENTED: &'static [Sw] = &[
        Sw::SUCCESS,
        Sw::MORE_DATA,
        Sw::TRIES_LEFT,
        Sw::MEMORY_FAILURE,
        Sw::WRONG_LENGTH,
        Sw::INVALID_STATE,
        Sw::INCOMPATIBLE_FILE_STRUCTURE,
        Sw::SECURITY_STATUS_NOT_SATISFIED,
        Sw::AUTH_METHOD_BLOCKED,
        Sw::REFERENCE_DATA_INVALID,
        Sw::CONDITIONS_NOT_SATISFIED,
        Sw::NO_CURRENT_EF,
        Sw::SM_MAC_MISSING,
        Sw::SM_DATA_INCORRECT,
        Sw::WRONG_DATA,
        Sw::FUNCTION_NOT_SUPPORTED,
        Sw::FILE_NOT_FOUND,
        Sw::RECORD_NOT_FOUND,
        Sw::NOT_ENOUGH_SPACE,
        Sw::LC_INCONSISTENT_WITH_TLV,
        Sw::WRONG_P1_P2,
        Sw::REFERENCED_DATA_NOT_FOUND,
        Sw::WRONG_OFFSET,
        Sw::WRONG_LE,
        Sw::INS_NOT_SUPPORTED,
        Sw::CLA_NOT_SUPPORTED,
        Sw::NO_PRECISE_DIAGNOSIS,
        Sw::MAC_INVALID,
        Sw::APP_PERMANENTLY_LOCKED,
        Sw::INSUFFICIENT_FUNDS,
        Sw::COUNTER_AT_MAX,
        Sw::KEY_INDEX_NOT_SUPPORTED,
        Sw::MAC_NOT_AVAILABLE,
    ];

    /// Builds a status word from its two bytes.
    pub const fn from_bytes(sw1: u8, sw2: u8) -> Sw {
        Sw(((sw1 as u16) << 8) | sw2 as u16)
    }

    /// The two bytes `[SW1, SW2]`.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// `61xx`: `available` more bytes wait for GET RESPONSE; 256 or more is sent as `6100`.
    pub const fn more_data(available: usize) -> Sw {
        Sw::from_bytes(0x61, if available >= 256 { 0 } else { available as u8 })
    }

    /// `6Cxx`: the command must be re-sent with Le = `exact` (256 is sent as `6C00`).
    pub const fn wrong_le(exact: usize) -> Sw {
        Sw::from_bytes(0x6C, if exact >= 256 { 0 } else { exact as u8 })
    }

    /// `63Cx`: verification failed, `tries_left` tries remain (at most 15).
    pub const fn tries_left(tries_left: u8) -> Sw {
        Sw::from_bytes(0x63, 0xC0 | (tries_left & 0x0F))
    }

    /// True for `9000` (and `61xx`, which means success with more data waiting).
    pub const fn is_success(self) -> bool {
        self.0 == 0x9000 || self.sw1() == 0x61
    }

    /// For `61xx`: the number of bytes waiting (`6100` means 256).
    pub const fn bytes_available(self) -> Option<usize> {
        if self.sw1() == 0x61 {
            Some(if self.sw2() == 0 {
                256
            } else {
                self.sw2() as usize
            })
        } else {
            None
        }
    }

    /// For `6Cxx`: the exact Le to re-send with (`6C00` means 256).
    pub const fn exact_le(self) -> Option<usize> {
        if self.sw1() == 0x6C {
            Some(if self.sw2() == 0 {
                256
            } else {
                self.sw2() as usize
            })
        } else {
            None
        }
    }

    /// For `63Cx`: the number of tries left.
    pub const fn tries_remaining(self) -> Option<u8> {
        if self.sw1() == 0x63 && self.sw2() & 0xF0 == 0xC0 {
            Some(self.sw2() & 0x0F)
        } else {
            None
        }
    }

    /// What the status word means, in words (ISO 7816-4, FMCOS 2.0 §6.2, PBOC, LD/T 32).
    pub const fn meaning(self) -> &'static str {
        match self.sw1() {
            0x61 => return "more data available (GET RESPONSE)",
            0x6C => return "wrong Le; re-send with the exact length",
            0x63 if self.sw2() & 0xF0 == 0xC0 => return "verification failed; tries left in SW2",
            _ => {}
        }
        match self.0 {
            0x9000 => "success",
            0x6281 => "part of returned data may be corrupted",
            0x6282 => "end of file or record reached before Le bytes",
            0x6283 => "selected file invalidated",
            0x6400 => "execution error, memory unchanged",
            0x6581 => "memory failure",
            0x6700 => "wrong length",
            0x6901 => "invalid state for this command",
            0x6981 => "command incompatible with file structure",
            0x6982 => "security status not satisfied",
            0x6983 => "authentication method blocked",
            0x6984 => "referenced data invalid",
            0x6985 => "conditions of use not satisfied",
            0x6986 => "command not allowed (no current EF)",
            0x6987 => "secure messaging: MAC missing",
            0x6988 => "secure messaging: MAC or cryptogram incorrect",
            0x6A80 => "incorrect data field",
            0x6A81 => "function not supported / card or application blocked",
            0x6A82 => "file not found",
            0x6A83 => "record not found",
            0x6A84 => "not enough memory space",
            0x6A85 => "Lc inconsistent with TLV structure",
            0x6A86 => "incorrect P1-P2",
            0x6A88 => "referenced data (key or PIN) not found",
            0x6A89 => "file already exists",
            0x6B00 => "wrong parameters (offset outside the EF)",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6F00 => "no precise diagnosis",
            0x9302 => "MAC invalid",
            0x9303 => "application permanently locked",
            0x9401 => "insufficient funds (or maximum balance exceeded)",
            0x9402 => "transaction counter at maximum",
            0x9403 => "key index not supported",
            0x9406 => "required MAC not available",
            _ => "unknown status word",
        }
    }
}

impl From<u16> for Sw {
    fn from(value: u16) -> Self {
        Sw(value)
    }
}

impl From<Sw> for u16 {
    fn from(sw: Sw) -> Self {
        sw.0
    }
}

impl From<[u8; 2]> for Sw {
    fn from(b: [u8; 2]) -> Self {
        Sw::from_bytes(b[0], b[1])
    }
}

impl From<Sw> for [u8; 2] {
    fn from(sw: Sw) -> Self {
        sw.to_bytes()
    }
}

impl fmt::Debug for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sw({:04X})", self.0)
    }
}

/// `9000`, `6A82 (file not found)` style: the hex value, then its meaning.
impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for v in 0..=u16::MAX {
            let sw = Sw::from(v);
            assert_eq!(u16::from(sw), v);
            assert_eq!(Sw::from(sw.to_bytes()), sw);
            assert_eq!(Sw::from_bytes(sw.sw1(), sw.sw2()), sw);
        }
    }

    #[test]
    fn documented_words_have_meanings() {
        for sw in Sw::DOCUMENTED {
            assert_ne!(sw.meaning(), "unknown status word", "{sw:?}");
        }
    }

    #[test]
    fn parameterised_words() {
        assert_eq!(Sw::more_data(0x17), Sw(0x6117));
        assert_eq!(Sw::more_data(256), Sw(0x6100));
        assert_eq!(Sw(0x6100).bytes_available(), Some(256));
        assert_eq!(Sw(0x6117).bytes_available(), Some(0x17));
        assert_eq!(Sw::wrong_le(0x12), Sw(0x6C12));
        assert_eq!(Sw(0x6C00).exact_le(), Some(256));
        assert_eq!(Sw::tries_left(2), Sw(0x63C2));
        assert_eq!(Sw(0x63C2).tries_remaining(), Some(2));
        assert_eq!(Sw(0x6300).tries_remaining(), None);
        assert!(Sw(0x6105).is_success());
        assert!(!Sw(0x6A82).is_success());
    }
}
