//! Table maintenance: `optimize` compacts without changing rows or losing
//! versions, `vacuum` deletes only what no version in its window reads, and
//! neither ever deletes the Delta log.

use crate::common::*;
use sluice::sql::Engine;
use sluice::warehouse::{optimize, vacuum, OptimizeOptions, VacuumOptions, Warehouse};
use std::path::Path;
use std::time::Duration;

async fn setup() -> (tempfile::TempDir, Warehouse, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let e = sluice::app::bare_engine(w.clone(), "raw").await.unwrap();
    (dir, w, e)
}

/// `raw.<name>` with `commits` commits of one small file each: ids 1..=commits.
async fn small_files(e: &Engine, name: &str, commits: usize) {
    e.query(&format!(
        "CREATE TABLE raw.{name} AS SELECT 1 AS id, 'row 1' AS s"
    ))
    .await
    .unwrap();
    for i in 2..=commits {
        e.query(&format!("INSERT INTO raw.{name} VALUES ({i}, 'row {i}')"))
            .await
            .unwrap();
    }
}

fn table_dir(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    dir.path().join("raw").join(name)
}

/// Data files in the table folder (deleted or not by the log).
fn parquet_files(table: &Path) -> usize {
    std::fs::read_dir(table)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count()
}

/// Names of the files in `_delta_log`, sorted.
fn log_files(table: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn all_rows(e: &Engine, from: &str) -> Vec<String> {
    rows(e, &format!("SELECT id, s FROM {from} ORDER BY id")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_keeps_the_rows_and_every_older_version() {
    let (dir, w, e) = setup().await;
    small_files(&e, "t", 20).await;
    let before = all_rows(&e, "raw.t").await;
    assert_eq!(before.len(), 20);
    let report = optimize(&w, "raw", "t", &OptimizeOptions::default())
        .await
        .unwrap();
    assert_eq!(report.read_version, 19);
    assert_eq!(report.version, Some(20));
    assert_eq!(
        (
            report.files_before,
            report.small_files,
            report.files_removed
        ),
        (20, 20, 20)
    );
    assert_eq!((report.files_added, report.files_after), (1, 1));
    assert!(report.bytes_removed > 0 && report.bytes_added > 0);
    assert_eq!(report.bytes_after, report.bytes_added);
    assert_eq!(all_rows(&e, "raw.t").await, before);

    // One commit, every action dataChange=false.
    let commit =
        std::fs::read_to_string(table_dir(&dir, "t").join("_delta_log/00000000000000000020.json"))
            .unwrap();
    let mut actions = 0;
    for line in commit.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for kind in ["add", "remove"] {
            if let Some(a) = v.get(kind) {
                assert_eq!(a["dataChange"], false, "{line}");
                actions += 1;
            }
        }
    }
    assert_eq!(actions, 21);
    // No file deleted: every older version reads its rows.
    assert_eq!(parquet_files(&table_dir(&dir, "t")), 21);
    for v in 0..20usize {
        let at = all_rows(&e, &format!("raw.t VERSION AS OF {v}")).await;
        assert_eq!(at, before[..=v].to_vec(), "version {v}");
    }
    // An independent open of the latest version sees one file.
    let t = w.open_table("raw", "t").await.unwrap().unwrap();
    assert_eq!(t.get_file_uris().unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_of_zero_or_one_small_file_commits_nothing() {
    let (_dir, w, e) = setup().await;
    e.query("CREATE TABLE raw.empty AS SELECT 1 AS id WHERE false")
        .await
        .unwrap();
    e.query("CREATE TABLE raw.one AS SELECT 1 AS id")
        .await
        .unwrap();
    small_files(&e, "three", 3).await;
    for (table, files) in [("empty", 0), ("one", 1)] {
        let latest = version_of(&w, "raw", table).await;
        let r = optimize(&w, "raw", table, &OptimizeOptions::default())
            .await
            .unwrap();
        assert_eq!(r.version, None, "{table}");
        assert_eq!(
            (r.files_before, r.files_removed, r.files_added),
            (files, 0, 0)
        );
        assert_eq!(version_of(&w, "raw", table).await, latest, "{table}");
    }
    // Under the threshold: nothing; at it: compacted.
    let mut opts = OptimizeOptions {
        min_small_files: 4,
        ..Default::default()
    };
    let r = optimize(&w, "raw", "three", &opts).await.unwrap();
    assert_eq!((r.small_files, r.version), (3, None));
    assert_eq!(version_of(&w, "raw", "three").await, Some(2));
    opts.min_small_files = 3;
    let r = optimize(&w, "raw", "three", &opts).await.unwrap();
    assert_eq!((r.files_removed, r.files_added, r.version), (3, 1, Some(3)));
    // Compacted already: the one file left is small, nothing to merge it with.
    let r = optimize(&w, "raw", "three", &opts).await.unwrap();
    assert_eq!(r.version, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_writes_a_checkpoint_when_asked() {
    let (dir, w, e) = setup().await;
    small_files(&e, "t", 4).await;
    let opts = OptimizeOptions {
        checkpoint: true,
        ..Default::default()
    };
    let r = optimize(&w, "raw", "t", &opts).await.unwrap();
    assert_eq!((r.version, r.checkpoint), (Some(4), Some(4)));
    let log = log_files(&table_dir(&dir, "t"));
    assert!(
        log.contains(&"00000000000000000004.checkpoint.parquet".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"_last_checkpoint".to_string()), "{log:?}");
    // Read from the checkpoint, and still back in time.
    let fresh = sluice::app::bare_engine(w.clone(), "raw").await.unwrap();
    assert_eq!(scalar(&fresh, "SELECT sum(id) FROM raw.t").await, "10");
    assert_eq!(
        scalar(&fresh, "SELECT sum(id) FROM raw.t VERSION AS OF 1").await,
        "3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_are_named_with_the_closest_one() {
    let (_dir, w, e) = setup().await;
    e.query("CREATE TABLE raw.events AS SELECT 1 AS id")
        .await
        .unwrap();
    let err = optimize(&w, "raw", "event", &OptimizeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.contains("table `raw.event` does not exist"), "{text}");
    assert!(text.contains("did you mean `raw.events`?"), "{text}");
    let opts = VacuumOptions {
        retain: Duration::from_secs(7 * 86_400),
        dry_run: false,
        allow_short_retention: false,
    };
    let err = vacuum(&w, "raw", "evnts", &opts).await.unwrap_err();
    assert!(
        err.to_string().contains("did you mean `raw.events`?"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_refuses_a_short_retention_unless_told() {
    let (dir, w, e) = setup().await;
    small_files(&e, "t", 3).await;
    optimize(&w, "raw", "t", &OptimizeOptions::default())
        .await
        .unwrap();
    let mut opts = VacuumOptions {
        retain: Duration::from_secs(3600),
        dry_run: false,
        allow_short_retention: false,
    };
    let err = vacuum(&w, "raw", "t", &opts).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    for part in [
        "`raw.t`",
        "retention of 1h",
        "minimum of 7d",
        "--allow-short-retention",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert_eq!(parquet_files(&table_dir(&dir, "t")), 4);
    // 7 days is enough, and deletes nothing removed just now.
    opts.retain = Duration::from_secs(7 * 86_400);
    let r = vacuum(&w, "raw", "t", &opts).await.unwrap();
    assert_eq!((r.files_deleted, r.version), (0, None));
    assert_eq!(parquet_files(&table_dir(&dir, "t")), 4);
    // With the override, a zero retention deletes the three replaced files.
    opts.retain = Duration::ZERO;
    opts.allow_short_retention = true;
    let r = vacuum(&w, "raw", "t", &opts).await.unwrap();
    assert_eq!(r.files_deleted, 3);
    assert_eq!(parquet_files(&table_dir(&dir, "t")), 1);
    assert_eq!(scalar(&e, "SELECT sum(id) FROM raw.t").await, "6");
}

/// Files replaced before the window are deleted, files replaced inside it
/// kept: versions committed inside the window (and the one current when it
/// starts) read; an older one fails naming the vacuumed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_keeps_the_files_of_versions_inside_the_window() {
    let (dir, w, e) = setup().await;
    let t = table_dir(&dir, "t");
    small_files(&e, "t", 4).await; // versions 0-3
    optimize(&w, "raw", "t", &OptimizeOptions::default())
        .await
        .unwrap(); // 4 replaces 4 files
    tokio::time::sleep(Duration::from_millis(3500)).await;
    e.query("INSERT INTO raw.t VALUES (5, 'row 5')")
        .await
        .unwrap(); // 5
    let r = optimize(&w, "raw", "t", &OptimizeOptions::default())
        .await
        .unwrap(); // 6 replaces 2 files
    assert_eq!(r.version, Some(6));
    let expected: Vec<Vec<String>> = {
        let mut out = Vec::new();
        for v in 0..=6 {
            out.push(all_rows(&e, &format!("raw.t VERSION AS OF {v}")).await);
        }
        out
    };
    let log_before = log_files(&t);
    assert_eq!(parquet_files(&t), 7);

    let mut opts = VacuumOptions {
        retain: Duration::from_secs(2),
        dry_run: true,
        allow_short_retention: true,
    };
    let dry = vacuum(&w, "raw", "t", &opts).await.unwrap();
    assert_eq!(dry.files_deleted, 4, "{dry:?}");
    assert!(dry.files.iter().all(|f| f.size.is_some_and(|s| s > 0)));
    assert_eq!(
        dry.bytes_deleted,
        dry.files.iter().filter_map(|f| f.size).sum::<u64>()
    );
    assert_eq!(dry.version, None);
    assert_eq!(parquet_files(&t), 7, "a dry run deletes nothing");
    assert_eq!(log_files(&t), log_before);

    opts.dry_run = false;
    let done = vacuum(&w, "raw", "t", &opts).await.unwrap();
    let mut deleted: Vec<_> = done.files.iter().map(|f| f.path.clone()).collect();
    let mut listed: Vec<_> = dry.files.iter().map(|f| f.path.clone()).collect();
    deleted.sort();
    listed.sort();
    assert_eq!(deleted, listed);
    assert_eq!(parquet_files(&t), 3);
    // VACUUM START and END are commits 7 and 8; no log entry is gone.
    assert_eq!(done.version, Some(8));
    let log_after = log_files(&t);
    assert!(log_before.iter().all(|f| log_after.contains(f)));

    for (v, rows_at) in expected.iter().enumerate().skip(4) {
        let at = all_rows(&e, &format!("raw.t VERSION AS OF {v}")).await;
        assert_eq!(&at, rows_at, "version {v}");
    }
    assert_eq!(all_rows(&e, "raw.t").await, expected[6]);
    let err = e
        .query("SELECT id, s FROM raw.t VERSION AS OF 3")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no longer exists"), "{text}");
    assert!(text.contains("sluice vacuum"), "{text}");
    assert_eq!(err.exit_code(), 2);
}

/// Appends committing while optimize runs over and over: every row lands
/// exactly once, and each optimize either commits on top of the appends or
/// fails as a conflict to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_racing_appends_loses_and_duplicates_nothing() {
    let (_dir, w, e) = setup().await;
    small_files(&e, "t", 2).await;
    const APPENDS: usize = 40;
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            let e = sluice::app::bare_engine(w, "raw").await.unwrap();
            for i in 3..APPENDS + 3 {
                e.query(&format!("INSERT INTO raw.t VALUES ({i}, 'row {i}')"))
                    .await
                    .unwrap();
            }
        })
    };
    let opts = OptimizeOptions::default();
    let (mut committed, mut conflicts) = (0, 0);
    while !writer.is_finished() {
        match optimize(&w, "raw", "t", &opts).await {
            Ok(r) => committed += usize::from(r.version.is_some()),
            Err(sluice::Error::Conflict { table, message }) => {
                assert_eq!(table, "raw.t");
                assert!(message.contains("another writer"), "{message}");
                conflicts += 1;
            }
            Err(other) => panic!("optimize failed: {other}"),
        }
    }
    writer.await.unwrap();
    let last = optimize(&w, "raw", "t", &opts).await.unwrap();
    assert!(committed > 0, "no optimize committed during the appends");
    let n = APPENDS + 2;
    assert_eq!(
        rows(
            &e,
            "SELECT count(*), count(DISTINCT id), sum(id) FROM raw.t"
        )
        .await,
        vec![format!("{n}|{n}|{}", n * (n + 1) / 2)]
    );
    assert_eq!(last.files_after, 1);
    eprintln!("{committed} optimize commits, {conflicts} conflicts during {APPENDS} appends");
}

/// deltalake's optimize alone deletes log entries older than
/// `delta.logRetentionDuration` below a checkpoint (its commit ignores ours
/// `with_cleanup_expired_logs`); sluice's keeps every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_never_deletes_the_log() {
    let (dir, w, e) = setup().await;
    for name in ["plain", "ours"] {
        small_files(&e, name, 3).await;
        let t = w.open_table("raw", name).await.unwrap().unwrap();
        let t = t
            .set_tbl_properties()
            .with_properties(
                [(
                    "delta.logRetentionDuration".to_string(),
                    "interval 0 seconds".to_string(),
                )]
                .into(),
            )
            .await
            .unwrap();
        deltalake::checkpoints::create_checkpoint(&t, None)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = "00000000000000000000.json".to_string();

    // The control: deltalake's own optimize cleans the log up.
    let plain = w.open_table("raw", "plain").await.unwrap().unwrap();
    plain.optimize().await.unwrap();
    assert!(
        !log_files(&table_dir(&dir, "plain")).contains(&first),
        "deltalake no longer cleans the log in optimize: the KeepLog store may be unneeded"
    );

    let before = log_files(&table_dir(&dir, "ours"));
    let r = optimize(&w, "raw", "ours", &OptimizeOptions::default())
        .await
        .unwrap();
    assert_eq!(r.version, Some(4));
    let after = log_files(&table_dir(&dir, "ours"));
    assert!(before.iter().all(|f| after.contains(f)), "{after:?}");
    assert!(after.contains(&first));
    assert_eq!(
        scalar(&e, "SELECT sum(id) FROM raw.ours VERSION AS OF 0").await,
        "1"
    );
    // Vacuum's commits keep it too.
    let opts = VacuumOptions {
        retain: Duration::ZERO,
        dry_run: false,
        allow_short_retention: true,
    };
    let v = vacuum(&w, "raw", "ours", &opts).await.unwrap();
    assert_eq!(v.files_deleted, 3);
    assert!(log_files(&table_dir(&dir, "ours")).contains(&first));
}

/// Two optimizes of the same files at once: one commits, the other either
/// finds nothing left to do or fails as a conflict to retry; never both
/// commit the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_optimizes_at_once_commit_the_rows_once() {
    let (_dir, w, e) = setup().await;
    small_files(&e, "t", 2).await;
    let opts = OptimizeOptions::default();
    let (mut conflicts, mut next) = (0, 3);
    for _ in 0..5 {
        for _ in 0..6 {
            e.query(&format!("INSERT INTO raw.t VALUES ({next}, 'row {next}')"))
                .await
                .unwrap();
            next += 1;
        }
        let (a, b) = tokio::join!(
            optimize(&w, "raw", "t", &opts),
            optimize(&w, "raw", "t", &opts)
        );
        let mut versions = Vec::new();
        for r in [a, b] {
            match r {
                Ok(r) => versions.extend(r.version),
                Err(err @ sluice::Error::Conflict { .. }) => {
                    let text = err.to_string();
                    assert!(text.starts_with("table `raw.t`: version "), "{text}");
                    assert!(text.contains("run the command again"), "{text}");
                    if conflicts == 0 {
                        eprintln!("{text}");
                    }
                    conflicts += 1;
                }
                Err(other) => panic!("optimize failed: {other}"),
            }
        }
        assert_eq!(
            versions.len(),
            1,
            "exactly one optimize commits: {versions:?}"
        );
        let n = next - 1;
        assert_eq!(
            rows(&e, "SELECT count(*), count(DISTINCT id) FROM raw.t").await,
            vec![format!("{n}|{n}")]
        );
    }
    eprintln!("{conflicts} conflicts in 5 rounds");
}

/// The reverse race: a DELETE that read the table before an optimize
/// committed, and commits after it, fails as a conflict (deltalake counts the
/// compacted file as one the DELETE should have read); no row comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_planned_before_an_optimize_fails_after_it() {
    let (_dir, w, e) = setup().await;
    small_files(&e, "t", 4).await;
    let stale = w.open_table("raw", "t").await.unwrap().unwrap();
    let r = optimize(&w, "raw", "t", &OptimizeOptions::default())
        .await
        .unwrap();
    assert_eq!(r.version, Some(4));
    match stale.delete().with_predicate("id = 1").await {
        Ok((t, m)) => panic!(
            "the stale DELETE committed version {:?} ({:?} rows)",
            t.version(),
            m.num_deleted_rows
        ),
        Err(err) => assert!(format!("{err:?}").contains("ConcurrentAppend"), "{err:?}"),
    }
    let fresh = sluice::app::bare_engine(w.clone(), "raw").await.unwrap();
    assert_eq!(
        rows(
            &fresh,
            "SELECT count(*), count(DISTINCT id), sum(id) FROM raw.t"
        )
        .await,
        vec!["4|4|10"]
    );
}
