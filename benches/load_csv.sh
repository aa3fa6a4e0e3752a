#!/usr/bin/env bash
# Benchmark: load a deterministic 10-million-row (~400 MB) CSV into a local Delta
# table with `sluice load`, and in the same run convert the same file with DuckDB
# (COPY (FROM read_csv(...)) TO 'x.parquet' (COMPRESSION zstd)). Reports rows/s,
# MB/s and peak RSS of both.
#
#   bash benches/load_csv.sh [ROWS]      (default 10000000)
#
# Needs python3 (the test venv provides duckdb) and a release build (made here).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROWS="${1:-10000000}"
source tests/venv.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
# Same flags as .ci/run, so the build cache is shared.
if command -v mold >/dev/null 2>&1; then export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"; fi
# SLUICE_BIN=path skips the (slow, thin-LTO) release build.
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release --quiet; fi
BIN="${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}"

WORK="${BENCH_DIR:-/var/tmp/sluice-bench}"
mkdir -p "$WORK/data"
CSV="$WORK/data/events_$ROWS.csv"
if [ ! -s "$CSV" ]; then
    echo "generating $CSV"
    python - "$CSV" "$ROWS" <<'PY'
import sys, duckdb
path, n = sys.argv[1], int(sys.argv[2])
# Deterministic: every value is a function of the row number.
duckdb.connect().execute(f"""
COPY (
  SELECT i AS event_id,
         (hash(i) % 100000)::BIGINT AS user_id,
         (hash(i * 7) % 5000)::BIGINT AS merchant_id,
         round(((hash(i * 13) % 1000000) / 100.0)::DECIMAL(12,2), 2) AS amount,
         ['EUR','USD','GBP','CHF'][1 + (hash(i * 3) % 4)::INT] AS currency,
         TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds((i * 3)::BIGINT) AS ts
  FROM range({n}) t(i)
) TO '{path}' (HEADER, DELIMITER ',', TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%SZ')
""")
PY
fi
BYTES=$(stat -c %s "$CSV")

# A throwaway project declaring the file.
PROJ="$WORK/project"
rm -rf "$PROJ" && mkdir -p "$PROJ/catalog"
cat > "$PROJ/sluice.toml" <<TOML
[project]
name = "bench"
[warehouse]
uri = "warehouse"
TOML
cat > "$PROJ/catalog/events.toml" <<TOML
[[source]]
name = "events"
format = "csv"
location = "$CSV"
[[source.columns]]
name = "event_id"
type = "bigint"
not_null = true
[[source.columns]]
name = "user_id"
type = "bigint"
[[source.columns]]
name = "merchant_id"
type = "bigint"
[[source.columns]]
name = "amount"
type = "decimal(12,2)"
[[source.columns]]
name = "currency"
type = "varchar"
[[source.columns]]
name = "ts"
type = "timestamptz"
TOML

measure() { # label, command...: prints "label seconds peak_rss_kib"
    local label=$1; shift
    local out; out=$(mktemp)
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$out.rss" "$@" >"$out" 2>&1 || { cat "$out"; exit 1; }
    end=$(date +%s.%N)
    echo "$label $(awk "BEGIN{print $end - $start}") $(cat "$out.rss")"
    rm -f "$out" "$out.rss"
}

sync
S=$(measure sluice "$BIN" --project "$PROJ" --progress never load)
rm -f "$WORK/duckdb.parquet"
D=$(measure duckdb python -c "
import duckdb
duckdb.connect().execute(\"COPY (FROM read_csv('$CSV')) TO '$WORK/duckdb.parquet' (COMPRESSION zstd)\")
")
COUNT=$("$BIN" --project "$PROJ" sql "SELECT count(*) AS n FROM raw.events" --format csv | tail -1)
[ "$COUNT" = "$ROWS" ] || { echo "sluice loaded $COUNT rows, expected $ROWS" >&2; exit 1; }

echo
echo "file: $CSV ($ROWS rows, $BYTES bytes), $(nproc) cores"
printf "%-8s %10s %14s %10s %14s\n" tool seconds rows/s MB/s peak_RSS_MiB
for line in "$S" "$D"; do
    set -- $line
    awk -v t="$1" -v s="$2" -v r="$3" -v rows="$ROWS" -v bytes="$BYTES" \
        'BEGIN { printf "%-8s %10.2f %14.0f %10.1f %14.0f\n", t, s, rows / s, bytes / 1e6 / s, r / 1024 }'
done
