#!/usr/bin/env bash
# Benchmark (issue 24): `sluice docs generate` (column lineage included) on a
# generated project of N ref()-linked models (benches/gen_models.py, built
# first so the site has versions and runs), and `dbt docs generate` (dbt-core +
# dbt-duckdb) on the same folder, in the same run, for reference.
#
#   bash benches/docs.sh [N]            (default 1000; RUNS=3, median)
#
# SLUICE_BIN=path skips the release build; DBT_VENV (default
# /var/tmp/sluice-dbt-venv) is created with dbt-core 1.10 / dbt-duckdb 1.9 on
# first use; NO_DBT=1 skips dbt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-1000}"
RUNS="${RUNS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release --quiet --bin sluice; fi
BIN="${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}"
WORK="${BENCH_DIR:-/var/tmp/sluice-bench}/docs_${N}"
rm -rf "$WORK"
python3 benches/gen_models.py "$WORK" "$N" table
cd "$WORK"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timed() { # seconds of one run of "$@" (output to $WORK/last.log)
    local t0 t1
    t0=$(date +%s.%N); "$@" > "$WORK/last.log" 2>&1 || { tail -20 "$WORK/last.log"; exit 1; }
    t1=$(date +%s.%N); echo "$t1 - $t0" | bc
}

"$BIN" --progress never seed > /dev/null
"$BIN" --progress never run models > /dev/null
for _ in $(seq "$RUNS"); do timed "$BIN" docs generate --out "$WORK/site"; done | median > "$WORK/sluice.s"
summary=$(grep '^docs:' "$WORK/last.log" || true)
printf 'sluice docs generate (%s models): %s s median of %s\n  %s\n' "$N" "$(cat "$WORK/sluice.s")" "$RUNS" "$summary"
printf '  data.js %s bytes\n' "$(stat -c %s "$WORK/site/data.js")"

if [ "${NO_DBT:-0}" != 1 ]; then
    DBT_VENV="${DBT_VENV:-/var/tmp/sluice-dbt-venv}"
    if [ ! -x "$DBT_VENV/bin/dbt" ]; then
        python3 -m venv "$DBT_VENV"
        "$DBT_VENV/bin/pip" install --quiet 'dbt-core==1.10.*' 'dbt-duckdb==1.9.*'
    fi
    export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1
    "$DBT_VENV/bin/dbt" seed --profiles-dir . > /dev/null
    "$DBT_VENV/bin/dbt" run --profiles-dir . --threads 2 > /dev/null
    for _ in $(seq "$RUNS"); do timed "$DBT_VENV/bin/dbt" docs generate --profiles-dir .; done | median > "$WORK/dbt.s"
    printf 'dbt docs generate (%s models, no column lineage): %s s median of %s\n' "$N" "$(cat "$WORK/dbt.s")" "$RUNS"
fi
