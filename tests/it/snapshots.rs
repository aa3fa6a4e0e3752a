//! dbt snapshots (SCD type 2) on a dbt project in a temp folder: sequences
//! of source changes, with the whole snapshot table checked after each run
//! against rows derived by hand from dbt's semantics.
//!
//! Run times are not known in advance: a timestamp written during run k
//! shows as `R{k}` in the expected rows, and `md5(...)` in an expected row is
//! the md5 of its text with `R{k}` spelled as DuckDB casts it to text.

use crate::common::open;
use chrono::NaiveDateTime;
use sluice::models::{self, snapshot, CompileOptions};
use sluice::project::Project;
use std::collections::BTreeMap;
use std::path::Path;

struct Dbt {
    dir: tempfile::TempDir,
    /// (start, end) of each run, in UTC.
    runs: Vec<(NaiveDateTime, NaiveDateTime)>,
}

impl Dbt {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dbt_project.yml"),
            "name: shop\nversion: '1.0'\nprofile: shop\nsnapshots:\n  shop:\n    +target_schema: snapshots\n",
        )
        .unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Dbt {
            dir,
            runs: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn engine(&self) -> (Project, sluice::sql::Engine) {
        let project = Project::load(self.path()).unwrap();
        let wh = open(&project, None);
        let engine = sluice::app::engine(&project, wh).await.unwrap();
        (project, engine)
    }

    /// Replaces table `main.<name>` by the rows of `select`.
    async fn source(&self, name: &str, select: &str) {
        let (_, engine) = self.engine().await;
        engine
            .query(&format!("DROP TABLE IF EXISTS main.{name}"))
            .await
            .unwrap();
        engine
            .query(&format!("CREATE TABLE main.{name} AS {select}"))
            .await
            .unwrap();
    }

    /// Runs every snapshot; the outcomes' results (errors as text).
    async fn run(&mut self) -> Vec<Result<snapshot::SnapshotResult, String>> {
        let (project, engine) = self.engine().await;
        let compiled = models::compile(&project, &engine, &CompileOptions::default())
            .await
            .unwrap();
        let all = snapshot::select(&compiled.snapshots, &[], &[]).unwrap();
        let vars = snapshot::vars(&project, &BTreeMap::new());
        let start = chrono::Utc::now().naive_utc();
        let out = snapshot::run_snapshots(&engine, &compiled, &all, &vars, "test").await;
        self.runs.push((start, chrono::Utc::now().naive_utc()));
        out.into_iter()
            .map(|o| o.result.map_err(|e| e.to_string()))
            .collect()
    }

    /// `R{k}` for a timestamp written during run k, else the text as is.
    fn label(&self, cell: &str) -> String {
        if let Ok(t) = NaiveDateTime::parse_from_str(cell, "%Y-%m-%dT%H:%M:%S%.f") {
            for (k, (a, b)) in self.runs.iter().enumerate() {
                if *a <= t && t <= *b {
                    return format!("R{}", k + 1);
                }
            }
        }
        cell.to_string()
    }

    /// The DuckDB text of the time that `R{k}` labels in `rows`.
    fn times(&self, rows: &[Vec<String>]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for cell in rows.iter().flatten() {
            let l = self.label(cell);
            if l != *cell {
                let t = NaiveDateTime::parse_from_str(cell, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
                out.insert(l, snapshot::sql::duckdb_timestamp_text(&t));
            }
        }
        out
    }

    /// The table's column names and its rows (ordered by `order`), run
    /// times labelled.
    async fn table(&self, table: &str, order: &str) -> (Vec<String>, Vec<String>) {
        let (_, engine) = self.engine().await;
        let batches = engine
            .query(&format!("SELECT * FROM snapshots.{table} ORDER BY {order}"))
            .await
            .unwrap();
        let columns: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut raw = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                raw.push(
                    (0..b.num_columns())
                        .map(|c| {
                            arrow::util::display::array_value_to_string(b.column(c), r).unwrap()
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        let rows = raw
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| self.label(c))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        (columns, rows)
    }

    /// `expected` with every `md5(text)` replaced by the md5 of `text`, in
    /// which `R{k}` is the run's time as DuckDB text.
    async fn expand(&self, table: &str, order: &str, expected: &[&str]) -> Vec<String> {
        let (_, engine) = self.engine().await;
        let batches = engine
            .query(&format!("SELECT * FROM snapshots.{table} ORDER BY {order}"))
            .await
            .unwrap();
        let mut raw = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                raw.push(
                    (0..b.num_columns())
                        .map(|c| {
                            arrow::util::display::array_value_to_string(b.column(c), r).unwrap()
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        let times = self.times(&raw);
        let mut out = Vec::new();
        for row in expected {
            let mut cells = Vec::new();
            for cell in row.split('|') {
                cells.push(cell.to_string());
            }
            // md5(a|b) spans cells split on '|': join them back.
            let mut merged: Vec<String> = Vec::new();
            let mut open_md5: Option<String> = None;
            for c in cells {
                match open_md5.take() {
                    Some(mut acc) => {
                        acc.push('|');
                        acc.push_str(&c);
                        if acc.ends_with(')') {
                            merged.push(acc);
                        } else {
                            open_md5 = Some(acc);
                        }
                    }
                    None if c.starts_with("md5(") && !c.ends_with(')') => open_md5 = Some(c),
                    None => merged.push(c),
                }
            }
            let mut final_cells = Vec::new();
            for c in merged {
                if let Some(text) = c.strip_prefix("md5(").and_then(|x| x.strip_suffix(')')) {
                    let mut text = text.to_string();
                    for (label, t) in times.iter().rev() {
                        text = text.replace(label.as_str(), t);
                    }
                    let h = crate::common::scalar(
                        &engine,
                        &format!("SELECT md5('{}')", text.replace('\'', "''")),
                    )
                    .await;
                    final_cells.push(h);
                } else {
                    final_cells.push(c);
                }
            }
            out.push(final_cells.join("|"));
        }
        out
    }

    async fn check(&self, table: &str, order: &str, expected: &[&str]) {
        let (_, rows) = self.table(table, order).await;
        let want = self.expand(table, order, expected).await;
        assert_eq!(rows, want, "table snapshots.{table}");
    }

    async fn version(&self, table: &str) -> Option<u64> {
        let (_, engine) = self.engine().await;
        engine
            .warehouse()
            .latest_version("snapshots", table)
            .await
            .unwrap()
    }
}

const TS: &str = "{% snapshot ts_snap %}\n{{ config(unique_key='id', strategy='timestamp', updated_at='updated_at', hard_deletes='invalidate') }}\nselect * from {{ source('shop', 'src') }}\n{% endsnapshot %}\n";
const SOURCES: &str =
    "version: 2\nsources:\n  - name: shop\n    schema: main\n    tables:\n      - name: src\n";

fn ts_rows(rows: &[(i64, &str, &str)]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(id, name, ts)| format!("({id}, '{name}', CAST('{ts}' AS TIMESTAMP))"))
        .collect();
    format!(
        "SELECT column1 AS id, column2 AS name, column3 AS updated_at FROM (VALUES {}) AS v",
        values.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamp_strategy_updates_deletes_and_reinserts() {
    let mut p = Dbt::new(&[
        ("snapshots/ts.sql", TS),
        ("models/sources.yml", SOURCES),
        (
            "models/current.sql",
            "select id, name from {{ ref('ts_snap') }} where dbt_valid_to is null",
        ),
    ]);
    let (t1, t2) = ("2024-01-01 00:00:00", "2024-01-02 12:30:00.5");
    p.source("src", &ts_rows(&[(1, "a", t1), (2, "b", t1), (3, "c", t1)]))
        .await;
    let r = p.run().await;
    assert_eq!(r[0].as_ref().unwrap().action, "created");
    let (columns, _) = p.table("ts_snap", "id").await;
    assert_eq!(
        columns,
        [
            "id",
            "name",
            "updated_at",
            "dbt_scd_id",
            "dbt_updated_at",
            "dbt_valid_from",
            "dbt_valid_to"
        ]
    );
    let a = "2024-01-01T00:00:00";
    let b = "2024-01-02T12:30:00.500";
    p.check(
        "ts_snap",
        "id, dbt_valid_from",
        &[
            &format!("1|a|{a}|md5(1|2024-01-01 00:00:00)|{a}|{a}|"),
            &format!("2|b|{a}|md5(2|2024-01-01 00:00:00)|{a}|{a}|"),
            &format!("3|c|{a}|md5(3|2024-01-01 00:00:00)|{a}|{a}|"),
        ],
    )
    .await;
    // The md5 is dbt's, computed here independently of sluice's SQL.
    let (_, rows) = p.table("ts_snap", "id").await;
    assert!(
        rows[0].contains("8bd6037542377309505ab720e545f24e"),
        "{rows:?}"
    );

    // 2 changes, 3 goes away (invalidate), 4 arrives; 1 is unchanged.
    p.source(
        "src",
        &ts_rows(&[(1, "a", t1), (2, "bb", t2), (4, "d", t2)]),
    )
    .await;
    let r = p.run().await;
    let r = r[0].as_ref().unwrap();
    assert_eq!((r.action, r.inserted, r.closed), ("merged", 2, 2));
    let v2 = p.version("ts_snap").await;
    p.check(
        "ts_snap",
        "id, dbt_valid_from",
        &[
            &format!("1|a|{a}|md5(1|2024-01-01 00:00:00)|{a}|{a}|"),
            &format!("2|b|{a}|md5(2|2024-01-01 00:00:00)|{a}|{a}|{b}"),
            &format!("2|bb|{b}|md5(2|2024-01-02 12:30:00.5)|{b}|{b}|"),
            &format!("3|c|{a}|md5(3|2024-01-01 00:00:00)|{a}|{a}|R2"),
            &format!("4|d|{b}|md5(4|2024-01-02 12:30:00.5)|{b}|{b}|"),
        ],
    )
    .await;

    // 3 comes back unchanged: a new current version from its updated_at (as
    // dbt-duckdb inserts it, with the scd id of its first version).
    p.source(
        "src",
        &ts_rows(&[(1, "a", t1), (2, "bb", t2), (3, "c", t1), (4, "d", t2)]),
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let expected_3 = [
        format!("1|a|{a}|md5(1|2024-01-01 00:00:00)|{a}|{a}|"),
        format!("2|b|{a}|md5(2|2024-01-01 00:00:00)|{a}|{a}|{b}"),
        format!("2|bb|{b}|md5(2|2024-01-02 12:30:00.5)|{b}|{b}|"),
        format!("3|c|{a}|md5(3|2024-01-01 00:00:00)|{a}|{a}|R2"),
        format!("3|c|{a}|md5(3|2024-01-01 00:00:00)|{a}|{a}|"),
        format!("4|d|{b}|md5(4|2024-01-02 12:30:00.5)|{b}|{b}|"),
    ];
    let expected_3: Vec<&str> = expected_3.iter().map(String::as_str).collect();
    p.check("ts_snap", "id, dbt_valid_to NULLS LAST", &expected_3)
        .await;
    let v3 = p.version("ts_snap").await;
    assert_ne!(v2, v3);

    // Nothing changed: nothing committed.
    let r = p.run().await;
    let r = r[0].as_ref().unwrap();
    assert_eq!((r.inserted, r.closed), (0, 0));
    assert_eq!(p.version("ts_snap").await, v3);
    p.check("ts_snap", "id, dbt_valid_to NULLS LAST", &expected_3)
        .await;

    // ref('ts_snap') from a model is the snapshot's table.
    let (project, engine) = p.engine().await;
    let compiled = models::compile(&project, &engine, &CompileOptions::default())
        .await
        .unwrap();
    let m = compiled.find("current").unwrap();
    assert!(
        compiled.models[m].sql.contains("snapshots.ts_snap"),
        "{}",
        compiled.models[m].sql
    );
}

fn ck_rows(rows: &[(i64, &str, Option<&str>)]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(k1, k2, v)| match v {
            Some(v) => format!("({k1}, '{k2}', '{v}')"),
            None => format!("({k1}, '{k2}', CAST(NULL AS VARCHAR))"),
        })
        .collect();
    format!(
        "SELECT column1 AS k1, column2 AS k2, column3 AS v FROM (VALUES {}) AS t",
        values.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn check_strategy_composite_key_new_record_and_renamed_meta_columns() {
    let yml = "snapshots:\n  - name: ck_snap\n    relation: source('shop', 'src')\n    config:\n      strategy: check\n      unique_key: [k1, k2]\n      check_cols: [v]\n      hard_deletes: new_record\n      snapshot_meta_column_names:\n        dbt_valid_from: start_at\n        dbt_valid_to: end_at\n        dbt_is_deleted: gone\n";
    let mut p = Dbt::new(&[("snapshots/ck.yml", yml), ("models/sources.yml", SOURCES)]);
    p.source(
        "src",
        &ck_rows(&[(1, "x", Some("p")), (1, "y", Some("q")), (2, "x", None)]),
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let (columns, _) = p.table("ck_snap", "k1").await;
    assert_eq!(
        columns,
        [
            "k1",
            "k2",
            "v",
            "dbt_scd_id",
            "dbt_updated_at",
            "start_at",
            "end_at",
            "gone"
        ]
    );
    let order = "k1, k2, start_at";
    p.check(
        "ck_snap",
        order,
        &[
            "1|x|p|md5(1|x|R1)|R1|R1||False",
            "1|y|q|md5(1|y|R1)|R1|R1||False",
            "2|x||md5(2|x|R1)|R1|R1||False",
        ],
    )
    .await;

    // (1,y) changes, (2,x) goes from NULL to a value, (3,z) arrives.
    p.source(
        "src",
        &ck_rows(&[
            (1, "x", Some("p")),
            (1, "y", Some("Q")),
            (2, "x", Some("r")),
            (3, "z", Some("s")),
        ]),
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let after_2 = [
        "1|x|p|md5(1|x|R1)|R1|R1||False",
        "1|y|q|md5(1|y|R1)|R1|R1|R2|False",
        "1|y|Q|md5(1|y|R2)|R2|R2||False",
        "2|x||md5(2|x|R1)|R1|R1|R2|False",
        "2|x|r|md5(2|x|R2)|R2|R2||False",
        "3|z|s|md5(3|z|R2)|R2|R2||False",
    ];
    p.check("ck_snap", order, &after_2).await;

    // (1,x) goes away: its version closes and a deletion record starts.
    p.source(
        "src",
        &ck_rows(&[
            (1, "y", Some("Q")),
            (2, "x", Some("r")),
            (3, "z", Some("s")),
        ]),
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let after_3 = [
        "1|x|p|md5(1|x|R1)|R1|R1|R3|False",
        "1|x|p|md5(md5(1|x|R1)|R3)|R3|R3||True",
        "1|y|q|md5(1|y|R1)|R1|R1|R2|False",
        "1|y|Q|md5(1|y|R2)|R2|R2||False",
        "2|x||md5(2|x|R1)|R1|R1|R2|False",
        "2|x|r|md5(2|x|R2)|R2|R2||False",
        "3|z|s|md5(3|z|R2)|R2|R2||False",
    ];
    // The deletion record's id hashes the closed version's id.
    let (_, engine) = p.engine().await;
    let old = crate::common::scalar(
        &engine,
        "SELECT dbt_scd_id FROM snapshots.ck_snap WHERE k1 = 1 AND k2 = 'x' AND gone = 'False'",
    )
    .await;
    let after_3: Vec<String> = after_3
        .iter()
        .map(|r| r.replace("md5(md5(1|x|R1)|R3)", &format!("md5({old}|R3)")))
        .collect();
    let after_3: Vec<&str> = after_3.iter().map(String::as_str).collect();
    p.check("ck_snap", order, &after_3).await;

    // Still gone: nothing more.
    let v3 = p.version("ck_snap").await;
    p.run().await[0].as_ref().unwrap();
    assert_eq!(p.version("ck_snap").await, v3);

    // (1,x) comes back: the deletion record closes, a new version starts.
    p.source(
        "src",
        &ck_rows(&[
            (1, "x", Some("p")),
            (1, "y", Some("Q")),
            (2, "x", Some("r")),
            (3, "z", Some("s")),
        ]),
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let mut after_5: Vec<String> = after_3.iter().map(|s| s.to_string()).collect();
    after_5[1] = format!("1|x|p|md5({old}|R3)|R3|R3|R5|True");
    after_5.insert(2, "1|x|p|md5(1|x|R5)|R5|R5||False".into());
    let after_5: Vec<&str> = after_5.iter().map(String::as_str).collect();
    p.check("ck_snap", order, &after_5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ignore_deletes_check_all_and_valid_to_current() {
    let sql = "{% snapshot all_snap %}\n{{ config(unique_key='id', strategy='check', check_cols='all', dbt_valid_to_current=\"cast('9999-12-31' as date)\") }}\nselect * from main.src\n{% endsnapshot %}\n";
    let mut p = Dbt::new(&[("snapshots/all.sql", sql)]);
    let src = |rows: &[(i64, &str)]| {
        let v: Vec<String> = rows.iter().map(|(i, n)| format!("({i}, '{n}')")).collect();
        format!(
            "SELECT column1 AS id, column2 AS name FROM (VALUES {}) AS t",
            v.join(", ")
        )
    };
    let end = "9999-12-31T00:00:00";
    p.source("src", &src(&[(1, "a"), (2, "b")])).await;
    p.run().await[0].as_ref().unwrap();
    let order = "id, dbt_valid_from";
    p.check(
        "all_snap",
        order,
        &[
            &format!("1|a|md5(1|R1)|R1|R1|{end}"),
            &format!("2|b|md5(2|R1)|R1|R1|{end}"),
        ],
    )
    .await;
    // 1 changes, 2 goes away: ignored, it stays current.
    p.source("src", &src(&[(1, "a2")])).await;
    p.run().await[0].as_ref().unwrap();
    let after_2 = [
        "1|a|md5(1|R1)|R1|R1|R2".to_string(),
        format!("1|a2|md5(1|R2)|R2|R2|{end}"),
        format!("2|b|md5(2|R1)|R1|R1|{end}"),
    ];
    let after_2: Vec<&str> = after_2.iter().map(String::as_str).collect();
    p.check("all_snap", order, &after_2).await;
    // 2 is back unchanged: its current version still matches.
    p.source("src", &src(&[(1, "a2"), (2, "b")])).await;
    let v = p.version("all_snap").await;
    p.run().await[0].as_ref().unwrap();
    assert_eq!(p.version("all_snap").await, v);
    p.check("all_snap", order, &after_2).await;

    // A new column: added at the end of the table, and with check_cols='all'
    // every current row changed (as in dbt).
    p.source(
        "src",
        "SELECT column1 AS id, column2 AS name, column3 AS extra FROM (VALUES (1, 'a2', 'x1'), (2, 'b', 'x2')) AS t",
    )
    .await;
    p.run().await[0].as_ref().unwrap();
    let (columns, _) = p.table("all_snap", order).await;
    assert_eq!(
        columns,
        [
            "id",
            "name",
            "dbt_scd_id",
            "dbt_updated_at",
            "dbt_valid_from",
            "dbt_valid_to",
            "extra"
        ]
    );
    let after_4 = [
        "1|a|md5(1|R1)|R1|R1|R2|".to_string(),
        "1|a2|md5(1|R2)|R2|R2|R4|".to_string(),
        format!("1|a2|md5(1|R4)|R4|R4|{end}|x1"),
        "2|b|md5(2|R1)|R1|R1|R4|".to_string(),
        format!("2|b|md5(2|R4)|R4|R4|{end}|x2"),
    ];
    let after_4: Vec<&str> = after_4.iter().map(String::as_str).collect();
    p.check("all_snap", order, &after_4).await;
    let v = p.version("all_snap").await;
    p.run().await[0].as_ref().unwrap();
    assert_eq!(p.version("all_snap").await, v);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_failures_leave_the_table_as_it_was() {
    let sql = "{% snapshot d_snap %}\n{{ config(unique_key='id', strategy='check', check_cols=['v']) }}\nselect id, v from main.src\n{% endsnapshot %}\n";
    let mut p = Dbt::new(&[("snapshots/d.sql", sql)]);
    p.source("src", "SELECT 1 AS id, 10 AS v UNION ALL SELECT 2, 20")
        .await;
    p.run().await[0].as_ref().unwrap();
    let v1 = p.version("d_snap").await;
    let (_, before) = p.table("d_snap", "id").await;

    // A key twice: an error naming it, nothing written.
    p.source(
        "src",
        "SELECT 1 AS id, 11 AS v UNION ALL SELECT 2, 20 UNION ALL SELECT 2, 21",
    )
    .await;
    let e = p.run().await.remove(0).unwrap_err();
    assert!(
        e.contains("snapshots/d.sql:1") && e.contains("id = 2") && e.contains("(2 rows)"),
        "{e}"
    );
    assert_eq!(p.version("d_snap").await, v1);

    // The merge fails while it runs (a value that does not cast to the
    // table's type): nothing committed.
    p.source(
        "src",
        "SELECT 1 AS id, 'eleven' AS v UNION ALL SELECT 2, '20'",
    )
    .await;
    let e = p.run().await.remove(0).unwrap_err();
    assert!(e.contains("d_snap"), "{e}");
    assert_eq!(p.version("d_snap").await, v1);
    let (_, after) = p.table("d_snap", "id").await;
    assert_eq!(before, after);

    // A good run afterwards works from the same state.
    p.source("src", "SELECT 1 AS id, 11 AS v UNION ALL SELECT 2, 20")
        .await;
    let r = p.run().await.remove(0).unwrap();
    assert_eq!((r.inserted, r.closed), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_name_the_file_and_line() {
    let p = Dbt::new(&[(
        "snapshots/bad.sql",
        "\n\n{% snapshot bad %}\n{{ config(unique_key='id', strategy='timestamp') }}\nselect 1 as id\n{% endsnapshot %}\n",
    )]);
    let (project, engine) = p.engine().await;
    let e = models::compile(&project, &engine, &CompileOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("snapshots/bad.sql:3") && e.contains("needs `updated_at`"),
        "{e}"
    );
    let p = Dbt::new(&[(
        "snapshots/s.yml",
        "snapshots:\n  - name: s\n    relation: ref('x')\n    config:\n      strategy: check\n      unique_key: id\n      check_col: [a]\n",
    )]);
    let (project, engine) = p.engine().await;
    let e = models::compile(&project, &engine, &CompileOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("snapshots/s.yml:2") && e.contains("`check_col`") && e.contains("check_cols"),
        "{e}"
    );
    // A snapshot and a model of the same name: ref() would be ambiguous.
    let p = Dbt::new(&[
        (
            "snapshots/s.sql",
            "{% snapshot orders %}\n{{ config(unique_key='id', strategy='check', check_cols='all') }}\nselect 1 as id\n{% endsnapshot %}\n",
        ),
        ("models/orders.sql", "select 1 as id"),
    ]);
    let (project, engine) = p.engine().await;
    let e = models::compile(&project, &engine, &CompileOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("snapshots/s.sql:1")
            && e.contains("model `main.orders`")
            && e.contains("rename"),
        "{e}"
    );
}

fn sluice(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .output()
        .unwrap()
}

#[test]
fn the_cli_in_a_sluice_project_with_build() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname = \"t\"\n\n[warehouse]\nuri = \"warehouse\"\n\n[snapshots]\ntarget_schema = \"hist\"\nstrategy = \"check\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("snapshots/people")).unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    std::fs::write(
        p.join("snapshots/people/people.sql"),
        "{% snapshot people_hist %}\n{{ config(unique_key='id', check_cols=['name']) }}\nselect id, name from raw.people\n{% endsnapshot %}\n",
    )
    .unwrap();
    std::fs::write(
        p.join("models/people_now.sql"),
        "select id, name from {{ ref('people_hist') }} where dbt_valid_to is null",
    )
    .unwrap();
    let sql = |q: &str| {
        let o = sluice(&["sql", q], p);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    sql("CREATE TABLE raw.people AS SELECT 1 AS id, 'ann' AS name UNION ALL SELECT 2, 'bob'");
    let o = sluice(&["snapshot", "--format", "json"], p);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["snapshots"][0]["relation"], "hist.people_hist");
    assert_eq!(doc["snapshots"][0]["action"], "created");
    assert_eq!(doc["snapshots"][0]["inserted"], 2);

    // build: the snapshot first (it reads no model), then the model.
    sql("DROP TABLE raw.people");
    sql("CREATE TABLE raw.people AS SELECT 1 AS id, 'ann' AS name UNION ALL SELECT 2, 'bo'");
    let o = sluice(&["build"], p);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let snap = out.find("snapshot hist.people_hist").unwrap();
    let model = out.find("raw.people_now").unwrap();
    assert!(snap < model, "{out}");
    assert!(out.contains("merged   1 inserted, 1 closed"), "{out}");
    let o = sluice(
        &[
            "sql",
            "SELECT id, name FROM raw.people_now ORDER BY id",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "id,name\n1,ann\n2,bo\n");

    // A selector that matches nothing: a usage error with a suggestion.
    let o = sluice(&["snapshot", "--select", "people_hst"], p);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("people_hst") && e.contains("did you mean"),
        "{e}"
    );

    // A failing snapshot: exit 1, its message, the table unchanged.
    sql("DROP TABLE raw.people");
    sql("CREATE TABLE raw.people AS SELECT 1 AS id, 'ann' AS name UNION ALL SELECT 1, 'bo'");
    let o = sluice(&["snapshot"], p);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ERROR") && out.contains("id = 1"), "{out}");
    let o = sluice(
        &[
            "sql",
            "SELECT count(*) AS n FROM hist.people_hist",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n3\n");
    // The run records name it, as dbt's run_results.json does.
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("target/run_results.json")).unwrap()).unwrap();
    assert_eq!(
        doc["results"][0]["unique_id"],
        "snapshot.t.hist.people_hist"
    );
    assert_eq!(doc["results"][0]["status"], "error");
}

#[test]
fn build_loads_the_seeds_a_snapshot_reads_first() {
    let p = Dbt::new(&[
        ("seeds/people.csv", "id,name\n1,ann\n2,bob\n"),
        (
            "snapshots/p.sql",
            "{% snapshot people_snap %}\n{{ config(unique_key='id', strategy='check', check_cols=['name']) }}\nselect * from {{ ref('people') }}\n{% endsnapshot %}\n",
        ),
    ]);
    let o = sluice(&["build"], p.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("main.people") && out.contains("snapshots.people_snap  created"),
        "{out}"
    );
    let o = sluice(
        &["sql", "SELECT id, name, dbt_valid_to IS NULL AS current FROM snapshots.people_snap ORDER BY id", "--format", "csv"],
        p.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "id,name,current\n1,ann,true\n2,bob,true\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_the_project_snapshot_tree_is_an_error() {
    let p = Dbt::new(&[(
        "snapshots/s.sql",
        "{% snapshot s %}\n{{ config(unique_key='id', strategy='check', check_cols='all') }}\nselect 1 as id\n{% endsnapshot %}\n",
    )]);
    std::fs::write(
        p.path().join("dbt_project.yml"),
        "name: shop\nprofile: shop\nsnapshots:\n  shop:\n    +target_schma: snapshots\n",
    )
    .unwrap();
    let (project, engine) = p.engine().await;
    let e = models::compile(&project, &engine, &CompileOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dbt_project.yml")
            && e.contains("`target_schma`")
            && e.contains("target_schema"),
        "{e}"
    );
}
