# Sourced by tests/run.sh and benches/*.sh: creates or reuses the Python venv
# (moto, deltalake, duckdb, pyarrow, pytest) and puts it first on PATH.
# Reinstalls only when tests/python/requirements.txt changes.
VENV="${SLUICE_VENV:-/var/tmp/sluice-venv}"
REQ=tests/python/requirements.txt
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
REQ_HASH="$(sha256sum "$REQ" | cut -d' ' -f1)"
STAMP="$VENV/.sluice-requirements.sha256"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$REQ_HASH" ]; then
    echo "venv: installing Python requirements into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$REQ_HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
