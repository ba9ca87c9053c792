//! Structure-aware personalization sequences on a factory card: the input is a list of typed steps
//! (CREATE FILE of DFs, key files and EFs with FMCOS headers, WRITE KEY of every key type, SELECT,
//! UPDATE/APPEND/READ of binary and record files, line-protected reads, ERASE DF, VERIFY, EXTERNAL
//! AUTHENTICATE with a right or wrong cryptogram, resets, and now and then a raw APDU), each turned
//! into a well-formed APDU with valid-ish fields, so the fuzzer spends its time inside the
//! personalization commands rather than in the parser's refusals.
//!
//! What must hold:
//! * nothing panics, and every response is 2..=258 bytes ending in a status word (`61xx`–`6Fxx`,
//!   `90xx`–`9Fxx`);
//! * no response contains 6 consecutive bytes of any key or PIN ever written: every key value and
//!   PIN comes from [`SECRETS`], whose bytes are all ≥ `80`, while every byte the steps write as
//!   data is below `80` — so a match can only be a key that left the card;
//! * the NVM image stays consistent: every DF's children take exactly the bytes its header says,
//!   within its capacity; key files and record files within their sizes; and the card's canonical
//!   dump is the same after a power cycle (the journal left nothing half-done).
#![no_main]

use card_os::card::HistoricalBytes;
use card_os::crypto::{challenge_cryptogram, Key, Mac, MacIv};
use card_os::fs::header::FileKind;
use card_os::nvm::Geometry;
use card_os::sim::{inspect, MemoryNvm, SimCard};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Every key and PIN value a step can write (bytes ≥ `80`).
const SECRETS: [[u8; 16]; 6] = [
    [
        0x8C, 0x9F, 0xDE, 0xAA, 0x9B, 0xB4, 0xFD, 0xE0, 0xE3, 0xA1, 0xC5, 0xF2, 0xFB, 0x9D, 0x8E,
        0xC8,
    ],
    [
        0xD2, 0xFA, 0xCF, 0x91, 0xC3, 0xE8, 0xDB, 0x86, 0xB5, 0x84, 0xEA, 0xA7, 0x93, 0xC1, 0x8F,
        0xB6,
    ],
    [
        0xF1, 0x89, 0xEC, 0xBA, 0xE4, 0xDB, 0x82, 0xFD, 0x8C, 0x9E, 0xB1, 0xA6, 0xB7, 0xCF, 0xA8,
        0xD5,
    ],
    [
        0xBA, 0xC9, 0xDE, 0x8B, 0xFD, 0x9F, 0xE4, 0xA2, 0x81, 0xF7, 0x8A, 0xCD, 0xE9, 0xB0, 0x99,
        0xE1,
    ],
    [
        0x9E, 0x84, 0xB7, 0xC3, 0xD1, 0x8A, 0xAD, 0xF6, 0xC0, 0xFE, 0x93, 0xA1, 0xDB, 0xA8, 0xC6,
        0xDF,
    ],
    [
        0xC7, 0xE2, 0xA9, 0x9D, 0x8C, 0xDB, 0x83, 0xF6, 0xB2, 0xD4, 0xE7, 0x90, 0xAB, 0xC5, 0xF8,
        0x93,
    ],
];

/// Shortest run of a secret that counts as a leak.
const WINDOW: usize = 6;

const DF_FIDS: [u16; 4] = [0x1001, 0x3F01, 0xDF01, 0xDDF1];
const EF_FIDS: [u16; 10] = [
    0x0001, 0x0002, 0x0003, 0x0005, 0x0006, 0x0007, 0x0015, 0x0016, 0x0017, 0x0018,
];
const DF_NAMES: [&[u8]; 4] = [b"CITIZEN.APP", b"SSSE", b"1PAY.SYS.DDF01", b"PURSE.EP01"];
/// Access rights worth trying: always, never, after state 1/2/A in the DF, after MF state 1.
const RIGHTS: [u8; 8] = [0xF0, 0xEF, 0xF1, 0xF2, 0x11, 0xAA, 0x01, 0x5A];
/// Key types of WRITE KEY (FMCOS 2.0 §7.12), plus one it does not know.
const KEY_TYPES: [u8; 15] = [
    0x30, 0x31, 0x32, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3C, 0x3D, 0x3E, 0x3F, 0x33,
];

#[derive(Arbitrary, Debug)]
enum EfType {
    Binary,
    Fixed,
    Variable,
    Cyclic,
    Purse,
}

#[derive(Arbitrary, Debug)]
enum Step {
    SelectMf,
    SelectDf(u8),
    SelectEf(u8),
    SelectName(u8),
    SelectParent,
    CreateDf {
        fid: u8,
        space: u16,
        create: u8,
        erase: u8,
        fci: u8,
        name: u8,
    },
    CreateKeyFile {
        space: u8,
        sfi: u8,
        add: u8,
    },
    CreateEf {
        fid: u8,
        kind: EfType,
        protection: u8,
        a: u8,
        b: u8,
        read: u8,
        write: u8,
        key_byte: u8,
    },
    WriteKey {
        update: bool,
        key_type: u8,
        protection: u8,
        id: u8,
        use_right: u8,
        change_right: u8,
        p4: u8,
        p5: u8,
        secret: u8,
        long: bool,
        algorithm: Option<u8>,
    },
    UpdateBinary {
        sfi: u8,
        offset: u8,
        len: u8,
        fill: u8,
    },
    UpdateRecord {
        sfi: u8,
        p1: u8,
        mode: u8,
        len: u8,
        fill: u8,
    },
    AppendRecord {
        sfi: u8,
        len: u8,
        fill: u8,
    },
    ReadBinary {
        sfi: u8,
        offset: u8,
        le: u8,
    },
    ReadRecord {
        sfi: u8,
        p1: u8,
        mode: u8,
        le: u8,
    },
    ProtectedRead {
        record: bool,
        sfi: u8,
        secret: u8,
        long: bool,
    },
    EraseDf,
    Verify {
        id: u8,
        secret: u8,
        len: u8,
    },
    ExternalAuthenticate {
        id: u8,
        secret: u8,
        long: bool,
    },
    GetResponse(u8),
    Reset,
    Raw {
        cla: u8,
        ins: u8,
        p1: u8,
        p2: u8,
        data: Vec<u8>,
        le: Option<u8>,
    },
}

fn pick<T: Copy>(table: &[T], i: u8) -> T {
    table[usize::from(i) % table.len()]
}

/// `len` data bytes below `80` (so no data byte can be a secret byte).
fn data(len: u8, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add(i.wrapping_mul(7)) & 0x7F)
        .collect()
}

fn apdu(header: [u8; 4], body: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut out = header.to_vec();
    if !body.is_empty() {
        out.push(body.len().min(255) as u8);
        out.extend_from_slice(&body[..body.len().min(255)]);
    }
    out.extend(le);
    out
}

fn secret_key(secret: u8, long: bool) -> Key {
    let value = pick(&SECRETS, secret);
    if long {
        Key::TripleDes(value)
    } else {
        let mut k = [0u8; 8];
        k.copy_from_slice(&value[..8]);
        Key::Des(k)
    }
}

struct Run {
    card: SimCard,
    secrets_written: bool,
}

impl Run {
    fn send(&mut self, apdu: &[u8]) -> Vec<u8> {
        let r = self.card.transmit(apdu);
        assert!(r.len() >= 2 && r.len() <= 258, "{apdu:02X?} -> {r:02X?}");
        let sw1 = r[r.len() - 2];
        assert!(
            matches!(sw1, 0x61..=0x6F | 0x90..=0x9F),
            "{apdu:02X?} -> {r:02X?}: no status word"
        );
        if self.secrets_written {
            for secret in &SECRETS {
                for window in secret.windows(WINDOW) {
                    assert!(
                        !r.windows(WINDOW).any(|w| w == window),
                        "{apdu:02X?} -> {r:02X?}: key bytes in a response"
                    );
                }
            }
        }
        r
    }

    fn step(&mut self, step: &Step) {
        match *step {
            Step::SelectMf => {
                self.send(&apdu([0x00, 0xA4, 0x00, 0x00], &[0x3F, 0x00], Some(0)));
            }
            Step::SelectDf(i) => {
                self.send(&apdu(
                    [0x00, 0xA4, 0x00, 0x0C],
                    &pick(&DF_FIDS, i).to_be_bytes(),
                    None,
                ));
            }
            Step::SelectEf(i) => {
                self.send(&apdu(
                    [0x00, 0xA4, 0x02, 0x0C],
                    &pick(&EF_FIDS, i).to_be_bytes(),
                    None,
                ));
            }
            Step::SelectName(i) => {
                self.send(&apdu([0x00, 0xA4, 0x04, 0x00], pick(&DF_NAMES, i), Some(0)));
            }
            Step::SelectParent => {
                self.send(&apdu([0x00, 0xA4, 0x03, 0x0C], &[], None));
            }
            Step::CreateDf {
                fid,
                space,
                create,
                erase,
                fci,
                name,
            } => {
                let fid = pick(&DF_FIDS, fid).to_be_bytes();
                let mut body = vec![0x38];
                body.extend((space % 0x1000).to_be_bytes());
                body.extend([pick(&RIGHTS, create), pick(&RIGHTS, erase), fci, 0xFF, 0xFF]);
                body.extend(pick(&DF_NAMES, name));
                self.send(&apdu([0x80, 0xE0, fid[0], fid[1]], &body, None));
            }
            Step::CreateKeyFile { space, sfi, add } => {
                let body = [0x3F, 0x00, space, sfi, pick(&RIGHTS, add), 0xFF, 0xFF];
                self.send(&apdu([0x80, 0xE0, 0x00, 0x00], &body, None));
            }
            Step::CreateEf {
                fid,
                ref kind,
                protection,
                a,
                b,
                read,
                write,
                key_byte,
            } => {
                let fid = pick(&EF_FIDS, fid).to_be_bytes();
                let bits = (protection & 0x03) << 6;
                let body: Vec<u8> = match kind {
                    EfType::Binary => {
                        vec![
                            0x28 | bits,
                            a & 0x01,
                            b,
                            pick(&RIGHTS, read),
                            pick(&RIGHTS, write),
                            0xFF,
                            key_byte,
                        ]
                    }
                    EfType::Fixed => {
                        vec![
                            0x2A | bits,
                            a % 12,
                            b,
                            pick(&RIGHTS, read),
                            pick(&RIGHTS, write),
                            0xFF,
                            key_byte,
                        ]
                    }
                    EfType::Variable => {
                        vec![
                            0x2C | bits,
                            a % 12,
                            b,
                            pick(&RIGHTS, read),
                            pick(&RIGHTS, write),
                            0xFF,
                            key_byte,
                        ]
                    }
                    EfType::Cyclic => {
                        vec![
                            0x2E | bits,
                            a % 12,
                            b,
                            pick(&RIGHTS, read),
                            pick(&RIGHTS, write),
                            0xFF,
                            key_byte,
                        ]
                    }
                    EfType::Purse => vec![
                        0x2F,
                        0x02,
                        0x08,
                        pick(&RIGHTS, read),
                        a & 0x03,
                        0xFF,
                        b & 0x1F,
                    ],
                };
                self.send(&apdu([0x80, 0xE0, fid[0], fid[1]], &body, None));
            }
            Step::WriteKey {
                update,
                key_type,
                protection,
                id,
                use_right,
                change_right,
                p4,
                p5,
                secret,
                long,
                algorithm,
            } => {
                let key_type = pick(&KEY_TYPES, key_type);
                let value = pick(&SECRETS, secret);
                let len = if key_type == 0x3A {
                    6 + usize::from(long) * 2
                } else if long {
                    16
                } else {
                    8
                };
                let mut body = vec![
                    key_type | ((protection & 0x03) << 6),
                    pick(&RIGHTS, use_right),
                    pick(&RIGHTS, change_right),
                    p4,
                    p5,
                ];
                body.extend_from_slice(&value[..len]);
                body.extend(algorithm.map(|a| a % 5));
                let p1 = if update { key_type } else { 0x01 };
                self.send(&apdu([0x80, 0xD4, p1, id % 4], &body, None));
                self.secrets_written = true;
            }
            Step::UpdateBinary {
                sfi,
                offset,
                len,
                fill,
            } => {
                self.send(&apdu(
                    [0x00, 0xD6, 0x80 | (sfi % 0x18 + 1), offset],
                    &data(len.max(1), fill),
                    None,
                ));
            }
            Step::UpdateRecord {
                sfi,
                p1,
                mode,
                len,
                fill,
            } => {
                let mut body = data(len.max(2), fill);
                // a TLV whose length byte agrees, for variable files
                body[1] = (body.len() - 2) as u8;
                self.send(&apdu(
                    [0x00, 0xDC, p1 % 8, ((sfi % 0x18 + 1) << 3) | (mode & 0x07)],
                    &body,
                    None,
                ));
            }
            Step::AppendRecord { sfi, len, fill } => {
                let mut body = data(len.max(2), fill);
                body[1] = (body.len() - 2) as u8;
                self.send(&apdu(
                    [0x00, 0xE2, 0x00, (sfi % 0x18 + 1) << 3],
                    &body,
                    None,
                ));
            }
            Step::ReadBinary { sfi, offset, le } => {
                self.send(&apdu(
                    [0x00, 0xB0, 0x80 | (sfi % 0x18 + 1), offset],
                    &[],
                    Some(le),
                ));
            }
            Step::ReadRecord { sfi, p1, mode, le } => {
                self.send(&apdu(
                    [0x00, 0xB2, p1 % 8, ((sfi % 0x18 + 1) << 3) | (mode & 0x07)],
                    &[],
                    Some(le),
                ));
            }
            Step::ProtectedRead {
                record,
                sfi,
                secret,
                long,
            } => {
                let challenge = self.send(&[0x00, 0x84, 0x00, 0x00, 0x04]);
                if challenge.len() != 6 {
                    return;
                }
                let header = if record {
                    [0x04, 0xB2, 0x01, ((sfi % 0x18 + 1) << 3) | 0x04, 0x04]
                } else {
                    [0x04, 0xB0, 0x80 | (sfi % 0x18 + 1), 0x00, 0x04]
                };
                let key = secret_key(secret, long);
                let mac = Mac::compute(&key, MacIv::Bytes(&challenge[..4]), &[&header]).unwrap();
                let mut command = header.to_vec();
                command.extend(mac);
                command.push(0x00);
                self.send(&command);
            }
            Step::EraseDf => {
                self.send(&[0x80, 0x0E, 0x00, 0x00, 0x00]);
            }
            Step::Verify { id, secret, len } => {
                let value = pick(&SECRETS, secret);
                self.send(&apdu(
                    [0x00, 0x20, 0x00, id % 4],
                    &value[..6 + usize::from(len % 3)],
                    None,
                ));
            }
            Step::ExternalAuthenticate { id, secret, long } => {
                let challenge = self.send(&[0x00, 0x84, 0x00, 0x00, 0x04]);
                if challenge.len() != 6 {
                    return;
                }
                let block =
                    challenge_cryptogram(&secret_key(secret, long), &challenge[..4]).unwrap();
                self.send(&apdu([0x00, 0x82, 0x00, id % 4], block.as_slice(), None));
            }
            Step::GetResponse(le) => {
                self.send(&[0x00, 0xC0, 0x00, 0x00, le]);
            }
            Step::Reset => self.card.reset(),
            Step::Raw {
                cla,
                ins,
                p1,
                p2,
                ref data,
                le,
            } => {
                let body: Vec<u8> = data.iter().take(64).map(|b| b & 0x7F).collect();
                self.send(&apdu([cla, ins, p1, p2], &body, le));
            }
        }
    }
}

/// A factory card's memory, made once.
fn factory() -> &'static MemoryNvm {
    static IMAGE: OnceLock<MemoryNvm> = OnceLock::new();
    IMAGE.get_or_init(|| {
        SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 1]))
            .unwrap()
            .into_nvm()
    })
}

/// The NVM image's invariants, read through the simulator's inspection.
fn check_image(card: &mut SimCard) -> Vec<u8> {
    let sim = card.card().expect("the card powers up");
    let tree = inspect::tree(sim).expect("the file tree reads");
    for (i, df) in tree
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == FileKind::Df)
    {
        let children: usize = tree[i + 1..]
            .iter()
            .take_while(|f| f.depth > df.depth)
            .filter(|f| f.depth == df.depth + 1)
            .map(|f| f.footprint)
            .sum();
        assert_eq!(children, df.used, "DF {:04X}: children vs used", df.fid);
        assert!(df.used <= df.capacity, "DF {:04X} over capacity", df.fid);
        assert!(df.depth <= 2, "DF {:04X} at depth {}", df.fid, df.depth);
    }
    for f in tree.iter().filter(|f| f.kind != FileKind::Df) {
        assert!(
            f.used <= f.capacity,
            "EF {:04X}: {} of {}",
            f.fid,
            f.used,
            f.capacity
        );
    }
    inspect::dump(sim).expect("the card dumps")
}

fuzz_target!(|steps: Vec<Step>| {
    let mut run = Run {
        card: SimCard::from_nvm(factory().snapshot()).ok().unwrap(),
        secrets_written: false,
    };
    for step in steps.iter().take(64) {
        run.step(step);
    }
    let before = check_image(&mut run.card);
    let mut card = SimCard::from_nvm(run.card.into_nvm())
        .ok()
        .expect("powers up again");
    let after = check_image(&mut card);
    assert_eq!(before, after, "a power cycle changed the card");
    let answer = card.transmit(&[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]);
    assert_eq!(answer.len(), 2, "{answer:02X?}");
});
