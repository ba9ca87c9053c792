//! Random and malformed APDUs against a personalized card: every one gets a status word, none
//! panics, and the card keeps answering afterwards.

mod common;

use card_os::apdu::Sw;
use card_os::card::command::COMMANDS;
use card_os::sim::SimCard;
use proptest::prelude::*;

fn personalized() -> SimCard {
    let text = std::fs::read_to_string(common::vectors_dir().join("transcripts/fmcos-files.apdu"))
        .unwrap();
    let mut card = common::factory_card();
    common::run(&mut card, &text);
    card
}

/// Whether a response ends in a status word the card documents (apdu-specs/status-words.md).
fn documented_sw(response: &[u8]) -> bool {
    let [.., sw1, sw2] = response else {
        return false;
    };
    let sw = Sw::from_bytes(*sw1, *sw2);
    let family = match sw.sw1() {
        0x61 | 0x6C => Sw::from_bytes(sw.sw1(), 0),
        0x63 if sw.sw2() & 0xF0 == 0xC0 => Sw::TRIES_LEFT,
        _ => sw,
    };
    Sw::DOCUMENTED.contains(&family)
}

fn still_answers(card: &mut SimCard) {
    assert_eq!(
        card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]),
        vec![0x90, 0x00]
    );
    assert_eq!(
        card.transmit(&[0x00, 0xB0, 0x81, 0x00, 0x04]),
        vec![0x11, 0x22, 0x33, 0x44, 0x90, 0x00]
    );
}

/// APDUs with a header the card knows (so they reach the parsers), random P1/P2 and body.
fn known_header_apdu() -> impl Strategy<Value = Vec<u8>> {
    let instructions: Vec<(u8, u8)> = COMMANDS
        .iter()
        .flat_map(|c| c.cla.iter().map(move |&cla| (cla, c.ins)))
        .collect();
    (
        proptest::sample::select(instructions),
        any::<[u8; 2]>(),
        proptest::collection::vec(any::<u8>(), 0..296),
    )
        .prop_map(|((cla, ins), [p1, p2], body)| {
            let mut apdu = vec![cla, ins, p1, p2];
            apdu.extend(body);
            apdu
        })
}

/// Well-formed short APDUs (correct Lc) with known headers: they reach the execution code.
fn well_formed_apdu() -> impl Strategy<Value = Vec<u8>> {
    let instructions: Vec<(u8, u8)> = COMMANDS
        .iter()
        .flat_map(|c| c.cla.iter().map(move |&cla| (cla, c.ins)))
        .collect();
    (
        proptest::sample::select(instructions),
        any::<[u8; 2]>(),
        proptest::collection::vec(any::<u8>(), 0..255),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|((cla, ins), [p1, p2], data, le)| {
            let mut apdu = vec![cla, ins, p1, p2];
            if !data.is_empty() {
                apdu.push(data.len() as u8);
                apdu.extend(data);
            }
            apdu.extend(le);
            apdu
        })
}

/// The card of fmcos-personalization.apdu's personalization part: key files with every kind of
/// key, a PIN, protected files; its random fixed so GET CHALLENGE always answers.
fn with_keys() -> SimCard {
    let text = std::fs::read_to_string(
        common::vectors_dir().join("transcripts/fmcos-personalization.apdu"),
    )
    .unwrap();
    let personalization = text.split("# --- The rights now apply").next().unwrap();
    let mut card = common::factory_card();
    common::run(&mut card, personalization);
    card.set_rng(card_os::sim::SimRng::fixed(&[1, 2, 3, 4]));
    card
}

/// Well-formed APDUs of the security commands (random parameters and data), with GET CHALLENGE
/// and SELECT of the DF mixed in so that the handlers run past their first checks.
fn security_apdu() -> impl Strategy<Value = Vec<u8>> {
    let security: Vec<(u8, u8)> = COMMANDS
        .iter()
        .filter(|c| [0xD4, 0x82, 0x88, 0x20, 0x5E, 0x24, 0x1E, 0x18, 0x16].contains(&c.ins))
        .flat_map(|c| c.cla.iter().map(move |&cla| (cla, c.ins)))
        .collect();
    let random = (
        proptest::sample::select(security),
        prop_oneof![any::<[u8; 2]>(), Just([0, 0]), Just([0, 1]), Just([1, 0])],
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|((cla, ins), [p1, p2], data, le)| {
            let mut apdu = vec![cla, ins, p1, p2];
            if !data.is_empty() {
                apdu.push(data.len() as u8);
                apdu.extend(data);
            }
            apdu.extend(le);
            apdu
        });
    prop_oneof![
        4 => random,
        1 => Just(vec![0x00, 0x84, 0x00, 0x00, 0x04]),
        1 => Just(vec![0x00, 0xA4, 0x00, 0x0C, 0x02, 0x10, 0x01]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn security_commands_get_a_status_word(apdus in proptest::collection::vec(security_apdu(), 1..40)) {
        let mut card = with_keys();
        for apdu in &apdus {
            let r = card.transmit(apdu);
            prop_assert!(r.len() >= 2, "no status word for {}", hex::encode(apdu));
            prop_assert!(documented_sw(&r), "undocumented SW {} for {}", hex::encode(&r), hex::encode(apdu));
        }
        prop_assert_eq!(card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]), vec![0x90, 0x00]);
    }

    #[test]
    fn random_bytes_get_a_status_word(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut card = personalized();
        for apdu in &apdus {
            let r = card.transmit(apdu);
            prop_assert!(r.len() >= 2, "no status word for {}", hex::encode(apdu));
            prop_assert!(documented_sw(&r), "undocumented SW {} for {}", hex::encode(&r), hex::encode(apdu));
        }
        still_answers(&mut card);
    }

    #[test]
    fn known_headers_get_a_status_word(apdus in proptest::collection::vec(prop_oneof![known_header_apdu(), well_formed_apdu()], 1..30)) {
        let mut card = personalized();
        for apdu in &apdus {
            let r = card.transmit(apdu);
            prop_assert!(r.len() >= 2, "no status word for {}", hex::encode(apdu));
            prop_assert!(r.len() <= 258);
            prop_assert!(documented_sw(&r), "undocumented SW {} for {}", hex::encode(&r), hex::encode(apdu));
        }
        // The random commands may have written anything the layout allows (every right is F0),
        // so only check that the card still parses and answers a plain SELECT.
        prop_assert_eq!(card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]), vec![0x90, 0x00]);
    }
}

#[test]
fn degenerate_lengths() {
    let mut card = personalized();
    for len in 0..=300usize {
        let apdu = vec![0x00; len];
        let r = card.transmit(&apdu);
        assert!(r.len() >= 2, "length {len}");
    }
    still_answers(&mut card);
}
