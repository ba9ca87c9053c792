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

#[test]
fn fmcos_security_vectors_transcript() {
    // TV-1, TV-2, TV-3 and TV-8 a–d through the card's own commands (card-specs §6).
    let text = std::fs::read_to_string(
        common::vectors_dir().join("transcripts/fmcos-security-vectors.apdu"),
    )
    .unwrap();
    let mut card = common::factory_card();
    let exchanges = common::run(&mut card, &text);
    assert!(exchanges.len() > 40, "{} exchanges", exchanges.len());
}

#[test]
fn fmcos_personalization_transcript() {
    // A blank card personalized the FMCOS way (MF and DF key files, external-auth and
    // line-protection keys, PIN, MAC-protected files), then every right it set checked: plain
    // writes 6982, protected writes with right and wrong MACs, the PIN blocking after three
    // wrong tries, unblock/change/reload, key updates, the life cycle.
    let text = std::fs::read_to_string(
        common::vectors_dir().join("transcripts/fmcos-personalization.apdu"),
    )
    .unwrap();
    let mut card = common::factory_card();
    let exchanges = common::run(&mut card, &text);
    assert!(exchanges.len() > 80, "{} exchanges", exchanges.len());
}

#[test]
fn fmcos_protected_reads_transcript() {
    // Line-protected READ BINARY / READ RECORD under DES, 3DES and SM4 read keys, plain and
    // encrypted answers, and every refusal (no MAC, wrong MAC, no challenge, wrong Le, read right),
    // with MACs and cryptograms from the independent Python crypto (make_protected_reads.py).
    let text = std::fs::read_to_string(
        common::vectors_dir().join("transcripts/fmcos-protected-reads.apdu"),
    )
    .unwrap();
    let mut card = common::factory_card();
    let exchanges = common::run(&mut card, &text);
    assert!(exchanges.len() > 40, "{} exchanges", exchanges.len());
}

#[test]
fn ldt32_stk_transcript() {
    // LD/T 32 secure messaging under session keys (3DES and SM4 STK, a DES PUK): MAC'd and
    // encrypted writes, a protected read, the life cycle and PIN UNBLOCK, next to an FMCOS key;
    // MACs from the independent Python crypto (make_stk.py).
    let text =
        std::fs::read_to_string(common::vectors_dir().join("transcripts/ldt32-stk.apdu")).unwrap();
    let mut card = common::factory_card();
    let exchanges = common::run(&mut card, &text);
    assert!(exchanges.len() > 30, "{} exchanges", exchanges.len());
}
