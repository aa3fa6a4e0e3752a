"""Stream feature views end to end: events produced to a real Kafka-protocol
broker (tansu) by confluent-kafka, `sluice stream` ingesting them and keeping
the view fresh in the online store, lookups through `sluice serve` with ADBC,
training sets with `historical_features`, and DuckDB computing the expected
windows from the events themselves.

The online value of an entity must equal the offline value for the same
instant (the `_event_time` a lookup reports), on random streams with
out-of-order events, events within and beyond the allowed lateness, NULL
keys and values: with the embedded store on a local warehouse and on S3, and
with Redis.
"""
import datetime
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from conftest import s3_env, s3_storage_options
from kafka_util import kafka_broker, kafka_project, produce  # noqa: F401
from test_flight import adbc_connect, rows, start_server, stop_server

VIEW = """{{ config(materialized='view', feature_view={'entities': ['user_id'],
    'event_timestamp': 'ts', 'stream': true, 'allowed_lateness': '10m'}) }}
SELECT user_id,
       count(*)      FILTER (WHERE ts > now() - INTERVAL '10 minutes') AS txn_count_10m,
       count(amount) FILTER (WHERE ts > now() - INTERVAL '30 minutes') AS amounts_30m,
       sum(amount)   FILTER (WHERE ts > now() - INTERVAL '1 hour')     AS amount_1h,
       avg(amount)   FILTER (WHERE ts > now() - INTERVAL '1 hour')     AS avg_amount_1h,
       min(amount)   FILTER (WHERE ts > now() - INTERVAL '1 day')      AS min_amount_1d,
       max(ts)       FILTER (WHERE ts > now() - INTERVAL '1 day')      AS last_seen_1d
FROM raw.events
WHERE coalesce(amount, 1) > 0.5
GROUP BY user_id
"""

FEATURES = ["txn_count_10m", "amounts_30m", "amount_1h", "avg_amount_1h", "min_amount_1d",
            "last_seen_1d"]

EXPECTED = """
SELECT u.user_id,
  count(e.ts) FILTER (WHERE e.ts > $t - INTERVAL 10 MINUTE) AS txn_count_10m,
  count(e.amount) FILTER (WHERE e.ts > $t - INTERVAL 30 MINUTE) AS amounts_30m,
  sum(e.amount) FILTER (WHERE e.ts > $t - INTERVAL 1 HOUR) AS amount_1h,
  avg(e.amount) FILTER (WHERE e.ts > $t - INTERVAL 1 HOUR) AS avg_amount_1h,
  min(e.amount) FILTER (WHERE e.ts > $t - INTERVAL 1 DAY) AS min_amount_1d,
  max(e.ts) FILTER (WHERE e.ts > $t - INTERVAL 1 DAY) AS last_seen_1d
FROM (SELECT unnest($users) AS user_id) u
LEFT JOIN (SELECT * FROM ev WHERE coalesce(amount, 1) > 0.5 AND ts <= $t
           AND ts > $t - INTERVAL 1 DAY) e ON u.user_id = e.user_id
GROUP BY u.user_id ORDER BY u.user_id
"""


def sluice(bin_, project, *args, env=None):
    full = dict(os.environ)
    full.update(env or {})
    r = subprocess.run([bin_, "--project", str(project), "--progress", "never", *map(str, args)],
                       capture_output=True, text=True, timeout=300, env=full)
    assert r.returncode == 0, f"sluice {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def stream_project(root: Path, brokers: str, topic: str, warehouse: str = "warehouse",
                   online: str = "") -> Path:
    """A project with the Kafka source `events` (250 ms trigger) into
    raw.events and a models folder."""
    kafka_project(root, brokers, topic, warehouse=warehouse, extra="trigger_ms = 250")
    (root / "models").mkdir()
    (root / "sluice.toml").write_text(
        f'[project]\nname = "sfv"\nmodels = "models"\n\n[warehouse]\nuri = "{warehouse}"\n{online}')
    return root


def iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Events:
    """Random events around now: out of order, some later than the allowed
    lateness, NULL users and amounts; kept to compute the expected values."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.sent = []
        self.next_id = 0

    def make(self, n: int, now: datetime.datetime):
        out = []
        for _ in range(n):
            r = self.rng.random()
            if r < 0.03:
                age = datetime.timedelta(days=self.rng.uniform(1.5, 3))  # beyond every window
            elif r < 0.5:
                age = datetime.timedelta(minutes=self.rng.uniform(0, 12))
            else:
                age = datetime.timedelta(minutes=self.rng.uniform(0, 26 * 60))
            user = None if self.rng.random() < 0.02 else self.rng.randrange(12)
            amount = None if self.rng.random() < 0.05 else round(self.rng.uniform(0, 100), 2)
            e = {"id": self.next_id, "user_id": user, "amount": amount, "ts": iso(now - age)}
            self.next_id += 1
            out.append(e)
        self.sent.extend(out)
        return [(None if e["user_id"] is None else str(e["user_id"]).encode(), e) for e in out]

    def expected(self, t_us: int, users):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE ev (user_id BIGINT, amount DOUBLE, ts TIMESTAMPTZ)")
        con.executemany("INSERT INTO ev VALUES (?, ?, ?::TIMESTAMPTZ)",
                        [(e["user_id"], e["amount"], e["ts"]) for e in self.sent])
        t = datetime.datetime.fromtimestamp(t_us / 1e6, datetime.timezone.utc)
        res = con.execute(EXPECTED, {"t": t, "users": list(users)}).fetchall()
        return {r[0]: r[1:] for r in res}


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def same(got: dict, want: dict, what: str):
    assert got.keys() == want.keys(), what
    for k in got:
        g, w = got[k], want[k]
        assert len(g) == len(w) and all(close(x, y) for x, y in zip(g, w)), (
            f"{what}: user {k}: {g} != {w}")


def lookup(conn, users):
    """One batch lookup: {user: features}, the instant and statuses."""
    got = rows(conn, f"SELECT user_id, {', '.join(FEATURES)}, _event_time, _status "
                     f"FROM online.user_stream WHERE user_id IN ({', '.join(map(str, users))})")
    t = {r[-2] for r in got}
    assert len(t) == 1, t
    t = t.pop()
    # microseconds exactly (timestamp() goes through a float)
    t_us = (t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(
        microseconds=1)
    return {r[0]: tuple(r[1:-2]) for r in got}, t_us, {r[0]: r[-1] for r in got}


def until_online_matches(conn, events, users, timeout, what):
    """Looks `users` up until the online values equal DuckDB's for the
    lookup's instant (the online store follows the table within a batch, or
    a restarted stream's rebuild); fails with the last difference after
    `timeout` seconds. Returns the last lookup."""
    deadline = time.time() + timeout
    while True:
        try:
            got, t_us, status = lookup(conn, users)
            same(got, events.expected(t_us, users), what)
            return got, t_us, status
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def offline(conn, users, t_us):
    labels = " UNION ALL ".join(
        f"SELECT CAST({u} AS BIGINT) AS user_id, "
        f"arrow_cast({t_us}, 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts" for u in users)
    got = rows(conn, f"SELECT user_id, {', '.join(FEATURES)} FROM historical_features("
                     f"'{labels.replace(chr(39), chr(39) * 2)}', 'user_stream') ORDER BY user_id")
    return {r[0]: tuple(r[1:]) for r in got}


def stop_stream(stream):
    """Stops `sluice stream` as Ctrl-C does (killed if it does not exit)."""
    stream.send_signal(signal.SIGINT)
    try:
        stream.wait(30)
    except subprocess.TimeoutExpired:
        stream.kill()


def table_count(uri, storage_options=None) -> int:
    return DeltaTable(uri, storage_options=storage_options).to_pyarrow_table().num_rows


def wait_rows(uri, n, storage_options=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if table_count(uri, storage_options) >= n:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{uri} did not reach {n} rows in {timeout} s")


VARIANTS = ["local-embedded", "local-redis", "s3-embedded"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_online_equals_offline_on_random_streams(sluice_bin, kafka_broker, tmp_path, variant,
                                                  request):
    env, storage_options = {}, None
    online = ""
    if variant.endswith("redis"):
        url = os.environ.get("SLUICE_TEST_REDIS_URL")
        if not url:
            if os.environ.get("SLUICE_REQUIRE_REDIS") == "1":
                pytest.fail("SLUICE_TEST_REDIS_URL is not set (tests/run.sh starts redis-server)")
            pytest.skip("SLUICE_TEST_REDIS_URL is not set (tests/run.sh starts redis-server)")
        online = f'\n[online]\nstore = "redis"\nredis_url = "{url}"\nkey_prefix = "t{uuid.uuid4().hex[:8]}"\n'
    if variant.startswith("s3"):
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        warehouse = f"s3://{bucket}/wh"
        env = s3_env(endpoint)
        storage_options = s3_storage_options(endpoint)
        uri = f"{warehouse}/raw/events"
    else:
        warehouse = "warehouse"
        uri = str(tmp_path / "p" / "warehouse" / "raw" / "events")
    topic = f"sfv_{variant.replace('-', '_')}"
    kafka_broker.create_topic(topic, 3)
    project = stream_project(tmp_path / "p", kafka_broker.address, topic, warehouse, online)
    (project / "models" / "user_stream.sql").write_text(VIEW)

    events = Events(seed=hash(variant) % 1000)
    producer = kafka_broker.producer("lz4")
    produce(producer, topic, events.make(400, datetime.datetime.now(datetime.timezone.utc)), 3)
    sluice(sluice_bin, project, "load", "events", env=env)
    sluice(sluice_bin, project, "run", env=env)

    stream_err = open(tmp_path / "stream.stderr", "w")
    full_env = dict(os.environ)
    full_env.update(env)
    stream = subprocess.Popen([sluice_bin, "--project", str(project), "stream"],
                              stdout=subprocess.PIPE, stderr=stream_err, text=True, env=full_env)
    server = start_server(sluice_bin, project, env)
    users = list(range(12)) + [404]
    try:
        with adbc_connect(server, user=None) as conn:
            # Before any new event: the state rebuilt from the table.
            deadline = time.time() + 30
            while True:
                try:
                    got, t_us, status = lookup(conn, users)
                    break
                except Exception as e:  # the stream has not written the store yet
                    if time.time() > deadline:
                        raise AssertionError(
                            f"{e}\n{(tmp_path / 'stream.stderr').read_text()}") from e
                    time.sleep(0.3)
            same(got, offline(conn, users, t_us), "online vs offline (rebuilt)")
            same(got, events.expected(t_us, users), "online vs DuckDB (rebuilt)")
            assert status[404] == "not_found" and got[404][0] == 0 and got[404][2] is None

            # Bursts while streaming, out of order.
            for burst in range(4):
                produce(producer, topic,
                        events.make(500, datetime.datetime.now(datetime.timezone.utc)), 3)
                time.sleep(0.3)
            wait_rows(uri, len(events.sent), storage_options)
            # The commit is in the table; the online store follows within a batch.
            got, t_us, status = until_online_matches(conn, events, users, 20, "online vs DuckDB")
            same(got, offline(conn, users, t_us), "online vs offline")
            assert any(status[u] == "present" for u in range(12))

            # A window slides with the clock: an event 9m40s old counts in
            # the 10-minute window, then leaves it with no new event.
            now = datetime.datetime.now(datetime.timezone.utc)
            e = {"id": 10**9, "user_id": 777, "amount": 5.0,
                 "ts": iso(now - datetime.timedelta(minutes=9, seconds=40))}
            events.sent.append(e)
            produce(producer, topic, [(b"777", e)], 3)
            deadline = time.time() + 15
            while True:
                got, t_us, _ = lookup(conn, [777])
                if got[777][0] == 1 or time.time() > deadline:
                    break
                time.sleep(0.1)
            assert got[777][0] == 1 and got[777][2] == 5.0, got
            time.sleep(max(0.0, 20.5 - (time.time() - now.timestamp())))
            got, t_us, status = lookup(conn, [777])
            assert got[777][0] == 0 and got[777][2] == 5.0, got
            same(got, events.expected(t_us, [777]), "after sliding")
            same(got, offline(conn, [777], t_us), "after sliding, offline")
    finally:
        stop_stream(stream)
        stop_server(server)
        stream_err.close()
    assert stream.returncode == 0, (tmp_path / "stream.stderr").read_text()
    # Every event is in the table, those beyond the lateness included.
    assert table_count(uri, storage_options) == len(events.sent)


def test_stream_view_errors(sluice_bin, kafka_broker, tmp_path):
    """A stream view that cannot be computed online is refused by `sluice run`
    with the model and the fix, before anything is registered."""
    topic = "sfv_errors"
    kafka_broker.create_topic(topic, 1)
    project = stream_project(tmp_path / "p", kafka_broker.address, topic)
    produce(kafka_broker.producer(), topic,
            [(None, {"id": 1, "user_id": 1, "amount": 1.0, "ts": iso(datetime.datetime.now(
                datetime.timezone.utc))})], 1)
    sluice(sluice_bin, project, "load", "events")
    cases = [
        ("SELECT user_id, count(*) OVER (PARTITION BY user_id) AS n FROM raw.events",
         "GROUP BY must list the entity columns"),
        ("SELECT user_id, median(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS m "
         "FROM raw.events GROUP BY user_id", "median"),
        ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n "
         "FROM raw.nope GROUP BY user_id", "raw.nope"),
        ("SELECT amount, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n "
         "FROM raw.events GROUP BY amount", "cannot be an entity key"),
    ]
    for sql, needle in cases:
        entity = sql.split()[1].rstrip(",")
        (project / "models" / "bad.sql").write_text(
            "{{ config(materialized='view', feature_view={'entities': ['" + entity + "'], "
            "'event_timestamp': 'ts', 'stream': true}) }}\n" + sql)
        full = dict(os.environ)
        r = subprocess.run([sluice_bin, "--project", str(project), "--progress", "never", "run"],
                           capture_output=True, text=True, timeout=120, env=full)
        assert r.returncode != 0, r.stdout
        assert needle in r.stdout + r.stderr, r.stdout + r.stderr
        assert "bad" in r.stdout + r.stderr
    assert not (project / "warehouse" / "_sluice" / "features").exists() or not list(
        (project / "warehouse" / "_sluice" / "features").iterdir())


def test_a_view_registered_while_streaming_is_picked_up(sluice_bin, kafka_broker, tmp_path):
    """`sluice run` of a new stream view while `sluice stream` runs: within
    seconds the stream keeps it online, without a restart."""
    topic = "sfv_late_view"
    kafka_broker.create_topic(topic, 2)
    project = stream_project(tmp_path / "p", kafka_broker.address, topic)
    producer = kafka_broker.producer()
    now = datetime.datetime.now(datetime.timezone.utc)
    produce(producer, topic, [(b"1", {"id": 1, "user_id": 1, "amount": 2.0, "ts": iso(now)})], 2)
    sluice(sluice_bin, project, "load", "events")
    err = open(tmp_path / "stream.stderr", "w")
    stream = subprocess.Popen([sluice_bin, "--project", str(project), "stream"],
                              stdout=subprocess.DEVNULL, stderr=err)
    try:
        (project / "models" / "user_stream.sql").write_text(VIEW)
        sluice(sluice_bin, project, "run")
        assert "stream view: kept fresh by `sluice stream`" in sluice(
            sluice_bin, project, "features", "list")
        r = subprocess.run([sluice_bin, "--project", str(project), "materialize", "user_stream"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "is a stream feature view" in r.stderr, r.stderr
        produce(producer, topic, [(b"1", {"id": 2, "user_id": 1, "amount": 3.0,
                                          "ts": iso(datetime.datetime.now(datetime.timezone.utc))})], 2)
        deadline = time.time() + 30
        out = ""
        while time.time() < deadline:
            r = subprocess.run([sluice_bin, "--project", str(project), "--progress", "never", "sql",
                                "--format", "csv",
                                "SELECT txn_count_10m, amount_1h FROM online.user_stream WHERE user_id = 1"],
                               capture_output=True, text=True, timeout=60)
            out = r.stdout + r.stderr
            if r.returncode == 0 and "2,5.0" in out:
                break
            time.sleep(0.5)
        assert "2,5.0" in out, out + (tmp_path / "stream.stderr").read_text()
    finally:
        stream.send_signal(signal.SIGINT)
        stream.wait(30)
        err.close()


def test_sigkill_and_restart_keep_online_equal_to_offline(sluice_bin, kafka_broker, tmp_path):
    """`sluice stream` killed with SIGKILL while events arrive, then started
    again: the table has every event once, and the online values a server
    that ran throughout reads (a new generation of the store) equal the
    offline ones and DuckDB's."""
    topic = "sfv_sigkill"
    kafka_broker.create_topic(topic, 3)
    project = stream_project(tmp_path / "p", kafka_broker.address, topic)
    (project / "models" / "user_stream.sql").write_text(VIEW)
    uri = str(project / "warehouse" / "raw" / "events")
    events = Events(seed=4242)
    producer = kafka_broker.producer("lz4")
    produce(producer, topic, events.make(300, datetime.datetime.now(datetime.timezone.utc)), 3)
    sluice(sluice_bin, project, "load", "events")
    sluice(sluice_bin, project, "run")

    def start():
        err = open(tmp_path / "stream.stderr", "a")
        return subprocess.Popen([sluice_bin, "--project", str(project), "stream"],
                                stdout=subprocess.DEVNULL, stderr=err)

    stream = start()
    server = start_server(sluice_bin, project, {})
    users = list(range(12))
    try:
        with adbc_connect(server, user=None) as conn:
            for kill_round in range(2):
                # Bursts while the stream runs; killed in the middle of them.
                for burst in range(6):
                    produce(producer, topic,
                            events.make(400, datetime.datetime.now(datetime.timezone.utc)), 3)
                    time.sleep(0.15)
                    if burst == 3:
                        stream.send_signal(signal.SIGKILL)
                        stream.wait(10)
                time.sleep(0.5)
                stream = start()
            wait_rows(uri, len(events.sent))
            got, t_us, _ = until_online_matches(conn, events, users, 30,
                                                "online vs DuckDB after SIGKILL")
            same(got, offline(conn, users, t_us), "online vs offline after SIGKILL")
    finally:
        stop_stream(stream)
        stop_server(server)
    ids = DeltaTable(uri).to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(events.sent) == len(set(ids)), (len(ids), len(set(ids)))
