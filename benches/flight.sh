#!/usr/bin/env bash
# Benchmark: `sluice serve` (Arrow Flight SQL) with the ADBC Flight SQL driver
# (benches/flight_bench.py has the details):
#   (a) one ADBC client fetching `SELECT * FROM bench.t` (10,000,000 rows: id int64,
#       value float64, loaded from a deterministic ZSTD Parquet file) with
#       fetch_arrow_table(), against DuckDB in-process reading the same Parquet file
#       into Arrow in the same run: best of 3 after a warm-up, MB/s = table.nbytes/s;
#   (b) 32 client processes (one ADBC connection each) running the prepared query
#       `SELECT value FROM bench.small WHERE id = ?` for 30 s: total queries, q/s,
#       p50/p99 latency, errors; then the same with 32 Rust clients in one process
#       (benches/flight_load.rs, built here), back to back and paced (--rates), and
#       back to back against benches/flight_floor.rs, a Flight SQL server doing no
#       query work: the floor of the protocol round trip on this machine.
# Prints progress on stderr and a JSON summary on stdout. Starts and stops the
# server itself (auth on, the quick-start user from SLUICE_USER/SLUICE_PASSWORD).
#
#   bash benches/flight.sh [--rows N] [--clients C] [--seconds S] [--runs R]
#                          [--small-rows N] [--skip-throughput] [--skip-concurrency]
#
# Environment:
#   SLUICE_BIN=path   binary to run (default /var/tmp/sluice-target/release/sluice;
#                     build it first with `cargo build --release`)
#   BENCH_DIR=/var/tmp/sluice-bench   data and the server's project go to $BENCH_DIR/flight/
#   FLIGHT_LOAD=path  the load generator (default: `cargo build --release --bench flight_load`)
#   FLIGHT_FLOOR=path the no-work server for the protocol floor of (b) (built with FLIGHT_LOAD)
# Needs the test venv (tests/venv.sh: pyarrow, duckdb, adbc-driver-flightsql, numpy).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tests/venv.sh
export SLUICE_BIN="${SLUICE_BIN:-/var/tmp/sluice-target/release/sluice}"
[ -x "$SLUICE_BIN" ] || { echo "no sluice binary at $SLUICE_BIN (cargo build --release, or set SLUICE_BIN)" >&2; exit 1; }
echo "$(nproc) cores; sluice: $(realpath "$SLUICE_BIN"); duckdb $(python -c 'import duckdb; print(duckdb.__version__)'); adbc-driver-flightsql $(python -c 'import adbc_driver_flightsql as a; print(a.__version__)')" >&2
source benches/flight_load.sh
exec python benches/flight_bench.py --sluice "$SLUICE_BIN" --load-bin "$FLIGHT_LOAD" --floor-bin "$FLIGHT_FLOOR" "$@"
