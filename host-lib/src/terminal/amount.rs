//! Amounts of money as people write them (yuan with up to two decimals) and as the card keeps
//! them (integer cents, 4 bytes big-endian). No floating point anywhere.

use std::fmt;

/// The largest amount a purse field holds: `FFFFFFFF` cents.
pub const MAX_CENTS: u32 = u32::MAX;

/// Why a text is not an amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing was given.
    #[error("no amount given: write it in yuan, like 12.34, 12.3 or 12")]
    Empty,
    /// A minus sign (or a plus sign).
    #[error("{0:?}: an amount has no sign; write it in yuan, like 12.34")]
    Signed(String),
    /// More than two decimals.
    #[error("{0:?}: at most two decimals (the card counts whole cents, 分)")]
    TooPrecise(String),
    /// Not digits with an optional decimal point.
    #[error("{0:?}: not an amount in yuan; write it like 12.34, 12.3 or 12")]
    Malformed(String),
    /// More than a purse can hold.
    #[error("{0:?}: larger than the largest amount a purse holds, {max} yuan", max = format_yuan(MAX_CENTS))]
    TooLarge(String),
}

/// Reads an amount in yuan: digits, optionally a point and one or two more digits (`12`, `12.3`,
/// `12.34`, `0.05`). Returns cents. Signs, a third decimal, a point without digits around it,
/// spaces inside, thousands separators and anything above [`MAX_CENTS`] are errors that say what
/// to write instead.
pub fn parse_yuan(text: &str) -> Result<u32, AmountError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(AmountError::Empty);
    }
    if t.starts_with(['-', '+']) {
        return Err(AmountError::Signed(text.to_owned()));
    }
    let (whole, fraction) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) {
        return Err(AmountError::Malformed(text.to_owned()));
    }
    let cents_part = match fraction {
        None => 0,
        Some(f) if !digits(f) => return Err(AmountError::Malformed(text.to_owned())),
        Some(f) if f.len() > 2 => return Err(AmountError::TooPrecise(text.to_owned())),
        Some(f) => {
            let v: u64 = f
                .parse()
                .map_err(|_| AmountError::Malformed(text.to_owned()))?;
            if f.len() == 1 {
                v * 10
            } else {
                v
            }
        }
    };
    // Leading zeros are fine ("007.50"); the value decides whether it fits.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 10 {
        return Err(AmountError::TooLarge(text.to_owned()));
    }
    let yuan: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| AmountError::Malformed(text.to_owned()))?
    };
    let cents = yuan
        .checked_mul(100)
        .and_then(|c| c.checked_add(cents_part))
        .filter(|&c| c <= u64::from(MAX_CENTS))
        .ok_or_else(|| AmountError::TooLarge(text.to_owned()))?;
    u32::try_from(cents).map_err(|_| AmountError::TooLarge(text.to_owned()))
}

/// Cents as yuan with two decimals: `1234` → `12.34`, `5` → `0.05`.
pub fn format_yuan(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An amount in cents that displays as yuan (`12.34`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Yuan(pub u32);

impl fmt::Display for Yuan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_yuan(self.0))
    }
}

impl std::str::FromStr for Yuan {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_yuan(s).map(Yuan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_forms() {
        for (text, cents) in [
            ("12.34", 1234),
            ("12", 1200),
            ("12.3", 1230),
            ("0.05", 5),
            ("0", 0),
            ("0.00", 0),
            ("007.50", 750),
            (" 1.5 ", 150),
            ("42949672.95", u32::MAX),
        ] {
            assert_eq!(parse_yuan(text), Ok(cents), "{text}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        assert_eq!(parse_yuan(""), Err(AmountError::Empty));
        assert_eq!(parse_yuan("-1"), Err(AmountError::Signed("-1".into())));
        assert_eq!(parse_yuan("+1"), Err(AmountError::Signed("+1".into())));
        assert_eq!(
            parse_yuan("1.234"),
            Err(AmountError::TooPrecise("1.234".into()))
        );
        for bad in [
            "abc", "1,000", "1 000", ".5", "5.", "1.2.3", "1e3", "１２", "0x10", "12.-3",
        ] {
            assert_eq!(
                parse_yuan(bad),
                Err(AmountError::Malformed(bad.into())),
                "{bad}"
            );
        }
        for big in ["42949672.96", "100000000", "99999999999999999999999"] {
            assert_eq!(parse_yuan(big), Err(AmountError::TooLarge(big.into())));
        }
        let msg = parse_yuan("-1").unwrap_err().to_string();
        assert!(msg.contains("no sign"), "{msg}");
        let msg = parse_yuan("1.234").unwrap_err().to_string();
        assert!(msg.contains("two decimals"), "{msg}");
        let msg = parse_yuan("abc").unwrap_err().to_string();
        assert!(msg.contains("12.34"), "{msg}");
        let msg = parse_yuan("1e12").unwrap_err().to_string();
        assert!(msg.contains("not an amount"), "{msg}");
        let msg = parse_yuan("50000000").unwrap_err().to_string();
        assert!(msg.contains("42949672.95"), "{msg}");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_yuan(0), "0.00");
        assert_eq!(format_yuan(5), "0.05");
        assert_eq!(format_yuan(1230), "12.30");
        assert_eq!(format_yuan(u32::MAX), "42949672.95");
        assert_eq!(format!("{:>8}", Yuan(1234)), "   12.34");
        assert_eq!("3.5".parse::<Yuan>(), Ok(Yuan(350)));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(cents in any::<u32>()) {
            prop_assert_eq!(parse_yuan(&format_yuan(cents)), Ok(cents));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,16}") {
            let _ = parse_yuan(&s);
        }
    }
}
