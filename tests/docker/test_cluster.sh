#!/usr/bin/env bash
# End-to-end test of docker/: image, compose cluster (coordinator + 2 workers
# on one warehouse volume), Flight SQL queries from the host, a worker stopped
# and started again. Runs as root on Debian; needs no registry.
#
#   tests/docker/test_cluster.sh [SLUICE_BIN]     (or SLUICE_BIN=...)
#
# SLUICE_BIN is a sluice binary built by cargo on this machine (debug or
# release; it is stripped into docker/sluice for the build and removed after).
#
# What it does:
#   1. installs Debian's docker.io, docker-compose and debootstrap if missing
#      (prints SKIP and exits 0 when they cannot be: not root, no apt-get, the
#      install fails);
#   2. starts its own dockerd (socket, data root, exec root and pidfile under
#      $SLUICE_DOCKER_DIR, default /var/tmp/sluice-docker), with no default
#      bridge and no iptables/ip_forward changes, stopped by PID on exit;
#   3. makes debian:bookworm-slim with debootstrap + docker import unless the
#      data root has it already (kept between runs);
#   4. builds the image (tag $SLUICE_TEST_IMAGE, default sluice:test) and runs
#      `docker-compose -p sluice-test up -d`, waiting for the health checks;
#   5. queries the coordinator from the host with ADBC (venv from
#      tests/venv.sh): the example's tables, then a table big enough that the
#      distributed planner gives its scan two tasks (one per worker), and the
#      same query through `sluice sql` in the coordinator container with
#      `SET distributed.file_scan_config_bytes_per_partition = 1`;
#   6. stops worker2: both queries must fail within 60 s with an error naming
#      `worker http://worker2:50052`; starts it again: both answer right;
#   7. `docker-compose down -v`, removes the image, stops dockerd.
#
# Environment: SLUICE_DOCKER_DIR, SLUICE_TEST_IMAGE, SLUICE_TEST_PORT (host
# port of the coordinator, default: a free one), SLUICE_TEST_BIG_ROWS,
# SLUICE_VENV, SLUICE_TEST_KEEP=1 (leave the cluster and dockerd running for a
# look; stop dockerd later with `kill $(cat $SLUICE_DOCKER_DIR/docker.pid)`).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BIN="${1:-${SLUICE_BIN:-}}"
D="${SLUICE_DOCKER_DIR:-/var/tmp/sluice-docker}"
IMAGE="${SLUICE_TEST_IMAGE:-sluice:test}"
PROJECT=sluice-test
FAIL_WITHIN=60

T0=$(date +%s.%N)
since() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }
say() { echo "== $*"; }
skip() { echo "SKIP: $*"; exit 0; }
die() { echo "FAIL: $*" >&2; exit 1; }

[ -n "$BIN" ] || die "usage: $0 SLUICE_BIN (or set SLUICE_BIN): a sluice binary built by cargo"
[ -x "$BIN" ] || die "$BIN is not an executable file"
"$BIN" worker --help >/dev/null 2>&1 || die "$BIN has no \`worker\` command (an older build?)"

# --- 1. tools -------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (runs its own dockerd)"
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /usr/bin/docker ] || command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v bc >/dev/null 2>&1 || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || skip "missing ${need[*]} and no apt-get to install them"
    say "installing ${need[*]}"
    t=$(date +%s.%N)
    # Keep the packages' scripts from starting a system dockerd.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    ok=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/tmp/sluice-docker-apt.log 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >>/tmp/sluice-docker-apt.log 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>/tmp/sluice-docker-apt.log 2>&1; } \
        || ok=""
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ -n "$ok" ] || { tail -5 /tmp/sluice-docker-apt.log; skip "apt-get could not install ${need[*]} (log: /tmp/sluice-docker-apt.log)"; }
    echo "   installed in $(since "$t")s"
fi
# The CLI of docker.io matches its daemon (a newer CLI elsewhere on PATH may
# lack the classic builder).
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER="$(command -v docker)"
export DOCKER_BUILDKIT=0

# Python with adbc-driver-flightsql and pyarrow.
source tests/venv.sh
python -c "import adbc_driver_flightsql, pyarrow" || die "the venv lacks adbc-driver-flightsql / pyarrow"

# --- 2. dockerd -------------------------------------------------------------
mkdir -p "$D/data" "$D/exec"
if [ -s "$D/docker.pid" ] && kill -0 "$(cat "$D/docker.pid")" 2>/dev/null; then
    die "a dockerd already runs on $D (pid $(cat "$D/docker.pid")): another run? stop it first"
fi
rm -f "$D/docker.pid" "$D/docker.sock"
export DOCKER_HOST="unix://$D/docker.sock"

DOCKERD_PID=""
COMPOSE_UP=""
STAGED=""
finish() {
    local rc=$?
    set +e
    if [ -n "${SLUICE_TEST_KEEP:-}" ] && [ -n "$DOCKERD_PID" ]; then
        echo "SLUICE_TEST_KEEP: left running; DOCKER_HOST=$DOCKER_HOST, dockerd pid $DOCKERD_PID"
        [ -n "$STAGED" ] && rm -f "$STAGED"
        exit $rc
    fi
    if [ -n "$COMPOSE_UP" ]; then
        if [ $rc -ne 0 ]; then
            echo "--- container logs (last 30 lines each) ---"
            dc logs --no-color --tail 30 2>&1 | cut -c1-400
        fi
        dc down -v --remove-orphans >/dev/null 2>&1
    fi
    [ -n "$DOCKERD_PID" ] && "$DOCKER" rmi -f "$IMAGE" >/dev/null 2>&1
    [ -n "$STAGED" ] && rm -f "$STAGED"
    if [ -n "$DOCKERD_PID" ]; then
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            echo "dockerd did not stop in 30 s; killing it"
            kill -KILL "$DOCKERD_PID" 2>/dev/null
        fi
        wait "$DOCKERD_PID" 2>/dev/null
        echo "dockerd stopped"
    fi
    echo "== total $(since "$T0")s; $([ $rc -eq 0 ] && echo PASS || echo "FAIL (rc $rc)")"
    exit $rc
}
trap finish EXIT

say "starting dockerd ($D)"
t=$(date +%s.%N)
# No default bridge, no iptables rules, no ip_forward: the host's network is
# left as it was. Containers reach each other on the compose network and the
# host reaches the published port through docker-proxy; nothing goes out.
dockerd -H "$DOCKER_HOST" --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/docker.pid" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$D/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 120); do
    "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$D/dockerd.log"; DOCKERD_PID=""; die "dockerd exited (log: $D/dockerd.log)"; }
    sleep 0.5
done
"$DOCKER" version >/dev/null 2>&1 || { tail -20 "$D/dockerd.log"; die "dockerd did not answer in 60 s"; }
echo "   dockerd pid $DOCKERD_PID up in $(since "$t")s"

dc() { docker-compose -p "$PROJECT" -f "$ROOT/docker/docker-compose.yml" "$@"; }

# --- 3. base image ----------------------------------------------------------
if "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1; then
    say "debian:bookworm-slim: already in $D/data"
else
    say "making debian:bookworm-slim with debootstrap"
    t=$(date +%s.%N)
    rm -rf "$D/rootfs"
    debootstrap --variant=minbase bookworm "$D/rootfs" http://deb.debian.org/debian >"$D/debootstrap.log" 2>&1 \
        || { tail -20 "$D/debootstrap.log"; die "debootstrap failed (log: $D/debootstrap.log)"; }
    # As slim as Debian's: no apt lists, caches, docs, man pages, locales.
    rm -rf "$D"/rootfs/var/lib/apt/lists/* "$D"/rootfs/var/cache/apt/*.bin \
        "$D"/rootfs/var/cache/apt/archives/*.deb "$D"/rootfs/usr/share/doc/* \
        "$D"/rootfs/usr/share/man/* "$D"/rootfs/usr/share/info/* "$D"/rootfs/usr/share/locale/*
    tar -C "$D/rootfs" -c . | "$DOCKER" import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
    rm -rf "$D/rootfs"
    echo "   base image in $(since "$t")s"
fi

# --- 4. image and cluster ---------------------------------------------------
say "building $IMAGE"
t=$(date +%s.%N)
STAGED="$ROOT/docker/sluice"
if command -v strip >/dev/null 2>&1; then
    strip -o "$STAGED" "$BIN"
else
    cp "$BIN" "$STAGED"
fi
"$DOCKER" build -q --network none -f docker/Dockerfile -t "$IMAGE" . >/dev/null
rm -f "$STAGED"; STAGED=""
echo "   image ($(du -m "$BIN" | cut -f1) MiB binary) in $(since "$t")s"

PORT="${SLUICE_TEST_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export SLUICE_IMAGE="$IMAGE" SLUICE_HOST_PORT="$PORT" SLUICE_USER=sluice
SLUICE_PASSWORD="$(python -c 'import secrets; print(secrets.token_hex(12))')"
export SLUICE_PASSWORD
URI="grpc://127.0.0.1:$PORT"
client() { timeout 300 python tests/docker/cluster_client.py "$URI" "$SLUICE_USER" "$SLUICE_PASSWORD" "$@"; }

healthy() { # service timeout_seconds
    local id status
    for _ in $(seq 1 $(($2 * 2))); do
        id="$(dc ps -q "$1")"
        status="$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo none)"
        [ "$status" = healthy ] && return 0
        sleep 0.5
    done
    die "$1 is not healthy after $2 s (status: $status)"
}

say "docker-compose -p $PROJECT up -d (coordinator on 127.0.0.1:$PORT)"
dc down -v --remove-orphans >/dev/null 2>&1 || true   # leftovers of a killed run
t=$(date +%s.%N)
COMPOSE_UP=1
dc up -d 2>&1 | sed 's/^/   /'
for s in worker1 worker2 coordinator; do healthy "$s" 120; done
[ "$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$(dc ps -q init)")" = 0 ] || die "init failed"
echo "   cluster up and healthy in $(since "$t")s"

# --- 5. queries -------------------------------------------------------------
CPUS="$(nproc)"
ROWS="${SLUICE_TEST_BIG_ROWS:-$((750000 * (CPUS > 2 ? CPUS : 2)))}"
# The example's tables through the workers: `sluice sql` in the coordinator's
# container (SLUICE_WORKERS set there), where SET may lower the bytes per task.
CLI_SQL="SET distributed.file_scan_config_bytes_per_partition = 1; SELECT currency, count(*) AS n FROM raw.transactions GROUP BY currency ORDER BY currency"
cli_query() {
    timeout 120 docker-compose -p "$PROJECT" -f "$ROOT/docker/docker-compose.yml" \
        exec -T coordinator sluice --progress never sql --format csv "$CLI_SQL" 2>&1
}
cli_ok() {
    local out total
    out="$(cli_query)" || die "sluice sql in the coordinator failed: $out"
    total="$(echo "$out" | awk -F, 'NR > 1 { s += $2 } END { print s + 0 }')"
    [ "$total" = "$1" ] || die "sluice sql over the workers: counts add up to $total, want $1: $out"
    echo "ok   sluice sql over both workers (SET bytes_per_partition = 1): $(echo "$out" | tail -n +2 | tr '\n' ' ')"
}

say "queries over ADBC ($URI)"
client smoke "$ROOT"
TXNS="$(cat catalog/data/transactions/*.csv | grep -c . )"; TXNS=$((TXNS - $(ls catalog/data/transactions/*.csv | wc -l)))
cli_ok "$TXNS"
client make-big "$ROWS"
client big "$ROWS"

# --- 6. a worker stopped, then started ---------------------------------------
say "docker-compose stop worker2"
t=$(date +%s.%N)
dc stop worker2 2>&1 | sed 's/^/   /'
echo "   stopped in $(since "$t")s"
client big-fails "$ROWS" http://worker2:50052 "$FAIL_WITHIN"
t=$(date +%s.%N)
if out="$(cli_query)"; then
    die "sluice sql succeeded without worker2: $out"
fi
took="$(since "$t")"
echo "     sluice sql error after ${took}s: $out"
echo "$out" | grep -qF "worker http://worker2:50052" || die "the sluice sql error does not name worker http://worker2:50052"
[ "$(echo "$took < $FAIL_WITHIN" | bc)" = 1 ] || die "sluice sql took ${took}s to fail"
echo "ok   sluice sql fails naming worker2"

say "docker-compose start worker2"
t=$(date +%s.%N)
dc start worker2 2>&1 | sed 's/^/   /'
healthy worker2 60
echo "   healthy again in $(since "$t")s"
# The first query after the outage must answer (a connection tried while the
# worker was down is dropped, not reused).
client big "$ROWS" 1
cli_ok "$TXNS"

# --- 7. down (in finish) -----------------------------------------------------
say "docker-compose down -v"
t=$(date +%s.%N)
dc down -v --remove-orphans 2>&1 | sed 's/^/   /'
COMPOSE_UP=""
echo "   down in $(since "$t")s"
