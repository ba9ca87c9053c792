//! CREATE FILE `80 E0` (FMCOS 2.0 §7.13): the data layouts of each file type, and the creation
//! itself with FMCOS's space accounting (§4.2).

use super::header::{field, FileKind, Header, HEADER_LEN, MAX_DF_NAME, MAX_RECORD_LEN};
use super::{children, file_at, find_df_by_name, find_key_file, DfPath, FileRef, MF_FID};
use crate::apdu::Sw;
use crate::nvm::{Nvm, Storage};

/// A parsed CREATE FILE command: what to create, and its header as it will be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpec<'a> {
    /// The header to store (mutable fields zero).
    pub header: Header,
    /// A DF's name (empty for other files).
    pub name: &'a [u8],
    /// A purse's maximum balance, the first 4 bytes of its body (apdu-specs/purse.md; 0 for other
    /// files).
    pub purse_max_balance: u32,
}

impl<'a> FileSpec<'a> {
    /// Parses `80 E0 P1 P2 Lc data` (P1P2 = FID). Errors: `6700` for a wrong Lc, `6A80` for a
    /// bad field (unknown type, name length outside 5..16, fewer than 2 records or record length
    /// above 248), `6A86` for a key file whose FID isn't `0000`.
    ///
    /// | type | data (FMCOS 2.0 §7.13) |
    /// |---|---|
    /// | DF `38` | `38 space(2) createRight eraseRight fciFile FF FF name(5..16)` |
    /// | binary `28` (`A8`/`68`/`E8` protected) | `28 size(2) readRight writeRight FF keyByte` |
    /// | record `2A`/`2C`/`2E` (+ bits) | `2A nRecords recordLen readRight writeRight FF keyByte` |
    /// | purse `2F` | `2F 02 08 useRight tacKeyId FF logSfi [maxBalance(4)]` (the 4 bytes are ours) |
    /// | key file `3F` | `3F space(2) dfSfi addRight FF FF` |
    pub fn parse(fid: u16, data: &'a [u8]) -> Result<FileSpec<'a>, Sw> {
        let [f0, f1] = fid.to_be_bytes();
        let type_byte = *data.first().ok_or(Sw::WRONG_LENGTH)?;
        let kind = FileKind::from_type_byte(type_byte).ok_or(Sw::WRONG_DATA)?;
        if kind == FileKind::Df {
            let (fixed, name) = match data {
                [_, s0, s1, c, e, fci, _, _, name @ ..] => ([*s0, *s1, *c, *e, *fci], name),
                _ => return Err(Sw::WRONG_LENGTH),
            };
            if !(5..=MAX_DF_NAME).contains(&name.len()) {
                return Err(Sw::WRONG_DATA);
            }
            let [s0, s1, create, erase, fci] = fixed;
            let raw = [
                type_byte,
                f0,
                f1,
                s0,
                s1,
                create,
                erase,
                fci,
                name.len() as u8,
                0,
                0,
            ];
            return Ok(FileSpec {
                header: Header::new(raw, kind),
                name,
                purse_max_balance: 0,
            });
        }
        // A purse may carry its maximum balance after the FMCOS fields; without it the limit is
        // the largest 4-byte amount.
        let (fmcos, purse_max_balance) = match (kind, data) {
            (FileKind::Purse, [fmcos @ .., m0, m1, m2, m3]) if fmcos.len() == 7 => {
                (fmcos, u32::from_be_bytes([*m0, *m1, *m2, *m3]))
            }
            (FileKind::Purse, _) => (data, u32::MAX),
            _ => (data, 0),
        };
        let [_, b1, b2, b3, b4, b5, b6] = match fmcos {
            [a, b, c, d, e, f, g] => [*a, *b, *c, *d, *e, *f, *g],
            _ => return Err(Sw::WRONG_LENGTH),
        };
        let raw = match kind {
            FileKind::Binary => [type_byte, f0, f1, b1, b2, b3, b4, b6, 0, 0, 0],
            FileKind::FixedRecord | FileKind::VariableRecord | FileKind::CyclicRecord => {
                let (b1, b2) = match (kind, b1, b2) {
                    // FMCOS 2.0 §7.13: a variable-record file's bytes 2-3 are its space, not a
                    // count and a length (real scripts write `2C 00 18`). A zero count can only
                    // mean that form: two slots that each take any record the space could hold.
                    (FileKind::VariableRecord, 0, space) if space >= 3 => {
                        (2, (space - 1).min(MAX_RECORD_LEN as u8))
                    }
                    _ => (b1, b2),
                };
                let (count, len) = (usize::from(b1), usize::from(b2));
                let min_len = if kind == FileKind::VariableRecord {
                    2
                } else {
                    1
                };
                // FMCOS 2.0 §7.13.5: `6A80` for a record file of fewer than 2 records.
                if count < 2 || !(min_len..=MAX_RECORD_LEN).contains(&len) {
                    return Err(Sw::WRONG_DATA);
                }
                [type_byte, f0, f1, b1, b2, b3, b4, b6, 0, 0, 0]
            }
            FileKind::Purse => [type_byte, f0, f1, b1, b2, b3, b4, b5, b6, 0, 0],
            FileKind::KeyFile => {
                if fid != 0 {
                    return Err(Sw::WRONG_P1_P2);
                }
                [type_byte, f0, f1, b1, b2, b3, b4, 0, 0, 0, 0]
            }
            FileKind::Df => return Err(Sw::WRONG_DATA),
        };
        Ok(FileSpec {
            header: Header::new(raw, kind),
            name: &[],
            purse_max_balance,
        })
    }
}

/// Creates `spec` in the current DF of `path` (FMCOS 2.0 §7.13) and returns it. The caller has
/// checked the create right. Errors: `6A86` FID or DF name already in use, `6A84` not enough
/// space, `6A80` a DF below the third level, `6985` a key file after other files (FMCOS 2.0 §4.3:
/// the key file comes first).
///
/// Creating a DF with FID `3F00` redefines the MF (its rights and name), which FMCOS personalization
/// scripts do on a factory card; it is refused once the MF has files.
pub fn create_file<N: Nvm>(
    storage: &mut Storage<N>,
    path: &DfPath,
    spec: &FileSpec,
) -> Result<FileRef, Sw> {
    let parent = file_at(storage, path.current())?;
    let kind = spec.header.kind();
    if kind == FileKind::Df && spec.header.fid() == MF_FID {
        return redefine_mf(storage, spec);
    }
    if spec.header.fid() == MF_FID || spec.header.fid() == 0xFFFF {
        return Err(Sw::WRONG_P1_P2);
    }
    for child in children(storage, &parent) {
        if child?.header.fid() == spec.header.fid() {
            return Err(Sw::FILE_EXISTS);
        }
    }
    match kind {
        FileKind::KeyFile if parent.header.used() > 0 => {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        FileKind::Df => {
            if path.depth() >= super::MAX_DEPTH {
                return Err(Sw::WRONG_DATA);
            }
            if find_df_by_name(storage, spec.name)?.is_some() {
                return Err(Sw::FILE_EXISTS);
            }
            if spec.header.size() < HEADER_LEN + spec.name.len() {
                return Err(Sw::NOT_ENOUGH_SPACE);
            }
        }
        _ => {}
    }

    let footprint = spec.header.footprint();
    let used = parent.header.used();
    let new_used = used.checked_add(footprint).ok_or(Sw::NOT_ENOUGH_SPACE)?;
    if new_used > parent.header.children_capacity() {
        return Err(Sw::NOT_ENOUGH_SPACE);
    }
    let addr = parent.addr + parent.header.children_offset() + used;
    let used16 = u16::try_from(new_used).map_err(|_| Sw::NOT_ENOUGH_SPACE)?;

    // The body is unallocated until this command commits: clear it without journaling. A DF's
    // children region needs no clearing (its "used" counter starts at zero).
    if kind != FileKind::Df {
        storage.fill_unallocated(addr + HEADER_LEN, spec.header.size(), 0)?;
    }
    storage.write(addr, spec.header.raw())?;
    storage.write(addr + Header::NAME_OFFSET, spec.name)?;
    if kind == FileKind::Purse {
        storage.write(
            addr + HEADER_LEN + crate::purse::offset::MAX_BALANCE,
            &spec.purse_max_balance.to_be_bytes(),
        )?;
    }
    storage.write_u16(parent.addr + field::DF_USED, used16)?;
    file_at(storage, addr)
}

fn redefine_mf<N: Nvm>(storage: &mut Storage<N>, spec: &FileSpec) -> Result<FileRef, Sw> {
    let mf = file_at(storage, super::mf_addr(storage))?;
    if mf.header.used() > 0 {
        return Err(Sw::FILE_EXISTS);
    }
    // The MF keeps the space it owns (the whole file area: FMCOS scripts pass FFFF); the name
    // moves into the MF's header area, which must not shrink below it.
    let mut raw = *spec.header.raw();
    let [s0, s1] = mf.header.raw()[3..5].try_into().unwrap_or([0, 0]);
    raw[3] = s0;
    raw[4] = s1;
    storage.write(mf.addr, &raw)?;
    storage.write(mf.addr + Header::NAME_OFFSET, spec.name)?;
    file_at(storage, mf.addr)
}

/// Whether `df` has a key file (until it has one, FMCOS lets everything happen in it).
pub fn has_key_file<N: Nvm>(storage: &Storage<N>, df: &FileRef) -> Result<bool, Sw> {
    Ok(find_key_file(storage, df)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &[u8]) -> Result<FileSpec<'_>, Sw> {
        FileSpec::parse(0x0001, data)
    }

    #[test]
    fn record_files_need_two_records() {
        // FMCOS 2.0 §7.13.5: fewer than 2 records is 6A80.
        let one = [0x2A, 0x01, 0x10, 0xF0, 0xF0, 0xFF, 0xFF];
        assert_eq!(parse(&one).err(), Some(Sw::WRONG_DATA));
        let two = [0x2A, 0x02, 0x10, 0xF0, 0xF0, 0xFF, 0xFF];
        assert_eq!(parse(&two).map(|s| s.header.record_count_max()), Ok(2));
    }

    #[test]
    fn variable_file_by_space() {
        // FMCOS 2.0 §7.13: `2C 00 18` is a variable-record file of 0x18 bytes: two slots of 23.
        let spec = parse(&[0x2C, 0x00, 0x18, 0xF0, 0xF0, 0xFF, 0xFF]).unwrap();
        assert_eq!(
            (spec.header.record_count_max(), spec.header.record_len()),
            (2, 0x17)
        );
        // Too small for a TLV record; and a fixed file with a zero count stays refused.
        assert_eq!(
            parse(&[0x2C, 0x00, 0x02, 0xF0, 0xF0, 0xFF, 0xFF]).err(),
            Some(Sw::WRONG_DATA)
        );
        assert_eq!(
            parse(&[0x2A, 0x00, 0x18, 0xF0, 0xF0, 0xFF, 0xFF]).err(),
            Some(Sw::WRONG_DATA)
        );
    }
}
