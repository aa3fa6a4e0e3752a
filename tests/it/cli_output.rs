//! What the `sluice` binary prints for people and programs (issue 20): a
//! run's node lines as they end, its last line and JSON document, `-v`,
//! `--help` and the README's command list, and the server's log of failed
//! queries and logins.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sluice(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUICE_WAREHOUSE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `20260131T120000Z-1a2b3c4d`: the one id format of loads and runs.
fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &s[15..17] == "Z-"
        && s[17..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

const LONG: &str = "a_model_whose_name_is_much_longer_than_the_others_are";

/// A project with a source that rejects 2 rows, and four models: `ok`, `bad`
/// (fails), `after_bad` (reads `bad`) and one with a long name.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sluice.toml"),
        "[project]\nname = 't'\nmodels = 'models'\n\n[warehouse]\nuri = 'warehouse'\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("catalog")).unwrap();
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    std::fs::write(
        p.join("catalog/sources.toml"),
        "[[source]]\nname = \"events\"\nformat = \"csv\"\nlocation = \"data/*.csv\"\n\n\
         [[source.columns]]\nname = \"id\"\ntype = \"bigint\"\nnot_null = true\n",
    )
    .unwrap();
    std::fs::write(p.join("data/e.csv"), "id\n1\n2\nx\n3\ny\n").unwrap();
    std::fs::write(p.join("models/ok.sql"), "select 1 as x").unwrap();
    std::fs::write(p.join("models/bad.sql"), "select cast('x' as int) as y").unwrap();
    std::fs::write(p.join("models/after_bad.sql"), "select y from bad").unwrap();
    std::fs::write(
        p.join(format!("models/{LONG}.sql")),
        "select count(*) as n from raw.events",
    )
    .unwrap();
    dir
}

/// The lines of a run's nodes (`N of M ...`).
fn node_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|n| n.parse::<usize>().is_ok()) && w.next() == Some("of")
        })
        .collect()
}

/// `sluice run` not on a terminal: the load's summary, the run's header, a
/// line per node as it ends (numbered in that order, columns aligned past the
/// longest name, a skipped node naming the failure), the failure's message,
/// and a last line with dbt's counts, the time, the load's time and rows
/// rejected. Loads and runs share one id format.
#[test]
fn run_prints_each_node_as_it_ends() {
    let dir = project();
    let o = sluice(&["run", "--threads", "1"], dir.path());
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();

    let load_id = lines[0].strip_prefix("load ").unwrap_or_default();
    assert!(is_id(load_id), "{out}");
    let header = lines
        .iter()
        .find(|l| l.starts_with("run "))
        .unwrap_or_else(|| panic!("no header: {out}"));
    let run_id = header[4..].split(':').next().unwrap_or_default();
    assert!(is_id(run_id), "{header}");
    assert!(header.ends_with(": 4 models, 0 tests"), "{header}");

    let nodes = node_lines(&out);
    assert_eq!(nodes.len(), 4, "{out}");
    for (i, l) in nodes.iter().enumerate() {
        assert!(l.starts_with(&format!("{} of 4 ", i + 1)), "{out}");
    }
    let line_of = |id: &str| {
        *nodes
            .iter()
            .find(|l| l.split_whitespace().nth(4) == Some(id))
            .unwrap_or_else(|| panic!("{id} missing: {out}"))
    };
    assert!(line_of("raw.ok").contains(" OK    raw.ok ..."), "{out}");
    assert!(line_of("raw.bad").contains(" ERROR raw.bad ..."), "{out}");
    let skipped = line_of("raw.after_bad");
    assert!(skipped.contains(" SKIP  raw.after_bad ..."), "{out}");
    assert!(
        skipped.ends_with("skipped because `raw.bad` failed"),
        "{skipped}"
    );
    // The skipped node ends after the failure that skipped it.
    assert!(
        nodes.iter().position(|l| *l == skipped)
            > nodes.iter().position(|l| *l == line_of("raw.bad"))
    );
    // The long name is whole, and every line's columns start where its ends.
    let long = line_of(&format!("raw.{LONG}"));
    assert!(long.contains(" 1 row "), "{long}");
    let column = |l: &str| {
        let dots = l.find(" ...").unwrap();
        dots + l[dots..].find(|c: char| c != ' ' && c != '.').unwrap()
    };
    for l in &nodes {
        assert_eq!(column(l), column(long), "{out}");
    }

    assert!(out.contains("\nERROR raw.bad (models/bad.sql):\n"), "{out}");
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("Done. PASS=2 WARN=0 ERROR=1 SKIP=1 TOTAL=4 in "),
        "{out}"
    );
    assert!(last.contains("s (load "), "{last}");
    assert!(last.ends_with("s: 3 rows loaded, 2 rejected)"), "{last}");
    assert!(
        stderr(&o).contains("2 of 4 nodes did not succeed"),
        "{}",
        stderr(&o)
    );
}

/// `--format json`: stdout is one document (the nodes in the order they
/// ended, dbt's counts, the load's time and rows rejected); the node lines
/// go to stderr, and nowhere with `--progress never`.
#[test]
fn run_json_has_the_load_and_the_counts() {
    let dir = project();
    let o = sluice(&["run", "--threads", "1", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert!(is_id(j["run_id"].as_str().unwrap()), "{j}");
    assert!(is_id(j["load"]["load_id"].as_str().unwrap()), "{j}");
    assert_eq!(j["load"]["rows_loaded"], 3, "{j}");
    assert_eq!(j["load"]["rows_rejected"], 2, "{j}");
    assert!(j["load"]["seconds"].as_f64().unwrap() > 0.0, "{j}");
    assert_eq!(j["load"]["sources"][0]["table"], "raw.events", "{j}");
    assert_eq!(
        j["totals"],
        serde_json::json!({"pass": 2, "warn": 0, "error": 1, "skip": 1, "total": 4})
    );
    let order: Vec<&str> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let at = |id: &str| order.iter().position(|x| *x == id).unwrap();
    assert!(at("raw.after_bad") > at("raw.bad"), "{order:?}");
    assert_eq!(node_lines(&stderr(&o)).len(), 4, "{}", stderr(&o));

    let o = sluice(
        &["run", "models", "--format", "json", "--progress", "never"],
        dir.path(),
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j.get("load").is_none(), "`run models` loads nothing: {j}");
    assert_eq!(node_lines(&stderr(&o)).len(), 0, "{}", stderr(&o));
}

/// `-v` shows sluice's own debug lines and no line of the libraries.
#[test]
fn verbose_shows_sluices_debug_lines_only() {
    let dir = project();
    let o = sluice(&["-v", "run", "--threads", "1"], dir.path());
    let err = stderr(&o);
    // tracing's lines: `<time> <LEVEL> <target>: <message>`.
    let logged: Vec<(&str, &str)> = err
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, level, target) = (w.next()?, w.next()?, w.next()?);
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .contains(&level)
                .then_some((level, target))
        })
        .collect();
    assert!(
        logged
            .iter()
            .any(|(level, t)| *level == "DEBUG" && t.starts_with("sluice")),
        "{err}"
    );
    assert!(err.contains("model raw.ok starts"), "{err}");
    for (level, target) in &logged {
        assert!(
            target.starts_with("sluice") || matches!(*level, "WARN" | "ERROR"),
            "a library's {level} line with -v: {err}"
        );
    }
    // Without -v: no debug line.
    let o = sluice(&["run", "models"], dir.path());
    assert!(!stderr(&o).contains("DEBUG"), "{}", stderr(&o));
}

/// The help of a command (`&["features", "show"]`).
fn help(command: &[&str]) -> String {
    let mut args = command.to_vec();
    args.push("--help");
    let dir = tempfile::tempdir().unwrap();
    let o = sluice(&args, dir.path());
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A help's options: `--long` (or `-s` alone) → whether it has a
/// description. Positional arguments are left out.
fn options(help: &str) -> BTreeMap<String, bool> {
    let lines: Vec<&str> = help.lines().collect();
    let mut out = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if !l.starts_with("  ") || !t.starts_with('-') || t.starts_with("- ") {
            continue;
        }
        // `-s, --select <SPEC>...  Models to ...` or `--exclude <SPEC>...`.
        let mut words = t.split_whitespace().peekable();
        let mut name = String::new();
        while let Some(w) = words.peek() {
            let bare = w.trim_end_matches(',').trim_end_matches("...");
            if w.starts_with("--") || (w.starts_with('-') && name.is_empty()) {
                name = bare.to_string();
            } else if !w.starts_with('<') {
                break;
            }
            words.next();
        }
        let described = words.next().is_some()
            || lines
                .get(i + 1)
                .is_some_and(|n| n.len() - n.trim_start().len() > l.len() - t.len());
        out.insert(name, described);
    }
    out
}

/// A help's subcommands (the `Commands:` section), without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

/// Every command and its help, `features` expanded into its subcommands.
fn commands() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in subcommands(&help(&[])) {
        let h = help(&[&c]);
        let subs = subcommands(&h);
        if subs.is_empty() {
            out.push((c, h));
        } else {
            for s in subs {
                out.push((format!("{c} {s}"), help(&[&c, &s])));
            }
        }
    }
    out
}

/// `--help`: the global options are described once (in `sluice --help`), a
/// command lists only its own options, every option has a description, and
/// a command's last line names the global options it honours.
#[test]
fn help_describes_each_option_once_where_it_applies() {
    let top = help(&[]);
    let globals = options(&top);
    for g in ["--project", "--warehouse", "--progress", "--verbose"] {
        assert_eq!(globals.get(g), Some(&true), "{g}: {top}");
        assert_eq!(top.matches(g).count(), 1, "{g} twice: {top}");
    }
    let all = commands();
    assert!(all.len() >= 16, "{all:?}");
    for (name, h) in &all {
        let own = options(h);
        for (option, described) in &own {
            assert!(described, "`{name}`: {option} has no description:\n{h}");
            assert!(
                !["--project", "--warehouse", "--progress", "--verbose"].contains(&option.as_str()),
                "`{name}` describes the global {option} again:\n{h}"
            );
        }
        let footer = h
            .lines()
            .find(|l| l.starts_with("Global options: "))
            .unwrap_or_else(|| panic!("`{name}` names no global option:\n{h}"));
        let honours = |o: &str| footer.contains(o);
        match name.as_str() {
            "init" | "hash-password" => {
                assert!(!honours("--project") && !honours("--warehouse"), "{footer}")
            }
            _ => assert!(
                honours("--project DIR") && honours("--warehouse URI"),
                "{name}: {footer}"
            ),
        }
        let bars = ["load", "seed", "run", "build", "test"].contains(&name.as_str());
        assert_eq!(honours("--progress"), bars, "{name}: {footer}");
        assert!(honours("-v"), "{footer}");
    }
    let own = |c: &str| options(&all.iter().find(|(n, _)| n == c).unwrap().1);
    // Options a command does not honour are not offered.
    assert!(!own("test").contains_key("--full-refresh"));
    assert!(!own("compile").contains_key("--threads"));
    assert!(own("build").contains_key("--full-refresh"));
}

/// The possible values of a command's `--format`, from clap's refusal.
fn formats(command: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = command.split(' ').collect();
    // Commands with a required argument get one.
    match command {
        "lineage" | "history" | "features show" | "optimize" => args.push("x"),
        "vacuum" => args.extend(["x", "--retain", "7d"]),
        "sql" => args.push("SELECT 1"),
        "features historical" => args.extend(["--entities", "e", "--features", "f"]),
        _ => {}
    }
    args.extend(["--format", "no-such-format"]);
    let o = sluice(&args, dir.path());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    let values = e
        .split("[possible values: ")
        .nth(1)
        .and_then(|v| v.split(']').next())
        .unwrap_or_else(|| panic!("{args:?}: {e}"));
    values.split(", ").map(String::from).collect()
}

/// What each `--format` offers is what the command prints.
#[test]
fn each_format_offers_what_the_command_prints() {
    let summary = ["table", "json"];
    let text = ["text", "json"];
    let rows = ["table", "csv", "json"];
    for (command, expected) in [
        ("load", &summary[..]),
        ("seed", &summary),
        ("run", &summary),
        ("build", &summary),
        ("test", &summary),
        ("materialize", &summary),
        ("features list", &summary),
        ("optimize", &summary),
        ("vacuum", &summary),
        ("compile", &text),
        ("features show", &text),
        ("lineage", &["text", "dot", "json"]),
        ("sql", &rows),
        ("history", &rows),
        ("features historical", &rows),
    ] {
        assert_eq!(formats(command), expected, "{command}");
    }
}

/// The README's command list and `--help` agree: the same commands, each
/// README entry's options exist in the command's help, every option of a
/// command is in its entry, and the `--format` values are the same.
#[test]
fn readme_command_list_matches_help() {
    let readme = std::fs::read_to_string(crate::common::repo_root().join("README.md")).unwrap();
    let block = readme
        .split("## Commands\n\n```\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("README: a code block right after `## Commands`");
    let mut lines = block.lines();
    let usage = lines.next().unwrap_or_default();
    assert!(usage.starts_with("sluice "), "{usage}");

    let all = commands();
    let groups: BTreeSet<&str> = all
        .iter()
        .filter_map(|(n, _)| n.split_once(' ').map(|(g, _)| g))
        .collect();
    // README entries: `  name ...` then more indented continuation lines.
    let mut entries: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.trim().is_empty() {
            continue;
        }
        let indent = l.len() - l.trim_start().len();
        let mut words = l.split_whitespace();
        if indent == 2 {
            let first = words.next().unwrap_or_default();
            let name = if groups.contains(first) {
                format!("{first} {}", words.next().unwrap_or_default())
            } else {
                first.to_string()
            };
            entries.push((name, l.to_string()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push('\n');
            text.push_str(l);
        }
    }
    let readme_names: BTreeSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    let help_names: BTreeSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(readme_names, help_names, "README commands vs --help");

    let mentioned = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| c.is_whitespace() || "[]|/".contains(c))
            .filter(|w| w.starts_with('-') && w.len() > 1 && !w.starts_with("---"))
            .map(|w| w.trim_end_matches("...").to_string())
            .collect()
    };
    let top = options(&help(&[]));
    for o in mentioned(usage) {
        assert!(
            top.contains_key(&o) || o == "-v",
            "README usage: {o} not in --help"
        );
    }
    for (name, text) in &entries {
        let h = &all.iter().find(|(n, _)| n == name).unwrap().1;
        let own = options(h);
        let in_readme = mentioned(text);
        for o in &in_readme {
            let short = h.contains(&format!("  {o}, --"));
            assert!(
                own.contains_key(o) || short,
                "README: `{name}` has no option {o}:\n{h}"
            );
        }
        for o in own.keys().filter(|o| *o != "--help" && *o != "-h") {
            assert!(
                in_readme.contains(o),
                "README: the entry of `{name}` does not mention {o}"
            );
        }
        if let Some(values) = text
            .split("--format ")
            .nth(1)
            .and_then(|v| v.split(']').next())
        {
            assert_eq!(
                values.split('|').collect::<Vec<_>>(),
                formats(name),
                "README: --format of `{name}`"
            );
        }
    }
}

/// The real server, as a process: a failing query (unknown table, bad SQL)
/// is logged at info, a wrong password, an unknown user and a bad token at
/// warn, each with the user, the client's address and the reason; no
/// password or token is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_logs_failed_queries_and_logins() {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let hash = sluice::server::hash_password("right-pw");
    std::fs::write(
        p.join("sluice.toml"),
        format!(
            "[project]\nname = 't'\n\n[warehouse]\nuri = 'warehouse'\n\n\
             [[server.users]]\nname = 'ann'\npassword_hash = '{hash}'\n"
        ),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--port", "0"])
        .current_dir(p)
        .env_remove("SLUICE_WAREHOUSE")
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_USER")
        .env_remove("SLUICE_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .rsplit("grpc://")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{first}");

    let connect = || async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    };
    let mut c = connect().await;
    assert!(c.handshake("ann", "wrong-pw").await.is_err());
    assert!(c.handshake("bob", "right-pw").await.is_err());
    c.set_token("not-a-token".into());
    assert!(c.execute("SELECT 1".into(), None).await.is_err());
    let mut c = connect().await;
    c.handshake("ann", "right-pw").await.unwrap();
    let token = c.token().cloned().unwrap();
    assert!(c
        .execute("SELECT * FROM main.no_such_table".into(), None)
        .await
        .is_err());
    assert!(c.execute("SELEC 1".into(), None).await.is_err());
    // Planned, then failing in DoGet while it runs.
    let info = c
        .execute(
            "SELECT CAST(x AS INT) AS n FROM (VALUES ('1'), ('oops')) t(x)".into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let fetched = match c.do_get(ticket).await {
        Ok(stream) => futures::TryStreamExt::try_collect::<Vec<_>>(stream)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(fetched.is_err());
    assert!(c.execute("SELECT 1 AS ok".into(), None).await.is_ok());

    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = |level: &str, message: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(&format!(" {level} ")) && l.contains(message))
            .map(String::from)
            .collect()
    };
    let refused = lines("WARN", "authentication failed");
    assert_eq!(refused.len(), 3, "{log}");
    for l in &refused {
        assert!(l.contains("peer=127.0.0.1:"), "{l}");
    }
    assert!(
        refused[0].contains("user=ann") && refused[0].contains("wrong user name or password"),
        "{log}"
    );
    assert!(refused[1].contains("user=bob"), "{log}");
    assert!(
        refused[2].contains("user=-") && refused[2].contains("unknown bearer token"),
        "{log}"
    );
    let failed = lines("INFO", "query failed");
    assert_eq!(failed.len(), 3, "{log}");
    for l in &failed {
        assert!(
            l.contains("user=ann") && l.contains("peer=127.0.0.1:"),
            "{l}"
        );
    }
    assert!(
        failed[0].contains("no_such_table")
            && failed[0].contains("sql=SELECT * FROM main.no_such_table"),
        "{log}"
    );
    assert!(
        failed[1].contains("reason=") && failed[1].contains("sql=SELEC 1"),
        "{log}"
    );
    assert!(
        failed[2].contains(r#"outcome="failed""#) && failed[2].contains("oops"),
        "{log}"
    );
    for secret in ["wrong-pw", "right-pw", token.as_str(), "not-a-token"] {
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
}
