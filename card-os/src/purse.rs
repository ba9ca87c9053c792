//! The PBOC electronic deposit / electronic purse (ED/EP) as this card keeps it (FMCOS 2.0 ch. 8,
//! apdu-specs/purse.md): the 24-byte purse body, the 23-byte transaction record, and the
//! transaction a terminal has opened with INITIALIZE (volatile).
//!
//! The commands are executed in `card::purse`; the MACs and session keys are `crypto::purse`.
//! The host reads log records and builds terminals with the same types.
//!
//! Why the body holds the last transaction's MAC and TAC: GET TRANSACTION PROOF must answer for a
//! transaction whose answer was lost to a power cut, and must never answer for one that did not
//! happen. Written in the same NVM transaction as the balance and counter, the proof exists exactly
//! when the transaction does.

use crate::crypto::purse::{
    HostTime, TYPE_CAPP_PURCHASE, TYPE_ED_CASH_WITHDRAW, TYPE_ED_LOAD, TYPE_ED_OVERDRAFT,
    TYPE_ED_PURCHASE, TYPE_ED_UNLOAD, TYPE_EP_LOAD, TYPE_EP_PURCHASE,
};
use crate::fs::header::PURSE_BODY_LEN;

/// Length of a transaction record in the purse's log (FMCOS 2.0 appendix A-3).
pub const LOG_RECORD_LEN: usize = 23;

/// Where the fields of the purse body are (see apdu-specs/purse.md, "The purse body").
pub mod offset {
    /// Maximum balance (4), written by CREATE FILE only.
    pub const MAX_BALANCE: usize = 0;
    /// Start of the state a transaction rewrites: balance (4), online counter (2), offline
    /// counter (2), last transaction type (1), its MAC (4), its TAC (4).
    pub const STATE: usize = 4;
    /// The overdraft limit (3), right after the state: only UPDATE OVERDRAW LIMIT rewrites it,
    /// together with the state (one journal entry of [`super::STATE_LEN`] + 3 bytes).
    pub const OVERDRAFT_LIMIT: usize = 21;
}

/// Length of the state a transaction rewrites (one journal entry).
pub const STATE_LEN: usize = 17;

/// Length of the overdraft limit (FMCOS 2.0 tables 8.8, 8.27: 3 bytes).
pub const OVERDRAFT_LIMIT_LEN: usize = 3;

/// The largest overdraft limit: 3 bytes of cents (167,772.15 yuan).
pub const MAX_OVERDRAFT_LIMIT: u32 = 0x00FF_FFFF;

/// Which purse a command names (P2 `01`/`02`). FMCOS 2.0 §8.7 note 2: the ED is EF `0001`, the EP
/// EF `0002`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurseKind {
    /// Electronic deposit (存折): PIN-protected.
    Ed,
    /// Electronic purse (钱包).
    Ep,
}

impl PurseKind {
    /// The purse P2 `01`/`02` names.
    pub const fn from_p2(p2: u8) -> Option<PurseKind> {
        match p2 {
            0x01 => Some(PurseKind::Ed),
            0x02 => Some(PurseKind::Ep),
            _ => None,
        }
    }

    /// The purse file's FID.
    pub const fn fid(self) -> u16 {
        match self {
            PurseKind::Ed => 0x0001,
            PurseKind::Ep => 0x0002,
        }
    }

    /// The transaction type of a load of this purse.
    pub const fn load_type(self) -> u8 {
        match self {
            PurseKind::Ed => TYPE_ED_LOAD,
            PurseKind::Ep => TYPE_EP_LOAD,
        }
    }

    /// The transaction type of a plain purchase from this purse.
    pub const fn purchase_type(self) -> u8 {
        match self {
            PurseKind::Ed => TYPE_ED_PURCHASE,
            PurseKind::Ep => TYPE_EP_PURCHASE,
        }
    }

    /// The purse a transaction type belongs to, for the types this card performs.
    pub const fn of_transaction_type(txn_type: u8) -> Option<PurseKind> {
        match txn_type {
            TYPE_ED_LOAD
            | TYPE_ED_PURCHASE
            | TYPE_ED_UNLOAD
            | TYPE_ED_CASH_WITHDRAW
            | TYPE_ED_OVERDRAFT => Some(PurseKind::Ed),
            TYPE_EP_LOAD | TYPE_EP_PURCHASE | TYPE_CAPP_PURCHASE => Some(PurseKind::Ep),
            _ => None,
        }
    }
}

/// Whether a transaction type uses the online counter (loads and unloads, FMCOS 2.0 §8.7, §8.10)
/// rather than the offline counter (purchases and cash withdrawals, §8.8, §8.11).
/// and overdraft-limit updates (§8.12.2: "电子存折联机交易序号加 1").
pub const fn uses_online_counter(txn_type: u8) -> bool {
    matches!(
        txn_type,
        TYPE_ED_LOAD | TYPE_EP_LOAD | TYPE_ED_UNLOAD | TYPE_ED_OVERDRAFT
    )
}

/// The last completed transaction of a purse, as GET TRANSACTION PROOF returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Its transaction type (`00`: no transaction yet).
    pub txn_type: u8,
    /// The MAC2 a load received or a purchase returned.
    pub mac: [u8; 4],
    /// Its TAC.
    pub tac: [u8; 4],
}

/// What a transaction changes: balance, counters, the last transaction's proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurseState {
    /// Balance in cents.
    pub balance: u32,
    /// Loads so far: the counter of the next load.
    pub online_counter: u16,
    /// Purchases so far: the counter of the next purchase.
    pub offline_counter: u16,
    /// The last completed transaction.
    pub last: Proof,
}

impl PurseState {
    /// The state as stored at [`offset::STATE`].
    pub fn encode(&self) -> [u8; STATE_LEN] {
        let [b0, b1, b2, b3] = self.balance.to_be_bytes();
        let [n0, n1] = self.online_counter.to_be_bytes();
        let [f0, f1] = self.offline_counter.to_be_bytes();
        let [m0, m1, m2, m3] = self.last.mac;
        let [t0, t1, t2, t3] = self.last.tac;
        [
            b0,
            b1,
            b2,
            b3,
            n0,
            n1,
            f0,
            f1,
            self.last.txn_type,
            m0,
            m1,
            m2,
            m3,
            t0,
            t1,
            t2,
            t3,
        ]
    }

    /// The counter of the last completed transaction: its kind's counter before it advanced.
    /// Every transaction advances exactly one counter, so nothing needs storing.
    pub fn last_counter(&self) -> Option<u16> {
        match self.last.txn_type {
            0 => None,
            t if uses_online_counter(t) => self.online_counter.checked_sub(1),
            _ => self.offline_counter.checked_sub(1),
        }
    }

    /// The proof of the transaction of `txn_type` with `counter`, if it is the last one completed
    /// (FMCOS 2.0 §8.13).
    pub fn proof_of(&self, txn_type: u8, counter: u16) -> Option<Proof> {
        (txn_type != 0 && self.last.txn_type == txn_type && self.last_counter() == Some(counter))
            .then_some(self.last)
    }
}

/// The whole purse body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    /// Loads that would take the holder's own money (balance − overdraft limit) above this are
    /// refused (`9401`).
    pub max_balance: u32,
    /// What transactions change.
    pub state: PurseState,
    /// The overdraft limit in cents (FMCOS 2.0 §8.12; ED only, `0` until UPDATE OVERDRAW LIMIT).
    /// The balance includes it: the balance is what may be spent, the holder's own money is
    /// `balance − overdraft_limit`, negative while overdrawn (apdu-specs/purse.md, "Overdraft").
    pub overdraft_limit: u32,
}

impl Body {
    /// The holder's own money: the balance less the overdraft limit (negative when overdrawn).
    pub fn funds(&self) -> i64 {
        i64::from(self.state.balance) - i64::from(self.overdraft_limit)
    }

    /// Decodes a stored body.
    pub fn decode(raw: &[u8; PURSE_BODY_LEN]) -> Body {
        let [x0, x1, x2, x3, b0, b1, b2, b3, n0, n1, f0, f1, ty, m0, m1, m2, m3, t0, t1, t2, t3, o0, o1, o2] =
            *raw;
        Body {
            overdraft_limit: u32::from_be_bytes([0, o0, o1, o2]),
            max_balance: u32::from_be_bytes([x0, x1, x2, x3]),
            state: PurseState {
                balance: u32::from_be_bytes([b0, b1, b2, b3]),
                online_counter: u16::from_be_bytes([n0, n1]),
                offline_counter: u16::from_be_bytes([f0, f1]),
                last: Proof {
                    txn_type: ty,
                    mac: [m0, m1, m2, m3],
                    tac: [t0, t1, t2, t3],
                },
            },
        }
    }
}

/// A transaction record of the purse's log (FMCOS 2.0 §8.7.2 table 8.6, appendix A-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The transaction's counter, before it advanced.
    pub counter: u16,
    /// Overdraft limit (3 bytes): the ED's limit after the transaction (FMCOS 2.0 tables 8.6, 8.30).
    pub overdraft_limit: u32,
    /// Amount in cents.
    pub amount: u32,
    /// Transaction type.
    pub txn_type: u8,
    /// Terminal id.
    pub terminal_id: [u8; 6],
    /// Host (load) or terminal (purchase) date and time.
    pub at: HostTime,
}

impl LogRecord {
    /// The 23 stored bytes.
    pub fn encode(&self) -> [u8; LOG_RECORD_LEN] {
        let [c0, c1] = self.counter.to_be_bytes();
        let [_, o0, o1, o2] = self.overdraft_limit.to_be_bytes();
        let [a0, a1, a2, a3] = self.amount.to_be_bytes();
        let [i0, i1, i2, i3, i4, i5] = self.terminal_id;
        let [d0, d1, d2, d3] = self.at.date;
        let [h0, h1, h2] = self.at.time;
        [
            c0,
            c1,
            o0,
            o1,
            o2,
            a0,
            a1,
            a2,
            a3,
            self.txn_type,
            i0,
            i1,
            i2,
            i3,
            i4,
            i5,
            d0,
            d1,
            d2,
            d3,
            h0,
            h1,
            h2,
        ]
    }

    /// Decodes a record read from the log.
    pub fn decode(raw: &[u8; LOG_RECORD_LEN]) -> LogRecord {
        let [c0, c1, o0, o1, o2, a0, a1, a2, a3, ty, i0, i1, i2, i3, i4, i5, d0, d1, d2, d3, h0, h1, h2] =
            *raw;
        LogRecord {
            counter: u16::from_be_bytes([c0, c1]),
            overdraft_limit: u32::from_be_bytes([0, o0, o1, o2]),
            amount: u32::from_be_bytes([a0, a1, a2, a3]),
            txn_type: ty,
            terminal_id: [i0, i1, i2, i3, i4, i5],
            at: HostTime {
                date: [d0, d1, d2, d3],
                time: [h0, h1, h2],
            },
        }
    }
}

/// What INITIALIZE (`80 50`, P1) starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `00`: a load (FMCOS 2.0 §8.7).
    Load,
    /// `01`: a purchase (§8.8).
    Purchase,
    /// `03`: a composite-application purchase (§8.9), EP only.
    CappPurchase,
    /// `02`: a cash withdrawal (§8.11), ED only: a purchase of type `04`.
    CashWithdraw,
    /// `05`: an unload (§8.10), ED only: the reverse of a load, under the unload key.
    Unload,
    /// `04`: an overdraft-limit update (§8.12), ED only: INITIALIZE FOR UPDATE, then UPDATE
    /// OVERDRAW LIMIT with the host's MAC2, under the overdraft key (`3C`).
    UpdateOverdraft,
}

impl Operation {
    /// Whether the operation uses the online counter and is completed by a CREDIT-style command
    /// with the host's MAC2 (load, unload), rather than a DEBIT with the terminal's MAC1.
    pub const fn is_online(self) -> bool {
        matches!(
            self,
            Operation::Load | Operation::Unload | Operation::UpdateOverdraft
        )
    }
}

/// The transaction INITIALIZE opened, kept in RAM until the command after it (apdu-specs/purse.md,
/// "The transaction state machine"). The balance and counters are not kept: no command can change
/// them between INITIALIZE and the CREDIT/DEBIT that reads them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// Load, purchase or composite purchase.
    pub operation: Operation,
    /// Which purse.
    pub purse: PurseKind,
    /// The DLK or DPK id (the key index).
    pub key_id: u8,
    /// The card's random of INITIALIZE.
    pub random: [u8; 4],
    /// The amount INITIALIZE named (`0` for an overdraft update, which names none).
    pub amount: u32,
    /// The terminal INITIALIZE named.
    pub terminal_id: [u8; 6],
}

impl Session {
    /// The transaction type (FMCOS 2.0 §8.13).
    pub const fn txn_type(&self) -> u8 {
        match self.operation {
            Operation::Load => self.purse.load_type(),
            Operation::Purchase => self.purse.purchase_type(),
            Operation::CappPurchase => TYPE_CAPP_PURCHASE,
            Operation::CashWithdraw => TYPE_ED_CASH_WITHDRAW,
            Operation::Unload => TYPE_ED_UNLOAD,
            Operation::UpdateOverdraft => TYPE_ED_OVERDRAFT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip_and_offsets() {
        let mut raw = [0u8; PURSE_BODY_LEN];
        raw[..4].copy_from_slice(&[0, 1, 0x86, 0xA0]);
        let state = PurseState {
            balance: 0x1C37,
            online_counter: 1,
            offline_counter: 0,
            last: Proof {
                txn_type: 2,
                mac: [0x06, 0x41, 0xDC, 0xD8],
                tac: [0xED, 0x0F, 0x87, 0x55],
            },
        };
        raw[offset::STATE..offset::STATE + STATE_LEN].copy_from_slice(&state.encode());
        raw[offset::OVERDRAFT_LIMIT..].copy_from_slice(&[0x00, 0x27, 0x10]);
        let body = Body::decode(&raw);
        assert_eq!(body.max_balance, 100_000);
        assert_eq!(body.state, state);
        assert_eq!(body.overdraft_limit, 10_000);
        assert_eq!(body.funds(), 0x1C37 - 10_000);
        assert_eq!(
            offset::OVERDRAFT_LIMIT + OVERDRAFT_LIMIT_LEN,
            PURSE_BODY_LEN
        );
        assert_eq!(offset::STATE + STATE_LEN, offset::OVERDRAFT_LIMIT);
        assert_eq!(state.last_counter(), Some(0));
        assert_eq!(state.proof_of(2, 0), Some(state.last));
        assert_eq!(state.proof_of(2, 1), None);
        assert_eq!(state.proof_of(6, 0), None);
    }

    #[test]
    fn no_proof_before_the_first_transaction() {
        let state = Body::decode(&[0; PURSE_BODY_LEN]).state;
        assert_eq!(state.last_counter(), None);
        assert_eq!(state.proof_of(0, 0), None);
        assert_eq!(state.proof_of(2, 0xFFFF), None);
    }

    #[test]
    fn purchase_proofs_use_the_offline_counter() {
        let state = PurseState {
            balance: 0,
            online_counter: 7,
            offline_counter: 0xFFFF,
            last: Proof {
                txn_type: TYPE_CAPP_PURCHASE,
                mac: [1; 4],
                tac: [2; 4],
            },
        };
        assert_eq!(state.proof_of(TYPE_CAPP_PURCHASE, 0xFFFE), Some(state.last));
        assert_eq!(state.proof_of(TYPE_CAPP_PURCHASE, 6), None);
    }

    #[test]
    fn log_record_layout() {
        let record = LogRecord {
            counter: 0x0102,
            overdraft_limit: 0,
            amount: 0x1C37,
            txn_type: TYPE_EP_LOAD,
            terminal_id: [0, 0, 1, 0, 0, 0x50],
            at: HostTime {
                date: [0x20, 0x14, 0x08, 0x25],
                time: [0x10, 0x31, 0x00],
            },
        };
        let raw = record.encode();
        assert_eq!(
            hex::encode_upper(raw),
            "0102 000000 00001C37 02 000001000050 20140825 103100".replace(' ', "")
        );
        assert_eq!(LogRecord::decode(&raw), record);
    }

    #[test]
    fn kinds_and_types() {
        assert_eq!(PurseKind::from_p2(1), Some(PurseKind::Ed));
        assert_eq!(PurseKind::from_p2(3), None);
        assert_eq!(PurseKind::of_transaction_type(9), Some(PurseKind::Ep));
        assert_eq!(PurseKind::of_transaction_type(5), Some(PurseKind::Ed));
        assert_eq!(PurseKind::of_transaction_type(3), Some(PurseKind::Ed));
        assert_eq!(PurseKind::of_transaction_type(4), Some(PurseKind::Ed));
        assert_eq!(PurseKind::of_transaction_type(7), Some(PurseKind::Ed));
        assert_eq!(PurseKind::of_transaction_type(8), None);
        assert!(uses_online_counter(3) && !uses_online_counter(4) && uses_online_counter(7));
        let session = Session {
            operation: Operation::CappPurchase,
            purse: PurseKind::Ep,
            key_id: 1,
            random: [0; 4],
            amount: 0,
            terminal_id: [0; 6],
        };
        assert_eq!(session.txn_type(), TYPE_CAPP_PURCHASE);
    }
}
