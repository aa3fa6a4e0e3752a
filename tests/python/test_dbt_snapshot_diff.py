"""Differential test of snapshots: the same dbt project and the same sequence
of source changes, run by dbt-core 1.10 + dbt-duckdb and by sluice, with the
snapshot tables compared after every run.

Three snapshots cover both strategies, the three hard_deletes modes, a
composite key, renamed meta columns, dbt_valid_to_current, columns added to
the query and both ways of defining a snapshot (a `{% snapshot %}` block and a YAML entry). The source
tables are written to both sides from the same Arrow data: into DuckDB for
dbt, as Delta tables (deltalake-python) for sluice.

Compared: the columns (names, in order) and the rows as sorted lists.
Timestamps written by a run (check strategy versions, hard deletes) differ
between the engines, so each table's run times are replaced by their rank
(`R1`, `R2`, ... in time order); every other value must be equal, including
the timestamp strategy's `dbt_scd_id` (md5 of the key and updated_at as
text). The check strategy's `dbt_scd_id` hashes a run time, so it is
compared by equality class (the same id on the same rows on both sides).
"""
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

PROJECT_YML = """\
name: shop
version: '1.0'
profile: shop
config-version: 2
snapshots:
  shop:
    +target_schema: snapshots
"""

SOURCES_YML = """\
version: 2
sources:
  - name: shop
    schema: main
    tables:
      - name: src_ts
      - name: src_ck
      - name: src_all
"""

SNAPSHOTS_SQL = """\
{% snapshot ts_snap %}
{{ config(unique_key='id', strategy='timestamp', updated_at='updated_at', hard_deletes='invalidate') }}
select * from {{ source('shop', 'src_ts') }}
{% endsnapshot %}

{% snapshot all_snap %}
{{ config(unique_key='id', strategy='check', check_cols='all',
          dbt_valid_to_current="cast('9999-12-31' as date)") }}
select * from {{ source('shop', 'src_all') }}
{% endsnapshot %}
"""

SNAPSHOTS_YML = """\
snapshots:
  - name: ck_snap
    relation: source('shop', 'src_ck')
    config:
      strategy: check
      unique_key: [k1, k2]
      check_cols: [v]
      hard_deletes: new_record
      snapshot_meta_column_names:
        dbt_valid_from: start_at
        dbt_valid_to: end_at
        dbt_is_deleted: gone
"""

T1 = dt.datetime(2024, 1, 1)
T2 = dt.datetime(2024, 1, 2, 12, 30, 0, 500000)
T3 = dt.datetime(2024, 1, 3, 8, 0, 0, 123456)


def ts(rows):
    return pa.table({
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "name": pa.array([r[1] for r in rows], pa.string()),
        "updated_at": pa.array([r[2] for r in rows], pa.timestamp("us")),
    })


def ck(rows):
    return pa.table({
        "k1": pa.array([r[0] for r in rows], pa.int64()),
        "k2": pa.array([r[1] for r in rows], pa.string()),
        "v": pa.array([r[2] for r in rows], pa.string()),
    })


def all_(rows):
    return pa.table({
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "name": pa.array([r[1] for r in rows], pa.string()),
    })


# The source tables before each run: inserts, updates, deletes, re-inserts.
STEPS = [
    {
        "src_ts": ts([(1, "a", T1), (2, "b", T1), (3, "c", T1)]),
        "src_ck": ck([(1, "x", "p"), (1, "y", "q"), (2, "x", None)]),
        "src_all": all_([(1, "a"), (2, "b")]),
    },
    {
        "src_ts": ts([(1, "a", T1), (2, "bb", T2), (4, "d", T2)]),
        "src_ck": ck([(1, "x", "p"), (1, "y", "Q"), (2, "x", "r"), (3, "z", "s")]),
        "src_all": all_([(1, "a2")]),
    },
    {
        "src_ts": ts([(1, "a", T1), (2, "bb", T2), (3, "c", T1), (4, "d", T2)]),
        "src_ck": ck([(1, "y", "Q"), (2, "x", "r"), (3, "z", "s")]),
        "src_all": all_([(1, "a2"), (2, "b")]),
    },
    {
        "src_ts": ts([(1, "a", T3), (2, "bb", T2), (4, "d", T2)]),
        "src_ck": ck([(1, "y", "Q"), (2, "x", "r"), (3, "z", "s")]),
        "src_all": all_([(1, "a3"), (2, "b")]),
    },
    {
        "src_ts": ts([(1, "a", T3), (2, "bb", T2), (4, "d", T2)]),
        "src_ck": ck([(1, "x", "p"), (1, "y", "Q"), (2, "x", None), (3, "z", "s")]),
        "src_all": all_([(1, "a3"), (2, "b"), (3, "c")]),
    },
    # New columns: added to the snapshot tables; with check_cols='all' every
    # current row changes, with the timestamp strategy only newer rows.
    {
        "src_ts": ts([(1, "a", T3), (2, "bb", T2), (4, "dd", T3)]).append_column(
            "note", pa.array(["n1", "n2", "n4"], pa.string())),
        "src_ck": ck([(1, "x", "p"), (1, "y", "Q"), (2, "x", None), (3, "z", "s")]),
        "src_all": all_([(1, "a3"), (2, "b"), (3, "c")]).append_column(
            "extra", pa.array([10, None, 30], pa.int64())),
    },
]

# Columns compared by equality class rather than value (they hash run times).
BY_CLASS = {"ck_snap": {"dbt_scd_id"}, "all_snap": {"dbt_scd_id"}}
ORDER = {"ts_snap": "id", "ck_snap": "k1", "all_snap": "id"}


def dbt_exe() -> str:
    exe = Path(sys.executable).parent / "dbt"
    if not exe.exists():
        pytest.skip(f"dbt is not installed next to {sys.executable}: "
                    "pip install -r tests/python/requirements.txt (dbt-core 1.10, dbt-duckdb)")
    return str(exe)


def write_project(root: Path, db: Path):
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(PROJECT_YML)
    (root / "models").mkdir()
    (root / "models" / "sources.yml").write_text(SOURCES_YML)
    (root / "snapshots").mkdir()
    (root / "snapshots" / "snaps.sql").write_text(SNAPSHOTS_SQL)
    (root / "snapshots" / "snaps.yml").write_text(SNAPSHOTS_YML)
    (root / "profiles.yml").write_text(
        f"shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: '{db}'\n      threads: 1\n")


def run(cmd, cwd, env=None):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout}\n{p.stderr}"
    return p


def is_run_time(v) -> bool:
    return isinstance(v, dt.datetime) and 2025 <= v.year < 9000


def normalise(name: str, table: pa.Table):
    """Columns and sorted rows, run times as ranks, hashed run times as classes."""
    columns = table.column_names
    rows = [list(r.values()) for r in table.to_pylist()]
    times = sorted({v for r in rows for v in r if is_run_time(v)})
    rank = {t: f"R{i + 1}" for i, t in enumerate(times)}
    rows = [[rank.get(v, v) if is_run_time(v) else v for v in r] for r in rows]
    classes = [columns.index(c) for c in BY_CLASS.get(name, ())]
    key = lambda r: [(x is None, str(x)) for i, x in enumerate(r) if i not in classes]
    rows.sort(key=key)
    for i in classes:
        labels = {}
        for r in rows:
            r[i] = labels.setdefault(r[i], f"S{len(labels) + 1}")
    return columns, rows


def test_snapshots_match_dbt(sluice_bin, tmp_path):
    dbt = dbt_exe()
    dbt_dir, sl_dir = tmp_path / "dbt", tmp_path / "sluice"
    db = tmp_path / "dbt.duckdb"
    write_project(dbt_dir, db)
    write_project(sl_dir, db)
    warehouse = sl_dir / "warehouse"
    env = dict(os.environ, DBT_PROFILES_DIR=str(dbt_dir), DO_NOT_TRACK="1",
               DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    problems = []
    for step, sources in enumerate(STEPS, start=1):
        con = duckdb.connect(str(db))
        for name, data in sources.items():
            con.register("incoming", data)
            con.execute(f"create or replace table main.{name} as select * from incoming")
            con.unregister("incoming")
        con.close()
        for name, data in sources.items():
            write_deltalake(str(warehouse / "main" / name), data, mode="overwrite",
                            schema_mode="overwrite")
        run([dbt, "snapshot", "--project-dir", dbt_dir], cwd=dbt_dir, env=env)
        run([sluice_bin, "--project", sl_dir, "snapshot"], cwd=sl_dir)
        con = duckdb.connect(str(db), read_only=True)
        for name in ORDER:
            want = normalise(name, arrow_table(con.sql(f"select * from snapshots.{name}")))
            got = normalise(name, DeltaTable(str(warehouse / "snapshots" / name)).to_pyarrow_table())
            if want[0] != got[0]:
                problems.append(f"run {step}, {name}: columns\n  dbt:    {want[0]}\n  sluice: {got[0]}")
            elif want[1] != got[1]:
                lines = [f"run {step}, {name}: rows differ ({want[0]})"]
                lines += [f"  dbt:    {r}" for r in want[1]]
                lines += [f"  sluice: {r}" for r in got[1]]
                problems.append("\n".join(lines))
        con.close()
    assert not problems, "\n".join(problems)


def arrow_table(result) -> pa.Table:
    """A DuckDB relation as a table (`.arrow()` is a reader in DuckDB 2)."""
    if hasattr(result, "to_arrow_table"):
        return result.to_arrow_table()
    t = result.arrow()
    return t.read_all() if hasattr(t, "read_all") else t
