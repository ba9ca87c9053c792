//! Transactions whose outcome is not known yet, and where they are kept until it is.
//!
//! Just before it sends CREDIT FOR LOAD or DEBIT FOR PURCHASE, the terminal writes down a
//! [`Pending`] transaction: everything it needs to ask the card later whether the transaction
//! happened (GET TRANSACTION PROOF: its type and counter) and to check the proof (MAC2 and TAC
//! need the INITIALIZE answer, the amount, terminal, date and time). When the outcome is known —
//! done or not done — the entry is removed. If the terminal itself dies in between (a crash, a
//! power failure of the PC), the next terminal run that meets the same card settles the entry
//! before anything else, since the card can prove only its **last** transaction.
//!
//! [`FileJournal`] keeps entries as small JSON files (written to a temporary file, synced,
//! renamed); [`NoJournal`] keeps nothing, for tests and one-shot tools where the in-process
//! recovery is enough.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::apdu::PurseKind;
use super::record::TransactionKind;
use crate::keys::{HostTime, Load, LoadInit, Purchase, PurchaseInit};

/// Serde helpers: byte arrays as upper-case hex strings.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom(format!("{text:?}: expected {N} bytes of hex")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer, const N: usize>(
            v: &Option<[u8; N]>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<Option<[u8; N]>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => {
                    let bytes = hex::decode(&text).map_err(D::Error::custom)?;
                    bytes.try_into().map(Some).map_err(|_| {
                        D::Error::custom(format!("{text:?}: expected {N} bytes of hex"))
                    })
                }
            }
        }
    }
}

/// A load or purchase whose CREDIT or DEBIT was (or is about to be) sent and whose outcome is not
/// known yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Format of this record (1).
    pub format: u32,
    /// The application serial number of the card.
    #[serde(with = "hex_bytes")]
    pub card_serial: [u8; 10],
    /// Load, purchase or composite purchase.
    pub kind: TransactionKind,
    /// Which purse.
    pub purse: PurseKind,
    /// Transaction type byte (the P2 of GET TRANSACTION PROOF).
    pub txn_type: u8,
    /// Amount, in cents.
    pub amount: u32,
    /// Balance before, in cents.
    pub balance_before: u32,
    /// The counter INITIALIZE returned (GET TRANSACTION PROOF's data).
    pub card_counter: u16,
    /// Key version from INITIALIZE.
    pub key_version: u8,
    /// Algorithm id from INITIALIZE.
    pub algorithm_id: u8,
    /// The card's random from INITIALIZE (the session key's input).
    #[serde(with = "hex_bytes")]
    pub random: [u8; 4],
    /// Load: MAC1 the card sent with INITIALIZE FOR LOAD. Purchase: MAC1 the PSAM made.
    #[serde(with = "hex_bytes")]
    pub mac1: [u8; 4],
    /// Load: the MAC2 the host sent with CREDIT FOR LOAD (the proof must carry it back).
    #[serde(with = "hex_bytes::option", default)]
    pub load_mac2: Option<[u8; 4]>,
    /// Terminal id.
    #[serde(with = "hex_bytes")]
    pub terminal_id: [u8; 6],
    /// Purchase: the terminal transaction number.
    #[serde(with = "hex_bytes::option", default)]
    pub terminal_seq: Option<[u8; 4]>,
    /// Date sent to the card.
    #[serde(with = "hex_bytes")]
    pub date: [u8; 4],
    /// Time sent to the card.
    #[serde(with = "hex_bytes")]
    pub time: [u8; 3],
}

impl Pending {
    /// The current format.
    pub const FORMAT: u32 = 1;

    /// A load about to be credited.
    pub fn load(
        card_serial: [u8; 10],
        purse: PurseKind,
        init: &LoadInit,
        load: &Load,
        at: &HostTime,
        mac2: [u8; 4],
    ) -> Self {
        Pending {
            format: Self::FORMAT,
            card_serial,
            kind: TransactionKind::Load,
            purse,
            txn_type: load.txn_type,
            amount: load.amount,
            balance_before: init.old_balance,
            card_counter: init.online_counter,
            key_version: init.key_version,
            algorithm_id: init.algorithm_id,
            random: init.random,
            mac1: init.mac1,
            load_mac2: Some(mac2),
            terminal_id: load.terminal_id,
            terminal_seq: None,
            date: at.date,
            time: at.time,
        }
    }

    /// A purchase about to be debited.
    pub fn purchase(
        card_serial: [u8; 10],
        kind: TransactionKind,
        purse: PurseKind,
        init: &PurchaseInit,
        purchase: &Purchase,
        mac1: [u8; 4],
    ) -> Self {
        Pending {
            format: Self::FORMAT,
            card_serial,
            kind,
            purse,
            txn_type: purchase.txn_type,
            amount: purchase.amount,
            balance_before: init.balance,
            card_counter: init.offline_counter,
            key_version: init.key_version,
            algorithm_id: init.algorithm_id,
            random: init.random,
            mac1,
            load_mac2: None,
            terminal_id: purchase.terminal_id,
            terminal_seq: Some(purchase.terminal_seq),
            date: purchase.at.date,
            time: purchase.at.time,
        }
    }

    /// The date and time sent.
    pub fn at(&self) -> HostTime {
        HostTime {
            date: self.date,
            time: self.time,
        }
    }

    /// The INITIALIZE FOR LOAD answer, rebuilt.
    pub fn load_init(&self) -> LoadInit {
        LoadInit {
            old_balance: self.balance_before,
            online_counter: self.card_counter,
            key_version: self.key_version,
            algorithm_id: self.algorithm_id,
            random: self.random,
            mac1: self.mac1,
        }
    }

    /// The load.
    pub fn load_fields(&self) -> Load {
        Load {
            amount: self.amount,
            txn_type: self.txn_type,
            terminal_id: self.terminal_id,
        }
    }

    /// The INITIALIZE FOR PURCHASE answer, rebuilt. The overdraft limit is not journaled: no MAC
    /// covers it, and this terminal's profiles never give an ED a limit (no overdraft key `3C`).
    pub fn purchase_init(&self) -> PurchaseInit {
        PurchaseInit {
            balance: self.balance_before,
            offline_counter: self.card_counter,
            overdraft_limit: 0,
            key_version: self.key_version,
            algorithm_id: self.algorithm_id,
            random: self.random,
        }
    }

    /// The purchase as the card saw it.
    pub fn purchase_fields(&self) -> Purchase {
        Purchase {
            amount: self.amount,
            txn_type: self.txn_type,
            terminal_id: self.terminal_id,
            terminal_seq: self.terminal_seq.unwrap_or_default(),
            at: self.at(),
        }
    }

    /// The balance if the transaction happened.
    pub fn balance_if_done(&self) -> u32 {
        match self.kind {
            TransactionKind::Load => self.balance_before.saturating_add(self.amount),
            _ => self.balance_before.saturating_sub(self.amount),
        }
    }

    /// One line for people: `purchase of 2.50 yuan, card 0000…0001, offline counter 3`.
    pub fn describe(&self) -> String {
        let counter = match self.kind {
            TransactionKind::Load => "online",
            _ => "offline",
        };
        format!(
            "{} of {} yuan on card {} ({} counter {}, terminal {}{})",
            self.kind.as_str(),
            super::amount::format_yuan(self.amount),
            hex::encode_upper(self.card_serial),
            counter,
            self.card_counter,
            hex::encode_upper(self.terminal_id),
            self.terminal_seq
                .map(|s| format!(", terminal transaction {}", u32::from_be_bytes(s)))
                .unwrap_or_default()
        )
    }
}

/// Where pending transactions are kept.
pub trait Journal {
    /// Writes `pending` down before its CREDIT/DEBIT is sent. An error stops the transaction
    /// before anything moves.
    fn begin(&mut self, pending: &Pending) -> Result<(), String>;
    /// Forgets `pending`: its outcome is known.
    fn end(&mut self, pending: &Pending) -> Result<(), String>;
    /// The pending transaction of the card with this serial, if any.
    fn pending_for(&self, card_serial: &[u8; 10]) -> Result<Option<Pending>, String>;
}

/// Keeps nothing: recovery works within one terminal run only.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn begin(&mut self, _: &Pending) -> Result<(), String> {
        Ok(())
    }
    fn end(&mut self, _: &Pending) -> Result<(), String> {
        Ok(())
    }
    fn pending_for(&self, _: &[u8; 10]) -> Result<Option<Pending>, String> {
        Ok(None)
    }
}

/// Keeps each card's pending transaction in `DIR/pending-<serial>.json`.
#[derive(Clone, Debug)]
pub struct FileJournal {
    dir: PathBuf,
}

impl FileJournal {
    /// A journal in `dir` (created when the first entry is written).
    pub fn new(dir: &Path) -> Self {
        FileJournal {
            dir: dir.to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, card_serial: &[u8; 10]) -> PathBuf {
        self.dir
            .join(format!("pending-{}.json", hex::encode_upper(card_serial)))
    }

    /// Every pending transaction in the directory.
    pub fn all(&self) -> Result<Vec<Pending>, String> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.dir.display())),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| format!("{}: {e}", self.dir.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("pending-") && name.ends_with(".json") {
                out.push(read(&path)?);
            }
        }
        Ok(out)
    }
}

fn read(path: &Path) -> Result<Pending, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a pending transaction ({e}); move it away only after settling it by hand",
            path.display()
        )
    })
}

impl Journal for FileJournal {
    fn begin(&mut self, pending: &Pending) -> Result<(), String> {
        let path = self.path(&pending.card_serial);
        let write = || -> std::io::Result<()> {
            // Terminal state: owner-only directory and files (crate::private_fs).
            crate::private_fs::create_private_dir_all(&self.dir)?;
            let mut text = serde_json::to_string_pretty(pending)?;
            text.push('\n');
            crate::private_fs::write_private_atomic(&path, text.as_bytes())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }

    fn end(&mut self, pending: &Pending) -> Result<(), String> {
        let path = self.path(&pending.card_serial);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn pending_for(&self, card_serial: &[u8; 10]) -> Result<Option<Pending>, String> {
        let path = self.path(card_serial);
        if !path.exists() {
            return Ok(None);
        }
        read(&path).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Pending {
        Pending::purchase(
            [0, 0, 0x33, 0x03, 0, 0, 0, 0, 0, 1],
            TransactionKind::Purchase,
            PurseKind::Ep,
            &PurchaseInit {
                balance: 1000,
                offline_counter: 4,
                overdraft_limit: 0,
                key_version: 1,
                algorithm_id: 1,
                random: [1, 2, 3, 4],
            },
            &Purchase {
                amount: 250,
                txn_type: 0x06,
                terminal_id: [0, 0, 0, 0, 0, 7],
                terminal_seq: [0, 0, 0, 9],
                at: HostTime {
                    date: [0x20, 0x25, 0x01, 0x02],
                    time: [0x03, 0x04, 0x05],
                },
            },
            [0xAA; 4],
        )
    }

    #[test]
    fn file_journal_keeps_one_entry_per_card() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = FileJournal::new(&dir.path().join("state"));
        let p = sample();
        assert_eq!(j.pending_for(&p.card_serial).unwrap(), None);
        assert!(j.all().unwrap().is_empty());
        j.begin(&p).unwrap();
        assert_eq!(j.pending_for(&p.card_serial).unwrap(), Some(p.clone()));
        assert_eq!(j.pending_for(&[9; 10]).unwrap(), None);
        assert_eq!(j.all().unwrap(), vec![p.clone()]);
        let text =
            fs::read_to_string(dir.path().join("state/pending-00003303000000000001.json")).unwrap();
        assert!(text.contains("\"random\": \"01020304\""), "{text}");
        assert!(text.contains("\"terminal_seq\": \"00000009\""), "{text}");
        j.end(&p).unwrap();
        j.end(&p).unwrap();
        assert_eq!(j.pending_for(&p.card_serial).unwrap(), None);
        // A damaged entry is an error that names the file, never silently dropped.
        fs::write(
            dir.path().join("state/pending-00003303000000000001.json"),
            "{",
        )
        .unwrap();
        let e = j.pending_for(&p.card_serial).unwrap_err();
        assert!(e.contains("not a pending transaction"), "{e}");
    }

    #[test]
    fn rebuilt_fields() {
        let p = sample();
        assert_eq!(p.purchase_init().offline_counter, 4);
        assert_eq!(p.purchase_fields().terminal_seq, [0, 0, 0, 9]);
        assert_eq!(p.balance_if_done(), 750);
        assert!(
            p.describe().contains("purchase of 2.50 yuan"),
            "{}",
            p.describe()
        );
        assert!(p.describe().contains("offline counter 4"));
        let back: Pending = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
