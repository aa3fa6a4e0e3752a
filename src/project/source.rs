//! Source declarations: `catalog/*.toml`, each with one or more `[[source]]`.

use crate::error::{did_you_mean, Error, Result};
use arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;
use std::path::Path;

/// File format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    #[serde(alias = "json")]
    Ndjson,
    Parquet,
    /// Kafka sources only: each record's value as one BINARY column `value`.
    Bytes,
}

/// Where a source's records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Files at `location` (default).
    #[default]
    Files,
    /// A Kafka topic (`[source.kafka]`), read by `sluice stream` and `sluice load`.
    Kafka,
}

/// Where a Kafka source starts when its table records no offset for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaStart {
    Earliest,
    Latest,
    /// The first record at or after this time (milliseconds since the epoch).
    Timestamp(i64),
}

/// `[source.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOptions {
    /// `host:port` of one or more brokers: a list, or one comma-separated string.
    pub bootstrap_servers: StringOrList,
    pub topic: String,
    /// `earliest` (default), `latest`, or an RFC 3339 time.
    #[serde(default = "earliest")]
    pub start: String,
    /// Add `_kafka_partition`, `_kafka_offset`, `_kafka_timestamp` and
    /// `_kafka_key` to every row (default true).
    #[serde(default = "yes")]
    pub metadata_columns: bool,
    /// Micro-batch trigger interval in milliseconds (default 1000).
    #[serde(default = "trigger_ms")]
    pub trigger_ms: u64,
    /// A micro-batch commits early once it holds this many records.
    #[serde(default = "max_batch_records")]
    pub max_batch_records: usize,
    /// A micro-batch commits early once its record values reach this many bytes.
    #[serde(default = "max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Connect with TLS (system roots, or `tls_ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the brokers' certificates.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// The environment variable holding the SASL password (never the password itself).
    #[serde(default)]
    pub sasl_password_env: Option<String>,
    /// When the broker has deleted records (retention) before they were
    /// loaded, go on from its first offset instead of stopping (default false).
    #[serde(default)]
    pub skip_lost_records: bool,
    /// Compact the table's small files every this many commits (0: never).
    #[serde(default = "optimize_every")]
    pub optimize_every: u64,
    /// Parsed `start`.
    #[serde(skip)]
    pub start_at: Option<KafkaStart>,
}

/// A TOML value that is one string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    /// The items, comma-separated strings split, blanks dropped.
    pub fn items(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            StringOrList::One(s) => vec![s.as_str()],
            StringOrList::Many(v) => v.iter().map(String::as_str).collect(),
        };
        all.iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn earliest() -> String {
    "earliest".into()
}
fn trigger_ms() -> u64 {
    1000
}
fn max_batch_records() -> usize {
    1_000_000
}
fn max_batch_bytes() -> usize {
    256 << 20
}
fn optimize_every() -> u64 {
    100
}

impl KafkaOptions {
    fn validate(&mut self) -> std::result::Result<(), String> {
        if self.bootstrap_servers.items().is_empty() {
            return Err(
                "[source.kafka] bootstrap_servers is empty; give `host:port` of a broker".into(),
            );
        }
        if self.topic.trim().is_empty() {
            return Err("[source.kafka] topic is empty".into());
        }
        self.start_at = Some(match self.start.trim().to_ascii_lowercase().as_str() {
            "earliest" | "beginning" => KafkaStart::Earliest,
            "latest" | "end" => KafkaStart::Latest,
            other => match chrono::DateTime::parse_from_rfc3339(self.start.trim()) {
                Ok(t) => KafkaStart::Timestamp(t.timestamp_millis()),
                Err(_) => {
                    return Err(format!(
                        "[source.kafka] start = \"{other}\" is not `earliest`, `latest` or an RFC 3339 time such as 2026-12-01T00:00:00Z"
                    ))
                }
            },
        });
        if self.trigger_ms == 0 {
            return Err("[source.kafka] trigger_ms must be at least 1".into());
        }
        if self.max_batch_records == 0 || self.max_batch_bytes == 0 {
            return Err(
                "[source.kafka] max_batch_records and max_batch_bytes must be at least 1".into(),
            );
        }
        if let Some(m) = &self.sasl_mechanism {
            let known = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
            if !known.contains(&m.to_ascii_uppercase().as_str()) {
                return Err(format!(
                    "[source.kafka] sasl_mechanism `{m}` is not one of {}",
                    known.join(", ")
                ));
            }
            if self.sasl_username.is_none() || self.sasl_password_env.is_none() {
                return Err("[source.kafka] sasl_mechanism needs sasl_username and sasl_password_env (the name of the environment variable holding the password)".into());
            }
        }
        Ok(())
    }
}

/// How a load changes the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Add the new files' rows (default).
    #[default]
    Append,
    /// Replace the table's rows with the matched files' rows.
    Overwrite,
    /// Upsert on `merge_keys`.
    Merge,
}

/// What to do when newer files have columns the table lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// Add new columns (nullable) to the table.
    #[default]
    AddColumns,
    /// Refuse files whose columns differ from the table.
    Strict,
}

/// CSV format options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    #[serde(default = "comma")]
    pub delimiter: String,
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default = "dquote")]
    pub quote: String,
    /// Field values that mean NULL (default: the empty field).
    #[serde(default = "empty_null")]
    pub null_values: Vec<String>,
    /// chrono format for timestamp columns (default: ISO 8601 / RFC 3339).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// A record longer than this (bytes, line break excluded) is rejected, and
    /// a quoted field still open after this many bytes is a quote never closed.
    #[serde(default = "max_record_bytes")]
    pub max_record_bytes: usize,
}

/// Default `max_record_bytes`: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

fn max_record_bytes() -> usize {
    DEFAULT_MAX_RECORD_BYTES
}

fn comma() -> String {
    ",".into()
}
fn yes() -> bool {
    true
}
fn dquote() -> String {
    "\"".into()
}
fn empty_null() -> Vec<String> {
    vec![String::new()]
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: comma(),
            header: true,
            quote: dquote(),
            null_values: empty_null(),
            timestamp_format: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl CsvOptions {
    /// The delimiter as one byte (`\t` is accepted for tab).
    pub fn delimiter_byte(&self) -> Option<u8> {
        single_byte(&self.delimiter)
    }
    /// The quote as one byte.
    pub fn quote_byte(&self) -> Option<u8> {
        single_byte(&self.quote)
    }
}

fn single_byte(s: &str) -> Option<u8> {
    match s {
        "\\t" | "\t" => Some(b'\t'),
        _ if s.len() == 1 => s.bytes().next(),
        _ => None,
    }
}

/// NDJSON format options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonOptions {
    /// A line longer than this (bytes, line break excluded) is rejected with its
    /// first this-many bytes as raw text, and reading resumes after it.
    #[serde(default = "max_line_bytes")]
    pub max_line_bytes: usize,
}

/// Default `max_line_bytes`: 16 MiB (DuckDB's `maximum_object_size`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

fn max_line_bytes() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

impl Default for NdjsonOptions {
    fn default() -> Self {
        NdjsonOptions {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// A declared column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub not_null: bool,
    #[serde(skip)]
    pub data_type: Option<DataType>,
}

/// One `[[source]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDecl {
    pub name: String,
    pub format: SourceFormat,
    /// `files` (default) or `kafka`.
    #[serde(default)]
    pub kind: SourceKind,
    /// Path or glob (relative to the project root, absolute, or an object-store
    /// URI); files sources only.
    #[serde(default)]
    pub location: String,
    /// Kafka sources only.
    #[serde(default)]
    pub kafka: Option<KafkaOptions>,
    /// `schema.table`; default `raw.<name>`.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub merge_keys: Vec<String>,
    #[serde(default)]
    pub schema_evolution: SchemaEvolution,
    #[serde(default)]
    pub max_rejected: Option<u64>,
    #[serde(default)]
    pub csv: CsvOptions,
    #[serde(default)]
    pub ndjson: NdjsonOptions,
    #[serde(default)]
    pub columns: Vec<ColumnDecl>,
    /// File that declared this source (for error messages).
    #[serde(skip)]
    pub declared_in: std::path::PathBuf,
}

impl SourceDecl {
    /// `(schema, table)` of the target.
    pub fn target(&self) -> (String, String) {
        match &self.target {
            Some(t) => match crate::names::split_table(t) {
                Some((Some(s), n)) => (s.to_string(), n.to_string()),
                _ => ("raw".to_string(), t.clone()),
            },
            None => ("raw".to_string(), self.name.clone()),
        }
    }

    /// The target as `schema.table`.
    pub fn target_name(&self) -> String {
        let (s, t) = self.target();
        format!("{s}.{t}")
    }

    fn validate(&mut self) -> Result<()> {
        let file = self.declared_in.clone();
        let bad = |msg: String| Error::config(&file, format!("source `{}`: {msg}", self.name));
        if !crate::names::is_identifier(&self.name) {
            return Err(Error::config(
                &file,
                format!(
                    "source name `{}` must use lowercase letters, digits and _",
                    self.name
                ),
            ));
        }
        let (schema, table) = self.target();
        if !crate::names::is_identifier(&schema) || !crate::names::is_identifier(&table) {
            return Err(bad(format!(
                "target `{}` must be `schema.table` with lowercase letters, digits and _",
                self.target_name()
            )));
        }
        match (self.kind, &mut self.kafka) {
            (SourceKind::Files, Some(_)) => return Err(bad(
                "has [source.kafka] but no `kind = \"kafka\"`; add it, or remove [source.kafka]"
                    .into(),
            )),
            (SourceKind::Files, None) => {
                if self.location.trim().is_empty() {
                    return Err(bad(
                        "needs `location` (a path, glob or s3://... URI of its files)".into(),
                    ));
                }
                if self.format == SourceFormat::Bytes {
                    return Err(bad(
                        "format = \"bytes\" is for kafka sources; files are csv, ndjson or parquet"
                            .into(),
                    ));
                }
            }
            (SourceKind::Kafka, None) => return Err(bad(
                "kind = \"kafka\" needs a [source.kafka] table with bootstrap_servers and topic"
                    .into(),
            )),
            (SourceKind::Kafka, Some(k)) => {
                k.validate().map_err(&bad)?;
                if !self.location.is_empty() {
                    return Err(bad(
                        "a kafka source reads its topic, not `location`; remove `location`".into(),
                    ));
                }
                if self.format == SourceFormat::Parquet {
                    return Err(bad(
                        "kafka sources are format = \"json\", \"csv\" or \"bytes\"".into(),
                    ));
                }
                if self.mode != LoadMode::Append {
                    return Err(bad(
                        "kafka sources append (each record once); remove `mode`".into(),
                    ));
                }
                if self.format != SourceFormat::Bytes && self.columns.is_empty() {
                    return Err(bad("a kafka source needs its columns declared ([[source.columns]] with name and type): records are decoded as they arrive, with no file to infer them from".into()));
                }
            }
        }
        if self.mode == LoadMode::Merge && self.merge_keys.is_empty() {
            return Err(bad(
                "mode = \"merge\" needs merge_keys = [\"col\", ...]".into()
            ));
        }
        if self.csv.delimiter_byte().is_none() {
            return Err(bad(format!(
                "csv.delimiter `{}` must be a single character",
                self.csv.delimiter
            )));
        }
        if self.csv.quote_byte().is_none() {
            return Err(bad(format!(
                "csv.quote `{}` must be a single character",
                self.csv.quote
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for col in &mut self.columns {
            if !seen.insert(col.name.clone()) {
                return Err(Error::config(
                    &file,
                    format!(
                        "source `{}`: column `{}` is declared twice",
                        self.name, col.name
                    ),
                ));
            }
            col.data_type = Some(parse_type(&col.type_name).map_err(|m| {
                Error::config(
                    &file,
                    format!("source `{}`, column `{}`: {m}", self.name, col.name),
                )
            })?);
        }
        for key in &self.merge_keys {
            if !self.columns.is_empty() && !self.columns.iter().any(|c| &c.name == key) {
                let names = self.columns.iter().map(|c| c.name.as_str());
                return Err(bad(format!(
                    "merge key `{key}` is not a declared column{}",
                    did_you_mean(key, names)
                )));
            }
        }
        Ok(())
    }
}

const TYPE_NAMES: &str = "bigint, int, smallint, tinyint, double, float, decimal(p,s), boolean, varchar, string, date, timestamp, timestamptz";

/// Parses a SQL type name as used in source declarations.
pub fn parse_type(name: &str) -> Result<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    let dt = match lower.as_str() {
        "bigint" | "int64" | "long" => DataType::Int64,
        "int" | "integer" | "int32" => DataType::Int32,
        "smallint" | "int16" => DataType::Int16,
        "tinyint" | "int8" => DataType::Int8,
        "double" | "float64" | "double precision" => DataType::Float64,
        "float" | "real" | "float32" => DataType::Float32,
        "boolean" | "bool" => DataType::Boolean,
        "varchar" | "string" | "text" | "utf8" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => {
            if let Some(args) = lower
                .strip_prefix("decimal(")
                .or_else(|| lower.strip_prefix("numeric("))
                .and_then(|r| r.strip_suffix(')'))
            {
                let (p, s) = args.split_once(',').unwrap_or((args, "0"));
                let p: u8 = p.trim().parse().map_err(|_| bad_type(name))?;
                let s: i8 = s.trim().parse().map_err(|_| bad_type(name))?;
                if p == 0 || p > 38 || s < 0 || s as u8 > p {
                    return Err(Error::invalid(format!(
                        "decimal({p},{s}) is out of range: precision 1..=38, 0 <= scale <= precision"
                    )));
                }
                DataType::Decimal128(p, s)
            } else {
                return Err(bad_type(name));
            }
        }
    };
    Ok(dt)
}

fn bad_type(name: &str) -> Error {
    Error::invalid(format!("unknown type `{name}`; use one of {TYPE_NAMES}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    source: Vec<SourceDecl>,
}

/// Reads every `*.toml` in `dir` (sorted by name). A missing folder means no sources.
pub(crate) fn load_catalog(dir: &Path) -> Result<Vec<SourceDecl>> {
    let mut files = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    files.sort();
    let mut out: Vec<SourceDecl> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        parse_catalog(&text, &file, &mut out)?;
    }
    Ok(out)
}

/// Parses the text of one catalog file, `file`, adding its sources (validated)
/// to those already declared in `out`.
pub fn parse_catalog(text: &str, file: &Path, out: &mut Vec<SourceDecl>) -> Result<()> {
    let parsed: CatalogFile =
        toml::from_str(text).map_err(|e| Error::config(file, super::line_of(text, &e)))?;
    for mut src in parsed.source {
        src.declared_in = file.to_path_buf();
        src.validate()?;
        if let Some(prev) = out.iter().find(|s| s.name == src.name) {
            return Err(Error::config(
                file,
                format!(
                    "source `{}` is already declared in {}",
                    src.name,
                    prev.declared_in.display()
                ),
            ));
        }
        out.push(src);
    }
    Ok(())
}

/// `catalog/sources.toml` written by `sluice init`.
pub(crate) const SKELETON: &str = r#"# One [[source]] per raw data set. `sluice load` loads them into raw.<name>.
[[source]]
name = "events"
format = "csv"                        # csv | ndjson | parquet
location = "catalog/data/events/*.csv"  # a folder per source: path or glob, or s3://bucket/prefix/*.csv
mode = "append"                       # append | overwrite | merge (with merge_keys)

[source.csv]
header = true
delimiter = ","

[[source.columns]]
name = "event_id"
type = "bigint"
not_null = true

[[source.columns]]
name = "user_id"
type = "bigint"

[[source.columns]]
name = "kind"
type = "varchar"

[[source.columns]]
name = "ts"
type = "timestamptz"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types() {
        assert_eq!(parse_type("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(
            parse_type("decimal(12, 2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert!(parse_type("decimal(50,2)").is_err());
        assert!(parse_type("blob")
            .unwrap_err()
            .to_string()
            .contains("unknown type `blob`"));
    }

    #[test]
    fn merge_needs_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.toml"),
            "[[source]]\nname='a'\nformat='csv'\nlocation='x.csv'\nmode='merge'\n",
        )
        .unwrap();
        let err = load_catalog(dir.path()).unwrap_err().to_string();
        assert!(err.contains("merge_keys"), "{err}");
    }

    #[test]
    fn unknown_source_key_is_reported_with_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.toml"),
            "[[source]]\nname='a'\nformat='csv'\nlocaton='x.csv'\n",
        )
        .unwrap();
        let err = load_catalog(dir.path()).unwrap_err().to_string();
        assert!(err.contains("did you mean `location`?"), "{err}");
    }
}
