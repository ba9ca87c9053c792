//! Applicant files: one person in TOML, a batch in CSV.
//!
//! Both use the same names, those of [`Field::column`]:
//!
//! `id_number, name, sex, ethnicity, birthplace, birth_date, card_class, eligibility, photo,
//! phone, address`
//!
//! The first eight but `card_class` are required; `card_class` defaults to `3` (adult). `photo` is a
//! path relative to the directory of the TOML or CSV file. An unknown key or column is an error
//! (it is most likely a misspelt one), so is a duplicated column.
//!
//! **TOML**: one table of keys. Values are strings; integers (`card_class = 3`) and TOML dates
//! (`birth_date = 1990-03-07`) are taken as their text.
//!
//! **CSV**: a header row naming the columns, in any order (the optional columns may be left out),
//! then one row per applicant. Values are trimmed. The file may be UTF-8 (with or without a byte
//! order mark) or, as spreadsheet programs on Chinese systems often save it, GBK/GB 18030: a file
//! that is not valid UTF-8 is decoded as GB 18030.
//!
//! **Line numbers**: a batch result carries the 1-based physical line of the file where the row
//! starts — what an editor shows — so with the header on line 1 the first applicant is on line
//! 2. Every line counts: blank lines (skipped as rows) and lines before the header; a line ends
//! with `\n`, `\r\n` or a lone `\r`. A value with line breaks inside quotes makes a row span
//! several lines; the number is that of its first line.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Applicant, ApplicantRecord, Field, FieldErrors, Validator};

/// A file-level problem: the file could not be read or does not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// TOML syntax error.
    #[error("{path}: not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A TOML key or CSV column that is not an applicant field.
    #[error("{path}: unknown {what} {name:?}; the fields are: {}", known_fields())]
    UnknownField {
        /// The file.
        path: PathBuf,
        /// "key" or "column".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A TOML value of the wrong type.
    #[error("{path}: {field}: a {found} is not accepted here; write the value as a string")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The field.
        field: Field,
        /// The TOML type found.
        found: &'static str,
    },
    /// A CSV header without a required column.
    #[error("{path}: the header has no column {field}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        field: Field,
    },
    /// A CSV header naming a column twice.
    #[error("{path}: the header names column {field} twice")]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        field: Field,
    },
    /// The CSV header could not be read.
    #[error("{path}: cannot read the CSV header: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The error.
        message: String,
    },
    /// The file is neither UTF-8 nor GB 18030.
    #[error("{path}: the file is neither UTF-8 nor GBK/GB 18030 text")]
    Encoding {
        /// The file.
        path: PathBuf,
    },
    /// The applicant of a TOML file is invalid.
    #[error("{path}: {errors}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The invalid fields.
        errors: FieldErrors,
    },
}

fn known_fields() -> String {
    Field::ALL.map(Field::column).join(", ")
}

/// Why one CSV row yields no applicant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The row is not well-formed CSV (e.g. it has a different number of values than the header).
    #[error("malformed row: {0}")]
    Malformed(String),
    /// Invalid fields.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The same ID number appeared on an earlier row of the batch.
    #[error("id_number: {id_number} already appears on line {first_line}")]
    Duplicate {
        /// The ID number.
        id_number: String,
        /// The line where it first appeared.
        first_line: u64,
    },
}

impl RowError {
    /// The fields the error names (for a duplicate, `id_number`; for a malformed row, none).
    pub fn fields(&self) -> Vec<Field> {
        match self {
            RowError::Malformed(_) => vec![],
            RowError::Invalid(e) => e.fields(),
            RowError::Duplicate { .. } => vec![Field::IdNumber],
        }
    }
}

/// The result for one CSV row.
#[derive(Debug, Clone)]
pub struct BatchRow {
    /// 1-based line number where the row starts (the header is line 1).
    pub line: u64,
    /// The applicant, or why not.
    pub result: Result<Applicant, RowError>,
}

impl fmt::Display for BatchRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(a) => write!(f, "line {}: ok: {} {}", self.line, a.id_number(), a.name()),
            Err(e) => write!(f, "line {}: {e}", self.line),
        }
    }
}

/// Reads one applicant from a TOML file.
pub fn load_toml(path: &Path, validator: &Validator) -> Result<Applicant, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text, path, validator)
}

/// Parses one applicant from TOML text; `path` names the file in messages and its directory
/// anchors the photo path.
pub fn parse_toml(text: &str, path: &Path, validator: &Validator) -> Result<Applicant, LoadError> {
    let record = toml_record(text, path)?;
    validator
        .validate(&record, base_dir(path))
        .map_err(|errors| LoadError::Invalid {
            path: path.to_owned(),
            errors,
        })
}

/// The record of a TOML text, without validation.
pub fn toml_record(text: &str, path: &Path) -> Result<ApplicantRecord, LoadError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| LoadError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut record = ApplicantRecord::default();
    for (key, value) in table {
        let field = Field::from_column(&key).ok_or_else(|| LoadError::UnknownField {
            path: path.to_owned(),
            what: "key",
            name: key.clone(),
        })?;
        let wrong = |found| LoadError::WrongType {
            path: path.to_owned(),
            field,
            found,
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Float(_) => return Err(wrong("float")),
            toml::Value::Boolean(_) => return Err(wrong("boolean")),
            toml::Value::Array(_) => return Err(wrong("array")),
            toml::Value::Table(_) => return Err(wrong("table")),
        };
        record.set(field, Some(text));
    }
    Ok(record)
}

/// Reads a CSV batch. One bad row does not stop the others: each row gets its own result.
pub fn load_csv(path: &Path, validator: &Validator) -> Result<Vec<BatchRow>, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_csv(&bytes, path, validator)
}

/// Parses a CSV batch from bytes; `path` names the file in messages and its directory anchors
/// photo paths.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    validator: &Validator,
) -> Result<Vec<BatchRow>, LoadError> {
    let text = decode_text(bytes).ok_or_else(|| LoadError::Encoding {
        path: path.to_owned(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| LoadError::Csv {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .clone();
    let mut columns: HashMap<Field, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let field = Field::from_column(name).ok_or_else(|| LoadError::UnknownField {
            path: path.to_owned(),
            what: "column",
            name: name.to_owned(),
        })?;
        if columns.insert(field, i).is_some() {
            return Err(LoadError::DuplicateColumn {
                path: path.to_owned(),
                field,
            });
        }
    }
    if let Some(field) = Field::ALL
        .into_iter()
        .find(|f| f.is_required() && !columns.contains_key(f))
    {
        return Err(LoadError::MissingColumn {
            path: path.to_owned(),
            field,
        });
    }
    let base = base_dir(path);
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rows = Vec::new();
    for item in reader.records() {
        let row = match item {
            Err(e) => BatchRow {
                line: e.position().map_or(0, |p| physical_line(&text, p.byte())),
                result: Err(RowError::Malformed(csv_error_message(&e))),
            },
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| physical_line(&text, p.byte()));
                let mut record = ApplicantRecord::default();
                for (field, i) in &columns {
                    record.set(*field, rec.get(*i).map(str::to_owned));
                }
                let result = validator
                    .validate(&record, base)
                    .map_err(RowError::Invalid)
                    .and_then(|a| {
                        let id = a.id_number().to_string();
                        match seen.get(&id) {
                            Some(first) => Err(RowError::Duplicate {
                                id_number: id,
                                first_line: *first,
                            }),
                            None => {
                                seen.insert(id, line);
                                Ok(a)
                            }
                        }
                    });
                BatchRow { line, result }
            }
        };
        rows.push(row);
    }
    Ok(rows)
}

/// The 1-based physical line of the file on which the record the csv reader reports at byte
/// `byte` starts. The reader's own line count misses `\r\n` and lone `\r` line ends and
/// blank lines, and its byte position can point at the line end before the record, so: skip
/// line ends from there to the record's first byte, then count the line ends before it (`\r\n`,
/// `\n` or a lone `\r` each end one line).
fn physical_line(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    let before = &bytes[..start];
    let ends = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && before.get(i + 1) != Some(&b'\n')))
        .count();
    // A `\r` right before `start` whose `\n` is at `start` cannot happen: `start` skipped it.
    ends as u64 + 1
}

fn csv_error_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("it has {len} values but the header has {expected_len} columns"),
        _ => e.to_string(),
    }
}

/// UTF-8 (minus a BOM) as is; otherwise GB 18030 (a superset of GBK), strictly.
fn decode_text(bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s.into()),
        Err(_) => encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes),
    }
}

fn base_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn v() -> Validator {
        Validator::new(date!(2026 - 01 - 10))
    }

    const HEADER: &str = "id_number,name,sex,ethnicity,birthplace,birth_date,eligibility\n";

    #[test]
    fn toml_with_native_types() {
        let text = r#"
            id_number = "11010519491231002X"
            name = "测试李二"
            sex = "女"
            ethnicity = 1
            birthplace = "110105"
            birth_date = 1949-12-31
            card_class = 4
            eligibility = "insured"
        "#;
        let a = parse_toml(text, Path::new("/nowhere/a.toml"), &v()).unwrap();
        assert_eq!(a.card_class(), super::super::CardClass::Elderly);
        assert_eq!(a.birth_date(), date!(1949 - 12 - 31));
    }

    #[test]
    fn toml_errors() {
        let p = Path::new("x.toml");
        assert!(matches!(
            parse_toml("name = ", p, &v()),
            Err(LoadError::Toml { .. })
        ));
        let e = parse_toml("nmae = \"x\"", p, &v()).unwrap_err();
        assert!(matches!(e, LoadError::UnknownField { ref name, .. } if name == "nmae"));
        assert!(e.to_string().contains("id_number, name"), "{e}");
        assert!(matches!(
            parse_toml("sex = true", p, &v()),
            Err(LoadError::WrongType {
                field: Field::Sex,
                ..
            })
        ));
        match parse_toml("name = \"测试\"", p, &v()) {
            Err(LoadError::Invalid { errors, .. }) => {
                assert!(errors.fields().contains(&Field::IdNumber));
                assert!(!errors.fields().contains(&Field::Name));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn csv_line_numbers_and_isolation() {
        let text = format!(
            "{HEADER}11010519491231002X,测试李二,2,01,110105,1949-12-31,household\n\
             110105194912310021,测试李三,2,01,110105,1949-12-31,household\n\
             \"11010519491231002X\",\"测试\n李四\",2,01,110105,1949-12-31,household\n\
             11010519491231002X,测试李二,2,01\n\
             11010519491231002X,测试李二,2,01,110105,1949-12-31,household\n"
        );
        let rows = parse_csv(text.as_bytes(), Path::new("b.csv"), &v()).unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 6, 7]);
        assert!(rows[0].result.is_ok());
        assert_eq!(
            rows[1].result.as_ref().unwrap_err().fields(),
            vec![Field::IdNumber]
        );
        // A name with a line break is refused, and the row is numbered by its first line.
        assert_eq!(
            rows[2].result.as_ref().unwrap_err().fields(),
            vec![Field::Name]
        );
        assert!(matches!(rows[3].result, Err(RowError::Malformed(_))));
        assert_eq!(
            rows[4].result.as_ref().unwrap_err(),
            &RowError::Duplicate {
                id_number: "11010519491231002X".into(),
                first_line: 2
            }
        );
        assert_eq!(
            rows[3].to_string(),
            "line 6: malformed row: it has 4 values but the header has 7 columns"
        );
    }

    #[test]
    fn csv_rows_are_numbered_by_the_files_physical_lines() {
        let h = HEADER.trim_end();
        let row = "11010519491231002X,测试李二,2,01,110105,1949-12-31,household";
        let row2 = "110105194912310021,测试李三,2,01,110105,1949-12-31,household";
        let short = "11010519491231002X,测试李二,2,01";
        for (text, want) in [
            // CRLF line ends, blank lines between rows.
            (format!("{h}\r\n{row}\r\n\r\n\r\n{row2}\r\n"), vec![2, 5]),
            (format!("{h}\n\n{row}\n\n\n{row2}\n"), vec![3, 6]),
            // Old Mac line ends.
            (format!("{h}\r{row}\r\r{row2}\r"), vec![2, 4]),
            // Blank lines before the header.
            (format!("\n\r\n{h}\n{row}\n{row2}"), vec![4, 5]),
            // A quoted value over three lines (CRLF inside), then a malformed row.
            (
                format!(
                    "{h}\r\n\"11010519491231002X\",\"a\r\nb\r\nc\",2\r\n\r\n{short}\r\n{row2}\r\n"
                ),
                vec![2, 6, 7],
            ),
        ] {
            let rows = parse_csv(text.as_bytes(), Path::new("b.csv"), &v()).unwrap();
            let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, want, "{text:?}");
        }
        // The message names the physical line too.
        let text = format!("{h}\r\n\r\n{short}\r\n");
        let rows = parse_csv(text.as_bytes(), Path::new("b.csv"), &v()).unwrap();
        assert!(
            rows[0].to_string().starts_with("line 3: malformed row"),
            "{}",
            rows[0]
        );
    }

    #[test]
    fn csv_header_problems() {
        let p = Path::new("b.csv");
        assert!(matches!(
            parse_csv(b"id_number,name\n", p, &v()),
            Err(LoadError::MissingColumn {
                field: Field::Sex,
                ..
            })
        ));
        assert!(matches!(
            parse_csv(b"id_number,name,name\n", p, &v()),
            Err(LoadError::DuplicateColumn {
                field: Field::Name,
                ..
            })
        ));
        assert!(matches!(
            parse_csv(b"id_number,birthdate\n", p, &v()),
            Err(LoadError::UnknownField { .. })
        ));
    }

    #[test]
    fn csv_in_gbk_and_with_bom() {
        let row = "11010519491231002X,测试李二,女,汉族,110105,19491231,户籍\n";
        let text = format!("{HEADER}{row}");
        let (gbk, _, bad) = encoding_rs::GBK.encode(&text);
        assert!(!bad);
        let rows = parse_csv(&gbk, Path::new("b.csv"), &v()).unwrap();
        assert_eq!(rows[0].result.as_ref().unwrap().name().as_str(), "测试李二");
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        let rows = parse_csv(&bom, Path::new("b.csv"), &v()).unwrap();
        assert!(rows[0].result.is_ok());
        assert!(matches!(
            parse_csv(b"\xFF\xFE\x00", Path::new("b.csv"), &v()),
            Err(LoadError::Encoding { .. })
        ));
    }
}
