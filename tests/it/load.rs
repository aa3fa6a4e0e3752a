//! `sluice load`: example data, idempotency, quarantine, evolution, modes.

use crate::common::*;
use sluice::load::{load, LoadOptions, NoProgress};
use sluice::project::Project;

async fn load_all(project: &Project, w: &sluice::warehouse::Warehouse) -> sluice::load::LoadReport {
    load(project, w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_loads_and_second_load_is_a_no_op() {
    let dir = example_project();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let report = load_all(&project, &w).await;
    let by = |n: &str| {
        report
            .sources
            .iter()
            .find(|s| s.source == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("users").rows_loaded, 1000);
    assert_eq!(by("merchants").rows_loaded, 200);
    assert_eq!(by("transactions").rows_loaded, 5000);
    assert_eq!(by("transactions").files.len(), 5);
    assert_eq!(by("labels").rows_loaded, 5000);
    assert!(report.sources.iter().all(|s| s.rows_rejected == 0));

    let e = engine(&project, &w).await;
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM raw.transactions").await,
        "5000"
    );
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM transactions").await,
        "5000"
    );
    assert_eq!(
        scalar(&e, "SELECT sum(amount) FROM raw.transactions").await,
        "187543.74"
    );
    assert_eq!(
        scalar(&e, "SELECT arrow_typeof(ts) FROM raw.transactions LIMIT 1").await,
        "Timestamp(µs, \"UTC\")"
    );
    assert_eq!(
        rows(&e, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'sluice' AND table_schema = 'raw' ORDER BY table_name").await,
        vec!["raw|labels", "raw|merchants", "raw|transactions", "raw|users"]
    );

    let versions = [
        version_of(&w, "raw", "users").await,
        version_of(&w, "raw", "transactions").await,
        version_of(&w, "raw", "merchants").await,
        version_of(&w, "raw", "labels").await,
    ];
    let again = load_all(&project, &w).await;
    assert!(again
        .sources
        .iter()
        .all(|s| s.version.is_none() && s.rows_loaded == 0));
    assert_eq!(
        again
            .sources
            .iter()
            .find(|s| s.source == "transactions")
            .unwrap()
            .skipped_files,
        5
    );
    let after = [
        version_of(&w, "raw", "users").await,
        version_of(&w, "raw", "transactions").await,
        version_of(&w, "raw", "merchants").await,
        version_of(&w, "raw", "labels").await,
    ];
    assert_eq!(versions, after, "a second load must not create versions");

    // One new file: exactly one new version holding only its rows.
    std::fs::write(
        dir.path().join("catalog/data/transactions/2026-01-06.csv"),
        "txn_id,user_id,merchant_id,amount,currency,ts\n9001,1,1,10.00,EUR,2026-01-06T01:00:00Z\n9002,2,2,5.50,USD,2026-01-06T02:00:00Z\n",
    )
    .unwrap();
    let third = load(
        &project,
        &w,
        &["transactions".into()],
        &LoadOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let s = &third.sources[0];
    assert_eq!(s.rows_loaded, 2);
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.skipped_files, 5);
    assert_eq!(s.version, after[1].map(|v| v + 1));
    let e = engine(&project, &w).await;
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM raw.transactions").await,
        "5002"
    );
    let t = w.open_table("raw", "transactions").await.unwrap().unwrap();
    let hist = sluice::warehouse::history(&t).await.unwrap();
    let last = hist.last().unwrap();
    assert_eq!(last.rows_added, Some(2));
    assert_eq!(last.load_id.as_deref(), Some(third.load_id.as_str()));
    assert_eq!(last.source_files.len(), 1);

    // --force reloads everything.
    let forced = load(
        &project,
        &w,
        &["transactions".into()],
        &LoadOptions {
            force: true,
            max_rejected: None,
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(forced.sources[0].rows_loaded, 5002);
}

const EVENTS: &str = r#"
[[source]]
name = "events"
format = "csv"
location = "data/*.csv"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "amount"
type = "decimal(10,2)"

[[source.columns]]
name = "ts"
type = "timestamptz"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_quarantined_not_lost() {
    let dir = project_with(EVENTS);
    let csv = "id,amount,ts\n\
               1,1.50,2026-01-01T00:00:00Z\n\
               2,abc,2026-01-01T00:00:00Z\n\
               ,3.00,2026-01-01T00:00:00Z\n\
               4,4.00,not-a-time\n\
               5,5.00\n\
               6,6.00,2026-01-01T00:00:00Z,extra\n\
               \"7\",\"7.00\",\"2026-01-02T00:00:00Z\"\n";
    std::fs::write(dir.path().join("data/a.csv"), csv).unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);

    // Too many rejections: nothing is committed anywhere.
    let err = load(
        &project,
        &w,
        &[],
        &LoadOptions {
            force: false,
            max_rejected: Some(2),
        },
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than 2 rows rejected"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    assert_eq!(version_of(&w, "raw", "events").await, None);
    assert_eq!(version_of(&w, "raw", "events__rejected").await, None);

    let report = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let s = &report.sources[0];
    assert_eq!(s.rows_loaded, 2);
    assert_eq!(s.rows_rejected, 5);
    assert_eq!(
        s.rows_loaded + s.rows_rejected,
        7,
        "loaded + rejected = input rows"
    );
    assert_eq!(s.rejected_table.as_deref(), Some("raw.events__rejected"));
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, amount FROM raw.events ORDER BY id").await,
        vec!["1|1.50", "7|7.00"]
    );
    let rejected = rows(
        &e,
        "SELECT line, reason, raw, file LIKE '%/data/a.csv' FROM raw.events__rejected ORDER BY line",
    )
    .await;
    assert_eq!(
        rejected,
        vec![
            "3|column `amount`: 'abc' is not a valid DECIMAL(10,2)|2,abc,2026-01-01T00:00:00Z|true",
            "4|column `id` is empty but declared not_null|,3.00,2026-01-01T00:00:00Z|true",
            "5|column `ts`: 'not-a-time' is not a valid TIMESTAMPTZ|4,4.00,not-a-time|true",
            "6|expected 3 fields, found 2|5,5.00|true",
            "7|expected 3 fields, found 4|6,6.00,2026-01-01T00:00:00Z,extra|true",
        ]
    );
    assert_eq!(
        scalar(
            &e,
            &format!(
                "SELECT count(*) FROM raw.events__rejected WHERE load_id = '{}'",
                report.load_id
            )
        )
        .await,
        "5"
    );
}

/// A CSV of several pieces (8 MiB each, read in parallel, the plain ones by the
/// fast path): same rows, rejections and line numbers as one pass, including a
/// quoted field with an embedded newline in a later piece. The second piece
/// (lines ~240k-480k) has no quote, so the plain path reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_of_several_pieces_loads_like_one_pass() {
    use std::fmt::Write;
    let dir = project_with(EVENTS);
    let n = 700_000u64;
    let mut csv = String::from("id,amount,ts\n");
    for i in 1..=n {
        if i % 100_000 == 0 {
            writeln!(csv, "{i},bad,2026-01-01T00:00:00Z").unwrap();
        } else if i == 550_001 {
            writeln!(csv, "{i},\"4.\n50\",2026-01-01T00:00:00Z").unwrap();
        } else if i == 600_001 {
            writeln!(csv, "\"{i}\",\"1.00\",\"2026-01-01T00:00:00Z\"").unwrap();
        } else {
            writeln!(csv, "{i},{}.{:02},2026-01-01T00:00:00Z", i % 1000, i % 100).unwrap();
        }
    }
    assert!(
        csv.len() > 2 * (8 << 20),
        "{} bytes: fewer than 3 pieces",
        csv.len()
    );
    std::fs::write(dir.path().join("data/a.csv"), csv).unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let report = load_all(&project, &w).await;
    let s = &report.sources[0];
    assert_eq!((s.rows_loaded, s.rows_rejected), (n - 8, 8));
    let e = engine(&project, &w).await;
    let bad: u64 = [
        100_000u64, 200_000, 300_000, 400_000, 500_000, 550_001, 600_000, 700_000,
    ]
    .iter()
    .sum();
    assert_eq!(
        scalar(&e, "SELECT sum(id) FROM raw.events").await,
        (n * (n + 1) / 2 - bad).to_string()
    );
    assert_eq!(
        scalar(&e, "SELECT amount FROM raw.events WHERE id = 600001").await,
        "1.00"
    );
    assert_eq!(
        scalar(&e, "SELECT sum(amount) FROM raw.events WHERE id < 10").await,
        "45.45"
    );
    let rejected = rows(
        &e,
        "SELECT line, reason, raw FROM raw.events__rejected ORDER BY line",
    )
    .await;
    let mut expected = Vec::new();
    for (i, line) in [
        (100_000, 100_001),
        (200_000, 200_001),
        (300_000, 300_001),
        (400_000, 400_001),
        (500_000, 500_001),
    ] {
        expected.push(format!(
            "{line}|column `amount`: 'bad' is not a valid DECIMAL(10,2)|{i},bad,2026-01-01T00:00:00Z"
        ));
    }
    expected.push(
        "550002|column `amount`: '4.\n50' is not a valid DECIMAL(10,2)|550001,\"4.\n50\",2026-01-01T00:00:00Z"
            .to_string(),
    );
    for (i, line) in [(600_000, 600_002), (700_000, 700_002)] {
        expected.push(format!(
            "{line}|column `amount`: 'bad' is not a valid DECIMAL(10,2)|{i},bad,2026-01-01T00:00:00Z"
        ));
    }
    assert_eq!(rejected, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_quarantine_and_schema_evolution() {
    let dir = project_with(
        r#"
[[source]]
name = "labels"
format = "ndjson"
location = "data/*.ndjson"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true
"#,
    );
    std::fs::write(
        dir.path().join("data/1.ndjson"),
        "{\"id\": 1, \"flag\": true}\n{\"id\": 2, \"flag\": false}\n{bad json\n{\"flag\": true}\n\n{\"id\": \"x\"}\n",
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let r = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.sources[0].rows_loaded, 2);
    assert_eq!(r.sources[0].rows_rejected, 3);
    let e = engine(&project, &w).await;
    let lines = rows(&e, "SELECT line FROM raw.labels__rejected ORDER BY line").await;
    assert_eq!(lines, vec!["3", "4", "6"]);

    // A newer file adds a column: the table gains it, old rows read NULL.
    std::fs::write(
        dir.path().join("data/2.ndjson"),
        "{\"id\": 3, \"flag\": true, \"score\": 0.5}\n",
    )
    .unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, flag, score FROM raw.labels ORDER BY id").await,
        vec!["1|true|", "2|false|", "3|true|0.5"]
    );

    // An incompatible type change is an error naming the column and both types.
    std::fs::write(
        dir.path().join("data/3.ndjson"),
        "{\"id\": 4, \"flag\": \"maybe\"}\n",
    )
    .unwrap();
    let err = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `flag` is BOOLEAN in the table but VARCHAR in"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_overwrite_and_merge_modes() {
    let dir = project_with(
        r#"
[[source]]
name = "snap"
format = "parquet"
location = "data/snap.parquet"
mode = "overwrite"

[[source]]
name = "dim"
format = "csv"
location = "data/dim*.csv"
mode = "merge"
merge_keys = ["k"]
"#,
    );
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let e = engine(&project, &w).await;
    let path = dir.path().join("data/snap.parquet");
    e.query(&format!(
        "COPY (SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name)) TO '{}' STORED AS PARQUET",
        path.display()
    ))
    .await
    .unwrap();
    std::fs::write(dir.path().join("data/dim1.csv"), "k,v\n1,one\n2,two\n").unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    e.query(&format!(
        "COPY (SELECT * FROM (VALUES (3, 'c')) AS t(id, name)) TO '{}' STORED AS PARQUET",
        path.display()
    ))
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("data/dim2.csv"),
        "k,v,w\n2,TWO,x\n3,three,y\n3,THREE,z\n",
    )
    .unwrap();
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &w).await;
    assert_eq!(rows(&e, "SELECT id, name FROM raw.snap").await, vec!["3|c"]);
    assert_eq!(
        rows(&e, "SELECT k, v, w FROM raw.dim ORDER BY k").await,
        vec!["1|one|", "2|TWO|x", "3|THREE|z"]
    );
}

/// An append source whose every file has one row that does not parse (a reject).
const ARRIVALS: &str = r#"
[[source]]
name = "arrivals"
format = "csv"
location = "data/*.csv"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "amount"
type = "decimal(10,2)"
"#;

/// File `k` of [`ARRIVALS`]: ids `k*100+1 ..= k*100+10`, and line 7 is rejected.
fn write_arrival(data: &std::path::Path, k: u64) {
    use std::fmt::Write;
    let mut csv = String::from("id,amount\n");
    for i in 1..=10 {
        writeln!(csv, "{},{i}.00", k * 100 + i).unwrap();
        if i == 5 {
            writeln!(csv, "{},not-a-number", k * 100 + 99).unwrap();
        }
    }
    // Write then rename: a load never sees half a file.
    let tmp = data.join(format!(".{k:04}.tmp"));
    std::fs::write(&tmp, csv).unwrap();
    std::fs::rename(&tmp, data.join(format!("{k:04}.csv"))).unwrap();
}

/// Every loaded file's rows are in the table once, and its rejected row once in
/// the quarantine table.
async fn assert_each_arrival_once(project: &Project, w: &sluice::warehouse::Warehouse, files: u64) {
    let e = engine(project, w).await;
    assert_eq!(
        rows(&e, "SELECT count(*), count(DISTINCT id) FROM raw.arrivals").await,
        vec![format!("{}|{}", files * 10, files * 10)],
        "every file's rows exactly once"
    );
    assert_eq!(
        rows(
            &e,
            "SELECT count(*), count(DISTINCT file || ':' || CAST(line AS VARCHAR)) FROM raw.arrivals__rejected"
        )
        .await,
        vec![format!("{files}|{files}")],
        "every rejected row exactly once"
    );
}

/// Overlapping `sluice load` runs (cron jobs that start together) while new files
/// keep arriving: each file is committed by exactly one of them, the others
/// succeed and report it as loaded by a concurrent load.
pub async fn overlapping_loads_commit_each_file_once(
    uri: Option<&str>,
    loaders: usize,
    rounds: u64,
) {
    let dir = project_with(ARRIVALS);
    let data = dir.path().join("data");
    let project = std::sync::Arc::new(Project::load(dir.path()).unwrap());
    let w = open(&project, uri);
    let mut next = 0u64;
    let mut lost_races = 0;
    for _ in 0..rounds {
        write_arrival(&data, next);
        next += 1;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..loaders {
            if i == loaders / 2 {
                // A file that arrives while the first loads are running.
                write_arrival(&data, next);
                next += 1;
            }
            let (project, w) = (project.clone(), w.clone());
            tasks.spawn(async move {
                load(&project, &w, &[], &LoadOptions::default(), &NoProgress).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            let report = r
                .unwrap()
                .unwrap_or_else(|e| panic!("a concurrent load failed: {e}"));
            let s = &report.sources[0];
            assert!(
                s.version.is_some() || s.rows_loaded == 0,
                "a load that committed nothing must not report loaded rows: {s:?}"
            );
            // The loser says so: each file another load committed first is
            // named with that load, and is not among its own files.
            for c in &s.loaded_concurrently {
                assert!(
                    !c.load_id.is_empty() && c.load_id != report.load_id,
                    "{s:?}"
                );
                assert!(!s.files.iter().any(|f| f.path == c.path), "{s:?}");
            }
            lost_races += s.loaded_concurrently.len();
        }
    }
    assert!(
        lost_races > 0,
        "no load ever lost a race: the test did not overlap them"
    );
    // Whatever the last round left, one more load picks up.
    load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_each_arrival_once(&project, &w, next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_loads_commit_each_file_once_locally() {
    overlapping_loads_commit_each_file_once(None, 6, 4).await;
}

/// `overwrite` and `merge` sources under overlapping loads: every load succeeds
/// and the table holds the files' rows once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_overwrite_and_merge_loads() {
    let dir = project_with(
        r#"
[[source]]
name = "snap"
format = "csv"
location = "data/snap*.csv"
mode = "overwrite"

[[source]]
name = "dim"
format = "csv"
location = "data/dim*.csv"
mode = "merge"
merge_keys = ["k"]
"#,
    );
    let data = dir.path().join("data");
    let project = std::sync::Arc::new(Project::load(dir.path()).unwrap());
    let w = open(&project, None);
    for round in 0..3u64 {
        std::fs::write(
            data.join(format!("snap{round}.csv")),
            format!("id,v\n{},a\n{},b\n", round * 10 + 1, round * 10 + 2),
        )
        .unwrap();
        // Each dim file updates key `round` and adds key `round + 1`.
        std::fs::write(
            data.join(format!("dim{round}.csv")),
            format!("k,v\n{round},updated-{round}\n{},new-{round}\n", round + 1),
        )
        .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let (project, w) = (project.clone(), w.clone());
            tasks.spawn(async move {
                load(&project, &w, &[], &LoadOptions::default(), &NoProgress).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap()
                .unwrap_or_else(|e| panic!("a concurrent load failed: {e}"));
        }
        let e = engine(&project, &w).await;
        let expected: Vec<String> = (0..=round)
            .flat_map(|r| [format!("{}|a", r * 10 + 1), format!("{}|b", r * 10 + 2)])
            .collect();
        assert_eq!(
            rows(&e, "SELECT id, v FROM raw.snap ORDER BY id").await,
            expected
        );
        let mut dim: Vec<String> = (0..=round).map(|k| format!("{k}|updated-{k}")).collect();
        dim.push(format!("{}|new-{round}", round + 1));
        assert_eq!(rows(&e, "SELECT k, v FROM raw.dim ORDER BY k").await, dim);
    }
}

/// Deletes the latest commit of `schema.table`: the state a `kill -9` leaves
/// between the quarantine commit and the target commit.
pub async fn drop_latest_commit(w: &sluice::warehouse::Warehouse, schema: &str, table: &str) {
    use object_store::ObjectStoreExt;
    let v = version_of(w, schema, table).await.unwrap();
    let path = w
        .root_path()
        .join(schema)
        .join(table)
        .join("_delta_log")
        .join(format!("{v:020}.json"));
    w.store().delete(&path).await.unwrap();
}

/// A load killed after its quarantine commit and before its target commit:
/// the next load rejects the same rows again, and each stays in the quarantine
/// table once.
pub async fn killed_between_quarantine_and_target_keeps_rejects_once(uri: Option<&str>) {
    let dir = project_with(ARRIVALS);
    let data = dir.path().join("data");
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, uri);
    // Killed during the table's very first load: the target does not exist.
    write_arrival(&data, 0);
    load_all(&project, &w).await;
    drop_latest_commit(&w, "raw", "arrivals").await;
    assert_eq!(version_of(&w, "raw", "arrivals").await, None);
    let r = load_all(&project, &w).await;
    assert_eq!(r.sources[0].rows_rejected, 1);
    assert_each_arrival_once(&project, &w, 1).await;
    // Killed during a later load of two files; the rerun also sees a new file.
    write_arrival(&data, 1);
    write_arrival(&data, 2);
    load_all(&project, &w).await;
    drop_latest_commit(&w, "raw", "arrivals").await;
    assert_eq!(version_of(&w, "raw", "arrivals").await, Some(0));
    write_arrival(&data, 3);
    let r = load_all(&project, &w).await;
    assert_eq!(r.sources[0].rows_loaded, 30);
    assert_eq!(r.sources[0].rows_rejected, 3);
    assert_each_arrival_once(&project, &w, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_quarantine_and_target_keeps_rejects_once_locally() {
    killed_between_quarantine_and_target_keeps_rejects_once(None).await;
}

/// Two sources that load into one table, each file adding a column, loaded by
/// overlapping loads: a commit whose snapshot is behind a schema change plans
/// again instead of writing its older schema over the newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_loads_keep_concurrent_schema_changes() {
    let dir = project_with(
        r#"
[[source]]
name = "a"
format = "ndjson"
location = "data/a*.ndjson"
target = "raw.shared"

[[source]]
name = "b"
format = "ndjson"
location = "data/b*.ndjson"
target = "raw.shared"
"#,
    );
    let data = dir.path().join("data");
    let project = std::sync::Arc::new(Project::load(dir.path()).unwrap());
    let w = open(&project, None);
    const ROUNDS: u64 = 3;
    for round in 0..ROUNDS {
        for s in ["a", "b"] {
            std::fs::write(
                data.join(format!("{s}{round}.ndjson")),
                format!("{{\"id\": \"{s}{round}\", \"{s}_{round}\": {round}}}\n"),
            )
            .unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let (project, w) = (project.clone(), w.clone());
            // Half load `a` then `b`, half `b` then `a`.
            let order: Vec<String> = if i % 2 == 0 {
                vec!["a".into(), "b".into()]
            } else {
                vec!["b".into(), "a".into()]
            };
            tasks.spawn(async move {
                load(&project, &w, &order, &LoadOptions::default(), &NoProgress).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap()
                .unwrap_or_else(|e| panic!("a concurrent load failed: {e}"));
        }
    }
    let e = engine(&project, &w).await;
    for round in 0..ROUNDS {
        for s in ["a", "b"] {
            assert_eq!(
                rows(
                    &e,
                    &format!(
                        "SELECT count(*), sum({s}_{round}) FROM raw.shared WHERE id = '{s}{round}'"
                    )
                )
                .await,
                vec![format!("1|{round}")],
                "column {s}_{round} of file {s}{round}"
            );
        }
    }
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM raw.shared").await,
        (2 * ROUNDS).to_string()
    );
}
