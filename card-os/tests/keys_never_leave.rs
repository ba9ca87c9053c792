//! Keys never leave the card: every command pattern that could reach a key file — SELECT of its FID
//! `0000` (every P1/P2 form), READ BINARY of the current EF after it and by every SFI, READ RECORD
//! of every record address form and SFI, each followed by GET RESPONSE, in every class byte — is
//! tried in every security state a personalized card can reach. No response may contain 4
//! consecutive bytes of any key or of the PIN. Line-protected reads (CLA `04`, FMCOS 2.0 §7.5–7.6)
//! are tried with right MACs under the MF's and the DF's line-protection keys, of every SFI, of the
//! key file's FID, and of EFs whose answers are encrypted. The test prints how many (command,
//! state) pairs it tried.

mod common;

use card_os::sim::{MemoryNvm, SimCard, SimRng};

const MF_MASTER: &str = "8C1F5E2A9B347D60E3A1C5F27B9D0E48";
const MF_LINE: &str = "D27A4F91C3E85B06";
const DF_MASTER: &str = "5EB3907C12DA4F86A7C1E93B60F25D18";
const DF_LINE: &str = "F1096C3AE45B827D0C9E31A6B74F28D5";
const DF_READ: &str = "3AC95E0B7D1F64A2"; // LD/T 32-style read key (39 0A, SM4 below)
const DF_SM4: &str = "9E04B7C3518A2DF6C07E93A15B2846DF";
const DF_ENCRYPT: &str = "47E2A91D0C5B83F6";
const PIN: &str = "97531864";

fn secrets() -> Vec<Vec<u8>> {
    [
        MF_MASTER, MF_LINE, DF_MASTER, DF_LINE, DF_READ, DF_SM4, DF_ENCRYPT, PIN,
    ]
    .iter()
    .map(|k| hex::decode(k).unwrap())
    .collect()
}

/// Whether `response` holds 4 consecutive bytes of any secret.
fn leaks(response: &[u8], secrets: &[Vec<u8>]) -> Option<String> {
    for secret in secrets {
        for window in secret.windows(4) {
            if response.windows(4).any(|w| w == window) {
                return Some(hex::encode_upper(secret));
            }
        }
    }
    None
}

/// The personalized card: MF and DF 1001 with key files full of keys, a PIN, readable files.
fn image() -> MemoryNvm {
    let script = format!(
        "80E0000007 3F 0080 01 F0 FF FF => 9000
         80D4010015 39 F0 F0 0A 33 {MF_MASTER} => 9000
         80D401000D 36 F0 F0 FF 33 {MF_LINE} => 9000
         80E0000107 28 0010 F0 F0 FF FF => 9000
         80E0000207 2A 02 10 F0 F0 FF FF => 9000
         00E2001010 00112233445566778899AABBCCDDEEFF => 9000
         80E0100113 38 0400 F0 F0 95 FFFF 434954495A454E2E415050 => 9000
         80E0000007 3F 00A0 95 F0 FF FF => 9000
         80D4010015 39 F0 F0 0A 33 {DF_MASTER} => 9000
         80D4010015 36 F0 F0 FF 33 {DF_LINE} => 9000
         80D4010A0D 39 F0 F0 05 33 {DF_READ} => 9000
         80D4010B16 39 F0 F0 06 33 {DF_SM4} 03 => 9000
         80D401010D 30 F0 F0 01 01 {DF_ENCRYPT} => 9000
         80D401000D 3A F0 EF 01 33 {PIN}FFFFFFFF => 9000
         80E0001507 28 001E F0 F0 FF FF => 9000
         80E0000507 2C 04 20 F1 F0 FF FF => 9000
         00E2002806 0104 41424344 => 9000
         80E0000607 68 0010 F0 F0 FF 7F => 9000
         80E0000707 EA 02 08 F0 F0 FF 7F => 9000"
    );
    let mut card = common::factory_card();
    common::run(&mut card, &script);
    card.into_nvm()
}

/// The challenge every state's GET CHALLENGE returns (the card's random is fixed).
const CHALLENGE: [u8; 4] = [0xA5, 0x5A, 0x3C, 0xC3];

fn cryptogram(key_hex: &str) -> String {
    use card_os::crypto::{challenge_cryptogram, Key};
    let key = Key::from_id(1, &hex::decode(key_hex).unwrap()).unwrap();
    hex::encode_upper(challenge_cryptogram(&key, &CHALLENGE).unwrap().as_slice())
}

/// The security states a card reaches: (name, commands after power-up that reach it).
fn states() -> Vec<(&'static str, Vec<String>)> {
    let at_mf_auth = vec![
        "0084000004".to_string(),
        format!("0082000008 {}", cryptogram(MF_MASTER)),
    ];
    let df_auth = vec![
        "0084000004".to_string(),
        format!("0082000008 {}", cryptogram(DF_MASTER)),
    ];
    let mut mf_then_df = at_mf_auth.clone();
    mf_then_df.push("00A4000C02 1001".into());
    mf_then_df.extend(df_auth.clone());
    mf_then_df.push(format!("0020000004 {PIN}"));
    let mut df_all = vec!["00A4000C02 1001".to_string()];
    df_all.extend(df_auth.clone());
    let mut df_pin = vec!["00A4000C02 1001".to_string()];
    df_pin.push(format!("0020000004 {PIN}"));
    let mut df_read_key = vec!["00A4000C02 1001".to_string(), "0084000004".to_string()];
    df_read_key.push(format!("0082000A08 {}", cryptogram(DF_READ)));
    vec![
        ("MF, nothing verified", vec![]),
        ("MF, MF master key authenticated (MF=A)", at_mf_auth),
        ("DF, nothing verified", vec!["00A4000C02 1001".to_string()]),
        ("DF, PIN verified (DF=1)", df_pin),
        ("DF, DF master key authenticated (DF=A)", df_all),
        ("DF, read key authenticated (DF=5)", df_read_key),
        ("DF after MF auth, DF auth and PIN", mf_then_df),
        (
            "DF being personalized (entered without a key file)",
            vec![
                "00A4000C02 3F00".to_string(),
                "80E0200112 38 0200 F0 F0 95 FFFF 4E45572E4150504C4943".to_string(),
                "80E0000007 3F 0040 95 F0 FF FF".to_string(),
                format!("80D4010015 39 F0 F0 0A 33 {DF_MASTER}"),
                format!("80D401000D 3A F0 EF 01 33 {PIN}FFFFFFFF"),
                "80E0000107 28 0008 F0 F0 FF FF".to_string(),
                "00D6810004 01020304".to_string(),
            ],
        ),
    ]
}

/// `04 INS P1 P2 04 MAC 00`: a line-protected read with the right MAC under `key_hex` for the
/// fixed challenge, after GET CHALLENGE.
fn protected_read(key_hex: &str, ins: u8, p1: u8, p2: u8) -> Vec<Vec<u8>> {
    use card_os::crypto::{Key, Mac, MacIv};
    let key = Key::from_id(1, &hex::decode(key_hex).unwrap()).unwrap();
    let head = [0x04, ins, p1, p2, 0x04];
    let mac = Mac::compute(&key, MacIv::Bytes(&CHALLENGE), &[&head]).unwrap();
    let mut read = head.to_vec();
    read.extend(mac);
    read.push(0x00);
    vec![vec![0x00, 0x84, 0x00, 0x00, 0x04], read]
}

/// Every command pattern that could reach a key file; each is sent alone (then GET RESPONSE).
fn probes() -> Vec<Vec<Vec<u8>>> {
    let mut probes = Vec::new();
    // Line-protected reads with right MACs under the MF's and the DF's line-protection keys: every
    // SFI, records 1 and 2 of every SFI, and the current EF after SELECT of the key file's FID.
    for key in [MF_LINE, DF_LINE] {
        for sfi in 1..=0x1Fu8 {
            probes.push(protected_read(key, 0xB0, 0x80 | sfi, 0x00));
            for record in [1u8, 2] {
                probes.push(protected_read(key, 0xB2, record, sfi << 3 | 0x04));
            }
        }
        let mut select_then_read = vec![vec![0x00, 0xA4, 0x00, 0x0C, 0x02, 0x00, 0x00]];
        select_then_read.extend(protected_read(key, 0xB0, 0x00, 0x00));
        probes.push(select_then_read);
    }
    for cla in [0x00u8, 0x04, 0x80, 0x84] {
        // SELECT the key file's FID in every form, then read "the current EF" at several offsets.
        for p1 in [0x00u8, 0x01, 0x02] {
            for p2 in [0x00u8, 0x0C] {
                for read in [
                    vec![cla, 0xB0, 0x00, 0x00, 0x00],
                    vec![cla, 0xB0, 0x00, 0x08, 0x10],
                    vec![cla, 0xB2, 0x01, 0x04, 0x00],
                    vec![cla, 0xB2, 0x00, 0x04, 0x00],
                ] {
                    probes.push(vec![vec![cla, 0xA4, p1, p2, 0x02, 0x00, 0x00, 0x00], read]);
                }
            }
        }
        // READ BINARY by every SFI.
        for sfi in 1..=0x1Fu8 {
            for offset in [0x00u8, 0x08] {
                probes.push(vec![vec![cla, 0xB0, 0x80 | sfi, offset, 0x00]]);
            }
        }
        // READ RECORD: every P2 (SFI and addressing mode) with record numbers / identifiers.
        for p1 in [0x00u8, 0x01, 0x02, 0x39] {
            for p2 in 0..=0xFFu8 {
                probes.push(vec![vec![cla, 0xB2, p1, p2, 0x00]]);
            }
        }
    }
    probes
}

#[test]
fn no_command_in_any_state_returns_key_bytes() {
    let secrets = secrets();
    assert_eq!(
        leaks(&hex::decode("90003AC95E0B9000").unwrap(), &secrets).as_deref(),
        Some(DF_READ),
        "the leak detector finds a key"
    );
    let image = image();
    let probes = probes();
    let mut pairs = 0usize;
    let mut data_seen = 0usize;
    let mut protected_seen = 0usize;
    for (state, setup) in states() {
        // Every setup command must succeed, or the state is not the one named.
        let mut card = SimCard::from_nvm_with_rng(image.snapshot(), SimRng::fixed(&CHALLENGE))
            .ok()
            .unwrap();
        for apdu in &setup {
            let r = card.transmit(&hex::decode(apdu.replace(' ', "")).unwrap());
            assert!(
                r.ends_with(&[0x90, 0x00]),
                "{state}: {apdu} -> {}",
                hex::encode_upper(&r)
            );
        }
        let data_before = data_seen;
        for probe in &probes {
            let mut card = SimCard::from_nvm_with_rng(image.snapshot(), SimRng::fixed(&CHALLENGE))
                .ok()
                .unwrap();
            for apdu in &setup {
                card.transmit(&hex::decode(apdu.replace(' ', "")).unwrap());
            }
            for apdu in probe {
                // A GET RESPONSE after GET CHALLENGE would use the challenge up.
                let follow_up = if apdu.starts_with(&[0x00, 0x84]) {
                    vec![]
                } else {
                    vec![vec![0x00, 0xC0, 0x00, 0x00, 0x00]]
                };
                for command in std::iter::once(apdu.clone()).chain(follow_up) {
                    let r = card.transmit(&command);
                    if r.len() > 2 {
                        data_seen += 1;
                    }
                    if command[0] == 0x04 && r.len() > 6 && r.ends_with(&[0x90, 0x00]) {
                        protected_seen += 1;
                    }
                    if let Some(secret) = leaks(&r, &secrets) {
                        panic!(
                            "{state}: {} answered {} (key {secret})",
                            hex::encode_upper(&command),
                            hex::encode_upper(&r)
                        );
                    }
                }
            }
            pairs += 1;
        }
        // The probes do read: every state has files they reach (a probe that can never answer
        // data would prove nothing).
        assert!(data_seen > data_before, "{state}: no probe read any data");
    }
    println!(
        "keys never leave: {pairs} (command, state) pairs tried in {} states, {data_seen} \
         responses carried data ({protected_seen} line-protected reads), none a key byte",
        states().len()
    );
    assert!(protected_seen > 0, "no line-protected read answered");
    assert!(pairs > 5000, "{pairs}");
}
