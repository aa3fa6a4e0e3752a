#!/usr/bin/env bash
# Benchmark: load a deterministic CSV of ROWS rows into a local Delta table with
# `sluice load`, and in the same run convert the same file with DuckDB
# (COPY (FROM read_csv(...)) TO 'x.parquet' (COMPRESSION zstd)). Reports rows/s,
# MB/s and peak RSS of both, for each shape:
#
#   events  written by DuckDB: ids, DECIMAL(12,2), a short code, a timestamp
#           spelled 2026-01-01T00:00:03Z with timestamp_format "%Y-%m-%dT%H:%M:%SZ"
#           declared (~51 bytes a row)
#   orders  written by Python's csv module: quoted names with commas and doubled
#           quotes, Python booleans (True/False), float reprs, prices with 0-2
#           decimals, Python's isoformat timestamps "2026-01-01 10:00:00+00:00"
#           with "%Y-%m-%d %H:%M:%S%:z" declared, empty fields (~85 bytes a row)
#
#   bash benches/load_csv.sh [ROWS] [SHAPE...]      (default 10000000 events orders)
#
# Needs python3 (the test venv provides duckdb) and a release build (made here).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROWS="${1:-10000000}"
shift || true
SHAPES=("$@")
[ ${#SHAPES[@]} -gt 0 ] || SHAPES=(events orders)
source tests/venv.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
# Same flags as .ci/run, so the build cache is shared.
if command -v mold >/dev/null 2>&1; then export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"; fi
# SLUICE_BIN=path skips the release build.
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release --quiet; fi
BIN="${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}"

WORK="${BENCH_DIR:-/var/tmp/sluice-bench}"
mkdir -p "$WORK/data"

generate_events() { # path rows
    python - "$1" "$2" <<'PY'
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
}

generate_orders() { # path rows
    python - "$1" "$2" <<'PY'
import csv, random, sys
from datetime import datetime, timedelta, timezone
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261204)  # deterministic
first = ["Ana", "Bo", "Chen", "Dmitri", "Eve", "Fatima", "Gus", "Hiro", "Ines", "Jon"]
last = ["Smith", "O'Brien", "Nguyen", "Müller", "García", "Kowalski", "Okafor", "Li"]
notes = ["", "", "", "", "leave at door", 'gift wrap, "red" ribbon', "call first\nthen knock"]
start = datetime(2025, 1, 1, tzinfo=timezone.utc)
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["order_id", "customer", "quantity", "unit_price", "discount", "gift", "created_at", "note"])
    for i in range(n):
        name = f"{rng.choice(last)}, {rng.choice(first)}" if i % 3 else f'{rng.choice(first)} "{rng.choice(last)}"'
        price = rng.randrange(1, 100000) / 100  # 0-2 decimals as Python prints it
        discount = rng.choice([0.0, 0.05, 0.1, rng.random() / 4])
        ts = start + timedelta(seconds=i * 3 + rng.randrange(3))
        w.writerow([i, name, rng.randrange(1, 20), price, discount, rng.random() < 0.1,
                    ts.isoformat(sep=" "), rng.choice(notes)])
PY
}

write_catalog() { # shape csv catalog_file
    case $1 in
    events) cat > "$3" <<TOML
[[source]]
name = "events"
format = "csv"
location = "$2"
[source.csv]
timestamp_format = "%Y-%m-%dT%H:%M:%SZ"
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
    ;;
    orders) cat > "$3" <<TOML
[[source]]
name = "orders"
format = "csv"
location = "$2"
[source.csv]
timestamp_format = "%Y-%m-%d %H:%M:%S%:z"
[[source.columns]]
name = "order_id"
type = "bigint"
not_null = true
[[source.columns]]
name = "customer"
type = "varchar"
[[source.columns]]
name = "quantity"
type = "int"
[[source.columns]]
name = "unit_price"
type = "decimal(10,2)"
[[source.columns]]
name = "discount"
type = "double"
[[source.columns]]
name = "gift"
type = "boolean"
[[source.columns]]
name = "created_at"
type = "timestamptz"
[[source.columns]]
name = "note"
type = "varchar"
TOML
    ;;
    *) echo "unknown shape $1 (events, orders)" >&2; exit 2 ;;
    esac
}

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

RESULTS=()
for SHAPE in "${SHAPES[@]}"; do
    CSV="$WORK/data/${SHAPE}_$ROWS.csv"
    if [ ! -s "$CSV" ]; then
        echo "generating $CSV"
        "generate_$SHAPE" "$CSV.tmp" "$ROWS"
        mv "$CSV.tmp" "$CSV"
    fi
    BYTES=$(stat -c %s "$CSV")

    # A throwaway project declaring the file.
    PROJ="$WORK/project_$SHAPE"
    rm -rf "$PROJ" && mkdir -p "$PROJ/catalog"
    cat > "$PROJ/sluice.toml" <<TOML
[project]
name = "bench"
[warehouse]
uri = "warehouse"
TOML
    write_catalog "$SHAPE" "$CSV" "$PROJ/catalog/$SHAPE.toml"

    sync
    S=$(measure sluice "$BIN" --project "$PROJ" --progress never load)
    rm -f "$WORK/duckdb.parquet"
    D=$(measure duckdb python -c "
import duckdb
duckdb.connect().execute(\"COPY (FROM read_csv('$CSV')) TO '$WORK/duckdb.parquet' (COMPRESSION zstd)\")
")
    # Every row loaded, none quarantined; DuckDB read the same number.
    COUNT=$("$BIN" --project "$PROJ" sql "SELECT count(*) AS n FROM raw.$SHAPE" --format csv | tail -1)
    [ "$COUNT" = "$ROWS" ] || { echo "$SHAPE: sluice loaded $COUNT rows, expected $ROWS" >&2; exit 1; }
    DCOUNT=$(python -c "import duckdb; print(duckdb.connect().execute(\"SELECT count(*) FROM '$WORK/duckdb.parquet'\").fetchone()[0])")
    [ "$DCOUNT" = "$ROWS" ] || { echo "$SHAPE: duckdb wrote $DCOUNT rows, expected $ROWS" >&2; exit 1; }
    RESULTS+=("$SHAPE $ROWS $BYTES $S" "$SHAPE $ROWS $BYTES $D")
done

echo
echo "$(nproc) cores; files in $WORK/data"
printf "%-8s %-8s %10s %10s %14s %10s %14s %10s\n" shape tool rows seconds rows/s MB/s peak_RSS_MiB vs_duckdb
for ((k = 0; k < ${#RESULTS[@]}; k += 2)); do
    set -- ${RESULTS[k+1]}
    dsec=$5
    for line in "${RESULTS[k]}" "${RESULTS[k+1]}"; do
        set -- $line
        awk -v shape="$1" -v rows="$2" -v bytes="$3" -v t="$4" -v s="$5" -v r="$6" -v d="$dsec" \
            'BEGIN { printf "%-8s %-8s %10d %10.2f %14.0f %10.1f %14.0f %9.2fx\n", shape, t, rows, s, rows / s, bytes / 1e6 / s, r / 1024, s / d }'
    done
done
