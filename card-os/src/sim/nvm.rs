//! Simulated NVM: RAM, optionally mirrored page by page into an image file, with power-cut
//! injection at any byte of any page write and counters of what was written.

use crate::nvm::{Nvm, NvmError};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::vec::Vec;

/// Where the power goes: during page write number `write` (0-based, counted from when the cut is
/// armed), after `bytes` bytes of it have been programmed. `bytes = 0` cuts before the write
/// changes anything; `bytes` ≥ the write's length cuts right after it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerCut {
    /// Index of the page write to cut.
    pub write: u64,
    /// Bytes of that write that reach the memory.
    pub bytes: usize,
}

/// What has been programmed since the counters were last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NvmCounters {
    /// Page writes (program cycles).
    pub page_writes: u64,
    /// Bytes programmed.
    pub bytes_written: u64,
}

/// RAM-backed NVM for the simulator and tests. With an image file attached
/// ([`MemoryNvm::attach_file`]), every page write is also written to the file at once, so the file
/// is always the card's memory (tear-safe by the card's own journal).
pub struct MemoryNvm {
    mem: Vec<u8>,
    page_size: usize,
    powered: bool,
    cut: Option<PowerCut>,
    writes_since_armed: u64,
    counters: NvmCounters,
    /// Program cycles per page (wear).
    wear: Vec<u32>,
    /// Write lengths recorded while recording is on (for power-cut sweeps).
    recorded: Option<Vec<usize>>,
    file: Option<(File, u64)>,
}

impl MemoryNvm {
    /// Erased memory (all zero) of `capacity` bytes in pages of `page_size`.
    pub fn new(capacity: usize, page_size: usize) -> Self {
        MemoryNvm::from_bytes(std::vec![0; capacity], page_size)
    }

    /// Memory with the given contents.
    pub fn from_bytes(mem: Vec<u8>, page_size: usize) -> Self {
        let pages = mem.len().div_ceil(page_size.max(1));
        MemoryNvm {
            mem,
            page_size,
            powered: true,
            cut: None,
            writes_since_armed: 0,
            counters: NvmCounters::default(),
            wear: std::vec![0; pages],
            recorded: None,
            file: None,
        }
    }

    /// The memory contents.
    pub fn bytes(&self) -> &[u8] {
        &self.mem
    }

    /// A copy of the memory (no file, no cut, counters zero, powered).
    pub fn snapshot(&self) -> MemoryNvm {
        MemoryNvm::from_bytes(self.mem.clone(), self.page_size)
    }

    /// Mirrors every page write into `file` at `offset + address` from now on.
    pub fn attach_file(&mut self, file: File, offset: u64) {
        self.file = Some((file, offset));
    }

    /// Flushes the attached image file (if any) to stable storage.
    pub fn sync_file(&self) -> std::io::Result<()> {
        match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Arms a power cut (see [`PowerCut`]); write counting for it starts now.
    pub fn arm_cut(&mut self, cut: PowerCut) {
        self.cut = Some(cut);
        self.writes_since_armed = 0;
    }

    /// Disarms any pending cut.
    pub fn disarm_cut(&mut self) {
        self.cut = None;
    }

    /// Whether the power is on (false after a cut, until [`MemoryNvm::restore_power`]).
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Turns the power back on after a cut (the card must then power up to recover).
    pub fn restore_power(&mut self) {
        self.powered = true;
        self.cut = None;
    }

    /// The counters.
    pub fn counters(&self) -> NvmCounters {
        self.counters
    }

    /// Resets the counters.
    pub fn reset_counters(&mut self) {
        self.counters = NvmCounters::default();
    }

    /// Program cycles per page since creation.
    pub fn wear(&self) -> &[u32] {
        &self.wear
    }

    /// Starts recording the length of every page write.
    pub fn start_recording(&mut self) {
        self.recorded = Some(Vec::new());
    }

    /// Stops recording and returns the lengths of the page writes seen.
    pub fn take_recording(&mut self) -> Vec<usize> {
        self.recorded.take().unwrap_or_default()
    }
}

impl Nvm for MemoryNvm {
    fn capacity(&self) -> usize {
        self.mem.len()
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        if !self.powered {
            return Err(NvmError::PowerLost);
        }
        let end = addr.checked_add(buf.len()).ok_or(NvmError::OutOfRange)?;
        buf.copy_from_slice(self.mem.get(addr..end).ok_or(NvmError::OutOfRange)?);
        Ok(())
    }

    fn write_page(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        if !self.powered {
            return Err(NvmError::PowerLost);
        }
        if data.is_empty() {
            return Ok(());
        }
        let end = addr.checked_add(data.len()).ok_or(NvmError::OutOfRange)?;
        if end > self.mem.len() {
            return Err(NvmError::OutOfRange);
        }
        let page = addr / self.page_size;
        if (end - 1) / self.page_size != page {
            return Err(NvmError::CrossesPage);
        }
        let index = self.writes_since_armed;
        self.writes_since_armed += 1;
        if let Some(rec) = self.recorded.as_mut() {
            rec.push(data.len());
        }
        let landed = match self.cut {
            Some(cut) if cut.write == index => cut.bytes.min(data.len()),
            _ => data.len(),
        };
        self.mem[addr..addr + landed].copy_from_slice(&data[..landed]);
        if let Some((file, offset)) = &self.file {
            file.write_all_at(&data[..landed], offset + addr as u64)
                .map_err(|_| NvmError::PowerLost)?;
        }
        self.counters.page_writes += 1;
        self.counters.bytes_written += landed as u64;
        if let Some(w) = self.wear.get_mut(page) {
            *w = w.saturating_add(1);
        }
        if matches!(self.cut, Some(cut) if cut.write == index) {
            self.powered = false;
            return Err(NvmError::PowerLost);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_lands_a_prefix_then_everything_fails() {
        let mut nvm = MemoryNvm::new(256, 64);
        nvm.arm_cut(PowerCut { write: 1, bytes: 3 });
        nvm.write_page(0, &[1; 8]).unwrap();
        assert_eq!(nvm.write_page(64, &[2; 8]), Err(NvmError::PowerLost));
        assert_eq!(&nvm.bytes()[64..72], &[2, 2, 2, 0, 0, 0, 0, 0]);
        assert_eq!(nvm.write_page(128, &[3]), Err(NvmError::PowerLost));
        let mut b = [0u8; 1];
        assert_eq!(nvm.read(0, &mut b), Err(NvmError::PowerLost));
        nvm.restore_power();
        nvm.read(0, &mut b).unwrap();
        assert_eq!(b, [1]);
        assert_eq!(
            nvm.counters(),
            NvmCounters {
                page_writes: 2,
                bytes_written: 11
            }
        );
        assert_eq!(nvm.write_page(60, &[0; 8]), Err(NvmError::CrossesPage));
    }
}
