//! Command sequences against a personalized simulated card (the FMCOS personalization transcript
//! of test-vectors/, up to its life-cycle section): every command gets a status word, nothing
//! panics, and the card still answers a plain SELECT afterwards. The input is a length-prefixed list of APDUs (one length byte, then
//! that many bytes), so the fuzzer can shape each APDU; an APDU starting `00 FF` also resets the
//! card after its answer.
#![no_main]

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{MemoryNvm, SimCard};
use host_lib::script::Script;
use host_lib::transport::sim::SimTransport;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SETUP: &str = include_str!("../../test-vectors/transcripts/fmcos-personalization.apdu");

/// The personalization transcript without its life-cycle section: that section ends with DF 1001
/// blocked for good and a CARD BLOCK, after which the card answers `6A81` to everything and leaves
/// the fuzzer nothing to explore.
fn setup() -> &'static str {
    SETUP.split("# --- Life cycle").next().unwrap_or(SETUP)
}

/// The personalized card's memory, made once.
fn personalized() -> &'static MemoryNvm {
    static IMAGE: OnceLock<MemoryNvm> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let card =
            SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 1])).unwrap();
        let mut t = SimTransport::from_card(card, "fuzz");
        let script = Script::parse(setup()).unwrap();
        host_lib::script::run(&mut t, &script, Default::default(), |_| {}).unwrap();
        t.into_card().into_nvm()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut card = SimCard::from_nvm(personalized().snapshot()).ok().unwrap();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (apdu, tail) = tail.split_at(n);
        rest = tail;
        let response = card.transmit(apdu);
        assert!(
            response.len() >= 2 && response.len() <= 258,
            "{apdu:02X?} -> {response:02X?}"
        );
        if apdu.first() == Some(&0x00) && apdu.get(1) == Some(&0xFF) {
            card.reset();
        }
    }
    let answer = card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]);
    assert!(answer.len() == 2, "{answer:02X?}");
});
