//! Snapshot configuration, with dbt 1.9/1.10 keys and precedence: the
//! `snapshots:` tree of `dbt_project.yml` (or `[snapshots]` of `sluice.toml`)
//! < the `config:` of a YAML entry < the block's own `config(...)`.
//!
//! Unknown keys are errors (with a suggestion), and so are missing required
//! ones: a snapshot that silently did the wrong thing would rewrite history.

use crate::error::{did_you_mean, Error, Result};
use serde_json::Value;

/// How a snapshot detects that a row changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Strategy {
    /// A newer value of the `updated_at` column (or expression).
    Timestamp { updated_at: String },
    /// Any of the check columns differs (NULL-safe); `updated_at`, when set,
    /// is the version time instead of the run's time.
    Check {
        columns: CheckCols,
        updated_at: Option<String>,
    },
}

/// `check_cols`: a list of columns, or every column of the query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CheckCols {
    All,
    List(Vec<String>),
}

/// What happens to a current row whose key left the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HardDeletes {
    /// Nothing: the row stays current (dbt's default).
    Ignore,
    /// The current row's `dbt_valid_to` is set to the run's time.
    Invalidate,
    /// As `Invalidate`, and a new current row with `dbt_is_deleted = 'True'`.
    NewRecord,
}

/// The names of the columns a snapshot adds (`snapshot_meta_column_names`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetaColumns {
    pub valid_from: String,
    pub valid_to: String,
    pub scd_id: String,
    pub updated_at: String,
    pub is_deleted: String,
}

impl Default for MetaColumns {
    fn default() -> Self {
        MetaColumns {
            valid_from: "dbt_valid_from".into(),
            valid_to: "dbt_valid_to".into(),
            scd_id: "dbt_scd_id".into(),
            updated_at: "dbt_updated_at".into(),
            is_deleted: "dbt_is_deleted".into(),
        }
    }
}

/// Configuration as written, before validation (every layer applied in order).
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub enabled: Option<bool>,
    pub strategy: Option<String>,
    pub unique_key: Option<Vec<String>>,
    /// Whether `unique_key` was a list (dbt names the key columns differently).
    pub unique_key_is_list: bool,
    pub updated_at: Option<String>,
    pub check_cols: Option<CheckCols>,
    pub target_schema: Option<String>,
    pub schema: Option<String>,
    pub alias: Option<String>,
    pub hard_deletes: Option<HardDeletes>,
    pub invalidate_hard_deletes: Option<bool>,
    pub dbt_valid_to_current: Option<String>,
    pub columns: MetaColumns,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

/// The validated configuration of one snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotConfig {
    pub strategy: Strategy,
    /// SQL expressions (usually column names); several = a composite key.
    pub unique_key: Vec<String>,
    /// Whether `unique_key` was written as a list.
    pub unique_key_is_list: bool,
    /// `target_schema`, else `schema` (used as written, as sluice models use
    /// `schema`), else the project's default schema.
    pub schema: Option<String>,
    pub alias: Option<String>,
    pub hard_deletes: HardDeletes,
    /// SQL expression stored in `dbt_valid_to` of current rows instead of NULL.
    pub dbt_valid_to_current: Option<String>,
    pub columns: MetaColumns,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

/// Keys sluice reads.
pub const KEYS: &[&str] = &[
    "strategy",
    "unique_key",
    "updated_at",
    "check_cols",
    "target_schema",
    "schema",
    "alias",
    "hard_deletes",
    "invalidate_hard_deletes",
    "dbt_valid_to_current",
    "snapshot_meta_column_names",
    "enabled",
    "tags",
    "description",
    "materialized",
];

/// dbt keys without meaning in sluice: accepted and ignored.
const IGNORED: &[&str] = &[
    "database",
    "target_database",
    "meta",
    "docs",
    "persist_docs",
    "grants",
    "pre_hook",
    "post_hook",
    "pre-hook",
    "post-hook",
    "quoting",
    "quote_columns",
    "group",
    "packages",
    "full_refresh",
    "event_time",
    "column_types",
];

/// Keys of `snapshot_meta_column_names`.
const META_KEYS: &[&str] = &[
    "dbt_valid_from",
    "dbt_valid_to",
    "dbt_scd_id",
    "dbt_updated_at",
    "dbt_is_deleted",
];

/// Whether `k` is a snapshot config key (as opposed to a folder in a tree).
pub fn is_config_key(k: &str) -> bool {
    KEYS.contains(&k) || IGNORED.contains(&k)
}

impl RawConfig {
    /// Applies one layer of keys over the current values. Errors are messages
    /// for the user (the caller adds where the keys were written).
    pub fn apply(&mut self, map: &serde_json::Map<String, Value>) -> Result<()> {
        for (k, v) in map {
            match k.as_str() {
                "enabled" => self.enabled = Some(as_bool(k, v)?),
                "strategy" => self.strategy = Some(as_str(k, v)?),
                "unique_key" => {
                    self.unique_key_is_list = matches!(v, Value::Array(_));
                    let keys = match v {
                        Value::Array(a) => a
                            .iter()
                            .map(|x| as_str(k, x))
                            .collect::<Result<Vec<_>>>()?,
                        other => vec![as_str(k, other)?],
                    };
                    if keys.is_empty() || keys.iter().any(|s| s.trim().is_empty()) {
                        return Err(Error::invalid(
                            "`unique_key` is empty: name the column(s) that identify a row, e.g. unique_key='id' or unique_key=['order_id', 'line']",
                        ));
                    }
                    self.unique_key = Some(keys);
                }
                "updated_at" => self.updated_at = Some(as_str(k, v)?),
                "check_cols" => {
                    self.check_cols = Some(match v {
                        Value::String(s) if s.eq_ignore_ascii_case("all") => CheckCols::All,
                        Value::Array(a) if !a.is_empty() => CheckCols::List(
                            a.iter().map(|x| as_str(k, x)).collect::<Result<_>>()?,
                        ),
                        other => {
                            return Err(Error::invalid(format!(
                                "`check_cols` must be 'all' or a non-empty list of columns, not {other}"
                            )))
                        }
                    })
                }
                "target_schema" => self.target_schema = Some(identifier(k, v)?),
                "schema" => self.schema = Some(identifier(k, v)?),
                "alias" => self.alias = Some(identifier(k, v)?),
                "hard_deletes" => {
                    self.hard_deletes = Some(match as_str(k, v)?.as_str() {
                        "ignore" => HardDeletes::Ignore,
                        "invalidate" => HardDeletes::Invalidate,
                        "new_record" => HardDeletes::NewRecord,
                        other => {
                            return Err(Error::invalid(format!(
                                "hard_deletes='{other}' is not supported{}; use ignore, invalidate or new_record",
                                did_you_mean(other, ["ignore", "invalidate", "new_record"])
                            )))
                        }
                    })
                }
                "invalidate_hard_deletes" => {
                    self.invalidate_hard_deletes = Some(as_bool(k, v)?)
                }
                "dbt_valid_to_current" => {
                    self.dbt_valid_to_current = match v {
                        Value::Null => None,
                        other => Some(as_str(k, other)?),
                    }
                }
                "snapshot_meta_column_names" => self.meta_columns(v)?,
                "tags" => {
                    let tags = match v {
                        Value::Array(a) => a
                            .iter()
                            .map(|x| as_str(k, x))
                            .collect::<Result<Vec<_>>>()?,
                        other => vec![as_str(k, other)?],
                    };
                    for t in tags {
                        if !self.tags.contains(&t) {
                            self.tags.push(t);
                        }
                    }
                }
                "description" => self.description = Some(as_str(k, v)?),
                "materialized" => {
                    let m = as_str(k, v)?;
                    if m != "snapshot" {
                        return Err(Error::invalid(format!(
                            "materialized='{m}' in a snapshot: a snapshot is always materialized='snapshot'; remove the key"
                        )));
                    }
                }
                other if IGNORED.contains(&other) => {
                    tracing::debug!("snapshot config `{other}` has no effect in sluice");
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown snapshot config `{other}`{}; allowed: {}",
                        did_you_mean(other, KEYS.iter().copied()),
                        KEYS.join(", ")
                    )))
                }
            }
        }
        Ok(())
    }

    fn meta_columns(&mut self, v: &Value) -> Result<()> {
        let Value::Object(m) = v else {
            return Err(Error::invalid(format!(
                "`snapshot_meta_column_names` must be a mapping such as {{dbt_valid_from: start_date}}, not {v}"
            )));
        };
        for (k, v) in m {
            let name = identifier(k, v)?;
            match k.as_str() {
                "dbt_valid_from" => self.columns.valid_from = name,
                "dbt_valid_to" => self.columns.valid_to = name,
                "dbt_scd_id" => self.columns.scd_id = name,
                "dbt_updated_at" => self.columns.updated_at = name,
                "dbt_is_deleted" => self.columns.is_deleted = name,
                other => {
                    return Err(Error::invalid(format!(
                        "snapshot_meta_column_names: unknown key `{other}`{}; allowed: {}",
                        did_you_mean(other, META_KEYS.iter().copied()),
                        META_KEYS.join(", ")
                    )))
                }
            }
        }
        Ok(())
    }

    /// Checks that every required key is set and the combination makes sense.
    pub fn validate(self) -> Result<SnapshotConfig> {
        let strategy = match self.strategy.as_deref() {
            None => {
                return Err(Error::invalid(
                    "no `strategy`: set strategy='timestamp' (with updated_at='<column>') or strategy='check' (with check_cols=['<column>', ...] or 'all')",
                ))
            }
            Some("timestamp") => match (&self.updated_at, &self.check_cols) {
                (None, _) => {
                    return Err(Error::invalid(
                        "strategy='timestamp' needs `updated_at`: the column that holds when the row last changed (or use strategy='check' with check_cols)",
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        "strategy='timestamp' does not use `check_cols`: remove check_cols, or use strategy='check'",
                    ))
                }
                (Some(u), None) => Strategy::Timestamp {
                    updated_at: u.clone(),
                },
            },
            Some("check") => match &self.check_cols {
                None => {
                    return Err(Error::invalid(
                        "strategy='check' needs `check_cols`: the columns to compare (a list, or 'all')",
                    ))
                }
                Some(c) => Strategy::Check {
                    columns: c.clone(),
                    updated_at: self.updated_at.clone(),
                },
            },
            Some(other) => {
                return Err(Error::invalid(format!(
                    "strategy='{other}' is not supported{}; use timestamp or check",
                    did_you_mean(other, ["timestamp", "check"])
                )))
            }
        };
        let Some(unique_key) = self.unique_key else {
            return Err(Error::invalid(
                "no `unique_key`: name the column(s) that identify a row, e.g. unique_key='id' or unique_key=['order_id', 'line']",
            ));
        };
        let hard_deletes = match (self.invalidate_hard_deletes, self.hard_deletes) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "both `invalidate_hard_deletes` and `hard_deletes` are set: keep only hard_deletes (ignore, invalidate or new_record)",
                ))
            }
            (Some(true), None) => HardDeletes::Invalidate,
            (Some(false), None) | (None, None) => HardDeletes::Ignore,
            (None, Some(h)) => h,
        };
        let c = &self.columns;
        let mut names = vec![&c.valid_from, &c.valid_to, &c.scd_id, &c.updated_at];
        if hard_deletes == HardDeletes::NewRecord {
            names.push(&c.is_deleted);
        }
        for (i, a) in names.iter().enumerate() {
            if names[..i].contains(a) {
                return Err(Error::invalid(format!(
                    "snapshot_meta_column_names names `{a}` twice: give each meta column its own name"
                )));
            }
        }
        Ok(SnapshotConfig {
            strategy,
            unique_key,
            unique_key_is_list: self.unique_key_is_list,
            schema: self.target_schema.or(self.schema),
            alias: self.alias,
            hard_deletes,
            dbt_valid_to_current: self.dbt_valid_to_current,
            columns: self.columns,
            tags: self.tags,
            description: self.description,
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

fn identifier(k: &str, v: &Value) -> Result<String> {
    let s = as_str(k, v)?;
    if crate::warehouse::is_identifier(&s) {
        Ok(s)
    } else {
        Err(Error::invalid(format!(
            "{k}='{s}' is not a valid name (lowercase letters, digits and _, not starting with a digit)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Result<SnapshotConfig> {
        let mut r = RawConfig::default();
        let Value::Object(m) = v else {
            panic!("object")
        };
        r.apply(&m)?;
        r.validate()
    }

    #[test]
    fn timestamp_and_check_strategies() {
        let c = raw(json!({"strategy": "timestamp", "unique_key": "id", "updated_at": "ts", "target_schema": "snapshots"})).unwrap();
        assert_eq!(
            c.strategy,
            Strategy::Timestamp {
                updated_at: "ts".into()
            }
        );
        assert_eq!(c.unique_key, vec!["id"]);
        assert!(!c.unique_key_is_list);
        assert_eq!(c.schema.as_deref(), Some("snapshots"));
        assert_eq!(c.hard_deletes, HardDeletes::Ignore);
        let c = raw(json!({"strategy": "check", "unique_key": ["a", "b"], "check_cols": "all", "invalidate_hard_deletes": true})).unwrap();
        assert!(matches!(
            c.strategy,
            Strategy::Check {
                columns: CheckCols::All,
                updated_at: None
            }
        ));
        assert!(c.unique_key_is_list);
        assert_eq!(c.hard_deletes, HardDeletes::Invalidate);
    }

    #[test]
    fn meta_column_names_override() {
        let c = raw(json!({"strategy": "check", "unique_key": "id", "check_cols": ["x"], "hard_deletes": "new_record",
            "snapshot_meta_column_names": {"dbt_valid_from": "start_at", "dbt_is_deleted": "gone"}}))
        .unwrap();
        assert_eq!(c.columns.valid_from, "start_at");
        assert_eq!(c.columns.is_deleted, "gone");
        assert_eq!(c.columns.valid_to, "dbt_valid_to");
        let e = raw(
            json!({"strategy": "check", "unique_key": "id", "check_cols": ["x"],
            "snapshot_meta_column_names": {"dbt_valid_frm": "x"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("did you mean") && e.contains("dbt_valid_from"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_unknown_keys_are_errors() {
        let e = raw(json!({"unique_key": "id"})).unwrap_err().to_string();
        assert!(e.contains("no `strategy`"), "{e}");
        let e = raw(json!({"strategy": "timestamp", "unique_key": "id"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `updated_at`"), "{e}");
        let e = raw(json!({"strategy": "check", "unique_key": "id"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `check_cols`"), "{e}");
        let e = raw(json!({"strategy": "timestamp", "updated_at": "ts"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `unique_key`"), "{e}");
        let e = raw(json!({"strategy": "timestamp", "unique_key": "id", "updated_at": "ts", "hard_delete": "invalidate"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown snapshot config `hard_delete`") && e.contains("hard_deletes"),
            "{e}"
        );
        let e = raw(json!({"strategy": "timestamp", "unique_key": "id", "updated_at": "ts", "hard_deletes": "invalidate", "invalidate_hard_deletes": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both"), "{e}");
        let e = raw(json!({"strategy": "timestmp", "unique_key": "id", "updated_at": "ts"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean") && e.contains("timestamp"), "{e}");
    }
}
