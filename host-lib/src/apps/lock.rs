//! APPLICATION BLOCK and APPLICATION UNBLOCK (apdu-specs/security.md, "Life cycle"): the current
//! DF is blocked until unblocked (`84 1E 00 00`), blocked for good (`84 1E 00 01`), or unblocked
//! (`84 18 00 00`). Each carries the line-protection MAC of the DF's `36 00` key over the
//! command header, with the card's fresh challenge as IV (FMCOS convention).

use card_os::apdu::{split_response, Sw};

use super::AppError;
use crate::keys::{KeyRef, KeyStore, SecureMessaging};
use crate::transport::Transport;

/// What to do to the current DF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// APPLICATION BLOCK, P2 `00`: until APPLICATION UNBLOCK.
    Temporary,
    /// APPLICATION BLOCK, P2 `01`: for good.
    Permanent,
    /// APPLICATION UNBLOCK.
    Unblock,
}

impl Lock {
    /// `CLA INS P1 P2`.
    pub fn header(self) -> [u8; 4] {
        match self {
            Lock::Temporary => [0x84, 0x1E, 0x00, 0x00],
            Lock::Permanent => [0x84, 0x1E, 0x00, 0x01],
            Lock::Unblock => [0x84, 0x18, 0x00, 0x00],
        }
    }

    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Lock::Temporary | Lock::Permanent => "APPLICATION BLOCK",
            Lock::Unblock => "APPLICATION UNBLOCK",
        }
    }
}

/// Sends one APDU; returns the data and the status word.
pub(crate) fn exchange(
    transport: &mut dyn Transport,
    command: &[u8],
) -> Result<(Vec<u8>, Sw), AppError> {
    let response = transport.transmit(command)?;
    let (data, sw) = split_response(&response).ok_or_else(|| AppError::Card {
        command: "a command",
        sw: Sw(0),
        detail: "an answer without a status word".into(),
    })?;
    Ok((data.to_vec(), sw))
}

/// Sends `lock` to the current DF, MAC'd with `key` (the DF's line-protection key `36 00`,
/// diversified for the card). Two APDUs: GET CHALLENGE, then the command.
pub fn lock_current_df(
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    key: KeyRef<'_>,
    lock: Lock,
) -> Result<(), AppError> {
    let (challenge, sw) = exchange(transport, &[0x00, 0x84, 0x00, 0x00, 0x04])?;
    if sw != Sw::SUCCESS || challenge.len() != 4 {
        return Err(AppError::card("GET CHALLENGE", sw));
    }
    let header = lock.header();
    let mac = keys
        .line_mac(
            key,
            SecureMessaging::Fmcos {
                challenge: &challenge,
            },
            header,
            &[],
        )
        .map_err(AppError::Keys)?;
    let mut command = header.to_vec();
    command.push(mac.len() as u8);
    command.extend_from_slice(&mac);
    let (_, sw) = exchange(transport, &command)?;
    match sw {
        Sw::SUCCESS => Ok(()),
        Sw::SM_DATA_INCORRECT => Err(AppError::WrongKey(format!(
            "the card refused the MAC of {} (6988): the key set's {} is not this card's",
            lock.name(),
            key.name
        ))),
        Sw::APP_PERMANENTLY_LOCKED => Err(AppError::PermanentlyBlocked),
        sw => Err(AppError::card(lock.name(), sw)),
    }
}
