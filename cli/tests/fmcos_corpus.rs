//! The FMCOS conformance corpus (`test-vectors/fmcos/`) through `citizencard script` on the
//! simulated card: each file on a fresh factory image (serial 00000001), raw answers
//! (`--no-auto-get-response`: the corpus writes down what the card sends), every expectation met.
//! Needs no pcscd.
//!
//! `cargo test -p citizencard --test fmcos_corpus -- --nocapture` prints the figures.

use std::path::PathBuf;
use std::process::Command;

fn citizencard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_citizencard"));
    c.env_remove("CITIZENCARD_READER");
    c
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/fmcos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "apdu"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_through_citizencard_script() {
    let dir = tempfile::tempdir().unwrap();
    let files = corpus_files();
    assert!(files.len() >= 10, "{} files", files.len());
    let mut steps_total = 0;
    for path in &files {
        let image = dir.path().join("card.img");
        let made = citizencard()
            .args(["sim", "new", "--force", "--serial", "00000001", "--image"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(made.status.success(), "sim new: {made:?}");
        let out = citizencard()
            .args(["--no-auto-get-response", "--json", "script", "--sim"])
            .arg(&image)
            .arg(path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            path.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        // One JSON object per step; none unmet.
        let steps = stdout.lines().filter(|l| l.starts_with('{')).count();
        assert!(
            !stdout.contains("\"ok\":false"),
            "{}: {stdout}",
            path.display()
        );
        println!(
            "{}: {steps} steps",
            path.file_name().unwrap().to_string_lossy()
        );
        steps_total += steps;
    }
    println!(
        "FMCOS corpus through `citizencard script`: {} files, {steps_total} steps, all met",
        files.len()
    );
    assert!(steps_total > 500);
}
