//! Applications on demand (Art. 11–12): adding an application DF to an issued card, switching an
//! application off and on again, blocking one for good — on the card, under its keys.
//!
//! A [`Session`] works on one card: it first finds out which card it is (EF05 items 01 and 07,
//! read as any social-security reader does), builds the card's diversification factors (the
//! card identification code and ATR for social-security keys; the purse application serial,
//! which the default profile derives from the card's city and serial, for purse keys), then:
//!
//! * **enable** an application that is not on the card: with the MF master's authority
//!   (LD/T 32 EXTERNAL AUTHENTICATE), CREATE FILE of its DF (which becomes current), its key
//!   file, the public transport key as master (plain), its line-protection key encrypted and
//!   MAC'd under the transport key, the record EF, one APPEND RECORD per field MAC'd with the
//!   line-protection key, and last the master replaced by the application's own (encrypted).
//!   Then a reset and a read-back: the DF by name, every record, and an authentication with the
//!   new master. A DF found on the card that the registry does not know as enabled is the
//!   remains of an interrupted run: it is erased (ERASE DF, MF authority) and built again;
//! * **enable** a switched-off application: APPLICATION UNBLOCK; with values, the records are
//!   updated (UPDATE RECORD by tag, MAC'd);
//! * **disable**: APPLICATION BLOCK until unblocked;
//! * **block for good**: APPLICATION BLOCK, permanent.
//!
//! The registry is written by the caller after the card: it records what the card now is, and a
//! re-run after an interruption finds the card as it is and finishes (see the CLI's `app`).

use card_os::apdu::Sw;
use card_os::card::HistoricalBytes;
use serde::Serialize;

use super::definition::AppDefinition;
use super::lock::{exchange, lock_current_df, Lock};
use super::AppError;
use crate::holder::items::{CardIdCode, CardNumber, Record};
use crate::keys::{
    CardFactors, KeyRecordLayout, KeyRef, KeyStore, SecureMessaging, SocialSecurityFactors,
    WriteKey,
};
use crate::personalize::{app_serial, historical_bytes};
use crate::profile::{EfKind, KeyKind, Profile};
use crate::transport::Transport;

/// Which diversification a target's keys use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FactorKind {
    /// Social security (city, card identification code, ATR).
    SocialSecurity,
    /// The purse application serial.
    ApplicationSerial,
}

/// An application the commands can switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppTarget {
    /// Its name (`purse`, `public`).
    pub name: String,
    /// For people.
    pub label: String,
    /// Its DF name.
    pub df_name: Vec<u8>,
    /// Key-set name of its line-protection key `36 00` (APPLICATION BLOCK/UNBLOCK).
    pub lock_key: String,
    /// How its keys are diversified.
    pub factors: FactorKind,
    /// Its definition, for an application added on demand; `None` for one of the card's
    /// profile (the purse), which is there from issuance.
    pub definition: Option<AppDefinition>,
}

/// The applications known for cards of `profile`: the purse of the profile (if it has one) and
/// the shipped applications on demand.
pub fn targets(profile: &Profile) -> Vec<AppTarget> {
    let mut out = Vec::new();
    let purse_df = profile.dfs.iter().find(|df| {
        df.efs
            .iter()
            .any(|ef| matches!(ef.kind, EfKind::Purse { .. }))
    });
    if let Some(df) = purse_df {
        let lock = df
            .keys
            .iter()
            .find(|k| k.kind == KeyKind::LineProtection && k.id == 0)
            .and_then(|k| k.key_name());
        if let Some(lock) = lock {
            out.push(AppTarget {
                name: "purse".into(),
                label: df
                    .label
                    .clone()
                    .unwrap_or_else(|| "e-purse application".into()),
                df_name: df.name.clone(),
                lock_key: lock.to_owned(),
                factors: FactorKind::ApplicationSerial,
                definition: None,
            });
        }
    }
    let public = AppDefinition::public();
    out.push(AppTarget {
        name: public.name.clone(),
        label: public.label.clone(),
        df_name: public.df_name.clone(),
        lock_key: public.line_protection.clone(),
        factors: FactorKind::SocialSecurity,
        definition: Some(public),
    });
    out
}

/// Where an application is on a card, as SELECT by its name answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCard {
    /// Not on the card (`6A82`).
    Absent,
    /// Selectable (`9000`).
    Enabled,
    /// Blocked until unblocked (`6A81`).
    Disabled,
    /// Blocked for good (`9303`).
    Blocked,
}

impl OnCard {
    /// For people.
    pub fn as_str(self) -> &'static str {
        match self {
            OnCard::Absent => "absent",
            OnCard::Enabled => "enabled",
            OnCard::Disabled => "disabled",
            OnCard::Blocked => "blocked",
        }
    }
}

/// Which card is in the reader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardId {
    /// EF05 item 07.
    pub card_number: CardNumber,
    /// EF05 item 01.
    pub card_id: CardIdCode,
    /// The ATR's historical bytes.
    #[serde(skip)]
    pub historical: HistoricalBytes,
}

impl CardId {
    /// The diversification factors of this card: social security and purse.
    pub fn factors(&self) -> Result<CardFactors, AppError> {
        let ss = SocialSecurityFactors::for_card(
            &self.card_id.city.digits(),
            &self.card_id.encode(),
            &self.historical,
        )
        .map_err(|e| AppError::Refused(format!("the card's data give no key factors: {e}")))?;
        CardFactors::NONE
            .with_application_serial(&app_serial(self.card_id.city, self.card_id.serial))
            .map(|f| f.with_social_security(ss))
            .map_err(|e| AppError::Refused(format!("the card's data give no key factors: {e}")))
    }
}

/// What [`Session::enable`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enabled {
    /// The DF was created and loaded.
    Added,
    /// The remains of an interrupted run were erased, and the DF created and loaded again.
    Rebuilt,
    /// A switched-off application was unblocked.
    Unblocked,
    /// It was enabled already (its records updated, if values were given).
    AlreadyEnabled,
}

/// APDUs to one card.
pub struct Session<'a> {
    transport: &'a mut dyn Transport,
    keys: &'a dyn KeyStore,
    apdus: usize,
}

/// The master's key record: external authentication, use and change always (the MAC or
/// cryptogram is the authority), follow-on state 3, 3 tries; later updates encrypted.
const MASTER_LAYOUT: &str = "F9 F0 F0 03 33 key alg?";
/// The line-protection key's record: type 36, later updates encrypted.
const LINE_LAYOUT: &str = "F6 F0 F0 FF 33 key alg?";

fn layout(text: &str) -> KeyRecordLayout {
    KeyRecordLayout::parse(text).unwrap_or_else(|e| panic!("built-in key layout: {e}"))
}

fn apdu(header: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = header.to_vec();
    c.push(data.len() as u8);
    c.extend_from_slice(data);
    c
}

impl<'a> Session<'a> {
    /// A session over `transport` with the issuer's `keys`.
    pub fn new(transport: &'a mut dyn Transport, keys: &'a dyn KeyStore) -> Self {
        Session {
            transport,
            keys,
            apdus: 0,
        }
    }

    /// APDUs sent so far.
    pub fn apdus(&self) -> usize {
        self.apdus
    }

    /// The transport.
    pub fn transport(&mut self) -> &mut dyn Transport {
        self.transport
    }

    fn send(&mut self, command: &[u8]) -> Result<(Vec<u8>, Sw), AppError> {
        self.apdus += 1;
        exchange(self.transport, command)
    }

    fn expect(&mut self, what: &'static str, command: &[u8]) -> Result<Vec<u8>, AppError> {
        match self.send(command)? {
            (data, Sw::SUCCESS) => Ok(data),
            (_, sw) => Err(AppError::card(what, sw)),
        }
    }

    fn challenge(&mut self, len: u8) -> Result<Vec<u8>, AppError> {
        let c = self.expect("GET CHALLENGE", &[0x00, 0x84, 0x00, 0x00, len])?;
        if c.len() != usize::from(len) {
            return Err(AppError::Card {
                command: "GET CHALLENGE",
                sw: Sw::SUCCESS,
                detail: format!("{} bytes, not {len}", c.len()),
            });
        }
        Ok(c)
    }

    /// Which card this is: EF05 items 01 and 07 (SELECT of the SSSE, two READ RECORDs by tag).
    pub fn identify(&mut self) -> Result<CardId, AppError> {
        let atr = self.transport.atr().to_vec();
        let historical = historical_bytes(&atr).map_err(|why| {
            AppError::Refused(format!("the card's ATR {}: {why}", hex::encode_upper(&atr)))
        })?;
        let mut select = vec![0x00, 0xA4, 0x04, 0x00, super::guard::SSSE_NAME.len() as u8];
        select.extend_from_slice(&super::guard::SSSE_NAME);
        select.push(0x00);
        match self.send(&select)? {
            (_, Sw::SUCCESS) => {}
            (_, Sw::FILE_NOT_FOUND) => {
                return Err(AppError::Refused(
                    "the card has no social-security environment: it is not an issued citizen \
                     card"
                        .into(),
                ))
            }
            (_, sw) => return Err(AppError::card("SELECT of the SSSE", sw)),
        }
        let mut item = |tag: u8| -> Result<Vec<u8>, AppError> {
            let data = match self.send(&[0x00, 0xB2, tag, 0x28, 0x00])? {
                (data, Sw::SUCCESS) => data,
                (_, Sw::RECORD_NOT_FOUND) => {
                    return Err(AppError::Refused(format!(
                        "EF05 has no item {tag:02X}: the card is not (completely) issued"
                    )))
                }
                (_, sw) => return Err(AppError::card("READ RECORD (EF05)", sw)),
            };
            Record::parse(&data)
                .map(|r| r.value)
                .map_err(|e| AppError::Refused(format!("EF05 item {tag:02X}: {e}")))
        };
        let id = item(0x01)?;
        let number = item(0x07)?;
        Ok(CardId {
            card_number: CardNumber::decode(&number)
                .map_err(|e| AppError::Refused(format!("EF05 item 07: {e}")))?,
            card_id: CardIdCode::decode(&id)
                .map_err(|e| AppError::Refused(format!("EF05 item 01: {e}")))?,
            historical,
        })
    }

    fn select_mf(&mut self) -> Result<(), AppError> {
        self.expect("SELECT MF", &[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00])
            .map(|_| ())
    }

    fn select_name(&mut self, name: &[u8]) -> Result<Sw, AppError> {
        let mut c = vec![0x00, 0xA4, 0x04, 0x0C, name.len() as u8];
        c.extend_from_slice(name);
        Ok(self.send(&c)?.1)
    }

    /// Where `target` is on the card (SELECT by name; the application becomes current when it
    /// is there).
    pub fn probe(&mut self, target: &AppTarget) -> Result<OnCard, AppError> {
        match self.select_name(&target.df_name)? {
            Sw::SUCCESS => Ok(OnCard::Enabled),
            Sw::FUNCTION_NOT_SUPPORTED => Ok(OnCard::Disabled),
            Sw::APP_PERMANENTLY_LOCKED => Ok(OnCard::Blocked),
            Sw::FILE_NOT_FOUND => Ok(OnCard::Absent),
            sw => Err(AppError::card("SELECT of the application", sw)),
        }
    }

    fn lock(
        &mut self,
        target: &AppTarget,
        factors: &CardFactors,
        lock: Lock,
    ) -> Result<(), AppError> {
        self.apdus += 2;
        lock_current_df(
            self.transport,
            self.keys,
            KeyRef::new(&target.lock_key, factors),
            lock,
        )
    }

    /// LD/T 32 EXTERNAL AUTHENTICATE with `key` as key `id` of the current DF.
    fn authenticate(&mut self, key: KeyRef<'_>, id: u8) -> Result<Sw, AppError> {
        let challenge = self.challenge(8)?;
        let mut original = [0u8; 8];
        getrandom::fill(&mut original)
            .map_err(|e| AppError::Refused(format!("no random number from the system: {e}")))?;
        let auth = self
            .keys
            .ldt32_external_authenticate(key, &challenge, &original)
            .map_err(AppError::Keys)?;
        let data = [&auth[..], &original[..]].concat();
        Ok(self.send(&apdu([0x00, 0x82, 0x00, id], &data))?.1)
    }

    /// The MF master's authority (MF register = its follow-on state) until the next reset.
    fn mf_authority(&mut self, profile: &Profile, factors: &CardFactors) -> Result<(), AppError> {
        let master = profile
            .mf()
            .master()
            .and_then(|k| k.key_name())
            .ok_or_else(|| AppError::Refused("the profile's MF has no master key".into()))?
            .to_owned();
        self.select_mf()?;
        match self.authenticate(KeyRef::new(&master, factors), 0)? {
            Sw::SUCCESS => Ok(()),
            sw => Err(AppError::WrongKey(format!(
                "EXTERNAL AUTHENTICATE with the MF master {master} answered {sw} ({}): the key \
                 set is not this card's",
                sw.meaning()
            ))),
        }
    }

    /// WRITE KEY `84 D4 p1 p2` of `key` protected under `under` (with a fresh challenge).
    fn write_key(
        &mut self,
        header: [u8; 4],
        key: KeyRef<'_>,
        layout: &KeyRecordLayout,
        under: KeyRef<'_>,
    ) -> Result<(), AppError> {
        let challenge = self.challenge(4)?;
        let data = self
            .keys
            .write_key(
                &WriteKey {
                    header,
                    key,
                    layout,
                },
                under,
                SecureMessaging::Fmcos {
                    challenge: &challenge,
                },
            )
            .map_err(AppError::Keys)?;
        match self.send(&apdu(header, &data))? {
            (_, Sw::SUCCESS) => Ok(()),
            (_, sw) => Err(AppError::card("WRITE KEY", sw)),
        }
    }

    /// A record write MAC'd with the line-protection key: `header` with CLA `04`.
    fn protected(
        &mut self,
        what: &'static str,
        header: [u8; 4],
        data: &[u8],
        key: KeyRef<'_>,
    ) -> Result<(), AppError> {
        let challenge = self.challenge(4)?;
        let header = [header[0] | 0x04, header[1], header[2], header[3]];
        let body = self
            .keys
            .protect_command(
                key,
                None,
                SecureMessaging::Fmcos {
                    challenge: &challenge,
                },
                header,
                data,
            )
            .map_err(AppError::Keys)?;
        self.expect(what, &apdu(header, &body)).map(|_| ())
    }

    /// The records `values` give (every field; a field without a value is empty).
    pub fn records(
        def: &AppDefinition,
        values: &[(String, String)],
    ) -> Result<Vec<Vec<u8>>, AppError> {
        for (name, _) in values {
            if def.field(name).is_none() {
                let known: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
                return Err(AppError::Usage(format!(
                    "application {} has no field {name:?}; its fields: {}",
                    def.name,
                    known.join(", ")
                )));
            }
        }
        def.fields
            .iter()
            .map(|f| {
                let v = values
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == f.name)
                    .map_or("", |(_, v)| v.as_str());
                def.record(f, v).map_err(AppError::Usage)
            })
            .collect()
    }

    /// Enables `target` on the card `id` (see the module docs). `recorded_enabled` says whether
    /// the registry knows it as enabled (a DF it does not know is the remains of an interrupted
    /// run, and is rebuilt); `values` are field values (`--set`).
    pub fn enable(
        &mut self,
        id: &CardId,
        profile: &Profile,
        target: &AppTarget,
        recorded_enabled: bool,
        values: &[(String, String)],
    ) -> Result<Enabled, AppError> {
        let factors = id.factors()?;
        let records = match &target.definition {
            Some(def) => Some(Session::records(def, values)?),
            None if values.is_empty() => None,
            None => {
                return Err(AppError::Usage(format!(
                    "application {} has no fields to set",
                    target.name
                )))
            }
        };
        self.select_mf()?;
        let outcome = match self.probe(target)? {
            OnCard::Blocked => return Err(AppError::PermanentlyBlocked),
            OnCard::Disabled => {
                self.lock(target, &factors, Lock::Unblock)?;
                if let (Some(def), false) = (&target.definition, values.is_empty()) {
                    self.update_records(def, &factors, values)?;
                }
                Enabled::Unblocked
            }
            OnCard::Enabled if recorded_enabled || target.definition.is_none() => {
                if let (Some(def), false) = (&target.definition, values.is_empty()) {
                    self.update_records(def, &factors, values)?;
                }
                Enabled::AlreadyEnabled
            }
            found => {
                let def = target.definition.as_ref().ok_or_else(|| {
                    AppError::Refused(format!(
                        "the card has no {} application: it comes with the card's profile at \
                         issuance and cannot be added afterwards",
                        target.name
                    ))
                })?;
                let rebuild = found == OnCard::Enabled;
                self.build(
                    profile,
                    def,
                    &factors,
                    &records.unwrap_or_default(),
                    rebuild,
                )?;
                if rebuild {
                    Enabled::Rebuilt
                } else {
                    Enabled::Added
                }
            }
        };
        self.verify_enabled(target, &factors)?;
        Ok(outcome)
    }

    fn update_records(
        &mut self,
        def: &AppDefinition,
        factors: &CardFactors,
        values: &[(String, String)],
    ) -> Result<(), AppError> {
        let sfi = def.records_sfi();
        for (name, value) in values {
            let f = def
                .field(name)
                .ok_or_else(|| AppError::Usage(format!("no field {name:?}")))?;
            let record = def.record(f, value).map_err(AppError::Usage)?;
            // UPDATE RECORD by identifier: the first record with the field's tag.
            self.protected(
                "UPDATE RECORD",
                [0x00, 0xDC, f.tag, sfi << 3],
                &record,
                KeyRef::new(&def.line_protection, factors),
            )?;
        }
        Ok(())
    }

    fn build(
        &mut self,
        profile: &Profile,
        def: &AppDefinition,
        factors: &CardFactors,
        records: &[Vec<u8>],
        erase_first: bool,
    ) -> Result<(), AppError> {
        self.mf_authority(profile, factors)?;
        for fid in def.parent.iter().skip(1) {
            let [f0, f1] = fid.to_be_bytes();
            self.expect(
                "SELECT of the parent DF",
                &[0x00, 0xA4, 0x00, 0x0C, 0x02, f0, f1],
            )?;
        }
        if erase_first {
            match self.select_name(&def.df_name)? {
                Sw::SUCCESS => {}
                sw => return Err(AppError::card("SELECT of the application", sw)),
            }
            self.expect("ERASE DF", &[0x80, 0x0E, 0x00, 0x00, 0x00])?;
        } else {
            let [f0, f1] = def.fid.to_be_bytes();
            match self.send(&apdu([0x80, 0xE0, f0, f1], &def.df_create_data()))? {
                (_, Sw::SUCCESS) => {}
                (_, Sw::NOT_ENOUGH_SPACE) => {
                    return Err(AppError::Refused(format!(
                        "the card has no room for application {} ({} bytes)",
                        def.name,
                        def.df_space()
                    )))
                }
                (_, Sw::FILE_EXISTS) => {
                    return Err(AppError::Refused(format!(
                        "the card already has a file {:04X} or a DF named {:?} that is not \
                         application {}",
                        def.fid, def.df_name_text, def.name
                    )))
                }
                (_, sw) => return Err(AppError::card("CREATE FILE (application DF)", sw)),
            }
        }
        self.expect(
            "CREATE FILE (key file)",
            &apdu([0x80, 0xE0, 0x00, 0x00], &def.key_file_create_data()),
        )?;
        let transport_key = profile.card.transport_key.clone();
        let transport = KeyRef::plain(&transport_key);
        let master_layout = layout(MASTER_LAYOUT);
        let plain = self
            .keys
            .write_key_plain(&WriteKey {
                header: [0x80, 0xD4, 0x01, 0x00],
                key: transport,
                layout: &master_layout,
            })
            .map_err(AppError::Keys)?;
        self.expect(
            "WRITE KEY (transport master)",
            &apdu([0x80, 0xD4, 0x01, 0x00], &plain),
        )?;
        let line = KeyRef::new(&def.line_protection, factors);
        self.write_key(
            [0x84, 0xD4, 0x01, 0x00],
            line,
            &layout(LINE_LAYOUT),
            transport,
        )?;
        let [r0, r1] = def.records_fid.to_be_bytes();
        self.expect(
            "CREATE FILE (records)",
            &apdu([0x80, 0xE0, r0, r1], &def.records_create_data()),
        )?;
        let sfi = def.records_sfi();
        for record in records {
            self.protected("APPEND RECORD", [0x00, 0xE2, 0x00, sfi << 3], record, line)?;
        }
        // Last: the application's own master replaces the transport key.
        self.write_key(
            [0x84, 0xD4, 0x39, 0x00],
            KeyRef::new(&def.master, factors),
            &master_layout,
            transport,
        )
    }

    /// After a reset: the DF is selectable; an application on demand's master is its own.
    fn verify_enabled(
        &mut self,
        target: &AppTarget,
        factors: &CardFactors,
    ) -> Result<(), AppError> {
        self.transport.reset()?;
        match self.probe(target)? {
            OnCard::Enabled => {}
            other => {
                return Err(AppError::Refused(format!(
                    "read-back: application {} is {} on the card after enabling it",
                    target.name,
                    other.as_str()
                )))
            }
        }
        if let Some(def) = &target.definition {
            match self.authenticate(KeyRef::new(&def.master, factors), 0)? {
                Sw::SUCCESS => {}
                sw => {
                    return Err(AppError::Refused(format!(
                        "read-back: the application's master {} does not authenticate ({sw})",
                        def.master
                    )))
                }
            }
        }
        Ok(())
    }

    /// Switches `target` off until it is enabled again (APPLICATION BLOCK, temporary).
    pub fn disable(&mut self, id: &CardId, target: &AppTarget) -> Result<OnCard, AppError> {
        let factors = id.factors()?;
        self.select_mf()?;
        let before = self.probe(target)?;
        match before {
            OnCard::Absent => {
                return Err(AppError::Refused(format!(
                    "the card has no {} application",
                    target.name
                )))
            }
            OnCard::Blocked => return Err(AppError::PermanentlyBlocked),
            OnCard::Disabled => {}
            OnCard::Enabled => self.lock(target, &factors, Lock::Temporary)?,
        }
        self.transport.reset()?;
        match self.probe(target)? {
            OnCard::Disabled => Ok(before),
            other => Err(AppError::Refused(format!(
                "read-back: application {} is {} after disabling it",
                target.name,
                other.as_str()
            ))),
        }
    }

    /// Blocks `target` for good (APPLICATION BLOCK, permanent). Returns where it was before;
    /// an application not on the card is left as it is.
    pub fn block_for_good(&mut self, id: &CardId, target: &AppTarget) -> Result<OnCard, AppError> {
        let factors = id.factors()?;
        self.select_mf()?;
        let before = self.probe(target)?;
        match before {
            OnCard::Absent | OnCard::Blocked => return Ok(before),
            OnCard::Enabled | OnCard::Disabled => self.lock(target, &factors, Lock::Permanent)?,
        }
        self.transport.reset()?;
        match self.probe(target)? {
            OnCard::Blocked => Ok(before),
            other => Err(AppError::Refused(format!(
                "read-back: application {} is {} after blocking it for good",
                target.name,
                other.as_str()
            ))),
        }
    }

    /// The field values of an application on demand that is enabled on the card.
    pub fn read_fields(&mut self, def: &AppDefinition) -> Result<Vec<(String, String)>, AppError> {
        self.select_mf()?;
        match self.select_name(&def.df_name)? {
            Sw::SUCCESS => {}
            Sw::FILE_NOT_FOUND => {
                return Err(AppError::Refused(format!(
                    "the card has no {} application",
                    def.name
                )))
            }
            Sw::FUNCTION_NOT_SUPPORTED => {
                return Err(AppError::Refused(format!(
                    "application {} is disabled on this card",
                    def.name
                )))
            }
            Sw::APP_PERMANENTLY_LOCKED => return Err(AppError::PermanentlyBlocked),
            sw => return Err(AppError::card("SELECT of the application", sw)),
        }
        let sfi = def.records_sfi();
        let mut out = Vec::new();
        for (i, f) in def.fields.iter().enumerate() {
            let r = self.expect(
                "READ RECORD",
                &[0x00, 0xB2, (i + 1) as u8, (sfi << 3) | 0x04, 0x00],
            )?;
            let v = def.value_of(f, &r).ok_or_else(|| {
                AppError::Refused(format!(
                    "record {} of application {} is not field {}: {}",
                    i + 1,
                    def.name,
                    f.name,
                    hex::encode_upper(&r)
                ))
            })?;
            out.push((f.name.clone(), v));
        }
        Ok(out)
    }
}
