//! The security-state registers and the one-time challenge, as the card's volatile state shows
//! them, on the card of `fmcos-personalization.apdu` (its personalization part): FMCOS 2.0 §5.1–5.3,
//! §7.2, §7.4.

mod common;

use card_os::crypto::{challenge_cryptogram, Key};
use card_os::security::SecurityState;
use card_os::sim::{SimCard, SimRng};

const K_MF: &str = "404142434445464748494A4B4C4D4E4F";
const K_DF: &str = "606162636465666768696A6B6C6D6E6F";
const CHALLENGE: [u8; 4] = [0x0C, 0x0D, 0x0E, 0x0F];

/// A card personalized by the first part of fmcos-personalization.apdu (up to the checks).
fn personalized() -> SimCard {
    let text = std::fs::read_to_string(
        common::vectors_dir().join("transcripts/fmcos-personalization.apdu"),
    )
    .unwrap();
    let personalization = text.split("# --- The rights now apply").next().unwrap();
    let mut card = common::factory_card();
    common::run(&mut card, personalization);
    card.reset();
    card.set_rng(SimRng::fixed(&CHALLENGE));
    card
}

fn state(card: &mut SimCard) -> SecurityState {
    card.card().unwrap().volatile().security
}

fn send(card: &mut SimCard, apdu: &str) -> String {
    hex::encode_upper(card.transmit(&hex::decode(apdu.replace(' ', "")).unwrap()))
}

fn authenticate(card: &mut SimCard, key: &str) -> String {
    let key = Key::from_id(1, &hex::decode(key).unwrap()).unwrap();
    assert_eq!(send(card, "0084000004"), "0C0D0E0F9000");
    let cryptogram = challenge_cryptogram(&key, &CHALLENGE).unwrap();
    send(
        card,
        &format!("0082000008{}", hex::encode_upper(cryptogram.as_slice())),
    )
}

#[test]
fn registers_follow_fmcos() {
    let mut card = personalized();
    let st = |mf, df| SecurityState { mf, df };
    assert_eq!(state(&mut card), st(0, 0));
    // At the MF, authentication sets both registers to the follow-on state (A).
    assert_eq!(authenticate(&mut card, K_MF), "9000");
    assert_eq!(state(&mut card), st(0xA, 0xA));
    // Entering a DF clears its register; the MF's stays.
    assert_eq!(send(&mut card, "00A4000C02 1001"), "9000");
    assert_eq!(state(&mut card), st(0xA, 0));
    // In a DF only the DF's register changes.
    assert_eq!(send(&mut card, "0020000003 123456"), "9000");
    assert_eq!(state(&mut card), st(0xA, 1));
    // A failure changes nothing (and costs a try).
    assert_eq!(send(&mut card, "0020000003 000000"), "63C2");
    assert_eq!(state(&mut card), st(0xA, 1));
    assert_eq!(authenticate(&mut card, K_DF), "9000");
    assert_eq!(state(&mut card), st(0xA, 0xA));
    // Re-selecting the current DF clears it too; selecting the MF makes the DF register the MF's.
    assert_eq!(send(&mut card, "00A4000C02 1001"), "9000");
    assert_eq!(state(&mut card), st(0xA, 0));
    assert_eq!(send(&mut card, "00A4000C02 3F00"), "9000");
    assert_eq!(state(&mut card), st(0xA, 0xA));
    // Reset and power-off clear both.
    card.reset();
    assert_eq!(state(&mut card), st(0, 0));
    assert_eq!(authenticate(&mut card, K_MF), "9000");
    card.power_off();
    card.power_on().unwrap();
    assert_eq!(state(&mut card), st(0, 0));
}

#[test]
fn a_challenge_serves_the_next_command_only() {
    let mut card = personalized();
    let key = Key::from_id(1, &hex::decode(K_MF).unwrap()).unwrap();
    let cryptogram = hex::encode_upper(challenge_cryptogram(&key, &CHALLENGE).unwrap().as_slice());
    // Any command in between uses it up, even one that fails or does not parse.
    for between in ["00A4000C02 3F00", "00B0990000", "00", "0084000005"] {
        assert_eq!(send(&mut card, "0084000004"), "0C0D0E0F9000");
        send(&mut card, between);
        assert_eq!(
            send(&mut card, &format!("0082000008{cryptogram}")),
            "6984",
            "after {between}"
        );
    }
    // A reset drops it too.
    assert_eq!(send(&mut card, "0084000004"), "0C0D0E0F9000");
    card.reset();
    assert_eq!(send(&mut card, &format!("0082000008{cryptogram}")), "6984");
    // Right after GET CHALLENGE it works, once.
    assert_eq!(send(&mut card, "0084000004"), "0C0D0E0F9000");
    assert_eq!(send(&mut card, &format!("0082000008{cryptogram}")), "9000");
    assert_eq!(send(&mut card, &format!("0082000008{cryptogram}")), "6984");
    // 8- and 16-byte challenges; other lengths are refused.
    assert_eq!(send(&mut card, "0084000008"), "0C0D0E0F0C0D0E0F9000");
    assert_eq!(send(&mut card, "0084000010").len(), 36);
    assert_eq!(send(&mut card, "0084000002"), "6700");
}

#[test]
fn external_authentication_blocks_after_its_tries() {
    let mut card = personalized();
    for left in ["63C2", "63C1", "63C0"] {
        assert_eq!(send(&mut card, "0084000004"), "0C0D0E0F9000");
        assert_eq!(send(&mut card, "0082000008 0000000000000000"), left);
    }
    // Blocked: even the right cryptogram is refused, and the state stays 0.
    assert_eq!(authenticate(&mut card, K_MF), "6983");
    assert_eq!(state(&mut card), SecurityState { mf: 0, df: 0 });
}

#[test]
fn the_card_takes_any_rng() {
    // The engine is generic over its random source: here the crypto module's FixedRng directly.
    use card_os::card::{Card, HistoricalBytes};
    use card_os::crypto::FixedRng;
    use card_os::nvm::Geometry;
    use card_os::sim::MemoryNvm;
    let bytes = [0xBB, 0x83, 0xBF, 0xF3, 0x01, 0x02, 0x03, 0x04];
    let g = Geometry::DEFAULT;
    let mut card = Card::format(
        MemoryNvm::new(g.capacity, g.page_size),
        &HistoricalBytes::wenzhou([0, 0, 0, 1]),
        FixedRng::new(&bytes),
    )
    .ok()
    .unwrap();
    let mut out = [0u8; 32];
    let n = card.process(&[0x00, 0x84, 0x00, 0x00, 0x04], &mut out);
    assert_eq!(&out[..n], &[0xBB, 0x83, 0xBF, 0xF3, 0x90, 0x00]);
    let n = card.process(&[0x00, 0x84, 0x00, 0x00, 0x04], &mut out);
    assert_eq!(&out[..n], &[0x01, 0x02, 0x03, 0x04, 0x90, 0x00]);
    assert_eq!(card.rng_mut().consumed(), 8);
}
