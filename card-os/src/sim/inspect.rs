//! Reading a card's file system from the outside (for `citizencard sim info` and for tests): the
//! tree with each file's attributes, and a canonical dump of everything the card holds.

use crate::apdu::Sw;
use crate::card::Card;
use crate::crypto::Rng;
use crate::fs::header::{FileKind, HEADER_LEN, MAX_DF_NAME, MAX_RECORD_LEN};
use crate::fs::{self, records, FileRef};
use crate::nvm::{Nvm, Storage};
use std::vec::Vec;

/// One file of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Directory depth (the MF is 0).
    pub depth: usize,
    /// NVM address of the header.
    pub addr: usize,
    /// The header's 11 bytes.
    pub header: [u8; HEADER_LEN],
    /// What the file is.
    pub kind: FileKind,
    /// File identifier.
    pub fid: u16,
    /// Short file identifier.
    pub sfi: Option<u8>,
    /// DF name.
    pub name: Vec<u8>,
    /// Bytes the file takes in its parent.
    pub footprint: usize,
    /// DF: bytes used by children; key file: by keys; record file: records present.
    pub used: usize,
    /// DF: bytes available to children; binary: size; record file: record slots.
    pub capacity: usize,
    /// Writes need a MAC (type bit 80).
    pub mac_on_write: bool,
    /// Written data is encrypted (type bit 40).
    pub encrypted_write: bool,
}

/// Every file, depth-first in creation order, starting with the MF.
pub fn tree<N: Nvm, R: Rng>(card: &Card<N, R>) -> Result<Vec<FileInfo>, Sw> {
    let storage = card.storage();
    let mf = fs::file_at(storage, fs::mf_addr(storage))?;
    let mut out = Vec::new();
    visit(storage, &mf, 0, &mut out)?;
    Ok(out)
}

fn visit<N: Nvm>(
    storage: &Storage<N>,
    file: &FileRef,
    depth: usize,
    out: &mut Vec<FileInfo>,
) -> Result<(), Sw> {
    let h = &file.header;
    let mut name = [0u8; MAX_DF_NAME];
    let name_len = if h.kind() == FileKind::Df {
        fs::df_name(storage, file, &mut name)?
    } else {
        0
    };
    let (used, capacity) = match h.kind() {
        FileKind::Df => (h.used(), h.children_capacity()),
        FileKind::KeyFile => (h.used(), h.size()),
        k if k.is_record() => (h.records_present(), h.record_count_max()),
        _ => (h.size(), h.size()),
    };
    out.push(FileInfo {
        depth,
        addr: file.addr,
        header: *h.raw(),
        kind: h.kind(),
        fid: h.fid(),
        sfi: h.sfi(),
        name: name[..name_len].to_vec(),
        footprint: h.footprint(),
        used,
        capacity,
        mac_on_write: h.write_needs_mac(),
        encrypted_write: h.write_is_encrypted(),
    });
    if h.kind() == FileKind::Df {
        for child in fs::children(storage, file) {
            visit(storage, &child?, depth + 1, out)?;
        }
    }
    Ok(())
}

/// A canonical byte dump of everything the card holds: the card life cycle, then for every file
/// its header, a DF's name, a binary/purse/key file's body, a record file's records in record
/// order. Two cards that dump equal answer every read command equally.
pub fn dump<N: Nvm, R: Rng>(card: &Card<N, R>) -> Result<Vec<u8>, Sw> {
    let storage = card.storage();
    let mut out = Vec::new();
    out.extend_from_slice(&storage.read_array::<25>(0)?);
    for info in tree(card)? {
        let file = fs::file_at(storage, info.addr)?;
        out.extend_from_slice(&info.header);
        out.extend_from_slice(&info.name);
        match info.kind {
            FileKind::Df => {}
            FileKind::FixedRecord | FileKind::VariableRecord | FileKind::CyclicRecord => {
                let mut rec = [0u8; MAX_RECORD_LEN];
                for n in 1..=file.header.records_present() {
                    let len = records::read_record(storage, &file, n, &mut rec)?;
                    out.push(len as u8);
                    out.extend_from_slice(&rec[..len]);
                }
            }
            _ => {
                let mut body = std::vec![0u8; file.header.size()];
                storage.read(file.body(), &mut body)?;
                out.extend_from_slice(&body);
            }
        }
    }
    Ok(out)
}
