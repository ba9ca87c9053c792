//! Administrative region codes (行政区划代码), GB/T 2260: six digits, two each for province,
//! prefecture and county. On the card: EF06 item `0C` (birthplace, 3 BCD bytes) and the city code
//! inside EF05 items `01` and `04`.
//!
//! Extent of the name table (and so of what `info` can name):
//!
//! * every province-level code (the 34 provinces, autonomous regions, municipalities and SARs);
//! * Zhejiang's eleven prefecture-level cities, 3301 杭州市 … 3311 丽水市;
//! * Wenzhou's county-level codes in use today, plus 330322 洞头县 (became 330305 洞头区 in
//!   2015), because birthplaces and ID numbers keep the code in force when they were recorded.
//!
//! Validation only requires six digits and a known province prefix: codes are retired and
//! re-numbered over the years, and a birthplace recorded decades ago may carry a code no longer
//! in the current table. Other codes are accepted and shown by their province (and Zhejiang
//! prefecture) name.

use std::fmt;

use serde::{Serialize, Serializer};

const PROVINCES: [(u8, &str); 34] = [
    (11, "北京市"),
    (12, "天津市"),
    (13, "河北省"),
    (14, "山西省"),
    (15, "内蒙古自治区"),
    (21, "辽宁省"),
    (22, "吉林省"),
    (23, "黑龙江省"),
    (31, "上海市"),
    (32, "江苏省"),
    (33, "浙江省"),
    (34, "安徽省"),
    (35, "福建省"),
    (36, "江西省"),
    (37, "山东省"),
    (41, "河南省"),
    (42, "湖北省"),
    (43, "湖南省"),
    (44, "广东省"),
    (45, "广西壮族自治区"),
    (46, "海南省"),
    (50, "重庆市"),
    (51, "四川省"),
    (52, "贵州省"),
    (53, "云南省"),
    (54, "西藏自治区"),
    (61, "陕西省"),
    (62, "甘肃省"),
    (63, "青海省"),
    (64, "宁夏回族自治区"),
    (65, "新疆维吾尔自治区"),
    (71, "台湾省"),
    (81, "香港特别行政区"),
    (82, "澳门特别行政区"),
];

const ZHEJIANG_PREFECTURES: [(u32, &str); 11] = [
    (3301, "杭州市"),
    (3302, "宁波市"),
    (3303, "温州市"),
    (3304, "嘉兴市"),
    (3305, "湖州市"),
    (3306, "绍兴市"),
    (3307, "金华市"),
    (3308, "衢州市"),
    (3309, "舟山市"),
    (3310, "台州市"),
    (3311, "丽水市"),
];

const WENZHOU_COUNTIES: [(u32, &str); 14] = [
    (330301, "市辖区"),
    (330302, "鹿城区"),
    (330303, "龙湾区"),
    (330304, "瓯海区"),
    (330305, "洞头区"),
    (330322, "洞头县"),
    (330324, "永嘉县"),
    (330326, "平阳县"),
    (330327, "苍南县"),
    (330328, "文成县"),
    (330329, "泰顺县"),
    (330381, "瑞安市"),
    (330382, "乐清市"),
    (330383, "龙港市"),
];

/// Wenzhou's city code, used in the card identification code and the initialising-org number.
pub const WENZHOU: RegionCode = RegionCode(330300);

/// A six-digit region code whose province prefix exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(u32);

/// Why a region code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not six ASCII digits.
    #[error("{0:?} is not a region code: GB/T 2260 codes are six digits, e.g. 330302")]
    Format(String),
    /// The first two digits are no province.
    #[error("{code:06}: {prefix:02} is not a GB/T 2260 province code")]
    UnknownProvince {
        /// The whole code.
        code: u32,
        /// Its first two digits.
        prefix: u8,
    },
}

impl RegionCode {
    /// Parses six digits and checks the province.
    pub fn parse(s: &str) -> Result<RegionCode, RegionError> {
        let t = s.trim();
        if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Format(t.to_owned()));
        }
        let value: u32 = t.parse().map_err(|_| RegionError::Format(t.to_owned()))?;
        RegionCode::from_u32(value)
    }

    /// The code for a number 0..=999999, checking the province.
    pub fn from_u32(value: u32) -> Result<RegionCode, RegionError> {
        if value > 999_999 {
            return Err(RegionError::Format(value.to_string()));
        }
        let prefix = (value / 10_000) as u8;
        if province_name(prefix).is_none() {
            return Err(RegionError::UnknownProvince {
                code: value,
                prefix,
            });
        }
        Ok(RegionCode(value))
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// The six digits.
    pub fn digits(self) -> String {
        format!("{:06}", self.0)
    }

    /// The province name (always known).
    pub fn province(self) -> &'static str {
        province_name((self.0 / 10_000) as u8).unwrap_or("?")
    }

    /// The prefecture name, if the table has it (Zhejiang only).
    pub fn prefecture(self) -> Option<&'static str> {
        if self.0.is_multiple_of(10_000) {
            return None;
        }
        let p = self.0 / 100;
        ZHEJIANG_PREFECTURES
            .iter()
            .find(|(c, _)| *c == p)
            .map(|(_, n)| *n)
    }

    /// The county name, if the table has it (Wenzhou only).
    pub fn county(self) -> Option<&'static str> {
        WENZHOU_COUNTIES
            .iter()
            .find(|(c, _)| *c == self.0)
            .map(|(_, n)| *n)
    }

    /// The most precise name the table gives, e.g. 浙江省温州市鹿城区, 浙江省温州市, 北京市.
    /// Only the province part is guaranteed.
    pub fn full_name(self) -> String {
        let mut s = String::from(self.province());
        if let Some(p) = self.prefecture() {
            s.push_str(p);
        }
        if let Some(c) = self.county() {
            s.push_str(c);
        }
        s
    }

    /// Whether the table names this code down to its own level (county, prefecture or province),
    /// rather than only its province or prefecture.
    pub fn is_fully_named(self) -> bool {
        if self.0.is_multiple_of(10_000) {
            true
        } else if self.0.is_multiple_of(100) {
            self.prefecture().is_some()
        } else {
            self.county().is_some()
        }
    }
}

fn province_name(prefix: u8) -> Option<&'static str> {
    PROVINCES
        .iter()
        .find(|(c, _)| *c == prefix)
        .map(|(_, n)| *n)
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl Serialize for RegionCode {
    /// `{"code": "330302", "name": "浙江省温州市鹿城区"}` (the most precise name known).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::codes::serialize_code_name(s, &self.digits(), &self.full_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let lucheng = RegionCode::parse("330302").unwrap();
        assert_eq!(lucheng.full_name(), "浙江省温州市鹿城区");
        assert!(lucheng.is_fully_named());
        assert_eq!(WENZHOU.full_name(), "浙江省温州市");
        assert!(WENZHOU.is_fully_named());
        assert_eq!(
            RegionCode::parse("330106").unwrap().full_name(),
            "浙江省杭州市"
        );
        assert!(!RegionCode::parse("330106").unwrap().is_fully_named());
        assert_eq!(RegionCode::parse("110105").unwrap().full_name(), "北京市");
        assert_eq!(
            RegionCode::parse("820000").unwrap().full_name(),
            "澳门特别行政区"
        );
        assert_eq!(
            RegionCode::parse("330383").unwrap().county(),
            Some("龙港市")
        );
    }

    #[test]
    fn every_table_entry_is_valid_and_consistent() {
        for (c, _) in ZHEJIANG_PREFECTURES {
            assert!(RegionCode::from_u32(c * 100).unwrap().is_fully_named());
        }
        for (c, _) in WENZHOU_COUNTIES {
            let r = RegionCode::from_u32(c).unwrap();
            assert_eq!(r.prefecture(), Some("温州市"));
            assert!(r.is_fully_named());
        }
    }

    #[test]
    fn refusals() {
        for bad in ["33030", "3303021", "33030x", "", " ", "３３０３０２"] {
            assert!(
                matches!(RegionCode::parse(bad), Err(RegionError::Format(_))),
                "{bad:?}"
            );
        }
        for bad in ["000000", "100000", "990101", "203456", "720000"] {
            assert!(
                matches!(
                    RegionCode::parse(bad),
                    Err(RegionError::UnknownProvince { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(RegionCode::from_u32(1_000_000).is_err());
    }
}
