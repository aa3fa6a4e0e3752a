//! The AS OF join operator: random data against a brute-force reference,
//! spilling under a memory limit, parallel partitions.

use crate::common::*;
use sluice::sql::{Engine, EngineOptions};

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn engine_mode(
    limit: Option<usize>,
    mode: Option<sluice::asof::AsOfMode>,
) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let wh = sluice::warehouse::Warehouse::open(
        dir.path().join("wh").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let e = Engine::with_options(
        wh,
        "main",
        &EngineOptions {
            memory_limit: limit,
            asof_mode: mode,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (dir, e)
}

type Row = (Option<i64>, Option<i64>, i64); // key, time, id

fn values(rows: &[Row]) -> String {
    let cell = |v: Option<i64>| v.map_or("NULL".to_string(), |x| x.to_string());
    rows.iter()
        .map(|(k, t, id)| format!("({}, {}, {id})", cell(*k), cell(*t)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The right row a left row matches, by definition (ties: highest id).
fn reference(l: &Row, right: &[Row], op: &str, tol: Option<i64>) -> Option<i64> {
    let (Some(k), Some(t)) = (l.0, l.1) else {
        return None;
    };
    let eligible = |rt: i64| match op {
        ">=" => rt <= t,
        ">" => rt < t,
        "<=" => rt >= t,
        _ => rt > t,
    };
    let best = right
        .iter()
        .filter(|r| r.0 == Some(k) && r.1.is_some_and(eligible))
        .max_by_key(|r| {
            let rt = r.1.unwrap_or_default();
            // Nearest first, then highest id.
            let nearness = if op.starts_with('>') { rt } else { -rt };
            (nearness, r.2)
        })?;
    let rt = best.1?;
    if tol.is_some_and(|tol| (t - rt).abs() > tol) {
        return None;
    }
    Some(best.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_joins_match_a_brute_force_reference() {
    use sluice::asof::AsOfMode;
    for mode in [AsOfMode::Merge, AsOfMode::Probe, AsOfMode::Stream] {
        random_joins_in(mode, 1).await;
    }
    // Keys far apart (and negative): stream mode hashes them instead of
    // indexing them by value.
    random_joins_in(AsOfMode::Stream, 3_000_000_000_017).await;
}

/// Keys are `(k - 7) * spread` for `k` in 0..15.
async fn random_joins_in(mode: sluice::asof::AsOfMode, spread: i64) {
    let (_d, e) = engine_mode(None, Some(mode)).await;
    let mut g = Lcg(7);
    let pick = |g: &mut Lcg, n: u64| -> Option<i64> {
        if g.below(12) == 0 {
            None
        } else {
            Some(g.below(n) as i64)
        }
    };
    let key = |g: &mut Lcg| pick(g, 15).map(|k| (k - 7) * spread);
    let left: Vec<Row> = (0..400)
        .map(|i| (key(&mut g), pick(&mut g, 60), i))
        .collect();
    let right: Vec<Row> = (0..900)
        .map(|i| (key(&mut g), pick(&mut g, 60), 1000 + i))
        .collect();
    for op in [">=", ">", "<=", "<"] {
        for tol in [None, Some(3)] {
            for kind in ["ASOF JOIN", "ASOF LEFT JOIN"] {
                let tol_sql = tol.map(|t| format!(" TOLERANCE {t}")).unwrap_or_default();
                let sql = format!(
                    "SELECT l.id, r.id FROM (VALUES {}) l(k, t, id) {kind} (VALUES {}) r(k, t, id) \
                     ON l.k = r.k AND l.t {op} r.t{tol_sql} TIEBREAK BY r.id",
                    values(&left),
                    values(&right)
                );
                let mut got: Vec<String> = rows(&e, &sql).await;
                got.sort();
                let mut want: Vec<String> = left
                    .iter()
                    .filter_map(|l| {
                        let m = reference(l, &right, op, tol);
                        match (m, kind) {
                            (Some(r), _) => Some(format!("{}|{r}", l.2)),
                            (None, "ASOF LEFT JOIN") => Some(format!("{}|", l.2)),
                            (None, _) => None,
                        }
                    })
                    .collect();
                want.sort();
                assert_eq!(
                    got, want,
                    "{mode:?} (key spread {spread}): {kind} {op} tolerance {tol:?}"
                );
            }
        }
    }
}

/// A right side far larger than the memory limit: in sort-merge mode (what
/// auto picks when neither side's size is known) the sorts spill; in stream
/// mode the small left side is indexed and the right side streamed past it
/// within the limit. Both give the right result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_side_larger_than_memory_spills() {
    use sluice::asof::AsOfMode;
    for mode in [AsOfMode::Auto, AsOfMode::Stream] {
        right_side_larger_than_memory_in(mode).await;
    }
}

async fn right_side_larger_than_memory_in(mode: sluice::asof::AsOfMode) {
    let (_d, e) = engine_mode(Some(64 << 20), Some(mode)).await;
    // 3M right rows (~100 MB in memory as sorted batches), 20k left rows.
    let sql = "SELECT count(*) AS n, count(r.v) AS matched, sum(r.v) AS total \
         FROM (SELECT value % 1000 AS k, value * 7 % 3000000 AS t FROM range(20000)) l \
         ASOF LEFT JOIN (SELECT value % 1000 AS k, value AS t, value * 3 AS v, \
                                repeat('x', 20) AS pad FROM range(3000000)) r \
         ON l.k = r.k AND l.t >= r.t";
    let got = rows(&e, sql).await;
    // Reference: for key k, right times are k, k+1000, ...; the latest at or
    // before t is the largest value <= t congruent to k (mod 1000).
    let (mut matched, mut total) = (0i64, 0i64);
    for i in 0..20000i64 {
        let (k, t) = (i % 1000, i * 7 % 3_000_000);
        if t >= k {
            let best = t - ((t - k) % 1000);
            matched += 1;
            total += best * 3;
        }
    }
    assert_eq!(got, vec![format!("20000|{matched}|{total}")]);
    let plan = rows(&e, &format!("EXPLAIN ANALYZE {sql}")).await.join("\n");
    let spilled = plan
        .split("spill_count=")
        .skip(1)
        .filter_map(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum::<u64>();
    if mode == sluice::asof::AsOfMode::Auto {
        assert!(spilled > 0, "expected the sorts to spill:\n{plan}");
        assert!(plan.contains("AsOfMergeExec:"), "{plan}");
    } else {
        assert!(plan.contains("AsOfStreamExec:"), "{plan}");
    }
}

/// Many partitions (hash-partitioned inputs, and a right side of several
/// partitions, one per UNION ALL branch) give the same rows as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_equals_single_partition() {
    for mode in [
        sluice::asof::AsOfMode::Merge,
        sluice::asof::AsOfMode::Probe,
        sluice::asof::AsOfMode::Stream,
    ] {
        partitioned_in(mode).await;
    }
}

async fn partitioned_in(mode: sluice::asof::AsOfMode) {
    let (_d, e) = engine_mode(None, Some(mode)).await;
    let left = "(SELECT value AS id, value % 97 AS k, value % 501 AS t FROM range(5000)) l";
    let right = |cols: &str, cuts: &[u64]| -> String {
        let ranges: Vec<String> = cuts
            .windows(2)
            .map(|w| format!("SELECT {cols} FROM range({}, {})", w[0], w[1]))
            .collect();
        format!("({}) r", ranges.join(" UNION ALL "))
    };
    for (select, cols, tie) in [
        (
            "l.id, r.id",
            "value AS id, value % 97 AS k, value % 499 AS t",
            " TIEBREAK BY r.id",
        ),
        // Only right columns rebuilt from the left key and the matched time:
        // no right column is kept.
        ("l.id, r.k, r.t", "value % 97 AS k, value % 499 AS t", ""),
    ] {
        let q = |cuts: &[u64]| {
            format!(
                "SELECT {select} FROM {left} ASOF LEFT JOIN {} \
                 ON l.k = r.k AND l.t >= r.t{tie} ORDER BY l.id",
                right(cols, cuts)
            )
        };
        // One partition (one right input) against eight (three right inputs).
        e.sql("SET datafusion.execution.target_partitions = 1")
            .await
            .unwrap();
        let one = rows(&e, &q(&[0, 20000])).await;
        e.sql("SET datafusion.execution.target_partitions = 8")
            .await
            .unwrap();
        let eight = rows(&e, &q(&[0, 7000, 14000, 20000])).await;
        assert_eq!(one.len(), 5000);
        assert_eq!(one, eight, "{mode:?}: {select}");
    }
    let q = format!(
        "SELECT l.id, r.id FROM {left} ASOF LEFT JOIN {} ON l.k = r.k AND l.t >= r.t",
        right(
            "value AS id, value % 97 AS k, value % 499 AS t",
            &[0, 20000]
        )
    );
    let plan = rows(&e, &format!("EXPLAIN {q}")).await.join("\n");
    assert!(
        plan.contains("RepartitionExec: partitioning=Hash"),
        "{mode:?}: {plan}"
    );
}

/// Stream mode forced on a left side over the memory limit: a clear error
/// naming the fixes, not a crash or a wrong answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_left_side_over_the_limit_is_a_clear_error() {
    let (_d, e) = engine_mode(Some(4 << 20), Some(sluice::asof::AsOfMode::Stream)).await;
    let err = e
        .query(
            "SELECT count(r.v) FROM (SELECT value % 10 AS k, value AS t FROM range(2000000)) l \
             ASOF LEFT JOIN (SELECT value % 10 AS k, value AS t, value AS v FROM range(10)) r \
             ON l.k = r.k AND l.t >= r.t",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("left side does not fit"), "{err}");
    assert!(err.contains("SLUICE_ASOF_MODE=merge"), "{err}");
}

/// Each mode plans its own operator, and `EXPLAIN` and `EXPLAIN ANALYZE` name
/// it: only the sort-merge asks for sorted inputs; all three give the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_plans_and_explains_its_own_operator() {
    use sluice::asof::AsOfMode;
    const NAMES: [&str; 3] = ["AsOfMergeExec", "AsOfProbeExec", "AsOfStreamExec"];
    let q =
        "SELECT l.id, r.v FROM (SELECT value AS id, value % 7 AS k, value AS t FROM range(100)) l \
             ASOF LEFT JOIN (SELECT value % 7 AS k, value * 3 AS t, value AS v FROM range(300)) r \
             ON l.k = r.k AND l.t >= r.t";
    let mut results = Vec::new();
    for (mode, name) in [
        (AsOfMode::Merge, "AsOfMergeExec"),
        (AsOfMode::Probe, "AsOfProbeExec"),
        (AsOfMode::Stream, "AsOfStreamExec"),
    ] {
        let (_d, e) = engine_mode(None, Some(mode)).await;
        let plan = rows(&e, &format!("EXPLAIN {q}")).await.join("\n");
        assert!(
            plan.contains(&format!("{name}: kind=left, on=[(k@")),
            "{mode:?}: {plan}"
        );
        for other in NAMES.iter().filter(|&&n| n != name) {
            assert!(!plan.contains(other), "{mode:?}: {plan}");
        }
        assert_eq!(plan.contains("SortExec"), mode == AsOfMode::Merge, "{plan}");
        let analyzed = rows(&e, &format!("EXPLAIN ANALYZE {q}")).await.join("\n");
        let line = analyzed
            .lines()
            .find(|l| l.contains(&format!("{name}: kind=left")))
            .unwrap_or_else(|| panic!("{mode:?}: {analyzed}"));
        assert!(line.contains("output_rows=100"), "{mode:?}: {line}");
        let mut got = rows(&e, q).await;
        got.sort();
        results.push(got);
    }
    assert_eq!(results[0].len(), 100);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}
