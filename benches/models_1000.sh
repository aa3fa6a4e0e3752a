#!/usr/bin/env bash
# Benchmark: a generated project of N ref()-linked models over a small seed
# (benches/gen_models.py), run by `sluice compile` / `sluice run models` and, in
# the same run on the same folder, by dbt-core + dbt-duckdb (`dbt compile`,
# `dbt run`). Both build every model as a table, with 2 threads.
#
#   bash benches/models_1000.sh [N] [MATERIALIZED]     (default 1000 table)
#
# Installs dbt-core 1.10 / dbt-duckdb 1.9 into /var/tmp/sluice-dbt-venv (override
# with DBT_VENV) on first use. SLUICE_BIN=path skips the release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-1000}"
MAT="${2:-table}"
THREADS="${THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
if command -v mold >/dev/null 2>&1; then export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"; fi
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release --quiet; fi
BIN="${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}"

DBT_VENV="${DBT_VENV:-/var/tmp/sluice-dbt-venv}"
if [ ! -x "$DBT_VENV/bin/dbt" ]; then
    python3 -m venv "$DBT_VENV"
    "$DBT_VENV/bin/pip" install --quiet 'dbt-core==1.10.*' 'dbt-duckdb==1.9.*'
fi
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1

WORK="${BENCH_DIR:-/var/tmp/sluice-bench}/models_${N}_${MAT}"
rm -rf "$WORK"
python3 benches/gen_models.py "$WORK" "$N" "$MAT"
cd "$WORK"

# seconds and peak RSS (MiB) of a command; its output goes to $WORK/<name>.log
measure() {
    local name="$1"; shift
    /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.log" 2>&1 \
        || { echo "$name failed:"; tail -20 "$WORK/$name.log"; exit 1; }
    read -r secs kib < "$WORK/$name.time"
    printf '%-34s %8.2f s %8d MiB\n' "$name" "$secs" "$((kib / 1024))"
}

echo "$N models ($MAT), $THREADS threads, $(nproc) cores; sluice: $BIN; dbt: $("$DBT_VENV/bin/dbt" --version 2>/dev/null | grep -m1 -o 'installed: [0-9.]*')"
"$BIN" seed > /dev/null
"$DBT_VENV/bin/dbt" seed --profiles-dir . > /dev/null
measure "sluice compile" "$BIN" compile
measure "sluice compile (again)" "$BIN" compile
measure "dbt compile" "$DBT_VENV/bin/dbt" compile --profiles-dir . --threads "$THREADS"
measure "sluice run models (create)" "$BIN" run models --threads "$THREADS"
measure "sluice run models (replace)" "$BIN" run models --threads "$THREADS"
measure "dbt run (create)" "$DBT_VENV/bin/dbt" run --profiles-dir . --threads "$THREADS"
measure "dbt run (replace)" "$DBT_VENV/bin/dbt" run --profiles-dir . --threads "$THREADS"
grep -h "done in" "$WORK/sluice run models (replace).log" || true
grep -h "Done\." "$WORK/dbt run (replace).log" | tail -1 || true
