//! Persistent memory: the [`Nvm`] trait a chip's EEPROM driver implements, and [`Storage`], which
//! makes all persistent writes of one command atomic through a redo journal.
//!
//! ## The memory model
//!
//! An [`Nvm`] is a byte array of [`Nvm::capacity`] bytes programmed in pages of [`Nvm::page_size`]
//! bytes: one [`Nvm::write_page`] call programs a range inside one page. A power cut can stop a
//! write after any byte (the simulator injects exactly that), so nothing may rely on a write
//! completing.
//!
//! The default simulated card has 32 KiB of NVM in 64-byte pages, the page size of common
//! smart-card EEPROMs (FM1208-class and SC000-class secure microcontrollers program EEPROM in 32- to
//! 128-byte pages). Both are configurable ([`Geometry`]).
//!
//! ## The image layout
//!
//! ```text
//! 0                  system area (one page): format marker, geometry, card data, life cycle
//! journal_start      the journal ring (see journal.rs), a whole number of pages
//! fs_start           the file system: the MF header and everything below it
//! capacity
//! ```

mod journal;

pub use journal::{Storage, TXN_CAPACITY};

/// Why an NVM operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmError {
    /// The address range lies outside the memory.
    OutOfRange,
    /// A page write crosses a page boundary (a driver bug, never a card input).
    CrossesPage,
    /// The power was cut (simulated tearing): nothing more can be read or written until power-up.
    PowerLost,
    /// The command's writes exceed the transaction buffer ([`TXN_CAPACITY`]).
    TransactionFull,
    /// The image is not a formatted card image of a layout this OS understands.
    NotFormatted,
}

/// Persistent memory as a chip exposes it: byte reads, page-bounded writes.
pub trait Nvm {
    /// Size in bytes.
    fn capacity(&self) -> usize;
    /// Page size in bytes (a power of two).
    fn page_size(&self) -> usize;
    /// Reads `buf.len()` bytes at `addr`.
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError>;
    /// Programs `data` at `addr`; the range must lie within one page.
    fn write_page(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError>;
}

/// Writes `data` at `addr`, split into page writes.
pub fn write_across_pages<N: Nvm + ?Sized>(
    nvm: &mut N,
    addr: usize,
    data: &[u8],
) -> Result<(), NvmError> {
    let page = nvm.page_size().max(1);
    let mut addr = addr;
    let mut rest = data;
    while !rest.is_empty() {
        let room = page - addr % page;
        let (chunk, tail) = rest.split_at(room.min(rest.len()));
        nvm.write_page(addr, chunk)?;
        addr = addr.checked_add(chunk.len()).ok_or(NvmError::OutOfRange)?;
        rest = tail;
    }
    Ok(())
}

/// The size of the memory and of its pages, and the journal ring derived from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Total NVM size in bytes (at most 64 KiB: file-system addresses are 16-bit).
    pub capacity: usize,
    /// Page size in bytes: a power of two from 16 to [`MAX_PAGE_SIZE`].
    pub page_size: usize,
}

impl Geometry {
    /// 32 KiB in 64-byte pages.
    pub const DEFAULT: Geometry = Geometry {
        capacity: 32 * 1024,
        page_size: 64,
    };

    /// Where the journal ring starts: right after the one-page system area (at least 64 bytes).
    pub const fn journal_start(&self) -> usize {
        if self.page_size >= SYSTEM_AREA_SIZE {
            self.page_size
        } else {
            SYSTEM_AREA_SIZE
        }
    }

    /// Length of the journal ring: room for two of the largest records, plus a page, so that a new
    /// record can never overwrite the newest committed one.
    pub const fn journal_len(&self) -> usize {
        let need = 2 * journal::MAX_RECORD_LEN;
        (need.div_ceil(self.page_size) + 1) * self.page_size
    }

    /// Where the file system starts.
    pub const fn fs_start(&self) -> usize {
        self.journal_start() + self.journal_len()
    }

    /// Whether this geometry can hold a card: sizes in range, and at least 1 KiB for files.
    pub const fn is_valid(&self) -> bool {
        self.page_size.is_power_of_two()
            && self.page_size >= 16
            && self.page_size <= MAX_PAGE_SIZE
            && self.capacity <= 65536
            && self.capacity.is_multiple_of(self.page_size)
            && self.capacity >= self.fs_start() + 1024
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::DEFAULT
    }
}

/// Largest supported page size (the journal assembles one page in RAM before programming it).
pub const MAX_PAGE_SIZE: usize = 128;

/// Size of the system area at address 0 (see [`crate::card::system`]).
pub const SYSTEM_AREA_SIZE: usize = 64;
