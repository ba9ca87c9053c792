//! Transaction records: what a load or purchase did, in a form people, JSON and the registry's
//! purse ledger can take.

use serde::{Serialize, Serializer};
use time::{Date, Month, PrimitiveDateTime, Time};

use super::amount::format_yuan;
use super::apdu::PurseKind;
use crate::keys::HostTime;
use crate::registry::{LoadRecord, VerifiedPurchase};

/// What kind of transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// A load (CREDIT FOR LOAD).
    Load,
    /// A purchase (DEBIT FOR PURCHASE).
    Purchase,
    /// A composite-application purchase (INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE,
    /// DEBIT).
    CappPurchase,
}

impl TransactionKind {
    /// A word for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Load => "load",
            TransactionKind::Purchase => "purchase",
            TransactionKind::CappPurchase => "composite purchase",
        }
    }

    /// The command that completes (and moves the money of) this kind of transaction.
    pub const fn completing_command(self) -> &'static str {
        match self {
            TransactionKind::Load => "CREDIT FOR LOAD",
            TransactionKind::Purchase | TransactionKind::CappPurchase => "DEBIT FOR PURCHASE",
        }
    }
}

/// The name of a transaction type byte (FMCOS 2.0 §8.13).
pub fn type_name(txn_type: u8) -> &'static str {
    match txn_type {
        0x01 => "ED load",
        0x02 => "EP load",
        0x03 => "unload",
        0x04 => "cash withdrawal",
        0x05 => "ED purchase",
        0x06 => "EP purchase",
        0x07 => "overdraft update",
        0x09 => "composite purchase",
        _ => "unknown",
    }
}

fn bcd(b: u8) -> Option<u8> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// A local date and time as the card carries it (`YYYYMMDD`, `hhmmss` in BCD).
pub fn host_time(at: PrimitiveDateTime) -> HostTime {
    let year = at.year().clamp(0, 9999) as u16;
    HostTime {
        date: [
            to_bcd((year / 100) as u8),
            to_bcd((year % 100) as u8),
            to_bcd(u8::from(at.month())),
            to_bcd(at.day()),
        ],
        time: [to_bcd(at.hour()), to_bcd(at.minute()), to_bcd(at.second())],
    }
}

/// The date and time of a card field, when it is valid BCD of a real date.
pub fn parse_host_time(at: &HostTime) -> Option<PrimitiveDateTime> {
    let [c, y, m, d] = at.date;
    let year = i32::from(bcd(c)?) * 100 + i32::from(bcd(y)?);
    let date = Date::from_calendar_date(year, Month::try_from(bcd(m)?).ok()?, bcd(d)?).ok()?;
    let [hh, mm, ss] = at.time;
    let time = Time::from_hms(bcd(hh)?, bcd(mm)?, bcd(ss)?).ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

/// `2014-08-25 10:31:00`, or the raw hex (`20141325 103100`) when the fields are not a date.
pub fn format_host_time(at: &HostTime) -> String {
    match parse_host_time(at) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => format!(
            "{} {}",
            hex::encode_upper(at.date),
            hex::encode_upper(at.time)
        ),
    }
}

/// One load or purchase as the terminal saw it complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRecord {
    /// The application serial number (EF 0015 bytes 10..20).
    pub card_serial: [u8; 10],
    /// Load, purchase or composite purchase.
    pub kind: TransactionKind,
    /// Which purse.
    pub purse: PurseKind,
    /// The transaction type byte (`02` EP load, `06` EP purchase, `09` composite…).
    pub txn_type: u8,
    /// Amount, in cents.
    pub amount: u32,
    /// Balance before, in cents (from INITIALIZE).
    pub balance_before: u32,
    /// Balance after, in cents.
    pub balance_after: u32,
    /// The card's online (load) or offline (purchase) counter of this transaction: the value
    /// INITIALIZE returned, before its increment. It is the counter in the card's log record.
    pub card_counter: u16,
    /// The key version the card used.
    pub key_version: u8,
    /// The algorithm id the card announced.
    pub algorithm_id: u8,
    /// The terminal's id.
    pub terminal_id: [u8; 6],
    /// The terminal (PSAM) transaction number of a purchase.
    pub terminal_seq: Option<[u8; 4]>,
    /// Date and time sent to the card (and covered by the TAC).
    pub at: HostTime,
    /// MAC2: for a load the one the host sent, for a purchase the one the card returned.
    pub mac2: [u8; 4],
    /// The TAC.
    pub tac: [u8; 4],
    /// MAC2 (purchases) and the TAC verified under the issuer's keys.
    pub verified: bool,
    /// The answer to CREDIT/DEBIT was lost and the transaction was proven afterwards with GET
    /// TRANSACTION PROOF.
    pub recovered: bool,
    /// Command APDUs this operation sent, recovery included.
    pub apdus: u32,
}

impl TransactionRecord {
    /// The application serial number in hex.
    pub fn serial_hex(&self) -> String {
        hex::encode_upper(self.card_serial)
    }

    /// The terminal id in hex (12 digits).
    pub fn terminal_hex(&self) -> String {
        hex::encode_upper(self.terminal_id)
    }

    /// The local date and time of the transaction.
    pub fn local_time(&self) -> Option<PrimitiveDateTime> {
        parse_host_time(&self.at)
    }

    /// The purchase for the registry's purse ledger, when this is a purchase whose MAC2 and TAC
    /// verified (the ledger takes nothing else).
    pub fn verified_purchase(&self) -> Option<VerifiedPurchase> {
        if !self.verified || self.kind == TransactionKind::Load {
            return None;
        }
        Some(VerifiedPurchase {
            amount_cents: self.amount,
            at: VerifiedPurchase::terminal_time(self.local_time()?),
            terminal_id: self.terminal_hex(),
            txn_counter: self.card_counter,
            tac: self.tac,
        })
    }

    /// The load for the registry's purse ledger, when this is a load whose TAC verified.
    pub fn load_record(&self) -> Option<LoadRecord> {
        (self.verified && self.kind == TransactionKind::Load).then(|| LoadRecord {
            amount_cents: self.amount,
            txn_counter: Some(self.card_counter),
            terminal_id: Some(self.terminal_hex()),
        })
    }
}

#[derive(Serialize)]
struct RecordView {
    card_serial: String,
    kind: TransactionKind,
    purse: PurseKind,
    txn_type: String,
    txn_type_name: &'static str,
    amount_cents: u32,
    amount: String,
    balance_before_cents: u32,
    balance_after_cents: u32,
    balance_after: String,
    card_counter: u16,
    key_version: u8,
    algorithm_id: u8,
    terminal_id: String,
    terminal_seq: Option<u32>,
    date_time: String,
    mac2: String,
    tac: String,
    verified: bool,
    recovered: bool,
    apdus: u32,
}

impl Serialize for TransactionRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RecordView {
            card_serial: self.serial_hex(),
            kind: self.kind,
            purse: self.purse,
            txn_type: format!("{:02X}", self.txn_type),
            txn_type_name: type_name(self.txn_type),
            amount_cents: self.amount,
            amount: format_yuan(self.amount),
            balance_before_cents: self.balance_before,
            balance_after_cents: self.balance_after,
            balance_after: format_yuan(self.balance_after),
            card_counter: self.card_counter,
            key_version: self.key_version,
            algorithm_id: self.algorithm_id,
            terminal_id: self.terminal_hex(),
            terminal_seq: self.terminal_seq.map(u32::from_be_bytes),
            date_time: format_host_time(&self.at),
            mac2: hex::encode_upper(self.mac2),
            tac: hex::encode_upper(self.tac),
            verified: self.verified,
            recovered: self.recovered,
            apdus: self.apdus,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> TransactionRecord {
        TransactionRecord {
            card_serial: [0, 0, 0x33, 0x03, 0, 0, 0, 0, 0, 1],
            kind: TransactionKind::Purchase,
            purse: PurseKind::Ep,
            txn_type: 0x06,
            amount: 250,
            balance_before: 1000,
            balance_after: 750,
            card_counter: 3,
            key_version: 1,
            algorithm_id: 1,
            terminal_id: [0, 0, 0, 0, 0, 7],
            terminal_seq: Some([0, 0, 0, 9]),
            at: host_time(datetime!(2025-03-04 05:06:07)),
            mac2: [1, 2, 3, 4],
            tac: [5, 6, 7, 8],
            verified: true,
            recovered: false,
            apdus: 3,
        }
    }

    #[test]
    fn bcd_date_time_round_trip() {
        let at = host_time(datetime!(2014-08-25 10:31:00));
        assert_eq!(at.date, [0x20, 0x14, 0x08, 0x25]);
        assert_eq!(at.time, [0x10, 0x31, 0x00]);
        assert_eq!(parse_host_time(&at), Some(datetime!(2014-08-25 10:31:00)));
        assert_eq!(format_host_time(&at), "2014-08-25 10:31:00");
        let bad = HostTime {
            date: [0x20, 0x14, 0x13, 0x25],
            time: [0x10, 0x31, 0x00],
        };
        assert_eq!(parse_host_time(&bad), None);
        assert_eq!(format_host_time(&bad), "20141325 103100");
        let not_bcd = HostTime {
            date: [0x20, 0x1A, 0x01, 0x01],
            time: [0; 3],
        };
        assert_eq!(parse_host_time(&not_bcd), None);
    }

    #[test]
    fn ledger_entries_only_from_verified_records() {
        let r = sample();
        let p = r.verified_purchase().unwrap();
        assert_eq!(p.amount_cents, 250);
        assert_eq!(p.terminal_id, "000000000007");
        assert_eq!(p.txn_counter, 3);
        assert_eq!(p.tac, [5, 6, 7, 8]);
        assert_eq!(p.at.offset(), crate::holder::CHINA_TIME);
        assert_eq!(r.load_record(), None);
        let unverified = TransactionRecord {
            verified: false,
            ..sample()
        };
        assert_eq!(unverified.verified_purchase(), None);
        let load = TransactionRecord {
            kind: TransactionKind::Load,
            txn_type: 0x02,
            terminal_seq: None,
            ..sample()
        };
        assert_eq!(load.verified_purchase(), None);
        let l = load.load_record().unwrap();
        assert_eq!(
            (l.amount_cents, l.txn_counter, l.terminal_id.as_deref()),
            (250, Some(3), Some("000000000007"))
        );
    }

    #[test]
    fn json_view() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["card_serial"], "00003303000000000001");
        assert_eq!(v["kind"], "purchase");
        assert_eq!(v["purse"], "ep");
        assert_eq!(v["txn_type"], "06");
        assert_eq!(v["txn_type_name"], "EP purchase");
        assert_eq!(v["amount"], "2.50");
        assert_eq!(v["balance_after"], "7.50");
        assert_eq!(v["terminal_seq"], 9);
        assert_eq!(v["date_time"], "2025-03-04 05:06:07");
        assert_eq!(v["tac"], "05060708");
        assert_eq!(v["verified"], true);
        assert_eq!(v["apdus"], 3);
        assert_eq!(type_name(0x09), "composite purchase");
        assert_eq!(type_name(0x42), "unknown");
    }
}
