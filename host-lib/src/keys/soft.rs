//! [`KeyStore`] for the software key set: every key is diversified here, used, and wiped.

use card_os::crypto::{
    authentication_data, challenge_cryptogram, ct_eq, line_encrypt, line_encrypted_len, purse,
    session_key, Algorithm, BlockCipher, Mac, Padding, MAC_LEN,
};
use zeroize::Zeroizing;

use super::file::{algorithm_name, Entry};
use super::secret::{check_value, SecretKey, KCV_LEN};
use super::{
    Diversification, HostTime, KeyError, KeyInfo, KeyRef, KeySet, KeySetIdentity, KeyStore, Load,
    LoadInit, Purchase, PurchaseInit, PurchaseMac1, PurchaseRequest, SecureMessaging, WriteKey,
};

/// The largest `Lc` of a short command APDU.
const MAX_LC: usize = 255;

impl KeySet {
    fn entry(&self, name: &str) -> Result<&Entry, KeyError> {
        self.keys.get(name).ok_or_else(|| KeyError::UnknownKey {
            set: self.identity.id.clone(),
            name: name.to_owned(),
        })
    }

    /// The key `r` names, diversified for its card, with its key-set entry.
    fn card_key(&self, r: KeyRef<'_>) -> Result<(SecretKey, &Entry), KeyError> {
        let entry = self.entry(r.name)?;
        let missing = |needs| KeyError::MissingFactor {
            key: r.name.to_owned(),
            rule: entry.diversification,
            needs,
        };
        let key = match entry.diversification {
            Diversification::None => entry.master.clone(),
            Diversification::ApplicationSerial => {
                let serial = r
                    .card
                    .application_serial
                    .ok_or_else(|| missing("the card's application serial number"))?;
                entry.master.diversified(&[serial])
            }
            Diversification::SocialSecurity => {
                let factors = r.card.social_security.as_ref().ok_or_else(|| {
                    missing(
                        "the card's city code, card identification code and ATR historical bytes",
                    )
                })?;
                entry.master.diversified(&factors.levels())
            }
        };
        Ok((key, entry))
    }

    /// The card's key version and algorithm id in a purse answer must be the key set's.
    fn check_purse_key(name: &str, entry: &Entry, version: u8, alg_id: u8) -> Result<(), KeyError> {
        if version != entry.version {
            return Err(KeyError::KeyVersion {
                key: name.to_owned(),
                card: version,
                ours: entry.version,
            });
        }
        let ours = entry.master.key().algorithm();
        if Algorithm::from_id(alg_id, ours.key_len()) != Ok(ours) {
            return Err(KeyError::AlgorithmId {
                key: name.to_owned(),
                card: alg_id,
                ours: algorithm_name(ours),
            });
        }
        Ok(())
    }
}

fn check_challenge(key: &SecretKey, challenge: &[u8]) -> Result<(), KeyError> {
    let block = key.key().block_size();
    if challenge.is_empty() || challenge.len() > block {
        return Err(KeyError::Input(format!(
            "card challenge of {} bytes: expected 1 to {block} (GET CHALLENGE answers 4 or 8; 16 for SM4/AES)",
            challenge.len()
        )));
    }
    Ok(())
}

fn session(key: &SecretKey, name: &str, input: &[u8]) -> Result<SecretKey, KeyError> {
    session_key(key.key(), input)
        .map(SecretKey::new)
        .map_err(|e| KeyError::crypto(name, "session key", e))
}

/// Line encryption under `key` as `messaging` says.
fn encrypt(
    key: &SecretKey,
    name: &str,
    messaging: SecureMessaging<'_>,
    data: &[u8],
) -> Result<Vec<u8>, KeyError> {
    check_challenge(key, messaging.challenge())?;
    let (session_key, padding) = match messaging {
        SecureMessaging::Fmcos { .. } => (None, Padding::WhenUnaligned),
        SecureMessaging::Ldt32 { challenge } => {
            (Some(session(key, name, challenge)?), Padding::Always)
        }
    };
    let used = session_key.as_ref().unwrap_or(key);
    let len =
        line_encrypted_len(data.len(), used.key().block_size(), padding).ok_or_else(|| {
            KeyError::Input(format!(
                "{} bytes to encrypt: line encryption takes at most 255",
                data.len()
            ))
        })?;
    let mut out = vec![0u8; len];
    line_encrypt(used.key(), data, padding, &mut out)
        .map_err(|e| KeyError::crypto(name, "line encryption", e))?;
    Ok(out)
}

/// The line-protection MAC over `header ‖ Lc' ‖ data`, `Lc' = data.len() + 4`.
fn line_mac(
    key: &SecretKey,
    name: &str,
    messaging: SecureMessaging<'_>,
    header: [u8; 4],
    data: &[u8],
) -> Result<[u8; MAC_LEN], KeyError> {
    check_challenge(key, messaging.challenge())?;
    let lc = u8::try_from(data.len() + MAC_LEN)
        .ok()
        .filter(|&lc| usize::from(lc) <= MAX_LC)
        .ok_or_else(|| {
            KeyError::Input(format!(
                "{} data bytes and a MAC do not fit a short command (Lc at most 255)",
                data.len()
            ))
        })?;
    let cipher = match messaging {
        SecureMessaging::Fmcos { .. } => BlockCipher::new(key.key()),
        SecureMessaging::Ldt32 { challenge } => {
            BlockCipher::new(session(key, name, challenge)?.key())
        }
    };
    let mut mac = match messaging {
        SecureMessaging::Fmcos { challenge } => Mac::line_protection(&cipher, challenge),
        SecureMessaging::Ldt32 { .. } => Mac::session(&cipher),
    }
    .map_err(|e| KeyError::crypto(name, "line-protection MAC", e))?;
    mac.update(&header);
    mac.update(&[lc]);
    mac.update(data);
    Ok(mac.finalize())
}

fn verify(expected: &[u8], received: &[u8], what: &'static str, key: &str) -> Result<(), KeyError> {
    if ct_eq(expected, received) {
        Ok(())
    } else {
        Err(KeyError::Verification {
            what,
            key: key.to_owned(),
        })
    }
}

fn check_load_type(load: &Load) -> Result<(), KeyError> {
    match load.txn_type {
        purse::TYPE_ED_LOAD | purse::TYPE_EP_LOAD => Ok(()),
        t => Err(KeyError::Input(format!(
            "transaction type {t:02X} is not a load (01 ED, 02 EP)"
        ))),
    }
}

fn check_purchase_type(txn_type: u8) -> Result<(), KeyError> {
    match txn_type {
        purse::TYPE_ED_PURCHASE | purse::TYPE_EP_PURCHASE | purse::TYPE_CAPP_PURCHASE => Ok(()),
        t => Err(KeyError::Input(format!(
            "transaction type {t:02X} is not a purchase (05 ED, 06 EP, 09 composite)"
        ))),
    }
}

impl KeyStore for KeySet {
    fn identity(&self) -> &KeySetIdentity {
        &self.identity
    }

    fn keys(&self) -> Vec<KeyInfo> {
        self.ordered()
            .into_iter()
            .map(|(name, e)| e.info(name))
            .collect()
    }

    fn key_info(&self, name: &str) -> Result<KeyInfo, KeyError> {
        Ok(self.entry(name)?.info(name))
    }

    fn is_factory_transport_key(&self, name: &str) -> bool {
        self.entry(name).is_ok_and(|e| {
            e.master.key().as_bytes() == super::file::FACTORY_TRANSPORT_KEY.as_slice()
        })
    }

    fn card_key_check_value(&self, key: KeyRef<'_>) -> Result<[u8; KCV_LEN], KeyError> {
        Ok(check_value(self.card_key(key)?.0.key()))
    }

    fn write_key(
        &self,
        request: &WriteKey<'_>,
        protect_with: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
    ) -> Result<Vec<u8>, KeyError> {
        let (new_key, entry) = self.card_key(request.key)?;
        let record = request.layout.record(new_key.key(), entry.version);
        drop(new_key);
        let (protector, _) = self.card_key(protect_with)?;
        let mut data = encrypt(&protector, protect_with.name, messaging, &record)?;
        let mac = line_mac(
            &protector,
            protect_with.name,
            messaging,
            request.header,
            &data,
        )?;
        data.extend_from_slice(&mac);
        Ok(data)
    }

    fn write_key_mac_only(
        &self,
        request: &WriteKey<'_>,
        protect_with: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let mut data = self.write_key_plain(request)?;
        let (protector, _) = self.card_key(protect_with)?;
        let mac = line_mac(
            &protector,
            protect_with.name,
            messaging,
            request.header,
            &data,
        )?;
        data.extend_from_slice(&mac);
        Ok(data)
    }

    fn write_key_plain(&self, request: &WriteKey<'_>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let (key, entry) = self.card_key(request.key)?;
        let record = request.layout.record(key.key(), entry.version);
        if record.len() > MAX_LC {
            return Err(KeyError::Input(format!(
                "key record of {} bytes does not fit a short command",
                record.len()
            )));
        }
        Ok(record)
    }

    fn external_authenticate(&self, r: KeyRef<'_>, challenge: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (key, _) = self.card_key(r)?;
        check_challenge(&key, challenge)?;
        let block = challenge_cryptogram(key.key(), challenge)
            .map_err(|e| KeyError::crypto(r.name, "EXTERNAL AUTHENTICATE cryptogram", e))?;
        Ok(block.as_slice().to_vec())
    }

    fn ldt32_external_authenticate(
        &self,
        r: KeyRef<'_>,
        card_challenge: &[u8],
        original: &[u8; 8],
    ) -> Result<[u8; 8], KeyError> {
        let (key, _) = self.card_key(r)?;
        check_challenge(&key, card_challenge)?;
        let sk = session(&key, r.name, card_challenge)?;
        Ok(authentication_data(sk.key(), original))
    }

    fn verify_internal_authenticate(
        &self,
        r: KeyRef<'_>,
        data: &[u8],
        answer: &[u8],
    ) -> Result<(), KeyError> {
        let (key, _) = self.card_key(r)?;
        let block = key.key().block_size();
        if data.is_empty() || !data.len().is_multiple_of(block) || data.len() > MAX_LC {
            return Err(KeyError::Input(format!(
                "INTERNAL AUTHENTICATE data of {} bytes: must be whole {block}-byte blocks",
                data.len()
            )));
        }
        let mut expected = data.to_vec();
        BlockCipher::new(key.key())
            .encrypt_ecb(&mut expected)
            .map_err(|e| KeyError::crypto(r.name, "INTERNAL AUTHENTICATE", e))?;
        verify(&expected, answer, "INTERNAL AUTHENTICATE answer", r.name)
    }

    fn verify_ldt32_internal_authenticate(
        &self,
        r: KeyRef<'_>,
        session_input: &[u8],
        original: &[u8; 8],
        answer: &[u8],
    ) -> Result<(), KeyError> {
        let (key, _) = self.card_key(r)?;
        let sk = session(&key, r.name, session_input)?;
        let expected = authentication_data(sk.key(), original);
        verify(&expected, answer, "INTERNAL AUTHENTICATE answer", r.name)
    }

    fn line_mac(
        &self,
        r: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
        header: [u8; 4],
        data: &[u8],
    ) -> Result<[u8; MAC_LEN], KeyError> {
        let (key, _) = self.card_key(r)?;
        line_mac(&key, r.name, messaging, header, data)
    }

    fn line_encrypt(
        &self,
        r: KeyRef<'_>,
        messaging: SecureMessaging<'_>,
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let (key, _) = self.card_key(r)?;
        encrypt(&key, r.name, messaging, data)
    }

    fn load_mac2(
        &self,
        dlk: KeyRef<'_>,
        init: &LoadInit,
        load: &Load,
        at: &HostTime,
    ) -> Result<[u8; MAC_LEN], KeyError> {
        check_load_type(load)?;
        let (key, entry) = self.card_key(dlk)?;
        Self::check_purse_key(dlk.name, entry, init.key_version, init.algorithm_id)?;
        let crypto = |e| KeyError::crypto(dlk.name, "load MAC", e);
        let seslk = purse::load_session_key(key.key(), &init.random, init.online_counter)
            .map(SecretKey::new)
            .map_err(crypto)?;
        let mac1 = purse::load_mac1(seslk.key(), init.old_balance, load).map_err(crypto)?;
        verify(&mac1, &init.mac1, "MAC1", dlk.name)?;
        purse::load_mac2(seslk.key(), load, at).map_err(crypto)
    }

    fn verify_load_tac(
        &self,
        dtk: KeyRef<'_>,
        init: &LoadInit,
        load: &Load,
        at: &HostTime,
        tac: &[u8],
    ) -> Result<(), KeyError> {
        check_load_type(load)?;
        let new_balance = init.old_balance.checked_add(load.amount).ok_or_else(|| {
            KeyError::Input(format!(
                "balance {} + amount {} overflows 4 bytes",
                init.old_balance, load.amount
            ))
        })?;
        let (key, _) = self.card_key(dtk)?;
        let tac_key = SecretKey::new(purse::tac_key(key.key()));
        let expected = purse::load_tac(tac_key.key(), new_balance, init.online_counter, load, at)
            .map_err(|e| KeyError::crypto(dtk.name, "load TAC", e))?;
        verify(&expected, tac, "load TAC", dtk.name)
    }

    fn purchase_mac1(
        &self,
        dpk: KeyRef<'_>,
        init: &PurchaseInit,
        request: &PurchaseRequest,
    ) -> Result<PurchaseMac1, KeyError> {
        check_purchase_type(request.txn_type)?;
        let counter = self.counter.as_ref().ok_or_else(|| {
            KeyError::TerminalCounter(
                "this key set has none attached (KeySet::with_terminal_counter)".into(),
            )
        })?;
        let (key, entry) = self.card_key(dpk)?;
        Self::check_purse_key(dpk.name, entry, init.key_version, init.algorithm_id)?;
        let terminal_seq = counter.next()?;
        let purchase = Purchase {
            amount: request.amount,
            txn_type: request.txn_type,
            terminal_id: request.terminal_id,
            terminal_seq,
            at: request.at,
        };
        let crypto = |e| KeyError::crypto(dpk.name, "purchase MAC1", e);
        let sespk = purse::purchase_session_key(
            key.key(),
            &init.random,
            init.offline_counter,
            &terminal_seq,
        )
        .map(SecretKey::new)
        .map_err(crypto)?;
        let mac1 = purse::purchase_mac1(sespk.key(), &purchase).map_err(crypto)?;
        Ok(PurchaseMac1 { purchase, mac1 })
    }

    fn verify_purchase_mac2(
        &self,
        dpk: KeyRef<'_>,
        init: &PurchaseInit,
        purchase: &Purchase,
        mac2: &[u8],
    ) -> Result<(), KeyError> {
        let (key, entry) = self.card_key(dpk)?;
        Self::check_purse_key(dpk.name, entry, init.key_version, init.algorithm_id)?;
        let crypto = |e| KeyError::crypto(dpk.name, "purchase MAC2", e);
        let sespk = purse::purchase_session_key(
            key.key(),
            &init.random,
            init.offline_counter,
            &purchase.terminal_seq,
        )
        .map(SecretKey::new)
        .map_err(crypto)?;
        let expected = purse::purchase_mac2(sespk.key(), purchase.amount).map_err(crypto)?;
        verify(&expected, mac2, "purchase MAC2", dpk.name)
    }

    fn verify_purchase_tac(
        &self,
        dtk: KeyRef<'_>,
        purchase: &Purchase,
        tac: &[u8],
    ) -> Result<(), KeyError> {
        check_purchase_type(purchase.txn_type)?;
        let (key, _) = self.card_key(dtk)?;
        let tac_key = SecretKey::new(purse::tac_key(key.key()));
        let expected = purse::purchase_tac(tac_key.key(), purchase)
            .map_err(|e| KeyError::crypto(dtk.name, "purchase TAC", e))?;
        verify(&expected, tac, "purchase TAC", dtk.name)
    }
}
