//! The checks that make a profile "one that can work": structure, sizes, space, rights that
//! personalization and its recovery need, and (with a key store) keys.

use std::collections::BTreeSet;

use card_os::crypto::Algorithm;

use super::{
    duplicates, path_text, DfSpec, EfData, EfKind, EfSpec, FciMode, KeyKind, KeySource, Profile,
    ProfileError, Protection, Template, CARD_INFO_LEN, HEADER_LEN, MAX_FCI_DATA,
};
use crate::holder::items::{item_len, EF05_ORDER, EF06_ORDER};
use crate::holder::photo::MAX_PHOTO_LEN;
use crate::keys::KeyStore;

/// Longest record of the EF05 items (tag, length, 16-byte card identification code).
pub(super) fn longest_item(order: &[u8]) -> usize {
    order.iter().filter_map(|t| item_len(*t)).max().unwrap_or(0) + 2
}

/// Checks everything that needs no keys, filling in `space = "auto"`.
pub(super) fn structure(p: &mut Profile, problems: &mut Vec<String>) {
    let mut push = |at: String, what: String| problems.push(format!("{at}: {what}"));

    // The tree.
    if p.dfs.first().map(|d| d.path.len()) != Some(1) {
        push(
            "df".into(),
            "the first DF must be the MF (path \"3F00\"): the card's files are created from it"
                .into(),
        );
        return;
    }
    for dup in duplicates(p.dfs.iter().map(|d| d.path.clone())) {
        push(format!("df {}", path_text(&dup)), "declared twice".into());
    }
    for (i, d) in p.dfs.iter().enumerate() {
        if d.path.len() > 1 {
            let parent = &d.path[..d.path.len() - 1];
            if !p.dfs[..i].iter().any(|e| e.path == parent) {
                push(
                    d.describe(),
                    format!(
                        "its parent {} must be declared before it",
                        path_text(parent)
                    ),
                );
            }
        }
    }
    for dup in duplicates(p.dfs.iter().map(|d| d.name.clone())) {
        push(
            "df".into(),
            format!(
                "DF name {} is used twice (SELECT by name must find one DF)",
                hex::encode_upper(dup)
            ),
        );
    }
    if p.dfs
        .iter()
        .any(|d| d.path.len() > 1 && !p.dfs.iter().any(|e| e.path == d.path[..d.path.len() - 1]))
    {
        return;
    }

    for d in &p.dfs {
        df_structure(p, d, &mut push);
    }
    card_info(p, &mut push);
    mf_rights(p, &mut push);

    // Space, deepest DFs first so that "auto" parents see their children's sizes.
    let mut order: Vec<usize> = (0..p.dfs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(p.dfs[i].path.len()));
    for i in order {
        let d = &p.dfs[i];
        let children: usize = p
            .children(d)
            .map(|c| usize::from(c.space.unwrap_or(0)))
            .sum();
        let files = HEADER_LEN
            + usize::from(d.key_file.space)
            + d.efs.iter().map(|e| e.kind.footprint()).sum::<usize>()
            + children;
        if d.is_mf() {
            if files > p.card.memory {
                push(
                    d.describe(),
                    format!(
                        "its files take {files} bytes, more than the card's {} ([card] memory): \
                         the profile is too large for the card",
                        p.card.memory
                    ),
                );
            }
            continue;
        }
        let need = HEADER_LEN + d.name.len() + files;
        match (d.space, d.space_auto) {
            (_, Some(spare)) => match u16::try_from(need + usize::from(spare)) {
                Ok(s) if s < 0xFFFF => p.dfs[i].space = Some(s),
                _ => push(
                    d.describe(),
                    format!("needs {need} bytes: more than a DF can have"),
                ),
            },
            (Some(space), None) if need > usize::from(space) => push(
                d.describe(),
                format!(
                    "needs {need} bytes (header {HEADER_LEN}, name {}, key file {}, files and \
                     DFs {}), more than its space {space}: a file would not fit",
                    d.name.len(),
                    HEADER_LEN + usize::from(d.key_file.space),
                    files - HEADER_LEN - usize::from(d.key_file.space)
                ),
            ),
            _ => {}
        }
    }
}

fn df_structure(p: &Profile, d: &DfSpec, push: &mut impl FnMut(String, String)) {
    let at = d.describe();
    // FIDs within the DF (its EFs and child DFs).
    let fids = d
        .efs
        .iter()
        .map(|e| e.fid)
        .chain(p.children(d).map(|c| c.fid()));
    for dup in duplicates(fids) {
        push(
            at.clone(),
            format!("FID {dup:04X} is used twice in this DF"),
        );
    }

    // Keys.
    for dup in duplicates(d.keys.iter().map(|k| (k.kind.type_byte(), k.id))) {
        push(
            at.clone(),
            format!("two keys of type {:02X} with id {:02X}", dup.0, dup.1),
        );
    }
    match d.master() {
        None if d.is_mf() => push(
            at.clone(),
            "the MF needs a master key (external-auth, id 00): it replaces the transport key, and \
             a card cut mid-way is recovered by authenticating with it"
                .into(),
        ),
        None if !d.keys.is_empty() => push(
            at.clone(),
            "keys without a master key (external-auth, id 00): WRITE KEY in a DF is protected \
             under its master, so the keys could only be loaded in clear"
                .into(),
        ),
        None => {}
        Some(m) => {
            if m.updates != Protection::Encrypted {
                push(
                    format!("{at}, key {}", m.describe()),
                    "a master key must have updates = \"encrypted\": the keys added under it \
                     would otherwise travel in clear"
                        .into(),
                );
            }
            if m.key_name().is_none() {
                push(
                    at.clone(),
                    "the master key must come from the key set".into(),
                );
            }
        }
    }

    // FCI file.
    if let Some(fci) = d.fci {
        match d.ef(fci.fid) {
            Some(ef) if matches!(ef.kind, EfKind::Binary { .. }) && ef.sfi().is_some() => {
                if let EfData::Binary(t) = &ef.data {
                    if t.len() > MAX_FCI_DATA {
                        push(
                            format!("{at}, {}", ef.describe()),
                            format!(
                                "FCI data of {} bytes: the card puts at most {MAX_FCI_DATA} in \
                                 the FCI",
                                t.len()
                            ),
                        );
                    }
                }
                if fci.mode == FciMode::Template && matches!(ef.data, EfData::None) {
                    push(
                        format!("{at}, {}", ef.describe()),
                        "the FCI file (fci_mode \"A5\") has no data".into(),
                    );
                }
            }
            _ => push(
                at.clone(),
                format!(
                    "fci_file {:04X} must be a binary EF of this DF with an SFI (0001..001F)",
                    fci.fid
                ),
            ),
        }
    }

    for ef in &d.efs {
        ef_structure(p, d, ef, push);
    }

    // Coming back to create a second sub-DF: the DF's register is 0, the MF's is what the MF
    // master's authentication set.
    let mf_state = p.mf().master().and_then(|m| m.state).unwrap_or(0);
    if !d.is_mf() && p.children(d).count() > 1 && !d.create.met(mf_state, 0) {
        push(
            at.clone(),
            format!(
                "create right {} cannot be met when personalization comes back to create its \
                 next DF (DF register 0, MF register {mf_state:X} after the MF master's \
                 authentication): use 0{mf_state:X} (MF authority)",
                d.create
            ),
        );
    }
}

fn ef_structure(p: &Profile, d: &DfSpec, ef: &EfSpec, push: &mut impl FnMut(String, String)) {
    let at = format!("{}, {}", d.describe(), ef.describe());
    let mut bad = |what: String| push(at.clone(), what);
    let written = !matches!(ef.data, EfData::None);
    if written && ef.sfi().is_none() {
        bad("an EF personalization writes needs an SFI: give it a FID from 0001 to 001F".into());
    }
    let record_fits = |t: &Template, len: usize, exact: bool| -> Option<String> {
        if (exact && t.len() != len) || t.len() > len {
            Some(format!(
                "a record of {} bytes does not fit records of {len}{}",
                t.len(),
                if exact { " exactly" } else { "" }
            ))
        } else {
            None
        }
    };
    match (&ef.data, ef.kind) {
        (EfData::None, _) => {}
        (EfData::Binary(t), EfKind::Binary { size }) => {
            if t.len() > usize::from(size) {
                bad(format!("data of {} bytes does not fit its {size}", t.len()));
            }
        }
        (EfData::Records(rs), EfKind::Fixed { records, len })
        | (EfData::Records(rs), EfKind::Variable { records, len })
        | (EfData::Records(rs), EfKind::Cyclic { records, len }) => {
            if rs.len() > usize::from(records) {
                bad(format!("{} records for a file of {records}", rs.len()));
            }
            let exact = !matches!(ef.kind, EfKind::Variable { .. });
            for (i, t) in rs.iter().enumerate() {
                if let Some(e) = record_fits(t, usize::from(len), exact) {
                    bad(format!("record {}: {e}", i + 1));
                }
                if !exact {
                    tlv_record(t).err().into_iter().for_each(|e| {
                        bad(format!("record {}: {e}", i + 1));
                    });
                }
            }
        }
        (EfData::IssuerItems, EfKind::Variable { records, len })
        | (EfData::CardholderItems, EfKind::Variable { records, len }) => {
            let order: &[u8] = if ef.data == EfData::IssuerItems {
                &EF05_ORDER
            } else {
                &EF06_ORDER
            };
            let longest = longest_item(order);
            if usize::from(records) < order.len() || usize::from(len) < longest {
                bad(format!(
                    "{} need {} records of up to {longest} bytes; the file has {records} of {len}",
                    ef.data.describe(),
                    order.len()
                ));
            }
        }
        (EfData::Photo, EfKind::Binary { size }) => {
            if usize::from(size) < MAX_PHOTO_LEN {
                bad(format!(
                    "a photo EF of {size} bytes: applicants' photos may have up to {MAX_PHOTO_LEN}"
                ));
            }
        }
        (EfData::CardInfo, EfKind::Binary { size }) => {
            if usize::from(size) < CARD_INFO_LEN {
                bad(format!(
                    "the card information needs {CARD_INFO_LEN} bytes; the file has {size}"
                ));
            }
        }
        (data, kind) => bad(format!(
            "data {} does not go into a {} EF",
            data.describe(),
            kind.name()
        )),
    }

    if written && ef.protection != Protection::Plain {
        let id = ef.write_key_id();
        if !d
            .keys
            .iter()
            .any(|k| k.kind == KeyKind::LineProtection && k.id == id)
        {
            bad(format!(
                "its writes need a MAC under line-protection key {id:02X} (key byte {:02X}), \
                 which the DF does not have",
                ef.key_byte
            ));
        }
    }

    if let EfKind::Purse {
        tac_key, log_sfi, ..
    } = ef.kind
    {
        let pos = d.efs.iter().position(|e| e.fid == ef.fid).unwrap_or(0);
        match d.efs.iter().position(|e| e.sfi() == Some(log_sfi)) {
            Some(i) if i < pos => {
                if !matches!(d.efs[i].kind, EfKind::Cyclic { len, .. } if len >= 23) {
                    bad(format!(
                        "its log {:04X} must be a cyclic EF of records of at least 23 bytes",
                        d.efs[i].fid
                    ));
                }
            }
            Some(_) => bad(format!(
                "its log {log_sfi:04X} must be declared before the purse"
            )),
            None => bad(format!("its log {log_sfi:04X} is not an EF of this DF")),
        }
        if !d
            .keys
            .iter()
            .any(|k| k.kind == KeyKind::Internal && k.id == tac_key)
        {
            bad(format!(
                "its TAC key (internal, id {tac_key:02X}) is not among the DF's keys"
            ));
        }
    }

    // Personalization reads back what it wrote: the read right must be met as is, or after
    // authenticating with one of the DF's keys.
    if written
        && !matches!(ef.kind, EfKind::Purse { .. })
        && p.ef_read_access(d, ef) == super::ReadAccess::Never
    {
        bad(format!(
            "read right {} cannot be met by {}, so personalization could not read back what it \
             wrote",
            ef.read,
            ef.read_key.as_deref().map_or(
                "any external-authentication key of the DF".to_owned(),
                |k| format!("read_key {k} (an external-authentication key of the DF)")
            )
        ));
    }

    // The keys the profile names for reading and writing must be the ones that open them.
    if let Some(name) = &ef.read_key {
        if let Some(e) = key_meets(p, d, ef.read, name, false) {
            bad(format!("read_key {name}: {e}"));
        }
    }
    if let Some(name) = &ef.write_key {
        let problem = if ef.protection != Protection::Plain {
            let id = ef.write_key_id();
            (!d.keys.iter().any(|k| {
                k.kind == KeyKind::LineProtection && k.id == id && k.key_name() == Some(name)
            }))
            .then(|| {
                format!(
                    "writes need a MAC under line-protection key {id:02X} (key byte {:02X}), \
                     which is not {name}",
                    ef.key_byte
                )
            })
        } else {
            key_meets(p, d, ef.write, name, true)
        };
        if let Some(e) = problem {
            bad(format!("write_key {name}: {e}"));
        }
    }
}

/// Whether authenticating with key `name` meets `right` of an EF of `d` (`None`) or why not: the
/// key is the DF's (its state in the DF's register; at the MF in both) or, for an MF-authority
/// right `0Y`, the MF's (its state in the MF register).
fn key_meets(
    p: &Profile,
    d: &DfSpec,
    right: super::Right,
    name: &str,
    write: bool,
) -> Option<String> {
    if right.met(0, 0) {
        return Some(format!(
            "{} right {right} is met without any key: leave it out",
            if write { "the write" } else { "the read" }
        ));
    }
    let state_of = |df: &DfSpec| {
        df.keys
            .iter()
            .find(|k| k.kind == KeyKind::ExternalAuth && k.key_name() == Some(name))
            .map(|k| k.state.unwrap_or(0))
    };
    let met = match (state_of(d), state_of(p.mf())) {
        (Some(s), _) if d.is_mf() => right.met(s, s),
        (Some(s), _) => right.met(0, s),
        (None, Some(s)) => right.met(s, 0),
        (None, None) => {
            return Some(format!(
                "{name} is no external-authentication key of {} or of the MF",
                d.describe()
            ))
        }
    };
    (!met).then(|| format!("its follow-on state does not meet right {right}"))
}

/// A variable record template must be one TLV: tag, length, value.
fn tlv_record(t: &Template) -> Result<(), String> {
    if t.len() < 2 {
        return Err("a variable record is `tag len value`: at least 2 bytes".into());
    }
    if let Some(super::Part::Bytes(b)) = t.parts().first() {
        if let Some(&len) = b.get(1) {
            if usize::from(len) + 2 != t.len() {
                return Err(format!(
                    "its length byte {len:02X} does not match the {} value bytes",
                    t.len() - 2
                ));
            }
        }
    }
    Ok(())
}

fn card_info(p: &Profile, push: &mut impl FnMut(String, String)) {
    let all: Vec<(&DfSpec, &EfSpec)> = p
        .dfs
        .iter()
        .flat_map(|d| d.efs.iter().map(move |e| (d, e)))
        .filter(|(_, e)| e.data == EfData::CardInfo)
        .collect();
    let mf_state = p.mf().master().and_then(|m| m.state).unwrap_or(0);
    match all.as_slice() {
        [] => push(
            "df 3F00".into(),
            "no EF with data = \"card-info\": the issuance state, written last, tells a \
             finished card from one pulled out mid-way"
                .into(),
        ),
        [(d, e)] => {
            let at = format!("{}, {}", d.describe(), e.describe());
            if !d.is_mf() {
                push(at.clone(), "the card information belongs in the MF".into());
            }
            if !e.read.met(0, 0) {
                push(
                    at.clone(),
                    format!(
                        "read right {}: anyone must be able to read the issuance state",
                        e.read
                    ),
                );
            }
            if !e.write.met(mf_state, mf_state) {
                push(
                    at,
                    format!(
                        "write right {} cannot be met after the MF master's authentication \
                         (state {mf_state:X})",
                        e.write
                    ),
                );
            }
        }
        _ => push(
            "df".into(),
            "more than one EF with data = \"card-info\"".into(),
        ),
    }
}

/// What recovering a card cut mid-way needs at the MF.
fn mf_rights(p: &Profile, push: &mut impl FnMut(String, String)) {
    let mf = p.mf();
    let at = mf.describe();
    let Some(master) = mf.master() else { return };
    let s = master.state.unwrap_or(0);
    if !mf.erase.met(s, s) {
        push(
            at.clone(),
            format!(
                "erase right {} cannot be met after the MF master's authentication (state \
                 {s:X}): a card cut mid-way could not be erased and personalized again",
                mf.erase
            ),
        );
    }
    if p.children(mf).count() > 1 && !mf.create.met(s, s) {
        push(
            at.clone(),
            format!(
                "create right {} cannot be met after the MF master's authentication (state \
                 {s:X}), so its second DF could not be created",
                mf.create
            ),
        );
    }
    if !mf.key_file.add.met(0, 0) {
        push(
            format!("{at}, key_file"),
            format!(
                "add right {}: the MF's key file must take its master without authentication \
                 (F0), or a card cut between creating it and writing the master could never be \
                 recovered; it is sized to hold exactly its keys, so nobody can add another",
                mf.key_file.add
            ),
        );
    }
    if !master.change_right.met(0, 0) {
        push(
            format!("{at}, key {}", master.describe()),
            format!(
                "change right {}: recovering a cut card replaces the transport key with the MF \
                 master before any authentication is possible; the replacement is protected by \
                 encryption and MAC under the current key (use F0)",
                master.change_right
            ),
        );
    }
    for k in &mf.keys {
        if !k.is_master() {
            push(
                format!("{at}, key {}", k.describe()),
                "the MF's key file holds its master only (it must be full, since anyone may \
                 add to it): put other keys in a DF"
                    .into(),
            );
        }
    }
}

/// The key length of an algorithm's keys, in bytes.
fn key_len(a: Algorithm) -> usize {
    match a {
        Algorithm::Des => 8,
        _ => 16,
    }
}

impl Profile {
    /// Checks the profile against a key store: every key it names exists; every key file holds
    /// its keys (the MF's exactly); each master key can replace the transport key (the card
    /// keeps a key's length); template fields name existing keys. All problems at once.
    pub fn check_keys(&self, keys: &dyn KeyStore) -> Result<(), ProfileError> {
        let mut problems = Vec::new();
        let mut reported = BTreeSet::new();
        for (name, at) in self.key_names() {
            if keys.key_info(&name).is_err() && reported.insert(name.clone()) {
                problems.push(format!(
                    "{at}: key {name} is not in key set {}",
                    keys.identity().id
                ));
            }
        }
        let len_of = |name: &str| keys.key_info(name).ok().map(|i| key_len(i.algorithm));
        let transport_len = len_of(&self.card.transport_key);
        for d in &self.dfs {
            let at = d.describe();
            if let Some(bytes) = d.key_bytes(len_of) {
                let space = usize::from(d.key_file.space);
                if bytes > space {
                    problems.push(format!(
                        "{at}, key_file: its keys take {bytes} bytes (each key its length + 8), \
                         more than its space {space}"
                    ));
                } else if d.is_mf() && bytes != space {
                    problems.push(format!(
                        "{at}, key_file: space {space} must be exactly what its keys take \
                         ({bytes}): anyone may add keys to the MF's key file (add right F0), \
                         so it must be full"
                    ));
                }
            }
            if let (Some(m), Some(t)) = (d.master(), transport_len) {
                if let Some(l) = m.key_name().and_then(len_of) {
                    if l != t {
                        problems.push(format!(
                            "{at}, key {}: a {l}-byte key cannot replace the {t}-byte transport \
                             key {} (the card keeps a key's length)",
                            m.describe(),
                            self.card.transport_key
                        ));
                    }
                }
            }
            for k in &d.keys {
                if let (KeySource::KeySet(name), KeyKind::Pin) = (&k.source, k.kind) {
                    problems.push(format!("{at}: a PIN cannot come from key {name}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProfileError {
                origin: self.origin.clone(),
                problems,
            })
        }
    }
}
