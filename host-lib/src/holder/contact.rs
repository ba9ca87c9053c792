//! Optional contact data kept by the registry (never written to the card), so that a service point
//! can tell an applicant that a card is ready or that a lost card turned up.

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a phone number: use 6-20 digits, optionally with a leading + and - between groups (e.g. 13800000000 or 0577-88880000)")]
pub struct PhoneError(pub String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Longer than [`MAX_ADDRESS_CHARS`].
    #[error("the address has {0} characters; at most {MAX_ADDRESS_CHARS} are kept")]
    TooLong(usize),
    /// Contains a control character (e.g. a line break).
    #[error("the address contains the control character U+{0:04X}")]
    Control(u32),
}

/// The longest address accepted, in characters.
pub const MAX_ADDRESS_CHARS: usize = 200;

/// Checks a phone number: an optional leading `+`, then digits with single `-` between groups;
/// 6 to 20 digits in all. Returns it trimmed.
pub fn check_phone(s: &str) -> Result<String, PhoneError> {
    let t = s.trim();
    let err = || PhoneError(t.to_owned());
    let body = t.strip_prefix('+').unwrap_or(t);
    if body.is_empty() || body.starts_with('-') || body.ends_with('-') || body.contains("--") {
        return Err(err());
    }
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(err());
    }
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    if !(6..=20).contains(&digits) {
        return Err(err());
    }
    Ok(t.to_owned())
}

/// Checks an address: one line, at most [`MAX_ADDRESS_CHARS`]. Returns it trimmed.
pub fn check_address(s: &str) -> Result<String, AddressError> {
    let t = s.trim();
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(AddressError::Control(c as u32));
    }
    let n = t.chars().count();
    if n > MAX_ADDRESS_CHARS {
        return Err(AddressError::TooLong(n));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in [
            "13800000000",
            "0577-88880000",
            "+86-13800000000",
            " 88880000 ",
        ] {
            assert!(check_phone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+",
            "12345",
            "0577--8888000",
            "-0577888800",
            "138 0000 0000",
            "电话",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            check_address(" 温州市鹿城区测试路1号 ").unwrap(),
            "温州市鹿城区测试路1号"
        );
        assert!(matches!(
            check_address("a\nb"),
            Err(AddressError::Control(10))
        ));
        assert!(matches!(
            check_address(&"路".repeat(201)),
            Err(AddressError::TooLong(201))
        ));
    }
}
