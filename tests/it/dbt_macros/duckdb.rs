//! Differential: the date macros against DuckDB on seeded random timestamps.

use super::*;

/// `python3` with the `duckdb` module (tests/run.sh puts the venv's first on
/// PATH), or why it cannot be used.
fn duckdb_python() -> Result<String, String> {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    match std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "`{python} -c 'import duckdb'` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `{python}`: {e}")),
    }
}

/// Runs `sql` in DuckDB; each row as `a|b` (NULL as "NULL").
fn duckdb_rows(python: &str, sql: &str) -> Vec<String> {
    use std::io::Write;
    let script = "import sys, duckdb\n\
                  for r in duckdb.connect().execute(sys.stdin.read()).fetchall():\n\
                  \x20   print('|'.join('NULL' if v is None else str(v) for v in r))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "duckdb failed on\n{}...\n{}",
        &sql[..sql.len().min(300)],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Seeded pseudo-random numbers (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn timestamp_literal(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap();
    format!("timestamp '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// Pairs of timestamps from 1900 to 2100: far apart, or close (days, hours,
/// seconds, microseconds) so that boundaries are crossed by a little.
fn random_pairs(seed: u64, n: usize) -> Vec<(String, String)> {
    const Y1900: i64 = -2_208_988_800_000_000;
    const Y2100: i64 = 4_102_444_800_000_000;
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let a = rng.range(Y1900, Y2100);
            // Whole seconds, whole days too, as real data often is.
            let a = match i % 4 {
                0 => a - a.rem_euclid(1_000_000),
                1 => a - a.rem_euclid(86_400_000_000),
                _ => a,
            };
            let spread: i64 = [
                Y2100 - Y1900,
                40 * 86_400_000_000,
                3 * 3_600_000_000,
                3_000_000,
                3_000,
            ][i % 5];
            let b = (a + rng.range(-spread, spread)).clamp(Y1900, Y2100);
            (timestamp_literal(a), timestamp_literal(b))
        })
        .collect()
}

fn values_of(pairs: &[(String, String)]) -> String {
    let rows: Vec<String> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, b))| format!("({i}, {a}, {b})"))
        .collect();
    format!("(values {}) t(id, a, b)", rows.join(", "))
}

/// One query per side, a column per datepart; `ours`/`theirs` map a part to
/// the expression. Rows compared cell by cell; differences appended to `failures`.
#[allow(clippy::too_many_arguments)]
async fn compare_columns(
    e: &Engine,
    python: &str,
    what: &str,
    from: &str,
    parts: &[&str],
    ours: impl Fn(&str) -> String,
    theirs: impl Fn(&str) -> String,
    rows: &[String],
    failures: &mut Vec<String>,
) {
    let cols = |f: &dyn Fn(&str) -> String| {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} as c{i}", f(p)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mine = rows_of(
        e,
        &format!("select id, {} from {from} order by id", cols(&ours)),
    )
    .await;
    let duck = duckdb_rows(
        python,
        &format!("select id, {} from {from} order by id", cols(&theirs)),
    );
    assert_eq!(
        (mine.len(), duck.len()),
        (rows.len(), rows.len()),
        "{what}: row counts"
    );
    for ((m, d), row) in mine.iter().zip(&duck).zip(rows) {
        for ((mv, dv), part) in m.split('|').skip(1).zip(d.split('|').skip(1)).zip(parts) {
            if mv != dv {
                failures.push(format!("{what} {part} of {row}: sluice {mv}, duckdb {dv}"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_macros_agree_with_duckdb() {
    let python = match duckdb_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "skipped: the DuckDB comparison needs Python's duckdb module ({why}); \
                 tests/run.sh provides it"
            );
            return;
        }
    };
    let (_d, e) = engine().await;
    let pairs = random_pairs(0x5eed_d47e, 400);
    let values = values_of(&pairs);
    let described: Vec<String> = pairs.iter().map(|(a, b)| format!("({a}, {b})")).collect();
    let mut failures = Vec::new();
    const PARTS: [&str; 10] = [
        "year",
        "quarter",
        "month",
        "week",
        "day",
        "hour",
        "minute",
        "second",
        "millisecond",
        "microsecond",
    ];
    let text = "'%Y-%m-%d %H:%M:%S%.6f'";
    let duck_text = "'%Y-%m-%d %H:%M:%S.%f'";

    // datediff: DuckDB's date_diff counts the same boundaries. Weeks (Sunday
    // to Sunday) from DuckDB by another route: the Mondays after each day's Sunday.
    compare_columns(
        &e,
        &python,
        "datediff",
        &values,
        &PARTS,
        |p| render(&format!(r#"datediff("a", "b", "{p}")"#)),
        |p| match p {
            "week" => "date_diff('day', date_trunc('week', a::date + 1), \
                       date_trunc('week', b::date + 1)) // 7"
                .to_string(),
            _ => format!("date_diff('{p}', a, b)"),
        },
        &described,
        &mut failures,
    )
    .await;

    // date_trunc, every part (DuckDB's is right before 1970 too).
    compare_columns(
        &e,
        &python,
        "date_trunc",
        &values,
        &PARTS,
        |p| {
            format!(
                "to_char({}, {text})",
                render(&format!(r#"date_trunc("{p}", "a")"#))
            )
        },
        |p| format!("strftime(date_trunc('{p}', a), {duck_text})"),
        &described,
        &mut failures,
    )
    .await;

    // last_day of the month: DuckDB's last_day.
    compare_columns(
        &e,
        &python,
        "last_day",
        &values,
        &["month"],
        |_| render(r#"last_day("a", "month")"#),
        |_| "last_day(a)".to_string(),
        &described,
        &mut failures,
    )
    .await;

    // dateadd by -50 to 49 dateparts (timestamps in nanoseconds stay within 1677 to 2262).
    let mut rng = Rng(7);
    let amounts: Vec<i64> = (0..pairs.len()).map(|_| rng.range(-50, 50)).collect();
    let with_n: Vec<String> = pairs
        .iter()
        .zip(&amounts)
        .enumerate()
        .map(|(i, ((a, _), n))| format!("({i}, {a}, {n})"))
        .collect();
    let described: Vec<String> = pairs
        .iter()
        .zip(&amounts)
        .map(|((a, _), n)| format!("({a}, {n})"))
        .collect();
    let with_n = format!("(values {}) t(id, a, n)", with_n.join(", "));
    compare_columns(
        &e,
        &python,
        "dateadd",
        &with_n,
        &[
            "year",
            "quarter",
            "month",
            "week",
            "day",
            "hour",
            "minute",
            "second",
            "millisecond",
        ],
        |p| {
            format!(
                "to_char({}, {text})",
                render(&format!(r#"dateadd("{p}", "n", "a")"#))
            )
        },
        |p| {
            let step = match p {
                "quarter" => "n * 3 * interval 1 month".to_string(),
                "week" => "n * 7 * interval 1 day".to_string(),
                _ => format!("n * interval 1 {p}"),
            };
            format!("strftime(a + {step}, {duck_text})")
        },
        &described,
        &mut failures,
    )
    .await;

    assert!(
        failures.is_empty(),
        "{} differences, the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
