//! The terminal itself: a load host and a purchase terminal (with its PSAM emulated by a
//! [`KeyStore`]) over any [`Transport`].

use std::time::{Duration, Instant};

use card_os::apdu::{split_response, Sw};
use time::OffsetDateTime;

use super::apdu::{self, CappUpdate, PurseKind, SFI_LOG, SFI_PUBLIC};
use super::error::TerminalError;
use super::journal::{Journal, NoJournal, Pending};
use super::log::LogRecord;
use super::record::{host_time, TransactionKind, TransactionRecord};
use crate::keys::purse::TYPE_CAPP_PURCHASE;
use crate::keys::{
    CardFactors, HostTime, KeyRef, KeyStore, Load, LoadInit, PurchaseInit, PurchaseRequest,
};
use crate::transport::{self, Transport};

/// The AID the terminal selects unless told otherwise: `A0 00 00 00 03 86 98 07 01`, the
/// electronic purse of Chinese city cards ("CityUnion", card-specs §3.3), which phone readers of
/// transit cards know, and the purse ADF of the project's default Wenzhou profile. (T-Union cards
/// use `A0 00 00 06 32 01 01 05`: `--aid`.)
pub const DEFAULT_AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x01];

/// The terminal id used unless told otherwise.
pub const DEFAULT_TERMINAL_ID: [u8; 6] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x01];

/// The names of the purse keys in the key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyNames {
    /// Load key (`DLK`).
    pub load: String,
    /// Purchase key (`DPK`).
    pub purchase: String,
    /// TAC key (`DTK`).
    pub tac: String,
}

impl Default for KeyNames {
    fn default() -> Self {
        KeyNames {
            load: "DLK".into(),
            purchase: "DPK".into(),
            tac: "DTK".into(),
        }
    }
}

/// How the terminal talks to the purse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalConfig {
    /// The DF name of the purse application ([`DEFAULT_AID`]).
    pub aid: Vec<u8>,
    /// Which purse: the EP (default) or the ED (which needs the PIN first).
    pub purse: PurseKind,
    /// Key index of the DLK (INITIALIZE FOR LOAD).
    pub load_key_index: u8,
    /// Key index of the DPK (INITIALIZE FOR PURCHASE).
    pub purchase_key_index: u8,
    /// Key names in the key set.
    pub keys: KeyNames,
    /// This terminal's id.
    pub terminal_id: [u8; 6],
    /// How long to wait for the card to come back when it is lost during CREDIT or DEBIT.
    pub recovery_wait: Duration,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            aid: DEFAULT_AID.to_vec(),
            purse: PurseKind::Ep,
            load_key_index: 1,
            purchase_key_index: 1,
            keys: KeyNames::default(),
            terminal_id: DEFAULT_TERMINAL_ID,
            recovery_wait: Duration::from_secs(30),
        }
    }
}

/// What SELECT and the public data file told about the purse application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurseApplication {
    /// Its DF name.
    pub aid: Vec<u8>,
    /// The FCI that SELECT returned.
    pub fci: Vec<u8>,
    /// The public data (EF `0015`): from the FCI's `9F0C` when the card puts it there, else read
    /// with READ BINARY.
    pub public_data: Vec<u8>,
    /// The application serial number: bytes 10..20 of the public data.
    pub serial: [u8; 10],
}

impl PurseApplication {
    /// The card data the purse keys are diversified with.
    pub fn factors(&self) -> CardFactors {
        // 10 bytes: always accepted.
        CardFactors::NONE
            .with_application_serial(&self.serial)
            .unwrap_or_default()
    }

    /// The serial in hex.
    pub fn serial_hex(&self) -> String {
        hex::encode_upper(self.serial)
    }
}

/// Finds the value of `tag` among BER-TLV objects, descending into constructed ones (enough for
/// an FCI: one- and two-byte tags, lengths up to `82 xx xx`).
pub fn find_tlv(mut data: &[u8], tag: u16) -> Option<&[u8]> {
    while let Some(&first) = data.first() {
        if first == 0x00 || first == 0xFF {
            data = &data[1..];
            continue;
        }
        let (t, tag_len) = if first & 0x1F == 0x1F {
            (u16::from_be_bytes([first, *data.get(1)?]), 2)
        } else {
            (u16::from(first), 1)
        };
        let rest = data.get(tag_len..)?;
        let (len, len_len) = match *rest.first()? {
            n if n < 0x80 => (usize::from(n), 1),
            0x81 => (usize::from(*rest.get(1)?), 2),
            0x82 => (
                usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                3,
            ),
            _ => return None,
        };
        let value = rest.get(len_len..len_len + len)?;
        if t == tag {
            return Some(value);
        }
        if first & 0x20 != 0 {
            if let Some(v) = find_tlv(value, tag) {
                return Some(v);
            }
        }
        data = &rest[len_len + len..];
    }
    None
}

/// Something the terminal reports while it works (for a progress display or a log).
#[derive(Debug)]
pub enum TerminalEvent<'e> {
    /// The reader failed after CREDIT or DEBIT was sent: the terminal now waits for the card to
    /// prove the outcome.
    Interrupted {
        /// The pending transaction.
        pending: &'e Pending,
        /// What failed.
        error: &'e transport::Error,
        /// How long the terminal waits for the card.
        wait: Duration,
    },
    /// The card is back (its ATR).
    Reconnected(&'e [u8]),
    /// A transaction left pending by an earlier run was found on this card and settled first.
    EarlierSettled(&'e Result<TransactionRecord, TerminalError>),
    /// The journal could not forget a settled transaction (it will be asked about again).
    JournalProblem(&'e str),
    /// A verified transaction could not be recorded (the recorder failed): it stays in the
    /// journal, and the next run that meets the card settles and records it again.
    NotRecorded {
        /// The transaction.
        record: &'e TransactionRecord,
        /// Why the recorder failed.
        error: &'e str,
    },
}

type Clock<'a> = Box<dyn FnMut() -> HostTime + 'a>;
type Events<'a> = Box<dyn FnMut(&TerminalEvent<'_>) + 'a>;
type Recorder<'a> = Box<dyn FnMut(&TransactionRecord) -> Result<(), String> + 'a>;

/// The local time in China (UTC+8), as terminals there send it.
pub fn china_time_now() -> HostTime {
    let now = OffsetDateTime::now_utc().to_offset(crate::holder::CHINA_TIME);
    host_time(time::PrimitiveDateTime::new(now.date(), now.time()))
}

/// A load host and purchase terminal for the card behind `T`.
///
/// Every operation selects the purse application (SELECT by name; the public data from the FCI
/// or READ BINARY SFI `15`), settles a transaction left pending on this card by an earlier run,
/// and then does its job:
///
/// | operation | APDUs (FCI with `9F0C`) |
/// |---|---|
/// | [`Terminal::balance`] | SELECT, GET BALANCE |
/// | [`Terminal::load`] | SELECT, INITIALIZE FOR LOAD, CREDIT FOR LOAD |
/// | [`Terminal::purchase`] | SELECT, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE |
/// | [`Terminal::purchase`] with a [`CappUpdate`] | SELECT, INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT |
/// | [`Terminal::log`] | SELECT, READ RECORD SFI `18` 1, 2, … until `6A83` |
///
/// When the reader fails after CREDIT or DEBIT was sent, the terminal reconnects
/// ([`Transport::reconnect`]: waits for the card to be back), selects the application, checks
/// that it is the same card, and asks GET TRANSACTION PROOF with the counter of the INITIALIZE:
/// the transaction is either done (MAC2 and TAC verified: a record with `recovered: true`) or not
/// done ([`TerminalError::NotDone`]), never charged twice and never lost silently.
pub struct Terminal<'a, T: Transport> {
    transport: T,
    keys: &'a dyn KeyStore,
    config: TerminalConfig,
    clock: Clock<'a>,
    journal: Box<dyn Journal + 'a>,
    events: Events<'a>,
    recorder: Recorder<'a>,
    app: Option<PurseApplication>,
    apdus: u32,
}

/// What the purse log says about a pending transaction.
enum InLog {
    /// A record with its counter that is its own.
    Ours,
    /// A record with its counter that belongs to another transaction.
    Another,
    /// No record with its counter.
    Missing,
}

impl<'a, T: Transport> Terminal<'a, T> {
    /// A terminal over `transport` computing with `keys` (its PSAM's terminal counter must be
    /// attached for purchases: `KeySet::with_terminal_counter`). China time, no journal.
    pub fn new(transport: T, keys: &'a dyn KeyStore, config: TerminalConfig) -> Self {
        Terminal {
            transport,
            keys,
            config,
            clock: Box::new(china_time_now),
            journal: Box::new(NoJournal),
            events: Box::new(|_| {}),
            recorder: Box::new(|_| Ok(())),
            app: None,
            apdus: 0,
        }
    }

    /// Uses `clock` for the date and time sent to the card.
    pub fn with_clock(mut self, clock: impl FnMut() -> HostTime + 'a) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Keeps pending transactions in `journal` (see [`super::journal`]).
    pub fn with_journal(mut self, journal: impl Journal + 'a) -> Self {
        self.journal = Box::new(journal);
        self
    }

    /// Calls `record` with every transaction the card proved (MAC2/TAC verified) — made now or
    /// settled from the journal — **before** its journal entry is removed. If `record` fails, the
    /// entry stays ([`TerminalEvent::NotRecorded`]) and the next run that meets the card settles
    /// it and calls `record` again, so `record` must accept a transaction it has seen before
    /// (the registry's ledger keys them by card, counter and type). A crash between the two
    /// steps therefore never loses a ledger entry.
    pub fn with_recorder(
        mut self,
        record: impl FnMut(&TransactionRecord) -> Result<(), String> + 'a,
    ) -> Self {
        self.recorder = Box::new(record);
        self
    }

    /// Calls `f` for every [`TerminalEvent`].
    pub fn on_event(mut self, f: impl FnMut(&TerminalEvent<'_>) + 'a) -> Self {
        self.events = Box::new(f);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TerminalConfig {
        &self.config
    }

    /// Command APDUs sent so far.
    pub fn apdus(&self) -> u32 {
        self.apdus
    }

    /// The transport (e.g. to arm a simulated power cut).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The application found by the last SELECT.
    pub fn application(&self) -> Option<&PurseApplication> {
        self.app.as_ref()
    }

    fn exchange(&mut self, command: &[u8]) -> Result<(Vec<u8>, Sw), transport::Error> {
        self.apdus = self.apdus.saturating_add(1);
        let response = self.transport.transmit(command)?;
        let (data, sw) = split_response(&response).ok_or_else(|| transport::Error::Protocol {
            reader: self.transport.name().to_owned(),
            detail: "an answer without a status word".into(),
        })?;
        Ok((data.to_vec(), sw))
    }

    /// SELECT the purse application and read its public data (nothing else; no settling).
    pub fn select(&mut self) -> Result<PurseApplication, TerminalError> {
        self.app = None;
        let aid = self.config.aid.clone();
        let (fci, sw) = self.exchange(&apdu::select_by_name(&aid))?;
        match sw {
            Sw::SUCCESS => {}
            Sw::FILE_NOT_FOUND => {
                return Err(TerminalError::NotPersonalized(format!(
                    "it has no application named {} (SELECT answered 6A82)",
                    hex::encode_upper(&aid)
                )))
            }
            sw => return Err(TerminalError::from_sw("SELECT", sw)),
        }
        let public_data = match find_tlv(&fci, 0x9F0C) {
            Some(d) if d.len() >= 20 => d.to_vec(),
            _ => {
                let (data, sw) = self.exchange(&apdu::read_binary_sfi(SFI_PUBLIC))?;
                match sw {
                    Sw::SUCCESS => data,
                    Sw::FILE_NOT_FOUND => {
                        return Err(TerminalError::NotPersonalized(
                            "the purse application has no public data file 0015 (SFI 15)".into(),
                        ))
                    }
                    sw => return Err(TerminalError::from_sw("READ BINARY 0015", sw)),
                }
            }
        };
        let serial: [u8; 10] = match public_data.get(10..20) {
            Some(s) => s.try_into().unwrap_or([0; 10]),
            None => {
                return Err(TerminalError::NotPersonalized(format!(
                    "its public data (EF 0015) holds {} bytes, too few for an application serial \
                     number (bytes 10..20)",
                    public_data.len()
                )))
            }
        };
        if serial.iter().all(|&b| b == 0) {
            return Err(TerminalError::NotPersonalized(
                "its public data (EF 0015) has no application serial number (all zero)".into(),
            ));
        }
        let app = PurseApplication {
            aid,
            fci,
            public_data,
            serial,
        };
        self.app = Some(app.clone());
        Ok(app)
    }

    /// SELECT, then settle a transaction an earlier run left pending on this card.
    fn open(&mut self) -> Result<PurseApplication, TerminalError> {
        let app = self.select()?;
        let pending = self
            .journal
            .pending_for(&app.serial)
            .map_err(TerminalError::Journal)?;
        if let Some(pending) = pending {
            let outcome = self.settle(&pending);
            (self.events)(&TerminalEvent::EarlierSettled(&outcome));
            if let Err(e @ (TerminalError::Unsettled { .. } | TerminalError::Transport(_))) =
                outcome
            {
                return Err(e);
            }
            // Settling selects again; the application is the same.
            if self.app.is_none() {
                self.select()?;
            }
        }
        Ok(app)
    }

    fn read_balance(&mut self) -> Result<u32, TerminalError> {
        let (data, sw) = self.exchange(&apdu::get_balance(self.config.purse))?;
        match sw {
            Sw::SUCCESS => {
                let b: [u8; 4] =
                    data.as_slice()
                        .try_into()
                        .map_err(|_| TerminalError::BadResponse {
                            command: "GET BALANCE",
                            detail: format!("{} bytes, expected 4", data.len()),
                        })?;
                Ok(u32::from_be_bytes(b))
            }
            sw => Err(TerminalError::from_sw("GET BALANCE", sw)),
        }
    }

    /// The purse's balance, in cents.
    pub fn balance(&mut self) -> Result<u32, TerminalError> {
        self.open()?;
        self.read_balance()
    }

    fn read_log(
        &mut self,
        mut stop: impl FnMut(&LogRecord) -> bool,
    ) -> Result<Vec<LogRecord>, TerminalError> {
        let mut out = Vec::new();
        for n in 1..=u8::MAX {
            let (data, sw) = self.exchange(&apdu::read_record_sfi(SFI_LOG, n))?;
            match sw {
                Sw::SUCCESS => {
                    let r = LogRecord::parse(n, &data).map_err(|e| TerminalError::BadResponse {
                        command: "READ RECORD (log)",
                        detail: e.to_string(),
                    })?;
                    let done = stop(&r);
                    out.push(r);
                    if done {
                        break;
                    }
                }
                Sw::RECORD_NOT_FOUND => break,
                Sw::FILE_NOT_FOUND => {
                    return Err(TerminalError::NotPersonalized(
                        "the purse application has no transaction log (SFI 18)".into(),
                    ))
                }
                sw => return Err(TerminalError::from_sw("READ RECORD (log)", sw)),
            }
        }
        Ok(out)
    }

    /// The purse's transaction log, newest first (READ RECORD SFI `18` 1, 2, … until `6A83`).
    pub fn log(&mut self) -> Result<Vec<LogRecord>, TerminalError> {
        self.open()?;
        self.read_log(|_| false)
    }

    /// Loads `amount` cents: INITIALIZE FOR LOAD, MAC1 checked and MAC2 made by the key store,
    /// CREDIT FOR LOAD, TAC checked.
    pub fn load(&mut self, amount: u32) -> Result<TransactionRecord, TerminalError> {
        let start = self.apdus;
        let app = self.open()?;
        let purse = self.config.purse;
        let terminal_id = self.config.terminal_id;
        let (data, sw) = self.exchange(&apdu::initialize_for_load(
            purse,
            self.config.load_key_index,
            amount,
            &terminal_id,
        ))?;
        match sw {
            Sw::SUCCESS => {}
            Sw::INSUFFICIENT_FUNDS => {
                return Err(TerminalError::MaxBalanceExceeded {
                    balance: self.read_balance().ok(),
                    amount,
                })
            }
            Sw::KEY_INDEX_NOT_SUPPORTED => {
                return Err(TerminalError::NotPersonalized(format!(
                    "the purse has no load key (DLK) with index {:02X}, or no TAC key (9403)",
                    self.config.load_key_index
                )))
            }
            Sw::COUNTER_AT_MAX => return Err(TerminalError::CounterExhausted("online (load)")),
            sw => return Err(TerminalError::from_sw("INITIALIZE FOR LOAD", sw)),
        }
        let init = LoadInit::parse(&data).map_err(|e| TerminalError::BadResponse {
            command: "INITIALIZE FOR LOAD",
            detail: e.to_string(),
        })?;
        let load = Load {
            amount,
            txn_type: purse.load_type(),
            terminal_id,
        };
        let at = (self.clock)();
        let factors = app.factors();
        let mac2 = self
            .keys
            .load_mac2(
                KeyRef::new(&self.config.keys.load, &factors),
                &init,
                &load,
                &at,
            )
            .map_err(TerminalError::from_keys)?;
        let pending = Pending::load(app.serial, purse, &init, &load, &at, mac2);
        self.journal.begin(&pending).map_err(|e| {
            TerminalError::Journal(format!(
                "cannot record the pending transaction ({e}), so it was not sent and nothing moved"
            ))
        })?;
        let result = match self.exchange(&apdu::credit_for_load(&at, &mac2)) {
            Ok((data, Sw::SUCCESS)) => match <[u8; 4]>::try_from(data.as_slice()) {
                Ok(tac) => self.finish(&pending, mac2, tac, false),
                // Done, but the TAC is garbled: ask for the proof.
                Err(_) => self.settle_here(&pending, None),
            },
            Ok((_, sw)) => {
                // Refused: the card changed nothing (purse.md, "a refused transaction changes
                // nothing").
                self.forget(&pending);
                Err(match sw {
                    Sw::MAC_INVALID => TerminalError::WrongKeySet(
                        "the card refused MAC2 (9302): the key set's load key is not this card's"
                            .into(),
                    ),
                    sw => TerminalError::from_sw("CREDIT FOR LOAD", sw),
                })
            }
            Err(e) => self.recover(&pending, e),
        };
        self.with_apdus(result, start)
    }

    /// Purchases `amount` cents: INITIALIZE FOR PURCHASE, MAC1 from the PSAM (which takes the
    /// next terminal transaction number), DEBIT FOR PURCHASE, MAC2 and TAC checked. With `capp`,
    /// a composite purchase: INITIALIZE FOR CAPP PURCHASE and UPDATE CAPP DATA CACHE before the
    /// DEBIT (EP only).
    pub fn purchase(
        &mut self,
        amount: u32,
        capp: Option<&CappUpdate>,
    ) -> Result<TransactionRecord, TerminalError> {
        let start = self.apdus;
        let app = self.open()?;
        let purse = self.config.purse;
        let terminal_id = self.config.terminal_id;
        let key_index = self.config.purchase_key_index;
        let (kind, txn_type, init_cmd) = match capp {
            None => (
                TransactionKind::Purchase,
                purse.purchase_type(),
                apdu::initialize_for_purchase(purse, key_index, amount, &terminal_id),
            ),
            Some(_) if purse != PurseKind::Ep => {
                return Err(TerminalError::Card {
                    command: "INITIALIZE FOR CAPP PURCHASE",
                    sw: Sw::WRONG_P1_P2,
                })
            }
            Some(_) => (
                TransactionKind::CappPurchase,
                TYPE_CAPP_PURCHASE,
                apdu::initialize_for_capp_purchase(key_index, amount, &terminal_id),
            ),
        };
        let command = if capp.is_some() {
            "INITIALIZE FOR CAPP PURCHASE"
        } else {
            "INITIALIZE FOR PURCHASE"
        };
        let (data, sw) = self.exchange(&init_cmd)?;
        match sw {
            Sw::SUCCESS => {}
            Sw::INSUFFICIENT_FUNDS => {
                return Err(TerminalError::InsufficientBalance {
                    balance: self.read_balance().ok(),
                    amount,
                })
            }
            Sw::KEY_INDEX_NOT_SUPPORTED => {
                return Err(TerminalError::NotPersonalized(format!(
                    "the purse has no purchase key (DPK) with index {key_index:02X}, or no TAC \
                     key (9403)"
                )))
            }
            Sw::COUNTER_AT_MAX => {
                return Err(TerminalError::CounterExhausted("offline (purchase)"))
            }
            sw => return Err(TerminalError::from_sw(command, sw)),
        }
        let init = PurchaseInit::parse(&data).map_err(|e| TerminalError::BadResponse {
            command,
            detail: e.to_string(),
        })?;
        let request = PurchaseRequest {
            amount,
            txn_type,
            terminal_id,
            at: (self.clock)(),
        };
        let factors = app.factors();
        let signed = self
            .keys
            .purchase_mac1(
                KeyRef::new(&self.config.keys.purchase, &factors),
                &init,
                &request,
            )
            .map_err(TerminalError::from_keys)?;
        if let Some(update) = capp {
            let (_, sw) = self.exchange(&update.command())?;
            if sw != Sw::SUCCESS {
                // The card cancelled the purchase: nothing was debited.
                return Err(TerminalError::from_sw("UPDATE CAPP DATA CACHE", sw));
            }
        }
        let pending = Pending::purchase(
            app.serial,
            kind,
            purse,
            &init,
            &signed.purchase,
            signed.mac1,
        );
        self.journal.begin(&pending).map_err(|e| {
            TerminalError::Journal(format!(
                "cannot record the pending transaction ({e}), so it was not sent and nothing moved"
            ))
        })?;
        let result = match self.exchange(&apdu::debit_for_purchase(&signed.debit_data())) {
            Ok((data, Sw::SUCCESS)) if data.len() == 8 => {
                let tac = [data[0], data[1], data[2], data[3]];
                let mac2 = [data[4], data[5], data[6], data[7]];
                self.finish(&pending, mac2, tac, false)
            }
            Ok((_, Sw::SUCCESS)) => self.settle_here(&pending, None),
            Ok((_, sw)) => {
                self.forget(&pending);
                Err(match sw {
                    Sw::MAC_INVALID => TerminalError::WrongKeySet(
                        "the card refused MAC1 (9302): the key set's purchase key is not this \
                         card's"
                            .into(),
                    ),
                    sw => TerminalError::from_sw("DEBIT FOR PURCHASE", sw),
                })
            }
            Err(e) => self.recover(&pending, e),
        };
        self.with_apdus(result, start)
    }

    fn with_apdus(
        &self,
        result: Result<TransactionRecord, TerminalError>,
        start: u32,
    ) -> Result<TransactionRecord, TerminalError> {
        let n = self.apdus - start;
        match result {
            Ok(mut r) => {
                r.apdus = n;
                Ok(r)
            }
            Err(TerminalError::Unverified {
                mut record,
                problem,
            }) => {
                record.apdus = n;
                Err(TerminalError::Unverified { record, problem })
            }
            Err(e) => Err(e),
        }
    }

    fn forget(&mut self, pending: &Pending) {
        if let Err(e) = self.journal.end(pending) {
            (self.events)(&TerminalEvent::JournalProblem(&e));
        }
    }

    /// Why MAC2 (a purchase's, or for a load the one the host sent) and the TAC of `pending`
    /// do not verify, if they do not.
    fn proof_problem(&self, pending: &Pending, mac2: [u8; 4], tac: [u8; 4]) -> Option<String> {
        let factors = CardFactors::NONE
            .with_application_serial(&pending.card_serial)
            .unwrap_or_default();
        let names = &self.config.keys;
        let checked = match pending.kind {
            TransactionKind::Load => {
                if Some(mac2) != pending.load_mac2 {
                    Err(format!(
                        "the card's proof carries MAC2 {} where the host sent {}",
                        hex::encode_upper(mac2),
                        hex::encode_upper(pending.load_mac2.unwrap_or_default())
                    ))
                } else {
                    self.keys
                        .verify_load_tac(
                            KeyRef::new(&names.tac, &factors),
                            &pending.load_init(),
                            &pending.load_fields(),
                            &pending.at(),
                            &tac,
                        )
                        .map_err(|e| e.to_string())
                }
            }
            _ => self
                .keys
                .verify_purchase_mac2(
                    KeyRef::new(&names.purchase, &factors),
                    &pending.purchase_init(),
                    &pending.purchase_fields(),
                    &mac2,
                )
                .and_then(|()| {
                    self.keys.verify_purchase_tac(
                        KeyRef::new(&names.tac, &factors),
                        &pending.purchase_fields(),
                        &tac,
                    )
                })
                .map_err(|e| e.to_string()),
        };
        checked.err()
    }

    /// The record of `pending` as done, with this proof.
    fn record_of(
        pending: &Pending,
        mac2: [u8; 4],
        tac: [u8; 4],
        recovered: bool,
        verified: bool,
    ) -> TransactionRecord {
        TransactionRecord {
            card_serial: pending.card_serial,
            kind: pending.kind,
            purse: pending.purse,
            txn_type: pending.txn_type,
            amount: pending.amount,
            balance_before: pending.balance_before,
            balance_after: pending.balance_if_done(),
            card_counter: pending.card_counter,
            key_version: pending.key_version,
            algorithm_id: pending.algorithm_id,
            terminal_id: pending.terminal_id,
            terminal_seq: pending.terminal_seq,
            at: pending.at(),
            mac2,
            tac,
            verified,
            recovered,
            apdus: 0,
        }
    }

    /// The card answered CREDIT/DEBIT: the transaction happened. Its record, verified or not; the
    /// journal entry goes either way.
    fn finish(
        &mut self,
        pending: &Pending,
        mac2: [u8; 4],
        tac: [u8; 4],
        recovered: bool,
    ) -> Result<TransactionRecord, TerminalError> {
        match self.proof_problem(pending, mac2, tac) {
            None => {
                let record = Self::record_of(pending, mac2, tac, recovered, true);
                self.record_then_forget(pending, &record);
                Ok(record)
            }
            Some(problem) => {
                self.forget(pending);
                Err(TerminalError::Unverified {
                    record: Box::new(Self::record_of(pending, mac2, tac, recovered, false)),
                    problem: format!("its proof does not verify: {problem}"),
                })
            }
        }
    }

    /// Hands a proven transaction to the recorder, and forgets it only once it is recorded.
    fn record_then_forget(&mut self, pending: &Pending, record: &TransactionRecord) {
        match (self.recorder)(record) {
            Ok(()) => self.forget(pending),
            Err(error) => (self.events)(&TerminalEvent::NotRecorded {
                record,
                error: &error,
            }),
        }
    }

    /// What the purse log says of `pending`: a record of its purse and kind with its counter that
    /// is its own (same type, amount, terminal, date and time), another transaction's, or none.
    fn find_in_log(&mut self, pending: &Pending) -> Result<InLog, TerminalError> {
        let load = pending.kind == TransactionKind::Load;
        let family = |t: u8| match (load, pending.purse) {
            (true, PurseKind::Ep) => t == 0x02,
            (true, PurseKind::Ed) => t == 0x01,
            (false, PurseKind::Ep) => t == 0x06 || t == 0x09,
            (false, PurseKind::Ed) => t == 0x05,
        };
        let ours = pending.card_counter;
        // Newest first: stop at the first record of the family at or below our counter.
        let log = self.read_log(|r| family(r.txn_type) && r.counter <= ours)?;
        Ok(
            match log.iter().find(|r| family(r.txn_type) && r.counter == ours) {
                Some(r)
                    if r.txn_type == pending.txn_type
                        && r.amount == pending.amount
                        && r.terminal_id == pending.terminal_id
                        && r.at == pending.at() =>
                {
                    InLog::Ours
                }
                Some(_) => InLog::Another,
                None => InLog::Missing,
            },
        )
    }

    /// The reader failed after CREDIT/DEBIT was sent: wait for the card, then settle.
    fn recover(
        &mut self,
        pending: &Pending,
        error: transport::Error,
    ) -> Result<TransactionRecord, TerminalError> {
        let wait = self.config.recovery_wait;
        (self.events)(&TerminalEvent::Interrupted {
            pending,
            error: &error,
            wait,
        });
        let what = match &error {
            transport::Error::CardRemoved { .. } => "the card was removed".to_string(),
            transport::Error::Unresponsive { .. } => "the card stopped answering".to_string(),
            other => format!("the reader failed ({other})"),
        };
        let cause = format!("{what} during {}", pending.kind.completing_command());
        let deadline = Instant::now() + wait;
        let mut last = error.to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let not_back = if wait.is_zero() {
                    format!(
                        "{cause}, and the terminal was set not to wait for the card (a recovery \
                         wait of 0 seconds) ({last})"
                    )
                } else {
                    format!(
                        "{cause}, and the card was not back within {} s ({last})",
                        wait.as_secs_f64()
                    )
                };
                return Err(TerminalError::Unsettled {
                    pending: Box::new(pending.clone()),
                    cause: not_back,
                });
            }
            self.app = None;
            match self.transport.reconnect(left) {
                Ok(atr) => (self.events)(&TerminalEvent::Reconnected(&atr)),
                Err(e) => {
                    last = e.to_string();
                    // A transport that gave up early (not a timeout) is retried until the deadline.
                    std::thread::sleep(Duration::from_millis(100).min(left));
                    continue;
                }
            }
            match self.settle_here(pending, Some(&cause)) {
                // The card went away again while we asked: wait for it again.
                Err(TerminalError::Transport(e)) => {
                    last = e.to_string();
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Asks the card in the reader (after SELECT) whether `pending` happened.
    fn settle_here(
        &mut self,
        pending: &Pending,
        cause: Option<&str>,
    ) -> Result<TransactionRecord, TerminalError> {
        let unsettled = |why: String| TerminalError::Unsettled {
            pending: Box::new(pending.clone()),
            cause: why,
        };
        let app = match self.select() {
            Ok(app) => app,
            Err(TerminalError::Transport(e)) => return Err(TerminalError::Transport(e)),
            Err(e) => return Err(unsettled(format!("the card back in the reader: {e}"))),
        };
        if app.serial != pending.card_serial {
            return Err(unsettled(format!(
                "another card is in the reader (application serial {}, the transaction was made \
                 with {})",
                app.serial_hex(),
                hex::encode_upper(pending.card_serial)
            )));
        }
        let (data, sw) = self.exchange(&apdu::get_transaction_proof(
            pending.txn_type,
            pending.card_counter,
        ))?;
        let why = cause.map(str::to_owned).unwrap_or_else(|| {
            format!(
                "{} was sent but its outcome never learnt",
                pending.kind.completing_command()
            )
        });
        let not_done = |this: &mut Self, why: String| -> Result<TransactionRecord, TerminalError> {
            let balance = this.balance_while_settling()?;
            this.forget(pending);
            Err(TerminalError::NotDone {
                kind: pending.kind,
                amount: pending.amount,
                balance,
                cause: why,
            })
        };
        match sw {
            Sw::SUCCESS if data.len() == 8 => {
                let mac = [data[0], data[1], data[2], data[3]];
                let tac = [data[4], data[5], data[6], data[7]];
                let Some(problem) = self.proof_problem(pending, mac, tac) else {
                    // Ours, proven. Read the balance before the journal entry goes, so a card
                    // lost here is asked again; the entry goes once the recorder has it.
                    let balance = self.balance_while_settling()?;
                    let record = Self::record_of(pending, mac, tac, true, true);
                    self.record_then_forget(pending, &record);
                    return match balance {
                        Some(b) if b != record.balance_after => Err(TerminalError::Unverified {
                            problem: format!(
                                "the card's balance is {} yuan where the proven transaction \
                                 leaves {}",
                                super::amount::format_yuan(b),
                                super::amount::format_yuan(record.balance_after)
                            ),
                            record: Box::new(TransactionRecord {
                                verified: false,
                                ..record
                            }),
                        }),
                        _ => Ok(record),
                    };
                };
                // A proof that is not ours: another terminal may have made a transaction with the
                // same counter since (then ours did not happen), or ours happened and its proof
                // is wrong. The log tells which (apdu-specs/purse.md, GET TRANSACTION PROOF).
                match self.find_in_log(pending)? {
                    InLog::Ours => {
                        self.forget(pending);
                        Err(TerminalError::Unverified {
                            record: Box::new(Self::record_of(pending, mac, tac, true, false)),
                            problem: format!("its proof does not verify: {problem}"),
                        })
                    }
                    InLog::Another => not_done(
                        self,
                        format!(
                            "{why}; the card has since made another transaction with the same \
                             counter elsewhere, so this one did not happen"
                        ),
                    ),
                    InLog::Missing => Err(unsettled(format!(
                        "the card proves a transaction with this counter that is not this one \
                         ({problem}), and its log shows none"
                    ))),
                }
            }
            Sw::MAC_NOT_AVAILABLE => {
                // Not the card's last transaction. The log tells whether it happened before a
                // later one replaced its proof, or not at all.
                match self.find_in_log(pending)? {
                    InLog::Ours => {
                        self.forget(pending);
                        Err(TerminalError::Unverified {
                            record: Box::new(Self::record_of(pending, [0; 4], [0; 4], true, false)),
                            problem: "the card has made another transaction since, so it can no \
                                      longer prove this one; its log shows it happened (no TAC \
                                      to verify)"
                                .into(),
                        })
                    }
                    InLog::Another | InLog::Missing => not_done(self, why),
                }
            }
            sw => Err(unsettled(format!("GET TRANSACTION PROOF answered {sw}"))),
        }
    }

    /// GET BALANCE while settling: a lost card is an error (the caller asks again), a refusal only
    /// means the balance is not known.
    fn balance_while_settling(&mut self) -> Result<Option<u32>, TerminalError> {
        match self.read_balance() {
            Ok(b) => Ok(Some(b)),
            Err(TerminalError::Transport(e)) => Err(TerminalError::Transport(e)),
            Err(_) => Ok(None),
        }
    }

    /// Settles a pending transaction (from a journal) with the card in the reader: SELECT, GET
    /// TRANSACTION PROOF, verification. The journal entry is removed once the outcome is known.
    pub fn settle(&mut self, pending: &Pending) -> Result<TransactionRecord, TerminalError> {
        let start = self.apdus;
        let result = self.settle_here(pending, None);
        self.with_apdus(result, start)
    }
}
