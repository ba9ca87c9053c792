//! Hex as people type and read it: `00A40400`, `00 A4 04 00`, `00:A4:04:00`.

use std::fmt;

/// Bytes as upper-case hex pairs separated by spaces (`00 A4 04 00`).
pub fn spaced(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Bytes as compact upper-case hex (`00A40400`).
pub fn compact(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Serde helper: a byte vector as compact upper-case hex.
pub fn serialize_upper<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&compact(bytes))
}

/// Where hex text is wrong: a 1-based column (in characters) and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexError {
    /// 1-based column of the offending character, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for HexError {}

/// Ends a group of nibbles: one digit is one byte, an even count is pairs, an odd count is wrong.
fn finish_group(group: &mut Vec<u8>, start: usize, out: &mut Vec<u8>) -> Result<(), HexError> {
    match group.as_slice() {
        [] => {}
        [one] => out.push(*one),
        g if g.len().is_multiple_of(2) => {
            out.extend(g.chunks(2).map(|p| p.iter().fold(0, |a, n| (a << 4) | n)))
        }
        g => {
            return Err(HexError {
                column: start,
                message: format!("odd number of hex digits ({}) in a group", g.len()),
            })
        }
    }
    group.clear();
    Ok(())
}

/// Parses hex bytes. Spaces, tabs and colons separate groups; each group holds an even number of
/// digits (`00A4`), or a single digit that stands for one byte (`0 A4` is `00 A4`, as scriptor reads
/// it). `first_column` is the column of `text`'s first character in its line, for error messages.
pub fn parse(text: &str, first_column: usize) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::new();
    let mut group: Vec<u8> = Vec::new(); // nibbles of the current group
    let mut group_start = first_column;
    for (i, c) in text.chars().enumerate() {
        let column = first_column + i;
        if c.is_whitespace() || c == ':' {
            finish_group(&mut group, group_start, &mut out)?;
        } else if let Some(d) = c.to_digit(16) {
            if group.is_empty() {
                group_start = column;
            }
            group.push(d as u8);
        } else {
            return Err(HexError {
                column,
                message: format!("`{c}` is not a hex digit"),
            });
        }
    }
    finish_group(&mut group, group_start, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(spaced(&[0x00, 0xA4, 0x0F]), "00 A4 0F");
        assert_eq!(spaced(&[]), "");
        assert_eq!(compact(&[0xAB, 0x01]), "AB01");
    }

    #[test]
    fn accepted_spellings() {
        let want = vec![0x00, 0xA4, 0x04, 0x00];
        for s in [
            "00A40400",
            "00 A4 04 00",
            "00:A4:04:00",
            "00a4 0400",
            "  00 a4\t04 00  ",
            "0 A4 4 0",
            "00A4:0400",
        ] {
            assert_eq!(parse(s, 1).unwrap(), want, "{s:?}");
        }
        assert_eq!(parse("", 1).unwrap(), Vec::<u8>::new());
        assert_eq!(parse(" : ", 1).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(
            parse("00 A4 0G 00", 1).unwrap_err(),
            HexError {
                column: 8,
                message: "`G` is not a hex digit".into()
            }
        );
        // The column counts from where the text starts in its line.
        assert_eq!(parse("00 A4 0G", 11).unwrap_err().column, 18);
        let e = parse("00 A4 040 00", 1).unwrap_err();
        assert_eq!(e.column, 7);
        assert!(e.message.contains("odd"), "{e}");
        assert_eq!(parse("00A40", 1).unwrap_err().column, 1);
        // Columns count characters, not bytes.
        assert_eq!(parse("é0", 1).unwrap_err().column, 1);
        assert_eq!(parse("00 é", 1).unwrap_err().column, 4);
    }
}
