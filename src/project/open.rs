//! Which project and which warehouse a command works on, as the command line
//! names them (`--project DIR`, `--warehouse URI`, or neither).
//!
//! Without `--project` the current folder is the project, and a folder
//! without `sluice.toml` is fine (`sluice sql` works anywhere, as `duckdb -c`
//! does). A folder named with `--project` must hold a project: a typo there
//! would otherwise silently query an empty warehouse.

use super::{Project, DBT_PROJECT_FILE, PROJECT_FILE};
use crate::error::{Error, Result};
use std::path::Path;

impl Project {
    /// The project in `dir` (named by the user), or in the current folder.
    pub fn open(dir: Option<&Path>) -> Result<Self> {
        let Some(dir) = dir else {
            let here = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            return Project::load(&here);
        };
        if !dir.join(PROJECT_FILE).exists() && !dir.join(DBT_PROJECT_FILE).exists() {
            return Err(Error::config(
                dir.join(PROJECT_FILE),
                "not found; pass the folder holding sluice.toml to --project, or create one with `sluice init DIR`",
            ));
        }
        Project::load(dir)
    }

    /// The warehouse to use: `override_uri` (`--warehouse`,
    /// `SLUICE_WAREHOUSE`), else the project's. Outside a project (no
    /// `sluice.toml`), `./warehouse` when that folder exists, otherwise an
    /// empty in-memory warehouse: nothing is created on disk.
    pub fn warehouse_location(&self, override_uri: Option<&str>) -> String {
        if override_uri.is_some() || self.has_config || self.root.join("warehouse").is_dir() {
            self.warehouse_uri(override_uri)
        } else {
            "memory:///".to_string()
        }
    }

    /// An error unless the folder holds a project file: `command` (`sluice
    /// load`) needs its declarations.
    pub fn require_config(&self, command: &str) -> Result<()> {
        if self.has_config {
            return Ok(());
        }
        Err(Error::config(
            self.root.join(PROJECT_FILE),
            format!("not found: `{command}` needs a project; run it in the folder holding sluice.toml, pass --project DIR, or create one with `sluice init DIR`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_folder_must_hold_a_project() {
        let dir = tempfile::tempdir().unwrap();
        let e = Project::open(Some(dir.path())).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e
            .to_string()
            .contains("pass the folder holding sluice.toml"));
    }

    #[test]
    fn outside_a_project_the_warehouse_is_in_memory_unless_one_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = Project::load(dir.path()).unwrap();
        assert_eq!(p.warehouse_location(None), "memory:///");
        assert_eq!(p.warehouse_location(Some("s3://b/w")), "s3://b/w");
        assert!(p.require_config("sluice load").is_err());
        std::fs::create_dir(dir.path().join("warehouse")).unwrap();
        assert_eq!(
            p.warehouse_location(None),
            dir.path().join("warehouse").to_string_lossy()
        );
    }
}
