//! Execution of the file-system commands: SELECT, READ/UPDATE BINARY, READ/UPDATE/APPEND RECORD,
//! CREATE FILE, ERASE DF (ISO 7816-4 §7.1–7.3, FMCOS 2.0 §7.4–7.13), with line protection of reads
//! and writes (FMCOS 2.0 §11).

use super::command::{EfSelector, RecordAddress, SelectTarget, WriteData};
use super::context::Ctx;
use super::secure_messaging::{self, LineKey, MAX_PROTECTED_DATA};
use super::Response;
use crate::apdu::Sw;
use crate::fs::header::{FileKind, MAX_DF_NAME, MAX_RECORD_LEN};
use crate::fs::records::{self, Occurrence};
use crate::fs::{self, DfPath, FileRef, FileSpec};
use crate::nvm::{Nvm, Storage};
use crate::security::keys::KeyType;

/// CREATE FILE (FMCOS 2.0 §7.13) under the current DF's create right.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn create_file<N: Nvm>(ctx: &mut Ctx<'_, N>, spec: &FileSpec<'_>) -> Result<(), Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.header.create_right())?;
    let created = fs::create_file(ctx.storage, &ctx.ram.path, spec)?;
    // FMCOS: a new DF becomes the current DF, so a script can create its key file and files next
    // without selecting it.
    if created.header.kind() == FileKind::Df && created.addr != ctx.ram.path.current() {
        let path = ctx.ram.path.child(created.addr).ok_or(Sw::WRONG_DATA)?;
        ctx.enter(path)?;
    } else if created.header.kind() == FileKind::Df {
        ctx.enter(ctx.ram.path)?;
    }
    Ok(())
}

/// ERASE DF (FMCOS 2.0 §7.11) under the current DF's erase right.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn erase_df<N: Nvm>(ctx: &mut Ctx<'_, N>) -> Result<(), Sw> {
    let df = ctx.current_df()?;
    ctx.require(df.header.erase_right())?;
    fs::erase_df(ctx.storage, &df)?;
    ctx.ram.current_ef = None;
    ctx.ram.record_pointer = None;
    Ok(())
}

impl<N: Nvm> Ctx<'_, N> {
    /// The EF a command names: the current EF, or the EF with an SFI (which becomes current).
    pub(super) fn ef(&mut self, selector: EfSelector) -> Result<FileRef, Sw> {
        match selector {
            EfSelector::Current => {
                let addr = self.ram.current_ef.ok_or(Sw::NO_CURRENT_EF)?;
                fs::file_at(self.storage, addr)
            }
            EfSelector::Sfi(sfi) => {
                let df = self.current_df()?;
                let ef = fs::find_by_sfi(self.storage, &df, sfi)?.ok_or(Sw::FILE_NOT_FOUND)?;
                if self.ram.current_ef != Some(ef.addr) {
                    self.ram.record_pointer = None;
                }
                self.ram.current_ef = Some(ef.addr);
                Ok(ef)
            }
        }
    }
}

/// A child of the current DF that SELECT may make current: never the key file, whose FID `0000`
/// names no file a command can read (keys never leave the card).
fn selectable_child<N: Nvm>(
    storage: &Storage<N>,
    df: &FileRef,
    fid: u16,
) -> Result<Option<FileRef>, Sw> {
    Ok(fs::find_child(storage, df, fid)?.filter(|f| f.header.kind() != FileKind::KeyFile))
}

// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn select<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    target: SelectTarget<'_>,
    fci: bool,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let path = ctx.ram.path;
    let current = ctx.current_df()?;
    let df_path = match target {
        SelectTarget::Mf => Some(DfPath::mf(fs::mf_addr(ctx.storage))),
        SelectTarget::Name(name) => {
            Some(fs::find_df_by_name(ctx.storage, name)?.ok_or(Sw::FILE_NOT_FOUND)?)
        }
        SelectTarget::Parent => Some(path.up()),
        SelectTarget::ChildEf(fid) => {
            let ef = selectable_child(ctx.storage, &current, fid)?
                .filter(|f| f.header.kind() != FileKind::Df)
                .ok_or(Sw::FILE_NOT_FOUND)?;
            return select_ef(ctx, ef);
        }
        SelectTarget::ChildDf(fid) => {
            let df = fs::find_child(ctx.storage, &current, fid)?
                .filter(|f| f.header.kind() == FileKind::Df)
                .ok_or(Sw::FILE_NOT_FOUND)?;
            Some(path.child(df.addr).ok_or(Sw::FILE_NOT_FOUND)?)
        }
        SelectTarget::Fid(fid) => match find_by_fid(ctx.storage, &path, &current, fid)? {
            Found::Ef(ef) => return select_ef(ctx, ef),
            Found::Df(p) => Some(p),
        },
    };
    if let Some(p) = df_path {
        ctx.enter(p)?;
        // A blocked application is still entered (APPLICATION UNBLOCK needs it current), but
        // SELECT says it is blocked (FMCOS 2.0 §8.3: 6A81; LD/T 32 part 5: 9303 for good).
        if let Some(sw) = ctx.application_block()? {
            return Err(sw);
        }
        if fci {
            write_fci(ctx, response)?;
        }
    }
    Ok(())
}

enum Found {
    Ef(FileRef),
    Df(DfPath),
}

/// SELECT by FID (`P1 00`, FMCOS 2.0 §7.4): a child of the current DF, the current DF itself, its
/// parent, or a sibling DF (a child DF of the parent).
fn find_by_fid<N: Nvm>(
    storage: &Storage<N>,
    path: &DfPath,
    current: &FileRef,
    fid: u16,
) -> Result<Found, Sw> {
    if let Some(child) = selectable_child(storage, current, fid)? {
        return Ok(match child.header.kind() {
            FileKind::Df => Found::Df(path.child(child.addr).ok_or(Sw::FILE_NOT_FOUND)?),
            _ => Found::Ef(child),
        });
    }
    if current.header.fid() == fid {
        return Ok(Found::Df(*path));
    }
    if let Some(parent_addr) = path.parent() {
        let parent = fs::file_at(storage, parent_addr)?;
        let up = path.up();
        if parent.header.fid() == fid {
            return Ok(Found::Df(up));
        }
        if let Some(sibling) = fs::find_child(storage, &parent, fid)? {
            if sibling.header.kind() == FileKind::Df {
                return Ok(Found::Df(up.child(sibling.addr).ok_or(Sw::FILE_NOT_FOUND)?));
            }
        }
    }
    Err(Sw::FILE_NOT_FOUND)
}

fn select_ef<N: Nvm>(ctx: &mut Ctx<'_, N>, ef: FileRef) -> Result<(), Sw> {
    if ctx.ram.current_ef != Some(ef.addr) {
        ctx.ram.record_pointer = None;
    }
    ctx.ram.current_ef = Some(ef.addr);
    Ok(())
}

/// The FCI of the current DF (FMCOS 2.0 §7.4.4, LD/T 32 part 5 table 36):
/// `6F L { 84 L name, A5 L { 9F0C L <FCI file> } }`, where the FCI file is the binary EF named by
/// the DF's FCI-file byte (`80 | SFI`). With `C0 | SFI` (our extension) the EF's contents are the
/// whole `A5` template, for DFs whose FCI carries more than `9F0C` (the social-security DDF's
/// `88 01 1E 9F0C 03 86 01 03`). With `000 SFI` (SFI 1..30) the DF is a DDF whose directory file
/// has that SFI: `A5 { 88 01 SFI }` (FMCOS 2.0 §7.4.4 table 7.1; the manual's MF, created with
/// `01`, answers `A5 03 88 01 01`).
fn write_fci<N: Nvm>(ctx: &mut Ctx<'_, N>, response: &mut Response<'_>) -> Result<(), Sw> {
    let df = ctx.current_df()?;
    let mut name = [0u8; MAX_DF_NAME];
    let name_len = fs::df_name(ctx.storage, &df, &mut name)?;
    let name = name.get(..name_len).ok_or(Sw::MEMORY_FAILURE)?;

    let fci_byte = df.header.fci_file();
    let fci_ef = match fci_byte & 0xC0 {
        0x80 | 0xC0 => fs::find_by_sfi(ctx.storage, &df, fci_byte & 0x1F)?
            .filter(|f| f.header.kind() == FileKind::Binary),
        _ => None,
    };
    // Up to 64 bytes of FCI file contents fit comfortably in a short response.
    let mut fci_data = [0u8; 64];
    let fci_len = match &fci_ef {
        Some(ef) => {
            let n = ef.header.size().min(fci_data.len());
            fs::read_binary(ctx.storage, ef, 0, fci_data.get_mut(..n).unwrap_or(&mut []))?;
            n
        }
        None => 0,
    };
    // FMCOS 2.0 §7.4.4 table 7.1: the directory file's SFI of a DDF.
    let dir_sfi = [0x88, 0x01, fci_byte];
    let fci_data = match fci_byte {
        0x01..=0x1E => &dir_sfi[..],
        _ => fci_data.get(..fci_len).unwrap_or(&[]),
    };
    let fci_len = fci_data.len();
    let wrap_9f0c = fci_byte & 0xC0 == 0x80 && fci_len > 0;
    let a5_len = if wrap_9f0c { 3 + fci_len } else { fci_len };
    let a5_len8 = u8::try_from(a5_len).map_err(|_| Sw::NO_PRECISE_DIAGNOSIS)?;
    let total = 2 + name_len + 2 + a5_len;
    let total8 = u8::try_from(total).map_err(|_| Sw::NO_PRECISE_DIAGNOSIS)?;
    response.push(&[0x6F, total8, 0x84, name_len as u8])?;
    response.push(name)?;
    response.push(&[0xA5, a5_len8])?;
    if wrap_9f0c {
        response.push(&[0x9F, 0x0C, fci_len as u8])?;
    }
    response.push(fci_data)
}

// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn read_binary<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    offset: usize,
    mac: Option<[u8; 4]>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = ctx.ef(selector)?;
    if ef.header.kind() != FileKind::Binary {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    ctx.require(ef.header.read_right())?;
    let key = read_protection(ctx, &ef, mac)?;
    let size = ef.header.size();
    if offset >= size {
        return Err(Sw::WRONG_OFFSET);
    }
    let remaining = size - offset;
    let most = key.as_ref().map_or(256, LineKey::max_read);
    // Le = 00 (Ne 256) reads what is left, up to 256 bytes (239 under line protection); a larger
    // Le than the file has left is wrong (6Cxx).
    let n = match ctx.ne {
        None | Some(256) => remaining.min(most),
        Some(ne) if ne > remaining => return Err(Sw::wrong_le(remaining)),
        Some(ne) if ne > most => return Err(Sw::wrong_le(most)),
        Some(ne) => ne,
    };
    let dst = response.extend(n)?;
    fs::read_binary(ctx.storage, &ef, offset, dst)?;
    seal(ctx, &ef, key.as_ref(), response)
}

/// The line protection of a read (FMCOS 2.0 §7.5–7.6, §7.13): with a MAC (CLA `04`), the MAC is
/// checked under the line-protection key (`36`) the EF's key byte names for reads, and that key
/// seals the answer; without one, an EF whose key byte asks for protected reads refuses (`6987`).
fn read_protection<N: Nvm>(
    ctx: &Ctx<'_, N>,
    ef: &FileRef,
    mac: Option<[u8; 4]>,
) -> Result<Option<LineKey>, Sw> {
    let Some(mac) = mac else {
        return if ef.header.read_needs_mac() {
            Err(Sw::SM_MAC_MISSING)
        } else {
            Ok(None)
        };
    };
    let entry = ctx.usable_key(KeyType::LineProtection, read_key_id(ef.header.key_byte()))?;
    let key = LineKey::of(ctx, &entry)?;
    secure_messaging::check_mac(ctx, &key, &[], &mac, Sw::SM_DATA_INCORRECT)?;
    Ok(Some(key))
}

/// A read's answer as it goes out: plain, or sealed under the read key (encrypted when the EF has
/// the encrypt bit, FMCOS 2.0 §7.5 example 3).
fn seal<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    ef: &FileRef,
    key: Option<&LineKey>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let Some(key) = key else {
        return Ok(());
    };
    secure_messaging::seal_read(ctx, key, ef.header.write_is_encrypted(), response)?;
    ctx.sealed_read = true;
    Ok(())
}

/// The id of the key that protects reads, from an EF's key byte (FMCOS 2.0 §7.13): bits 4–3 `11`,
/// `10`, `01`, `00` name the keys `00`, `01`, `02`, `03`.
fn read_key_id(key_byte: u8) -> u8 {
    3 - ((key_byte >> 2) & 0x03)
}

/// The data a write carries (FMCOS 2.0 §7.7–7.9, §11): plain, or with CLA `04` checked against
/// the line-protection key (`36`) the EF's key byte names and decrypted when the EF has the encrypt
/// bit. A protected EF refuses a write without MAC (`6987`); a wrong MAC or cryptogram gets `6988`
/// and the write does not happen.
fn writable_data<'d, N: Nvm>(
    ctx: &Ctx<'_, N>,
    ef: &FileRef,
    write: WriteData<'d>,
    buf: &'d mut [u8; MAX_PROTECTED_DATA],
) -> Result<&'d [u8], Sw> {
    let Some(mac) = write.mac else {
        return if ef.header.write_needs_mac() {
            Err(Sw::SM_MAC_MISSING)
        } else {
            Ok(write.data)
        };
    };
    let entry = ctx.usable_key(KeyType::LineProtection, write_key_id(ef.header.key_byte()))?;
    let key = LineKey::of(ctx, &entry)?;
    secure_messaging::unwrap(
        ctx,
        &key,
        write.data,
        &mac,
        ef.header.write_is_encrypted(),
        buf,
        Sw::SM_DATA_INCORRECT,
    )
}

/// The id of the key that protects writes, from an EF's key byte (FMCOS 2.0 §7.13): bits 2–1
/// `11`, `10`, `01`, `00` name the keys `00`, `01`, `02`, `03`.
fn write_key_id(key_byte: u8) -> u8 {
    3 - (key_byte & 0x03)
}

// Never inlined into the dispatch: its frame would sit under every command.
#[inline(never)]
pub(super) fn update_binary<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    offset: usize,
    write: WriteData<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = ctx.ef(selector)?;
    if ef.header.kind() != FileKind::Binary {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    ctx.require(ef.header.write_right())?;
    // Decrypted data goes to the (empty) response buffer, wiped whatever the outcome.
    let result = writable_data(ctx, &ef, write, response.scratch()?)
        .and_then(|data| fs::update_binary(ctx.storage, &ef, offset, data));
    response.wipe();
    result
}

fn record_ef<N: Nvm>(ctx: &mut Ctx<'_, N>, selector: EfSelector) -> Result<FileRef, Sw> {
    let ef = ctx.ef(selector)?;
    if !ef.header.kind().is_record() {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    Ok(ef)
}

/// The record number an address designates.
pub(super) fn locate<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    ef: &FileRef,
    address: RecordAddress,
) -> Result<usize, Sw> {
    let number = match address {
        RecordAddress::Number(0) => ctx.ram.record_pointer.ok_or(Sw::RECORD_NOT_FOUND)?,
        RecordAddress::Number(n) => usize::from(n),
        RecordAddress::Identifier(id, occurrence) => {
            records::find_by_identifier(ctx.storage, ef, id, occurrence, ctx.ram.record_pointer)?
        }
    };
    Ok(number)
}

// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn read_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    address: RecordAddress,
    mac: Option<[u8; 4]>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.read_right())?;
    let key = read_protection(ctx, &ef, mac)?;
    let number = locate(ctx, &ef, address)?;
    let dst = response.extend(MAX_RECORD_LEN)?;
    let len = records::read_record(ctx.storage, &ef, number, dst)?;
    response.truncate(len);
    if key.is_some() {
        // The engine holds the sealed answer against no Le: the record's length is checked here.
        if matches!(ctx.ne, Some(ne) if ne != 256 && ne < len) {
            return Err(Sw::wrong_le(len));
        }
        if key.as_ref().is_some_and(|k| len > k.max_read()) {
            return Err(Sw::WRONG_LENGTH);
        }
    }
    ctx.ram.record_pointer = Some(number);
    seal(ctx, &ef, key.as_ref(), response)
}

// Never inlined into the dispatch: its frame would sit under every command.
#[inline(never)]
pub(super) fn update_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    address: RecordAddress,
    write: WriteData<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.write_right())?;
    // Decrypted data goes to the (empty) response buffer, wiped whatever the outcome.
    let result = writable_data(ctx, &ef, write, response.scratch()?)
        .and_then(|data| write_record(ctx, &ef, address, data));
    response.wipe();
    result
}

/// UPDATE RECORD's write once its data is plain.
fn write_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    ef: &FileRef,
    address: RecordAddress,
    data: &[u8],
) -> Result<(), Sw> {
    if ef.header.kind() == FileKind::CyclicRecord {
        // FMCOS 2.0 §7.8: a cyclic file is only appended to: its note writes P1 00 with "previous"
        // (P2 xxxxx011), its example 5 P1 01 with "next" (P2 xxxxx010); P1 plays no part.
        return match address {
            RecordAddress::Identifier(_, Occurrence::Previous | Occurrence::Next) => {
                records::append_record(ctx.storage, ef, data)?;
                ctx.ram.record_pointer = Some(1);
                Ok(())
            }
            _ => Err(Sw::WRONG_P1_P2),
        };
    }
    let number = match address {
        // Updating "the record after the last" by number creates it (FMCOS variable files).
        RecordAddress::Number(n) if n != 0 => usize::from(n),
        // FMCOS 2.0 §7.8 example 4: P1 00 with "next" (P2 xxxxx010) is the record after the
        // current one (the first when there is none), so on a fresh variable file it adds one.
        RecordAddress::Identifier(0, Occurrence::Next) => {
            ctx.ram.record_pointer.map_or(1, |current| current + 1)
        }
        _ => locate(ctx, ef, address)?,
    };
    records::update_record(ctx.storage, ef, number, data)?;
    ctx.ram.record_pointer = Some(number);
    Ok(())
}

// Never inlined into the dispatch: its frame would sit under every command.
#[inline(never)]
pub(super) fn append_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    write: WriteData<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.write_right())?;
    // Decrypted data goes to the (empty) response buffer, wiped whatever the outcome.
    let result = writable_data(ctx, &ef, write, response.scratch()?)
        .and_then(|data| records::append_record(ctx.storage, &ef, data));
    response.wipe();
    ctx.ram.record_pointer = Some(result?);
    Ok(())
}
