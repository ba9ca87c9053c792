//! # Applicant and cardholder data
//!
//! An applicant arrives as text — a TOML file for one person or a CSV batch ([`input`]) — and
//! leaves as a validated [`Applicant`], whose parts are typed values that can only hold what the
//! card and the regulation allow:
//!
//! | field | type | rule |
//! |---|---|---|
//! | `id_number` | [`CitizenId`] | GB 11643-1999: 18 characters, MOD 11-2 check character, valid birth date, known province |
//! | `name` | [`Name`] | GBK, ≤ 30 bytes in item 09 + ≤ 20 in item 4E, Chinese characters and `·` only |
//! | `sex` | [`Sex`] | GB 2261.1 `1`/`2`, consistent with the ID number's 17th digit |
//! | `ethnicity` | [`Ethnicity`] | GB 3304 code 01–56, 97, 98 (or its Chinese name) |
//! | `birthplace` | [`RegionCode`] | GB/T 2260 six digits, known province |
//! | `birth_date` | [`time::Date`] | 1900-01-01 … today, equal to the ID number's digits 7–14 |
//! | `card_class` | [`CardClass`] | `1`–`4`; optional, `3` (adult) when absent, as the card spec says for cards that do not distinguish |
//! | `eligibility` | [`Eligibility`] | `household` / `insured` / `none` (the registry refuses `none`) |
//! | `photo` | [`Photo`] | optional; a JPEG ≤ 4096 bytes |
//! | `phone`, `address` | `String` | optional contact data, kept by the registry only |
//!
//! Every problem is a [`FieldError`] naming its field; [`Validator::validate`] reports all the
//! invalid fields of a record at once. Where two fields disagree (ID number against birth date or
//! sex) the error is attributed to the birth date or sex: the ID number carries a check
//! character, so it is the likelier one to be right.
//!
//! [`items`] encodes a cardholder into the EF05/EF06 data items and decodes them back from card
//! bytes, treating those as hostile input.

pub mod citizen_id;
pub mod codes;
pub mod contact;
pub mod dates;
pub mod error;
pub mod ethnicity;
pub mod input;
pub mod items;
pub mod name;
pub mod photo;
pub mod region;

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

pub use citizen_id::{CitizenId, CitizenIdError};
pub use codes::{CardClass, Eligibility, Sex};
pub use error::{Field, FieldError, FieldErrors, Problem};
pub use ethnicity::Ethnicity;
pub use name::Name;
pub use photo::Photo;
pub use region::RegionCode;

/// China Standard Time (UTC+8, no daylight saving), the time zone of dates on the card.
pub const CHINA_TIME: time::UtcOffset = time::macros::offset!(+8);

/// An applicant's data as text, before validation: what a TOML file or a CSV row holds. Blank
/// values count as absent. `photo` is a path, relative to the file that names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicantRecord {
    /// Citizen ID number.
    pub id_number: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Sex.
    pub sex: Option<String>,
    /// Ethnicity code or name.
    pub ethnicity: Option<String>,
    /// Birthplace region code.
    pub birthplace: Option<String>,
    /// Birth date.
    pub birth_date: Option<String>,
    /// Card class.
    pub card_class: Option<String>,
    /// Eligibility.
    pub eligibility: Option<String>,
    /// Photo path.
    pub photo: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Address.
    pub address: Option<String>,
}

impl ApplicantRecord {
    /// The value of a field, `None` when absent or blank.
    pub fn get(&self, field: Field) -> Option<&str> {
        let v = match field {
            Field::IdNumber => &self.id_number,
            Field::Name => &self.name,
            Field::Sex => &self.sex,
            Field::Ethnicity => &self.ethnicity,
            Field::Birthplace => &self.birthplace,
            Field::BirthDate => &self.birth_date,
            Field::CardClass => &self.card_class,
            Field::Eligibility => &self.eligibility,
            Field::Photo => &self.photo,
            Field::Phone => &self.phone,
            Field::Address => &self.address,
        };
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// Sets a field.
    pub fn set(&mut self, field: Field, value: Option<String>) {
        let slot = match field {
            Field::IdNumber => &mut self.id_number,
            Field::Name => &mut self.name,
            Field::Sex => &mut self.sex,
            Field::Ethnicity => &mut self.ethnicity,
            Field::Birthplace => &mut self.birthplace,
            Field::BirthDate => &mut self.birth_date,
            Field::CardClass => &mut self.card_class,
            Field::Eligibility => &mut self.eligibility,
            Field::Photo => &mut self.photo,
            Field::Phone => &mut self.phone,
            Field::Address => &mut self.address,
        };
        *slot = value;
    }
}

/// A validated applicant (or cardholder): every field valid, birth date and sex consistent with
/// the ID number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applicant {
    id_number: CitizenId,
    name: Name,
    sex: Sex,
    ethnicity: Ethnicity,
    birthplace: RegionCode,
    #[serde(with = "iso_date")]
    birth_date: Date,
    card_class: CardClass,
    eligibility: Eligibility,
    #[serde(skip_serializing_if = "Option::is_none")]
    photo: Option<Photo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

/// Serializes dates as `YYYY-MM-DD`.
pub(crate) mod iso_date {
    use serde::Serializer;
    use time::Date;

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        ))
    }
}

impl Applicant {
    /// Citizen ID number.
    pub fn id_number(&self) -> &CitizenId {
        &self.id_number
    }
    /// Name.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// Sex (always [`Sex::Male`] or [`Sex::Female`]).
    pub fn sex(&self) -> Sex {
        self.sex
    }
    /// Ethnicity.
    pub fn ethnicity(&self) -> Ethnicity {
        self.ethnicity
    }
    /// Birthplace.
    pub fn birthplace(&self) -> RegionCode {
        self.birthplace
    }
    /// Birth date.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }
    /// Card class.
    pub fn card_class(&self) -> CardClass {
        self.card_class
    }
    /// Eligibility.
    pub fn eligibility(&self) -> Eligibility {
        self.eligibility
    }
    /// Photo, if given.
    pub fn photo(&self) -> Option<&Photo> {
        self.photo.as_ref()
    }
    /// Phone, if given.
    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }
    /// Address, if given.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The same applicant with another card class (e.g. a replacement card for a child who has
    /// since become a student).
    pub fn with_card_class(mut self, class: CardClass) -> Applicant {
        self.card_class = class;
        self
    }

    /// Checks that the regulation lets this applicant hold a card (Art. 13: Wenzhou household
    /// registration or insured in Wenzhou). The registry calls it before issuing.
    pub fn check_issuable(&self) -> Result<(), FieldError> {
        if self.eligibility.may_apply() {
            Ok(())
        } else {
            Err(FieldError::new(Field::Eligibility, Problem::NotEligible))
        }
    }

    /// The applicant as text (the photo path is left out; the photo itself is in
    /// [`photo`](Self::photo)). Validating the result with the same photo gives the applicant back.
    pub fn to_record(&self) -> ApplicantRecord {
        ApplicantRecord {
            id_number: Some(self.id_number.to_string()),
            name: Some(self.name.to_string()),
            sex: Some((self.sex.code() as char).to_string()),
            ethnicity: Some(format!("{:02}", self.ethnicity.code())),
            birthplace: Some(self.birthplace.digits()),
            birth_date: Some(dates::date_digits(self.birth_date)),
            card_class: Some((self.card_class.code() as char).to_string()),
            eligibility: Some(self.eligibility.as_str().to_owned()),
            photo: None,
            phone: self.phone.clone(),
            address: self.address.clone(),
        }
    }
}

/// Checks applicant records. It holds "today" so that tests can fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validator {
    today: Date,
}

impl Validator {
    /// A validator whose today is `today`.
    pub fn new(today: Date) -> Validator {
        Validator { today }
    }

    /// A validator whose today is the current date in China.
    pub fn today_in_china() -> Validator {
        Validator::new(OffsetDateTime::now_utc().to_offset(CHINA_TIME).date())
    }

    /// The validator's today.
    pub fn today(&self) -> Date {
        self.today
    }

    /// Validates a record whose photo (if any) is a path relative to `base_dir`.
    pub fn validate(
        &self,
        record: &ApplicantRecord,
        base_dir: &Path,
    ) -> Result<Applicant, FieldErrors> {
        let photo = record
            .get(Field::Photo)
            .map(|p| Photo::from_file(&base_dir.join(p)));
        self.check(record, photo)
    }

    /// Validates a record with a photo given as data (the record's `photo` path is ignored).
    pub fn validate_with_photo(
        &self,
        record: &ApplicantRecord,
        photo: Option<Vec<u8>>,
    ) -> Result<Applicant, FieldErrors> {
        self.check(record, photo.map(Photo::new))
    }

    fn check(
        &self,
        r: &ApplicantRecord,
        photo: Option<Result<Photo, photo::PhotoError>>,
    ) -> Result<Applicant, FieldErrors> {
        let mut errors = Vec::new();
        // Parses one field, collecting its error.
        fn field<T, E: Into<Problem>>(
            errors: &mut Vec<FieldError>,
            r: &ApplicantRecord,
            f: Field,
            parse: impl FnOnce(&str) -> Result<T, E>,
        ) -> Option<T> {
            match r.get(f) {
                None if f.is_required() => {
                    errors.push(FieldError::new(f, Problem::Missing));
                    None
                }
                None => None,
                Some(v) => match parse(v) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        errors.push(FieldError::new(f, e));
                        None
                    }
                },
            }
        }
        let e = &mut errors;
        let id = field(e, r, Field::IdNumber, CitizenId::parse);
        let name = field(e, r, Field::Name, Name::new);
        let sex = field(e, r, Field::Sex, Sex::parse_applicant);
        let ethnicity = field(e, r, Field::Ethnicity, Ethnicity::parse);
        let birthplace = field(e, r, Field::Birthplace, RegionCode::parse);
        let today = self.today;
        let birth_date = field(e, r, Field::BirthDate, |s| {
            let d = dates::parse_date(s)?;
            dates::check_birth_date(d, today)?;
            Ok::<_, dates::DateError>(d)
        });
        let card_class = field(e, r, Field::CardClass, CardClass::parse);
        let eligibility = field(e, r, Field::Eligibility, Eligibility::parse);
        let phone = field(e, r, Field::Phone, contact::check_phone);
        let address = field(e, r, Field::Address, contact::check_address);
        let photo = match photo {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(err)) => {
                e.push(FieldError::new(Field::Photo, err));
                None
            }
        };
        if let Some(id) = &id {
            if let Some(d) = birth_date {
                if d != id.birth_date() {
                    e.push(FieldError::new(
                        Field::BirthDate,
                        Problem::BirthDateMismatch {
                            given: d,
                            in_id: id.birth_date(),
                            id_number: id.to_string(),
                        },
                    ));
                }
            }
            if let Some(s) = sex {
                if s != id.sex() {
                    e.push(FieldError::new(
                        Field::Sex,
                        Problem::SexMismatch {
                            given: s,
                            in_id: id.sex(),
                            id_number: id.to_string(),
                        },
                    ));
                }
            }
        }
        match (
            id,
            name,
            sex,
            ethnicity,
            birthplace,
            birth_date,
            eligibility,
        ) {
            (
                Some(id_number),
                Some(name),
                Some(sex),
                Some(ethnicity),
                Some(birthplace),
                Some(birth_date),
                Some(eligibility),
            ) if errors.is_empty() => Ok(Applicant {
                id_number,
                name,
                sex,
                ethnicity,
                birthplace,
                birth_date,
                card_class: card_class.unwrap_or(CardClass::Adult),
                eligibility,
                photo,
                phone,
                address,
            }),
            _ => Err(FieldErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn record() -> ApplicantRecord {
        ApplicantRecord {
            id_number: Some("33030219900307001X".into()),
            name: Some("测试张一".into()),
            sex: Some("1".into()),
            ethnicity: Some("01".into()),
            birthplace: Some("330302".into()),
            birth_date: Some("1990-03-07".into()),
            card_class: None,
            eligibility: Some("household".into()),
            ..Default::default()
        }
    }

    fn v() -> Validator {
        Validator::new(date!(2026 - 01 - 10))
    }

    fn fix_check(r: &mut ApplicantRecord, first17: &str) {
        let mut b = [0u8; 17];
        b.copy_from_slice(first17.as_bytes());
        r.id_number = Some(format!("{first17}{}", citizen_id::check_character(&b)));
    }

    fn valid() -> ApplicantRecord {
        let mut r = record();
        fix_check(&mut r, "33030219900307001");
        r
    }

    #[test]
    fn valid_record() {
        let a = v().validate_with_photo(&valid(), None).unwrap();
        assert_eq!(a.name().as_str(), "测试张一");
        assert_eq!(a.card_class(), CardClass::Adult, "defaults to adult");
        assert_eq!(a.birth_date(), date!(1990 - 03 - 07));
        assert!(a.check_issuable().is_ok());
        // to_record round-trips.
        assert_eq!(v().validate_with_photo(&a.to_record(), None).unwrap(), a);
    }

    #[test]
    fn every_missing_field_is_named() {
        let errs = v()
            .validate_with_photo(&ApplicantRecord::default(), None)
            .unwrap_err();
        let required: Vec<Field> = Field::ALL.into_iter().filter(|f| f.is_required()).collect();
        assert_eq!(errs.fields(), required);
        assert!(errs.0.iter().all(|e| e.problem == Problem::Missing));
        assert!(errs.to_string().starts_with("id_number: is required"));
    }

    #[test]
    fn blank_counts_as_missing() {
        let mut r = valid();
        r.name = Some("   ".into());
        let errs = v().validate_with_photo(&r, None).unwrap_err();
        assert_eq!(errs.0, vec![FieldError::new(Field::Name, Problem::Missing)]);
    }

    #[test]
    fn consistency_with_id_number() {
        let mut r = valid();
        r.birth_date = Some("1990-03-08".into());
        let errs = v().validate_with_photo(&r, None).unwrap_err();
        assert_eq!(errs.fields(), vec![Field::BirthDate]);
        assert!(matches!(
            errs.0[0].problem,
            Problem::BirthDateMismatch { .. }
        ));

        let mut r = valid();
        r.sex = Some("2".into());
        let errs = v().validate_with_photo(&r, None).unwrap_err();
        assert_eq!(errs.fields(), vec![Field::Sex]);
        let msg = errs.to_string();
        assert!(
            msg.starts_with("sex: 2 (女) does not match id_number"),
            "{msg}"
        );
    }

    #[test]
    fn several_errors_at_once() {
        let mut r = valid();
        r.ethnicity = Some("57".into());
        r.card_class = Some("5".into());
        r.phone = Some("abc".into());
        let errs = v().validate_with_photo(&r, None).unwrap_err();
        assert_eq!(
            errs.fields(),
            vec![Field::Ethnicity, Field::CardClass, Field::Phone]
        );
    }

    #[test]
    fn future_birth_date() {
        let mut r = valid();
        fix_check(&mut r, "33030220260111001");
        r.birth_date = Some("2026-01-11".into());
        let errs = v().validate_with_photo(&r, None).unwrap_err();
        assert_eq!(errs.fields(), vec![Field::BirthDate]);
    }

    #[test]
    fn ineligible_is_valid_but_not_issuable() {
        let mut r = valid();
        r.eligibility = Some("none".into());
        let a = v().validate_with_photo(&r, None).unwrap();
        let e = a.check_issuable().unwrap_err();
        assert_eq!(e.field, Field::Eligibility);
        assert_eq!(e.problem, Problem::NotEligible);
    }

    #[test]
    fn bad_photo_data() {
        let errs = v()
            .validate_with_photo(&valid(), Some(b"GIF89a".to_vec()))
            .unwrap_err();
        assert_eq!(errs.fields(), vec![Field::Photo]);
    }
}
