//! Kafka records into Arrow rows of the source's table, and the records that
//! do not fit into rejected rows (with their partition and offset).

use crate::error::{Error, Result};
use crate::load::convert::ColumnPlan;
use crate::load::ndjson::JsonRecords;
use crate::load::readers::FilePlan;
use crate::project::{SourceDecl, SourceFormat};
use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rskafka::record::RecordAndOffset;
use std::sync::{Arc, LazyLock};

/// The columns sluice adds to every row of a Kafka source (unless
/// `metadata_columns = false`).
pub const METADATA_COLUMNS: [&str; 4] = [
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_kafka_key",
];

fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new("_kafka_partition", DataType::Int32, false),
        Field::new("_kafka_offset", DataType::Int64, false),
        Field::new(
            "_kafka_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("_kafka_key", DataType::Utf8, true),
    ]
}

/// The schema of a Kafka source's table: its declared columns (or `value`
/// for `bytes`), then the metadata columns.
pub fn table_schema(src: &SourceDecl) -> SchemaRef {
    let mut fields: Vec<Field> = match src.format {
        SourceFormat::Bytes => vec![Field::new("value", DataType::Binary, true)],
        _ => src
            .columns
            .iter()
            .filter_map(|c| {
                c.data_type
                    .as_ref()
                    .map(|dt| Field::new(&c.name, dt.clone(), !c.not_null))
            })
            .collect(),
    };
    if src.kafka.as_ref().is_some_and(|k| k.metadata_columns) {
        fields.extend(metadata_fields());
    }
    Arc::new(Schema::new(fields))
}

/// One record that does not fit the source's columns.
#[derive(Debug, Clone)]
pub struct RejectedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_us: i64,
    pub key: Option<String>,
    pub raw: String,
    pub reason: String,
}

/// A micro-batch's records, decoded.
pub struct Decoded {
    /// Rows in the table's schema (record order within each partition).
    pub batches: Vec<RecordBatch>,
    pub rejected: Vec<RejectedRecord>,
}

impl Decoded {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Records decoded at a time (the JSON decoder's batch is larger).
const PIECE: usize = 16 * 1024;

/// One piece's rows and rejections.
struct Piece {
    batch: Option<RecordBatch>,
    rejected: Vec<RejectedRecord>,
}

/// CSV lines: each record one line of the declared columns, in order.
struct CsvLines {
    opts: crate::project::CsvOptions,
    plans: Vec<ColumnPlan>,
    schema: SchemaRef,
}

/// Decodes records of one source.
pub struct Decoder {
    format: SourceFormat,
    json: Option<JsonRecords>,
    csv: Option<CsvLines>,
    metadata: bool,
    table: SchemaRef,
}

impl Decoder {
    pub fn new(src: &SourceDecl, table: SchemaRef) -> Result<Self> {
        let plans: Vec<ColumnPlan> = src
            .columns
            .iter()
            .filter_map(|c| {
                c.data_type.as_ref().map(|dt| ColumnPlan {
                    name: c.name.clone(),
                    data_type: dt.clone(),
                    not_null: c.not_null,
                })
            })
            .collect();
        let (json, csv) = match src.format {
            // Fields that are not declared columns are ignored: producers
            // add fields without asking the warehouse.
            SourceFormat::Ndjson => (Some(JsonRecords::new(FilePlan::new(plans), false)), None),
            SourceFormat::Csv => {
                let schema = Arc::new(Schema::new(
                    plans
                        .iter()
                        .map(|p| Field::new(&p.name, p.data_type.clone(), true))
                        .collect::<Vec<_>>(),
                ));
                (
                    None,
                    Some(CsvLines {
                        opts: src.csv.clone(),
                        plans,
                        schema,
                    }),
                )
            }
            SourceFormat::Bytes => (None, None),
            other => {
                return Err(Error::source(
                    &src.name,
                    format!(
                        "kafka sources read format = \"json\", \"csv\" or \"bytes\", not {other:?}"
                    ),
                ))
            }
        };
        Ok(Decoder {
            format: src.format,
            json,
            csv,
            metadata: src.kafka.as_ref().is_some_and(|k| k.metadata_columns),
            table,
        })
    }

    /// Decodes `records` (partition, record) in order, in pieces of at most
    /// [`PIECE`] records.
    pub fn decode(&self, records: &[(i32, &RecordAndOffset)]) -> Result<Decoded> {
        let mut out = Decoded {
            batches: Vec::new(),
            rejected: Vec::new(),
        };
        for piece in records.chunks(PIECE) {
            let d = self.decode_piece(piece)?;
            out.batches.extend(d.batch);
            out.rejected.extend(d.rejected);
        }
        out.rejected.sort_by_key(|r| (r.partition, r.offset));
        Ok(out)
    }

    fn decode_piece(&self, records: &[(i32, &RecordAndOffset)]) -> Result<Piece> {
        let mut rejected = Vec::new();
        let reject =
            |(p, r): &(i32, &RecordAndOffset), raw: String, reason: String| RejectedRecord {
                partition: *p,
                offset: r.offset,
                timestamp_us: r.record.timestamp.timestamp_micros(),
                key: r
                    .record
                    .key
                    .as_ref()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                raw,
                reason,
            };
        // Which records become rows, in order.
        let mut kept: Vec<usize> = Vec::with_capacity(records.len());
        let data: Option<RecordBatch> = match self.format {
            SourceFormat::Bytes => {
                let mut b = BinaryBuilder::with_capacity(
                    records.len(),
                    records
                        .iter()
                        .map(|(_, r)| r.record.value.as_ref().map_or(0, |v| v.len()))
                        .sum(),
                );
                for (i, (_, r)) in records.iter().enumerate() {
                    match &r.record.value {
                        Some(v) => b.append_value(v),
                        None => b.append_null(),
                    }
                    kept.push(i);
                }
                let schema = Arc::new(Schema::new(vec![Field::new(
                    "value",
                    DataType::Binary,
                    true,
                )]));
                Some(RecordBatch::try_new(
                    schema,
                    vec![Arc::new(b.finish()) as ArrayRef],
                )?)
            }
            SourceFormat::Csv => {
                let Some(csv) = &self.csv else {
                    return Err(Error::Internal("csv decoder missing".into()));
                };
                csv_lines(csv, records, &mut kept, &mut |i, raw, reason| {
                    rejected.push(reject(&records[i], raw, reason))
                })?
            }
            _ => {
                let Some(json) = &self.json else {
                    return Err(Error::Internal("json decoder missing".into()));
                };
                let mut buf = Vec::new();
                let mut lines = Vec::with_capacity(records.len());
                for (i, rec) in records.iter().enumerate() {
                    match &rec.1.record.value {
                        Some(v) => {
                            let s = buf.len();
                            buf.extend_from_slice(v);
                            lines.push((i as u64, s..buf.len()));
                        }
                        None => rejected.push(reject(
                            rec,
                            String::new(),
                            "the record has no value (a tombstone); a json source needs one JSON object per record".into(),
                        )),
                    }
                }
                let chunk = json.decode(&buf, &lines)?;
                let bad: std::collections::HashSet<u64> =
                    chunk.rejected.iter().map(|r| r.line).collect();
                for r in chunk.rejected {
                    let i = r.line as usize;
                    if let Some(rec) = records.get(i) {
                        rejected.push(reject(rec, r.raw, r.reason));
                    }
                }
                kept.extend(
                    lines
                        .iter()
                        .map(|(i, _)| *i)
                        .filter(|i| !bad.contains(i))
                        .map(|i| i as usize),
                );
                chunk.batch
            }
        };
        let Some(data) = data else {
            return Ok(Piece {
                batch: None,
                rejected,
            });
        };
        if data.num_rows() != kept.len() {
            return Err(Error::Internal(format!(
                "kafka decode: {} rows for {} kept records",
                data.num_rows(),
                kept.len()
            )));
        }
        let mut columns: Vec<ArrayRef> = data.columns().to_vec();
        let mut fields: Vec<Field> = data
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if self.metadata {
            let n = kept.len();
            let mut part = Int32Builder::with_capacity(n);
            let mut off = Int64Builder::with_capacity(n);
            let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            let mut key = StringBuilder::new();
            for &i in &kept {
                let (p, r) = &records[i];
                part.append_value(*p);
                off.append_value(r.offset);
                ts.append_value(r.record.timestamp.timestamp_micros());
                match &r.record.key {
                    Some(k) => key.append_value(String::from_utf8_lossy(k)),
                    None => key.append_null(),
                }
            }
            columns.push(Arc::new(part.finish()));
            columns.push(Arc::new(off.finish()));
            columns.push(Arc::new(ts.finish()));
            columns.push(Arc::new(key.finish()));
            fields.extend(metadata_fields());
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let batch = crate::load::convert::conform(&batch, &self.table)?;
        Ok(Piece {
            batch: Some(batch),
            rejected,
        })
    }
}

/// Decodes CSV records, one line each: tokenized and typed as CSV files are
/// (the source's `[source.csv]` delimiter, quote, null values and timestamp
/// format; `header` does not apply). A record that is not one whole line (a
/// line break, a quote left open) is rejected before tokenizing, so that it
/// cannot run into the next. Pushes the kept records' indexes to `kept`, in
/// row order, and reports each rejected one.
fn csv_lines(
    csv: &CsvLines,
    records: &[(i32, &RecordAndOffset)],
    kept: &mut Vec<usize>,
    reject: &mut dyn FnMut(usize, String, String),
) -> Result<Option<RecordBatch>> {
    let quote = csv.opts.quote_byte().unwrap_or(b'"');
    let mut buf = Vec::new();
    // Line k + 1 of `buf` is record `index[k]`.
    let mut index = Vec::with_capacity(records.len());
    for (i, (_, r)) in records.iter().enumerate() {
        let Some(v) = &r.record.value else {
            reject(
                i,
                String::new(),
                "the record has no value (a tombstone); a csv source needs one line per record"
                    .into(),
            );
            continue;
        };
        let line = v
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(v);
        let raw = || String::from_utf8_lossy(line).into_owned();
        if line.is_empty() {
            reject(i, String::new(), "the record is empty; a csv source needs one line of the declared columns per record".into());
        } else if line.contains(&b'\n') || line.contains(&b'\r') {
            reject(
                i,
                raw(),
                "the record holds a line break; a csv source reads one line per record".into(),
            );
        } else if line.iter().filter(|&&b| b == quote).count() % 2 == 1 {
            reject(i, raw(), "a quoted field is not closed".into());
        } else {
            buf.extend_from_slice(line);
            buf.push(b'\n');
            index.push(i);
        }
    }
    if index.is_empty() {
        return Ok(None);
    }
    let mut tokenizer =
        crate::load::csv::CsvTokenizer::for_piece(&csv.opts, index.len(), csv.plans.len(), 1);
    let mut raws = Vec::new();
    tokenizer.feed(&buf, &mut raws);
    tokenizer.feed(&[], &mut raws);
    let record = |line: u64| {
        usize::try_from(line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|k| index.get(k).copied())
            .ok_or_else(|| Error::Internal(format!("csv record on line {line}")))
    };
    let mut batches = Vec::new();
    for raw in raws {
        for r in &raw.rejected {
            reject(record(r.line)?, r.raw.clone(), r.reason.clone());
        }
        let (batch, bad) = crate::load::convert::type_strings(
            &raw.columns,
            &csv.plans,
            &csv.schema,
            csv.opts.timestamp_format.as_deref(),
            |j| raw.raw_text(j),
            &raw.lines,
        )?;
        let bad_lines: std::collections::HashSet<u64> = bad.iter().map(|r| r.line).collect();
        for r in bad {
            reject(record(r.line)?, r.raw, r.reason);
        }
        for &l in &raw.lines {
            if !bad_lines.contains(&l) {
                kept.push(record(l)?);
            }
        }
        batches.push(batch);
    }
    if batches.is_empty() {
        return Ok(None);
    }
    Ok(Some(arrow::compute::concat_batches(&csv.schema, &batches)?))
}

static REJECTED: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("load_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "kafka_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new(
            "rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// Schema of a Kafka source's `<target>__rejected` table.
pub fn rejected_schema() -> SchemaRef {
    REJECTED.clone()
}

/// Rejected records as rows of [`rejected_schema`].
pub fn rejected_batch(
    stream_id: &str,
    source: &str,
    topic: &str,
    rows: &[&RejectedRecord],
    now_us: i64,
) -> Result<RecordBatch> {
    let n = rows.len();
    let mut id = StringBuilder::new();
    let mut src = StringBuilder::new();
    let mut t = StringBuilder::new();
    let mut part = Int32Builder::with_capacity(n);
    let mut off = Int64Builder::with_capacity(n);
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut key = StringBuilder::new();
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in rows {
        id.append_value(stream_id);
        src.append_value(source);
        t.append_value(topic);
        part.append_value(r.partition);
        off.append_value(r.offset);
        ts.append_value(r.timestamp_us);
        key.append_option(r.key.as_deref());
        raw.append_value(&r.raw);
        reason.append_value(&r.reason);
        at.append_value(now_us);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(src.finish()),
        Arc::new(t.finish()),
        Arc::new(part.finish()),
        Arc::new(off.finish()),
        Arc::new(ts.finish()),
        Arc::new(key.finish()),
        Arc::new(raw.finish()),
        Arc::new(reason.finish()),
        Arc::new(at.finish()),
    ];
    Ok(RecordBatch::try_new(rejected_schema(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use rskafka::record::Record;

    fn source(extra: &str, format: &str) -> SourceDecl {
        let text = format!(
            "[[source]]\nname = \"e\"\nkind = \"kafka\"\nformat = \"{format}\"\n\
             [source.kafka]\nbootstrap_servers = \"b:9092\"\ntopic = \"t\"\n{extra}\n\
             [[source.columns]]\nname = \"id\"\ntype = \"bigint\"\nnot_null = true\n\
             [[source.columns]]\nname = \"amount\"\ntype = \"decimal(10,2)\"\n"
        );
        let mut out = Vec::new();
        crate::project::source::parse_catalog(&text, std::path::Path::new("c.toml"), &mut out)
            .unwrap();
        out.remove(0)
    }

    fn rec(offset: i64, value: Option<&str>, key: Option<&str>) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: key.map(|k| k.as_bytes().to_vec()),
                value: value.map(|v| v.as_bytes().to_vec()),
                headers: Default::default(),
                timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + offset)
                    .unwrap(),
            },
            offset,
        }
    }

    #[test]
    fn json_records_become_rows_and_bad_ones_rejections() {
        let src = source("", "json");
        let d = Decoder::new(&src, table_schema(&src)).unwrap();
        let recs = [
            (
                0,
                rec(
                    10,
                    Some(r#"{"id": 1, "amount": "2.50", "other": [1]}"#),
                    Some("k"),
                ),
            ),
            (1, rec(4, Some(r#"{"id": "x"}"#), None)),
            (0, rec(11, Some("{not json"), None)),
            (1, rec(5, None, None)),
            (1, rec(6, Some(r#"{"amount": 1}"#), None)),
            (2, rec(0, Some("{\"id\":\n 7}"), None)),
        ];
        let refs: Vec<(i32, &RecordAndOffset)> = recs.iter().map(|(p, r)| (*p, r)).collect();
        let out = d.decode(&refs).unwrap();
        assert_eq!(out.batches.len(), 1);
        let b = &out.batches[0];
        assert_eq!(b.num_rows(), 2);
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 7]);
        let offs = b
            .column_by_name("_kafka_offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(offs.values().to_vec(), vec![10, 0]);
        let keys = b.column_by_name("_kafka_key").unwrap().as_string::<i32>();
        assert_eq!(keys.value(0), "k");
        assert!(keys.is_null(1));
        let rejected: Vec<(i32, i64)> = out
            .rejected
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(rejected, vec![(0, 11), (1, 4), (1, 5), (1, 6)]);
        assert!(
            out.rejected[1].reason.contains("BIGINT"),
            "{:?}",
            out.rejected[1]
        );
        assert!(out.rejected[2].reason.contains("tombstone"));
        assert!(
            out.rejected[3].reason.contains("id"),
            "{:?}",
            out.rejected[3]
        );
    }

    #[test]
    fn csv_lines_become_rows_and_bad_ones_rejections() {
        let src = source(
            "[source.csv]\ndelimiter = \";\"\nnull_values = [\"\", \"NA\"]\n",
            "csv",
        );
        let d = Decoder::new(&src, table_schema(&src)).unwrap();
        let recs = [
            (0, rec(0, Some("1;2.50"), Some("k"))),
            (0, rec(1, Some("2;NA\r\n"), None)),
            (1, rec(0, Some("x;1"), None)),
            (1, rec(1, Some("3"), None)),
            (1, rec(2, Some("\"4;1\n5;2"), None)),
            (2, rec(0, Some("6;\"1.5\"\n"), None)),
            (2, rec(1, None, None)),
            (2, rec(2, Some("7;\"oops"), None)),
            (2, rec(3, Some(""), None)),
            (2, rec(4, Some(";3"), None)),
            (2, rec(5, Some("8;1;9"), None)),
            (2, rec(6, Some("9;1.25"), None)),
        ];
        let refs: Vec<(i32, &RecordAndOffset)> = recs.iter().map(|(p, r)| (*p, r)).collect();
        let out = d.decode(&refs).unwrap();
        let b = &out.batches[0];
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 2, 6, 9]);
        let amounts = b.column_by_name("amount").unwrap();
        assert!(amounts.is_null(1), "NA is NULL");
        let offs = b
            .column_by_name("_kafka_offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(offs.values().to_vec(), vec![0, 1, 0, 6]);
        let rejected: Vec<(i32, i64)> = out
            .rejected
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (1, 0),
                (1, 1),
                (1, 2),
                (2, 1),
                (2, 2),
                (2, 3),
                (2, 4),
                (2, 5)
            ]
        );
        let reason = |p: i32, o: i64| {
            out.rejected
                .iter()
                .find(|r| (r.partition, r.offset) == (p, o))
                .map(|r| r.reason.clone())
                .unwrap()
        };
        assert!(reason(1, 0).contains("BIGINT"), "{}", reason(1, 0));
        assert!(reason(1, 2).contains("line break"), "{}", reason(1, 2));
        assert!(reason(2, 1).contains("tombstone"));
        assert!(reason(2, 2).contains("not closed"), "{}", reason(2, 2));
        assert!(reason(2, 3).contains("empty"));
        assert!(reason(2, 4).contains("id"), "{}", reason(2, 4));
        assert!(!reason(1, 1).is_empty() && !reason(2, 5).is_empty());
        assert_eq!(
            out.rejected
                .iter()
                .find(|r| (r.partition, r.offset) == (1, 0))
                .unwrap()
                .raw,
            "x;1"
        );
    }

    #[test]
    fn a_large_batch_is_decoded_whole() {
        let src = source("", "json");
        let d = Decoder::new(&src, table_schema(&src)).unwrap();
        let n = 3 * PIECE + 17;
        let recs: Vec<(i32, RecordAndOffset)> = (0..n)
            .map(|i| {
                let v = if i % 1000 == 3 {
                    "{}".to_string()
                } else {
                    format!("{{\"id\": {i}}}")
                };
                ((i % 3) as i32, rec(i as i64, Some(&v), None))
            })
            .collect();
        let refs: Vec<(i32, &RecordAndOffset)> = recs.iter().map(|(p, r)| (*p, r)).collect();
        let out = d.decode(&refs).unwrap();
        let bad = (0..n).filter(|i| i % 1000 == 3).count();
        assert_eq!(out.num_rows(), n - bad);
        assert_eq!(out.rejected.len(), bad);
        let mut ids: Vec<i64> = out
            .batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("id")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        ids.sort();
        let want: Vec<i64> = (0..n as i64).filter(|i| i % 1000 != 3).collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn bytes_keep_every_record_and_metadata_can_be_off() {
        let mut src = source("metadata_columns = false", "bytes");
        src.columns.clear();
        let schema = table_schema(&src);
        assert_eq!(schema.fields().len(), 1);
        let d = Decoder::new(&src, schema).unwrap();
        let recs = [(0, rec(1, Some("\u{0}raw"), None)), (0, rec(2, None, None))];
        let refs: Vec<(i32, &RecordAndOffset)> = recs.iter().map(|(p, r)| (*p, r)).collect();
        let b = d.decode(&refs).unwrap().batches.remove(0);
        let v = b.column(0).as_binary::<i32>();
        assert_eq!(v.value(0), b"\0raw");
        assert!(v.is_null(1));
    }

    #[test]
    fn declarations_are_checked() {
        let bad = |extra: &str, fmt: &str| {
            let text = format!(
                "[[source]]\nname = \"e\"\nkind = \"kafka\"\nformat = \"{fmt}\"\n{extra}\n\
                 [[source.columns]]\nname = \"id\"\ntype = \"bigint\"\n"
            );
            let mut out = Vec::new();
            crate::project::source::parse_catalog(&text, std::path::Path::new("c.toml"), &mut out)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("", "json").contains("needs a [source.kafka] table"));
        let k = "[source.kafka]\nbootstrap_servers = \"b:1\"\ntopic = \"t\"\n";
        assert!(bad(k, "parquet").contains("json"));
        assert!(bad(
            &format!("mode = \"merge\"\nmerge_keys = [\"id\"]\n{k}"),
            "json"
        )
        .contains("append"));
        assert!(bad(&format!("location = \"x\"\n{k}"), "json").contains("not `location`"));
        assert!(bad(&format!("{k}sasl_mechanism = \"GSSAPI\"\n"), "json").contains("GSSAPI"));
        assert!(
            bad(&format!("{k}sasl_mechanism = \"PLAIN\"\n"), "json").contains("sasl_password_env")
        );
        let files = "[[source]]\nname = \"f\"\nformat = \"bytes\"\nlocation = \"x\"\n";
        let mut out = Vec::new();
        let e =
            crate::project::source::parse_catalog(files, std::path::Path::new("c.toml"), &mut out)
                .unwrap_err()
                .to_string();
        assert!(e.contains("for kafka sources"), "{e}");
        let src = source("start = \"2026-01-01T00:00:00Z\"", "json");
        assert_eq!(
            src.kafka.unwrap().start_at,
            Some(crate::project::KafkaStart::Timestamp(1_767_225_600_000))
        );
        let list = "[source.kafka]\nbootstrap_servers = [\"a:1\", \"b:2,c:3\"]\ntopic = \"t\"\n";
        let text =
            format!("[[source]]\nname = \"e\"\nkind = \"kafka\"\nformat = \"bytes\"\n{list}");
        let mut out = Vec::new();
        crate::project::source::parse_catalog(&text, std::path::Path::new("c.toml"), &mut out)
            .unwrap();
        assert_eq!(
            out[0].kafka.as_ref().unwrap().bootstrap_servers.items(),
            vec!["a:1", "b:2", "c:3"]
        );
    }
}
