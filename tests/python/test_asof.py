"""Differential test: sluice's AS OF join against DuckDB's ASOF JOIN.

Seeded random data (pure Python `random`, written with pyarrow) in a temporary directory:
  l.parquet   2,000 rows: id, k BIGINT (52 keys, 2 of them absent on the right), k2 VARCHAR,
              ts BIGINT, tts TIMESTAMP(us, UTC) (around the epoch, some sub-second), v;
              about 3% NULLs in each of k, k2, ts, tts.
  r.parquet   5,000 rows: rid, k (50 keys), k2, ts, tts, rts/rtts (copies of ts/tts, readable
              after USING drops the right time column), p, created (unique, 5% NULL);
              times on a coarse grid (multiples of 10), so equal right times are frequent.
  ru.parquet  the same with right times unique within each key (no ties).

Each sluice query runs in its own `sluice sql` process (in-memory warehouse, files read by
path) as `COPY (query) TO 'out.parquet'`; the processes of the selected cases run up front, a
few at a time. The file is read with pyarrow and compared with DuckDB's answer as a multiset
of rows (column names and kinds too; timestamps as int microseconds; NULL == NULL).

References:
  * AS OF forms (Snowflake MATCH_CONDITION, DuckDB ON / LEFT / USING, flipped comparison,
    two keys, chained joins, all four operators): DuckDB's own ASOF JOIN. DuckDB picks
    arbitrarily among right rows with equal times, so with r.parquet only the left columns,
    r.k and the matched right time are compared; with ru.parquet every right column is.
  * TOLERANCE (no DuckDB equivalent): DuckDB's ASOF join with the right side nulled out (left)
    or the row dropped (inner) where |l.t - r.t| > tolerance.
  * TIEBREAK BY, and sluice's deterministic choice without it (the highest values of the other
    right columns, here the highest rid): an independent window query, row_number() over the
    eligible right rows of each left row ordered by nearest time, then the tie-break descending
    with NULLs last (sluice sorts a tie-break ASC NULLS FIRST and keeps the last row).
  * WHERE above the join (test_asof_filter: left-only, right-only, mixed predicates, subqueries;
    sluice pushes left-only ones below the join): DuckDB running the same query.
  * test_small_batches repeats some cases with `SET datafusion.execution.batch_size = 7`, so the
    merge crosses batch boundaries on both sides (a one-process statement list; printed as CSV).

Regression cases for two bugs this test found (both fixed): statement lists containing the
DuckDB form (test_statement_list_with_duckdb_form) and correlated subqueries reading right
columns inside an OR with a left predicate (test_asof_filter[*-correlated-exists-or-left]).
"""
import io
import os
import random
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

OPS = [">=", ">", "<=", "<"]
FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
# time column -> (tolerance in sluice SQL, the same in plain units / microseconds)
TIMES = {"ts": ("5", 5), "tts": ("INTERVAL '5 seconds'", 5_000_000)}
SEC = 1_000_000

LEFT = "l.id, l.k, l.k2, l.ts, l.tts, l.v"
RIGHT_FULL = ("r.rid AS r_rid, r.k AS r_k, r.k2 AS r_k2, r.ts AS r_ts, r.tts AS r_tts, "
              "r.p AS r_p, r.created AS r_created")
# after USING (k[, k2], t) sluice exposes only the left k, k2 and t
RIGHT_FULL_USING = "r.rid AS r_rid, r.rts AS r_rts, r.rtts AS r_rtts, r.p AS r_p, r.created AS r_created"


def right_cols(t: str, rf: str) -> str:
    """Right columns that are deterministic in DuckDB for this right file."""
    return RIGHT_FULL if rf == "ru" else f"r.k AS r_k, r.{t} AS r_time"


def right_cols_using(t: str, rf: str) -> str:
    return RIGHT_FULL_USING if rf == "ru" else f"r.r{t} AS r_time"


def frm(rf: str, kind: str = "", alias: str = "r") -> str:
    """`l ASOF [kind ]JOIN rf`; {D} is replaced by the data directory when the case runs."""
    return f"'{{D}}/l.parquet' AS l ASOF {kind}JOIN '{{D}}/{rf}.parquet' AS {alias}"


# --------------------------------------------------------------------------- data

TS_TYPE = pa.timestamp("us", tz="UTC")
L_TYPES = {"id": pa.int64(), "k": pa.int64(), "k2": pa.string(), "ts": pa.int64(),
           "tts": TS_TYPE, "v": pa.int64()}
R_TYPES = {"rid": pa.int64(), "k": pa.int64(), "k2": pa.string(), "ts": pa.int64(),
           "tts": TS_TYPE, "rts": pa.int64(), "rtts": TS_TYPE, "p": pa.int64(),
           "created": pa.int64()}


def _write(path, cols: dict, types: dict):
    """Timestamps are given as int microseconds since the epoch."""
    arrays = {c: (pa.array(v, pa.int64()).cast(types[c]) if pa.types.is_timestamp(types[c])
                  else pa.array(v, types[c])) for c, v in cols.items()}
    pq.write_table(pa.table(arrays), path)


def generate(d):
    rng = random.Random(20240607)

    def maybe(x, p=0.03):
        return None if rng.random() < p else x

    n = 2000
    _write(d / "l.parquet", {
        "id": list(range(n)),
        "k": [maybe(rng.randrange(52)) for _ in range(n)],
        "k2": [maybe(rng.choice("abc")) for _ in range(n)],
        "ts": [maybe(rng.randrange(-600, 600)) for _ in range(n)],
        # seconds around the epoch (negative instants too), sometimes off the second
        "tts": [maybe(rng.randrange(-600, 600) * SEC + rng.choice([0, 0, 0, 250_000, 999_999]))
                for _ in range(n)],
        "v": [rng.randrange(1000) for _ in range(n)],
    }, L_TYPES)

    m = 5000
    keys = [maybe(rng.randrange(50)) for _ in range(m)]
    common = {
        "rid": list(range(m)),
        "k": keys,
        "k2": [maybe(rng.choice("abcd")) for _ in range(m)],
        "p": [rng.randrange(10**6) for _ in range(m)],
        "created": [maybe(c, 0.05) for c in rng.sample(range(10 * m), m)],
    }
    # ties: times on a grid of 10 units (100 values for ~100 rows per key)
    dup = dict(common,
               ts=[maybe(rng.randrange(-500, 500) // 10 * 10) for _ in range(m)],
               tts=[maybe(rng.randrange(-500, 500) // 10 * 10 * SEC) for _ in range(m)])
    # no ties: times unique within each key (~100 rows per key over 1,000 values)
    used = set()

    def unique(col, k):
        while (col, k, x := rng.randrange(-500, 500)) in used:
            pass
        used.add((col, k, x))
        return x

    uniq = dict(common,
                ts=[maybe(unique("ts", k)) for k in keys],
                tts=[maybe(unique("tts", k) * SEC) for k in keys])
    for name, cols in (("r", dup), ("ru", uniq)):
        cols["rts"], cols["rtts"] = cols["ts"], cols["tts"]
        _write(d / f"{name}.parquet", cols, R_TYPES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("asof")
    generate(d)
    (d / "out").mkdir()
    return d


@pytest.fixture(scope="module")
def duck():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


# --------------------------------------------------------------------------- cases

def form_cases():
    """Every form x time type x right file x operator, and USING."""
    cases = []
    for t in TIMES:
        for rf in ("r", "ru"):
            rc = right_cols(t, rf)
            duck_left = f"SELECT {LEFT}, {rc} FROM {frm(rf, 'LEFT ')}"
            duck_inner = f"SELECT {LEFT}, {rc} FROM {frm(rf)}"
            for op in OPS:
                on = f"ON l.k = r.k AND l.{t} {op} r.{t}"
                on2 = f"ON l.k = r.k AND l.k2 = r.k2 AND l.{t} {op} r.{t}"
                mc = f"MATCH_CONDITION (l.{t} {op} r.{t})"
                pre = f"{t}-{rf}-{op}"
                cases += [
                    (f"{pre}-snowflake", f"{duck_inner} {mc} ON l.k = r.k", f"{duck_left} {on}"),
                    (f"{pre}-duckdb-inner", f"{duck_inner} {on}", f"{duck_inner} {on}"),
                    (f"{pre}-duckdb-left", f"{duck_left} {on}", f"{duck_left} {on}"),
                    (f"{pre}-two-keys-duckdb-inner", f"{duck_inner} {on2}", f"{duck_inner} {on2}"),
                ]
                if rf == "r":
                    continue
                # spellings, on unique right times only (every column compared)
                cases += [
                    # the time comparison first, written right to left
                    (f"{pre}-duckdb-left-flipped",
                     f"{duck_left} ON r.{t} {FLIP[op]} l.{t} AND r.k = l.k", f"{duck_left} {on}"),
                    (f"{pre}-snowflake-using-k",
                     f"SELECT {LEFT}, {RIGHT_FULL_USING} FROM {frm(rf)} {mc} USING (k)",
                     f"SELECT {LEFT}, {RIGHT_FULL_USING} FROM {frm(rf, 'LEFT ')} {on}"),
                    (f"{pre}-two-keys-snowflake",
                     f"{duck_inner} {mc} ON l.k = r.k AND l.k2 = r.k2", f"{duck_left} {on2}"),
                ]
            ru = right_cols_using(t, rf)
            for kind, label in (("", "inner"), ("LEFT ", "left")):
                for keys in ("k", "k, k2"):
                    q = f"SELECT {LEFT}, {ru} FROM {frm(rf, kind)} USING ({keys}, {t})"
                    cases.append((f"{t}-{rf}-using-{label}-({keys.replace(', ', '+')})", q, q))
    # chained AS OF joins: the second one reads the first one's output
    two = ("SELECT l.id, r.rid AS r_rid, s.rid AS s_rid FROM {l_r} ON l.k = r.k AND l.ts {op1} r.ts "
           "ASOF LEFT JOIN '{{D}}/ru.parquet' AS s ON l.k = s.k AND l.ts {op2} s.ts")
    for op1, op2 in ((">=", "<="), ("<", ">")):
        q = two.format(l_r=frm("ru", "LEFT "), op1=op1, op2=op2)
        cases.append((f"chain-ts-{op1}-then-{op2}", q, q))
    q = (f"SELECT l.id, r.rid AS r_rid, s.tts AS s_tts FROM {frm('ru')} ON l.k = r.k AND l.ts >= r.ts "
         "ASOF LEFT JOIN '{D}/r.parquet' AS s ON l.k2 = s.k2 AND l.tts < s.tts")
    cases.append(("chain-other-key-and-time", q, q))
    return cases


def tolerance_cases():
    cases = []
    for t, (tol_sql, tol) in TIMES.items():
        diff = f"abs(l.{t} - r.{t})" if t == "ts" else f"abs(epoch_us(l.{t}) - epoch_us(r.{t}))"
        for op in OPS:
            on = f"ON l.k = r.k AND l.{t} {op} r.{t}"
            for rf in ("ru", "r"):
                rc = right_cols(t, rf)
                # right columns nulled where the match is too far
                nulled = ", ".join(f"CASE WHEN {diff} <= {tol} THEN {e} END AS {a}"
                                   for e, a in (c.split(" AS ") for c in rc.split(", ")))
                cases.append((
                    f"{t}-{rf}-{op}-tolerance-snowflake",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf)} MATCH_CONDITION (l.{t} {op} r.{t}) "
                    f"ON l.k = r.k TOLERANCE {tol_sql}",
                    f"SELECT {LEFT}, {nulled} FROM {frm(rf, 'LEFT ')} {on}"))
                if rf == "r":
                    continue
                cases.append((
                    f"{t}-{rf}-{op}-tolerance-duckdb-inner",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf)} {on} TOLERANCE {tol_sql}",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf)} {on} WHERE {diff} <= {tol}"))
        # TOLERANCE 0: exact matches only
        zero = "0" if t == "ts" else "INTERVAL '0 seconds'"
        cases.append((
            f"{t}-ru->=-tolerance-0-duckdb-left",
            f"SELECT {LEFT}, {RIGHT_FULL} FROM {frm('ru', 'LEFT ')} "
            f"ON l.k = r.k AND l.{t} >= r.{t} TOLERANCE {zero}",
            f"SELECT {LEFT}, {RIGHT_FULL} FROM '{{D}}/l.parquet' AS l LEFT JOIN '{{D}}/ru.parquet' AS r "
            f"ON l.k = r.k AND l.{t} = r.{t}"))
    return cases


def window_reference(t: str, op: str, order: str, right: str, left: str = LEFT) -> str:
    """Nearest eligible right row of r.parquet per left row, ties ordered by `order`."""
    nearest = "DESC" if op in (">=", ">") else "ASC"
    return f"""
        WITH cand AS (
            SELECT l.id AS cid, r.*,
                   row_number() OVER (PARTITION BY l.id ORDER BY r.{t} {nearest}, {order}) AS rn
            FROM '{{D}}/l.parquet' AS l JOIN '{{D}}/r.parquet' AS r
              ON l.k = r.k AND l.{t} {op} r.{t})
        SELECT {left}, {right}
        FROM '{{D}}/l.parquet' AS l LEFT JOIN (SELECT * FROM cand WHERE rn = 1) AS r ON l.id = r.cid"""


def tie_right(t: str) -> str:
    # rows with equal times whose created is NULL are interchangeable: compare created, not rid
    return f"r.k AS r_k, r.{t} AS r_time, r.created AS r_created"


def tiebreak_cases():
    cases = []
    for t in TIMES:
        for op in OPS:
            mc = f"MATCH_CONDITION (l.{t} {op} r.{t}) ON l.k = r.k"
            cases.append((
                f"{t}-{op}-tiebreak-created",
                f"SELECT {LEFT}, {tie_right(t)} FROM {frm('r')} {mc} TIEBREAK BY r.created",
                window_reference(t, op, "r.created DESC NULLS LAST", tie_right(t))))
            # no TIEBREAK: sluice picks the highest other right columns; rid (unique) comes first
            cases.append((
                f"{t}-{op}-default-tiebreak",
                f"SELECT {LEFT}, {RIGHT_FULL} FROM {frm('r')} {mc}",
                window_reference(t, op, "r.rid DESC", RIGHT_FULL)))
        # an expression, and a list (a string first), with TOLERANCE in front
        cases.append((
            f"{t}->=-tiebreak-expression",
            f"SELECT {LEFT}, {tie_right(t)} FROM {frm('r', 'LEFT ')} "
            f"ON l.k = r.k AND l.{t} >= r.{t} TIEBREAK BY -r.created",
            window_reference(t, ">=", "-r.created DESC NULLS LAST", tie_right(t))))
        dist = f"r.{t} - l.{t}" if t == "ts" else f"epoch_us(r.{t}) - epoch_us(l.{t})"
        ref = window_reference(t, "<", "r.k2 DESC NULLS LAST, r.created DESC NULLS LAST",
                               f"r.k2 AS r_k2, {tie_right(t)}, {dist} AS dist")
        cases.append((
            f"{t}-<-tolerance-tiebreak-list",
            f"SELECT {LEFT}, r.k2 AS r_k2, {tie_right(t)} FROM {frm('r')} "
            f"ON l.k = r.k AND l.{t} < r.{t} TOLERANCE {TIMES[t][0]} TIEBREAK BY r.k2, r.created",
            f"SELECT * EXCLUDE (dist) FROM ({ref}) WHERE dist <= {TIMES[t][1]}"))
    return cases


# WHERE above the join: predicates on left columns only may run below it (for both kinds),
# any other predicate must see the join's output
FILTERS = {
    "left-only": "l.v > 500 AND l.k < 20",
    "right-only": "r.p > 500000",
    "unmatched-or-left": "r.rid IS NULL OR l.v < 100",
    "mixed-and-left": "coalesce(r.p, l.v) > 400 AND l.v > 200",
    "left-or-right": "l.v > 900 OR r.p < 100000",
    "times": "l.ts > 0 AND l.ts < r.ts + 20",
    "left-in-subquery": "l.k IN (SELECT k FROM '{D}/ru.parquet' WHERE p < 10000)",
    "correlated-exists-and-left": ("l.v > 500 AND EXISTS (SELECT 1 FROM '{D}/ru.parquet' AS x "
                                   "WHERE x.rid = r.rid AND x.p < 300000)"),
    # BUG: PushLeftFiltersThroughAsOf reads the columns with Expr::column_refs(), which does not
    # see a subquery's outer references, so this disjunction goes below the join, where r.rid
    # does not exist ("No field named r.rid"); a plain LEFT JOIN runs it.
    "correlated-exists-or-left": ("l.v > 900 OR EXISTS (SELECT 1 FROM '{D}/ru.parquet' AS x "
                                  "WHERE x.rid = r.rid AND x.p < 300000)"),
}


def filter_cases():
    cases = []
    sel = f"SELECT {LEFT}, {RIGHT_FULL}"
    for kind, label in (("LEFT ", "left"), ("", "inner")):
        for name, pred in FILTERS.items():
            q = f"{sel} FROM {frm('ru', kind)} ON l.k = r.k AND l.ts >= r.ts WHERE {pred}"
            cases.append((f"{label}-{name}", q, q))
    using = f"SELECT {LEFT}, {RIGHT_FULL_USING} FROM {frm('ru', 'LEFT ')} USING (k, ts)"
    for name, pred in (("using-key", "k = 3"), ("using-time", "ts > 0 AND v > 300")):
        cases.append((f"left-{name}", f"{using} WHERE {pred}", f"{using} WHERE {pred}"))
    return cases


CASES = {name: (s, q) for name, s, q in
         form_cases() + tolerance_cases() + tiebreak_cases() + filter_cases()}
FORM_IDS = [n for n, _, _ in form_cases()]
TOLERANCE_IDS = [n for n, _, _ in tolerance_cases()]
TIEBREAK_IDS = [n for n, _, _ in tiebreak_cases()]
FILTER_PARAMS = [pytest.param(n, id=n) for n, _, _ in filter_cases()]


# --------------------------------------------------------------------------- running

def sluice_cmd(sluice_bin, sql: str) -> list[str]:
    return [sluice_bin, "--warehouse", "memory://", "--progress", "never", "sql", "--format", "csv", sql]


def run_case(sluice_bin, data, name: str):
    """Runs case `name` in sluice: (query, CompletedProcess, output file)."""
    query = CASES[name][0].replace("{D}", str(data))
    out = data / "out" / f"{list(CASES).index(name):03d}.parquet"
    cmd = sluice_cmd(sluice_bin, f"COPY ({query}) TO '{out}' STORED AS PARQUET")
    proc = subprocess.run(cmd, cwd=data, capture_output=True, text=True, timeout=300)
    return query, proc, out


@pytest.fixture(scope="module")
def sluice_runs(request, sluice_bin, data):
    """name -> the sluice side of the case; the selected cases run up front, a few at a time."""
    tests = ("test_asof_form_matches_duckdb", "test_asof_tolerance", "test_asof_tiebreak",
             "test_asof_filter")
    names = [it.callspec.params["name"] for it in request.session.items
             if getattr(getattr(it, "module", None), "__name__", None) == __name__
             and getattr(it, "originalname", None) in tests]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        runs = dict(zip(names, ex.map(lambda n: run_case(sluice_bin, data, n), names)))
    # a case the selection above missed runs when its test asks for it
    return lambda name: runs.get(name) or run_case(sluice_bin, data, name)


def duck_query(duck, query: str) -> pa.Table:
    rel = duck.sql(query)
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()


def normalize(table: pa.Table) -> tuple[list[str], list[tuple]]:
    """Column names and rows; timestamps -> int microseconds since the epoch (UTC)."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
        cols.append(col.to_pylist())
    return table.column_names, list(zip(*cols))


def kinds(table: pa.Table) -> list[str]:
    def kind(t):
        if pa.types.is_timestamp(t):
            return f"timestamp[{t.tz}]"
        if pa.types.is_integer(t):
            return "int"
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return "string"
        return str(t)

    return [kind(f.type) for f in table.schema]


def _sort_key(row):
    return tuple((v is None, v) for v in row)


def assert_same(name, sluice_sql, duck_sql, got: pa.Table, expected: pa.Table, check_kinds=True):
    g_cols, g_rows = normalize(got)
    e_cols, e_rows = normalize(expected)
    where = f"{name}\n  sluice: {sluice_sql}\n  duckdb: {duck_sql}"
    assert expected.num_rows > 0, f"{where}\nthe reference is empty: the case tests nothing"
    assert g_cols == e_cols, f"{where}\ncolumns {g_cols} != {e_cols}"
    if check_kinds:
        assert kinds(got) == kinds(expected), f"{where}\ntypes {got.schema} != {expected.schema}"
    g, e = Counter(g_rows), Counter(e_rows)
    if g == e:
        return
    extra = sorted((g - e).elements(), key=_sort_key)
    missing = sorted((e - g).elements(), key=_sort_key)
    msg = [where, f"{len(g_rows)} rows from sluice, {len(e_rows)} from DuckDB; "
           f"{len(extra)} only in sluice, {len(missing)} only in DuckDB; columns {g_cols}"]
    msg += [f"  only in sluice: {r}" for r in extra[:5]]
    msg += [f"  only in duckdb: {r}" for r in missing[:5]]
    if "id" in g_cols:  # both sides' rows for the first left row that differs
        i = g_cols.index("id")
        first = (extra or missing)[0][i]
        msg.append(f"  left id {first}: sluice {[r for r in g_rows if r[i] == first]}")
        msg.append(f"  left id {first}: duckdb {[r for r in e_rows if r[i] == first]}")
    pytest.fail("\n".join(msg))


def check(sluice_runs, data, duck, name):
    query, proc, out = sluice_runs(name)
    if proc.returncode != 0:
        pytest.fail(f"{name}: sluice exited {proc.returncode} on\n  {query}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    ref = CASES[name][1].replace("{D}", str(data))
    assert_same(name, query, ref, pq.read_table(out), duck_query(duck, ref))


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", FORM_IDS, ids=FORM_IDS)
def test_asof_form_matches_duckdb(sluice_runs, data, duck, name):
    check(sluice_runs, data, duck, name)


@pytest.mark.parametrize("name", TOLERANCE_IDS, ids=TOLERANCE_IDS)
def test_asof_tolerance(sluice_runs, data, duck, name):
    check(sluice_runs, data, duck, name)


@pytest.mark.parametrize("name", TIEBREAK_IDS, ids=TIEBREAK_IDS)
def test_asof_tiebreak(sluice_runs, data, duck, name):
    check(sluice_runs, data, duck, name)


@pytest.mark.parametrize("name", FILTER_PARAMS)
def test_asof_filter(sluice_runs, data, duck, name):
    check(sluice_runs, data, duck, name)


SMALL_BATCH = {
    # (sluice query, DuckDB query): integer and string columns only (read back from CSV)
    "ts-r->=-default-tiebreak": (
        "SELECT l.id, l.k, l.k2, l.ts, r.rid AS r_rid, r.ts AS r_ts, r.p AS r_p "
        f"FROM {frm('r')} MATCH_CONDITION (l.ts >= r.ts) ON l.k = r.k",
        window_reference("ts", ">=", "r.rid DESC", "r.rid AS r_rid, r.ts AS r_ts, r.p AS r_p",
                         left="l.id, l.k, l.k2, l.ts")),
    "ts-r-<-default-tiebreak": (
        "SELECT l.id, l.k, l.k2, l.ts, r.rid AS r_rid, r.ts AS r_ts, r.p AS r_p "
        f"FROM {frm('r')} MATCH_CONDITION (l.ts < r.ts) ON l.k = r.k",
        window_reference("ts", "<", "r.rid DESC", "r.rid AS r_rid, r.ts AS r_ts, r.p AS r_p",
                         left="l.id, l.k, l.k2, l.ts")),
    "ts-ru->-two-keys-using-k": (
        "SELECT l.id, l.k, l.k2, l.ts, r.rid AS r_rid, r.p AS r_p "
        f"FROM {frm('ru')} MATCH_CONDITION (l.ts > r.ts) USING (k, k2)",
        "SELECT l.id, l.k, l.k2, l.ts, r.rid AS r_rid, r.p AS r_p "
        f"FROM {frm('ru', 'LEFT ')} ON l.k = r.k AND l.k2 = r.k2 AND l.ts > r.ts"),
}


@pytest.mark.parametrize("name", list(SMALL_BATCH), ids=list(SMALL_BATCH))
def test_small_batches(sluice_bin, data, duck, name):
    """Batches of 7 rows: candidates, ties and keys span right batches, matches span left ones.

    Only the Snowflake form without options goes through `sluice sql`'s statement splitter
    (see test_statement_list_with_duckdb_form), hence the form used here.
    """
    s, q = (x.replace("{D}", str(data)) for x in SMALL_BATCH[name])
    proc = subprocess.run(sluice_cmd(sluice_bin, f"SET datafusion.execution.batch_size = 7; {s}"),
                          cwd=data, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"sluice exited {proc.returncode} on\n  {s}\n--- stderr ---\n{proc.stderr}")
    expected = duck_query(duck, q)
    types = {f.name: (pa.string() if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                      or pa.types.is_string_view(f.type) else pa.int64()) for f in expected.schema}
    got = pcsv.read_csv(io.BytesIO(proc.stdout.encode()), convert_options=pcsv.ConvertOptions(
        column_types=types, null_values=[""], strings_can_be_null=True))
    assert_same(name, s, q, got, expected, check_kinds=False)


def test_statement_list_with_duckdb_form(sluice_bin, tmp_path):
    q = ("SELECT l.k, l.t, r.t AS rt FROM (VALUES (1, 5)) AS l(k, t) "
         "ASOF JOIN (VALUES (1, 3)) AS r(k, t) ON l.k = r.k AND l.t >= r.t")
    proc = subprocess.run(sluice_cmd(sluice_bin, f"SELECT 1 AS x; {q}"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["k,t,rt", "1,5,3"], proc.stdout


def test_data_has_ties_nulls_and_misses(data, duck):
    """The generated data exercises what the cases claim to (guards against a bad generator)."""
    d = data
    [(ties,)] = duck.sql(f"SELECT count(*) FROM (SELECT k, ts FROM '{d}/r.parquet' WHERE k IS NOT NULL "
                         "AND ts IS NOT NULL GROUP BY ALL HAVING count(*) > 1)").fetchall()
    [(uties,)] = duck.sql(f"SELECT count(*) FROM (SELECT k, ts, count(*) FROM '{d}/ru.parquet' "
                          "WHERE ts IS NOT NULL GROUP BY k, ts HAVING count(*) > 1 UNION ALL "
                          f"SELECT k, tts, count(*) FROM '{d}/ru.parquet' WHERE tts IS NOT NULL "
                          "GROUP BY k, tts HAVING count(*) > 1)").fetchall()
    assert ties > 500 and uties == 0, (ties, uties)
    for f in ("l", "r"):
        [nulls] = duck.sql(f"SELECT count(*) FILTER (k IS NULL), count(*) FILTER (k2 IS NULL), "
                           f"count(*) FILTER (ts IS NULL), count(*) FILTER (tts IS NULL) "
                           f"FROM '{d}/{f}.parquet'").fetchall()
        assert all(x > 10 for x in nulls), (f, nulls)
    # left keys absent on the right, and left times outside the right range on both sides
    [(absent, before, after)] = duck.sql(
        f"SELECT count(*) FILTER (k >= 50), count(*) FILTER (ts < -500), count(*) FILTER (ts > 500) "
        f"FROM '{d}/l.parquet'").fetchall()
    assert absent > 10 and before > 10 and after > 10, (absent, before, after)
