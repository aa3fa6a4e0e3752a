//! `sluice source freshness`, as dbt's: for every source table with a
//! `freshness:` policy and a `loaded_at_field` (from the `sources:` entries of
//! the models' `.yml` files), the age of its newest row, `max(loaded_at_field)`,
//! against `warn_after` / `error_after` (`{count: 12, period: hour}`); the
//! results go to `target/sources.json`.
//!
//! A table's own `freshness` / `loaded_at_field` (or those of its `config:`)
//! win over its source's; `freshness: null` on a table turns the check off.
//! Naive timestamps are taken as UTC.

use super::schema_yml::{self, SourceProps, SourceTableProps};
use crate::error::{did_you_mean, Error, Result};
use crate::names::ident;
use crate::project::Project;
use crate::sql::Engine;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;

/// How fresh a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreshnessStatus {
    Pass,
    Warn,
    Error,
    /// The query failed (no such table or column).
    #[serde(rename = "runtime error")]
    RuntimeError,
}

impl FreshnessStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            FreshnessStatus::Pass => "pass",
            FreshnessStatus::Warn => "warn",
            FreshnessStatus::Error => "error",
            FreshnessStatus::RuntimeError => "runtime error",
        }
    }
}

/// `{count: 12, period: hour}`, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub count: u64,
    pub period: String,
    #[serde(skip)]
    pub seconds: u64,
}

/// A table's freshness policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criteria {
    pub warn_after: Option<Threshold>,
    pub error_after: Option<Threshold>,
    pub filter: Option<String>,
}

/// The check of one source table.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessResult {
    /// `source.<project>.<source>.<table>`.
    pub unique_id: String,
    pub source: String,
    pub table: String,
    /// The table read, `schema.table`.
    pub relation: String,
    pub status: FreshnessStatus,
    /// RFC 3339, `None` when the table has no rows.
    pub max_loaded_at: Option<String>,
    pub snapshotted_at: String,
    pub max_loaded_at_time_ago_in_s: Option<f64>,
    pub criteria: Criteria,
    pub message: Option<String>,
    pub execution_time: f64,
}

/// Every check of one `source freshness`.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessReport {
    pub results: Vec<FreshnessResult>,
    pub elapsed_time: f64,
}

impl FreshnessReport {
    /// Whether a check errored (the command then fails).
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| {
            matches!(
                r.status,
                FreshnessStatus::Error | FreshnessStatus::RuntimeError
            )
        })
    }
}

/// One table to check.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    source: String,
    table: String,
    schema: String,
    identifier: String,
    loaded_at_field: String,
    criteria: Criteria,
}

/// Checks the freshness of the selected source tables (`source:NAME`,
/// `source:NAME.TABLE`; none: all) and writes `target/sources.json`.
pub async fn source_freshness(
    project: &Project,
    engine: &Engine,
    select: &[String],
) -> Result<FreshnessReport> {
    let t0 = Instant::now();
    let properties = schema_yml::read_all(&project.settings.model_paths)?;
    let mut checks = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for p in &properties {
        for s in &p.sources {
            for t in &s.tables {
                names.push(format!("{}.{}", s.name, t.name));
                if let Some(c) = check_of(s, t).map_err(|m| Error::config(&p.file, m))? {
                    checks.push(c);
                }
            }
        }
    }
    let wanted: Vec<(String, Option<String>)> = select
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|spec| {
            let s = spec.strip_prefix("source:").unwrap_or(spec);
            match s.split_once('.') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (s.to_string(), None),
            }
        })
        .collect();
    for (s, t) in &wanted {
        let known = names.iter().any(|n| match t {
            Some(t) => *n == format!("{s}.{t}"),
            None => n.split('.').next() == Some(s.as_str()),
        });
        if !known && s != "*" {
            let shown = match t {
                Some(t) => format!("{s}.{t}"),
                None => s.clone(),
            };
            return Err(Error::BadSelection {
                option: "--select",
                reason: super::select::SelectError::Invalid {
                    atom: format!("source:{shown}"),
                    reason: format!(
                        "no source table `{shown}` is declared under `sources:`{}",
                        did_you_mean(&shown, names.iter().map(String::as_str))
                    ),
                },
            });
        }
    }
    checks.retain(|c| {
        wanted.is_empty()
            || wanted.iter().any(|(s, t)| {
                (s == "*" || *s == c.source) && t.as_ref().is_none_or(|t| *t == c.table)
            })
    });
    let mut results = Vec::new();
    for c in checks {
        results.push(run_check(project, engine, c).await);
    }
    let report = FreshnessReport {
        results,
        elapsed_time: t0.elapsed().as_secs_f64(),
    };
    write_sources_json(project, &report)?;
    Ok(report)
}

/// The check of table `t` of source `s`, if it has a freshness policy.
fn check_of(s: &SourceProps, t: &SourceTableProps) -> std::result::Result<Option<Check>, String> {
    let from_config = |c: &Option<serde_json::Map<String, Value>>, k: &str| {
        c.as_ref().and_then(|m| m.get(k)).cloned()
    };
    let freshness = from_config(&t.config, "freshness")
        .or_else(|| t.freshness.clone())
        .or_else(|| from_config(&s.config, "freshness"))
        .or_else(|| s.freshness.clone());
    let Some(freshness) = freshness.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let what = format!("source `{}`, table `{}`", s.name, t.name);
    let Value::Object(f) = &freshness else {
        return Err(format!(
            "{what}: freshness must be a mapping such as {{warn_after: {{count: 12, period: hour}}}}, not {freshness}"
        ));
    };
    let threshold = |k: &str| -> std::result::Result<Option<Threshold>, String> {
        match f.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => {
                let count = match m.get("count") {
                    None | Some(Value::Null) => return Ok(None),
                    Some(Value::Number(n)) if n.is_u64() => n.as_u64().unwrap_or_default(),
                    Some(other) => {
                        return Err(format!(
                            "{what}: {k}.count must be a whole number, not {other}"
                        ))
                    }
                };
                let period = m.get("period").and_then(Value::as_str).unwrap_or_default();
                let unit = match period {
                    "minute" => 60,
                    "hour" => 3600,
                    "day" => 86_400,
                    other => {
                        return Err(format!(
                            "{what}: {k}.period `{other}` is not minute, hour or day{}",
                            did_you_mean(other, ["minute", "hour", "day"])
                        ))
                    }
                };
                Ok(Some(Threshold {
                    count,
                    period: period.to_string(),
                    seconds: count.saturating_mul(unit),
                }))
            }
            Some(other) => Err(format!(
                "{what}: {k} must be a mapping such as {{count: 12, period: hour}}, not {other}"
            )),
        }
    };
    let criteria = Criteria {
        warn_after: threshold("warn_after")?,
        error_after: threshold("error_after")?,
        filter: f.get("filter").and_then(Value::as_str).map(str::to_string),
    };
    if criteria.warn_after.is_none() && criteria.error_after.is_none() {
        return Ok(None);
    }
    let field = from_config(&t.config, "loaded_at_field")
        .and_then(|v| v.as_str().map(str::to_string))
        .or_else(|| t.loaded_at_field.clone())
        .or_else(|| {
            from_config(&s.config, "loaded_at_field").and_then(|v| v.as_str().map(str::to_string))
        })
        .or_else(|| s.loaded_at_field.clone());
    let Some(loaded_at_field) = field else {
        return Err(format!(
            "{what} has a freshness policy but no loaded_at_field: name the column holding each row's load time (loaded_at_field: _loaded_at)"
        ));
    };
    Ok(Some(Check {
        source: s.name.clone(),
        table: t.name.clone(),
        schema: s.schema.clone().unwrap_or_else(|| s.name.clone()),
        identifier: t.identifier.clone().unwrap_or_else(|| t.name.clone()),
        loaded_at_field,
        criteria,
    }))
}

/// The status of an age against a policy.
fn status_of(age_seconds: f64, c: &Criteria) -> FreshnessStatus {
    let over = |t: &Option<Threshold>| t.as_ref().is_some_and(|t| age_seconds > t.seconds as f64);
    if over(&c.error_after) {
        FreshnessStatus::Error
    } else if over(&c.warn_after) {
        FreshnessStatus::Warn
    } else {
        FreshnessStatus::Pass
    }
}

async fn run_check(project: &Project, engine: &Engine, c: Check) -> FreshnessResult {
    let t0 = Instant::now();
    let relation = format!("{}.{}", ident(&c.schema), ident(&c.identifier));
    let mut sql = format!(
        "SELECT to_unixtime(max({})) AS max_loaded_at FROM {relation}",
        c.loaded_at_field
    );
    if let Some(f) = &c.criteria.filter {
        sql.push_str(&format!(" WHERE {f}"));
    }
    let now = chrono::Utc::now();
    let result = async {
        let batches = engine.query(&sql).await?;
        let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let col = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)?;
        let a = col.as_primitive::<Int64Type>();
        Ok::<_, Error>((!a.is_null(0)).then(|| a.value(0)))
    }
    .await;
    let (status, max_loaded_at, age, message) = match result {
        Ok(Some(secs)) => {
            let age = (now.timestamp_micros() as f64 / 1e6) - secs as f64;
            let at = chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339());
            (status_of(age, &c.criteria), at, Some(age), None)
        }
        Ok(None) => (
            FreshnessStatus::Error,
            None,
            None,
            Some(format!(
                "{relation} has no rows{}",
                if c.criteria.filter.is_some() {
                    " matching the filter"
                } else {
                    ""
                }
            )),
        ),
        Err(e) => (
            FreshnessStatus::RuntimeError,
            None,
            None,
            Some(format!("source `{}`, table `{}`: {e}", c.source, c.table)),
        ),
    };
    FreshnessResult {
        unique_id: format!("source.{}.{}.{}", project.settings.name, c.source, c.table),
        source: c.source,
        table: c.table,
        relation: format!("{}.{}", c.schema, c.identifier),
        status,
        max_loaded_at,
        snapshotted_at: now.to_rfc3339(),
        max_loaded_at_time_ago_in_s: age,
        criteria: c.criteria,
        message,
        execution_time: t0.elapsed().as_secs_f64(),
    }
}

/// `target/sources.json`, in dbt's shape.
fn write_sources_json(project: &Project, report: &FreshnessReport) -> Result<()> {
    let dir = project.root.join("target");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let doc = serde_json::json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "generator": format!("sluice {}", env!("CARGO_PKG_VERSION")),
        },
        "results": report.results.iter().map(|r| serde_json::json!({
            "unique_id": r.unique_id,
            "relation": r.relation,
            "max_loaded_at": r.max_loaded_at,
            "snapshotted_at": r.snapshotted_at,
            "max_loaded_at_time_ago_in_s": r.max_loaded_at_time_ago_in_s,
            "status": r.status,
            "criteria": r.criteria,
            "error": r.message,
            "adapter_response": {},
            "timing": [],
            "thread_id": "main",
            "execution_time": r.execution_time,
        })).collect::<Vec<_>>(),
        "elapsed_time": report.elapsed_time,
    });
    let path = dir.join("sources.json");
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yml: &str) -> std::result::Result<Vec<Check>, String> {
        let p = schema_yml::parse(yml, "models/sources.yml".into()).unwrap();
        let mut out = Vec::new();
        for s in &p.sources {
            for t in &s.tables {
                out.extend(check_of(s, t)?);
            }
        }
        Ok(out)
    }

    #[test]
    fn table_policies_win_and_null_turns_them_off() {
        let checks = parse(
            r#"
sources:
  - name: shop
    schema: raw
    loaded_at_field: _loaded_at
    freshness:
      warn_after: {count: 12, period: hour}
      error_after: {count: 1, period: day}
    tables:
      - name: orders
      - name: customers
        freshness: {error_after: {count: 30, period: minute}}
        loaded_at_field: updated_at
      - name: countries
        freshness: null
"#,
        )
        .unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].table, "orders");
        assert_eq!(checks[0].loaded_at_field, "_loaded_at");
        assert_eq!(
            checks[0].criteria.warn_after.as_ref().unwrap().seconds,
            12 * 3600
        );
        assert_eq!(
            checks[0].criteria.error_after.as_ref().unwrap().seconds,
            86_400
        );
        assert_eq!(checks[1].loaded_at_field, "updated_at");
        assert_eq!(checks[1].criteria.warn_after, None);
        assert_eq!(
            checks[1].criteria.error_after.as_ref().unwrap().seconds,
            1800
        );
    }

    #[test]
    fn ages_against_thresholds() {
        let c = Criteria {
            warn_after: Some(Threshold {
                count: 1,
                period: "hour".into(),
                seconds: 3600,
            }),
            error_after: Some(Threshold {
                count: 1,
                period: "day".into(),
                seconds: 86_400,
            }),
            filter: None,
        };
        assert_eq!(status_of(60.0, &c), FreshnessStatus::Pass);
        assert_eq!(status_of(3600.0, &c), FreshnessStatus::Pass);
        assert_eq!(status_of(3601.0, &c), FreshnessStatus::Warn);
        assert_eq!(status_of(86_401.0, &c), FreshnessStatus::Error);
    }

    #[test]
    fn bad_policies_name_the_table() {
        let e = parse(
            "sources:\n  - name: shop\n    tables:\n      - name: orders\n        freshness: {warn_after: {count: 2, period: hours}}\n        loaded_at_field: t\n",
        )
        .unwrap_err();
        assert!(
            e.contains("source `shop`, table `orders`") && e.contains("did you mean `hour`"),
            "{e}"
        );
        let e = parse(
            "sources:\n  - name: shop\n    tables:\n      - name: orders\n        freshness: {warn_after: {count: 2, period: hour}}\n",
        )
        .unwrap_err();
        assert!(e.contains("no loaded_at_field"), "{e}");
    }
}
