//! The sysadmin's grants: which Unix account may speak for which service, and
//! which event names that service may receive and send.
//!
//! Grants are kept in one JSON file in dispatchd's state directory, written
//! atomically (temporary file, fsync, rename, fsync of the directory) so a
//! crash leaves either the old or the new set, never a torn file. Only
//! dispatchd writes it; `centerctl service …` changes it through the bus.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use center_bus::Grant;
use serde::{Deserialize, Serialize};

/// The grants in force, keyed by service name.
#[derive(Debug)]
pub struct GrantStore {
    path: PathBuf,
    grants: BTreeMap<String, Grant>,
}

/// Why the grant file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("cannot read grants {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("grants file {path} is corrupt ({reason}); fix or remove it, then re-approve services")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write grants {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    version: u32,
    grants: Vec<Grant>,
}

const FILE_VERSION: u32 = 1;

impl GrantStore {
    /// Loads `dir/grants.json`; a missing file is an empty set.
    pub fn open(dir: &Path) -> Result<GrantStore, GrantError> {
        let path = dir.join("grants.json");
        let grants = match fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(GrantError::Read { path, source }),
            Ok(bytes) => {
                let file: GrantFile =
                    serde_json::from_slice(&bytes).map_err(|err| GrantError::Corrupt {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?;
                if file.version != FILE_VERSION {
                    return Err(GrantError::Corrupt {
                        path,
                        reason: format!("unknown version {}", file.version),
                    });
                }
                let mut grants = BTreeMap::new();
                for grant in file.grants {
                    center_bus::wire::check_service_name(&grant.service).map_err(|reason| {
                        GrantError::Corrupt {
                            path: path.clone(),
                            reason,
                        }
                    })?;
                    grants.insert(grant.service.clone(), grant);
                }
                grants
            }
        };
        Ok(GrantStore { path, grants })
    }

    /// The grant of `service`, if the sysadmin approved it.
    pub fn get(&self, service: &str) -> Option<&Grant> {
        self.grants.get(service)
    }

    /// Every grant, ordered by service name.
    pub fn list(&self) -> Vec<Grant> {
        self.grants.values().cloned().collect()
    }

    /// Creates or replaces a grant; on disk before it returns.
    pub fn approve(&mut self, grant: Grant) -> Result<(), GrantError> {
        let mut next = self.grants.clone();
        next.insert(grant.service.clone(), grant);
        self.save(&next)?;
        self.grants = next;
        Ok(())
    }

    /// Removes a grant; returns whether there was one.
    pub fn revoke(&mut self, service: &str) -> Result<bool, GrantError> {
        let mut next = self.grants.clone();
        if next.remove(service).is_none() {
            return Ok(false);
        }
        self.save(&next)?;
        self.grants = next;
        Ok(true)
    }

    fn save(&self, grants: &BTreeMap<String, Grant>) -> Result<(), GrantError> {
        let write_err = |source| GrantError::Write {
            path: self.path.clone(),
            source,
        };
        let file = GrantFile {
            version: FILE_VERSION,
            grants: grants.values().cloned().collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        crate::durable::replace_file(&self.path, &bytes, 0o600).map_err(write_err)?;
        Ok(())
    }
}
