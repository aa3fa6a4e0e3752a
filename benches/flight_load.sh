# Sourced by the benchmark scripts: sets FLIGHT_LOAD to the Rust Flight SQL load
# generator (benches/flight_load.rs) and FLIGHT_FLOOR to the no-work Flight SQL
# server (benches/flight_floor.rs), building them in the release profile (which
# reuses the library built for the release `sluice`) unless FLIGHT_LOAD is set.
if [ -z "${FLIGHT_LOAD:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
    if command -v mold >/dev/null 2>&1; then
        export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"  # as .ci/run builds
    fi
    built=$(cargo build --release --bench flight_load --bench flight_floor --message-format=json 2>/dev/null \
        | python -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("flight_load", "flight_floor"):
        print(m["target"]["name"], m["executable"])')
    FLIGHT_LOAD=$(echo "$built" | awk '$1 == "flight_load" {print $2}' | tail -1)
    FLIGHT_FLOOR=$(echo "$built" | awk '$1 == "flight_floor" {print $2}' | tail -1)
    [ -x "$FLIGHT_LOAD" ] || { echo "could not build benches/flight_load.rs (cargo build --release --bench flight_load)" >&2; exit 1; }
fi
export FLIGHT_LOAD FLIGHT_FLOOR="${FLIGHT_FLOOR:-}"
