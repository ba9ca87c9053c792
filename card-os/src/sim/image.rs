//! The card image file: a versioned header followed by the card's NVM, byte for byte.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `CCIMAGE` + `00` |
//! | 8 | 2 | format version, big-endian (this code writes 1) |
//! | 10 | 2 | header length in bytes, big-endian (64 for version 1) |
//! | 12 | 4 | NVM capacity in bytes |
//! | 16 | 2 | NVM page size in bytes |
//! | 18 | 2 | flags (0) |
//! | 20 | 8 | creation time, Unix seconds |
//! | 28 | 36 | zero (reserved) |
//! | header length | capacity | the NVM |
//!
//! Compatibility rule: a later version may only append fields to the header (growing the header
//! length) and give meaning to reserved bytes or flags whose zero value means "as in version 1".
//! So any reader reads any version-1-or-later image by skipping `header length` bytes, and refuses
//! only images whose NVM layout it cannot interpret (the card's own layout version is checked at
//! power-up from the NVM's system area).

use super::nvm::MemoryNvm;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::string::String;
use std::vec::Vec;

const MAGIC: &[u8; 8] = b"CCIMAGE\0";
/// The image format version this code writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header length of version 1.
pub const HEADER_LEN: usize = 64;

/// The fields of an image header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Format version.
    pub version: u16,
    /// Header length (the NVM starts here).
    pub header_len: usize,
    /// NVM capacity.
    pub capacity: usize,
    /// NVM page size.
    pub page_size: usize,
    /// Flags (0 in version 1).
    pub flags: u16,
    /// Creation time (Unix seconds).
    pub created: u64,
}

impl ImageHeader {
    /// A version-1 header for an NVM of this geometry.
    pub fn new(capacity: usize, page_size: usize, created: u64) -> Self {
        ImageHeader {
            version: FORMAT_VERSION,
            header_len: HEADER_LEN,
            capacity,
            page_size,
            flags: 0,
            created,
        }
    }

    /// The header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..10].copy_from_slice(&self.version.to_be_bytes());
        h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        h[12..16].copy_from_slice(&(self.capacity as u32).to_be_bytes());
        h[16..18].copy_from_slice(&(self.page_size as u16).to_be_bytes());
        h[18..20].copy_from_slice(&self.flags.to_be_bytes());
        h[20..28].copy_from_slice(&self.created.to_be_bytes());
        h
    }

    /// Parses a header from the first bytes of an image (at least the 28 defined bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        if bytes.len() < 28 || &bytes[..8] != MAGIC {
            return Err(ImageError::NotAnImage);
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let version = u16_at(8);
        let header_len = usize::from(u16_at(10));
        if version == 0 || header_len < 28 {
            return Err(ImageError::NotAnImage);
        }
        let capacity = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        let page_size = usize::from(u16_at(16));
        let flags = u16_at(18);
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[20..28]);
        Ok(ImageHeader {
            version,
            header_len,
            capacity,
            page_size,
            flags,
            created: u64::from_be_bytes(created),
        })
    }
}

/// Why an image could not be used.
#[derive(Debug)]
pub enum ImageError {
    /// Reading or writing the file failed.
    Io(io::Error),
    /// The file is not a card image.
    NotAnImage,
    /// The file is shorter than its header says.
    Truncated,
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "{e}"),
            ImageError::NotAnImage => {
                write!(f, "not a citizencard card image (bad magic or header)")
            }
            ImageError::Truncated => write!(f, "the card image is truncated"),
        }
    }
}

impl std::error::Error for ImageError {}

impl From<io::Error> for ImageError {
    fn from(e: io::Error) -> Self {
        ImageError::Io(e)
    }
}

/// Reads an image: its header and its NVM.
pub fn load(path: &Path) -> Result<(ImageHeader, MemoryNvm), ImageError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    from_bytes(&bytes)
}

/// Parses an image held in memory.
pub fn from_bytes(bytes: &[u8]) -> Result<(ImageHeader, MemoryNvm), ImageError> {
    let header = ImageHeader::decode(bytes)?;
    let end = header
        .header_len
        .checked_add(header.capacity)
        .ok_or(ImageError::NotAnImage)?;
    let nvm = bytes
        .get(header.header_len..end)
        .ok_or(ImageError::Truncated)?;
    if header.page_size == 0 {
        return Err(ImageError::NotAnImage);
    }
    Ok((
        header,
        MemoryNvm::from_bytes(nvm.to_vec(), header.page_size),
    ))
}

/// The image bytes of `nvm` with `header`.
pub fn to_bytes(header: &ImageHeader, nvm: &MemoryNvm) -> Vec<u8> {
    let mut out = header.encode().to_vec();
    out.extend_from_slice(nvm.bytes());
    out
}

/// Writes an image atomically: to a temporary file beside `path` (a name no other process or
/// thread uses), then renamed over it. The image is created for its owner only (mode 0600 on
/// Unix, whatever the umask): a personalized card holds the holder's data and photo. When
/// anything fails (a full disk), the temporary file is removed and `path` is untouched.
pub fn save(path: &Path, header: &ImageHeader, nvm: &MemoryNvm) -> Result<(), ImageError> {
    write_atomically(path, |f| {
        f.write_all(&header.encode())?;
        f.write_all(nvm.bytes())
    })?;
    Ok(())
}

/// A temporary name beside `path`: `.<name>.<pid>.<n>.img.tmp`.
fn temporary_name(path: &Path) -> std::path::PathBuf {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(std::format!(".{name}.{}.{n}.img.tmp", std::process::id()))
}

/// Creates a temporary file beside `path` (0600), lets `fill` write it, syncs it and renames it
/// over `path`; removes it when any step fails.
fn write_atomically(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let tmp = temporary_name(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        fill(&mut f)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Opens an image so that every page write goes straight to the file (see
/// [`MemoryNvm::attach_file`]): the file is always the card's current memory.
pub fn open_live(path: &Path) -> Result<(ImageHeader, MemoryNvm), ImageError> {
    let (header, mut nvm) = load(path)?;
    let file = OpenOptions::new().write(true).open(path)?;
    nvm.attach_file(file, header.header_len as u64);
    Ok((header, nvm))
}

/// A one-line description of a header, for `citizencard sim info`.
pub fn describe(header: &ImageHeader) -> String {
    std::format!(
        "image format v{} (header {} bytes), NVM {} bytes in {}-byte pages, created {} (unix)",
        header.version,
        header.header_len,
        header.capacity,
        header.page_size,
        header.created
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_forward_compatibility() {
        let h = ImageHeader::new(32768, 64, 1_700_000_000);
        assert_eq!(ImageHeader::decode(&h.encode()).unwrap(), h);
        // A later version with a longer header still reads: the NVM starts at header_len.
        let mut later = h.encode().to_vec();
        later[8..10].copy_from_slice(&2u16.to_be_bytes());
        later[10..12].copy_from_slice(&80u16.to_be_bytes());
        later.extend_from_slice(&[0xEE; 16]); // the new header fields
        later.extend(std::iter::repeat_n(0x5A, 32768));
        let (hdr, nvm) = from_bytes(&later).unwrap();
        assert_eq!((hdr.version, hdr.header_len), (2, 80));
        assert!(nvm.bytes().iter().all(|&b| b == 0x5A));
        assert!(matches!(
            from_bytes(b"garbage"),
            Err(ImageError::NotAnImage)
        ));
        assert!(matches!(
            from_bytes(&h.encode()),
            Err(ImageError::Truncated)
        ));
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(std::format!("card-os-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_save_that_fails_leaves_the_old_image_and_no_temporary_file() {
        let dir = scratch("full");
        let path = dir.join("card.img");
        let h = ImageHeader::new(1024, 64, 0);
        let nvm = MemoryNvm::from_bytes(std::vec![0xA5; 1024], 64);
        save(&path, &h, &nvm).unwrap();
        // The disk fills up half-way through the next save.
        let e = write_atomically(&path, |f| {
            f.write_all(&[0; 100])?;
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            ))
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(names(&dir), ["card.img"]);
        let (_, back) = load(&path).unwrap();
        assert_eq!(back.bytes(), nvm.bytes());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn images_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("card.img");
        let nvm = MemoryNvm::from_bytes(std::vec![0; 1024], 64);
        save(&path, &ImageHeader::new(1024, 64, 0), &nvm).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
