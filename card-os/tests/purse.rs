//! The purse (apdu-specs/purse.md): the purse transcripts of `test-vectors/transcripts/`, and what
//! a transcript cannot reach — counters at their limit, the composite-purchase cache across other
//! commands, resets and a full transaction buffer, exactly-once CREDIT/DEBIT.

mod common;

use card_os::crypto::purse::{self as pboc, HostTime, Purchase};
use card_os::crypto::Key;
use card_os::fs;
use card_os::nvm::write_across_pages;
use card_os::purse::{offset, Body};
use card_os::sim::SimCard;

fn transcript(name: &str) -> usize {
    let text =
        std::fs::read_to_string(common::vectors_dir().join("transcripts").join(name)).unwrap();
    let mut card = common::factory_card();
    common::run(&mut card, &text).len()
}

#[test]
fn tv4_tv5_transcript() {
    // card-specs TV-4 and TV-5: the logged APDUs of a real card, answered with the logged MACs.
    assert!(transcript("purse-tv4-tv5.apdu") > 40);
}

#[test]
fn sm4_transcript() {
    assert!(transcript("purse-sm4.apdu") > 40);
}

#[test]
fn ed_unload_and_cash_withdrawal_transcript() {
    // FMCOS 2.0 §8.10–8.11: unloads under 3DES and SM4 unload keys, cash withdrawals, their
    // refusals, proofs and log records, answered with the independent Python crypto's MACs.
    assert!(transcript("purse-ed-unload-cash.apdu") > 60);
}

#[test]
fn phone_reader_transcript() {
    assert!(transcript("purse-phone-reader.apdu") > 50);
}

const DPK: [u8; 16] = [
    0xA3, 0x38, 0xD9, 0x2A, 0x10, 0xC8, 0x28, 0x54, 0x11, 0xE7, 0x61, 0x44, 0x5C, 0x83, 0x1C, 0x22,
];

/// The MF holding the TV-4/TV-5 keys, a log, a composite file 0017 with two records (tags 01, 02) and
/// an EP, with 72.23 yuan loaded (TV-4).
fn card() -> SimCard {
    let mut card = common::factory_card();
    common::run(
        &mut card,
        &format!(
            "80E0000007 3F 0060 01 F0 FF FF => 9000
             80D4010115 3F F0 F0 01 00 374598B5C0B0EAE1E1D06609AC5BB369 => 9000
             80D4010115 3E F0 F0 01 00 {dpk} => 9000
             80D4010015 34 F0 F0 01 00 CAA6025290114BFCC3C9043F70F7A07A => 9000
             80E0001807 2E 0A 17 F0 EF FF FF => 9000
             80E0001707 2C 02 10 F0 F0 FF FF => 9000
             00E200B810 010E{zeros} => 9000
             00E200B810 020E{zeros} => 9000
             80E000020B 2F 0208 F0 00 FF 18 000186A0 => 9000
             random CDEF4F20
             805000020B 01 00001C37 000001000050 10 => 00000000 0000 01 00 CDEF4F20 06B1BEF5 9000
             805200000B 20140825 103100 0641DCD8 04 => ED0F8755 9000",
            dpk = hex::encode_upper(DPK),
            zeros = "00".repeat(14)
        ),
    );
    card
}

/// DEBIT FOR PURCHASE with the right MAC1 for a purchase INITIALIZE opened with `random` at
/// `offline_counter`.
fn debit(random: [u8; 4], offline_counter: u16, amount: u32, txn_type: u8) -> String {
    let sespk = pboc::purchase_session_key(
        &Key::TripleDes(DPK),
        &random,
        offline_counter,
        &[0, 0, 0, 1],
    )
    .unwrap();
    let purchase = Purchase {
        amount,
        txn_type,
        terminal_id: [0, 0, 0, 0, 0, 1],
        terminal_seq: [0, 0, 0, 1],
        at: HostTime {
            date: [0x20, 0x24, 0x01, 0x01],
            time: [0x12, 0, 0],
        },
    };
    let mac1 = pboc::purchase_mac1(&sespk, &purchase).unwrap();
    format!(
        "805401000F 00000001 20240101 120000 {} 08",
        hex::encode_upper(mac1)
    )
}

fn balance(card: &mut SimCard) -> String {
    hex::encode_upper(card.transmit(&hex::decode("805C000204").unwrap()))
}

#[test]
fn the_capp_cache_is_written_only_with_its_debit() {
    let mut card = card();
    let ride = format!("80DC02B810 020E{} => 9000", "AA".repeat(14));
    let init = "random 01020304\n805003020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000";
    // another command between the cache and the DEBIT: the record is gone, the debit refused
    common::run(
        &mut card,
        &format!(
            "{init}\n{ride}\n805C000204 => 00001C37 9000\n{} => 6901",
            debit([1, 2, 3, 4], 0, 100, 9)
        ),
    );
    // a reset: the same
    common::run(&mut card, &format!("{init}\n{ride}"));
    card.reset();
    common::run(
        &mut card,
        &format!(
            "{} => 6901\n00B202BC00 => 020E{} 9000",
            debit([1, 2, 3, 4], 0, 100, 9),
            "00".repeat(14)
        ),
    );
    // a power cut: the same
    common::run(&mut card, &format!("{init}\n{ride}"));
    card.power_off();
    card.power_on().unwrap();
    common::run(
        &mut card,
        &format!("00B202BC00 => 020E{} 9000", "00".repeat(14)),
    );
    // a cache outside a composite purchase, or after a plain purchase's INITIALIZE
    common::run(
        &mut card,
        "80DC02B810 020E0000000000000000000000000000 => 6901",
    );
    common::run(
        &mut card,
        "805001020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000
         80DC02B810 020E0000000000000000000000000000 => 6901",
    );
    // a refused cache (wrong length) ends the composite purchase
    common::run(
        &mut card,
        &format!(
            "{init}\n80DC02B80F 020D00000000000000000000000000 => 6700\n{} => 6901",
            debit([1, 2, 3, 4], 0, 100, 9)
        ),
    );
    // two records cached, then the DEBIT: both written with it, in its transaction
    common::run(
        &mut card,
        &format!(
            "{init}\n{ride}\n80DC01BC10 010E{bb} => 9000\n{} => xxxxxxxx xxxxxxxx 9000
             00B201BC00 => 010E{bb} 9000
             00B202BC00 => 020E{aa} 9000
             805C000204 => 00001BD3 9000",
            debit([1, 2, 3, 4], 0, 100, 9),
            aa = "AA".repeat(14),
            bb = "BB".repeat(14)
        ),
    );
    assert_eq!(balance(&mut card), "00001BD39000");
}

#[test]
fn a_full_transaction_buffer_refuses_the_cache() {
    // A variable file of 248-byte records: two of them and the DEBIT's writes exceed the 600-byte
    // transaction buffer.
    let mut card = card();
    let record = |tag: u8| format!("{tag:02X}F6{}", "CC".repeat(246));
    common::run(
        &mut card,
        &format!(
            "80E0001907 2C 03 F8 F0 F0 FF FF => 9000
             00E200C8F8 {} => 9000
             00E200C8F8 {} => 9000
             00E200C8F8 {} => 9000
             random 01020304
             805003020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000
             80DC01CCF8 {} => 9000
             80DC02CCF8 {} => 9000
             80DC03CCF8 {} => 6A84
             {} => 6901",
            record(1),
            record(2),
            record(3),
            record(1),
            record(2),
            record(3),
            debit([1, 2, 3, 4], 0, 100, 9)
        ),
    );
}

#[test]
fn protected_and_cyclic_files_take_no_cache() {
    let mut card = card();
    common::run(
        &mut card,
        "80E0001907 AC 02 10 F0 F0 FF FF => 9000
         random 01020304
         805003020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000
         80DC01CC10 010E0000000000000000000000000000 => 6987
         805003020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000
         80DC01C410 010E0000000000000000000000000000 => 6981
         805003020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000
         80DC03BC10 030E0000000000000000000000000000 => 6A84",
    );
}

#[test]
fn credit_and_debit_happen_once() {
    let mut card = card();
    // the TV-4 CREDIT again: no transaction is open any more
    common::run(&mut card, "805200000B 20140825 103100 0641DCD8 04 => 6901");
    let init = "random 01020304\n805001020B 01 00000064 000000000001 0F => 00001C37 0000 000000 01 00 01020304 9000";
    let debit = debit([1, 2, 3, 4], 0, 100, 6);
    common::run(
        &mut card,
        &format!("{init}\n{debit} => xxxxxxxx xxxxxxxx 9000\n{debit} => 6901"),
    );
    assert_eq!(balance(&mut card), "00001BD39000");
}

/// Rewrites the EP's counters in the card's memory, as 65,534 transactions would have left them.
fn with_counters(mut card: SimCard, online: u16, offline: u16) -> SimCard {
    let (at, state) = {
        let storage = card.card().unwrap().storage();
        let mf = fs::file_at(storage, fs::mf_addr(storage)).unwrap();
        let ep = fs::find_child(storage, &mf, 0x0002).unwrap().unwrap();
        let body = Body::decode(
            &storage
                .read_array::<{ card_os::fs::header::PURSE_BODY_LEN }>(ep.body())
                .unwrap(),
        );
        (ep.body() + offset::STATE, body.state)
    };
    let mut state = state;
    state.online_counter = online;
    state.offline_counter = offline;
    // Straight into the memory of the running card (a power-up would replay the last journal
    // record over it).
    write_across_pages(card.nvm_mut(), at, &state.encode()).unwrap();
    card
}

#[test]
fn counters_stop_at_ffff() {
    let mut card = with_counters(card(), 0xFFFE, 0xFFFE);
    // the last load and purchase each counter allows (FFFE), then 9402
    common::run(
        &mut card,
        &format!(
            "random 01020304
             805001020B 01 00000064 000000000001 0F => 00001C37 FFFE 000000 01 00 01020304 9000
             {} => xxxxxxxx xxxxxxxx 9000
             805001020B 01 00000064 000000000001 0F => 9402
             805A000602 FFFE 08 => xxxxxxxx xxxxxxxx 9000
             805000020B 01 00000064 000001000050 10 => 00001BD3 FFFE 01 00 01020304 xxxxxxxx 9000",
            debit([1, 2, 3, 4], 0xFFFE, 100, 6)
        ),
    );
    let mut card = with_counters(card, 0xFFFF, 0xFFFF);
    common::run(
        &mut card,
        "805000020B 01 00000064 000001000050 10 => 9402
         805001020B 01 00000064 000001000050 0F => 9402
         805C000204 => 00001BD3 9000",
    );
}

/// A forged purse session: INITIALIZE (load, purchase or composite purchase, sometimes of the ED
/// or with odd parameters; its answer through GET RESPONSE or not), composite caches, then CREDIT or
/// DEBIT with random MACs or some other purse command. Without the keys, none can complete.
fn forged_session() -> impl proptest::strategy::Strategy<Value = Vec<Vec<u8>>> {
    use proptest::prelude::*;
    let init = (
        prop::sample::select(vec![0u8, 1, 3, 3, 2]),
        prop::sample::select(vec![2u8, 2, 2, 1, 9]),
        0u32..3_000,
        any::<[u8; 6]>(),
        any::<bool>(),
    )
        .prop_map(|(p1, p2, amount, terminal, le)| {
            let answer = if p1 == 0 { 0x10 } else { 0x0F };
            let mut apdu = vec![0x80, 0x50, p1, p2, 0x0B, 0x01];
            apdu.extend(amount.to_be_bytes());
            apdu.extend(terminal);
            if le {
                vec![[apdu, vec![answer]].concat()]
            } else {
                vec![apdu, vec![0x00, 0xC0, 0x00, 0x00, answer]]
            }
        });
    let cache = (
        prop::sample::select(vec![1u8, 2, 2, 3, 0x41]),
        prop::sample::select(vec![0xBCu8, 0xB8, 0xBC, 0xB9]),
        any::<[u8; 14]>(),
    )
        .prop_map(|(p1, p2, d)| [&[0x80, 0xDC, p1, p2, 16, p1, 14][..], &d].concat());
    let finish = prop_oneof![
        any::<[u8; 11]>().prop_map(|d| [&[0x80, 0x52, 0, 0, 0x0B][..], &d, &[0x04]].concat()),
        any::<[u8; 15]>().prop_map(|d| [&[0x80, 0x54, 1, 0, 0x0F][..], &d, &[0x08]].concat()),
        any::<[u8; 15]>().prop_map(|d| [&[0x80, 0x54, 1, 0, 0x0F][..], &d].concat()),
        prop::sample::select(vec![1u8, 2, 3]).prop_map(|p2| vec![0x80, 0x5C, 0, p2, 4]),
        (prop::sample::select(vec![1u8, 2, 6, 9, 3, 8]), 0u16..4).prop_map(|(p2, c)| [
            &[0x80, 0x5A, 0, p2, 2][..],
            &c.to_be_bytes(),
            &[8]
        ]
        .concat()),
        any::<Vec<u8>>().prop_map(|tail| [&[0x80, 0x54][..], &tail].concat()),
    ];
    (init, prop::collection::vec(cache, 0..3), finish)
        .prop_map(|(init, caches, finish)| [init, caches, vec![finish]].concat())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random purse sessions (INITIALIZE, CREDIT/DEBIT with forged MACs, caches, proofs, in any
    /// order): every answer is a documented status word, and the card — balance, counters, log,
    /// composite records — is exactly as it was.
    #[test]
    fn forged_sessions_change_nothing(sessions in proptest::collection::vec(forged_session(), 1..12)) {
        let mut card = card();
        let dump = |card: &mut SimCard| card_os::sim::inspect::dump(card.card().unwrap()).unwrap();
        let before = dump(&mut card);
        for apdu in sessions.iter().flatten() {
            let response = card.transmit(apdu);
            let [.., sw1, sw2] = response[..] else { panic!("no status word") };
            let sw = card_os::apdu::Sw::from_bytes(sw1, sw2);
            let family = match sw1 {
                0x61 | 0x6C => card_os::apdu::Sw::from_bytes(sw1, 0),
                _ => sw,
            };
            proptest::prop_assert!(card_os::apdu::Sw::DOCUMENTED.contains(&family), "{}", sw);
        }
        // what persists: the card after a power cycle
        card.power_off();
        card.power_on().unwrap();
        proptest::prop_assert!(dump(&mut card) == before);
    }
}
