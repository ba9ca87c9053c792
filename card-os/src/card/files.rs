//! Execution of the file-system commands: SELECT, READ/UPDATE BINARY, READ/UPDATE/APPEND RECORD,
//! CREATE FILE, ERASE DF (ISO 7816-4 §7.1–7.3, FMCOS 2.0 §7.4–7.13).

use super::command::{EfSelector, Instruction, RecordAddress, SelectTarget, WriteData};
use super::{Response, Volatile};
use crate::apdu::Sw;
use crate::fs::header::{FileKind, MAX_DF_NAME, MAX_RECORD_LEN};
use crate::fs::records::{self, Occurrence};
use crate::fs::{self, DfPath, FileRef};
use crate::nvm::{Nvm, Storage};
use crate::security::AccessRight;

/// What a command handler works with.
pub(super) struct Ctx<'a, N: Nvm> {
    pub storage: &'a mut Storage<N>,
    pub ram: &'a mut Volatile,
    /// Ne of the command (None: no Le field).
    pub ne: Option<usize>,
}

pub(super) fn execute<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    instruction: Instruction<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    match instruction {
        Instruction::Select { target, fci } => select(ctx, target, fci, response),
        Instruction::ReadBinary { ef, offset } => read_binary(ctx, ef, offset, response),
        Instruction::UpdateBinary { ef, offset, write } => update_binary(ctx, ef, offset, write),
        Instruction::ReadRecord { ef, address } => read_record(ctx, ef, address, response),
        Instruction::UpdateRecord { ef, address, write } => update_record(ctx, ef, address, write),
        Instruction::AppendRecord { ef, write } => append_record(ctx, ef, write),
        Instruction::CreateFile(spec) => {
            let df = ctx.current_df()?;
            ctx.require(df.header.create_right())?;
            let created = fs::create_file(ctx.storage, &ctx.ram.path, &spec)?;
            // FMCOS: a new DF becomes the current DF, so a script can create its key file and
            // files next without selecting it.
            if created.header.kind() == FileKind::Df && created.addr != ctx.ram.path.current() {
                let path = ctx.ram.path.child(created.addr).ok_or(Sw::WRONG_DATA)?;
                ctx.enter(path)?;
            } else if created.header.kind() == FileKind::Df {
                ctx.enter(ctx.ram.path)?;
            }
            Ok(())
        }
        Instruction::EraseDf => {
            let df = ctx.current_df()?;
            ctx.require(df.header.erase_right())?;
            fs::erase_df(ctx.storage, &df)?;
            ctx.ram.current_ef = None;
            ctx.ram.record_pointer = None;
            Ok(())
        }
        Instruction::GetResponse => Err(Sw::CONDITIONS_NOT_SATISFIED),
    }
}

impl<N: Nvm> Ctx<'_, N> {
    pub(super) fn current_df(&self) -> Result<FileRef, Sw> {
        fs::file_at(self.storage, self.ram.path.current())
    }

    /// Whether everything is allowed in the current DF: it has no key file, or it had none when
    /// it was entered (FMCOS 2.0 §4.3: rights apply after the DF is left and entered again).
    pub(super) fn free_access(&self) -> Result<bool, Sw> {
        if self.ram.entered_without_keys {
            return Ok(true);
        }
        let df = self.current_df()?;
        Ok(!fs::create::has_key_file(self.storage, &df)?)
    }

    /// Checks an access right against the security state (`6982` if not met).
    pub(super) fn require(&self, right: u8) -> Result<(), Sw> {
        if self.free_access()? || AccessRight(right).allows(&self.ram.security) {
            Ok(())
        } else {
            Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    /// Makes `path`'s last DF the current DF: clears the current EF and the DF security register
    /// (FMCOS 2.0 §5.1).
    pub(super) fn enter(&mut self, path: DfPath) -> Result<(), Sw> {
        let df = fs::file_at(self.storage, path.current())?;
        self.ram.entered_without_keys = !fs::create::has_key_file(self.storage, &df)?;
        self.ram.path = path;
        self.ram.current_ef = None;
        self.ram.record_pointer = None;
        self.ram.security.df = 0;
        Ok(())
    }

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

fn select<N: Nvm>(
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
            let ef = fs::find_child(ctx.storage, &current, fid)?
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
    if let Some(child) = fs::find_child(storage, current, fid)? {
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
/// `88 01 1E 9F0C 03 86 01 03`).
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
    let fci_data = fci_data.get(..fci_len).unwrap_or(&[]);
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

fn read_binary<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    offset: usize,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = ctx.ef(selector)?;
    if ef.header.kind() != FileKind::Binary {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    ctx.require(ef.header.read_right())?;
    let size = ef.header.size();
    if offset >= size {
        return Err(Sw::WRONG_OFFSET);
    }
    let remaining = size - offset;
    // Le = 00 (Ne 256) reads up to 256 bytes; a larger Le than the file has left is wrong (6Cxx).
    let n = match ctx.ne {
        None | Some(256) => remaining.min(256),
        Some(ne) if ne > remaining => return Err(Sw::wrong_le(remaining)),
        Some(ne) => ne.min(256),
    };
    let dst = response.extend(n)?;
    fs::read_binary(ctx.storage, &ef, offset, dst)
}

/// The data a protected write carries, after its MAC (and decryption) are checked. Line protection
/// arrives with the security layer; until a file or key demands it, a write with a MAC is refused
/// rather than accepted unchecked.
fn writable_data<'d, N: Nvm>(
    _ctx: &mut Ctx<'_, N>,
    ef: &FileRef,
    write: WriteData<'d>,
) -> Result<&'d [u8], Sw> {
    match write.mac {
        None if ef.header.write_needs_mac() => Err(Sw::SM_MAC_MISSING),
        None => Ok(write.data),
        Some(_) => Err(Sw::SM_DATA_INCORRECT),
    }
}

fn update_binary<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    offset: usize,
    write: WriteData<'_>,
) -> Result<(), Sw> {
    let ef = ctx.ef(selector)?;
    if ef.header.kind() != FileKind::Binary {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    ctx.require(ef.header.write_right())?;
    let data = writable_data(ctx, &ef, write)?;
    fs::update_binary(ctx.storage, &ef, offset, data)
}

fn record_ef<N: Nvm>(ctx: &mut Ctx<'_, N>, selector: EfSelector) -> Result<FileRef, Sw> {
    let ef = ctx.ef(selector)?;
    if !ef.header.kind().is_record() {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    Ok(ef)
}

/// The record number an address designates (and moves the record pointer there).
fn locate<N: Nvm>(ctx: &mut Ctx<'_, N>, ef: &FileRef, address: RecordAddress) -> Result<usize, Sw> {
    let number = match address {
        RecordAddress::Number(0) => ctx.ram.record_pointer.ok_or(Sw::RECORD_NOT_FOUND)?,
        RecordAddress::Number(n) => usize::from(n),
        RecordAddress::Identifier(id, occurrence) => {
            records::find_by_identifier(ctx.storage, ef, id, occurrence, ctx.ram.record_pointer)?
        }
    };
    Ok(number)
}

fn read_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    address: RecordAddress,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.read_right())?;
    let number = locate(ctx, &ef, address)?;
    let dst = response.extend(MAX_RECORD_LEN)?;
    let len = records::read_record(ctx.storage, &ef, number, dst)?;
    response.truncate(len);
    ctx.ram.record_pointer = Some(number);
    Ok(())
}

fn update_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    address: RecordAddress,
    write: WriteData<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.write_right())?;
    let data = writable_data(ctx, &ef, write)?;
    if ef.header.kind() == FileKind::CyclicRecord {
        // FMCOS 2.0 §7.8: on a cyclic file only P1 = 00 with "previous" (ISO: append) is allowed.
        return match address {
            RecordAddress::Identifier(0, Occurrence::Previous) => {
                records::append_record(ctx.storage, &ef, data)?;
                ctx.ram.record_pointer = Some(1);
                Ok(())
            }
            _ => Err(Sw::WRONG_P1_P2),
        };
    }
    let number = match address {
        // Updating "the record after the last" by number creates it (FMCOS variable files).
        RecordAddress::Number(n) if n != 0 => usize::from(n),
        _ => locate(ctx, &ef, address)?,
    };
    records::update_record(ctx.storage, &ef, number, data)?;
    ctx.ram.record_pointer = Some(number);
    Ok(())
}

fn append_record<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    selector: EfSelector,
    write: WriteData<'_>,
) -> Result<(), Sw> {
    let ef = record_ef(ctx, selector)?;
    ctx.require(ef.header.write_right())?;
    let data = writable_data(ctx, &ef, write)?;
    let number = records::append_record(ctx.storage, &ef, data)?;
    ctx.ram.record_pointer = Some(number);
    Ok(())
}
