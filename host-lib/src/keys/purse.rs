//! The PBOC purse from the issuer's side: the card's INITIALIZE answers, the purchase request a
//! PSAM signs, and the PSAM's terminal transaction counter.
//!
//! The MAC formulas are `card_os::crypto::purse` (apdu-specs/crypto.md §5); this file only holds
//! the data that flows between a terminal, the key store and the card.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use card_os::crypto::purse::{
    HostTime, Load, Purchase, TYPE_CAPP_PURCHASE, TYPE_ED_LOAD, TYPE_ED_PURCHASE, TYPE_EP_LOAD,
    TYPE_EP_PURCHASE,
};

use super::KeyError;

fn field<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&data[at..at + N]);
    out
}

/// The answer to INITIALIZE FOR LOAD (`80 50 00 P2`): 16 bytes (card-specs §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadInit {
    /// Balance before the load, in cents.
    pub old_balance: u32,
    /// Online transaction counter, before its increment.
    pub online_counter: u16,
    /// Version of the load key the card uses.
    pub key_version: u8,
    /// Algorithm id of that key.
    pub algorithm_id: u8,
    /// The card's random.
    pub random: [u8; 4],
    /// MAC1, to be checked by the load host.
    pub mac1: [u8; 4],
}

impl LoadInit {
    /// Length of the answer's data.
    pub const LEN: usize = 16;

    /// Reads the answer's data (without the status word).
    pub fn parse(data: &[u8]) -> Result<Self, KeyError> {
        if data.len() != Self::LEN {
            return Err(KeyError::Input(format!(
                "INITIALIZE FOR LOAD answer: {} bytes, expected {} (balance 4, counter 2, key version 1, algorithm id 1, random 4, MAC1 4)",
                data.len(),
                Self::LEN
            )));
        }
        Ok(LoadInit {
            old_balance: u32::from_be_bytes(field(data, 0)),
            online_counter: u16::from_be_bytes(field(data, 4)),
            key_version: data[6],
            algorithm_id: data[7],
            random: field(data, 8),
            mac1: field(data, 12),
        })
    }
}

/// The answer to INITIALIZE FOR (CAPP) PURCHASE (`80 50 01/03 P2`): 15 bytes (card-specs §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurchaseInit {
    /// Balance, in cents.
    pub balance: u32,
    /// Offline transaction counter, before its increment.
    pub offline_counter: u16,
    /// Overdraft limit, in cents (3 bytes on the card).
    pub overdraft_limit: u32,
    /// Version of the purchase key the card uses.
    pub key_version: u8,
    /// Algorithm id of that key.
    pub algorithm_id: u8,
    /// The card's random.
    pub random: [u8; 4],
}

impl PurchaseInit {
    /// Length of the answer's data.
    pub const LEN: usize = 15;

    /// Reads the answer's data (without the status word).
    pub fn parse(data: &[u8]) -> Result<Self, KeyError> {
        if data.len() != Self::LEN {
            return Err(KeyError::Input(format!(
                "INITIALIZE FOR PURCHASE answer: {} bytes, expected {} (balance 4, counter 2, overdraft limit 3, key version 1, algorithm id 1, random 4)",
                data.len(),
                Self::LEN
            )));
        }
        let [o0, o1, o2] = field::<3>(data, 6);
        Ok(PurchaseInit {
            balance: u32::from_be_bytes(field(data, 0)),
            offline_counter: u16::from_be_bytes(field(data, 4)),
            overdraft_limit: u32::from_be_bytes([0, o0, o1, o2]),
            key_version: data[9],
            algorithm_id: data[10],
            random: field(data, 11),
        })
    }
}

/// What a purchase terminal asks its PSAM to sign: everything of a [`Purchase`] except the
/// terminal transaction number, which the PSAM assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurchaseRequest {
    /// Amount, in cents.
    pub amount: u32,
    /// Transaction type: [`TYPE_EP_PURCHASE`], [`TYPE_ED_PURCHASE`] or [`TYPE_CAPP_PURCHASE`].
    pub txn_type: u8,
    /// The terminal's id, 6 bytes.
    pub terminal_id: [u8; 6],
    /// Date and time sent in DEBIT FOR PURCHASE.
    pub at: HostTime,
}

/// The PSAM's answer: the purchase with its terminal transaction number, and MAC1 for DEBIT FOR
/// PURCHASE (`80 54 01 00 0F terminalSeq4 date4 time3 MAC1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurchaseMac1 {
    /// The purchase as the card will see it (needed again to check MAC2 and the TAC).
    pub purchase: Purchase,
    /// MAC1.
    pub mac1: [u8; 4],
}

impl PurchaseMac1 {
    /// The data field of DEBIT FOR PURCHASE: `terminalSeq4 ‖ date4 ‖ time3 ‖ MAC1`.
    pub fn debit_data(&self) -> [u8; 15] {
        let mut d = [0u8; 15];
        d[..4].copy_from_slice(&self.purchase.terminal_seq);
        d[4..8].copy_from_slice(&self.purchase.at.date);
        d[8..11].copy_from_slice(&self.purchase.at.time);
        d[11..].copy_from_slice(&self.mac1);
        d
    }
}

/// The PSAM's terminal transaction number: strictly increasing, never reused, 4 bytes.
///
/// A file-backed counter writes the new value to disk (a temporary file, synced, then renamed over
/// the old one) **before** the number is handed out, so a crash can skip a number but never repeat
/// one. An in-memory counter is for tests and short-lived tools.
#[derive(Debug)]
pub struct TerminalCounter {
    state: Mutex<u32>,
    file: Option<PathBuf>,
}

impl TerminalCounter {
    /// A counter in memory whose last used number is `last_used` (the next one is `last_used + 1`).
    pub fn in_memory(last_used: u32) -> Self {
        TerminalCounter {
            state: Mutex::new(last_used),
            file: None,
        }
    }

    /// A counter kept in `path`: a text file holding the last used number in decimal. A missing
    /// file starts at 0 (the first number handed out is 1).
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let last_used = match fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<u32>().map_err(|_| {
                KeyError::TerminalCounter(format!(
                    "{}: expected the last used number in decimal, found {:?}",
                    path.display(),
                    text.trim()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(KeyError::TerminalCounter(format!(
                    "{}: {e}",
                    path.display()
                )))
            }
        };
        Ok(TerminalCounter {
            state: Mutex::new(last_used),
            file: Some(path.to_owned()),
        })
    }

    /// The last number handed out (0 before the first).
    pub fn last_used(&self) -> u32 {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next number, persisting it first when the counter is file-backed.
    pub fn next(&self) -> Result<[u8; 4], KeyError> {
        let mut last = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = last.checked_add(1).ok_or_else(|| {
            KeyError::TerminalCounter("exhausted: all 2^32 - 1 numbers are used".into())
        })?;
        if let Some(path) = &self.file {
            persist(path, next).map_err(|e| {
                KeyError::TerminalCounter(format!("{}: cannot save {next}: {e}", path.display()))
            })?;
        }
        *last = next;
        Ok(next.to_be_bytes())
    }
}

fn persist(path: &Path, value: u32) -> std::io::Result<()> {
    // Owner-only, under a name no other process uses, replaced atomically.
    crate::private_fs::write_private_atomic(path, format!("{value}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv4_load_answer() {
        // card-specs TV-4: 00000000 0000 01 00 CDEF4F20 06B1BEF5
        let a = LoadInit::parse(
            &hex::decode("00000000000001 00CDEF4F20 06B1BEF5".replace(' ', "")).unwrap(),
        )
        .unwrap();
        assert_eq!(a.old_balance, 0);
        assert_eq!(a.online_counter, 0);
        assert_eq!((a.key_version, a.algorithm_id), (1, 0));
        assert_eq!(a.random, [0xCD, 0xEF, 0x4F, 0x20]);
        assert_eq!(a.mac1, [0x06, 0xB1, 0xBE, 0xF5]);
        let e = LoadInit::parse(&[0; 15]).unwrap_err();
        assert!(e.to_string().contains("15 bytes, expected 16"), "{e}");
    }

    #[test]
    fn tv5_purchase_answer() {
        // card-specs TV-5: 00001C37 0000 000000 01 00 9AC87503
        let a =
            PurchaseInit::parse(&hex::decode("00001C37000000000001009AC87503").unwrap()).unwrap();
        assert_eq!(a.balance, 0x1C37);
        assert_eq!(a.overdraft_limit, 0);
        assert_eq!((a.key_version, a.algorithm_id), (1, 0));
        assert_eq!(a.random, [0x9A, 0xC8, 0x75, 0x03]);
        let a = PurchaseInit::parse(
            &hex::decode("00000001 0002 010203 04 05 9AC87503".replace(' ', "")).unwrap(),
        )
        .unwrap();
        assert_eq!((a.balance, a.offline_counter), (1, 2));
        assert_eq!(a.overdraft_limit, 0x010203);
        assert_eq!((a.key_version, a.algorithm_id), (4, 5));
        assert!(PurchaseInit::parse(&[0; 16]).is_err());
    }

    #[test]
    fn counters_saved_at_once_never_fail_on_a_shared_temporary_file() {
        // Two terminals saving one counter file at once: each save has its own temporary file,
        // so none fails (a fixed `.tmp` name let one rename the other's away).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psam-counter");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let c = TerminalCounter::open(&path).unwrap();
                    (0..50)
                        .map(|_| c.next().map(drop))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn in_memory_counter_increases() {
        let c = TerminalCounter::in_memory(0xFFFF_FFFD);
        assert_eq!(c.next().unwrap(), [0xFF, 0xFF, 0xFF, 0xFE]);
        assert_eq!(c.next().unwrap(), [0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(c.next(), Err(KeyError::TerminalCounter(_))));
        assert_eq!(c.last_used(), u32::MAX);
    }

    #[test]
    fn file_counter_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psam.counter");
        let c = TerminalCounter::open(&path).unwrap();
        assert_eq!(c.last_used(), 0);
        assert_eq!(c.next().unwrap(), [0, 0, 0, 1]);
        assert_eq!(c.next().unwrap(), [0, 0, 0, 2]);
        drop(c);
        assert_eq!(fs::read_to_string(&path).unwrap(), "2\n");
        let c = TerminalCounter::open(&path).unwrap();
        assert_eq!(c.next().unwrap(), [0, 0, 0, 3]);
        fs::write(&path, "three").unwrap();
        let e = TerminalCounter::open(&path).unwrap_err();
        assert!(e.to_string().contains("\"three\""), "{e}");
    }

    #[test]
    fn debit_data_layout() {
        let m = PurchaseMac1 {
            purchase: Purchase {
                amount: 1,
                txn_type: TYPE_EP_PURCHASE,
                terminal_id: [0; 6],
                terminal_seq: [0, 0, 0, 1],
                at: HostTime {
                    date: [0x20, 0x11, 0x09, 0x19],
                    time: [0x20, 0x48, 0x12],
                },
            },
            mac1: [0xCD, 0x57, 0x31, 0x64],
        };
        assert_eq!(
            hex::encode_upper(m.debit_data()),
            "0000000120110919204812CD573164"
        );
    }
}
