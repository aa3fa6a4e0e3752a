"""Online feature lookups over Flight SQL with real clients.

A temporary project with one feature view (`user_stats`, incremental append,
'online': true) and a feature service is built with `sluice run` (which
materializes the view), served with `sluice serve`, and read by ADBC
(prepared statements with `?` parameters) and flightsql-dbapi. A second
batch with a late row is then run while the server keeps serving: the server
sees the new values without a restart, and the late row never replaces a
newer value.
"""
import datetime
import subprocess
from pathlib import Path

import pytest

from test_flight import adbc_connect, rows, start_server, stop_server

VIEW = """{{ config(materialized='incremental', incremental_strategy='append',
    feature_view={'entities': ['user_id'], 'event_timestamp': 'ts', 'ttl': '7d', 'online': true}) }}
SELECT user_id, ts, spend, visits, segment, batch FROM raw.events
{% if is_incremental() %} WHERE batch > (SELECT max(batch) FROM {{ this }}) {% endif %}
"""


def ago(hours: float) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours)
    return f"arrow_cast('{t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}', 'Timestamp(Microsecond, Some(\"UTC\"))')"


def sluice(bin_: str, project: Path, *args: str) -> str:
    r = subprocess.run([bin_, "--project", str(project), "--progress", "never", *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"sluice {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def online_server(sluice_bin, tmp_path_factory):
    project = tmp_path_factory.mktemp("online")
    (project / "sluice.toml").write_text(
        '[project]\nname = "online"\nmodels = "models"\n\n'
        '[warehouse]\nuri = "warehouse"\ndefault_schema = "raw"\n\n'
        '[feature_services.scoring]\nfeatures = ["user_stats:spend", "user_stats:segment"]\n'
    )
    (project / "models").mkdir()
    (project / "models" / "user_stats.sql").write_text(VIEW)
    sluice(sluice_bin, project, "sql",
           "CREATE TABLE raw.events AS SELECT * FROM (VALUES "
           f"(1, {ago(5)}, 10.5, 3, 'gold', 1), (1, {ago(2)}, 12.5, 4, 'gold', 1), "
           f"(2, {ago(30)}, 7.0, 1, 'new', 1), (3, {ago(24 * 8)}, 99.0, 9, 'old', 1)) "
           "v(user_id, ts, spend, visits, segment, batch)")
    out = sluice(sluice_bin, project, "run")
    assert "user_stats" in out
    server = start_server(sluice_bin, project, {})
    yield server, project
    stop_server(server)


def test_prepared_lookup_by_key(online_server):
    server, _ = online_server
    with adbc_connect(server, user=None) as conn:
        sql = "SELECT user_id, spend, visits, segment, _status FROM online.user_stats WHERE user_id = ?"
        assert rows(conn, sql, (1,)) == [(1, 12.5, 4, "gold", "present")]
        assert rows(conn, sql, (2,)) == [(2, 7.0, 1, "new", "present")]
        # older than the 7-day TTL: reported, features NULL (as in a training set)
        assert rows(conn, sql, (3,)) == [(3, None, None, None, "outside_ttl")]
        assert rows(conn, sql, (404,)) == [(404, None, None, None, "not_found")]
        # a batch of keys in one call, event times included
        got = rows(conn, "SELECT user_id, _status, _event_time FROM online.user_stats "
                         "WHERE user_id IN (1, 2, 404) ORDER BY user_id")
        assert [(r[0], r[1]) for r in got] == [(1, "present"), (2, "present"), (404, "not_found")]
        assert got[0][2] is not None and got[2][2] is None
        now = datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(hours=1.9) < now - got[0][2] < datetime.timedelta(hours=2.1)
        # Lookups are answered without planning (the server's query log says
        # `path="lookup"`); they equal the same query planned (an ORDER BY
        # takes it off the lookup path).
        for key in (1, 2, 3, 404):
            planned = sql.replace("?", str(key)) + " ORDER BY user_id"
            assert rows(conn, sql, (key,)) == rows(conn, planned)
    log = server.stderr_path.read_text()
    assert 'path="lookup"' in log, log[-3000:]
    assert 'path="planned"' in log and "ORDER BY user_id" in log


def test_service_and_errors(online_server):
    server, _ = online_server
    with adbc_connect(server, user=None) as conn:
        got = rows(conn, "SELECT * FROM online.scoring WHERE user_id = ?", (1,))
        assert got[0][:3] == (1, 12.5, "gold")
        assert got[0][4] == "present"
        with conn.cursor() as cur:
            with pytest.raises(Exception, match="read by key"):
                cur.execute("SELECT * FROM online.user_stats")
                cur.fetchall()


def test_online_tables_are_listed(online_server):
    """GetDbSchemas / GetTables list the online store's views and services, with their columns."""
    server, _ = online_server
    with adbc_connect(server, user=None) as conn:
        objs = conn.adbc_get_objects(depth="all", db_schema_filter="online").read_all().to_pylist()
        tables = {t["table_name"]: t for c in objs for s in c["catalog_db_schemas"]
                  for t in s["db_schema_tables"]}
        assert {"user_stats", "scoring"} <= set(tables), tables.keys()
        cols = [c["column_name"] for c in tables["user_stats"]["table_columns"]]
        assert {"user_id", "spend", "_status", "_event_time"} <= set(cols), cols


def test_dbapi_client(online_server):
    server, _ = online_server
    from flightsql import FlightSQLClient, connect

    client = FlightSQLClient(host="127.0.0.1", port=server.port, insecure=True)
    conn = connect(client)
    cur = conn.cursor()
    cur.execute("SELECT spend, _status FROM online.user_stats WHERE user_id = ?", [2])
    assert [tuple(r) for r in cur.fetchall()] == [(7.0, "present")]
    conn.close()


def test_new_values_without_restart_and_late_rows(online_server, sluice_bin):
    server, project = online_server
    with adbc_connect(server, user=None) as conn, conn.cursor() as cur:
        # One cursor: ADBC keeps the prepared statement between executions, so
        # the server must read the view's current values at each execution.
        sql = "SELECT spend, batch FROM online.user_stats WHERE user_id = ?"

        def lookup(user):
            cur.execute(sql, (user,))
            return cur.fetchall()

        assert lookup(1) == [(12.5, 1)]
        assert lookup(2) == [(7.0, 1)]
        # Batch 2: a late row for user 1 (older than the stored value) and a
        # newer row for user 2. `run` materializes incrementally.
        sluice(sluice_bin, project, "sql",
               f"INSERT INTO raw.events VALUES (1, {ago(3)}, 500.0, 5, 'late', 2), "
               f"(2, {ago(1)}, 8.0, 2, 'new', 2)")
        sluice(sluice_bin, project, "run")
        out = sluice(sluice_bin, project, "materialize", "--format", "json")
        assert '"up to date"' in out
        assert lookup(1) == [(12.5, 1)]
        assert lookup(2) == [(8.0, 2)]
        # A rebuild replaces the snapshot the prepared statement first read.
        sluice(sluice_bin, project, "materialize", "--full")
        assert lookup(2) == [(8.0, 2)]


def test_cli_shows_online_state_and_services(online_server, sluice_bin):
    _, project = online_server
    out = sluice(sluice_bin, project, "features", "show", "scoring")
    assert "feature service scoring" in out and "user_stats:spend" in out
    out = sluice(sluice_bin, project, "features", "show", "user_stats")
    assert "online:" in out and "entities from table v" in out
    out = sluice(sluice_bin, project, "features", "list")
    assert "feature services" in out and "scoring" in out
