//! The issuer's keys.
//!
//! A [`KeyStore`] holds master keys and **never hands them out**: callers name a key of the key
//! set and pass the card's data ([`CardFactors`]); the store diversifies the key for that card and
//! returns only what goes to the card: WRITE KEY data, authentication cryptograms, MACs,
//! ciphertext, purse MACs, or a verdict on what the card answered. A hardware security module
//! can implement the same trait.
//!
//! [`KeySet`] is the software store, loaded from a TOML key-set file (format in
//! `apdu-specs/keys.md` §4): it is what development and tests use, and what `citizencard keys`
//! creates and shows. Its key bytes are wiped when it is dropped.
//!
//! All cryptography is `card_os::crypto`, the card's own implementation, so the host computes
//! exactly what the card checks.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`KeyStore`], [`KeyRef`], [`KeyInfo`], [`Diversification`], [`SecureMessaging`], [`WriteKey`] |
//! | [`factors`] | card data → diversification factors (purse serial; social-security L1/L2/L3) |
//! | [`record`] | the WRITE KEY key record layout |
//! | [`purse`] | INITIALIZE answers, purchase requests, the PSAM terminal counter |
//! | [`catalogue`] | the keys a card of this project needs |
//! | `file.rs` | [`KeySet`]: the TOML key-set file, validation, generation, 0600 writing |
//! | `soft.rs` | [`KeyStore`] for [`KeySet`] |
//! | `secret.rs` | key bytes wiped on drop, key check values |

pub mod catalogue;
mod error;
pub mod factors;
mod file;
pub mod purse;
pub mod record;
mod secret;
mod soft;

use std::fmt;

use card_os::crypto::{Algorithm, MAC_LEN};
use zeroize::Zeroizing;

pub use error::KeyError;
pub use factors::{CardFactors, FactorError, SocialSecurityFactors};
pub use file::{
    algorithm_name, permissions_warning, GenerateOptions, KeySet, KeySetError, Problem,
    FACTORY_TRANSPORT_KEY,
};
pub use purse::{
    HostTime, Load, LoadInit, Purchase, PurchaseInit, PurchaseMac1, PurchaseRequest,
    TerminalCounter,
};
pub use record::{KeyRecordLayout, RecordField};
pub use secret::{check_value, KCV_LEN};

/// How a key of the key set is turned into the key of one card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diversification {
    /// Not diversified: every card gets the key set's value (e.g. the transport key).
    None,
    /// PBOC, one level: the application serial number ([`CardFactors::application_serial`]).
    ApplicationSerial,
    /// Social security, three levels: province, city, card
    /// ([`CardFactors::social_security`]).
    SocialSecurity,
}

impl Diversification {
    /// The name used in key-set files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Diversification::None => "none",
            Diversification::ApplicationSerial => "application-serial",
            Diversification::SocialSecurity => "social-security",
        }
    }

    /// The rule a key-set file names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Diversification::None,
            Diversification::ApplicationSerial,
            Diversification::SocialSecurity,
        ]
        .into_iter()
        .find(|d| d.as_str() == name)
    }

    /// How many diversification levels the rule applies.
    pub const fn levels(self) -> usize {
        match self {
            Diversification::None => 0,
            Diversification::ApplicationSerial => 1,
            Diversification::SocialSecurity => 3,
        }
    }
}

impl fmt::Display for Diversification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key of the key set, for one card: its name and the card data its diversification may need.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    /// The key's name in the key set.
    pub name: &'a str,
    /// The card's data; ignored by keys that are not diversified.
    pub card: &'a CardFactors,
}

impl<'a> KeyRef<'a> {
    /// Key `name`, diversified for `card`.
    pub fn new(name: &'a str, card: &'a CardFactors) -> Self {
        KeyRef { name, card }
    }

    /// Key `name` without card data: for keys that are not diversified (a diversified key named
    /// this way gives [`KeyError::MissingFactor`]).
    pub fn plain(name: &'a str) -> Self {
        KeyRef {
            name,
            card: &CardFactors::NONE,
        }
    }
}

/// What may be known about a key of the key set by anyone: never its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// How it is diversified per card.
    pub diversification: Diversification,
    /// Its version (the key version byte of key records and purse answers).
    pub version: u8,
    /// The key check value of the master (undiversified) key.
    pub check_value: [u8; KCV_LEN],
    /// What the key is for, if the key set says.
    pub description: Option<String>,
}

/// Who a key set is, as its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetIdentity {
    /// The key set's id (e.g. `citizencard-dev-3des`).
    pub id: String,
    /// A description for people.
    pub description: String,
    /// `true` for public development key sets: cards issued with them have no security at all.
    pub development: bool,
}

/// Which line-protection convention a command uses (apdu-specs/crypto.md §2–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureMessaging<'a> {
    /// FMCOS 2.0 / PBOC: the key itself; the MAC's IV is the card's challenge right-padded with
    /// zeros; encryption pads `80 00…` only when `LD ‖ data` is not block-aligned.
    Fmcos {
        /// The card's last GET CHALLENGE answer (4 or 8 bytes; up to 16 for SM4/AES keys).
        challenge: &'a [u8],
    },
    /// LD/T 32 social security: a session key `E(K, challenge ‖ 00…)`; the MAC's IV is zero;
    /// encryption always pads.
    Ldt32 {
        /// The card's last GET CHALLENGE answer.
        challenge: &'a [u8],
    },
}

impl SecureMessaging<'_> {
    /// The card challenge.
    pub fn challenge(&self) -> &[u8] {
        match *self {
            SecureMessaging::Fmcos { challenge } | SecureMessaging::Ldt32 { challenge } => {
                challenge
            }
        }
    }
}

/// A key to load into a card with WRITE KEY (`80/84 D4 P1 P2`).
#[derive(Clone, Copy, Debug)]
pub struct WriteKey<'a> {
    /// `CLA INS P1 P2` of the command, e.g. `84 D4 01 00` to add a key, `84 D4 39 00` to replace
    /// the external-authentication key 00. The store computes `Lc`.
    pub header: [u8; 4],
    /// The key to write, diversified for the card.
    pub key: KeyRef<'a>,
    /// Its key record layout (from the profile).
    pub layout: &'a KeyRecordLayout,
}

/// The issuer's keys behind an interface that diversifies and computes but never returns a
/// master key. Keys are named as in the key set; [`KeyRef`] carries the card data for
/// diversification. See apdu-specs/keys.md.
///
/// Every verification returns `Err(KeyError::Verification { .. })` on a mismatch, so a failed
/// check cannot be ignored by accident.
pub trait KeyStore {
    /// The key set's identity.
    fn identity(&self) -> &KeySetIdentity;

    /// Whether this is a public development key set (the CLI warns before issuing with one).
    fn is_development(&self) -> bool {
        self.identity().development
    }

    /// Every key, without key bytes.
    fn keys(&self) -> Vec<KeyInfo>;

    /// Whether key `name` is the public FMCOS factory transport key (16 × `FF`). The default
    /// compares key check values; a store that holds the key compares the key itself.
    fn is_factory_transport_key(&self, name: &str) -> bool {
        self.key_info(name).is_ok_and(|i| {
            i.algorithm == Algorithm::TripleDes
                && i.check_value
                    == check_value(&card_os::crypto::Key::TripleDes(
                        file::FACTORY_TRANSPORT_KEY,
                    ))
        })
    }

    /// One key, without key bytes.
    fn key_info(&self, name: &str) -> Result<KeyInfo, KeyError>;

    /// The key check value of `key` diversified for its card (to compare with what the card or a
    /// personalization record says).
    fn card_key_check_value(&self, key: KeyRef<'_>) -> Result<[u8; KCV_LEN], KeyError>;

    /// The data field of a protected WRITE KEY: the key record of `request.key` (diversified for
    /// the card) as `LD ‖ record ‖ padding`, encrypted under `protect_with`, followed by the
    /// line-protection MAC over `header ‖ Lc ‖ ciphertext` (FMCOS 2.0 §7.12, card-specs TV-7).
    /// `protect_with` is the key the card holds for that slot or the DF's key-control key (itself
    /// diversified, or the transport key); `messaging` carries the card's challenge.
    fn write_key(
        &self,
        request: &WriteKey<'_>,
        protect_with: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
    ) -> Result<Vec<u8>, KeyError>;

    /// The data field of a WRITE KEY that is MAC'd but not encrypted: the key record in clear,
    /// then the MAC under `protect_with` (for a card whose master key has only the MAC bit, or a
    /// key written with type `80`|type). The key travels in clear: a store may refuse
    /// ([`KeyError::Unsupported`]).
    fn write_key_mac_only(
        &self,
        request: &WriteKey<'_>,
        protect_with: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// The data field of an unprotected WRITE KEY (`80 D4`): the key record in clear. Only for a
    /// DF that has no key yet to protect the first one with (apdu-specs/keys.md §6 writes the
    /// public transport key there, never a secret one). A store may refuse
    /// ([`KeyError::Unsupported`]).
    fn write_key_plain(&self, request: &WriteKey<'_>) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// FMCOS EXTERNAL AUTHENTICATE: `E(K, challenge ‖ 00…)`, one block (8 bytes for DES-family
    /// keys, 16 for SM4/AES).
    fn external_authenticate(&self, key: KeyRef<'_>, challenge: &[u8])
        -> Result<Vec<u8>, KeyError>;

    /// LD/T 32 EXTERNAL AUTHENTICATE: the authentication data
    /// `E(SK, original)` with `SK = session_key(K, card challenge)`; the command sends
    /// `auth ‖ original`. `original` is the terminal's 8-byte random ("original information").
    fn ldt32_external_authenticate(
        &self,
        key: KeyRef<'_>,
        card_challenge: &[u8],
        original: &[u8; 8],
    ) -> Result<[u8; 8], KeyError>;

    /// Checks an FMCOS INTERNAL AUTHENTICATE (P1 = `00`, encrypt) answer: `answer = E(K, data)`
    /// in ECB (`data` whole blocks).
    fn verify_internal_authenticate(
        &self,
        key: KeyRef<'_>,
        data: &[u8],
        answer: &[u8],
    ) -> Result<(), KeyError>;

    /// Checks an LD/T 32 INTERNAL AUTHENTICATE answer: the card's 8 bytes must equal
    /// `E(session_key(K, session_input), original)` (16-byte ciphers: folded to 8).
    fn verify_ldt32_internal_authenticate(
        &self,
        key: KeyRef<'_>,
        session_input: &[u8],
        original: &[u8; 8],
        answer: &[u8],
    ) -> Result<(), KeyError>;

    /// The line-protection MAC of a command: over `header ‖ Lc' ‖ data`, where `Lc'` =
    /// `data.len() + 4` counts the MAC. `data` is what the command carries before the MAC
    /// (ciphertext, if it is encrypted).
    fn line_mac(
        &self,
        key: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
        header: [u8; 4],
        data: &[u8],
    ) -> Result<[u8; MAC_LEN], KeyError>;

    /// Line encryption: `LD ‖ data ‖ padding` encrypted in ECB.
    fn line_encrypt(
        &self,
        key: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError>;

    /// The data field of a protected command: `data` (encrypted under `encrypt_with` when given)
    /// followed by the MAC under `mac_key`, both with the same challenge.
    fn protect_command(
        &self,
        mac_key: KeyRef<'_>,
        encrypt_with: Option<KeyRef<'_>>,
        messaging: SecureMessaging<'_>,
        header: [u8; 4],
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut out = match encrypt_with {
            Some(key) => self.line_encrypt(key, messaging, data)?,
            None => data.to_vec(),
        };
        let mac = self.line_mac(mac_key, messaging, header, &out)?;
        out.extend_from_slice(&mac);
        Ok(out)
    }

    /// Load host: checks the card's MAC1 from INITIALIZE FOR LOAD and returns MAC2 for CREDIT FOR
    /// LOAD. The session key comes from `dlk` diversified for the card; the card's key version
    /// and algorithm id must match the key set's.
    fn load_mac2(
        &self,
        dlk: KeyRef<'_>,
        init: &LoadInit,
        load: &Load,
        at: &HostTime,
    ) -> Result<[u8; MAC_LEN], KeyError>;

    /// Load host: checks the TAC that CREDIT FOR LOAD returned (new balance = old + amount).
    fn verify_load_tac(
        &self,
        dtk: KeyRef<'_>,
        init: &LoadInit,
        load: &Load,
        at: &HostTime,
        tac: &[u8],
    ) -> Result<(), KeyError>;

    /// PSAM: takes the next terminal transaction number and returns MAC1 for DEBIT FOR PURCHASE.
    fn purchase_mac1(
        &self,
        dpk: KeyRef<'_>,
        init: &PurchaseInit,
        request: &PurchaseRequest,
    ) -> Result<PurchaseMac1, KeyError>;

    /// PSAM: checks MAC2 from DEBIT FOR PURCHASE.
    fn verify_purchase_mac2(
        &self,
        dpk: KeyRef<'_>,
        init: &PurchaseInit,
        purchase: &Purchase,
        mac2: &[u8],
    ) -> Result<(), KeyError>;

    /// Checks the TAC from DEBIT FOR PURCHASE.
    fn verify_purchase_tac(
        &self,
        dtk: KeyRef<'_>,
        purchase: &Purchase,
        tac: &[u8],
    ) -> Result<(), KeyError>;
}

/// Whether a key set may personalize cards with its transport key `name`, checked before any
/// card is touched. A development set passes (it is public as a whole, and flagged). A real set
/// whose transport key is the public FMCOS factory default is refused — every key personalization
/// writes travels encrypted under the transport key, so a trace would show every card's keys —
/// unless `allow_default`, which gives the warning to print instead.
pub fn transport_key_policy(
    keys: &dyn KeyStore,
    name: &str,
    allow_default: bool,
) -> Result<Option<String>, KeySetError> {
    if keys.is_development() || !keys.is_factory_transport_key(name) {
        return Ok(None);
    }
    let id = keys.identity().id.clone();
    if allow_default {
        Ok(Some(format!(
            "WARNING: key set {id}: transport key {name} is the public FMCOS factory default \
             (16 x FF), accepted with --allow-default-transport-key: a trace of this \
             personalization shows every key written to the card"
        )))
    } else {
        Err(KeySetError::DefaultTransportKey { id })
    }
}
