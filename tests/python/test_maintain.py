"""`sluice optimize` and `sluice vacuum` on an S3 warehouse (moto), checked
with an independent reader (Python `deltalake`).

Many small loads (one file and one commit each), then optimize: the latest
version has the same rows in fewer files, and `DeltaTable(uri, version=old)`
still reads every older version. Then vacuum with retention 0 (override):
the replaced files are gone, the latest version still reads, and the log is
untouched.
"""
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conftest import parse_json_output, s3_env, s3_storage_options

SOURCES = """
[[source]]
name = "events"
format = "csv"
location = "data/*.csv"
target = "raw.events"

[[source.columns]]
name = "id"
type = "bigint"
not_null = true

[[source.columns]]
name = "amount"
type = "double"
"""

LOADS = 12


def rows(table: pa.Table) -> list:
    return sorted(zip(table["id"].to_pylist(), table["amount"].to_pylist()))


@pytest.fixture
def s3_project(tmp_path, s3_bucket, s3_endpoint):
    project = tmp_path / "project"
    (project / "catalog").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "sluice.toml").write_text('[project]\nname = "t"\n')
    (project / "catalog" / "sources.toml").write_text(SOURCES)
    return project, f"s3://{s3_bucket}/wh", s3_env(s3_endpoint), s3_storage_options(s3_endpoint)


def test_optimize_then_vacuum_on_s3(s3_project, run_sluice, s3_client, s3_bucket):
    project, warehouse, env, options = s3_project

    def sluice(*args, check=True):
        return run_sluice("--project", project, "--warehouse", warehouse, *args, env=env, check=check)

    for i in range(LOADS):
        (project / "data" / f"part{i:03}.csv").write_text(
            "id,amount\n" + "".join(f"{i * 10 + j},{i + j / 10}\n" for j in range(10))
        )
        sluice("load", "events")
    uri = f"{warehouse}/raw/events"
    before = DeltaTable(uri, storage_options=options)
    assert before.version() == LOADS - 1
    assert len(before.file_uris()) == LOADS
    expected = rows(before.to_pyarrow_table())
    assert len(expected) == LOADS * 10
    old_versions = {v: rows(DeltaTable(uri, version=v, storage_options=options).to_pyarrow_table())
                    for v in range(LOADS)}

    report = parse_json_output(sluice("optimize", "raw.events", "--checkpoint", "--format", "json"))
    assert report["table"] == "raw.events"
    assert report["version"] == LOADS
    assert report["files_removed"] == LOADS and report["files_added"] == 1
    assert report["checkpoint"] == LOADS

    after = DeltaTable(uri, storage_options=options)
    assert after.version() == LOADS
    assert len(after.file_uris()) == 1
    assert rows(after.to_pyarrow_table()) == expected
    history = after.history(1)[0]
    assert history["operation"] == "OPTIMIZE"
    for v, old in old_versions.items():
        assert rows(DeltaTable(uri, version=v, storage_options=options).to_pyarrow_table()) == old, v
    # sluice reads the same.
    out = parse_json_output(sluice("sql", "SELECT count(*) AS n, sum(id) AS s FROM raw.events", "--format", "json"))
    assert out == [{"n": LOADS * 10, "s": sum(r[0] for r in expected)}]

    # Short retention: refused, naming the table and the flag; nothing deleted.
    refused = sluice("vacuum", "raw.events", "--retain", "0s", check=False)
    assert refused.returncode == 2, refused.stderr
    assert "raw.events" in refused.stderr and "--allow-short-retention" in refused.stderr

    listing = lambda prefix: {o["Key"] for o in s3_client.list_objects_v2(
        Bucket=s3_bucket, Prefix=prefix).get("Contents", [])}
    data_before = {k for k in listing("wh/raw/events/") if k.endswith(".parquet") and "_delta_log" not in k}
    log_before = listing("wh/raw/events/_delta_log/")
    assert len(data_before) == LOADS + 1

    dry = parse_json_output(sluice("vacuum", "raw.events", "--retain", "0s", "--allow-short-retention",
                                   "--dry-run", "--format", "json"))
    assert dry["dry_run"] is True and dry["files_deleted"] == LOADS
    assert dry["bytes_deleted"] == sum(f["size"] for f in dry["files"]) > 0
    assert {k for k in listing("wh/raw/events/") if k.endswith(".parquet") and "_delta_log" not in k} == data_before

    done = parse_json_output(sluice("vacuum", "raw.events", "--retain", "0s", "--allow-short-retention",
                                    "--format", "json"))
    assert done["files_deleted"] == LOADS
    assert sorted(f["path"] for f in done["files"]) == sorted(f["path"] for f in dry["files"])
    data_after = {k for k in listing("wh/raw/events/") if k.endswith(".parquet") and "_delta_log" not in k}
    assert len(data_after) == 1
    assert log_before <= listing("wh/raw/events/_delta_log/"), "vacuum deleted log entries"

    latest = DeltaTable(uri, storage_options=options)
    assert rows(latest.to_pyarrow_table()) == expected
    # The compaction's version still reads; the ones before it are vacuumed.
    assert rows(DeltaTable(uri, version=LOADS, storage_options=options).to_pyarrow_table()) == expected
    gone = sluice("sql", "SELECT * FROM raw.events VERSION AS OF 1", check=False)
    assert gone.returncode == 2, gone.stderr
    assert "no longer exists" in gone.stderr and "sluice vacuum" in gone.stderr
