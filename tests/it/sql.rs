//! The SQL session: files by path, table functions, errors.

use crate::common::*;
use sluice::project::Project;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_queryable_directly() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "a,b\n1,x\n2,y\n").unwrap();
    let json = dir.path().join("x.ndjson");
    std::fs::write(&json, "{\"a\": 1}\n{\"a\": 5}\n").unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = engine(&project, &w).await;
    assert_eq!(
        scalar(&e, &format!("SELECT sum(a) FROM '{}'", csv.display())).await,
        "3"
    );
    assert_eq!(
        scalar(
            &e,
            &format!("SELECT max(b) FROM read_csv('{}')", csv.display())
        )
        .await,
        "y"
    );
    assert_eq!(
        scalar(
            &e,
            &format!("SELECT sum(a) FROM read_json('{}')", json.display())
        )
        .await,
        "6"
    );
    let pq = dir.path().join("x.parquet");
    e.query(&format!(
        "COPY (SELECT 42 AS v) TO '{}' STORED AS PARQUET",
        pq.display()
    ))
    .await
    .unwrap();
    assert_eq!(
        scalar(
            &e,
            &format!("SELECT v FROM read_parquet('{}')", pq.display())
        )
        .await,
        "42"
    );
    assert_eq!(
        scalar(&e, &format!("SELECT v FROM '{}'", pq.display())).await,
        "42"
    );

    let err = e
        .query("SELECT * FROM raw.nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("raw.nope"), "{err}");
    let err = e
        .query("SELECT * FROM read_csv(1)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("usage: read_csv"), "{err}");
}

/// `SELECT ... FROM 'x.csv'` checks the file as `read_csv` does: before, a stray
/// quote silently merged the rest of the file into one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_tables_check_csv_and_ndjson_like_read_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("stray.csv"), "id,v\n1,a\n2,\"oops\n3,c\n4,d\n").unwrap();
    std::fs::write(
        d.join("good.csv"),
        "id,v\n1,\"two\nlines\"\n2,\"a \"\"q\"\"\"\n",
    )
    .unwrap();
    std::fs::write(d.join("bad.ndjson"), "{\"id\": 1}\n[1]\n").unwrap();
    std::fs::write(d.join("good.json"), "{\"id\": 1}\n\n{\"id\": 2}\n").unwrap();
    let project = Project::load(d).unwrap();
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = engine(&project, &w).await;
    let stray = d.join("stray.csv").display().to_string();
    let err = e
        .query(&format!("SELECT * FROM '{stray}'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "FROM '{stray}': line 3: a quoted field is never closed"
        )),
        "{err}"
    );
    let good = d.join("good.csv").display().to_string();
    assert_eq!(
        rows(&e, &format!("SELECT id, v FROM '{good}' ORDER BY id")).await,
        vec!["1|two\nlines", "2|a \"q\""]
    );
    let glob = format!("{}/*.csv", d.display());
    let err = e
        .query(&format!("SELECT count(*) FROM '{glob}'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stray.csv, line 3: a quoted field"), "{err}");
    let bad = d.join("bad.ndjson").display().to_string();
    let err = e
        .query(&format!("SELECT * FROM '{bad}'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2: not a JSON object"), "{err}");
    let json = d.join("good.json").display().to_string();
    assert_eq!(
        rows(&e, &format!("SELECT sum(id) FROM '{json}'")).await,
        vec!["3"]
    );
    // Parquet URL tables are DataFusion's, unchanged; unknown names stay unknown.
    let pq = d.join("t.parquet").display().to_string();
    e.query(&format!("COPY (SELECT 5 AS x) TO '{pq}'"))
        .await
        .unwrap();
    assert_eq!(rows(&e, &format!("SELECT x FROM '{pq}'")).await, vec!["5"]);
    let missing = d.join("missing.csv").display().to_string();
    let err = e
        .query(&format!("SELECT * FROM '{missing}'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
}

/// `read_json` refuses a line over 16 MiB with its number, without holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_json_refuses_a_line_over_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.ndjson");
    let long = "x".repeat(17 << 20);
    std::fs::write(
        &file,
        format!("{{\"id\": 1}}\n{{\"id\": 2, \"s\": \"{long}\"}}\n"),
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = engine(&project, &w).await;
    let err = e
        .query(&format!(
            "SELECT count(*) FROM read_json('{}')",
            file.display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2: the line is longer than 16777216 bytes"),
        "{err:.300}"
    );
}

/// `read_csv` / `read_json` over a folder or glob name the file holding the
/// first bad record, and its line; good files next to it are not blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_functions_name_the_bad_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.csv"), "id,v\n1,\"x\ny\"\n2,z\n").unwrap();
    std::fs::write(data.join("b.csv"), "id,v\n3,ok\n4,\"open\n5,w\n6,u\n").unwrap();
    std::fs::write(data.join("a.ndjson"), "{\"id\": 1}\n").unwrap();
    std::fs::write(data.join("b.ndjson"), "{\"id\": 2}\n\n7\n").unwrap();
    let project = Project::load(dir.path()).unwrap();
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = engine(&project, &w).await;
    let glob = format!("{}/*.csv", data.display());
    let err = e
        .query(&format!("SELECT count(*) FROM read_csv('{glob}')"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "read_csv('{glob}'): {}, line 3: a quoted field is never closed",
            data.join("b.csv").display()
        )),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 1, "{msg}");
    let folder = format!("{}/", data.display());
    let err = e
        .query(&format!("SELECT count(*) FROM read_json('{folder}')"))
        .await
        .unwrap_err()
        .to_string();
    // Every file of the folder is read (the extension is not filtered): the
    // CSV files are not JSON either, and come first.
    assert!(err.contains("a.csv, line 1: "), "{err}");
    let glob = format!("{}/*.ndjson", data.display());
    let err = e
        .query(&format!("SELECT count(*) FROM read_json('{glob}')"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.ndjson, line 3: not a JSON object (found a number)"),
        "{err}"
    );
    // The good file alone reads.
    assert_eq!(
        scalar(
            &e,
            &format!(
                "SELECT count(*) FROM read_csv('{}')",
                data.join("a.csv").display()
            )
        )
        .await,
        "2"
    );
}

/// A table name with a typo is answered with the closest existing name, by
/// the engine (so every front end, the Flight SQL server too, says it); names
/// that exist (a CTE, a table) are not the typo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_suggest_the_closest_name() {
    let w = sluice::warehouse::Warehouse::open("memory:///", &Default::default()).unwrap();
    let e = sluice::sql::Engine::new(w, "raw").await.unwrap();
    e.query("CREATE TABLE raw.orders AS SELECT 1 AS id")
        .await
        .unwrap();
    e.query("CREATE VIEW marts.revenue AS SELECT 2 AS total")
        .await
        .unwrap();
    for (sql, want) in [
        (
            "SELECT * FROM ordrs",
            "table `ordrs` not found (did you mean `orders`?)",
        ),
        (
            "WITH x AS (SELECT 1 AS id) SELECT * FROM x, orders, raw.order",
            "table `raw.order` not found (did you mean `raw.orders`?)",
        ),
        (
            "SELECT * FROM revenu",
            "table `revenu` not found (did you mean `marts.revenue`?)",
        ),
    ] {
        let err = e.query(sql).await.unwrap_err();
        assert!(
            matches!(
                err,
                sluice::Error::NotFound {
                    object: sluice::error::Object::Table,
                    ..
                }
            ),
            "{sql}: {err:?}"
        );
        assert_eq!(err.to_string(), want, "{sql}");
    }
}
