//! Errors of key-store operations.

use card_os::crypto::CryptoError;

use super::Diversification;

/// Why a key store refused or failed an operation. Messages name the key and what is wrong; none
/// contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key set has no key of that name.
    #[error("key set {set} has no key named {name:?}")]
    UnknownKey {
        /// The key set's id.
        set: String,
        /// The name asked for.
        name: String,
    },
    /// The key is diversified and the card data it needs was not given.
    #[error("key {key} is diversified by {rule} and needs {needs}, which was not given")]
    MissingFactor {
        /// The key's name.
        key: String,
        /// Its diversification rule.
        rule: Diversification,
        /// What is missing.
        needs: &'static str,
    },
    /// An input has the wrong length or value (a challenge, a response, an amount…).
    #[error("{0}")]
    Input(String),
    /// The card's cryptography refused the operation with this key.
    #[error("key {key}: {operation}: {problem}")]
    Crypto {
        /// The key's name.
        key: String,
        /// What was being computed.
        operation: &'static str,
        /// Why it failed.
        problem: String,
    },
    /// A MAC, TAC or cryptogram from the card does not match.
    #[error("{what} does not verify under key {key}")]
    Verification {
        /// What was checked (e.g. "MAC1", "TAC", "INTERNAL AUTHENTICATE answer").
        what: &'static str,
        /// The key's name.
        key: String,
    },
    /// The card announced another key version than the key set holds.
    #[error("the card uses version {card:02X} of key {key}, the key set holds version {ours:02X}")]
    KeyVersion {
        /// The key's name.
        key: String,
        /// The version in the card's answer.
        card: u8,
        /// The version in the key set.
        ours: u8,
    },
    /// The card announced an algorithm id that does not fit the key set's key.
    #[error(
        "the card announces algorithm id {card:02X} for key {key}, the key set holds a {ours} key"
    )]
    AlgorithmId {
        /// The key's name.
        key: String,
        /// The id in the card's answer.
        card: u8,
        /// The key set's algorithm, by name.
        ours: &'static str,
    },
    /// The PSAM's terminal transaction counter could not be advanced.
    #[error("terminal transaction counter: {0}")]
    TerminalCounter(String),
    /// This key store does not perform the operation (e.g. an HSM that never exports a key in
    /// clear).
    #[error("{operation} is not available from this key store: {reason}")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// Why not.
        reason: String,
    },
}

impl KeyError {
    pub(crate) fn crypto(key: &str, operation: &'static str, error: CryptoError) -> Self {
        let problem = match error {
            CryptoError::UnsupportedAlgorithm => "the algorithm is not supported",
            CryptoError::InvalidKeyLength => "the key length does not fit the algorithm",
            CryptoError::InvalidLength => "an input has a length the operation does not take",
            CryptoError::BufferTooSmall => "the output does not fit",
            CryptoError::BadPadding => "the decrypted data has a wrong length byte or padding",
            CryptoError::WrongKeyType => "the key's algorithm cannot be used for this",
        };
        KeyError::Crypto {
            key: key.to_owned(),
            operation,
            problem: problem.to_owned(),
        }
    }
}
