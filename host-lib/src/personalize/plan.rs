//! Profile + card data + keys → the ordered plan: every command personalization will send (the
//! cryptograms of those after a GET CHALLENGE are computed when the challenge is there), and every
//! read-back check.
//!
//! Order, per DF (apdu-specs/layout.md, "How a card is personalized"): create the DF (a new DF
//! becomes current and, having no key file when entered, stays open until left), its key file,
//! the transport key as its master (plain: it is public), its keys encrypted and MAC'd under the
//! transport key, the master replaced by its own key; at the MF, authenticate with the new
//! master (the MF register then opens every `0A` right until reset); then its EFs and their data;
//! then its sub-DFs, selecting it again between them. Last, back at the MF, the card information
//! with the issued state.

use zeroize::Zeroizing;

use super::card_info::CardInfo;
use super::{CardData, PersonalizeError};
use crate::holder::items::{encode_date, encode_region, Record};
use crate::keys::{CardFactors, KeyRecordLayout, KeyRef, KeyStore};
use crate::profile::{
    DfSpec, EfData, EfKind, EfSpec, FciMode, KeyKind, KeySource, Profile, Protection, ReadAccess,
    Template, MF,
};

/// What a step does.
#[derive(Clone)]
pub(crate) enum Op {
    /// CREATE FILE 3F00: redefine the factory MF (only while it has no files: also the probe of a
    /// blank card).
    RedefineMf(Vec<u8>),
    /// CREATE FILE.
    Create { fid: u16, data: Vec<u8> },
    /// The transport key as the current DF's master, plain (`80 D4 01 00`).
    MasterPlain { layout: KeyRecordLayout },
    /// GET CHALLENGE, then a key added encrypted and MAC'd under the transport key.
    AddKey {
        name: String,
        id: u8,
        layout: KeyRecordLayout,
    },
    /// GET CHALLENGE, then a PIN added encrypted and MAC'd under the transport key.
    AddPin { id: u8, record: Zeroizing<Vec<u8>> },
    /// GET CHALLENGE, then the master replaced (`84 D4 39 00`) under the transport key.
    ReplaceMaster {
        name: String,
        layout: KeyRecordLayout,
    },
    /// GET CHALLENGE, then LD/T 32 EXTERNAL AUTHENTICATE.
    Authenticate { name: String, id: u8 },
    /// UPDATE BINARY (by SFI at offset 0..255, else at an offset of the current EF), optionally
    /// line-protected (GET CHALLENGE first).
    Update {
        sfi: u8,
        offset: u16,
        data: Vec<u8>,
        protect: Option<Protect>,
    },
    /// APPEND RECORD by SFI, optionally line-protected.
    Append {
        sfi: u8,
        record: Vec<u8>,
        protect: Option<Protect>,
    },
    /// SELECT by FID, no answer data.
    Select { fid: u16 },
}

/// How a protected write is protected.
#[derive(Clone)]
pub(crate) struct Protect {
    /// The `36` key (key-set name).
    pub key: String,
    /// Whether the data is encrypted too.
    pub encrypt: bool,
}

/// One step of the plan.
#[derive(Clone)]
pub struct Step {
    /// The DF it happens in.
    pub df: String,
    /// What it does, for people.
    pub what: String,
    pub(crate) op: Op,
}

impl Step {
    /// The APDUs it sends.
    pub fn apdus(&self) -> usize {
        match &self.op {
            Op::AddKey { .. }
            | Op::AddPin { .. }
            | Op::ReplaceMaster { .. }
            | Op::Authenticate { .. } => 2,
            Op::Update { protect, .. } | Op::Append { protect, .. } => {
                1 + usize::from(protect.is_some())
            }
            _ => 1,
        }
    }
}

/// One read-back check (after a reset).
#[derive(Clone)]
pub(crate) enum Check {
    /// SELECT by DF name; the FCI must be this.
    SelectName { name: Vec<u8>, fci: Vec<u8> },
    /// LD/T 32 EXTERNAL AUTHENTICATE.
    Authenticate { name: String, id: u8 },
    /// The binary EF holds `data` from offset 0.
    Binary { sfi: u8, data: Vec<u8> },
    /// Record `number` of the EF is `data`.
    Record { sfi: u8, number: u8, data: Vec<u8> },
}

/// A read-back check with its description.
#[derive(Clone)]
pub(crate) struct Verify {
    pub what: String,
    pub check: Check,
}

impl Verify {
    pub(crate) fn apdus(&self) -> usize {
        match &self.check {
            Check::Authenticate { .. } => 2,
            Check::Binary { data, .. } => data.len().div_ceil(256).max(1),
            _ => 1,
        }
    }
}

/// The plan for one card.
#[derive(Clone)]
pub struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) checks: Vec<Verify>,
    /// The card information written last.
    pub(crate) card_info: CardInfo,
    /// Where it is (its SFI in the MF).
    pub(crate) card_info_sfi: u8,
    /// The MF master key (name, id) for recovery.
    pub(crate) mf_master: (String, KeyRecordLayout),
    pub(crate) transport_key: String,
    pub(crate) photo_bytes: usize,
}

impl Plan {
    /// The steps in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// APDUs the steps send (a blank card: no recovery).
    pub fn personalization_apdus(&self) -> usize {
        self.steps.iter().map(Step::apdus).sum()
    }

    /// APDUs the read-back verification sends.
    pub fn verification_apdus(&self) -> usize {
        self.checks.iter().map(Verify::apdus).sum()
    }

    /// The card information the last step writes.
    pub fn card_info(&self) -> &CardInfo {
        &self.card_info
    }

    /// The read-back checks, described.
    pub fn checks(&self) -> Vec<String> {
        self.checks.iter().map(|c| c.what.clone()).collect()
    }

    /// Builds the plan. Everything that can be wrong with the profile, the keys or the data is
    /// found here, before any APDU.
    pub fn build(
        profile: &Profile,
        data: &CardData,
        keys: &dyn KeyStore,
        factors: &CardFactors,
        development: bool,
        key_set: &str,
    ) -> Result<Plan, PersonalizeError> {
        profile.check_keys(keys)?;
        // Every key must be derivable for this card (its factors present).
        for (name, _) in profile.key_names() {
            keys.card_key_check_value(KeyRef::new(&name, factors))
                .map_err(PersonalizeError::Keys)?;
        }
        let mut b = Builder {
            profile,
            data,
            keys,
            steps: Vec::new(),
            checks: Vec::new(),
            mf_checks: Vec::new(),
            photo_bytes: 0,
        };
        b.df(profile.mf())?;
        let info_at = profile.card_info();
        let card_info_sfi = info_at.ef.sfi().unwrap_or(0);
        let card_info = CardInfo::issued(
            &data.issuer.card_number,
            data.issuer.issue_date,
            development,
            &profile.id,
            key_set,
        );
        b.steps.push(Step {
            df: profile.mf().path_text(),
            what: "back to the MF".into(),
            op: Op::Select { fid: MF },
        });
        b.steps.push(Step {
            df: profile.mf().path_text(),
            what: format!(
                "{}: the card information with the issued state (last)",
                info_at.ef.describe()
            ),
            op: Op::Update {
                sfi: card_info_sfi,
                offset: 0,
                data: card_info.encode().to_vec(),
                protect: None,
            },
        });
        let mut checks = vec![Verify {
            what: format!("{} (card information)", info_at.ef.describe()),
            check: Check::Binary {
                sfi: card_info_sfi,
                data: card_info.encode().to_vec(),
            },
        }];
        checks.append(&mut b.mf_checks);
        checks.append(&mut b.checks);
        let mf = profile.mf();
        let master = mf
            .master()
            .ok_or_else(|| PersonalizeError::Data("the profile's MF has no master key".into()))?;
        let master_layout = layout(master.layout_text())?;
        Ok(Plan {
            steps: b.steps,
            checks,
            card_info,
            card_info_sfi,
            mf_master: (
                master.key_name().unwrap_or_default().to_owned(),
                master_layout,
            ),
            transport_key: profile.card.transport_key.clone(),
            photo_bytes: b.photo_bytes,
        })
    }
}

fn layout(text: String) -> Result<KeyRecordLayout, PersonalizeError> {
    KeyRecordLayout::parse(&text).map_err(|e| PersonalizeError::Data(e.to_string()))
}

struct Builder<'a> {
    profile: &'a Profile,
    data: &'a CardData,
    keys: &'a dyn KeyStore,
    steps: Vec<Step>,
    checks: Vec<Verify>,
    mf_checks: Vec<Verify>,
    photo_bytes: usize,
}

impl Builder<'_> {
    fn push(&mut self, df: &DfSpec, what: String, op: Op) {
        self.steps.push(Step {
            df: df.path_text(),
            what,
            op,
        });
    }

    fn df(&mut self, df: &DfSpec) -> Result<(), PersonalizeError> {
        if df.is_mf() {
            self.push(
                df,
                format!("redefine the MF \"{}\" (rights, name)", df.name_text),
                Op::RedefineMf(df.create_data()),
            );
        } else {
            self.push(
                df,
                format!("create {} \"{}\"", df.describe(), df.name_text),
                Op::Create {
                    fid: df.fid(),
                    data: df.create_data(),
                },
            );
        }
        self.push(
            df,
            "create the key file".into(),
            Op::Create {
                fid: 0x0000,
                data: df.key_file.create_data(),
            },
        );
        if let Some(master) = df.master() {
            let l = layout(master.layout_text())?;
            self.push(
                df,
                format!(
                    "the transport key {} as master, plain",
                    self.profile.card.transport_key
                ),
                Op::MasterPlain { layout: l },
            );
        }
        for k in df.keys.iter().filter(|k| !k.is_master()) {
            match &k.source {
                KeySource::KeySet(name) => {
                    let l = layout(k.layout_text())?;
                    self.push(
                        df,
                        format!("load key {} (encrypted)", k.describe()),
                        Op::AddKey {
                            name: name.clone(),
                            id: k.id,
                            layout: l,
                        },
                    );
                }
                KeySource::Pin { digits, room } => {
                    let mut record = Zeroizing::new(vec![
                        k.type_byte(),
                        k.use_right.0,
                        k.change_right.0,
                        k.state.unwrap_or(0),
                        {
                            let t = k.tries.unwrap_or(3);
                            (t << 4) | t
                        },
                    ]);
                    let packed = hex::decode(digits)
                        .map_err(|_| PersonalizeError::Data(format!("PIN of {}", df.describe())))?;
                    record.extend_from_slice(&packed);
                    record.resize(5 + usize::from(*room), 0xFF);
                    self.push(
                        df,
                        format!("load the initial PIN {:02X} (encrypted)", k.id),
                        Op::AddPin { id: k.id, record },
                    );
                }
            }
        }
        if let Some(master) = df.master() {
            let name = master.key_name().unwrap_or_default().to_owned();
            self.push(
                df,
                format!("replace the master with {name} (encrypted)"),
                Op::ReplaceMaster {
                    name: name.clone(),
                    layout: layout(master.layout_text())?,
                },
            );
            if df.is_mf() {
                self.push(
                    df,
                    format!("authenticate with {name}: MF authority until reset"),
                    Op::Authenticate { name, id: 0 },
                );
            }
        }
        // EFs and their data.
        let mut df_checks: Vec<Verify> = Vec::new();
        // EFs read after an authentication, grouped by the key (name, id).
        let mut auth_checks: Vec<((String, u8, String), Vec<Verify>)> = Vec::new();
        for ef in &df.efs {
            self.push(
                df,
                format!(
                    "create {} ({}{})",
                    ef.describe(),
                    ef.kind.name(),
                    ef.label
                        .as_deref()
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                ),
                Op::Create {
                    fid: ef.fid,
                    data: ef.create_data(),
                },
            );
            let written = self.ef_data(df, ef)?;
            let Some(sfi) = ef.sfi() else { continue };
            if written.is_empty() {
                continue;
            }
            // The FCI check covers an FCI file of at most 64 bytes.
            let in_fci = df.fci.is_some_and(|f| f.fid == ef.fid)
                && matches!(ef.kind, EfKind::Binary { size } if size <= 64);
            if in_fci || ef.data == EfData::CardInfo {
                continue;
            }
            let checks: Vec<Verify> = match (&ef.kind, written) {
                (EfKind::Binary { .. }, Written::Binary(data)) => vec![Verify {
                    what: format!("{} ({} bytes)", ef.describe(), data.len()),
                    check: Check::Binary { sfi, data },
                }],
                (_, Written::Records(records)) => records
                    .into_iter()
                    .enumerate()
                    .map(|(i, data)| Verify {
                        what: format!("{} record {}", ef.describe(), i + 1),
                        check: Check::Record {
                            sfi,
                            number: (i + 1) as u8,
                            data,
                        },
                    })
                    .collect(),
                _ => vec![],
            };
            match self.profile.ef_read_access(df, ef) {
                ReadAccess::Free => df_checks.extend(checks),
                ReadAccess::After(k) => {
                    let key = (
                        k.key_name().unwrap_or_default().to_owned(),
                        k.id,
                        k.describe(),
                    );
                    match auth_checks.iter_mut().find(|(g, _)| *g == key) {
                        Some((_, group)) => group.extend(checks),
                        None => auth_checks.push((key, checks)),
                    }
                }
                ReadAccess::Never => {}
            }
        }
        for ((name, id, describe), checks) in auth_checks {
            df_checks.push(Verify {
                what: format!("authenticate with {describe}"),
                check: Check::Authenticate { name, id },
            });
            df_checks.extend(checks);
        }
        if df.is_mf() {
            self.mf_checks = df_checks;
        } else if !df_checks.is_empty() || df.fci.is_some() {
            let fci = self.expected_fci(df)?;
            let mut all = vec![Verify {
                what: format!("select {} by name, its FCI", df.describe()),
                check: Check::SelectName {
                    name: df.name.clone(),
                    fci,
                },
            }];
            all.extend(df_checks);
            self.checks.extend(all);
        }
        // Sub-DFs.
        let children: Vec<&DfSpec> = self.profile.children(df).collect();
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                self.push(
                    df,
                    format!("back to {}", df.describe()),
                    Op::Select { fid: df.fid() },
                );
            }
            self.df(child)?;
        }
        Ok(())
    }

    /// Emits the writes of an EF; returns what it holds afterwards.
    fn ef_data(&mut self, df: &DfSpec, ef: &EfSpec) -> Result<Written, PersonalizeError> {
        let Some(sfi) = ef.sfi() else {
            return Ok(Written::Binary(vec![]));
        };
        let protect = (ef.protection != Protection::Plain).then(|| Protect {
            key: df
                .keys
                .iter()
                .find(|k| k.kind == KeyKind::LineProtection && k.id == ef.write_key_id())
                .and_then(|k| k.key_name())
                .unwrap_or_default()
                .to_owned(),
            encrypt: ef.protection == Protection::Encrypted,
        });
        let at = format!("{} in {}", ef.describe(), df.describe());
        match &ef.data {
            EfData::None | EfData::CardInfo => Ok(Written::Binary(vec![])),
            EfData::Binary(t) => {
                let bytes = self.fill(t, &at)?;
                self.binary(df, ef, sfi, &bytes, protect);
                Ok(Written::Binary(bytes))
            }
            EfData::Photo => {
                let Some(photo) = &self.data.photo else {
                    return Ok(Written::Binary(vec![]));
                };
                let bytes = photo.bytes().to_vec();
                if let EfKind::Binary { size } = ef.kind {
                    if bytes.len() > usize::from(size) {
                        return Err(PersonalizeError::Data(format!(
                            "the photo has {} bytes; {at} holds {size}",
                            bytes.len()
                        )));
                    }
                }
                self.photo_bytes = bytes.len();
                self.binary(df, ef, sfi, &bytes, protect);
                Ok(Written::Binary(bytes))
            }
            EfData::Records(ts) => {
                let mut out = Vec::new();
                for (i, t) in ts.iter().enumerate() {
                    let r = self.fill(t, &format!("{at}, record {}", i + 1))?;
                    self.append(
                        df,
                        ef,
                        sfi,
                        &r,
                        protect.clone(),
                        format!("record {}", i + 1),
                    );
                    out.push(r);
                }
                Ok(Written::Records(out))
            }
            EfData::IssuerItems | EfData::CardholderItems => {
                let records: Vec<Record> = if ef.data == EfData::IssuerItems {
                    self.data.issuer.records()
                } else {
                    self.data.holder.records()
                };
                let mut out = Vec::new();
                for r in records {
                    let bytes = r.to_bytes();
                    let name = crate::holder::items::item_name(r.tag).unwrap_or("?");
                    self.append(
                        df,
                        ef,
                        sfi,
                        &bytes,
                        protect.clone(),
                        format!("item {:02X} {name}", r.tag),
                    );
                    out.push(bytes);
                }
                Ok(Written::Records(out))
            }
        }
    }

    fn binary(
        &mut self,
        df: &DfSpec,
        ef: &EfSpec,
        sfi: u8,
        bytes: &[u8],
        protect: Option<Protect>,
    ) {
        let max = self.profile.card.max_data;
        let chunk = match &protect {
            None => max,
            Some(p) if !p.encrypt => max - 4,
            // LD ‖ data ‖ padding must fit with the MAC: whole 16-byte blocks, one byte for LD.
            Some(_) => ((max - 4) / 16) * 16 - 1,
        };
        let parts = bytes.len().div_ceil(chunk);
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            let offset = (i * chunk) as u16;
            let what = if parts > 1 {
                format!("write {} part {}/{parts}", ef.describe(), i + 1)
            } else {
                format!("write {} ({} bytes)", ef.describe(), piece.len())
            };
            self.push(
                df,
                what,
                Op::Update {
                    sfi,
                    offset,
                    data: piece.to_vec(),
                    protect: protect.clone(),
                },
            );
        }
    }

    fn append(
        &mut self,
        df: &DfSpec,
        ef: &EfSpec,
        sfi: u8,
        record: &[u8],
        protect: Option<Protect>,
        what: String,
    ) {
        self.push(
            df,
            format!("{}: {what}", ef.describe()),
            Op::Append {
                sfi,
                record: record.to_vec(),
                protect,
            },
        );
    }

    fn fill(&self, t: &Template, at: &str) -> Result<Vec<u8>, PersonalizeError> {
        use crate::profile::Field;
        let d = self.data;
        t.fill(|f| {
            Ok(match f {
                Field::AppSerial => d.app_serial.to_vec(),
                Field::IssueDate => encode_date(d.issuer.issue_date).to_vec(),
                Field::ExpiryDate => encode_date(d.issuer.expiry_date).to_vec(),
                Field::CardNumber => d.issuer.card_number.encode().to_vec(),
                Field::City => encode_region(d.issuer.card_id.city).to_vec(),
                Field::Algorithm(k) => vec![self.key_info(k, at)?.algorithm.id()],
                Field::Version(k) => vec![self.key_info(k, at)?.version],
            })
        })
    }

    fn key_info(&self, name: &str, at: &str) -> Result<crate::keys::KeyInfo, PersonalizeError> {
        self.keys
            .key_info(name)
            .map_err(|e| PersonalizeError::Data(format!("{at}: {e}")))
    }

    /// What SELECT by name answers: `6F { 84 name, A5 { … } }` (apdu-specs/files.md).
    fn expected_fci(&self, df: &DfSpec) -> Result<Vec<u8>, PersonalizeError> {
        let mut a5 = Vec::new();
        if let Some(fci) = df.fci {
            if let Some(ef) = df.ef(fci.fid) {
                let mut contents = match &ef.data {
                    EfData::Binary(t) => self.fill(t, &ef.describe())?,
                    _ => vec![],
                };
                if let EfKind::Binary { size } = ef.kind {
                    contents.resize(usize::from(size), 0);
                }
                contents.truncate(crate::profile::MAX_FCI_DATA);
                match fci.mode {
                    FciMode::IssuerData if !contents.is_empty() => {
                        a5.extend_from_slice(&[0x9F, 0x0C, contents.len() as u8]);
                        a5.extend(contents);
                    }
                    FciMode::IssuerData => {}
                    FciMode::Template => a5 = contents,
                }
            }
        }
        let mut inner = vec![0x84, df.name.len() as u8];
        inner.extend_from_slice(&df.name);
        inner.push(0xA5);
        inner.push(a5.len() as u8);
        inner.extend(a5);
        let mut fci = vec![0x6F, inner.len() as u8];
        fci.extend(inner);
        Ok(fci)
    }
}

/// What an EF holds after personalization wrote it.
enum Written {
    Binary(Vec<u8>),
    Records(Vec<Vec<u8>>),
}

impl Written {
    fn is_empty(&self) -> bool {
        match self {
            Written::Binary(b) => b.is_empty(),
            Written::Records(r) => r.is_empty(),
        }
    }
}
