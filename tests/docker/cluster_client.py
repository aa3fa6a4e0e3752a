"""Queries a sluice cluster's coordinator over Flight SQL (ADBC), for
tests/docker/test_cluster.sh. Prints what it checked; exits non-zero on a
wrong answer.

    cluster_client.py URI USER PASSWORD smoke PROJECT_DIR
    cluster_client.py URI USER PASSWORD make-big ROWS
    cluster_client.py URI USER PASSWORD big ROWS [ATTEMPTS]
    cluster_client.py URI USER PASSWORD big-fails ROWS WORKER_URL SECONDS

`make-big` writes raw.cluster_big (ROWS rows, ~52 bytes each): the example's
tables are far too small for the distributed planner to give a scan more than
one task (it runs such a plan in the coordinator and never calls a worker),
and `SET distributed...` is refused over Flight SQL.
"""

import glob
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")  # ADBC: "Cannot disable autocommit"

import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402

BIG = "raw.cluster_big"
BIG_QUERY = f"SELECT k, count(*) AS n, sum(id) AS s FROM {BIG} GROUP BY k ORDER BY k"


def connect(uri, user, password):
    return flightsql.connect(uri, db_kwargs={"username": user, "password": password})


def query(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetch_arrow_table().to_pylist()
    finally:
        cur.close()


def check(what, got, want):
    if got != want:
        sys.exit(f"FAIL {what}: got {got!r}, want {want!r}")
    print(f"ok   {what}: {got!r}")


def expected_big(rows):
    """count and sum of id over 1..rows, per id % 7."""
    out = []
    for k in range(7):
        first = k if k > 0 else 7
        n = 0 if first > rows else (rows - first) // 7 + 1
        s = n * first + 7 * n * (n - 1) // 2
        out.append({"k": k, "n": n, "s": s})
    return out


def smoke(conn, project):
    files = sorted(glob.glob(os.path.join(project, "catalog/data/transactions/*.csv")))
    want = 0
    for f in files:
        with open(f) as fh:
            want += sum(1 for line in fh if line.strip()) - 1  # header
    rows = query(conn, "SELECT count(*) AS n FROM raw.transactions")
    check("SELECT count(*) FROM raw.transactions", rows[0]["n"], want)
    rows = query(
        conn,
        "SELECT currency, count(*) AS n, sum(amount) AS total FROM raw.transactions "
        "GROUP BY currency ORDER BY currency",
    )
    check("group by currency: rows add up", sum(r["n"] for r in rows), want)
    print(f"     {rows}")
    rows = query(conn, "SELECT count(*) AS n FROM features.user_features")
    if rows[0]["n"] <= 0:
        sys.exit("FAIL features.user_features is empty (init did not build the models?)")
    print(f"ok   features.user_features: {rows[0]['n']} rows")


def make_big(conn, rows):
    t = time.monotonic()
    query(
        conn,
        f"CREATE TABLE {BIG} AS SELECT value AS id, value % 7 AS k, "
        "md5(CAST(value AS VARCHAR)) AS h1, sha256(CAST(value AS VARCHAR)) AS h2 "
        f"FROM generate_series(1, {rows})",
    )
    print(f"ok   CREATE TABLE {BIG} ({rows} rows) in {time.monotonic() - t:.1f}s")
    plan = query(conn, "EXPLAIN " + BIG_QUERY)
    text = "\n".join(r["plan"] for r in plan if r["plan_type"] == "distributed_plan")
    if "tasks=2" not in text:
        print(text)
        sys.exit(
            "FAIL the distributed plan has no stage with 2 tasks (see above): "
            "the table is too small for this machine's CPU count, raise ROWS"
        )
    print("ok   EXPLAIN: the scan runs as 2 tasks (both workers)")


def big(conn, rows, attempts=1):
    for attempt in range(1, attempts + 1):
        t = time.monotonic()
        try:
            got = query(conn, BIG_QUERY)
        except Exception as e:  # noqa: BLE001
            if attempt == attempts:
                raise
            print(f"WARN attempt {attempt} failed after {time.monotonic() - t:.1f}s: {e}")
            continue
        check(f"group by over both workers ({time.monotonic() - t:.1f}s)", got, expected_big(rows))
        return


def big_fails(conn, rows, worker, seconds):
    want = f"worker {worker}"
    t = time.monotonic()
    try:
        got = query(conn, BIG_QUERY)
    except Exception as e:  # noqa: BLE001 - any error; its text is checked
        took = time.monotonic() - t
        text = str(e)
        print(f"     error after {took:.1f}s: {text}")
        if want not in text:
            sys.exit(f"FAIL the error does not name the worker (`{want}`)")
        if took > seconds:
            sys.exit(f"FAIL the error took {took:.1f}s (more than {seconds}s)")
        print(f"ok   the query fails within {seconds}s naming `{want}`")
        return
    sys.exit(f"FAIL the query succeeded without {worker}: {got!r}")


def main():
    uri, user, password, command, *args = sys.argv[1:]
    conn = connect(uri, user, password)
    try:
        if command == "smoke":
            smoke(conn, args[0])
        elif command == "make-big":
            make_big(conn, int(args[0]))
        elif command == "big":
            big(conn, int(args[0]), int(args[1]) if len(args) > 1 else 1)
        elif command == "big-fails":
            big_fails(conn, int(args[0]), args[1], float(args[2]))
        else:
            sys.exit(f"unknown command {command}")
    finally:
        conn.close()


if __name__ == "__main__":
    main()
