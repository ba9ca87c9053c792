//! PBOC electronic deposit / electronic purse (ED/EP) cryptography: the load and purchase session
//! keys, MAC1, MAC2 and the TAC (FMCOS 2.0 ch. 8, card-specs §3.2; verified against a real card's
//! log, card-specs TV-4/TV-5).
//!
//! With DES-family purse keys (`DLK`, `DPK`, `DTK` are 16-byte 3DES keys) everything is the public
//! PBOC scheme: 8-byte session keys and single-DES MACs with IV 0, and the TAC key
//! `DTK' = DTK_L ⊕ DTK_R`.
//!
//! With SM4 or AES-128 purse keys the public specs are silent (card-specs §8 item 3). **Our
//! variant**, written down in `apdu-specs/crypto.md`, applies the LD/T 32 rules for 16-byte-block
//! ciphers to the same fields:
//!
//! * session key = `E(K, input8 ‖ 00×8)`, a 16-byte key of the same algorithm ([`session_key`]);
//! * MAC = [`Mac::session`]: SM4 CBC-MAC with IV 0 folded by XOR, or AES-CMAC, both 4 bytes;
//! * TAC key = `DTK` itself (as LD/T 32 part 7 §15 does for 16-byte blocks).
//!
//! Amounts and balances are 4-byte big-endian cents; counters 2-byte big-endian. Every MAC here
//! leaves the APDU header out (card-specs §5).

use super::algorithm::Key;
use super::cipher::{BlockCipher, CipherKey};
use super::mac::{Mac, MacIv, MAC_LEN};
use super::session::session_key;
use super::CryptoError;

/// Transaction type byte of an ED load (FMCOS 2.0 §8.13).
pub const TYPE_ED_LOAD: u8 = 0x01;
/// Transaction type byte of an EP load.
pub const TYPE_EP_LOAD: u8 = 0x02;
/// Transaction type byte of an ED unload (FMCOS 2.0 §8.10).
pub const TYPE_ED_UNLOAD: u8 = 0x03;
/// Transaction type byte of an ED cash withdrawal (FMCOS 2.0 §8.11).
pub const TYPE_ED_CASH_WITHDRAW: u8 = 0x04;
/// Transaction type byte of an ED purchase.
pub const TYPE_ED_PURCHASE: u8 = 0x05;
/// Transaction type byte of an EP purchase.
pub const TYPE_EP_PURCHASE: u8 = 0x06;
/// Transaction type byte of an ED overdraft-limit update (FMCOS 2.0 §8.12.1.4).
pub const TYPE_ED_OVERDRAFT: u8 = 0x07;
/// Transaction type byte of a composite-application (CAPP) purchase.
pub const TYPE_CAPP_PURCHASE: u8 = 0x09;

/// Host date and time as sent in CREDIT FOR LOAD / DEBIT FOR PURCHASE: `YYYYMMDD` and `hhmmss`
/// in BCD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTime {
    /// `YYYYMMDD`, 4 bytes BCD.
    pub date: [u8; 4],
    /// `hhmmss`, 3 bytes BCD.
    pub time: [u8; 3],
}

/// The fields of a load (or an unload) that its MACs cover (INITIALIZE FOR LOAD / UNLOAD data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Amount to load, in cents.
    pub amount: u32,
    /// Transaction type: [`TYPE_ED_LOAD`], [`TYPE_EP_LOAD`] or [`TYPE_ED_UNLOAD`].
    pub txn_type: u8,
    /// Terminal id, 6 bytes.
    pub terminal_id: [u8; 6],
}

/// The fields of a purchase that its MACs cover (INITIALIZE FOR PURCHASE and DEBIT FOR PURCHASE
/// data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// Amount to pay, in cents.
    pub amount: u32,
    /// Transaction type: [`TYPE_ED_PURCHASE`], [`TYPE_EP_PURCHASE`], [`TYPE_CAPP_PURCHASE`] or
    /// [`TYPE_ED_CASH_WITHDRAW`].
    pub txn_type: u8,
    /// Terminal id, 6 bytes.
    pub terminal_id: [u8; 6],
    /// Terminal transaction sequence number, 4 bytes.
    pub terminal_seq: [u8; 4],
    /// Host date and time from DEBIT FOR PURCHASE.
    pub at: HostTime,
}

/// The load session key `SESLK = 3DES(DLK, random4 ‖ onlineCounter2 ‖ 80 00)` (card-specs §3.2).
/// With SM4/AES keys: `E(DLK, random4 ‖ onlineCounter2 ‖ 80 00 ‖ 00×8)` (ours).
pub fn load_session_key(
    dlk: &Key,
    random: &[u8; 4],
    online_counter: u16,
) -> Result<Key, CryptoError> {
    let [r0, r1, r2, r3] = *random;
    let [c0, c1] = online_counter.to_be_bytes();
    session_key(dlk, &[r0, r1, r2, r3, c0, c1, 0x80, 0x00])
}

/// The purchase session key `SESPK = 3DES(DPK, random4 ‖ offlineCounter2 ‖ terminalSeq[2..4])`,
/// the rightmost two bytes of the terminal sequence number (card-specs §3.2). With SM4/AES keys the
/// same 8 bytes followed by `00×8` (ours).
pub fn purchase_session_key(
    dpk: &Key,
    random: &[u8; 4],
    offline_counter: u16,
    terminal_seq: &[u8; 4],
) -> Result<Key, CryptoError> {
    let [r0, r1, r2, r3] = *random;
    let [c0, c1] = offline_counter.to_be_bytes();
    let [_, _, s2, s3] = *terminal_seq;
    session_key(dpk, &[r0, r1, r2, r3, c0, c1, s2, s3])
}

/// The TAC key: `DTK' = DTK_L ⊕ DTK_R` for a 3DES DTK (card-specs §3.2); a single-DES DTK is used
/// as it is (ours: it has no halves); an SM4/AES DTK is used directly (LD/T 32 part 7 §15 for
/// 16-byte blocks; ours for the PBOC purse).
pub fn tac_key(dtk: &Key) -> Key {
    match dtk.halves_xor() {
        Ok(folded) => folded,
        Err(_) => dtk.clone(),
    }
}

/// Load MAC1 (returned by INITIALIZE FOR LOAD):
/// `MAC(SESLK, oldBalance4 ‖ amount4 ‖ type1 ‖ terminalId6)`.
pub fn load_mac1(
    seslk: &impl CipherKey,
    old_balance: u32,
    load: &Load,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        seslk,
        &[
            &old_balance.to_be_bytes(),
            &load.amount.to_be_bytes(),
            &[load.txn_type],
            &load.terminal_id,
        ],
    )
}

/// Load MAC2 (checked in CREDIT FOR LOAD):
/// `MAC(SESLK, amount4 ‖ type1 ‖ terminalId6 ‖ date4 ‖ time3)`.
pub fn load_mac2(
    seslk: &impl CipherKey,
    load: &Load,
    at: &HostTime,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        seslk,
        &[
            &load.amount.to_be_bytes(),
            &[load.txn_type],
            &load.terminal_id,
            &at.date,
            &at.time,
        ],
    )
}

/// Load TAC (returned by CREDIT FOR LOAD), under [`tac_key`]:
/// `MAC(DTK', newBalance4 ‖ onlineCounter2 ‖ amount4 ‖ type1 ‖ terminalId6 ‖ date4 ‖ time3)`, with
/// the online counter before its increment.
pub fn load_tac(
    tac_key: &impl CipherKey,
    new_balance: u32,
    online_counter: u16,
    load: &Load,
    at: &HostTime,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        tac_key,
        &[
            &new_balance.to_be_bytes(),
            &online_counter.to_be_bytes(),
            &load.amount.to_be_bytes(),
            &[load.txn_type],
            &load.terminal_id,
            &at.date,
            &at.time,
        ],
    )
}

/// Unload MAC3 (returned by CREDIT FOR UNLOAD, FMCOS 2.0 §8.10.2.4): the fields of the load TAC,
/// `MAC(SESULK, newBalance4 ‖ onlineCounter2 ‖ amount4 ‖ type1 ‖ terminalId6 ‖ date4 ‖ time3)`, but
/// under the unload **session key** (an unload has no TAC). MAC1 and MAC2 of an unload are
/// [`load_mac1`] and [`load_mac2`] with the unload session key and type `03`.
pub fn unload_mac3(
    sesulk: &impl CipherKey,
    new_balance: u32,
    online_counter: u16,
    unload: &Load,
    at: &HostTime,
) -> Result<[u8; MAC_LEN], CryptoError> {
    load_tac(sesulk, new_balance, online_counter, unload, at)
}

/// The 3 bytes of an overdraft limit (its low 24 bits; limits are at most `FFFFFF`).
fn limit3(limit: u32) -> [u8; 3] {
    let [_, l0, l1, l2] = limit.to_be_bytes();
    [l0, l1, l2]
}

/// Overdraft-update MAC1 (returned by INITIALIZE FOR UPDATE, FMCOS 2.0 §8.12.1.4):
/// `MAC(SESK, balance4 ‖ oldLimit3 ‖ 07 ‖ terminalId6)`. The session key is
/// [`load_session_key`] with the overdraft key (`3C`): `random4 ‖ onlineCounter2 ‖ 80 00`.
pub fn overdraft_mac1(
    sesk: &impl CipherKey,
    balance: u32,
    old_limit: u32,
    terminal_id: &[u8; 6],
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        sesk,
        &[
            &balance.to_be_bytes(),
            &limit3(old_limit),
            &[TYPE_ED_OVERDRAFT],
            terminal_id,
        ],
    )
}

/// Overdraft-update MAC2 (checked in UPDATE OVERDRAW LIMIT, FMCOS 2.0 §8.12.2.3):
/// `MAC(SESK, newLimit3 ‖ 07 ‖ terminalId6 ‖ date4 ‖ time3)`.
pub fn overdraft_mac2(
    sesk: &impl CipherKey,
    new_limit: u32,
    terminal_id: &[u8; 6],
    at: &HostTime,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        sesk,
        &[
            &limit3(new_limit),
            &[TYPE_ED_OVERDRAFT],
            terminal_id,
            &at.date,
            &at.time,
        ],
    )
}

/// Overdraft-update TAC (returned by UPDATE OVERDRAW LIMIT, FMCOS 2.0 §8.12.2.4):
/// `MAC(DTK, newBalance4 ‖ onlineCounter2 ‖ newLimit3 ‖ 07 ‖ terminalId6 ‖ date4 ‖ time3)`, the
/// online counter before its increment. Unlike every other TAC it is computed with DTK
/// **itself** ("用内部密钥DTK 直接"), not with `DTK_L ⊕ DTK_R`: for a 3DES DTK that is the 16-byte
/// key's MAC, ISO/IEC 9797-1 algorithm 3 (the FMCOS MAC of 16-byte keys, §11.3); for DES, SM4 and
/// AES DTKs it is the same as [`tac_key`]'s.
pub fn overdraft_tac(
    dtk: &impl CipherKey,
    new_balance: u32,
    online_counter: u16,
    new_limit: u32,
    terminal_id: &[u8; 6],
    at: &HostTime,
) -> Result<[u8; MAC_LEN], CryptoError> {
    Mac::compute(
        dtk,
        MacIv::Zero,
        &[
            &new_balance.to_be_bytes(),
            &online_counter.to_be_bytes(),
            &limit3(new_limit),
            &[TYPE_ED_OVERDRAFT],
            terminal_id,
            &at.date,
            &at.time,
        ],
    )
}

/// Purchase MAC1 (checked in DEBIT FOR PURCHASE):
/// `MAC(SESPK, amount4 ‖ type1 ‖ terminalId6 ‖ date4 ‖ time3)`.
pub fn purchase_mac1(
    sespk: &impl CipherKey,
    purchase: &Purchase,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        sespk,
        &[
            &purchase.amount.to_be_bytes(),
            &[purchase.txn_type],
            &purchase.terminal_id,
            &purchase.at.date,
            &purchase.at.time,
        ],
    )
}

/// Purchase MAC2 (returned by DEBIT FOR PURCHASE): `MAC(SESPK, amount4)`.
pub fn purchase_mac2(sespk: &impl CipherKey, amount: u32) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(sespk, &[&amount.to_be_bytes()])
}

/// Purchase TAC (returned by DEBIT FOR PURCHASE), under [`tac_key`]:
/// `MAC(DTK', amount4 ‖ type1 ‖ terminalId6 ‖ terminalSeq4 ‖ date4 ‖ time3)`.
pub fn purchase_tac(
    tac_key: &impl CipherKey,
    purchase: &Purchase,
) -> Result<[u8; MAC_LEN], CryptoError> {
    session_mac(
        tac_key,
        &[
            &purchase.amount.to_be_bytes(),
            &[purchase.txn_type],
            &purchase.terminal_id,
            &purchase.terminal_seq,
            &purchase.at.date,
            &purchase.at.time,
        ],
    )
}

/// `MAC(key, parts…)` with a zero IV ([`Mac::session`]), under a key or a schedule built before.
fn session_mac(key: &impl CipherKey, parts: &[&[u8]]) -> Result<[u8; MAC_LEN], CryptoError> {
    key.with_cipher(|cipher| session_mac_under(cipher, parts))
}

fn session_mac_under(cipher: &BlockCipher, parts: &[&[u8]]) -> Result<[u8; MAC_LEN], CryptoError> {
    let mut mac = Mac::session(cipher)?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    fn key16(text: &str) -> [u8; 16] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    // card-specs TV-4: a real EP load on a 华大智宝 card (Changsha metro logs).
    #[test]
    fn pboc_load_tv4() {
        let dlk = Key::TripleDes(key16("374598B5C0B0EAE1E1D06609AC5BB369"));
        let dtk = Key::TripleDes(key16("CAA6025290114BFCC3C9043F70F7A07A"));
        let load = Load {
            amount: 0x1C37,
            txn_type: TYPE_EP_LOAD,
            terminal_id: [0, 0, 1, 0, 0, 0x50],
        };
        let at = HostTime {
            date: [0x20, 0x14, 0x08, 0x25],
            time: [0x10, 0x31, 0x00],
        };
        let seslk = load_session_key(&dlk, &[0xCD, 0xEF, 0x4F, 0x20], 0).unwrap();
        assert_eq!(seslk.as_bytes(), hex::decode("3C05F429713D0188").unwrap());
        assert_eq!(
            load_mac1(&seslk, 0, &load).unwrap(),
            [0x06, 0xB1, 0xBE, 0xF5]
        );
        assert_eq!(
            load_mac2(&seslk, &load, &at).unwrap(),
            [0x06, 0x41, 0xDC, 0xD8]
        );
        let dtk_prime = tac_key(&dtk);
        assert_eq!(
            dtk_prime.as_bytes(),
            hex::decode("096F066DE0E6EB86").unwrap()
        );
        assert_eq!(
            load_tac(&dtk_prime, 0x1C37, 0, &load, &at).unwrap(),
            [0xED, 0x0F, 0x87, 0x55]
        );
    }

    #[test]
    fn tac_key_per_algorithm() {
        assert_eq!(tac_key(&Key::Des([7; 8])), Key::Des([7; 8]));
        assert_eq!(tac_key(&Key::Sm4([7; 16])), Key::Sm4([7; 16]));
        assert_eq!(tac_key(&Key::Aes128([7; 16])), Key::Aes128([7; 16]));
        assert_eq!(
            tac_key(&Key::TripleDes([7; 16])).algorithm(),
            Algorithm::Des
        );
    }

    #[test]
    fn purse_macs_refuse_3des_session_keys() {
        let wrong = Key::TripleDes([1; 16]);
        assert_eq!(purchase_mac2(&wrong, 1), Err(CryptoError::WrongKeyType));
    }

    #[test]
    fn sixteen_byte_purse_keys_give_sixteen_byte_session_keys() {
        for dpk in [Key::Sm4([3; 16]), Key::Aes128([4; 16])] {
            let sespk = purchase_session_key(&dpk, &[1, 2, 3, 4], 7, &[0, 0, 0, 9]).unwrap();
            assert_eq!(sespk.algorithm(), dpk.algorithm());
            assert_eq!(sespk.as_bytes().len(), 16);
        }
    }
}
