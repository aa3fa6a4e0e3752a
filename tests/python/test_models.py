"""Differential test: the example project's SQL models against DuckDB.

Copies the example project (sluice.toml, catalog/, sql/, tests/data/) into a
temporary directory, runs `sluice load` and `sluice build`, and compares every
model's result with the same features computed by DuckDB.

Both sides are independent of sluice's own engine and reader:
  * sluice's tables are read from <warehouse>/<schema>/<table> with
    deltalake-python (stg_transactions is a stored view, so it is read through
    a fresh `sluice sql` process instead);
  * the expected rows are computed by DuckDB straight from the raw files in
    catalog/data (typed as declared in catalog/sources.toml, NULL markers "" and
    "NULL"), never from sluice's tables, with each model's semantics rewritten
    in DuckDB SQL (ephemeral txn_enriched inlined as a LEFT JOIN).

Tables are compared as multisets of rows sorted by their key: integers and
strings exactly, floats with rel/abs tolerance 1e-9, NULL == NULL, timestamps
as UTC instants (int microseconds since the epoch; a zone-less timestamp such
as user_features.as_of_ts is read as UTC).
"""
import json
import math
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conftest import REPO_ROOT, copy_project, parse_json_output

DATA = REPO_ROOT / "catalog" / "data"
EPOCH, MICRO = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)
AS_OF = "TIMESTAMPTZ '2026-01-06 00:00:00+00'"

RAW = f"""
CREATE VIEW raw_transactions AS SELECT * FROM read_csv('{DATA}/transactions/*.csv',
    header=true, nullstr=['', 'NULL'], columns={{'txn_id': 'BIGINT', 'user_id': 'BIGINT',
    'merchant_id': 'BIGINT', 'amount': 'DECIMAL(12,2)', 'currency': 'VARCHAR', 'ts': 'TIMESTAMPTZ'}});
CREATE VIEW raw_users AS SELECT * FROM read_csv('{DATA}/users.csv',
    header=true, nullstr=['', 'NULL'], columns={{'user_id': 'BIGINT', 'signup_ts': 'TIMESTAMPTZ',
    'country': 'VARCHAR', 'birth_year': 'INTEGER', 'email_verified': 'BOOLEAN'}});
CREATE VIEW raw_merchants AS SELECT * FROM read_json('{DATA}/merchants.ndjson',
    format='newline_delimited', columns={{'merchant_id': 'BIGINT', 'name': 'VARCHAR',
    'category': 'VARCHAR', 'risk_tier': 'INTEGER', 'onboarded_at': 'TIMESTAMPTZ'}});
CREATE VIEW stg_transactions AS
    SELECT txn_id, user_id, merchant_id, amount,
           upper(currency) AS currency, ts
    FROM raw_transactions WHERE user_id IS NOT NULL;
CREATE VIEW stg_merchants AS
    SELECT merchant_id, name AS merchant_name, category, risk_tier FROM raw_merchants;
CREATE VIEW txn_enriched AS
    SELECT t.*, m.category, m.risk_tier
    FROM stg_transactions t LEFT JOIN stg_merchants m ON t.merchant_id = m.merchant_id;
"""

# "schema.table" -> (key columns, DuckDB query computing the expected rows)
EXPECTED = {
    "staging.stg_users": (["user_id"], """
        SELECT user_id, signup_ts, upper(country) AS country, birth_year,
               coalesce(email_verified, false) AS email_verified FROM raw_users"""),
    "staging.stg_merchants": (["merchant_id"], "SELECT * FROM stg_merchants"),
    "staging.stg_transactions": (["txn_id"], "SELECT * FROM stg_transactions"),
    "features.user_features": (["user_id"], f"""
        SELECT user_id,
               CAST({AS_OF} AT TIME ZONE 'UTC' AS TIMESTAMP) AS as_of_ts,
               count(*) AS txn_count, avg(amount) AS avg_amount, sum(amount) AS total_amount,
               stddev_samp(amount) AS stddev_amount, max(ts) AS last_txn_ts,
               (epoch({AS_OF}) - epoch(max(ts))) / 86400.0 AS days_since_last_txn,
               count(*) FILTER (WHERE ts >= {AS_OF} - INTERVAL 30 DAYS) AS txn_count_30d,
               coalesce(sum(amount) FILTER (WHERE ts >= {AS_OF} - INTERVAL 30 DAYS), 0) AS amount_30d
        FROM txn_enriched WHERE ts < {AS_OF} GROUP BY user_id"""),
    "features.user_txn_rolling": (["txn_id"], """
        SELECT txn_id, user_id, ts, amount,
               count(*) OVER w30 AS txn_count_30d, sum(amount) OVER w30 AS amount_30d,
               avg(amount) OVER w30 AS avg_amount_30d,
               count(*) OVER w1 AS txn_count_24h, sum(amount) OVER w1 AS amount_24h
        FROM stg_transactions
        WINDOW w30 AS (PARTITION BY user_id ORDER BY ts
                       RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW),
               w1 AS (PARTITION BY user_id ORDER BY ts
                      RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW)"""),
    "features.daily_user_spend": (["user_id", "txn_date"], """
        SELECT user_id, CAST(ts AT TIME ZONE 'UTC' AS DATE) AS txn_date,
               count(*) AS txn_count, sum(amount) AS amount
        FROM stg_transactions GROUP BY ALL"""),
    "features.merchant_features": (["merchant_id"], """
        SELECT merchant_id, max(category) AS category, max(risk_tier) AS risk_tier,
               count(*) AS txn_count, sum(amount) AS total_amount, max(ts) AS last_txn_ts
        FROM txn_enriched GROUP BY merchant_id"""),
}
MODELS = ["staging.stg_users", "staging.stg_merchants", "staging.stg_transactions",
          "staging.txn_enriched", "features.user_features", "features.user_txn_rolling",
          "features.daily_user_spend", "features.merchant_features"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, run_sluice) -> Path:
    project = copy_project(tmp_path_factory.mktemp("models") / "project")
    shutil.copytree(REPO_ROOT / "tests" / "data", project / "tests" / "data")
    run_sluice("--project", project, "load")  # check=True: non-zero exit fails with stdout/stderr
    run_sluice("--project", project, "build")
    return project


@pytest.fixture(scope="module")
def duck():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # only affects display; all date math above is explicit UTC
    con.execute(RAW)
    yield con
    con.close()


def normalize(table: pa.Table) -> list[dict]:
    """Rows as dicts; timestamps -> int microseconds since the epoch (UTC)."""
    cols = {}
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_timestamp(col.type):
            # tz-aware storage is already UTC; a zone-less value is taken as UTC wall time
            col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
        cols[name] = col.to_pylist()
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b and type(a) is type(b)


def assert_same_rows(name, keys, got: list[dict], expected: list[dict]):
    assert got and expected, f"{name}: empty result (got {len(got)}, expected {len(expected)})"
    assert list(got[0]) == list(expected[0]), f"{name}: columns {list(got[0])} != {list(expected[0])}"
    sort_key = lambda r: tuple(r[k] for k in keys)  # noqa: E731
    got, expected = sorted(got, key=sort_key), sorted(expected, key=sort_key)
    got_keys, exp_keys = [sort_key(r) for r in got], [sort_key(r) for r in expected]
    if got_keys != exp_keys:
        missing = sorted(set(exp_keys) - set(got_keys))[:5]
        extra = sorted(set(got_keys) - set(exp_keys))[:5]
        pytest.fail(f"{name}: key sets differ ({len(got)} rows in sluice, {len(expected)} in DuckDB); "
                    f"keys {keys} missing from sluice: {missing}; extra in sluice: {extra}"
                    + ("" if missing or extra else "; duplicate keys"))
    diffs = [(g, e) for g, e in zip(got, expected) if not all(same(g[c], e[c]) for c in g)]
    if diffs:
        g, e = diffs[0]
        cols = [c for c in g if not same(g[c], e[c])]
        pytest.fail(f"{name}: {len(diffs)} of {len(got)} rows differ; first at key "
                    f"{sort_key(e)} in columns {cols}\n  sluice: {g}\n  duckdb: {e}")


def sluice_rows(built, run_sluice, name) -> list[dict]:
    schema, table = name.split(".")
    if name == "staging.stg_transactions":  # a stored view: no Delta table to read
        rows = parse_json_output(run_sluice("--project", built, "sql", "--format", "json",
                                            f"SELECT * FROM {name}"))
        for r in rows:
            r["ts"] = (datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) - EPOCH) // MICRO
        return rows
    return normalize(DeltaTable(str(built / "warehouse" / schema / table)).to_pyarrow_table())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_model_matches_duckdb(built, duck, run_sluice, name):
    keys, query = EXPECTED[name]
    rel = duck.sql(query)
    # newer DuckDB: to_arrow_table() (fetch_arrow_table() is deprecated); older: only the latter
    expected = normalize(rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table())
    assert_same_rows(name, keys, sluice_rows(built, run_sluice, name), expected)


def test_view_persists_and_run_results(built, run_sluice, duck):
    # A fresh process sees the stored view (no in-memory state from `build`).
    rows = parse_json_output(run_sluice("--project", built, "sql", "--format", "json",
                                        "SELECT count(*) AS n FROM staging.stg_transactions"))
    assert rows == [{"n": 5000}], rows
    [(n,)] = duck.sql("SELECT count(*) FROM stg_transactions").fetchall()
    assert n == 5000

    results = json.loads((built / "target" / "run_results.json").read_text())["results"]
    status = {r["unique_id"].removeprefix("model.fraud_features."): r["status"]
              for r in results if r["unique_id"].startswith("model.")}
    assert sorted(status) == sorted(MODELS), status
    assert all(s == "success" for s in status.values()), status
    bad_tests = {r["unique_id"]: r["status"] for r in results
                 if r["unique_id"].startswith("test.") and r["status"] != "pass"}
    assert not bad_tests, bad_tests
