//! Which project and which warehouse a command works on, as the command line
//! names them (`--project DIR`, `--warehouse URI`, or neither).
//!
//! Without `--project` the project is the nearest folder, from the current
//! one upwards, that holds `sluice.toml` or `dbt_project.yml` (as git and dbt
//! find theirs), so every command works from any subfolder. Outside any
//! project, the current folder stands in for one without a project file:
//! `sluice sql` works anywhere (as `duckdb -c` does), and the commands that
//! need declarations say so ([`Project::require_config`]). A folder named
//! with `--project` must hold a project: a typo there would otherwise
//! silently query an empty warehouse.
//!
//! The project's root is made absolute once, here, so every path derived
//! from it (sources, seeds, models, `target/`) resolves the same way whatever
//! the current folder and however `--project` was spelled.

use super::{Project, DBT_PROJECT_FILE, PROJECT_FILE};
use crate::error::{Error, Result};
use std::path::Path;

impl Project {
    /// The project in `dir` (named by the user), or in the current folder.
    pub fn open(dir: Option<&Path>) -> Result<Self> {
        let Some(dir) = dir else {
            let here = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            let root = find_root(&here).unwrap_or(&here);
            return Project::load(root);
        };
        if !holds_project(dir) {
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
            format!("not found here or in any parent folder: `{command}` needs a project; run it inside the folder holding sluice.toml (or dbt_project.yml), pass --project DIR, or create one with `sluice init DIR`"),
        ))
    }
}

/// Whether `dir` holds a project file.
fn holds_project(dir: &Path) -> bool {
    dir.join(PROJECT_FILE).is_file() || dir.join(DBT_PROJECT_FILE).is_file()
}

/// The nearest of `start` and its ancestors that holds a project file.
fn find_root(start: &Path) -> Option<&Path> {
    start.ancestors().find(|d| holds_project(d))
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
    fn the_project_is_found_upwards_from_a_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        let deep = root.join("sql").join("staging");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join(PROJECT_FILE), "[project]\nname = \"p\"\n").unwrap();
        assert_eq!(find_root(&deep), Some(root.as_path()));
        assert_eq!(find_root(&root), Some(root.as_path()));
        // A sibling folder is outside the project.
        assert_eq!(find_root(dir.path()), None);
    }

    #[test]
    fn a_relative_root_is_made_absolute() {
        let p = Project::load(Path::new("tests/fixtures/dbt_shop")).unwrap();
        assert!(p.root.is_absolute(), "{}", p.root.display());
        assert!(p.root.ends_with("tests/fixtures/dbt_shop"));
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
