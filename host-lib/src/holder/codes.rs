//! Small coded values: sex (GB 2261.1), card class (EF05 item 02) and eligibility.

use std::fmt;

use serde::{Serialize, Serializer};

/// Sex, coded as in GB 2261.1 and on the card (EF06 item `0A`, one ASCII digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// `'0'` 未知的性别: not known. Accepted when decoding a card, never for an applicant.
    Unknown,
    /// `'1'` 男.
    Male,
    /// `'2'` 女.
    Female,
    /// `'9'` 未说明的性别: not stated. Accepted when decoding a card, never for an applicant.
    Unspecified,
}

/// Why a sex value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SexError {
    /// Not a value we understand.
    #[error("{0:?} is not a sex code: use 1 (male) or 2 (female)")]
    Invalid(String),
    /// `0`/`9`: valid GB 2261.1 codes, but an applicant's citizen ID number always states a sex.
    #[error(
        "{0} is a valid GB 2261.1 code but an applicant's sex must be 1 (male) or 2 (female), \
         as stated by the citizen ID number"
    )]
    NotSpecific(Sex),
}

impl Sex {
    /// The GB 2261.1 digit.
    pub const fn code(self) -> u8 {
        match self {
            Sex::Unknown => b'0',
            Sex::Male => b'1',
            Sex::Female => b'2',
            Sex::Unspecified => b'9',
        }
    }

    /// The sex for a GB 2261.1 digit.
    pub const fn from_code(code: u8) -> Option<Sex> {
        match code {
            b'0' => Some(Sex::Unknown),
            b'1' => Some(Sex::Male),
            b'2' => Some(Sex::Female),
            b'9' => Some(Sex::Unspecified),
            _ => None,
        }
    }

    /// The Chinese name: 男, 女, 未知, 未说明.
    pub const fn name_zh(self) -> &'static str {
        match self {
            Sex::Unknown => "未知",
            Sex::Male => "男",
            Sex::Female => "女",
            Sex::Unspecified => "未说明",
        }
    }

    /// Parses an applicant's sex: `1`/`2`, `男`/`女`, or `male`/`female`/`m`/`f` (any case).
    /// `0` and `9` are refused with [`SexError::NotSpecific`].
    pub fn parse_applicant(s: &str) -> Result<Sex, SexError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "1" | "男" | "m" | "male" => Ok(Sex::Male),
            "2" | "女" | "f" | "female" => Ok(Sex::Female),
            "0" => Err(SexError::NotSpecific(Sex::Unknown)),
            "9" => Err(SexError::NotSpecific(Sex::Unspecified)),
            _ => Err(SexError::Invalid(t.to_owned())),
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code() as char, self.name_zh())
    }
}

impl Serialize for Sex {
    /// `{"code": "1", "name": "男"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_code_name(s, &(self.code() as char).to_string(), self.name_zh())
    }
}

/// Serializes a coded value as `{"code": …, "name": …}`, so JSON output carries both the code on
/// the card and its meaning.
pub(crate) fn serialize_code_name<S: Serializer>(
    s: S,
    code: &str,
    name: &str,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Coded", 2)?;
    st.serialize_field("code", code)?;
    st.serialize_field("name", name)?;
    st.end()
}

/// Card class (卡的类别), EF05 item `02`, one ASCII digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardClass {
    /// `'1'` 学龄前儿童.
    PreschoolChild,
    /// `'2'` 学生.
    Student,
    /// `'3'` 成年人 (also used when classes are not distinguished).
    Adult,
    /// `'4'` 老年人.
    Elderly,
}

/// Why a card class was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a card class: use 1 (pre-school child), 2 (student), 3 (adult) or 4 (elderly)"
)]
pub struct CardClassError(pub String);

impl CardClass {
    /// The ASCII digit on the card.
    pub const fn code(self) -> u8 {
        match self {
            CardClass::PreschoolChild => b'1',
            CardClass::Student => b'2',
            CardClass::Adult => b'3',
            CardClass::Elderly => b'4',
        }
    }

    /// The class for a digit.
    pub const fn from_code(code: u8) -> Option<CardClass> {
        match code {
            b'1' => Some(CardClass::PreschoolChild),
            b'2' => Some(CardClass::Student),
            b'3' => Some(CardClass::Adult),
            b'4' => Some(CardClass::Elderly),
            _ => None,
        }
    }

    /// Chinese name.
    pub const fn name_zh(self) -> &'static str {
        match self {
            CardClass::PreschoolChild => "学龄前儿童",
            CardClass::Student => "学生",
            CardClass::Adult => "成年人",
            CardClass::Elderly => "老年人",
        }
    }

    /// Parses `1`–`4` or the English words `preschool`, `student`, `adult`, `elderly`.
    pub fn parse(s: &str) -> Result<CardClass, CardClassError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "1" | "preschool" => Ok(CardClass::PreschoolChild),
            "2" | "student" => Ok(CardClass::Student),
            "3" | "adult" => Ok(CardClass::Adult),
            "4" | "elderly" => Ok(CardClass::Elderly),
            _ => Err(CardClassError(t.to_owned())),
        }
    }
}

impl fmt::Display for CardClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code() as char, self.name_zh())
    }
}

impl Serialize for CardClass {
    /// `{"code": "3", "name": "成年人"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_code_name(s, &(self.code() as char).to_string(), self.name_zh())
    }
}

impl CardClass {
    /// The English keyword (`preschool`, `student`, `adult`, `elderly`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CardClass::PreschoolChild => "preschool",
            CardClass::Student => "student",
            CardClass::Adult => "adult",
            CardClass::Elderly => "elderly",
        }
    }
}

/// Why the applicant may hold a Wenzhou citizen card. The regulation (Art. 13) lets people with a
/// Wenzhou household registration (户籍) and people insured in Wenzhou (参保) apply. Validation
/// accepts [`Eligibility::Neither`] (the record is well formed); the registry refuses to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eligibility {
    /// `household`: registered household (户籍) in Wenzhou.
    WenzhouHousehold,
    /// `insured`: insured in Wenzhou (在温参保) without a Wenzhou household registration.
    InsuredInWenzhou,
    /// `none`: neither; not allowed to apply.
    Neither,
}

/// Why an eligibility value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an eligibility: use household (Wenzhou household registration), insured (insured in Wenzhou) or none")]
pub struct EligibilityError(pub String);

impl Eligibility {
    /// The keyword used in files and in the registry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Eligibility::WenzhouHousehold => "household",
            Eligibility::InsuredInWenzhou => "insured",
            Eligibility::Neither => "none",
        }
    }

    /// Parses `household`, `insured` or `none` (any case), or the Chinese 户籍 / 参保 / 无.
    pub fn parse(s: &str) -> Result<Eligibility, EligibilityError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "household" | "户籍" => Ok(Eligibility::WenzhouHousehold),
            "insured" | "参保" => Ok(Eligibility::InsuredInWenzhou),
            "none" | "无" => Ok(Eligibility::Neither),
            _ => Err(EligibilityError(t.to_owned())),
        }
    }

    /// Whether the regulation lets this applicant apply.
    pub const fn may_apply(self) -> bool {
        !matches!(self, Eligibility::Neither)
    }
}

impl fmt::Display for Eligibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Eligibility {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sex_codes() {
        assert_eq!(Sex::parse_applicant("1"), Ok(Sex::Male));
        assert_eq!(Sex::parse_applicant(" 女 "), Ok(Sex::Female));
        assert_eq!(Sex::parse_applicant("Female"), Ok(Sex::Female));
        assert_eq!(
            Sex::parse_applicant("9"),
            Err(SexError::NotSpecific(Sex::Unspecified))
        );
        assert_eq!(
            Sex::parse_applicant("0"),
            Err(SexError::NotSpecific(Sex::Unknown))
        );
        assert!(matches!(
            Sex::parse_applicant("3"),
            Err(SexError::Invalid(_))
        ));
        for c in [b'0', b'1', b'2', b'9'] {
            assert_eq!(Sex::from_code(c).map(Sex::code), Some(c));
        }
        assert_eq!(Sex::from_code(b'3'), None);
    }

    #[test]
    fn card_classes() {
        for c in b'1'..=b'4' {
            let class = CardClass::from_code(c).unwrap();
            assert_eq!(class.code(), c);
            assert_eq!(CardClass::parse(&(c as char).to_string()), Ok(class));
            assert_eq!(CardClass::parse(class.as_str()), Ok(class));
        }
        assert!(CardClass::parse("5").is_err());
        assert!(CardClass::parse("0").is_err());
    }

    #[test]
    fn eligibility() {
        assert_eq!(
            Eligibility::parse("Household"),
            Ok(Eligibility::WenzhouHousehold)
        );
        assert_eq!(
            Eligibility::parse("参保"),
            Ok(Eligibility::InsuredInWenzhou)
        );
        assert!(!Eligibility::parse("none").unwrap().may_apply());
        assert!(Eligibility::parse("yes").is_err());
    }
}
