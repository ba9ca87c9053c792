//! The card-number scheme (EF05 item 07, nine characters).
//!
//! A card number is a series letter, a seven-digit sequence number and a check digit:
//! `W` + `0000017` + `4` → `W00000174`. The check digit is the Luhn (ISO/IEC 7812-1) digit of the
//! seven sequence digits, so that a mistyped number on a command line is caught before it reaches
//! the registry. The series letter comes from the configuration (default `W`); a new letter starts
//! a new series of ten million cards. The sequence number doubles as the card serial inside the
//! card identification code (EF05 item 01).

use crate::holder::items::CardNumber;

/// The largest sequence number of a series.
pub const MAX_SEQUENCE: u32 = 9_999_999;

/// The Luhn check digit of a string of ASCII digits.
pub fn luhn_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0') % 10);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The card number of `sequence` in series `letter` (an ASCII upper-case letter); `None` if the
/// letter is not one or the sequence exceeds [`MAX_SEQUENCE`].
pub fn make(letter: char, sequence: u32) -> Option<CardNumber> {
    if !letter.is_ascii_uppercase() || sequence > MAX_SEQUENCE {
        return None;
    }
    let digits = format!("{sequence:07}");
    CardNumber::parse(&format!("{letter}{digits}{}", luhn_digit(&digits))).ok()
}

/// Why a card number does not follow this scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// Not a letter followed by eight digits.
    #[error("{0} is not a card number of this registry: a letter, seven digits and a check digit (e.g. W00000174)")]
    Shape(String),
    /// The check digit is wrong.
    #[error("{number}: the check digit should be {expected}; is the number mistyped?")]
    CheckDigit {
        /// The number.
        number: String,
        /// The right check digit.
        expected: u8,
    },
}

/// Checks the shape and check digit of a card number; returns its sequence number.
pub fn verify(n: &CardNumber) -> Result<u32, SchemeError> {
    let s = n.as_str();
    let shape = || SchemeError::Shape(s.to_owned());
    let (letter, rest) = s.split_at(1);
    if !letter.bytes().all(|b| b.is_ascii_uppercase()) || !rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(shape());
    }
    let (digits, check) = rest.split_at(7);
    let expected = luhn_digit(digits);
    if check.as_bytes()[0] - b'0' != expected {
        return Err(SchemeError::CheckDigit {
            number: s.to_owned(),
            expected,
        });
    }
    digits.parse().map_err(|_| shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        // The classic example: 7992739871 has check digit 3.
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(luhn_digit("0000000"), 0);
    }

    #[test]
    fn make_and_verify() {
        let n = make('W', 17).unwrap();
        assert_eq!(n.as_str().len(), 9);
        assert_eq!(n.as_str(), "W00000174", "the example of the module docs");
        assert_eq!(verify(&n), Ok(17));
        assert_eq!(make('W', MAX_SEQUENCE + 1), None);
        assert_eq!(make('w', 1), None);
        // Every single-digit change of the sequence is caught.
        for pos in 1..9 {
            let mut b = n.as_str().as_bytes().to_vec();
            b[pos] = b'0' + (b[pos] - b'0' + 1) % 10;
            let changed = CardNumber::parse(std::str::from_utf8(&b).unwrap()).unwrap();
            assert!(verify(&changed).is_err(), "{changed}");
        }
        assert!(matches!(
            verify(&CardNumber::parse("123456789").unwrap()),
            Err(SchemeError::Shape(_))
        ));
    }
}
