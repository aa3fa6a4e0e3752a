#!/usr/bin/env python3
"""Scale-out benchmark (issue 23): one coordinator (`sluice serve`, Flight SQL)
over workers pinned to cores, against the plain single process.

    python benches/cluster_bench.py --bin SLUICE [--sf 1] [--runs 3]
        [--labels 1000000] [--features 10000000] [--dir /var/tmp/sluice-bench-cluster]
        [--only q1,q9,asof]

Two data shapes from two generators, as Delta tables built by `sluice run models`:
  * TPC-H at scale factor SF from `tpchgen-cli` (lineitem partitioned by
    l_returnflag, orders by o_orderstatus), the 22 queries of tests/tpch/queries;
  * the point-in-time workload of benches/gen_asof.py (DuckDB's hash()):
    `asof` = labels ASOF LEFT JOIN features (aggregated as benches/asof.sh does),
    `training` = historical_features(labels, 'features') over the same tables
    (a feature view).

Configurations, on this machine's cores 0 and 1:
  single   `sluice serve` alone, taskset -c 0,1 (no cluster)
  one      one `sluice worker` and the coordinator on core 0 (with one worker
           every stage has one task, and datafusion-distributed runs such a
           plan in the coordinator: this is "the cluster on one core")
  two      two workers, one on core 0, one on core 1; the coordinator on both
Each query runs once to warm up (its result checked equal across
configurations: row count and a hash of the sorted rows), then RUNS times; the
median wall time of the ADBC client (execute + fetch all) is reported. Bytes
shuffled come from EXPLAIN ANALYZE in the `two` configuration (the sum of
every network boundary's bytes_transferred).

Results: a Markdown table on stdout and JSON in DIR/results.json.
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent

ASOF_SQL = """
SELECT count(*) AS n, count(f.f1) AS matched, sum(f.f1) AS s1, sum(f.f2) AS s2, sum(f.f3) AS s3
FROM pit.labels l ASOF LEFT JOIN pit.features f
  MATCH_CONDITION (l.label_ts >= f.feature_ts) ON l.entity_id = f.entity_id
"""

TRAINING_SQL = """
SELECT count(*) AS n, count(f1) AS matched, sum(f1) AS s1, sum(f2) AS s2, sum(f3) AS s3
FROM historical_features('SELECT label_id, entity_id, label_ts FROM pit.labels', 'features',
                         'timestamp=label_ts')
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sh(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def prepare(args, d: pathlib.Path):
    """Data and the project, built once (markers make reruns skip them)."""
    tpch = d / "tpch-data"
    if not (tpch / ".done").exists():
        shutil.rmtree(tpch, ignore_errors=True)
        sh(["tpchgen-cli", "parquet", "-s", str(args.sf), "--parts", "8", "--output-dir", tpch])
        (tpch / ".done").write_text("")
    pit = d / "pit-data"
    if not (pit / ".done").exists():
        shutil.rmtree(pit, ignore_errors=True)
        pit.mkdir(parents=True)
        sh([sys.executable, REPO / "benches" / "gen_asof.py", pit, str(args.labels), str(args.features)])
        (pit / ".done").write_text("")
    proj = d / "project"
    if (proj / ".built").exists():
        return proj
    shutil.rmtree(proj, ignore_errors=True)
    (proj / "models" / "tpch").mkdir(parents=True)
    (proj / "models" / "pit").mkdir(parents=True)
    (proj / "catalog").mkdir()
    (proj / "sluice.toml").write_text(
        '[project]\nname = "cluster_bench"\n\n[warehouse]\nuri = "warehouse"\ndefault_schema = "tpch"\n'
    )
    parts = {"lineitem": "l_returnflag", "orders": "o_orderstatus"}
    for t in ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]:
        pb = f", partition_by=['{parts[t]}']" if t in parts else ""
        (proj / "models" / "tpch" / f"{t}.sql").write_text(
            f"{{{{ config(materialized='table', schema='tpch'{pb}) }}}}\n"
            f"SELECT * FROM read_parquet('{tpch}/{t}/*.parquet')\n"
        )
    (proj / "models" / "pit" / "labels.sql").write_text(
        "{{ config(materialized='table', schema='pit') }}\n"
        f"SELECT * FROM read_parquet('{pit}/labels.parquet')\n"
    )
    (proj / "models" / "pit" / "features.sql").write_text(
        "{{ config(materialized='table', schema='pit', "
        "feature_view={'entities': ['entity_id'], 'event_timestamp': 'feature_ts'}) }}\n"
        f"SELECT * FROM read_parquet('{pit}/features.parquet')\n"
    )
    t = time.time()
    sh([args.bin, "--project", proj, "--progress", "never", "run", "models"])
    print(f"models built in {time.time() - t:.1f}s", flush=True)
    (proj / ".built").write_text("")
    return proj


def start(cmd, cpus, cwd, env=None):
    full = (["taskset", "-c", cpus] if cpus else []) + [str(c) for c in cmd]
    p = subprocess.Popen(full, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env={**os.environ, **(env or {})})
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        raise SystemExit(f"{full} did not start: {line!r}")
    return p


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def digest(table):
    rows = sorted(
        tuple(f"{v:.9g}" if isinstance(v, float) else (str(v) if v is not None else None) for v in r.values())
        for r in table.to_pylist()
    )
    return table.num_rows, hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def shuffled_bytes(text):
    total = 0.0
    for num, unit in re.findall(r"bytes_transferred\s*=\s*([\d.]+)\s*([KMGT]?B)", text):
        total += float(num) * UNITS[unit]
    return int(total)


def run_config(name, args, proj, queries, cores):
    import adbc_driver_flightsql.dbapi as flight

    procs, workers = [], []
    env = {"SLUICE_MEMORY_LIMIT": args.memory}
    try:
        if name == "single":
            port = free_port()
            procs.append(start([args.bin, "--project", proj, "serve", "--port", port], "0,1", proj, env))
        else:
            pins = ["0"] if name == "one" else ["0", "1"]
            for pin in pins:
                wp = free_port()
                procs.append(start([args.bin, "--project", proj, "worker", "--port", wp], pin, proj, env))
                workers.append(f"http://127.0.0.1:{wp}")
            port = free_port()
            # The coordinator on the workers' cores: with one worker, every
            # stage has one task and datafusion-distributed runs the whole
            # plan in the coordinator, so (a) pins it to the worker's core.
            procs.append(start([args.bin, "--project", proj, "--workers", ",".join(workers), "serve",
                                "--port", port], ",".join(pins), proj, env))
        conn = flight.connect(f"grpc://127.0.0.1:{port}")
        out = {}
        for qname, sql in queries:
            cur = conn.cursor()
            t = time.perf_counter()
            cur.execute(sql)
            first = cur.fetch_arrow_table()
            warm = time.perf_counter() - t
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                cur.execute(sql)
                cur.fetch_arrow_table()
                times.append(time.perf_counter() - t)
            res = {"seconds": statistics.median(times), "all": times, "warmup": warm,
                   "digest": digest(first)}
            if name == "two":
                cur.execute("EXPLAIN ANALYZE " + sql)
                text = "\n".join(str(v) for r in cur.fetch_arrow_table().to_pylist() for v in r.values())
                res["shuffled_bytes"] = shuffled_bytes(text)
            cur.close()
            out[qname] = res
            print(f"{name:6} {qname:8} {res['seconds']:8.3f}s  rows={res['digest'][0]}"
                  + (f" shuffled={res.get('shuffled_bytes', 0) / 1e6:.1f} MB" if name == 'two' else ""),
                  flush=True)
        conn.close()
        return out
    finally:
        stop(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sf", default="1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--labels", default="1000000")
    ap.add_argument("--features", default="10000000")
    ap.add_argument("--dir", default="/var/tmp/sluice-bench-cluster")
    ap.add_argument("--only", default="")
    ap.add_argument("--memory", default="8GiB", help="SLUICE_MEMORY_LIMIT of each process")
    ap.add_argument("--configs", default="single,one,two", help="which configurations to run")
    ap.add_argument("--setting", action="append", default=[],
                    help="a [cluster.settings] entry for the cluster runs, e.g. compression=none")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores")
    d = pathlib.Path(args.dir) / f"sf{args.sf}"
    d.mkdir(parents=True, exist_ok=True)
    proj = prepare(args, d)
    qdir = REPO / "tests" / "tpch" / "queries"
    queries = [(f"q{i}", (qdir / f"q{i}.sql").read_text()) for i in range(1, 23)]
    queries += [("asof", ASOF_SQL), ("training", TRAINING_SQL)]
    if args.only:
        keep = set(args.only.split(","))
        queries = [q for q in queries if q[0] in keep]
    results = {}
    toml = proj / "sluice.toml"
    original = toml.read_text()
    if args.setting:
        lines = [f'{k.strip()} = "{v.strip()}"' if not v.strip().isdigit() else f"{k.strip()} = {v.strip()}"
                 for k, v in (x.split("=", 1) for x in args.setting)]
        toml.write_text(original + "\n[cluster.settings]\n" + "\n".join(lines) + "\n")
    try:
        for name in args.configs.split(","):
            results[name] = run_config(name, args, proj, queries, None)
    finally:
        toml.write_text(original)
    if set(results) != {"single", "one", "two"}:
        for name, res in results.items():
            for qname, _ in queries:
                r = res[qname]
                print(f"| {name} | {qname} | {r['seconds']:.2f} | {r.get('shuffled_bytes', 0) / 1e6:.1f} |")
        return
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    (d / "results.json").write_text(json.dumps({"commit": commit, "sf": args.sf, "results": results}, indent=1))
    print(f"\nSF {args.sf}, labels {args.labels} x features {args.features}, commit {commit}, "
          f"median of {args.runs}\n")
    print("| query | single (s) | 1 worker (s) | 2 workers (s) | 2w / 1w | 2w / single | shuffled (MB) | same rows |")
    print("|---|---|---|---|---|---|---|---|")
    for qname, _ in queries:
        s, o, t = (results[c][qname] for c in ["single", "one", "two"])
        same = s["digest"] == o["digest"] == t["digest"]
        print(f"| {qname} | {s['seconds']:.2f} | {o['seconds']:.2f} | {t['seconds']:.2f} | "
              f"{t['seconds'] / o['seconds']:.2f} | {t['seconds'] / s['seconds']:.2f} | "
              f"{t.get('shuffled_bytes', 0) / 1e6:.1f} | {'yes' if same else 'NO'} |")
    tot = {c: sum(results[c][q]["seconds"] for q, _ in queries) for c in results}
    print(f"| total | {tot['single']:.2f} | {tot['one']:.2f} | {tot['two']:.2f} | "
          f"{tot['two'] / tot['one']:.2f} | {tot['two'] / tot['single']:.2f} | | |")
    if not all(results["single"][q]["digest"] == results["two"][q]["digest"] == results["one"][q]["digest"]
               for q, _ in queries):
        raise SystemExit("results differ between configurations")


if __name__ == "__main__":
    main()
