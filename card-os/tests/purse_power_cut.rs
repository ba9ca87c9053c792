//! No money lost to a power cut (apdu-specs/purse.md): the purse's balance, counter, log record and
//! proof change in one NVM transaction.
//!
//! * **Sweeps**: INITIALIZE FOR LOAD / PURCHASE / CAPP PURCHASE / UNLOAD / CASH WITHDRAW, CREDIT
//!   FOR LOAD, CREDIT FOR UNLOAD, DEBIT FOR (CAPP) PURCHASE / CASH WITHDRAW and UPDATE CAPP DATA
//!   CACHE, cut at every NVM page write and inside each (and
//!   again at every write of the recovery after each cut). After every cut: the balance is the old
//!   or the new one; the new balance ⇔ the counter advanced exactly once ⇔ the log record is there
//!   ⇔ (composite) the cached record is written ⇔ GET TRANSACTION PROOF answers the MAC2/TAC this
//!   test computes itself with `crypto::purse`; the old balance ⇔ none of it, and the proof says
//!   `9406`.
//! * **Randomized runs** of 10,000 EP loads and purchases and 3,000 ED loads, unloads, purchases
//!   and cash withdrawals by a test-local terminal, with power cut at random points of
//!   CREDIT/DEBIT and of the recoveries after, and answers lost: the terminal settles each
//!   unanswered transaction with GET TRANSACTION PROOF, and at the end the sum of the confirmed
//!   loads minus the sum of the confirmed debits is the card's balance, exactly.
//!
//! Both print their counts (`cargo test -p card-os --test purse_power_cut -- --nocapture`).

mod common;

use card_os::crypto::purse::{self as pboc, HostTime, Load, Purchase};
use card_os::crypto::{CounterRng, Key};
use card_os::fs;
use card_os::purse::{offset, Body, LogRecord, LOG_RECORD_LEN};
use card_os::sim::tear::{sweep, Sweep, SweepReport};
use card_os::sim::{MemoryNvm, PowerCut, SimCard, SimRng};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn h(b: &[u8]) -> String {
    hex::encode_upper(b)
}

fn key16(s: &str) -> [u8; 16] {
    hex(s).try_into().unwrap()
}

/// The diversified keys a terminal's PSAM and the load host would derive for this card.
#[derive(Clone)]
struct Keys {
    dlk: Key,
    dpk: Key,
    dtk: Key,
    /// The unload key (`3D`), personalized in the MF only.
    dulk: Key,
}

fn des_keys() -> Keys {
    Keys {
        dlk: Key::TripleDes(key16("374598B5C0B0EAE1E1D06609AC5BB369")),
        dpk: Key::TripleDes(key16("A338D92A10C8285411E761445C831C22")),
        dtk: Key::TripleDes(key16("CAA6025290114BFCC3C9043F70F7A07A")),
        dulk: Key::TripleDes(key16("6B2E19C48A07F35D90E4C1A7285B3F6D")),
    }
}

fn aes_keys() -> Keys {
    Keys {
        dlk: Key::Aes128(key16("2B7E151628AED2A6ABF7158809CF4F3C")),
        dpk: Key::Aes128(key16("8E73B0F7DA0E6452C810F32B809079E5")),
        dtk: Key::Aes128(key16("603DEB1015CA71BE2B73AEF0857D7781")),
        dulk: Key::Aes128([0; 16]),
    }
}

fn sm4_keys() -> Keys {
    Keys {
        dlk: Key::Sm4(key16("5A3C1E7F9B2D4F6081A3C5E7092B4D6F")),
        dpk: Key::Sm4(key16("13579BDF02468ACEFDB97531ECA86420")),
        dtk: Key::Sm4(key16("F0E1D2C3B4A5968778695A4B3C2D1E0F")),
        dulk: Key::Sm4([0; 16]),
    }
}

/// What INITIALIZE starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Load,
    Purchase,
    Capp,
    /// ED only (FMCOS 2.0 §8.10).
    Unload,
    /// ED only (FMCOS 2.0 §8.11).
    CashWithdraw,
}

impl Op {
    /// Load and unload: online counter, host MAC2, CREDIT-style completion.
    fn is_online(self) -> bool {
        matches!(self, Op::Load | Op::Unload)
    }
}

/// A transaction the terminal has initialized: the CREDIT/DEBIT to send and everything it expects.
#[derive(Clone, Debug)]
struct Pending {
    txn_type: u8,
    counter: u16,
    amount: u32,
    old_balance: u32,
    new_balance: u32,
    apdu: Vec<u8>,
    mac2: [u8; 4],
    tac: [u8; 4],
    record: [u8; LOG_RECORD_LEN],
}

impl Pending {
    /// `80 5A 00 type 02 counter 08`.
    fn proof_apdu(&self) -> Vec<u8> {
        let mut apdu = vec![0x80, 0x5A, 0x00, self.txn_type, 0x02];
        apdu.extend(self.counter.to_be_bytes());
        apdu.push(0x08);
        apdu
    }

    /// What the CREDIT/DEBIT answers: TAC for a load (MAC3 for an unload), TAC ‖ MAC2 for a
    /// purchase.
    fn answer(&self) -> Vec<u8> {
        let mut out = self.tac.to_vec();
        if !pboc_is_load(self.txn_type) {
            out.extend(self.mac2);
        }
        out.extend([0x90, 0x00]);
        out
    }

    /// What GET TRANSACTION PROOF answers once the transaction happened: MAC2 ‖ TAC.
    fn proof(&self) -> Vec<u8> {
        let mut out = self.mac2.to_vec();
        out.extend(self.tac);
        out.extend([0x90, 0x00]);
        out
    }
}

fn pboc_is_load(txn_type: u8) -> bool {
    card_os::purse::uses_online_counter(txn_type)
}

/// A terminal (load host or purchase terminal with its PSAM) computing MACs with `crypto::purse`.
#[derive(Clone)]
struct Terminal {
    keys: Keys,
    /// `01` ED, `02` EP.
    p2: u8,
    terminal_id: [u8; 6],
    terminal_seq: u32,
}

impl Terminal {
    fn new(keys: Keys, p2: u8) -> Terminal {
        Terminal {
            keys,
            p2,
            terminal_id: [0x33, 0x03, 0x00, 0x00, 0x00, 0x07],
            terminal_seq: 0,
        }
    }

    fn at(&self) -> HostTime {
        let s = self.terminal_seq;
        HostTime {
            date: [0x20, 0x24, 0x05, 0x01 + (s % 28) as u8],
            time: [0x08, (s % 60) as u8, 0x00],
        }
    }

    fn init_apdu(&self, op: Op, amount: u32) -> Vec<u8> {
        let p1 = match op {
            Op::Load => 0x00,
            Op::Purchase => 0x01,
            Op::CashWithdraw => 0x02,
            Op::Capp => 0x03,
            Op::Unload => 0x05,
        };
        let mut apdu = vec![0x80, 0x50, p1, self.p2, 0x0B, 0x01];
        apdu.extend(amount.to_be_bytes());
        apdu.extend(self.terminal_id);
        apdu.push(if op.is_online() { 0x10 } else { 0x0F });
        apdu
    }

    fn txn_type(&self, op: Op) -> u8 {
        match (op, self.p2) {
            (Op::Load, 1) => 0x01,
            (Op::Load, _) => 0x02,
            (Op::Purchase, 1) => 0x05,
            (Op::Purchase, _) => 0x06,
            (Op::Capp, _) => 0x09,
            (Op::Unload, _) => 0x03,
            (Op::CashWithdraw, _) => 0x04,
        }
    }

    /// Checks INITIALIZE's answer (a load's MAC1 too) and prepares the CREDIT/DEBIT.
    fn prepare(&mut self, op: Op, amount: u32, init: &[u8]) -> Result<Pending, String> {
        let txn_type = self.txn_type(op);
        let ok = |n: usize| init.len() == n + 2 && init[n..] == [0x90, 0x00];
        let balance = u32::from_be_bytes(init.get(0..4).ok_or("short")?.try_into().unwrap());
        let counter = u16::from_be_bytes([init[4], init[5]]);
        self.terminal_seq += 1;
        let at = self.at();
        if op.is_online() {
            if !ok(16) {
                return Err(format!("INITIALIZE FOR LOAD/UNLOAD answered {}", h(init)));
            }
            let random: [u8; 4] = init[8..12].try_into().unwrap();
            let fields = Load {
                amount,
                txn_type,
                terminal_id: self.terminal_id,
            };
            let master = if op == Op::Load {
                &self.keys.dlk
            } else {
                &self.keys.dulk
            };
            let session = pboc::load_session_key(master, &random, counter).unwrap();
            if pboc::load_mac1(&session, balance, &fields).unwrap()[..] != init[12..16] {
                return Err("MAC1 does not verify".into());
            }
            let mac2 = pboc::load_mac2(&session, &fields, &at).unwrap();
            let (new_balance, tac, mut apdu) = if op == Op::Load {
                let new_balance = balance + amount;
                let tac = pboc::load_tac(
                    &pboc::tac_key(&self.keys.dtk),
                    new_balance,
                    counter,
                    &fields,
                    &at,
                )
                .unwrap();
                (new_balance, tac, hex("805200000B"))
            } else {
                // An unload answers MAC3 under its session key (FMCOS 2.0 §8.10.2.4).
                let new_balance = balance - amount;
                let mac3 = pboc::unload_mac3(&session, new_balance, counter, &fields, &at).unwrap();
                (new_balance, mac3, hex("805403000B"))
            };
            apdu.extend(at.date);
            apdu.extend(at.time);
            apdu.extend(mac2);
            apdu.push(0x04);
            return Ok(self.pending(
                txn_type,
                counter,
                amount,
                balance,
                new_balance,
                apdu,
                mac2,
                tac,
            ));
        }
        if !ok(15) {
            return Err(format!("INITIALIZE FOR PURCHASE answered {}", h(init)));
        }
        let random: [u8; 4] = init[11..15].try_into().unwrap();
        let seq = self.terminal_seq.to_be_bytes();
        let fields = Purchase {
            amount,
            txn_type,
            terminal_id: self.terminal_id,
            terminal_seq: seq,
            at,
        };
        let sespk = pboc::purchase_session_key(&self.keys.dpk, &random, counter, &seq).unwrap();
        let mac1 = pboc::purchase_mac1(&sespk, &fields).unwrap();
        let mac2 = pboc::purchase_mac2(&sespk, amount).unwrap();
        let tac = pboc::purchase_tac(&pboc::tac_key(&self.keys.dtk), &fields).unwrap();
        let mut apdu = hex("805401000F");
        apdu.extend(seq);
        apdu.extend(at.date);
        apdu.extend(at.time);
        apdu.extend(mac1);
        apdu.push(0x08);
        Ok(self.pending(
            txn_type,
            counter,
            amount,
            balance,
            balance - amount,
            apdu,
            mac2,
            tac,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn pending(
        &self,
        txn_type: u8,
        counter: u16,
        amount: u32,
        old_balance: u32,
        new_balance: u32,
        apdu: Vec<u8>,
        mac2: [u8; 4],
        tac: [u8; 4],
    ) -> Pending {
        let record = LogRecord {
            counter,
            overdraft_limit: 0,
            amount,
            txn_type,
            terminal_id: self.terminal_id,
            at: self.at(),
        }
        .encode();
        Pending {
            txn_type,
            counter,
            amount,
            old_balance,
            new_balance,
            apdu,
            mac2,
            tac,
            record,
        }
    }
}

/// The composite record a metro gate writes (`80 DC`, record tagged 02 of EF 0017).
fn ride_record(n: u8) -> Vec<u8> {
    let mut apdu = hex("80DC02B830 022E");
    apdu.push(n);
    apdu.extend([0xA5; 45]);
    apdu
}

/// The MF: PIN, 3DES DLK/DPK/DTK, log 0018 (read F0), composite file 0017 (records tagged 01..03),
/// ED 0001 (PIN) and EP 0002; DF 3F01 with SM4 keys (version 02, algorithm 03) and DF 3F02 with
/// AES-128 keys (version 03, algorithm 04), each with its own log and EP. Every purse holds money,
/// and every log some records.
fn image() -> MemoryNvm {
    let personalization = format!(
        "80E0000007 3F 0080 01 F0 FF FF => 9000
         80D401000D 3A F0 EF 01 33 123456FFFFFFFFFF => 9000
         80D4010115 3F F0 F0 01 00 374598B5C0B0EAE1E1D06609AC5BB369 => 9000
         80D4010115 3E F0 F0 01 00 A338D92A10C8285411E761445C831C22 => 9000
         80D4010015 34 F0 F0 01 00 CAA6025290114BFCC3C9043F70F7A07A => 9000
         80D4010115 3D F0 F0 01 00 6B2E19C48A07F35D90E4C1A7285B3F6D => 9000
         80E0001807 2E 0A 17 F0 EF FF FF => 9000
         80E0001707 2C 03 30 F0 F0 FF FF => 9000
         00E200B830 012E{z} => 9000
         00E200B830 022E{z} => 9000
         00E200B830 032E{z} => 9000
         80E000010B 2F 0208 F1 00 FF 18 000F4240 => 9000
         80E000020B 2F 0208 F0 00 FF 18 000F4240 => 9000
         80E03F0111 38 0300 F0 F0 95 FFFF 50555253452E534D34 => 9000
         80E0000007 3F 0060 95 F0 FF FF => 9000
         80D4010115 3F F0 F0 02 03 5A3C1E7F9B2D4F6081A3C5E7092B4D6F => 9000
         80D4010115 3E F0 F0 02 03 13579BDF02468ACEFDB97531ECA86420 => 9000
         80D4010015 34 F0 F0 02 03 F0E1D2C3B4A5968778695A4B3C2D1E0F => 9000
         80E0001807 2E 0A 17 F0 EF FF FF => 9000
         80E000020B 2F 0208 F0 00 FF 18 000F4240 => 9000
         00A4000C02 3F00 => 9000
         80E03F0211 38 0300 F0 F0 95 FFFF 50555253452E414553 => 9000
         80E0000007 3F 0060 95 F0 FF FF => 9000
         80D4010115 3F F0 F0 03 04 2B7E151628AED2A6ABF7158809CF4F3C => 9000
         80D4010115 3E F0 F0 03 04 8E73B0F7DA0E6452C810F32B809079E5 => 9000
         80D4010015 34 F0 F0 03 04 603DEB1015CA71BE2B73AEF0857D7781 => 9000
         80E0001807 2E 0A 17 F0 EF FF FF => 9000
         80E000020B 2F 0208 F0 00 FF 18 000F4240 => 9000",
        z = "00".repeat(46)
    );
    let mut card = common::factory_card();
    common::run(&mut card, &personalization);
    // Money in every purse, records in every log.
    card.reset();
    for (select, verify, keys, p2) in [
        (None, false, des_keys(), 2),
        (None, true, des_keys(), 1),
        (Some("00A4000C023F01"), false, sm4_keys(), 2),
        (Some("00A4000C023F02"), false, aes_keys(), 2),
    ] {
        if let Some(s) = select {
            assert_eq!(card.transmit(&hex(s)), [0x90, 0x00]);
        }
        if verify {
            assert_eq!(card.transmit(&hex("0020000003123456")), [0x90, 0x00]);
        }
        let mut terminal = Terminal::new(keys, p2);
        for amount in [50_000, 1_234] {
            complete(&mut card, &mut terminal, Op::Load, amount).unwrap();
        }
        complete(&mut card, &mut terminal, Op::Purchase, 99).unwrap();
        card.reset();
    }
    card.into_nvm()
}

/// Runs a whole transaction with no cut; returns what it was.
fn complete(
    card: &mut SimCard,
    terminal: &mut Terminal,
    op: Op,
    amount: u32,
) -> Result<Pending, String> {
    let init = card.transmit(&terminal.init_apdu(op, amount));
    let pending = terminal.prepare(op, amount, &init)?;
    let answer = card.transmit(&pending.apdu);
    if answer != pending.answer() {
        return Err(format!(
            "answer {} instead of {}",
            h(&answer),
            h(&pending.answer())
        ));
    }
    Ok(pending)
}

/// What one purse looks like from outside, after a fresh power-up.
struct Seen {
    balance: u32,
    online: u16,
    offline: u16,
    log_count: usize,
    newest_log: Vec<u8>,
    proof: Vec<u8>,
    ride: Vec<u8>,
}

/// Observes the purse a sweep works on: balance and counters from its body, the log, the proof
/// GET TRANSACTION PROOF gives for the transaction under test, the composite record; then the
/// whole card's canonical dump (so "before" and "after" are exact).
fn observe(
    card: &mut SimCard,
    select: &[&[u8]],
    purse_fid: u16,
    proof_apdu: &[u8],
) -> Result<Vec<u8>, String> {
    for apdu in select {
        let r = card.transmit(apdu);
        if r != [0x90, 0x00] {
            return Err(format!("{} answered {}", h(apdu), h(&r)));
        }
    }
    let mut out = Vec::new();
    let proof = card.transmit(proof_apdu);
    let log: Vec<Vec<u8>> = (1..=10u8)
        .map(|n| card.transmit(&[0x00, 0xB2, n, 0xC4, 0x00]))
        .take_while(|r| r.len() == LOG_RECORD_LEN + 2)
        .collect();
    let ride = card.transmit(&hex("00B202B800"));
    let sim = card.card().ok_or("card did not power up")?;
    let storage = sim.storage();
    let sw = |sw| format!("{sw}");
    let path = sim.volatile().path;
    let df = fs::file_at(storage, path.current()).map_err(sw)?;
    let purse = fs::find_child(storage, &df, purse_fid)
        .map_err(sw)?
        .ok_or("no purse")?;
    let body = Body::decode(
        &storage
            .read_array::<{ card_os::fs::header::PURSE_BODY_LEN }>(purse.body())
            .map_err(|e| format!("{e:?}"))?,
    );
    out.extend(body.state.balance.to_be_bytes());
    out.extend(body.state.online_counter.to_be_bytes());
    out.extend(body.state.offline_counter.to_be_bytes());
    out.push(log.len() as u8);
    out.extend(
        log.first()
            .map_or(vec![0; LOG_RECORD_LEN + 2], Clone::clone),
    );
    let mut proof10 = proof.clone();
    proof10.resize(10, 0);
    out.extend(proof10);
    let mut ride50 = ride.clone();
    ride50.resize(50, 0);
    out.extend(ride50);
    out.extend(card_os::sim::inspect::dump(sim).map_err(|sw| format!("dump: {sw}"))?);
    Ok(out)
}

fn decode(seen: &[u8]) -> Seen {
    Seen {
        balance: u32::from_be_bytes(seen[0..4].try_into().unwrap()),
        online: u16::from_be_bytes([seen[4], seen[5]]),
        offline: u16::from_be_bytes([seen[6], seen[7]]),
        log_count: usize::from(seen[8]),
        newest_log: seen[9..9 + LOG_RECORD_LEN + 2].to_vec(),
        proof: seen[34..44].to_vec(),
        ride: seen[44..94].to_vec(),
    }
}

/// The invariants of a cut, against what the terminal computed independently.
fn invariants<'a>(
    pending: &'a Pending,
    ride: Option<&'a [u8]>,
) -> impl FnMut(&[u8], &[u8], &[u8]) -> Result<(), String> + 'a {
    move |before, _after, seen| {
        let (b, s) = (decode(before), decode(seen));
        let load = pboc_is_load(pending.txn_type);
        let (counter_before, counter_seen, other_before, other_seen) = if load {
            (b.online, s.online, b.offline, s.offline)
        } else {
            (b.offline, s.offline, b.online, s.online)
        };
        if other_seen != other_before {
            return Err("the other counter moved".into());
        }
        let mut proof = pending.proof();
        proof.resize(10, 0);
        let mut no_proof = vec![0x94, 0x06];
        no_proof.resize(10, 0);
        let mut record = pending.record.to_vec();
        record.extend([0x90, 0x00]);
        if s.balance == pending.new_balance {
            // it happened: all of it
            let ok = b.balance == pending.old_balance
                && counter_seen == counter_before + 1
                && s.log_count == (b.log_count + 1).min(10)
                && s.newest_log == record
                && s.proof == proof
                && ride.is_none_or(|r| s.ride[..r.len()] == *r);
            ok.then_some(())
                .ok_or_else(|| "new balance without all of the transaction".to_string())
        } else if s.balance == pending.old_balance {
            // it did not happen: none of it
            let ok = counter_seen == counter_before
                && s.log_count == b.log_count
                && s.newest_log == b.newest_log
                && s.proof == no_proof
                && s.ride == b.ride;
            ok.then_some(())
                .ok_or_else(|| "old balance with part of the transaction".to_string())
        } else {
            Err(format!("balance {} is neither old nor new", s.balance))
        }
    }
}

struct Case {
    name: &'static str,
    /// Sent after power-up, before INITIALIZE (selection, PIN): also before each observation.
    select: Vec<Vec<u8>>,
    keys: Keys,
    p2: u8,
    op: Op,
    amount: u32,
    /// Composite purchase: the record cached before the DEBIT.
    ride: Option<Vec<u8>>,
}

fn purse_fid(p2: u8) -> u16 {
    u16::from(p2)
}

/// The transaction as the sweep runs it: its setup (selection, INITIALIZE, cache) and DEBIT/CREDIT,
/// with the random the card draws in every run (a fresh power-up starts the simulator's seeded
/// stream anew).
fn prepare_case(image: &MemoryNvm, case: &Case) -> (Vec<Vec<u8>>, Pending) {
    let mut terminal = Terminal::new(case.keys.clone(), case.p2);
    let init = terminal.init_apdu(case.op, case.amount);
    let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
    for apdu in &case.select {
        card.transmit(apdu);
    }
    let answer = card.transmit(&init);
    let pending = terminal.prepare(case.op, case.amount, &answer).unwrap();
    let mut setup = case.select.clone();
    setup.push(init);
    if let Some(ride) = &case.ride {
        setup.push(ride.clone());
    }
    (setup, pending)
}

fn run_sweep(image: &MemoryNvm, case: &Case) -> SweepReport {
    let (setup, pending) = prepare_case(image, case);
    let setup_refs: Vec<&[u8]> = setup.iter().map(Vec::as_slice).collect();
    let select: Vec<&[u8]> = case.select.iter().map(Vec::as_slice).collect();
    let proof_apdu = pending.proof_apdu();
    let ride = case.ride.as_ref().map(|r| {
        let mut want = r[5..].to_vec();
        want.extend([0x90, 0x00]);
        want
    });
    let report = sweep(
        &Sweep {
            image,
            setup: &setup_refs,
            command: &pending.apdu,
            cut_recovery: true,
            intermediate: false,
        },
        |card| observe(card, &select, purse_fid(case.p2), &proof_apdu),
        invariants(&pending, ride.as_deref()),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(report.response, pending.answer(), "{}", case.name);
    assert!(
        report.writes > 0 && report.saw_before > 0 && report.saw_after > 0,
        "{}: {report:?}",
        case.name
    );
    println!(
        "power cut: {:<36} {:>2} page writes, {:>3} cut points, {:>4} recovery cut points \
         (old state {}, new state {})",
        case.name,
        report.writes,
        report.cut_points,
        report.recovery_cut_points,
        report.saw_before,
        report.saw_after
    );
    report
}

fn cases() -> Vec<Case> {
    let ed_select = vec![hex("0020000003123456")];
    let sm4_select = vec![hex("00A4000C023F01")];
    vec![
        Case {
            name: "CREDIT FOR LOAD (EP, 3DES)",
            select: vec![],
            keys: des_keys(),
            p2: 2,
            op: Op::Load,
            amount: 2_000,
            ride: None,
        },
        Case {
            name: "DEBIT FOR PURCHASE (EP, 3DES)",
            select: vec![],
            keys: des_keys(),
            p2: 2,
            op: Op::Purchase,
            amount: 150,
            ride: None,
        },
        Case {
            name: "DEBIT FOR CAPP PURCHASE (cached record)",
            select: vec![],
            keys: des_keys(),
            p2: 2,
            op: Op::Capp,
            amount: 300,
            ride: Some(ride_record(7)),
        },
        Case {
            name: "CREDIT FOR LOAD (ED, PIN)",
            select: ed_select.clone(),
            keys: des_keys(),
            p2: 1,
            op: Op::Load,
            amount: 700,
            ride: None,
        },
        Case {
            name: "CREDIT FOR UNLOAD (ED, PIN)",
            select: ed_select.clone(),
            keys: des_keys(),
            p2: 1,
            op: Op::Unload,
            amount: 1_000,
            ride: None,
        },
        Case {
            name: "DEBIT FOR CASH WITHDRAW (ED, PIN)",
            select: ed_select.clone(),
            keys: des_keys(),
            p2: 1,
            op: Op::CashWithdraw,
            amount: 2_500,
            ride: None,
        },
        Case {
            name: "DEBIT FOR PURCHASE (ED, PIN)",
            select: ed_select,
            keys: des_keys(),
            p2: 1,
            op: Op::Purchase,
            amount: 70,
            ride: None,
        },
        Case {
            name: "CREDIT FOR LOAD (EP, SM4)",
            select: sm4_select.clone(),
            keys: sm4_keys(),
            p2: 2,
            op: Op::Load,
            amount: 2_000,
            ride: None,
        },
        Case {
            name: "DEBIT FOR PURCHASE (EP, SM4)",
            select: sm4_select,
            keys: sm4_keys(),
            p2: 2,
            op: Op::Purchase,
            amount: 150,
            ride: None,
        },
        Case {
            name: "CREDIT FOR LOAD (EP, AES)",
            select: vec![hex("00A4000C023F02")],
            keys: aes_keys(),
            p2: 2,
            op: Op::Load,
            amount: 2_000,
            ride: None,
        },
        Case {
            name: "DEBIT FOR PURCHASE (EP, AES)",
            select: vec![hex("00A4000C023F02")],
            keys: aes_keys(),
            p2: 2,
            op: Op::Purchase,
            amount: 150,
            ride: None,
        },
    ]
}

#[test]
fn every_cut_of_credit_and_debit_is_all_or_nothing() {
    let image = image();
    let mut total = SweepReport::default();
    for case in cases() {
        let r = run_sweep(&image, &case);
        total.cut_points += r.cut_points;
        total.recovery_cut_points += r.recovery_cut_points;
    }
    println!(
        "power cut: purse CREDIT/DEBIT total: {} cut points, {} recovery cut points",
        total.cut_points, total.recovery_cut_points
    );
}

#[test]
fn a_full_log_wraps_in_the_same_transaction() {
    // Ten more purchases fill the EP's log; the sweep's purchase then overwrites the oldest record.
    let mut card = SimCard::from_nvm(image()).ok().unwrap();
    let mut terminal = Terminal::new(des_keys(), 2);
    for _ in 0..10 {
        complete(&mut card, &mut terminal, Op::Purchase, 1).unwrap();
    }
    let image = card.into_nvm();
    let case = Case {
        name: "DEBIT FOR PURCHASE (full log)",
        select: vec![],
        keys: des_keys(),
        p2: 2,
        op: Op::Purchase,
        amount: 150,
        ride: None,
    };
    run_sweep(&image, &case);
}

/// INITIALIZE and UPDATE CAPP DATA CACHE write nothing: there is no write to cut. Power lost after
/// them leaves the card as it was, and the CREDIT/DEBIT that would have followed gets `6901`.
#[test]
fn initialize_and_the_capp_cache_write_nothing() {
    let image = image();
    for case in cases().into_iter().chain([Case {
        name: "UPDATE CAPP DATA CACHE",
        select: vec![],
        keys: des_keys(),
        p2: 2,
        op: Op::Capp,
        amount: 300,
        ride: Some(ride_record(9)),
    }]) {
        let (setup, pending) = prepare_case(&image, &case);
        let select: Vec<&[u8]> = case.select.iter().map(Vec::as_slice).collect();
        let proof_apdu = pending.proof_apdu();
        let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
        let before = observe(&mut card, &select, purse_fid(case.p2), &proof_apdu).unwrap();
        let mut card = SimCard::from_nvm(image.snapshot()).ok().unwrap();
        card.nvm_mut().start_recording();
        for apdu in &setup {
            card.transmit(apdu);
        }
        let writes = card.nvm_mut().take_recording();
        // the command's own state (a VERIFY's try) is committed before INITIALIZE
        let setup_writes = if case.select.iter().any(|a| a[1] == 0x20) {
            4
        } else {
            0
        };
        assert_eq!(writes.len(), setup_writes, "{}: {writes:?}", case.name);
        card.power_off();
        card.power_on().unwrap();
        let seen = observe(&mut card, &select, purse_fid(case.p2), &proof_apdu).unwrap();
        assert!(
            seen == before,
            "{}: power lost after INITIALIZE changed the card",
            case.name
        );
        for apdu in &case.select {
            card.transmit(apdu);
        }
        assert_eq!(card.transmit(&pending.apdu), [0x69, 0x01], "{}", case.name);
    }
}

/// SplitMix64: the run's own reproducible random source.
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
    loads_attempted: u64,
    purchases_attempted: u64,
    loads_confirmed: u64,
    purchases_confirmed: u64,
    refused_9401: u64,
    refused_wrong_mac: u64,
    cuts_in_command: u64,
    answers_lost: u64,
    settled_done: u64,
    settled_not_done: u64,
    recovery_cuts: u64,
}

/// Powers the card up after a cut, possibly cutting the recovery once more first.
fn power_up(nvm: MemoryNvm, dice: &mut Dice, counts: &mut Counts) -> SimCard {
    let rng = || SimRng::Seeded(CounterRng::from_seed([0x5A; 16]));
    let mut nvm = nvm;
    nvm.restore_power();
    if dice.chance(30) {
        nvm.arm_cut(PowerCut {
            write: dice.below(5),
            bytes: dice.below(65) as usize,
        });
        match SimCard::from_nvm_with_rng(nvm, rng()) {
            Ok(card) => {
                // the recovery wrote less than the cut point: nothing was cut
                let mut card = card;
                card.nvm_mut().restore_power();
                return card;
            }
            Err((torn, _)) => {
                counts.recovery_cuts += 1;
                nvm = torn;
                nvm.restore_power();
            }
        }
    }
    SimCard::from_nvm_with_rng(nvm, rng()).ok().unwrap()
}

/// One randomized run: `transactions` transactions on the purse `p2`, each op drawn by `pick`,
/// with cuts, lost answers, forged MACs and amounts over the balance; the terminal settles every
/// unanswered one with GET TRANSACTION PROOF. After every power-up `after_power_up` is sent (the
/// ED's PIN). Returns the counts; asserts that the card's balance is the start plus what was
/// confirmed loaded minus what was confirmed paid out, and that the counters agree.
fn random_run(
    p2: u8,
    transactions: u64,
    seed: u64,
    pick: impl Fn(&mut Dice) -> Op,
    after_power_up: &[Vec<u8>],
) -> Counts {
    let mut dice = Dice(seed);
    let mut card = SimCard::from_nvm(image()).ok().unwrap();
    card.set_rng(SimRng::Seeded(CounterRng::from_seed([0xA5; 16])));
    let mut terminal = Terminal::new(des_keys(), p2);
    let balance_apdu = [0x80, 0x5C, 0x00, p2, 0x04];
    for apdu in after_power_up {
        assert_eq!(card.transmit(apdu), [0x90, 0x00]);
    }
    let body_of = |card: &mut SimCard| {
        let sim = card.card().unwrap();
        let storage = sim.storage();
        let mf = fs::file_at(storage, fs::mf_addr(storage)).unwrap();
        let purse = fs::find_child(storage, &mf, purse_fid(p2))
            .unwrap()
            .unwrap();
        Body::decode(
            &storage
                .read_array::<{ card_os::fs::header::PURSE_BODY_LEN }>(purse.body())
                .unwrap(),
        )
        .state
    };
    let before = body_of(&mut card);
    let start = u32::from_be_bytes(card.transmit(&balance_apdu)[..4].try_into().unwrap());
    let (mut loaded, mut paid) = (0u64, 0u64);
    let mut counts = Counts::default();
    for n in 0..transactions {
        let op = pick(&mut dice);
        let expected = u64::from(start) + loaded - paid;
        let amount = match op {
            Op::Load => 1 + dice.below(4_000) as u32,
            // now and then more than the balance: refused at INITIALIZE
            _ if dice.chance(1) => (expected + 1 + dice.below(100)) as u32,
            _ => 1 + dice.below(1_500) as u32,
        };
        if op.is_online() {
            counts.loads_attempted += 1;
        } else {
            counts.purchases_attempted += 1;
        }
        let init = card.transmit(&terminal.init_apdu(op, amount));
        if init == [0x94, 0x01] {
            counts.refused_9401 += 1;
            continue;
        }
        let pending = terminal
            .prepare(op, amount, &init)
            .unwrap_or_else(|e| panic!("transaction {n}: {e}"));
        if op == Op::Capp {
            assert_eq!(card.transmit(&ride_record(n as u8)), [0x90, 0x00]);
        }
        // now and then a forged MAC: refused, nothing happens (the ledger would show it)
        if dice.chance(1) {
            let mut forged = pending.apdu.clone();
            let at = forged.len() - 2;
            forged[at] ^= 0x01;
            assert_eq!(card.transmit(&forged), [0x93, 0x02], "transaction {n}");
            counts.refused_wrong_mac += 1;
            continue;
        }
        // A cut somewhere in the command's writes (or after all of them), or an answer lost on
        // the way back.
        let cut = dice.chance(20);
        if cut {
            card.nvm_mut().arm_cut(PowerCut {
                write: dice.below(6),
                bytes: dice.below(65) as usize,
            });
        }
        let mut answer = card.transmit(&pending.apdu);
        if cut && !answer.is_empty() {
            // the cut point lay beyond the command's writes
            card.nvm_mut().restore_power();
        }
        if !answer.is_empty() && dice.chance(2) {
            answer.clear();
            card.power_off();
        }
        let done = if answer.is_empty() {
            if cut {
                counts.cuts_in_command += 1;
            } else {
                counts.answers_lost += 1;
            }
            // The terminal settles it: power up (the recovery perhaps cut too), ask for the proof.
            card = power_up(card.into_nvm(), &mut dice, &mut counts);
            for apdu in after_power_up {
                assert_eq!(card.transmit(apdu), [0x90, 0x00]);
            }
            let proof = card.transmit(&pending.proof_apdu());
            if proof == pending.proof() {
                counts.settled_done += 1;
                true
            } else if proof == [0x94, 0x06] {
                counts.settled_not_done += 1;
                false
            } else {
                panic!(
                    "transaction {n}: GET TRANSACTION PROOF answered {}",
                    h(&proof)
                );
            }
        } else {
            assert_eq!(answer, pending.answer(), "transaction {n}");
            true
        };
        if done {
            if op.is_online() {
                counts.loads_confirmed += 1;
            } else {
                counts.purchases_confirmed += 1;
            }
            if op == Op::Load {
                loaded += u64::from(pending.amount);
            } else {
                paid += u64::from(pending.amount);
            }
        }
    }
    let balance = u32::from_be_bytes(card.transmit(&balance_apdu)[..4].try_into().unwrap());
    println!("randomized run (P2 {p2:02X}): {counts:?}");
    println!(
        "randomized run (P2 {p2:02X}): start {start} + loads {loaded} - debits {paid} = {} cents; \
         card balance {balance}",
        u64::from(start) + loaded - paid
    );
    assert_eq!(u64::from(start) + loaded - paid, u64::from(balance));
    // The counters advanced exactly once per confirmed transaction of their kind.
    let state = body_of(&mut card);
    assert_eq!(
        u64::from(state.online_counter),
        u64::from(before.online_counter) + counts.loads_confirmed
    );
    assert_eq!(
        u64::from(state.offline_counter),
        u64::from(before.offline_counter) + counts.purchases_confirmed
    );
    counts
}

#[test]
fn ten_thousand_transactions_with_random_cuts_lose_no_money() {
    let counts = random_run(
        2,
        10_000,
        0x00C1_71ED_CA4D,
        |dice| match dice.below(10) {
            0..=2 => Op::Load,
            3 => Op::Capp,
            _ => Op::Purchase,
        },
        &[],
    );
    assert_eq!(offset::STATE, 4);
    assert!(
        counts.cuts_in_command > 500 && counts.settled_done > 100 && counts.settled_not_done > 100
    );
    assert!(counts.recovery_cuts > 50 && counts.answers_lost > 50);
    assert!(counts.refused_9401 > 20 && counts.refused_wrong_mac > 50);
}

#[test]
fn ed_unloads_and_cash_withdrawals_with_random_cuts_lose_no_money() {
    // The ED (PIN verified after every power-up): loads, unloads, purchases and cash withdrawals
    // (FMCOS 2.0 §8.7–8.11), "loads" counting the online transactions (loads and unloads) and
    // "purchases" the offline ones.
    let counts = random_run(
        1,
        3_000,
        0x00ED_0BAD_CA5E,
        |dice| match dice.below(10) {
            0..=2 => Op::Load,
            3..=4 => Op::Unload,
            5..=6 => Op::CashWithdraw,
            _ => Op::Purchase,
        },
        &[hex("0020000003123456")],
    );
    assert!(
        counts.cuts_in_command > 150 && counts.settled_done > 30 && counts.settled_not_done > 30
    );
    assert!(counts.refused_9401 > 5 && counts.refused_wrong_mac > 10);
}
