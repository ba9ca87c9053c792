//! [`KeySet`]: the key-set file (TOML), its validation, generation of fresh key sets, and writing
//! them readable by their owner only. The format is described in apdu-specs/keys.md §4.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use card_os::crypto::{Algorithm, Key};
use zeroize::{Zeroize, Zeroizing};

use super::catalogue::STANDARD_KEYS;
use super::secret::{check_value, SecretKey, KCV_LEN};
use super::{Diversification, KeyInfo, KeySetIdentity, TerminalCounter};

/// The key-set file format this code reads and writes.
pub const FORMAT: i64 = 1;

/// The FMCOS factory transport key (16 × `FF`, card-specs TV-6): public. The development key sets
/// use it; a real key set must not (see [`KeySet::generate`] and [`super::transport_key_policy`]).
pub const FACTORY_TRANSPORT_KEY: [u8; 16] = [0xFF; 16];

/// The name a key-set file uses for an algorithm: `des`, `3des`, `sm4`, `aes128`.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Des => "des",
        Algorithm::TripleDes => "3des",
        Algorithm::Sm4 => "sm4",
        Algorithm::Aes128 => "aes128",
    }
}

fn algorithm_from_name(name: &str) -> Option<Algorithm> {
    [
        Algorithm::Des,
        Algorithm::TripleDes,
        Algorithm::Sm4,
        Algorithm::Aes128,
    ]
    .into_iter()
    .find(|a| algorithm_name(*a) == name)
}

/// One thing wrong in a key-set file: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `[key_set] field `id``, `key DLK, field `value``, …
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why a key set could not be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// Reading or writing the file failed.
    #[error("key set {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not TOML.
    #[error("key set {origin} is not valid TOML: {message}")]
    Syntax {
        /// The file (or `(text)`).
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The file is TOML but its content is wrong; every problem found is listed.
    #[error("key set {origin}: {}", list(.problems))]
    Invalid {
        /// The file (or `(text)`).
        origin: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{path} already exists; not overwriting it (pass --force to replace it)")]
    Exists {
        /// The file.
        path: String,
    },
    /// The options for a new key set are wrong.
    #[error("{0}")]
    Options(String),
    /// A real (non-development) key set with the public FMCOS default transport key.
    #[error("key set {id}: its transport key is the public FMCOS factory default (16 x FF): every key personalization writes is encrypted under it, so a trace of personalization would show every card's keys; use the card maker's batch key or a random one (keys init makes one), or accept it knowingly with --allow-default-transport-key")]
    DefaultTransportKey {
        /// The key set.
        id: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

/// One key as the key set holds it.
pub(super) struct Entry {
    pub(super) diversification: Diversification,
    pub(super) version: u8,
    pub(super) master: SecretKey,
    pub(super) description: Option<String>,
}

impl Entry {
    pub(super) fn info(&self, name: &str) -> KeyInfo {
        KeyInfo {
            name: name.to_owned(),
            algorithm: self.master.key().algorithm(),
            diversification: self.diversification,
            version: self.version,
            check_value: check_value(self.master.key()),
            description: self.description.clone(),
        }
    }
}

/// The software key store: a key set read from a TOML file (or freshly generated), with an
/// optional PSAM terminal counter. It implements [`super::KeyStore`]; its key bytes are wiped when
/// it is dropped, and neither `Debug` nor `Display` shows them.
pub struct KeySet {
    pub(super) identity: KeySetIdentity,
    pub(super) keys: BTreeMap<String, Entry>,
    pub(super) counter: Option<TerminalCounter>,
}

/// What a fresh key set ([`KeySet::generate`]) looks like.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// The key set's id.
    pub id: String,
    /// A description for people.
    pub description: String,
    /// The algorithm of every key except the transport key.
    pub algorithm: Algorithm,
    /// The transport key's value (3DES, 16 bytes): the factory key of the card maker's batch.
    /// `None` draws a random one, like every other key.
    pub transport_key: Option<Zeroizing<Vec<u8>>>,
    /// Accept the public FMCOS factory default (16 × `FF`) as `transport_key`.
    pub allow_default_transport_key: bool,
}

impl KeySet {
    /// Reads and validates a key-set file.
    pub fn load(path: &Path) -> Result<KeySet, KeySetError> {
        let text = fs::read(path).map_err(|source| KeySetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let text = Zeroizing::new(text);
        let text = std::str::from_utf8(&text).map_err(|e| KeySetError::Syntax {
            origin: path.display().to_string(),
            message: format!("not UTF-8 text ({e})"),
        })?;
        Self::parse(&path.display().to_string(), text)
    }

    /// Reads and validates a key set from TOML text.
    pub fn from_toml(text: &str) -> Result<KeySet, KeySetError> {
        Self::parse("(text)", text)
    }

    fn parse(origin: &str, text: &str) -> Result<KeySet, KeySetError> {
        // The parser's own Display quotes the offending line, which may hold a key: report the
        // position and the message only.
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
                format!("line {line}, column {column}: ")
            });
            KeySetError::Syntax {
                origin: origin.to_owned(),
                message: format!("{}{}", at.unwrap_or_default(), e.message().trim_end()),
            }
        })?;
        let mut problems = Vec::new();
        let result = read_table(&mut table, &mut problems);
        wipe_strings(&mut table);
        match result {
            Some((identity, keys)) if problems.is_empty() => Ok(KeySet {
                identity,
                keys,
                counter: None,
            }),
            _ => Err(KeySetError::Invalid {
                origin: origin.to_owned(),
                problems,
            }),
        }
    }

    /// A fresh key set of the standard catalogue ([`STANDARD_KEYS`]), every key drawn from the
    /// operating system's random number generator — the transport key too (3DES), unless
    /// `transport_key` gives the card maker's. DES-family keys get odd parity, as DES keys
    /// conventionally have (cards ignore the parity bits). The public FMCOS default transport key
    /// is refused unless `allow_default_transport_key`: every WRITE KEY of personalization is
    /// encrypted under the transport key, so with the public one a trace of personalization shows
    /// every card's keys.
    pub fn generate(options: &GenerateOptions) -> Result<KeySet, KeySetError> {
        if !valid_id(&options.id) {
            return Err(KeySetError::Options(format!(
                "key set id {:?}: use letters, digits, `.`, `_` and `-` (1 to 64 of them)",
                options.id
            )));
        }
        let transport = match &options.transport_key {
            Some(bytes) => Key::new(Algorithm::TripleDes, bytes).map_err(|_| {
                KeySetError::Options(format!(
                    "transport key: {} bytes, a 3DES key has 16",
                    bytes.len()
                ))
            })?,
            None => random_key(Algorithm::TripleDes)?.key().clone(),
        };
        if transport.as_bytes() == FACTORY_TRANSPORT_KEY && !options.allow_default_transport_key {
            return Err(KeySetError::DefaultTransportKey {
                id: options.id.clone(),
            });
        }
        let mut keys = BTreeMap::new();
        for standard in STANDARD_KEYS {
            let (master, version) = if standard.diversification == Diversification::None {
                (SecretKey::new(transport.clone()), 0)
            } else {
                (random_key(options.algorithm)?, 1)
            };
            keys.insert(
                standard.name.to_owned(),
                Entry {
                    diversification: standard.diversification,
                    version,
                    master,
                    description: Some(standard.purpose.to_owned()),
                },
            );
        }
        let mut transport = transport;
        super::secret::wipe(&mut transport);
        Ok(KeySet {
            identity: KeySetIdentity {
                id: options.id.clone(),
                description: options.description.clone(),
                development: false,
            },
            keys,
            counter: None,
        })
    }

    /// Writes the key set to `path`, readable and writable by its owner only (mode 0600 on Unix).
    /// An existing file is replaced only when `overwrite` is set (atomically: a new file is
    /// written beside it and renamed over it); otherwise [`KeySetError::Exists`].
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), KeySetError> {
        let text = self.to_toml();
        let io_error = |source| KeySetError::Io {
            path: path.display().to_string(),
            source,
        };
        if !overwrite {
            let mut file = create_private(path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    KeySetError::Exists {
                        path: path.display().to_string(),
                    }
                } else {
                    io_error(e)
                }
            })?;
            return write_all_synced(&mut file, text.as_bytes()).map_err(io_error);
        }
        crate::private_fs::write_private_atomic(path, text.as_bytes()).map_err(io_error)
    }

    /// The key set as TOML, key bytes included: private, for [`KeySet::save`] and tests.
    pub(super) fn to_toml(&self) -> Zeroizing<String> {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        // Reserve enough up front: a String that grows moves its bytes and frees the old buffer
        // unwiped. Each key takes about 200 bytes plus its description (escaped: at most 6 bytes a
        // character).
        let capacity = 4096
            + 6 * self.identity.description.len()
            + self
                .keys
                .values()
                .map(|e| 512 + 6 * e.description.as_ref().map_or(0, String::len))
                .sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        let o = &mut *out;
        if self.identity.development {
            o.push_str(
                "# PUBLIC DEVELOPMENT KEY SET. These keys are published with the project: a card\n\
                 # issued with them has no security at all. For tests and development only.\n",
            );
        } else {
            o.push_str(
                "# citizencard key set. SECRET: whoever reads this file can read, change and load\n\
                 # every card issued with it. Keep it mode 0600, never commit it, keep a backup\n\
                 # somewhere as safe. Format: apdu-specs/keys.md.\n",
            );
        }
        o.push_str(&format!("format = {FORMAT}\n\n[key_set]\n"));
        o.push_str(&format!("id = {}\n", quote(&self.identity.id)));
        o.push_str(&format!(
            "description = {}\n",
            quote(&self.identity.description)
        ));
        o.push_str(&format!("development = {}\n", self.identity.development));
        for (name, entry) in self.ordered() {
            let key = entry.master.key();
            o.push_str(&format!("\n[keys.{name}]\n"));
            if let Some(d) = &entry.description {
                o.push_str(&format!("description = {}\n", quote(d)));
            }
            o.push_str(&format!(
                "algorithm = \"{}\"\n",
                algorithm_name(key.algorithm())
            ));
            o.push_str("value = \"");
            o.push_str(&Zeroizing::new(hex::encode_upper(key.as_bytes())));
            o.push_str("\"\n");
            o.push_str(&format!(
                "kcv = \"{}\"\n",
                hex::encode_upper(check_value(key))
            ));
            o.push_str(&format!(
                "diversification = \"{}\"\nversion = {}\n",
                entry.diversification, entry.version
            ));
        }
        out
    }

    /// The keys in catalogue order (card level, social security, purse), then any others by
    /// name.
    pub(super) fn ordered(&self) -> Vec<(&str, &Entry)> {
        let mut keys: Vec<(&str, &Entry)> =
            self.keys.iter().map(|(n, e)| (n.as_str(), e)).collect();
        keys.sort_by_key(|(name, _)| {
            let position = STANDARD_KEYS.iter().position(|k| k.name == *name);
            (position.unwrap_or(usize::MAX), *name)
        });
        keys
    }

    /// This key set with a PSAM terminal transaction counter, which purchase MAC1s need.
    pub fn with_terminal_counter(mut self, counter: TerminalCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// The PSAM terminal transaction counter, if one is attached.
    pub fn terminal_counter(&self) -> Option<&TerminalCounter> {
        self.counter.as_ref()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the key set holds no key (a loaded key set never is).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("id", &self.identity.id)
            .field("development", &self.identity.development)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key set {} ({} keys", self.identity.id, self.keys.len())?;
        if self.identity.development {
            f.write_str(", PUBLIC DEVELOPMENT KEYS")?;
        }
        f.write_str(")")
    }
}

/// A warning when a key-set file can be read or written by anyone but its owner (Unix), e.g.
/// after a copy that did not keep its mode. `None` when the mode is fine or cannot be read.
pub fn permissions_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "key set {} has mode {mode:04o}: others can read or change it; `chmod 600` it",
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

fn create_private(path: &Path) -> io::Result<fs::File> {
    crate::private_fs::create_private_file(path)
}

fn write_all_synced(file: &mut fs::File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

fn random_key(algorithm: Algorithm) -> Result<SecretKey, KeySetError> {
    let mut bytes = Zeroizing::new([0u8; 16]);
    let material = &mut bytes[..algorithm.key_len()];
    getrandom::fill(material).map_err(KeySetError::Random)?;
    if matches!(algorithm, Algorithm::Des | Algorithm::TripleDes) {
        for b in material.iter_mut() {
            // Odd parity in the low bit of each byte.
            *b = (*b & 0xFE) | u8::from((*b >> 1).count_ones() % 2 == 0);
        }
    }
    Key::new(algorithm, material)
        .map(SecretKey::new)
        .map_err(|_| KeySetError::Options("internal: bad generated key length".into()))
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_key_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Overwrites every string left in the parsed table (key values among them) before it is freed.
fn wipe_strings(table: &mut toml::Table) {
    table.iter_mut().for_each(|(_, v)| wipe_value(v));
}

fn wipe_value(v: &mut toml::Value) {
    match v {
        toml::Value::String(s) => s.zeroize(),
        toml::Value::Array(a) => a.iter_mut().for_each(wipe_value),
        toml::Value::Table(t) => wipe_strings(t),
        _ => {}
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Reads fields out of one TOML table, noting problems against `location`.
struct Fields<'a> {
    table: &'a mut toml::Table,
    location: String,
    problems: &'a mut Vec<Problem>,
}

impl Fields<'_> {
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: format!("{}, field `{field}`", self.location),
            message: message.into(),
        });
    }

    fn take(&mut self, field: &str, required: bool, hint: &str) -> Option<toml::Value> {
        let v = self.table.remove(field);
        if v.is_none() && required {
            self.problem(field, format!("missing ({hint})"));
        }
        v
    }

    fn string(&mut self, field: &str, required: bool, hint: &str) -> Option<String> {
        match self.take(field, required, hint)? {
            toml::Value::String(s) => Some(s),
            other => {
                self.problem(
                    field,
                    format!("expected a string, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, hint: &str) -> Option<bool> {
        match self.take(field, true, hint)? {
            toml::Value::Boolean(b) => Some(b),
            other => {
                self.problem(
                    field,
                    format!("expected true or false, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn byte(&mut self, field: &str, hint: &str) -> Option<u8> {
        match self.take(field, true, hint)? {
            toml::Value::Integer(i) => match u8::try_from(i) {
                Ok(b) => Some(b),
                Err(_) => {
                    self.problem(field, format!("{i} is out of range 0..=255"));
                    None
                }
            },
            other => {
                self.problem(
                    field,
                    format!("expected an integer 0..=255, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    /// Notes every field nobody took.
    fn finish(&mut self, known: &str) {
        let unknown: Vec<String> = self.table.keys().cloned().collect();
        for field in unknown {
            self.problem(&field, format!("unknown field (known: {known})"));
        }
    }
}

type Parsed = (KeySetIdentity, BTreeMap<String, Entry>);

fn read_table(table: &mut toml::Table, problems: &mut Vec<Problem>) -> Option<Parsed> {
    let mut top = Fields {
        table,
        location: "top level".into(),
        problems,
    };
    match top.take("format", true, "the key-set file format, 1") {
        Some(toml::Value::Integer(FORMAT)) => {}
        Some(other) => top.problem(
            "format",
            format!("this program reads format {FORMAT}, the file says {other}"),
        ),
        None => {}
    }
    let identity_table = top.take(
        "key_set",
        true,
        "a [key_set] table with id, description and development",
    );
    let keys_table = top.take("keys", true, "one [keys.NAME] table per key");
    top.finish("format, key_set, keys");

    let identity = match identity_table {
        Some(toml::Value::Table(mut t)) => read_identity(&mut t, problems),
        Some(other) => {
            problems.push(Problem {
                location: "top level, field `key_set`".into(),
                message: format!("expected a table, found {}", type_name(&other)),
            });
            None
        }
        None => None,
    };
    let keys = match keys_table {
        Some(toml::Value::Table(mut t)) => {
            let keys = read_keys(&mut t, problems);
            wipe_strings(&mut t);
            keys
        }
        Some(mut other) => {
            problems.push(Problem {
                location: "top level, field `keys`".into(),
                message: format!("expected tables [keys.NAME], found {}", type_name(&other)),
            });
            wipe_value(&mut other);
            None
        }
        None => None,
    };
    Some((identity?, keys?))
}

fn read_identity(table: &mut toml::Table, problems: &mut Vec<Problem>) -> Option<KeySetIdentity> {
    let mut f = Fields {
        table,
        location: "[key_set]".into(),
        problems,
    };
    let id = f.string("id", true, "a name for this key set, e.g. wenzhou-2025");
    if let Some(id) = &id {
        if !valid_id(id) {
            f.problem(
                "id",
                format!("{id:?}: use letters, digits, `.`, `_` and `-` (1 to 64 of them)"),
            );
        }
    }
    let description = f.string("description", false, "").unwrap_or_default();
    let development = f.boolean(
        "development",
        "true for a public development key set, false for a real one",
    );
    f.finish("id, description, development");
    Some(KeySetIdentity {
        id: id.filter(|i| valid_id(i))?,
        description,
        development: development?,
    })
}

fn read_keys(
    table: &mut toml::Table,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, Entry>> {
    if table.is_empty() {
        problems.push(Problem {
            location: "[keys]".into(),
            message: "no keys".into(),
        });
        return None;
    }
    let mut keys = BTreeMap::new();
    let names: Vec<String> = table.keys().cloned().collect();
    for name in names {
        let Some(value) = table.get_mut(&name) else {
            continue;
        };
        let location = format!("key {name}");
        if !valid_key_name(&name) {
            problems.push(Problem {
                location: location.clone(),
                message: "a key name is 1 to 32 letters, digits, `_` or `-`".into(),
            });
        }
        let toml::Value::Table(entry_table) = value else {
            problems.push(Problem {
                location,
                message: format!("expected a table [keys.{name}], found {}", type_name(value)),
            });
            continue;
        };
        if let Some(entry) = read_key(entry_table, location, problems) {
            keys.insert(name, entry);
        }
    }
    Some(keys)
}

fn read_key(
    table: &mut toml::Table,
    location: String,
    problems: &mut Vec<Problem>,
) -> Option<Entry> {
    let mut f = Fields {
        table,
        location,
        problems,
    };
    let algorithm = f.string("algorithm", true, "des, 3des, sm4 or aes128");
    let algorithm = match algorithm.as_deref() {
        Some(name) => match algorithm_from_name(name) {
            Some(a) => Some(a),
            None => {
                f.problem(
                    "algorithm",
                    format!("{name:?} is not one of des, 3des, sm4, aes128"),
                );
                None
            }
        },
        None => None,
    };
    let value = f
        .string("value", true, "the key in hex")
        .map(Zeroizing::new);
    let kcv = f.string("kcv", false, "");
    let diversification = f.string(
        "diversification",
        true,
        "none, application-serial or social-security",
    );
    let diversification = match diversification.as_deref() {
        Some(name) => match Diversification::from_name(name) {
            Some(d) => Some(d),
            None => {
                f.problem(
                    "diversification",
                    format!("{name:?} is not one of none, application-serial, social-security"),
                );
                None
            }
        },
        None => None,
    };
    let version = f.byte("version", "the key version, 0..=255");
    let description = f.string("description", false, "");
    f.finish("algorithm, value, kcv, diversification, version, description");

    let master = match (algorithm, value) {
        (Some(algorithm), Some(text)) => {
            let compact = Zeroizing::new(text.replace([' ', ':'], ""));
            match hex::decode(compact.as_bytes()).map(Zeroizing::new) {
                Err(_) => {
                    f.problem("value", "not hexadecimal");
                    None
                }
                Ok(bytes) => match Key::new(algorithm, &bytes) {
                    Ok(key) => Some(SecretKey::new(key)),
                    Err(_) => {
                        f.problem(
                            "value",
                            format!(
                                "{} bytes, a {} key has {}",
                                bytes.len(),
                                algorithm_name(algorithm),
                                algorithm.key_len()
                            ),
                        );
                        None
                    }
                },
            }
        }
        _ => None,
    };
    if let (Some(master), Some(kcv)) = (&master, &kcv) {
        let actual = hex::encode_upper(check_value(master.key()));
        if kcv.len() != 2 * KCV_LEN || !kcv.eq_ignore_ascii_case(&actual) {
            f.problem(
                "kcv",
                format!("{kcv:?} does not match the value, whose check value is {actual} (a typo in `value`?)"),
            );
            return None;
        }
    }
    Some(Entry {
        diversification: diversification?,
        version: version?,
        master: master?,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyStore;

    const SECRET_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn one_key(fields: &str) -> String {
        format!("format = 1\n[key_set]\nid = \"t\"\ndevelopment = false\n[keys.DLK]\n{fields}\n")
    }

    fn problems(text: &str) -> Vec<String> {
        match KeySet::from_toml(text) {
            Err(KeySetError::Invalid { problems, .. }) => {
                problems.iter().map(|p| p.to_string()).collect()
            }
            Err(e) => panic!("expected content problems, got {e}"),
            Ok(_) => panic!("expected content problems, the key set loaded"),
        }
    }

    #[test]
    fn a_valid_key_loads() {
        let set = KeySet::from_toml(&one_key(&format!(
            "algorithm = \"3des\"\nvalue = \"{SECRET_HEX}\"\nkcv = \"08d7b4\"\ndiversification = \"application-serial\"\nversion = 1\ndescription = \"load\""
        )))
        .unwrap();
        let info = set.key_info("DLK").unwrap();
        assert_eq!(info.algorithm, Algorithm::TripleDes);
        assert_eq!(info.diversification, Diversification::ApplicationSerial);
        assert_eq!(info.version, 1);
        assert_eq!(info.check_value, [0x08, 0xD7, 0xB4]);
        assert_eq!(info.description.as_deref(), Some("load"));
        assert!(!set.is_development());
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn field_errors_name_the_key_and_the_field() {
        let cases = [
            ("value = \"00\"", "key DLK, field `algorithm`: missing"),
            (
                "algorithm = \"3dex\"\nvalue = \"00\"\ndiversification = \"none\"\nversion = 0",
                "key DLK, field `algorithm`: \"3dex\" is not one of",
            ),
            (
                "algorithm = \"3des\"\ndiversification = \"none\"\nversion = 0",
                "key DLK, field `value`: missing",
            ),
            (
                "algorithm = \"3des\"\nvalue = \"XYZ\"\ndiversification = \"none\"\nversion = 0",
                "key DLK, field `value`: not hexadecimal",
            ),
            (
                "algorithm = \"sm4\"\nvalue = \"0102030405060708\"\ndiversification = \"none\"\nversion = 0",
                "key DLK, field `value`: 8 bytes, a sm4 key has 16",
            ),
            (
                "algorithm = \"3des\"\nvalue = \"0102030405060708090A0B0C0D0E0F10\"\ndiversification = \"pboc\"\nversion = 0",
                "key DLK, field `diversification`: \"pboc\" is not one of",
            ),
            (
                "algorithm = \"3des\"\nvalue = \"0102030405060708090A0B0C0D0E0F10\"\ndiversification = \"none\"\nversion = 256",
                "key DLK, field `version`: 256 is out of range 0..=255",
            ),
            (
                "algorithm = \"3des\"\nvalue = \"0102030405060708090A0B0C0D0E0F10\"\ndiversification = \"none\"\nversion = \"1\"",
                "key DLK, field `version`: expected an integer 0..=255, found a string",
            ),
            (
                "algorithm = \"3des\"\nvalue = \"0102030405060708090A0B0C0D0E0F10\"\ndiversification = \"none\"\nversion = 1\nvalu = 2",
                "key DLK, field `valu`: unknown field",
            ),
            (
                &format!("algorithm = \"3des\"\nvalue = \"{SECRET_HEX}\"\nkcv = \"08D7B5\"\ndiversification = \"none\"\nversion = 1"),
                "key DLK, field `kcv`: \"08D7B5\" does not match the value, whose check value is 08D7B4",
            ),
        ];
        for (fields, expected) in cases {
            let found = problems(&one_key(fields));
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{fields:?}: expected {expected:?} in {found:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "format = 2\nextra = 1\n[key_set]\nid = \"bad id!\"\n[keys.A]\nalgorithm = \"des\"\n[keys.B]\nvalue = 3\n";
        let found = problems(text);
        for expected in [
            "top level, field `format`: this program reads format 1, the file says 2",
            "top level, field `extra`: unknown field",
            "[key_set], field `id`: \"bad id!\"",
            "[key_set], field `development`: missing",
            "key A, field `value`: missing",
            "key B, field `value`: expected a string, found an integer",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "expected {expected:?} in {found:?}"
            );
        }
        let e = KeySet::from_toml(text).unwrap_err().to_string();
        assert!(e.starts_with("key set (text): "), "{e}");
        assert!(e.contains(" problems:\n  "), "{e}");
        let missing = problems("format = 1\n");
        assert!(missing
            .iter()
            .any(|p| p.starts_with("top level, field `key_set`: missing")));
        assert!(missing
            .iter()
            .any(|p| p.starts_with("top level, field `keys`: missing")));
        let empty = problems("format = 1\nkeys = {}\n[key_set]\nid = \"x\"\ndevelopment = true\n");
        assert_eq!(empty, ["[keys]: no keys"]);
    }

    #[test]
    fn errors_never_quote_key_values() {
        // A syntax error on the line of a key value: the message gives the position only.
        let text = format!("format = 1\n[keys.DLK]\nvalue = \"{SECRET_HEX}\" junk\n");
        let e = KeySet::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("line 3, column "), "{e}");
        assert!(!e.contains(SECRET_HEX) && !e.contains("0123456789"), "{e}");
        // A value of the wrong length.
        let e = KeySet::from_toml(&one_key(&format!(
            "algorithm = \"des\"\nvalue = \"{SECRET_HEX}\"\ndiversification = \"none\"\nversion = 1"
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("16 bytes, a des key has 8"), "{e}");
        assert!(!e.contains("0123456789"), "{e}");
        // A key given as a bare string instead of a table.
        let e = KeySet::from_toml(&format!(
            "format = 1\n[key_set]\nid = \"t\"\ndevelopment = true\n[keys]\nDLK = \"{SECRET_HEX}\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key DLK: expected a table [keys.DLK], found a string"),
            "{e}"
        );
        assert!(!e.contains("0123456789"), "{e}");
    }

    #[test]
    fn debug_and_display_show_no_key_bytes() {
        let set = KeySet::from_toml(&one_key(&format!(
            "algorithm = \"3des\"\nvalue = \"{SECRET_HEX}\"\ndiversification = \"none\"\nversion = 1"
        )))
        .unwrap();
        for shown in [
            format!("{set:?}"),
            format!("{set:#?}"),
            set.to_string(),
            format!("{:?}", set.keys()),
        ] {
            assert!(
                shown.contains("DLK") || shown.contains("key set t"),
                "{shown}"
            );
            for needle in ["0123456789", "01, 35, 69", "1, 35, 69", "FEDCBA"] {
                assert!(
                    !shown.to_uppercase().contains(needle),
                    "{needle} in {shown}"
                );
            }
        }
        assert_eq!(set.to_string(), "key set t (1 keys)");
    }

    #[test]
    fn generated_sets_are_complete_random_and_round_trip() {
        let options = GenerateOptions {
            id: "gen".into(),
            description: "a \"quoted\" description".into(),
            algorithm: Algorithm::Sm4,
            transport_key: None,
            allow_default_transport_key: false,
        };
        let a = KeySet::generate(&options).unwrap();
        let b = KeySet::generate(&options).unwrap();
        assert_eq!(a.len(), STANDARD_KEYS.len());
        let text = a.to_toml();
        // The text never outgrew the room reserved for it (so no unwiped copy was left behind).
        assert!(
            text.len() < text.capacity() / 2,
            "{} of {}",
            text.len(),
            text.capacity()
        );
        let again = KeySet::from_toml(&text).unwrap();
        assert_eq!(again.keys(), a.keys());
        assert_eq!(again.identity(), a.identity());
        assert_eq!(again.identity().description, "a \"quoted\" description");
        for standard in STANDARD_KEYS {
            let info = a.key_info(standard.name).unwrap();
            assert_eq!(info.diversification, standard.diversification);
            if standard.diversification == Diversification::None {
                // The transport key: random too, 3DES, never the public factory default.
                assert_eq!(info.algorithm, Algorithm::TripleDes);
                assert_ne!(info.check_value, check_value(&Key::TripleDes([0xFF; 16])));
                assert!(!a.is_factory_transport_key(standard.name));
                assert_ne!(
                    info.check_value,
                    b.key_info(standard.name).unwrap().check_value
                );
            } else {
                assert_eq!(info.algorithm, Algorithm::Sm4);
                // Two fresh sets share no key (a 2^-24 KCV collision would flag a broken RNG).
                assert_ne!(
                    info.check_value,
                    b.key_info(standard.name).unwrap().check_value
                );
            }
        }
        let distinct: std::collections::BTreeSet<_> =
            a.keys().iter().map(|k| k.check_value).collect();
        assert_eq!(distinct.len(), STANDARD_KEYS.len());
    }

    #[test]
    fn generated_des_keys_have_odd_parity() {
        let set = KeySet::generate(&GenerateOptions {
            id: "p".into(),
            description: String::new(),
            algorithm: Algorithm::TripleDes,
            transport_key: Some(Zeroizing::new(vec![0x01; 16])),
            allow_default_transport_key: false,
        })
        .unwrap();
        for (name, entry) in &set.keys {
            let bytes = entry.master.key().as_bytes();
            assert_eq!(bytes.len(), 16, "{name}");
            assert!(bytes.iter().all(|b| b.count_ones() % 2 == 1), "{name}");
        }
        assert_eq!(
            set.key_info("TRANSPORT").unwrap().check_value,
            check_value(&Key::TripleDes([0x01; 16]))
        );
        let e = KeySet::generate(&GenerateOptions {
            id: "p".into(),
            description: String::new(),
            algorithm: Algorithm::TripleDes,
            transport_key: Some(Zeroizing::new(vec![0x01; 8])),
            allow_default_transport_key: false,
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "transport key: 8 bytes, a 3DES key has 16");
        let e = KeySet::generate(&GenerateOptions {
            id: "no spaces".into(),
            description: String::new(),
            algorithm: Algorithm::TripleDes,
            transport_key: None,
            allow_default_transport_key: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("\"no spaces\""), "{e}");
    }

    #[test]
    fn the_public_transport_key_is_refused_unless_accepted() {
        let mut options = GenerateOptions {
            id: "prod".into(),
            description: String::new(),
            algorithm: Algorithm::TripleDes,
            transport_key: Some(Zeroizing::new(vec![0xFF; 16])),
            allow_default_transport_key: false,
        };
        let e = KeySet::generate(&options).unwrap_err();
        assert!(matches!(e, KeySetError::DefaultTransportKey { .. }), "{e}");
        assert!(e.to_string().contains("16 x FF"), "{e}");
        options.allow_default_transport_key = true;
        let set = KeySet::generate(&options).unwrap();
        assert!(set.is_factory_transport_key("TRANSPORT"));
        // At personalization: refused, or a warning when accepted.
        let e = crate::keys::transport_key_policy(&set, "TRANSPORT", false).unwrap_err();
        assert!(
            e.to_string().contains("--allow-default-transport-key"),
            "{e}"
        );
        let w = crate::keys::transport_key_policy(&set, "TRANSPORT", true).unwrap();
        assert!(w.unwrap().contains("public FMCOS factory default"));
        // A development set is public as a whole: flagged, not refused.
        let dev = KeySet::from_toml(include_str!("../../../test-vectors/keys/dev.toml")).unwrap();
        assert!(dev.is_factory_transport_key("TRANSPORT"));
        assert_eq!(
            crate::keys::transport_key_policy(&dev, "TRANSPORT", false).unwrap(),
            None
        );
        // A random transport key passes.
        options.transport_key = None;
        let set = KeySet::generate(&options).unwrap();
        assert_eq!(
            crate::keys::transport_key_policy(&set, "TRANSPORT", false).unwrap(),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn saved_files_are_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.toml");
        let options = GenerateOptions {
            id: "issuer".into(),
            description: String::new(),
            algorithm: Algorithm::TripleDes,
            transport_key: None,
            allow_default_transport_key: false,
        };
        let first = KeySet::generate(&options).unwrap();
        first.save(&path, false).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(permissions_warning(&path), None);
        assert_eq!(KeySet::load(&path).unwrap().keys(), first.keys());

        let second = KeySet::generate(&options).unwrap();
        let e = second.save(&path, false).unwrap_err();
        assert!(matches!(e, KeySetError::Exists { .. }), "{e}");
        assert_eq!(KeySet::load(&path).unwrap().keys(), first.keys());

        // --force replaces it, and a file someone had opened up becomes private again.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(permissions_warning(&path).unwrap().contains("mode 0644"));
        second.save(&path, true).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(KeySet::load(&path).unwrap().keys(), second.keys());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );

        let e = KeySet::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }
}
