# Sourced by the benchmark scripts: sets FLIGHT_LOAD to the Rust Flight SQL load
# generator (benches/flight_load.rs), building it in the release profile (which
# reuses the library built for the release `sluice`) unless FLIGHT_LOAD is set.
if [ -z "${FLIGHT_LOAD:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
    if command -v mold >/dev/null 2>&1; then
        export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"  # as .ci/run builds
    fi
    FLIGHT_LOAD=$(cargo build --release --bench flight_load --message-format=json 2>/dev/null \
        | python -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "flight_load" and m.get("executable"):
        print(m["executable"])' | tail -1)
    [ -x "$FLIGHT_LOAD" ] || { echo "could not build benches/flight_load.rs (cargo build --release --bench flight_load)" >&2; exit 1; }
fi
export FLIGHT_LOAD
