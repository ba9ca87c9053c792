//! Data templates of a profile: what a binary EF or a record holds, written as hex bytes with
//! named fields that personalization fills in for each card.
//!
//! A template is hex digits (spaces allowed between bytes) and fields in braces:
//!
//! | field | bytes | value |
//! |---|---|---|
//! | `{app_serial}` | 10 | the purse application serial number: BCD `0000` ‖ the first 4 digits of the city code ‖ `00` ‖ the card serial in 10 digits (its rightmost 8 bytes diversify the purse keys) |
//! | `{issue_date}` | 4 | issue date, BCD `YYYYMMDD` |
//! | `{expiry_date}` | 4 | expiry date, BCD `YYYYMMDD` |
//! | `{card_number}` | 9 | the card number, ASCII |
//! | `{city}` | 3 | the issuing city code, BCD |
//! | `{alg:KEY}` | 1 | the algorithm id of key `KEY` of the key set (`01` DES family, `03` SM4, `04` AES) |
//! | `{version:KEY}` | 1 | the version of key `KEY` of the key set |
//!
//! Example (the social-security DDF's FCI data): `88 01 1E 9F0C 03 86 01 {alg:RKSSSE}`.

use std::fmt;

/// A field of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// `{app_serial}`.
    AppSerial,
    /// `{issue_date}`.
    IssueDate,
    /// `{expiry_date}`.
    ExpiryDate,
    /// `{card_number}`.
    CardNumber,
    /// `{city}`.
    City,
    /// `{alg:KEY}`.
    Algorithm(String),
    /// `{version:KEY}`.
    Version(String),
}

impl Field {
    /// How many bytes the field fills.
    pub fn len(&self) -> usize {
        match self {
            Field::AppSerial => 10,
            Field::IssueDate | Field::ExpiryDate => 4,
            Field::CardNumber => 9,
            Field::City => 3,
            Field::Algorithm(_) | Field::Version(_) => 1,
        }
    }

    /// Always false: every field fills at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The key of the key set the field names, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Field::Algorithm(k) | Field::Version(k) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::AppSerial => f.write_str("{app_serial}"),
            Field::IssueDate => f.write_str("{issue_date}"),
            Field::ExpiryDate => f.write_str("{expiry_date}"),
            Field::CardNumber => f.write_str("{card_number}"),
            Field::City => f.write_str("{city}"),
            Field::Algorithm(k) => write!(f, "{{alg:{k}}}"),
            Field::Version(k) => write!(f, "{{version:{k}}}"),
        }
    }
}

/// One part of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// A field filled per card.
    Field(Field),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template (see the module docs).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts: Vec<Part> = Vec::new();
        let mut digits = String::new();
        let flush = |digits: &mut String, parts: &mut Vec<Part>| -> Result<(), String> {
            if digits.is_empty() {
                return Ok(());
            }
            if !digits.len().is_multiple_of(2) {
                return Err(format!("odd number of hex digits in {digits:?}"));
            }
            let bytes = hex::decode(&*digits).map_err(|_| format!("{digits:?} is not hex"))?;
            digits.clear();
            match parts.last_mut() {
                Some(Part::Bytes(b)) => b.extend(bytes),
                _ => parts.push(Part::Bytes(bytes)),
            }
            Ok(())
        };
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '{' {
                flush(&mut digits, &mut parts)?;
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("{rest:?}: a `{{` without its `}}`"))?;
                parts.push(Part::Field(parse_field(&rest[1..end])?));
                rest = &rest[end + 1..];
                continue;
            }
            if c.is_ascii_hexdigit() {
                digits.push(c);
            } else if c.is_whitespace() {
                // Spaces separate bytes only: an odd group is an error.
                if !digits.len().is_multiple_of(2) {
                    return Err(format!("odd number of hex digits in {digits:?}"));
                }
            } else {
                return Err(format!(
                    "{c:?} is neither a hex digit nor the start of a field {{…}}"
                ));
            }
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut digits, &mut parts)?;
        Ok(Template { parts })
    }

    /// A template of fixed bytes.
    pub fn bytes(bytes: &[u8]) -> Template {
        Template {
            parts: vec![Part::Bytes(bytes.to_vec())],
        }
    }

    /// The parts.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The number of bytes the template fills.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                Part::Field(f) => f.len(),
            })
            .sum()
    }

    /// Whether the template fills no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fields it names.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f),
            Part::Bytes(_) => None,
        })
    }

    /// Fills the template: `value` gives each field's bytes (exactly [`Field::len`] of them).
    pub fn fill<E>(
        &self,
        mut value: impl FnMut(&Field) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let mut out = Vec::with_capacity(self.len());
        for part in &self.parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Field(f) => out.extend(value(f)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match part {
                Part::Bytes(b) => f.write_str(&hex::encode_upper(b))?,
                Part::Field(field) => write!(f, "{field}")?,
            }
        }
        Ok(())
    }
}

fn parse_field(inner: &str) -> Result<Field, String> {
    let inner = inner.trim();
    let (name, key) = match inner.split_once(':') {
        Some((n, k)) => (n.trim(), Some(k.trim())),
        None => (inner, None),
    };
    let need_key = |k: Option<&str>| -> Result<String, String> {
        match k {
            Some(k) if !k.is_empty() => Ok(k.to_owned()),
            _ => Err(format!(
                "{{{name}:KEY}} needs the name of a key of the key set"
            )),
        }
    };
    let no_key = |f: Field| -> Result<Field, String> {
        match key {
            None => Ok(f),
            Some(_) => Err(format!("{{{name}}} takes no key name")),
        }
    };
    match name {
        "app_serial" => no_key(Field::AppSerial),
        "issue_date" => no_key(Field::IssueDate),
        "expiry_date" => no_key(Field::ExpiryDate),
        "card_number" => no_key(Field::CardNumber),
        "city" => no_key(Field::City),
        "alg" => Ok(Field::Algorithm(need_key(key)?)),
        "version" => Ok(Field::Version(need_key(key)?)),
        _ => Err(format!(
            "unknown field {{{inner}}}; the fields are {{app_serial}}, {{issue_date}}, \
             {{expiry_date}}, {{card_number}}, {{city}}, {{alg:KEY}}, {{version:KEY}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_and_fields() {
        let t = Template::parse("88 01 1E 9F0C 03 86 01 {alg:RKSSSE}").unwrap();
        assert_eq!(t.len(), 9);
        assert_eq!(
            t.parts(),
            &[
                Part::Bytes(vec![0x88, 0x01, 0x1E, 0x9F, 0x0C, 0x03, 0x86, 0x01]),
                Part::Field(Field::Algorithm("RKSSSE".into()))
            ]
        );
        let filled = t
            .fill(|f| {
                assert_eq!(f.key(), Some("RKSSSE"));
                Ok::<_, ()>(vec![0x03])
            })
            .unwrap();
        assert_eq!(hex::encode_upper(filled), "88011E9F0C03860103");
        assert_eq!(t.to_string(), "88011E9F0C038601 {alg:RKSSSE}");
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn field_lengths() {
        let t = Template::parse(
            "{app_serial}{issue_date} {expiry_date} {card_number} {city} {version:DLK}",
        )
        .unwrap();
        assert_eq!(t.len(), 10 + 4 + 4 + 9 + 3 + 1);
        assert_eq!(t.fields().count(), 6);
        assert!(Template::parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_say_what() {
        let e = Template::parse("123").unwrap_err();
        assert!(e.contains("odd number"), "{e}");
        let e = Template::parse("1 23").unwrap_err();
        assert!(e.contains("odd number"), "{e}");
        let e = Template::parse("12 zz").unwrap_err();
        assert!(e.contains("'z'"), "{e}");
        let e = Template::parse("{serial}").unwrap_err();
        assert!(e.contains("unknown field {serial}"), "{e}");
        let e = Template::parse("{alg}").unwrap_err();
        assert!(e.contains("needs the name of a key"), "{e}");
        let e = Template::parse("{city:X}").unwrap_err();
        assert!(e.contains("takes no key"), "{e}");
        let e = Template::parse("{city").unwrap_err();
        assert!(e.contains("without its"), "{e}");
    }
}
