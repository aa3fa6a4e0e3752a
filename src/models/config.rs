//! Model configuration: from `config(...)` in the file, folder defaults in
//! `sluice.toml` / `dbt_project.yml`, and `schema.yml`. Later sources win:
//! folder defaults < schema.yml `config:` < the file's own `config()`.

use crate::error::{did_you_mean, Error, Result};
use serde_json::Value;
use std::fmt;

/// How a model is materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialization {
    /// SQL stored in the warehouse, run on every read.
    View,
    /// A Delta table replaced atomically on every run.
    Table,
    /// A Delta table that each run adds to (append, merge or delete+insert).
    Incremental,
    /// Not stored: inlined into the models that read it.
    Ephemeral,
}

impl fmt::Display for Materialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Materialization::View => "view",
            Materialization::Table => "table",
            Materialization::Incremental => "incremental",
            Materialization::Ephemeral => "ephemeral",
        })
    }
}

/// How an incremental model adds its new rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum IncrementalStrategy {
    /// Append the new rows.
    Append,
    /// Upsert on `unique_key`.
    Merge,
    /// Delete the rows whose `unique_key` values occur in the new rows (a day, a
    /// partition, an id), then insert the new rows, in one commit.
    DeleteInsert,
}

/// What an incremental run does when the query's columns differ from the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OnSchemaChange {
    /// Keep the table's columns; new columns are dropped (dbt's default).
    Ignore,
    /// Fail the model.
    Fail,
    /// Add new columns to the table.
    AppendNewColumns,
}

/// A feature view: a model with an entity key and an event time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeatureView {
    pub entities: Vec<String>,
    pub event_timestamp: String,
    pub created_timestamp: Option<String>,
    /// Maximum feature age in seconds.
    pub ttl_seconds: Option<u64>,
    /// The TTL as written (`30d`), for display.
    pub ttl: Option<String>,
    /// Whether `sluice run` writes the online store after the model.
    pub online: bool,
    /// A stream feature view: windowed aggregates over a streaming source,
    /// kept fresh online by `sluice stream` (see `features::stream_agg`).
    pub stream: bool,
    /// How late (behind the newest event) an event may arrive and still be
    /// applied online, in microseconds (stream views only).
    pub allowed_lateness_us: i64,
    /// The allowed lateness as written (`5m`).
    pub allowed_lateness: Option<String>,
}

/// The effective configuration of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub enabled: bool,
    pub materialized: Materialization,
    /// Schema override (default: first folder under models, else the default schema).
    pub schema: Option<String>,
    /// Table name override (default: the file name).
    pub alias: Option<String>,
    pub tags: Vec<String>,
    pub unique_key: Vec<String>,
    pub incremental_strategy: Option<IncrementalStrategy>,
    pub on_schema_change: OnSchemaChange,
    /// Delta partition columns of table / incremental models.
    pub partition_by: Vec<String>,
    /// SQL boolean expressions every row must satisfy (data tests).
    pub checks: Vec<String>,
    pub feature_view: Option<FeatureView>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// `severity` of this model's tests: `error` (default) or `warn`.
    pub warn_only: bool,
    /// `pre-hook`: SQL run before the model is materialized (every layer's, in
    /// layer order: folders, schema.yml, config()).
    pub pre_hook: Vec<Hook>,
    /// `post-hook`: SQL run after the model is materialized.
    pub post_hook: Vec<Hook>,
    /// `retries`: how often a model that failed because a worker of the
    /// cluster failed is run again (default: `[run] retries`, else 1).
    pub retries: Option<u32>,
}

/// One `pre-hook` / `post-hook` statement and where it was configured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hook {
    /// The SQL (Jinja until the model compiles, then rendered).
    pub sql: String,
    /// Where it is set (`dbt_project.yml`, `config() in models/x.sql`).
    pub origin: String,
}

/// Keys sluice reads.
pub const KEYS: &[&str] = &[
    "enabled",
    "materialized",
    "schema",
    "alias",
    "tags",
    "unique_key",
    "incremental_strategy",
    "on_schema_change",
    "partition_by",
    "checks",
    "feature_view",
    "description",
    "owner",
    "severity",
    "meta",
    "pre_hook",
    "post_hook",
    "retries",
    "pre-hook",
    "post-hook",
];

/// dbt keys that have no meaning in sluice: accepted and ignored.
const IGNORED: &[&str] = &[
    "database",
    "persist_docs",
    "docs",
    "grants",
    "contract",
    "full_refresh",
    "file_format",
    "packages",
    "quoting",
    "group",
    "access",
    "sql_header",
    "column_types",
    "quote_columns",
    "delimiter",
    "incremental_predicates",
    "sort",
    "dist",
    "cluster_by",
    "labels",
    "indexes",
    "store_failures",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "event_time",
    "batch_size",
    "lookback",
    "begin",
    "concurrent_batches",
    "unlogged",
    "plugin",
    "location",
    "options",
    "external_location",
];

/// Whether `k` is a model config key (as opposed to a subfolder in a folder tree).
pub fn is_config_key(k: &str) -> bool {
    KEYS.contains(&k) || IGNORED.contains(&k)
}

impl ModelConfig {
    /// Defaults for a project whose models materialize as `default` when unset.
    pub fn defaults(default: Materialization) -> Self {
        ModelConfig {
            enabled: true,
            materialized: default,
            schema: None,
            alias: None,
            tags: Vec::new(),
            unique_key: Vec::new(),
            incremental_strategy: None,
            on_schema_change: OnSchemaChange::Ignore,
            partition_by: Vec::new(),
            checks: Vec::new(),
            feature_view: None,
            description: None,
            owner: None,
            warn_only: false,
            pre_hook: Vec::new(),
            post_hook: Vec::new(),
            retries: None,
        }
    }

    /// Names `origin` as where the hooks added since the last call come from.
    pub fn label_hooks(&mut self, origin: &str) {
        for h in self.pre_hook.iter_mut().chain(self.post_hook.iter_mut()) {
            if h.origin.is_empty() {
                h.origin = origin.to_string();
            }
        }
    }

    /// Applies `map` over the current values. `tags` accumulate (as in dbt);
    /// everything else replaces. Errors are messages for the user.
    pub fn apply(&mut self, map: &serde_json::Map<String, Value>) -> Result<()> {
        for (k, v) in map {
            match k.as_str() {
                "enabled" => self.enabled = as_bool(k, v)?,
                "materialized" => {
                    self.materialized = match as_str(k, v)?.as_str() {
                        "view" => Materialization::View,
                        "table" => Materialization::Table,
                        "incremental" => Materialization::Incremental,
                        "ephemeral" => Materialization::Ephemeral,
                        other => {
                            return Err(Error::invalid(format!(
                                "materialized='{other}' is not supported{}; use view, table, incremental or ephemeral",
                                did_you_mean(other, ["view", "table", "incremental", "ephemeral"])
                            )))
                        }
                    }
                }
                "schema" => self.schema = Some(identifier(k, &as_str(k, v)?)?),
                "alias" => self.alias = Some(identifier(k, &as_str(k, v)?)?),
                "tags" => {
                    for t in as_list(k, v)? {
                        if !self.tags.contains(&t) {
                            self.tags.push(t);
                        }
                    }
                }
                "unique_key" => self.unique_key = as_key_list(k, v)?,
                "partition_by" => self.partition_by = as_key_list(k, v)?,
                "checks" => self.checks = as_list(k, v)?,
                "incremental_strategy" => {
                    self.incremental_strategy = Some(match as_str(k, v)?.as_str() {
                        "append" => IncrementalStrategy::Append,
                        "merge" => IncrementalStrategy::Merge,
                        "delete+insert" | "delete_insert" | "replace_where" => {
                            IncrementalStrategy::DeleteInsert
                        }
                        other => {
                            return Err(Error::invalid(format!(
                                "incremental_strategy='{other}' is not supported; use append, merge or delete+insert"
                            )))
                        }
                    })
                }
                "on_schema_change" => {
                    self.on_schema_change = match as_str(k, v)?.as_str() {
                        "ignore" => OnSchemaChange::Ignore,
                        "fail" => OnSchemaChange::Fail,
                        "append_new_columns" | "sync_all_columns" => {
                            OnSchemaChange::AppendNewColumns
                        }
                        other => {
                            return Err(Error::invalid(format!(
                                "on_schema_change='{other}' is not supported; use ignore, fail or append_new_columns"
                            )))
                        }
                    }
                }
                "feature_view" => self.feature_view = Some(feature_view(v)?),
                "description" => self.description = Some(as_str(k, v)?),
                "owner" => self.owner = Some(as_str(k, v)?),
                "retries" => {
                    self.retries = Some(match v {
                        Value::Number(n) if n.as_u64().is_some_and(|n| n <= 100) => {
                            n.as_u64().unwrap_or(0) as u32
                        }
                        other => {
                            return Err(Error::invalid(format!(
                                "`retries` must be a whole number from 0 to 100, not {other}"
                            )))
                        }
                    })
                }
                "severity" => {
                    self.warn_only = match as_str(k, v)?.to_ascii_lowercase().as_str() {
                        "warn" => true,
                        "error" => false,
                        other => {
                            return Err(Error::invalid(format!("severity='{other}': use 'error' or 'warn'")))
                        }
                    }
                }
                "meta" => {}
                "pre_hook" | "pre-hook" => self.pre_hook.extend(hooks(k, v)?),
                "post_hook" | "post-hook" => self.post_hook.extend(hooks(k, v)?),
                other if IGNORED.contains(&other) => {
                    tracing::debug!("config `{other}` has no effect in sluice");
                }
                other => {
                    let hint = did_you_mean(other, KEYS.iter().copied());
                    if !hint.is_empty() {
                        return Err(Error::invalid(format!("unknown config `{other}`{hint}")));
                    }
                    tracing::warn!("config `{other}` is not a sluice setting and is ignored");
                }
            }
        }
        Ok(())
    }

    /// Checks combinations; called once all layers are applied.
    pub fn validate(&self) -> Result<()> {
        if self.materialized == Materialization::Incremental {
            let strategy = self.strategy();
            if strategy != IncrementalStrategy::Append && self.unique_key.is_empty() {
                return Err(Error::invalid(format!(
                    "incremental_strategy='{}' needs unique_key (the column(s) that identify a row{})",
                    match strategy {
                        IncrementalStrategy::Merge => "merge",
                        _ => "delete+insert",
                    },
                    if strategy == IncrementalStrategy::DeleteInsert {
                        ", or the day / partition column to replace"
                    } else {
                        ""
                    }
                )));
            }
        }
        if let Some(fv) = &self.feature_view {
            if self.materialized == Materialization::Ephemeral {
                return Err(Error::invalid(
                    "a feature view cannot be ephemeral: its table is its offline store",
                ));
            }
            if fv.entities.is_empty() {
                return Err(Error::invalid(
                    "feature_view needs at least one entity column",
                ));
            }
        }
        Ok(())
    }

    /// The incremental strategy: merge when a unique key is set, else append.
    pub fn strategy(&self) -> IncrementalStrategy {
        self.incremental_strategy
            .unwrap_or(if self.unique_key.is_empty() {
                IncrementalStrategy::Append
            } else {
                IncrementalStrategy::Merge
            })
    }
}

fn as_str(k: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::invalid(format!(
            "`{k}` must be a string, not {other}"
        ))),
    }
}

/// A hook as dbt takes it: a string, `{sql: ..., transaction: ...}`, or a
/// list of those; empty ones are dropped.
fn hooks(k: &str, v: &Value) -> Result<Vec<Hook>> {
    let one = |v: &Value| -> Result<Option<String>> {
        match v {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Object(m) => match m.get("sql") {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(Error::invalid(format!(
                    "`{k}`: a hook mapping needs `sql: \"...\"`, not {v}"
                ))),
            },
            Value::Null => Ok(None),
            other => Err(Error::invalid(format!(
                "`{k}` must be SQL text or a list of SQL texts, not {other}"
            ))),
        }
    };
    let all = match v {
        Value::Array(a) => a.iter().map(one).collect::<Result<Vec<_>>>()?,
        other => vec![one(other)?],
    };
    Ok(all
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .map(|sql| Hook {
            sql,
            origin: String::new(),
        })
        .collect())
}

fn as_bool(k: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(Error::invalid(format!(
            "`{k}` must be true or false, not {other}"
        ))),
    }
}

fn as_list(k: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| as_str(k, x)).collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::invalid(format!(
            "`{k}` must be a string or a list of strings, not {other}"
        ))),
    }
}

/// Column lists: `'a'`, `'a, b'` or `['a', 'b']`.
fn as_key_list(k: &str, v: &Value) -> Result<Vec<String>> {
    Ok(as_list(k, v)?
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

fn identifier(k: &str, s: &str) -> Result<String> {
    if crate::warehouse::is_identifier(s) {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(format!(
            "{k}='{s}' is not a valid name (lowercase letters, digits and _, not starting with a digit)"
        )))
    }
}

fn feature_view(v: &Value) -> Result<FeatureView> {
    let Value::Object(m) = v else {
        return Err(Error::invalid(format!(
            "feature_view must be a mapping such as {{'entities': ['user_id'], 'event_timestamp': 'ts', 'ttl': '30d'}}, not {v}"
        )));
    };
    let known = [
        "entities",
        "entity",
        "event_timestamp",
        "timestamp",
        "created_timestamp",
        "ttl",
        "online",
        "stream",
        "allowed_lateness",
    ];
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            return Err(Error::invalid(format!(
                "feature_view: unknown key `{k}`{}; allowed: {}",
                did_you_mean(k, known.iter().copied()),
                known.join(", ")
            )));
        }
    }
    let entities = match m.get("entities").or_else(|| m.get("entity")) {
        Some(v) => as_key_list("entities", v)?,
        None => {
            return Err(Error::invalid(
                "feature_view needs `entities` (the entity key columns)",
            ))
        }
    };
    let event_timestamp = match m.get("event_timestamp").or_else(|| m.get("timestamp")) {
        Some(v) => as_str("event_timestamp", v)?,
        None => {
            return Err(Error::invalid(
                "feature_view needs `event_timestamp` (the event-time column)",
            ))
        }
    };
    let created_timestamp = m
        .get("created_timestamp")
        .map(|v| as_str("created_timestamp", v))
        .transpose()?;
    let ttl = match m.get("ttl") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.trim().to_string()),
        Some(Value::Number(n)) if n.is_u64() => {
            return Err(Error::invalid(format!(
                "feature_view ttl {n} has no unit: write '{n}d' (days), '{n}h' (hours), '{n}m' (minutes), '{n}s' (seconds) or '{n}w' (weeks)"
            )))
        }
        Some(other) => {
            return Err(Error::invalid(format!(
                "feature_view ttl must be a duration such as '30d' or '12h', not {other}"
            )))
        }
    };
    let ttl_seconds = match &ttl {
        Some(t) => {
            let seconds = parse_duration(t).map_err(|e| match e {
                Error::InvalidValue(m) => Error::invalid(format!("feature_view ttl: {m}")),
                other => other,
            })?;
            if seconds == 0 {
                return Err(Error::invalid(format!(
                    "feature_view ttl '{t}' would only match rows at exactly the entity's time; leave ttl out for no age limit (Feast's ttl=0)"
                )));
            }
            Some(seconds)
        }
        None => None,
    };
    let online = match m.get("online") {
        Some(v) => as_bool("online", v)?,
        None => false,
    };
    let stream = match m.get("stream") {
        Some(v) => as_bool("stream", v)?,
        None => false,
    };
    let allowed_lateness = match m.get("allowed_lateness") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.trim().to_string()),
        Some(other) => {
            return Err(Error::invalid(format!(
                "feature_view allowed_lateness must be a duration such as '5m' or '1h', not {other}"
            )))
        }
    };
    let allowed_lateness_us = match &allowed_lateness {
        Some(t) => {
            if !stream {
                return Err(Error::invalid(
                    "feature_view allowed_lateness applies to stream feature views: add 'stream': true, or leave it out",
                ));
            }
            let seconds = parse_duration(t).map_err(|e| match e {
                Error::InvalidValue(m) => {
                    Error::invalid(format!("feature_view allowed_lateness: {m}"))
                }
                other => other,
            })?;
            i64::try_from(seconds)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .filter(|us| *us <= crate::features::stream_agg::MAX_WINDOW_US)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "feature_view allowed_lateness '{t}' is longer than 36500 days"
                    ))
                })?
        }
        None => 0,
    };
    if stream && created_timestamp.is_some() {
        return Err(Error::invalid(
            "feature_view created_timestamp does not apply to a stream feature view (its values are aggregates over windows); leave it out",
        ));
    }
    if stream && ttl.is_some() {
        return Err(Error::invalid(
            "feature_view ttl does not apply to a stream feature view: each aggregate has its own window (FILTER (WHERE ts > now() - INTERVAL ...)); leave ttl out",
        ));
    }
    Ok(FeatureView {
        entities,
        event_timestamp,
        created_timestamp,
        ttl_seconds,
        ttl,
        online,
        stream,
        allowed_lateness_us,
        allowed_lateness,
    })
}

/// `90s`, `15m`, `12h`, `30d`, `2w` (or the unit spelled out: `30 days`,
/// `12 hours`), in seconds. A number needs its unit: a bare `7` is an error,
/// as a bare number of seconds is rarely what anyone means.
pub fn parse_duration(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        Error::invalid(format!(
            "duration '{s}': expected a whole number and a unit (s, m, h, d, w), e.g. '30d'"
        ))
    })?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" => {
            return Err(Error::invalid(format!(
                "duration '{s}' has no unit: write '{n}d' (days), '{n}h' (hours), '{n}m' (minutes), '{n}s' (seconds) or '{n}w' (weeks)"
            )))
        }
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        other => {
            return Err(Error::invalid(format!(
                "duration '{s}': unknown unit `{other}`; use s, m, h, d or w"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::invalid(format!("duration '{s}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn layers_apply_and_tags_accumulate() {
        let mut c = ModelConfig::defaults(Materialization::Table);
        c.apply(&obj(json!({"materialized": "view", "tags": ["a"]})))
            .unwrap();
        c.apply(&obj(
            json!({"materialized": "incremental", "unique_key": "id, day", "tags": "b"}),
        ))
        .unwrap();
        assert_eq!(c.materialized, Materialization::Incremental);
        assert_eq!(c.unique_key, vec!["id", "day"]);
        assert_eq!(c.tags, vec!["a", "b"]);
        assert_eq!(c.strategy(), IncrementalStrategy::Merge);
        c.validate().unwrap();
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let mut c = ModelConfig::defaults(Materialization::Table);
        let e = c.apply(&obj(json!({"materialised": "view"}))).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `materialized`?"),
            "{e}"
        );
        let e = c.apply(&obj(json!({"materialized": "tabel"}))).unwrap_err();
        assert!(e.to_string().contains("did you mean `table`?"), "{e}");
        // dbt-only keys are accepted.
        c.apply(&obj(json!({"persist_docs": {"relation": true}})))
            .unwrap();
        let mut c = ModelConfig::defaults(Materialization::Table);
        c.apply(&obj(
            json!({"materialized": "incremental", "incremental_strategy": "delete+insert"}),
        ))
        .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs unique_key"));
    }

    /// Hooks accumulate over the layers in order, each named by its origin;
    /// empty ones are dropped; `{sql: ...}` mappings work.
    #[test]
    fn hooks_accumulate_with_their_origin() {
        let mut c = ModelConfig::defaults(Materialization::Table);
        c.apply(&obj(
            json!({"pre-hook": "insert into a values (1)", "post-hook": ["", "select 1"]}),
        ))
        .unwrap();
        c.label_hooks("dbt_project.yml");
        c.apply(&obj(
            json!({"pre_hook": [{"sql": "select 2", "transaction": false}]}),
        ))
        .unwrap();
        c.label_hooks("config() in models/x.sql");
        let pre: Vec<(&str, &str)> = c
            .pre_hook
            .iter()
            .map(|h| (h.sql.as_str(), h.origin.as_str()))
            .collect();
        assert_eq!(
            pre,
            vec![
                ("insert into a values (1)", "dbt_project.yml"),
                ("select 2", "config() in models/x.sql")
            ]
        );
        assert_eq!(c.post_hook.len(), 1);
        assert_eq!(c.post_hook[0].sql, "select 1");
        let e = c.apply(&obj(json!({"post_hook": 3}))).unwrap_err();
        assert!(
            e.to_string().contains("`post_hook` must be SQL text"),
            "{e}"
        );
    }

    #[test]
    fn feature_view_and_durations() {
        let mut c = ModelConfig::defaults(Materialization::Table);
        c.apply(&obj(json!({"feature_view": {"entities": ["user_id"], "event_timestamp": "ts", "ttl": "30d"}})))
            .unwrap();
        let fv = c.feature_view.unwrap();
        assert_eq!(fv.ttl_seconds, Some(30 * 86_400));
        assert_eq!(fv.ttl.as_deref(), Some("30d"), "kept as written");
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("12 hours").unwrap(), 12 * 3600);
        assert_eq!(parse_duration("2W").unwrap(), 14 * 86_400);
        assert!(parse_duration("3y")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    /// `'ttl': 7` could mean seconds or days: an error asking for a unit, as
    /// is the string '7'; a zero TTL (Feast's "no limit") is refused too.
    #[test]
    fn a_ttl_needs_a_unit() {
        let ttl = |v: Value| {
            let mut c = ModelConfig::defaults(Materialization::Table);
            c.apply(&obj(json!({"feature_view": {"entities": ["user_id"], "event_timestamp": "ts", "ttl": v}})))
                .map(|_| c.feature_view.and_then(|f| f.ttl_seconds))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            ttl(json!(7)).unwrap_err(),
            "feature_view ttl 7 has no unit: write '7d' (days), '7h' (hours), '7m' (minutes), '7s' (seconds) or '7w' (weeks)"
        );
        assert_eq!(
            ttl(json!("7")).unwrap_err(),
            "feature_view ttl: duration '7' has no unit: write '7d' (days), '7h' (hours), '7m' (minutes), '7s' (seconds) or '7w' (weeks)"
        );
        assert!(ttl(json!(1.5)).unwrap_err().contains("such as '30d'"));
        assert!(ttl(json!("0d")).unwrap_err().contains("leave ttl out"));
        assert!(ttl(json!("1.5d")).unwrap_err().contains("whole number"));
        assert_eq!(ttl(json!("7d")).unwrap(), Some(7 * 86_400));
        assert_eq!(ttl(json!(null)).unwrap(), None);
    }

    #[test]
    fn retries_is_a_small_whole_number() {
        let mut c = ModelConfig::defaults(Materialization::View);
        c.apply(&obj(json!({"retries": 3}))).unwrap();
        assert_eq!(c.retries, Some(3));
        for bad in [json!(-1), json!(1.5), json!("2"), json!(1000)] {
            let err = c
                .apply(&obj(json!({ "retries": bad })))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`retries` must be a whole number"), "{err}");
        }
    }
}
