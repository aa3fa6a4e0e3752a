//! `sluice sql` through the real binary: statements from the command line,
//! files and standard input, the footer after a table, the row cap, the
//! unknown-table suggestion, comments after the last `;`, a closed pipe, and
//! the interactive shell on a pseudo-terminal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sluice_in(cwd: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn sluice(cwd: &Path, args: &[&str]) -> Output {
    sluice_in(cwd, args, "")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `line` is a footer: `N rows (S.SSS s)` with `count` as written.
fn is_footer(line: &str, count: &str) -> bool {
    let Some(rest) = line.strip_prefix(&format!("{count} (")) else {
        return false;
    };
    let Some(secs) = rest.strip_suffix(" s)") else {
        return false;
    };
    secs.parse::<f64>().is_ok() && secs.split('.').nth(1).map(str::len) == Some(3)
}

/// A project whose warehouse holds `raw.orders`, `raw.customers` and
/// `marts.daily_revenue`, with `raw` as its default schema.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = sluice(dir.path(), &["init", "p"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = dir.path().join("p");
    // Unqualified names resolve in `raw` here (`sluice init` writes `main`).
    let toml = std::fs::read_to_string(p.join("sluice.toml")).unwrap();
    let toml = toml.replace("default_schema = \"main\"", "default_schema = \"raw\"");
    assert!(toml.contains("default_schema = \"raw\""), "{toml}");
    std::fs::write(p.join("sluice.toml"), toml).unwrap();
    let o = sluice(
        &p,
        &[
            "sql",
            "CREATE TABLE raw.orders AS SELECT * FROM (VALUES (1, 10), (2, 20), (3, 30)) t(id, amount);
             CREATE TABLE raw.customers AS SELECT * FROM (VALUES (1, 'ann')) t(id, name);
             CREATE TABLE marts.daily_revenue AS SELECT 1 AS day, 60 AS revenue;",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    dir
}

#[test]
fn statements_come_from_the_command_line_a_file_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let script = "-- a script\nCREATE VIEW main.v AS SELECT 1 AS x UNION ALL SELECT 2;\n\nSELECT sum(x) AS s\n  FROM main.v;\n";

    // Standard input (not a terminal): the script; csv prints the last result
    // only. (Outside a project the warehouse is in memory, for one run.)
    let o = sluice_in(p, &["sql", "--format", "csv"], script);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "s\n3\n");
    assert_eq!(stderr(&o), "");

    // -f FILE, and -f - for standard input.
    std::fs::write(p.join("q.sql"), script).unwrap();
    let o = sluice(p, &["sql", "-f", "q.sql", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "[{\"s\":3}]\n");
    let o = sluice_in(p, &["sql", "-f", "-", "--format", "csv"], script);
    assert_eq!(stdout(&o), "s\n3\n", "{}", stderr(&o));

    // A failing statement stops the run and is named by its file and line.
    std::fs::write(
        p.join("bad.sql"),
        "SELECT 1;\n\n-- next\nSELEC 2;\nSELECT 3;\n",
    )
    .unwrap();
    let o = sluice(p, &["sql", "-f", "bad.sql"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("error: bad.sql:4: syntax error: "), "{e}");
    assert!(!stdout(&o).contains("| 3 "), "{}", stdout(&o));
    let o = sluice_in(p, &["sql"], "SELECT 1;\nSELECT * FROM nope;\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: <stdin>:2: table "),
        "{}",
        stderr(&o)
    );
    let o = sluice(p, &["sql", "SELECT 1; SELECT 1/0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: statement 2 of 2: division by zero"),
        "{}",
        stderr(&o)
    );

    // A file that is not there is a user error; a query and -f together are refused.
    let o = sluice(p, &["sql", "-f", "missing.sql"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: cannot read `missing.sql`: no such file\n"
    );
    let o = sluice(p, &["sql", "SELECT 1", "-f", "q.sql"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn a_table_ends_with_its_row_count_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let o = sluice(p, &["sql", "SELECT * FROM (VALUES (1), (2), (3)) t(x)"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..7],
        ["+---+", "| x |", "+---+", "| 1 |", "| 2 |", "| 3 |", "+---+"]
    );
    assert!(is_footer(lines[7], "3 rows"), "{out}");
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(stderr(&o), "");

    let o = sluice(p, &["sql", "SELECT 1 AS x; SELECT 1 AS y WHERE false"]);
    let out = stdout(&o);
    let footers: Vec<&str> = out.lines().filter(|l| !l.starts_with(['+', '|'])).collect();
    assert_eq!(footers.len(), 2, "{out}");
    assert!(is_footer(footers[0], "1 row"), "{out}");
    assert!(is_footer(footers[1], "0 rows"), "{out}");

    // A statement without a result prints nothing; csv and json print only rows.
    let o = sluice(
        p,
        &[
            "sql",
            "CREATE VIEW main.v AS SELECT 1 AS x; DROP VIEW main.v",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    for (format, want) in [("csv", "x\n1\n"), ("json", "[{\"x\":1}]\n")] {
        let o = sluice(p, &["sql", "SELECT 1 AS x", "--format", format]);
        assert_eq!(stdout(&o), want, "{format}");
        assert_eq!(stderr(&o), "", "{format}");
    }
}

#[test]
fn max_rows_caps_what_is_printed_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let q = "SELECT value AS n FROM generate_series(1, 100) ORDER BY value";

    // A table shows 40 rows by default: the first 20, `...`, the last 20.
    let o = sluice(p, &["sql", q]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    let mut want: Vec<String> = (1..=20).map(|n| format!("| {n:<3} |")).collect();
    want.push("| ... |".into());
    want.extend((81..=100).map(|n| format!("| {n:<3} |")));
    let mut expected = vec!["| n   |".to_string()];
    expected.extend(want);
    assert_eq!(rows, expected, "{out}");
    let footer = out.lines().last().unwrap();
    assert!(footer.starts_with("100 rows, 40 shown ("), "{footer}");
    assert!(footer.ends_with(" s); --max-rows 0 shows all"), "{footer}");

    let o = sluice(p, &["sql", q, "--max-rows", "0"]);
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("| ")).count(),
        101,
        "{out}"
    );
    assert!(is_footer(out.lines().last().unwrap(), "100 rows"), "{out}");
    let o = sluice(p, &["sql", q, "--max-rows", "4"]);
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        rows,
        ["| n   |", "| 1   |", "| 2   |", "| ... |", "| 99  |", "| 100 |"]
    );
    assert!(out.contains("\n100 rows, 4 shown ("), "{out}");

    // csv and json are never cut unless asked, and then say so on stderr.
    let o = sluice(p, &["sql", q, "--format", "csv"]);
    assert_eq!(stdout(&o).lines().count(), 101);
    assert_eq!(stderr(&o), "");
    let o = sluice(p, &["sql", q, "--format", "csv", "--max-rows", "3"]);
    assert_eq!(stdout(&o), "n\n1\n2\n3\n");
    assert!(
        stderr(&o).starts_with("100 rows, 3 shown (")
            && stderr(&o).ends_with("--max-rows 0 shows all\n"),
        "{}",
        stderr(&o)
    );
    let o = sluice(p, &["sql", q, "--format", "json", "--max-rows", "2"]);
    assert_eq!(stdout(&o), "[{\"n\":1},{\"n\":2}]\n");
}

#[test]
fn an_unknown_table_gets_the_closest_name() {
    let dir = project();
    let p = dir.path().join("p");
    for (query, hint) in [
        (
            "SELECT * FROM orderz",
            "table `orderz` not found (did you mean `orders`?)",
        ),
        (
            "SELECT * FROM raw.customer",
            "table `raw.customer` not found (did you mean `raw.customers`?)",
        ),
        (
            "SELECT * FROM daily_revenue",
            "table `daily_revenue` not found (did you mean `marts.daily_revenue`?)",
        ),
        (
            "SELECT * FROM mart.daily_revenue",
            "table `mart.daily_revenue` not found (did you mean `marts.daily_revenue`?)",
        ),
        (
            "SELECT o.id FROM orders o JOIN customrs c ON o.id = c.id",
            "table `customrs` not found (did you mean `customers`?)",
        ),
    ] {
        let o = sluice(&p, &["sql", query]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{query}: {e}");
        assert_eq!(e, format!("error: {hint}\n"), "{query}");
    }
    // Nothing close: the general hint.
    let o = sluice(&p, &["sql", "SELECT * FROM zzz"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(!e.contains("did you mean"), "{e}");
    assert!(e.contains("information_schema.tables"), "{e}");
}

#[test]
fn comments_after_the_last_semicolon_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let o = sluice(p, &["sql", "SELECT 1 AS x; -- done", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "x\n1\n");
    let o = sluice_in(
        p,
        &["sql", "--format", "csv"],
        "SELECT 1 AS x;\n/* the end; */\n-- really\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "x\n1\n");
    // Only comments: nothing to run, nothing printed.
    let o = sluice_in(p, &["sql"], "-- nothing yet\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

/// `sluice sql ... | head -1`: the command ends quietly, exit 0, for large
/// results in every format (a table with every row printed too).
#[test]
fn a_closed_pipe_ends_quietly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    for args in ["--format csv", "--format json", "--max-rows 0", ""] {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "\"$0\" sql 'SELECT * FROM generate_series(1, 200000)' {args} | head -1; echo \"status=${{PIPESTATUS[0]}}\""
            ))
            .arg(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir.path())
            .env_remove("SLUICE_WAREHOUSE")
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.ends_with("status=0\n"), "{args}: {out} {}", stderr(&o));
        assert_eq!(out.lines().count(), 2, "{args}: {out}");
        assert_eq!(stderr(&o), "", "{args}");
    }
}

/// The shell on a pseudo-terminal (util-linux `script`): a statement over
/// two lines, Ctrl-C dropping the input under way, a dot command, an error
/// that does not end the shell, Tab completion, the history file, `.quit`.
#[test]
fn the_interactive_shell_on_a_terminal() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) here");
        return;
    }
    let dir = project();
    let p = dir.path().join("p");
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args(["-q", "-e", "-f", "-c"])
        .arg(format!("'{}' sql", env!("CARGO_BIN_EXE_sluice")))
        .arg("/dev/null")
        .current_dir(&p)
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .env_remove("SLUICE_WAREHOUSE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let mut reader = child.stdout.take().unwrap();
    let collected = screen.clone();
    let reading = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut term = Typist {
        stdin: child.stdin.take().unwrap(),
        screen: screen.clone(),
        seen: 0,
    };
    term.expect("sluice> ");
    term.send("SELECT sum(amount)\r");
    term.expect("   ...> ");
    term.send("  AS total FROM orders;\r");
    term.expect("1 row (");
    term.expect("sluice> ");
    term.send("SELECT 'dropped'\r");
    term.expect("   ...> ");
    term.send("\x03");
    term.expect("sluice> ");
    term.send(".tables\r");
    term.expect("3 rows (");
    term.expect("sluice> ");
    term.send("SELECT * FROM ordrs;\r");
    term.expect("(did you mean `orders`?)");
    term.expect("sluice> ");
    // Tab completes a table name.
    term.send("SELECT count(*) AS customer_count FROM cust\t");
    term.expect("FROM customers");
    term.send(";\r");
    term.expect("1 row (");
    term.expect("sluice> ");
    term.send(".quit\r");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the shell did not end:\n{}", screen.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    reading.join().unwrap();
    let screen = screen.lock().unwrap().clone();
    assert!(status.success(), "{status}: {screen}");
    assert!(screen.contains("| 60    |"), "{screen}");
    assert!(screen.contains("1 row ("), "{screen}");
    assert!(!screen.contains("| dropped"), "{screen}");
    assert!(
        screen.contains("| marts  | daily_revenue | table |"),
        "{screen}"
    );
    assert!(
        screen.contains("error: table `ordrs` not found (did you mean `orders`?)"),
        "{screen}"
    );
    let history = std::fs::read_to_string(home.path().join(".sluice_history")).unwrap();
    assert!(history.contains("SELECT sum(amount)"), "{history}");
    assert!(history.contains("AS total FROM orders;"), "{history}");
    assert!(history.contains(".tables"), "{history}");
    assert!(history.contains("FROM customers;"), "{history}");
    assert!(screen.contains("| customer_count |"), "{screen}");
    assert!(!history.contains("dropped"), "{history}");
}

/// Types into a pseudo-terminal and watches its screen.
struct Typist {
    stdin: std::process::ChildStdin,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    /// How much of the screen earlier expectations have matched.
    seen: usize,
}

impl Typist {
    fn send(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits until `text` shows after what was expected before.
    fn expect(&mut self, text: &str) {
        let start = std::time::Instant::now();
        loop {
            {
                let screen = self.screen.lock().unwrap();
                if let Some(at) = screen.get(self.seen..).and_then(|s| s.find(text)) {
                    self.seen += at + text.len();
                    return;
                }
                if start.elapsed() > std::time::Duration::from_secs(60) {
                    panic!("no {text:?} on the screen:\n{screen}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
