//! Scale-out: a coordinator planning over two workers (in this process, on
//! 127.0.0.1 ports, or child `sluice worker` processes) gives the same answers
//! as one process, for TPC-H, AS OF joins, training sets and a model run; the
//! plans really run on both workers; a worker that dies fails the query with
//! an error naming it, in bounded time.

use crate::common::*;
use sluice::project::Project;
use sluice::server::worker::{start_worker, RunningWorker, WorkerOptions};
use sluice::sql::cluster::ClusterOptions;
use sluice::sql::{Engine, EngineOptions};
use sluice::warehouse::Warehouse;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Two workers over `wh`, in this process.
async fn two_workers(wh: &Warehouse) -> Vec<RunningWorker> {
    let mut workers = Vec::new();
    for _ in 0..2 {
        let options = WorkerOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            memory_limit: Some(1 << 30),
        };
        workers.push(
            start_worker(wh, options, std::future::pending())
                .await
                .unwrap(),
        );
    }
    workers
}

/// An engine planning over `urls`, splitting even small files across tasks
/// (so that tiny test tables still run on both workers).
async fn coordinator(project: &Project, wh: &Warehouse, urls: &[String]) -> Engine {
    let options = EngineOptions {
        cluster: Some(ClusterOptions::new(
            ClusterOptions::parse_workers(urls).unwrap(),
        )),
        ..Default::default()
    };
    let e = sluice::app::engine_with(project, wh.clone(), &options)
        .await
        .unwrap();
    e.execute("SET distributed.file_scan_config_bytes_per_partition = 1")
        .await
        .unwrap();
    e
}

fn tasks(workers: &[RunningWorker]) -> Vec<u64> {
    workers
        .iter()
        .map(|w| w.stats.tasks.load(Ordering::Relaxed))
        .collect()
}

/// Rows as sorted strings; floating-point cells rounded to 9 significant
/// digits (sums over other partitionings differ in the last bits).
async fn sorted_rows(engine: &Engine, sql: &str) -> Vec<String> {
    let batches = match engine.query(sql).await {
        Ok(b) => b,
        Err(e) => panic!("{sql}\n{e}"),
    };
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    let col = b.column(c);
                    match col.data_type() {
                        arrow::datatypes::DataType::Float64
                        | arrow::datatypes::DataType::Float32 => {
                            let v = arrow::compute::cast(col, &arrow::datatypes::DataType::Float64)
                                .unwrap();
                            let f = v
                                .as_any()
                                .downcast_ref::<arrow::array::Float64Array>()
                                .unwrap();
                            if arrow::array::Array::is_null(f, r) {
                                "NULL".into()
                            } else {
                                format!("{:.9e}", f.value(r))
                            }
                        }
                        _ => arrow::util::display::array_value_to_string(col, r).unwrap(),
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

/// The example project with its models, loaded.
async fn example_loaded() -> (tempfile::TempDir, Project, Warehouse) {
    let dir = example_project();
    copy_dir(&repo_root().join("sql"), &dir.path().join("sql"));
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    sluice::load::load(
        &project,
        &wh,
        &[],
        &Default::default(),
        &sluice::load::NoProgress,
    )
    .await
    .unwrap();
    (dir, project, wh)
}

async fn run_models(project: &Project, engine: &Engine) -> sluice::models::RunReport {
    let opts = sluice::models::CompileOptions::default();
    let compiled = std::sync::Arc::new(
        sluice::models::compile(project, engine, &opts)
            .await
            .unwrap(),
    );
    sluice::models::execute(
        project,
        engine,
        compiled,
        &sluice::models::Selection::default(),
        sluice::models::Steps::Build,
        2,
        &Default::default(),
        "cluster-test",
        &sluice::models::run::Quiet,
    )
    .await
    .unwrap()
}

/// The example project's models built over two workers equal the same models
/// built in one process; AS OF joins and training sets agree too, and every
/// one of them ran tasks on both workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_asof_and_training_sets_agree_with_one_process() {
    let (_d1, p1, wh1) = example_loaded().await;
    let (_d2, p2, wh2) = example_loaded().await;
    let single = engine(&p1, &wh1).await;
    let report = run_models(&p1, &single).await;
    assert!(report.success(), "{report:?}");

    let workers = two_workers(&wh2).await;
    let urls: Vec<String> = workers.iter().map(|w| w.url()).collect();
    let cluster = coordinator(&p2, &wh2, &urls).await;
    let report = run_models(&p2, &cluster).await;
    assert!(report.success(), "{report:?}");
    let after_run = tasks(&workers);
    assert!(
        after_run.iter().all(|&t| t > 0),
        "the model run did not use both workers: {after_run:?}"
    );
    let single2 = engine(&p2, &wh2).await;
    for table in [
        "staging.stg_transactions",
        "staging.stg_users",
        "features.user_features",
        "features.merchant_features",
        "features.daily_user_spend",
        "features.user_txn_rolling",
    ] {
        let sql = format!("SELECT * FROM {table}");
        assert_eq!(
            sorted_rows(&single, &sql).await,
            sorted_rows(&single2, &sql).await,
            "{table} built over workers differs"
        );
    }

    // Queries: the same answers, each run on both workers.
    let queries = [
        // An AS OF join (keys and time), hash-partitioned on the key.
        "SELECT l.txn_id, l.label_ts, t.txn_id AS last_txn, t.amount \
         FROM raw.labels l JOIN raw.transactions x USING (txn_id) \
         ASOF LEFT JOIN raw.transactions t MATCH_CONDITION (l.label_ts >= t.ts) ON x.user_id = t.user_id",
        // The DuckDB form, inner, with a tolerance.
        "SELECT t.txn_id, d.txn_date, d.amount FROM raw.transactions t \
         ASOF JOIN features.daily_user_spend d ON t.user_id = d.user_id AND CAST(t.ts AS DATE) >= d.txn_date \
         TOLERANCE INTERVAL '3 days'",
        // A training set from a feature view, as of each label's time.
        "SELECT * FROM historical_features(\
            'SELECT l.txn_id, t.user_id, l.label_ts, l.is_fraud FROM raw.labels l JOIN raw.transactions t USING (txn_id)', \
            'user_txn_rolling', 'timestamp=label_ts')",
        "SELECT user_id, count(*), sum(amount), min(ts), max(ts) FROM raw.transactions GROUP BY user_id",
        "SELECT u.*, count(t.txn_id) OVER (PARTITION BY u.user_id) AS n FROM raw.users u LEFT JOIN raw.transactions t USING (user_id)",
    ];
    let mut before = tasks(&workers);
    for sql in queries {
        assert_eq!(
            sorted_rows(&single2, sql).await,
            sorted_rows(&cluster, sql).await,
            "{sql}"
        );
        let now = tasks(&workers);
        assert!(
            now.iter().zip(&before).all(|(a, b)| a > b),
            "not on both workers ({before:?} -> {now:?}): {sql}"
        );
        before = now;
    }
    // EXPLAIN shows the stages and their tasks.
    let plan = rows(
        &cluster,
        "EXPLAIN SELECT user_id, count(*) FROM raw.transactions GROUP BY user_id",
    )
    .await;
    let plan = plan.join("\n");
    assert!(
        plan.contains("Stage 1") && plan.contains("tasks=2"),
        "{plan}"
    );
}

/// A worker that is not there fails the query within the connect timeout,
/// and the error names it and says what to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_worker_fails_fast_with_its_name() {
    let (_d, p, wh) = example_loaded().await;
    let workers = two_workers(&wh).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let urls = vec![workers[0].url(), format!("http://{dead}")];
    let cluster = coordinator(&p, &wh, &urls).await;
    let t0 = Instant::now();
    let err = cluster
        .query("SELECT user_id, count(*) FROM raw.transactions GROUP BY user_id")
        .await
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(err.contains(&dead.to_string()), "{err}");
    assert!(err.contains("sluice worker"), "{err}");
}

/// A memory:// warehouse cannot be shared with workers: said at once.
#[tokio::test]
async fn a_memory_warehouse_is_refused_in_a_cluster() {
    let wh = Warehouse::open("memory://c", &Default::default()).unwrap();
    let options = EngineOptions {
        cluster: Some(ClusterOptions::new(
            ClusterOptions::parse_workers(&["127.0.0.1:1"]).unwrap(),
        )),
        ..Default::default()
    };
    let err = Engine::with_options(wh, "main", &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory://"), "{err}");
}

/// TPC-H data from `tpchgen-cli` (the venv of tests/run.sh has it) at scale
/// factor 0.01, as Delta tables built by models: lineitem and orders
/// partitioned, every table in several files.
fn tpch_project(dir: &Path) -> Option<()> {
    let data = dir.join("data");
    let status = std::process::Command::new("tpchgen-cli")
        .args(["parquet", "-s", "0.01", "--parts", "3", "--output-dir"])
        .arg(&data)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            if std::env::var("SLUICE_REQUIRE_TPCHGEN").as_deref() == Ok("1") {
                panic!("tpchgen-cli failed: {other:?}");
            }
            eprintln!("skipped: tpchgen-cli is not installed (pip install tpchgen-cli): {other:?}");
            return None;
        }
    }
    std::fs::write(
        dir.join("sluice.toml"),
        "[project]\nname = \"tpch\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"tpch\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("catalog")).unwrap();
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for (table, partition) in [
        ("lineitem", Some("l_returnflag")),
        ("orders", Some("o_orderstatus")),
        ("customer", None),
        ("part", None),
        ("partsupp", None),
        ("supplier", None),
        ("nation", None),
        ("region", None),
    ] {
        let config = match partition {
            Some(p) => format!(
                "{{{{ config(materialized='table', schema='tpch', partition_by=['{p}']) }}}}\n"
            ),
            None => "{{ config(materialized='table', schema='tpch') }}\n".to_string(),
        };
        std::fs::write(
            models.join(format!("{table}.sql")),
            format!(
                "{config}SELECT * FROM read_parquet('{}/{table}/*.parquet')\n",
                data.display()
            ),
        )
        .unwrap();
    }
    Some(())
}

/// The 22 TPC-H queries over two workers give the rows one process gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_over_two_workers_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    if tpch_project(dir.path()).is_none() {
        return;
    }
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let single = engine(&project, &wh).await;
    let report = run_models(&project, &single).await;
    assert!(report.success(), "{report:?}");
    let workers = two_workers(&wh).await;
    let urls: Vec<String> = workers.iter().map(|w| w.url()).collect();
    let cluster = coordinator(&project, &wh, &urls).await;
    let queries = repo_root().join("tests/tpch/queries");
    let mut before = tasks(&workers);
    for q in 1..=22 {
        let sql = std::fs::read_to_string(queries.join(format!("q{q}.sql"))).unwrap();
        let expected = sorted_rows(&single, &sql).await;
        assert!(!expected.is_empty(), "q{q} has no rows");
        assert_eq!(expected, sorted_rows(&cluster, &sql).await, "q{q}");
        let now = tasks(&workers);
        assert!(
            now.iter().zip(&before).all(|(a, b)| a > b),
            "q{q} not on both workers ({before:?} -> {now:?})"
        );
        before = now;
    }
}

/// A `sluice worker` child process over the warehouse of `project`, with its
/// debug log (one line per task) on stderr.
struct ChildWorker {
    child: std::process::Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ChildWorker {
    fn start(project: &Path, port: u16) -> ChildWorker {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["worker", "--port", &port.to_string()])
            .current_dir(project)
            .env("RUST_LOG", "sluice=debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("listening on http://"), "{first}");
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        ChildWorker { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn tasks(&self) -> usize {
        self.log.lock().unwrap().matches("task ").count()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A worker killed (SIGKILL) in the middle of a query fails the query with an
/// error naming it, in seconds, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_query_fails_it_with_its_name() {
    let (dir, p, wh) = example_loaded().await;
    let w1 = ChildWorker::start(dir.path(), 0);
    let mut w2 = ChildWorker::start(dir.path(), 0);
    let cluster = coordinator(&p, &wh, &[w1.url(), w2.url()]).await;
    // Minutes of work (a nested loop join over 5,000 × 5,000 rows and more):
    // it is still running when the worker dies.
    let sql =
        "SELECT a.user_id, count(*) FROM raw.transactions a, raw.transactions b, raw.users c \
               WHERE a.amount > b.amount AND c.user_id <> b.user_id GROUP BY a.user_id";
    let query = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.query(sql).await.map(|_| ()) }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while w2.tasks() == 0 {
        assert!(Instant::now() < deadline, "worker 2 got no task");
        assert!(
            !query.is_finished(),
            "the query ended before worker 2 got a task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !query.is_finished(),
        "the query ended too soon to test a fault"
    );
    let killed = Instant::now();
    w2.kill();
    let result = tokio::time::timeout(Duration::from_secs(60), query)
        .await
        .expect("the query hangs after its worker died")
        .unwrap();
    let waited = killed.elapsed();
    let err = result
        .expect_err("the query succeeded without its worker")
        .to_string();
    assert!(waited < Duration::from_secs(30), "{waited:?}: {err}");
    assert!(err.contains(&format!("127.0.0.1:{}", w2.port)), "{err}");
}

/// A model run whose worker is down retries the failed models (once, by
/// default) and succeeds when the worker is back; the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_models_retries_once_the_worker_is_back() {
    struct Restart {
        dir: std::path::PathBuf,
        port: u16,
        restarted: std::sync::Mutex<Option<ChildWorker>>,
        retries: std::sync::atomic::AtomicU32,
    }
    impl sluice::models::RunObserver for Restart {
        fn retrying(&self, _id: &str, attempt: u32, allowed: u32, error: &str) {
            assert_eq!((attempt, allowed), (1, 1));
            assert!(error.contains(&self.port.to_string()), "{error}");
            self.retries.fetch_add(1, Ordering::Relaxed);
            let mut w = self.restarted.lock().unwrap();
            if w.is_none() {
                *w = Some(ChildWorker::start(&self.dir, self.port));
            }
        }
    }
    let (dir, p, wh) = example_loaded().await;
    let w1 = ChildWorker::start(dir.path(), 0);
    let mut w2 = ChildWorker::start(dir.path(), 0);
    let port = w2.port;
    w2.kill();
    let cluster = coordinator(&p, &wh, &[w1.url(), format!("http://127.0.0.1:{port}")]).await;
    let observer = Restart {
        dir: dir.path().to_path_buf(),
        port,
        restarted: Default::default(),
        retries: Default::default(),
    };
    let opts = sluice::models::CompileOptions::default();
    let compiled = std::sync::Arc::new(sluice::models::compile(&p, &cluster, &opts).await.unwrap());
    let report = sluice::models::execute(
        &p,
        &cluster,
        compiled,
        &sluice::models::Selection::default(),
        sluice::models::Steps::Models,
        2,
        &Default::default(),
        "run",
        &observer,
    )
    .await
    .unwrap();
    assert!(report.success(), "{report:?}");
    assert!(
        observer.retries.load(Ordering::Relaxed) > 0,
        "nothing was retried"
    );
    let retried: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.retries == 1)
        .map(|r| r.id.as_str())
        .collect();
    assert!(!retried.is_empty(), "{report:?}");
    let back = observer.restarted.lock().unwrap();
    assert!(
        back.as_ref().is_some_and(|w| w.tasks() > 0),
        "the restarted worker ran nothing"
    );
}
