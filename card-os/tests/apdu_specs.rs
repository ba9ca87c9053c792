//! apdu-specs/ and the card agree: the documented commands are exactly the dispatch table, the
//! status-word table is exactly `Sw::DOCUMENTED`, every ```apdu example runs, and the memory
//! figures quoted there hold.

mod common;

use card_os::apdu::Sw;
use card_os::card::command::COMMANDS;
use card_os::fs;
use card_os::nvm::Geometry;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn spec_pages() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../apdu-specs");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    pages.sort();
    pages
}

/// `` `CLA[/CLA…] INS` `` in a heading, e.g. `` `00/04 D6` ``.
fn heading_commands(line: &str) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let Some((clas, ins)) = part.split_once(' ') else {
            continue;
        };
        let is_hex = |s: &str| s.len() == 2 && s.chars().all(|c| c.is_ascii_hexdigit());
        if !is_hex(ins) || !clas.split('/').all(is_hex) {
            continue;
        }
        let ins = u8::from_str_radix(ins, 16).unwrap();
        for cla in clas.split('/') {
            out.push((u8::from_str_radix(cla, 16).unwrap(), ins));
        }
    }
    out
}

#[test]
fn documented_commands_are_the_dispatch_table() {
    let mut documented = BTreeSet::new();
    for (path, text) in spec_pages() {
        for line in text.lines().filter(|l| l.starts_with('#')) {
            for pair in heading_commands(line) {
                assert!(
                    documented.insert(pair),
                    "{}: {pair:02X?} documented twice",
                    path.display()
                );
            }
        }
    }
    let handled: BTreeSet<(u8, u8)> = COMMANDS
        .iter()
        .flat_map(|c| c.cla.iter().map(move |&cla| (cla, c.ins)))
        .collect();
    let undocumented: Vec<_> = handled.difference(&documented).collect();
    let unhandled: Vec<_> = documented.difference(&handled).collect();
    assert!(
        undocumented.is_empty(),
        "handled but not documented in apdu-specs: {undocumented:02X?}"
    );
    assert!(
        unhandled.is_empty(),
        "documented in apdu-specs but not handled: {unhandled:02X?}"
    );
}

#[test]
fn status_word_table_is_the_documented_list() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../apdu-specs/status-words.md"),
    )
    .unwrap();
    let mut listed = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let code = line.split('`').nth(1).unwrap();
        let code = code.replace("xx", "00").replace("Cx", "C0");
        let value = u16::from_str_radix(&code, 16).unwrap_or_else(|_| panic!("bad SW {code}"));
        assert!(listed.insert(value), "{code} listed twice");
    }
    let documented: BTreeSet<u16> = Sw::DOCUMENTED.iter().map(|sw| sw.0).collect();
    assert_eq!(listed, documented, "status-words.md vs Sw::DOCUMENTED");
}

#[test]
fn every_apdu_example_runs() {
    let mut blocks = 0;
    for (path, text) in spec_pages() {
        let mut in_block = false;
        let mut block = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with("```apdu") {
                in_block = true;
                block.clear();
            } else if in_block && line.trim_start().starts_with("```") {
                in_block = false;
                let mut card = common::factory_card();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    common::run(&mut card, &block);
                }));
                assert!(
                    result.is_ok(),
                    "example in {} failed (see above)",
                    path.display()
                );
                blocks += 1;
            } else if in_block {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(blocks >= 8, "only {blocks} examples found");
}

#[test]
fn memory_figures_in_memory_md_hold() {
    let g = Geometry::DEFAULT;
    assert_eq!((g.capacity, g.page_size), (32768, 64));
    assert_eq!(g.journal_start(), 64);
    assert_eq!(g.journal_len(), 1344);
    assert_eq!(g.fs_start(), 1408);
    assert_eq!(g.capacity - g.fs_start(), 31360);
    let mut card = common::factory_card();
    let card = card.card().unwrap();
    let mf = fs::file_at(card.storage(), fs::mf_addr(card.storage())).unwrap();
    assert_eq!(mf.header.children_capacity(), 31335);
}
