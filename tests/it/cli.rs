//! The `sluice` binary: exit codes, one-line errors, json output, SIGKILL safety.

use crate::common::*;
use std::process::{Command, Output};

fn sluice(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn user_errors_are_one_clear_line() {
    let dir = example_project();
    let p = dir.path();

    let o = sluice(&["load", "transaction"], p);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("unknown source `transaction`"), "{e}");
    assert!(e.contains("did you mean `transactions`?"), "{e}");

    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname='x'\n[warehouse]\nurl='w'\n",
    )
    .unwrap();
    let o = sluice(&["load"], p);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("sluice.toml: line 4: unknown key `url` (did you mean `uri`?)"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");

    let dir = project_with(
        "[[source]]\nname = \"gone\"\nformat = \"csv\"\nlocation = \"data/missing.csv\"\n",
    );
    let o = sluice(&["load"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("source `gone`: file `"), "{e}");
    assert!(e.contains("missing.csv` does not exist"), "{e}");

    // Unreachable object storage: one line, storage exit code, no panic.
    let dir = example_project();
    let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--warehouse", "s3://nobucket/wh", "load"])
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("error: storage `s3://nobucket/wh/"), "{e}");
    assert!(e.contains("is the endpoint reachable?"), "{e}");
}

/// The binary sets mimalloc's purge delay by the option's number. Its debug
/// log reads the options back by the same numbers: with mimalloc's own
/// variables set, it must show their values (a mimalloc that renumbered its
/// options would fail here), and without them the binary's.
#[test]
fn allocator_purge_delay_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["-vv", "sql", "SELECT 1 AS x"])
            .current_dir(dir.path())
            .env_remove("SLUICE_WAREHOUSE")
            .env_remove("RUST_LOG")
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("MIMALLOC_ARENA_PURGE_MULT")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stderr(&o)
    };
    let err = run(&[]);
    assert!(
        err.contains("mimalloc purge delay 10000 ms, arena purge multiplier 1\n"),
        "{err}"
    );
    let err = run(&[
        ("MIMALLOC_PURGE_DELAY", "25"),
        ("MIMALLOC_ARENA_PURGE_MULT", "3"),
    ]);
    assert!(
        err.contains("mimalloc purge delay 25 ms, arena purge multiplier 3\n"),
        "{err}"
    );
}

#[test]
fn sql_works_outside_a_project_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.csv"), "a\n1\n2\n").unwrap();
    let o = sluice(
        &["sql", "SELECT sum(a) AS s FROM 'f.csv'", "--format", "json"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[{\"s\":3}]\n");
    assert!(
        !dir.path().join("warehouse").exists(),
        "sql must not create a warehouse"
    );
    let o = sluice(&["sql", "SELECT * FROM nope"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
}

#[test]
fn load_json_summary_and_history() {
    let dir = example_project();
    let o = sluice(&["load", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sources"].as_array().unwrap().len(), 4);
    let o = sluice(
        &["history", "raw.transactions", "--format", "json"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h[0]["version"], 0);
    assert_eq!(h[0]["rows_added"], 5000);
    assert_eq!(h[0]["load_id"], v["load_id"]);
    let o = sluice(
        &[
            "sql",
            "SELECT count(*) AS n FROM raw.users",
            "--format",
            "csv",
        ],
        dir.path(),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n1000\n");
}

fn count_big(p: &std::path::Path) -> String {
    let o = sluice(
        &[
            "sql",
            "SELECT count(*) AS n FROM raw.big",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A load killed with SIGKILL leaves the table at its previous version; the
/// next load completes.
#[test]
fn killed_load_leaves_previous_version() {
    let dir = project_with(
        "[[source]]\nname = \"big\"\nformat = \"csv\"\nlocation = \"data/*.csv\"\n\n[[source.columns]]\nname = \"id\"\ntype = \"bigint\"\n\n[[source.columns]]\nname = \"v\"\ntype = \"varchar\"\n",
    );
    let p = dir.path();
    std::fs::write(p.join("data/0.csv"), "id,v\n1,a\n").unwrap();
    let o = sluice(&["load"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A file big enough that the load is still running when we kill it.
    let mut big = String::from("id,v\n");
    for i in 0..3_000_000u64 {
        big.push_str(&format!("{i},value-{i}-padding-padding\n"));
    }
    std::fs::write(p.join("data/1.csv"), big).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["load", "--progress", "never"])
        .current_dir(p)
        .spawn()
        .unwrap();
    // Let it read and encode for a while (a debug build needs ~10 s for this
    // file), then kill it mid-way.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let finished_early = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !finished_early,
        "the load finished before it could be killed; use a bigger file"
    );
    assert_eq!(count_big(p), "n\n1\n", "a killed load must leave version 0");
    let o = sluice(&["load"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count_big(p), "n\n3000001\n");
}

/// `sluice load` killed with SIGKILL at moments spread over its run (reading,
/// encoding, around the quarantine and target commits), while a new file
/// arrives before each run: after one load that completes, every good row is in
/// the table once and every bad row in the quarantine once. (The exact moment
/// between the quarantine commit and the target commit is also pinned
/// deterministically by `load::killed_between_quarantine_and_target_*`.)
#[test]
fn loads_killed_at_any_moment_lose_and_duplicate_nothing() {
    use std::fmt::Write;
    let dir = project_with(
        "[[source]]\nname = \"arrivals\"\nformat = \"csv\"\nlocation = \"data/*.csv\"\n\n[[source.columns]]\nname = \"id\"\ntype = \"bigint\"\nnot_null = true\n\n[[source.columns]]\nname = \"amount\"\ntype = \"decimal(10,2)\"\n",
    );
    let p = dir.path();
    const FILES: u64 = 8;
    const GOOD: u64 = 40_000;
    const BAD: u64 = 40;
    let mut hit_running = 0;
    for (k, delay_ms) in (0..FILES).zip([30u64, 200, 450, 700, 950, 1300, 1700, 2300]) {
        let mut csv = String::from("id,amount\n");
        for i in 0..GOOD {
            writeln!(csv, "{},{}.{:02}", k * 1_000_000 + i, i % 1000, i % 100).unwrap();
            if i % (GOOD / BAD) == 0 {
                writeln!(csv, "{},not-a-number", k * 1_000_000 + 900_000 + i).unwrap();
            }
        }
        let tmp = p.join(format!("data/.{k}.tmp"));
        std::fs::write(&tmp, csv).unwrap();
        std::fs::rename(&tmp, p.join(format!("data/{k:02}.csv"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["load", "--progress", "never"])
            .current_dir(p)
            .env_remove("SLUICE_WAREHOUSE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            hit_running += 1;
        }
        // SIGKILL: no clean-up of any kind.
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        hit_running >= FILES / 2,
        "only {hit_running} of {FILES} kills hit a running load: the loads are too short"
    );
    let o = sluice(&["load", "--progress", "never"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let query = |sql: &str| {
        let o = sluice(&["sql", sql, "--format", "csv"], p);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        query("SELECT count(*), count(DISTINCT id) FROM raw.arrivals"),
        format!("{},{}", FILES * GOOD, FILES * GOOD),
        "every good row exactly once"
    );
    assert_eq!(
        query("SELECT count(*), count(DISTINCT file || ':' || CAST(line AS VARCHAR)) FROM raw.arrivals__rejected"),
        format!("{},{}", FILES * BAD, FILES * BAD),
        "every bad row exactly once in the quarantine"
    );
}

/// `sluice init` makes a project that loads and answers queries, also with a
/// `file://` warehouse given on the command line.
#[test]
fn init_then_load_with_file_uri_warehouse() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    let o = sluice(&["init", proj.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let wh = format!("file://{}", tmp.path().join("wh").display());
    let o = sluice(&["--warehouse", &wh, "load"], &proj);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.path().join("wh/raw/events/_delta_log").is_dir());
    let o = sluice(
        &[
            "--warehouse",
            &wh,
            "sql",
            "SELECT count(*) AS n FROM raw.events",
            "--format",
            "csv",
        ],
        &proj,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "n\n3\n",
        "{}",
        stderr(&o)
    );
    let o = sluice(&["init", proj.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("a project already exists here"));
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The newcomer's path: `init`, then `run` (load, models, tests), then query a model.
#[test]
fn init_then_run_builds_the_skeleton_model() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    let o = sluice(&["init", proj.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sluice(&["run"], &proj);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("OK    marts.events_by_kind ..."),
        "{}",
        stdout(&o)
    );
    let o = sluice(
        &[
            "sql",
            "SELECT kind, events FROM marts.events_by_kind ORDER BY kind",
            "--format",
            "csv",
        ],
        &proj,
    );
    assert_eq!(
        stdout(&o),
        "kind,events\npurchase,1\nsignup,2\n",
        "{}",
        stderr(&o)
    );
}

/// compile prints the order and the SQL and writes nothing; lineage in three formats.
#[test]
fn compile_and_lineage() {
    let dir = example_project();
    let p = dir.path();
    copy_dir(&repo_root().join("sql"), &p.join("sql"));
    let o = sluice(&["compile", "-s", "+user_features"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let pos = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| panic!("{s} missing in {out}"))
    };
    assert!(pos("staging.stg_transactions (view)") < pos("features.user_features (table)"));
    // The ephemeral model is inlined as a CTE, bare names are qualified.
    assert!(
        out.contains("WITH __sluice_ephemeral__staging__txn_enriched AS ("),
        "{out}"
    );
    assert!(
        out.contains("LEFT JOIN staging.stg_merchants AS m"),
        "{out}"
    );
    assert!(!out.contains("daily_user_spend"), "not selected: {out}");
    assert!(
        !p.join("warehouse/features").exists(),
        "compile must not write"
    );

    let o = sluice(&["lineage", "txn_enriched", "--format", "json"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["model"], "staging.txn_enriched");
    let up: Vec<&str> = j["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        up,
        vec!["staging.stg_merchants", "staging.stg_transactions"]
    );
    let down = j["downstream"].as_array().unwrap();
    assert!(down.iter().any(|v| v == "features.user_features"), "{j}");
    let o = sluice(&["lineage", "txn_enriched", "--format", "dot"], p);
    assert!(
        stdout(&o).contains("\"staging.stg_merchants\" -> \"staging.txn_enriched\""),
        "{}",
        stdout(&o)
    );
    let o = sluice(&["lineage", "txn_enrich"], p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `txn_enriched`?"),
        "{}",
        stderr(&o)
    );
}

/// A run with a failing model: summary on stdout, one error line on stderr, exit 1.
#[test]
fn failing_run_reports_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname='t'\nmodels='models'\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    std::fs::write(p.join("models/ok.sql"), "select 1 as x").unwrap();
    std::fs::write(p.join("models/bad.sql"), "select cast('x' as int) as y").unwrap();
    std::fs::write(p.join("models/after_bad.sql"), "select y from bad").unwrap();
    let o = sluice(&["run", "models", "--threads", "1"], p);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("OK    raw.ok ..."), "{out}");
    assert!(out.contains("ERROR raw.bad ..."), "{out}");
    assert!(out.contains("SKIP  raw.after_bad ..."), "{out}");
    assert!(out.contains("ERROR raw.bad (models/bad.sql):"), "{out}");
    assert!(
        stderr(&o).contains("2 of 3 nodes did not succeed"),
        "{}",
        stderr(&o)
    );
    // JSON summary for programs.
    let o = sluice(&["run", "models", "--format", "json"], p);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["results"].as_array().unwrap().len(), 3);

    // A cycle is a user error (exit 2) printed on one line.
    std::fs::write(p.join("models/ok.sql"), "select y as x from after_bad").unwrap();
    std::fs::write(p.join("models/bad.sql"), "select x as y from ok").unwrap();
    let o = sluice(&["run", "models"], p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("dependency cycle: raw.after_bad → raw.ok → raw.bad → raw.after_bad"),
        "{}",
        stderr(&o)
    );
}

/// The dbt fixture runs with the CLI from outside its folder.
#[test]
fn dbt_project_via_cli() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("tests/fixtures/dbt_shop"), dir.path());
    let here = dir.path().parent().unwrap();
    let proj = dir.path().to_str().unwrap();
    let o = sluice(&["--project", proj, "seed"], here);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sluice(&["--project", proj, "build"], here);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("PASS  assert_no_negative_totals ..."),
        "{}",
        stdout(&o)
    );
    let o = sluice(&["--project", proj, "test", "-s", "stg_orders"], here);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("customers_customer_id"),
        "only stg_orders' tests: {}",
        stdout(&o)
    );
    assert!(dir.path().join("target/run_results.json").exists());
}

/// What DROP TABLE's deletion order relies on (`drop_order`): once the
/// checkpoints and the first commit are gone, the table no longer loads at any
/// version (an error, never an older version shown as the current one), and
/// dropping it again removes the rest.
#[test]
fn a_table_without_its_first_commit_does_not_load_and_drops_again() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let wh = wh.to_str().unwrap();
    let sql = |q: &str| {
        sluice(
            &["--warehouse", wh, "sql", q, "--format", "csv"],
            dir.path(),
        )
    };
    for q in [
        "CREATE TABLE main.t AS SELECT 1 AS x",
        "INSERT INTO main.t VALUES (2)",
        "INSERT INTO main.t VALUES (3)",
    ] {
        let o = sql(q);
        assert_eq!(o.status.code(), Some(0), "{q}: {}", stderr(&o));
    }
    let log = dir.path().join("wh/main/t/_delta_log");
    std::fs::remove_file(log.join("00000000000000000000.json")).unwrap();
    let o = sql("SELECT sum(x) AS s FROM main.t");
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        stderr(&o).contains("run DROP TABLE on it again"),
        "{}",
        stderr(&o)
    );
    let o = sql("DROP TABLE main.t");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !dir.path().join("wh/main/t/_delta_log").exists()
            || std::fs::read_dir(&log).unwrap().next().is_none()
    );
    let o = sql("SELECT count(*) AS n FROM main.t");
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("main.t"), "{}", stderr(&o));
}

/// Issue 18's error contract: user errors exit 2, runtime failures 1, one
/// readable line each; a statement nested too deep is refused, not a crash.
#[test]
fn error_contract_and_hostile_statements() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();

    // A parser error reads as a sentence, not `ParserError("...")`.
    let o = sluice(&["sql", "SELEC 1"], p);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("error: syntax error: "), "{e}");
    assert!(!e.contains("ParserError"), "{e}");

    // A statement that fails on its data is a runtime failure (1).
    let o = sluice(
        &["sql", "SELECT a / (a - 1) FROM (VALUES (1), (2)) t(a)"],
        p,
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("error: division by zero"), "{e}");

    // 3,000 and 60,000 terms (about 6 KB and 120 KB of SQL) aborted the
    // process with a stack overflow (exit 134); 1,000 are answered.
    for n in [3_000, 60_000] {
        let sql = format!("SELECT {}", vec!["1"; n].join("+"));
        let o = sluice(&["sql", &sql], p);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{n} terms: {e}");
        assert!(e.contains("more than 1000 levels deep"), "{e}");
    }
    let excepts = vec!["SELECT 1 AS x"; 4_000].join(" EXCEPT ");
    let o = sluice(&["sql", &excepts], p);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Associative chains are rebalanced: 5,000 ORs are answered.
    let ors: Vec<String> = (0..5_000).map(|i| format!("x = {i}")).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM (VALUES (7), (5001)) t(x) WHERE {}",
        ors.join(" OR ")
    );
    let o = sluice(&["sql", &sql, "--format", "csv"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n1\n");
    let sql = format!("SELECT {} AS n", vec!["1"; 1_000].join("+"));
    let o = sluice(&["sql", &sql, "--format", "csv"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n1000\n");
    let sql = format!("SELECT {}1{}", "(".repeat(3_000), ")".repeat(3_000));
    let o = sluice(&["sql", &sql], p);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("too deeply"), "{e}");

    // Bad --vars is a usage error (was exit 1).
    let dir = example_project();
    let o = sluice(&["run", "models", "--vars", "{bad"], dir.path());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--vars `{bad` is not JSON or YAML"), "{e}");

    // A typo under [models] in sluice.toml is an error, not silently dropped.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("models/staging")).unwrap();
    std::fs::write(p.join("models/staging/a.sql"), "SELECT 1 AS x\n").unwrap();
    for (models, expect) in [
        (
            "[models]\nmaterialised = \"view\"\n",
            "[models]: unknown model config `materialised` (did you mean `materialized`?)",
        ),
        (
            "[models.staging]\nmaterialzed = \"view\"\n",
            "[models.staging]: unknown model config `materialzed` (did you mean `materialized`?)",
        ),
        (
            "[models.stagin]\nmaterialized = \"view\"\n",
            "[models.stagin] names no folder of models (did you mean `staging`?)",
        ),
    ] {
        std::fs::write(
            p.join("sluice.toml"),
            format!("[project]\nname = \"t\"\n\n[warehouse]\nuri = \"warehouse\"\n\n{models}"),
        )
        .unwrap();
        let o = sluice(&["run", "models"], p);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains(expect), "{e}");
    }

    // Division by zero in a model is reported as what it is, not as storage.
    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname = \"t\"\n\n[warehouse]\nuri = \"warehouse\"\n\n[models.staging]\nmaterialized = \"table\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("models/staging/a.sql"),
        "SELECT a / (a - 1) AS x FROM (VALUES (1), (2)) t(a)\n",
    )
    .unwrap();
    let o = sluice(&["run", "models"], p);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("division by zero"), "{out}");
    assert!(!out.contains("storage"), "{out}");
}

/// Overlapping `sluice load` processes (cron jobs that start together): all
/// exit 0, and each new file's rows are in the table once.
#[test]
fn overlapping_load_processes_load_each_file_once() {
    let dir = project_with(
        "[[source]]\nname = \"arrivals\"\nformat = \"csv\"\nlocation = \"data/*.csv\"\n\n[[source.columns]]\nname = \"id\"\ntype = \"bigint\"\n",
    );
    let p = dir.path();
    let mut files = 0u64;
    for _ in 0..3 {
        let csv: String = (1..=100)
            .map(|i| format!("{}\n", files * 1000 + i))
            .fold(String::from("id\n"), |a, l| a + &l);
        std::fs::write(p.join(format!("data/{files}.csv")), csv).unwrap();
        files += 1;
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_sluice"))
                    .args(["load", "--progress", "never"])
                    .current_dir(p)
                    .env_remove("SLUICE_WAREHOUSE")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
    let o = sluice(
        &[
            "sql",
            "SELECT count(*) AS n, count(DISTINCT id) AS d FROM raw.arrivals",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("n,d\n{0},{0}\n", files * 100)
    );
}

/// Each command's --format accepts only what the command can print; clap
/// refuses the rest (exit 2) and lists the valid values.
#[test]
fn a_format_a_command_cannot_print_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let summary = "[possible values: table, json]";
    for (args, valid) in [
        (&["load", "--format", "csv"][..], summary),
        (&["seed", "--format", "csv"][..], summary),
        (&["run", "--format", "csv"][..], summary),
        (&["run", "models", "--format", "csv"][..], summary),
        (&["build", "--format", "csv"][..], summary),
        (&["test", "--format", "csv"][..], summary),
        (
            &["compile", "--format", "csv"][..],
            "[possible values: text, json]",
        ),
        (&["materialize", "--format", "csv"][..], summary),
        (&["features", "list", "--format", "csv"][..], summary),
        (
            &["features", "show", "v", "--format", "csv"][..],
            "[possible values: text, json]",
        ),
        (
            &["lineage", "m", "--format", "table"][..],
            "[possible values: text, dot, json]",
        ),
        (
            &["sql", "SELECT 1", "--format", "dot"][..],
            "[possible values: table, csv, json]",
        ),
        (
            &["history", "t", "--format", "yaml"][..],
            "[possible values: table, csv, json]",
        ),
    ] {
        let o = sluice(args, dir.path());
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains("invalid value '"), "{args:?}: {e}");
        assert!(e.contains(valid), "{args:?}: {e}");
    }
    // --start and --end are checked by the parser too.
    let o = sluice(&["materialize", "--start", "yesterday"], dir.path());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("not a time: use 2026-01-31"), "{e}");
}

/// A reader that stops reading (`sluice sql ... | head`) ends the command
/// quietly with exit 0 (was 1 for csv and json, 3 for table, with an error
/// line; `hash-password` panicked with 70).
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "table", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "sql",
                "SELECT * FROM generate_series(1, 300000)",
                "--format",
                format,
            ])
            .current_dir(dir.path())
            .env_remove("SLUICE_WAREHOUSE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 5];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        // The read end is closed here.
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{format}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{format}");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["hash-password", "secret"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// Output that cannot be written (a full disk) is an I/O error, exit 3, on
/// one line (was 1 for csv, and a panic, 70, for `init` and `hash-password`);
/// a full stderr does not turn a user error into a crash (was 70).
#[test]
fn unwritable_output_is_an_io_error() {
    let full = std::path::Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let to_full = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("SLUICE_WAREHOUSE")
            .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
            .output()
            .unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("No space left on device"), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    };
    to_full(&["sql", "SELECT 1 AS x", "--format", "csv"]);
    to_full(&["sql", "SELECT 1 AS x", "--format", "json"]);
    to_full(&["sql", "SELECT 1 AS x"]);
    to_full(&["hash-password", "secret"]);
    to_full(&["init", dir.path().join("p").to_str().unwrap()]);

    let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["sql", "SELEC 1"])
        .current_dir(dir.path())
        .env_remove("SLUICE_WAREHOUSE")
        .stderr(std::fs::OpenOptions::new().write(true).open(full).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `history` reads a table name as SQL does; a name that is no table name is
/// a user error (an empty one was a storage error, exit 3).
#[test]
fn history_reads_table_names_as_sql_does() {
    let dir = project_with(
        "[[source]]\nname = \"events\"\nformat = \"csv\"\nlocation = \"data/*.csv\"\n",
    );
    let p = dir.path();
    std::fs::write(p.join("data/0.csv"), "id\n1\n2\n").unwrap();
    let o = sluice(&["load", "--progress", "never"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for name in ["raw.events", "Raw.Events", "events", "sluice.raw.events"] {
        let o = sluice(&["history", name, "--format", "json"], p);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(h[0]["rows_added"], 2, "{name}");
    }
    for name in ["", "../events", "a.b.c", "raw events"] {
        let o = sluice(&["history", name], p);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(e.contains("is not a table name"), "{name}: {e}");
    }
    let o = sluice(&["history", "raw.nope"], p);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("table `raw.nope` does not exist"));
}

/// The feature commands end to end: list, show, a training set printed, as
/// SQL, into files (.ndjson was refused by COPY) and a table, and
/// materialize. With no views yet, materialize is a user error (was 1).
#[test]
fn feature_commands() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n",
    )
    .unwrap();
    let o = sluice(&["materialize"], p);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("no feature views yet"), "{e}");

    let ts = |s: &str| format!("arrow_cast('{s}', 'Timestamp(Microsecond, Some(\"UTC\"))')");
    std::fs::create_dir_all(p.join("models/features")).unwrap();
    std::fs::write(
        p.join("models/features/user_feats.sql"),
        format!(
            "{{{{ config(feature_view={{'entities': ['user_id'], 'event_timestamp': 'ts'}}) }}}}\n\
             SELECT * FROM (VALUES (1, {}, 10), (2, {}, 20)) v(user_id, ts, amount)\n",
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-02T00:00:00Z")
        ),
    )
    .unwrap();
    let o = sluice(&["run", "models", "--progress", "never"], p);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = sluice(
        &[
            "sql",
            &format!(
                "CREATE TABLE main.labels AS SELECT * FROM (VALUES (1, {}), (2, {})) v(user_id, event_timestamp)",
                ts("2026-01-03T00:00:00Z"),
                ts("2026-01-01T00:00:00Z")
            ),
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = sluice(&["features", "list", "--format", "json"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let views: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(views[0]["name"], "user_feats", "{views}");
    let o = sluice(&["features", "show", "user_feats"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("entities:        user_id"),
        "{}",
        stdout(&o)
    );
    let o = sluice(&["features", "show", "user_feat"], p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `user_feats`?"),
        "{}",
        stderr(&o)
    );

    let historical = |extra: &[&str]| {
        let mut args = vec![
            "features",
            "historical",
            "--entities",
            "main.labels",
            "--features",
            "user_feats",
        ];
        args.extend_from_slice(extra);
        sluice(&args, p)
    };
    let o = historical(&["--format", "csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "1,2026-01-03T00:00:00Z,10",
            "2,2026-01-01T00:00:00Z,",
            "user_id,event_timestamp,amount"
        ]
    );
    assert!(
        stderr(&o).contains("training set read main.labels@v0"),
        "{}",
        stderr(&o)
    );
    let o = historical(&["--sql"]);
    assert!(stdout(&o).contains("VERSION AS OF"), "{}", stdout(&o));

    for (out, rows) in [
        ("set.ndjson", 2),
        ("set.parquet", 2),
        ("set.csv", 3),
        ("features.training", 0),
    ] {
        let o = historical(&["--out", out]);
        assert_eq!(o.status.code(), Some(0), "{out}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("wrote 2 rows to {out}")),
            "{out}: {}",
            stderr(&o)
        );
        if rows > 0 && !out.ends_with(".parquet") {
            let text = std::fs::read_to_string(p.join(out)).unwrap();
            assert_eq!(text.lines().count(), rows, "{out}: {text}");
        }
    }
    let o = sluice(
        &[
            "sql",
            "SELECT (SELECT count(*) FROM 'set.parquet') AS f, (SELECT count(*) FROM features.training) AS t",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(stdout(&o), "f,t\n2,2\n", "{}", stderr(&o));
    for bad in ["out/", "out/set.txt", "Not A Table"] {
        let o = historical(&["--out", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
    }

    let o = sluice(&["materialize", "--format", "json"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(reports[0]["entity_count"], 2, "{reports}");
}

/// The commits of `table` (`sluice history`), oldest first; none when the
/// table does not exist.
fn versions(p: &std::path::Path, table: &str) -> Vec<String> {
    let o = sluice(&["history", table, "--format", "csv"], p);
    if o.status.code() != Some(0) {
        return Vec::new();
    }
    stdout(&o)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(String::from))
        .collect()
}

/// Issue 20: a feature view whose columns are wrong commits nothing (a first
/// run creates no table, a later one leaves the table's version as it was),
/// with an error naming the model, the column and the fix; what can only fail
/// after the commit (writing the online store) says which version was
/// committed, in the summary and in the JSON report.
#[test]
fn a_bad_feature_view_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let toml = "[project]\nname = \"t\"\nmodels = \"models\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n";
    std::fs::write(p.join("sluice.toml"), toml).unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    let model = |fv: &str| {
        std::fs::write(
            p.join("models/user_feats.sql"),
            format!(
                "{{{{ config(feature_view={fv}) }}}}\n\
                 SELECT * FROM (VALUES (1, arrow_cast('2026-01-01T00:00:00Z', 'Timestamp(Microsecond, Some(\"UTC\"))'), 'a', 10)) v(user_id, ts, label, amount)\n"
            ),
        )
        .unwrap();
    };
    let run = || sluice(&["run", "models", "--progress", "never"], p);

    // First run, an event_timestamp the model does not produce: no table.
    model("{'entities': ['user_id'], 'event_timestamp': 'event_ts'}");
    let o = run();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("ERROR main.user_feats"), "{out}");
    assert!(
        out.contains(
            "model `main.user_feats` (models/user_feats.sql): feature_view event_timestamp `event_ts` is not a column of the model's result; columns: user_id, ts, label, amount. Set 'event_timestamp' in the feature_view config to one of them, or add `event_ts` to the model's SELECT; nothing was written"
        ),
        "{out}"
    );
    assert!(!p.join("warehouse/main/user_feats").exists());
    assert_eq!(versions(p, "main.user_feats"), Vec::<String>::new());
    let o = sluice(&["features", "list", "--format", "json"], p);
    assert_eq!(stdout(&o).trim(), "[]", "not registered either");

    // A good run commits version 0.
    model("{'entities': ['user_id'], 'event_timestamp': 'ts'}");
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(versions(p, "main.user_feats"), ["0"]);

    // Wrong types: nothing more is committed, and the registry keeps one version.
    for (fv, message) in [
        (
            "{'entities': ['user_id'], 'event_timestamp': 'label'}",
            "feature_view event_timestamp `label` is ",
        ),
        (
            "{'entities': ['user_id'], 'event_timestamp': 'ts', 'created_timestamp': 'amount'}",
            "feature_view created_timestamp `amount` is Int64; it must be a timestamp or a date",
        ),
        (
            "{'entities': ['usr_id'], 'event_timestamp': 'ts'}",
            "feature_view entity `usr_id` is not a column of the model's result (did you mean `user_id`?)",
        ),
    ] {
        model(fv);
        let o = run();
        assert_eq!(o.status.code(), Some(1), "{fv}: {}", stderr(&o));
        assert!(stdout(&o).contains(message), "{fv}: {}", stdout(&o));
        assert_eq!(versions(p, "main.user_feats"), ["0"], "{fv}");
    }
    let o = sluice(&["features", "list", "--format", "json"], p);
    let views: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        views[0]["versions"].as_array().map(Vec::len),
        Some(1),
        "{views}"
    );

    // The online store fails after the commit (nothing listens on port 1):
    // the model is an error that names the committed version, and the JSON
    // report keeps it.
    std::fs::write(
        p.join("sluice.toml"),
        format!("{toml}\n[online]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\n"),
    )
    .unwrap();
    model("{'entities': ['user_id'], 'event_timestamp': 'ts', 'online': true}");
    let o = sluice(
        &["run", "models", "--progress", "never", "--format", "json"],
        p,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let node = &report["results"][0];
    assert_eq!(node["status"], "error", "{report}");
    assert_eq!(node["version"], 1, "{report}");
    let message = node["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "model `main.user_feats` (models/user_feats.sql): committed version 1 of table main.user_feats, then failed: writing the online store: "
        ) && message.contains("run `sluice materialize user_feats`"),
        "{message}"
    );
    assert_eq!(versions(p, "main.user_feats"), ["0", "1"]);
}

/// The README's shell snippet that starts with `first_line`, through its last
/// continued (`\`) line or, inside a quoted argument, its closing quote.
fn readme_snippet(first_line: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find(first_line)
        .unwrap_or_else(|| panic!("README.md has no `{first_line}`"));
    let mut snippet = String::new();
    let mut open_quote = false;
    for line in readme[start..].lines() {
        snippet.push_str(line);
        snippet.push('\n');
        if line.matches('"').count() % 2 == 1 {
            open_quote = !open_quote;
        }
        if !open_quote && !line.ends_with('\\') {
            break;
        }
    }
    snippet
}

/// Issue 20, the feature store on the example project: the README's
/// training-set examples run as pasted (its tables and features exist; the
/// entities' `txn_id` and `amount` overlap the view's features without
/// full_names), a TTL prints as written and needs a unit, a registered view
/// not in the online store says to materialize it, and a subset of an
/// online view's columns can keep `_status`.
#[test]
fn feature_store_readme_examples_run_as_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let root = repo_root();
    for d in ["catalog", "sql", "tests/data"] {
        copy_dir(&root.join(d), &p.join(d));
    }
    std::fs::copy(root.join("sluice.toml"), p.join("sluice.toml")).unwrap();
    let o = sluice(&["run", "--progress", "never"], p);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // The README's snippets, with `cargo run --` as the binary.
    let bin = env!("CARGO_BIN_EXE_sluice");
    let shell = |snippet: &str| {
        let script = snippet
            .replace("cargo run --", &format!("'{bin}'"))
            .replace("/tmp/train.parquet", "train.parquet");
        Command::new("sh")
            .args(["-c", &script])
            .current_dir(p)
            .env_remove("SLUICE_WAREHOUSE")
            .output()
            .unwrap()
    };
    let o = shell(&readme_snippet("cargo run -- features historical"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("wrote 5000 rows to train.parquet"),
        "{}",
        stderr(&o)
    );
    let o = shell(&readme_snippet(
        "cargo run -- sql \"SELECT * FROM historical_features(",
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let header = out.lines().nth(1).unwrap_or_default();
    let columns: Vec<&str> = header
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        [
            "txn_id",
            "user_id",
            "amount",
            "label_ts",
            "is_fraud",
            "user_txn_rolling__txn_id",
            "user_txn_rolling__amount",
            "txn_count_30d",
            "amount_30d",
            "avg_amount_30d",
            "txn_count_24h",
            "amount_24h"
        ],
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("| ")).count(),
        6,
        "{out}"
    );

    // The TTL as written.
    let o = sluice(&["features", "list"], p);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("features.user_txn_rolling"))
        .map(String::from)
        .unwrap_or_default();
    assert!(
        line.contains(" 30d ")
            && line.contains("not materialized: run `sluice materialize user_txn_rolling`"),
        "{line}"
    );
    let o = sluice(&["features", "show", "user_txn_rolling"], p);
    assert!(
        stdout(&o).contains("  ttl:             30d (a value exactly 30d old is still used)"),
        "{}",
        stdout(&o)
    );

    // Registered, never materialized: what to run.
    let o = sluice(
        &[
            "sql",
            "SELECT * FROM online.user_txn_rolling WHERE user_id = 1",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "feature view `user_txn_rolling` has no values in the online store yet: run `sluice materialize user_txn_rolling`"
        ),
        "{}",
        stderr(&o)
    );
    let o = sluice(&["materialize", "user_txn_rolling"], p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sluice(
        &[
            "sql",
            "SELECT * FROM online.user_txn_rolling WHERE user_id = 1",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A subset of columns keeps `_status` when it is selected (the README's
    // query), telling a missing entity from a NULL feature.
    let o = sluice(
        &[
            "sql",
            "SELECT txn_count_30d IS NOT NULL AS has_count, _status FROM online.user_features WHERE user_id IN (1, 99999) ORDER BY _status DESC",
            "--format",
            "csv",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "has_count,_status\ntrue,present\nfalse,not_found\n"
    );

    // A bare number as TTL: an error asking for a unit, naming the model.
    let file = p.join("sql/features/user_txn_rolling.sql");
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.contains("'ttl': '30d'"), "{sql}");
    std::fs::write(&file, sql.replace("'ttl': '30d'", "'ttl': 7")).unwrap();
    let o = sluice(
        &[
            "run",
            "models",
            "-s",
            "user_txn_rolling",
            "--progress",
            "never",
        ],
        p,
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("user_txn_rolling")
            && e.contains("feature_view ttl 7 has no unit: write '7d' (days), '7h' (hours)"),
        "{e}"
    );
}
