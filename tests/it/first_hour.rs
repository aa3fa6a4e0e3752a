//! A newcomer's first hour (issue 20): where commands find the project, how
//! paths resolve, what an append source does with a changed file. Through the
//! real binary.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

fn sluice(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    text(o)
}

/// Every command resolves `--project` the same way whether it is spelled
/// relative (from two different folders) or absolute: the seeds, models,
/// warehouse and `target/` are the project's, never joined twice.
#[test]
fn a_relative_project_path_works_like_an_absolute_one() {
    let top = tempfile::tempdir().unwrap();
    let shop = top.path().join("work/shop");
    copy_dir(&repo_root().join("tests/fixtures/dbt_shop"), &shop);
    let abs = shop.to_str().unwrap().to_string();
    let spellings: [(&str, &Path); 3] = [
        ("shop", &top.path().join("work")),
        ("work/shop", top.path()),
        (abs.as_str(), Path::new("/")),
    ];
    for (proj, cwd) in spellings {
        let out = ok(&sluice(&["--project", proj, "seed"], cwd));
        assert!(out.contains("raw_orders"), "{proj}: {out}");
        ok(&sluice(&["--project", proj, "compile"], cwd));
        let out = ok(&sluice(&["--project", proj, "build"], cwd));
        assert!(out.contains("customers"), "{proj}: {out}");
        ok(&sluice(&["--project", proj, "test"], cwd));
        ok(&sluice(&["--project", proj, "lineage", "customers"], cwd));
        let out = ok(&sluice(
            &[
                "--project",
                proj,
                "sql",
                "--format",
                "csv",
                "SELECT count(*) AS n FROM main.customers",
            ],
            cwd,
        ));
        assert!(out.starts_with("n\n"), "{proj}: {out}");
        ok(&sluice(
            &["--project", proj, "history", "main.raw_orders"],
            cwd,
        ));
        // Nothing is written next to the folder the command ran in.
        assert!(!cwd.join("target").exists(), "{proj}: target/ in {cwd:?}");
        assert!(!cwd.join("warehouse").exists() || cwd == Path::new("/"));
    }
    assert!(shop.join("target/run_results.json").exists());
    assert!(shop.join("warehouse").is_dir());
}

/// From any subfolder, commands find the project upwards (as git and dbt
/// do); outside every project the commands that need one fail with an
/// error saying so, and create nothing.
#[test]
fn commands_find_the_project_upwards_or_say_there_is_none() {
    let top = tempfile::tempdir().unwrap();
    let shop = top.path().join("shop");
    copy_dir(&repo_root().join("tests/fixtures/dbt_shop"), &shop);
    let deep = shop.join("models/staging");
    ok(&sluice(&["seed"], &deep));
    let out = ok(&sluice(&["build"], &deep));
    assert!(out.contains("stg_orders"), "{out}");
    assert!(shop.join("target/run_results.json").exists());
    assert!(!deep.join("target").exists());
    let out = ok(&sluice(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM main.stg_orders",
        ],
        &deep,
    ));
    assert!(out.starts_with("n\n") && !out.contains("\n0\n"), "{out}");

    let outside = top.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    for args in [
        &["run"][..],
        &["run", "models"],
        &["build"],
        &["test"],
        &["compile"],
        &["seed"],
        &["lineage", "x"],
        &["load"],
    ] {
        let o = sluice(args, &outside);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = text(&o);
        assert!(
            err.contains("not found here or in any parent folder")
                && err.contains("needs a project")
                && err.contains("sluice init"),
            "{args:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(left.is_empty(), "created {left:?}");
    // `sql` needs no project.
    let out = ok(&sluice(
        &["sql", "--format", "csv", "SELECT 1 AS one"],
        &outside,
    ));
    assert_eq!(out, "one\n1\n");
}

/// `load --force` on the example's append source says what it would
/// duplicate; a grown file is an error naming it; `--allow-duplicates`
/// does what it says.
#[test]
fn an_append_source_never_duplicates_rows_silently() {
    let dir = example_project();
    let p = dir.path();
    ok(&sluice(&["load", "transactions"], p));
    let count = |p: &Path| {
        let o = sluice(
            &[
                "sql",
                "--format",
                "csv",
                "SELECT count(*) AS n FROM raw.transactions",
            ],
            p,
        );
        ok(&o).trim_start_matches("n\n").trim().to_string()
    };
    assert_eq!(count(p), "5000");

    let o = sluice(&["load", "--force", "transactions"], p);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = text(&o);
    assert!(
        err.contains("--force would load again 5 of its 5 files"),
        "{err}"
    );
    assert!(err.contains("(5000 rows"), "{err}");
    assert!(err.contains("--allow-duplicates"), "{err}");
    assert_eq!(count(p), "5000");

    let day = p.join("catalog/data/transactions/2026-01-01.csv");
    let mut csv = std::fs::read_to_string(&day).unwrap();
    csv.push_str("99999,1,1,1.00,EUR,2026-01-01T23:59:00Z\n");
    std::fs::write(&day, csv).unwrap();
    let o = sluice(&["load", "transactions"], p);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = text(&o);
    assert!(
        err.contains("2026-01-01.csv") && err.contains("changed since loaded"),
        "{err}"
    );
    assert_eq!(count(p), "5000");

    let out = ok(&sluice(&["load", "--allow-duplicates", "transactions"], p));
    assert!(
        out.contains("2026-01-01.csv") || out.contains("1 file"),
        "{out}"
    );
    let n: u64 = count(p).parse().unwrap();
    assert!(n > 5001, "{n}");
    ok(&sluice(&["load", "transactions"], p));
    assert_eq!(count(p), n.to_string(), "loaded once more only");
}

/// `sluice init`: a file dropped next to the skeleton's data is not swallowed
/// by its source; seeds and top-level models are built in `main`, not `raw`;
/// `build` loads the seeds its models read (and only when they changed).
#[test]
fn init_defaults_do_not_surprise() {
    let top = tempfile::tempdir().unwrap();
    ok(&sluice(&["init", "proj"], top.path()));
    let p = top.path().join("proj");
    std::fs::write(
        p.join("catalog/data/customers.csv"),
        "customer_id,name\n1,Ann\n",
    )
    .unwrap();
    let out = ok(&sluice(&["run"], &p));
    assert!(out.contains("raw.events"), "{out}");
    let out = ok(&sluice(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM raw.events",
        ],
        &p,
    ));
    assert_eq!(out, "n\n3\n");

    std::fs::create_dir_all(p.join("seeds")).unwrap();
    std::fs::write(
        p.join("seeds/kinds.csv"),
        "kind,label\nsignup,Sign-up\npurchase,Purchase\n",
    )
    .unwrap();
    std::fs::write(
        p.join("sql/labelled.sql"),
        "SELECT e.event_id, k.label FROM raw.events e JOIN {{ ref('kinds') }} k ON e.kind = k.kind\n",
    )
    .unwrap();
    let out = ok(&sluice(&["build", "-s", "labelled"], &p));
    assert!(
        out.contains("main.kinds"),
        "the seed is loaded first: {out}"
    );
    let out = ok(&sluice(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM main.labelled",
        ],
        &p,
    ));
    assert_eq!(out, "n\n3\n");
    // Unchanged, the seed is not loaded again.
    let out = ok(&sluice(&["build", "-s", "labelled"], &p));
    assert!(!out.contains("main.kinds"), "{out}");
    let out = ok(&sluice(&["history", "main.kinds", "--format", "json"], &p));
    assert_eq!(out.matches("\"version\"").count(), 1, "{out}");
}
