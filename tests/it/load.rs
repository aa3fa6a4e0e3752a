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

    // A loaded file that changed (a line appended) is an error naming it:
    // loading it again would add its first two rows a second time.
    let day6 = dir.path().join("catalog/data/transactions/2026-01-06.csv");
    let mut text = std::fs::read_to_string(&day6).unwrap();
    text.push_str("9003,3,3,1.25,EUR,2026-01-06T03:00:00Z\n");
    std::fs::write(&day6, text).unwrap();
    let only = |force, allow_duplicates| LoadOptions {
        force,
        allow_duplicates,
        max_rejected: None,
    };
    let err = load(
        &project,
        &w,
        &["transactions".into()],
        &only(false, false),
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("2026-01-06.csv"), "{err}");
    assert!(
        err.contains("changed since loaded into raw.transactions"),
        "{err}"
    );
    assert!(err.contains("2 rows loaded at version"), "{err}");
    assert!(err.contains("--allow-duplicates"), "{err}");
    let t = w.open_table("raw", "transactions").await.unwrap().unwrap();
    assert_eq!(t.version(), s.version, "nothing committed");
    // Asked for, the changed file is loaded whole again, and only it.
    let again = load(
        &project,
        &w,
        &["transactions".into()],
        &only(false, true),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(again.sources[0].rows_loaded, 3);
    assert_eq!(again.sources[0].skipped_files, 5);
    assert_eq!(
        scalar(
            &engine(&project, &w).await,
            "SELECT count(*) FROM raw.transactions"
        )
        .await,
        "5005"
    );

    // --force on an append source says what it would duplicate...
    let err = load(
        &project,
        &w,
        &["transactions".into()],
        &only(true, false),
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--force would load again 6 of its 6 files whose rows raw.transactions already holds (5005 rows"),
        "{err}"
    );
    // ...and reloads everything when told to.
    let forced = load(
        &project,
        &w,
        &["transactions".into()],
        &only(true, true),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(forced.sources[0].rows_loaded, 5003);
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
            max_rejected: Some(2),
            ..Default::default()
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
/// quoted field with an embedded newline in a later piece and a quote never
/// closed (its line is rejected at max_record_bytes, the rest loads). The second piece
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
        } else if i == 650_001 {
            // A quote that is never closed: rejected at the cap, the rest loads.
            writeln!(csv, "{i},\"4.50,2026-01-01T00:00:00Z").unwrap();
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
    assert_eq!((s.rows_loaded, s.rows_rejected), (n - 9, 9));
    let e = engine(&project, &w).await;
    let bad: u64 = [
        100_000u64, 200_000, 300_000, 400_000, 500_000, 550_001, 600_000, 650_001, 700_000,
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
    expected.push(
        "600002|column `amount`: 'bad' is not a valid DECIMAL(10,2)|600000,bad,2026-01-01T00:00:00Z"
            .to_string(),
    );
    expected.push(
        "650003|record is longer than max_record_bytes (1048576 bytes): a quoted field is not closed within it; raise [source.csv] max_record_bytes if the field is real|650001,\"4.50,2026-01-01T00:00:00Z"
            .to_string(),
    );
    expected.push(
        "700002|column `amount`: 'bad' is not a valid DECIMAL(10,2)|700000,bad,2026-01-01T00:00:00Z"
            .to_string(),
    );
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

/// Loads `files` (name, bytes) into a fresh project declaring `source_toml`;
/// returns the report (or the error text) and the rejected rows as
/// `line|reason|raw`.
async fn load_files(
    source_toml: &str,
    files: &[(&str, &[u8])],
) -> (
    Result<sluice::load::SourceReport, String>,
    Vec<String>,
    tempfile::TempDir,
) {
    let dir = project_with(source_toml);
    for (name, bytes) in files {
        std::fs::write(dir.path().join("data").join(name), bytes).unwrap();
    }
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let report = load(&project, &w, &[], &LoadOptions::default(), &NoProgress)
        .await
        .map(|r| r.sources[0].clone())
        .map_err(|e| e.to_string());
    let mut rejected = Vec::new();
    if let Ok(r) = &report {
        if let Some(t) = &r.rejected_table {
            let e = engine(&project, &w).await;
            rejected = rows(
                &e,
                &format!("SELECT line, reason, raw FROM {t} ORDER BY line"),
            )
            .await;
        }
    }
    (report, rejected, dir)
}

const NOTES: &str = r#"
[[source]]
name = "notes"
format = "csv"
location = "data/*.csv"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "amount"
type = "double"

[[source.columns]]
name = "note"
type = "varchar"
"#;

/// One class of CSV input: its bytes, the ids loaded, and the rejected rows as
/// (line, part of the reason, raw text).
struct CsvCase {
    name: &'static str,
    bytes: &'static [u8],
    records: u64,
    loaded: &'static [&'static str],
    rejected: &'static [(u64, &'static str, &'static str)],
}

/// `loaded + rejected = records in the input` for every class of malformed CSV,
/// with a line, a reason and the raw text for each rejection; legal multi-line
/// quoted fields still load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_csv_record_is_loaded_or_rejected() {
    let cases = [
        CsvCase {
            name: "unterminated quote in an early record",
            bytes: b"id,amount,note\n10,1,ok\n11,2,\"never closed\n12,3,ok\n13,4,ok\n",
            records: 4,
            loaded: &["10|1.0|ok", "12|3.0|ok", "13|4.0|ok"],
            rejected: &[(3, "never closed", "11,2,\"never closed")],
        },
        CsvCase {
            name: "unbalanced quote closed by a later record's quote",
            bytes: b"id,amount,note\n1,1,\"open\n2,2,ok\n3,3,\"x\"\n4,4,ok\n",
            records: 4,
            loaded: &["2|2.0|ok", "3|3.0|x", "4|4.0|ok"],
            rejected: &[(2, "after the closing quote", "1,1,\"open")],
        },
        CsvCase {
            name: "text after a closing quote",
            bytes: b"id,amount,note\n1,1,\"a\"b\n2,2,ok\n",
            records: 2,
            loaded: &["2|2.0|ok"],
            rejected: &[(2, "after the closing quote", "1,1,\"a\"b")],
        },
        CsvCase {
            name: "legal multi-line quoted fields",
            bytes: b"id,amount,note\n1,1,\"a\nb\"\n2,2,\"c\r\n\r\nd\"\n3,3,\"say \"\"hi\"\"\"\n",
            records: 3,
            loaded: &["1|1.0|a\nb", "2|2.0|c\r\n\r\nd", "3|3.0|say \"hi\""],
            rejected: &[],
        },
        CsvCase {
            name: "embedded NUL",
            bytes: b"id,amount,note\n1,1,a\0b\n2,2,ok\n",
            records: 2,
            loaded: &["2|2.0|ok"],
            rejected: &[(2, "NUL", "1,1,a\0b")],
        },
        CsvCase {
            name: "UTF-8 BOM",
            bytes: b"\xEF\xBB\xBFid,amount,note\n1,1,a\n",
            records: 1,
            loaded: &["1|1.0|a"],
            rejected: &[],
        },
        CsvCase {
            name: "CRLF, LF and CR line ends mixed",
            bytes: b"id,amount,note\r\n1,1,a\r\n2,2,b\n\r\n3,3,c\r4,4,d\nx,5,e\r\n",
            records: 5,
            loaded: &["1|1.0|a", "2|2.0|b", "3|3.0|c", "4|4.0|d"],
            rejected: &[(7, "not a valid BIGINT", "x,5,e")],
        },
        CsvCase {
            name: "header only",
            bytes: b"id,amount,note\n",
            records: 0,
            loaded: &[],
            rejected: &[],
        },
        CsvCase {
            name: "unterminated quote in the last record",
            bytes: b"id,amount,note\n1,1,ok\n2,2,\"open",
            records: 2,
            loaded: &["1|1.0|ok"],
            rejected: &[(3, "never closed", "2,2,\"open")],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let (report, rejected, dir) = load_files(NOTES, &[("a.csv", case.bytes)]).await;
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: load failed: {e}", case.name));
                continue;
            }
        };
        let project = Project::load(dir.path()).unwrap();
        let w = open(&project, None);
        let loaded = if report.rows_loaded > 0 {
            let e = engine(&project, &w).await;
            rows(&e, "SELECT id, amount, note FROM raw.notes ORDER BY id").await
        } else {
            Vec::new()
        };
        if report.rows_loaded + report.rows_rejected != case.records {
            failures.push(format!(
                "{}: {} loaded + {} rejected != {} records",
                case.name, report.rows_loaded, report.rows_rejected, case.records
            ));
        }
        if loaded != case.loaded {
            failures.push(format!("{}: loaded {loaded:?}", case.name));
        }
        let ok = rejected.len() == case.rejected.len()
            && rejected
                .iter()
                .zip(case.rejected)
                .all(|(got, (line, why, raw))| {
                    let mut parts = got.splitn(3, '|');
                    parts.next() == Some(&line.to_string())
                        && parts.next().is_some_and(|r| r.contains(why))
                        && parts.next() == Some(*raw)
                });
        if !ok {
            failures.push(format!("{}: rejected {rejected:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A record longer than `max_record_bytes` is rejected with its line; an
/// unterminated quote stops at the cap and the next lines load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_longer_than_max_record_bytes_is_rejected() {
    use std::fmt::Write;
    let toml = format!("{NOTES}\n[source.csv]\nmax_record_bytes = 200\n");
    let mut csv = String::from("id,amount,note\n1,1,\"fits\nin two lines\"\n");
    writeln!(csv, "2,2,{}", "x".repeat(500)).unwrap();
    csv.push_str("3,3,\"never closed\n");
    for i in 4..=60 {
        writeln!(csv, "{i},{i},plain").unwrap();
    }
    let (report, rejected, _dir) = load_files(&toml, &[("a.csv", csv.as_bytes())]).await;
    let report = report.unwrap();
    assert_eq!((report.rows_loaded, report.rows_rejected), (58, 2));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected[0].starts_with("4|record is longer than max_record_bytes (200 bytes)"),
        "{rejected:?}"
    );
    let raw = rejected[0].rsplit('|').next().unwrap();
    assert!(raw.starts_with("2,2,xxxx") && raw.len() == 200, "{raw}");
    assert!(
        rejected[1].starts_with("5|") && rejected[1].contains("never closed"),
        "{rejected:?}"
    );
    assert!(rejected[1].ends_with("|3,3,\"never closed"), "{rejected:?}");
}

/// Empty files in a glob are skipped with a note; the good files load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_csv_files_in_a_glob_are_skipped() {
    let (report, _, _dir) = load_files(
        NOTES,
        &[
            ("a.csv", b"id,amount,note\n1,1,a\n"),
            ("b.csv", b""),
            ("c.csv", b"\n\r\n"),
            ("d.csv", b"id,amount,note\n2,2,b\n"),
        ],
    )
    .await;
    let report = report.unwrap();
    assert_eq!((report.rows_loaded, report.rows_rejected), (2, 0));
    assert_eq!(report.files.len(), 2);
    assert_eq!(report.empty_files.len(), 2, "{:?}", report.empty_files);
    assert!(report.empty_files[0].ends_with("/data/b.csv"));
    assert!(report.empty_files[1].ends_with("/data/c.csv"));
}

/// A header that cannot be a header is an error naming the file and the
/// column, not a table with a megabyte-long column name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_giant_csv_header_is_an_error_naming_the_file() {
    let long_name = format!("id,{},note\n1,1,a\n", "n".repeat(2000));
    let (report, _, _dir) = load_files(NOTES, &[("a.csv", long_name.as_bytes())]).await;
    let err = report.unwrap_err();
    assert!(
        err.contains("a.csv") && err.contains("column 2") && err.contains("1024 bytes"),
        "{err}"
    );
    let huge = "h".repeat(3 << 20);
    let (report, _, _dir) = load_files(NOTES, &[("a.csv", huge.as_bytes())]).await;
    let err = report.unwrap_err();
    assert!(err.contains("a.csv") && err.contains("header"), "{err}");
    assert!(err.len() < 2000, "{} bytes of error", err.len());
}

/// Numbers that do not fit their declared type are rejected, the same way from
/// CSV and NDJSON: never wrapped, truncated or made infinite. Decimals with more
/// fraction digits than the scale are rounded (as a SQL cast does); too many
/// integer digits are rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_must_fit_their_declared_type() {
    // (column, value, loaded value or None when rejected)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("t", "127", Some("127")),
        ("t", "128", None),
        ("t", "300", None),
        ("t", "-129", None),
        ("s", "32768", None),
        ("s", "-32768", Some("-32768")),
        ("i", "2147483648", None),
        ("b", "9223372036854775807", Some("9223372036854775807")),
        ("b", "9223372036854775808", None),
        ("b", "-9223372036854775809", None),
        ("b", "18446744073709551616", None),
        ("b", "8.5", None),
        ("d", "1e400", None),
        ("d", "-1e400", None),
        ("d", "1e308", Some("1e308")),
        ("f", "1e39", None),
        ("f", "1.5", Some("1.5")),
        ("m", "1234.5", None),
        ("m", "999.99", Some("999.99")),
        ("m", "1.234", Some("1.23")),
        ("m", "1.235", Some("1.24")),
        ("m", "999.995", None),
    ];
    let columns = [
        ("t", "tinyint"),
        ("s", "smallint"),
        ("i", "int"),
        ("b", "bigint"),
        ("d", "double"),
        ("f", "float"),
        ("m", "decimal(5,2)"),
    ];
    let mut failures = Vec::new();
    for format in ["csv", "ndjson"] {
        let mut toml =
            format!("[[source]]\nname = \"n\"\nformat = \"{format}\"\nlocation = \"data/*\"\n\n[[source.columns]]\nname = \"k\"\ntype = \"bigint\"\n");
        for (c, t) in columns {
            toml.push_str(&format!(
                "\n[[source.columns]]\nname = \"{c}\"\ntype = \"{t}\"\n"
            ));
        }
        let mut text = String::new();
        if format == "csv" {
            text.push_str("k,t,s,i,b,d,f,m\n");
        }
        for (k, (col, value, _)) in cases.iter().enumerate() {
            if format == "csv" {
                let cells: Vec<&str> = columns
                    .iter()
                    .map(|(c, _)| if c == col { *value } else { "" })
                    .collect();
                text.push_str(&format!("{k},{}\n", cells.join(",")));
            } else {
                text.push_str(&format!("{{\"k\": {k}, \"{col}\": {value}}}\n"));
            }
        }
        let (report, rejected, dir) = load_files(&toml, &[("a", text.as_bytes())]).await;
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{format}: load failed: {e}"));
                continue;
            }
        };
        let project = Project::load(dir.path()).unwrap();
        let w = open(&project, None);
        let e = engine(&project, &w).await;
        let loaded = rows(&e, "SELECT k, t, s, i, b, d, f, m FROM raw.n ORDER BY k").await;
        let header = 1 + u64::from(format == "csv");
        for (k, (col, value, expected)) in cases.iter().enumerate() {
            let ci = 1 + columns.iter().position(|(c, _)| c == col).unwrap();
            let got = loaded
                .iter()
                .map(|r| r.split('|').collect::<Vec<_>>())
                .find(|r| r[0] == k.to_string())
                .map(|r| r[ci].to_string());
            let line = k as u64 + header;
            let reason = rejected
                .iter()
                .find(|r| r.starts_with(&format!("{line}|")))
                .cloned();
            let ok = match expected {
                Some(v) => got.as_deref() == Some(*v),
                None => got.is_none() && reason.as_ref().is_some_and(|r| r.contains(col)),
            };
            if !ok {
                failures.push(format!(
                    "{format}: {col} = {value}: loaded {got:?}, rejected {reason:?}"
                ));
            }
        }
        assert_eq!(
            report.rows_loaded + report.rows_rejected,
            cases.len() as u64,
            "{format}"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every non-blank NDJSON line is loaded or rejected: a line that is JSON but
/// not an object, a nested value for a scalar column, a number that does not fit
/// its type and an object with a duplicate key are rejected rows, not a failed
/// source. Blank lines are not records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ndjson_line_is_loaded_or_rejected() {
    let toml = r#"
[[source]]
name = "events"
format = "ndjson"
location = "data/*.ndjson"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "v"
type = "double"

[[source.columns]]
name = "name"
type = "varchar"
"#;
    let text = "\u{FEFF}{\"id\": 1, \"v\": 1.5, \"name\": \"a\"}\n\
                null\n\
                [1, 2]\n\
                {\"id\": 8.5}\n\
                {\"id\": 2, \"v\": 1e400}\n\
                {\"id\": 9223372036854775808}\n\
                {\"id\": 3, \"name\": {\"x\": 1}}\n\
                {\"id\": 4, \"id\": 5}\n\
                \n\
                {\"id\": 6, \"name\": 7}\r\n\
                \"just a string\"\n\
                {\"id\": 7, \"v\": \"2.5\"}\n\
                {bad json\n";
    let (report, rejected, dir) = load_files(toml, &[("a.ndjson", text.as_bytes())]).await;
    let report = report.unwrap();
    assert_eq!(
        (report.rows_loaded, report.rows_rejected),
        (3, 9),
        "{rejected:#?}"
    );
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, v, name FROM raw.events ORDER BY id").await,
        vec!["1|1.5|a", "6||7", "7|2.5|"]
    );
    let reasons: Vec<(String, String)> = rejected
        .iter()
        .map(|r| {
            let mut p = r.splitn(3, '|');
            (
                p.next().unwrap().to_string(),
                p.next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = [
        ("2", "not a JSON object"),
        ("3", "not a JSON object"),
        ("4", "column `id`: '8.5' is not a valid BIGINT"),
        ("5", "column `v`"),
        (
            "6",
            "column `id`: '9223372036854775808' is out of range for BIGINT",
        ),
        ("7", "column `name`: a JSON object"),
        ("8", "duplicate key `id`"),
        ("11", "not a JSON object"),
        ("13", "malformed JSON"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((line, reason), (el, er)) in reasons.iter().zip(expect) {
        assert_eq!(line, el, "{reasons:#?}");
        assert!(reason.contains(er), "line {line}: {reason}");
    }
}

/// An NDJSON line longer than `[source.ndjson] max_line_bytes` is rejected with
/// its first bytes, reading resumes after it, and a file that is one endless
/// line does not sit whole in memory (before: the reader kept any line whole,
/// however long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndjson_line_longer_than_max_line_bytes_is_rejected() {
    let toml = r#"
[[source]]
name = "events"
format = "ndjson"
location = "data/*.ndjson"

[source.ndjson]
max_line_bytes = 1000

[[source.columns]]
name = "id"
type = "bigint"

[[source.columns]]
name = "name"
type = "varchar"
"#;
    let long = "x".repeat(3 << 20);
    let text = format!(
        "{{\"id\": 1, \"name\": \"a\"}}\n{{\"id\": 2, \"name\": \"{long}\"}}\n{}\n{{\"id\": 3, \"name\": \"{}\"}}\n{{\"id\": 4}}",
        " ".repeat(5000),
        "y".repeat(900),
    );
    let endless = format!("{{\"id\": 5, \"name\": \"{long}");
    let (report, rejected, dir) = load_files(
        toml,
        &[
            ("a.ndjson", text.as_bytes()),
            ("b.ndjson", endless.as_bytes()),
        ],
    )
    .await;
    let report = report.unwrap();
    assert_eq!(
        (report.rows_loaded, report.rows_rejected),
        (3, 2),
        "{rejected:#?}"
    );
    let project = Project::load(dir.path()).unwrap();
    let w = open(&project, None);
    let e = engine(&project, &w).await;
    assert_eq!(
        rows(&e, "SELECT id, length(name) FROM raw.events ORDER BY id").await,
        vec!["1|1", "3|900", "4|"]
    );
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    for (r, line) in rejected.iter().zip(["1", "2"]) {
        let mut p = r.splitn(3, '|');
        assert_eq!(p.next(), Some(line), "{r:.200}");
        let reason = p.next().unwrap_or_default();
        assert!(
            reason.contains("longer than max_line_bytes (1000 bytes)")
                && reason.contains("raise [source.ndjson] max_line_bytes"),
            "{reason}"
        );
        assert_eq!(p.next().unwrap_or_default().len(), 1000);
    }
    // A typo in the new table is an error with a suggestion.
    std::fs::write(
        dir.path().join("catalog/sources.toml"),
        toml.replace("max_line_bytes = 1000", "max_lines_bytes = 1000"),
    )
    .unwrap();
    let err = Project::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("max_lines_bytes") && err.contains("max_line_bytes"),
        "{err}"
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
