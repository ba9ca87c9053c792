//! What a purse transaction costs the card (README "Measurements"): NVM page writes and bytes
//! programmed per purchase and per load, over two turns of the cyclic log (so every log slot, and
//! every way its 24 bytes fall on 64-byte pages, is counted), and the APDUs a terminal sends.
//!
//! `cargo test -p card-os --test purse_measurements -- --nocapture` prints the figures.

mod common;

use card_os::crypto::purse::{self as pboc, HostTime, Load, Purchase};
use card_os::crypto::Key;
use card_os::nvm::Geometry;
use card_os::sim::SimCard;

const AID: &str = "A000000632010105";

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn key16(s: &str) -> [u8; 16] {
    hex(s).try_into().unwrap()
}

/// A citizen card's purse application as the phone-reader transcript personalizes it.
fn card() -> SimCard {
    let mut card = common::factory_card();
    let text =
        std::fs::read_to_string(common::vectors_dir().join("transcripts/purse-phone-reader.apdu"))
            .unwrap();
    // Only the personalization: up to the first transaction.
    let personalization: String = text
        .lines()
        .take_while(|l| !l.starts_with("# --- twelve transactions"))
        .map(|l| format!("{l}\n"))
        .collect();
    common::run(&mut card, &personalization);
    card
}

struct Terminal {
    dlk: Key,
    dpk: Key,
    seq: u32,
}

const TERMINAL: [u8; 6] = [0x33, 0x03, 0, 0, 0x01, 0x01];

/// A different date and time for every transaction (so no log byte stays as it was by chance).
fn at(n: u32) -> HostTime {
    HostTime {
        date: [0x20, 0x24, 0x06, 1 + (n % 28) as u8],
        time: [0x08, (n % 60) as u8, (n * 7 % 60) as u8],
    }
}

impl Terminal {
    fn new() -> Terminal {
        Terminal {
            dlk: Key::TripleDes(key16("374598B5C0B0EAE1E1D06609AC5BB369")),
            dpk: Key::TripleDes(key16("A338D92A10C8285411E761445C831C22")),
            seq: 0,
        }
    }

    /// `INITIALIZE FOR (CAPP) PURCHASE` with `Le` (or without, as T=0 readers send it).
    fn init_purchase(&self, p1: u8, amount: u32, le: bool) -> Vec<u8> {
        let mut apdu = vec![0x80, 0x50, p1, 0x02, 0x0B, 0x01];
        apdu.extend(amount.to_be_bytes());
        apdu.extend(TERMINAL);
        if le {
            apdu.push(0x0F);
        }
        apdu
    }

    fn debit(&mut self, init: &[u8], txn_type: u8, amount: u32, le: bool) -> Vec<u8> {
        self.seq += 1;
        let counter = u16::from_be_bytes([init[4], init[5]]);
        let random: [u8; 4] = init[11..15].try_into().unwrap();
        let seq = self.seq.to_be_bytes();
        let sespk = pboc::purchase_session_key(&self.dpk, &random, counter, &seq).unwrap();
        let at = at(self.seq);
        let fields = Purchase {
            amount,
            txn_type,
            terminal_id: TERMINAL,
            terminal_seq: seq,
            at,
        };
        let mut apdu = hex("805401000F");
        apdu.extend(seq);
        apdu.extend(at.date);
        apdu.extend(at.time);
        apdu.extend(pboc::purchase_mac1(&sespk, &fields).unwrap());
        if le {
            apdu.push(0x08);
        }
        apdu
    }

    fn credit(&mut self, init: &[u8], amount: u32) -> Vec<u8> {
        self.seq += 1;
        let at = at(self.seq);
        let counter = u16::from_be_bytes([init[4], init[5]]);
        let random: [u8; 4] = init[8..12].try_into().unwrap();
        let seslk = pboc::load_session_key(&self.dlk, &random, counter).unwrap();
        let fields = Load {
            amount,
            txn_type: 0x02,
            terminal_id: TERMINAL,
        };
        let mut apdu = hex("805200000B");
        apdu.extend(at.date);
        apdu.extend(at.time);
        apdu.extend(pboc::load_mac2(&seslk, &fields, &at).unwrap());
        apdu.push(0x04);
        apdu
    }
}

/// Page writes and bytes of one command, and the lengths of its page writes.
fn measured(card: &mut SimCard, apdu: &[u8]) -> (Vec<u8>, u64, u64, Vec<usize>) {
    card.nvm_mut().reset_counters();
    card.nvm_mut().start_recording();
    let response = card.transmit(apdu);
    let lengths = card.nvm_mut().take_recording();
    let c = card.nvm().counters();
    (response, c.page_writes, c.bytes_written, lengths)
}

fn ok(response: &[u8]) {
    assert_eq!(
        &response[response.len() - 2..],
        [0x90, 0x00],
        "{}",
        hex::encode_upper(response)
    );
}

struct Stats {
    name: &'static str,
    pages: Vec<u64>,
    bytes: Vec<u64>,
    journal: Vec<usize>,
}

impl Stats {
    fn new(name: &'static str) -> Stats {
        Stats {
            name,
            pages: vec![],
            bytes: vec![],
            journal: vec![],
        }
    }

    /// One command's figures; the journal record is the first `journal_pages` writes.
    fn add(&mut self, pages: u64, bytes: u64, lengths: &[usize], journal_pages: usize) {
        self.pages.push(pages);
        self.bytes.push(bytes);
        self.journal.push(lengths[..journal_pages].iter().sum());
    }

    fn print(&self) {
        let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
        let fours = self.pages.iter().filter(|&&p| p <= 4).count();
        println!(
            "purse cost: {:<28} page writes min {} avg {:.1} max {} ({} of {} at most 4); bytes min {} avg {:.0} max {}; journal record {} bytes",
            self.name,
            self.pages.iter().min().unwrap(),
            avg(&self.pages),
            self.pages.iter().max().unwrap(),
            fours,
            self.pages.len(),
            self.bytes.iter().min().unwrap(),
            avg(&self.bytes),
            self.bytes.iter().max().unwrap(),
            self.journal.iter().max().unwrap(),
        );
    }
}

#[test]
fn nvm_cost_of_purchases_and_loads() {
    let page = Geometry::DEFAULT.page_size;
    let mut card = card();
    let mut terminal = Terminal::new();
    let (mut debit_stats, mut capp_stats, mut credit_stats) = (
        Stats::new("DEBIT FOR PURCHASE"),
        Stats::new("DEBIT FOR CAPP PURCHASE"),
        Stats::new("CREDIT FOR LOAD"),
    );
    // loads: 20 of them, two turns of the log
    for n in 0..20u32 {
        let amount = 1_000 + 37 * n;
        let mut init_apdu = hex("805000020B 01");
        init_apdu.extend(amount.to_be_bytes());
        init_apdu.extend(TERMINAL);
        init_apdu.push(0x10);
        let (init, pages, _, _) = measured(&mut card, &init_apdu);
        ok(&init);
        assert_eq!(pages, 0, "INITIALIZE writes nothing");
        let credit = terminal.credit(&init, amount);
        let (answer, pages, bytes, lengths) = measured(&mut card, &credit);
        ok(&answer);
        credit_stats.add(pages, bytes, &lengths, 1);
    }
    for n in 0..20u32 {
        let amount = 100 + 13 * n;
        let (init, pages, _, _) = measured(&mut card, &terminal.init_purchase(1, amount, true));
        ok(&init);
        assert_eq!(pages, 0, "INITIALIZE writes nothing");
        let debit = terminal.debit(&init, 0x06, amount, true);
        let (answer, pages, bytes, lengths) = measured(&mut card, &debit);
        ok(&answer);
        debit_stats.add(pages, bytes, &lengths, 1);
        println!(
            "purse cost: purchase {:>2}: {pages} page writes of {lengths:?} bytes",
            n + 1
        );
        // the purchase's journal record fits one page
        assert!(lengths[0] <= page, "journal record of {} bytes", lengths[0]);
        assert!(pages <= 5);
    }
    for n in 0..20u32 {
        let amount = 300 + 11 * n;
        let init = card.transmit(&terminal.init_purchase(3, amount, true));
        ok(&init);
        let mut ride = hex("80DC02B830 022E");
        ride.extend([n as u8; 46]);
        let (answer, pages, _, _) = measured(&mut card, &ride);
        ok(&answer);
        assert_eq!(pages, 0, "the cache writes nothing by itself");
        let debit = terminal.debit(&init, 0x09, amount, true);
        let (answer, pages, bytes, lengths) = measured(&mut card, &debit);
        ok(&answer);
        capp_stats.add(pages, bytes, &lengths, 2);
    }
    for s in [&credit_stats, &debit_stats, &capp_stats] {
        s.print();
    }
    println!("purse cost: INITIALIZE (load or purchase)    0 page writes");
}

#[test]
fn apdus_per_terminal_transaction() {
    let mut card = card();
    card.reset();
    let mut terminal = Terminal::new();
    let mut count = 0;
    let mut send = |card: &mut SimCard, apdu: &[u8]| {
        count += 1;
        card.transmit(apdu)
    };
    // load: SELECT (no FCI wanted), INITIALIZE FOR LOAD, CREDIT FOR LOAD
    ok(&send(&mut card, &hex(&format!("00A4040C08 {AID}"))));
    let init = send(&mut card, &hex("805000020B 01 00000064 330300000101 10"));
    ok(&init);
    let credit = terminal.credit(&init, 100);
    ok(&send(&mut card, &credit));
    let load = count;
    // purchase: SELECT, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE
    let mut count = 0;
    let mut send = |card: &mut SimCard, apdu: &[u8]| {
        count += 1;
        card.transmit(apdu)
    };
    card.reset();
    ok(&send(&mut card, &hex(&format!("00A4040C08 {AID}"))));
    let init = send(&mut card, &terminal.init_purchase(1, 5, true));
    ok(&init);
    let debit = terminal.debit(&init, 0x06, 5, true);
    ok(&send(&mut card, &debit));
    let purchase = count;
    // the same purchase on T=0, without Le: each answer through GET RESPONSE
    let mut count = 0;
    let mut send = |card: &mut SimCard, apdu: &[u8]| {
        count += 1;
        card.transmit(apdu)
    };
    card.reset();
    ok(&send(&mut card, &hex(&format!("00A4040C08 {AID}"))));
    assert_eq!(
        send(&mut card, &terminal.init_purchase(1, 5, false)),
        [0x61, 0x0F]
    );
    let init = send(&mut card, &hex("00C000000F"));
    ok(&init);
    let debit = terminal.debit(&init, 0x06, 5, false);
    assert_eq!(send(&mut card, &debit), [0x61, 0x08]);
    ok(&send(&mut card, &hex("00C0000008")));
    let t0 = count;
    println!(
        "purse APDUs: purchase {purchase} (SELECT, INITIALIZE, DEBIT), load {load} (SELECT, \
         INITIALIZE, CREDIT), composite purchase {} (+ UPDATE CAPP DATA CACHE), T=0 purchase {t0} \
         (+ 2 GET RESPONSE), settling a lost answer +1 (GET TRANSACTION PROOF)",
        purchase + 1
    );
    assert_eq!((purchase, load, t0), (3, 3, 5));
}
