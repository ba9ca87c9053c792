//! Ethnicity (民族), GB 3304-1991 two-digit codes; on the card EF06 item `0B`, one BCD byte.
//!
//! The table holds the 56 ethnic groups (01 Han … 56 Jino) and GB 3304's two further codes,
//! 97 其他 (other, unidentified) and 98 外国血统中国籍人士 (Chinese citizens of foreign origin,
//! i.e. foreign-born naturalized). Code 99 is not a GB 3304 code; some social-security systems
//! write it for "other", so it is understood when reading a card ([`Ethnicity::from_card_code`])
//! but refused for a new applicant.

use std::fmt;

use serde::{Serialize, Serializer};

/// (code, Chinese name, romanized name as in GB 3304).
const TABLE: [(u8, &str, &str); 58] = [
    (1, "汉族", "Han"),
    (2, "蒙古族", "Mongol"),
    (3, "回族", "Hui"),
    (4, "藏族", "Zang"),
    (5, "维吾尔族", "Uygur"),
    (6, "苗族", "Miao"),
    (7, "彝族", "Yi"),
    (8, "壮族", "Zhuang"),
    (9, "布依族", "Buyei"),
    (10, "朝鲜族", "Chosen"),
    (11, "满族", "Man"),
    (12, "侗族", "Dong"),
    (13, "瑶族", "Yao"),
    (14, "白族", "Bai"),
    (15, "土家族", "Tujia"),
    (16, "哈尼族", "Hani"),
    (17, "哈萨克族", "Kazak"),
    (18, "傣族", "Dai"),
    (19, "黎族", "Li"),
    (20, "傈僳族", "Lisu"),
    (21, "佤族", "Va"),
    (22, "畲族", "She"),
    (23, "高山族", "Gaoshan"),
    (24, "拉祜族", "Lahu"),
    (25, "水族", "Sui"),
    (26, "东乡族", "Dongxiang"),
    (27, "纳西族", "Naxi"),
    (28, "景颇族", "Jingpo"),
    (29, "柯尔克孜族", "Kirgiz"),
    (30, "土族", "Tu"),
    (31, "达斡尔族", "Daur"),
    (32, "仫佬族", "Mulao"),
    (33, "羌族", "Qiang"),
    (34, "布朗族", "Blang"),
    (35, "撒拉族", "Salar"),
    (36, "毛南族", "Maonan"),
    (37, "仡佬族", "Gelao"),
    (38, "锡伯族", "Xibe"),
    (39, "阿昌族", "Achang"),
    (40, "普米族", "Pumi"),
    (41, "塔吉克族", "Tajik"),
    (42, "怒族", "Nu"),
    (43, "乌孜别克族", "Uzbek"),
    (44, "俄罗斯族", "Russ"),
    (45, "鄂温克族", "Ewenki"),
    (46, "德昂族", "Deang"),
    (47, "保安族", "Bonan"),
    (48, "裕固族", "Yugur"),
    (49, "京族", "Gin"),
    (50, "塔塔尔族", "Tatar"),
    (51, "独龙族", "Derung"),
    (52, "鄂伦春族", "Oroqen"),
    (53, "赫哲族", "Hezhen"),
    (54, "门巴族", "Monba"),
    (55, "珞巴族", "Lhoba"),
    (56, "基诺族", "Jino"),
    (97, "其他", "Other"),
    (
        98,
        "外国血统中国籍人士",
        "Naturalized citizen of foreign origin",
    ),
];

/// Card-only code 99 (see the module docs).
const CARD_ONLY_OTHER: (u8, &str, &str) = (99, "其他", "Other (code 99)");

/// A known ethnicity code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ethnicity(u8);

/// Why an ethnicity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EthnicityError {
    /// Neither a known two-digit code nor a known name.
    #[error("{0:?} is not a GB 3304 ethnicity: give the two-digit code (01 汉族 … 56 基诺族, 97 其他, 98 外国血统中国籍人士) or the Chinese name")]
    Unknown(String),
}

impl Ethnicity {
    /// 汉族.
    pub const HAN: Ethnicity = Ethnicity(1);

    /// The ethnicity for a GB 3304 code (1–56, 97, 98).
    pub fn from_code(code: u8) -> Option<Ethnicity> {
        TABLE
            .iter()
            .any(|(c, _, _)| *c == code)
            .then_some(Ethnicity(code))
    }

    /// Like [`from_code`](Self::from_code) but also accepts 99, which some cards carry.
    pub fn from_card_code(code: u8) -> Option<Ethnicity> {
        if code == CARD_ONLY_OTHER.0 {
            Some(Ethnicity(code))
        } else {
            Ethnicity::from_code(code)
        }
    }

    /// Parses an applicant's ethnicity: a two-digit code (`01`, also `1`), or a Chinese name with or
    /// without 族 (`汉族`, `汉`, `畲`).
    pub fn parse(s: &str) -> Result<Ethnicity, EthnicityError> {
        let t = s.trim();
        let unknown = || EthnicityError::Unknown(t.to_owned());
        if !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()) {
            let code: u8 = t.parse().map_err(|_| unknown())?;
            return Ethnicity::from_code(code).ok_or_else(unknown);
        }
        TABLE
            .iter()
            .find(|(_, zh, _)| *zh == t || (zh.ends_with('族') && zh.trim_end_matches('族') == t))
            .map(|(c, _, _)| Ethnicity(*c))
            .ok_or_else(unknown)
    }

    /// The numeric code.
    pub const fn code(self) -> u8 {
        self.0
    }

    fn entry(self) -> (u8, &'static str, &'static str) {
        TABLE
            .iter()
            .copied()
            .find(|(c, _, _)| *c == self.0)
            .unwrap_or(CARD_ONLY_OTHER)
    }

    /// Chinese name, e.g. 汉族.
    pub fn name_zh(self) -> &'static str {
        self.entry().1
    }

    /// Romanized name as GB 3304 gives it, e.g. `Han`.
    pub fn name_en(self) -> &'static str {
        self.entry().2
    }

    /// All codes an applicant may give, in order.
    pub fn all() -> impl Iterator<Item = Ethnicity> {
        TABLE.iter().map(|(c, _, _)| Ethnicity(*c))
    }
}

impl fmt::Display for Ethnicity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02} ({})", self.0, self.name_zh())
    }
}

impl Serialize for Ethnicity {
    /// `{"code": "01", "name": "汉族"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::codes::serialize_code_name(s, &format!("{:02}", self.0), self.name_zh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_ordered() {
        let codes: Vec<u8> = Ethnicity::all().map(Ethnicity::code).collect();
        let mut expected: Vec<u8> = (1..=56).collect();
        expected.extend([97, 98]);
        assert_eq!(codes, expected);
        let mut names: Vec<&str> = TABLE.iter().map(|(_, zh, _)| *zh).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLE.len(), "names are unique");
    }

    #[test]
    fn parse_codes_and_names() {
        assert_eq!(Ethnicity::parse("01"), Ok(Ethnicity::HAN));
        assert_eq!(Ethnicity::parse("1"), Ok(Ethnicity::HAN));
        assert_eq!(Ethnicity::parse("汉族"), Ok(Ethnicity::HAN));
        assert_eq!(Ethnicity::parse("畲").unwrap().code(), 22);
        assert_eq!(Ethnicity::parse("56").unwrap().name_zh(), "基诺族");
        assert_eq!(
            Ethnicity::parse("98").unwrap().name_zh(),
            "外国血统中国籍人士"
        );
        assert_eq!(Ethnicity::parse("其他").unwrap().code(), 97);
        for bad in ["00", "57", "96", "99", "", "汉汉", "123"] {
            assert!(Ethnicity::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Ethnicity::from_card_code(99).unwrap().name_zh(), "其他");
        assert_eq!(Ethnicity::from_card_code(57), None);
    }
}
