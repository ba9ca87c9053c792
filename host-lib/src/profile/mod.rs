//! # Card profiles: the declarative card layout
//!
//! A profile says what a personalized card holds: its DFs (MF, the social-security DDF, its DFs,
//! the purse ADF…) with their rights, key files, keys and EFs, and what each EF is written with.
//! It is TOML (format in `apdu-specs/layout.md`, which also documents the default layout), public
//! and reviewable: it names keys of the key set, never key bytes (apdu-specs/keys.md, "Key set
//! and profile").
//!
//! * [`Profile::parse`] reads a profile and checks everything that can be checked without keys:
//!   structure, FIDs, names, rights, record sizes, data sizes, space in every DF and on the card,
//!   and that personalization can reach every right it needs (and recover a card cut mid-way).
//! * [`Profile::check_keys`] checks it against a key store: every key exists, the key files
//!   hold their keys, each DF's master can replace the transport key.
//! * [`Profile::wenzhou`] is the default profile, shipped in the library
//!   (`host-lib/src/profile/wenzhou.toml`).
//!
//! Every problem is reported with where it is, all at once ([`ProfileError`]), and before any
//! APDU is sent: `personalize` builds its plan from a checked profile.

mod check;
pub mod template;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::keys::record::key_type;
pub use template::{Field, Part, Template};

/// The default profile's TOML text.
pub const WENZHOU_TOML: &str = include_str!("wenzhou.toml");

/// The FID of the MF.
pub const MF: u16 = 0x3F00;

/// Bytes of a file header on the card (apdu-specs/personalization.md, space accounting).
pub const HEADER_LEN: usize = 11;
/// Bytes a key record takes in a key file besides the key (apdu-specs/security.md).
pub const KEY_RECORD_OVERHEAD: usize = 8;
/// Bytes of the card information EF this project writes (apdu-specs/layout.md).
pub const CARD_INFO_LEN: usize = 64;
/// Bytes of a purse file's body (NVM layout 2: FMCOS's 22 and the overdraft limit's room).
pub const PURSE_BODY_LEN: usize = card_os::fs::header::PURSE_BODY_LEN;
/// The most bytes of a DF's FCI file the card puts in its FCI.
pub const MAX_FCI_DATA: usize = 64;

/// Why a profile cannot be used: every problem found, each with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: the profile cannot be used:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ProfileError {
    /// The file (or `default profile`).
    pub origin: String,
    /// The problems, each naming its place ("df 3F00/DDF1, ef 0006: …").
    pub problems: Vec<String>,
}

/// An access-right byte (apdu-specs/conventions.md): `0Y` the MF register must be at least `Y`;
/// `XY` (X ≠ 0) the current DF's register must be within `Y..=X`; `F0` always, `EF` never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Right(pub u8);

impl Right {
    /// Always met.
    pub const ALWAYS: Right = Right(0xF0);
    /// Never met.
    pub const NEVER: Right = Right(0xEF);

    /// Whether the right is met with these security registers (at the MF both are the MF's).
    pub fn met(self, mf_register: u8, df_register: u8) -> bool {
        let (x, y) = (self.0 >> 4, self.0 & 0x0F);
        if x == 0 {
            mf_register >= y
        } else {
            x >= y && (y..=x).contains(&df_register)
        }
    }

    fn parse(text: &str) -> Result<Right, String> {
        match text.trim() {
            "always" => Ok(Right::ALWAYS),
            "never" => Ok(Right::NEVER),
            t => hex_byte(t).map(Right),
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}", self.0)
    }
}

/// How later updates of a key, or writes to an EF, must be protected (the type byte's `80`/`40`
/// bits, apdu-specs/security.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protection {
    /// No bit: plain.
    Plain,
    /// `80`: a line-protection MAC.
    Mac,
    /// `C0`: encrypted and MAC'd.
    Encrypted,
}

impl Protection {
    /// The bits to OR into a type byte.
    pub const fn bits(self) -> u8 {
        match self {
            Protection::Plain => 0x00,
            Protection::Mac => 0x80,
            Protection::Encrypted => 0xC0,
        }
    }

    fn parse(text: &str) -> Result<Protection, String> {
        match text.trim() {
            "plain" | "none" => Ok(Protection::Plain),
            "mac" => Ok(Protection::Mac),
            "encrypted" => Ok(Protection::Encrypted),
            t => Err(format!("{t:?} is not one of plain, mac, encrypted")),
        }
    }
}

/// A key type of the key file (FMCOS 2.0 §7.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `39` external authentication; id `00` is the DF's master.
    ExternalAuth,
    /// `36` line protection.
    LineProtection,
    /// `37` PIN unblock.
    PinUnblock,
    /// `38` PIN reload.
    PinReload,
    /// `3A` a PIN (its value comes from the profile: an initial PIN).
    Pin,
    /// `30` INTERNAL AUTHENTICATE encryption.
    Encrypt,
    /// `31` decryption.
    Decrypt,
    /// `32` MAC.
    MacKey,
    /// `34` internal key (LD/T 32 INTERNAL AUTHENTICATE, the purse's TAC key).
    Internal,
    /// `3C` overdraft-limit update.
    Overdraft,
    /// `3D` unload.
    Unload,
    /// `3E` purchase (DPK).
    Purchase,
    /// `3F` load (DLK).
    Load,
}

impl KeyKind {
    const ALL: [(KeyKind, &'static str, u8); 13] = [
        (
            KeyKind::ExternalAuth,
            "external-auth",
            key_type::EXTERNAL_AUTH,
        ),
        (
            KeyKind::LineProtection,
            "line-protection",
            key_type::LINE_PROTECTION,
        ),
        (KeyKind::PinUnblock, "pin-unblock", key_type::PIN_UNBLOCK),
        (KeyKind::PinReload, "pin-reload", key_type::PIN_RELOAD),
        (KeyKind::Pin, "pin", key_type::PIN),
        (KeyKind::Encrypt, "encrypt", key_type::ENCRYPT),
        (KeyKind::Decrypt, "decrypt", key_type::DECRYPT),
        (KeyKind::MacKey, "mac", key_type::MAC),
        (KeyKind::Internal, "internal", key_type::INTERNAL),
        (KeyKind::Overdraft, "overdraft", key_type::OVERDRAFT),
        (KeyKind::Unload, "unload", key_type::UNLOAD),
        (KeyKind::Purchase, "purchase", key_type::PURCHASE),
        (KeyKind::Load, "load", key_type::LOAD),
    ];

    /// The type byte without protection bits.
    pub fn type_byte(self) -> u8 {
        Self::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or(0, |e| e.2)
    }

    /// The name used in profiles.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("?", |e| e.1)
    }

    fn parse(text: &str) -> Result<KeyKind, String> {
        let t = text.trim();
        Self::ALL
            .iter()
            .find(|(_, name, byte)| *name == t || hex_byte(t).ok() == Some(*byte))
            .map(|e| e.0)
            .ok_or_else(|| {
                format!(
                    "{t:?} is not a key type; the types are {}",
                    Self::ALL.map(|e| e.1).join(", ")
                )
            })
    }

    /// Whether the record carries a follow-on state (external authentication, PIN).
    pub fn has_state(self) -> bool {
        matches!(self, KeyKind::ExternalAuth | KeyKind::Pin)
    }

    /// Whether the record carries an error counter.
    pub fn has_tries(self) -> bool {
        matches!(
            self,
            KeyKind::ExternalAuth
                | KeyKind::Pin
                | KeyKind::LineProtection
                | KeyKind::PinUnblock
                | KeyKind::PinReload
        )
    }
}

/// What a key record's key bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A key of the key set, by name.
    KeySet(String),
    /// An initial PIN (digits packed two per byte, right-padded with `F` to `room` bytes).
    Pin {
        /// The PIN as given (hex digits, e.g. `123456`).
        digits: String,
        /// The bytes the record holds (the longest PIN it can be changed to, in bytes).
        room: u8,
    },
}

/// A key of a key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Its type.
    pub kind: KeyKind,
    /// Its id (P2 of WRITE KEY; with the type, what commands name it by).
    pub id: u8,
    /// Use right.
    pub use_right: Right,
    /// Change right.
    pub change_right: Right,
    /// Follow-on state (external authentication, PIN).
    pub state: Option<u8>,
    /// Tries (the error counter's both nibbles).
    pub tries: Option<u8>,
    /// How the card must receive later updates of the key.
    pub updates: Protection,
    /// Where the key bytes come from.
    pub source: KeySource,
}

impl KeySpec {
    /// Whether this is its DF's master key (external authentication, id 00), which replaces the
    /// transport key and protects every WRITE KEY of its DF.
    pub fn is_master(&self) -> bool {
        self.kind == KeyKind::ExternalAuth && self.id == 0
    }

    /// The key-set name, `None` for a PIN.
    pub fn key_name(&self) -> Option<&str> {
        match &self.source {
            KeySource::KeySet(n) => Some(n),
            KeySource::Pin { .. } => None,
        }
    }

    /// The type byte with its protection bits.
    pub fn type_byte(&self) -> u8 {
        self.kind.type_byte() | self.updates.bits()
    }

    /// The key-record layout text (keys.md §5) for a key of the key set.
    pub fn layout_text(&self) -> String {
        let head = format!(
            "{:02X} {} {}",
            self.type_byte(),
            self.use_right,
            self.change_right
        );
        let tries = self.tries.unwrap_or(3);
        let counter = (tries << 4) | tries;
        match self.kind {
            KeyKind::ExternalAuth | KeyKind::Pin => format!(
                "{head} {:02X} {counter:02X} key alg?",
                self.state.unwrap_or(0)
            ),
            KeyKind::LineProtection | KeyKind::PinUnblock | KeyKind::PinReload => {
                format!("{head} FF {counter:02X} key alg?")
            }
            _ => format!("{head} version alg key"),
        }
    }

    /// Describes the key for messages: `external-auth 0A (RKSSSE)`.
    pub fn describe(&self) -> String {
        match &self.source {
            KeySource::KeySet(n) => format!("{} {:02X} ({n})", self.kind.name(), self.id),
            KeySource::Pin { .. } => format!("pin {:02X}", self.id),
        }
    }
}

/// An EF's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EfKind {
    /// Transparent (`28`).
    Binary {
        /// Size in bytes.
        size: u16,
    },
    /// Fixed-length records (`2A`).
    Fixed {
        /// Number of records.
        records: u8,
        /// Record length.
        len: u8,
    },
    /// Variable-length TLV records (`2C`).
    Variable {
        /// Number of records.
        records: u8,
        /// Longest record (tag and length included).
        len: u8,
    },
    /// Cyclic records (`2E`).
    Cyclic {
        /// Number of records.
        records: u8,
        /// Record length.
        len: u8,
    },
    /// An ED/EP purse (`2F`).
    Purse {
        /// Use right.
        use_right: Right,
        /// The id of its TAC key (`34`).
        tac_key: u8,
        /// The SFI of its transaction log.
        log_sfi: u8,
        /// The highest balance a load may reach, in cents (`None`: no limit, `FFFFFFFF`;
        /// apdu-specs/purse.md).
        max_balance: Option<u32>,
    },
}

impl EfKind {
    /// The type byte without protection bits.
    pub fn type_byte(self) -> u8 {
        match self {
            EfKind::Binary { .. } => 0x28,
            EfKind::Fixed { .. } => 0x2A,
            EfKind::Variable { .. } => 0x2C,
            EfKind::Cyclic { .. } => 0x2E,
            EfKind::Purse { .. } => 0x2F,
        }
    }

    /// Bytes the file takes in its DF (header included).
    pub fn footprint(self) -> usize {
        HEADER_LEN
            + match self {
                EfKind::Binary { size } => usize::from(size),
                EfKind::Fixed { records, len }
                | EfKind::Variable { records, len }
                | EfKind::Cyclic { records, len } => usize::from(records) * (usize::from(len) + 1),
                EfKind::Purse { .. } => PURSE_BODY_LEN,
            }
    }

    /// The profile's name for the structure.
    pub fn name(self) -> &'static str {
        match self {
            EfKind::Binary { .. } => "binary",
            EfKind::Fixed { .. } => "fixed",
            EfKind::Variable { .. } => "variable",
            EfKind::Cyclic { .. } => "cyclic",
            EfKind::Purse { .. } => "purse",
        }
    }
}

/// What personalization writes into an EF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EfData {
    /// Nothing (the file is created empty).
    None,
    /// A binary EF's contents from offset 0.
    Binary(Template),
    /// Records, appended in order.
    Records(Vec<Template>),
    /// The SSSE EF05 items (issuer data, tags 01–07), one record each in the standard order.
    IssuerItems,
    /// The SSSE EF06 items (cardholder: 08, 09, 4E, 0A, 0B, 0C, 0D), one record each.
    CardholderItems,
    /// The holder's photo (a JPEG), from offset 0, if the applicant has one.
    Photo,
    /// The card information (issuance state, card number…), written last (layout.md).
    CardInfo,
}

impl EfData {
    /// The profile's keyword for the data, for messages.
    pub fn describe(&self) -> String {
        match self {
            EfData::None => "nothing".into(),
            EfData::Binary(t) => format!("\"{t}\""),
            EfData::Records(r) => format!("{} record(s)", r.len()),
            EfData::IssuerItems => "issuer-items".into(),
            EfData::CardholderItems => "cardholder-items".into(),
            EfData::Photo => "photo".into(),
            EfData::CardInfo => "card-info".into(),
        }
    }
}

/// An elementary file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfSpec {
    /// Its FID.
    pub fid: u16,
    /// A description for people.
    pub label: Option<String>,
    /// Its structure.
    pub kind: EfKind,
    /// Read right (not for purses).
    pub read: Right,
    /// Write right (not for purses).
    pub write: Right,
    /// The key byte (which `36` key protects writes).
    pub key_byte: u8,
    /// How writes must be protected.
    pub protection: Protection,
    /// What personalization writes into it.
    pub data: EfData,
    /// The key whose authentication opens reading (key-set name), as the profile documents it.
    pub read_key: Option<String>,
    /// The key whose authentication (or, for a protected EF, whose MAC) opens writing.
    pub write_key: Option<String>,
}

impl EfSpec {
    /// The SFI (FIDs `0001`..`001F`), if it has one.
    pub fn sfi(&self) -> Option<u8> {
        sfi_of(self.fid)
    }

    /// The CREATE FILE data field.
    pub fn create_data(&self) -> Vec<u8> {
        let t = self.kind.type_byte() | self.protection.bits();
        match self.kind {
            EfKind::Binary { size } => {
                let [s0, s1] = size.to_be_bytes();
                vec![t, s0, s1, self.read.0, self.write.0, 0xFF, self.key_byte]
            }
            EfKind::Fixed { records, len }
            | EfKind::Variable { records, len }
            | EfKind::Cyclic { records, len } => {
                vec![
                    t,
                    records,
                    len,
                    self.read.0,
                    self.write.0,
                    0xFF,
                    self.key_byte,
                ]
            }
            EfKind::Purse {
                use_right,
                tac_key,
                log_sfi,
                max_balance,
            } => {
                let mut d = vec![t, 0x02, 0x08, use_right.0, tac_key, 0xFF, log_sfi];
                d.extend(max_balance.map(u32::to_be_bytes).into_iter().flatten());
                d
            }
        }
    }

    /// The id of the `36` key that protects writes (from the key byte, FMCOS 2.0 §7.13).
    pub fn write_key_id(&self) -> u8 {
        3 - (self.key_byte & 0x03)
    }

    /// For messages: `ef 0006`.
    pub fn describe(&self) -> String {
        format!("ef {:04X}", self.fid)
    }
}

/// How a DF's FCI file is used (the FCI-file byte of CREATE FILE, apdu-specs/files.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FciMode {
    /// `80 | SFI`: `A5 { 9F0C <file> }` (FMCOS/PBOC).
    IssuerData,
    /// `C0 | SFI`: the file is the `A5` template's value (the social-security DDF).
    Template,
}

/// A DF's FCI file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fci {
    /// The binary EF.
    pub fid: u16,
    /// How it is used.
    pub mode: FciMode,
}

/// A DF's key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyFileSpec {
    /// Space for key records, in bytes (each key takes its length + 8).
    pub space: u16,
    /// Add right.
    pub add: Right,
    /// The DF-SFI byte of CREATE FILE.
    pub df_sfi: u8,
}

impl KeyFileSpec {
    /// The CREATE FILE data field.
    pub fn create_data(&self) -> Vec<u8> {
        let [s0, s1] = self.space.to_be_bytes();
        vec![0x3F, s0, s1, self.df_sfi, self.add.0, 0xFF, 0xFF]
    }
}

/// A dedicated file (the MF, a DDF or an ADF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfSpec {
    /// FIDs from the MF: `[3F00]`, `[3F00, DDF1]`…
    pub path: Vec<u16>,
    /// The DF name (AID), 5..16 bytes.
    pub name: Vec<u8>,
    /// The name as written in the profile.
    pub name_text: String,
    /// A description for people.
    pub label: Option<String>,
    /// Declared space (header, name and files), `None` for the MF (it keeps its space).
    pub space: Option<u16>,
    /// `Some(spare)` when the profile said `space = "auto"`: the space is what the DF needs plus
    /// `spare` bytes (filled in by the checks).
    pub space_auto: Option<u16>,
    /// Create right.
    pub create: Right,
    /// Erase right.
    pub erase: Right,
    /// The FCI file.
    pub fci: Option<Fci>,
    /// The key file.
    pub key_file: KeyFileSpec,
    /// The keys, in loading order (the master first).
    pub keys: Vec<KeySpec>,
    /// The EFs, in creation order.
    pub efs: Vec<EfSpec>,
}

impl DfSpec {
    /// The DF's FID.
    pub fn fid(&self) -> u16 {
        *self.path.last().unwrap_or(&MF)
    }

    /// Whether this is the MF.
    pub fn is_mf(&self) -> bool {
        self.path.len() == 1
    }

    /// The path as text: `3F00/DDF1`.
    pub fn path_text(&self) -> String {
        path_text(&self.path)
    }

    /// The master key (external authentication id 00).
    pub fn master(&self) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.is_master())
    }

    /// The FCI-file byte of CREATE FILE.
    pub fn fci_byte(&self) -> u8 {
        match self.fci {
            None => 0xFF,
            Some(Fci { fid, mode }) => {
                let sfi = sfi_of(fid).unwrap_or(0);
                match mode {
                    FciMode::IssuerData => 0x80 | sfi,
                    FciMode::Template => 0xC0 | sfi,
                }
            }
        }
    }

    /// The CREATE FILE data field (for the MF: the redefinition, keeping its space).
    pub fn create_data(&self) -> Vec<u8> {
        let [s0, s1] = self.space.unwrap_or(0xFFFF).to_be_bytes();
        let mut d = vec![
            0x38,
            s0,
            s1,
            self.create.0,
            self.erase.0,
            self.fci_byte(),
            0xFF,
            0xFF,
        ];
        d.extend_from_slice(&self.name);
        d
    }

    /// The EF with this FID.
    pub fn ef(&self, fid: u16) -> Option<&EfSpec> {
        self.efs.iter().find(|e| e.fid == fid)
    }

    /// Bytes the key file takes with these keys, given each key-set key's length.
    pub fn key_bytes(&self, key_len: impl Fn(&str) -> Option<usize>) -> Option<usize> {
        self.keys
            .iter()
            .map(|k| match &k.source {
                KeySource::KeySet(name) => key_len(name).map(|l| l + KEY_RECORD_OVERHEAD),
                KeySource::Pin { room, .. } => Some(usize::from(*room) + KEY_RECORD_OVERHEAD),
            })
            .sum()
    }

    /// For messages: `df 3F00/DDF1`.
    pub fn describe(&self) -> String {
        format!("df {}", self.path_text())
    }
}

/// Card-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSettings {
    /// Bytes the MF's files may use on the target card.
    pub memory: usize,
    /// The longest command data field to send (photo chunks).
    pub max_data: usize,
    /// The key set's name of the card maker's transport (factory) key.
    pub transport_key: String,
}

/// A checked profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Its id (letters, digits, `.`, `_`, `-`; at most 24 characters: it is written on the card).
    pub id: String,
    /// A description for people.
    pub description: String,
    /// Card-wide settings.
    pub card: CardSettings,
    /// The DFs in creation order; the MF first, every DF after its parent.
    pub dfs: Vec<DfSpec>,
    /// Where it was read from, for messages.
    pub origin: String,
}

/// How a read right is met ([`Profile::read_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAccess<'p> {
    /// Without authentication.
    Free,
    /// After EXTERNAL AUTHENTICATE with this key.
    After(&'p KeySpec),
    /// By none of the DF's keys.
    Never,
}

/// Where an EF with a given kind of data is.
#[derive(Clone, Copy, Debug)]
pub struct Located<'p> {
    /// Its DF.
    pub df: &'p DfSpec,
    /// The EF.
    pub ef: &'p EfSpec,
}

impl Profile {
    /// The default profile (apdu-specs/layout.md).
    pub fn wenzhou() -> Profile {
        // The shipped profile is checked by the tests; a failure here is a build defect.
        Profile::parse(WENZHOU_TOML, "default profile")
            .unwrap_or_else(|e| panic!("the shipped default profile is invalid: {e}"))
    }

    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Profile::parse(&text, &origin)
    }

    /// Parses and checks a profile (everything that needs no key store).
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError {
            origin: origin.to_owned(),
            problems: vec![format!("not a valid profile: {}", e.to_string().trim_end())],
        })?;
        let mut problems = Vec::new();
        let mut profile = convert(raw, origin, &mut problems);
        if let Some(p) = profile.as_mut().filter(|_| problems.is_empty()) {
            check::structure(p, &mut problems);
        }
        match profile {
            Some(p) if problems.is_empty() => Ok(p),
            _ => Err(ProfileError {
                origin: origin.to_owned(),
                problems,
            }),
        }
    }

    /// The MF.
    pub fn mf(&self) -> &DfSpec {
        &self.dfs[0]
    }

    /// The DF at this path.
    pub fn df(&self, path: &[u16]) -> Option<&DfSpec> {
        self.dfs.iter().find(|d| d.path == path)
    }

    /// The child DFs of `df`, in creation order.
    pub fn children<'a>(&'a self, df: &'a DfSpec) -> impl Iterator<Item = &'a DfSpec> + 'a {
        self.dfs
            .iter()
            .filter(move |d| d.path.len() == df.path.len() + 1 && d.path.starts_with(&df.path))
    }

    /// The (first) EF holding this kind of data.
    pub fn find(&self, want: &EfData) -> Option<Located<'_>> {
        self.dfs.iter().find_map(|df| {
            df.efs.iter().find_map(|ef| {
                (std::mem::discriminant(&ef.data) == std::mem::discriminant(want))
                    .then_some(Located { df, ef })
            })
        })
    }

    /// The card information EF.
    pub fn card_info(&self) -> Located<'_> {
        // `structure` checks that there is exactly one, in the MF.
        self.find(&EfData::CardInfo)
            .unwrap_or_else(|| panic!("checked profile without a card-info EF"))
    }

    /// Every key-set key the profile names (keys and template fields), with where.
    pub fn key_names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        out.push((
            self.card.transport_key.clone(),
            "[card] transport_key".to_owned(),
        ));
        for df in &self.dfs {
            for k in &df.keys {
                if let Some(n) = k.key_name() {
                    out.push((
                        n.to_owned(),
                        format!("{}, key {}", df.describe(), k.describe()),
                    ));
                }
            }
            for ef in &df.efs {
                let templates: Vec<&Template> = match &ef.data {
                    EfData::Binary(t) => vec![t],
                    EfData::Records(r) => r.iter().collect(),
                    _ => vec![],
                };
                for t in templates {
                    for f in t.fields() {
                        if let Some(k) = f.key() {
                            out.push((
                                k.to_owned(),
                                format!("{}, {}: field {f}", df.describe(), ef.describe()),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// How an EF of `df` is read: its `read_key` if the profile names one, else as
    /// [`Profile::read_access`] finds.
    pub fn ef_read_access<'p>(&self, df: &'p DfSpec, ef: &EfSpec) -> ReadAccess<'p> {
        if ef.read.met(0, 0) {
            return ReadAccess::Free;
        }
        match &ef.read_key {
            Some(name) => self
                .auth_key(df, name)
                .filter(|k| {
                    let s = k.state.unwrap_or(0);
                    if df.is_mf() {
                        ef.read.met(s, s)
                    } else {
                        ef.read.met(0, s)
                    }
                })
                .map_or(ReadAccess::Never, ReadAccess::After),
            None => self.read_access(df, ef.read),
        }
    }

    /// The external-authentication key `name` of `df`.
    pub fn auth_key<'p>(&self, df: &'p DfSpec, name: &str) -> Option<&'p KeySpec> {
        df.keys
            .iter()
            .find(|k| k.kind == KeyKind::ExternalAuth && k.key_name() == Some(name))
    }

    /// How a right of `df` is met for reading: without authentication, after authenticating
    /// with one of its keys (external authentication, not the master unless nothing else does),
    /// or not at all.
    pub fn read_access<'p>(&self, df: &'p DfSpec, right: Right) -> ReadAccess<'p> {
        if right.met(0, 0) {
            return ReadAccess::Free;
        }
        let granting = |k: &&KeySpec| {
            k.kind == KeyKind::ExternalAuth
                && k.key_name().is_some()
                && k.state.is_some_and(|s| {
                    if df.is_mf() {
                        right.met(s, s)
                    } else {
                        right.met(0, s)
                    }
                })
        };
        df.keys
            .iter()
            .filter(|k| !k.is_master())
            .find(granting)
            .or_else(|| df.keys.iter().find(granting))
            .map_or(ReadAccess::Never, ReadAccess::After)
    }
}

/// `3F00/DDF1`.
pub fn path_text(path: &[u16]) -> String {
    path.iter()
        .map(|f| format!("{f:04X}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The SFI of an EF with this FID (`0001`..`001F`).
pub fn sfi_of(fid: u16) -> Option<u8> {
    (1..=0x1F).contains(&fid).then_some(fid as u8)
}

fn hex_byte(text: &str) -> Result<u8, String> {
    let t = text.trim();
    if t.len() == 2 {
        if let Ok(b) = u8::from_str_radix(t, 16) {
            return Ok(b);
        }
    }
    Err(format!("{t:?} is not a byte in hex (two hex digits)"))
}

fn hex_u16(text: &str) -> Result<u16, String> {
    let t = text.trim();
    if t.len() == 4 {
        if let Ok(v) = u16::from_str_radix(t, 16) {
            return Ok(v);
        }
    }
    Err(format!("{t:?} is not a FID (four hex digits)"))
}

fn nibble(text: &str) -> Result<u8, String> {
    let t = text.trim();
    u8::from_str_radix(t, 16)
        .ok()
        .filter(|v| *v <= 0x0F && !t.is_empty() && t.len() <= 2)
        .ok_or_else(|| format!("{t:?} is not a security state (one hex digit, 0..F)"))
}

/// A DF name: `hex:…` bytes, or text (ASCII as it is, Chinese characters in GBK).
fn df_name(text: &str) -> Result<Vec<u8>, String> {
    if let Some(h) = text.strip_prefix("hex:") {
        return crate::hexfmt::parse(h, 5).map_err(|e| format!("name {text:?}: {e}"));
    }
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    if unmappable {
        return Err(format!("name {text:?}: a character GBK cannot encode"));
    }
    Ok(bytes.into_owned())
}

// ---------------------------------------------------------------------------------------------
// The TOML form

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    format: u32,
    profile: RawMeta,
    card: Option<RawCard>,
    #[serde(default)]
    df: Vec<RawDf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    id: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCard {
    memory: Option<usize>,
    max_data: Option<usize>,
    transport_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSpace {
    Bytes(u32),
    Word(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDf {
    path: String,
    name: String,
    label: Option<String>,
    space: Option<RawSpace>,
    spare: Option<u32>,
    create: String,
    erase: String,
    fci_file: Option<String>,
    fci_mode: Option<String>,
    key_file: Option<RawKeyFile>,
    #[serde(default)]
    key: Vec<RawKey>,
    #[serde(default)]
    ef: Vec<RawEf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    space: RawSpace,
    add: String,
    df_sfi: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key: Option<String>,
    pin: Option<String>,
    room: Option<u8>,
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(rename = "use")]
    use_right: String,
    change: String,
    state: Option<String>,
    tries: Option<u8>,
    updates: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawData {
    One(String),
    Records(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEf {
    fid: String,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    size: Option<u32>,
    records: Option<u32>,
    record_len: Option<u32>,
    read: Option<String>,
    write: Option<String>,
    key_byte: Option<String>,
    protection: Option<String>,
    data: Option<RawData>,
    read_key: Option<String>,
    write_key: Option<String>,
    #[serde(rename = "use")]
    use_right: Option<String>,
    tac_key: Option<String>,
    log: Option<String>,
    max_balance: Option<u32>,
}

/// Collects problems while converting; `None` from a step means "already reported".
struct Problems<'a> {
    out: &'a mut Vec<String>,
}

impl Problems<'_> {
    fn take<T>(&mut self, at: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.out.push(format!("{at}: {e}"));
                None
            }
        }
    }

    fn push(&mut self, at: &str, e: impl fmt::Display) {
        self.out.push(format!("{at}: {e}"));
    }
}

fn convert(raw: RawProfile, origin: &str, out: &mut Vec<String>) -> Option<Profile> {
    let mut p = Problems { out };
    if raw.format != 1 {
        p.push(
            "format",
            format!(
                "{} is not a profile format this program reads (1)",
                raw.format
            ),
        );
    }
    let id = raw.profile.id.trim().to_owned();
    if id.is_empty()
        || id.len() > 24
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        p.push(
            "[profile] id",
            format!("{id:?}: 1 to 24 letters, digits, `.`, `_` or `-` (it is written on the card)"),
        );
    }
    let card = raw.card.unwrap_or_default();
    let card = CardSettings {
        memory: card.memory.unwrap_or(DEFAULT_MEMORY),
        max_data: card.max_data.unwrap_or(DEFAULT_MAX_DATA),
        transport_key: card.transport_key.unwrap_or_else(|| "TRANSPORT".to_owned()),
    };
    if !(16..=251).contains(&card.max_data) {
        p.push(
            "[card] max_data",
            format!(
                "{}: from 16 to 251 bytes (a short APDU's data field, room for a MAC)",
                card.max_data
            ),
        );
    }
    if raw.df.is_empty() {
        p.push(
            "df",
            "the profile has no DF: at least the MF (path \"3F00\")",
        );
    }
    let mut dfs = Vec::new();
    for (i, d) in raw.df.into_iter().enumerate() {
        if let Some(df) = convert_df(d, i, &mut p) {
            dfs.push(df);
        }
    }
    Some(Profile {
        id,
        description: raw.profile.description,
        card,
        dfs,
        origin: origin.to_owned(),
    })
}

/// The space the default simulated card gives the MF's files (apdu-specs/memory.md).
pub const DEFAULT_MEMORY: usize = 31_335;
/// FMCOS's longest command data field.
pub const DEFAULT_MAX_DATA: usize = 239;

fn parse_path(text: &str) -> Result<Vec<u16>, String> {
    let path: Vec<u16> = text
        .split('/')
        .map(hex_u16)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("path {text:?}: {e}"))?;
    if path.first() != Some(&MF) {
        return Err(format!("path {text:?} must start at the MF, 3F00"));
    }
    if path.len() > 3 {
        return Err(format!(
            "path {text:?}: the card has at most three directory levels (MF, DF, DF)"
        ));
    }
    if path[1..].iter().any(|&f| matches!(f, MF | 0xFFFF | 0x0000)) {
        return Err(format!(
            "path {text:?}: 3F00, FFFF and 0000 are no DF's FID"
        ));
    }
    Ok(path)
}

/// A `space` value: bytes, or `"auto"` (computed; `None` here).
fn parse_space(s: RawSpace) -> Result<Option<u16>, String> {
    match s {
        RawSpace::Bytes(b) => u16::try_from(b)
            .ok()
            .filter(|b| *b < 0xFFFF)
            .map(Some)
            .ok_or_else(|| format!("space {b}: at most 65534 bytes")),
        RawSpace::Word(w) if w == "auto" => Ok(None),
        RawSpace::Word(w) => Err(format!("space {w:?}: a number of bytes or \"auto\"")),
    }
}

fn convert_df(d: RawDf, index: usize, p: &mut Problems<'_>) -> Option<DfSpec> {
    let at0 = format!("df #{} ({})", index + 1, d.path);
    let path = p.take(&at0, parse_path(&d.path))?;
    let at = format!("df {}", path_text(&path));
    let is_mf = path.len() == 1;
    let name = p.take(&at, df_name(&d.name));
    if let Some(n) = &name {
        if !(5..=16).contains(&n.len()) {
            p.push(
                &at,
                format!(
                    "name {:?} has {} bytes; a DF name has 5 to 16",
                    d.name,
                    n.len()
                ),
            );
        }
    }
    let create = p.take(&format!("{at}, create"), Right::parse(&d.create));
    let erase = p.take(&format!("{at}, erase"), Right::parse(&d.erase));
    // The declared space; "auto" (None) is computed by `check::structure`.
    let mut space_auto = None;
    let space: Option<Option<u16>> = match (is_mf, d.space) {
        (true, Some(_)) => {
            p.push(
                &at,
                "the MF keeps its space (the card's memory, [card] memory): leave `space` out",
            );
            None
        }
        (true, None) => Some(None),
        (false, None) => {
            p.push(
                &at,
                "`space` is missing: a number of bytes (header, name and files) or \"auto\"",
            );
            None
        }
        (false, Some(s)) => match p.take(&at, parse_space(s)) {
            Some(Some(bytes)) => Some(Some(bytes)),
            Some(None) => {
                match u16::try_from(d.spare.unwrap_or(0)) {
                    Ok(spare) => space_auto = Some(spare),
                    Err(_) => p.push(&at, "spare: at most 65535 bytes"),
                }
                Some(None)
            }
            None => None,
        },
    };
    if d.spare.is_some() && space_auto.is_none() {
        p.push(&at, "`spare` goes with space = \"auto\" only");
    }
    let fci = match (d.fci_file, d.fci_mode) {
        (None, None) => Some(None),
        (Some(f), m) => {
            let fid = p.take(&format!("{at}, fci_file"), hex_u16(&f));
            let mode = match m.as_deref().unwrap_or("9F0C") {
                "9F0C" => Some(FciMode::IssuerData),
                "A5" => Some(FciMode::Template),
                other => {
                    p.push(
                        &format!("{at}, fci_mode"),
                        format!(
                            "{other:?} is not \"9F0C\" (A5 {{9F0C file}}) or \"A5\" (A5 {{file}})"
                        ),
                    );
                    None
                }
            };
            match (fid, mode) {
                (Some(fid), Some(mode)) => Some(Some(Fci { fid, mode })),
                _ => None,
            }
        }
        (None, Some(_)) => {
            p.push(&at, "`fci_mode` without `fci_file`");
            None
        }
    };
    let key_file = match d.key_file {
        None => {
            p.push(
                &at,
                "no key file ([df.key_file]): a DF without one allows everything to everyone, \
                 forever",
            );
            None
        }
        Some(kf) => {
            let kat = format!("{at}, key_file");
            let space = match kf.space {
                RawSpace::Bytes(b) => p.take(
                    &kat,
                    u16::try_from(b)
                        .ok()
                        .filter(|b| *b > 0 && *b < 0xFFFF)
                        .ok_or_else(|| format!("space {b}: from 1 to 65534 bytes")),
                ),
                RawSpace::Word(w) => {
                    p.push(
                        &kat,
                        format!(
                            "space {w:?}: give the bytes (each key takes its length + 8; a PIN \
                             its room + 8)"
                        ),
                    );
                    None
                }
            };
            let add = p.take(&format!("{kat}, add"), Right::parse(&kf.add));
            let df_sfi = match kf.df_sfi {
                Some(s) => p.take(&format!("{kat}, df_sfi"), hex_byte(&s)),
                None => Some(if is_mf { 0x01 } else { 0x00 }),
            };
            match (space, add, df_sfi) {
                (Some(space), Some(add), Some(df_sfi)) => Some(KeyFileSpec { space, add, df_sfi }),
                _ => None,
            }
        }
    };
    let mut keys = Vec::new();
    for (i, k) in d.key.into_iter().enumerate() {
        if let Some(k) = convert_key(k, &format!("{at}, key #{}", i + 1), p) {
            keys.push(k);
        }
    }
    // The master goes first (it protects the others' loading).
    keys.sort_by_key(|k| !k.is_master());
    let mut efs = Vec::new();
    for (i, e) in d.ef.into_iter().enumerate() {
        if let Some(e) = convert_ef(e, &format!("{at}, ef #{}", i + 1), p) {
            efs.push(e);
        }
    }
    Some(DfSpec {
        path,
        name: name?,
        name_text: d.name,
        label: d.label,
        space: space?,
        space_auto,
        create: create?,
        erase: erase?,
        fci: fci?,
        key_file: key_file?,
        keys,
        efs,
    })
}

fn convert_key(k: RawKey, at: &str, p: &mut Problems<'_>) -> Option<KeySpec> {
    let kind = p.take(&format!("{at}, type"), KeyKind::parse(&k.kind))?;
    let at = format!("{at} ({})", kind.name());
    let id = p.take(&format!("{at}, id"), hex_byte(&k.id));
    if id == Some(0xFF) {
        p.push(&at, "key id FF is not allowed (WRITE KEY's P2)");
    }
    let use_right = p.take(&format!("{at}, use"), Right::parse(&k.use_right));
    let change_right = p.take(&format!("{at}, change"), Right::parse(&k.change));
    let state = match (&k.state, kind.has_state()) {
        (Some(s), true) => p.take(&format!("{at}, state"), nibble(s)).map(Some),
        (None, true) => {
            p.push(
                &at,
                "`state` is missing: the security state a success sets (0..F)",
            );
            None
        }
        (Some(_), false) => {
            p.push(&at, "`state` is only for external-auth keys and PINs");
            None
        }
        (None, false) => Some(None),
    };
    let tries = match (k.tries, kind.has_tries()) {
        (Some(t), true) if (1..=15).contains(&t) => Some(Some(t)),
        (Some(t), true) => {
            p.push(&at, format!("tries {t}: from 1 to 15"));
            None
        }
        (None, true) => Some(Some(3)),
        (Some(_), false) => {
            p.push(&at, format!("`tries` is not for {} keys", kind.name()));
            None
        }
        (None, false) => Some(None),
    };
    let updates = match &k.updates {
        Some(u) => p.take(&format!("{at}, updates"), Protection::parse(u)),
        None => Some(Protection::Encrypted),
    };
    let source = match (kind, k.key, k.pin, k.room) {
        (KeyKind::Pin, None, Some(pin), room) => {
            let room = room.unwrap_or(8);
            let digits = pin.trim().to_owned();
            if digits.len() < 4
                || digits.len() % 2 != 0
                || !digits.chars().all(|c| c.is_ascii_digit())
            {
                p.push(
                    &at,
                    "pin: an even number of decimal digits, at least 4 (it is stored two digits \
                     a byte)",
                );
                None
            } else if !(2..=8).contains(&room) || usize::from(room) * 2 < digits.len() {
                p.push(
                    &at,
                    format!(
                        "room {room}: 2 to 8 bytes, and at least the PIN's {} bytes",
                        digits.len() / 2
                    ),
                );
                None
            } else {
                Some(KeySource::Pin { digits, room })
            }
        }
        (KeyKind::Pin, _, _, _) => {
            p.push(&at, "a PIN needs `pin` (its initial value) and no `key`");
            None
        }
        (_, Some(name), None, None) if !name.trim().is_empty() => {
            Some(KeySource::KeySet(name.trim().to_owned()))
        }
        _ => {
            p.push(&at, "`key` (the key set's name of the key) is missing, or `pin`/`room` given for a key that is no PIN");
            None
        }
    };
    Some(KeySpec {
        kind,
        id: id?,
        use_right: use_right?,
        change_right: change_right?,
        state: state?,
        tries: tries?,
        updates: updates?,
        source: source?,
    })
}

fn convert_ef(e: RawEf, at: &str, p: &mut Problems<'_>) -> Option<EfSpec> {
    let fid = p.take(&format!("{at}, fid"), hex_u16(&e.fid))?;
    let at = format!("{at} = ef {fid:04X}");
    if matches!(fid, MF | 0xFFFF | 0x0000) {
        p.push(&at, "3F00, FFFF and 0000 are no EF's FID");
    }
    let count = |n: Option<u32>, what: &str, p: &mut Problems<'_>| -> Option<u8> {
        match n {
            Some(n) if (1..=254).contains(&n) => Some(n as u8),
            Some(n) => {
                p.push(&at, format!("{what} {n}: from 1 to 254"));
                None
            }
            None => {
                p.push(&at, format!("`{what}` is missing"));
                None
            }
        }
    };
    let not_for = |field: &str, present: bool, p: &mut Problems<'_>| {
        if present {
            p.push(&at, format!("`{field}` does not apply to a {} EF", e.kind));
        }
    };
    let kind = match e.kind.as_str() {
        "binary" => {
            not_for("records", e.records.is_some(), p);
            not_for("record_len", e.record_len.is_some(), p);
            match e.size {
                Some(s) if (1..=0x7FFF).contains(&s) => Some(EfKind::Binary { size: s as u16 }),
                Some(s) => {
                    p.push(&at, format!("size {s}: from 1 to 32767 bytes"));
                    None
                }
                None => {
                    p.push(&at, "`size` is missing");
                    None
                }
            }
        }
        "fixed" | "variable" | "cyclic" => {
            not_for("size", e.size.is_some(), p);
            let records = count(e.records, "records", p);
            let min = if e.kind == "variable" { 2 } else { 1 };
            let len = match e.record_len {
                Some(l) if (min..=248).contains(&l) => Some(l as u8),
                Some(l) => {
                    p.push(&at, format!("record_len {l}: from {min} to 248"));
                    None
                }
                None => {
                    p.push(&at, "`record_len` is missing");
                    None
                }
            };
            match (records, len) {
                (Some(records), Some(len)) => Some(match e.kind.as_str() {
                    "fixed" => EfKind::Fixed { records, len },
                    "variable" => EfKind::Variable { records, len },
                    _ => EfKind::Cyclic { records, len },
                }),
                _ => None,
            }
        }
        "purse" => {
            not_for("size", e.size.is_some(), p);
            not_for("records", e.records.is_some(), p);
            not_for("read", e.read.is_some(), p);
            not_for("write", e.write.is_some(), p);
            not_for("data", e.data.is_some(), p);
            let use_right = match &e.use_right {
                Some(u) => p.take(&format!("{at}, use"), Right::parse(u)),
                None => {
                    p.push(&at, "`use` (the purse's use right) is missing");
                    None
                }
            };
            let tac_key = p.take(
                &format!("{at}, tac_key"),
                hex_byte(e.tac_key.as_deref().unwrap_or("")),
            );
            let log = match &e.log {
                Some(l) => {
                    p.take(&format!("{at}, log"), hex_u16(l))
                        .and_then(|f| match sfi_of(f) {
                            Some(s) => Some(s),
                            None => {
                                p.push(
                                    &at,
                                    format!("log {f:04X}: the log must have an SFI (0001..001F)"),
                                );
                                None
                            }
                        })
                }
                None => {
                    p.push(
                        &at,
                        "`log` (the FID of its cyclic transaction log) is missing",
                    );
                    None
                }
            };
            match (use_right, tac_key, log) {
                (Some(use_right), Some(tac_key), Some(log_sfi)) => Some(EfKind::Purse {
                    use_right,
                    tac_key,
                    log_sfi,
                    max_balance: e.max_balance,
                }),
                _ => None,
            }
        }
        other => {
            p.push(
                &at,
                format!("type {other:?} is not one of binary, fixed, variable, cyclic, purse"),
            );
            None
        }
    };
    if e.kind != "purse" {
        not_for("use", e.use_right.is_some(), p);
        not_for("tac_key", e.tac_key.is_some(), p);
        not_for("log", e.log.is_some(), p);
        not_for("max_balance", e.max_balance.is_some(), p);
    }
    let is_purse = e.kind == "purse";
    let right = |r: &Option<String>, what: &str, p: &mut Problems<'_>| -> Option<Right> {
        match (r, is_purse) {
            (_, true) => Some(Right::NEVER),
            (Some(r), false) => p.take(&format!("{at}, {what}"), Right::parse(r)),
            (None, false) => {
                p.push(&at, format!("`{what}` (the {what} right) is missing"));
                None
            }
        }
    };
    let read = right(&e.read, "read", p);
    let write = right(&e.write, "write", p);
    let key_byte = match &e.key_byte {
        Some(k) => p.take(&format!("{at}, key_byte"), hex_byte(k)),
        None => Some(0xFF),
    };
    let protection = match &e.protection {
        Some(x) if is_purse => {
            p.push(
                &at,
                format!("protection {x:?}: a purse is protected by its own MACs"),
            );
            None
        }
        Some(x) => p.take(&format!("{at}, protection"), Protection::parse(x)),
        None => Some(Protection::Plain),
    };
    let data = match e.data {
        None => Some(EfData::None),
        Some(RawData::One(s)) => match s.trim() {
            "issuer-items" => Some(EfData::IssuerItems),
            "cardholder-items" => Some(EfData::CardholderItems),
            "photo" => Some(EfData::Photo),
            "card-info" => Some(EfData::CardInfo),
            t => p
                .take(&format!("{at}, data"), Template::parse(t))
                .map(EfData::Binary),
        },
        Some(RawData::Records(rs)) => {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, r) in rs.iter().enumerate() {
                match Template::parse(r) {
                    Ok(t) => out.push(t),
                    Err(err) => {
                        p.push(&format!("{at}, data record {}", i + 1), err);
                        ok = false;
                    }
                }
            }
            ok.then_some(EfData::Records(out))
        }
    };
    Some(EfSpec {
        fid,
        label: e.label,
        kind: kind?,
        read: read?,
        write: write?,
        key_byte: key_byte?,
        protection: protection?,
        data: data?,
        read_key: e.read_key,
        write_key: e.write_key,
    })
}

/// Reports duplicate values: each item after its first occurrence.
pub(crate) fn duplicates<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| !seen.insert(i.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
