//! The ED's overdraft limit (FMCOS 2.0 §8.12, apdu-specs/purse.md "Overdraft"):
//!
//! * **Power-cut sweeps** of UPDATE OVERDRAW LIMIT, raising a limit and lowering one while the ED
//!   is overdrawn, cut at every NVM page write and inside each, and again at every write of the
//!   recovery after each cut: afterwards the card holds the old balance, limit, online counter,
//!   log and proof (`9406`), or all of the new ones (the proof being the MAC2 and the TAC this
//!   test computes with `crypto::purse`), never a mix.
//! * Balance semantics: purchases into the overdraft, a load that repays it, the maximum balance
//!   bounding the holder's own money, `9401` for a limit below what is overdrawn.
//! * A card of NVM layout version 1 (22-byte purse bodies) does not power up, with its version.
//!
//! `cargo test -p card-os --features sim --test overdraft -- --nocapture` prints the sweep counts.

mod common;

use card_os::card::PowerUpError;
use card_os::crypto::purse::{self as pboc, HostTime, Purchase};
use card_os::crypto::Key;
use card_os::fs;
use card_os::fs::header::PURSE_BODY_LEN;
use card_os::purse::{Body, LogRecord, LOG_RECORD_LEN};
use card_os::sim::tear::{sweep, Sweep, SweepReport};
use card_os::sim::{MemoryNvm, SimCard};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn h(b: &[u8]) -> String {
    hex::encode_upper(b)
}

fn key16(s: &str) -> Key {
    Key::TripleDes(hex(s).try_into().unwrap())
}

const DLK: &str = "374598B5C0B0EAE1E1D06609AC5BB369";
const DPK: &str = "A338D92A10C8285411E761445C831C22";
const DTK: &str = "CAA6025290114BFCC3C9043F70F7A07A";
const DOVK: &str = "0123456789ABCDEFFEDCBA9876543210";
const TERMINAL: [u8; 6] = [0x33, 0x03, 0x00, 0x00, 0x00, 0x09];
const VERIFY: &str = "0020000003123456";

/// An ED behind the PIN (maximum balance 2,000.00 yuan) with 1,000.00 yuan loaded, the keys, and
/// the overdraft key `3C 01`.
fn image() -> MemoryNvm {
    let mut card = common::factory_card();
    common::run(
        &mut card,
        &format!(
            "80E0000007 3F 0090 01 F0 FF FF => 9000
             80D401000D 3A F0 EF 01 33 123456FFFFFFFFFF => 9000
             80D4010115 3F F0 F0 01 00 {DLK} => 9000
             80D4010115 3E F0 F0 01 00 {DPK} => 9000
             80D4010115 3C F0 F0 01 00 {DOVK} => 9000
             80D4010015 34 F0 F0 01 00 {DTK} => 9000
             80E0001807 2E 0A 17 F0 EF FF FF => 9000
             80E000010B 2F 0208 F1 00 FF 18 00030D40 => 9000"
        ),
    );
    card.reset();
    assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
    load(&mut card, 100_000);
    card.into_nvm()
}

fn at(n: u8) -> HostTime {
    HostTime {
        date: [0x20, 0x26, 0x12, n],
        time: [0x10, n, 0x00],
    }
}

/// A whole load with the terminal's own MACs.
fn load(card: &mut SimCard, amount: u32) {
    let mut init = hex("805000010B01");
    init.extend(amount.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x10);
    let answer = card.transmit(&init);
    assert_eq!(answer.len(), 18, "{}", h(&answer));
    let counter = u16::from_be_bytes([answer[4], answer[5]]);
    let random: [u8; 4] = answer[8..12].try_into().unwrap();
    let session = pboc::load_session_key(&key16(DLK), &random, counter).unwrap();
    let fields = pboc::Load {
        amount,
        txn_type: 0x01,
        terminal_id: TERMINAL,
    };
    let mut credit = hex("805200000B");
    credit.extend(at(1).date);
    credit.extend(at(1).time);
    credit.extend(pboc::load_mac2(&session, &fields, &at(1)).unwrap());
    credit.push(0x04);
    let answer = card.transmit(&credit);
    assert_eq!(answer.len(), 6, "load: {}", h(&answer));
}

/// A whole purchase; returns its status word (and checks the TAC on success).
fn purchase(card: &mut SimCard, amount: u32) -> Vec<u8> {
    let mut init = hex("805001010B01");
    init.extend(amount.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x0F);
    let answer = card.transmit(&init);
    if answer.len() == 2 {
        return answer;
    }
    let counter = u16::from_be_bytes([answer[4], answer[5]]);
    let random: [u8; 4] = answer[11..15].try_into().unwrap();
    let seq = [0, 0, 0, 7];
    let fields = Purchase {
        amount,
        txn_type: 0x05,
        terminal_id: TERMINAL,
        terminal_seq: seq,
        at: at(2),
    };
    let session = pboc::purchase_session_key(&key16(DPK), &random, counter, &seq).unwrap();
    let mut debit = hex("805401000F");
    debit.extend(seq);
    debit.extend(fields.at.date);
    debit.extend(fields.at.time);
    debit.extend(pboc::purchase_mac1(&session, &fields).unwrap());
    debit.push(0x08);
    let answer = card.transmit(&debit);
    let tac = pboc::purchase_tac(&pboc::tac_key(&key16(DTK)), &fields).unwrap();
    assert_eq!(answer[..4], tac, "purchase TAC");
    answer[8..].to_vec()
}

/// An overdraft update as the issuer's host computes it.
struct Update {
    init: Vec<u8>,
    apdu: Vec<u8>,
    counter: u16,
    old_balance: u32,
    new_balance: u32,
    mac2: [u8; 4],
    tac: [u8; 4],
    record: [u8; LOG_RECORD_LEN],
}

/// Sends INITIALIZE FOR UPDATE, checks its answer and MAC1, and prepares UPDATE OVERDRAW LIMIT.
fn prepare_update(card: &mut SimCard, new_limit: u32) -> Update {
    let mut init = hex("8050040107 01");
    init.extend(TERMINAL);
    init.push(0x13);
    let answer = card.transmit(&init);
    assert_eq!(answer.len(), 21, "INITIALIZE FOR UPDATE: {}", h(&answer));
    let old_balance = u32::from_be_bytes(answer[0..4].try_into().unwrap());
    let counter = u16::from_be_bytes([answer[4], answer[5]]);
    let old_limit = u32::from_be_bytes([0, answer[6], answer[7], answer[8]]);
    let random: [u8; 4] = answer[11..15].try_into().unwrap();
    let session = pboc::load_session_key(&key16(DOVK), &random, counter).unwrap();
    assert_eq!(
        pboc::overdraft_mac1(&session, old_balance, old_limit, &TERMINAL).unwrap()[..],
        answer[15..19],
        "MAC1"
    );
    let mac2 = pboc::overdraft_mac2(&session, new_limit, &TERMINAL, &at(3)).unwrap();
    let new_balance = (i64::from(old_balance) - i64::from(old_limit) + i64::from(new_limit)) as u32;
    let tac = pboc::overdraft_tac(
        &key16(DTK),
        new_balance,
        counter,
        new_limit,
        &TERMINAL,
        &at(3),
    )
    .unwrap();
    let mut apdu = hex("805800000E");
    apdu.extend(&new_limit.to_be_bytes()[1..]);
    apdu.extend(at(3).date);
    apdu.extend(at(3).time);
    apdu.extend(mac2);
    apdu.push(0x04);
    let record = LogRecord {
        counter,
        overdraft_limit: new_limit,
        amount: 0,
        txn_type: 0x07,
        terminal_id: TERMINAL,
        at: at(3),
    }
    .encode();
    Update {
        init,
        apdu,
        counter,
        old_balance,
        new_balance,
        mac2,
        tac,
        record,
    }
}

/// The ED's body (balance, counters, limit), its newest log record, and the proof of type 07 with
/// `counter`; then the whole card's canonical dump.
fn observe(card: &mut SimCard, counter: u16) -> Result<Vec<u8>, String> {
    if card.transmit(&hex(VERIFY)) != [0x90, 0x00] {
        return Err("VERIFY failed".into());
    }
    let mut proof = hex("805A000702");
    proof.extend(counter.to_be_bytes());
    proof.push(0x08);
    let mut out = card.transmit(&proof);
    out.resize(10, 0);
    let mut newest = card.transmit(&hex("00B201C400"));
    newest.resize(LOG_RECORD_LEN + 2, 0);
    out.extend(newest);
    let sim = card.card().ok_or("card did not power up")?;
    let storage = sim.storage();
    let sw = |sw| format!("{sw}");
    let df = fs::file_at(storage, sim.volatile().path.current()).map_err(sw)?;
    let ed = fs::find_child(storage, &df, 0x0001)
        .map_err(sw)?
        .ok_or("no ED")?;
    let body = Body::decode(
        &storage
            .read_array::<PURSE_BODY_LEN>(ed.body())
            .map_err(|e| format!("{e:?}"))?,
    );
    out.extend(body.state.balance.to_be_bytes());
    out.extend(body.overdraft_limit.to_be_bytes());
    out.extend(body.state.online_counter.to_be_bytes());
    out.extend(body.state.offline_counter.to_be_bytes());
    out.extend(card_os::sim::inspect::dump(sim).map_err(|sw| format!("dump: {sw}"))?);
    Ok(out)
}

struct Seen {
    proof: Vec<u8>,
    newest: Vec<u8>,
    balance: u32,
    limit: u32,
    online: u16,
    offline: u16,
}

fn decode(seen: &[u8]) -> Seen {
    let b = 10 + LOG_RECORD_LEN + 2;
    Seen {
        proof: seen[..10].to_vec(),
        newest: seen[10..b].to_vec(),
        balance: u32::from_be_bytes(seen[b..b + 4].try_into().unwrap()),
        limit: u32::from_be_bytes(seen[b + 4..b + 8].try_into().unwrap()),
        online: u16::from_be_bytes([seen[b + 8], seen[b + 9]]),
        offline: u16::from_be_bytes([seen[b + 10], seen[b + 11]]),
    }
}

fn run_sweep(name: &str, image: &MemoryNvm, new_limit: u32) -> SweepReport {
    // The card draws the same random after every fresh power-up: the host's MAC2 stays valid.
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
    let update = prepare_update(&mut card, new_limit);
    let verify = hex(VERIFY);
    let setup: [&[u8]; 2] = [&verify, &update.init];
    let mut want_proof = update.mac2.to_vec();
    want_proof.extend(update.tac);
    want_proof.extend([0x90, 0x00]);
    let mut record = update.record.to_vec();
    record.extend([0x90, 0x00]);
    let report = sweep(
        &Sweep {
            image,
            setup: &setup,
            command: &update.apdu,
            cut_recovery: true,
            intermediate: false,
        },
        |card| observe(card, update.counter),
        |before, _after, seen| {
            let (b, s) = (decode(before), decode(seen));
            if s.offline != b.offline {
                return Err("the offline counter moved".into());
            }
            if s.balance == update.new_balance && s.limit == new_limit {
                let ok = b.balance == update.old_balance
                    && s.online == b.online + 1
                    && s.newest == record
                    && s.proof == want_proof;
                ok.then_some(())
                    .ok_or_else(|| "new balance and limit without all of the update".into())
            } else if s.balance == b.balance && s.limit == b.limit {
                let ok = s.online == b.online && s.newest == b.newest && s.proof[..2] == [0x94, 6];
                ok.then_some(())
                    .ok_or_else(|| "old balance and limit with part of the update".into())
            } else {
                Err(format!(
                    "balance {} / limit {}: neither before nor after",
                    s.balance, s.limit
                ))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut answer = update.tac.to_vec();
    answer.extend([0x90, 0x00]);
    assert_eq!(report.response, answer, "{name}");
    assert!(
        report.writes > 0 && report.saw_before > 0 && report.saw_after > 0,
        "{name}: {report:?}"
    );
    println!(
        "power cut: {name:<44} {:>2} page writes, {:>3} cut points, {:>4} recovery cut points \
         (old state {}, new state {})",
        report.writes,
        report.cut_points,
        report.recovery_cut_points,
        report.saw_before,
        report.saw_after
    );
    report
}

#[test]
fn every_cut_of_update_overdraw_limit_is_all_or_nothing() {
    let image = image();
    let raise = run_sweep("UPDATE OVERDRAW LIMIT (0 -> 500.00)", &image, 50_000);
    // Overdrawn by 300.00 yuan under a limit of 500.00; the update lowers the limit to 300.00.
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
    let update = prepare_update(&mut card, 50_000);
    assert_eq!(card.transmit(&update.apdu)[4..], [0x90, 0x00]);
    assert_eq!(purchase(&mut card, 130_000), [0x90, 0x00]);
    let overdrawn = card.into_nvm();
    let lower = run_sweep(
        "UPDATE OVERDRAW LIMIT (500.00 -> 300.00, overdrawn)",
        &overdrawn,
        30_000,
    );
    println!(
        "power cut: UPDATE OVERDRAW LIMIT total: {} cut points, {} recovery cut points",
        raise.cut_points + lower.cut_points,
        raise.recovery_cut_points + lower.recovery_cut_points
    );
}

fn balance(card: &mut SimCard) -> u32 {
    let answer = card.transmit(&hex("805C000104"));
    assert_eq!(answer.len(), 6, "{}", h(&answer));
    u32::from_be_bytes(answer[..4].try_into().unwrap())
}

#[test]
fn the_balance_includes_the_limit() {
    let mut card = SimCard::from_nvm(image()).ok().unwrap();
    assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
    assert_eq!(balance(&mut card), 100_000);
    // No limit: a purchase above the balance is refused.
    assert_eq!(purchase(&mut card, 100_001), [0x94, 0x01]);
    let update = prepare_update(&mut card, 50_000);
    assert_eq!(card.transmit(&update.apdu)[..4], update.tac);
    assert_eq!(balance(&mut card), 150_000);
    // Spend all of it: the holder's money goes to -500.00.
    assert_eq!(purchase(&mut card, 150_000), [0x90, 0x00]);
    assert_eq!(balance(&mut card), 0);
    assert_eq!(purchase(&mut card, 1), [0x94, 0x01]);
    // A limit below what is overdrawn: 9401, nothing changes (the next INITIALIZE shows it).
    let update = prepare_update(&mut card, 49_999);
    assert_eq!(card.transmit(&update.apdu), [0x94, 0x01]);
    assert_eq!(balance(&mut card), 0);
    // A load repays: the maximum balance (2,000.00) bounds the money, not the balance. Money
    // -500.00 + 2,500.00 = 2,000.00 is fine, the balance then 2,500.00; one cent more is not.
    let mut init = hex("805000010B01");
    init.extend(250_001u32.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x10);
    assert_eq!(card.transmit(&init), [0x94, 0x01]);
    load(&mut card, 250_000);
    assert_eq!(balance(&mut card), 250_000);
    // Removing the limit takes it off the balance again.
    let update = prepare_update(&mut card, 0);
    assert_eq!(card.transmit(&update.apdu)[..4], update.tac);
    assert_eq!(balance(&mut card), 200_000);
    // The log: update 07, load, refused update not logged, purchase, update.
    let newest = card.transmit(&hex("00B201C400"));
    assert_eq!(newest[2..5], [0, 0, 0], "the new limit");
    assert_eq!(newest[9], 0x07);
    let load_record = card.transmit(&hex("00B202C400"));
    assert_eq!(
        load_record[2..5],
        [0x00, 0xC3, 0x50],
        "the limit at the load"
    );
    assert_eq!(load_record[9], 0x01);
}

#[test]
fn a_layout_1_card_does_not_power_up() {
    let mut bytes = image().bytes().to_vec();
    assert_eq!(bytes[4], card_os::card::system::LAYOUT_VERSION);
    bytes[4] = 1;
    let old = MemoryNvm::from_bytes(bytes, 64);
    match SimCard::from_nvm(old) {
        Err((_, e)) => assert_eq!(e, PowerUpError::LayoutVersion(1)),
        Ok(_) => panic!("a layout-1 card powered up"),
    }
}
