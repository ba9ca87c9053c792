//! The card's NVM on this chip: a region of RAM that the host bridge loads with the card image at
//! start and reads back to save it (see `link.rs`, controls `NVM_READ` and `NVM_WRITE`).
//!
//! nRF51 flash is programmed in 1 KiB erase pages through the NVMC, and the card OS's [`Nvm`]
//! model is EEPROM-like (any byte range inside a 64-byte page, overwritten in place). A flash port
//! needs a page-mapping layer on top of the NVMC; the emulated chip keeps the image in RAM instead,
//! which shows the OS's own cost without a flash-translation layer's.

use card_os::nvm::{Nvm, NvmError};

/// The largest image the chip holds: 16 KiB of its 32 KiB RAM (nRF51822-xxAC), room for the
/// default profile's files (about 9.3 KB) with the journal; the rest is the OS's RAM and stack.
pub const NVM_MAX: usize = 16 * 1024;

/// The page size the card OS programs in (the default simulated card's).
pub const PAGE_SIZE: usize = 64;

/// The image in RAM: `len` bytes of `bytes` are the card's NVM.
pub struct RamNvm {
    bytes: &'static mut [u8; NVM_MAX],
    len: usize,
}

impl RamNvm {
    pub fn new(bytes: &'static mut [u8; NVM_MAX]) -> Self {
        RamNvm { bytes, len: 0 }
    }

    /// The image (for `NVM_READ`).
    pub fn image(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Room for a new image of `len` bytes (for `NVM_WRITE`), or `None` when it does not fit or
    /// is not a whole number of pages.
    pub fn load_area(&mut self, len: usize) -> Option<&mut [u8]> {
        if len > NVM_MAX || !len.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        self.len = len;
        self.bytes.get_mut(..len)
    }
}

impl Nvm for RamNvm {
    fn capacity(&self) -> usize {
        self.len
    }

    fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        let end = addr.checked_add(buf.len()).ok_or(NvmError::OutOfRange)?;
        let src = self.image().get(addr..end).ok_or(NvmError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_page(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        let end = addr.checked_add(data.len()).ok_or(NvmError::OutOfRange)?;
        if !data.is_empty() && addr / PAGE_SIZE != (end - 1) / PAGE_SIZE {
            return Err(NvmError::CrossesPage);
        }
        let len = self.len;
        let dst = self
            .bytes
            .get_mut(addr..end)
            .filter(|_| end <= len)
            .ok_or(NvmError::OutOfRange)?;
        dst.copy_from_slice(data);
        Ok(())
    }
}
