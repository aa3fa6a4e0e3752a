//! The SQL of a snapshot run, as dbt-core 1.10 builds it (the
//! `build_snapshot_table` and `snapshot_staging_table` macros, written here
//! for DataFusion): the first run's table, and later runs' staged changes
//! (`insert` rows, and `update` / `delete` rows that close a current version).
//!
//! `dbt_scd_id` is dbt's `md5(coalesce(cast(k as varchar), '') || '|' || ...)`
//! over the unique key(s) and the version time, with values turned into text
//! as DuckDB casts them (timestamps as `2024-01-01 10:00:00.5`, trailing zeros
//! of the fraction dropped), so the ids equal dbt-duckdb's.

use super::config::{CheckCols, HardDeletes, SnapshotConfig, Strategy};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// What the SQL of one run is built from.
pub struct Plan<'a> {
    pub config: &'a SnapshotConfig,
    /// The snapshot's rendered query.
    pub source_sql: &'a str,
    /// The query's column names.
    pub source_columns: &'a [String],
    /// The type of each unique key expression.
    pub key_types: &'a [DataType],
    /// The type of the `updated_at` expression (none: the check strategy
    /// without `updated_at`, whose version time is the run's time).
    pub updated_at_type: Option<&'a DataType>,
    /// The run's time (UTC, microseconds).
    pub run_time: chrono::NaiveDateTime,
}

/// `"name"`, quoted for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How DuckDB casts a timestamp to text: `2024-01-01 10:00:00`, with the
/// fraction's trailing zeros dropped.
pub fn duckdb_timestamp_text(t: &chrono::NaiveDateTime) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.and_utc().timestamp_subsec_micros();
    if micros == 0 {
        base
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}", frac.trim_end_matches('0'))
    }
}

/// SQL for `expr` (of type `t`) as text, as DuckDB's `cast(x as varchar)`.
fn text_of(expr: &str, t: &DataType) -> String {
    let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
    let stamp = |e: &str| {
        format!(
            "(to_char({e}, '%Y-%m-%d %H:%M:%S') || rtrim(rtrim(to_char({e}, '%.6f'), '0'), '.'))"
        )
    };
    match t {
        DataType::Timestamp(_, None) => stamp(expr),
        DataType::Timestamp(_, Some(_)) => {
            let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let e = format!(
                "arrow_cast(arrow_cast({expr}, {}), {})",
                literal(&utc.to_string()),
                literal(&naive.to_string())
            );
            format!("({} || '+00')", stamp(&e))
        }
        _ => format!("CAST({expr} AS VARCHAR)"),
    }
}

/// dbt's `snapshot_hash_arguments`: md5 of the texts joined by `|`.
fn hash(args: &[String]) -> String {
    let parts: Vec<String> = args.iter().map(|a| format!("coalesce({a}, '')")).collect();
    format!("md5({})", parts.join(" || '|' || "))
}

impl Plan<'_> {
    /// The run's time as a microsecond timestamp.
    fn now(&self) -> String {
        let micro = DataType::Timestamp(TimeUnit::Microsecond, None);
        format!(
            "arrow_cast(TIMESTAMP {}, {})",
            literal(&self.run_time.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
            literal(&micro.to_string())
        )
    }

    /// dbt's `snapshot_get_time()`, in the type of the version times.
    fn now_typed(&self) -> String {
        match self.updated_at_type {
            Some(t) if !matches!(t, DataType::Timestamp(TimeUnit::Microsecond, None)) => {
                format!("arrow_cast({}, {})", self.now(), literal(&t.to_string()))
            }
            _ => self.now(),
        }
    }

    /// The version time of a source row (`strategy.updated_at`).
    fn updated_at(&self) -> String {
        match &self.config.strategy {
            Strategy::Timestamp { updated_at }
            | Strategy::Check {
                updated_at: Some(updated_at),
                ..
            } => format!("({updated_at})"),
            Strategy::Check {
                updated_at: None, ..
            } => self.now(),
        }
    }

    /// `dbt_scd_id` of a source row.
    fn scd_id(&self) -> String {
        let mut args: Vec<String> = self
            .config
            .unique_key
            .iter()
            .zip(self.key_types)
            .map(|(k, t)| text_of(&format!("({k})"), t))
            .collect();
        args.push(match (&self.config.strategy, self.updated_at_type) {
            (
                Strategy::Check {
                    updated_at: None, ..
                },
                _,
            ) => literal(&duckdb_timestamp_text(&self.run_time)),
            (_, Some(t)) => text_of(&self.updated_at(), t),
            (_, None) => format!("CAST({} AS VARCHAR)", self.updated_at()),
        });
        hash(&args)
    }

    /// `dbt_valid_to` of a new current row.
    fn valid_to_current(&self) -> String {
        let u = self.updated_at();
        let current = self.current_sql().unwrap_or_else(|| "NULL".into());
        format!("coalesce(nullif({u}, {u}), {current})")
    }

    /// `dbt_valid_to_current` cast to the type of the version times (so
    /// `cast('9999-12-31' as date)` becomes a microsecond timestamp rather
    /// than overflowing DataFusion's default nanoseconds).
    pub fn current_sql(&self) -> Option<String> {
        let cur = self.config.dbt_valid_to_current.as_deref()?;
        let t = self
            .updated_at_type
            .cloned()
            .unwrap_or(DataType::Timestamp(TimeUnit::Microsecond, None));
        Some(format!("arrow_cast({cur}, {})", literal(&t.to_string())))
    }

    /// The first run: every row of the query, current.
    pub fn build_sql(&self) -> String {
        let c = &self.config.columns;
        let u = self.updated_at();
        let mut sql = format!(
            "SELECT *,\n  {} AS {},\n  {u} AS {},\n  {u} AS {},\n  {} AS {}",
            self.scd_id(),
            quote(&c.scd_id),
            quote(&c.updated_at),
            quote(&c.valid_from),
            self.valid_to_current(),
            quote(&c.valid_to)
        );
        if self.config.hard_deletes == HardDeletes::NewRecord {
            sql.push_str(&format!(",\n  'False' AS {}", quote(&c.is_deleted)));
        }
        sql.push_str(&format!("\nFROM (\n{}\n) AS sbq", self.source_sql));
        sql
    }

    /// `alias.dbt_valid_to` marks a current row.
    fn is_current(&self, alias: &str) -> String {
        let to = format!("{alias}{}", quote(&self.config.columns.valid_to));
        match self.current_sql() {
            Some(cur) => format!("({to} = {cur} OR {to} IS NULL)"),
            None => format!("{to} IS NULL"),
        }
    }

    /// `alias.dbt_valid_to` equals dbt_valid_to_current (dbt's test in the
    /// new_record branches).
    fn is_current_exactly(&self, alias: &str) -> String {
        let to = format!("{alias}{}", quote(&self.config.columns.valid_to));
        match self.current_sql() {
            Some(cur) => format!("{to} = {cur}"),
            None => format!("{to} IS NULL"),
        }
    }

    fn key_fields(&self) -> String {
        self.config
            .unique_key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("({k}) AS dbt_unique_key_{}", i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_join(&self, a: &str, b: &str) -> String {
        (1..=self.config.unique_key.len())
            .map(|i| format!("{a}.dbt_unique_key_{i} = {b}.dbt_unique_key_{i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The query that stages a later run's changes against `target` (the
    /// snapshot table, `schema.table`) whose columns are `target_columns`.
    /// Its columns: `dbt_change_type`, the query's columns, then the meta
    /// columns (`dbt_updated_at`, `dbt_valid_from`, `dbt_valid_to`,
    /// `dbt_scd_id`, and `dbt_is_deleted` with hard_deletes='new_record').
    /// `check_cols`: the check strategy's columns that the table has, and
    /// whether the query has a check column the table lacks (then every row
    /// changed, as in dbt).
    pub fn staging_sql(
        &self,
        target: &str,
        target_columns: &[String],
        check_cols: &[String],
        column_added: bool,
    ) -> String {
        let c = &self.config.columns;
        let new_record = self.config.hard_deletes == HardDeletes::NewRecord;
        let deletes = self.config.hard_deletes != HardDeletes::Ignore;
        let (upd, from, to, scd, del) = (
            quote(&c.updated_at),
            quote(&c.valid_from),
            quote(&c.valid_to),
            quote(&c.scd_id),
            quote(&c.is_deleted),
        );
        let row_changed = match &self.config.strategy {
            Strategy::Timestamp { .. } => format!("(d.{from} < s.{upd})"),
            Strategy::Check { .. } if column_added => "TRUE".to_string(),
            Strategy::Check { .. } => {
                let terms: Vec<String> = check_cols
                    .iter()
                    .map(|col| {
                        let (d, s) = (format!("d.{}", quote(col)), format!("s.{}", quote(col)));
                        format!(
                            "{d} <> {s} OR (({d} IS NULL) AND NOT ({s} IS NULL)) OR ((NOT {d} IS NULL) AND ({s} IS NULL))"
                        )
                    })
                    .collect();
                format!("({})", terms.join(" OR "))
            }
        };
        let changed = if new_record {
            format!("({row_changed} OR d.{del} = 'True')")
        } else {
            row_changed
        };
        let src = |alias: &str| -> String {
            self.source_columns
                .iter()
                .map(|col| format!("{alias}.{}", quote(col)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let keys = self.key_fields();
        let join = self.key_join("d", "s");
        let u = self.updated_at();
        let now = self.now_typed();
        let mut sql = format!(
            "WITH snapshot_query AS (\n{source}\n),\n\
             snapshotted_data AS (\n  SELECT *, {keys} FROM {target} WHERE {current}\n),\n\
             insertions_source_data AS (\n  SELECT *, {keys}, {u} AS {upd}, {u} AS {from}, {valid_to} AS {to}, {scd_id} AS {scd} FROM snapshot_query\n),\n\
             updates_source_data AS (\n  SELECT *, {keys}, {u} AS {upd} FROM snapshot_query\n),\n\
             deletes_source_data AS (\n  SELECT *, {keys} FROM snapshot_query\n),\n\
             insertions AS (\n  SELECT 'insert' AS dbt_change_type, {src_s}, s.{upd} AS {upd}, s.{from} AS {from}, s.{to} AS {to}, s.{scd} AS {scd}{ins_del}\n  \
               FROM insertions_source_data AS s LEFT JOIN snapshotted_data AS d ON {join}\n  \
               WHERE d.dbt_unique_key_1 IS NULL OR (d.dbt_unique_key_1 IS NOT NULL AND {changed})\n),\n\
             updates AS (\n  SELECT 'update' AS dbt_change_type, {src_s}, s.{upd} AS {upd}, s.{upd} AS {from}, s.{upd} AS {to}, d.{scd} AS {scd}{upd_del}\n  \
               FROM updates_source_data AS s JOIN snapshotted_data AS d ON {join}\n  \
               WHERE {changed}\n)",
            source = self.source_sql,
            current = self.is_current(""),
            valid_to = self.valid_to_current(),
            scd_id = self.scd_id(),
            src_s = src("s"),
            ins_del = if new_record {
                format!(", 'False' AS {del}")
            } else {
                String::new()
            },
            upd_del = if new_record {
                format!(", d.{del} AS {del}")
            } else {
                String::new()
            },
        );
        let not_deleted_already = format!(
            "NOT (d.{del} = 'True' AND {})",
            self.is_current_exactly("d.")
        );
        if deletes {
            sql.push_str(&format!(
                ",\ndeletes AS (\n  SELECT 'delete' AS dbt_change_type, {src_s}, {now} AS {upd}, {now} AS {from}, {now} AS {to}, d.{scd} AS {scd}{del_del}\n  \
                   FROM snapshotted_data AS d LEFT JOIN deletes_source_data AS s ON {join}\n  \
                   WHERE s.dbt_unique_key_1 IS NULL{extra}\n)",
                src_s = src("s"),
                del_del = if new_record {
                    format!(", d.{del} AS {del}")
                } else {
                    String::new()
                },
                extra = if new_record {
                    format!(" AND {not_deleted_already}")
                } else {
                    String::new()
                },
            ));
        }
        if new_record {
            let cols: Vec<String> = self
                .source_columns
                .iter()
                .map(|col| {
                    if target_columns.contains(col) {
                        format!("d.{}", quote(col))
                    } else {
                        format!("s.{}", quote(col))
                    }
                })
                .collect();
            let new_scd = hash(&[
                format!("CAST(d.{scd} AS VARCHAR)"),
                literal(&duckdb_timestamp_text(&self.run_time)),
            ]);
            sql.push_str(&format!(
                ",\ndeletion_records AS (\n  SELECT 'insert' AS dbt_change_type, {cols}, {now} AS {upd}, {now} AS {from}, d.{to} AS {to}, {new_scd} AS {scd}, 'True' AS {del}\n  \
                   FROM snapshotted_data AS d LEFT JOIN deletes_source_data AS s ON {join}\n  \
                   WHERE s.dbt_unique_key_1 IS NULL AND {not_deleted_already}\n)",
                cols = cols.join(", "),
            ));
        }
        sql.push_str("\nSELECT * FROM insertions\nUNION ALL\nSELECT * FROM updates");
        if deletes {
            sql.push_str("\nUNION ALL\nSELECT * FROM deletes");
        }
        if new_record {
            sql.push_str("\nUNION ALL\nSELECT * FROM deletion_records");
        }
        sql
    }

    /// Key values that occur more than once in the query (at most 5 rows:
    /// the key columns and the count).
    pub fn duplicates_sql(&self) -> String {
        let group: Vec<String> = self
            .config
            .unique_key
            .iter()
            .map(|k| format!("({k})"))
            .collect();
        format!(
            "SELECT {}, count(*) AS n FROM (\n{}\n) AS q GROUP BY {} HAVING count(*) > 1 ORDER BY n DESC LIMIT 5",
            self.key_fields(),
            self.source_sql,
            group.join(", ")
        )
    }
}

/// The check strategy's columns: `check_cols` resolved against the query's
/// columns, or all of them; an unknown column is an error message.
pub fn check_columns(
    cols: &CheckCols,
    source_columns: &[String],
) -> std::result::Result<Vec<String>, String> {
    match cols {
        CheckCols::All => Ok(source_columns.to_vec()),
        CheckCols::List(list) => list
            .iter()
            .map(|c| {
                let bare = c.trim().trim_matches('"');
                source_columns
                    .iter()
                    .find(|s| s.as_str() == bare)
                    .or_else(|| {
                        source_columns
                            .iter()
                            .find(|s| s.eq_ignore_ascii_case(bare))
                    })
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "check_cols names `{c}`, which is not a column of the snapshot's query{}; its columns: {}",
                            crate::error::did_you_mean(bare, source_columns.iter().map(String::as_str)),
                            source_columns.join(", ")
                        )
                    })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_text_of_timestamps() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_micro_opt(3, 4, 5, 500_000))
            .unwrap();
        assert_eq!(duckdb_timestamp_text(&t), "2024-01-02 03:04:05.5");
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .unwrap();
        assert_eq!(duckdb_timestamp_text(&t), "2024-01-02 03:04:05");
    }

    #[test]
    fn check_columns_resolve() {
        let src = vec!["id".to_string(), "status".to_string()];
        assert_eq!(
            check_columns(&CheckCols::List(vec!["Status".into()]), &src).unwrap(),
            vec!["status"]
        );
        let e = check_columns(&CheckCols::List(vec!["stat".into()]), &src).unwrap_err();
        assert!(e.contains("`stat`") && e.contains("status"), "{e}");
        assert_eq!(check_columns(&CheckCols::All, &src).unwrap(), src);
    }
}
