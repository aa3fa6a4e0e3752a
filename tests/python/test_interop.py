"""Interop: tables sluice writes are plain Delta tables that other engines read.

Loads the example project (sluice.toml + catalog/) once into a local warehouse
and once into s3://<fresh bucket>/wh, then checks every raw table with
deltalake-python, pyarrow and DuckDB against sluice's own SQL and the source
files. Table layout (sluice's contract): <warehouse>/<schema>/<table>/.
"""
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from conftest import REPO_ROOT, copy_project, parse_json_output, s3_env, s3_storage_options

DATA = REPO_ROOT / "catalog" / "data"
# table -> source files (relative to catalog/data) and their format
SOURCES = {
    "users": (["users.csv"], "csv"),
    "merchants": (["merchants.ndjson"], "ndjson"),
    "transactions": (sorted(p.relative_to(DATA).as_posix() for p in (DATA / "transactions").glob("*.csv")), "csv"),
    "labels": (["labels.ndjson"], "ndjson"),
}


def data_lines(rel: str, fmt: str) -> int:
    lines = [l for l in (DATA / rel).read_text(encoding="utf-8").splitlines() if l.strip()]
    return len(lines) - 1 if fmt == "csv" else len(lines)


EXPECTED_ROWS = {t: sum(data_lines(f, fmt) for f in files) for t, (files, fmt) in SOURCES.items()}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, run_sluice, s3_client, s3_endpoint):
    """Load the example project locally and to S3; return both warehouses."""
    project = copy_project(tmp_path_factory.mktemp("interop") / "project")
    bucket = f"sluice-interop-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    s3_uri = f"s3://{bucket}/wh"
    env = s3_env(s3_endpoint)

    local_report = parse_json_output(run_sluice("--project", project, "load", "--format", "json"))
    s3_report = parse_json_output(
        run_sluice("--project", project, "--warehouse", s3_uri, "load", "--format", "json", env=env)
    )

    def sql(query, s3=False):
        wh = ["--warehouse", s3_uri] if s3 else []
        rows = parse_json_output(
            run_sluice("--project", project, *wh, "sql", query, "--format", "json", env=env if s3 else None)
        )
        assert isinstance(rows, list), rows
        return rows

    return {
        "project": project,
        "local_uri": str(project / "warehouse"),
        "s3_uri": s3_uri,
        "storage_options": s3_storage_options(s3_endpoint),
        "reports": {"local": local_report, "s3": s3_report},
        "sql": sql,
    }


def open_table(loaded, table, s3):
    if s3:
        return DeltaTable(f"{loaded['s3_uri']}/raw/{table}", storage_options=loaded["storage_options"])
    return DeltaTable(str(Path(loaded["local_uri"]) / "raw" / table))


def arrow_schema(dt: DeltaTable) -> pa.Schema:
    # deltalake >= 1.0 returns an arro3 schema; pa.schema() takes it via the C stream interface
    return pa.schema(dt.schema().to_arrow())


def sql_count(loaded, table, s3):
    rows = loaded["sql"](f"SELECT count(*) AS n FROM raw.{table}", s3=s3)
    assert len(rows) == 1, rows
    return int(rows[0]["n"])


@pytest.mark.parametrize("where", ["local", "s3"])
def test_load_report(loaded, where):
    report = loaded["reports"][where]
    assert report.get("load_id"), report
    by_source = {s["source"]: s for s in report["sources"]}
    assert set(by_source) == set(SOURCES), report
    for name, (files, _fmt) in SOURCES.items():
        s = by_source[name]
        assert s["table"] == f"raw.{name}", s
        assert s["rows_loaded"] == EXPECTED_ROWS[name], s
        assert s["rows_rejected"] == 0, s
        assert len(s["files"]) == len(files), s
        assert sum(f["rows_loaded"] for f in s["files"]) == s["rows_loaded"], s
        assert all(f["bytes"] > 0 for f in s["files"]), s


@pytest.mark.parametrize("table", list(SOURCES))
def test_table_interop(loaded, table):
    local = open_table(loaded, table, s3=False)
    remote = open_table(loaded, table, s3=True)

    local_schema, remote_schema = arrow_schema(local), arrow_schema(remote)
    assert local_schema.names == remote_schema.names
    assert local_schema.types == remote_schema.types, f"{local_schema}\n!=\n{remote_schema}"

    local_rows = local.to_pyarrow_table().num_rows
    remote_rows = remote.to_pyarrow_table().num_rows
    assert local_rows == remote_rows == EXPECTED_ROWS[table]
    assert sql_count(loaded, table, s3=False) == local_rows
    assert sql_count(loaded, table, s3=True) == remote_rows


def test_declared_types(loaded):
    schema = arrow_schema(open_table(loaded, "transactions", s3=False))
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert pa.types.is_timestamp(schema.field("ts").type) and schema.field("ts").type.tz is not None
    assert schema.field("txn_id").type == pa.int64()
    labels = arrow_schema(open_table(loaded, "labels", s3=False))
    assert labels.field("is_fraud").type == pa.bool_()
    assert pa.types.is_timestamp(labels.field("label_ts").type) and labels.field("label_ts").type.tz is not None


def test_amount_sum_matches_duckdb(loaded):
    import duckdb

    glob = str(DATA / "transactions" / "*.csv")
    [(expected,)] = duckdb.connect().execute(
        f"SELECT sum(amount) FROM read_csv('{glob}', header=true, types={{'amount': 'DECIMAL(12,2)'}})"
    ).fetchall()
    expected = Decimal(str(expected))
    for s3 in (False, True):
        rows = loaded["sql"]("SELECT sum(amount) AS s FROM raw.transactions", s3=s3)
        assert Decimal(str(rows[0]["s"])) == expected, (s3, rows)
        delta_sum = pc.sum(open_table(loaded, "transactions", s3).to_pyarrow_table()["amount"]).as_py()
        assert Decimal(str(delta_sum)) == expected


def parquet_compressions(data: pa.NativeFile | str) -> set[str]:
    meta = pq.ParquetFile(data).metadata
    return {meta.row_group(rg).column(c).compression
            for rg in range(meta.num_row_groups) for c in range(meta.num_columns)}


@pytest.mark.parametrize("table", list(SOURCES))
def test_data_files_are_zstd_parquet(loaded, table, s3_client):
    local = open_table(loaded, table, s3=False)
    uris = local.file_uris()
    assert uris, f"raw.{table} has no data files"
    for uri in uris:
        path = unquote(urlparse(uri).path) if uri.startswith("file:") else uri
        assert parquet_compressions(path) == {"ZSTD"}, uri

    remote = open_table(loaded, table, s3=True)
    uris = remote.file_uris()
    assert uris, f"raw.{table} has no data files on S3"
    for uri in uris:
        u = urlparse(uri)
        body = s3_client.get_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["Body"].read()
        assert parquet_compressions(pa.BufferReader(body)) == {"ZSTD"}, uri
