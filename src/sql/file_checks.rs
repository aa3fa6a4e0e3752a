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
use crate::formats::lines::{Line, LineSplitter};
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

/// Lines of `read_json` longer than this are refused (the default of `sluice
/// load`'s `[source.ndjson] max_line_bytes`).
pub(super) const MAX_LINE_BYTES: usize = crate::project::source::DEFAULT_MAX_LINE_BYTES;

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
    let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
    let check = |line: Line<'_>| -> std::result::Result<(), BadLine> {
        match line {
            // Blank lines are not records (DataFusion skips them too).
            Line::Text { text, .. } if text.iter().all(u8::is_ascii_whitespace) => Ok(()),
            Line::TooLong { blank: true, .. } => Ok(()),
            Line::Text { number, text } => {
                crate::formats::ndjson::check_line(text, &scalars).map_err(|reason| BadLine {
                    line: number,
                    // serde_json counts lines within the line: only its column helps.
                    reason: reason
                        .to_string()
                        .replace(" at line 1 column ", " at column "),
                    raw: String::from_utf8_lossy(text).into_owned(),
                })
            }
            Line::TooLong { number, prefix, .. } => Err(BadLine {
                line: number,
                reason: format!(
                    "the line is longer than {MAX_LINE_BYTES} bytes (read_json's limit; \
                     `sluice load` takes [source.ndjson] max_line_bytes)"
                ),
                // The message shows the start of it only.
                raw: String::from_utf8_lossy(&prefix[..prefix.len().min(256)]).into_owned(),
            }),
        }
    };
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|e| storage(shown, e))?;
        splitter.push(&bytes, check).map_err(&refuse)?;
    }
    splitter.finish(check).map_err(&refuse)?;
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
    // A URL table (`FROM 'x.csv'`) or a table function (`read_csv('x.csv')`).
    let call = match function {
        "FROM" => format!("FROM '{path}'"),
        _ => format!("{function}('{path}')"),
    };
    DataFusionError::External(Box::new(crate::error::Error::BadInputFile {
        reader: call,
        file: file.to_string(),
        message: format!(
            "{which}line {}: {}: `{raw}`; fix the file, or load it with `sluice load`, which quarantines bad records",
            bad.line, bad.reason
        ),
    }))
}
