//! Application definitions: what an application added on demand puts on a card (TOML).
//!
//! ```toml
//! format = 1
//! [application]
//! name = "public"              # what `citizencard app enable NAME` calls it
//! label = "…"
//! parent = "3F00"              # the DF it is created in (a path of FIDs from the MF)
//! fid = "1002"                 # its FID
//! df_name = "WZ.PUBLIC.SVC"    # its DF name: ASCII, or "hex:…"; 5..16 bytes
//! master = "PUBSVC_MK"         # key-set key: its master (external authentication 00)
//! line_protection = "STKPUBSVC"  # key-set key: its line-protection key 36 00
//! [records]
//! fid = "0001"                 # a variable-record EF, SFI = the FID's low 5 bits
//! [[field]]                    # one record per field, in order
//! name = "library"
//! tag = "01"
//! label = "library card number"
//! len = 20                     # value bytes: ASCII letters, digits and - . /, padded with 00
//! ```
//!
//! The card side, fixed for every definition (host-lib/docs/applications.md): the DF's create
//! and erase rights are the MF authority (`0A`), like every DF of the default profile; its key
//! file holds the master and the line-protection key; the record EF is read by anyone (`F0`) and
//! written only with a line-protection MAC (type `AC`, key byte `FF`: key `36 00`).

use serde::Deserialize;

/// The public-services application's definition, shipped with the library.
pub const PUBLIC_TOML: &str = include_str!("public.toml");

/// One field: one TLV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name on the command line (`--set NAME=VALUE`).
    pub name: String,
    /// The record's tag.
    pub tag: u8,
    /// For people.
    pub label: String,
    /// Value bytes (the value is padded with `00` to this length).
    pub len: u8,
}

/// A checked application definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDefinition {
    /// Its name.
    pub name: String,
    /// For people.
    pub label: String,
    /// Path of the parent DF, from the MF.
    pub parent: Vec<u16>,
    /// Its FID.
    pub fid: u16,
    /// Its DF name.
    pub df_name: Vec<u8>,
    /// The DF name as written.
    pub df_name_text: String,
    /// Key-set name of its master.
    pub master: String,
    /// Key-set name of its line-protection key.
    pub line_protection: String,
    /// FID of the record EF.
    pub records_fid: u16,
    /// The fields.
    pub fields: Vec<Field>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    format: u32,
    application: RawApp,
    records: RawRecords,
    #[serde(rename = "field")]
    fields: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    label: String,
    parent: String,
    fid: String,
    df_name: String,
    master: String,
    line_protection: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecords {
    fid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    tag: String,
    label: String,
    len: u8,
}

/// Why a definition cannot be used: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: the application definition cannot be used:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct DefinitionError {
    /// Where it came from.
    pub origin: String,
    /// What is wrong.
    pub problems: Vec<String>,
}

fn fid(text: &str, what: &str, problems: &mut Vec<String>) -> u16 {
    match u16::from_str_radix(text.trim(), 16) {
        Ok(f) if text.trim().len() == 4 => f,
        _ => {
            problems.push(format!("{what}: {text:?} is not a FID (4 hex digits)"));
            0
        }
    }
}

/// The largest value length: a record is `tag len value` and the card's records are at most
/// 248 bytes (apdu-specs/personalization.md).
pub const MAX_FIELD_LEN: u8 = 246;

impl AppDefinition {
    /// The shipped public-services application.
    pub fn public() -> AppDefinition {
        AppDefinition::parse(PUBLIC_TOML, "public.toml")
            .unwrap_or_else(|e| panic!("the shipped application definition is invalid: {e}"))
    }

    /// Parses and checks a definition.
    pub fn parse(text: &str, origin: &str) -> Result<AppDefinition, DefinitionError> {
        let err = |problems| DefinitionError {
            origin: origin.to_owned(),
            problems,
        };
        let raw: Raw =
            toml::from_str(text).map_err(|e| err(vec![e.to_string().trim_end().to_owned()]))?;
        let mut p = Vec::new();
        if raw.format != 1 {
            p.push(format!("format {}: only format 1 is known", raw.format));
        }
        let a = raw.application;
        let name = a.name.trim().to_owned();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            p.push(format!(
                "application name {name:?}: lower-case letters, digits and -"
            ));
        }
        let parent: Vec<u16> = a
            .parent
            .split('/')
            .map(|part| fid(part, "parent", &mut p))
            .collect();
        if parent.first() != Some(&0x3F00) {
            p.push(format!("parent {:?}: a path from the MF, 3F00", a.parent));
        }
        if parent.len() > 2 {
            p.push(format!(
                "parent {:?}: the card has at most three levels of DFs",
                a.parent
            ));
        }
        let own = fid(&a.fid, "fid", &mut p);
        if matches!(own, 0x0000 | 0x3F00 | 0xFFFF) {
            p.push(format!("fid {:04X}: reserved", own));
        }
        let df_name = match a.df_name.strip_prefix("hex:") {
            Some(h) => hex::decode(h.trim()).unwrap_or_else(|_| {
                p.push(format!("df_name {:?}: not hex", a.df_name));
                Vec::new()
            }),
            None => a.df_name.as_bytes().to_vec(),
        };
        if !(5..=16).contains(&df_name.len()) {
            p.push(format!(
                "df_name {:?}: {} bytes; a DF name has 5 to 16",
                a.df_name,
                df_name.len()
            ));
        }
        for (what, key) in [
            ("master", &a.master),
            ("line_protection", &a.line_protection),
        ] {
            if key.trim().is_empty() {
                p.push(format!("{what}: name a key of the key set"));
            }
        }
        let records_fid = fid(&raw.records.fid, "records.fid", &mut p);
        if records_fid & 0xFFE0 != 0 || records_fid == 0 {
            p.push(format!(
                "records.fid {records_fid:04X}: the record EF is read by SFI, so its FID is 0001..001F"
            ));
        }
        let mut fields = Vec::new();
        for (i, f) in raw.fields.iter().enumerate() {
            let at = format!("field {} ({:?})", i + 1, f.name);
            let tag = match u8::from_str_radix(f.tag.trim(), 16) {
                Ok(t) if f.tag.trim().len() == 2 && t != 0x00 && t != 0xFF => t,
                _ => {
                    p.push(format!(
                        "{at}: tag {:?} is not one byte of hex (not 00, FF)",
                        f.tag
                    ));
                    0
                }
            };
            if f.len == 0 || f.len > MAX_FIELD_LEN {
                p.push(format!("{at}: len {} is not 1..{MAX_FIELD_LEN}", f.len));
            }
            if f.name.is_empty() || f.name.contains(['=', ' ']) {
                p.push(format!("{at}: a name without spaces or ="));
            }
            if fields.iter().any(|g: &Field| g.tag == tag) {
                p.push(format!("{at}: tag {tag:02X} is used twice"));
            }
            if fields.iter().any(|g: &Field| g.name == f.name) {
                p.push(format!("{at}: the name is used twice"));
            }
            fields.push(Field {
                name: f.name.clone(),
                tag,
                label: f.label.clone(),
                len: f.len,
            });
        }
        if fields.is_empty() || fields.len() > 254 {
            p.push("give 1 to 254 fields".into());
        }
        if !p.is_empty() {
            return Err(err(p));
        }
        Ok(AppDefinition {
            name,
            label: a.label,
            parent,
            fid: own,
            df_name_text: a.df_name,
            df_name,
            master: a.master.trim().to_owned(),
            line_protection: a.line_protection.trim().to_owned(),
            records_fid,
            fields,
        })
    }

    /// The record EF's SFI.
    pub fn records_sfi(&self) -> u8 {
        (self.records_fid & 0x1F) as u8
    }

    /// The longest record (`tag len value`).
    pub fn record_len(&self) -> u8 {
        self.fields.iter().map(|f| f.len + 2).max().unwrap_or(2)
    }

    /// Bytes of the key file: the master and the line-protection key, 16-byte keys (+ 8 each),
    /// with one spare byte each for an algorithm id.
    pub fn key_file_space(&self) -> u16 {
        2 * (16 + 1 + 8)
    }

    /// The DF's declared space: its header and name, the key file and the record EF (each file
    /// an 11-byte header and its body; apdu-specs/personalization.md), and 32 spare bytes.
    pub fn df_space(&self) -> u16 {
        let records = self.fields.len() as u16 * (u16::from(self.record_len()) + 1);
        11 + self.df_name.len() as u16 + 11 + self.key_file_space() + 11 + records + 32
    }

    /// CREATE FILE data of the DF: `38 space create erase fci FF FF name`.
    pub fn df_create_data(&self) -> Vec<u8> {
        let [s0, s1] = self.df_space().to_be_bytes();
        let mut d = vec![0x38, s0, s1, 0x0A, 0x0A, 0xFF, 0xFF, 0xFF];
        d.extend_from_slice(&self.df_name);
        d
    }

    /// CREATE FILE data of the key file: `3F space dfSfi add FF FF` (adds need MF authority).
    pub fn key_file_create_data(&self) -> Vec<u8> {
        let [s0, s1] = self.key_file_space().to_be_bytes();
        vec![0x3F, s0, s1, 0x95, 0x0A, 0xFF, 0xFF]
    }

    /// CREATE FILE data of the record EF: variable records with MAC'd writes (`AC`), read by
    /// anyone, written with a MAC under `36 00`.
    pub fn records_create_data(&self) -> Vec<u8> {
        vec![
            0xAC,
            self.fields.len() as u8,
            self.record_len(),
            0xF0,
            0xF0,
            0xFF,
            0xFF,
        ]
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The record of field `f` holding `value` (checked: ASCII letters, digits, `-`, `.`, `/`,
    /// at most `f.len` bytes; empty is allowed and means "not given").
    pub fn record(&self, f: &Field, value: &str) -> Result<Vec<u8>, String> {
        let v = value.trim();
        if v.len() > usize::from(f.len) {
            return Err(format!(
                "{}: {:?} has {} characters; at most {}",
                f.name,
                v,
                v.len(),
                f.len
            ));
        }
        if let Some(c) = v
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '/')))
        {
            return Err(format!(
                "{}: {c:?} is not allowed; use letters, digits, - . /",
                f.name
            ));
        }
        let mut r = vec![f.tag, f.len];
        r.extend_from_slice(v.as_bytes());
        r.resize(2 + usize::from(f.len), 0x00);
        Ok(r)
    }

    /// The value a record holds (its bytes up to the first `00`), if it is `f`'s record.
    pub fn value_of(&self, f: &Field, record: &[u8]) -> Option<String> {
        if record.first() != Some(&f.tag) || record.len() < 2 {
            return None;
        }
        let value = &record[2..];
        let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
        String::from_utf8(value[..end].to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition() {
        let d = AppDefinition::public();
        assert_eq!(d.name, "public");
        assert_eq!(d.df_name, b"WZ.PUBLIC.SVC");
        assert_eq!(d.records_sfi(), 1);
        assert_eq!(d.record_len(), 22);
        let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["library", "health-record", "provident-fund"]);
        assert_eq!(
            &d.df_create_data()[..8],
            &[0x38, 0x00, 0xC5, 0x0A, 0x0A, 0xFF, 0xFF, 0xFF]
        );
        let f = d.field("library").unwrap();
        let r = d.record(f, "WZL-0001").unwrap();
        assert_eq!(r.len(), 22);
        assert_eq!(&r[..4], &[0x01, 0x14, b'W', b'Z']);
        assert_eq!(d.value_of(f, &r).as_deref(), Some("WZL-0001"));
        assert_eq!(
            d.value_of(f, &d.record(f, "").unwrap()).as_deref(),
            Some("")
        );
        assert!(d.record(f, "a b").unwrap_err().contains("not allowed"));
        assert!(d
            .record(f, &"9".repeat(21))
            .unwrap_err()
            .contains("at most 20"));
    }

    #[test]
    fn every_problem_is_named() {
        let text = PUBLIC_TOML
            .replace("fid = \"1002\"", "fid = \"3F00\"")
            .replace("df_name = \"WZ.PUBLIC.SVC\"", "df_name = \"WZ\"")
            .replace("tag = \"02\"", "tag = \"01\"")
            .replace("fid = \"0001\"", "fid = \"0101\"");
        let e = AppDefinition::parse(&text, "x.toml").unwrap_err();
        let all = e.to_string();
        for want in [
            "fid 3F00: reserved",
            "2 bytes",
            "tag 01 is used twice",
            "0001..001F",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        let e = AppDefinition::parse("format = 1", "y.toml").unwrap_err();
        assert!(e.to_string().contains("application"), "{e}");
    }
}
