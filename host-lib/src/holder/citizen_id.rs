//! Citizen ID numbers (公民身份号码), GB 11643-1999, which are also the social security number
//! (EF06 item `08`, 18 ASCII characters).
//!
//! Layout: address code (6 digits, GB/T 2260) ‖ birth date (8 digits, YYYYMMDD) ‖ sequence code
//! (3 digits; the last one odd for men, even for women) ‖ check character (0–9 or `X`), computed
//! with ISO 7064 MOD 11-2 over the first 17 digits.

use std::fmt;

use serde::{Serialize, Serializer};
use time::Date;

use super::codes::Sex;
use super::dates::date_from_digits;
use super::region::{RegionCode, RegionError};

/// A citizen ID number whose format, check character, birth date and province prefix are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CitizenId([u8; 18]);

/// Why an ID number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    /// Not 18 characters (old 15-digit numbers are not accepted).
    #[error("{value:?} has {len} characters; a citizen ID number has 18 (15-digit numbers of the 1989 standard must be converted first)")]
    Length {
        /// The value.
        value: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character that is not allowed at its place.
    #[error("{value:?}: character {position} is {found:?}; the first 17 must be digits and the last a digit or X")]
    Character {
        /// The value.
        value: String,
        /// 1-based position.
        position: usize,
        /// The character.
        found: char,
    },
    /// The check character does not match.
    #[error("{value}: the check character is {found} but the first 17 digits give {expected} (ISO 7064 MOD 11-2)")]
    CheckDigit {
        /// The value.
        value: String,
        /// The check character computed.
        expected: char,
        /// The check character given.
        found: char,
    },
    /// Digits 7–14 are no calendar date.
    #[error("{value}: digits 7-14 ({digits}) are not a valid birth date")]
    BirthDate {
        /// The value.
        value: String,
        /// The eight digits.
        digits: String,
    },
    /// The address code's province does not exist.
    #[error("{value}: the address code is invalid: {source}")]
    Address {
        /// The value.
        value: String,
        /// What is wrong with the address code.
        source: RegionError,
    },
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// The ISO 7064 MOD 11-2 check character for 17 ASCII digits.
///
/// # Panics
/// Never for 17 ASCII digits; other bytes give a meaningless (but non-panicking) result.
pub fn check_character(first17: &[u8; 17]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

impl CitizenId {
    /// Parses and checks an ID number. A lower-case `x` is accepted and stored as `X`; surrounding
    /// whitespace is ignored.
    pub fn parse(s: &str) -> Result<CitizenId, CitizenIdError> {
        let t = s.trim();
        let chars: Vec<char> = t.chars().collect();
        if chars.len() != 18 {
            return Err(CitizenIdError::Length {
                value: t.to_owned(),
                len: chars.len(),
            });
        }
        let mut bytes = [0u8; 18];
        for (i, c) in chars.iter().enumerate() {
            let ok = c.is_ascii_digit() || (i == 17 && (*c == 'X' || *c == 'x'));
            if !ok {
                return Err(CitizenIdError::Character {
                    value: t.to_owned(),
                    position: i + 1,
                    found: *c,
                });
            }
            bytes[i] = c.to_ascii_uppercase() as u8;
        }
        CitizenId::from_ascii(bytes)
    }

    /// Checks 18 ASCII bytes (e.g. read from a card).
    pub fn from_ascii(bytes: [u8; 18]) -> Result<CitizenId, CitizenIdError> {
        let value = || String::from_utf8_lossy(&bytes).into_owned();
        for (i, b) in bytes.iter().enumerate() {
            if !(b.is_ascii_digit() || (i == 17 && *b == b'X')) {
                return Err(CitizenIdError::Character {
                    value: value(),
                    position: i + 1,
                    found: char::from(*b),
                });
            }
        }
        let mut first17 = [0u8; 17];
        first17.copy_from_slice(&bytes[..17]);
        let expected = check_character(&first17);
        let found = char::from(bytes[17]);
        if expected != found {
            return Err(CitizenIdError::CheckDigit {
                value: value(),
                expected,
                found,
            });
        }
        let id = CitizenId(bytes);
        let digits = id.as_str()[6..14].to_owned();
        if date_from_digits(&digits).is_none() {
            return Err(CitizenIdError::BirthDate {
                value: value(),
                digits,
            });
        }
        RegionCode::parse(&id.as_str()[..6]).map_err(|source| CitizenIdError::Address {
            value: value(),
            source,
        })?;
        Ok(id)
    }

    /// The 18 characters.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and 'X' are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 18 ASCII bytes, as written to the card.
    pub const fn as_bytes(&self) -> &[u8; 18] {
        &self.0
    }

    /// The birth date of digits 7–14.
    pub fn birth_date(&self) -> Date {
        // Checked when the value was built.
        date_from_digits(&self.as_str()[6..14]).unwrap_or(Date::MIN)
    }

    /// The sex of the 17th digit: odd for male, even for female.
    pub fn sex(&self) -> Sex {
        if (self.0[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The address code (first six digits): the place of household registration when the number
    /// was assigned.
    pub fn address_code(&self) -> RegionCode {
        RegionCode::parse(&self.as_str()[..6]).unwrap_or(super::region::WENZHOU)
    }
}

impl fmt::Display for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CitizenId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    /// Builds a valid number from 17 digits.
    fn with_check(first17: &str) -> String {
        let mut b = [0u8; 17];
        b.copy_from_slice(first17.as_bytes());
        format!("{first17}{}", check_character(&b))
    }

    #[test]
    fn published_example() {
        // The worked example of GB 11643-1999 (appendix): 11010519491231002X.
        let id = CitizenId::parse("11010519491231002X").unwrap();
        assert_eq!(id.birth_date(), date!(1949 - 12 - 31));
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.address_code().digits(), "110105");
        // Lower-case x is normalized.
        assert_eq!(
            CitizenId::parse("11010519491231002x").unwrap().as_str(),
            "11010519491231002X"
        );
    }

    #[test]
    fn check_digit_errors() {
        let err = CitizenId::parse("110105194912310021").unwrap_err();
        assert_eq!(
            err,
            CitizenIdError::CheckDigit {
                value: "110105194912310021".into(),
                expected: 'X',
                found: '1'
            }
        );
        assert!(err.to_string().contains("MOD 11-2"));
    }

    #[test]
    fn other_errors() {
        assert!(matches!(
            CitizenId::parse("11010549123100"),
            Err(CitizenIdError::Length { len: 14, .. })
        ));
        assert!(matches!(
            CitizenId::parse("1101051949123100X2"),
            Err(CitizenIdError::Character { position: 17, .. })
        ));
        assert!(matches!(
            CitizenId::parse("11010519491231００2X"),
            Err(CitizenIdError::Character { position: 15, .. })
        ));
        let bad_date = with_check("33030219900230123");
        assert!(matches!(
            CitizenId::parse(&bad_date),
            Err(CitizenIdError::BirthDate { .. })
        ));
        let bad_province = with_check("99030219900101123");
        assert!(matches!(
            CitizenId::parse(&bad_province),
            Err(CitizenIdError::Address { .. })
        ));
    }

    #[test]
    fn sex_from_17th_digit() {
        let m = CitizenId::parse(&with_check("33030219900101123")).unwrap();
        assert_eq!(m.sex(), Sex::Male);
        let f = CitizenId::parse(&with_check("33030219900101124")).unwrap();
        assert_eq!(f.sex(), Sex::Female);
    }

    proptest! {
        /// Every single-digit change of a valid number is caught by the check character.
        #[test]
        fn single_substitution_is_detected(seq in 0u32..1000, pos in 0usize..17, delta in 1u8..10) {
            let valid = with_check(&format!("330302199001{:02}{:03}", 1 + seq % 28, seq));
            let mut b = valid.clone().into_bytes();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(b).unwrap();
            prop_assert!(CitizenId::parse(&changed).is_err());
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn from_ascii_never_panics(bytes in proptest::array::uniform18(any::<u8>())) {
            let _ = CitizenId::from_ascii(bytes);
        }
    }
}
