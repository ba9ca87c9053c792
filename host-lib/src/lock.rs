//! Advisory file locks between processes: a card image used by one process at a time, a
//! terminal state directory used by one terminal run at a time.
//!
//! The locks are the operating system's (`flock` on Unix, through [`std::fs::File::try_lock`]):
//! they vanish with the process that held them, so a process killed with `kill -9` never leaves a
//! stale lock behind. A lock that is taken is waited for up to a limit, then refused with a
//! message that says who holds it (the holder writes its process id and purpose into a side
//! file, for people; the lock itself does not depend on it).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a lock is waited for unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{what} {path} is in use by another process{holder}; waited {waited:?}. Wait for that \
         process to finish (or stop it), then run the command again"
    )]
    Busy {
        /// What is locked (`card image`, `terminal state directory`).
        what: &'static str,
        /// The locked file.
        path: PathBuf,
        /// `" (pid N: purpose)"` when the holder said so.
        holder: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock file could not be opened or locked.
    #[error("{what} {path}: cannot lock it: {source}")]
    Io {
        /// What is locked.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    holder_file: Option<PathBuf>,
}

fn holder_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".holder");
    PathBuf::from(p)
}

impl FileLock {
    /// Locks `path` (which must exist, e.g. a card image) exclusively, waiting up to `wait`.
    /// `what` names it in messages; `purpose` is written for whoever meets the lock taken.
    pub fn existing(
        path: &Path,
        what: &'static str,
        purpose: &str,
        wait: Duration,
    ) -> Result<FileLock, LockError> {
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|source| LockError::Io {
                what,
                path: path.to_owned(),
                source,
            })?;
        FileLock::take(file, path, what, purpose, wait, false)
    }

    /// Locks the lock file `path` (created if missing, e.g. `DIR/lock`), waiting up to `wait`.
    pub fn create(
        path: &Path,
        what: &'static str,
        purpose: &str,
        wait: Duration,
    ) -> Result<FileLock, LockError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // Beside terminal state and card images: owner-only, like them (`private_fs`).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::private_fs::FILE_MODE);
        let file = options.open(path).map_err(|source| LockError::Io {
            what,
            path: path.to_owned(),
            source,
        })?;
        FileLock::take(file, path, what, purpose, wait, true)
    }

    fn take(
        file: File,
        path: &Path,
        what: &'static str,
        purpose: &str,
        wait: Duration,
        write_into_lock_file: bool,
    ) -> Result<FileLock, LockError> {
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let waited = start.elapsed();
                    if waited >= wait {
                        let holder_file = if write_into_lock_file {
                            path.to_owned()
                        } else {
                            holder_path(path)
                        };
                        let holder = std::fs::read_to_string(&holder_file)
                            .ok()
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default();
                        return Err(LockError::Busy {
                            what,
                            path: path.to_owned(),
                            holder,
                            waited,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20).min(wait - waited));
                }
                Err(TryLockError::Error(source)) => {
                    return Err(LockError::Io {
                        what,
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
        let note = format!("pid {}: {purpose}\n", std::process::id());
        let holder_file = if write_into_lock_file {
            // Best effort: the note is for people; the lock is the flock.
            let _ = file
                .set_len(0)
                .and_then(|()| (&file).write_all(note.as_bytes()));
            None
        } else {
            let hp = holder_path(path);
            let _ = crate::private_fs::write_private_atomic(&hp, note.as_bytes());
            Some(hp)
        };
        Ok(FileLock {
            file,
            path: path.to_owned(),
            holder_file,
        })
    }

    /// The locked file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Some(h) = &self.holder_file {
            let _ = std::fs::remove_file(h);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_lock_is_refused_with_its_holder_and_free_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = FileLock::create(
            &path,
            "terminal state directory",
            "purse load",
            DEFAULT_WAIT,
        )
        .unwrap();
        let e = FileLock::create(
            &path,
            "terminal state directory",
            "purse purchase",
            Duration::from_millis(50),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("in use by another process"), "{text}");
        assert!(text.contains("purse load"), "{text}");
        drop(first);
        FileLock::create(&path, "terminal state directory", "x", Duration::ZERO).unwrap();
    }

    #[test]
    fn an_existing_file_is_locked_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.img");
        std::fs::write(&path, b"image").unwrap();
        let l = FileLock::existing(&path, "card image", "sim serve", DEFAULT_WAIT).unwrap();
        assert!(holder_path(&path).exists());
        let e = FileLock::existing(&path, "card image", "purse", Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("sim serve"), "{e}");
        drop(l);
        assert!(!holder_path(&path).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"image");
    }
}
