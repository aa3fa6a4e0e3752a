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
