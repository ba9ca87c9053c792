//! The purse's transaction log: 23-byte records of the cyclic file `0018` (SFI `18`), record 1
//! the newest (apdu-specs/purse.md, "The transaction record"; FMCOS 2.0 appendix A-3).

use serde::{Serialize, Serializer};

use super::amount::format_yuan;
use super::record::{format_host_time, type_name};
use crate::keys::HostTime;

/// Length of a log record.
pub const LOG_RECORD_LEN: usize = 23;

/// One record of the purse log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its record number when read (1 = the newest).
    pub number: u8,
    /// The online (load) or offline (purchase) counter before the transaction.
    pub counter: u16,
    /// Overdraft limit, in cents (3 bytes on the card).
    pub overdraft_limit: u32,
    /// Amount, in cents.
    pub amount: u32,
    /// Transaction type byte.
    pub txn_type: u8,
    /// Terminal id.
    pub terminal_id: [u8; 6],
    /// Date and time (host date of a load, terminal date of a purchase).
    pub at: HostTime,
}

/// Why bytes are not a log record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log record {number}: {len} bytes, a transaction record has 23 (counter 2, overdraft limit 3, amount 4, type 1, terminal 6, date 4, time 3)")]
pub struct LogRecordError {
    /// The record number.
    pub number: u8,
    /// The length found.
    pub len: usize,
}

impl LogRecord {
    /// Decodes record number `number` (exactly 23 bytes).
    pub fn parse(number: u8, data: &[u8]) -> Result<Self, LogRecordError> {
        let d: &[u8; LOG_RECORD_LEN] = data.try_into().map_err(|_| LogRecordError {
            number,
            len: data.len(),
        })?;
        Ok(LogRecord {
            number,
            counter: u16::from_be_bytes([d[0], d[1]]),
            overdraft_limit: u32::from_be_bytes([0, d[2], d[3], d[4]]),
            amount: u32::from_be_bytes([d[5], d[6], d[7], d[8]]),
            txn_type: d[9],
            terminal_id: [d[10], d[11], d[12], d[13], d[14], d[15]],
            at: HostTime {
                date: [d[16], d[17], d[18], d[19]],
                time: [d[20], d[21], d[22]],
            },
        })
    }

    /// The name of its transaction type.
    pub fn type_name(&self) -> &'static str {
        type_name(self.txn_type)
    }

    /// Whether money came in (a load) rather than went out.
    pub fn is_load(&self) -> bool {
        matches!(self.txn_type, 0x01 | 0x02)
    }

    /// The date and time as text.
    pub fn date_time(&self) -> String {
        format_host_time(&self.at)
    }
}

#[derive(Serialize)]
struct LogView {
    number: u8,
    counter: u16,
    txn_type: String,
    txn_type_name: &'static str,
    amount_cents: u32,
    amount: String,
    overdraft_limit_cents: u32,
    terminal_id: String,
    date_time: String,
}

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LogView {
            number: self.number,
            counter: self.counter,
            txn_type: format!("{:02X}", self.txn_type),
            txn_type_name: self.type_name(),
            amount_cents: self.amount,
            amount: format_yuan(self.amount),
            overdraft_limit_cents: self.overdraft_limit,
            terminal_id: hex::encode_upper(self.terminal_id),
            date_time: self.date_time(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purse_md_records() {
        // apdu-specs/purse.md worked example: record 1 (TV-5 purchase), record 2 (TV-4 load).
        let purchase =
            hex::decode("000000000000001C3709000000000001201109192048 12".replace(' ', ""))
                .unwrap();
        let p = LogRecord::parse(1, &purchase).unwrap();
        assert_eq!(p.counter, 0);
        assert_eq!(p.amount, 0x1C37);
        assert_eq!(p.txn_type, 0x09);
        assert_eq!(p.type_name(), "composite purchase");
        assert_eq!(p.terminal_id, [0, 0, 0, 0, 0, 1]);
        assert_eq!(p.date_time(), "2011-09-19 20:48:12");
        assert!(!p.is_load());
        let load = hex::decode("000000000000001C3702000001000050201408251031 00".replace(' ', ""))
            .unwrap();
        let l = LogRecord::parse(2, &load).unwrap();
        assert!(l.is_load());
        assert_eq!(l.type_name(), "EP load");
        let v = serde_json::to_value(l).unwrap();
        assert_eq!(v["amount"], "72.23");
        assert_eq!(v["terminal_id"], "000001000050");
        assert_eq!(v["date_time"], "2014-08-25 10:31:00");
        assert_eq!(v["number"], 2);
        let e = LogRecord::parse(3, &load[..22]).unwrap_err();
        assert!(e.to_string().contains("log record 3: 22 bytes"), "{e}");
    }
}
