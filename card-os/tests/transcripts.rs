//! Every transcript in `test-vectors/transcripts/` runs green against the in-memory card.

mod common;

#[test]
fn fmcos_files_transcript() {
    let text = std::fs::read_to_string(common::vectors_dir().join("transcripts/fmcos-files.apdu"))
        .unwrap();
    let mut card = common::factory_card();
    let exchanges = common::run(&mut card, &text);
    assert!(exchanges.len() > 60, "{} exchanges", exchanges.len());
}
