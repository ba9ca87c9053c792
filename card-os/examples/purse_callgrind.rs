//! A driver for counting the card's instructions per purchase under callgrind
//! (`card-os/purse-callgrind.sh`): a simulated card personalized with a purse, then `N` purchases.
//! Only what the card does is inside [`card_initialize`] and [`card_debit`] (the terminal's MACs are
//! computed outside them), so callgrind's inclusive cost of those two functions, divided by `N`, is
//! the card's instructions per INITIALIZE FOR PURCHASE and per DEBIT FOR PURCHASE.
//!
//!     cargo run --release -p card-os --example purse_callgrind [N]

use card_os::apdu::RESPONSE_BUFFER_SIZE;
use card_os::crypto::purse::{self as pboc, HostTime, Load, Purchase};
use card_os::crypto::Key;
use card_os::sim::{SimCard, SimulatedCard};
use std::hint::black_box;

const PERSONALIZATION: &[&str] = &[
    "80E03F0110 38 0400 F0 F0 95 FFFF A000000632010105",
    "80E0000007 3F 0060 95 F0 FF FF",
    "80D4010115 3F F0 F0 01 00 374598B5C0B0EAE1E1D06609AC5BB369",
    "80D4010115 3E F0 F0 01 00 A338D92A10C8285411E761445C831C22",
    "80D4010015 34 F0 F0 01 00 CAA6025290114BFCC3C9043F70F7A07A",
    "80E0001807 2E 0A 17 F0 EF FF FF",
    "80E000020B 2F 0208 F0 00 FF 18 000186A0",
];

const TERMINAL: [u8; 6] = [0x33, 0x03, 0x00, 0x00, 0x01, 0x01];

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

fn key(s: &str) -> Key {
    Key::TripleDes(hex(s).try_into().expect("16 bytes"))
}

/// What the card does for INITIALIZE FOR PURCHASE.
#[inline(never)]
fn card_initialize(card: &mut SimulatedCard, apdu: &[u8], out: &mut [u8]) -> usize {
    // (distinct bodies: the linker would otherwise fold the two wrappers into one)
    black_box(1u8);
    card.process(black_box(apdu), out)
}

/// What the card does for DEBIT FOR PURCHASE.
#[inline(never)]
fn card_debit(card: &mut SimulatedCard, apdu: &[u8], out: &mut [u8]) -> usize {
    black_box(2u8);
    card.process(black_box(apdu), out)
}

fn check(response: &[u8]) {
    assert!(
        response.ends_with(&[0x90, 0x00]),
        "{}",
        hex::encode_upper(response)
    );
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(100, |a| a.parse().expect("a number of purchases"));
    let dlk = key("374598B5C0B0EAE1E1D06609AC5BB369");
    let dpk = key("A338D92A10C8285411E761445C831C22");
    let mut sim = SimCard::blank(
        card_os::nvm::Geometry::DEFAULT,
        &card_os::card::HistoricalBytes::wenzhou([0, 0, 0, 1]),
    )
    .expect("a blank card");
    for apdu in PERSONALIZATION {
        check(&sim.transmit(&hex(apdu)));
    }
    // a load to pay from
    let at = HostTime {
        date: [0x20, 0x24, 0x06, 0x01],
        time: [0x08, 0x00, 0x00],
    };
    let amount = 100_000u32;
    let mut init = hex("805000020B 01");
    init.extend(amount.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x10);
    let answer = sim.transmit(&init);
    check(&answer);
    let random: [u8; 4] = answer[8..12].try_into().expect("random");
    let seslk = pboc::load_session_key(&dlk, &random, 0).expect("SESLK");
    let fields = Load {
        amount,
        txn_type: 0x02,
        terminal_id: TERMINAL,
    };
    let mut credit = hex("805200000B");
    credit.extend(at.date);
    credit.extend(at.time);
    credit.extend(pboc::load_mac2(&seslk, &fields, &at).expect("MAC2"));
    credit.push(0x04);
    check(&sim.transmit(&credit));

    let card = sim.card().expect("powered");
    let mut out = [0u8; RESPONSE_BUFFER_SIZE];
    for seq in 1..=n {
        let price = 100 + seq % 200;
        let mut init = hex("805001020B 01");
        init.extend(price.to_be_bytes());
        init.extend(TERMINAL);
        init.push(0x0F);
        let len = card_initialize(card, &init, &mut out);
        let answer = out[..len].to_vec();
        check(&answer);
        let counter = u16::from_be_bytes([answer[4], answer[5]]);
        let random: [u8; 4] = answer[11..15].try_into().expect("random");
        let terminal_seq = seq.to_be_bytes();
        let sespk =
            pboc::purchase_session_key(&dpk, &random, counter, &terminal_seq).expect("SESPK");
        let fields = Purchase {
            amount: price,
            txn_type: 0x06,
            terminal_id: TERMINAL,
            terminal_seq,
            at,
        };
        let mut debit = hex("805401000F");
        debit.extend(terminal_seq);
        debit.extend(at.date);
        debit.extend(at.time);
        debit.extend(pboc::purchase_mac1(&sespk, &fields).expect("MAC1"));
        debit.push(0x08);
        let len = card_debit(card, &debit, &mut out);
        check(&out[..len]);
    }
    println!("{n} purchases done");
}
