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
use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

pub(super) fn read_ndjson(
    handle: &tokio::runtime::Handle,
    file: &super::files::SourceFile,
    plan: &FilePlan,
    tx: &Tx,
) -> Result<()> {
    let text = TextPlan::new(plan);
    let mut stream = byte_stream(handle, file)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut lines: Vec<(u64, Range<usize>)> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    let mut pending_bytes = 0u64;
    let mut eof = false;
    while !eof {
        match handle.block_on(stream.next()) {
            Some(bytes) => {
                let bytes = bytes.map_err(|e| Error::storage(&file.display, e))?;
                pending_bytes += bytes.len() as u64;
                carry.extend_from_slice(&bytes);
            }
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
            // Blank lines are not records.
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let s = buf.len();
            buf.extend_from_slice(line);
            lines.push((line_no, s..buf.len()));
            if lines.len() >= BATCH_ROWS / 4 {
                let chunk = decode_lines(&buf, &lines, plan, &text)?;
                let chunk = Chunk {
                    bytes: std::mem::take(&mut pending_bytes),
                    ..chunk
                };
                buf.clear();
                lines.clear();
                if !send(tx, chunk) {
                    return Ok(());
                }
            }
        }
        carry.drain(..start);
    }
    if !lines.is_empty() || pending_bytes > 0 {
        let chunk = decode_lines(&buf, &lines, plan, &text)?;
        send(
            tx,
            Chunk {
                bytes: pending_bytes,
                ..chunk
            },
        );
    }
    Ok(())
}

/// Which columns are decoded as text and typed like CSV.
struct TextPlan {
    /// The decoder's schema: scalar columns as Utf8, nested ones as planned.
    schema: SchemaRef,
    /// Scalar columns by name, with their planned type.
    scalars: HashMap<String, DataType>,
    /// The plan with not_null kept (checked while typing).
    columns: Vec<ColumnPlan>,
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
                .map(|c| (c.name.clone(), c.data_type.clone()))
                .collect(),
            columns: plan.columns.clone(),
        }
    }
}

fn json_decoder(schema: &SchemaRef) -> Result<arrow::json::reader::Decoder> {
    Ok(arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
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
            Err(reason) => rejected.push(Rejected {
                line: *no,
                raw: raw(r),
                reason,
            }),
        }
    }
    let decode = |lines: &[(u64, Range<usize>)]| -> Result<Option<RecordBatch>> {
        let mut d = json_decoder(&text.schema)?;
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

/// Checks one line: a JSON object, no key twice (its value would be ambiguous),
/// no object or array as the value of a scalar column. `Err` holds the reason.
fn check_line(line: &[u8], scalars: &HashMap<String, DataType>) -> std::result::Result<(), String> {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(line);
    let checked = (&mut de)
        .deserialize_any(Line {
            scalars,
            problem: &mut problem,
        })
        .and_then(|()| de.end());
    match checked {
        Ok(()) => Ok(()),
        Err(e) => Err(problem.unwrap_or_else(|| format!("malformed JSON: {e}"))),
    }
}

/// The top level of a line.
struct Line<'a> {
    scalars: &'a HashMap<String, DataType>,
    problem: &'a mut Option<String>,
}

impl Line<'_> {
    fn not_object<E: de::Error>(self, found: &str) -> std::result::Result<(), E> {
        *self.problem = Some(format!(
            "not a JSON object (found {found}); each line must be one JSON object"
        ));
        Err(E::custom("not an object"))
    }
}

impl<'de> Visitor<'de> for Line<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                *self.problem = Some(format!("duplicate key `{key}`: its value is ambiguous"));
                return Err(de::Error::custom("duplicate key"));
            }
            let checked = match self.scalars.get(key.as_ref()) {
                Some(dt) => map.next_value_seed(Scalar {
                    column: &key,
                    data_type: dt,
                    problem: &mut *self.problem,
                }),
                None => map.next_value_seed(Nested {
                    problem: &mut *self.problem,
                }),
            };
            if let Err(e) = checked {
                if self.problem.is_none() && e.to_string().starts_with("number out of range") {
                    let ty = self
                        .scalars
                        .get(key.as_ref())
                        .map(|dt| format!(" for {}", super::convert::type_name(dt)))
                        .unwrap_or_default();
                    *self.problem = Some(format!("column `{key}`: a number out of range{ty}"));
                }
                return Err(e);
            }
            keys.push(key);
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.not_object("null")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.not_object("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.not_object("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
        self.not_object("a string")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.not_object("an array")
    }
}

/// A key, borrowed from the line when it has no escape.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// The value of a scalar column: anything but an object or an array.
struct Scalar<'a> {
    column: &'a str,
    data_type: &'a DataType,
    problem: &'a mut Option<String>,
}

impl Scalar<'_> {
    fn nested<E: de::Error>(self, what: &str) -> std::result::Result<(), E> {
        *self.problem = Some(format!(
            "column `{}`: {what} is not a valid {}",
            self.column,
            super::convert::type_name(self.data_type)
        ));
        Err(E::custom("nested value"))
    }
}

impl<'de> DeserializeSeed<'de> for Scalar<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.nested("a JSON object")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        self.nested("a JSON array")
    }
}

/// Any other value: objects inside it may not repeat a key either.
struct Nested<'a> {
    problem: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq
            .next_element_seed(Nested {
                problem: &mut *self.problem,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                *self.problem = Some(format!(
                    "duplicate key `{key}` in a nested object: its value is ambiguous"
                ));
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Nested {
                problem: &mut *self.problem,
            })?;
            keys.push(key);
        }
        Ok(())
    }
}
