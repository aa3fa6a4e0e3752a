//! Finding model files: every `.sql` file under the models folders.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One `.sql` file found under a models (or tests) folder.
#[derive(Debug, Clone)]
pub struct SqlFile {
    /// File stem: the model's name.
    pub name: String,
    /// Folders between the models folder and the file (`["features"]`).
    pub rel_dirs: Vec<String>,
    /// Path below the models folder, `/`-separated (`features/user_features.sql`).
    pub rel_path: String,
    /// Path shown to users (relative to the project root when possible).
    pub display: String,
    pub text: String,
}

/// Every `.sql` file under `dirs` (sorted by path; hidden files and folders skipped).
pub fn sql_files(root: &Path, dirs: &[PathBuf]) -> Result<Vec<SqlFile>> {
    let mut out = Vec::new();
    for dir in dirs {
        for file in crate::project::files_with_extension(dir, &["sql"])? {
            let rel = file.strip_prefix(dir).unwrap_or(&file);
            let mut rel_dirs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            rel_dirs.pop();
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel_path = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let display = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            out.push(SqlFile {
                name,
                rel_dirs,
                rel_path,
                display,
                text,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("models");
        std::fs::create_dir_all(m.join("features/daily")).unwrap();
        std::fs::create_dir_all(m.join(".hidden")).unwrap();
        std::fs::write(m.join("b.sql"), "select 1").unwrap();
        std::fs::write(m.join("features/daily/a.sql"), "select 2").unwrap();
        std::fs::write(m.join(".hidden/x.sql"), "select 3").unwrap();
        std::fs::write(m.join("notes.md"), "x").unwrap();
        let files = sql_files(dir.path(), &[m]).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].rel_path, "b.sql");
        assert_eq!(files[1].rel_dirs, vec!["features", "daily"]);
        assert_eq!(files[1].display, "models/features/daily/a.sql");
        assert_eq!(files[1].name, "a");
    }
}
