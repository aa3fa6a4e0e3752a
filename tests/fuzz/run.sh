#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time from the checked-in
# corpus (tests/fuzz/corpus/<target>/). Fails on the first target that
# crashes, printing the input that crashed it and how to replay it.
#
#   bash tests/fuzz/run.sh                 # every target, FUZZ_SECONDS (15) each
#   FUZZ_SECONDS=300 bash tests/fuzz/run.sh csv
#
# Needs the nightly toolchain and cargo-fuzz (installed into
# /var/tmp/sluice-tools when missing). Builds go to $CARGO_TARGET_DIR/fuzz:
# instrumented, optimised at level 1 (Cargo.toml), no sanitizer (sluice and
# its parsers are safe Rust; ASan would rebuild the world and run 2x slower).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sluice-target}"
TOOLS="${SLUICE_TOOLS:-/var/tmp/sluice-tools}"
SECONDS_EACH="${FUZZ_SECONDS:-15}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(sql csv ndjson config flight)
fi

if ! [ -x "$TOOLS/bin/cargo-fuzz" ]; then
    echo "== installing cargo-fuzz into $TOOLS"
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"

# One version of every crate: the fuzz workspace's lock must agree with the
# root lock on every crate they share (it only adds libfuzzer-sys).
check_lock() {
    local pairs='/^name = /{n=$3} /^version = /{print n, $3}'
    awk 'NR==FNR {root[$1] = root[$1] " " $2; next}
         ($1 in root) {fuzz[$1] = fuzz[$1] " " $2}
         END {for (n in fuzz) if (fuzz[n] != root[n]) {
                  print "tests/fuzz/Cargo.lock: " n fuzz[n] ", but Cargo.lock: " n root[n]; bad = 1}
              exit bad}' \
        <(awk "$pairs" ../../Cargo.lock | tr -d '"' | sort -u) \
        <(awk "$pairs" Cargo.lock | tr -d '"' | sort -u) || {
        echo "error: tests/fuzz/Cargo.lock differs from Cargo.lock; copy the root lock over it and build again" >&2
        exit 1
    }
}

FUZZ=(cargo +nightly fuzz)
OPTS=(--fuzz-dir . --target-dir "$CARGO_TARGET_DIR/fuzz" --sanitizer none --codegen-units 16)

check_lock
echo "== cargo fuzz build (${TARGETS[*]})"
start=$(date +%s)
if [ $# -eq 0 ]; then
    "${FUZZ[@]}" build "${OPTS[@]}"
else
    for t in "${TARGETS[@]}"; do
        "${FUZZ[@]}" build "${OPTS[@]}" "$t"
    done
fi
echo "built in $(($(date +%s) - start)) s"
check_lock

# Longest input per target: SQL statements over 128 KiB take the big-stack path.
max_len() {
    case "$1" in
        sql) echo 262144 ;;
        *) echo 8192 ;;
    esac
}

failed=()
for t in "${TARGETS[@]}"; do
    echo "== fuzz $t (${SECONDS_EACH} s)"
    # New inputs go to a scratch folder; the checked-in corpus stays as is.
    scratch=$(mktemp -d)
    artifacts="$PWD/artifacts/$t"
    mkdir -p "$artifacts"
    if ! "${FUZZ[@]}" run "${OPTS[@]}" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" \
        -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$artifacts/" \
        -print_final_stats=1 2>"$scratch.log"; then
        # The panic (or libFuzzer's report), then cargo fuzz's replay hints.
        grep -m 1 -A 12 -E 'panicked at|ERROR: libFuzzer|^==[0-9]+== ' "$scratch.log" || true
        echo "..."
        tail -n 12 "$scratch.log"
        crash=$(ls -t "$artifacts" 2>/dev/null | head -n 1)
        echo "error: fuzz target $t failed; input: tests/fuzz/artifacts/$t/$crash" >&2
        echo "replay: cargo +nightly fuzz run ${OPTS[*]} $t artifacts/$t/$crash (in tests/fuzz)" >&2
        failed+=("$t")
    else
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$scratch.log" || true
        echo "corpus: $(ls "$scratch" | wc -l) new inputs (not kept)"
    fi
    rm -rf "$scratch" "$scratch.log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "error: fuzz targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: all targets ran ${SECONDS_EACH} s without a crash"
