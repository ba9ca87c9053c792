//! The shared applicant vectors of `test-vectors/applicants/`: every sample row is issuable, every
//! bad row fails on exactly the field `bad-expected.csv` names.

use std::path::PathBuf;

use host_lib::holder::input::{load_csv, load_toml, RowError};
use host_lib::holder::items::{CardholderItems, Record};
use host_lib::holder::{Ethnicity, Field, Problem, Validator};
use time::macros::date;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/applicants")
}

/// A fixed today, so the vectors do not age.
fn validator() -> Validator {
    Validator::new(date!(2026 - 01 - 10))
}

#[test]
fn sample_rows_are_all_issuable() {
    let rows = load_csv(&dir().join("sample.csv"), &validator()).unwrap();
    assert!(rows.len() >= 20, "{} rows", rows.len());
    let mut applicants = Vec::new();
    for row in &rows {
        let a = row
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("line {}: {e}", row.line));
        a.check_issuable().unwrap();
        applicants.push(a.clone());
    }
    // Lines count the header as line 1.
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows.last().unwrap().line, rows.len() as u64 + 1);

    // The data the card tests rely on is there.
    assert!(applicants.iter().any(|a| a.name().needs_extension()));
    assert!(applicants.iter().any(|a| a.name().as_str().contains('堃')));
    assert!(applicants.iter().filter(|a| a.photo().is_some()).count() >= 5);
    assert!(applicants
        .iter()
        .any(|a| a.birthplace().value() / 100 == 3303));
    assert!(applicants
        .iter()
        .any(|a| a.birthplace().value() / 10_000 != 33));
    let ethnicities: std::collections::BTreeSet<u8> =
        applicants.iter().map(|a| a.ethnicity().code()).collect();
    assert!(ethnicities.len() >= 8, "{ethnicities:?}");
    assert!(ethnicities.contains(&Ethnicity::HAN.code()));
    let classes: std::collections::BTreeSet<u8> =
        applicants.iter().map(|a| a.card_class().code()).collect();
    assert_eq!(classes.len(), 4, "every card class appears");
    // Synthetic people only.
    assert!(applicants
        .iter()
        .all(|a| a.name().as_str().starts_with("测试")));

    // Every sample encodes into EF06 records and decodes back.
    for a in &applicants {
        let items = CardholderItems::from_applicant(a);
        let recs: Vec<Vec<u8>> = items.records().iter().map(Record::to_bytes).collect();
        let back = CardholderItems::decode(recs.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back, items);
        assert!(back.inconsistencies().is_empty());
    }
}

#[test]
fn sample_photos_decode_with_a_real_decoder() {
    for i in 1..=6 {
        let bytes = std::fs::read(dir().join(format!("photos/p0{i}.jpg"))).unwrap();
        assert!(bytes.len() <= 4096);
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
        let pixels = jpeg_decoder::Decoder::new(bytes.as_slice())
            .decode()
            .unwrap();
        assert!(!pixels.is_empty());
    }
}

#[test]
fn bad_rows_fail_on_the_expected_field() {
    let expected = std::fs::read_to_string(dir().join("bad-expected.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(expected.as_bytes());
    let expected: Vec<(u64, Field, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[0].parse().unwrap(),
                Field::from_column(&r[1]).unwrap(),
                r[2].to_owned(),
            )
        })
        .collect();
    let rows = load_csv(&dir().join("bad.csv"), &validator()).unwrap();
    assert_eq!(rows.len(), expected.len());
    // The example of host-lib/docs/applicants.md is what operators see.
    assert_eq!(
        rows[2].to_string(),
        "line 4: sex: 2 (女) does not match id_number 330302199002285078, whose 17th digit says 1 (男)"
    );
    for (row, (line, field, fault)) in rows.iter().zip(&expected) {
        assert_eq!(row.line, *line);
        let fields = match &row.result {
            Err(RowError::Invalid(errs)) => {
                for e in &errs.0 {
                    // Messages name the field first.
                    assert!(e.to_string().starts_with(e.field.column()), "{e}");
                }
                errs.fields()
            }
            Err(other) => panic!("line {line} ({fault}): {other}"),
            // Valid data, but the regulation does not let the applicant apply.
            Ok(a) => {
                let e = a.check_issuable().unwrap_err();
                assert_eq!(e.problem, Problem::NotEligible);
                vec![e.field]
            }
        };
        assert_eq!(fields, vec![*field], "line {line} ({fault})");
    }
}

#[test]
fn toml_applicant() {
    let a = load_toml(&dir().join("one.toml"), &validator()).unwrap();
    assert_eq!(a.name().as_str(), "测试张一");
    assert!(
        a.photo().is_some(),
        "photo path is relative to the TOML file"
    );
    let rows = load_csv(&dir().join("sample.csv"), &validator()).unwrap();
    assert_eq!(rows[0].result.as_ref().unwrap(), &a);
}
