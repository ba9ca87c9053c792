//! # Reading a card's social-security data
//!
//! [`read_card`] reads what `citizencard info` shows, as a social-security reader would
//! (LD/T 32; paths from the [`Profile`]):
//!
//! 1. the card information in the MF (issued or not, profile, key set);
//! 2. `SELECT` the SSSE by its name `sx1.sh.社会保障`: the FCI's tag `86` names the algorithm
//!    (`01` DES family, `03` SM4);
//! 3. EF05's items (issuer data), by record number (`00 B2 n 2C`) or by tag (`00 B2 tag 28`);
//! 4. EXTERNAL AUTHENTICATE with the read key RKSSSE (LD/T 32 style, diversified for the card
//!    from EF05's card identification code and the ATR), then EF06's items (cardholder) and the
//!    photo (EF08). A card whose card information names another key set is refused before
//!    this: a wrong key would spend one of RKSSSE's tries;
//! 5. the purse's public information (the purse ADF's FCI carries EF0015).
//!
//! Everything read is decoded with [`crate::holder::items`], which treats card bytes as
//! hostile input: a malformed record is an error naming it, never a panic. [`SsseReader`] offers
//! the single steps.

use serde::Serialize;

use crate::holder::items::{
    decode_date, CardholderItems, IssuerItems, ItemError, EF05_ORDER, EF06_ORDER,
};
use crate::holder::{Photo, RegionCode};
use crate::keys::{CardFactors, FactorError, KeyError, KeyRef, KeyStore, SocialSecurityFactors};
use crate::personalize::{historical_bytes, CardInfo, Channel, Reply};
use crate::profile::{EfData, EfKind, FciMode, Profile, ReadAccess};
use crate::transport::Transport;

/// How EF05/EF06 items are addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// `READ RECORD` by record number, in the standard record order (EF06: 08, 09, 4E, 0A…).
    ByRecord,
    /// `READ RECORD` by identifier: the first record with the item's tag.
    ByTag,
}

/// What [`read_card`] reads.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Record numbers or tags.
    pub mode: ReadMode,
    /// Also read the photo (up to 16 more APDUs).
    pub photo: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            mode: ReadMode::ByRecord,
            photo: true,
        }
    }
}

/// Why a card could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The card or reader failed.
    #[error("after {sent} APDUs: {source}")]
    Transport {
        /// APDUs sent before.
        sent: usize,
        /// The failure.
        source: crate::transport::Error,
    },
    /// The card refused a command.
    #[error("{what}: the card answered {sw:04X} ({meaning})")]
    Refused {
        /// The step.
        what: String,
        /// The status word.
        sw: u16,
        /// Its meaning.
        meaning: String,
    },
    /// The card holds something that is not what the spec says.
    #[error("{what}: {problem}")]
    Invalid {
        /// Where.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// EF05/EF06 items could not be decoded.
    #[error("{file}: {source}")]
    Items {
        /// `EF05` or `EF06`.
        file: &'static str,
        /// The decoding error.
        source: ItemError,
    },
    /// The read key could not be used.
    #[error("the read key: {0}")]
    Keys(#[from] KeyError),
    /// The card's data gives no diversification factors.
    #[error("the card's data gives no key diversification factors: {0}")]
    Factors(#[from] FactorError),
    /// The card was issued with another key set: authenticating with this one would only spend
    /// one of the read key's tries.
    #[error(
        "this card was issued with key set {card}, not {given}: give that key set (--keys); \
         authenticating with another would spend one of RKSSSE's tries"
    )]
    WrongKeySet {
        /// The key set the card information names.
        card: String,
        /// The key set given.
        given: String,
    },
    /// The card's personalization did not finish, and reading it failed.
    #[error(
        "the card is not issued: its personalization did not finish (run `citizencard issue` \
         with it again); reading it: {source}"
    )]
    Unfinished {
        /// What failed.
        source: Box<ReadError>,
    },
    /// The profile has no social-security environment to read.
    #[error("profile {0} has no EF with issuer-items: it describes no social-security card")]
    NoSsse(String),
}

/// What the SSSE's SELECT answered.
#[derive(Clone, Debug, Serialize)]
pub struct SsseFci {
    /// The DF name (tag `84`), in hex.
    pub name: String,
    /// The DIR file's SFI (tag `88`), if given.
    pub dir_sfi: Option<u8>,
    /// The algorithm identifier (tag `86` inside `9F0C`): `01` DES family, `02` SSF33, `03` SM4.
    pub algorithm: Option<u8>,
}

impl SsseFci {
    /// The algorithm's name.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Some(0x01) => "DES/3DES",
            Some(0x02) => "SSF33",
            Some(0x03) => "SM4",
            Some(_) => "unknown",
            None => "not announced (DES, unless the region code starts with 11)",
        }
    }
}

/// The purse's public information (EF0015).
#[derive(Clone, Debug, Serialize)]
pub struct PurseInfo {
    /// The application serial number (10 bytes), in hex.
    pub app_serial: String,
    /// Issuer identifier (8 bytes), in hex.
    pub issuer_id: String,
    /// Application start date.
    pub start: Option<String>,
    /// Application expiry date.
    pub expiry: Option<String>,
}

/// Everything [`read_card`] found.
#[derive(Clone, Debug, Serialize)]
pub struct CardContents {
    /// The ATR, in hex.
    pub atr: String,
    /// The chip serial (ATR TA..TD), in hex.
    pub chip_serial: Option<String>,
    /// The card information (`None`: the card has no such file).
    pub card_info: Option<CardInfo>,
    /// The SSSE's FCI.
    pub ssse: SsseFci,
    /// EF05.
    pub issuer: IssuerItems,
    /// EF06 (after RKSSSE authentication).
    pub holder: CardholderItems,
    /// Disagreements inside EF06 (birth date or sex against the ID number), if any.
    pub inconsistencies: Vec<String>,
    /// EF08.
    #[serde(skip)]
    pub photo: Option<Photo>,
    /// The photo's size and dimensions, for JSON.
    pub photo_summary: Option<String>,
    /// The purse's public information.
    pub purse: Option<PurseInfo>,
    /// How the items were read.
    pub mode: ReadMode,
    /// APDUs sent.
    pub apdus: usize,
}

/// The single steps of reading, over a transport.
pub struct SsseReader<'t> {
    ch: Channel<'t>,
}

impl<'t> SsseReader<'t> {
    /// A reader over `transport`.
    pub fn new(transport: &'t mut dyn Transport) -> Self {
        SsseReader {
            ch: Channel::new(transport),
        }
    }

    /// APDUs sent so far.
    pub fn apdus(&self) -> usize {
        self.ch.sent()
    }

    fn send(&mut self, apdu: &[u8]) -> Result<Reply, ReadError> {
        self.ch.send(apdu).map_err(|source| ReadError::Transport {
            sent: self.ch.sent(),
            source,
        })
    }

    fn expect(&mut self, what: &str, apdu: &[u8]) -> Result<Vec<u8>, ReadError> {
        let r = self.send(apdu)?;
        if r.ok() {
            Ok(r.data)
        } else {
            Err(ReadError::Refused {
                what: what.to_owned(),
                sw: r.sw,
                meaning: r.meaning().to_owned(),
            })
        }
    }

    /// Resets the card (clears its security state; the MF is current).
    pub fn reset(&mut self) -> Result<(), ReadError> {
        self.ch
            .reset()
            .map(|_| ())
            .map_err(|source| ReadError::Transport {
                sent: self.ch.sent(),
                source,
            })
    }

    /// SELECT by DF name; the FCI.
    pub fn select_name(&mut self, name: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut cmd = vec![0x00, 0xA4, 0x04, 0x00, name.len() as u8];
        cmd.extend_from_slice(name);
        cmd.push(0x00);
        self.expect(&format!("SELECT {}", hex::encode_upper(name)), &cmd)
    }

    /// SELECT the MF.
    pub fn select_mf(&mut self) -> Result<(), ReadError> {
        self.expect("SELECT MF", &[0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00])
            .map(|_| ())
    }

    /// READ RECORD `number` of the EF with SFI `sfi` in the current DF.
    pub fn read_record(&mut self, sfi: u8, number: u8) -> Result<Vec<u8>, ReadError> {
        self.expect(
            &format!("READ RECORD {number} of SFI {sfi:02X}"),
            &[0x00, 0xB2, number, (sfi << 3) | 0x04, 0x00],
        )
    }

    /// READ RECORD by identifier: the first record of SFI `sfi` whose tag is `tag`.
    pub fn read_tag(&mut self, sfi: u8, tag: u8) -> Result<Vec<u8>, ReadError> {
        self.expect(
            &format!("READ RECORD tag {tag:02X} of SFI {sfi:02X}"),
            &[0x00, 0xB2, tag, sfi << 3, 0x00],
        )
    }

    /// READ BINARY: `len` bytes from `offset` (the first read by SFI makes the EF current).
    pub fn read_binary(
        &mut self,
        sfi: u8,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>, ReadError> {
        let le = (len.min(256) & 0xFF) as u8;
        let cmd = if offset <= 0xFF {
            [0x00, 0xB0, 0x80 | sfi, offset as u8, le]
        } else {
            let [o0, o1] = (offset as u16).to_be_bytes();
            [0x00, 0xB0, o0 & 0x7F, o1, le]
        };
        self.expect(&format!("READ BINARY SFI {sfi:02X} at {offset}"), &cmd)
    }

    /// LD/T 32 EXTERNAL AUTHENTICATE (GET CHALLENGE of 8 bytes, then `auth ‖ original`) with
    /// key `key` of the key set as key `id` of the current DF.
    pub fn authenticate(
        &mut self,
        keys: &dyn KeyStore,
        key: KeyRef<'_>,
        id: u8,
    ) -> Result<(), ReadError> {
        let challenge = self.expect("GET CHALLENGE", &[0x00, 0x84, 0x00, 0x00, 0x08])?;
        let mut original = [0u8; 8];
        getrandom::fill(&mut original).map_err(|e| ReadError::Invalid {
            what: "EXTERNAL AUTHENTICATE".into(),
            problem: format!("no random number from the operating system: {e}"),
        })?;
        let auth = keys.ldt32_external_authenticate(key, &challenge, &original)?;
        let mut cmd = vec![0x00, 0x82, 0x00, id, 0x10];
        cmd.extend_from_slice(&auth);
        cmd.extend_from_slice(&original);
        self.expect(
            &format!("EXTERNAL AUTHENTICATE with {} (key {id:02X})", key.name),
            &cmd,
        )
        .map(|_| ())
    }

    /// The records of an items file, in `order` (by record number or by tag).
    pub fn read_items(
        &mut self,
        sfi: u8,
        order: &[u8],
        mode: ReadMode,
    ) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut out = Vec::with_capacity(order.len());
        for (i, tag) in order.iter().enumerate() {
            let r = match mode {
                ReadMode::ByRecord => self.read_record(sfi, (i + 1) as u8),
                ReadMode::ByTag => self.read_tag(sfi, *tag),
            };
            match r {
                Ok(bytes) => out.push(bytes),
                // An item a card does not have (e.g. 4E on a 1.0 card) is left for the decoder.
                Err(ReadError::Refused { sw: 0x6A83, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A photo EF of `size` bytes: read until the unwritten rest (a chunk of zeros) or the end.
    pub fn read_photo(&mut self, sfi: u8, size: usize) -> Result<Option<Photo>, ReadError> {
        let mut bytes = Vec::new();
        while bytes.len() < size {
            let chunk = self.read_binary(sfi, bytes.len(), (size - bytes.len()).min(256))?;
            let empty = chunk.iter().all(|b| *b == 0);
            if chunk.is_empty() || empty {
                break;
            }
            bytes.extend(chunk);
        }
        if bytes.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        Photo::from_ef08(&bytes)
            .map(Some)
            .map_err(|e| ReadError::Invalid {
                what: "EF08 (photo)".into(),
                problem: e.to_string(),
            })
    }
}

/// Finds a TLV's value in BER-TLV data (one- or two-byte tags, one-byte lengths).
fn tlv(mut data: &[u8], want: u16) -> Option<&[u8]> {
    while !data.is_empty() {
        let (tag, rest) = if data[0] & 0x1F == 0x1F {
            (u16::from_be_bytes([data[0], *data.get(1)?]), data.get(2..)?)
        } else {
            (u16::from(data[0]), &data[1..])
        };
        let len = usize::from(*rest.first()?);
        let value = rest.get(1..1 + len)?;
        if tag == want {
            return Some(value);
        }
        data = rest.get(1 + len..)?;
    }
    None
}

/// Parses the SSSE's FCI: `6F { 84 name, A5 { 88 DIR-SFI, 9F0C { 86 algorithm } } }`.
pub fn parse_ssse_fci(fci: &[u8]) -> Result<SsseFci, String> {
    let body = tlv(fci, 0x6F).ok_or("no FCI template 6F")?;
    let name = tlv(body, 0x84).ok_or("no DF name 84")?;
    let a5 = tlv(body, 0xA5).unwrap_or(&[]);
    let dir_sfi = tlv(a5, 0x88).and_then(|v| v.first().copied());
    let algorithm = tlv(a5, 0x9F0C)
        .and_then(|v| tlv(v, 0x86))
        .and_then(|v| v.first().copied());
    Ok(SsseFci {
        name: hex::encode_upper(name),
        dir_sfi,
        algorithm,
    })
}

fn date_text(b: &[u8]) -> Option<String> {
    decode_date(b).ok().map(|d| d.to_string())
}

/// Reads the card behind `transport` (see the module docs). EF06 and the photo need RKSSSE
/// (Art. 9 privacy): a key set that is not the card's gives an error naming the authentication.
pub fn read_card(
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    profile: &Profile,
    options: ReadOptions,
) -> Result<CardContents, ReadError> {
    if profile.find(&EfData::IssuerItems).is_none()
        || profile.find(&EfData::CardholderItems).is_none()
    {
        return Err(ReadError::NoSsse(profile.id.clone()));
    }
    let atr = transport.atr().to_vec();
    let historical = historical_bytes(&atr).ok();
    let mut r = SsseReader::new(transport);
    r.reset()?;

    // 1. The card information (the MF is current after a reset).
    let card_info = {
        let info = profile.card_info();
        match info.ef.sfi() {
            Some(sfi) => match r.read_binary(sfi, 0, crate::profile::CARD_INFO_LEN) {
                Ok(bytes) => {
                    Some(
                        CardInfo::decode(&bytes).map_err(|problem| ReadError::Invalid {
                            what: format!("{} (card information)", info.ef.describe()),
                            problem,
                        })?,
                    )
                }
                Err(ReadError::Refused { sw: 0x6A82, .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        }
    };

    // The card information names the key set (its first 24 characters): never spend a try of
    // the card's read key with another one.
    if let Some(info) = card_info.as_ref().filter(|i| i.issued) {
        let given = &keys.identity().id;
        let given_prefix: String = given.chars().take(24).collect();
        if !info.key_set.is_empty() && given_prefix != info.key_set {
            return Err(ReadError::WrongKeySet {
                card: info.key_set.clone(),
                given: given.clone(),
            });
        }
    }
    let parts = match read_ssse(&mut r, keys, profile, options, historical) {
        Ok(parts) => parts,
        // An unfinished card may lack what a finished one has: say why first.
        Err(e) if card_info.as_ref().is_some_and(|i| !i.issued) => {
            return Err(ReadError::Unfinished {
                source: Box::new(e),
            })
        }
        Err(e) => return Err(e),
    };
    let SsseParts {
        fci,
        issuer,
        holder,
        photo,
        purse,
    } = parts;
    Ok(CardContents {
        atr: hex::encode_upper(&atr),
        chip_serial: historical.map(|h| hex::encode_upper(h.serial)),
        card_info,
        ssse: fci,
        inconsistencies: holder.inconsistencies(),
        photo_summary: photo.as_ref().map(|p| {
            format!(
                "{} bytes, {}x{} JPEG",
                p.bytes().len(),
                p.width(),
                p.height()
            )
        }),
        photo,
        issuer,
        holder,
        purse,
        mode: options.mode,
        apdus: r.apdus(),
    })
}

/// What steps 2 to 5 of [`read_card`] read.
struct SsseParts {
    fci: SsseFci,
    issuer: IssuerItems,
    holder: CardholderItems,
    photo: Option<Photo>,
    purse: Option<PurseInfo>,
}

/// Steps 2 to 5 of [`read_card`].
fn read_ssse(
    r: &mut SsseReader<'_>,
    keys: &dyn KeyStore,
    profile: &Profile,
    options: ReadOptions,
    historical: Option<card_os::card::HistoricalBytes>,
) -> Result<SsseParts, ReadError> {
    let (Some(issuer_at), Some(holder_at)) = (
        profile.find(&EfData::IssuerItems),
        profile.find(&EfData::CardholderItems),
    ) else {
        return Err(ReadError::NoSsse(profile.id.clone()));
    };
    let ssse = issuer_at.df;

    // 2. The SSSE.
    let fci = r.select_name(&ssse.name)?;
    let fci = parse_ssse_fci(&fci).map_err(|problem| ReadError::Invalid {
        what: format!("the FCI of {}", ssse.describe()),
        problem,
    })?;

    // 3. EF05.
    let sfi = |e: &crate::profile::EfSpec| e.sfi().unwrap_or(0);
    let ef05 = r.read_items(sfi(issuer_at.ef), &EF05_ORDER, options.mode)?;
    let issuer =
        IssuerItems::decode(ef05.iter().map(Vec::as_slice)).map_err(|source| ReadError::Items {
            file: "EF05",
            source,
        })?;

    // 4. RKSSSE, EF06, the photo.
    let read_key = match profile.ef_read_access(holder_at.df, holder_at.ef) {
        ReadAccess::Free => None,
        ReadAccess::After(k) => Some(k),
        ReadAccess::Never => {
            return Err(ReadError::Invalid {
                what: holder_at.ef.describe(),
                problem: "the profile gives no key that can read it".into(),
            })
        }
    };
    if let Some(k) = read_key {
        let historical = historical.ok_or_else(|| ReadError::Invalid {
            what: "the ATR".into(),
            problem: "its historical bytes do not give the card factor T6..TD".into(),
        })?;
        let city: RegionCode = issuer.card_id.city;
        let factors = CardFactors::NONE.with_social_security(SocialSecurityFactors::for_card(
            &city.digits(),
            &issuer.card_id.encode(),
            &historical,
        )?);
        let name = k.key_name().unwrap_or_default();
        r.authenticate(keys, KeyRef::new(name, &factors), k.id)?;
    }
    let ef06 = r.read_items(sfi(holder_at.ef), &EF06_ORDER, options.mode)?;
    let holder = CardholderItems::decode(ef06.iter().map(Vec::as_slice)).map_err(|source| {
        ReadError::Items {
            file: "EF06",
            source,
        }
    })?;
    let photo = match (options.photo, profile.find(&EfData::Photo)) {
        (true, Some(at)) if at.df.path == ssse.path => match at.ef.kind {
            EfKind::Binary { size } => r.read_photo(sfi(at.ef), usize::from(size))?,
            _ => None,
        },
        _ => None,
    };

    // 5. The purse's public information, from its FCI.
    let purse = profile
        .dfs
        .iter()
        .find(|d| d.efs.iter().any(|e| matches!(e.kind, EfKind::Purse { .. })))
        .filter(|d| d.fci.is_some_and(|f| f.mode == FciMode::IssuerData));
    let purse = match purse {
        Some(d) => match r.select_name(&d.name) {
            Ok(fci) => tlv(&fci, 0x6F)
                .and_then(|b| tlv(b, 0xA5))
                .and_then(|a5| tlv(a5, 0x9F0C))
                .filter(|v| v.len() >= 28)
                .map(|v| PurseInfo {
                    issuer_id: hex::encode_upper(&v[..8]),
                    app_serial: hex::encode_upper(&v[10..20]),
                    start: date_text(&v[20..24]),
                    expiry: date_text(&v[24..28]),
                }),
            Err(ReadError::Refused { sw: 0x6A82, .. }) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    Ok(SsseParts {
        fci,
        issuer,
        holder,
        photo,
        purse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fci_of_a_real_3rd_generation_card() {
        // card-specs §1.2: a real 3.0 card's answer to SELECT sx1.sh.社会保障.
        let fci =
            hex::decode("6F1C840F7378312E73682EC9E7BBE1B1A3D5CFA50988011E9F0C03860103").unwrap();
        let f = parse_ssse_fci(&fci).unwrap();
        assert_eq!(f.name, "7378312E73682EC9E7BBE1B1A3D5CF");
        assert_eq!((f.dir_sfi, f.algorithm), (Some(0x1E), Some(0x03)));
        assert_eq!(f.algorithm_name(), "SM4");
        assert!(parse_ssse_fci(&[0x6F, 0x05, 0x84]).is_err());
        assert!(parse_ssse_fci(&[]).is_err());
        // Truncated inner data gives no values, never a panic.
        let f = parse_ssse_fci(&hex::decode("6F05840101A5FF").unwrap()).unwrap();
        assert_eq!(f.algorithm, None);
    }
}
