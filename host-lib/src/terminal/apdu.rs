//! The command APDUs a purse terminal sends (apdu-specs/purse.md, files.md), built byte for byte.
//!
//! Every command that expects data carries its Le, so a card answers in one exchange over T=1
//! and over T=0 alike (no `61xx` round trip).

use card_os::crypto::purse::HostTime;

/// Which purse of the application (P2 of the purse commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurseKind {
    /// The electronic deposit (ED, file `0001`, PIN-protected): P2 `01`.
    Ed,
    /// The electronic purse (EP, file `0002`): P2 `02`.
    Ep,
}

impl PurseKind {
    /// P2 of INITIALIZE, GET BALANCE.
    pub const fn p2(self) -> u8 {
        match self {
            PurseKind::Ed => 0x01,
            PurseKind::Ep => 0x02,
        }
    }

    /// Transaction type byte of a load into this purse.
    pub const fn load_type(self) -> u8 {
        match self {
            PurseKind::Ed => card_os::crypto::purse::TYPE_ED_LOAD,
            PurseKind::Ep => card_os::crypto::purse::TYPE_EP_LOAD,
        }
    }

    /// Transaction type byte of a purchase from this purse.
    pub const fn purchase_type(self) -> u8 {
        match self {
            PurseKind::Ed => card_os::crypto::purse::TYPE_ED_PURCHASE,
            PurseKind::Ep => card_os::crypto::purse::TYPE_EP_PURCHASE,
        }
    }
}

/// SFI of the purse application's public data (`0015`).
pub const SFI_PUBLIC: u8 = 0x15;
/// SFI of the transaction log (`0018`).
pub const SFI_LOG: u8 = 0x18;

/// `00 A4 04 00 Lc name 00`: SELECT an application by its DF name, asking for the FCI.
pub fn select_by_name(name: &[u8]) -> Vec<u8> {
    let mut c = vec![0x00, 0xA4, 0x04, 0x00, name.len() as u8];
    c.extend_from_slice(name);
    c.push(0x00);
    c
}

/// `00 B0 (80|sfi) 00 00`: READ BINARY of a whole (≤ 256-byte) binary EF by its SFI.
pub fn read_binary_sfi(sfi: u8) -> [u8; 5] {
    [0x00, 0xB0, 0x80 | (sfi & 0x1F), 0x00, 0x00]
}

/// `00 B2 n (sfi<<3|4) 00`: READ RECORD number `n` of the record EF with this SFI.
pub fn read_record_sfi(sfi: u8, n: u8) -> [u8; 5] {
    [0x00, 0xB2, n, ((sfi & 0x1F) << 3) | 0x04, 0x00]
}

/// `80 5C 00 P2 04`: GET BALANCE.
pub fn get_balance(purse: PurseKind) -> [u8; 5] {
    [0x80, 0x5C, 0x00, purse.p2(), 0x04]
}

fn initialize(p1: u8, p2: u8, key_index: u8, amount: u32, terminal: &[u8; 6], le: u8) -> [u8; 17] {
    let mut c = [0u8; 17];
    c[..5].copy_from_slice(&[0x80, 0x50, p1, p2, 0x0B]);
    c[5] = key_index;
    c[6..10].copy_from_slice(&amount.to_be_bytes());
    c[10..16].copy_from_slice(terminal);
    c[16] = le;
    c
}

/// `80 50 00 P2 0B keyIndex amount terminal 10`: INITIALIZE FOR LOAD.
pub fn initialize_for_load(
    purse: PurseKind,
    key_index: u8,
    amount: u32,
    terminal: &[u8; 6],
) -> [u8; 17] {
    initialize(0x00, purse.p2(), key_index, amount, terminal, 0x10)
}

/// `80 50 01 P2 0B keyIndex amount terminal 0F`: INITIALIZE FOR PURCHASE.
pub fn initialize_for_purchase(
    purse: PurseKind,
    key_index: u8,
    amount: u32,
    terminal: &[u8; 6],
) -> [u8; 17] {
    initialize(0x01, purse.p2(), key_index, amount, terminal, 0x0F)
}

/// `80 50 03 02 0B keyIndex amount terminal 0F`: INITIALIZE FOR CAPP PURCHASE (EP only).
pub fn initialize_for_capp_purchase(key_index: u8, amount: u32, terminal: &[u8; 6]) -> [u8; 17] {
    initialize(0x03, PurseKind::Ep.p2(), key_index, amount, terminal, 0x0F)
}

/// `80 52 00 00 0B date time MAC2 04`: CREDIT FOR LOAD.
pub fn credit_for_load(at: &HostTime, mac2: &[u8; 4]) -> [u8; 17] {
    let mut c = [0u8; 17];
    c[..5].copy_from_slice(&[0x80, 0x52, 0x00, 0x00, 0x0B]);
    c[5..9].copy_from_slice(&at.date);
    c[9..12].copy_from_slice(&at.time);
    c[12..16].copy_from_slice(mac2);
    c[16] = 0x04;
    c
}

/// `80 54 01 00 0F terminalSeq date time MAC1 08`: DEBIT FOR (CAPP) PURCHASE, with the data field
/// of [`crate::keys::PurchaseMac1::debit_data`].
pub fn debit_for_purchase(data: &[u8; 15]) -> [u8; 21] {
    let mut c = [0u8; 21];
    c[..5].copy_from_slice(&[0x80, 0x54, 0x01, 0x00, 0x0F]);
    c[5..20].copy_from_slice(data);
    c[20] = 0x08;
    c
}

/// `80 5A 00 type 02 counter 08`: GET TRANSACTION PROOF of the transaction of this type whose
/// INITIALIZE returned `counter`.
pub fn get_transaction_proof(txn_type: u8, counter: u16) -> [u8; 8] {
    let [c0, c1] = counter.to_be_bytes();
    [0x80, 0x5A, 0x00, txn_type, 0x02, c0, c1, 0x08]
}

/// Which record of a composite-application file UPDATE CAPP DATA CACHE names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CappRecord {
    /// By record number (P2 mode `100`).
    Number(u8),
    /// The first record whose tag (first byte) is this (P2 mode `000`).
    Tag(u8),
}

/// A record a composite (CAPP) purchase writes with UPDATE CAPP DATA CACHE: the card caches it and
/// writes it with the DEBIT, in the same NVM transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CappUpdate {
    /// SFI of the record file (e.g. `17`).
    pub sfi: u8,
    /// The record.
    pub record: CappRecord,
    /// The whole new record.
    pub data: Vec<u8>,
}

impl CappUpdate {
    /// `80 DC P1 P2 Lc record`: UPDATE CAPP DATA CACHE.
    pub fn command(&self) -> Vec<u8> {
        let (p1, mode) = match self.record {
            CappRecord::Number(n) => (n, 0b100),
            CappRecord::Tag(t) => (t, 0b000),
        };
        let mut c = vec![
            0x80,
            0xDC,
            p1,
            ((self.sfi & 0x1F) << 3) | mode,
            self.data.len() as u8,
        ];
        c.extend_from_slice(&self.data);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(b: &[u8]) -> String {
        hex::encode_upper(b)
    }

    #[test]
    fn commands_match_purse_md() {
        // The worked example of apdu-specs/purse.md (card-specs TV-4, TV-5).
        assert_eq!(
            hx(&initialize_for_load(
                PurseKind::Ep,
                1,
                0x1C37,
                &[0, 0, 1, 0, 0, 0x50]
            )),
            "805000020B0100001C3700000100005010"
        );
        let at = HostTime {
            date: [0x20, 0x14, 0x08, 0x25],
            time: [0x10, 0x31, 0x00],
        };
        assert_eq!(
            hx(&credit_for_load(&at, &[0x06, 0x41, 0xDC, 0xD8])),
            "805200000B201408251031000641DCD804"
        );
        assert_eq!(
            hx(&initialize_for_capp_purchase(
                1,
                0x1C37,
                &[0, 0, 0, 0, 0, 1]
            )),
            "805003020B0100001C370000000000010F"
        );
        assert_eq!(
            hx(&initialize_for_purchase(PurseKind::Ed, 2, 5, &[0xAB; 6])),
            "805001010B0200000005ABABABABABAB0F"
        );
        let data: [u8; 15] = hex::decode("0000000120110919204812CD573164")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hx(&debit_for_purchase(&data)),
            "805401000F0000000120110919204812CD57316408"
        );
        assert_eq!(hx(&get_balance(PurseKind::Ep)), "805C000204");
        assert_eq!(hx(&get_transaction_proof(0x09, 0)), "805A000902000008");
        assert_eq!(hx(&get_transaction_proof(0x02, 0x1234)), "805A000202123408");
        assert_eq!(hx(&read_binary_sfi(SFI_PUBLIC)), "00B0950000");
        assert_eq!(hx(&read_record_sfi(SFI_LOG, 1)), "00B201C400");
        assert_eq!(hx(&read_record_sfi(SFI_LOG, 10)), "00B20AC400");
        assert_eq!(
            hx(&select_by_name(&[0xA0, 0, 0, 0, 3, 0x86, 0x98, 0x07, 0x01])),
            "00A4040009A0000000038698070100"
        );
        let capp = CappUpdate {
            sfi: 0x17,
            record: CappRecord::Tag(0x02),
            data: vec![0x02, 0x01, 0xFF],
        };
        assert_eq!(hx(&capp.command()), "80DC02B8030201FF");
        let by_number = CappUpdate {
            record: CappRecord::Number(2),
            ..capp
        };
        assert_eq!(hx(&by_number.command()), "80DC02BC030201FF");
        assert_eq!(
            (PurseKind::Ep.load_type(), PurseKind::Ep.purchase_type()),
            (2, 6)
        );
        assert_eq!(
            (PurseKind::Ed.load_type(), PurseKind::Ed.purchase_type()),
            (1, 5)
        );
    }
}
