//! The terminal against the card OS itself (the simulated card, in process): a purse personalized
//! with the development key sets, loads, purchases, the log, the typed refusals, and recovery from
//! a power cut at every point of every NVM write of CREDIT FOR LOAD and DEBIT FOR PURCHASE.

use std::path::PathBuf;

use card_os::sim::{PowerCut, SimCard};
use host_lib::keys::{KeySet, TerminalCounter};
use host_lib::terminal::{
    CappRecord, CappUpdate, PurseApplication, Terminal, TerminalConfig, TerminalError,
    TransactionKind,
};
use host_lib::testing::purse::{capp_record, purse_card, PurseSetup};
use host_lib::transport::sim::SimTransport;
use host_lib::transport::Transport;

fn dev(name: &str) -> KeySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/keys");
    KeySet::load(&dir.join(name))
        .unwrap()
        .with_terminal_counter(TerminalCounter::in_memory(0))
}

fn copy(card: &SimCard) -> SimCard {
    SimCard::from_nvm(card.nvm().snapshot())
        .map_err(|(_, e)| e)
        .unwrap()
}

fn terminal<'k>(card: SimCard, keys: &'k KeySet) -> Terminal<'k, SimTransport> {
    Terminal::new(
        SimTransport::from_card(card, "simulated purse"),
        keys,
        TerminalConfig::default(),
    )
}

fn loaded_card(keys: &KeySet, cents: u32) -> SimCard {
    let card = purse_card(keys, &PurseSetup::default(), [0, 0, 0, 1]).unwrap();
    let mut t = terminal(card, keys);
    t.load(cents).unwrap();
    t.into_transport().into_card()
}

fn loads_purchases_and_log(file: &str) {
    let keys = dev(file);
    let card = purse_card(&keys, &PurseSetup::default(), [0, 0, 0, 1]).unwrap();
    let mut t = terminal(card, &keys);
    assert_eq!(t.balance().unwrap(), 0);
    let app: PurseApplication = t.application().unwrap().clone();
    assert_eq!(app.serial_hex(), "00003303000000000001");
    assert_eq!(app.public_data, PurseSetup::default().public_data());

    let load = t.load(10_000).unwrap();
    assert!(load.verified, "{file}");
    assert_eq!((load.balance_before, load.balance_after), (0, 10_000));
    assert_eq!(
        load.apdus, 3,
        "load: SELECT, INITIALIZE FOR LOAD, CREDIT FOR LOAD"
    );

    let p = t.purchase(1_234, None).unwrap();
    assert!(p.verified);
    assert_eq!((p.balance_before, p.balance_after), (10_000, 8_766));
    assert_eq!(p.terminal_seq, Some([0, 0, 0, 1]));
    assert_eq!(p.card_counter, 0);
    assert_eq!(
        p.apdus, 3,
        "purchase: SELECT, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE"
    );
    let p2 = t.purchase(266, None).unwrap();
    assert_eq!((p2.card_counter, p2.balance_after), (1, 8_500));
    assert_eq!(p2.terminal_seq, Some([0, 0, 0, 2]));

    // A composite purchase: the metro record is written with the debit.
    let capp = CappUpdate {
        sfi: 0x17,
        record: CappRecord::Tag(0x02),
        data: capp_record(0x5A),
    };
    let c = t.purchase(0, Some(&capp)).unwrap();
    assert_eq!(
        (c.kind, c.txn_type, c.apdus),
        (TransactionKind::CappPurchase, 0x09, 4)
    );
    let mut raw = t.into_transport();
    let record = raw.transmit(&[0x00, 0xB2, 0x01, 0xBC, 0x00]).unwrap();
    assert_eq!(&record[..record.len() - 2], capp_record(0x5A).as_slice());
    let mut t = Terminal::new(raw, &keys, TerminalConfig::default());

    assert_eq!(t.balance().unwrap(), 8_500);
    let log = t.log().unwrap();
    let summary: Vec<(u8, u16, u32, u8)> = log
        .iter()
        .map(|r| (r.number, r.counter, r.amount, r.txn_type))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 2, 0, 0x09),
            (2, 1, 266, 0x06),
            (3, 0, 1_234, 0x06),
            (4, 0, 10_000, 0x02)
        ]
    );
    assert!(log.iter().all(|r| r.terminal_id == [0, 0, 0, 0, 0, 1]));
    // The records feed the registry's ledger.
    assert_eq!(p.verified_purchase().unwrap().amount_cents, 1_234);
    assert_eq!(load.load_record().unwrap().txn_counter, Some(0));
}

#[test]
fn loads_purchases_and_log_3des() {
    loads_purchases_and_log("dev.toml");
}

#[test]
fn loads_purchases_and_log_sm4() {
    loads_purchases_and_log("dev-sm4.toml");
}

#[test]
fn typed_refusals_on_the_card() {
    let keys = dev("dev.toml");
    let card = loaded_card(&keys, 500);

    let mut t = terminal(copy(&card), &keys);
    let e = t.purchase(501, None).unwrap_err();
    assert!(
        matches!(
            e,
            TerminalError::InsufficientBalance {
                balance: Some(500),
                amount: 501
            }
        ),
        "{e:?}"
    );
    let e = t.load(99_501).unwrap_err();
    assert!(
        matches!(
            e,
            TerminalError::MaxBalanceExceeded {
                balance: Some(500),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(t.balance().unwrap(), 500);

    // The SM4 development set is not this card's: the load host finds out from MAC1 (the card
    // announces algorithm 01, the set holds SM4), the purchase terminal before signing.
    let sm4 = dev("dev-sm4.toml");
    let mut t = terminal(copy(&card), &sm4);
    let e = t.load(100).unwrap_err();
    assert!(matches!(e, TerminalError::WrongKeySet(_)), "{e:?}");
    let e = t.purchase(100, None).unwrap_err();
    assert!(matches!(e, TerminalError::WrongKeySet(_)), "{e:?}");
    assert_eq!(sm4.terminal_counter().unwrap().last_used(), 0);

    // Another 3DES key set with the same names and versions: MAC1 does not verify; the card
    // refuses the PSAM's MAC1.
    let other = KeySet::generate(&host_lib::keys::GenerateOptions {
        id: "other".into(),
        description: String::new(),
        algorithm: card_os::crypto::Algorithm::TripleDes,
        transport_key: None,
        allow_default_transport_key: false,
    })
    .unwrap()
    .with_terminal_counter(TerminalCounter::in_memory(0));
    let mut t = terminal(copy(&card), &other);
    let e = t.load(100).unwrap_err();
    assert!(e.to_string().contains("MAC1 does not verify"), "{e}");
    let e = t.purchase(100, None).unwrap_err();
    assert!(e.to_string().contains("refused MAC1"), "{e}");
    assert_eq!(t.balance().unwrap(), 500);

    // A factory-fresh card has no purse.
    let blank = SimCard::blank(
        card_os::nvm::Geometry::DEFAULT,
        &card_os::card::HistoricalBytes::wenzhou([0, 0, 0, 2]),
    )
    .unwrap();
    let e = terminal(blank, &keys).balance().unwrap_err();
    assert!(matches!(e, TerminalError::NotPersonalized(_)), "{e:?}");

    // A blocked application: APPLICATION BLOCK, MAC'd with the card's DAMK.
    let mut t = terminal(copy(&card), &keys);
    t.balance().unwrap();
    let mut raw = t.into_transport();
    block_application(&mut raw, &keys);
    let mut t = Terminal::new(raw, &keys, TerminalConfig::default());
    let e = t.purchase(100, None).unwrap_err();
    assert!(
        matches!(e, TerminalError::Blocked { permanent: false }),
        "{e:?}"
    );
}

fn block_application(t: &mut SimTransport, keys: &KeySet) {
    use host_lib::keys::{KeyRef, KeyStore, SecureMessaging};
    let challenge = t.transmit(&[0x00, 0x84, 0x00, 0x00, 0x04]).unwrap();
    let factors = PurseSetup::default().factors();
    let header = [0x84, 0x1E, 0x00, 0x00];
    let data = keys
        .protect_command(
            KeyRef::new("DAMK", &factors),
            None,
            SecureMessaging::Fmcos {
                challenge: &challenge[..4],
            },
            header,
            &[],
        )
        .unwrap();
    let mut apdu = header.to_vec();
    apdu.push(data.len() as u8);
    apdu.extend_from_slice(&data);
    assert_eq!(t.transmit(&apdu).unwrap(), [0x90, 0x00]);
}

/// The NVM page writes a command makes, by length: the purchase (or load) run once with
/// recording on.
fn writes_of(card: &SimCard, keys: &KeySet, purchase: bool) -> Vec<usize> {
    let mut t = terminal(copy(card), keys);
    t.balance().unwrap();
    t.transport_mut().card_mut().nvm_mut().start_recording();
    if purchase {
        t.purchase(250, None).unwrap();
    } else {
        t.load(250).unwrap();
    }
    t.transport_mut().card_mut().nvm_mut().take_recording()
}

/// Cuts the power at every write of CREDIT/DEBIT, before its first byte, after it, in the middle
/// and at its end; the terminal reconnects (power-up, recovery) and settles: either done, with a
/// verified proof and the balance moved once, or not done, with the balance untouched.
fn torn_everywhere(purchase: bool) {
    let keys = dev("dev.toml");
    let card = loaded_card(&keys, 1_000);
    let lengths = writes_of(&card, &keys, purchase);
    assert!(!lengths.is_empty());
    let (mut done, mut not_done) = (0, 0);
    for (write, &len) in lengths.iter().enumerate() {
        for bytes in card_os::sim::tear::offsets_within(len) {
            let mut t = terminal(copy(&card), &keys);
            t.balance().unwrap();
            // Nothing before CREDIT/DEBIT writes, so write 0 is the command's first.
            t.transport_mut().card_mut().nvm_mut().arm_cut(PowerCut {
                write: write as u64,
                bytes,
            });
            let outcome = if purchase {
                t.purchase(250, None)
            } else {
                t.load(250)
            };
            let expected_done = if purchase { 750 } else { 1_250 };
            let balance = t.balance().unwrap();
            match outcome {
                Ok(r) => {
                    done += 1;
                    assert!(r.verified, "cut {write}/{bytes}");
                    assert_eq!(balance, expected_done, "cut {write}/{bytes}");
                    assert_eq!(r.balance_after, expected_done);
                    // Recovered, unless the cut came after the card had answered.
                    assert!(
                        r.recovered || write + 1 == lengths.len(),
                        "cut {write}/{bytes}"
                    );
                }
                Err(TerminalError::NotDone { balance: b, .. }) => {
                    not_done += 1;
                    assert_eq!(balance, 1_000, "cut {write}/{bytes}");
                    assert_eq!(b, Some(1_000));
                }
                Err(e) => panic!("cut {write}/{bytes}: {e}"),
            }
            // The log holds the transaction exactly when it was done.
            let log = t.log().unwrap();
            let expected_log = if balance == 1_000 { 1 } else { 2 };
            assert_eq!(log.len(), expected_log, "cut {write}/{bytes}");
        }
    }
    eprintln!(
        "{}: {} NVM page writes, {} cut points: {done} done, {not_done} not done",
        if purchase {
            "DEBIT FOR PURCHASE"
        } else {
            "CREDIT FOR LOAD"
        },
        lengths.len(),
        done + not_done
    );
    assert!(done > 0 && not_done > 0);
}

#[test]
fn purchase_torn_at_every_write_is_done_or_not_done() {
    torn_everywhere(true);
}

#[test]
fn load_torn_at_every_write_is_done_or_not_done() {
    torn_everywhere(false);
}
