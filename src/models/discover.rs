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

/// Files under `dir` (recursively) whose extension is one of `exts` (any
/// case), sorted; hidden files and folders are skipped, a missing folder is empty.
pub(crate) fn files_with_extension(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, exts, &mut out)?;
    out.sort();
    Ok(out)
}

/// Every `.sql` file under `dirs` (sorted by path; hidden files and folders skipped).
pub fn sql_files(root: &Path, dirs: &[PathBuf]) -> Result<Vec<SqlFile>> {
    let mut out = Vec::new();
    for dir in dirs {
        for file in files_with_extension(dir, &["sql"])? {
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

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
            walk(&path, exts, out)?;
        } else if path.extension().is_some_and(|x| {
            exts.iter()
                .any(|e| x.to_string_lossy().eq_ignore_ascii_case(e))
        }) {
            out.push(path);
        }
    }
    Ok(())
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
