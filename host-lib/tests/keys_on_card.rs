//! The key store against the card OS itself (card-os's simulated card, apdu-specs/security.md):
//! the key-loading flow of apdu-specs/keys.md §6 with both development key sets, then the loaded
//! keys at work (FMCOS and LD/T 32 authentication, internal authentication, a line-protected
//! write), and a tampered WRITE KEY refused.

use std::path::PathBuf;

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{SimCard, SimRng};
use host_lib::keys::record::key_type;
use host_lib::keys::{
    CardFactors, KeyRecordLayout, KeyRef, KeySet, KeyStore, SecureMessaging, SocialSecurityFactors,
    WriteKey,
};

fn dev(name: &str) -> KeySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/keys");
    KeySet::load(&dir.join(name)).unwrap()
}

struct Reader {
    card: SimCard,
}

impl Reader {
    /// Sends `header ‖ Lc ‖ data` (‖ `le`), returns the data and the status word.
    fn send(&mut self, header: [u8; 4], data: &[u8], le: Option<u8>) -> (Vec<u8>, u16) {
        let mut apdu = header.to_vec();
        if !data.is_empty() {
            apdu.push(u8::try_from(data.len()).unwrap());
            apdu.extend_from_slice(data);
        }
        apdu.extend(le);
        let mut response = self.card.transmit(&apdu);
        let sw = response.split_off(response.len() - 2);
        (response, u16::from_be_bytes([sw[0], sw[1]]))
    }

    fn sw(&mut self, header: [u8; 4], data: &[u8]) -> u16 {
        self.send(header, data, None).1
    }

    fn challenge(&mut self, len: u8) -> Vec<u8> {
        let (challenge, sw) = self.send([0x00, 0x84, 0x00, 0x00], &[], Some(len));
        assert_eq!(sw, 0x9000);
        challenge
    }
}

/// Loads `key` into the current DF with id `kid`, encrypted and MAC'd under `protector`.
fn add_key(
    reader: &mut Reader,
    store: &KeySet,
    key: KeyRef<'_>,
    kid: u8,
    layout: &KeyRecordLayout,
    protector: KeyRef<'_>,
) -> u16 {
    let challenge = reader.challenge(4);
    let header = [0x84, 0xD4, 0x01, kid];
    let request = WriteKey {
        header,
        key,
        layout,
    };
    let data = store
        .write_key(
            &request,
            protector,
            SecureMessaging::Fmcos {
                challenge: &challenge,
            },
        )
        .unwrap();
    reader.sw(header, &data)
}

fn personalize_and_use(file: &str) {
    let store = dev(file);
    let historical = HistoricalBytes::wenzhou([0, 0, 0, 1]);
    let mut card = SimCard::blank(Geometry::DEFAULT, &historical).unwrap();
    card.set_rng(SimRng::fixed(&[
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ]));
    card.power_on().unwrap();
    let mut reader = Reader { card };
    let ss = SocialSecurityFactors::for_card("330300", &[0x33, 0x03, 0x00], &historical).unwrap();
    let wz = CardFactors::NONE
        .with_application_serial(&[0, 0, 0x33, 0x03, 0, 0, 0, 0, 0, 1])
        .unwrap()
        .with_social_security(ss);
    let key = |name| KeyRef::new(name, &wz);

    // 1. The MF key file and the public transport key as the master 39 00, plain; F9: the card
    //    wants every later key encrypted and MAC'd under it.
    assert_eq!(
        reader.sw(
            [0x80, 0xE0, 0x00, 0x00],
            &[0x3F, 0x02, 0x00, 0x01, 0xF0, 0xFF, 0xFF]
        ),
        0x9000
    );
    let master = KeyRecordLayout::parse("F9 F0 F0 AA 33 key alg?").unwrap();
    let plain = store
        .write_key_plain(&WriteKey {
            header: [0x80, 0xD4, 0x01, 0x00],
            key: KeyRef::plain("TRANSPORT"),
            layout: &master,
        })
        .unwrap();
    assert_eq!(
        reader.sw([0x80, 0xD4, 0x01, 0x00], &plain),
        0x9000,
        "{file}"
    );
    reader.card.reset();

    // 2. The card's keys, encrypted under the transport key: line protection 36 00, internal key
    //    34 01, external authentication 39 0A (RKSSSE's LD/T 32 id).
    let lp = KeyRecordLayout::fmcos_counted(key_type::LINE_PROTECTION, 0xF0, 0xF0, 0x33);
    let irk = KeyRecordLayout::fmcos_key(key_type::INTERNAL, 0xF0, 0xF0);
    let rk = KeyRecordLayout::fmcos_external_auth(0xF0, 0xF0, 0x0B, 0x33);
    let transport = KeyRef::plain("TRANSPORT");
    assert_eq!(
        add_key(&mut reader, &store, key("STKSSSE"), 0x00, &lp, transport),
        0x9000,
        "{file}"
    );
    assert_eq!(
        add_key(&mut reader, &store, key("IRK"), 0x01, &irk, transport),
        0x9000,
        "{file}"
    );
    assert_eq!(
        add_key(&mut reader, &store, key("RKSSSE"), 0x0A, &rk, transport),
        0x9000,
        "{file}"
    );
    // A WRITE KEY protected under another key is refused (9302) and writes nothing.
    assert_eq!(
        add_key(&mut reader, &store, key("UKSSSE"), 0x12, &rk, key("MF_MK")),
        0x9302,
        "{file}"
    );

    // 3. The loaded keys work.
    let challenge = reader.challenge(8);
    let original = [1, 2, 3, 4, 5, 6, 7, 8];
    let auth = store
        .ldt32_external_authenticate(key("RKSSSE"), &challenge, &original)
        .unwrap();
    assert_eq!(
        reader.sw(
            [0x00, 0x82, 0x00, 0x0A],
            &[&auth[..], &original[..]].concat()
        ),
        0x9000
    );
    let input = [9; 8];
    let (answer, sw) = reader.send(
        [0x00, 0x88, 0x00, 0x01],
        &[&input[..], &original[..]].concat(),
        Some(8),
    );
    assert_eq!(sw, 0x9000);
    store
        .verify_ldt32_internal_authenticate(key("IRK"), &input, &original, &answer)
        .unwrap();
    assert!(store
        .verify_ldt32_internal_authenticate(key("PUK"), &input, &original, &answer)
        .is_err());
    assert_eq!(
        reader.sw(
            [0x80, 0xE0, 0x00, 0x05],
            &[0xA8, 0x00, 0x10, 0xF0, 0xF0, 0xFF, 0xFF]
        ),
        0x9000
    );
    let challenge = reader.challenge(4);
    let update = [0x04, 0xD6, 0x85, 0x00];
    let data = store
        .protect_command(
            key("STKSSSE"),
            None,
            SecureMessaging::Fmcos {
                challenge: &challenge,
            },
            update,
            &[0xCA, 0xFE],
        )
        .unwrap();
    assert_eq!(reader.sw(update, &data), 0x9000, "{file}");
    assert_eq!(
        reader.send([0x00, 0xB0, 0x85, 0x00], &[], Some(2)),
        (vec![0xCA, 0xFE], 0x9000)
    );

    // 4. Last, the master becomes MF_MK, encrypted under its current value, the transport key.
    let challenge = reader.challenge(4);
    let replace = [0x84, 0xD4, 0x39, 0x00];
    let data = store
        .write_key(
            &WriteKey {
                header: replace,
                key: key("MF_MK"),
                layout: &master,
            },
            transport,
            SecureMessaging::Fmcos {
                challenge: &challenge,
            },
        )
        .unwrap();
    assert_eq!(reader.sw(replace, &data), 0x9000, "{file}");
    let challenge = reader.challenge(8);
    let auth = store
        .ldt32_external_authenticate(key("MF_MK"), &challenge, &original)
        .unwrap();
    assert_eq!(
        reader.sw(
            [0x00, 0x82, 0x00, 0x00],
            &[&auth[..], &original[..]].concat()
        ),
        0x9000
    );
    // The transport key no longer opens the card.
    let challenge = reader.challenge(8);
    let auth = store
        .ldt32_external_authenticate(transport, &challenge, &original)
        .unwrap();
    assert_eq!(
        reader.sw(
            [0x00, 0x82, 0x00, 0x00],
            &[&auth[..], &original[..]].concat()
        ),
        0x63C2
    );
}

#[test]
fn development_3des_keys_load_and_work_on_the_card() {
    personalize_and_use("dev.toml");
}

#[test]
fn development_sm4_keys_load_and_work_on_the_card() {
    personalize_and_use("dev-sm4.toml");
}
