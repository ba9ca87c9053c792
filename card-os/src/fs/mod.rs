//! The FMCOS 2.0-compatible file system inside the NVM image (FMCOS 2.0 ch. 4, ISO 7816-4 §5.3).
//!
//! Files are laid out the way FMCOS accounts for them (§4.2): every file is an 11-byte header
//! followed by its body. A DF reserves its declared space in its parent when created; its header,
//! its name and then its children fill that space in creation order. Files cannot be deleted one by
//! one (FMCOS has no DELETE FILE), only all together by ERASE DF, so a DF's children are a simple
//! sequence: the next child starts where the previous one ends, and ERASE DF just sets the DF's
//! "used" counter back to zero. There is no fragmentation and no free list.
//!
//! Addresses are byte offsets in the NVM. Every mutation goes through [`Storage`]'s transaction,
//! except the zero-fill of a new file's body, which lies in unallocated memory until the
//! transaction that creates the file commits.

pub mod create;
pub mod header;
pub mod records;

pub use create::{create_file, FileSpec};
pub use header::{FileKind, Header, HEADER_LEN};

use crate::apdu::Sw;
use crate::nvm::{Nvm, NvmError, Storage};

/// The MF's FID.
pub const MF_FID: u16 = 0x3F00;

/// The MF's default name (FMCOS 2.0 §4.3).
pub const MF_DEFAULT_NAME: &[u8] = b"1PAY.SYS.DDF01";

/// Deepest directory nesting: MF, DF, DF (FMCOS 2.0 §7.13).
pub const MAX_DEPTH: usize = 3;

impl From<NvmError> for Sw {
    /// A command whose writes overflow the transaction buffer did not fit (`6A84`: a composite
    /// purchase caching too many records); every other NVM error is a memory failure.
    fn from(e: NvmError) -> Sw {
        match e {
            NvmError::TransactionFull => Sw::NOT_ENOUGH_SPACE,
            _ => Sw::MEMORY_FAILURE,
        }
    }
}

/// A file: where its header is, and the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// NVM address of the header.
    pub addr: usize,
    /// The header as stored (pending writes included).
    pub header: Header,
}

impl FileRef {
    /// Address of the first body byte.
    pub fn body(&self) -> usize {
        self.addr + HEADER_LEN
    }
}

/// The directories from the MF down to the current DF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DfPath {
    levels: [u16; MAX_DEPTH],
    depth: u8,
}

impl DfPath {
    /// The path holding only the MF.
    pub fn mf(mf_addr: usize) -> DfPath {
        DfPath {
            levels: [mf_addr as u16, 0, 0],
            depth: 1,
        }
    }

    /// The addresses from the MF down.
    pub fn levels(&self) -> &[u16] {
        self.levels.get(..usize::from(self.depth)).unwrap_or(&[])
    }

    /// The number of directories on the path (1 = at the MF).
    pub fn depth(&self) -> usize {
        usize::from(self.depth)
    }

    /// The current (deepest) DF's address.
    pub fn current(&self) -> usize {
        self.levels().last().map_or(0, |&a| usize::from(a))
    }

    /// The parent of the current DF, if the current DF is not the MF.
    pub fn parent(&self) -> Option<usize> {
        let levels = self.levels();
        levels
            .len()
            .checked_sub(2)
            .and_then(|i| levels.get(i))
            .map(|&a| usize::from(a))
    }

    /// The path one level down, into `df_addr`; `None` below [`MAX_DEPTH`].
    pub fn child(&self, df_addr: usize) -> Option<DfPath> {
        let mut next = *self;
        let slot = next.levels.get_mut(usize::from(self.depth))?;
        *slot = u16::try_from(df_addr).ok()?;
        next.depth += 1;
        Some(next)
    }

    /// The path one level up; the MF's path stays the MF's.
    pub fn up(&self) -> DfPath {
        let mut next = *self;
        next.depth = self.depth.saturating_sub(1).max(1);
        next
    }

    /// Whether the current DF is the MF.
    pub fn at_mf(&self) -> bool {
        self.depth <= 1
    }
}

/// Reads the header of the file at `addr`.
pub fn file_at<N: Nvm>(storage: &Storage<N>, addr: usize) -> Result<FileRef, Sw> {
    let raw = storage.read_array::<HEADER_LEN>(addr)?;
    Ok(FileRef {
        addr,
        header: Header::decode(raw)?,
    })
}

/// The MF's address.
pub fn mf_addr<N: Nvm>(storage: &Storage<N>) -> usize {
    storage.geometry().fs_start()
}

/// The children of a DF, in creation order.
pub fn children<'s, N: Nvm>(storage: &'s Storage<N>, df: &FileRef) -> Children<'s, N> {
    let start = df.addr + df.header.children_offset();
    Children {
        storage,
        next: start,
        end: start + df.header.used(),
        failed: false,
    }
}

/// Iterator over a DF's children; yields an error once if the chain is corrupt.
pub struct Children<'s, N: Nvm> {
    storage: &'s Storage<N>,
    next: usize,
    end: usize,
    failed: bool,
}

impl<N: Nvm> Iterator for Children<'_, N> {
    type Item = Result<FileRef, Sw>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.end {
            return None;
        }
        let file = file_at(self.storage, self.next);
        match &file {
            Ok(f) if f.header.footprint() > 0 => self.next += f.header.footprint(),
            _ => self.failed = true,
        }
        Some(file.and_then(|f| {
            if self.failed {
                Err(Sw::MEMORY_FAILURE)
            } else {
                Ok(f)
            }
        }))
    }
}

/// The child of `df` with identifier `fid`.
pub fn find_child<N: Nvm>(
    storage: &Storage<N>,
    df: &FileRef,
    fid: u16,
) -> Result<Option<FileRef>, Sw> {
    for child in children(storage, df) {
        let child = child?;
        if child.header.fid() == fid {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// The EF of `df` with short identifier `sfi`.
pub fn find_by_sfi<N: Nvm>(
    storage: &Storage<N>,
    df: &FileRef,
    sfi: u8,
) -> Result<Option<FileRef>, Sw> {
    for child in children(storage, df) {
        let child = child?;
        if child.header.sfi() == Some(sfi) {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// The key file of `df` (FMCOS 2.0 §4.3: at most one per DF, created first).
pub fn find_key_file<N: Nvm>(storage: &Storage<N>, df: &FileRef) -> Result<Option<FileRef>, Sw> {
    for child in children(storage, df) {
        let child = child?;
        if child.header.kind() == FileKind::KeyFile {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// Copies a DF's name into `out` and returns its length.
pub fn df_name<N: Nvm>(storage: &Storage<N>, df: &FileRef, out: &mut [u8]) -> Result<usize, Sw> {
    let len = df.header.name_len();
    let dst = out.get_mut(..len).ok_or(Sw::MEMORY_FAILURE)?;
    storage.read(df.addr + Header::NAME_OFFSET, dst)?;
    Ok(len)
}

fn name_matches<N: Nvm>(storage: &Storage<N>, df: &FileRef, name: &[u8]) -> Result<bool, Sw> {
    let mut buf = [0u8; header::MAX_DF_NAME];
    let len = df_name(storage, df, &mut buf)?;
    Ok(buf.get(..len) == Some(name))
}

/// Finds the DF named `name` anywhere in the tree (MF first, then depth-first in creation order)
/// and returns its path. DF names are unique on a card (CREATE FILE refuses duplicates).
pub fn find_df_by_name<N: Nvm>(storage: &Storage<N>, name: &[u8]) -> Result<Option<DfPath>, Sw> {
    let mf = file_at(storage, mf_addr(storage))?;
    let root = DfPath::mf(mf.addr);
    if name_matches(storage, &mf, name)? {
        return Ok(Some(root));
    }
    search_below(storage, &mf, root, name)
}

fn search_below<N: Nvm>(
    storage: &Storage<N>,
    df: &FileRef,
    path: DfPath,
    name: &[u8],
) -> Result<Option<DfPath>, Sw> {
    for child in children(storage, df) {
        let child = child?;
        if child.header.kind() != FileKind::Df {
            continue;
        }
        let Some(child_path) = path.child(child.addr) else {
            continue;
        };
        if name_matches(storage, &child, name)? {
            return Ok(Some(child_path));
        }
        if child_path.depth() < MAX_DEPTH {
            if let Some(found) = search_below(storage, &child, child_path, name)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// Writes a fresh MF (the factory state: FMCOS 2.0 §4.3, named `1PAY.SYS.DDF01`, every right
/// `F0`, no key file) that owns `space` bytes.
pub fn format<N: Nvm>(storage: &mut Storage<N>, space: u16) -> Result<(), Sw> {
    let addr = mf_addr(storage);
    let [f0, f1] = MF_FID.to_be_bytes();
    let [s0, s1] = space.to_be_bytes();
    let name_len = MF_DEFAULT_NAME.len() as u8;
    let raw = [0x38, f0, f1, s0, s1, 0xF0, 0xF0, 0xFF, name_len, 0, 0];
    storage.write(addr, &raw)?;
    storage.write(addr + Header::NAME_OFFSET, MF_DEFAULT_NAME)?;
    Ok(())
}

/// ERASE DF (FMCOS 2.0 §7.11): every file below `df` goes; the DF keeps its name, rights and space.
pub fn erase_df<N: Nvm>(storage: &mut Storage<N>, df: &FileRef) -> Result<(), Sw> {
    storage.write_u16(df.addr + header::field::DF_USED, 0)?;
    Ok(())
}

/// Space accounting of a DF: (bytes used by children, bytes available to children).
pub fn df_usage(df: &FileRef) -> (usize, usize) {
    (df.header.used(), df.header.children_capacity())
}

/// READ BINARY's data source: `out.len()` bytes at `offset` of a binary EF.
pub fn read_binary<N: Nvm>(
    storage: &Storage<N>,
    ef: &FileRef,
    offset: usize,
    out: &mut [u8],
) -> Result<(), Sw> {
    let end = offset.checked_add(out.len()).ok_or(Sw::WRONG_OFFSET)?;
    if end > ef.header.size() {
        return Err(Sw::WRONG_OFFSET);
    }
    storage.read(ef.body() + offset, out)?;
    Ok(())
}

/// UPDATE BINARY's effect: `data` at `offset` of a binary EF.
pub fn update_binary<N: Nvm>(
    storage: &mut Storage<N>,
    ef: &FileRef,
    offset: usize,
    data: &[u8],
) -> Result<(), Sw> {
    let end = offset.checked_add(data.len()).ok_or(Sw::WRONG_OFFSET)?;
    if end > ef.header.size() {
        return Err(Sw::WRONG_OFFSET);
    }
    storage.write(ef.body() + offset, data)?;
    Ok(())
}
