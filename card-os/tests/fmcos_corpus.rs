//! The FMCOS 2.0 conformance corpus (`test-vectors/fmcos/`): every file runs green on a factory
//! card, each expectation matched byte for byte. The files are the manual's chapter 7-8 examples
//! and command-table forms, and public FMCOS reading/personalization sequences (see the folder's
//! README); where this card answers differently from the manual the line says so and
//! `apdu-specs/conformance.md` has the row.
//!
//! `cargo test -p card-os --test fmcos_corpus -- --nocapture` prints the figures.

mod common;

use std::path::PathBuf;

fn corpus_files() -> Vec<PathBuf> {
    let dir = common::vectors_dir().join("fmcos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "apdu"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_runs_green() {
    let files = corpus_files();
    let mut apdus = 0;
    let mut checked = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let steps = common::parse(&text);
        let expectations = steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    common::Step::Apdu {
                        expect: Some(_),
                        ..
                    }
                )
            })
            .count();
        let mut card = common::factory_card();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let exchanges = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            common::run(&mut card, &text)
        }))
        .unwrap_or_else(|_| panic!("{name} failed (see above)"));
        println!(
            "{name}: {} APDUs, {expectations} expectations met",
            exchanges.len()
        );
        apdus += exchanges.len();
        checked += expectations;
    }
    println!(
        "FMCOS corpus: {} files, {apdus} APDUs, {checked} expectations met",
        files.len()
    );
    // The manual's chapters 7-8 (8 files) and the public sequences (at least 2) are all here.
    assert!(files.len() >= 10, "{} files", files.len());
    assert!(apdus > 500, "{apdus} APDUs");
    // Every APDU of the corpus says what it expects.
    assert_eq!(checked, apdus, "APDUs without an expectation");
}

/// Every line that expects this card's answer where the manual says otherwise names its row, and
/// every row is in apdu-specs/conformance.md.
#[test]
fn every_difference_has_a_conformance_row() {
    let table = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../apdu-specs/conformance.md"),
    )
    .unwrap();
    let mut rows = 0;
    let mut used = std::collections::BTreeSet::new();
    for path in corpus_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(row) = line.trim().strip_prefix("# conformance: ") {
                let row = row.trim();
                assert!(
                    table.contains(&format!("| {row} |")),
                    "{}:{}: no row `{row}` in apdu-specs/conformance.md",
                    path.display(),
                    i + 1
                );
                rows += 1;
                used.insert(row.to_owned());
            }
        }
    }
    assert!(rows > 0);
    // ...and every row of the table still names corpus lines: a difference the card no longer has
    // leaves the table with its corpus lines.
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let row = line.split('|').nth(1).unwrap_or_default().trim();
        if row == "row" {
            continue;
        }
        assert!(
            used.contains(row),
            "conformance.md row `{row}` has no `# conformance: {row}` line in the corpus"
        );
    }
}
