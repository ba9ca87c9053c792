//! The ED's overdraft limit (FMCOS 2.0 §8.12, apdu-specs/purse.md "Overdraft"):
//!
//! * **Power-cut sweeps** of UPDATE OVERDRAW LIMIT, raising a limit and lowering one while the ED
//!   is overdrawn, cut at every NVM page write and inside each, and again at every write of the
//!   recovery after each cut: afterwards the card holds the old balance, limit, online counter,
//!   log and proof (`9406`), or all of the new ones (the proof being the MAC2 and the TAC this
//!   test computes with `crypto::purse`), never a mix.
//! * Balance semantics: purchases into the overdraft, a load that repays it, the maximum balance
//!   bounding the holder's own money, `9401` for a limit below what is overdrawn.
//! * A **randomized run** of 2,000 ED loads, purchases (into the overdraft) and limit updates with
//!   power cut at random points of CREDIT/DEBIT/UPDATE and answers lost: the terminal settles each
//!   unanswered one with GET TRANSACTION PROOF, and at the end the card's balance is the confirmed
//!   loads minus the confirmed purchases plus the confirmed limit, to the cent.
//! * A card of NVM layout version 1 (22-byte purse bodies) does not power up, with its version.
//!
//! `cargo test -p card-os --features sim --test overdraft -- --nocapture` prints the sweep counts.

mod common;

use card_os::card::PowerUpError;
use card_os::crypto::purse::{self as pboc, HostTime, Purchase};
use card_os::crypto::CounterRng;
use card_os::crypto::Key;
use card_os::fs;
use card_os::fs::header::PURSE_BODY_LEN;
use card_os::purse::{Body, LogRecord, LOG_RECORD_LEN};
use card_os::sim::tear::{sweep, Sweep, SweepReport};
use card_os::sim::{MemoryNvm, PowerCut, SimCard, SimRng};

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

/// A transaction INITIALIZE opened: the command that completes it and what it answers, and how
/// the terminal asks for its proof.
struct Step {
    apdu: Vec<u8>,
    answer: Vec<u8>,
    proof_apdu: Vec<u8>,
    proof: Vec<u8>,
}

fn proof_apdu(txn_type: u8, counter: u16) -> Vec<u8> {
    let mut apdu = vec![0x80, 0x5A, 0x00, txn_type, 0x02];
    apdu.extend(counter.to_be_bytes());
    apdu.push(0x08);
    apdu
}

fn with_sw(parts: &[&[u8]]) -> Vec<u8> {
    let mut out: Vec<u8> = parts.concat();
    out.extend([0x90, 0x00]);
    out
}

/// INITIALIZE FOR LOAD; the CREDIT with the terminal's own MAC2, or the refusal's status word.
fn prepare_load(card: &mut SimCard, amount: u32) -> Result<Step, Vec<u8>> {
    let mut init = hex("805000010B01");
    init.extend(amount.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x10);
    let answer = card.transmit(&init);
    if answer.len() != 18 {
        return Err(answer);
    }
    let balance = u32::from_be_bytes(answer[0..4].try_into().unwrap());
    let counter = u16::from_be_bytes([answer[4], answer[5]]);
    let random: [u8; 4] = answer[8..12].try_into().unwrap();
    let session = pboc::load_session_key(&key16(DLK), &random, counter).unwrap();
    let fields = pboc::Load {
        amount,
        txn_type: 0x01,
        terminal_id: TERMINAL,
    };
    let mac2 = pboc::load_mac2(&session, &fields, &at(1)).unwrap();
    let tac = pboc::load_tac(
        &pboc::tac_key(&key16(DTK)),
        balance + amount,
        counter,
        &fields,
        &at(1),
    )
    .unwrap();
    let mut credit = hex("805200000B");
    credit.extend(at(1).date);
    credit.extend(at(1).time);
    credit.extend(mac2);
    credit.push(0x04);
    Ok(Step {
        apdu: credit,
        answer: with_sw(&[&tac]),
        proof_apdu: proof_apdu(0x01, counter),
        proof: with_sw(&[&mac2, &tac]),
    })
}

/// INITIALIZE FOR PURCHASE; the DEBIT with the terminal's own MAC1, or the refusal's status word.
fn prepare_purchase(card: &mut SimCard, amount: u32) -> Result<Step, Vec<u8>> {
    let mut init = hex("805001010B01");
    init.extend(amount.to_be_bytes());
    init.extend(TERMINAL);
    init.push(0x0F);
    let answer = card.transmit(&init);
    if answer.len() != 17 {
        return Err(answer);
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
    let tac = pboc::purchase_tac(&pboc::tac_key(&key16(DTK)), &fields).unwrap();
    let mac2 = pboc::purchase_mac2(&session, amount).unwrap();
    Ok(Step {
        apdu: debit,
        answer: with_sw(&[&tac, &mac2]),
        proof_apdu: proof_apdu(0x05, counter),
        proof: with_sw(&[&mac2, &tac]),
    })
}

/// A whole load.
fn load(card: &mut SimCard, amount: u32) {
    let step = prepare_load(card, amount).unwrap_or_else(|sw| panic!("load: {}", h(&sw)));
    assert_eq!(card.transmit(&step.apdu), step.answer, "load");
}

/// A whole purchase; returns its status word.
fn purchase(card: &mut SimCard, amount: u32) -> Vec<u8> {
    match prepare_purchase(card, amount) {
        Err(sw) => sw,
        Ok(step) => {
            let answer = card.transmit(&step.apdu);
            assert_eq!(answer, step.answer, "purchase");
            answer[8..].to_vec()
        }
    }
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

struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default, Debug)]
struct Counts {
    confirmed: [u64; 3],
    refused: u64,
    cuts: u64,
    answers_lost: u64,
    settled_done: u64,
    settled_not_done: u64,
    /// Transactions after which the holder's money was below zero (spending the limit).
    overdrawn: u64,
}

#[test]
fn randomized_loads_purchases_and_limits_with_cuts_lose_no_money() {
    let mut dice = Dice(0x0D0D);
    let rng = |n: u8| SimRng::Seeded(CounterRng::from_seed([n; 16]));
    let mut card = SimCard::from_nvm_with_rng(image(), rng(1)).ok().unwrap();
    assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
    // The holder's own money and the limit, as the terminal has confirmed them.
    let (mut money, mut limit) = (i64::from(balance(&mut card)), 0i64);
    let mut counts = Counts::default();
    let mut power_ups = 1u8;
    for n in 0..2_000u32 {
        let kind = dice.below(10);
        let available = money + limit;
        let (step, change) = match kind {
            // a load: 0.01 to 300.00 yuan (the maximum balance refuses some: 9401)
            0..=2 => {
                let amount = 1 + dice.below(30_000) as u32;
                (prepare_load(&mut card, amount), (i64::from(amount), 0))
            }
            // a limit of 0 to 500.00 yuan, now and then below what is overdrawn (9401 at UPDATE)
            3 => {
                let new_limit = dice.below(50_001) as u32;
                let update = prepare_update(&mut card, new_limit);
                let step = Step {
                    apdu: update.apdu.clone(),
                    answer: with_sw(&[&update.tac]),
                    proof_apdu: proof_apdu(0x07, update.counter),
                    proof: with_sw(&[&update.mac2, &update.tac]),
                };
                (Ok(step), (0, i64::from(new_limit) - limit))
            }
            // a purchase: mostly within the balance, now and then more (9401 at INITIALIZE)
            _ => {
                let amount = if dice.chance(5) {
                    (available + 1) as u32
                } else {
                    1 + dice.below(available.clamp(1, 20_000) as u64) as u32
                };
                (prepare_purchase(&mut card, amount), (-i64::from(amount), 0))
            }
        };
        let step = match step {
            Ok(step) => step,
            Err(sw) => {
                assert_eq!(sw, [0x94, 0x01], "transaction {n}");
                counts.refused += 1;
                continue;
            }
        };
        let cut = dice.chance(20);
        if cut {
            card.nvm_mut().arm_cut(PowerCut {
                write: dice.below(6),
                bytes: dice.below(65) as usize,
            });
        }
        let mut answer = card.transmit(&step.apdu);
        if cut && !answer.is_empty() {
            card.nvm_mut().restore_power();
        }
        if answer == [0x94, 0x01] {
            // an update below what is overdrawn: refused, nothing changed
            assert_eq!(kind, 3, "transaction {n}");
            assert!(money + limit + change.1 < 0, "transaction {n}");
            counts.refused += 1;
            continue;
        }
        if !answer.is_empty() && dice.chance(2) {
            answer.clear();
            card.power_off();
        }
        let done = if answer.is_empty() {
            if cut {
                counts.cuts += 1;
            } else {
                counts.answers_lost += 1;
            }
            let mut nvm = card.into_nvm();
            nvm.restore_power();
            power_ups = power_ups.wrapping_add(1);
            card = SimCard::from_nvm_with_rng(nvm, rng(power_ups))
                .ok()
                .unwrap();
            assert_eq!(card.transmit(&hex(VERIFY)), [0x90, 0x00]);
            let proof = card.transmit(&step.proof_apdu);
            if proof == step.proof {
                counts.settled_done += 1;
                true
            } else {
                assert_eq!(proof, [0x94, 0x06], "transaction {n}");
                counts.settled_not_done += 1;
                false
            }
        } else {
            assert_eq!(answer, step.answer, "transaction {n}");
            true
        };
        if done {
            money += change.0;
            limit += change.1;
            counts.confirmed[match kind {
                0..=2 => 0,
                3 => 1,
                _ => 2,
            }] += 1;
        }
        assert!(
            money >= -limit,
            "transaction {n}: overdrawn beyond the limit"
        );
        if money < 0 {
            counts.overdrawn += 1;
        }
    }
    assert_eq!(i64::from(balance(&mut card)), money + limit);
    let mut init = hex("8050040107 01");
    init.extend(TERMINAL);
    init.push(0x13);
    let answer = card.transmit(&init);
    assert_eq!(
        i64::from(u32::from_be_bytes([0, answer[6], answer[7], answer[8]])),
        limit
    );
    println!(
        "randomized ED run: 2,000 transactions, confirmed {} loads, {} limit updates, {} \
         purchases; {} refused (9401); {} cuts inside CREDIT/DEBIT/UPDATE, {} answers lost, \
         settled by proof {} done / {} not done; {} ended overdrawn; money {} cents, limit {} \
         cents",
        counts.confirmed[0],
        counts.confirmed[1],
        counts.confirmed[2],
        counts.refused,
        counts.cuts,
        counts.answers_lost,
        counts.settled_done,
        counts.settled_not_done,
        counts.overdrawn,
        money,
        limit
    );
    assert!(counts.cuts > 100 && counts.settled_done > 30 && counts.settled_not_done > 30);
    assert!(counts.confirmed.iter().all(|&c| c > 50) && counts.refused > 20);
    assert!(counts.overdrawn > 100, "the run hardly used the overdraft");
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
