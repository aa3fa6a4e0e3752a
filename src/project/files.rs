//! Finding the files of a project: models, seeds, properties files.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Files under `dir` (recursively) whose extension is one of `exts` (any
/// case), sorted; hidden files and folders are skipped, a missing folder is empty.
pub fn files_with_extension(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, exts, &mut out)?;
    out.sort();
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
