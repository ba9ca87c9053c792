//! Record files (FMCOS 2.0 §4.1.3, §7.6, §7.8, §7.9; ISO 7816-4 §7.3).
//!
//! A record EF's body is `nRecords` slots of `recordLen + 1` bytes (FMCOS 2.0 §4.2). The first byte
//! of a slot is the length of the record in it. Linear files (fixed `2A`, variable TLV `2C`) number
//! records from 1 in the order they were appended; the header counts the records present. A cyclic
//! file (`2E`) numbers from the newest: record 1 is the last appended, and the header keeps the
//! slot of the newest one; when full, an append overwrites the oldest.

use super::header::{field, FileKind};
use super::FileRef;
use crate::apdu::Sw;
use crate::nvm::{Nvm, Storage};

/// How READ/UPDATE RECORD find a record by identifier (ISO 7816-4 §7.3.3, P2 bits 3..1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// `000`: the first record with the identifier.
    First,
    /// `001`: the last record with the identifier.
    Last,
    /// `010`: the next record with the identifier after the current record.
    Next,
    /// `011`: the previous record with the identifier before the current record.
    Previous,
}

fn slot_len(ef: &FileRef) -> usize {
    ef.header.record_len() + 1
}

/// The slot holding record `number` (1-based), if that record exists.
fn slot_of(ef: &FileRef, number: usize) -> Option<usize> {
    let present = ef.header.records_present();
    if number == 0 || number > present {
        return None;
    }
    match ef.header.kind() {
        FileKind::CyclicRecord => {
            let n = ef.header.record_count_max();
            Some((ef.header.newest_slot() + n - (number - 1) % n) % n)
        }
        _ => Some(number - 1),
    }
}

fn slot_addr(ef: &FileRef, slot: usize) -> usize {
    ef.body() + slot * slot_len(ef)
}

/// Reads record `number` into `out` and returns its length. `6A83` if there is no such record.
pub fn read_record<N: Nvm>(
    storage: &Storage<N>,
    ef: &FileRef,
    number: usize,
    out: &mut [u8],
) -> Result<usize, Sw> {
    let slot = slot_of(ef, number).ok_or(Sw::RECORD_NOT_FOUND)?;
    let addr = slot_addr(ef, slot);
    let len = usize::from(storage.read_u8(addr)?);
    if len == 0 || len > ef.header.record_len() {
        return Err(Sw::MEMORY_FAILURE);
    }
    let dst = out.get_mut(..len).ok_or(Sw::MEMORY_FAILURE)?;
    storage.read(addr + 1, dst)?;
    Ok(len)
}

/// The identifier (first byte, the TLV tag) of record `number`.
fn identifier<N: Nvm>(storage: &Storage<N>, ef: &FileRef, number: usize) -> Result<u8, Sw> {
    let slot = slot_of(ef, number).ok_or(Sw::RECORD_NOT_FOUND)?;
    Ok(storage.read_u8(slot_addr(ef, slot) + 1)?)
}

/// Finds a record by identifier (ISO 7816-4 §7.3.3; how social-security readers read EF05/EF06 by
/// tag). `current` is the record pointer for [`Occurrence::Next`]/[`Occurrence::Previous`] (none:
/// search from the first/last). `6A83` if no record matches.
pub fn find_by_identifier<N: Nvm>(
    storage: &Storage<N>,
    ef: &FileRef,
    id: u8,
    occurrence: Occurrence,
    current: Option<usize>,
) -> Result<usize, Sw> {
    let present = ef.header.records_present();
    let matches = |n: usize| -> Result<bool, Sw> { Ok(identifier(storage, ef, n)? == id) };
    let forward = |from: usize| -> Result<Option<usize>, Sw> {
        for n in from..=present {
            if matches(n)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    let backward = |from: usize| -> Result<Option<usize>, Sw> {
        for n in (1..=from.min(present)).rev() {
            if matches(n)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    let found = match occurrence {
        Occurrence::First => forward(1)?,
        Occurrence::Last => backward(present)?,
        Occurrence::Next => forward(current.map_or(1, |c| c + 1))?,
        Occurrence::Previous => match current {
            Some(c) => backward(c.saturating_sub(1))?,
            None => backward(present)?,
        },
    };
    found.ok_or(Sw::RECORD_NOT_FOUND)
}

/// Checks a record's data against the file: fixed and cyclic records have exactly the record
/// length; variable records are one TLV (`tag len value`, FMCOS 2.0 §4.1.3) of at most it.
fn check_record_data(ef: &FileRef, data: &[u8]) -> Result<(), Sw> {
    let max = ef.header.record_len();
    match ef.header.kind() {
        FileKind::VariableRecord => {
            if data.len() < 2 || data.len() > max {
                return Err(Sw::WRONG_LENGTH);
            }
            match data {
                [_, len, ..] if usize::from(*len) + 2 == data.len() => Ok(()),
                _ => Err(Sw::LC_INCONSISTENT_WITH_TLV),
            }
        }
        FileKind::FixedRecord | FileKind::CyclicRecord if data.len() == max => Ok(()),
        FileKind::FixedRecord | FileKind::CyclicRecord => Err(Sw::WRONG_LENGTH),
        _ => Err(Sw::INCOMPATIBLE_FILE_STRUCTURE),
    }
}

fn write_slot<N: Nvm>(
    storage: &mut Storage<N>,
    ef: &FileRef,
    slot: usize,
    data: &[u8],
) -> Result<(), Sw> {
    let addr = slot_addr(ef, slot);
    let len = u8::try_from(data.len()).map_err(|_| Sw::WRONG_LENGTH)?;
    // One entry for length and data: a slot is written as a unit.
    let mut buf = [0u8; super::header::MAX_RECORD_LEN + 1];
    let (head, body) = buf.split_at_mut(1);
    head.copy_from_slice(&[len]);
    body.get_mut(..data.len())
        .ok_or(Sw::WRONG_LENGTH)?
        .copy_from_slice(data);
    storage.write(addr, buf.get(..data.len() + 1).ok_or(Sw::WRONG_LENGTH)?)?;
    Ok(())
}

/// APPEND RECORD (FMCOS 2.0 §7.9): a new last record of a linear file (`6A84` when full), or a
/// new record 1 of a cyclic file (overwriting the oldest when full). Returns the new record's
/// number.
pub fn append_record<N: Nvm>(
    storage: &mut Storage<N>,
    ef: &FileRef,
    data: &[u8],
) -> Result<usize, Sw> {
    check_record_data(ef, data)?;
    let present = ef.header.records_present();
    let max = ef.header.record_count_max();
    if ef.header.kind() == FileKind::CyclicRecord {
        let slot = if present == 0 {
            0
        } else {
            (ef.header.newest_slot() + 1) % max
        };
        write_slot(storage, ef, slot, data)?;
        let count = (present + 1).min(max) as u8;
        storage.write(ef.addr + field::RECORDS_PRESENT, &[count, slot as u8])?;
        return Ok(1);
    }
    if present >= max {
        return Err(Sw::NOT_ENOUGH_SPACE);
    }
    write_slot(storage, ef, present, data)?;
    storage.write_u8(ef.addr + field::RECORDS_PRESENT, (present + 1) as u8)?;
    Ok(present + 1)
}

/// UPDATE RECORD (FMCOS 2.0 §7.8) of record `number` of a linear file. A variable record keeps
/// its length (FMCOS 2.0 §4.3: `6700` otherwise); updating the record after the last one writes a
/// new record, as FMCOS allows for variable files. Cyclic files only take appends (`6981`).
pub fn update_record<N: Nvm>(
    storage: &mut Storage<N>,
    ef: &FileRef,
    number: usize,
    data: &[u8],
) -> Result<(), Sw> {
    if ef.header.kind() == FileKind::CyclicRecord {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    check_record_data(ef, data)?;
    let present = ef.header.records_present();
    if number == present + 1 {
        return append_record(storage, ef, data).map(|_| ());
    }
    let slot = slot_of(ef, number).ok_or(Sw::RECORD_NOT_FOUND)?;
    if ef.header.kind() == FileKind::VariableRecord {
        let old_len = usize::from(storage.read_u8(slot_addr(ef, slot))?);
        if old_len != data.len() {
            return Err(Sw::WRONG_LENGTH);
        }
    }
    write_slot(storage, ef, slot, data)
}
