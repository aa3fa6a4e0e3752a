//! SQL behaviour in sqllogictest-style files: `tests/slt/*.slt`, each run in a
//! fresh local warehouse with default schema `main`.
//!
//! ```text
//! # a comment
//! statement ok
//! INSERT INTO main.t VALUES (1)
//!
//! statement error <text the error message must contain>
//! SELECT nope
//!
//! query [rowsort]
//! SELECT a, b FROM t
//! ----
//! 1 x
//! 2 NULL
//!
//! delta main.t
//! SELECT 1 AS a        -- writes the result as a new Delta table (version 0)
//! ```
//! Cells are separated by one space; NULL is `NULL`, the empty string `(empty)`.
//! `SLUICE_SLT_COMPLETE=1 cargo test --test it slt` rewrites the expected rows.

use crate::common::*;
use sluice::sql::Engine;
use std::path::Path;

#[derive(Debug)]
enum Record {
    Statement {
        sql: String,
        error: Option<String>,
    },
    Query {
        sql: String,
        rowsort: bool,
        error: Option<String>,
        expected: Vec<String>,
        /// Line range of the expected rows in the file (for --complete).
        expected_lines: (usize, usize),
    },
    Delta {
        table: String,
        sql: String,
    },
}

fn parse(text: &str) -> Vec<(usize, Record)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let header: Vec<&str> = line.split_whitespace().collect();
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        let error_text = |h: &[&str]| -> Option<String> {
            (h.get(1) == Some(&"error")).then(|| {
                line.split_once("error")
                    .map(|(_, e)| e.trim().to_string())
                    .unwrap_or_default()
            })
        };
        match header[0] {
            "statement" => out.push((
                start,
                Record::Statement {
                    sql,
                    error: error_text(&header),
                },
            )),
            "delta" => out.push((
                start,
                Record::Delta {
                    table: header.get(1).copied().unwrap_or_default().to_string(),
                    sql,
                },
            )),
            "query" => {
                let error = error_text(&header);
                let rowsort = header.contains(&"rowsort");
                let mut expected = Vec::new();
                let mut lines_range = (i, i);
                if i < lines.len() && lines[i].trim() == "----" {
                    i += 1;
                    let first = i;
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        expected.push(lines[i].trim_end().to_string());
                        i += 1;
                    }
                    lines_range = (first, i);
                }
                out.push((
                    start,
                    Record::Query {
                        sql,
                        rowsort,
                        error,
                        expected,
                        expected_lines: lines_range,
                    },
                ));
            }
            other => panic!("line {}: unknown record `{other}`", start + 1),
        }
    }
    out
}

/// Data file names in plans change with every run: `file_groups={...}`.
fn mask_files(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("file_groups={") {
        out.push_str(&rest[..i + "file_groups={".len()]);
        rest = &rest[i + "file_groups={".len()..];
        // The group list nests braces once per group: skip to the matching `}`.
        let mut depth = 1;
        let mut end = rest.len();
        for (j, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str("...");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn result_rows(engine: &Engine, sql: &str) -> Result<Vec<String>, String> {
    let batches = engine.query(sql).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    let col = b.column(c);
                    if col.is_null(r) {
                        "NULL".to_string()
                    } else {
                        let v = arrow::util::display::array_value_to_string(col, r)
                            .unwrap_or_else(|e| format!("<{e}>"))
                            .trim_end()
                            .to_string();
                        let v = mask_files(&v);
                        if v.is_empty() {
                            "(empty)".into()
                        } else {
                            v
                        }
                    }
                })
                .collect();
            // A multi-line cell (EXPLAIN plans) becomes several lines.
            out.extend(cells.join(" ").lines().map(|l| l.trim_end().to_string()));
        }
    }
    Ok(out)
}

async fn run_file(path: &Path, complete: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[project]\nname = \"slt\"\n\n[warehouse]\nuri = \"warehouse\"\ndefault_schema = \"main\"\n",
    )
    .unwrap();
    let project = sluice::project::Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    let engine = engine(&project, &wh).await;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut failures = Vec::new();
    let mut rewrites: Vec<((usize, usize), Vec<String>)> = Vec::new();
    for (line, rec) in parse(&text) {
        let at = format!("{name}:{}", line + 1);
        match rec {
            Record::Statement { sql, error } => {
                let r = match engine.sql(&sql).await {
                    Ok(df) => df.collect().await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match (r, error) {
                    (Ok(()), None) => {}
                    (Err(e), None) => failures.push(format!("{at}: statement failed: {e}")),
                    (Ok(()), Some(want)) => {
                        failures.push(format!("{at}: expected an error containing `{want}`"))
                    }
                    (Err(e), Some(want)) if !e.contains(&want) => {
                        failures.push(format!("{at}: error `{e}` does not contain `{want}`"))
                    }
                    _ => {}
                }
            }
            Record::Delta { table, sql } => {
                let (schema, t) = table.split_once('.').unwrap();
                let batches = engine.query(&sql).await.unwrap();
                let url = wh.table_url(schema, t).unwrap();
                wh.table_handle(&url)
                    .unwrap()
                    .write(batches)
                    .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
                    .await
                    .unwrap_or_else(|e| panic!("{at}: writing {table}: {e}"));
            }
            Record::Query {
                sql,
                rowsort,
                error,
                expected,
                expected_lines,
            } => match (result_rows(&engine, &sql).await, error) {
                (Ok(mut got), None) => {
                    if rowsort {
                        got.sort();
                    }
                    if got != expected {
                        if complete {
                            rewrites.push((expected_lines, got));
                        } else {
                            failures.push(format!(
                                "{at}: query result differs\n--- expected\n{}\n--- got\n{}",
                                expected.join("\n"),
                                got.join("\n")
                            ));
                        }
                    }
                }
                (Err(e), None) => failures.push(format!("{at}: query failed: {e}")),
                (Ok(_), Some(want)) => {
                    failures.push(format!("{at}: expected an error containing `{want}`"))
                }
                (Err(e), Some(want)) if !e.contains(&want) => {
                    failures.push(format!("{at}: error `{e}` does not contain `{want}`"))
                }
                _ => {}
            },
        }
    }
    if complete && !rewrites.is_empty() {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for ((a, b), got) in rewrites.into_iter().rev() {
            lines.splice(a..b, got);
        }
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let complete = std::env::var("SLUICE_SLT_COMPLETE").is_ok();
    let dir = repo_root().join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_file(f, complete).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
