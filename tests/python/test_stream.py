"""Kafka topics into Delta exactly once, against a real Kafka-protocol broker
(tansu) fed by confluent-kafka with compression, checked with Python
deltalake (rows, no duplicates, the `txn` offsets).
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from conftest import s3_env, s3_storage_options
from kafka_util import event, kafka_broker, kafka_project, produce  # noqa: F401


def sluice(bin_, project, *args, env=None, check=True):
    full = dict(os.environ)
    full.update(env or {})
    r = subprocess.run([bin_, "--project", str(project), "--progress", "never", *map(str, args)],
                       capture_output=True, text=True, timeout=300, env=full)
    if check:
        assert r.returncode == 0, f"sluice {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def start_stream(bin_, project, *args, env=None):
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.Popen([bin_, "--project", str(project), "--progress", "never", "stream",
                             "--format", "json", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def table_rows(uri, storage_options=None):
    return DeltaTable(uri, storage_options=storage_options).to_pyarrow_table()


def bad_offsets(sent):
    """{partition: offsets} of the records of `sent` that are not events."""
    def good(v):
        return isinstance(v, dict) and isinstance(v.get("id"), int)
    return {p: {o for o, v in enumerate(vals) if not good(v)} for p, vals in sent.items()}


def check_exactly_once(uri, sent, storage_options=None, topic=None, source="events"):
    """The table holds each good record of `sent` ({partition: [values]}) once,
    and its txn offsets are each partition's last offset."""
    t = table_rows(uri, storage_options)
    keys = list(zip(t["_kafka_partition"].to_pylist(), t["_kafka_offset"].to_pylist()))
    assert len(keys) == len(set(keys)), "a record was written twice"
    bad = bad_offsets(sent)
    expected = {(p, o) for p, vals in sent.items() for o in range(len(vals))
                if o not in bad[p]}
    assert set(keys) == expected, (
        f"missing {sorted(expected - set(keys))[:10]}, extra {sorted(set(keys) - expected)[:10]}")
    # The rows are the records sent at those offsets.
    by_key = dict(zip(keys, t["id"].to_pylist()))
    for (p, o), i in list(by_key.items())[:2000]:
        assert sent[p][o]["id"] == i
    dt = DeltaTable(uri, storage_options=storage_options)
    for p, vals in sent.items():
        if vals and topic:
            assert dt.transaction_version(f"sluice-stream:{source}:{topic}:{p}") == len(vals) - 1
    return t


def test_load_catches_up_and_quarantines(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_a"
    kafka_broker.create_topic(topic, 3)
    recs = []
    for i in range(3000):
        if i % 250 == 7:
            recs.append((b"k", {"id": "not a number", "user_id": 1}))
        elif i % 400 == 11:
            recs.append((b"k", "{not json"))
        elif i == 1234:
            recs.append((b"k", None))
        else:
            recs.append((str(i % 13).encode(), event(i)))
    sent = produce(kafka_broker.producer("zstd"), topic, recs, 3)
    bad = bad_offsets(sent)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic)
    out = sluice(sluice_bin, project, "load", "--format", "json").stdout
    report = json.loads(out)["sources"][0]
    n_bad = sum(len(v) for v in bad.values())
    assert report["rows_loaded"] == 3000 - n_bad
    assert report["rows_rejected"] == n_bad
    uri = str(project / "warehouse" / "raw" / "events")
    t = check_exactly_once(uri, sent, topic=topic)
    assert t["_kafka_key"].to_pylist()[0] is not None
    rej = table_rows(str(project / "warehouse" / "raw" / "events__rejected"))
    got = sorted(zip(rej["partition"].to_pylist(), rej["offset"].to_pylist()))
    assert got == sorted((p, o) for p, s in bad.items() for o in s)
    reasons = rej["reason"].to_pylist()
    assert any("BIGINT" in r for r in reasons), reasons
    assert all(r for r in reasons)
    # Again: nothing new, nothing twice.
    again = json.loads(sluice(sluice_bin, project, "load", "--format", "json").stdout)
    assert again["sources"][0]["rows_loaded"] == 0
    check_exactly_once(uri, sent, topic=topic)
    assert len(table_rows(str(project / "warehouse" / "raw" / "events__rejected"))) == n_bad
    # Status: caught up.
    st = json.loads(sluice(sluice_bin, project, "stream", "--status", "--format", "json").stdout)
    parts = st[0]["partitions"]
    assert [p["lag_records"] for p in parts] == [0, 0, 0]
    assert [p["loaded_offset"] for p in parts] == [len(sent[p]) - 1 for p in range(3)]


def test_sigkill_mid_stream_and_restart_is_exactly_once(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_kill"
    kafka_broker.create_topic(topic, 3)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic,
                            extra="max_batch_records = 700")
    total = 24000
    sent = {p: [] for p in range(3)}

    def producer():
        prod = kafka_broker.producer("lz4")
        for chunk in range(24):
            recs = []
            for i in range(chunk * 1000, (chunk + 1) * 1000):
                if i % 997 == 5:
                    recs.append((None, {"id": "x"}))
                else:
                    recs.append((None, event(i)))
            part = produce(prod, topic, recs, 3)
            for p, v in part.items():
                sent[p].extend(v)
            time.sleep(0.2)

    th = threading.Thread(target=producer)
    th.start()
    rng = random.Random(7)
    kills = 0
    while th.is_alive() or kills < 4:
        proc = start_stream(sluice_bin, project, "--trigger-ms", "150")
        time.sleep(rng.uniform(0.4, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    th.join()
    assert sum(len(v) for v in sent.values()) == total
    sluice(sluice_bin, project, "load")
    uri = str(project / "warehouse" / "raw" / "events")
    check_exactly_once(uri, sent, topic=topic)
    bad = bad_offsets(sent)
    rej = table_rows(str(project / "warehouse" / "raw" / "events__rejected"))
    got = list(zip(rej["partition"].to_pylist(), rej["offset"].to_pylist()))
    assert len(got) == len(set(got)), "a rejected record was quarantined twice"
    assert set(got) == {(p, o) for p, s in bad.items() for o in s}
    # The kills really interrupted streams that had committed something.
    hist = DeltaTable(uri).history()
    assert sum(1 for h in hist if h.get("operation") == "STREAMING UPDATE") >= kills


def test_two_ingesters_write_nothing_twice(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_two"
    kafka_broker.create_topic(topic, 3)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic)
    a = start_stream(sluice_bin, project, "--trigger-ms", "100")
    b = start_stream(sluice_bin, project, "--trigger-ms", "100")
    prod = kafka_broker.producer("snappy")
    sent = {p: [] for p in range(3)}
    for chunk in range(10):
        part = produce(prod, topic, [(None, event(i)) for i in range(chunk * 800, (chunk + 1) * 800)], 3)
        for p, v in part.items():
            sent[p].extend(v)
        time.sleep(0.3)
    uri = str(project / "warehouse" / "raw" / "events")
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if len(table_rows(uri)) >= 8000:
                break
        except Exception:
            pass
        time.sleep(0.3)
    reports = []
    for proc in (a, b):
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        reports.append(json.loads(out)[0])
    check_exactly_once(uri, sent, topic=topic)
    assert sum(r["rows_loaded"] for r in reports) == 8000
    # Both ran against the same table; whichever lost a race dropped its batch.
    print("outdated batches:", [r["batches_outdated"] for r in reports],
          "batches:", [r["batches"] for r in reports])


def test_sigterm_commits_the_batch_in_flight(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_term"
    kafka_broker.create_topic(topic, 2)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic)
    # A long trigger: the records are still in the open batch at SIGTERM.
    proc = start_stream(sluice_bin, project, "--trigger-ms", "30000")
    time.sleep(1.0)
    sent = produce(kafka_broker.producer("gzip"), topic, [(None, event(i)) for i in range(500)], 2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out)[0]["rows_loaded"] == 500
    check_exactly_once(str(project / "warehouse" / "raw" / "events"), sent, topic=topic)


def test_start_latest_and_new_columns(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_latest"
    kafka_broker.create_topic(topic, 1)
    produce(kafka_broker.producer(), topic, [(None, event(i)) for i in range(100)], 1)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic, extra='start = "latest"')
    r = json.loads(sluice(sluice_bin, project, "load", "--format", "json").stdout)
    assert r["sources"][0]["rows_loaded"] == 0
    produce(kafka_broker.producer(), topic,
            [(None, dict(event(i), extra="x", note=f"n{i}")) for i in range(100, 130)], 1)
    # A column declared later is added to the table.
    cat = project / "catalog" / "sources.toml"
    cat.write_text(cat.read_text() + '\n[[source.columns]]\nname = "note"\ntype = "varchar"\n')
    r = json.loads(sluice(sluice_bin, project, "load", "--format", "json").stdout)
    assert r["sources"][0]["rows_loaded"] == 30
    t = table_rows(str(project / "warehouse" / "raw" / "events"))
    assert sorted(t["id"].to_pylist()) == list(range(100, 130))
    assert sorted(t["note"].to_pylist()) == sorted(f"n{i}" for i in range(100, 130))
    assert "extra" not in t.column_names


def test_csv_lines(sluice_bin, kafka_broker, tmp_path):
    """format = "csv": one line per record (as a producer writing CSV lines
    sends them, gzip on); bad lines quarantined with partition and offset."""
    topic = "orders_csv"
    kafka_broker.create_topic(topic, 2)
    good = [f"{i},{i % 7},{i * 0.5},2026-12-05T10:00:{i % 60:02d}Z" for i in range(500)]
    recs = [(None, line) for line in good]
    recs[10] = (None, "ten,1,1.0,2026-12-05T10:00:00Z")          # id not a number
    recs[11] = (None, '11,1,"1.0\n12,1,1.0,2026-12-05T10:00:00Z')  # a quote open over a line
    recs[12] = (None, "12,1")                                       # too few fields
    recs[13] = (None, ",1,1.0,2026-12-05T10:00:00Z")               # id is not_null
    recs[14] = (None, '14,1,"2.5",2026-12-05T10:00:00Z\r\n')      # quoted, CRLF: fine
    sent = produce(kafka_broker.producer("gzip"), topic, recs, 2)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic)
    cat = project / "catalog" / "sources.toml"
    cat.write_text(cat.read_text().replace('format = "json"', 'format = "csv"'))
    r = json.loads(sluice(sluice_bin, project, "load", "--format", "json").stdout)
    assert r["sources"][0]["rows_loaded"] == 496, r
    assert r["sources"][0]["rows_rejected"] == 4, r
    t = table_rows(str(project / "warehouse" / "raw" / "events"))
    ids = sorted(t["id"].to_pylist())
    assert ids == [i for i in range(500) if i not in (10, 11, 12, 13)]
    row14 = t.filter(pc.equal(t["id"], 14)).to_pylist()[0]
    assert row14["amount"] == 2.5 and row14["user_id"] == 1
    rej = table_rows(str(project / "warehouse" / "raw" / "events__rejected"))
    where = {(p, o) for p, vals in sent.items() for o, v in enumerate(vals)
             if v in (recs[10][1], recs[11][1], recs[12][1], recs[13][1])}
    assert set(zip(rej["partition"].to_pylist(), rej["offset"].to_pylist())) == where
    reasons = " | ".join(rej["reason"].to_pylist())
    assert "BIGINT" in reasons and "line break" in reasons and "not_null" in reasons, reasons


def test_clear_errors(sluice_bin, kafka_broker, tmp_path):
    project = kafka_project(tmp_path / "p", kafka_broker.address, "no_such_topic")
    r = sluice(sluice_bin, project, "load", check=False)
    assert r.returncode != 0
    assert "kafka topic `no_such_topic` does not exist" in r.stderr, r.stderr
    bad = kafka_project(tmp_path / "q", kafka_broker.address, "t", extra='start = "yesterday"')
    r = sluice(sluice_bin, bad, "load", check=False)
    assert r.returncode != 0 and "not `earliest`, `latest` or an RFC 3339 time" in r.stderr, r.stderr
    nocols = tmp_path / "n"
    kafka_project(nocols, kafka_broker.address, "t")
    (nocols / "catalog" / "sources.toml").write_text(
        '[[source]]\nname = "e"\nkind = "kafka"\nformat = "json"\n'
        f'[source.kafka]\nbootstrap_servers = "{kafka_broker.address}"\ntopic = "t"\n')
    r = sluice(sluice_bin, nocols, "load", check=False)
    assert r.returncode != 0 and "needs its columns declared" in r.stderr, r.stderr
    r = sluice(sluice_bin, project, "stream", "nope", check=False)
    assert r.returncode != 0 and "unknown source `nope`" in r.stderr, r.stderr


def test_stream_into_s3_exactly_once(sluice_bin, kafka_broker, tmp_path, s3_endpoint, s3_bucket):
    topic = "orders_s3"
    kafka_broker.create_topic(topic, 3)
    wh = f"s3://{s3_bucket}/wh"
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic, warehouse=wh)
    env = s3_env(s3_endpoint)
    sent = produce(kafka_broker.producer("zstd"), topic, [(None, event(i)) for i in range(2000)], 3)
    proc = start_stream(sluice_bin, project, "--trigger-ms", "200", env=env)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    more = produce(kafka_broker.producer("zstd"), topic,
                   [(None, event(i)) for i in range(2000, 3000)], 3)
    for p in sent:
        sent[p].extend(more[p])
    sluice(sluice_bin, project, "load", env=env)
    check_exactly_once(f"{wh}/raw/events", sent, storage_options=s3_storage_options(s3_endpoint),
                       topic=topic)


def test_small_files_are_compacted_and_history_kept(sluice_bin, kafka_broker, tmp_path):
    topic = "orders_compact"
    kafka_broker.create_topic(topic, 3)
    project = kafka_project(tmp_path / "p", kafka_broker.address, topic,
                            extra="optimize_every = 10")
    proc = start_stream(sluice_bin, project, "--trigger-ms", "100")
    prod = kafka_broker.producer("lz4")
    sent = {p: [] for p in range(3)}
    for chunk in range(30):
        part = produce(prod, topic, [(None, event(i)) for i in range(chunk * 30, (chunk + 1) * 30)], 3)
        for p, v in part.items():
            sent[p].extend(v)
        time.sleep(0.15)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    uri = str(project / "warehouse" / "raw" / "events")
    check_exactly_once(uri, sent, topic=topic)
    dt = DeltaTable(uri)
    ops = [h["operation"] for h in dt.history()]
    assert "OPTIMIZE" in ops, ops
    assert ops.count("STREAMING UPDATE") >= 20, ops
    # Fewer files than commits; every older version still reads its rows.
    assert len(dt.file_uris()) < ops.count("STREAMING UPDATE")
    for h in dt.history():
        if h["operation"] == "STREAMING UPDATE" and h["version"] % 7 == 0:
            old = DeltaTable(uri, version=h["version"]).to_pyarrow_table()
            keys = list(zip(old["_kafka_partition"].to_pylist(), old["_kafka_offset"].to_pylist()))
            assert len(keys) == len(set(keys))
    assert any(p.name.endswith(".checkpoint.parquet")
               for p in (Path(uri) / "_delta_log").iterdir())
