//! OpenLineage run events: what a load, a model run or a materialization
//! read and wrote, sent to a file or an HTTP endpoint.
//!
//! Each run sends a `START` event and then one `COMPLETE` or `FAIL` event
//! under the same `run.runId` ([`run_event`] builds them, [`Emitter`] sends
//! them). The JSON follows the OpenLineage spec as written by
//! `openlineage-python` 1.54 (the test suite validates it with that package,
//! `tests/python/openlineage_check.py`):
//!
//! | where | facet | from |
//! |-------|-------|------|
//! | `run.facets` | `processing_engine` (name `sluice`, our version) | always |
//! | `run.facets` | `parent` | [`RunInfo::parent`] |
//! | `run.facets` | `errorMessage` (`programmingLanguage` `RUST`) | `FAIL` events |
//! | `job.facets` | `jobType` (`BATCH`, integration `SLUICE`, [`Job::job_type`]) | always |
//! | `job.facets` | `sql` | [`Job::sql`] |
//! | input/output `facets` | `schema` | [`Dataset::fields`] |
//! | output `facets` | `columnLineage` | [`Dataset::column_lineage`] |
//! | input `inputFacets` | `dataQualityMetrics` (the input-dataset facet) | [`Dataset::quality`] |
//! | output `facets` | `dataQualityMetrics` (the dataset facet: the spec's input facet may not sit on an output) | [`Dataset::quality`] |
//! | input `inputFacets` | `dataQualityAssertions` | [`Dataset::assertions`] |
//! | output `outputFacets` | `outputStatistics` | [`Dataset::output_rows`], [`Dataset::output_bytes`] |
//!
//! A facet with no data is left out. What the spec has no place for is not
//! sent: column lineage of an input (it describes how *this run* produced an
//! output's columns), assertions on an output (`dataQualityAssertions` is an
//! input-dataset facet: a run that tests the table it wrote lists that table
//! as an input too, as dbt's integration does), output statistics of an input.
//!
//! ## Configuration (`[lineage]` in sluice.toml)
//!
//! ```toml
//! [lineage]
//! file = "target/lineage.jsonl"          # one JSON event per line, appended; relative to the project
//! url = "http://marquez:5000"            # POST {url}/api/v1/lineage
//! api_key = "..."                        # optional: Authorization: Bearer <api_key>
//! namespace = "analytics"                # job namespace (default "sluice")
//! timeout_ms = 5000                      # per HTTP attempt (default 5000)
//! retries = 3                            # extra HTTP attempts (default 3, at most 10)
//! ```
//!
//! Neither `file` nor `url`: no events. Both: every event goes to both.
//!
//! The HTTP endpoint: a `url` without a path (or with `/` alone) gets the
//! OpenLineage API path `/api/v1/lineage` appended, as openlineage-python's
//! HTTP transport does with its default `endpoint`; a `url` with any other
//! path is used exactly as written (`http://host/api/v1/lineage`,
//! `https://gateway/openapi/openlineage/api/v1/lineage`, ...). The body is the
//! event as JSON (`Content-Type: application/json`).
//!
//! ## Delivery
//!
//! [`Emitter::emit`] never fails the run: every problem is logged with
//! `tracing::warn!` (naming the file or URL, the job and the HTTP status and
//! the start of the answer's body) and the event is dropped. HTTP attempts
//! are retried after 200 ms · 2^i on connection errors, timeouts, 429 and
//! 5xx; any other 4xx is final. `emit` returns once the event is written or
//! given up on, so there is nothing to flush and dropping an [`Emitter`]
//! loses nothing; the longest it takes against an endpoint that accepts
//! connections and never answers is `timeout · (retries + 1)` plus the
//! backoff (21.4 s with the defaults). A caller that must not wait can
//! `tokio::spawn` the emit on a clone (an [`Emitter`] is a cheap handle).
//!
//! Lines of one [`Emitter`] (and its clones) never interleave in the file:
//! writes hold a lock and append the whole line with one `write_all` on a file
//! opened for appending.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// `producer` and every facet's `_producer`.
pub const PRODUCER: &str = concat!(
    "https://github.com/sluice-dev/sluice/tree/",
    env!("CARGO_PKG_VERSION")
);
/// The OpenLineage API path appended to a `url` that has none.
pub const LINEAGE_PATH: &str = "/api/v1/lineage";
/// The job namespace when `[lineage] namespace` is not set.
pub const DEFAULT_NAMESPACE: &str = "sluice";
/// `jobType.integration`.
pub const INTEGRATION: &str = "SLUICE";
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_RETRIES: u32 = 3;
pub const MAX_RETRIES: u32 = 10;
const BACKOFF_BASE_MS: u64 = 200;
/// How much of an error answer's body is logged.
const SNIPPET_CHARS: usize = 200;

/// The `schemaURL` / `_schemaURL` values, as openlineage-python 1.54 writes them.
pub mod schema_url {
    pub const RUN_EVENT: &str =
        "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
    pub const PARENT: &str =
        "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
    pub const ERROR_MESSAGE: &str =
        "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
    pub const PROCESSING_ENGINE: &str =
        "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
    pub const JOB_TYPE: &str =
        "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
    pub const SQL: &str =
        "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
    pub const SCHEMA: &str =
        "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
    pub const COLUMN_LINEAGE: &str =
        "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
    /// `dataQualityMetrics` in an input's `inputFacets`.
    pub const DATA_QUALITY_METRICS_INPUT: &str = "https://openlineage.io/spec/facets/1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet";
    /// `dataQualityMetrics` in a dataset's `facets` (used for outputs).
    pub const DATA_QUALITY_METRICS: &str = "https://openlineage.io/spec/facets/1-0-1/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet";
    pub const DATA_QUALITY_ASSERTIONS: &str = "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
    pub const OUTPUT_STATISTICS: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
}

// ------------------------------------------------------------------ data

/// A column of a dataset's schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    pub name: String,
    /// The type as sluice shows it (Arrow's display, e.g. `Int64`, `Utf8`).
    pub r#type: String,
    pub description: Option<String>,
}

impl Field {
    pub fn new(name: impl Into<String>, r#type: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            r#type: r#type.into(),
            description: None,
        }
    }
}

/// How an input column reaches an output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformKind {
    /// The value is copied (`DIRECT` / `IDENTITY`).
    Copied,
    /// The value is computed from the input (`DIRECT` / `TRANSFORMATION`).
    Transformed,
    /// The value is an aggregate of the input (`DIRECT` / `AGGREGATION`).
    Aggregated,
    /// The input decides which rows there are (`INDIRECT` / `FILTER`).
    Filter,
}

impl TransformKind {
    /// OpenLineage's `(type, subtype)`.
    pub fn openlineage(self) -> (&'static str, &'static str) {
        match self {
            TransformKind::Copied => ("DIRECT", "IDENTITY"),
            TransformKind::Transformed => ("DIRECT", "TRANSFORMATION"),
            TransformKind::Aggregated => ("DIRECT", "AGGREGATION"),
            TransformKind::Filter => ("INDIRECT", "FILTER"),
        }
    }
}

/// One input column an output column depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputField {
    /// The input dataset's namespace and name, as in its [`Dataset`].
    pub namespace: String,
    pub name: String,
    pub field: String,
    pub kind: TransformKind,
}

/// The inputs of one output column. Entries naming the same column are
/// merged, and so are the kinds of one input column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnLineage {
    pub field: String,
    /// Empty for a column computed from no input (a constant).
    pub inputs: Vec<InputField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnMetrics {
    pub null_count: Option<u64>,
    pub distinct_count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QualityMetrics {
    pub row_count: Option<u64>,
    pub bytes: Option<u64>,
    pub file_count: Option<u64>,
    /// Per column; columns with no metric are left out of the event.
    pub columns: BTreeMap<String, ColumnMetrics>,
}

/// The result of one data test (`not_null`, `unique`, `row_count`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub assertion: String,
    /// `true`: the test found no issue.
    pub success: bool,
    /// `None`: the test is about the whole dataset.
    pub column: Option<String>,
}

/// A dataset read or written by a run. See the module docs for which fields
/// become which facet on an input and on an output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
    pub fields: Vec<Field>,
    /// Outputs only.
    pub column_lineage: Vec<ColumnLineage>,
    pub quality: Option<QualityMetrics>,
    /// Inputs only.
    pub assertions: Vec<Assertion>,
    /// Outputs only: rows written by this run.
    pub output_rows: Option<u64>,
    /// Outputs only: bytes written by this run.
    pub output_bytes: Option<u64>,
}

impl Dataset {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Dataset {
        Dataset {
            namespace: namespace.into(),
            name: name.into(),
            ..Dataset::default()
        }
    }
}

/// The job a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub namespace: String,
    /// e.g. the model's or the table's qualified name.
    pub name: String,
    /// The statement the job runs (the `sql` job facet).
    pub sql: Option<String>,
    /// `jobType.jobType`: `"MODEL"`, `"LOAD"` or `"MATERIALIZE"`.
    pub job_type: &'static str,
}

/// The run that started this one (e.g. the `sluice build` around a model run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRun {
    pub namespace: String,
    pub name: String,
    pub run_id: Uuid,
}

impl ParentRun {
    pub fn of(job: &Job, run: &RunInfo) -> ParentRun {
        ParentRun {
            namespace: job.namespace.clone(),
            name: job.name.clone(),
            run_id: run.run_id,
        }
    }
}

/// One run of a job: the same `run_id` in its `START` and its final event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: Uuid,
    pub parent: Option<ParentRun>,
}

impl RunInfo {
    /// A new run (random v4 id) without a parent.
    pub fn new() -> RunInfo {
        RunInfo {
            run_id: Uuid::new_v4(),
            parent: None,
        }
    }

    /// A new run started by `parent_run` of `parent_job`.
    pub fn child_of(parent_job: &Job, parent_run: &RunInfo) -> RunInfo {
        RunInfo {
            run_id: Uuid::new_v4(),
            parent: Some(ParentRun::of(parent_job, parent_run)),
        }
    }
}

impl Default for RunInfo {
    fn default() -> RunInfo {
        RunInfo::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Start,
    Complete,
    Fail,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
        }
    }
}

// ------------------------------------------------------------------ events

fn facet(schema_url: &str, body: Value) -> Value {
    let mut m = Map::new();
    m.insert("_producer".into(), Value::from(PRODUCER));
    m.insert("_schemaURL".into(), Value::from(schema_url));
    if let Value::Object(body) = body {
        m.extend(body);
    }
    Value::Object(m)
}

fn schema_facet(fields: &[Field]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("name".into(), Value::from(f.name.as_str()));
            m.insert("type".into(), Value::from(f.r#type.as_str()));
            if let Some(d) = &f.description {
                m.insert("description".into(), Value::from(d.as_str()));
            }
            Value::Object(m)
        })
        .collect();
    facet(schema_url::SCHEMA, json!({ "fields": fields }))
}

/// (namespace, name, field, kinds) of the inputs of one output column.
type LineageInputs<'a> = Vec<(&'a str, &'a str, &'a str, Vec<TransformKind>)>;

fn column_lineage_facet(lineage: &[ColumnLineage]) -> Value {
    // output field -> [(namespace, name, field, kinds)], merged, first-seen order
    let mut by_field: BTreeMap<&str, LineageInputs<'_>> = BTreeMap::new();
    for cl in lineage {
        let inputs = by_field.entry(cl.field.as_str()).or_default();
        for inp in &cl.inputs {
            let found = inputs.iter_mut().find(|(ns, name, field, _)| {
                *ns == inp.namespace.as_str()
                    && *name == inp.name.as_str()
                    && *field == inp.field.as_str()
            });
            match found {
                Some((_, _, _, kinds)) => {
                    if !kinds.contains(&inp.kind) {
                        kinds.push(inp.kind);
                    }
                }
                None => inputs.push((
                    inp.namespace.as_str(),
                    inp.name.as_str(),
                    inp.field.as_str(),
                    vec![inp.kind],
                )),
            }
        }
    }
    let mut fields = Map::new();
    for (field, inputs) in by_field {
        let input_fields: Vec<Value> = inputs
            .into_iter()
            .map(|(ns, name, f, kinds)| {
                let transformations: Vec<Value> = kinds
                    .into_iter()
                    .map(|k| {
                        let (t, sub) = k.openlineage();
                        json!({ "type": t, "subtype": sub })
                    })
                    .collect();
                json!({ "namespace": ns, "name": name, "field": f, "transformations": transformations })
            })
            .collect();
        fields.insert(field.to_string(), json!({ "inputFields": input_fields }));
    }
    facet(schema_url::COLUMN_LINEAGE, json!({ "fields": fields }))
}

fn quality_facet(schema_url: &str, q: &QualityMetrics) -> Value {
    let mut columns = Map::new();
    for (name, c) in &q.columns {
        let mut m = Map::new();
        if let Some(n) = c.null_count {
            m.insert("nullCount".into(), Value::from(n));
        }
        if let Some(n) = c.distinct_count {
            m.insert("distinctCount".into(), Value::from(n));
        }
        if !m.is_empty() {
            columns.insert(name.clone(), Value::Object(m));
        }
    }
    let mut body = Map::new();
    if let Some(n) = q.row_count {
        body.insert("rowCount".into(), Value::from(n));
    }
    if let Some(n) = q.bytes {
        body.insert("bytes".into(), Value::from(n));
    }
    if let Some(n) = q.file_count {
        body.insert("fileCount".into(), Value::from(n));
    }
    // required by the spec, even when empty
    body.insert("columnMetrics".into(), Value::Object(columns));
    facet(schema_url, Value::Object(body))
}

fn assertions_facet(assertions: &[Assertion]) -> Value {
    let list: Vec<Value> = assertions
        .iter()
        .map(|a| {
            let mut m = Map::new();
            m.insert("assertion".into(), Value::from(a.assertion.as_str()));
            m.insert("success".into(), Value::from(a.success));
            if let Some(c) = &a.column {
                m.insert("column".into(), Value::from(c.as_str()));
            }
            Value::Object(m)
        })
        .collect();
    facet(
        schema_url::DATA_QUALITY_ASSERTIONS,
        json!({ "assertions": list }),
    )
}

fn dataset_json(
    d: &Dataset,
    facets: Map<String, Value>,
    extra_key: &str,
    extra: Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("namespace".into(), Value::from(d.namespace.as_str()));
    m.insert("name".into(), Value::from(d.name.as_str()));
    if !facets.is_empty() {
        m.insert("facets".into(), Value::Object(facets));
    }
    if !extra.is_empty() {
        m.insert(extra_key.into(), Value::Object(extra));
    }
    Value::Object(m)
}

fn input_json(d: &Dataset) -> Value {
    let mut facets = Map::new();
    if !d.fields.is_empty() {
        facets.insert("schema".into(), schema_facet(&d.fields));
    }
    let mut input_facets = Map::new();
    if let Some(q) = &d.quality {
        input_facets.insert(
            "dataQualityMetrics".into(),
            quality_facet(schema_url::DATA_QUALITY_METRICS_INPUT, q),
        );
    }
    if !d.assertions.is_empty() {
        input_facets.insert(
            "dataQualityAssertions".into(),
            assertions_facet(&d.assertions),
        );
    }
    dataset_json(d, facets, "inputFacets", input_facets)
}

fn output_json(d: &Dataset) -> Value {
    let mut facets = Map::new();
    if !d.fields.is_empty() {
        facets.insert("schema".into(), schema_facet(&d.fields));
    }
    if !d.column_lineage.is_empty() {
        facets.insert(
            "columnLineage".into(),
            column_lineage_facet(&d.column_lineage),
        );
    }
    if let Some(q) = &d.quality {
        facets.insert(
            "dataQualityMetrics".into(),
            quality_facet(schema_url::DATA_QUALITY_METRICS, q),
        );
    }
    let mut output_facets = Map::new();
    if d.output_rows.is_some() || d.output_bytes.is_some() {
        let mut s = Map::new();
        if let Some(n) = d.output_rows {
            s.insert("rowCount".into(), Value::from(n));
        }
        if let Some(n) = d.output_bytes {
            s.insert("size".into(), Value::from(n));
        }
        output_facets.insert(
            "outputStatistics".into(),
            facet(schema_url::OUTPUT_STATISTICS, Value::Object(s)),
        );
    }
    dataset_json(d, facets, "outputFacets", output_facets)
}

/// One OpenLineage `RunEvent`. `error` is the `errorMessage` of a `Fail`
/// event (`"run failed"` when `None`); other kinds ignore it.
pub fn run_event(
    kind: EventType,
    time: DateTime<Utc>,
    job: &Job,
    run: &RunInfo,
    inputs: &[Dataset],
    outputs: &[Dataset],
    error: Option<&str>,
) -> Value {
    let mut run_facets = Map::new();
    run_facets.insert(
        "processing_engine".into(),
        facet(
            schema_url::PROCESSING_ENGINE,
            json!({ "name": "sluice", "version": env!("CARGO_PKG_VERSION") }),
        ),
    );
    if let Some(p) = &run.parent {
        run_facets.insert(
            "parent".into(),
            facet(
                schema_url::PARENT,
                json!({
                    "run": { "runId": p.run_id.to_string() },
                    "job": { "namespace": p.namespace, "name": p.name },
                }),
            ),
        );
    }
    if kind == EventType::Fail {
        run_facets.insert(
            "errorMessage".into(),
            facet(
                schema_url::ERROR_MESSAGE,
                json!({ "message": error.unwrap_or("run failed"), "programmingLanguage": "RUST" }),
            ),
        );
    }

    let mut job_facets = Map::new();
    job_facets.insert(
        "jobType".into(),
        facet(
            schema_url::JOB_TYPE,
            json!({ "processingType": "BATCH", "integration": INTEGRATION, "jobType": job.job_type }),
        ),
    );
    if let Some(sql) = job.sql.as_deref().filter(|s| !s.trim().is_empty()) {
        job_facets.insert(
            "sql".into(),
            facet(schema_url::SQL, json!({ "query": sql })),
        );
    }

    let inputs: Vec<Value> = inputs.iter().map(input_json).collect();
    let outputs: Vec<Value> = outputs.iter().map(output_json).collect();
    json!({
        "eventType": kind.as_str(),
        "eventTime": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": schema_url::RUN_EVENT,
        "run": { "runId": run.run_id.to_string(), "facets": run_facets },
        "job": { "namespace": job.namespace, "name": job.name, "facets": job_facets },
        "inputs": inputs,
        "outputs": outputs,
    })
}

// ------------------------------------------------------------------ emitter

/// The `[lineage]` section of sluice.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageConfig {
    /// Append one JSON event per line here (relative to the project root).
    pub file: Option<PathBuf>,
    /// POST events here (`http` or `https`); see the module docs for the path.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer <api_key>`.
    pub api_key: Option<String>,
    /// The job namespace (default [`DEFAULT_NAMESPACE`]).
    pub namespace: Option<String>,
    /// Per HTTP attempt (default [`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: Option<u64>,
    /// Extra HTTP attempts (default [`DEFAULT_RETRIES`], at most [`MAX_RETRIES`]).
    pub retries: Option<u32>,
}

/// Sends events to the configured file and/or endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    file: Option<FileSink>,
    http: Option<HttpSink>,
}

struct FileSink {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

struct HttpSink {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: Option<String>,
    retries: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("namespace", &self.inner.namespace)
            .field("file", &self.inner.file.as_ref().map(|s| &s.path))
            .field(
                "url",
                &self.inner.http.as_ref().map(|h| redacted(&h.endpoint)),
            )
            .field(
                "api_key",
                &self.inner.http.as_ref().map(|h| h.api_key.is_some()),
            )
            .finish()
    }
}

/// `url`'s endpoint: `/api/v1/lineage` appended to a URL without a path,
/// any other URL as written.
fn endpoint_of(url: &str) -> Result<reqwest::Url, String> {
    let mut parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("[lineage] url {url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("[lineage] url {url:?} must be http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("[lineage] url {url:?} has no host"));
    }
    if parsed.path().is_empty() || parsed.path() == "/" {
        parsed.set_path(LINEAGE_PATH);
    }
    Ok(parsed)
}

/// Most one HTTP attempt may take.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// `url` without its user, password and query, for log lines.
fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

impl Emitter {
    /// `Ok(None)` when neither `file` nor `url` is set.
    pub fn new(config: &LineageConfig, project_root: &Path) -> Result<Option<Emitter>, String> {
        if config.api_key.is_some() && config.url.is_none() {
            return Err("[lineage] api_key is set but url is not".into());
        }
        if config.file.is_none() && config.url.is_none() {
            return Ok(None);
        }
        let namespace = match &config.namespace {
            Some(ns) if ns.trim().is_empty() => return Err("[lineage] namespace is empty".into()),
            Some(ns) => ns.clone(),
            None => DEFAULT_NAMESPACE.to_string(),
        };
        let file = match &config.file {
            Some(p) if p.as_os_str().is_empty() => return Err("[lineage] file is empty".into()),
            Some(p) => Some(FileSink {
                path: if p.is_absolute() {
                    p.clone()
                } else {
                    project_root.join(p)
                },
                lock: Arc::new(Mutex::new(())),
            }),
            None => None,
        };
        let http = match &config.url {
            None => None,
            Some(url) => {
                let endpoint = endpoint_of(url)?;
                let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
                if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
                    return Err(format!(
                        "[lineage] timeout_ms must be between 1 and {MAX_TIMEOUT_MS} (one attempt; a command waits at most 30 s for its events)"
                    ));
                }
                let retries = config.retries.unwrap_or(DEFAULT_RETRIES);
                if retries > MAX_RETRIES {
                    return Err(format!("[lineage] retries must be at most {MAX_RETRIES}"));
                }
                if config
                    .api_key
                    .as_deref()
                    .is_some_and(|k| k.trim().is_empty())
                {
                    return Err("[lineage] api_key is empty".into());
                }
                let timeout = Duration::from_millis(timeout_ms);
                // Several rustls crypto providers are compiled in: choose one
                // (reqwest is built without a provider of its own).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
                if is_loopback(&endpoint) {
                    builder = builder.no_proxy();
                }
                let client = builder
                    .build()
                    .map_err(|e| format!("[lineage] cannot build the HTTP client: {e}"))?;
                Some(HttpSink {
                    client,
                    endpoint,
                    api_key: config.api_key.clone(),
                    retries,
                    timeout,
                })
            }
        };
        Ok(Some(Emitter {
            inner: Arc::new(Inner {
                namespace,
                file,
                http,
            }),
        }))
    }

    /// The namespace for jobs (`[lineage] namespace`, default [`DEFAULT_NAMESPACE`]).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The file events are appended to, if any.
    pub fn file(&self) -> Option<&Path> {
        self.inner.file.as_ref().map(|f| f.path.as_path())
    }

    /// The URL events are POSTed to, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.http.as_ref().map(|h| h.endpoint.as_str())
    }

    /// Send one event to every configured destination. Never fails: problems
    /// are logged (`tracing::warn!`) and the event is dropped.
    pub async fn emit(&self, event: &Value) {
        let label = job_label(event);
        let line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("lineage: event of {label} not sent: cannot serialize it: {e}");
                return;
            }
        };
        let to_file = async {
            if let Some(f) = &self.inner.file {
                f.append(&line, &label).await;
            }
        };
        let to_http = async {
            if let Some(h) = &self.inner.http {
                h.post(bytes::Bytes::from(line.clone()), &label).await;
            }
        };
        tokio::join!(to_file, to_http);
    }

    /// [`run_event`] at the current time, then [`Emitter::emit`].
    pub async fn emit_run(
        &self,
        kind: EventType,
        job: &Job,
        run: &RunInfo,
        inputs: &[Dataset],
        outputs: &[Dataset],
        error: Option<&str>,
    ) {
        let event = run_event(kind, Utc::now(), job, run, inputs, outputs, error);
        self.emit(&event).await;
    }
}

/// `namespace/name EVENTTYPE` of an event, for log lines.
fn job_label(event: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    format!(
        "job {}/{} ({})",
        s(&event["job"]["namespace"]),
        s(&event["job"]["name"]),
        s(&event["eventType"])
    )
}

impl FileSink {
    async fn append(&self, line: &[u8], label: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let path = self.path.clone();
        let lock = Arc::clone(&self.lock);
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&buf)?;
            Ok(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                "lineage: event of {label} not written to {}: {e}",
                self.path.display()
            ),
            Err(e) => tracing::warn!(
                "lineage: event of {label} not written to {}: {e}",
                self.path.display()
            ),
        }
    }
}

/// 200 ms · 2^i.
fn backoff(i: u32) -> Duration {
    Duration::from_millis(BACKOFF_BASE_MS.saturating_mul(1u64 << i.min(MAX_RETRIES)))
}

/// The start of an answer's body, on one line.
async fn snippet(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < SNIPPET_CHARS * 4 {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > SNIPPET_CHARS {
        let cut: String = one_line.chars().take(SNIPPET_CHARS).collect();
        format!("{cut}…")
    } else if one_line.is_empty() {
        "(empty body)".to_string()
    } else {
        one_line
    }
}

impl HttpSink {
    async fn post(&self, body: bytes::Bytes, label: &str) {
        let attempts = self.retries + 1;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 2)).await;
            }
            let mut request = self
                .client
                .post(self.endpoint.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let url = redacted(&self.endpoint);
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        if attempt > 1 {
                            tracing::info!(
                                "lineage: POST {url} for {label} succeeded on attempt {attempt}"
                            );
                        }
                        return;
                    }
                    let retry = status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error();
                    let body = snippet(resp).await;
                    let note = if retry { "" } else { ", not retried" };
                    tracing::warn!(
                        "lineage: POST {url} for {label} answered HTTP {status} \
                         (attempt {attempt}/{attempts}{note}): {body}"
                    );
                    if !retry {
                        return;
                    }
                }
                Err(e) => {
                    let retry = !e.is_builder() && !e.is_redirect();
                    let what = if e.is_timeout() {
                        format!("timed out after {} ms", self.timeout.as_millis())
                    } else if e.is_connect() {
                        "cannot connect".to_string()
                    } else {
                        "failed".to_string()
                    };
                    let note = if retry { "" } else { ", not retried" };
                    tracing::warn!(
                        "lineage: POST {url} for {label} {what} \
                         (attempt {attempt}/{attempts}{note}): {e}"
                    );
                    if !retry {
                        return;
                    }
                }
            }
        }
        tracing::warn!(
            "lineage: event of {label} dropped after {attempts} attempt(s) to POST {}",
            redacted(&self.endpoint)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const NS: &str = "sluice://warehouse";

    fn sample() -> (Job, RunInfo, Vec<Dataset>, Vec<Dataset>) {
        let build = Job {
            namespace: "sluice".into(),
            name: "build".into(),
            sql: None,
            job_type: "MODEL",
        };
        let build_run = RunInfo::new();
        let job = Job {
            namespace: "sluice".into(),
            name: "analytics.user_features".into(),
            sql: Some(
                "SELECT user_id, sum(amount) AS total FROM raw.txn WHERE amount > 0 GROUP BY 1"
                    .into(),
            ),
            job_type: "MODEL",
        };
        let run = RunInfo::child_of(&build, &build_run);
        let mut input = Dataset::new(NS, "raw.txn");
        input.fields = vec![
            Field::new("user_id", "Int64"),
            Field::new("amount", "Decimal128(12, 2)"),
        ];
        input.quality = Some(QualityMetrics {
            row_count: Some(1000),
            bytes: Some(65536),
            file_count: Some(3),
            columns: BTreeMap::from([
                (
                    "user_id".to_string(),
                    ColumnMetrics {
                        null_count: Some(0),
                        distinct_count: Some(17),
                    },
                ),
                ("amount".to_string(), ColumnMetrics::default()),
            ]),
        });
        input.assertions = vec![
            Assertion {
                assertion: "not_null".into(),
                success: true,
                column: Some("user_id".into()),
            },
            Assertion {
                assertion: "row_count".into(),
                success: false,
                column: None,
            },
        ];
        let mut output = Dataset::new(NS, "analytics.user_features");
        output.fields = vec![
            Field::new("user_id", "Int64"),
            Field::new("total", "Decimal128(22, 2)"),
        ];
        let from = |field: &str, kind| InputField {
            namespace: NS.into(),
            name: "raw.txn".into(),
            field: field.into(),
            kind,
        };
        output.column_lineage = vec![
            ColumnLineage {
                field: "user_id".into(),
                inputs: vec![from("user_id", TransformKind::Copied)],
            },
            ColumnLineage {
                field: "total".into(),
                inputs: vec![
                    from("amount", TransformKind::Aggregated),
                    from("amount", TransformKind::Filter),
                    from("amount", TransformKind::Aggregated),
                ],
            },
        ];
        output.output_rows = Some(17);
        output.output_bytes = Some(2048);
        (job, run, vec![input], vec![output])
    }

    fn time() -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339("2026-01-06T12:34:56.789Z") {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn event_shape_and_facet_placement() {
        let (job, run, inputs, outputs) = sample();
        let ev = run_event(
            EventType::Complete,
            time(),
            &job,
            &run,
            &inputs,
            &outputs,
            None,
        );
        assert_eq!(ev["eventType"], "COMPLETE");
        assert_eq!(ev["eventTime"], "2026-01-06T12:34:56.789Z");
        assert_eq!(ev["producer"], PRODUCER);
        assert_eq!(ev["schemaURL"], schema_url::RUN_EVENT);
        assert_eq!(ev["run"]["runId"], run.run_id.to_string());
        assert!(Uuid::parse_str(ev["run"]["runId"].as_str().unwrap()).is_ok());

        let rf = &ev["run"]["facets"];
        assert_eq!(rf["processing_engine"]["name"], "sluice");
        assert_eq!(
            rf["processing_engine"]["version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            rf["processing_engine"]["_schemaURL"],
            schema_url::PROCESSING_ENGINE
        );
        let parent = run.parent.as_ref().unwrap();
        assert_eq!(rf["parent"]["run"]["runId"], parent.run_id.to_string());
        assert_eq!(rf["parent"]["job"]["name"], "build");
        assert!(rf.get("errorMessage").is_none());

        let jf = &ev["job"]["facets"];
        assert_eq!(ev["job"]["name"], "analytics.user_features");
        assert_eq!(jf["jobType"]["processingType"], "BATCH");
        assert_eq!(jf["jobType"]["integration"], "SLUICE");
        assert_eq!(jf["jobType"]["jobType"], "MODEL");
        assert!(jf["sql"]["query"].as_str().unwrap().starts_with("SELECT"));
        assert_eq!(jf["sql"]["_producer"], PRODUCER);

        let input = &ev["inputs"][0];
        assert_eq!(input["namespace"], NS);
        assert_eq!(input["facets"]["schema"]["fields"][1]["name"], "amount");
        assert_eq!(
            input["facets"]["schema"]["fields"][1]["type"],
            "Decimal128(12, 2)"
        );
        assert!(input["facets"]["schema"]["fields"][1]
            .get("description")
            .is_none());
        assert!(input["facets"].get("columnLineage").is_none());
        let dq = &input["inputFacets"]["dataQualityMetrics"];
        assert_eq!(dq["_schemaURL"], schema_url::DATA_QUALITY_METRICS_INPUT);
        assert_eq!(dq["rowCount"], 1000);
        assert_eq!(dq["bytes"], 65536);
        assert_eq!(dq["fileCount"], 3);
        assert_eq!(
            dq["columnMetrics"]["user_id"],
            json!({"nullCount": 0, "distinctCount": 17})
        );
        assert!(
            dq["columnMetrics"].get("amount").is_none(),
            "no metrics, no entry"
        );
        let asserts = &input["inputFacets"]["dataQualityAssertions"]["assertions"];
        assert_eq!(
            asserts[0],
            json!({"assertion": "not_null", "success": true, "column": "user_id"})
        );
        assert_eq!(
            asserts[1],
            json!({"assertion": "row_count", "success": false})
        );
        assert!(input.get("outputFacets").is_none());

        let output = &ev["outputs"][0];
        let cl = &output["facets"]["columnLineage"];
        assert_eq!(cl["_schemaURL"], schema_url::COLUMN_LINEAGE);
        assert_eq!(
            cl["fields"]["user_id"]["inputFields"],
            json!([{"namespace": NS, "name": "raw.txn", "field": "user_id",
                    "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]}])
        );
        // one input field, its kinds merged in first-seen order
        assert_eq!(
            cl["fields"]["total"]["inputFields"],
            json!([{"namespace": NS, "name": "raw.txn", "field": "amount",
                    "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"},
                                        {"type": "INDIRECT", "subtype": "FILTER"}]}])
        );
        let stats = &output["outputFacets"]["outputStatistics"];
        assert_eq!(stats["_schemaURL"], schema_url::OUTPUT_STATISTICS);
        assert_eq!(stats["rowCount"], 17);
        assert_eq!(stats["size"], 2048);
        assert!(output.get("inputFacets").is_none());
        assert!(output["facets"].get("dataQualityMetrics").is_none());
    }

    #[test]
    fn fail_event_and_omitted_facets() {
        let job = Job {
            namespace: "sluice".into(),
            name: "load.txn".into(),
            sql: None,
            job_type: "LOAD",
        };
        let run = RunInfo::new();
        let mut out = Dataset::new(NS, "raw.txn");
        out.quality = Some(QualityMetrics {
            row_count: Some(5),
            ..QualityMetrics::default()
        });
        let ev = run_event(
            EventType::Fail,
            time(),
            &job,
            &run,
            &[],
            &[out],
            Some("bad row 7"),
        );
        assert_eq!(ev["eventType"], "FAIL");
        let em = &ev["run"]["facets"]["errorMessage"];
        assert_eq!(em["message"], "bad row 7");
        assert_eq!(em["programmingLanguage"], "RUST");
        assert_eq!(em["_schemaURL"], schema_url::ERROR_MESSAGE);
        assert!(ev["run"]["facets"].get("parent").is_none());
        assert!(ev["job"]["facets"].get("sql").is_none());
        assert_eq!(ev["inputs"], json!([]));
        let o = &ev["outputs"][0];
        // the dataset facet, not the input facet, on an output; columnMetrics always there
        assert_eq!(
            o["facets"]["dataQualityMetrics"]["_schemaURL"],
            schema_url::DATA_QUALITY_METRICS
        );
        assert_eq!(
            o["facets"]["dataQualityMetrics"]["columnMetrics"],
            json!({})
        );
        assert!(o["facets"].get("schema").is_none());
        assert!(o.get("outputFacets").is_none());

        let ev = run_event(EventType::Fail, time(), &job, &run, &[], &[], None);
        assert_eq!(ev["run"]["facets"]["errorMessage"]["message"], "run failed");
        let ev = run_event(
            EventType::Start,
            time(),
            &job,
            &run,
            &[],
            &[],
            Some("ignored"),
        );
        assert!(ev["run"]["facets"].get("errorMessage").is_none());
        // a bare dataset is just namespace and name
        let ev = run_event(
            EventType::Start,
            time(),
            &job,
            &run,
            &[Dataset::new("file", "/x.csv")],
            &[],
            None,
        );
        assert_eq!(
            ev["inputs"][0],
            json!({"namespace": "file", "name": "/x.csv"})
        );
    }

    #[test]
    fn config() {
        let root = Path::new("/proj");
        assert!(Emitter::new(&LineageConfig::default(), root)
            .unwrap()
            .is_none());
        let cfg: LineageConfig =
            toml::from_str("file = 'target/lineage.jsonl'\nnamespace = 'ana'").unwrap();
        let em = Emitter::new(&cfg, root).unwrap().unwrap();
        assert_eq!(em.file(), Some(Path::new("/proj/target/lineage.jsonl")));
        assert_eq!(em.namespace(), "ana");
        assert_eq!(em.endpoint(), None);
        assert!(toml::from_str::<LineageConfig>("file = 'x'\nbogus = 1").is_err());

        let url = |u: &str| LineageConfig {
            url: Some(u.into()),
            ..LineageConfig::default()
        };
        let ep = |u: &str| {
            Emitter::new(&url(u), root)
                .unwrap()
                .unwrap()
                .endpoint()
                .map(String::from)
        };
        assert_eq!(
            ep("http://marquez:5000").as_deref(),
            Some("http://marquez:5000/api/v1/lineage")
        );
        assert_eq!(
            ep("https://marquez/").as_deref(),
            Some("https://marquez/api/v1/lineage")
        );
        assert_eq!(
            ep("http://h/api/v1/lineage").as_deref(),
            Some("http://h/api/v1/lineage")
        );
        assert_eq!(
            ep("http://h/custom/events?x=1").as_deref(),
            Some("http://h/custom/events?x=1")
        );
        assert!(Emitter::new(&url("ftp://h"), root).is_err());
        assert!(Emitter::new(&url("marquez:5000"), root).is_err());
        assert!(Emitter::new(&url("not a url"), root).is_err());
        let mut c = url("http://h");
        c.timeout_ms = Some(0);
        assert!(Emitter::new(&c, root).is_err());
        let mut c = url("http://h");
        c.retries = Some(MAX_RETRIES + 1);
        assert!(Emitter::new(&c, root).is_err());
        let c = LineageConfig {
            api_key: Some("k".into()),
            file: Some("x".into()),
            ..LineageConfig::default()
        };
        assert!(Emitter::new(&c, root).is_err());
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(800));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_transport_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LineageConfig {
            file: Some("nested/dir/lineage.jsonl".into()),
            ..LineageConfig::default()
        };
        let em = Emitter::new(&cfg, dir.path()).unwrap().unwrap();
        let (job, _, inputs, outputs) = sample();
        let mut handles = Vec::new();
        for _ in 0..16 {
            let em = em.clone();
            let (job, inputs, outputs) = (job.clone(), inputs.clone(), outputs.clone());
            handles.push(tokio::spawn(async move {
                let run = RunInfo::new();
                em.emit_run(EventType::Start, &job, &run, &inputs, &outputs, None)
                    .await;
                em.emit_run(EventType::Complete, &job, &run, &inputs, &outputs, None)
                    .await;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("nested/dir/lineage.jsonl")).unwrap();
        assert!(text.ends_with('\n'));
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 32);
        assert!(events
            .iter()
            .all(|e| e["job"]["name"] == "analytics.user_features"));
        // appended, not truncated, by a second emitter
        let em2 = Emitter::new(&cfg, dir.path()).unwrap().unwrap();
        em2.emit(&events[0]).await;
        let text = std::fs::read_to_string(dir.path().join("nested/dir/lineage.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 33);
    }

    #[tokio::test]
    async fn unwritable_file_does_not_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), b"").unwrap();
        let cfg = LineageConfig {
            file: Some("blocker/lineage.jsonl".into()),
            ..LineageConfig::default()
        };
        let em = Emitter::new(&cfg, dir.path()).unwrap().unwrap();
        em.emit(&json!({"eventType": "START"})).await;
    }

    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// A one-connection-at-a-time HTTP server answering the i-th request
    /// with `statuses[i]` (the last one repeated), `Connection: close`.
    async fn server(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut i = 0usize;
            while let Ok((mut sock, _)) = listener.accept().await {
                let status = statuses.get(i).or(statuses.last()).copied().unwrap_or(200);
                i += 1;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(p) = find(&buf, b"\r\n\r\n") {
                        break p + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break 0,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                if head_end == 0 {
                    continue;
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = buf[head_end..buf.len().min(head_end + len)].to_vec();
                seen2.lock().unwrap().push(Seen { head, body });
                let answer = if status >= 300 {
                    "{\"error\": \"busy\"}"
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn http_config(url: &str, timeout_ms: u64, retries: u32) -> LineageConfig {
        LineageConfig {
            url: Some(url.into()),
            api_key: Some("s3cret".into()),
            timeout_ms: Some(timeout_ms),
            retries: Some(retries),
            ..LineageConfig::default()
        }
    }

    #[tokio::test]
    async fn http_retries_503_then_delivers() {
        let (url, seen) = server(vec![503, 503, 200]).await;
        let em = Emitter::new(&http_config(&url, 2_000, 3), Path::new("/"))
            .unwrap()
            .unwrap();
        let (job, run, inputs, outputs) = sample();
        let ev = run_event(
            EventType::Start,
            time(),
            &job,
            &run,
            &inputs,
            &outputs,
            None,
        );
        em.emit(&ev).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "two refusals, then delivered, then no more");
        for s in seen.iter() {
            assert!(
                s.head.starts_with("POST /api/v1/lineage HTTP/1.1\r\n"),
                "{}",
                s.head
            );
            let lower = s.head.to_ascii_lowercase();
            assert!(
                lower.contains("content-type: application/json\r\n"),
                "{}",
                s.head
            );
            assert!(
                lower.contains("authorization: bearer s3cret\r\n"),
                "{}",
                s.head
            );
            let got: Value = serde_json::from_slice(&s.body).unwrap();
            assert_eq!(got, ev);
        }
    }

    #[tokio::test]
    async fn http_4xx_is_not_retried() {
        let (url, seen) = server(vec![400, 200]).await;
        let em = Emitter::new(&http_config(&url, 2_000, 3), Path::new("/"))
            .unwrap()
            .unwrap();
        em.emit(&json!({"eventType": "START", "job": {"namespace": "n", "name": "j"}}))
            .await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        // 429 is retried
        let (url, seen) = server(vec![429, 201]).await;
        let em = Emitter::new(&http_config(&url, 2_000, 3), Path::new("/"))
            .unwrap()
            .unwrap();
        em.emit(&json!({"eventType": "START"})).await;
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn dead_port_does_not_fail_and_is_bounded() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (timeout_ms, retries) = (500u64, 2u32);
        let em = Emitter::new(
            &http_config(&format!("http://127.0.0.1:{port}"), timeout_ms, retries),
            Path::new("/"),
        )
        .unwrap()
        .unwrap();
        let (job, run, inputs, outputs) = sample();
        let start = Instant::now();
        em.emit_run(EventType::Complete, &job, &run, &inputs, &outputs, None)
            .await;
        let bound = Duration::from_millis(timeout_ms) * (retries + 1)
            + (0..retries).map(backoff).sum::<Duration>()
            + Duration::from_millis(500);
        let took = start.elapsed();
        assert!(took < bound, "took {took:?}, bound {bound:?}");
        // the backoff was waited: 200 + 400 ms
        assert!(took >= Duration::from_millis(600), "took {took:?}");
    }

    #[tokio::test]
    async fn silent_endpoint_times_out_and_retries() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0usize));
        let accepted2 = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                *accepted2.lock().unwrap() += 1;
                held.push(sock); // never answer
            }
        });
        let em = Emitter::new(
            &http_config(&format!("http://{addr}"), 300, 1),
            Path::new("/"),
        )
        .unwrap()
        .unwrap();
        let start = Instant::now();
        em.emit(&json!({"eventType": "START"})).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(800), "took {took:?}");
        assert!(took < Duration::from_millis(800 + 1_000), "took {took:?}");
        assert_eq!(*accepted.lock().unwrap(), 2);
    }
}
