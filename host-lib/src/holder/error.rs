//! Validation errors: every problem names the field it belongs to.

use std::fmt;

use serde::Serialize;
use time::Date;

use super::citizen_id::CitizenIdError;
use super::codes::{CardClassError, EligibilityError, SexError};
use super::contact::{AddressError, PhoneError};
use super::dates::DateError;
use super::ethnicity::EthnicityError;
use super::name::NameError;
use super::photo::PhotoError;
use super::region::RegionError;

/// A field of an applicant record. Its [`Display`](fmt::Display) form is the column name used in
/// CSV headers and TOML keys, so an error message points at exactly what the operator typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `id_number`: citizen ID number (GB 11643), also the social security number.
    IdNumber,
    /// `name`: the holder's name.
    Name,
    /// `sex`: GB 2261.1 code.
    Sex,
    /// `ethnicity`: GB 3304 code.
    Ethnicity,
    /// `birthplace`: GB/T 2260 region code.
    Birthplace,
    /// `birth_date`.
    BirthDate,
    /// `card_class`: EF05 item 02.
    CardClass,
    /// `eligibility`: why the applicant may hold a Wenzhou card.
    Eligibility,
    /// `photo`: path of a JPEG file.
    Photo,
    /// `phone`: contact telephone number (optional, not written to the card).
    Phone,
    /// `address`: contact address (optional, not written to the card).
    Address,
}

impl Field {
    /// Every field, in the order of the CSV columns.
    pub const ALL: [Field; 11] = [
        Field::IdNumber,
        Field::Name,
        Field::Sex,
        Field::Ethnicity,
        Field::Birthplace,
        Field::BirthDate,
        Field::CardClass,
        Field::Eligibility,
        Field::Photo,
        Field::Phone,
        Field::Address,
    ];

    /// The column / key name of the field.
    pub const fn column(self) -> &'static str {
        match self {
            Field::IdNumber => "id_number",
            Field::Name => "name",
            Field::Sex => "sex",
            Field::Ethnicity => "ethnicity",
            Field::Birthplace => "birthplace",
            Field::BirthDate => "birth_date",
            Field::CardClass => "card_class",
            Field::Eligibility => "eligibility",
            Field::Photo => "photo",
            Field::Phone => "phone",
            Field::Address => "address",
        }
    }

    /// The field whose column name is `name`, if any.
    pub fn from_column(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.column() == name)
    }

    /// Whether an applicant record must give this field.
    pub const fn is_required(self) -> bool {
        !matches!(
            self,
            Field::Photo | Field::Phone | Field::Address | Field::CardClass
        )
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.column())
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required field is absent or blank.
    #[error("is required but was not given")]
    Missing,
    /// See [`CitizenIdError`].
    #[error(transparent)]
    IdNumber(#[from] CitizenIdError),
    /// See [`NameError`].
    #[error(transparent)]
    Name(#[from] NameError),
    /// See [`SexError`].
    #[error(transparent)]
    Sex(#[from] SexError),
    /// See [`EthnicityError`].
    #[error(transparent)]
    Ethnicity(#[from] EthnicityError),
    /// See [`RegionError`].
    #[error(transparent)]
    Region(#[from] RegionError),
    /// See [`DateError`].
    #[error(transparent)]
    Date(#[from] DateError),
    /// See [`CardClassError`].
    #[error(transparent)]
    CardClass(#[from] CardClassError),
    /// See [`EligibilityError`].
    #[error(transparent)]
    Eligibility(#[from] EligibilityError),
    /// See [`PhotoError`].
    #[error(transparent)]
    Photo(#[from] PhotoError),
    /// See [`PhoneError`].
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// See [`AddressError`].
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The birth date disagrees with the one encoded in the ID number (digits 7–14).
    #[error("{given} does not match the birth date {in_id} encoded in id_number {id_number}")]
    BirthDateMismatch {
        /// The birth date the record gives.
        given: Date,
        /// The birth date digits of the ID number.
        in_id: Date,
        /// The ID number.
        id_number: String,
    },
    /// The sex disagrees with the 17th digit of the ID number (odd: male, even: female).
    #[error("{given} does not match id_number {id_number}, whose 17th digit says {in_id}")]
    SexMismatch {
        /// The sex the record gives.
        given: super::Sex,
        /// The sex implied by the ID number.
        in_id: super::Sex,
        /// The ID number.
        id_number: String,
    },
    /// The applicant has neither Wenzhou household registration nor Wenzhou insurance.
    #[error(
        "the applicant has neither a Wenzhou household registration nor insurance in Wenzhou, \
         so the regulation does not let them apply for a card"
    )]
    NotEligible,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field.
    pub field: Field,
    /// What is wrong with it.
    pub problem: Problem,
}

impl FieldError {
    /// A field error.
    pub fn new(field: Field, problem: impl Into<Problem>) -> Self {
        FieldError {
            field,
            problem: problem.into(),
        }
    }
}

/// All the invalid fields of one applicant (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// The fields named, in order.
    pub fn fields(&self) -> Vec<Field> {
        self.0.iter().map(|e| e.field).collect()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        FieldErrors(vec![e])
    }
}
