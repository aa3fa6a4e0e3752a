#!/usr/bin/env bash
# Benchmark: the feature store (benches/features_bench.py has the helpers and the data's details).
#
#   (a) a point-in-time training set: ENTITY_ROWS entity rows (default 1M) over VIEWS feature
#       views (default 5) of ROWS rows each (default 10M), with
#       `sluice features historical --entities raw.entities --features v1 .. v5 --timestamp ts
#        --out full.parquet`: wall time and peak RSS (/usr/bin/time), output checked (row count,
#       every row_id once, unknown entities all NULL, a NumPy oracle on CHECK_SAMPLE sampled rows; every row of the subset).
#       In the same run, on a subset (default FEAST_ENTITY_ROWS=100k entity rows over one view of
#       FEAST_ROWS=1M rows, the same density of rows per entity), Feast's file offline store
#       (DaskOfflineStore, parquet FileSource; installed into FEAST_VENV on first use) and sluice
#       on exactly the same subset: Feast / sluice time and memory, both outputs checked the same
#       way and compared row by row. Times are normalised per entity row x view and per view row.
#   (b) online lookups: `sluice materialize` (timed), then `sluice serve` (auth on) and CLIENTS
#       ADBC client processes (default 16) running the prepared
#       `SELECT * FROM online.<view> WHERE entity_id = ?` with a random existing entity of a random
#       view per call for ONLINE_SECONDS (default 30): back to back (closed loop), then paced at
#       RATE queries/s per client (default 5, below saturation; latency from the scheduled send time, so queueing
#       behind a slow answer counts). Every answer is checked (one row, _status, _event_time,
#       features). Fails with a clear message when the binary has no `sluice materialize`.
#
# `sluice load` and `sluice run models` (building the five views) are timed too, but are not part
# of (a). Prints a results table, and rows for benches/README.md (also in $LOG/README-rows.md).
#
#   bash benches/features.sh                              # full size (~10 min incl. data generation)
#   ROWS=100000 ENTITIES=10000 ENTITY_ROWS=10000 FEAST_ROWS=50000 FEAST_ENTITY_ROWS=5000 \
#     ONLINE_SECONDS=3 CLIENTS=4 bash benches/features.sh   # smoke run, seconds
#
# Environment (defaults in brackets):
#   SLUICE_BIN [/var/tmp/sluice-target/release/sluice]   binary to run (never built here)
#   FEATBENCH_DIR [/var/tmp/featbench]   data, project, warehouse and logs (data reused when present)
#   ROWS [10000000] VIEWS [5] ENTITIES [1000000] ENTITY_ROWS [1000000] MISSING_FRAC [0.05]
#   FEAST [1] FEAST_ROWS [1000000] FEAST_ENTITY_ROWS [100000]
#   FEAST_ENTITIES [ENTITIES * FEAST_ROWS / ROWS: the same rows per entity as the full views]
#   FEAST_VENV [/var/tmp/sluice-feast-venv] FEAST_VERSION [0.67.*]
#   ONLINE [1] (0: skip (b)) CLIENTS [16] ONLINE_SECONDS [30] RATE [5] (0: no paced run)
#   REUSE_WAREHOUSE [0]  1: keep a loaded and built warehouse (skips load and run)
#   ONLINE_MOCK [0]  1: test this harness's (b) without `sluice materialize`: online.<view> built
#                    as plain Delta tables by `sluice sql` (the numbers are NOT the online store's)
#   CHECK_SAMPLE [20000]  entity rows of the full training set checked against the NumPy oracle
#                         (the subset's training sets are checked on every row)
# Needs the test venv (tests/venv.sh: pyarrow, numpy, adbc-driver-flightsql) and /usr/bin/time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source tests/venv.sh
BIN="$(realpath "${SLUICE_BIN:-/var/tmp/sluice-target/release/sluice}")"
[ -x "$BIN" ] || { echo "no sluice binary at $BIN (cargo build --release, or set SLUICE_BIN)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

ROWS="${ROWS:-10000000}"
VIEWS="${VIEWS:-5}"
ENTITIES="${ENTITIES:-1000000}"
ENTITY_ROWS="${ENTITY_ROWS:-1000000}"
MISSING_FRAC="${MISSING_FRAC:-0.05}"
FEAST="${FEAST:-1}"
FEAST_ROWS="${FEAST_ROWS:-1000000}"
FEAST_ENTITY_ROWS="${FEAST_ENTITY_ROWS:-100000}"
FEAST_ENTITIES="${FEAST_ENTITIES:-$(( ENTITIES * FEAST_ROWS / ROWS > 0 ? ENTITIES * FEAST_ROWS / ROWS : 1 ))}"
FEAST_VENV="${FEAST_VENV:-/var/tmp/sluice-feast-venv}"
FEAST_VERSION="${FEAST_VERSION:-0.67.*}"
ONLINE="${ONLINE:-1}"
CLIENTS="${CLIENTS:-16}"
ONLINE_SECONDS="${ONLINE_SECONDS:-30}"
RATE="${RATE:-5}"
REUSE_WAREHOUSE="${REUSE_WAREHOUSE:-0}"
ONLINE_MOCK="${ONLINE_MOCK:-0}"
CHECK_SAMPLE="${CHECK_SAMPLE:-20000}"
WORK="${FEATBENCH_DIR:-/var/tmp/featbench}"
PY=(python "$ROOT/benches/features_bench.py")
unset SLUICE_WAREHOUSE  # the project's warehouse, always

DATA="$WORK/data_${ROWS}x${VIEWS}_e${ENTITIES}_n${ENTITY_ROWS}_sub${FEAST_ROWS}_e${FEAST_ENTITIES}_n${FEAST_ENTITY_ROWS}"
PROJ="$DATA/project"
SL=("$BIN" --project "$PROJ" --progress never)
LOG="$DATA/logs"
OUT="$DATA/out"
VIEW_NAMES=()
for ((k = 1; k <= VIEWS; k++)); do VIEW_NAMES+=("v$k"); done
FAILED=()

echo "$(nproc) cores; sluice: $BIN; data: $DATA" >&2

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
# timed NAME CMD...: runs CMD under /usr/bin/time (stdout/stderr in $LOG/NAME.out/.err); sets
# SECS, KIB, USER_S, SYS_S; exits with the command's output when it fails.
timed() {
    local name=$1; shift
    local rc=0
    /usr/bin/time -f "%e %M %U %S" -o "$LOG/$name.time" "$@" > "$LOG/$name.out" 2> "$LOG/$name.err" || rc=$?
    read -r SECS KIB USER_S SYS_S < <(tail -1 "$LOG/$name.time")
    if [ "$rc" != 0 ]; then
        echo "$name failed (exit $rc): $*" >&2
        tail -n 30 "$LOG/$name.err" "$LOG/$name.out" >&2
        exit 1
    fi
    printf '  %-28s %8.2f s %7d MiB  (user %s s, sys %s s)\n' "$name" "$SECS" "$((KIB / 1024))" "$USER_S" "$SYS_S" >&2
}
record() { "${PY[@]}" record "$LOG" "$@" > /dev/null; }
rows_of() { python -c 'import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)' "$1"; }

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "sluice serve ignored SIGTERM for 30 s: killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
mkdir -p "$DATA"
"${PY[@]}" gen "$DATA" --rows "$ROWS" --views "$VIEWS" --entities "$ENTITIES" --entity-rows "$ENTITY_ROWS" \
    --missing-frac "$MISSING_FRAC" --sub-rows "$FEAST_ROWS" --sub-entities "$FEAST_ENTITIES" \
    --sub-entity-rows "$FEAST_ENTITY_ROWS" > "$DATA/gen.json"
rm -rf "$LOG" "$OUT" && mkdir -p "$LOG" "$OUT"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT+changes"
record context date="\"$(date -u +%Y-%m-%d)\"" commit="\"$COMMIT\"" cores="$(nproc)" sluice="\"$BIN\"" \
    rows="$ROWS" views="$VIEWS" entities="$ENTITIES" entity_rows="$ENTITY_ROWS" missing_frac="$MISSING_FRAC" \
    sub_rows="$FEAST_ROWS" sub_entities="$FEAST_ENTITIES" sub_entity_rows="$FEAST_ENTITY_ROWS"
GEN_NOTE=$(python - "$DATA/gen.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
mib = sum(m["bytes"].values()) / 2**20
print(("reused; " if m.get("reused") else "") + f"{mib:,.0f} MiB of ZSTD Parquet; events up to {m['t_end'][:16]} back 365 days")
PY
)
GEN_S=$(python -c 'import json,sys; m = json.load(open(sys.argv[1])); print("null" if m.get("reused") else m.get("gen_s", "null"))' "$DATA/gen.json")
record gen secs="$GEN_S" note="\"$GEN_NOTE\""
cat "$DATA"/*.parquet > /dev/null  # warm page cache for everyone

# ---------------------------------------------------------------------------------------------
# the sluice project: sources, five feature views (+ the subset's view), warehouse
# ---------------------------------------------------------------------------------------------
write_project() {
    rm -rf "$PROJ"
    mkdir -p "$PROJ/catalog" "$PROJ/models/features"
    cat > "$PROJ/sluice.toml" <<EOF
[project]
name = "featbench"
models = "models"
catalog = "catalog"

[warehouse]
uri = "warehouse"
default_schema = "raw"
EOF
    local src="$PROJ/catalog/sources.toml"
    : > "$src"
    add_source() { # NAME FILE
        cat >> "$src" <<EOF
[[source]]
name = "$1"
format = "parquet"
location = "$DATA/$2"
target = "raw.$1"
mode = "overwrite"

EOF
    }
    local k
    for ((k = 1; k <= VIEWS; k++)); do add_source "view${k}_source" "view$k.parquet"; done
    add_source entities entities.parquet
    add_source sub_view_source sub_view.parquet
    add_source sub_entities sub_entities.parquet
    for ((k = 1; k <= VIEWS; k++)); do
        local created=""
        [ "$k" != 1 ] || created=", 'created_timestamp': 'created_ts'"
        cat > "$PROJ/models/features/v$k.sql" <<EOF
{{ config(materialized='table', feature_view={'entities': ['entity_id'], 'event_timestamp': 'event_ts'$created, 'ttl': '90d', 'online': true}) }}
SELECT * FROM raw.view${k}_source
EOF
    done
    cat > "$PROJ/models/features/sub1.sql" <<EOF
{{ config(materialized='table', feature_view={'entities': ['entity_id'], 'event_timestamp': 'event_ts', 'created_timestamp': 'created_ts', 'ttl': '90d', 'online': false}) }}
SELECT * FROM raw.sub_view_source
EOF
}

echo "sluice: load and build" >&2
if [ "$REUSE_WAREHOUSE" = 1 ] && [ -d "$PROJ/warehouse" ]; then
    echo "  reusing $PROJ/warehouse (REUSE_WAREHOUSE=1)" >&2
else
    write_project
    timed load "${SL[@]}" load
    record load secs="$SECS" kib="$KIB" note="\"$((VIEWS * ROWS + ENTITY_ROWS + FEAST_ROWS + FEAST_ENTITY_ROWS)) rows from Parquet, $((VIEWS + 3)) sources\""
    timed run "${SL[@]}" run models
    record run secs="$SECS" kib="$KIB" note="\"$((VIEWS + 1)) feature-view tables (CTAS), $((VIEWS * ROWS + FEAST_ROWS)) rows$("$BIN" materialize --help > /dev/null 2>&1 && echo "; includes writing the online store of the $VIEWS online views")\""
fi

# ---------------------------------------------------------------------------------------------
# (a) training sets
# ---------------------------------------------------------------------------------------------
view_args=()
for ((k = 1; k <= VIEWS; k++)); do view_args+=(--view "v$k=$DATA/view$k.parquet"); done
# check NAME LABEL OUTFILE ENTITIES_FILE EXISTING VIEW_ARGS...: the checks as JSON in $LOG/NAME.check.json;
# CHECK_OK=1 when they pass.
check() {
    local name=$1 label=$2 out=$3 ent=$4 existing=$5; shift 5
    local rc=0
    "${PY[@]}" check "$out" --entities "$ent" --existing "$existing" --label "$label" "$@" \
        > "$LOG/$name.check.json" 2> "$LOG/$name.check.err" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "check of $name failed to run:" >&2; cat "$LOG/$name.check.err" >&2; exit 1; }
    CHECK_OK=$([ "$rc" = 0 ] && echo 1 || echo 0)
    python - "$LOG/$name.check.json" <<'PY' >&2
import json, sys
c = json.load(open(sys.argv[1]))
o = c["oracle"]
print(f"    rows in {c['rows_in']:,} out {c['rows_out']:,}; dropped row_ids {c['row_ids_dropped']:,}, "
      f"duplicated {c['row_ids_duplicated']:,}; unknown-entity rows in {c['unknown_entity_rows_in']:,} "
      f"out {c['unknown_entity_rows_out']:,} (with features {c['unknown_entity_rows_with_features']}); "
      f"oracle: {o['row_views_wrong']} wrong of {o['row_views_checked']} (row x view; "
      f"{o['wrong_at_event_time_ties']} of them at event-time ties)")
if c.get("dropped_why"):
    print(f"    dropped because: {c['dropped_why']}")
for e in o["examples"][:3]:
    print(f"      e.g. {e}")
PY
}

echo "(a) sluice features historical: $ENTITY_ROWS entity rows x $VIEWS views x $ROWS rows" >&2
timed hist_full "${SL[@]}" features historical --entities raw.entities --features "${VIEW_NAMES[@]}" \
    --timestamp ts --out "$OUT/full.parquet"
N=$(rows_of "$OUT/full.parquet")
check hist_full sluice "$OUT/full.parquet" "$DATA/entities.parquet" "$ENTITIES" --sample "$CHECK_SAMPLE" "${view_args[@]}"
[ "$CHECK_OK" = 1 ] || FAILED+=("sluice training set (full) failed its checks: $LOG/hist_full.check.json")
[ "$N" = "$ENTITY_ROWS" ] || FAILED+=("sluice training set (full): $N rows, expected $ENTITY_ROWS")
record hist_full secs="$SECS" kib="$KIB" rows_out="$N" user_s="$USER_S" sys_s="$SYS_S" \
    check@file="$LOG/hist_full.check.json" note="\"user $USER_S s sys $SYS_S s\""

echo "(a) subset: $FEAST_ENTITY_ROWS entity rows x 1 view x $FEAST_ROWS rows" >&2
timed hist_sub "${SL[@]}" features historical --entities raw.sub_entities --features sub1 \
    --timestamp ts --out "$OUT/sub_sluice.parquet"
N=$(rows_of "$OUT/sub_sluice.parquet")
check hist_sub sluice "$OUT/sub_sluice.parquet" "$DATA/sub_entities.parquet" "$FEAST_ENTITIES" \
    --sample "$FEAST_ENTITY_ROWS" --view "sub1=$DATA/sub_view.parquet"
[ "$CHECK_OK" = 1 ] || FAILED+=("sluice training set (subset) failed its checks: $LOG/hist_sub.check.json")
[ "$N" = "$FEAST_ENTITY_ROWS" ] || FAILED+=("sluice training set (subset): $N rows, expected $FEAST_ENTITY_ROWS")
record hist_sub secs="$SECS" kib="$KIB" rows_out="$N" user_s="$USER_S" sys_s="$SYS_S" \
    check@file="$LOG/hist_sub.check.json" note="\"user $USER_S s sys $SYS_S s\""

if [ "$FEAST" != 0 ]; then
    if ! "$FEAST_VENV/bin/python" -c 'import feast' 2>/dev/null; then
        echo "installing feast==$FEAST_VERSION into $FEAST_VENV (log: $WORK/feast-install.log)" >&2
        [ -x "$FEAST_VENV/bin/python" ] || python3 -m venv "$FEAST_VENV"
        if ! "$FEAST_VENV/bin/python" -m pip install -q --disable-pip-version-check "feast==$FEAST_VERSION" \
                > "$WORK/feast-install.log" 2>&1; then
            echo "pip install feast==$FEAST_VERSION failed; Feast skipped:" >&2
            tail -n 20 "$WORK/feast-install.log" >&2
            FEAST=0
            record feast note="\"pip install feast==$FEAST_VERSION failed (see $WORK/feast-install.log)\""
        fi
    fi
fi
if [ "$FEAST" != 0 ]; then
    FEAST_V=$("$FEAST_VENV/bin/python" -c 'import feast; print(feast.__version__)' 2>/dev/null)
    echo "(a) Feast $FEAST_V, file offline store, on the same subset" >&2
    export FEAST_USAGE=False
    timed feast "$FEAST_VENV/bin/python" benches/features_bench.py feast "$DATA" --repo "$DATA/feast_repo" \
        --out "$OUT/sub_feast.parquet"
    N=$(rows_of "$OUT/sub_feast.parquet")
    check feast feast "$OUT/sub_feast.parquet" "$DATA/sub_entities.parquet" "$FEAST_ENTITIES" \
        --sample "$FEAST_ENTITY_ROWS" --view "sub1=$DATA/sub_view.parquet"
    python - "$LOG/feast.out" >&2 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"    feast {d['feast_version']}: import {d['import_s']} s, apply {d['apply_s']} s, read entities "
      f"{d['read_entities_s']} s, get_historical_features().to_arrow() {d['retrieval_s']} s, write {d['write_s']} s")
PY
    record feast secs="$SECS" kib="$KIB" rows_out="$N" detail@file="$LOG/feast.out" \
        check@file="$LOG/feast.check.json" \
        note="\"Feast $FEAST_V; retrieval alone $(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["retrieval_s"])' "$LOG/feast.out") s; $((FEAST_ENTITY_ROWS - N)) entity rows dropped\""
    "${PY[@]}" compare "$OUT/sub_sluice.parquet" "$OUT/sub_feast.parquet" --features sub1_a sub1_b sub1_c sub1_d \
        --label-a sluice --label-b feast > "$LOG/compare.json"
    record compare detail@file="$LOG/compare.json"
fi

echo >&2
"${PY[@]}" report "$LOG"

# ---------------------------------------------------------------------------------------------
# (b) online lookups over Flight SQL
# ---------------------------------------------------------------------------------------------
if [ "$ONLINE" != 0 ]; then
    echo >&2
    if [ "$ONLINE_MOCK" != 1 ] && ! "$BIN" materialize --help > /dev/null 2>&1; then
        echo "(b) needs \`sluice materialize\`, which $BIN does not have (\`$BIN materialize --help\` fails):" >&2
        { "$BIN" materialize --help 2>&1 || true; } | head -n 1 | sed 's/^/    /' >&2
        echo "    build a binary with it (SLUICE_BIN=...), or run with ONLINE=0 to measure (a) only" >&2
        echo "    (ONLINE_MOCK=1 tests this harness with online.<view> as plain Delta tables: not a measurement)" >&2
        exit 1
    fi
    "${PY[@]}" expect "$DATA" --views "${VIEW_NAMES[@]}" > "$LOG/expect.json"
    N_ONLINE=$(python -c 'import json,sys; print(sum(json.load(open(sys.argv[1])).values()))' "$LOG/expect.json")
    if [ "$ONLINE_MOCK" = 1 ]; then
        # Harness self-test only: online.<view> as a Delta table of each entity's newest row (ties:
        # newest created_ts), _status from the TTL at build time; no 'not_found' rows (the probe of
        # an unknown entity fails). Served from Delta, not from the online store.
        echo "(b) ONLINE_MOCK=1: building online.<view> with sluice sql (NOT sluice materialize; numbers are not the online store's)" >&2
        for ((k = 1; k <= VIEWS; k++)); do
            order="event_ts DESC"
            [ "$k" != 1 ] || order="event_ts DESC, created_ts DESC"
            feats=""
            for c in a b c d; do feats="$feats CASE WHEN fresh THEN v${k}_$c END AS v${k}_$c,"; done
            timed "mock_online_v$k" "${SL[@]}" sql "CREATE OR REPLACE TABLE online.v$k AS SELECT entity_id,$feats event_ts AS _event_time, CASE WHEN fresh THEN 'present' ELSE 'outside_ttl' END AS _status FROM (SELECT *, event_ts >= now() - INTERVAL '90 days' AS fresh, row_number() OVER (PARTITION BY entity_id ORDER BY $order) AS rn FROM features.v$k) WHERE rn = 1"
        done
        record materialize note="\"MOCK (ONLINE_MOCK=1): online.<view> built with sluice sql as Delta tables; not a measurement\""
    else
        # Name the views: with no names every registered view is materialized (the subset's too).
        # `sluice run` already writes the online store of online views, so the plain run below is
        # normally "up to date" (its cost is that check); --full rebuilds every view from its table.
        MAT_HELP="$("$BIN" materialize --help 2>&1 || true)"
        MAT_FMT=()
        ! grep -q -- '--format' <<< "$MAT_HELP" || MAT_FMT=(--format json)
        summarize_mat() { # NAME: a one-line note from the command's output
            python - "$LOG/$1.out" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    r = json.loads(text)
    modes = sorted({x.get("mode") for x in r})
    print(f"{len(r)} views, mode {'/'.join(map(str, modes))}, rows read {sum(x.get('rows_read', 0) for x in r):,}, "
          f"entities written {sum(x.get('entities_written', 0) for x in r):,}, in store {sum(x.get('entity_count', 0) for x in r):,}")
except ValueError:
    print(" / ".join(l.strip() for l in text.splitlines()[:8]).replace('"', "'"))
PY
        }
        echo "(b) sluice materialize ${VIEW_NAMES[*]}" >&2
        timed materialize "${SL[@]}" materialize "${VIEW_NAMES[@]}" "${MAT_FMT[@]}"
        sed 's/^/    /' "$LOG/materialize.out" | head -n 20 >&2
        record materialize secs="$SECS" kib="$KIB" note="\"after sluice run: $(summarize_mat materialize)\""
        if grep -q -- '--full' <<< "$MAT_HELP"; then
            echo "(b) sluice materialize --full ${VIEW_NAMES[*]}" >&2
            timed materialize_full "${SL[@]}" materialize --full "${VIEW_NAMES[@]}" "${MAT_FMT[@]}"
            sed 's/^/    /' "$LOG/materialize_full.out" | head -n 20 >&2
            record materialize_full secs="$SECS" kib="$KIB" note="\"$(summarize_mat materialize_full); expected $N_ONLINE entities\""
        fi
    fi

    export BENCH_USER=bench BENCH_PASSWORD=bench-password
    SLUICE_USER="$BENCH_USER" SLUICE_PASSWORD="$BENCH_PASSWORD" \
        "${SL[@]}" serve --host 127.0.0.1 --port 0 \
        > "$LOG/serve.out" 2> "$LOG/serve.err" &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 1 600); do
        PORT=$(sed -nE 's#.*listening on grpc://[^ ]*:([0-9]+).*#\1#p' "$LOG/serve.out" | head -n 1)
        [ -z "$PORT" ] || break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "sluice serve exited:" >&2; tail -n 20 "$LOG/serve.err" >&2; exit 1; }
        sleep 0.2
    done
    [ -n "$PORT" ] || { echo "sluice serve did not print its port in 120 s:" >&2; tail -n 20 "$LOG/serve.err" >&2; exit 1; }
    echo "(b) sluice serve on grpc://127.0.0.1:$PORT (pid $SERVER_PID)" >&2
    rc=0
    "${PY[@]}" online --uri "grpc://127.0.0.1:$PORT" --data "$DATA" --views "${VIEW_NAMES[@]}" \
        --clients "$CLIENTS" --seconds "$ONLINE_SECONDS" --rate "$RATE" --server-pid "$SERVER_PID" \
        $([ "$ONLINE_MOCK" != 1 ] || echo --no-unknown-probe) > "$LOG/online.json" || rc=$?
    stop_server
    [ "$rc" = 0 ] || { echo "online clients failed (exit $rc)" >&2; exit 1; }
    record online detail@file="$LOG/online.json"
    python - "$LOG/online.json" <<'PY' || FAILED+=("online: errors, wrong answers or probe problems (see $LOG/online.json)")
import json, sys
d = json.load(open(sys.argv[1]))
bad = d["probe"]["problems"] or any("fatal" in d[k] or d[k]["errors"] or d[k]["wrong_answers"]
                                    for k in ("closed", "paced") if k in d)
sys.exit(1 if bad else 0)
PY
    echo >&2
    "${PY[@]}" report "$LOG"
fi

echo "logs: $LOG" >&2
if [ "${#FAILED[@]}" != 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
