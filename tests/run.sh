#!/usr/bin/env bash
# The one test command: Rust tests + Python interop tests against a local
# moto S3 server, then docker/ for real (its own dockerd; skipped with the
# reason where Docker cannot be installed). Runnable from any directory.
#   SLUICE_VENV       venv for the Python side (default /var/tmp/sluice-venv)
#   CARGO_TARGET_DIR  cargo target dir        (default /var/tmp/sluice-target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# 1. Python venv (reinstall only when requirements.txt changes)
source tests/venv.sh

# 2. moto S3 server on a free loopback port, stopped on exit
PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
MOTO_LOG="$(mktemp -t sluice-moto.XXXXXX.log)"
moto_server -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
cleanup() {
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    rm -f "$MOTO_LOG"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        echo "run.sh: moto_server exited early:" >&2; cat "$MOTO_LOG" >&2; exit 1
    fi
    sleep 0.2
done
python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/', timeout=2)" \
    || { echo "run.sh: moto_server did not answer on port $PORT" >&2; cat "$MOTO_LOG" >&2; exit 1; }

export SLUICE_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ENDPOINT_URL="$SLUICE_TEST_S3_ENDPOINT"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
export SLUICE_TEST_S3_BUCKET=sluice-it
python -c "import boto3; boto3.client('s3', endpoint_url='$SLUICE_TEST_S3_ENDPOINT').create_bucket(Bucket='$SLUICE_TEST_S3_BUCKET')"

# 3. redis-server for the Redis online store tests, on a free port, stopped on
#    exit. Installed with apt-get when missing and running as root; without it
#    the Redis tests are skipped, unless SLUICE_REQUIRE_REDIS=1 (CI sets it).
REDIS_BIN="${SLUICE_REDIS_SERVER:-$(command -v redis-server || true)}"
if [ -z "$REDIS_BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq redis-server >/dev/null 2>&1 \
        || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1)) || true
    REDIS_BIN="$(command -v redis-server || true)"
fi
REDIS_PID=""
if [ -n "$REDIS_BIN" ]; then
    REDIS_PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 50); do
        if python -c "import socket; socket.create_connection(('127.0.0.1', $REDIS_PORT), 0.2)" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    export SLUICE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
elif [ "${SLUICE_REQUIRE_REDIS:-0}" = 1 ]; then
    echo "run.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1
else
    echo "run.sh: redis-server not found: the Redis online store tests are skipped" >&2
fi
cleanup() {
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
    rm -f "$MOTO_LOG"
}

# 3b. Debian's chromium for the docs site tests (Playwright drives it; no
#     browser download). Installed with apt-get when missing and running as
#     root; without it those tests are skipped, unless SLUICE_REQUIRE_CHROMIUM=1
#     (CI sets it).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq chromium fonts-dejavu-core >/dev/null 2>&1 \
        || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium fonts-dejavu-core >/dev/null 2>&1)) || true
fi
if command -v chromium >/dev/null 2>&1; then
    export SLUICE_CHROMIUM="$(command -v chromium)"
elif [ "${SLUICE_REQUIRE_CHROMIUM:-0}" = 1 ]; then
    echo "run.sh: chromium is not installed (apt-get install chromium)" >&2; exit 1
else
    echo "run.sh: chromium not found: the docs site browser tests are skipped" >&2
fi

# 4. Rust build and tests (the venv's python3 is first on PATH)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
# The cluster tests generate TPC-H data with tpchgen-cli (in the venv): here
# its absence is a failure, not a skip.
export SLUICE_REQUIRE_TPCHGEN=1
cargo build
cargo test
export SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"

# 5. Python interop tests; exit code 5 (no tests collected) is a failure
rc=0
python -m pytest -q tests/python || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
fi
# The AS OF differential with each operator mode forced (auto indexes the smaller
# side in memory for these small files; the sort-merge runs when both are large).
if [ "$rc" -eq 0 ]; then
    SLUICE_ASOF_MODE=merge python -m pytest -q tests/python/test_asof.py || rc=$?
fi
for mode in probe stream; do
    if [ "$rc" -eq 0 ]; then
        SLUICE_ASOF_MODE=$mode python -m pytest -q tests/python/test_asof.py || rc=$?
    fi
done

# 6. docker/ for real: its own dockerd, a base image made with debootstrap, the
#    image, the compose cluster (coordinator + 2 workers), queries over ADBC, a
#    worker stopped and started. Skipped with the reason printed only where no
#    Docker engine can be installed (not root, no apt-get).
if [ "$rc" -eq 0 ]; then
    bash tests/docker/test_cluster.sh "$SLUICE_BIN" || rc=$?
fi
exit "$rc"
