"""Benchmark (a) of issue 22: sustained Kafka ingest into a local Delta table.

Run with benches/stream.sh (it builds the release binary and the venv).

For each data shape (two generators):
  narrow  sequential numeric events, ~70 B JSON, lz4
  wide    random keys and strings, ~95 B JSON, zstd
and each pipeline:
  sluice  `sluice stream --trigger-ms 1000`
  python  confluent-kafka Consumer (partitions assigned, no group) + deltalake
          write_deltalake per 1 s batch, with the same txn bookkeeping (one
          Transaction per partition, the last offset written)
a producer process sends RATE events/s for SECONDS seconds over 3 partitions
into a fresh topic while the pipeline runs. Reported:
  - sustained events/s = events / (time from the first event to the moment
    the table holds them all), and how long it took to drain after the
    producer stopped (a pipeline that keeps up drains within ~1 trigger);
  - peak RSS of the pipeline process (VmHWM);
then a catch-up run: `sluice load` / the Python pipeline on a topic filled
beforehand with CATCHUP events (the most each can do).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from kafka_util import Broker, kafka_project  # noqa: E402

HERE = Path(__file__).resolve()


# ---------------------------------------------------------------- generators
def narrow(i: int, rng) -> tuple:
    return None, '{"id":%d,"user_id":%d,"amount":%.2f,"ts":"2026-12-05T10:%02d:%02dZ"}' % (
        i, i % 1000, (i % 10000) * 0.01, (i // 60) % 60, i % 60)


WORDS = ["alpha", "bravo", "carrot", "delta", "echo", "fox", "golf", "hotel", "india"]


_notes = random.Random(3)
NOTES = [_notes.choice(WORDS) + "-" + "".join(_notes.choice("abcdefghij") for _ in range(6))
         for _ in range(4099)]


def wide(i: int, rng) -> tuple:
    # The JSON json.dumps gives, from a template: the producer must not
    # take the core the pipeline needs.
    user = rng.randrange(50000)
    return str(user).encode(), '{"id":%d,"user_id":%d,"amount":%.2f,"ts":"2026-12-05T%02d:%02d:00Z","note":"%s"}' % (
        i, user, rng.random() * 500, rng.randrange(24), rng.randrange(60),
        NOTES[rng.randrange(len(NOTES))])


SHAPES = {"narrow": (narrow, "lz4"), "wide": (wide, "zstd")}


def producer_main(args):
    """A separate process: RATE events/s for SECONDS seconds."""
    from confluent_kafka import Producer

    gen, compression = SHAPES[args.shape]
    p = Producer({"bootstrap.servers": args.brokers, "compression.type": compression,
                  "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1000000})
    rng = random.Random(args.seed)
    total = args.rate * args.seconds
    step = max(1, args.rate // 20)  # 50 ms slices
    t0 = time.time()
    i = 0
    while i < total:
        for _ in range(min(step, total - i)):
            key, value = gen(i, rng)
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
    print(json.dumps({"produced": total, "seconds": time.time() - t0,
                      "bytes_per_event": len(gen(12345, rng)[1])}))


def start_producer(brokers, topic, shape, rate, seconds):
    return subprocess.Popen([sys.executable, str(HERE), "--produce", "--brokers", brokers,
                             "--topic", topic, "--shape", shape, "--rate", str(rate),
                             "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)


def fill(brokers, topic, shape, n):
    """n events as fast as the producer goes (a rate of n/s for 1 s)."""
    p = start_producer(brokers, topic, shape, n, 1)
    out, _ = p.communicate(timeout=900)
    return json.loads(out)


# ---------------------------------------------------------------- pipelines
def python_pipeline_main(args):
    """confluent-kafka + deltalake, 1 s batches, txn per partition."""
    import pyarrow as pa
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    uri = args.uri
    app = lambda p: f"py-stream:{args.topic}:{p}"  # noqa: E731
    try:
        dt = DeltaTable(uri)
        stored = {p: dt.transaction_version(app(p)) for p in range(3)}
    except Exception:
        stored = {}
    c = Consumer({"bootstrap.servers": args.brokers, "group.id": "bench-py",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(args.topic, p,
                             stored[p] + 1 if stored.get(p) is not None else OFFSET_BEGINNING)
              for p in range(3)])
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    fields = [("id", pa.int64()), ("user_id", pa.int64()), ("amount", pa.float64()),
              ("ts", pa.string())]
    if args.shape == "wide":
        fields.append(("note", pa.string()))
    schema = pa.schema(fields + [("_kafka_partition", pa.int32()), ("_kafka_offset", pa.int64())])
    rows_total = 0
    while not stop["now"]:
        deadline = time.time() + args.trigger
        msgs = []
        while time.time() < deadline:
            msgs.extend(c.consume(num_messages=100000, timeout=max(0.0, deadline - time.time())))
        cols = {k: [] for k in schema.names}
        last = {}
        for m in msgs:
            if m.error():
                continue
            v = json.loads(m.value())
            cols["id"].append(v.get("id"))
            cols["user_id"].append(v.get("user_id"))
            cols["amount"].append(v.get("amount"))
            cols["ts"].append(v.get("ts"))
            if "note" in cols:
                cols["note"].append(v.get("note"))
            cols["_kafka_partition"].append(m.partition())
            cols["_kafka_offset"].append(m.offset())
            last[m.partition()] = m.offset()
        if not last:
            continue
        t = pa.table(cols, schema=schema)
        t = t.set_column(3, "ts", t["ts"].cast(pa.timestamp("us", tz="UTC")))
        write_deltalake(uri, t, mode="append", commit_properties=CommitProperties(
            app_transactions=[Transaction(app(p), o) for p, o in last.items()]))
        rows_total += t.num_rows
        print(json.dumps({"rows": rows_total, "t": time.time()}), flush=True)
    print(json.dumps({"rows": rows_total, "t": time.time(), "done": True}), flush=True)


def peak_rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def delta_rows(uri):
    from deltalake import DeltaTable
    try:
        dt = DeltaTable(uri)
    except Exception:
        return 0
    import pyarrow as pa
    adds = pa.table(dt.get_add_actions(flatten=True))
    return sum(n for n in adds.column("num_records").to_pylist() if n is not None)


def run_sustained(args, broker, shape, pipeline, work):
    topic = f"{shape}_{pipeline}_{random.randrange(1 << 30)}"
    broker.create_topic(topic, 3)
    proj = kafka_project(work / topic, broker.address, topic,
                         extra="max_batch_records = 500000")
    if shape == "wide":
        cat = proj / "catalog" / "sources.toml"
        cat.write_text(cat.read_text() + '\n[[source.columns]]\nname = "note"\ntype = "varchar"\n')
    uri = str(proj / "warehouse" / "raw" / "events")
    if pipeline == "sluice":
        proc = subprocess.Popen([args.sluice, "--project", str(proj), "--progress", "never",
                                 "stream", "--trigger-ms", "1000", "--format", "json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    else:
        uri = str(work / f"{topic}_py")
        proc = subprocess.Popen([sys.executable, str(HERE), "--python-pipeline", "--brokers",
                                 broker.address, "--topic", topic, "--uri", uri, "--shape", shape],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)
    total = args.rate * args.seconds
    t0 = time.time()
    prod = start_producer(broker.address, topic, shape, args.rate, args.seconds)
    rss = 0
    done_at = None
    produced_at = None
    limit = t0 + args.seconds * 4 + 60
    while time.time() < limit:
        time.sleep(0.5)
        rss = max(rss, peak_rss_mb(proc.pid) or 0)
        if produced_at is None and prod.poll() is not None:
            produced_at = time.time()
        if delta_rows(uri) >= total:
            done_at = time.time()
            break
    rss = max(rss, peak_rss_mb(proc.pid) or 0)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    prod_out, _ = prod.communicate(timeout=60)
    produced = json.loads(prod_out)
    rows = delta_rows(uri)
    res = {
        "shape": shape, "pipeline": pipeline, "events": total, "rows": rows,
        "bytes_per_event": produced["bytes_per_event"],
        "produce_seconds": round(produced["seconds"], 2),
        "sustained_events_per_s": round(total / (done_at - t0)) if done_at else None,
        "drain_seconds": round(done_at - (produced_at or done_at), 2) if done_at else None,
        "peak_rss_mb": round(rss),
    }
    print(json.dumps(res), flush=True)
    return res


def run_catchup(args, broker, shape, pipeline, work):
    topic = f"fill_{shape}_{pipeline}_{random.randrange(1 << 30)}"
    broker.create_topic(topic, 3)
    fill(broker.address, topic, shape, args.catchup)
    proj = kafka_project(work / topic, broker.address, topic,
                         extra="max_batch_records = 500000")
    if shape == "wide":
        cat = proj / "catalog" / "sources.toml"
        cat.write_text(cat.read_text() + '\n[[source.columns]]\nname = "note"\ntype = "varchar"\n')
    t0 = time.time()
    if pipeline == "sluice":
        proc = subprocess.Popen([args.sluice, "--project", str(proj), "--progress", "never",
                                 "load", "--format", "json"], stdout=subprocess.PIPE, text=True)
        rss = 0
        while proc.poll() is None:
            rss = max(rss, peak_rss_mb(proc.pid) or 0)
            time.sleep(0.2)
        rows = json.loads(proc.stdout.read())["sources"][0]["rows_loaded"]
    else:
        uri = str(work / f"{topic}_py")
        proc = subprocess.Popen([sys.executable, str(HERE), "--python-pipeline", "--brokers",
                                 broker.address, "--topic", topic, "--uri", uri, "--shape", shape],
                                stdout=subprocess.PIPE, text=True)
        rss = 0
        rows = 0
        while rows < args.catchup and time.time() < t0 + 900:
            line = proc.stdout.readline()
            if not line:
                break
            rows = json.loads(line)["rows"]
            rss = max(rss, peak_rss_mb(proc.pid) or 0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    secs = time.time() - t0
    res = {"shape": shape, "pipeline": pipeline, "catchup_events": args.catchup, "rows": rows,
           "seconds": round(secs, 2), "events_per_s": round(rows / secs),
           "peak_rss_mb": round(rss)}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice")
    ap.add_argument("--rate", type=int, default=60000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--catchup", type=int, default=1_000_000)
    ap.add_argument("--shapes", default="narrow,wide")
    ap.add_argument("--pipelines", default="sluice,python")
    ap.add_argument("--work", default="/tmp/sluice-stream-bench")
    # internal
    ap.add_argument("--produce", action="store_true")
    ap.add_argument("--python-pipeline", action="store_true")
    ap.add_argument("--brokers")
    ap.add_argument("--topic")
    ap.add_argument("--shape", default="narrow")
    ap.add_argument("--uri")
    ap.add_argument("--trigger", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.produce:
        return producer_main(args)
    if args.python_pipeline:
        return python_pipeline_main(args)
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)])
    work.mkdir(parents=True)
    broker = Broker()
    results = []
    try:
        for shape in args.shapes.split(","):
            for pipeline in args.pipelines.split(","):
                results.append(run_sustained(args, broker, shape, pipeline, work))
        for shape in args.shapes.split(","):
            for pipeline in args.pipelines.split(","):
                results.append(run_catchup(args, broker, shape, pipeline, work))
    finally:
        broker.stop()
    print("\nRESULTS")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
