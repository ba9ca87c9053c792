//! Which key set a command uses: `--keys FILE` (or `CITIZENCARD_KEYS`), else the public
//! development set at `test-vectors/keys/dev.toml` when run from the repository, else the same set
//! built into the binary.

use std::path::Path;

use anyhow::anyhow;
use host_lib::keys::{KeySet, KeyStore};

use crate::exit::Failure;

/// Where the development key set lies in the repository.
pub const DEFAULT_KEYS: &str = "test-vectors/keys/dev.toml";

/// The public development key set, built in.
pub const DEVELOPMENT_KEYS: &str = include_str!("../../test-vectors/keys/dev.toml");

/// Loads the key set `path` names (see the module docs) and says which one it is. A real key set
/// that others can read gets a warning.
pub fn load(path: Option<&Path>) -> Result<(KeySet, String), Failure> {
    let default = Path::new(DEFAULT_KEYS);
    let (set, label) = match path.or_else(|| default.exists().then_some(default)) {
        Some(p) => (KeySet::load(p), p.display().to_string()),
        None => (
            KeySet::from_toml(DEVELOPMENT_KEYS),
            "the built-in development key set".to_string(),
        ),
    };
    let set = set.map_err(|e| Failure::usage(anyhow!("key set {label}: {e}")))?;
    if let (Some(p), false) = (path, set.is_development()) {
        if let Some(warning) = host_lib::keys::permissions_warning(p) {
            eprintln!("citizencard: warning: {warning}");
        }
    }
    Ok((set, label))
}
