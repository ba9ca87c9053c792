//! The terminal's state directory, locked for one terminal run at a time.
//!
//! It holds `psam-counter` (the PSAM's terminal transaction number) and the journal of pending
//! transactions (`pending-<serial>.json`). Two processes sharing it used to read the same counter
//! and hand one terminal transaction number to two purchases; the `lock` file now makes the
//! second wait (and, after the wait, refuse).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ServiceError;
use crate::keys::TerminalCounter;
use crate::lock::FileLock;
use crate::terminal::FileJournal;

/// The PSAM's transaction number file.
pub const COUNTER_FILE: &str = "psam-counter";
/// The lock file.
pub const LOCK_FILE: &str = "lock";

/// A terminal state directory this process holds.
#[derive(Debug)]
pub struct TerminalState {
    dir: PathBuf,
    _lock: FileLock,
}

impl TerminalState {
    /// Creates `dir` if needed (0700, `private_fs`) and locks it, waiting up to `wait` for another terminal run.
    pub fn open(dir: &Path, purpose: &str, wait: Duration) -> Result<TerminalState, ServiceError> {
        crate::private_fs::create_private_dir_all(dir).map_err(|source| ServiceError::State {
            path: dir.to_owned(),
            source,
        })?;
        let lock = FileLock::create(
            &dir.join(LOCK_FILE),
            "terminal state directory",
            purpose,
            wait,
        )?;
        Ok(TerminalState {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PSAM counter (read now; only this process changes it while the state is held).
    pub fn counter(&self) -> Result<TerminalCounter, ServiceError> {
        TerminalCounter::open(&self.dir.join(COUNTER_FILE)).map_err(|e| ServiceError::State {
            path: self.dir.join(COUNTER_FILE),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// The journal of pending transactions.
    pub fn journal(&self) -> FileJournal {
        FileJournal::new(&self.dir)
    }
}
