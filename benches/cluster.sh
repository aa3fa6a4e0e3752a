#!/usr/bin/env bash
# Scale-out benchmark (issue 23): TPC-H (tpchgen-cli) and the point-in-time
# workload (benches/gen_asof.py) in Delta tables, run by one coordinator over
# one worker pinned to core 0, then two workers on cores 0 and 1, and by the
# plain single process on both cores. See benches/cluster_bench.py.
#
#   bash benches/cluster.sh [SF]                 (default 1)
#
# Environment: SLUICE_BIN (a release binary; when unset, `cargo build
# --release` first), RUNS (3), LABELS (1000000), FEATURES (10000000),
# BENCH_DIR (/var/tmp/sluice-bench-cluster), ONLY (e.g. q1,q9,asof), MEMORY
# (SLUICE_MEMORY_LIMIT of each process, 8GiB; SF 10 needs 16GiB for q18).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tests/venv.sh
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 1; }
if [ -z "${SLUICE_BIN:-}" ]; then
    cargo build --release --bin sluice
    SLUICE_BIN="${CARGO_TARGET_DIR:-target}/release/sluice"
fi
exec python benches/cluster_bench.py --bin "$SLUICE_BIN" --sf "${1:-1}" --runs "${RUNS:-3}" \
    --labels "${LABELS:-1000000}" --features "${FEATURES:-10000000}" \
    --dir "${BENCH_DIR:-/var/tmp/sluice-bench-cluster}" --only "${ONLY:-}" --memory "${MEMORY:-8GiB}" \
    --configs "${CONFIGS:-single,one,two}" ${SETTINGS:+$(for s in $SETTINGS; do printf -- "--setting %s " "$s"; done)}
