//! Files and directories that hold personal data, keys, card images or terminal state: created
//! for their owner only — files 0600, directories 0700 — whatever the process's umask.
//!
//! The mode is given at creation (so the data is never readable by others, not even for an
//! instant) and set again afterwards (so a restrictive or unusual umask cannot leave it
//! different). Directories that already exist are left as they are: they may be the user's own
//! (`~/.local/share`), and their mode is the user's choice. On other platforms than Unix these
//! are plain creations.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the files created here.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories created here.
pub const DIR_MODE: u32 = 0o700;

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` and every missing parent with mode 0700; existing directories are not changed.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(DIR_MODE);
        }
        match b.create(d) {
            Ok(()) => set_mode(d, DIR_MODE)?,
            // Another process made it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn options(create_new: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// Creates a new file with mode 0600 (an existing file is an `AlreadyExists` error).
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let f = options(true).open(path)?;
    set_mode(path, FILE_MODE)?;
    Ok(f)
}

/// Makes sure `path` exists as a 0600 file, creating it empty if missing; an existing file keeps
/// its contents and mode. For files another library opens afterwards (SQLite: its `-wal`,
/// `-shm` and journal files take the database file's mode).
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    match create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A temporary name beside `path`, unique among processes and threads:
/// `.<file name>.<pid>.<n>.tmp`.
pub fn temporary_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` atomically: a uniquely named 0600 temporary file beside it,
/// written and synced, then renamed over `path` (and the directory synced). A reader sees the
/// old contents or the new, never a part; on any failure (a full disk) the temporary file is
/// removed and `path` is untouched.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary_name(path);
    let written = create_private_file(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn modes_are_owner_only_whatever_exists() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.path().join("a/b/c");
        create_private_dir_all(&dir).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&root.path().join(d)), DIR_MODE, "{d}");
        }
        // An existing directory is the user's: left alone.
        assert_eq!(mode(root.path()), 0o755);
        create_private_dir_all(&dir).unwrap();
        let f = dir.join("f");
        write_private_atomic(&f, b"one").unwrap();
        assert_eq!(mode(&f), FILE_MODE);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomic(&f, b"two").unwrap();
        assert_eq!(
            (mode(&f), fs::read(&f).unwrap()),
            (FILE_MODE, b"two".to_vec())
        );
        let g = dir.join("g");
        ensure_private_file(&g).unwrap();
        assert_eq!(mode(&g), FILE_MODE);
        assert!(create_private_file(&g).is_err());
        // Nothing but the two files: no temporary left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let root = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails after the write.
        let target = root.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"").unwrap();
        assert!(write_private_atomic(&target, b"data").is_err());
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["target"]);
    }
}
