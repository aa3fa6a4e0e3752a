#!/usr/bin/env bash
# Benchmark (a) of issue 22: sustained Kafka ingest (sluice stream vs a Python
# confluent-kafka + deltalake pipeline), two data shapes, plus catch-up.
#   bash benches/stream.sh [--rate 60000] [--seconds 30] [--catchup 1000000]
# Needs the release binary (built here) and the test venv (tests/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/venv.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
BIN="${SLUICE_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release --bin sluice
    BIN="$CARGO_TARGET_DIR/release/sluice"
fi
exec python benches/stream_ingest.py --sluice "$BIN" "$@"
