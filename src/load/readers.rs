//! Per-format readers: each turns one file into typed batches plus rejected rows,
//! on a blocking thread, sending chunks through a bounded channel (bounded memory).

use super::convert::{type_strings, ColumnPlan};
use super::csv::{csv_format, tokenize_fast_piece, tokenize_piece, CsvTokenizer};
use super::files::SourceFile;
use super::quarantine::Rejected;
use crate::error::{Error, Result};
use crate::formats::framing::{frame_all, Piece, PieceCutter};
use crate::project::{CsvOptions, NdjsonOptions, SourceFormat};
use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows per batch handed to the writer.
pub const BATCH_ROWS: usize = 65_536;
/// Bytes read to plan a file's schema.
const PROBE_BYTES: u64 = 1 << 20;

/// A piece of one file.
pub struct Chunk {
    /// Rows that fit, in the file's plan schema.
    pub batch: Option<RecordBatch>,
    pub rejected: Vec<Rejected>,
    /// Input bytes consumed since the previous chunk.
    pub bytes: u64,
}

/// A file's columns as the load will read them.
#[derive(Debug, Clone)]
pub struct FilePlan {
    pub columns: Vec<ColumnPlan>,
    pub schema: SchemaRef,
}

impl FilePlan {
    /// Reads columns the table already has as the table's type (the caller has
    /// checked that the file's type fits).
    pub fn adopt_table_types(&mut self, table: &Schema) {
        for c in &mut self.columns {
            if let Ok(f) = table.field_with_name(&c.name) {
                c.data_type = f.data_type().clone();
            }
        }
        *self = FilePlan::new(std::mem::take(&mut self.columns));
    }

    pub(crate) fn new(columns: Vec<ColumnPlan>) -> Self {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        FilePlan { columns, schema }
    }
}

/// Decides each column's type: declared, else inferred from the file.
pub struct TypeHints<'a> {
    pub declared: &'a [crate::project::ColumnDecl],
}

impl TypeHints<'_> {
    fn is_declared(&self, name: &str) -> bool {
        self.declared.iter().any(|d| d.name == name)
    }

    fn plan(
        &self,
        name: &str,
        inferred: impl FnOnce() -> arrow::datatypes::DataType,
    ) -> ColumnPlan {
        if let Some(d) = self.declared.iter().find(|d| d.name == name) {
            if let Some(dt) = &d.data_type {
                return ColumnPlan {
                    name: name.to_string(),
                    data_type: dt.clone(),
                    not_null: d.not_null,
                };
            }
        }
        let data_type = inferred();
        ColumnPlan {
            name: name.to_string(),
            data_type,
            not_null: false,
        }
    }
}

/// Why the names of a CSV header cannot be column names, if they cannot.
fn header_problem(names: &[String]) -> Option<String> {
    for (i, name) in names.iter().enumerate() {
        if name.len() > MAX_COLUMN_NAME_BYTES {
            return Some(format!(
                "column {} of the header is {} bytes long (at most {MAX_COLUMN_NAME_BYTES} bytes); is line 1 really a header? set header = false in [source.csv] or fix the file",
                i + 1,
                name.len()
            ));
        }
        if name.contains('\0') {
            return Some(format!(
                "column {} of the header contains a NUL byte; is the file UTF-16? convert it to UTF-8",
                i + 1
            ));
        }
    }
    None
}

async fn read_prefix(file: &SourceFile, max: u64) -> Result<bytes::Bytes> {
    let end = file.size.min(max);
    if end == 0 {
        return Ok(bytes::Bytes::new());
    }
    file.store
        .get_range(&file.path, 0..end)
        .await
        .map_err(|e| Error::storage(&file.display, e))
}

/// Header names longer than this are refused: such a "header" is data.
const MAX_COLUMN_NAME_BYTES: usize = 1024;

/// The keys of the JSON objects on the lines of `text` (the first 10,000),
/// in the order they first appear.
fn first_seen_keys(text: &[u8]) -> Vec<String> {
    /// An object's keys in document order (values skipped).
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.split(|b| *b == b'\n').take(10_000) {
        if let Ok(Keys(keys)) = serde_json::from_slice::<Keys>(line) {
            for k in keys {
                if seen.insert(k.clone()) {
                    names.push(k);
                }
            }
        }
    }
    names
}

/// Plans a file's schema from its first bytes (CSV, NDJSON) or footer (Parquet).
/// `None` for a file that holds no record (empty, or only blank lines): the load
/// skips it.
pub async fn plan_file(
    source: &str,
    format: SourceFormat,
    csv: &CsvOptions,
    file: &SourceFile,
    hints: &TypeHints<'_>,
) -> Result<Option<FilePlan>> {
    if file.size == 0 {
        return Ok(None);
    }
    let fail = |message: String| Error::bad_load_file(source, &file.display, message);
    let plan = match format {
        SourceFormat::Csv => {
            let probe = PROBE_BYTES.max(csv.max_record_bytes.saturating_add(2) as u64);
            let prefix = read_prefix(file, probe).await?;
            // Cut at the last newline so a truncated record does not skew inference.
            let cut = if (prefix.len() as u64) < file.size {
                match prefix.iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None => {
                        return Err(fail(format!(
                            "the first line (the header) is longer than {} bytes; is this a CSV file with this delimiter?",
                            prefix.len()
                        )))
                    }
                }
            } else {
                prefix.len()
            };
            // Without a header, the declared columns; without those, one
            // column per field of the first record.
            let known = (!hints.declared.is_empty()).then_some(hints.declared.len());
            let mut t = CsvTokenizer::new(csv, usize::MAX, known);
            let mut out = Vec::new();
            let framed = frame_all(&csv_format(csv), &prefix[..cut]);
            tokenize_piece(&mut t, &framed.bytes, &framed.bad, &mut out);
            if let Some(e) = t.header_error() {
                return Err(fail(format!("{e}; fix the header line")));
            }
            let header = match t.header() {
                Some(h) => h.to_vec(),
                None if cut == prefix.len() && (prefix.len() as u64) == file.size => {
                    return Ok(None)
                }
                None => {
                    return Err(fail(format!(
                        "no header in its first {} bytes, only blank lines",
                        prefix.len()
                    )))
                }
            };
            if csv.header {
                if let Some(problem) = header_problem(&header) {
                    return Err(fail(problem));
                }
            }
            let header = if !csv.header && !hints.declared.is_empty() {
                hints.declared.iter().map(|d| d.name.clone()).collect()
            } else {
                header
            };
            let columns = header
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    hints.plan(name, || {
                        let sample: Vec<StringArray> = out
                            .iter()
                            .filter_map(|b| b.columns.get(i).cloned())
                            .collect();
                        let refs: Vec<&dyn Array> =
                            sample.iter().map(|a| a as &dyn Array).collect();
                        match arrow::compute::concat(&refs) {
                            Ok(a) => match a.as_any().downcast_ref::<StringArray>() {
                                Some(s) => super::convert::infer_type(s),
                                None => arrow::datatypes::DataType::Utf8,
                            },
                            Err(_) => arrow::datatypes::DataType::Utf8,
                        }
                    })
                })
                .collect();
            FilePlan::new(columns)
        }
        SourceFormat::Ndjson => {
            let prefix = read_prefix(file, PROBE_BYTES).await?;
            let prefix = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&prefix);
            let lines = prefix
                .split(|b| *b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
                // Lines that are not objects are rejected rows, not schema.
                .filter_map(|v| match v {
                    // Declared columns have their type: their values do not vote.
                    serde_json::Value::Object(mut o) => {
                        for d in hints.declared.iter().filter(|d| d.data_type.is_some()) {
                            o.remove(&d.name);
                        }
                        Some(serde_json::Value::Object(o))
                    }
                    _ => None,
                })
                .take(10_000)
                .map(Ok::<_, arrow::error::ArrowError>);
            let inferred = arrow::json::reader::infer_json_schema_from_iterator(lines)
                .map_err(|e| Error::bad_load_file(source, &file.display, e))?;
            // Columns in the order keys first appear in the file (inference
            // sorts them), then declared columns the sample lacks.
            let mut names = first_seen_keys(prefix);
            names.retain(|n| inferred.field_with_name(n).is_ok() || hints.is_declared(n));
            let mut seen: std::collections::HashSet<String> = names.iter().cloned().collect();
            let rest = inferred.fields().iter().map(|f| f.name().clone());
            for name in rest.chain(hints.declared.iter().map(|d| d.name.clone())) {
                if seen.insert(name.clone()) {
                    names.push(name);
                }
            }
            let columns = names
                .iter()
                .map(|name| {
                    hints.plan(name, || {
                        inferred
                            .field_with_name(name)
                            .map(|f| f.data_type().clone())
                            .unwrap_or(arrow::datatypes::DataType::Utf8)
                    })
                })
                .collect();
            FilePlan::new(columns)
        }
        SourceFormat::Parquet => {
            let reader = parquet_reader(file);
            let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| Error::BadInputFile {
                    reader: format!("source `{source}`"),
                    file: file.display.clone(),
                    message: format!("`{}` is not a readable Parquet file: {e}", file.display),
                })?;
            let schema = builder.schema().clone();
            let columns = schema
                .fields()
                .iter()
                .map(|f| hints.plan(f.name(), || f.data_type().clone()))
                .collect();
            FilePlan::new(columns)
        }
        SourceFormat::Bytes => {
            return Err(fail(
                "format = \"bytes\" is for kafka sources; files are csv, ndjson or parquet"
                    .to_string(),
            ))
        }
    };
    if format == SourceFormat::Ndjson && plan.columns.is_empty() {
        // Only blank lines (or no object) in its first bytes.
        let prefix_is_file = file.size <= PROBE_BYTES;
        if prefix_is_file && hints.declared.is_empty() {
            return Ok(None);
        }
    }
    for d in hints.declared.iter().filter(|d| d.not_null) {
        if !plan.columns.iter().any(|c| c.name == d.name) {
            return Err(Error::source(
                source,
                format!(
                    "`{}` has no column `{}`, which is declared not_null; add the column to the file or drop not_null",
                    file.display, d.name
                ),
            ));
        }
    }
    Ok(Some(plan))
}

/// A problem of the file being read, found on the reader's thread:
/// [`spawn_reader_with_pieces`] names the source and the file.
fn bad_file(message: impl std::fmt::Display) -> Error {
    Error::BadInputFile {
        reader: String::new(),
        file: String::new(),
        message: message.to_string(),
    }
}

/// Reads `file` on a blocking thread; chunks arrive on the returned channel.
pub fn spawn_reader(
    source: String,
    format: SourceFormat,
    options: (CsvOptions, NdjsonOptions),
    file: SourceFile,
    plan: FilePlan,
) -> (mpsc::Receiver<Result<Chunk>>, tokio::task::JoinHandle<()>) {
    let sizes = ReadSizes {
        csv_piece_bytes: CSV_PIECE_BYTES,
        read_bytes: READ_BYTES,
    };
    spawn_reader_with_pieces(source, format, options, file, plan, sizes)
}

/// How a file is read: CSV pieces of about `csv_piece_bytes` tokenized in
/// parallel, and requests of `read_bytes` (the fuzz targets make both tiny).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSizes {
    pub csv_piece_bytes: usize,
    pub read_bytes: u64,
}

/// [`spawn_reader`] cutting CSV files into pieces of about `csv_piece_bytes`
/// (the fuzz targets cut tiny files into many pieces).
pub(crate) fn spawn_reader_with_pieces(
    source: String,
    format: SourceFormat,
    (csv, ndjson): (CsvOptions, NdjsonOptions),
    file: SourceFile,
    plan: FilePlan,
    sizes: ReadSizes,
) -> (mpsc::Receiver<Result<Chunk>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(2);
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let result = match format {
            SourceFormat::Csv => read_csv(&handle, &csv, &file, &plan, &tx, sizes),
            SourceFormat::Ndjson => super::ndjson::read_ndjson(
                &handle,
                &file,
                &plan,
                ndjson.max_line_bytes,
                sizes.read_bytes,
                &tx,
            ),
            SourceFormat::Parquet => read_parquet(&handle, &file, &plan, &tx),
            SourceFormat::Bytes => Err(Error::bad_load_file(
                "",
                &file.display,
                "format = \"bytes\" is for kafka sources".to_string(),
            )),
        };
        if let Err(e) = result {
            let e = match e {
                Error::BadInputFile { message, .. } => {
                    Error::bad_load_file(&source, &file.display, message)
                }
                other => other,
            };
            let _ = tx.blocking_send(Err(e));
        }
    });
    (rx, task)
}

pub(super) type Tx = mpsc::Sender<Result<Chunk>>;

/// Sends a chunk; `false` when the consumer has gone away (load aborted).
pub(super) fn send(tx: &Tx, chunk: Chunk) -> bool {
    tx.blocking_send(Ok(chunk)).is_ok()
}

/// Bytes asked for per request when a file is read.
const READ_BYTES: u64 = 8 << 20;
/// Requests of a file in flight ahead of the reader.
const READ_AHEAD: usize = 3;

/// The bytes of `file`, in order, read ahead of the caller.
///
/// One GET of the whole file streams it in the store's own chunks: 8 KiB for
/// local files, each read on a blocking thread of its own, so an 840 MB CSV took
/// 100,000 hand-offs between threads on the reader's critical path. It is read
/// instead in ranges of [`READ_BYTES`], [`READ_AHEAD`] at a time, each in a task
/// of its own. All ranges come from the version of the file the first one read
/// (`if_match` on its ETag): a file rewritten mid-read is an error that says
/// so, never a mix of two versions.
pub(super) fn byte_stream(
    handle: &tokio::runtime::Handle,
    file: &SourceFile,
    read_bytes: u64,
) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>> {
    use object_store::{GetOptions, GetRange};
    let read_bytes = read_bytes.max(1);
    let storage = |e| Error::storage(&file.display, e);
    if file.size == 0 {
        // Nothing to range over (a range must start inside the file).
        let get = handle
            .block_on(file.store.get(&file.path))
            .map_err(storage)?;
        return Ok(get.into_stream());
    }
    let first = handle
        .block_on(file.store.get_opts(
            &file.path,
            GetOptions {
                range: Some(GetRange::Bounded(0..read_bytes)),
                ..Default::default()
            },
        ))
        .map_err(storage)?;
    let size = first.meta.size;
    let etag = first.meta.e_tag.clone();
    let first = handle.block_on(first.bytes()).map_err(storage)?;
    let store = file.store.clone();
    let path = file.path.clone();
    let display = file.display.clone();
    let spawner = handle.clone();
    let rest = (read_bytes..size)
        .step_by(usize::try_from(read_bytes).unwrap_or(usize::MAX))
        .map(move |start| {
            let (store, path, display) = (store.clone(), path.clone(), display.clone());
            let options = GetOptions {
                range: Some(GetRange::Bounded(
                    start..size.min(start.saturating_add(read_bytes)),
                )),
                if_match: etag.clone(),
                ..Default::default()
            };
            let read = spawner.spawn(async move {
                match store.get_opts(&path, options).await {
                    Ok(got) => got.bytes().await,
                    Err(object_store::Error::Precondition { .. }) => Err(changed(&display)),
                    Err(e) => Err(e),
                }
            });
            async move {
                read.await.unwrap_or_else(|e| {
                    Err(object_store::Error::Generic {
                        store: "sluice",
                        source: format!("reading a range of the file: {e}").into(),
                    })
                })
            }
        });
    Ok(futures::stream::once(futures::future::ready(Ok(first)))
        .chain(futures::stream::iter(rest).buffered(READ_AHEAD))
        .boxed())
}

/// The error for a file rewritten while it was read.
fn changed(display: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "sluice",
        source: format!(
            "`{display}` changed while it was read (its ETag is not the one it had when \
             reading started); nothing of it was loaded: load again once it is complete"
        )
        .into(),
    }
}

/// CSV pieces of about this many bytes are tokenized and typed in parallel.
const CSV_PIECE_BYTES: usize = 8 << 20;

fn read_csv(
    handle: &tokio::runtime::Handle,
    csv: &CsvOptions,
    file: &SourceFile,
    plan: &FilePlan,
    tx: &Tx,
    sizes: ReadSizes,
) -> Result<()> {
    let piece_bytes = sizes.csv_piece_bytes;
    let mut stream = byte_stream(handle, file, sizes.read_bytes)?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut cutter = PieceCutter::new(&csv_format(csv), piece_bytes);
    let mut pieces = Vec::new();
    // Pieces being read, in file order: at most `workers + 1` in flight.
    let mut running = std::collections::VecDeque::new();
    let mut line = 1u64;
    let mut first = true;
    let shared = Arc::new((csv.clone(), plan.clone()));
    loop {
        let next = handle.block_on(stream.next());
        let eof = next.is_none();
        match next {
            Some(bytes) => {
                let bytes = bytes.map_err(|e| Error::storage(&file.display, e))?;
                cutter.push(&bytes, &mut pieces);
            }
            None => pieces.push(cutter.finish()),
        }
        for piece in pieces.drain(..) {
            let start = line;
            line += piece.count_lines();
            let header = std::mem::take(&mut first);
            let shared = shared.clone();
            running.push_back(handle.spawn_blocking(move || {
                read_csv_piece(&shared.0, &shared.1, piece, start, header)
            }));
            while running.len() > workers {
                if !send_piece(handle, &mut running, tx)? {
                    return Ok(());
                }
            }
        }
        if eof {
            break;
        }
    }
    while !running.is_empty() {
        if !send_piece(handle, &mut running, tx)? {
            return Ok(());
        }
    }
    Ok(())
}

type PieceTask = tokio::task::JoinHandle<Result<Vec<Chunk>>>;

/// Waits for the oldest piece and sends its chunks; `false` when the consumer
/// has gone away.
fn send_piece(
    handle: &tokio::runtime::Handle,
    running: &mut std::collections::VecDeque<PieceTask>,
    tx: &Tx,
) -> Result<bool> {
    let Some(task) = running.pop_front() else {
        return Ok(true);
    };
    let chunks = handle
        .block_on(task)
        .map_err(|e| Error::Internal(format!("CSV reader task: {e}")))??;
    for chunk in chunks {
        if !send(tx, chunk) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Tokenizes and types one piece of a CSV file (whole records, starting on
/// `line`; the first piece holds the header).
fn read_csv_piece(
    csv: &CsvOptions,
    plan: &FilePlan,
    piece: Piece,
    line: u64,
    header: bool,
) -> Result<Vec<Chunk>> {
    let input_bytes = piece.input_bytes;
    let bytes = bytes::Bytes::from(piece.bytes);
    let fast = if header || !piece.bad.is_empty() {
        None
    } else {
        tokenize_fast_piece(csv, &bytes, plan.columns.len(), line, BATCH_ROWS)
    };
    let done = match fast {
        Some(done) => done,
        None => {
            let mut t = if header {
                CsvTokenizer::new(csv, BATCH_ROWS, Some(plan.columns.len()))
            } else {
                CsvTokenizer::for_piece(csv, BATCH_ROWS, plan.columns.len(), line)
            };
            let mut done = Vec::new();
            tokenize_piece(&mut t, &bytes, &piece.bad, &mut done);
            if let Some(e) = t.header_error() {
                return Err(bad_file(format!("{e}; fix the header line")));
            }
            done
        }
    };
    let ts_format = csv.timestamp_format.as_deref();
    let mut bytes = input_bytes;
    let mut chunks = Vec::with_capacity(done.len().max(1));
    for raw in done {
        let mut rejected = raw.rejected.clone();
        let (batch, more) = type_strings(
            &raw.columns,
            &plan.columns,
            &plan.schema,
            ts_format,
            |i| raw.raw_text(i),
            &raw.lines,
        )?;
        rejected.extend(more);
        rejected.sort_by_key(|r| r.line);
        chunks.push(Chunk {
            batch: Some(batch),
            rejected,
            bytes: std::mem::take(&mut bytes),
        });
    }
    if bytes > 0 {
        chunks.push(Chunk {
            batch: None,
            rejected: Vec::new(),
            bytes,
        });
    }
    Ok(chunks)
}

/// Moves rows with NULL in a not_null column to the rejected list.
pub(super) fn reject_nulls(
    batch: RecordBatch,
    plan: &FilePlan,
    raw: impl Fn(usize) -> (u64, String),
) -> Result<(RecordBatch, Vec<Rejected>)> {
    let mut reasons: Vec<Option<String>> = Vec::new();
    for (i, c) in plan.columns.iter().enumerate() {
        if !c.not_null || batch.column(i).null_count() == 0 {
            continue;
        }
        if reasons.is_empty() {
            reasons = vec![None; batch.num_rows()];
        }
        let col = batch.column(i);
        for (r, reason) in reasons.iter_mut().enumerate() {
            if reason.is_none() && col.is_null(r) {
                *reason = Some(format!(
                    "column `{}` is missing or null but declared not_null",
                    c.name
                ));
            }
        }
    }
    if reasons.is_empty() {
        return Ok((batch, Vec::new()));
    }
    let keep: BooleanArray = reasons.iter().map(|r| Some(r.is_none())).collect();
    let rejected = reasons
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.map(|reason| {
                let (line, raw) = raw(i);
                Rejected { line, raw, reason }
            })
        })
        .collect();
    Ok((filter_record_batch(&batch, &keep)?, rejected))
}

fn read_parquet(
    handle: &tokio::runtime::Handle,
    file: &SourceFile,
    plan: &FilePlan,
    tx: &Tx,
) -> Result<()> {
    let reader = parquet_reader(file);
    let builder = handle
        .block_on(parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader))
        .map_err(|e| bad_file(format!("not a readable Parquet file: {e}")))?;
    let rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let mut stream = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(bad_file)?;
    let mut row = 0u64;
    while let Some(batch) = handle.block_on(stream.next()) {
        let batch = batch.map_err(bad_file)?;
        let n = batch.num_rows() as u64;
        let typed = super::convert::conform(&batch, &plan.schema).map_err(|e| {
            bad_file(format!(
                "cannot read it with the declared column types: {}",
                match e {
                    Error::Schema { message, .. } => message,
                    other => other.to_string(),
                }
            ))
        })?;
        let first = row;
        let (typed, rejected) = reject_nulls(typed, plan, |i| {
            let line = first + i as u64 + 1;
            let raw = row_as_json(&batch, i).unwrap_or_default();
            (line, raw)
        })?;
        row += n;
        let chunk = Chunk {
            batch: Some(typed),
            rejected,
            bytes: file.size * n / rows,
        };
        if !send(tx, chunk) {
            return Ok(());
        }
    }
    Ok(())
}

fn row_as_json(batch: &RecordBatch, i: usize) -> Option<String> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(&batch.slice(i, 1)).ok()?;
    w.finish().ok()?;
    String::from_utf8(w.into_inner())
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Parquet reader over the object store. `ParquetObjectReader` is deprecated in
/// parquet 59 in favour of a hand-written `AsyncFileReader`; it is still the
/// shortest correct reader for whole-file scans.
#[allow(deprecated)]
fn parquet_reader(file: &SourceFile) -> parquet::arrow::async_reader::ParquetObjectReader {
    parquet::arrow::async_reader::ParquetObjectReader::new(file.store.clone(), file.path.clone())
        .with_file_size(file.size)
}

#[cfg(test)]
mod tests {
    use crate::fuzzing::read_file;
    use crate::project::{CsvOptions, SourceFormat};

    /// `header = false` without declared columns: one column per field of the
    /// first record (found by the csv fuzz target: no column at all, and the
    /// load failed with "must either specify a row count or at least one
    /// column").
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_csv_file_without_header_or_declared_columns_loads() {
        let csv = CsvOptions {
            header: false,
            ..CsvOptions::default()
        };
        let out = read_file(SourceFormat::Csv, &csv, &[], b"1,x\n3,\n5\n", usize::MAX, 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.columns, vec!["column_1 Int64", "column_2 Utf8"]);
        assert_eq!(out.rows, vec![vec!["1", "x"], vec!["3", "NULL"]]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 3);
        assert_eq!(out.rejected[0].2, "expected 2 fields, found 1");
    }
}
