#!/usr/bin/env bash
# Trial: a real dbt project with real packages, built by dbt-core + dbt-duckdb and
# by sluice from the same files, then the marts compared (row count and checksum).
#
#   bash benches/dbt_real_projects.sh
#
# No third-party code lives in this repository: the script lays out sources you
# fetched yourself (`fetch github:dbt-labs/jaffle-shop`, ...). Each of these is a
# folder or a bare git directory (then REF picks the commit or tag; the defaults
# are the versions jaffle-shop's packages.yml asks for):
#   JAFFLE_SHOP       dbt-labs/jaffle-shop          JAFFLE_SHOP_REF=HEAD
#   DBT_UTILS         dbt-labs/dbt-utils            DBT_UTILS_REF=1.3.3
#   DBT_DATE          godatadriven/dbt-date         DBT_DATE_REF=0.17.1
#   AUDIT_HELPER      dbt-labs/dbt-audit-helper     AUDIT_HELPER_REF=HEAD (main)
#   DBT_EXPECTATIONS  metaplane/dbt-expectations    DBT_EXPECTATIONS_REF=0.10.9 (optional)
# Defaults: $MIRROR/<owner>+<name>/repo (MIRROR=/work/.mirror, where fetch puts them).
#
# WORK (default /var/tmp/jaffle) gets dbt/ (the project as `dbt deps` would leave
# it, built by dbt) and sluice/ (a copy, built by sluice); logs in WORK/logs.
# DBT_VENV (default /var/tmp/sluice-dbt-venv) gets dbt-core 1.10, dbt-duckdb,
# deltalake and pyarrow on first use. SLUICE_BIN defaults to the debug build.
# jaffle-shop's seeds are enabled by its var load_source_data; both tools get
# --vars '{load_source_data: true}'.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIRROR="${MIRROR:-/work/.mirror}"
WORK="${WORK:-/var/tmp/jaffle}"
BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-/var/tmp/sluice-target}/debug/sluice}"
DBT_VENV="${DBT_VENV:-/var/tmp/sluice-dbt-venv}"
VARS='{load_source_data: true}'
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1

if [ ! -x "$DBT_VENV/bin/dbt" ]; then
    python3 -m venv "$DBT_VENV"
    "$DBT_VENV/bin/pip" install --quiet 'dbt-core==1.10.*' dbt-duckdb deltalake pyarrow
fi
[ -x "$BIN" ] || { echo "no sluice binary at $BIN (set SLUICE_BIN)" >&2; exit 1; }

# place SRC REF DEST: a folder is copied, a bare git directory exported at REF.
place() {
    local src="$1" ref="$2" dest="$3"
    mkdir -p "$dest"
    if [ -d "$src/objects" ] && [ -f "$src/HEAD" ]; then
        echo "  $(basename "$dest"): $(git --git-dir="$src" rev-parse --short "$ref^{commit}") ($ref)"
        # A snapshot may lack its largest blobs: then export file by file.
        if ! git --git-dir="$src" archive "$ref" 2>/dev/null | tar -x -C "$dest" 2>/dev/null; then
            git --git-dir="$src" ls-tree -r --name-only "$ref" | while IFS= read -r f; do
                mkdir -p "$dest/$(dirname "$f")"
                git --git-dir="$src" cat-file blob "$ref:$f" > "$dest/$f" 2>/dev/null \
                    || { rm -f "$dest/$f"; echo "    missing from the snapshot: $f"; }
            done
        fi
    elif [ -d "$src" ]; then
        cp -r "$src/." "$dest/"
        echo "  $(basename "$dest"): folder $src"
    else
        return 1
    fi
}

rm -rf "$WORK"
mkdir -p "$WORK/logs"
DBT="$WORK/dbt"
echo "== laying out $DBT as dbt deps would"
place "${JAFFLE_SHOP:-$MIRROR/dbt-labs+jaffle-shop/repo}" "${JAFFLE_SHOP_REF:-HEAD}" "$DBT" \
    || { echo "jaffle-shop not found (set JAFFLE_SHOP)" >&2; exit 1; }
place "${DBT_UTILS:-$MIRROR/dbt-labs+dbt-utils/repo}" "${DBT_UTILS_REF:-1.3.3}" "$DBT/dbt_packages/dbt_utils" \
    || { echo "dbt-utils not found (set DBT_UTILS)" >&2; exit 1; }
place "${DBT_DATE:-$MIRROR/godatadriven+dbt-date/repo}" "${DBT_DATE_REF:-0.17.1}" "$DBT/dbt_packages/dbt_date" \
    || { echo "dbt-date not found (set DBT_DATE)" >&2; exit 1; }
place "${AUDIT_HELPER:-$MIRROR/dbt-labs+dbt-audit-helper/repo}" "${AUDIT_HELPER_REF:-HEAD}" "$DBT/dbt_packages/audit_helper" \
    || { echo "dbt-audit-helper not found (set AUDIT_HELPER)" >&2; exit 1; }
place "${DBT_EXPECTATIONS:-$MIRROR/metaplane+dbt-expectations/repo}" "${DBT_EXPECTATIONS_REF:-0.10.9}" "$DBT/dbt_packages/dbt_expectations" \
    || echo "  dbt_expectations: not found, left out"
# The fetched jaffle-shop snapshot lacks its two largest seeds (raw_orders,
# raw_items). Then all six are generated again with jafgen (the generator of
# jaffle-shop's data, PyPI), 1 year: same columns, other (random) rows.
SEEDS="$DBT/seeds/jaffle-data"
if [ "${REGEN_SEEDS:-0}" = 1 ] || [ ! -s "$SEEDS/raw_orders.csv" ] || [ ! -s "$SEEDS/raw_items.csv" ]; then
    echo "  seeds: generated with jafgen 1 (the snapshot's seeds are incomplete)"
    [ -x "$DBT_VENV/bin/jafgen" ] || "$DBT_VENV/bin/pip" install --quiet jafgen==0.4.14
    (cd "$WORK" && "$DBT_VENV/bin/jafgen" 1 > "$WORK/logs/jafgen.log" 2>&1)
    for t in customers items orders products stores supplies; do
        cp "$WORK/jaffle-data/raw_$t.csv" "$SEEDS/raw_$t.csv"
    done
fi
# jaffle-shop ships no profile; dbt-duckdb writes to a file in WORK.
cat > "$DBT/profiles.yml" <<EOF
default:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: $WORK/jaffle.duckdb
      schema: main
      threads: 2
EOF
cp -r "$DBT" "$WORK/sluice"
SLU="$WORK/sluice"

# step NAME CMD...: runs CMD, logs to WORK/logs/NAME.log, prints time and exit code.
step() {
    local name="$1"; shift
    local start end rc
    start=$(date +%s.%N)
    "$@" > "$WORK/logs/$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    printf '%-16s exit %-3s %7.2f s   (log: %s)\n' "$name" "$rc" "$(echo "$end - $start" | bc)" "$WORK/logs/$name.log"
    return $rc
}

echo "== dbt-core + dbt-duckdb"
"$DBT_VENV/bin/dbt" --version > "$WORK/logs/dbt-version.log" 2>&1; grep -E "installed|duckdb" "$WORK/logs/dbt-version.log"
cd "$DBT"
step dbt-seed "$DBT_VENV/bin/dbt" seed --profiles-dir . --vars "$VARS"
step dbt-build "$DBT_VENV/bin/dbt" build --profiles-dir . --vars "$VARS"
cp target/run_results.json "$WORK/logs/dbt_run_results.json" 2>/dev/null

echo "== sluice ($BIN)"
cd "$SLU"
step sluice-compile "$BIN" --project . compile --vars "$VARS"
step sluice-seed "$BIN" --project . --progress never seed --vars "$VARS" \
    || step sluice-seed-novars "$BIN" --project . --progress never seed
step sluice-build "$BIN" --project . --progress never build --vars "$VARS"
cp target/run_results.json "$WORK/logs/sluice_run_results.json" 2>/dev/null
for name in sluice-compile sluice-seed sluice-build; do
    if grep -qi "error" "$WORK/logs/$name.log"; then
        echo "-- $name: error lines"
        grep -i "error" "$WORK/logs/$name.log" | head -40 | cut -c1-400
    fi
done

echo "== node statuses (target/run_results.json of each build)"
"$DBT_VENV/bin/python" - "$WORK" <<'PY'
import collections, json, sys
from pathlib import Path
work = Path(sys.argv[1])
for tool in ("dbt", "sluice"):
    path = work / "logs" / f"{tool}_run_results.json"
    if not path.exists():
        print(f"{tool:7s} no run_results.json"); continue
    counts = collections.Counter()
    for r in json.loads(path.read_text())["results"]:
        counts[(r["unique_id"].split(".")[0], r["status"])] += 1
    total = sum(counts.values())
    print(f"{tool:7s} {total:3d} nodes: " + ", ".join(
        f"{k[0]} {k[1]} {v}" for k, v in sorted(counts.items())))
PY

echo "== marts: rows and checksum (sorted rows; numbers rounded to 6 significant digits, times in UTC)"
"$DBT_VENV/bin/python" - "$WORK" "$BIN" <<'PY'
import datetime as dt, hashlib, json, subprocess, sys
from pathlib import Path
import duckdb, pyarrow as pa, pyarrow.parquet as pq
from deltalake import DeltaTable

work, bin_ = Path(sys.argv[1]), sys.argv[2]
marts = sorted(p.stem for p in (work / "dbt" / "models" / "marts").glob("*.sql"))

def norm(v):
    if v is None: return None
    if isinstance(v, bool): return v
    if isinstance(v, (int, float)) or type(v).__name__ == "Decimal": return float(f"{float(v):.6g}")
    if isinstance(v, dt.datetime):
        v = v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
        return v.astimezone(dt.timezone.utc).isoformat()
    if isinstance(v, dt.date): return v.isoformat()
    return v

def summary(t):
    if t is None: return "-", "-"
    t = t.rename_columns([c.lower() for c in t.column_names])
    cols = sorted(t.column_names)
    rows = sorted(json.dumps([norm(r[c]) for c in cols], default=str) for r in t.to_pylist())
    return str(t.num_rows), hashlib.md5("\n".join([",".join(cols)] + rows).encode()).hexdigest()[:12]

con = duckdb.connect(str(work / "jaffle.duckdb"), read_only=True)
where = dict(con.sql("select table_name, table_schema from information_schema.tables").fetchall())
def dbt_table(name):
    return con.sql(f'select * from "{where[name]}"."{name}"').to_arrow_table() if name in where else None

def sluice_table(name):
    proj = work / "sluice"
    q = f"select table_schema from information_schema.tables where table_name = '{name}'"
    out = subprocess.run([bin_, "--project", proj, "sql", "--format", "json", q], capture_output=True, text=True)
    found = json.loads(out.stdout or "[]") if out.returncode == 0 else []
    if not found: return None
    schema = found[0]["table_schema"]
    path = proj / "warehouse" / schema / name
    if (path / "_delta_log").is_dir(): return DeltaTable(str(path)).to_pyarrow_table()
    f = work / f"{name}.parquet"
    subprocess.run([bin_, "--project", proj, "sql", f"COPY (SELECT * FROM {schema}.{name}) TO '{f}' STORED AS PARQUET"], capture_output=True)
    return pq.read_table(f) if f.exists() else None

print(f"{'mart':24s} {'dbt rows':>9s} {'dbt sum':>13s} {'sluice rows':>12s} {'sluice sum':>13s}  same")
for name in marts:
    d, s = summary(dbt_table(name)), summary(sluice_table(name))
    print(f"{name:24s} {d[0]:>9s} {d[1]:>13s} {s[0]:>12s} {s[1]:>13s}  {'-' if d[0] == s[0] == '-' else 'yes' if d == s else 'NO'}")
PY
