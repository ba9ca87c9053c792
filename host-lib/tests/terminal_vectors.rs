//! The terminal against logged card answers: card-specs TV-4 (a load) and TV-5 (a composite
//! purchase) from a real card, replayed APDU by APDU, then the terminal's refusals and its
//! recovery when the reader fails after DEBIT/CREDIT, against scripted cards.
//!
//! Each script lists the exact commands the terminal must send and what the card answers, so
//! these tests also pin the APDU sequence (and count) of each operation.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use host_lib::keys::{HostTime, KeySet, TerminalCounter};
use host_lib::terminal::journal::{FileJournal, Journal};
use host_lib::terminal::{
    CappRecord, CappUpdate, Pending, Terminal, TerminalConfig, TerminalError, TransactionKind,
};
use host_lib::transport::{self, Transport};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn vector(name: &str) -> toml::Table {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/crypto/pboc-purse.toml");
    let t: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    t["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_table().unwrap().clone())
        .find(|v| v["name"].as_str().unwrap().starts_with(name))
        .unwrap()
}

fn s<'a>(v: &'a toml::Table, k: &str) -> &'a str {
    v[k].as_str().unwrap()
}

/// The logged diversified keys as a key set without diversification (the log has no masters).
fn tv_keys() -> KeySet {
    KeySet::from_toml(&keys_text())
        .unwrap()
        .with_terminal_counter(TerminalCounter::in_memory(0))
}

/// One step of a scripted card.
enum Step {
    /// The terminal must send this command; the card answers this.
    Apdu(Vec<u8>, Vec<u8>),
    /// The terminal must send this command; the reader fails (card pulled).
    Lost(Vec<u8>),
    /// The terminal must reconnect; the card is back (or not).
    Back(bool),
}

fn apdu(c: &str, r: &str) -> Step {
    Step::Apdu(h(c), h(r))
}

struct Scripted {
    steps: VecDeque<Step>,
    sent: Vec<String>,
}

impl Scripted {
    fn new(steps: Vec<Step>) -> Self {
        Scripted {
            steps: steps.into(),
            sent: Vec::new(),
        }
    }
    fn done(&self) {
        assert!(
            self.steps.is_empty(),
            "{} steps not taken",
            self.steps.len()
        );
    }
}

fn removed() -> transport::Error {
    transport::Error::CardRemoved {
        reader: "scripted".into(),
    }
}

impl Transport for Scripted {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, transport::Error> {
        let c = hex::encode_upper(command);
        self.sent.push(c.clone());
        match self.steps.pop_front() {
            Some(Step::Apdu(want, answer)) => {
                assert_eq!(
                    c,
                    hex::encode_upper(want),
                    "wrong command (sent so far: {:?})",
                    self.sent
                );
                Ok(answer)
            }
            Some(Step::Lost(want)) => {
                assert_eq!(c, hex::encode_upper(want), "wrong command");
                Err(removed())
            }
            Some(Step::Back(_)) => panic!("{c} sent where a reconnect was expected"),
            None => panic!("unexpected command {c}"),
        }
    }
    fn reset(&mut self) -> Result<Vec<u8>, transport::Error> {
        panic!("no reset expected")
    }
    fn reconnect(&mut self, _wait: Duration) -> Result<Vec<u8>, transport::Error> {
        match self.steps.pop_front() {
            Some(Step::Back(true)) => Ok(vec![0x3B, 0x00]),
            Some(Step::Back(false)) => Err(transport::Error::WaitTimeout(Duration::ZERO)),
            _ => panic!("unexpected reconnect"),
        }
    }
    fn atr(&self) -> &[u8] {
        &[0x3B, 0x00]
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

/// SELECT of the city-card EP with the Changsha card's 0015 in the FCI (transcript
/// fmcos-security-vectors.apdu).
const SELECT: &str = "00A4040009A0000000038698070100";
const FCI: &str = "6F2E8409A00000000386980701A5219F0C1E073141000000000001010000410000008999998520150605203808080000 9000";
const SERIAL: &str = "00004100000089999985";

fn time_of(v: &toml::Table) -> HostTime {
    HostTime {
        date: h(s(v, "date")).try_into().unwrap(),
        time: h(s(v, "time")).try_into().unwrap(),
    }
}

fn config(terminal: &str) -> TerminalConfig {
    TerminalConfig {
        aid: h("A00000000386980701"),
        terminal_id: h(terminal).try_into().unwrap(),
        recovery_wait: Duration::from_millis(200),
        ..TerminalConfig::default()
    }
}

/// TV-4: the load host checks the logged MAC1, sends the logged MAC2 and accepts the logged TAC.
#[test]
fn tv4_load_replayed() {
    let v = vector("EP load");
    let keys = tv_keys();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(
            "805000020B 01 00001C37 000001000050 10",
            "00000000 0000 01 00 CDEF4F20 06B1BEF5 9000",
        ),
        apdu("805200000B 20140825 103100 0641DCD8 04", "ED0F8755 9000"),
    ]);
    let at = time_of(&v);
    let mut t = Terminal::new(card, &keys, config(s(&v, "terminal_id"))).with_clock(move || at);
    let r = t.load(0x1C37).unwrap();
    assert!(r.verified && !r.recovered);
    assert_eq!(r.kind, TransactionKind::Load);
    assert_eq!(r.serial_hex(), SERIAL);
    assert_eq!((r.balance_before, r.balance_after), (0, 0x1C37));
    assert_eq!(r.card_counter, 0);
    assert_eq!(hex::encode_upper(r.mac2), s(&v, "mac2"));
    assert_eq!(hex::encode_upper(r.tac), s(&v, "tac"));
    assert_eq!(
        r.apdus, 3,
        "a load is SELECT, INITIALIZE FOR LOAD, CREDIT FOR LOAD"
    );
    assert_eq!(r.load_record().unwrap().amount_cents, 0x1C37);
    t.into_transport().done();
}

/// TV-5: the PSAM makes MAC1 with terminal transaction number 1, the terminal caches the metro
/// record and accepts the logged TAC and MAC2. (The logged MAC1 does not reproduce, card-specs §6:
/// the DEBIT carries the one computed from the logged fields, as apdu-specs/purse.md's example.)
#[test]
fn tv5_composite_purchase_replayed() {
    let v = vector("composite");
    let keys = tv_keys();
    let record = "022E00007A00000000000000000000000000980200000000000000000000000000000000000000000000000000004F95";
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(
            "805003020B 01 00001C37 000000000001 0F",
            "00001C37 0000 000000 01 00 9AC87503 9000",
        ),
        apdu(&format!("80DC02B830{record}"), "9000"),
        apdu(
            "805401000F 00000001 20110919 204812 CD573164 08",
            "44A8E04A 350AC480 9000",
        ),
    ]);
    let at = time_of(&v);
    let mut t = Terminal::new(card, &keys, config(s(&v, "terminal_id"))).with_clock(move || at);
    let capp = CappUpdate {
        sfi: 0x17,
        record: CappRecord::Tag(0x02),
        data: h(record),
    };
    let r = t.purchase(0x1C37, Some(&capp)).unwrap();
    assert!(r.verified);
    assert_eq!(r.kind, TransactionKind::CappPurchase);
    assert_eq!(r.txn_type, 0x09);
    assert_eq!(r.terminal_seq, Some([0, 0, 0, 1]));
    assert_eq!((r.balance_before, r.balance_after), (0x1C37, 0));
    assert_eq!(hex::encode_upper(r.mac2), s(&v, "mac2"));
    assert_eq!(hex::encode_upper(r.tac), s(&v, "tac"));
    assert_eq!(r.apdus, 4);
    let p = r.verified_purchase().unwrap();
    assert_eq!((p.txn_counter, p.terminal_id.as_str()), (0, "000000000001"));
    assert_eq!(keys.terminal_counter().unwrap().last_used(), 1);
    t.into_transport().done();
}

const TV5_INIT: &str = "805001020B 01 00000100 000000000001 0F";
const TV5_INIT_ANSWER: &str = "00001C37 0000 000000 01 00 9AC87503 9000";

fn tv5_terminal(card: Scripted, keys: &KeySet) -> Terminal<'_, Scripted> {
    let at = time_of(&vector("composite"));
    Terminal::new(card, keys, config("000000000001")).with_clock(move || at)
}

/// The MAC1 a fresh in-memory PSAM (number 1) makes for a 1-yuan EP purchase on the TV-5 card.
fn debit_1_yuan() -> String {
    use host_lib::keys::{KeyRef, KeyStore, PurchaseInit, PurchaseRequest};
    let probe = tv_keys();
    let init = PurchaseInit::parse(&h("00001C37000000000001009AC87503")).unwrap();
    let m = probe
        .purchase_mac1(
            KeyRef::plain("DPK"),
            &init,
            &PurchaseRequest {
                amount: 0x100,
                txn_type: 0x06,
                terminal_id: [0, 0, 0, 0, 0, 1],
                at: time_of(&vector("composite")),
            },
        )
        .unwrap();
    format!("805401000F{}08", hex::encode_upper(m.debit_data()))
}

fn keys_text() -> String {
    let load = vector("EP load");
    let purchase = vector("composite");
    format!(
        "format = 1\n[key_set]\nid = \"tv\"\ndevelopment = true\n\
         [keys.DLK]\nalgorithm = \"3des\"\nvalue = \"{}\"\ndiversification = \"none\"\nversion = 1\n\
         [keys.DPK]\nalgorithm = \"3des\"\nvalue = \"{}\"\ndiversification = \"none\"\nversion = 1\n\
         [keys.DTK]\nalgorithm = \"3des\"\nvalue = \"{}\"\ndiversification = \"none\"\nversion = 1\n",
        s(&load, "dlk"),
        s(&purchase, "dpk"),
        s(&load, "dtk")
    )
}

/// MAC2 and TAC of that purchase, as the card would compute them.
fn proof_1_yuan() -> (String, String) {
    use card_os::crypto::purse;
    use card_os::crypto::Key;
    let dpk = Key::from_id(0x01, &h(s(&vector("composite"), "dpk"))).unwrap();
    let dtk = Key::from_id(0x01, &h(s(&vector("EP load"), "dtk"))).unwrap();
    let sespk =
        purse::purchase_session_key(&dpk, &[0x9A, 0xC8, 0x75, 0x03], 0, &[0, 0, 0, 1]).unwrap();
    let mac2 = purse::purchase_mac2(&sespk, 0x100).unwrap();
    let p = purse::Purchase {
        amount: 0x100,
        txn_type: 0x06,
        terminal_id: [0, 0, 0, 0, 0, 1],
        terminal_seq: [0, 0, 0, 1],
        at: time_of(&vector("composite")),
    };
    let tac = purse::purchase_tac(&purse::tac_key(&dtk), &p).unwrap();
    (hex::encode_upper(mac2), hex::encode_upper(tac))
}

#[test]
fn purchase_done_after_the_card_was_pulled_during_debit() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let (mac2, tac) = proof_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(false),
        Step::Back(true),
        apdu(SELECT, FCI),
        apdu("805A0006020000 08", &format!("{mac2}{tac}9000")),
        apdu("805C000204", "00001B37 9000"),
    ]);
    let mut interrupted = 0;
    let mut t = tv5_terminal(card, &keys).on_event(|e| {
        if matches!(e, host_lib::terminal::TerminalEvent::Interrupted { .. }) {
            interrupted += 1;
        }
    });
    let r = t.purchase(0x100, None).unwrap();
    assert!(r.verified && r.recovered);
    assert_eq!(r.balance_after, 0x1B37);
    assert_eq!(hex::encode_upper(r.tac), tac);
    assert_eq!(r.apdus, 6);
    t.into_transport().done();
    assert_eq!(interrupted, 1);
}

#[test]
fn purchase_not_done_after_the_card_was_pulled_during_debit() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(true),
        apdu(SELECT, FCI),
        apdu("805A000602000008", "9406"),
        // A load is the newest record, then the log ends: no purchase with counter 0.
        apdu(
            "00B201C400",
            "0000 000000 00001C37 02 000000000009 20250101 000000 9000",
        ),
        apdu("00B202C400", "6A83"),
        apdu("805C000204", "00001C37 9000"),
    ]);
    let mut t = tv5_terminal(card, &keys);
    let e = t.purchase(0x100, None).unwrap_err();
    match &e {
        TerminalError::NotDone {
            kind,
            amount,
            balance,
            ..
        } => assert_eq!(
            (*kind, *amount, *balance),
            (TransactionKind::Purchase, 0x100, Some(0x1C37))
        ),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("was NOT made"), "{e}");
    assert!(e.transaction_was_sent());
    assert!(e.to_string().contains("the balance is 72.23 yuan"), "{e}");
    t.into_transport().done();
}

#[test]
fn a_purchase_the_card_made_but_can_no_longer_prove_is_found_in_its_log() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(true),
        apdu(SELECT, FCI),
        apdu("805A000602000008", "9406"),
        // A later load replaced the proof; the purchase is record 2.
        apdu(
            "00B201C400",
            "0003 000000 00000500 02 000000000009 20250101 000000 9000",
        ),
        apdu(
            "00B202C400",
            "0000 000000 00000100 06 000000000001 20110919 204812 9000",
        ),
    ]);
    let mut t = tv5_terminal(card, &keys);
    match t.purchase(0x100, None).unwrap_err() {
        TerminalError::Unverified { record, problem } => {
            assert!(!record.verified && record.recovered);
            assert_eq!(record.amount, 0x100);
            assert!(problem.contains("log shows it happened"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    t.into_transport().done();
}

#[test]
fn a_card_that_does_not_come_back_leaves_the_purchase_unsettled_in_the_journal() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path());
    let mut steps = vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
    ];
    // The card never comes back (the scripted reconnect fails until the 200 ms run out).
    steps.extend((0..100).map(|_| Step::Back(false)));
    let card = Scripted::new(steps);
    let mut t = tv5_terminal(card, &keys).with_journal(journal.clone());
    let e = t.purchase(0x100, None).unwrap_err();
    let TerminalError::Unsettled { pending, cause } = &e else {
        panic!("{e:?}")
    };
    assert!(cause.contains("not back within"), "{cause}");
    assert!(e.to_string().contains("UNKNOWN"), "{e}");
    let serial: [u8; 10] = h(SERIAL).try_into().unwrap();
    let kept = journal.pending_for(&serial).unwrap().unwrap();
    assert_eq!(&kept, pending.as_ref());

    // Next run: the card is back. The pending purchase is settled before anything else.
    let (mac2, tac) = proof_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(SELECT, FCI),
        apdu("805A000602000008", &format!("{mac2}{tac}9000")),
        apdu("805C000204", "00001B37 9000"),
        apdu("805C000204", "00001B37 9000"),
    ]);
    let mut earlier = Vec::new();
    let mut t = tv5_terminal(card, &keys)
        .with_journal(journal.clone())
        .on_event(|e| {
            if let host_lib::terminal::TerminalEvent::EarlierSettled(r) = e {
                earlier.push(r.as_ref().map(|r| (r.verified, r.recovered, r.amount)).ok());
            }
        });
    assert_eq!(t.balance().unwrap(), 0x1B37);
    t.into_transport().done();
    assert_eq!(earlier, vec![Some((true, true, 0x100))]);
    assert_eq!(journal.pending_for(&serial).unwrap(), None);
}

#[test]
fn another_card_in_the_reader_is_not_asked() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let other_fci = FCI.replace("4100000089999985", "4100000089999986");
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(true),
        apdu(SELECT, &other_fci),
    ]);
    let mut t = tv5_terminal(card, &keys);
    let e = t.purchase(0x100, None).unwrap_err();
    assert!(matches!(e, TerminalError::Unsettled { .. }), "{e:?}");
    assert!(e.to_string().contains("another card"), "{e}");
    t.into_transport().done();
}

#[test]
fn a_tac_that_does_not_verify_keeps_the_record() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let (mac2, _) = proof_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        apdu(&debit, &format!("00000000{mac2}9000")),
    ]);
    let mut t = tv5_terminal(card, &keys);
    match t.purchase(0x100, None).unwrap_err() {
        TerminalError::Unverified { record, problem } => {
            assert!(!record.verified);
            assert_eq!(record.balance_after, 0x1B37);
            assert_eq!(record.apdus, 3);
            assert!(problem.contains("TAC"), "{problem}");
            assert_eq!(record.verified_purchase(), None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_are_typed_and_nothing_is_sent_after_them() {
    let keys = tv_keys();
    let run = |steps: Vec<Step>, op: &dyn Fn(&mut Terminal<'_, Scripted>) -> TerminalError| {
        let mut t = tv5_terminal(Scripted::new(steps), &keys);
        let e = op(&mut t);
        t.into_transport().done();
        e
    };
    let purchase = |t: &mut Terminal<'_, Scripted>| t.purchase(0x100, None).unwrap_err();
    let load = |t: &mut Terminal<'_, Scripted>| t.load(0x100).unwrap_err();

    let e = run(vec![apdu(SELECT, "6A82")], &purchase);
    assert!(matches!(e, TerminalError::NotPersonalized(_)), "{e}");
    assert!(!e.transaction_was_sent());
    assert!(
        e.to_string()
            .contains("no application named A00000000386980701"),
        "{e}"
    );
    let e = run(vec![apdu(SELECT, "6A81")], &purchase);
    assert!(
        matches!(e, TerminalError::Blocked { permanent: false }),
        "{e}"
    );
    let e = run(vec![apdu(SELECT, "9303")], &load);
    assert!(
        matches!(e, TerminalError::Blocked { permanent: true }),
        "{e}"
    );
    // No 9F0C in the FCI: the public data is read, and an unwritten one is "not personalized".
    let e = run(
        vec![
            apdu(SELECT, "6F0B8409A00000000386980701 9000"),
            apdu("00B0950000", &format!("{} 9000", "00".repeat(30))),
        ],
        &purchase,
    );
    assert!(
        e.to_string().contains("no application serial number"),
        "{e}"
    );
    let e = run(
        vec![
            apdu(SELECT, FCI),
            apdu(TV5_INIT, "9401"),
            apdu("805C000204", "00000050 9000"),
        ],
        &purchase,
    );
    assert!(
        matches!(
            e,
            TerminalError::InsufficientBalance {
                balance: Some(0x50),
                amount: 0x100
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(
            "insufficient balance: the purchase is 2.56 yuan and the balance is 0.80 yuan"
        ),
        "{e}"
    );
    let e = run(
        vec![
            apdu(SELECT, FCI),
            apdu("805000020B0100000100000000000001 10", "9401"),
            apdu("805C000204", "00989680 9000"),
        ],
        &load,
    );
    assert!(
        matches!(e, TerminalError::MaxBalanceExceeded { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("maximum balance"), "{e}");
    let e = run(vec![apdu(SELECT, FCI), apdu(TV5_INIT, "9403")], &purchase);
    assert!(matches!(e, TerminalError::NotPersonalized(_)), "{e}");
    // A card answering another key version: the PSAM refuses before taking a number.
    let e = run(
        vec![
            apdu(SELECT, FCI),
            apdu(TV5_INIT, "00001C37 0000 000000 02 00 9AC87503 9000"),
        ],
        &purchase,
    );
    assert!(matches!(e, TerminalError::WrongKeySet(_)), "{e}");
    assert!(e.to_string().contains("version 02"), "{e}");
    assert_eq!(keys.terminal_counter().unwrap().last_used(), 0);
    // A load whose MAC1 does not verify is not credited.
    let e = run(
        vec![
            apdu(SELECT, FCI),
            apdu(
                "805000020B0100000100000000000001 10",
                "00000000 0000 01 00 CDEF4F20 06B1BEF4 9000",
            ),
        ],
        &load,
    );
    assert!(matches!(e, TerminalError::WrongKeySet(_)), "{e}");
    assert!(e.to_string().contains("MAC1 does not verify"), "{e}");
    // The card refuses our MAC1.
    let debit = debit_1_yuan();
    let e = run(
        vec![
            apdu(SELECT, FCI),
            apdu(TV5_INIT, TV5_INIT_ANSWER),
            apdu(&debit, "9302"),
        ],
        &purchase,
    );
    assert!(matches!(e, TerminalError::WrongKeySet(_)), "{e}");
    assert!(e.to_string().contains("refused MAC1"), "{e}");
}

/// A journal that cannot write: the DEBIT is not sent.
#[test]
fn no_debit_without_the_journal_entry() {
    struct Broken;
    impl Journal for Broken {
        fn begin(&mut self, _: &Pending) -> Result<(), String> {
            Err("disk full".into())
        }
        fn end(&mut self, _: &Pending) -> Result<(), String> {
            Ok(())
        }
        fn pending_for(&self, _: &[u8; 10]) -> Result<Option<Pending>, String> {
            Ok(None)
        }
    }
    let keys = tv_keys();
    let card = Scripted::new(vec![apdu(SELECT, FCI), apdu(TV5_INIT, TV5_INIT_ANSWER)]);
    let mut t = tv5_terminal(card, &keys).with_journal(Broken);
    let e = t.purchase(0x100, None).unwrap_err();
    assert!(matches!(e, TerminalError::Journal(_)), "{e:?}");
    assert!(e.to_string().contains("nothing moved"), "{e}");
    t.into_transport().done();
}

/// The card was used at another terminal before it came back: that terminal's purchase took the
/// same counter, so the proof is its own (not ours) and the log shows its record. Ours did not
/// happen (apdu-specs/purse.md, GET TRANSACTION PROOF).
#[test]
fn a_proof_of_another_terminal_s_purchase_means_not_done() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(true),
        apdu(SELECT, FCI),
        apdu("805A000602000008", "11223344 55667788 9000"),
        apdu(
            "00B201C400",
            "0000 000000 00000200 06 000000000077 20250101 000000 9000",
        ),
        apdu("805C000204", "00001A37 9000"),
    ]);
    let mut t = tv5_terminal(card, &keys);
    let e = t.purchase(0x100, None).unwrap_err();
    let TerminalError::NotDone { balance, cause, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*balance, Some(0x1A37));
    assert!(
        cause.contains("another transaction with the same counter"),
        "{cause}"
    );
    t.into_transport().done();

    // The same foreign proof with no record of that counter in the log: the outcome stays
    // unknown (and pending), rather than guessed.
    let keys = tv_keys();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
        Step::Back(true),
        apdu(SELECT, FCI),
        apdu("805A000602000008", "11223344 55667788 9000"),
        apdu("00B201C400", "6A83"),
    ]);
    let mut t = tv5_terminal(card, &keys);
    let e = t.purchase(0x100, None).unwrap_err();
    assert!(matches!(e, TerminalError::Unsettled { .. }), "{e:?}");
    t.into_transport().done();
}

/// `--recover-wait 0`: the terminal does not wait for the card, and says so in words (not "the
/// card was not back within 0ns").
#[test]
fn a_recovery_wait_of_zero_is_said_as_such() {
    let keys = tv_keys();
    let debit = debit_1_yuan();
    let dir = tempfile::tempdir().unwrap();
    let card = Scripted::new(vec![
        apdu(SELECT, FCI),
        apdu(TV5_INIT, TV5_INIT_ANSWER),
        Step::Lost(h(&debit)),
    ]);
    let at = time_of(&vector("composite"));
    let mut t = Terminal::new(
        card,
        &keys,
        TerminalConfig {
            recovery_wait: Duration::ZERO,
            ..config("000000000001")
        },
    )
    .with_clock(move || at)
    .with_journal(FileJournal::new(dir.path()));
    let e = t.purchase(0x100, None).unwrap_err();
    let TerminalError::Unsettled { cause, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(cause.contains("set not to wait for the card"), "{cause}");
    assert!(!cause.contains("0ns"), "{cause}");
    t.into_transport().done();
}
