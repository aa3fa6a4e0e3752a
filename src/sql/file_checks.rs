//! The check `read_csv` and `read_json` run before DataFusion reads their files.
//!
//! DataFusion's CSV reader (`csv_core`) accepts a quote that is never closed (the
//! rest of the file becomes one value) and text after a closing quote; its JSON
//! reader reports errors without the file. These functions have no quarantine,
//! so every file is read once first, streamed through the framer of
//! [`crate::formats`], and the first record that cannot be read as written fails
//! the query, naming the file and the line.
//!
//! The price is a second read of each file, at planning time (DataFusion infers
//! the schema then too). Memory stays about one piece (1 MiB) per file plus the
//! longest record or line: files are never held whole.

use crate::formats::csv_check::{BadLine, CsvCheck};
use crate::formats::CsvFormat;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use std::collections::HashMap;

/// What to check the files as.
pub(super) enum Check {
    Csv(CsvFormat),
    Ndjson,
}

/// Records of `read_csv` longer than this are refused (the default of `sluice
/// load`'s `[source.csv] max_record_bytes`).
pub(super) const MAX_RECORD_BYTES: usize = 1 << 20;

/// Checks every file `path` names (a file, folder, glob or URL, listed as
/// DataFusion lists it, with files ending in `extension`). `function` is the
/// table function's name, for messages.
pub(super) async fn check_files(
    state: &SessionState,
    function: &str,
    path: &str,
    extension: &str,
    check: &Check,
) -> Result<()> {
    let url = ListingTableUrl::parse(path)?;
    let store = state.runtime_env().object_store(url.object_store())?;
    let mut files: Vec<ObjectMeta> = url
        .list_all_files(state, store.as_ref(), extension)
        .await?
        .try_collect()
        .await?;
    // In path order, so that the error names the same file every time.
    files.sort_by(|a, b| a.location.cmp(&b.location));
    for meta in files {
        let shown = shown_file(&url, &meta);
        let refuse = |bad: BadLine| refusal(function, path, &shown, bad);
        match check {
            Check::Csv(format) => check_csv(store.as_ref(), &meta, format, refuse, &shown).await?,
            Check::Ndjson => check_ndjson(store.as_ref(), &meta, refuse, &shown).await?,
        }
    }
    Ok(())
}

async fn check_csv(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    format: &CsvFormat,
    refuse: impl Fn(BadLine) -> DataFusionError,
    shown: &str,
) -> Result<()> {
    let mut check = CsvCheck::new(format);
    let mut stream = store.get(&meta.location).await?.into_stream();
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|e| storage(shown, e))?;
        check.push(&bytes).map_err(&refuse)?;
    }
    check.finish().map_err(&refuse)?;
    Ok(())
}

async fn check_ndjson(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    refuse: impl Fn(BadLine) -> DataFusionError,
    shown: &str,
) -> Result<()> {
    // No column is declared: any value is allowed under any key.
    let scalars = HashMap::new();
    let mut stream = store.get(&meta.location).await?.into_stream();
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    let mut eof = false;
    while !eof {
        match stream.next().await {
            Some(bytes) => carry.extend_from_slice(&bytes.map_err(|e| storage(shown, e))?),
            None => {
                eof = true;
                if !carry.is_empty() && !carry.ends_with(b"\n") {
                    carry.push(b'\n');
                }
            }
        }
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &carry[start..]) {
            line_no += 1;
            let mut line = &carry[start..start + pos];
            start += pos + 1;
            if line_no == 1 {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            // Blank lines are not records (DataFusion skips them too).
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(reason) = crate::formats::ndjson::check_line(line, &scalars) {
                return Err(refuse(BadLine {
                    line: line_no,
                    // serde_json counts lines within the line: only its column helps.
                    reason: reason.replace(" at line 1 column ", " at column "),
                    raw: String::from_utf8_lossy(line).into_owned(),
                }));
            }
        }
        carry.drain(..start);
    }
    Ok(())
}

/// The file as the user knows it: a local path, or the URL of an object.
fn shown_file(url: &ListingTableUrl, meta: &ObjectMeta) -> String {
    let store = url.object_store();
    if store.as_str().starts_with("file:") {
        format!("/{}", meta.location)
    } else {
        format!("{}{}", store.as_str(), meta.location)
    }
}

fn storage(file: &str, e: object_store::Error) -> DataFusionError {
    DataFusionError::External(Box::new(crate::error::Error::storage(file, e)))
}

/// The error for the first bad record of `file`, read by `function(path)`.
fn refusal(function: &str, path: &str, file: &str, bad: BadLine) -> DataFusionError {
    // Name the file unless the argument already does.
    let trimmed = path.trim_start_matches("./");
    let which = if file.ends_with(trimmed) {
        String::new()
    } else {
        format!("{file}, ")
    };
    let mut raw = bad.raw;
    if raw.chars().count() > 80 {
        raw = raw.chars().take(80).collect::<String>() + "...";
    }
    DataFusionError::Execution(format!(
        "{function}('{path}'): {which}line {}: {}: `{raw}`; fix the file, or load it with `sluice load`, which quarantines bad records",
        bad.line, bad.reason
    ))
}
