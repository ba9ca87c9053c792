//! GET CHALLENGE, EXTERNAL AUTHENTICATE and INTERNAL AUTHENTICATE (FMCOS 2.0 §7.1–7.3; LD/T 32
//! part 5 and part 7 §5.4–6.6).

use super::command::{AuthProof, KeyOperation};
use super::context::Ctx;
use super::Response;
use crate::apdu::Sw;
use crate::crypto::{
    authentication_data, challenge_cryptogram, ct_eq, session_key, BlockCipher, Mac, MacIv,
};
use crate::nvm::Nvm;
use crate::security::keys::{self, KeyType};
use crate::security::Challenge;

/// GET CHALLENGE: `len` random bytes, which the next command (only) may use.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn get_challenge<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    len: usize,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let challenge = Challenge::draw(ctx.rng, len).ok_or(Sw::WRONG_LENGTH)?;
    response.push(challenge.as_slice())?;
    ctx.ram.challenge = Some(challenge);
    Ok(())
}

/// EXTERNAL AUTHENTICATE with the `39` key `key_id`: the try is spent (and committed) before the
/// proof is compared; success sets the key's follow-on state and gives the tries back.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn external_authenticate<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    key_id: u8,
    proof: AuthProof<'_>,
) -> Result<(), Sw> {
    let entry = ctx.usable_key(KeyType::ExternalAuth, key_id)?;
    let key = ctx.load_key(&entry)?;
    let challenge = ctx.challenge()?;
    // What the terminal must have sent, computed before a try is spent so that a command the key
    // cannot answer (a challenge longer than its block) costs nothing.
    let (expected, received): ([u8; 16], &[u8]) = match &proof {
        // FMCOS 2.0 §7.1: E(K, challenge ‖ 00…), 8 bytes: DES-family keys only.
        AuthProof::Cryptogram(cryptogram) => {
            if key.block_size() != cryptogram.len() {
                return Err(Sw::WRONG_LENGTH);
            }
            let block = challenge_cryptogram(&key, challenge.as_slice())
                .map_err(|_| Sw::REFERENCE_DATA_INVALID)?;
            let mut expected = [0u8; 16];
            for (e, b) in expected.iter_mut().zip(block.as_slice()) {
                *e = *b;
            }
            (expected, cryptogram)
        }
        // LD/T 32 part 7 §6.5: the session key comes from the card's challenge.
        AuthProof::Session { auth, original } => {
            let sk =
                session_key(&key, challenge.as_slice()).map_err(|_| Sw::REFERENCE_DATA_INVALID)?;
            let mut expected = [0u8; 16];
            for (e, b) in expected.iter_mut().zip(authentication_data(&sk, original)) {
                *e = b;
            }
            (expected, auth)
        }
    };
    let expected = expected.get(..received.len()).ok_or(Sw::WRONG_LENGTH)?;
    let spent = ctx.spend_try(&entry)?;
    if !ct_eq(expected, received) {
        return Err(Ctx::<N>::failed_try(spent));
    }
    ctx.restore_tries(&entry, spent)?;
    ctx.raise_security(entry.follow_on_state());
    Ok(())
}

/// INTERNAL AUTHENTICATE: FMCOS 2.0 §7.3 (encrypt with a `30` key, decrypt with `31`, MAC with
/// `32`), or, for `P1 00` with 16 bytes of data and a `34` key of that id, LD/T 32 part 7 §5.4
/// authentication data (`sessionInput8 ‖ original8`, optionally followed by the key version).
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn internal_authenticate<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    operation: KeyOperation,
    key_id: u8,
    data: &[u8],
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    if operation == KeyOperation::Encrypt {
        if let [s0, s1, s2, s3, s4, s5, s6, s7, o0, o1, o2, o3, o4, o5, o6, o7, version @ ..] = data
        {
            let key_file = ctx.key_file()?;
            if let Some(entry) = keys::find(ctx.storage, &key_file, KeyType::Internal, key_id)? {
                if version.len() <= 1 {
                    if version.iter().any(|&v| v != entry.version()) {
                        return Err(Sw::REFERENCED_DATA_NOT_FOUND);
                    }
                    ctx.require(entry.use_right())?;
                    let key = ctx.load_key(&entry)?;
                    let sk = session_key(&key, &[*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7])
                        .map_err(|_| Sw::WRONG_DATA)?;
                    let original = [*o0, *o1, *o2, *o3, *o4, *o5, *o6, *o7];
                    return response.push(&authentication_data(&sk, &original));
                }
            }
        }
    }
    let key_type = match operation {
        KeyOperation::Encrypt => KeyType::DesEncrypt,
        KeyOperation::Decrypt => KeyType::DesDecrypt,
        KeyOperation::Mac => KeyType::DesMac,
    };
    let entry = ctx.usable_key(key_type, key_id)?;
    let key = ctx.load_key(&entry)?;
    match operation {
        KeyOperation::Mac => {
            let mac = Mac::compute(&key, MacIv::Zero, &[data]).map_err(|_| Sw::WRONG_DATA)?;
            response.push(&mac)
        }
        KeyOperation::Encrypt | KeyOperation::Decrypt => {
            let block = key.block_size();
            // FMCOS 2.0 §5.4: data that is not whole blocks is padded with 80 00… to encrypt.
            let len = if operation == KeyOperation::Encrypt && !data.len().is_multiple_of(block) {
                (data.len() + 1).div_ceil(block) * block
            } else {
                data.len()
            };
            if !len.is_multiple_of(block) {
                return Err(Sw::WRONG_LENGTH);
            }
            let out = response.extend(len)?;
            let (copied, pad) = out.split_at_mut(data.len());
            copied.copy_from_slice(data);
            if let Some((marker, zeros)) = pad.split_first_mut() {
                *marker = 0x80;
                zeros.fill(0);
            }
            let cipher = BlockCipher::new(&key);
            let done = if operation == KeyOperation::Encrypt {
                cipher.encrypt_ecb(out)
            } else {
                cipher.decrypt_ecb(out)
            };
            done.map_err(|_| Sw::WRONG_LENGTH)
        }
    }
}
