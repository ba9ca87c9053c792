//! Shared by card-os integration tests: the transcript format of `test-vectors/transcripts/` and a
//! factory card to run it on.
#![allow(dead_code)]

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{SimCard, SimRng};
use std::path::PathBuf;

/// The repository's `test-vectors/` folder.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

/// The card every transcript starts on: factory state, default geometry, serial 00000001.
pub fn factory_card() -> SimCard {
    SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 1])).unwrap()
}

/// One step of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Reset,
    /// `random <hex>`: the card's random source replays these bytes from now on.
    Random(Vec<u8>),
    /// An APDU, the expected response (`None` = any byte, from `xx`), and the 1-based line.
    Apdu {
        apdu: Vec<u8>,
        expect: Option<Vec<Option<u8>>>,
        line: usize,
    },
}

fn hex_bytes(s: &str, line: usize) -> Vec<u8> {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    hex::decode(&clean).unwrap_or_else(|e| panic!("line {line}: bad hex {s:?}: {e}"))
}

fn pattern(s: &str, line: usize) -> Vec<Option<u8>> {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    assert!(
        clean.len().is_multiple_of(2),
        "line {line}: odd number of hex digits in {s:?}"
    );
    (0..clean.len())
        .step_by(2)
        .map(|i| match &clean[i..i + 2] {
            "xx" | "XX" => None,
            h => Some(u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("line {line}: {h:?}"))),
        })
        .collect()
}

/// Parses a transcript (format: test-vectors/README.md).
pub fn parse(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        if content.eq_ignore_ascii_case("reset") {
            steps.push(Step::Reset);
            continue;
        }
        if let Some(bytes) = content.strip_prefix("random ") {
            steps.push(Step::Random(hex_bytes(bytes, line)));
            continue;
        }
        let (apdu, expect) = match content.split_once("=>") {
            Some((a, e)) => (a, Some(pattern(e, line))),
            None => (content, None),
        };
        steps.push(Step::Apdu {
            apdu: hex_bytes(apdu, line),
            expect,
            line,
        });
    }
    steps
}

/// Runs a transcript on a card; panics at the first unmet expectation. Returns the exchanges.
pub fn run(card: &mut SimCard, text: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut exchanges = Vec::new();
    for step in parse(text) {
        match step {
            Step::Reset => card.reset(),
            Step::Random(bytes) => card.set_rng(SimRng::fixed(&bytes)),
            Step::Apdu { apdu, expect, line } => {
                let response = card.transmit(&apdu);
                if let Some(expect) = expect {
                    let ok = expect.len() == response.len()
                        && expect
                            .iter()
                            .zip(&response)
                            .all(|(e, r)| e.is_none_or(|e| e == *r));
                    assert!(
                        ok,
                        "line {line}: {}\n expected {}\n      got {}",
                        hex::encode_upper(&apdu),
                        expect
                            .iter()
                            .map(|b| b.map_or("xx".into(), |b| format!("{b:02X}")))
                            .collect::<String>(),
                        hex::encode_upper(&response)
                    );
                }
                exchanges.push((apdu, response));
            }
        }
    }
    exchanges
}
