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
path) as `COPY (query) TO 'out.parquet'`; the file is read with pyarrow and compared as a
multiset of rows with DuckDB's answer (timestamps as int microseconds, NULL == NULL).

References:
  * AS OF forms (Snowflake MATCH_CONDITION, DuckDB ON / LEFT / USING, flipped comparison,
    two keys, all four operators): DuckDB's own ASOF JOIN. DuckDB picks arbitrarily among
    right rows with equal times, so with r.parquet only the left columns, r.k and the matched
    right time are compared; with ru.parquet every right column is compared.
  * TOLERANCE (no DuckDB equivalent): DuckDB's ASOF join with the right side nulled out (left)
    or the row dropped (inner) where |l.t - r.t| > tolerance.
  * TIEBREAK BY, and sluice's deterministic choice without it (the highest values of the other
    right columns, here the highest rid): an independent window query, row_number() over the
    eligible right rows of each left row ordered by nearest time, then the tie-break descending
    with NULLs last (sluice sorts a tie-break ASC NULLS FIRST and keeps the last row).
"""
import random
import subprocess
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

OPS = [">=", ">", "<=", "<"]
FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
# time column -> (tolerance in sluice SQL, the same in microseconds or plain units, unit scale)
TIMES = {"ts": ("5", 5), "tts": ("INTERVAL '5 seconds'", 5_000_000)}
SEC = 1_000_000

LEFT = "l.id, l.k, l.k2, l.ts, l.tts, l.v"
RIGHT_FULL = ("r.rid AS r_rid, r.k AS r_k, r.k2 AS r_k2, r.ts AS r_ts, r.tts AS r_tts, "
              "r.p AS r_p, r.created AS r_created")
# after USING (k[, k2], t) sluice exposes only the left k, k2 and t
RIGHT_FULL_USING = "r.rid AS r_rid, r.rts AS r_rts, r.rtts AS r_rtts, r.p AS r_p, r.created AS r_created"


def right_cols(t: str, rfile: str) -> str:
    """Right columns that are deterministic for this right file."""
    return RIGHT_FULL if rfile == "ru" else f"r.k AS r_k, r.{t} AS r_time"


def right_cols_using(t: str, rfile: str) -> str:
    return RIGHT_FULL_USING if rfile == "ru" else f"r.r{t} AS r_time"


# --------------------------------------------------------------------------- data

def _write(path, cols: dict, types: dict):
    """Timestamps are given as int microseconds since the epoch."""
    arrays = {c: (pa.array(v, pa.int64()).cast(types[c]) if pa.types.is_timestamp(types[c])
                  else pa.array(v, types[c])) for c, v in cols.items()}
    pq.write_table(pa.table(arrays), path)


TS_TYPE = pa.timestamp("us", tz="UTC")
L_TYPES = {"id": pa.int64(), "k": pa.int64(), "k2": pa.string(), "ts": pa.int64(),
           "tts": TS_TYPE, "v": pa.int64()}
R_TYPES = {"rid": pa.int64(), "k": pa.int64(), "k2": pa.string(), "ts": pa.int64(),
           "tts": TS_TYPE, "rts": pa.int64(), "rtts": TS_TYPE, "p": pa.int64(),
           "created": pa.int64()}


def generate(d):
    rng = random.Random(20240607)

    def maybe(x, p=0.03):
        return None if rng.random() < p else x

    n = 2000
    left = {
        "id": list(range(n)),
        "k": [maybe(rng.randrange(52)) for _ in range(n)],
        "k2": [maybe(rng.choice("abc")) for _ in range(n)],
        "ts": [maybe(rng.randrange(-600, 600)) for _ in range(n)],
        # seconds around the epoch (negative instants too), sometimes off the second
        "tts": [maybe(rng.randrange(-600, 600) * SEC + rng.choice([0, 0, 0, 250_000, 999_999]))
                for _ in range(n)],
        "v": [rng.randrange(1000) for _ in range(n)],
    }
    _write(d / "l.parquet", left, L_TYPES)

    m = 5000
    created = rng.sample(range(10 * m), m)
    keys = [maybe(rng.randrange(50)) for _ in range(m)]
    common = {
        "rid": list(range(m)),
        "k": keys,
        "k2": [maybe(rng.choice("abcd")) for _ in range(m)],
        "p": [rng.randrange(10**6) for _ in range(m)],
        "created": [maybe(c, 0.05) for c in created],
    }
    # ties: times on a grid of 10 units (100 values for ~100 rows per key)
    dup = dict(common,
               ts=[maybe(rng.randrange(-500, 500) // 10 * 10) for _ in range(m)],
               tts=[maybe(rng.randrange(-500, 500) // 10 * 10 * SEC) for _ in range(m)])
    # no ties: times unique within each key (~100 rows per key over 1,000 values)
    used = {"ts": set(), "tts": set()}

    def unique(col, k):
        while True:
            x = rng.randrange(-500, 500)
            if (k, x) not in used[col]:
                used[col].add((k, x))
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
def duck(data):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


# --------------------------------------------------------------------------- running

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


def run_sluice_query(sluice_bin, data, name: str, query: str) -> pa.Table:
    out = data / "out" / f"{name}.parquet"
    sql = f"COPY ({query}) TO '{out}' STORED AS PARQUET"
    cmd = [sluice_bin, "--warehouse", "memory://", "--progress", "never", "sql", "--format", "csv", sql]
    proc = subprocess.run(cmd, cwd=data, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"sluice exited {proc.returncode} on\n  {query}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return pq.read_table(out)


def duck_query(duck, query: str) -> pa.Table:
    rel = duck.sql(query)
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()


def _sort_key(row):
    return tuple((v is None, v) for v in row)


def assert_same(name, sluice_sql, duck_sql, got: pa.Table, expected: pa.Table):
    g_cols, g_rows = normalize(got)
    e_cols, e_rows = normalize(expected)
    where = f"{name}\n  sluice: {sluice_sql}\n  duckdb: {duck_sql}"
    assert g_cols == e_cols, f"{where}\ncolumns {g_cols} != {e_cols}"
    assert kinds(got) == kinds(expected), f"{where}\ntypes {got.schema} != {expected.schema}"
    g, e = Counter(g_rows), Counter(e_rows)
    if g == e:
        return
    extra = sorted((g - e).elements(), key=_sort_key)
    missing = sorted((e - g).elements(), key=_sort_key)
    msg = [f"{where}", f"{len(g_rows)} rows from sluice, {len(e_rows)} from DuckDB; "
           f"{len(extra)} only in sluice, {len(missing)} only in DuckDB; columns {g_cols}"]
    msg += [f"  only in sluice: {r}" for r in extra[:5]]
    msg += [f"  only in duckdb: {r}" for r in missing[:5]]
    if "id" in g_cols:  # both sides' rows for the first left row that differs
        i = g_cols.index("id")
        first = (extra or missing)[0][i]
        msg.append(f"  left id {first}: sluice {[r for r in g_rows if r[i] == first]}")
        msg.append(f"  left id {first}: duckdb {[r for r in e_rows if r[i] == first]}")
    pytest.fail("\n".join(msg))


def check(sluice_bin, data, duck, name, sluice_sql, duck_sql, expect_rows=True):
    d = str(data)
    s, q = sluice_sql.replace("{D}", d), duck_sql.replace("{D}", d)
    got = run_sluice_query(sluice_bin, data, name, s)
    expected = duck_query(duck, q)
    if expect_rows:
        assert expected.num_rows > 0, f"{name}: the reference is empty, the case tests nothing"
    assert_same(name, s, q, got, expected)


def frm(rfile: str) -> str:
    return f"'{{D}}/l.parquet' AS l ASOF {{kind}}JOIN '{{D}}/{rfile}.parquet' AS r"


# --------------------------------------------------------------------------- AS OF forms

def form_cases():
    """(id, sluice SQL, DuckDB SQL) for every form x time type x right file x operator."""
    cases = []
    for t in TIMES:
        for rf in ("r", "ru"):
            rc = right_cols(t, rf)
            duck_left = f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='LEFT ')}"
            duck_inner = f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')}"
            for op in OPS:
                on = f"ON l.k = r.k AND l.{t} {op} r.{t}"
                on2 = f"ON l.k = r.k AND l.k2 = r.k2 AND l.{t} {op} r.{t}"
                mc = f"MATCH_CONDITION (l.{t} {op} r.{t})"
                pre = f"{t}-{rf}-{op}"
                cases += [
                    (f"{pre}-snowflake",
                     f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')} {mc} ON l.k = r.k",
                     f"{duck_left} {on}"),
                    (f"{pre}-duckdb-inner", f"{duck_inner} {on}", f"{duck_inner} {on}"),
                    (f"{pre}-duckdb-left", f"{duck_left} {on}", f"{duck_left} {on}"),
                    (f"{pre}-two-keys-duckdb-inner", f"{duck_inner} {on2}", f"{duck_inner} {on2}"),
                ]
                if rf == "r":
                    continue
                # spellings: checked on the unique right times only (full rows compared)
                cases += [
                    # time comparison first and written right-to-left
                    (f"{pre}-duckdb-left-flipped",
                     f"{duck_left} ON r.{t} {FLIP[op]} l.{t} AND r.k = l.k", f"{duck_left} {on}"),
                    (f"{pre}-snowflake-using-k",
                     f"SELECT {LEFT}, {RIGHT_FULL_USING} FROM {frm(rf).format(D='{D}', kind='')} "
                     f"{mc} USING (k)",
                     f"SELECT {LEFT}, {RIGHT_FULL_USING} FROM {frm(rf).format(D='{D}', kind='LEFT ')} {on}"),
                    (f"{pre}-two-keys-snowflake",
                     f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')} {mc} "
                     f"ON l.k = r.k AND l.k2 = r.k2",
                     f"{duck_left} {on2}"),
                ]
            ru = right_cols_using(t, rf)
            for kind, label in (("", "inner"), ("LEFT ", "left")):
                for keys in ("k", "k, k2"):
                    q = (f"SELECT {LEFT}, {ru} FROM {frm(rf).format(D='{D}', kind=kind)} "
                         f"USING ({keys}, {t})")
                    cases.append((f"{t}-{rf}-using-{label}-({keys})".replace(", ", "+"), q, q))
    return cases


FORM_CASES = form_cases()


@pytest.mark.parametrize("name,sluice_sql,duck_sql", FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_asof_form_matches_duckdb(sluice_bin, data, duck, name, sluice_sql, duck_sql):
    check(sluice_bin, data, duck, name, sluice_sql, duck_sql)


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


# --------------------------------------------------------------------------- TOLERANCE

def tolerance_cases():
    cases = []
    for t, (tol_sql, tol) in TIMES.items():
        diff = (f"abs(l.{t} - r.{t})" if t == "ts"
                else f"abs(epoch_us(l.{t}) - epoch_us(r.{t}))")
        for op in OPS:
            on = f"ON l.k = r.k AND l.{t} {op} r.{t}"
            for rf in ("ru", "r"):
                rc = right_cols(t, rf)
                # right columns nulled where the match is too far
                nulled = ", ".join(
                    f"CASE WHEN {diff} <= {tol} THEN {c.split(' AS ')[0]} END AS {c.split(' AS ')[1]}"
                    for c in rc.split(", "))
                cases.append((
                    f"{t}-{rf}-{op}-tolerance-snowflake",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')} "
                    f"MATCH_CONDITION (l.{t} {op} r.{t}) ON l.k = r.k TOLERANCE {tol_sql}",
                    f"SELECT {LEFT}, {nulled} FROM {frm(rf).format(D='{D}', kind='LEFT ')} {on}"))
                if rf == "r":
                    continue
                cases.append((
                    f"{t}-{rf}-{op}-tolerance-duckdb-inner",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')} {on} TOLERANCE {tol_sql}",
                    f"SELECT {LEFT}, {rc} FROM {frm(rf).format(D='{D}', kind='')} {on} "
                    f"WHERE {diff} <= {tol}"))
        # TOLERANCE 0: exact matches only
        zero = "0" if t == "ts" else "INTERVAL '0 seconds'"
        cases.append((
            f"{t}-ru->=-tolerance-0-duckdb-left",
            f"SELECT {LEFT}, {RIGHT_FULL} FROM {frm('ru').format(D='{D}', kind='LEFT ')} "
            f"ON l.k = r.k AND l.{t} >= r.{t} TOLERANCE {zero}",
            f"SELECT {LEFT}, {RIGHT_FULL} FROM '{{D}}/l.parquet' AS l LEFT JOIN '{{D}}/ru.parquet' AS r "
            f"ON l.k = r.k AND l.{t} = r.{t}"))
    return cases


TOLERANCE_CASES = tolerance_cases()


@pytest.mark.parametrize("name,sluice_sql,duck_sql", TOLERANCE_CASES, ids=[c[0] for c in TOLERANCE_CASES])
def test_asof_tolerance(sluice_bin, data, duck, name, sluice_sql, duck_sql):
    check(sluice_bin, data, duck, name, sluice_sql, duck_sql)


# --------------------------------------------------------------------------- TIEBREAK BY

def window_reference(t: str, op: str, order: str, right: str) -> str:
    """Nearest eligible right row per left row, ties ordered by `order`, by a window query."""
    nearest = "DESC" if op in (">=", ">") else "ASC"
    return f"""
        WITH cand AS (
            SELECT l.id AS cid, r.*,
                   row_number() OVER (PARTITION BY l.id ORDER BY r.{t} {nearest}, {order}) AS rn
            FROM '{{D}}/l.parquet' AS l JOIN '{{D}}/r.parquet' AS r
              ON l.k = r.k AND l.{t} {op} r.{t})
        SELECT {LEFT}, {right}
        FROM '{{D}}/l.parquet' AS l LEFT JOIN (SELECT * FROM cand WHERE rn = 1) AS r ON l.id = r.cid"""


TIE_RIGHT = "r.k AS r_k, r.{t} AS r_time, r.created AS r_created"


def tiebreak_cases():
    cases = []
    for t in TIMES:
        for op in OPS:
            mc = f"MATCH_CONDITION (l.{t} {op} r.{t}) ON l.k = r.k"
            rc = TIE_RIGHT.format(t=t)
            # rows with equal times and created NULL are interchangeable: compare created, not rid
            cases.append((
                f"{t}-{op}-tiebreak-created",
                f"SELECT {LEFT}, {rc} FROM {frm('r').format(D='{D}', kind='')} {mc} TIEBREAK BY r.created",
                window_reference(t, op, "r.created DESC NULLS LAST", rc)))
            # no TIEBREAK: sluice picks the highest other right columns; rid (unique) comes first
            cases.append((
                f"{t}-{op}-default-tiebreak",
                f"SELECT {LEFT}, {RIGHT_FULL} FROM {frm('r').format(D='{D}', kind='')} {mc}",
                window_reference(t, op, "r.rid DESC", RIGHT_FULL)))
        # an expression, and a list (a string first)
        cases.append((
            f"{t}->=-tiebreak-expression",
            f"SELECT {LEFT}, {TIE_RIGHT.format(t=t)} FROM {frm('r').format(D='{D}', kind='LEFT ')} "
            f"ON l.k = r.k AND l.{t} >= r.{t} TIEBREAK BY -r.created",
            window_reference(t, ">=", "-r.created DESC NULLS LAST", TIE_RIGHT.format(t=t))))
        cases.append((
            f"{t}-<-tiebreak-list",
            f"SELECT {LEFT}, r.k2 AS r_k2, {TIE_RIGHT.format(t=t)} "
            f"FROM {frm('r').format(D='{D}', kind='LEFT ')} "
            f"ON l.k = r.k AND l.{t} < r.{t} TIEBREAK BY r.k2, r.created",
            window_reference(t, "<", "r.k2 DESC NULLS LAST, r.created DESC NULLS LAST",
                             f"r.k2 AS r_k2, {TIE_RIGHT.format(t=t)}")))
    return cases


TIEBREAK_CASES = tiebreak_cases()


@pytest.mark.parametrize("name,sluice_sql,duck_sql", TIEBREAK_CASES, ids=[c[0] for c in TIEBREAK_CASES])
def test_asof_tiebreak(sluice_bin, data, duck, name, sluice_sql, duck_sql):
    check(sluice_bin, data, duck, name, sluice_sql, duck_sql)
