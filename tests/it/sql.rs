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
