//! The data items of SSSE EF05 (issuer data, 发卡机构数据) and EF06 (cardholder, 持卡人基本信息):
//! encoders for personalization and decoders for reading a card.
//!
//! On the card each item is one variable-length record `tag ‖ len ‖ value`. Records are numbered
//! in the order of [`EF05_ORDER`] and [`EF06_ORDER`] (so a reader can also address them by record
//! number). Value encodings, from the card specification:
//!
//! | tag | item | bytes | encoding |
//! |---|---|---|---|
//! | 01 | card identification code | 16 | city code (BCD 3) ‖ `D1 56 00 00 05` ‖ card serial (BCD 4) ‖ card authentication code (4) |
//! | 02 | card class | 1 | ASCII digit |
//! | 03 | spec version | 4 | ASCII, e.g. `3.00` |
//! | 04 | initialising-org number | 12 | `91 56 00 00 02` ‖ issuing region (BCD 3) ‖ initialising-org region (BCD 3) ‖ sequence (BCD 1) |
//! | 05 | issue date | 4 | BCD YYYYMMDD |
//! | 06 | expiry date | 4 | BCD YYYYMMDD |
//! | 07 | card number | 9 | ASCII |
//! | 08 | social security (= citizen ID) number | 18 | ASCII |
//! | 09 | name | 30 | GBK, padded with `00` |
//! | 4E | name extension | 20 | GBK, padded with `00` |
//! | 0A | sex | 1 | ASCII digit (GB 2261.1) |
//! | 0B | ethnicity | 1 | BCD (GB 3304) |
//! | 0C | birthplace | 3 | BCD (GB/T 2260) |
//! | 0D | birth date | 4 | BCD YYYYMMDD |
//!
//! Decoders take card bytes as hostile: any byte string gives a value or an [`ItemError`], never a
//! panic. They accept a little more than the encoders write where real cards differ: names with
//! `20`/`30` padding or shorter than 30 bytes, an empty spec version (meaning 1.0x), a card
//! number item longer than 9 bytes (only the first 9 count), and ethnicity code 99.

use std::fmt;

use serde::{Serialize, Serializer};
use time::Date;

use super::dates::{date_digits, date_from_digits};
use super::name::{NameError, NAME_EXT_LEN, NAME_LEN};
use super::region::RegionError;
use super::{Applicant, CardClass, CitizenId, CitizenIdError, Ethnicity, Name, RegionCode, Sex};

/// Item tags (record identifiers).
pub mod tag {
    /// 卡的识别码.
    pub const CARD_ID: u8 = 0x01;
    /// 卡的类别.
    pub const CARD_CLASS: u8 = 0x02;
    /// 规范版本.
    pub const SPEC_VERSION: u8 = 0x03;
    /// 初始化机构编号.
    pub const INIT_ORG: u8 = 0x04;
    /// 发卡日期.
    pub const ISSUE_DATE: u8 = 0x05;
    /// 卡有效期.
    pub const EXPIRY_DATE: u8 = 0x06;
    /// 卡号.
    pub const CARD_NUMBER: u8 = 0x07;
    /// 社会保障号码.
    pub const ID_NUMBER: u8 = 0x08;
    /// 姓名.
    pub const NAME: u8 = 0x09;
    /// 姓名扩展.
    pub const NAME_EXT: u8 = 0x4E;
    /// 性别.
    pub const SEX: u8 = 0x0A;
    /// 民族.
    pub const ETHNICITY: u8 = 0x0B;
    /// 出生地.
    pub const BIRTHPLACE: u8 = 0x0C;
    /// 出生日期.
    pub const BIRTH_DATE: u8 = 0x0D;
}

/// EF05 records in record-number order (record 1 holds tag 01, …).
pub const EF05_ORDER: [u8; 7] = [
    tag::CARD_ID,
    tag::CARD_CLASS,
    tag::SPEC_VERSION,
    tag::INIT_ORG,
    tag::ISSUE_DATE,
    tag::EXPIRY_DATE,
    tag::CARD_NUMBER,
];

/// EF06 records in record-number order (2.0/3.0 layout: record 3 is the name extension).
pub const EF06_ORDER: [u8; 7] = [
    tag::ID_NUMBER,
    tag::NAME,
    tag::NAME_EXT,
    tag::SEX,
    tag::ETHNICITY,
    tag::BIRTHPLACE,
    tag::BIRTH_DATE,
];

/// The value length the spec gives an item, `None` for an unknown tag.
pub const fn item_len(t: u8) -> Option<usize> {
    Some(match t {
        tag::CARD_ID => 16,
        tag::CARD_CLASS => 1,
        tag::SPEC_VERSION => 4,
        tag::INIT_ORG => 12,
        tag::ISSUE_DATE | tag::EXPIRY_DATE => 4,
        tag::CARD_NUMBER => 9,
        tag::ID_NUMBER => 18,
        tag::NAME => NAME_LEN,
        tag::NAME_EXT => NAME_EXT_LEN,
        tag::SEX => 1,
        tag::ETHNICITY => 1,
        tag::BIRTHPLACE => 3,
        tag::BIRTH_DATE => 4,
        _ => return None,
    })
}

/// The item's Chinese name, `None` for an unknown tag.
pub const fn item_name(t: u8) -> Option<&'static str> {
    Some(match t {
        tag::CARD_ID => "卡的识别码",
        tag::CARD_CLASS => "卡的类别",
        tag::SPEC_VERSION => "规范版本",
        tag::INIT_ORG => "初始化机构编号",
        tag::ISSUE_DATE => "发卡日期",
        tag::EXPIRY_DATE => "卡有效期",
        tag::CARD_NUMBER => "卡号",
        tag::ID_NUMBER => "社会保障号码",
        tag::NAME => "姓名",
        tag::NAME_EXT => "姓名扩展",
        tag::SEX => "性别",
        tag::ETHNICITY => "民族",
        tag::BIRTHPLACE => "出生地",
        tag::BIRTH_DATE => "出生日期",
        _ => return None,
    })
}

/// What is wrong with an item value read from a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Wrong length.
    #[error("has {found} bytes, expected {expected}")]
    Length {
        /// What the item must have.
        expected: String,
        /// What it has.
        found: usize,
    },
    /// A nibble that is not a decimal digit in a BCD (cn) value.
    #[error("is not BCD: {0}")]
    NotBcd(String),
    /// Digits that are no calendar date.
    #[error("{0} is not a date")]
    NoSuchDate(String),
    /// Bytes that are not the expected ASCII characters.
    #[error("is not {what}: {hex}")]
    Ascii {
        /// What was expected.
        what: &'static str,
        /// The bytes.
        hex: String,
    },
    /// A code outside its table.
    #[error("code {0} is not known")]
    UnknownCode(String),
    /// Invalid ID number.
    #[error(transparent)]
    IdNumber(#[from] CitizenIdError),
    /// Invalid name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Invalid region code.
    #[error(transparent)]
    Region(#[from] RegionError),
}

/// Why a record or a file's records could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// Fewer than two bytes.
    #[error("a record of {0} bytes is too short for a tag and a length")]
    Truncated(usize),
    /// The length byte disagrees with the bytes present.
    #[error("record {tag:02X}: the length byte says {declared} but {present} bytes follow")]
    Length {
        /// The tag.
        tag: u8,
        /// The length byte.
        declared: usize,
        /// Bytes after tag and length.
        present: usize,
    },
    /// A tag this file does not hold.
    #[error("tag {tag:02X} is not an item of {file}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// "EF05" or "EF06".
        file: &'static str,
    },
    /// A required item is absent.
    #[error("item {tag:02X} ({}) is missing", item_name(*.tag).unwrap_or("?"))]
    Missing {
        /// The tag.
        tag: u8,
    },
    /// Two records with one tag.
    #[error("item {tag:02X} ({}) appears twice", item_name(*.tag).unwrap_or("?"))]
    Duplicate {
        /// The tag.
        tag: u8,
    },
    /// An invalid value.
    #[error("item {tag:02X} ({}) {problem}", item_name(*.tag).unwrap_or("?"))]
    Value {
        /// The tag.
        tag: u8,
        /// What is wrong.
        problem: ValueError,
    },
}

/// One record: `tag ‖ len ‖ value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The tag.
    pub tag: u8,
    /// The value.
    pub value: Vec<u8>,
}

impl Record {
    /// A record.
    pub fn new(tag: u8, value: impl Into<Vec<u8>>) -> Record {
        Record {
            tag,
            value: value.into(),
        }
    }

    /// `tag ‖ len ‖ value`, as written with UPDATE/APPEND RECORD. Values are at most 30 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.value.len() + 2);
        out.push(self.tag);
        out.push(u8::try_from(self.value.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.value);
        out
    }

    /// Parses the bytes of one record as read from the card. The length byte must match exactly.
    pub fn parse(bytes: &[u8]) -> Result<Record, ItemError> {
        let [tag, len, value @ ..] = bytes else {
            return Err(ItemError::Truncated(bytes.len()));
        };
        if usize::from(*len) != value.len() {
            return Err(ItemError::Length {
                tag: *tag,
                declared: usize::from(*len),
                present: value.len(),
            });
        }
        Ok(Record::new(*tag, value))
    }
}

// ---------------------------------------------------------------------------------------------
// Value codecs

/// Packs ASCII digits two per byte (an odd count is padded with `F`, the cn rule).
pub fn bcd_encode(digits: &str) -> Vec<u8> {
    let nibbles: Vec<u8> = digits
        .bytes()
        .map(|b| b.wrapping_sub(b'0') & 0x0F)
        .collect();
    nibbles
        .chunks(2)
        .map(|c| (c[0] << 4) | c.get(1).copied().unwrap_or(0x0F))
        .collect()
}

/// Unpacks BCD bytes to digits; every nibble must be a decimal digit.
pub fn bcd_decode(bytes: &[u8]) -> Result<String, ValueError> {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for n in [b >> 4, b & 0x0F] {
            if n > 9 {
                return Err(ValueError::NotBcd(hex::encode_upper(bytes)));
            }
            s.push(char::from(b'0' + n));
        }
    }
    Ok(s)
}

fn exact<const N: usize>(value: &[u8]) -> Result<[u8; N], ValueError> {
    value.try_into().map_err(|_| ValueError::Length {
        expected: N.to_string(),
        found: value.len(),
    })
}

/// Encodes a date as 4 BCD bytes `YYYYMMDD`.
pub fn encode_date(d: Date) -> [u8; 4] {
    let mut out = [0u8; 4];
    // BCD holds years 0000-9999 only (the `time` crate's range is ±9999): clamp negative years.
    let d = if d.year() < 0 {
        time::macros::date!(0000 - 01 - 01)
    } else {
        d
    };
    out.copy_from_slice(&bcd_encode(&date_digits(d)));
    out
}

/// Decodes 4 BCD bytes `YYYYMMDD`.
pub fn decode_date(value: &[u8]) -> Result<Date, ValueError> {
    let b: [u8; 4] = exact(value)?;
    let digits = bcd_decode(&b)?;
    date_from_digits(&digits).ok_or(ValueError::NoSuchDate(digits))
}

/// Encodes a region code as 3 BCD bytes.
pub fn encode_region(r: RegionCode) -> [u8; 3] {
    let mut out = [0u8; 3];
    out.copy_from_slice(&bcd_encode(&r.digits()));
    out
}

/// Decodes 3 BCD bytes to a region code (province checked).
pub fn decode_region(value: &[u8]) -> Result<RegionCode, ValueError> {
    let b: [u8; 3] = exact(value)?;
    Ok(RegionCode::parse(&bcd_decode(&b)?)?)
}

/// Encodes an ethnicity as 1 BCD byte.
pub fn encode_ethnicity(e: Ethnicity) -> [u8; 1] {
    [((e.code() / 10) << 4) | (e.code() % 10)]
}

/// Decodes 1 BCD byte to an ethnicity (codes 01–56, 97, 98, 99).
pub fn decode_ethnicity(value: &[u8]) -> Result<Ethnicity, ValueError> {
    let b: [u8; 1] = exact(value)?;
    let digits = bcd_decode(&b)?;
    let code: u8 = digits
        .parse()
        .map_err(|_| ValueError::NotBcd(digits.clone()))?;
    Ethnicity::from_card_code(code).ok_or(ValueError::UnknownCode(digits))
}

/// Encodes the sex as one ASCII digit.
pub fn encode_sex(s: Sex) -> [u8; 1] {
    [s.code()]
}

/// Decodes the sex (`0`, `1`, `2`, `9`).
pub fn decode_sex(value: &[u8]) -> Result<Sex, ValueError> {
    let [c] = exact::<1>(value)?;
    Sex::from_code(c).ok_or_else(|| ValueError::UnknownCode(hex::encode_upper([c])))
}

/// Encodes the card class as one ASCII digit.
pub fn encode_card_class(c: CardClass) -> [u8; 1] {
    [c.code()]
}

/// Decodes the card class (`1`–`4`).
pub fn decode_card_class(value: &[u8]) -> Result<CardClass, ValueError> {
    let [c] = exact::<1>(value)?;
    CardClass::from_code(c).ok_or_else(|| ValueError::UnknownCode(hex::encode_upper([c])))
}

/// Encodes the ID number as 18 ASCII bytes.
pub fn encode_id_number(id: &CitizenId) -> [u8; 18] {
    *id.as_bytes()
}

/// Decodes 18 ASCII bytes to a checked ID number.
pub fn decode_id_number(value: &[u8]) -> Result<CitizenId, ValueError> {
    Ok(CitizenId::from_ascii(exact::<18>(value)?)?)
}

// ---------------------------------------------------------------------------------------------
// EF05 value types

/// The RID of social security applications, inside the card identification code.
pub const SSSE_RID: [u8; 5] = [0xD1, 0x56, 0x00, 0x00, 0x05];
/// The fixed start of the initialising-org number.
pub const INIT_ORG_PREFIX: [u8; 5] = [0x91, 0x56, 0x00, 0x00, 0x02];

/// Card identification code (卡的识别码), EF05 item `01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CardIdCode {
    /// The issuing city (330300 for Wenzhou).
    pub city: RegionCode,
    /// The application identifier in the middle, normally [`SSSE_RID`].
    #[serde(serialize_with = "ser_hex")]
    pub rid: [u8; 5],
    /// Card serial, eight digits (0..=99_999_999).
    pub serial: u32,
    /// Card authentication code (4 bytes). Its derivation is the issuer's; we carry it as bytes.
    #[serde(serialize_with = "ser_hex")]
    pub auth_code: [u8; 4],
}

fn ser_hex<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(b))
}

impl CardIdCode {
    /// The largest serial (eight digits).
    pub const MAX_SERIAL: u32 = 99_999_999;

    /// A code with the social-security RID; `None` if `serial` has more than eight digits.
    pub fn new(city: RegionCode, serial: u32, auth_code: [u8; 4]) -> Option<CardIdCode> {
        (serial <= Self::MAX_SERIAL).then_some(CardIdCode {
            city,
            rid: SSSE_RID,
            serial,
            auth_code,
        })
    }

    /// The 16-byte value.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..3].copy_from_slice(&encode_region(self.city));
        out[3..8].copy_from_slice(&self.rid);
        out[8..12].copy_from_slice(&bcd_encode(&format!(
            "{:08}",
            self.serial.min(Self::MAX_SERIAL)
        )));
        out[12..].copy_from_slice(&self.auth_code);
        out
    }

    /// Decodes the 16-byte value.
    pub fn decode(value: &[u8]) -> Result<CardIdCode, ValueError> {
        let b: [u8; 16] = exact(value)?;
        let city = decode_region(&b[..3])?;
        let serial: u32 = bcd_decode(&b[8..12])?
            .parse()
            .map_err(|_| ValueError::NotBcd(hex::encode_upper(&b[8..12])))?;
        let mut rid = [0u8; 5];
        rid.copy_from_slice(&b[3..8]);
        let mut auth_code = [0u8; 4];
        auth_code.copy_from_slice(&b[12..]);
        Ok(CardIdCode {
            city,
            rid,
            serial,
            auth_code,
        })
    }
}

impl fmt::Display for CardIdCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.encode()))
    }
}

/// Spec version (规范版本), EF05 item `03`: four ASCII characters such as `3.00`; empty on 1.0x
/// cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecVersion(String);

impl SpecVersion {
    /// The version this project writes: `3.00`.
    pub fn v3() -> SpecVersion {
        SpecVersion("3.00".into())
    }

    /// The text (empty for 1.0x cards).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    /// Decodes: empty, or four printable ASCII characters.
    pub fn decode(value: &[u8]) -> Result<SpecVersion, ValueError> {
        if value.is_empty() {
            return Ok(SpecVersion(String::new()));
        }
        let b: [u8; 4] = exact(value)?;
        if !b.iter().all(|c| c.is_ascii_graphic()) {
            return Err(ValueError::Ascii {
                what: "four printable ASCII characters",
                hex: hex::encode_upper(b),
            });
        }
        Ok(SpecVersion(b.iter().map(|c| char::from(*c)).collect()))
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("1.0x (empty)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Initialising-org number (初始化机构编号), EF05 item `04`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InitOrgNumber {
    /// The first five bytes, normally [`INIT_ORG_PREFIX`] (as ten digits).
    #[serde(serialize_with = "ser_hex")]
    pub prefix: [u8; 5],
    /// The issuing region.
    pub issuing_region: RegionCode,
    /// The initialising organisation's region.
    pub init_org_region: RegionCode,
    /// A sequence number, 0–99.
    pub sequence: u8,
}

impl InitOrgNumber {
    /// A number with the standard prefix; `None` if `sequence` > 99.
    pub fn new(issuing: RegionCode, init_org: RegionCode, sequence: u8) -> Option<InitOrgNumber> {
        (sequence <= 99).then_some(InitOrgNumber {
            prefix: INIT_ORG_PREFIX,
            issuing_region: issuing,
            init_org_region: init_org,
            sequence,
        })
    }

    /// The 12-byte value.
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..5].copy_from_slice(&self.prefix);
        out[5..8].copy_from_slice(&encode_region(self.issuing_region));
        out[8..11].copy_from_slice(&encode_region(self.init_org_region));
        out[11] = bcd_encode(&format!("{:02}", self.sequence.min(99)))[0];
        out
    }

    /// Decodes the 12-byte value (every byte must be BCD).
    pub fn decode(value: &[u8]) -> Result<InitOrgNumber, ValueError> {
        let b: [u8; 12] = exact(value)?;
        let digits = bcd_decode(&b)?;
        let mut prefix = [0u8; 5];
        prefix.copy_from_slice(&b[..5]);
        Ok(InitOrgNumber {
            prefix,
            issuing_region: RegionCode::parse(&digits[10..16])?,
            init_org_region: RegionCode::parse(&digits[16..22])?,
            sequence: digits[22..]
                .parse()
                .map_err(|_| ValueError::NotBcd(digits.clone()))?,
        })
    }
}

impl fmt::Display for InitOrgNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.encode()))
    }
}

/// Card number (卡号), EF05 item `07`: nine ASCII upper-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardNumber(String);

/// Why a card number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a card number: nine upper-case letters or digits")]
pub struct CardNumberError(pub String);

impl CardNumber {
    /// Parses nine `[0-9A-Z]` characters (surrounding whitespace ignored, lower case accepted).
    pub fn parse(s: &str) -> Result<CardNumber, CardNumberError> {
        let t = s.trim().to_ascii_uppercase();
        if t.len() == 9
            && t.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            Ok(CardNumber(t))
        } else {
            Err(CardNumberError(s.trim().to_owned()))
        }
    }

    /// The nine characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 9-byte value.
    pub fn encode(&self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out.copy_from_slice(self.0.as_bytes());
        out
    }

    /// Decodes the value: at least nine bytes, of which the first nine count.
    pub fn decode(value: &[u8]) -> Result<CardNumber, ValueError> {
        let nine = value.get(..9).ok_or(ValueError::Length {
            expected: "at least 9".into(),
            found: value.len(),
        })?;
        let ascii = || ValueError::Ascii {
            what: "nine upper-case letters or digits",
            hex: hex::encode_upper(nine),
        };
        let s = std::str::from_utf8(nine).map_err(|_| ascii())?;
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(ascii());
        }
        CardNumber::parse(s).map_err(|_| ascii())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CardNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Whole files

/// The EF06 (cardholder) items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardholderItems {
    /// Item 08.
    pub id_number: CitizenId,
    /// Items 09 and 4E.
    pub name: Name,
    /// Item 0A.
    pub sex: Sex,
    /// Item 0B.
    pub ethnicity: Ethnicity,
    /// Item 0C.
    pub birthplace: RegionCode,
    /// Item 0D.
    #[serde(with = "super::iso_date")]
    pub birth_date: Date,
}

impl CardholderItems {
    /// The items of an applicant.
    pub fn from_applicant(a: &Applicant) -> CardholderItems {
        CardholderItems {
            id_number: *a.id_number(),
            name: a.name().clone(),
            sex: a.sex(),
            ethnicity: a.ethnicity(),
            birthplace: a.birthplace(),
            birth_date: a.birth_date(),
        }
    }

    /// The seven records in [`EF06_ORDER`]. Item 4E is always written (all `00` when the name
    /// fits item 09), so the record numbers are those of the 2.0/3.0 layout.
    pub fn records(&self) -> Vec<Record> {
        vec![
            Record::new(tag::ID_NUMBER, encode_id_number(&self.id_number)),
            Record::new(tag::NAME, self.name.item_09()),
            Record::new(tag::NAME_EXT, self.name.item_4e()),
            Record::new(tag::SEX, encode_sex(self.sex)),
            Record::new(tag::ETHNICITY, encode_ethnicity(self.ethnicity)),
            Record::new(tag::BIRTHPLACE, encode_region(self.birthplace)),
            Record::new(tag::BIRTH_DATE, encode_date(self.birth_date)),
        ]
    }

    /// Decodes EF06 records (each `tag ‖ len ‖ value`, in any order). Item 4E is optional.
    pub fn decode<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<CardholderItems, ItemError> {
        let items = collect(records, &EF06_ORDER, "EF06")?;
        let get = |t: u8| -> Result<&[u8], ItemError> {
            items
                .iter()
                .find(|r| r.tag == t)
                .map(|r| r.value.as_slice())
                .ok_or(ItemError::Missing { tag: t })
        };
        let name09 = get(tag::NAME)?;
        let name4e = get(tag::NAME_EXT).unwrap_or(&[]);
        Ok(CardholderItems {
            id_number: at(tag::ID_NUMBER, decode_id_number(get(tag::ID_NUMBER)?))?,
            name: at(
                tag::NAME,
                Name::from_card(name09, name4e).map_err(ValueError::from),
            )?,
            sex: at(tag::SEX, decode_sex(get(tag::SEX)?))?,
            ethnicity: at(tag::ETHNICITY, decode_ethnicity(get(tag::ETHNICITY)?))?,
            birthplace: at(tag::BIRTHPLACE, decode_region(get(tag::BIRTHPLACE)?))?,
            birth_date: at(tag::BIRTH_DATE, decode_date(get(tag::BIRTH_DATE)?))?,
        })
    }

    /// Disagreements between the ID number and the birth date or sex (a card written elsewhere may
    /// have them); empty when consistent.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.id_number.birth_date() != self.birth_date {
            out.push(format!(
                "birth date {} differs from the ID number's {}",
                self.birth_date,
                self.id_number.birth_date()
            ));
        }
        if matches!(self.sex, Sex::Male | Sex::Female) && self.id_number.sex() != self.sex {
            out.push(format!(
                "sex {} differs from the ID number's {}",
                self.sex,
                self.id_number.sex()
            ));
        }
        out
    }
}

/// The EF05 (issuer) items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuerItems {
    /// Item 01.
    pub card_id: CardIdCode,
    /// Item 02.
    pub card_class: CardClass,
    /// Item 03.
    pub spec_version: SpecVersion,
    /// Item 04.
    pub init_org: InitOrgNumber,
    /// Item 05.
    #[serde(with = "super::iso_date")]
    pub issue_date: Date,
    /// Item 06.
    #[serde(with = "super::iso_date")]
    pub expiry_date: Date,
    /// Item 07.
    pub card_number: CardNumber,
}

impl IssuerItems {
    /// The seven records in [`EF05_ORDER`].
    pub fn records(&self) -> Vec<Record> {
        vec![
            Record::new(tag::CARD_ID, self.card_id.encode()),
            Record::new(tag::CARD_CLASS, encode_card_class(self.card_class)),
            Record::new(tag::SPEC_VERSION, self.spec_version.encode()),
            Record::new(tag::INIT_ORG, self.init_org.encode()),
            Record::new(tag::ISSUE_DATE, encode_date(self.issue_date)),
            Record::new(tag::EXPIRY_DATE, encode_date(self.expiry_date)),
            Record::new(tag::CARD_NUMBER, self.card_number.encode()),
        ]
    }

    /// Decodes EF05 records (each `tag ‖ len ‖ value`, in any order); all seven are required.
    pub fn decode<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<IssuerItems, ItemError> {
        let items = collect(records, &EF05_ORDER, "EF05")?;
        let get = |t: u8| -> Result<&[u8], ItemError> {
            items
                .iter()
                .find(|r| r.tag == t)
                .map(|r| r.value.as_slice())
                .ok_or(ItemError::Missing { tag: t })
        };
        Ok(IssuerItems {
            card_id: at(tag::CARD_ID, CardIdCode::decode(get(tag::CARD_ID)?))?,
            card_class: at(tag::CARD_CLASS, decode_card_class(get(tag::CARD_CLASS)?))?,
            spec_version: at(
                tag::SPEC_VERSION,
                SpecVersion::decode(get(tag::SPEC_VERSION)?),
            )?,
            init_org: at(tag::INIT_ORG, InitOrgNumber::decode(get(tag::INIT_ORG)?))?,
            issue_date: at(tag::ISSUE_DATE, decode_date(get(tag::ISSUE_DATE)?))?,
            expiry_date: at(tag::EXPIRY_DATE, decode_date(get(tag::EXPIRY_DATE)?))?,
            card_number: at(tag::CARD_NUMBER, CardNumber::decode(get(tag::CARD_NUMBER)?))?,
        })
    }
}

/// Attaches the tag to a value error.
fn at<T>(tag: u8, r: Result<T, ValueError>) -> Result<T, ItemError> {
    r.map_err(|problem| ItemError::Value { tag, problem })
}

/// Parses records, refusing unknown tags and duplicates.
fn collect<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    tags: &[u8],
    file: &'static str,
) -> Result<Vec<Record>, ItemError> {
    let mut out: Vec<Record> = Vec::new();
    for bytes in records {
        let r = Record::parse(bytes)?;
        if !tags.contains(&r.tag) {
            return Err(ItemError::UnknownTag { tag: r.tag, file });
        }
        if out.iter().any(|o| o.tag == r.tag) {
            return Err(ItemError::Duplicate { tag: r.tag });
        }
        out.push(r);
    }
    Ok(out)
}

/// Any item decoded on its own (for tools that read one record at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "item", content = "value", rename_all = "snake_case")]
pub enum Item {
    /// 01.
    CardId(CardIdCode),
    /// 02.
    CardClass(CardClass),
    /// 03.
    SpecVersion(SpecVersion),
    /// 04.
    InitOrg(InitOrgNumber),
    /// 05.
    IssueDate(#[serde(with = "super::iso_date")] Date),
    /// 06.
    ExpiryDate(#[serde(with = "super::iso_date")] Date),
    /// 07.
    CardNumber(CardNumber),
    /// 08.
    IdNumber(CitizenId),
    /// 09 or 4E alone: the GBK bytes without padding, decoded if they are whole characters.
    NamePart {
        /// Which item (09 or 4E).
        tag: u8,
        /// The text, if the bytes alone decode.
        text: Option<String>,
    },
    /// 0A.
    Sex(Sex),
    /// 0B.
    Ethnicity(Ethnicity),
    /// 0C.
    Birthplace(RegionCode),
    /// 0D.
    BirthDate(#[serde(with = "super::iso_date")] Date),
}

impl Item {
    /// Decodes one record `tag ‖ len ‖ value`.
    pub fn decode(record: &[u8]) -> Result<Item, ItemError> {
        let r = Record::parse(record)?;
        let t = r.tag;
        let v = r.value.as_slice();
        let wrap = |res: Result<Item, ValueError>| {
            res.map_err(|problem| ItemError::Value { tag: t, problem })
        };
        match t {
            tag::CARD_ID => wrap(CardIdCode::decode(v).map(Item::CardId)),
            tag::CARD_CLASS => wrap(decode_card_class(v).map(Item::CardClass)),
            tag::SPEC_VERSION => wrap(SpecVersion::decode(v).map(Item::SpecVersion)),
            tag::INIT_ORG => wrap(InitOrgNumber::decode(v).map(Item::InitOrg)),
            tag::ISSUE_DATE => wrap(decode_date(v).map(Item::IssueDate)),
            tag::EXPIRY_DATE => wrap(decode_date(v).map(Item::ExpiryDate)),
            tag::CARD_NUMBER => wrap(CardNumber::decode(v).map(Item::CardNumber)),
            tag::ID_NUMBER => wrap(decode_id_number(v).map(Item::IdNumber)),
            tag::NAME | tag::NAME_EXT => {
                let max = if t == tag::NAME {
                    NAME_LEN
                } else {
                    NAME_EXT_LEN
                };
                if v.len() > max {
                    return wrap(Err(ValueError::Length {
                        expected: format!("at most {max}"),
                        found: v.len(),
                    }));
                }
                let stripped = super::name::strip_padding(v);
                let text = encoding_rs::GBK
                    .decode_without_bom_handling_and_without_replacement(stripped)
                    .map(|c| c.into_owned());
                Ok(Item::NamePart { tag: t, text })
            }
            tag::SEX => wrap(decode_sex(v).map(Item::Sex)),
            tag::ETHNICITY => wrap(decode_ethnicity(v).map(Item::Ethnicity)),
            tag::BIRTHPLACE => wrap(decode_region(v).map(Item::Birthplace)),
            tag::BIRTH_DATE => wrap(decode_date(v).map(Item::BirthDate)),
            _ => Err(ItemError::UnknownTag {
                tag: t,
                file: "EF05/EF06",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holder::{ApplicantRecord, Validator};
    use proptest::prelude::*;
    use time::macros::date;

    fn applicant(name: &str) -> Applicant {
        let r = ApplicantRecord {
            id_number: Some("11010519491231002X".into()),
            name: Some(name.into()),
            sex: Some("2".into()),
            ethnicity: Some("22".into()),
            birthplace: Some("330302".into()),
            birth_date: Some("1949-12-31".into()),
            eligibility: Some("insured".into()),
            ..Default::default()
        };
        Validator::new(date!(2026 - 01 - 10))
            .validate_with_photo(&r, None)
            .unwrap()
    }

    fn issuer() -> IssuerItems {
        let wz = crate::holder::region::WENZHOU;
        IssuerItems {
            card_id: CardIdCode::new(wz, 1234, [0x12, 0x34, 0x56, 0x78]).unwrap(),
            card_class: CardClass::Adult,
            spec_version: SpecVersion::v3(),
            init_org: InitOrgNumber::new(wz, wz, 1).unwrap(),
            issue_date: date!(2026 - 01 - 10),
            expiry_date: date!(2036 - 01 - 10),
            card_number: CardNumber::parse("W00012346").unwrap(),
        }
    }

    #[test]
    fn ef06_encoding() {
        let items = CardholderItems::from_applicant(&applicant("测试李二"));
        let recs: Vec<Vec<u8>> = items.records().iter().map(Record::to_bytes).collect();
        assert_eq!(recs[0], [&[0x08, 18][..], b"11010519491231002X"].concat());
        assert_eq!(recs[1].len(), 32);
        assert_eq!(&recs[1][..2], &[0x09, 30]);
        assert_eq!(&recs[2][..2], &[0x4E, 20]);
        assert_eq!(recs[3], [0x0A, 1, b'2']);
        assert_eq!(recs[4], [0x0B, 1, 0x22]);
        assert_eq!(recs[5], [0x0C, 3, 0x33, 0x03, 0x02]);
        assert_eq!(recs[6], [0x0D, 4, 0x19, 0x49, 0x12, 0x31]);
        let back = CardholderItems::decode(recs.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back, items);
        assert!(back.inconsistencies().is_empty());
    }

    #[test]
    fn ef06_long_name_and_order_independence() {
        let items = CardholderItems::from_applicant(&applicant("测试·阿卜杜克热木·买买提吐尔逊"));
        let mut recs: Vec<Vec<u8>> = items.records().iter().map(Record::to_bytes).collect();
        recs.reverse();
        let back = CardholderItems::decode(recs.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back.name.as_str(), "测试·阿卜杜克热木·买买提吐尔逊");
        // Without item 4E (a 1.0-style file) the name is what item 09 holds.
        let short: Vec<&[u8]> = recs
            .iter()
            .filter(|r| r[0] != tag::NAME_EXT)
            .map(Vec::as_slice)
            .collect();
        assert_eq!(
            CardholderItems::decode(short).unwrap().name.as_str(),
            "测试·阿卜杜克热木·买买提吐尔"
        );
    }

    #[test]
    fn ef05_encoding() {
        let items = issuer();
        let recs: Vec<Vec<u8>> = items.records().iter().map(Record::to_bytes).collect();
        assert_eq!(
            hex::encode_upper(&recs[0]),
            "0110330300D15600000500001234".to_owned() + "12345678"
        );
        assert_eq!(recs[1], [0x02, 1, b'3']);
        assert_eq!(recs[2], [&[0x03, 4][..], b"3.00"].concat());
        assert_eq!(hex::encode_upper(&recs[3]), "040C915600000233030033030001");
        assert_eq!(recs[4], [0x05, 4, 0x20, 0x26, 0x01, 0x10]);
        assert_eq!(recs[5], [0x06, 4, 0x20, 0x36, 0x01, 0x10]);
        assert_eq!(recs[6], [&[0x07, 9][..], b"W00012346"].concat());
        assert_eq!(
            IssuerItems::decode(recs.iter().map(Vec::as_slice)).unwrap(),
            items
        );
        for r in &recs {
            Item::decode(r).unwrap();
        }
    }

    #[test]
    fn real_card_shapes() {
        // From a real 3.0 card's log: spec version and issue date records.
        assert_eq!(
            Item::decode(&[0x03, 0x04, 0x33, 0x2E, 0x30, 0x30]).unwrap(),
            Item::SpecVersion(SpecVersion::v3())
        );
        assert_eq!(
            Item::decode(&[0x05, 0x04, 0x20, 0x18, 0x04, 0x03]).unwrap(),
            Item::IssueDate(date!(2018 - 04 - 03))
        );
        assert_eq!(
            SpecVersion::decode(&[]).unwrap().to_string(),
            "1.0x (empty)"
        );
        // A card number item longer than 9: the first nine count.
        assert_eq!(
            CardNumber::decode(b"A12345678\0\0\0").unwrap().as_str(),
            "A12345678"
        );
    }

    #[test]
    fn decode_errors_name_the_item() {
        let e = Item::decode(&[0x0D, 4, 0x20, 0x23, 0x02, 0x29]).unwrap_err();
        assert_eq!(e.to_string(), "item 0D (出生日期) 20230229 is not a date");
        let e = Item::decode(&[0x0B, 1, 0x5A]).unwrap_err();
        assert!(matches!(
            e,
            ItemError::Value {
                tag: 0x0B,
                problem: ValueError::NotBcd(_)
            }
        ));
        let e = Item::decode(&[0x0B, 1, 0x57]).unwrap_err();
        assert!(matches!(
            e,
            ItemError::Value {
                problem: ValueError::UnknownCode(_),
                ..
            }
        ));
        assert_eq!(
            Item::decode(&[0x0A, 2, b'1']).unwrap_err(),
            ItemError::Length {
                tag: 0x0A,
                declared: 2,
                present: 1
            }
        );
        assert_eq!(Item::decode(&[0x0A]).unwrap_err(), ItemError::Truncated(1));
        let recs = issuer().records();
        let bytes: Vec<Vec<u8>> = recs.iter().skip(1).map(Record::to_bytes).collect();
        assert_eq!(
            IssuerItems::decode(bytes.iter().map(Vec::as_slice)).unwrap_err(),
            ItemError::Missing { tag: 0x01 }
        );
        let mut dup: Vec<Vec<u8>> = recs.iter().map(Record::to_bytes).collect();
        dup.push(dup[0].clone());
        assert_eq!(
            IssuerItems::decode(dup.iter().map(Vec::as_slice)).unwrap_err(),
            ItemError::Duplicate { tag: 0x01 }
        );
        let ef06: Vec<Vec<u8>> = CardholderItems::from_applicant(&applicant("测试李二"))
            .records()
            .iter()
            .map(Record::to_bytes)
            .collect();
        let mut with_ef05 = ef06.clone();
        with_ef05.push(vec![
            0x07, 9, b'A', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8',
        ]);
        assert_eq!(
            CardholderItems::decode(with_ef05.iter().map(Vec::as_slice)).unwrap_err(),
            ItemError::UnknownTag {
                tag: 0x07,
                file: "EF06"
            }
        );
    }

    #[test]
    fn json_for_info() {
        let items = CardholderItems::from_applicant(&applicant("测试李二"));
        let v = serde_json::to_value(&items).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id_number": "11010519491231002X",
                "name": "测试李二",
                "sex": {"code": "2", "name": "女"},
                "ethnicity": {"code": "22", "name": "畲族"},
                "birthplace": {"code": "330302", "name": "浙江省温州市鹿城区"},
                "birth_date": "1949-12-31",
            })
        );
        let v = serde_json::to_value(issuer()).unwrap();
        assert_eq!(v["card_number"], "W00012346");
        assert_eq!(
            v["card_class"],
            serde_json::json!({"code": "3", "name": "成年人"})
        );
        assert_eq!(v["issue_date"], "2026-01-10");
        assert_eq!(v["expiry_date"], "2036-01-10");
        assert_eq!(v["spec_version"], "3.00");
        assert_eq!(v["card_id"]["city"]["code"], "330300");
        assert_eq!(v["card_id"]["rid"], "D156000005");
    }

    #[test]
    fn bcd() {
        assert_eq!(bcd_encode("20260110"), vec![0x20, 0x26, 0x01, 0x10]);
        assert_eq!(bcd_encode("123"), vec![0x12, 0x3F]);
        assert_eq!(bcd_decode(&[0x20, 0x26]).unwrap(), "2026");
        assert!(bcd_decode(&[0x3F]).is_err());
        assert_eq!(encode_ethnicity(Ethnicity::from_code(56).unwrap()), [0x56]);
    }

    proptest! {
        /// Arbitrary bytes never panic any decoder.
        #[test]
        fn item_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Item::decode(&bytes);
            let _ = Record::parse(&bytes);
        }

        /// Well-formed records with arbitrary values for every known tag never panic.
        #[test]
        fn values_never_panic(t in proptest::sample::select(EF05_ORDER.iter().chain(EF06_ORDER.iter()).copied().collect::<Vec<u8>>()),
                              value in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut rec = vec![t, value.len() as u8];
            rec.extend_from_slice(&value);
            if let Ok(item) = Item::decode(&rec) {
                // Whatever decodes can be serialized for `info --json`.
                prop_assert!(serde_json::to_string(&item).is_ok());
            }
        }

        /// Whole-file decoders on arbitrary record lists never panic.
        #[test]
        fn files_never_panic(recs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..34), 0..9)) {
            let _ = CardholderItems::decode(recs.iter().map(Vec::as_slice));
            let _ = IssuerItems::decode(recs.iter().map(Vec::as_slice));
        }

        /// Mutating one byte of a valid EF06 image never panics, and what decodes re-encodes.
        #[test]
        fn mutated_ef06(idx in 0usize..7, pos in 0usize..32, byte in any::<u8>()) {
            let items = CardholderItems::from_applicant(&applicant("测试·阿卜杜克热木·买买提吐尔逊"));
            let mut recs: Vec<Vec<u8>> = items.records().iter().map(Record::to_bytes).collect();
            let r = &mut recs[idx];
            let p = pos % r.len();
            r[p] = byte;
            if let Ok(d) = CardholderItems::decode(recs.iter().map(Vec::as_slice)) {
                let again: Vec<Vec<u8>> = d.records().iter().map(Record::to_bytes).collect();
                prop_assert_eq!(CardholderItems::decode(again.iter().map(Vec::as_slice)).unwrap(), d);
            }
        }
    }
}
