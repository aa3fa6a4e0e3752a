#!/usr/bin/env bash
# Benchmark (b) of issue 22: freshness of a stream feature view while
# benchmark (a)'s load runs, two data shapes, 1 s and 250 ms triggers.
#   bash benches/freshness.sh [--rate 50000] [--probes 1000] [--triggers 1000,250]
# Needs the release binary (built here) and the test venv (tests/venv.sh).
# With SLUICE_BENCH_REDIS_URL set, the online store is that Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/venv.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
BIN="${SLUICE_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release --bin sluice
    BIN="$CARGO_TARGET_DIR/release/sluice"
fi
exec python benches/stream_freshness.py --sluice "$BIN" "$@"
