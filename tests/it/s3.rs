//! Loads against a real S3 API server (moto, started by tests/run.sh).

use crate::common::*;
use object_store::ObjectStoreExt;
use sluice::load::{load, LoadOptions, NoProgress};
use sluice::project::Project;

/// The S3 endpoint and a bucket, or `None` (with a message) when not provided.
fn s3() -> Option<String> {
    match (
        std::env::var("SLUICE_TEST_S3_ENDPOINT"),
        std::env::var("SLUICE_TEST_S3_BUCKET"),
    ) {
        (Ok(_), Ok(bucket)) => Some(bucket),
        _ => {
            eprintln!("skipping S3 test: SLUICE_TEST_S3_ENDPOINT / SLUICE_TEST_S3_BUCKET not set (tests/run.sh starts moto and sets them)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_loads_to_s3_like_local() {
    let Some(bucket) = s3() else { return };
    let dir = example_project();
    let project = Project::load(dir.path()).unwrap();
    let prefix = format!("s3://{bucket}/it-{}", uuid::Uuid::new_v4().simple());
    let remote = open(&project, Some(&prefix));
    let local = open(&project, None);
    let r1 = load(&project, &remote, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    load(&project, &local, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let (er, el) = (
        engine(&project, &remote).await,
        engine(&project, &local).await,
    );
    for t in ["users", "merchants", "transactions", "labels"] {
        let q = format!("SELECT count(*) FROM raw.{t}");
        assert_eq!(scalar(&er, &q).await, scalar(&el, &q).await, "{t}");
        let s = format!("SELECT * FROM raw.{t} LIMIT 0");
        let rs = er.sql(&s).await.unwrap().schema().as_arrow().clone();
        let ls = el.sql(&s).await.unwrap().schema().as_arrow().clone();
        assert_eq!(rs, ls, "{t}");
    }
    // Idempotent on S3 too (ETag / size / mtime).
    let r2 = load(&project, &remote, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(r2.sources.iter().all(|s| s.version.is_none()), "{r2:?}");
    assert!(r1.sources.iter().all(|s| s.version == Some(0)));

    // Sources can live on object storage as well.
    let store_src = open(&project, Some(&format!("{prefix}-src")));
    let store = store_src.store();
    let path = object_store::path::Path::from(format!(
        "{}/in/a.csv",
        store_src.root().path().trim_matches('/')
    ));
    store
        .put(&path, bytes::Bytes::from_static(b"id,v\n1,x\n2,y\n").into())
        .await
        .unwrap();
    std::fs::write(
        dir.path().join("catalog/remote.toml"),
        format!("[[source]]\nname = \"remote\"\nformat = \"csv\"\nlocation = \"{prefix}-src/in/*.csv\"\n"),
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let r = load(
        &project,
        &remote,
        &["remote".into()],
        &LoadOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.sources[0].rows_loaded, 2);
    let r = load(
        &project,
        &remote,
        &["remote".into()],
        &LoadOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.sources[0].skipped_files, 1);
}

/// Models on an S3 warehouse: tables, the stored view, run records and bare
/// names all live in the bucket, so a fresh session sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_run_on_s3() {
    let Some(bucket) = s3() else { return };
    let dir = example_project();
    copy_dir(&repo_root().join("sql"), &dir.path().join("sql"));
    let project = Project::load(dir.path()).unwrap();
    let prefix = format!("s3://{bucket}/models-{}", uuid::Uuid::new_v4().simple());
    let wh = open(&project, Some(&prefix));
    load(&project, &wh, &[], &LoadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &wh).await;
    let compiled = std::sync::Arc::new(
        sluice::models::compile(&project, &e, &Default::default())
            .await
            .unwrap(),
    );
    let report = sluice::models::execute(
        &project,
        &e,
        compiled,
        &Default::default(),
        sluice::models::Steps::Build,
        2,
        &Default::default(),
        "build",
        &sluice::models::run::Quiet,
    )
    .await
    .unwrap();
    assert!(report.success(), "{:?}", report.results);
    let fresh = engine(&project, &open(&project, Some(&prefix))).await;
    assert_eq!(
        scalar(&fresh, "SELECT count(*) FROM staging.stg_transactions").await,
        "5000"
    );
    assert_eq!(
        scalar(&fresh, "SELECT count(*) FROM user_features").await,
        "993"
    );
    assert_eq!(
        scalar(
            &fresh,
            "SELECT count(*) FROM _sluice.runs WHERE status = 'success'"
        )
        .await,
        "8"
    );
}

/// Overlapping loads on S3 (conditional PUT decides the winner): each file's
/// rows once, each rejected row once. Fewer loads than locally: the S3 test
/// server answers one request at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_loads_commit_each_file_once_on_s3() {
    let Some(bucket) = s3() else { return };
    let prefix = format!("s3://{bucket}/conc-{}", uuid::Uuid::new_v4().simple());
    crate::load::overlapping_loads_commit_each_file_once(Some(&prefix), 4, 3).await;
}

/// A load killed between its quarantine and target commits, on S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_quarantine_and_target_keeps_rejects_once_on_s3() {
    let Some(bucket) = s3() else { return };
    let prefix = format!("s3://{bucket}/orphan-{}", uuid::Uuid::new_v4().simple());
    crate::load::killed_between_quarantine_and_target_keeps_rejects_once(Some(&prefix)).await;
}
