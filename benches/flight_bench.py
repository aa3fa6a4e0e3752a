"""Benchmark `sluice serve` (Arrow Flight SQL) with the ADBC Flight SQL driver.

Run through benches/flight.sh (which sources the test venv); directly:

    python benches/flight_bench.py --sluice PATH [--rows N] [--clients C] [--seconds S]

(a) Throughput: a deterministic ROWS-row Parquet file (id int64 = 0..ROWS-1,
    value float64 from numpy's PCG64 seeded 42; ZSTD, 1 Mi-row row groups) is
    loaded into the warehouse as bench.t (`sluice sql "CREATE TABLE bench.t AS
    SELECT * FROM 'file.parquet'"`, before the server starts). One ADBC client
    then fetches `SELECT * FROM bench.t` with fetch_arrow_table(): one warm-up,
    then RUNS timed runs, best taken. In the same run DuckDB (in-process,
    default threads) reads the same Parquet file into an Arrow table
    (`con.sql("SELECT * FROM read_parquet(...)").to_arrow_table()`), same
    warm-up and best-of-RUNS. MB/s = table.nbytes / 1e6 / seconds; both tables
    are checked (row count, sum(id)).
(b) Concurrency: CLIENTS processes (spawned, one ADBC connection each) run the
    prepared query `SELECT value FROM bench.small WHERE id = ?` (bench.small:
    the first SMALL_ROWS rows of bench.t) with random ids for SECONDS seconds,
    all started together by a barrier after connecting and one warm-up query.
    Each answer is checked against the Parquet file's value. Reported: total
    queries, q/s, p50/p90/p99/max latency (ms), errors (and the first few).

The server runs with auth on (SLUICE_USER/SLUICE_PASSWORD), as in production;
its stderr goes to BENCH_DIR/serve.stderr. A JSON summary is printed last.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

USER, PASSWORD = "bench", "bench-password"
LISTEN_RE = re.compile(r"listening on grpc(\+tls)?://[^:\s]+:(\d+)")
SMALL_QUERY = "SELECT value FROM bench.small WHERE id = ?"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# data and server
# ----------------------------------------------------------------------------
def make_parquet(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return
        except Exception:
            pass
    log(f"generating {path} ({rows:,} rows)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    rng = np.random.default_rng(42)
    schema = pa.schema([("id", pa.int64()), ("value", pa.float64())])
    chunk = 1 << 20
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            w.write_table(pa.table({"id": np.arange(start, start + n, dtype=np.int64),
                                    "value": rng.random(n)}, schema=schema), row_group_size=chunk)
    os.replace(tmp, path)


def small_values(path: Path, small_rows: int) -> list:
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["value"]).slice(0, small_rows)
    return t.column("value").to_pylist()


def run_sluice(bin_: str, project: Path, *args) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([bin_, "--project", str(project), "--progress", "never", *args],
                          capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sluice {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return secs


class ServeProcess:
    def __init__(self, bin_: str, project: Path, timeout: float = 120):
        env = dict(os.environ, SLUICE_USER=USER, SLUICE_PASSWORD=PASSWORD)
        env.pop("SLUICE_WAREHOUSE", None)
        self.stderr_path = project.parent / "serve.stderr"
        err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [bin_, "--project", str(project), "--progress", "never", "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1,
            start_new_session=True)
        err.close()
        self.port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                m = LISTEN_RE.search(line)
                if m and self.port is None:
                    self.port = int(m.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.stop()
            sys.exit(f"sluice serve did not start:\n{self.stderr_path.read_text()[-4000:]}")
        self.uri = f"grpc://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log("sluice serve ignored SIGTERM for 30 s: killing it")
                self.proc.kill()
                self.proc.wait()


def connect(uri: str):
    import adbc_driver_flightsql.dbapi as fs

    return fs.connect(uri, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


# ----------------------------------------------------------------------------
# (a) throughput
# ----------------------------------------------------------------------------
def best_of(fn, runs: int, check) -> dict:
    out = fn()  # warm-up
    check(out)
    times, nbytes = [], out.nbytes
    del out
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        check(out)
        nbytes = out.nbytes
        del out
    best = min(times)
    return {"runs_s": [round(t, 4) for t in times], "best_s": round(best, 4), "nbytes": nbytes,
            "MBps": round(nbytes / 1e6 / best, 1)}


def throughput(uri: str, parquet: Path, rows: int, runs: int) -> dict:
    import duckdb
    import pyarrow.compute as pc

    expected_sum = rows * (rows - 1) // 2

    def check(t):
        assert t.num_rows == rows, f"{t.num_rows} rows, expected {rows}"
        assert pc.sum(t.column("id")).as_py() == expected_sum, "sum(id) differs"

    conn = connect(uri)
    try:
        cur = conn.cursor()

        def sluice_fetch():
            cur.execute("SELECT * FROM bench.t")
            return cur.fetch_arrow_table()

        sl = best_of(sluice_fetch, runs, check)
        schema = str(sluice_fetch().schema).replace("\n", "; ")
        cur.close()
    finally:
        conn.close()
    sl["schema"] = schema
    log(f"sluice/ADBC : best {sl['best_s']:.3f} s  {sl['MBps']:8.1f} MB/s  runs {sl['runs_s']}")

    con = duckdb.connect()
    q = f"SELECT * FROM read_parquet('{parquet}')"
    dk = best_of(lambda: con.sql(q).to_arrow_table(), runs, check)
    dk["version"] = duckdb.__version__
    con.close()
    log(f"duckdb      : best {dk['best_s']:.3f} s  {dk['MBps']:8.1f} MB/s  runs {dk['runs_s']}")
    ratio = sl["MBps"] / dk["MBps"]
    log(f"sluice / duckdb throughput: {ratio:.2f}x")
    # MB/s ratio uses each side's own table.nbytes (DuckDB's tables carry validity
    # bitmaps, ~1.5% more bytes); the time ratio compares the best times directly.
    return {"query": "SELECT * FROM bench.t", "rows": rows, "sluice_adbc": sl, "duckdb": dk,
            "ratio_sluice_over_duckdb": round(ratio, 3),
            "time_ratio_sluice_over_duckdb": round(sl["best_s"] / dk["best_s"], 3)}


# ----------------------------------------------------------------------------
# (b) concurrency
# ----------------------------------------------------------------------------
def worker(idx: int, uri: str, small_rows: int, expected: list, seconds: float, barrier, results) -> None:
    lat, errors, n = [], 0, 0
    first_errors = []
    try:
        conn = connect(uri)
        cur = conn.cursor()
        cur.execute(SMALL_QUERY, (0,))
        cur.fetchall()
    except Exception as e:  # noqa: BLE001
        barrier.abort()
        results.put({"idx": idx, "fatal": f"{type(e).__name__}: {e}"})
        return
    rng = random.Random(idx)
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001  (broken barrier: another worker failed)
        results.put({"idx": idx, "fatal": "barrier broken"})
        return
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        i = rng.randrange(small_rows)
        try:
            cur.execute(SMALL_QUERY, (i,))
            got = cur.fetchall()
            if got != [(expected[i],)]:
                raise AssertionError(f"id {i}: got {got!r}, expected {[(expected[i],)]!r}")
            lat.append(time.perf_counter() - t0)
            n += 1
        except Exception as e:  # noqa: BLE001
            errors += 1
            if len(first_errors) < 3:
                first_errors.append(f"{type(e).__name__}: {e}"[:500])
            # a failed statement may leave the cursor unusable: start a fresh one
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass
            cur = conn.cursor()
    elapsed = time.perf_counter() - start
    try:
        cur.close()
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    results.put({"idx": idx, "n": n, "errors": errors, "first_errors": first_errors,
                 "lat": lat, "elapsed": elapsed})


def pct(sorted_vals: list, p: float) -> float:
    if not sorted_vals:
        return float("nan")
    # nearest rank
    k = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def concurrency(uri: str, small_rows: int, expected: list, clients: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")  # never fork a process that holds Go (ADBC) threads
    barrier = ctx.Barrier(clients + 1, timeout=600)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, uri, small_rows, expected, seconds, barrier, results))
             for i in range(clients)]
    log(f"starting {clients} client processes")
    for p in procs:
        p.start()
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001
        pass
    t0 = time.perf_counter()
    log(f"all {clients} clients connected; running {seconds:g} s")
    outs = [results.get(timeout=seconds + 600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(30)
    fatal = [o for o in outs if "fatal" in o]
    if fatal:
        return {"clients": clients, "fatal": fatal[:5]}
    lat = sorted(x for o in outs for x in o["lat"])
    total = sum(o["n"] for o in outs)
    errors = sum(o["errors"] for o in outs)
    longest = max(o["elapsed"] for o in outs)
    summary = {
        "clients": clients, "seconds": seconds, "query": SMALL_QUERY, "small_rows": small_rows,
        "total_queries": total, "errors": errors,
        "qps": round(total / longest, 1),
        "latency_ms": {k: round(pct(lat, p) * 1000, 3) for k, p in
                       (("p50", 50), ("p90", 90), ("p99", 99))} | {"max": round(lat[-1] * 1000, 3) if lat else None},
        "per_client_queries_min_max": [min(o["n"] for o in outs), max(o["n"] for o in outs)],
        "wall_s": round(wall, 2),
        "first_errors": [e for o in outs for e in o["first_errors"]][:5],
    }
    log(f"{total} queries, {summary['qps']} q/s, p50 {summary['latency_ms']['p50']} ms, "
        f"p99 {summary['latency_ms']['p99']} ms, {errors} errors")
    return summary


def floor_load(floor_bin: str, load_bin: str, clients: int, seconds: float) -> dict:
    """(b)'s protocol floor: the same Rust clients, back to back, against
    benches/flight_floor.rs, a Flight SQL server that does no query work
    (same tonic settings, parameters decoded, a one-row answer encoded)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([floor_bin, "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cmd = [load_bin, "--uri", f"grpc://127.0.0.1:{port}", "--user", "floor", "--password", "floor",
               "--clients", str(clients), "--seconds", str(seconds),
               "--query", SMALL_QUERY, "--ids", "10000", "--rows", "1"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600)
        try:
            res = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"fatal": (out.stderr or out.stdout)[-2000:]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log(f"protocol floor (no query work), rust clients={clients}: {res.get('queries')} queries, "
        f"{res.get('qps')} q/s, p50 {res.get('p50_ms')} ms, p99 {res.get('p99_ms')} ms, {res.get('errors')} errors")
    return res


def rust_load(uri: str, load_bin: str, clients: int, seconds: float, rate) -> dict:
    """(b) again with benches/flight_load.rs: CLIENTS connections in one Rust
    process (arrow-flight's Flight SQL client), back to back (rate None) or each
    paced at RATE q/s; every answer checked against bench.small."""
    cmd = [load_bin, "--uri", uri, "--user", USER, "--password", PASSWORD,
           "--clients", str(clients), "--seconds", str(seconds),
           "--query", SMALL_QUERY, "--ids-sql", "SELECT id FROM bench.small",
           "--expected", "SELECT id, value FROM bench.small"]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600)
    try:
        res = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"fatal": (out.stderr or out.stdout)[-2000:]}
    if out.returncode != 0:
        res["fatal"] = out.stderr[-2000:]
    log(f"rust clients={clients} rate={rate}: {res.get('queries')} queries, {res.get('qps')} q/s, "
        f"p50 {res.get('p50_ms')} ms, p99 {res.get('p99_ms')} ms (service p99 {res.get('service_p99_ms')} ms), "
        f"{res.get('errors')} errors, {res.get('wrong')} wrong")
    return res


# ----------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", "/var/tmp/sluice-target/release/sluice"))
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--small-rows", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--bench-dir", default=os.path.join(os.environ.get("BENCH_DIR", "/var/tmp/sluice-bench"), "flight"))
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--load-bin", default=os.environ.get("FLIGHT_LOAD"),
                    help="benches/flight_load.rs binary: also run (b) with Rust clients")
    ap.add_argument("--floor-bin", default=os.environ.get("FLIGHT_FLOOR"),
                    help="benches/flight_floor.rs binary: also run (b) against a server doing no query work")
    ap.add_argument("--rates", default="5,20", help="per-client q/s of the paced Rust runs")
    args = ap.parse_args()

    bin_ = os.path.realpath(args.sluice)
    if not os.access(bin_, os.X_OK):
        sys.exit(f"no sluice binary at {bin_} (cargo build --release, or set SLUICE_BIN)")
    work = Path(args.bench_dir)
    parquet = work / f"data_{args.rows}.parquet"
    make_parquet(parquet, args.rows)
    small_rows = min(args.small_rows, args.rows)

    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    (project / "sluice.toml").write_text(
        '[project]\nname = "flight_bench"\n\n[warehouse]\nuri = "warehouse"\ndefault_schema = "main"\n')
    log("loading bench.t and bench.small with `sluice sql`")
    load_s = run_sluice(bin_, project, "sql", f"CREATE TABLE bench.t AS SELECT * FROM '{parquet}'")
    run_sluice(bin_, project, "sql", f"CREATE TABLE bench.small AS SELECT id, value FROM bench.t WHERE id < {small_rows}")

    summary = {
        "machine": {"cores": os.cpu_count()}, "sluice": bin_, "parquet": str(parquet),
        "parquet_bytes": parquet.stat().st_size, "rows": args.rows, "load_ctas_s": round(load_s, 2),
    }
    server = ServeProcess(bin_, project)
    try:
        summary["server_uri"] = server.uri
        if not args.skip_throughput:
            summary["throughput"] = throughput(server.uri, parquet, args.rows, args.runs)
        if not args.skip_concurrency:
            expected = small_values(parquet, small_rows)
            summary["concurrency"] = concurrency(server.uri, small_rows, expected, args.clients, args.seconds)
            if args.load_bin:
                runs = [None] + [float(r) for r in args.rates.split(",") if r.strip()]
                summary["concurrency_rust"] = [
                    rust_load(server.uri, args.load_bin, args.clients, args.seconds, r) for r in runs]
            if args.load_bin and args.floor_bin:
                summary["protocol_floor"] = floor_load(args.floor_bin, args.load_bin, args.clients, args.seconds)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        summary["error"] = traceback.format_exc(limit=3)
    finally:
        server.stop()
    print(json.dumps(summary, indent=2))
    conc = summary.get("concurrency", {})
    rust_failed = any("fatal" in r for r in summary.get("concurrency_rust", []))
    return 1 if ("error" in summary or "fatal" in conc or conc.get("errors") or rust_failed) else 0


if __name__ == "__main__":
    sys.exit(main())
