"""Benchmark (b) of issue 22: freshness of a stream feature view.

Run with benches/freshness.sh (it builds the release binary and the venv).

For each data shape (two generators, as in benchmark (a)) and trigger:
  - a background producer sends RATE events/s (ts = now) over 3 partitions;
  - `sluice stream` ingests them into raw.events and keeps the stream view
    `probe_view` fresh (its aggregates cover every event, background load
    included: max(id), count(*) and sum(amount) over the last minute per user);
  - `sluice serve` answers `SELECT user_id, last_id FROM online.probe_view
    WHERE user_id IN (...)` (ADBC), for every outstanding probe every 10 ms;
  - PROBE_RATE probe events/s, each for one of 64 probe users, carry the time
    they were produced in their `ts`; a poller looks each outstanding probe up
    until `last_id` reaches it.
Freshness of a probe = the moment the first lookup reflects it - its `ts`.
Reported per run: p50/p90/p99/max over the probes, the ingest rate reached
(rows in the table / seconds), and the peak RSS of `sluice stream`.
"""
import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_util import Broker, kafka_project  # noqa: E402
from stream_ingest import delta_rows, peak_rss_mb  # noqa: E402

HERE = Path(__file__).resolve()
PROBE_USER = 10_000_000
PROBE_ID = 10**12

VIEW = """{{ config(materialized='view', feature_view={'entities': ['user_id'],
    'event_timestamp': 'ts', 'stream': true}) }}
SELECT user_id,
       max(id)     FILTER (WHERE ts > now() - INTERVAL '1 minute') AS last_id,
       count(*)    FILTER (WHERE ts > now() - INTERVAL '1 minute') AS n_1m,
       sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 minute') AS amount_1m
FROM raw.events
GROUP BY user_id
"""

WORDS = ["alpha", "bravo", "carrot", "delta", "echo", "fox", "golf", "hotel", "india"]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def producer_main(args):
    """A separate process: RATE events/s with ts = now, until killed or done."""
    from confluent_kafka import Producer

    compression = "lz4" if args.shape == "narrow" else "zstd"
    p = Producer({"bootstrap.servers": args.brokers, "compression.type": compression,
                  "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1000000})
    rng = random.Random(7)
    notes = [rng.choice(WORDS) + "-" + "".join(rng.choice("abcdefghij") for _ in range(6))
             for _ in range(4099)]
    total = args.rate * args.seconds
    step = max(1, args.rate // 20)
    t0 = time.time()
    i = 0
    while i < total:
        ts = now_iso()  # one clock read per 50 ms slice
        for _ in range(min(step, total - i)):
            if args.shape == "narrow":
                key = None
                value = '{"id":%d,"user_id":%d,"amount":%.2f,"ts":"%s"}' % (
                    i, i % 1000, (i % 10000) * 0.01, ts)
            else:
                # The same JSON as json.dumps gives, built with a template:
                # the producer must not take the core the pipeline needs.
                user = rng.randrange(50000)
                key = str(user).encode()
                value = '{"id":%d,"user_id":%d,"amount":%.2f,"ts":"%s","note":"%s"}' % (
                    i, user, rng.random() * 500, ts, notes[i % len(notes)])
            while True:
                try:
                    p.produce(args.topic, key=key, value=value, partition=i % 3)
                    break
                except BufferError:
                    p.poll(0.01)
            i += 1
        p.poll(0)
        ahead = t0 + i / args.rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
    p.flush(120)
    print(json.dumps({"produced": total, "seconds": time.time() - t0}))


def sluice(bin_, project, *args):
    r = subprocess.run([bin_, "--project", str(project), "--progress", "never", *args],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"sluice {' '.join(args)}: {r.stdout}\n{r.stderr}")
    return r.stdout


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def run(args, broker, shape, trigger_ms, work):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
    from test_flight import adbc_connect, start_server, stop_server
    from confluent_kafka import Producer

    topic = f"fresh_{shape}_{trigger_ms}_{random.randrange(1 << 30)}"
    broker.create_topic(topic, 3)
    proj = kafka_project(work / topic, broker.address, topic, extra="max_batch_records = 500000")
    (proj / "models").mkdir()
    online = ""
    if args.redis_url:
        online = f'\n[online]\nstore = "redis"\nredis_url = "{args.redis_url}"\nkey_prefix = "b{random.randrange(1 << 30)}"\n'
    (proj / "sluice.toml").write_text(
        f'[project]\nname = "fresh"\nmodels = "models"\n\n[warehouse]\nuri = "warehouse"\n{online}')
    if shape == "wide":
        cat = proj / "catalog" / "sources.toml"
        cat.write_text(cat.read_text() + '\n[[source.columns]]\nname = "note"\ntype = "varchar"\n')
    (proj / "models" / "probe_view.sql").write_text(VIEW)
    probe = Producer({"bootstrap.servers": broker.address, "linger.ms": 0, "acks": "1"})
    probe.produce(topic, value=json.dumps({"id": 0, "user_id": -1, "amount": 0, "ts": now_iso()}),
                  partition=0)
    probe.flush(10)
    sluice(args.sluice, proj, "load", "events")
    sluice(args.sluice, proj, "run")
    stream_log = open(proj / "stream.log", "w")
    stream = subprocess.Popen([args.sluice, "--project", str(proj), "--progress", "never",
                               "stream", "--trigger-ms", str(trigger_ms)],
                              stdout=subprocess.DEVNULL, stderr=stream_log)
    server = start_server(args.sluice, proj, {})
    seconds = int(args.probes / args.probe_rate) + 20
    load = subprocess.Popen([sys.executable, str(HERE), "--produce", "--brokers", broker.address,
                             "--topic", topic, "--shape", shape, "--rate", str(args.rate),
                             "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
    results = {}
    outstanding = {}  # user -> (probe id, produced at)
    lock = threading.Lock()
    done = threading.Event()
    errors = []

    def poller():
        try:
            with adbc_connect(server, user=None) as conn:
                cur = conn.cursor()
                # One lookup of every outstanding probe user per round, a
                # round every 10 ms: the resolution of the measurement, and
                # little CPU taken from the pipeline on 2 cores.
                while not done.is_set() or outstanding:
                    with lock:
                        items = dict(outstanding)
                    if not items:
                        time.sleep(0.005)
                        continue
                    cur.execute("SELECT user_id, last_id FROM online.probe_view WHERE user_id IN ("
                                + ", ".join(map(str, items)) + ")")
                    got = cur.fetchall()
                    seen = time.time()
                    for user, last_id in got:
                        pid, t_sent = items[user]
                        if last_id is not None and last_id >= pid:
                            with lock:
                                if outstanding.get(user, (None,))[0] == pid:
                                    del outstanding[user]
                            results[pid] = seen - t_sent
                    if done.is_set() and time.time() > deadline_all[0]:
                        break
                    time.sleep(0.01)
        except Exception as e:  # reported below
            errors.append(repr(e))

    deadline_all = [float("inf")]
    t_poll = threading.Thread(target=poller, daemon=True)
    t_poll.start()
    time.sleep(5)  # the load reaches its rate
    rss = 0
    t0 = time.time()
    for k in range(args.probes):
        user = PROBE_USER + (k % 64)
        pid = PROBE_ID + k
        sent = time.time()
        ts = datetime.datetime.fromtimestamp(sent, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        with lock:
            if user in outstanding:  # still not seen after 64 probe periods: count it as lost
                results.setdefault(outstanding[user][0], None)
            outstanding[user] = (pid, sent)
        probe.produce(topic, key=str(user).encode(),
                      value=json.dumps({"id": pid, "user_id": user, "amount": 1.0, "ts": ts}),
                      partition=k % 3)
        probe.poll(0)
        rss = max(rss, peak_rss_mb(stream.pid) or 0)
        next_at = t0 + (k + 1) / args.probe_rate
        time.sleep(max(0.0, next_at - time.time()))
    probe.flush(10)
    deadline_all[0] = time.time() + 15
    done.set()
    t_poll.join(30)
    probe_seconds = time.time() - t0
    rows_at_end = delta_rows(str(proj / "warehouse" / "raw" / "events"))
    load.send_signal(signal.SIGTERM)
    load.wait(30)
    rss = max(rss, peak_rss_mb(stream.pid) or 0)
    stream.send_signal(signal.SIGINT)
    try:
        stream.wait(60)
    except subprocess.TimeoutExpired:
        stream.kill()
    stop_server(server)
    lat = [v for v in results.values() if v is not None]
    lost = args.probes - len(lat)
    res = {
        "shape": shape, "trigger_ms": trigger_ms, "store": "redis" if args.redis_url else "embedded",
        "load_events_per_s": args.rate, "probes": args.probes, "reflected": len(lat),
        "not_seen": lost,
        "p50_s": round(percentile(lat, 50), 3) if lat else None,
        "p90_s": round(percentile(lat, 90), 3) if lat else None,
        "p99_s": round(percentile(lat, 99), 3) if lat else None,
        "max_s": round(max(lat), 3) if lat else None,
        "target_p99_s": trigger_ms / 1000 + 0.5,
        "rows_ingested": rows_at_end,
        "ingested_per_s": round(rows_at_end / (probe_seconds + 5)),
        "stream_peak_rss_mb": round(rss),
        "errors": errors[:3],
    }
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice")
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--probe-rate", type=float, default=10.0)
    ap.add_argument("--shapes", default="narrow,wide")
    ap.add_argument("--triggers", default="1000,250")
    ap.add_argument("--redis-url", default=os.environ.get("SLUICE_BENCH_REDIS_URL"))
    ap.add_argument("--work", default="/tmp/sluice-freshness-bench")
    # internal
    ap.add_argument("--produce", action="store_true")
    ap.add_argument("--brokers")
    ap.add_argument("--topic")
    ap.add_argument("--shape", default="narrow")
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    if args.produce:
        return producer_main(args)
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)])
    work.mkdir(parents=True)
    broker = Broker()
    results = []
    try:
        for shape in args.shapes.split(","):
            for trigger in args.triggers.split(","):
                results.append(run(args, broker, shape, int(trigger), work))
    finally:
        broker.stop()
    print("\nRESULTS")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
