//! The redo journal that makes every command's persistent writes atomic.
//!
//! A command never writes the NVM in place directly. Its writes collect in a RAM buffer of
//! `(address, bytes)` entries, which reads see on top of the NVM. When the command succeeds,
//! [`Storage::commit`]:
//!
//! 1. writes one journal record — `A5 ‖ seq(4) ‖ len(2) ‖ entries ‖ CRC-32` — into the next free
//!    pages of the journal ring; the record is committed once its last byte (the CRC) is written;
//! 2. applies the entries in place, programming only the pages whose bytes differ.
//!
//! When the command fails, [`Storage::abort`] drops the buffer and nothing has changed.
//!
//! At power-up [`Storage::open`] scans the ring for the valid record with the highest sequence
//! number and applies it again. Replaying is idempotent (it writes the same bytes, and only where
//! they differ), so it does not matter whether the cut came before, during or after step 2. A record
//! torn during step 1 fails its CRC and is ignored: the command did not happen.
//!
//! Why replaying the newest record is always safe: every write to allocated memory goes through the
//! journal, so nothing has touched the newest record's addresses since it committed, except
//! [`Storage::write_unallocated`], which only writes memory that no committed state references
//! (a new file's body before the record that allocates it), and the newest record never writes into
//! memory it leaves unallocated.
//!
//! The ring holds two of the largest records plus a page, and a record starts right after the
//! newest one, so a new record never overwrites the newest committed record — even when it is torn.
//! Records wrap around the ring's end; older records are overwritten as the ring turns, which also
//! spreads journal wear over the ring's pages.
//!
//! Entry encoding: `addr(2) ‖ len ‖ data`, where `len` is one byte below 128 and otherwise two bytes
//! with the top bit set (`1LLLLLLL LLLLLLLL`), so the small writes of a purse transaction fit one page.

use super::{write_across_pages, Geometry, Nvm, NvmError};
use crc::{Crc, NoTable, CRC_32_ISO_HDLC};

/// Bytes of entries (headers and data) one command may write: room for a full extended-APDU
/// UPDATE BINARY plus the metadata that goes with it.
pub const TXN_CAPACITY: usize = 600;

const RECORD_MAGIC: u8 = 0xA5;
const RECORD_HEADER_LEN: usize = 7;
const RECORD_CRC_LEN: usize = 4;

/// Largest journal record: header, a full buffer, CRC.
pub(super) const MAX_RECORD_LEN: usize = RECORD_HEADER_LEN + TXN_CAPACITY + RECORD_CRC_LEN;

/// CRC-32 without a lookup table: the record check costs a little time and no flash.
const CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);

/// Chunk size for compare-and-write and CRC streaming (stack buffers).
const CHUNK: usize = 32;

/// The persistent store of a card: the NVM, its journal and the command's pending writes.
pub struct Storage<N: Nvm> {
    nvm: N,
    geometry: Geometry,
    /// Sequence number of the next record.
    next_seq: u32,
    /// Ring offset (page-aligned) where the next record starts.
    next_pos: usize,
    pending: [u8; TXN_CAPACITY],
    pending_len: usize,
}

impl<N: Nvm> Storage<N> {
    /// Opens the store at power-up: finds the newest committed journal record and replays it.
    ///
    /// Fails with [`NvmError::PowerLost`] when the power is cut during recovery (the next power-up
    /// recovers again).
    pub fn open(nvm: N) -> Result<Self, (N, NvmError)> {
        let mut storage = Storage::closed(nvm);
        match storage.reopen() {
            Ok(()) => Ok(storage),
            Err(e) => Err((storage.nvm, e)),
        }
    }

    /// A store over `nvm` that is not open: nothing read, nothing pending. [`Storage::reopen`]
    /// opens it where it is.
    pub fn closed(nvm: N) -> Self {
        let geometry = Geometry {
            capacity: nvm.capacity(),
            page_size: nvm.page_size(),
        };
        Storage {
            nvm,
            geometry,
            next_seq: 1,
            next_pos: 0,
            pending: [0; TXN_CAPACITY],
            pending_len: 0,
        }
    }

    /// Opens the store again in place, as at power-up: pending writes dropped, the geometry read
    /// from the NVM, the newest committed journal record found and replayed. For a chip that keeps
    /// its one card where it is across power cycles (nothing the size of the store moves).
    ///
    /// Fails with [`NvmError::NotFormatted`] for an NVM whose geometry cannot be a card's, and with
    /// [`NvmError::PowerLost`] when the power is cut during recovery.
    pub fn reopen(&mut self) -> Result<(), NvmError> {
        self.geometry = Geometry {
            capacity: self.nvm.capacity(),
            page_size: self.nvm.page_size(),
        };
        self.next_seq = 1;
        self.next_pos = 0;
        self.pending_len = 0;
        if !self.geometry.is_valid() {
            return Err(NvmError::NotFormatted);
        }
        self.recover()
    }

    /// The NVM, for the simulator (saving images, counters) and for power-cut tests.
    pub fn nvm(&self) -> &N {
        &self.nvm
    }

    /// The NVM, mutably (the simulator arms power cuts through it).
    pub fn nvm_mut(&mut self) -> &mut N {
        &mut self.nvm
    }

    /// Gives the NVM back (power-off).
    pub fn into_nvm(self) -> N {
        self.nvm
    }

    /// The geometry the store was opened with.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Reads `buf.len()` bytes at `addr`, as the command sees them (pending writes included).
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        self.nvm.read(addr, buf)?;
        let end = addr.checked_add(buf.len()).ok_or(NvmError::OutOfRange)?;
        for (entry_addr, data) in Entries::new(self.pending_bytes()) {
            let entry_end = entry_addr + data.len();
            let from = entry_addr.max(addr);
            let to = entry_end.min(end);
            if from < to {
                let src = data.get(from - entry_addr..to - entry_addr);
                let dst = buf.get_mut(from - addr..to - addr);
                if let (Some(src), Some(dst)) = (src, dst) {
                    dst.copy_from_slice(src);
                }
            }
        }
        Ok(())
    }

    /// Reads `M` bytes at `addr` into an array.
    pub fn read_array<const M: usize>(&self, addr: usize) -> Result<[u8; M], NvmError> {
        let mut out = [0; M];
        self.read(addr, &mut out)?;
        Ok(out)
    }

    /// Reads one byte.
    pub fn read_u8(&self, addr: usize) -> Result<u8, NvmError> {
        let [b] = self.read_array::<1>(addr)?;
        Ok(b)
    }

    /// Reads a big-endian u16.
    pub fn read_u16(&self, addr: usize) -> Result<u16, NvmError> {
        Ok(u16::from_be_bytes(self.read_array(addr)?))
    }

    /// Queues a write of `data` at `addr` in the command's transaction.
    pub fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        if data.is_empty() {
            return Ok(());
        }
        let end = addr.checked_add(data.len()).ok_or(NvmError::OutOfRange)?;
        // Journaled writes go to the system area or the file system, never into the ring itself.
        let in_system_area = end <= super::SYSTEM_AREA_SIZE;
        let in_file_system = addr >= self.geometry.fs_start() && end <= self.geometry.capacity;
        if !in_system_area && !in_file_system {
            return Err(NvmError::OutOfRange);
        }
        // A write inside an earlier entry patches that entry: the journal stays small and a replay
        // of an applied record programs nothing.
        if self.patch_pending(addr, data) {
            return Ok(());
        }
        let addr16 = u16::try_from(addr).map_err(|_| NvmError::OutOfRange)?;
        let len_bytes = encode_len(data.len()).ok_or(NvmError::TransactionFull)?;
        let header_len = 2 + len_bytes.1;
        let start = self.pending_len;
        let new_len = start
            .checked_add(header_len)
            .and_then(|n| n.checked_add(data.len()))
            .filter(|&n| n <= TXN_CAPACITY)
            .ok_or(NvmError::TransactionFull)?;
        let slot = self
            .pending
            .get_mut(start..new_len)
            .ok_or(NvmError::TransactionFull)?;
        let (head, body) = slot.split_at_mut(header_len);
        let [a0, a1] = addr16.to_be_bytes();
        let (l0, l1) = (len_bytes.0[0], len_bytes.0[1]);
        for (dst, src) in head.iter_mut().zip([a0, a1, l0, l1]) {
            *dst = src;
        }
        body.copy_from_slice(data);
        self.pending_len = new_len;
        Ok(())
    }

    /// Queues a one-byte write.
    pub fn write_u8(&mut self, addr: usize, value: u8) -> Result<(), NvmError> {
        self.write(addr, &[value])
    }

    /// Queues a big-endian u16 write.
    pub fn write_u16(&mut self, addr: usize, value: u16) -> Result<(), NvmError> {
        self.write(addr, &value.to_be_bytes())
    }

    /// Writes `data` at `addr` directly, outside the transaction. Only for memory that no committed
    /// state references (the body of a file being created, before the record that allocates it):
    /// a power cut leaves it unreferenced, so it needs no journal.
    pub fn write_unallocated(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        let end = addr.checked_add(data.len()).ok_or(NvmError::OutOfRange)?;
        if addr < self.geometry.fs_start() || end > self.geometry.capacity {
            return Err(NvmError::OutOfRange);
        }
        self.program_if_different(addr, data)
    }

    /// Fills `len` unallocated bytes at `addr` with `value` (see [`Storage::write_unallocated`]).
    pub fn fill_unallocated(&mut self, addr: usize, len: usize, value: u8) -> Result<(), NvmError> {
        let chunk = [value; CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            self.write_unallocated(addr + done, chunk.get(..n).unwrap_or(&[]))?;
            done += n;
        }
        Ok(())
    }

    /// Whether the command has queued writes.
    pub fn has_pending(&self) -> bool {
        self.pending_len > 0
    }

    /// Drops the command's queued writes: the command changed nothing.
    pub fn abort(&mut self) {
        self.pending_len = 0;
    }

    /// Makes the command's queued writes durable, atomically (see the module docs).
    pub fn commit(&mut self) -> Result<(), NvmError> {
        if self.pending_len == 0 {
            return Ok(());
        }
        let result = self.write_record().and_then(|record_len| {
            self.apply_pending()?;
            self.next_seq = self.next_seq.wrapping_add(1);
            self.next_pos = self.ring_advance(self.next_pos, record_len);
            Ok(())
        });
        self.pending_len = 0;
        result
    }

    /// Overwrites part of a pending entry when it holds the whole range `addr..addr+len` and no
    /// later entry overlaps the range (so the patched bytes stay the last word on them).
    fn patch_pending(&mut self, addr: usize, data: &[u8]) -> bool {
        let end = addr + data.len();
        let mut last_overlap = None;
        let mut entries = Entries::new(self.pending_bytes());
        while let Some((entry_addr, entry)) = entries.next() {
            let entry_end = entry_addr + entry.len();
            if entry_addr < end && addr < entry_end {
                let data_offset = self.pending_len - entries.rest.len() - entry.len();
                let contains = entry_addr <= addr && end <= entry_end;
                last_overlap = Some(contains.then_some(data_offset + (addr - entry_addr)));
            }
        }
        match last_overlap
            .flatten()
            .and_then(|at| self.pending.get_mut(at..at + data.len()))
        {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    fn pending_bytes(&self) -> &[u8] {
        self.pending.get(..self.pending_len).unwrap_or(&[])
    }

    /// Step 1 of a commit: the journal record. Returns its length.
    fn write_record(&mut self) -> Result<usize, NvmError> {
        let len = self.pending_len;
        let [l0, l1] = u16::try_from(len)
            .map_err(|_| NvmError::TransactionFull)?
            .to_be_bytes();
        let [s0, s1, s2, s3] = self.next_seq.to_be_bytes();
        let header = [RECORD_MAGIC, s0, s1, s2, s3, l0, l1];
        let payload = self.pending.get(..len).unwrap_or(&[]);
        let mut digest = CRC32.digest();
        digest.update(&header);
        digest.update(payload);
        let crc = digest.finalize().to_be_bytes();

        // Assemble the record page by page, so each page is programmed once.
        let total = RECORD_HEADER_LEN + len + RECORD_CRC_LEN;
        let segments: [&[u8]; 3] = [&header, payload, &crc];
        let page = self.geometry.page_size;
        let mut buf = [0u8; super::MAX_PAGE_SIZE];
        let mut done = 0;
        while done < total {
            // Ring offsets of records are page-aligned, so `done` is page-aligned within the ring,
            // except that the ring's end also ends a page.
            let n = (total - done).min(page);
            let chunk = buf.get_mut(..n).ok_or(NvmError::OutOfRange)?;
            copy_from_segments(&segments, done, chunk);
            ring_write(&mut self.nvm, &self.geometry, self.next_pos + done, chunk)?;
            done += n;
        }
        Ok(RECORD_HEADER_LEN + len + RECORD_CRC_LEN)
    }

    /// Step 2 of a commit (and the replay at power-up): every entry, in order, in place.
    fn apply_pending(&mut self) -> Result<(), NvmError> {
        let payload = self.pending.get(..self.pending_len).unwrap_or(&[]);
        for (addr, data) in Entries::new(payload) {
            program_if_different(&mut self.nvm, &self.geometry, addr, data)?;
        }
        Ok(())
    }

    fn program_if_different(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        program_if_different(&mut self.nvm, &self.geometry, addr, data)
    }

    fn ring_len(&self) -> usize {
        self.geometry.journal_len()
    }

    fn ring_advance(&self, pos: usize, len: usize) -> usize {
        let page = self.geometry.page_size;
        (pos + len).div_ceil(page) * page % self.ring_len()
    }

    /// Reads `buf.len()` bytes at ring offset `pos`, wrapping at the end.
    fn ring_read(&self, pos: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        ring_read(&self.nvm, &self.geometry, pos, buf)
    }

    /// Power-up: find the newest valid record and replay it.
    fn recover(&mut self) -> Result<(), NvmError> {
        let page = self.geometry.page_size;
        let mut newest: Option<(u32, usize, usize)> = None; // (seq, pos, payload len)
        let mut pos = 0;
        while pos < self.ring_len() {
            if let Some((seq, len)) = self.valid_record_at(pos)? {
                if newest.is_none_or(|(s, _, _)| seq > s) {
                    newest = Some((seq, pos, len));
                }
            }
            pos += page;
        }
        let Some((seq, pos, len)) = newest else {
            return Ok(());
        };
        let target = self
            .pending
            .get_mut(..len)
            .ok_or(NvmError::TransactionFull)?;
        ring_read(&self.nvm, &self.geometry, pos + RECORD_HEADER_LEN, target)?;
        self.pending_len = len;
        let replay = self.apply_pending();
        self.pending_len = 0;
        replay?;
        self.next_seq = seq.wrapping_add(1);
        self.next_pos = self.ring_advance(pos, RECORD_HEADER_LEN + len + RECORD_CRC_LEN);
        Ok(())
    }

    /// The sequence number and payload length of a committed record starting at ring offset `pos`.
    fn valid_record_at(&self, pos: usize) -> Result<Option<(u32, usize)>, NvmError> {
        let mut header = [0u8; RECORD_HEADER_LEN];
        self.ring_read(pos, &mut header)?;
        let [magic, s0, s1, s2, s3, l0, l1] = header;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if magic != RECORD_MAGIC || len == 0 || len > TXN_CAPACITY {
            return Ok(None);
        }
        let mut digest = CRC32.digest();
        digest.update(&header);
        let mut chunk = [0u8; CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            let part = chunk.get_mut(..n).unwrap_or(&mut []);
            self.ring_read(pos + RECORD_HEADER_LEN + done, part)?;
            digest.update(part);
            done += n;
        }
        let mut stored = [0u8; RECORD_CRC_LEN];
        self.ring_read(pos + RECORD_HEADER_LEN + len, &mut stored)?;
        if digest.finalize() != u32::from_be_bytes(stored) {
            return Ok(None);
        }
        Ok(Some((u32::from_be_bytes([s0, s1, s2, s3]), len)))
    }
}

/// Copies `out.len()` bytes starting at `offset` of the concatenation of `segments` into `out`.
fn copy_from_segments(segments: &[&[u8]], offset: usize, out: &mut [u8]) {
    let mut skip = offset;
    let mut filled = 0;
    for segment in segments {
        if skip >= segment.len() {
            skip -= segment.len();
            continue;
        }
        let part = segment.get(skip..).unwrap_or(&[]);
        skip = 0;
        let n = part.len().min(out.len() - filled);
        if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), part.get(..n)) {
            dst.copy_from_slice(src);
        }
        filled += n;
        if filled == out.len() {
            break;
        }
    }
}

/// Programs `data` at `addr` in page-bounded writes, skipping chunks whose bytes are already there
/// (so replaying an applied record writes nothing, and unchanged bytes cost no wear).
fn program_if_different<N: Nvm>(
    nvm: &mut N,
    geometry: &Geometry,
    addr: usize,
    data: &[u8],
) -> Result<(), NvmError> {
    let page = geometry.page_size;
    let mut offset = 0;
    while offset < data.len() {
        let at = addr + offset;
        let n = (page - at % page).min(data.len() - offset);
        let want = data.get(offset..offset + n).ok_or(NvmError::OutOfRange)?;
        if !nvm_equals(nvm, at, want)? {
            nvm.write_page(at, want)?;
        }
        offset += n;
    }
    Ok(())
}

fn nvm_equals<N: Nvm>(nvm: &N, addr: usize, want: &[u8]) -> Result<bool, NvmError> {
    let mut have = [0u8; CHUNK];
    for (i, part) in want.chunks(CHUNK).enumerate() {
        let have = have.get_mut(..part.len()).ok_or(NvmError::OutOfRange)?;
        nvm.read(addr + i * CHUNK, have)?;
        if have != part {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `data` at ring offset `pos` (taken modulo the ring length), wrapping at the end.
fn ring_write<N: Nvm>(
    nvm: &mut N,
    geometry: &Geometry,
    pos: usize,
    data: &[u8],
) -> Result<(), NvmError> {
    let ring = geometry.journal_len();
    let pos = pos % ring;
    let (first, second) = data.split_at((ring - pos).min(data.len()));
    write_across_pages(nvm, geometry.journal_start() + pos, first)?;
    write_across_pages(nvm, geometry.journal_start(), second)
}

/// Reads `buf.len()` bytes at ring offset `pos`, wrapping at the end.
fn ring_read<N: Nvm>(
    nvm: &N,
    geometry: &Geometry,
    pos: usize,
    buf: &mut [u8],
) -> Result<(), NvmError> {
    let ring = geometry.journal_len();
    let pos = pos % ring;
    let (first, second) = buf.split_at_mut((ring - pos).min(buf.len()));
    nvm.read(geometry.journal_start() + pos, first)?;
    nvm.read(geometry.journal_start(), second)
}

/// Encodes an entry length: one byte below 128, else two with the top bit set.
fn encode_len(len: usize) -> Option<([u8; 2], usize)> {
    match len {
        0..=0x7F => Some(([len as u8, 0], 1)),
        0x80..=0x7FFF => Some(([0x80 | (len >> 8) as u8, len as u8], 2)),
        _ => None,
    }
}

/// Iterates over `(address, data)` entries of a payload; stops at the first malformed entry.
struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Entries<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Entries { rest: payload }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (addr, len, tail) = match self.rest {
            [a0, a1, l0, tail @ ..] if *l0 < 0x80 => {
                (u16::from_be_bytes([*a0, *a1]), usize::from(*l0), tail)
            }
            [a0, a1, l0, l1, tail @ ..] => (
                u16::from_be_bytes([*a0, *a1]),
                (usize::from(*l0 & 0x7F) << 8) | usize::from(*l1),
                tail,
            ),
            _ => return None,
        };
        if len == 0 || len > tail.len() {
            return None;
        }
        let (data, rest) = tail.split_at(len);
        self.rest = rest;
        Some((usize::from(addr), data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal RAM NVM with a power cut after `budget` programmed bytes (the simulator has the
    /// full-featured one; this keeps the journal's tests self-contained).
    struct TestNvm {
        mem: Vec<u8>,
        page: usize,
        budget: Option<usize>,
        dead: bool,
        page_writes: usize,
    }

    impl TestNvm {
        fn new(capacity: usize, page: usize) -> Self {
            TestNvm {
                mem: vec![0; capacity],
                page,
                budget: None,
                dead: false,
                page_writes: 0,
            }
        }
    }

    impl Nvm for TestNvm {
        fn capacity(&self) -> usize {
            self.mem.len()
        }
        fn page_size(&self) -> usize {
            self.page
        }
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError> {
            if self.dead {
                return Err(NvmError::PowerLost);
            }
            buf.copy_from_slice(
                self.mem
                    .get(addr..addr + buf.len())
                    .ok_or(NvmError::OutOfRange)?,
            );
            Ok(())
        }
        fn write_page(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
            if self.dead {
                return Err(NvmError::PowerLost);
            }
            assert_eq!(
                addr / self.page,
                (addr + data.len() - 1) / self.page,
                "crosses page"
            );
            self.page_writes += 1;
            for (i, b) in data.iter().enumerate() {
                if let Some(budget) = self.budget.as_mut() {
                    if *budget == 0 {
                        self.dead = true;
                        return Err(NvmError::PowerLost);
                    }
                    *budget -= 1;
                }
                self.mem[addr + i] = *b;
            }
            Ok(())
        }
    }

    fn fs(geometry: &Geometry) -> usize {
        geometry.fs_start()
    }

    #[test]
    fn pending_writes_are_visible_and_abort_drops_them() {
        let g = Geometry::DEFAULT;
        let mut s = Storage::open(TestNvm::new(g.capacity, g.page_size))
            .ok()
            .unwrap();
        let a = fs(&g) + 10;
        s.write(a, &[1, 2, 3]).unwrap();
        s.write(a + 1, &[9]).unwrap();
        assert_eq!(s.read_array::<4>(a).unwrap(), [1, 9, 3, 0]);
        assert_eq!(s.nvm().mem[a], 0, "nothing in place before commit");
        s.abort();
        assert_eq!(s.read_array::<3>(a).unwrap(), [0, 0, 0]);
    }

    #[test]
    fn commit_writes_in_place_and_survives_power_up() {
        let g = Geometry::DEFAULT;
        let mut s = Storage::open(TestNvm::new(g.capacity, g.page_size))
            .ok()
            .unwrap();
        let a = fs(&g) + 60; // crosses a page boundary
        let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
        s.write(a, &data).unwrap();
        s.commit().unwrap();
        let nvm = s.into_nvm();
        assert_eq!(&nvm.mem[a..a + 200], &data[..]);
        let s = Storage::open(nvm).ok().unwrap();
        let mut back = vec![0; 200];
        s.read(a, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn unchanged_bytes_are_not_programmed() {
        let g = Geometry::DEFAULT;
        let mut s = Storage::open(TestNvm::new(g.capacity, g.page_size))
            .ok()
            .unwrap();
        let a = fs(&g);
        s.write(a, &[7; 16]).unwrap();
        s.commit().unwrap();
        let before = s.nvm().page_writes;
        assert_eq!(before, 2, "one journal page, one data page");
        s.write(a, &[7; 16]).unwrap();
        s.commit().unwrap();
        assert_eq!(s.nvm().page_writes - before, 1, "journal only");
    }

    #[test]
    fn transaction_capacity_is_enforced() {
        let g = Geometry::DEFAULT;
        let mut s = Storage::open(TestNvm::new(g.capacity, g.page_size))
            .ok()
            .unwrap();
        let a = fs(&g);
        assert_eq!(
            s.write(a, &[0; TXN_CAPACITY]),
            Err(NvmError::TransactionFull)
        );
        s.write(a, &[1; 512]).unwrap();
        s.write(a + 10, &[2; 100]).unwrap(); // inside the first entry: patched, no new entry
        assert_eq!(s.write(a + 512, &[1; 100]), Err(NvmError::TransactionFull));
        assert_eq!(s.read_array::<3>(a + 9).unwrap(), [1, 2, 2]);
    }

    /// Every cut point of a multi-entry transaction leaves old or new, never a mix — over many
    /// commits of varying sizes, so records wrap around the ring.
    #[test]
    fn every_cut_is_all_or_nothing_across_ring_wraps() {
        let g = Geometry {
            capacity: 8192,
            page_size: 32,
        };
        let a = g.fs_start();
        let b = a + 1000;
        let snapshot = |s: &Storage<TestNvm>| {
            let mut v = vec![0u8; 1003];
            s.read(a, &mut v).unwrap();
            v
        };
        let txn = |s: &mut Storage<TestNvm>, round: u8, size: usize| {
            s.write(a, &vec![round; size]).unwrap();
            s.write(b, &[round; 3]).unwrap();
            s.write(a + size / 2, &[round ^ 0xFF]).unwrap();
        };
        let mut nvm = TestNvm::new(g.capacity, g.page_size);
        let mut cuts = 0;
        for round in 1..=40u8 {
            let size = 1 + (round as usize * 37) % 400;
            let before = snapshot(&Storage::open(clone(&nvm)).ok().unwrap());
            let mut full = Storage::open(clone(&nvm)).ok().unwrap();
            txn(&mut full, round, size);
            full.nvm_mut().budget = Some(usize::MAX);
            full.commit().unwrap();
            let programmed = usize::MAX - full.nvm().budget.unwrap();
            let after = snapshot(&full);
            for cut in 0..programmed {
                let mut torn = clone(&nvm);
                torn.budget = Some(cut);
                let mut s = Storage::open(torn).map_err(|e| e.1).unwrap();
                txn(&mut s, round, size);
                assert_eq!(s.commit(), Err(NvmError::PowerLost));
                let mut nvm = s.into_nvm();
                nvm.dead = false;
                nvm.budget = None;
                let seen = snapshot(&Storage::open(nvm).ok().unwrap());
                assert!(
                    seen == before || seen == after,
                    "round {round}, cut after {cut} bytes"
                );
                cuts += 1;
            }
            nvm = full.into_nvm();
            nvm.budget = None;
        }
        assert!(cuts > 5000, "{cuts} cut points");
    }

    fn clone(n: &TestNvm) -> TestNvm {
        TestNvm {
            mem: n.mem.clone(),
            page: n.page,
            budget: None,
            dead: false,
            page_writes: 0,
        }
    }

    #[test]
    fn entry_lengths_round_trip() {
        for len in [1usize, 0x7F, 0x80, 0x1FF, 0x7FFF] {
            let (bytes, n) = encode_len(len).unwrap();
            let mut payload = vec![0x12, 0x34];
            payload.extend_from_slice(&bytes[..n]);
            payload.extend(std::iter::repeat_n(0xEE, len));
            let mut it = Entries::new(&payload);
            assert_eq!(it.next(), Some((0x1234, &payload[2 + n..])));
            assert_eq!(it.next(), None);
        }
        assert_eq!(encode_len(0x8000), None);
    }
}
