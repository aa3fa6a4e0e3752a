//! NDJSON: one JSON object per line. Every line that is not blank is a record,
//! loaded or rejected with its line number and a reason; no line fails the file.
//!
//! Each line is first checked with `serde_json` (an object, no duplicate key, no
//! object or array where a scalar column is declared), then the good lines are
//! decoded by arrow's JSON decoder with scalar columns read as text, and typed by
//! [`super::convert`] exactly as CSV text is: `8.5` is not a BIGINT, `300` not a
//! TINYINT and `1e400` not a DOUBLE, whichever format they come from.

use super::convert::{type_columns, Column, ColumnPlan};
use super::quarantine::Rejected;
use super::readers::{byte_stream, send, Chunk, FilePlan, Tx, BATCH_ROWS};
use crate::error::{Error, Result};
use crate::formats::lines::{Line, LineSplitter};
use crate::formats::ndjson::check_line;
use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

pub(super) fn read_ndjson(
    handle: &tokio::runtime::Handle,
    file: &super::files::SourceFile,
    plan: &FilePlan,
    max_line_bytes: usize,
    read_bytes: u64,
    tx: &Tx,
) -> Result<()> {
    let text = TextPlan::new(plan);
    let mut stream = byte_stream(handle, file, read_bytes)?;
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut batch = Batch::default();
    loop {
        match handle.block_on(stream.next()) {
            Some(bytes) => {
                let bytes = bytes.map_err(|e| Error::storage(&file.display, e))?;
                batch.pending_bytes += bytes.len() as u64;
                let _: std::result::Result<(), ()> =
                    splitter.push(&bytes, |line| batch.take(line, max_line_bytes));
            }
            None => {
                let _: std::result::Result<(), ()> =
                    splitter.finish(|line| batch.take(line, max_line_bytes));
                break;
            }
        }
        if batch.lines.len() >= BATCH_ROWS / 4 && !send(tx, batch.decode(plan, &text)?) {
            return Ok(());
        }
    }
    if !batch.lines.is_empty() || !batch.too_long.is_empty() || batch.pending_bytes > 0 {
        send(tx, batch.decode(plan, &text)?);
    }
    Ok(())
}

/// Lines gathered for the next chunk.
#[derive(Default)]
struct Batch {
    /// The lines' bytes, one after another: line `n` is `buf[range]`.
    buf: Vec<u8>,
    lines: Vec<(u64, Range<usize>)>,
    /// Lines over `max_line_bytes`, rejected.
    too_long: Vec<Rejected>,
    /// Input bytes read since the last chunk.
    pending_bytes: u64,
}

impl Batch {
    fn take(&mut self, line: Line<'_>, max_line_bytes: usize) -> std::result::Result<(), ()> {
        match line {
            // Blank lines are not records.
            Line::Text { text, .. } if text.iter().all(u8::is_ascii_whitespace) => {}
            Line::Text { number, text } => {
                let s = self.buf.len();
                self.buf.extend_from_slice(text);
                self.lines.push((number, s..self.buf.len()));
            }
            Line::TooLong { blank: true, .. } => {}
            Line::TooLong { number, prefix, .. } => self.too_long.push(Rejected {
                line: number,
                raw: String::from_utf8_lossy(prefix).into_owned(),
                reason: format!(
                    "line is longer than max_line_bytes ({max_line_bytes} bytes); raw holds its first \
                     {max_line_bytes} bytes; raise [source.ndjson] max_line_bytes if the line is real"
                ),
            }),
        }
        Ok(())
    }

    /// The gathered lines as a chunk; the batch starts again empty.
    fn decode(&mut self, plan: &FilePlan, text: &TextPlan) -> Result<Chunk> {
        let chunk = decode_lines(&self.buf, &self.lines, plan, text)?;
        let mut rejected = chunk.rejected;
        rejected.append(&mut self.too_long);
        rejected.sort_by_key(|r| r.line);
        self.buf.clear();
        self.lines.clear();
        Ok(Chunk {
            bytes: std::mem::take(&mut self.pending_bytes),
            rejected,
            ..chunk
        })
    }
}

/// Which columns are decoded as text and typed like CSV.
struct TextPlan {
    /// The decoder's schema: scalar columns as Utf8, nested ones as planned.
    schema: SchemaRef,
    /// Scalar columns by name, with their planned type's SQL name.
    scalars: HashMap<String, String>,
    /// The plan with not_null kept (checked while typing).
    columns: Vec<ColumnPlan>,
    /// Fields that are not columns reject the record.
    strict: bool,
}

impl TextPlan {
    fn new(plan: &FilePlan) -> Self {
        let scalar = |dt: &DataType| {
            dt.is_primitive()
                || matches!(
                    dt,
                    DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
        };
        let schema = Arc::new(Schema::new(
            plan.columns
                .iter()
                .map(|c| {
                    let dt = if scalar(&c.data_type) {
                        DataType::Utf8
                    } else {
                        c.data_type.clone()
                    };
                    Field::new(&c.name, dt, true)
                })
                .collect::<Vec<_>>(),
        ));
        TextPlan {
            schema,
            scalars: plan
                .columns
                .iter()
                .filter(|c| scalar(&c.data_type))
                .map(|c| (c.name.clone(), super::convert::type_name(&c.data_type)))
                .collect(),
            columns: plan.columns.clone(),
            strict: true,
        }
    }
}

/// JSON records held in memory (a Kafka micro-batch), decoded with the same
/// checks and typing as NDJSON files.
pub(crate) struct JsonRecords {
    plan: FilePlan,
    text: TextPlan,
}

impl JsonRecords {
    /// Records decoded into `plan`'s columns. `strict`: a field that is not a
    /// column rejects its record (files); otherwise it is ignored.
    pub(crate) fn new(plan: FilePlan, strict: bool) -> Self {
        let mut text = TextPlan::new(&plan);
        text.strict = strict;
        JsonRecords { plan, text }
    }

    /// Decodes `records` (ranges of `buf`, each one JSON object, numbered):
    /// rows in record order, and the rejected records by number.
    pub(crate) fn decode(&self, buf: &[u8], records: &[(u64, Range<usize>)]) -> Result<Chunk> {
        decode_lines(buf, records, &self.plan, &self.text)
    }
}

fn json_decoder(schema: &SchemaRef, strict: bool) -> Result<arrow::json::reader::Decoder> {
    Ok(arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(strict)
        .with_coerce_primitive(true)
        .build_decoder()?)
}

/// Decodes `lines` (ranges of `buf`, each one line) into a chunk: rows that fit
/// the plan and rejected lines.
fn decode_lines(
    buf: &[u8],
    lines: &[(u64, Range<usize>)],
    plan: &FilePlan,
    text: &TextPlan,
) -> Result<Chunk> {
    let raw = |r: &Range<usize>| String::from_utf8_lossy(&buf[r.clone()]).into_owned();
    let mut rejected = Vec::new();
    let mut valid = Vec::with_capacity(lines.len());
    for (no, r) in lines {
        match check_line(&buf[r.clone()], &text.scalars) {
            Ok(()) => valid.push((*no, r.clone())),
            Err(problem) => rejected.push(Rejected {
                line: *no,
                raw: raw(r),
                reason: problem.to_string(),
            }),
        }
    }
    let decode = |lines: &[(u64, Range<usize>)]| -> Result<Option<RecordBatch>> {
        let mut d = json_decoder(&text.schema, text.strict)?;
        for (_, r) in lines {
            d.decode(&buf[r.clone()])?;
            d.decode(b"\n")?;
        }
        Ok(d.flush()?)
    };
    // All lines at once; on failure, line by line to find the bad ones.
    let (batch, kept) = match decode(&valid) {
        Ok(b) => (b, valid),
        Err(_) => {
            let mut good = Vec::new();
            let mut kept = Vec::new();
            for line in valid {
                match decode(std::slice::from_ref(&line)) {
                    Ok(Some(b)) => {
                        good.push(b);
                        kept.push(line);
                    }
                    Ok(None) => {}
                    Err(e) => rejected.push(Rejected {
                        line: line.0,
                        raw: raw(&line.1),
                        reason: json_reason(&e.to_string()),
                    }),
                }
            }
            let batch = if good.is_empty() {
                None
            } else {
                Some(arrow::compute::concat_batches(&text.schema, &good)?)
            };
            (batch, kept)
        }
    };
    let batch = match batch {
        Some(b) => {
            let columns = b
                .columns()
                .iter()
                .zip(text.schema.fields())
                .map(|(c, f)| {
                    match (
                        text.scalars.contains_key(f.name()),
                        c.as_any().downcast_ref::<StringArray>(),
                    ) {
                        (true, Some(s)) => Column::Text(s.clone()),
                        _ => Column::Typed(c.clone()),
                    }
                })
                .collect();
            let line_numbers: Vec<u64> = kept.iter().map(|(n, _)| *n).collect();
            let (b, more) = type_columns(
                columns,
                &text.columns,
                &plan.schema,
                None,
                "missing or null",
                |i| raw(&kept[i].1),
                &line_numbers,
            )?;
            rejected.extend(more);
            Some(b)
        }
        None => None,
    };
    rejected.sort_by_key(|r| r.line);
    Ok(Chunk {
        batch,
        rejected,
        bytes: 0,
    })
}

fn json_reason(msg: &str) -> String {
    let msg = msg
        .strip_prefix("Json error: ")
        .or_else(|| msg.strip_prefix("Parser error: "))
        .unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("column '") {
        if let Some((field, what)) = rest.split_once("' not found in schema") {
            return format!("unknown field `{field}`{what}; declare it as a column of the source");
        }
    }
    msg.to_string()
}
