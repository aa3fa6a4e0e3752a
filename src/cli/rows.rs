//! A statement's result as `sluice sql` and its shell print it.
//!
//! - csv and json: only the rows, streamed as they come (a large result is
//!   never held whole), and never cut unless `--max-rows` asks: then a note on
//!   stderr says how many were left out. Standard output stays one document.
//! - table: at most `--max-rows` rows (default [`DEFAULT_TABLE_ROWS`]): the
//!   first and the last half, the middle elided with a `...` row, as DuckDB
//!   does; only those rows are kept while the rest is counted. A footer line
//!   follows: the row count and the time (`3 rows (0.012 s)`), and how many
//!   rows were shown when some were not, with how to see them all.
//!
//! The footer of a table goes to stdout with the table it describes (psql,
//! datafusion-cli and DuckDB print it there too); a statement without a result
//! (DROP, CREATE VIEW) prints nothing.

use super::args::RowsFormat;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use sluice::sql::BatchWriter;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows a table shows unless `--max-rows` says otherwise (DuckDB's 40).
pub const DEFAULT_TABLE_ROWS: usize = 40;

/// How results are printed.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: RowsFormat,
    /// At most this many rows (`Some(0)`: all); `None`: the format's default
    /// ([`DEFAULT_TABLE_ROWS`] for tables, all for csv and json).
    pub max_rows: Option<usize>,
    /// Whether the footer shows the time.
    pub timer: bool,
    /// Whether csv and json results get a footer too, on stderr (the shell:
    /// a person reads it).
    pub footer_always: bool,
    /// How to see every row, for the footer (`--max-rows 0`, `.maxrows 0`).
    pub show_all: &'static str,
}

impl Printer {
    /// The printer of `sluice sql QUERY`, `-f` and standard input.
    pub fn new(format: RowsFormat, max_rows: Option<usize>) -> Self {
        Printer {
            format,
            max_rows,
            timer: true,
            footer_always: false,
            show_all: "--max-rows 0",
        }
    }

    /// The row cap in force, if any.
    pub fn cap(&self) -> Option<usize> {
        match self.max_rows {
            Some(0) => None,
            Some(n) => Some(n),
            None if self.format == RowsFormat::Table => Some(DEFAULT_TABLE_ROWS),
            None => None,
        }
    }

    /// Runs `df` and prints its rows to `out`, then the footer (`out` for a
    /// table, `notes` for csv and json). `started` is when the statement
    /// started (planning included).
    pub async fn print(
        &self,
        df: DataFrame,
        started: Instant,
        out: &mut dyn Write,
        notes: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(sluice::Error::from)?;
        let cap = self.cap();
        let (total, shown) = if self.format == RowsFormat::Table {
            let mut kept = Kept::new(cap);
            while let Some(batch) = stream.next().await {
                kept.push(batch.map_err(sluice::Error::from)?);
            }
            let (batches, shown) = kept.finish(&schema)?;
            let mut w = BatchWriter::new(
                &mut *out,
                self.format.into(),
                batch_schema(&batches, &schema),
            );
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
            (kept.total, shown)
        } else {
            let mut w = BatchWriter::new(&mut *out, self.format.into(), schema.clone());
            let mut total = 0;
            let mut written = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(sluice::Error::from)?;
                total += batch.num_rows();
                let room = cap.map_or(batch.num_rows(), |c| c.saturating_sub(written));
                let take = room.min(batch.num_rows());
                if take > 0 {
                    w.write(&batch.slice(0, take))?;
                    written += take;
                }
            }
            w.finish()?;
            (total, (written < total).then_some(written))
        };
        if schema.fields().is_empty() {
            // DROP, CREATE VIEW: nothing to count.
            return Ok(());
        }
        let elapsed = self.timer.then(|| started.elapsed());
        let line = footer(total, shown, elapsed, self.show_all);
        if self.format == RowsFormat::Table {
            writeln!(out, "{line}")?;
        } else if self.footer_always || shown.is_some() {
            writeln!(notes, "{line}")?;
        }
        Ok(())
    }
}

fn batch_schema(batches: &[RecordBatch], schema: &SchemaRef) -> SchemaRef {
    batches
        .first()
        .map_or_else(|| schema.clone(), RecordBatch::schema)
}

/// Runs `df` to its end without printing (a statement whose result is not
/// shown: the earlier statements of a csv or json run).
pub async fn drain(df: DataFrame) -> anyhow::Result<()> {
    let mut stream = df.execute_stream().await.map_err(sluice::Error::from)?;
    while let Some(batch) = stream.next().await {
        batch.map_err(sluice::Error::from)?;
    }
    Ok(())
}

/// The line after a result: `3 rows (0.012 s)`, or with rows left out
/// `1,000 rows, 40 shown (0.012 s); --max-rows 0 shows all`.
pub fn footer(
    total: usize,
    shown: Option<usize>,
    elapsed: Option<Duration>,
    show_all: &str,
) -> String {
    let mut line = format!(
        "{} {}",
        thousands(total),
        if total == 1 { "row" } else { "rows" }
    );
    if let Some(shown) = shown {
        line.push_str(&format!(", {} shown", thousands(shown)));
    }
    if let Some(t) = elapsed {
        line.push_str(&format!(" ({:.3} s)", t.as_secs_f64()));
    }
    if shown.is_some() {
        line.push_str(&format!("; {show_all} shows all"));
    }
    line
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The rows a capped table shows, kept while the result streams by: the
/// first `cap` rows and the last `cap / 2` after them.
struct Kept {
    cap: Option<usize>,
    head: Vec<RecordBatch>,
    head_rows: usize,
    tail: VecDeque<RecordBatch>,
    tail_rows: usize,
    total: usize,
}

impl Kept {
    fn new(cap: Option<usize>) -> Self {
        Kept {
            cap,
            head: Vec::new(),
            head_rows: 0,
            tail: VecDeque::new(),
            tail_rows: 0,
            total: 0,
        }
    }

    fn push(&mut self, batch: RecordBatch) {
        let rows = batch.num_rows();
        self.total += rows;
        let Some(cap) = self.cap else {
            self.head.push(batch);
            return;
        };
        let take = cap.saturating_sub(self.head_rows).min(rows);
        if take > 0 {
            self.head.push(batch.slice(0, take));
            self.head_rows += take;
        }
        let keep = cap / 2;
        if take == rows || keep == 0 {
            return;
        }
        self.tail.push_back(batch.slice(take, rows - take));
        self.tail_rows += rows - take;
        while self.tail_rows > keep {
            let excess = self.tail_rows - keep;
            let Some(front) = self.tail.pop_front() else {
                break;
            };
            if front.num_rows() <= excess {
                self.tail_rows -= front.num_rows();
            } else {
                self.tail
                    .push_front(front.slice(excess, front.num_rows() - excess));
                self.tail_rows -= excess;
            }
        }
    }

    /// The batches to print and, when rows were left out, how many are shown
    /// (the printed batches then hold the first `cap - cap / 2` rows, a
    /// `...` row and the last `cap / 2`, all as text).
    fn finish(&self, schema: &SchemaRef) -> anyhow::Result<(Vec<RecordBatch>, Option<usize>)> {
        let cap = match self.cap {
            Some(cap) if self.total > cap => cap,
            _ => return Ok((self.head.clone(), None)),
        };
        let keep = cap / 2;
        let mut all: Vec<RecordBatch> = self.head.clone();
        all.extend(self.tail.iter().cloned());
        let all = arrow::compute::concat_batches(schema, &all)?;
        // The tail follows the head directly, or holds the last `keep` rows
        // of the result: either way the last `keep` rows of `all` are the
        // result's last.
        let top = all.slice(0, cap - keep);
        let bottom = all.slice(all.num_rows() - keep, keep);
        Ok((vec![elided(schema, &top, &bottom)?], Some(cap)))
    }
}

/// `top`, a row of `...`, then `bottom`, every value as the table prints it.
fn elided(
    schema: &SchemaRef,
    top: &RecordBatch,
    bottom: &RecordBatch,
) -> anyhow::Result<RecordBatch> {
    let options = FormatOptions::default();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for i in 0..schema.fields().len() {
        let mut values: Vec<String> = Vec::with_capacity(top.num_rows() + bottom.num_rows() + 1);
        let text = |batch: &RecordBatch, values: &mut Vec<String>| -> anyhow::Result<()> {
            let f = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?;
            for row in 0..batch.num_rows() {
                values.push(f.value(row).try_to_string()?);
            }
            Ok(())
        };
        text(top, &mut values)?;
        values.push("...".to_string());
        text(bottom, &mut values)?;
        columns.push(Arc::new(StringArray::from(values)));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn numbers(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let values: Vec<Option<i64>> = (from..to).map(|v| (v % 7 != 3).then_some(v)).collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    fn keep(cap: Option<usize>, sizes: &[i64]) -> (Vec<String>, Option<usize>, usize) {
        let mut kept = Kept::new(cap);
        let mut from = 0;
        for size in sizes {
            kept.push(numbers(from, from + size));
            from += size;
        }
        let schema = numbers(0, 0).schema();
        let (batches, shown) = kept.finish(&schema).unwrap();
        let mut values = Vec::new();
        for b in &batches {
            let f =
                ArrayFormatter::try_new(b.column(0).as_ref(), &FormatOptions::default()).unwrap();
            for row in 0..b.num_rows() {
                values.push(f.value(row).to_string());
            }
        }
        (values, shown, kept.total)
    }

    fn range(from: i64, to: i64) -> Vec<String> {
        (from..to)
            .map(|v| {
                if v % 7 == 3 {
                    String::new()
                } else {
                    v.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn a_capped_table_keeps_both_ends() {
        // Under the cap: every row, as it came.
        let (values, shown, total) = keep(Some(10), &[4, 6]);
        assert_eq!((values, shown, total), (range(0, 10), None, 10));
        // Over it, in many small batches and in one large one.
        for sizes in [vec![1; 100], vec![100], vec![3, 50, 47], vec![12, 88]] {
            let (values, shown, total) = keep(Some(10), &sizes);
            let mut want = range(0, 5);
            want.push("...".into());
            want.extend(range(95, 100));
            assert_eq!((values, shown, total), (want, Some(10), 100), "{sizes:?}");
        }
        // Just over: the last rows come partly from the head.
        let (values, shown, _) = keep(Some(10), &[11]);
        let mut want = range(0, 5);
        want.push("...".into());
        want.extend(range(6, 11));
        assert_eq!((values, shown), (want, Some(10)));
        // An odd cap shows one more row at the top; a cap of 1, the first.
        let (values, _, _) = keep(Some(3), &[10]);
        assert_eq!(values, vec!["0", "1", "...", "9"]);
        let (values, _, _) = keep(Some(1), &[10]);
        assert_eq!(values, vec!["0", "..."]);
        // No cap.
        let (values, shown, _) = keep(None, &[30, 30]);
        assert_eq!((values, shown), (range(0, 60), None));
    }

    #[test]
    fn footer_lines() {
        let t = Some(Duration::from_millis(12));
        assert_eq!(footer(3, None, t, "--max-rows 0"), "3 rows (0.012 s)");
        assert_eq!(footer(1, None, None, "--max-rows 0"), "1 row");
        assert_eq!(footer(0, None, t, "--max-rows 0"), "0 rows (0.012 s)");
        assert_eq!(
            footer(1_234_567, Some(40), t, ".maxrows 0"),
            "1,234,567 rows, 40 shown (0.012 s); .maxrows 0 shows all"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
    }
}
