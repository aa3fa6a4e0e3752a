"""`sluice serve` (Arrow Flight SQL) against real clients.

One server per module (see the `server` fixture): a temporary project whose
sluice.toml declares a read-only user `analyst` (password hashed with
`sluice hash-password`), plus the read-write quick-start user from
SLUICE_USER / SLUICE_PASSWORD. Clients:

  * ADBC (adbc-driver-flightsql, the Go driver): prepares every statement
    (CreatePreparedStatement, [DoPut params], GetFlightInfo, DoGet,
    ClosePreparedStatement); metadata via GetCatalogs/GetDbSchemas/GetTables;
    ingest via DoPut(CommandStatementIngest); Basic auth sent unpadded.
  * flightsql-dbapi 0.2.x and its SQLAlchemy dialect (`datafusion://`): plain
    statements via GetFlightInfo(CommandStatementQuery) + DoGet (DDL too),
    `?` parameters as a dense-union record batch (param_0, ...) through a
    prepared statement, updates via DoPut(CommandStatementUpdate), reflection
    via GetDbSchemas / GetTables(include_schema) / GetSqlInfo.
  * raw pyarrow.flight with hand-encoded Flight SQL protobufs (no generated
    code), so the wire format itself is pinned down.

Every test skips when SLUICE_BIN is unset (the protobuf self-check below
does not need a server).
"""
import datetime
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

ADMIN_USER = "admin"
ADMIN_PASSWORD = "s3cret-admin-pw"
RO_USER = "analyst"
RO_PASSWORD = "read-only-pw!"
LISTEN_RE = re.compile(r"listening on grpc(\+tls)?://[^:\s]+:(\d+)")
START_TIMEOUT = 60

# ----------------------------------------------------------------------------
# Hand-encoded protobuf (proto3 wire format) for the few Flight SQL messages we
# send with raw pyarrow.flight.
# ----------------------------------------------------------------------------
SQL_PROTO = "type.googleapis.com/arrow.flight.protocol.sql."


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, messages. Empty
    values are left out, as proto3 does for singular fields."""
    if not payload:
        return b""
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _any(type_name: str, value: bytes) -> bytes:
    """google.protobuf.Any { string type_url = 1; bytes value = 2; }"""
    return _len_field(1, (SQL_PROTO + type_name).encode()) + _len_field(2, value)


def command_statement_query(sql: str) -> bytes:
    """Any(CommandStatementQuery { string query = 1; })"""
    return _any("CommandStatementQuery", _len_field(1, sql.encode()))


def command_get_catalogs() -> bytes:
    return _any("CommandGetCatalogs", b"")


def _read_varint(buf: bytes, pos: int):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def parse_fields(buf: bytes) -> dict:
    """Decode one protobuf message level: {field number: [values]} (varints as
    int, length-delimited fields as bytes)."""
    fields, pos = {}, 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.setdefault(field, []).append(value)
    return fields


def test_hand_encoded_protobuf_matches_generated_code():
    """The hand encoder above agrees with protobuf's own serialisation (via the
    generated module that ships with flightsql-dbapi). Needs no server."""
    from google.protobuf import any_pb2

    import flightsql.flightsql_pb2 as pb

    # the second query is > 127 bytes: multi-byte length varints
    for sql in ["SELECT 1", "SELECT 'é' || x FROM t WHERE y = 'z' " * 20]:
        msg = pb.CommandStatementQuery(query=sql)
        wrapped = any_pb2.Any()
        wrapped.Pack(msg)
        assert command_statement_query(sql) == wrapped.SerializeToString()
        outer = parse_fields(command_statement_query(sql))
        assert outer[1] == [b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"]
        assert parse_fields(outer[2][0]) == {1: [sql.encode()]}
    wrapped = any_pb2.Any()
    wrapped.Pack(pb.CommandGetCatalogs())
    assert command_get_catalogs() == wrapped.SerializeToString()
    assert _varint(300) == b"\xac\x02"


# ----------------------------------------------------------------------------
# Server fixture
# ----------------------------------------------------------------------------
@dataclass
class Server:
    host: str
    port: int
    proc: subprocess.Popen
    project: Path
    stderr_path: Path
    stdout_lines: list

    @property
    def uri(self) -> str:
        return f"grpc://{self.host}:{self.port}"

    def logs(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return "--- stdout ---\n" + "".join(self.stdout_lines) + "\n--- stderr (tail) ---\n" + err[-8000:]


def hash_password(sluice_bin: str, password: str) -> str:
    proc = subprocess.run([sluice_bin, "hash-password", password],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"sluice hash-password exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    lines = [l.strip() for l in proc.stdout.splitlines() if l.strip()]
    assert lines, f"sluice hash-password printed nothing (stderr: {proc.stderr})"
    return lines[-1]


def write_project(root: Path, users_toml: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sluice.toml").write_text(
        '[project]\nname = "flight_test"\n\n'
        '[warehouse]\nuri = "warehouse"\ndefault_schema = "main"\n'
        + users_toml
    )
    return root


def start_server(sluice_bin: str, project: Path, env_extra: dict, host: str = "127.0.0.1") -> Server:
    env = dict(os.environ)
    env.pop("SLUICE_USER", None)
    env.pop("SLUICE_PASSWORD", None)
    env.pop("SLUICE_WAREHOUSE", None)
    env.update(env_extra)
    stderr_path = project / "serve.stderr"
    err = open(stderr_path, "w")
    proc = subprocess.Popen(
        [sluice_bin, "--project", str(project), "--progress", "never",
         "serve", "--host", host, "--port", "0"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1,
        start_new_session=True,
    )
    err.close()
    lines: list = []
    found: queue.Queue = queue.Queue()

    def pump():  # keeps draining stdout so the server never blocks on a full pipe
        for line in proc.stdout:
            lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                found.put(int(m.group(2)))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    server = Server(host, 0, proc, project, stderr_path, lines)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            port = found.get(timeout=0.2)
        except queue.Empty:
            port = -1
        if port is None:  # stdout closed: the process is gone (or closed stdout)
            proc.wait(timeout=10)
            pytest.fail(f"sluice serve exited ({proc.returncode}) before listening\n{server.logs()}")
        if port > 0:
            server.port = port
            return server
        if proc.poll() is not None:
            pytest.fail(f"sluice serve exited ({proc.returncode}) before listening\n{server.logs()}")
        if time.monotonic() > deadline:
            stop_server(server)
            pytest.fail(f"sluice serve printed no 'listening on' line within {START_TIMEOUT} s\n{server.logs()}")


def stop_server(server: Server, sig=signal.SIGTERM, timeout: float = 30) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
            return -9999
    return server.proc.returncode


@pytest.fixture(scope="module")
def server(sluice_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("flight") / "project"
    ro_hash = hash_password(sluice_bin, RO_PASSWORD)
    users = (
        '\n[server]\ntoken_ttl = "1h"\nquery_timeout = "5m"\n\n'
        f'[[server.users]]\nname = "{RO_USER}"\npassword_hash = {json.dumps(ro_hash)}\nrole = "read_only"\n'
    )
    project = write_project(root, users)
    srv = start_server(sluice_bin, project, {"SLUICE_USER": ADMIN_USER, "SLUICE_PASSWORD": ADMIN_PASSWORD})
    yield srv
    rc = stop_server(srv)
    assert rc != -9999, f"sluice serve did not stop within 30 s of SIGTERM\n{srv.logs()}"


# ----------------------------------------------------------------------------
# ADBC helpers
# ----------------------------------------------------------------------------
def adbc_connect(server: Server, user=ADMIN_USER, password=ADMIN_PASSWORD, **kwargs):
    import adbc_driver_flightsql.dbapi as adbc_flight

    # per-RPC timeouts, so a stuck server fails the test instead of hanging it
    db_kwargs = {"adbc.flight.sql.rpc.timeout_seconds.query": "120",
                 "adbc.flight.sql.rpc.timeout_seconds.fetch": "300",
                 "adbc.flight.sql.rpc.timeout_seconds.update": "300"}
    if user is not None:
        db_kwargs.update(username=user, password=password)
    kwargs.setdefault("autocommit", True)
    return adbc_flight.connect(server.uri, db_kwargs=db_kwargs, **kwargs)


def query(conn, sql, params=None) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()


def rows(conn, sql, params=None) -> list:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def execute(conn, sql, params=None) -> None:
    """Run a statement (DDL/DML) and drain whatever result it has."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        cur.fetchall()


@pytest.fixture(scope="module")
def admin(server):
    conn = adbc_connect(server)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def seeded(admin):
    """Tables shared by the read-only tests: main.people and sa.things."""
    execute(admin, "CREATE TABLE main.people (id BIGINT, name VARCHAR, score DOUBLE)")
    execute(admin, "INSERT INTO main.people VALUES (1, 'ann', 1.5), (2, 'bob', 2.5), (3, 'cy', NULL), (4, NULL, 4.0)")
    execute(admin, "CREATE TABLE sa.things (id BIGINT, name VARCHAR, score DOUBLE)")
    execute(admin, "INSERT INTO sa.things VALUES (1, 'a', 1.0), (2, 'b', 2.0), (3, 'c', 3.0)")
    return admin


PEOPLE = [(1, "ann", 1.5), (2, "bob", 2.5), (3, "cy", None), (4, None, 4.0)]


# ----------------------------------------------------------------------------
# ADBC
# ----------------------------------------------------------------------------
def test_adbc_query_values(seeded):
    assert rows(seeded, "SELECT id, name, score FROM main.people ORDER BY id") == PEOPLE
    # unqualified names resolve in default_schema "main"
    assert rows(seeded, "SELECT count(*) AS n, sum(id) AS s FROM people") == [(4, 10)]
    t = query(seeded, "SELECT 1 AS one, 'two' AS two, 3.5 AS three")
    assert t.to_pylist() == [{"one": 1, "two": "two", "three": 3.5}]


def test_adbc_default_connect_autocommit_warning_is_harmless(server, seeded):
    """Plain connect() (autocommit=False asked by the DB-API layer: the driver
    asks GetSqlInfo whether transactions are supported) still queries."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = adbc_connect(server, autocommit=False)
    try:
        assert rows(conn, "SELECT id FROM main.people WHERE id = 2") == [(2,)]
    finally:
        conn.close()


def test_adbc_ddl_is_eager(server, admin):
    """CREATE TABLE runs when executed, not when its (empty) result is fetched:
    a second connection sees the table while the first result is unread."""
    cur = admin.cursor()
    try:
        cur.execute("CREATE TABLE main.eager_t AS SELECT 41 + 1 AS x")
        other = adbc_connect(server)
        try:
            assert rows(other, "SELECT x FROM main.eager_t") == [(42,)]
            schema = other.adbc_get_table_schema("eager_t", db_schema_filter="main")
            assert schema.names == ["x"]
            assert schema.field("x").type == pa.int64()
        finally:
            other.close()
    finally:
        cur.close()


def test_adbc_parameters(seeded):
    assert rows(seeded, "SELECT id, name, score FROM main.people WHERE id = ? OR name = ? ORDER BY id",
                (1, "cy")) == [(1, "ann", 1.5), (3, "cy", None)]
    assert rows(seeded, "SELECT id FROM main.people WHERE score > ? ORDER BY id", (2.0,)) == [(2,), (4,)]
    # the same prepared statement re-executed with new values (cursor keeps it prepared)
    with seeded.cursor() as cur:
        got = []
        for i in (4, 2, 99):
            cur.execute("SELECT name FROM main.people WHERE id = ?", (i,))
            got.append(cur.fetchall())
    assert got == [[(None,)], [("bob",)], []]


def test_adbc_parameters_null_and_executemany(admin):
    execute(admin, "CREATE TABLE main.param_t (id BIGINT, name VARCHAR, score DOUBLE)")
    # one row through the prepared *query* path, with a NULL (Arrow null-typed) parameter
    execute(admin, "INSERT INTO main.param_t VALUES (?, ?, ?)", (7, None, 2.25))
    # several rows through DoPut(CommandPreparedStatementUpdate): one execution per row
    with admin.cursor() as cur:
        cur.executemany("INSERT INTO main.param_t VALUES (?, ?, ?)",
                        [(8, "h", 0.5), (9, None, None), (10, "ü", -1.0)])
        assert cur.rowcount == 3
    assert rows(admin, "SELECT id, name, score FROM main.param_t ORDER BY id") == [
        (7, None, 2.25), (8, "h", 0.5), (9, None, None), (10, "ü", -1.0)]
    assert rows(admin, "SELECT id FROM main.param_t WHERE name IS NULL ORDER BY id") == [(7,), (9,)]


def test_adbc_get_objects(seeded):
    catalogs = seeded.adbc_get_objects(depth="catalogs").read_all().to_pylist()
    assert [c["catalog_name"] for c in catalogs] == ["sluice"]

    schemas = seeded.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    assert [c["catalog_name"] for c in schemas] == ["sluice"]
    names = {s["db_schema_name"] for s in schemas[0]["catalog_db_schemas"]}
    assert {"main", "sa", "information_schema"} <= names
    system = seeded.adbc_get_objects(depth="tables", db_schema_filter="information_schema",
                                     table_types_filter=["SYSTEM TABLE"]).read_all().to_pylist()
    got = {t["table_name"] for c in system for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert {"tables", "columns", "views"} <= got, got

    objs = seeded.adbc_get_objects(depth="all", catalog_filter="sluice", db_schema_filter="sa",
                                   table_name_filter="things").read_all().to_pylist()
    assert len(objs) == 1 and objs[0]["catalog_name"] == "sluice"
    [schema] = objs[0]["catalog_db_schemas"]
    assert schema["db_schema_name"] == "sa"
    [table] = schema["db_schema_tables"]
    assert (table["table_name"], table["table_type"]) == ("things", "TABLE")
    cols = [(c["column_name"], c["ordinal_position"]) for c in table["table_columns"]]
    assert cols == [("id", 1), ("name", 2), ("score", 3)]


def test_adbc_table_types_and_views(seeded):
    assert sorted(seeded.adbc_get_table_types()) == ["SYSTEM TABLE", "TABLE", "VIEW"]
    execute(seeded, "CREATE VIEW main.people_v AS SELECT id FROM main.people WHERE id < 3")
    try:
        assert rows(seeded, "SELECT id FROM main.people_v ORDER BY id") == [(1,), (2,)]
        objs = seeded.adbc_get_objects(depth="tables", db_schema_filter="main",
                                       table_types_filter=["VIEW"]).read_all().to_pylist()
        tables = [(t["table_name"], t["table_type"])
                  for c in objs for s in c["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])]
        assert tables == [("people_v", "VIEW")]
    finally:
        execute(seeded, "DROP VIEW main.people_v")
    objs = seeded.adbc_get_objects(depth="tables", db_schema_filter="main",
                                   table_types_filter=["VIEW"]).read_all().to_pylist()
    assert [t for c in objs for s in c["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])] == []


def test_adbc_table_schema_equals_result_schema(admin):
    execute(admin, "CREATE TABLE main.typed (i BIGINT, s VARCHAR, d DOUBLE, b BOOLEAN, dt DATE, bin BYTEA)")
    execute(admin, "INSERT INTO main.typed VALUES (1, 'x', 0.5, true, DATE '2026-01-02', X'0102')")
    declared = admin.adbc_get_table_schema("typed", db_schema_filter="main")
    fetched = query(admin, "SELECT * FROM main.typed")
    assert declared.names == ["i", "s", "d", "b", "dt", "bin"]
    assert declared.equals(fetched.schema), f"GetTables schema {declared} != result schema {fetched.schema}"
    assert fetched.schema.field("s").type == pa.string()
    assert fetched.schema.field("bin").type == pa.binary()
    assert fetched.to_pylist() == [{"i": 1, "s": "x", "d": 0.5, "b": True,
                                    "dt": datetime.date(2026, 1, 2), "bin": b"\x01\x02"}]


def test_adbc_prepared_schema_equals_result_schema(seeded):
    """adbc_execute_schema on a prepared statement returns the dataset_schema of
    CreatePreparedStatement's result (the driver raises NotSupportedError when
    the server leaves it empty); it must equal the DoGet stream's schema."""
    sql = "SELECT id, name, score, name IS NULL AS missing FROM main.people ORDER BY id"
    with seeded.cursor() as cur:
        prepared_schema = cur.adbc_execute_schema(sql)
        cur.execute(sql)
        fetched = cur.fetch_arrow_table()
    assert prepared_schema.equals(fetched.schema), f"prepared schema {prepared_schema} != {fetched.schema}"
    assert fetched.num_rows == 4


def test_adbc_get_info(seeded):
    info = seeded.adbc_get_info()
    assert isinstance(info.get("vendor_name"), str) and info["vendor_name"], info
    assert info.get("driver_name") == "ADBC Flight SQL Driver - Go", info


def test_adbc_strings_are_utf8_not_view(seeded):
    t = query(seeded, "SELECT name, upper(name) AS up, 'lit' AS lit, arrow_cast('v', 'Utf8View') AS v "
                      "FROM main.people WHERE id = 1")
    for field in t.schema:
        assert field.type == pa.string(), f"{field.name}: {field.type}"
    assert t.to_pylist() == [{"name": "ann", "up": "ANN", "lit": "lit", "v": "v"}]
    t = query(seeded, "SELECT arrow_cast('abc', 'Dictionary(Int32, Utf8)') AS d")
    assert t.schema.field("d").type == pa.string()
    assert t.column("d").to_pylist() == ["abc"]


def test_adbc_ingest_modes(admin):
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                     "name": pa.array(["a", None, "c"], pa.string()),
                     "v": pa.array([0.5, 1.5, None], pa.float64())})
    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing", data, mode="create", db_schema_name="raw") == 3
    assert rows(admin, "SELECT id, name, v FROM raw.ing ORDER BY id") == [(1, "a", 0.5), (2, None, 1.5), (3, "c", None)]

    import adbc_driver_manager

    with admin.cursor() as cur:  # create on an existing table fails, table untouched
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("ing", data, mode="create", db_schema_name="raw")
    assert rows(admin, "SELECT count(*) FROM raw.ing") == [(3,)]

    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing", data.slice(0, 2), mode="append", db_schema_name="raw") == 2
    assert rows(admin, "SELECT count(*), sum(id) FROM raw.ing") == [(5, 9)]

    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing", data.slice(2, 1), mode="replace", db_schema_name="raw") == 1
    assert rows(admin, "SELECT id, name, v FROM raw.ing") == [(3, "c", None)]

    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing", data, mode="create_append", db_schema_name="raw") == 3
        assert cur.adbc_ingest("ing2", data, mode="create_append", db_schema_name="raw") == 3
    assert rows(admin, "SELECT count(*) FROM raw.ing") == [(4,)]
    assert rows(admin, "SELECT count(*) FROM raw.ing2") == [(3,)]

    with admin.cursor() as cur:  # append to a missing table fails
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("no_such_ing", data, mode="append", db_schema_name="raw")


def test_adbc_ingest_default_schema(admin):
    data = pa.table({"k": pa.array([10, 20], pa.int64()), "s": pa.array(["x", "y"])})
    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing_default", data, mode="create") == 2
    assert rows(admin, "SELECT k, s FROM ing_default ORDER BY k") == [(10, "x"), (20, "y")]
    assert rows(admin, "SELECT k FROM main.ing_default ORDER BY k") == [(10,), (20,)]
    assert admin.adbc_get_table_schema("ing_default", db_schema_filter="main").names == ["k", "s"]


def test_adbc_ingest_large_batch(admin):
    """More than tonic's default 4 MiB per message in one DoPut."""
    n = 1_000_000
    data = pa.table({"id": pa.array(range(n), pa.int64()), "x": pc.multiply(pa.array(range(n), pa.float64()), 0.5)})
    assert data.nbytes > 8 * 1024 * 1024
    with admin.cursor() as cur:
        assert cur.adbc_ingest("ing_big", data, mode="create", db_schema_name="raw") == n
    assert rows(admin, "SELECT count(*), sum(id), sum(x) FROM raw.ing_big") == [
        (n, n * (n - 1) // 2, n * (n - 1) / 4)]


def test_adbc_error_then_recover(seeded):
    import adbc_driver_manager

    with seeded.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("SELECT * FROM main.no_such_table_xyz")
            cur.fetchall()
        assert "no_such_table_xyz" in str(e.value)
        assert e.value.status_code not in (adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED,
                                           adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED)
        cur.execute("SELECT id FROM main.people WHERE id = 3")
        assert cur.fetchall() == [(3,)]
    # a syntax error, then the connection still works
    with pytest.raises(adbc_driver_manager.Error):
        rows(seeded, "SELEC 1")
    assert rows(seeded, "SELECT 2 AS two") == [(2,)]


def test_adbc_large_result_streams(admin):
    n = 2_000_000
    with admin.cursor() as cur:
        cur.execute(f"SELECT * FROM generate_series(1, {n})")
        reader = cur.fetch_record_batch()
        count = total = batches = 0
        for batch in reader:
            batches += 1
            count += batch.num_rows
            total += pc.sum(batch.column(0)).as_py() or 0
        assert reader.schema.field(0).type == pa.int64()
    assert (count, total) == (n, n * (n + 1) // 2)
    assert batches >= 2, "2M rows (16 MB) arrived as a single batch"


# ----------------------------------------------------------------------------
# Authentication and roles
# ----------------------------------------------------------------------------
def test_auth_wrong_password_refused(server):
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as e:
        conn = adbc_connect(server, password="wrong-password")
        try:
            rows(conn, "SELECT 1")
        finally:
            conn.close()
    assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, str(e.value)
    assert "authenticat" in str(e.value).lower()


def test_auth_unknown_user_refused(server):
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as e:
        conn = adbc_connect(server, user="nobody", password=ADMIN_PASSWORD)
        try:
            rows(conn, "SELECT 1")
        finally:
            conn.close()
    assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, str(e.value)


def test_auth_no_credentials_refused(server):
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as e:
        conn = adbc_connect(server, user=None)
        try:
            rows(conn, "SELECT 1")
        finally:
            conn.close()
    assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, str(e.value)


def test_auth_raw_bogus_token_refused(server):
    client = flight.FlightClient(server.uri)
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-real-token")])
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(flight.FlightDescriptor.for_command(command_statement_query("SELECT 1")), opts)
        with pytest.raises(flight.FlightUnauthenticatedError):  # and no header at all
            client.get_flight_info(flight.FlightDescriptor.for_command(command_statement_query("SELECT 1")))
    finally:
        client.close()


def test_read_only_user(server, seeded):
    import adbc_driver_manager

    denied = adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED  # gRPC PERMISSION_DENIED
    ro = adbc_connect(server, user=RO_USER, password=RO_PASSWORD)
    try:
        assert rows(ro, "SELECT id, name, score FROM main.people ORDER BY id") == PEOPLE
        assert rows(ro, "SELECT id FROM main.people WHERE id = ?", (2,)) == [(2,)]
        for sql in ["CREATE TABLE main.ro_made (x BIGINT)",
                    "CREATE TABLE main.ro_made AS SELECT 1 AS x",
                    "INSERT INTO main.people VALUES (5, 'eve', 5.0)",
                    "DROP TABLE main.people",
                    "CREATE VIEW main.ro_view AS SELECT 1 AS x"]:
            with pytest.raises(adbc_driver_manager.Error) as e:
                execute(ro, sql)
            assert e.value.status_code == denied, f"{sql}: {e.value}"
            assert "permission" in str(e.value).lower(), f"{sql}: {e.value}"
        with pytest.raises(adbc_driver_manager.Error) as e:
            with ro.cursor() as cur:
                cur.executemany("INSERT INTO main.people VALUES (?, ?, ?)", [(6, "f", 6.0)])
        assert e.value.status_code == denied, str(e.value)
        data = pa.table({"id": pa.array([9], pa.int64()), "name": pa.array(["z"]), "score": pa.array([9.0])})
        for mode in ["append", "create", "replace"]:
            with pytest.raises(adbc_driver_manager.Error) as e:
                with ro.cursor() as cur:
                    cur.adbc_ingest("people" if mode != "create" else "ro_ingested", data, mode=mode,
                                    db_schema_name="main")
            assert e.value.status_code == denied, f"ingest {mode}: {e.value}"
        # the read-only connection still works after the refusals
        assert rows(ro, "SELECT count(*) FROM main.people") == [(4,)]
    finally:
        ro.close()
    # nothing changed
    assert rows(seeded, "SELECT id, name, score FROM main.people ORDER BY id") == PEOPLE
    tables = {t["table_name"] for c in seeded.adbc_get_objects(depth="tables", db_schema_filter="main")
              .read_all().to_pylist() for s in c["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])}
    assert not {"ro_made", "ro_view", "ro_ingested"} & tables


# ----------------------------------------------------------------------------
# flightsql-dbapi and its SQLAlchemy dialect
# ----------------------------------------------------------------------------
def dbapi_client(server, user=ADMIN_USER, password=ADMIN_PASSWORD):
    from flightsql import FlightSQLClient

    return FlightSQLClient(host=server.host, port=server.port, user=user, password=password, insecure=True)


def sa_engine(server, prepared=False):
    import sqlalchemy

    url = f"datafusion://{ADMIN_USER}:{ADMIN_PASSWORD}@{server.host}:{server.port}?insecure=true"
    if prepared:
        url += "&feature-sqlalchemy-prepared-statements=on"
    return sqlalchemy.create_engine(url)


def test_dbapi_cursor(server, seeded):
    import flightsql

    conn = flightsql.connect(dbapi_client(server))
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, name FROM sa.things ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "a"), (2, "b"), (3, "c")]
        assert [d[0] for d in cur.description] == ["id", "name"]
        # qmark parameters: a prepared statement with a dense-union record batch
        cur.execute("SELECT id, name FROM sa.things WHERE id = ? OR name = ? ORDER BY id", [1, "c"])
        assert [tuple(r) for r in cur.fetchall()] == [(1, "a"), (3, "c")]
        cur.execute("SELECT id FROM sa.things WHERE score > ? ORDER BY id", [1.5])
        assert [tuple(r) for r in cur.fetchall()] == [(2,), (3,)]
        # DDL through GetFlightInfo(CommandStatementQuery) + DoGet
        cur.execute("CREATE TABLE sa.by_dbapi AS SELECT 7 AS x")
        cur.execute("SELECT x FROM sa.by_dbapi")
        assert [tuple(r) for r in cur.fetchall()] == [(7,)]
    finally:
        conn.close()


def test_dbapi_execute_update_and_sql_info(server, seeded):
    import flightsql

    from flightsql import FlightSQLCallOptions

    client = dbapi_client(server)
    # execute_update reads the DoPut result *before* half-closing its (empty)
    # upload: a server that waits for the end of the client stream hangs here.
    opts = FlightSQLCallOptions(timeout=60)
    try:
        assert client.execute_update("CREATE TABLE sa.upd (x BIGINT)", opts) == 0
        assert client.execute_update("INSERT INTO sa.upd VALUES (1), (2), (3)", opts) == 3
        assert client.execute_update("CREATE TABLE sa.upd_copy AS SELECT x FROM sa.upd WHERE x > 1", opts) == 2
        assert client.execute_update("DROP TABLE sa.upd_copy", opts) == 0
        conn = flightsql.connect(client)
        # GetPrimaryKeys / GetImportedKeys: empty
        assert conn.flightsql_get_primary_keys("upd", schema="sa") == []
        assert conn.flightsql_get_foreign_keys("upd", schema="sa") == []
        info = conn.flightsql_get_sql_info([0, 3, 504])
        assert info[3] is False  # FLIGHT_SQL_SERVER_READ_ONLY
        assert info[504] == '"'  # SQL_IDENTIFIER_QUOTE_CHAR
        assert isinstance(info[0], str) and info[0]  # FLIGHT_SQL_SERVER_NAME
        cur = conn.cursor()
        cur.execute("SELECT sum(x) AS s FROM sa.upd")
        assert [tuple(r) for r in cur.fetchall()] == [(6,)]
    finally:
        client.close()


def test_sqlalchemy_inspector(server, seeded):
    import sqlalchemy
    from sqlalchemy import types

    engine = sa_engine(server)
    try:
        insp = sqlalchemy.inspect(engine)
        schemas = insp.get_schema_names()
        assert {"main", "sa"} <= set(schemas)
        assert len(schemas) == len(set(schemas)), f"duplicate schema names: {schemas}"
        assert "things" in insp.get_table_names(schema="sa")
        assert "people" in insp.get_table_names(schema="main")
        assert "things" not in insp.get_table_names(schema="main")
        cols = insp.get_columns("things", schema="sa")
        # the dialect maps Arrow types to SQLAlchemy type classes; the inspector instantiates them
        assert [(c["name"], type(c["type"]), c["nullable"]) for c in cols] == [
            ("id", types.BIGINT, True), ("name", types.TEXT, True), ("score", types.FLOAT, True)]
        assert insp.has_table("things", schema="sa")
        assert not insp.has_table("nope", schema="sa")
    finally:
        engine.dispose()


def test_sqlalchemy_text_query_literal_binds(server, seeded):
    """Default dialect settings: SQLAlchemy renders bound values into the SQL
    text (flightsql's LiteralBindCompiler), so values must be attached to the
    statement; values passed to execute() would be rendered as NULL."""
    import sqlalchemy

    engine = sa_engine(server)
    try:
        with engine.connect() as c:
            stmt = sqlalchemy.text("SELECT id, name, score FROM sa.things WHERE id >= :lo AND name <> :skip "
                                   "ORDER BY id").bindparams(lo=2, skip="c")
            assert [tuple(r) for r in c.execute(stmt).fetchall()] == [(2, "b", 2.0)]
            stmt = sqlalchemy.text("SELECT count(*) AS n FROM sa.things WHERE score < :x OR name = :q").bindparams(
                x=2.5, q="it's")
            assert [tuple(r) for r in c.execute(stmt).fetchall()] == [(2,)]
    finally:
        engine.dispose()


def test_sqlalchemy_text_query_prepared(server, seeded):
    """With `feature-sqlalchemy-prepared-statements=on` in the URL the dialect
    compiles `?` placeholders and the DB-API cursor binds the values through a
    prepared statement (dense-union parameter batch)."""
    import sqlalchemy

    engine = sa_engine(server, prepared=True)
    try:
        with engine.connect() as c:
            got = c.execute(sqlalchemy.text("SELECT id, name, score FROM sa.things WHERE id >= :lo AND name <> :skip "
                                            "ORDER BY id"), {"lo": 2, "skip": "c"}).fetchall()
            assert [tuple(r) for r in got] == [(2, "b", 2.0)]
            got = c.execute(sqlalchemy.text("SELECT count(*) AS n FROM sa.things WHERE score < :x"),
                            {"x": 2.5}).fetchall()
            assert [tuple(r) for r in got] == [(2,)]
    finally:
        engine.dispose()


def test_sqlalchemy_core_select(server, seeded):
    import sqlalchemy

    engine = sa_engine(server)
    try:
        md = sqlalchemy.MetaData()
        things = sqlalchemy.Table("things", md, autoload_with=engine, schema="sa")
        assert [c.name for c in things.columns] == ["id", "name", "score"]
        stmt = sqlalchemy.select(things.c.name).where(things.c.id == 3)
        with engine.connect() as c:
            assert [tuple(r) for r in c.execute(stmt).fetchall()] == [("c",)]
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------
# raw pyarrow.flight
# ----------------------------------------------------------------------------
def raw_client(server):
    client = flight.FlightClient(server.uri)
    header = client.authenticate_basic_token(ADMIN_USER, ADMIN_PASSWORD)
    assert header[0] == b"authorization"
    assert header[1].startswith(b"Bearer ") and len(header[1]) > len(b"Bearer ")
    return client, flight.FlightCallOptions(headers=[header])


def test_raw_flight_statement_query(server, seeded):
    client, opts = raw_client(server)
    try:
        desc = flight.FlightDescriptor.for_command(
            command_statement_query("SELECT id, name FROM main.people WHERE id <= 2 ORDER BY id"))
        info = client.get_flight_info(desc, opts)
        assert len(info.endpoints) >= 1
        tables = [client.do_get(ep.ticket, opts).read_all() for ep in info.endpoints]
        table = pa.concat_tables(tables)
        assert table.to_pylist() == [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]
        assert info.schema.equals(table.schema), f"FlightInfo schema {info.schema} != DoGet schema {table.schema}"
        assert table.schema.field("name").type == pa.string()

        cat_info = client.get_flight_info(flight.FlightDescriptor.for_command(command_get_catalogs()), opts)
        cats = client.do_get(cat_info.endpoints[0].ticket, opts).read_all()
        assert cats.column("catalog_name").to_pylist() == ["sluice"]
    finally:
        client.close()


def test_raw_flight_get_schema(server, seeded):
    """GetSchema(CommandStatementQuery) (what ADBC's ExecuteSchema sends for an
    unprepared statement) agrees with GetFlightInfo."""
    client, opts = raw_client(server)
    try:
        desc = flight.FlightDescriptor.for_command(command_statement_query("SELECT id, name FROM main.people"))
        info = client.get_flight_info(desc, opts)
        assert client.get_schema(desc, opts).schema.equals(info.schema)
    finally:
        client.close()


XDBC_TYPE_INFO_COLUMNS = [
    "type_name", "data_type", "column_size", "literal_prefix", "literal_suffix", "create_params",
    "nullable", "case_sensitive", "searchable", "unsigned_attribute", "fixed_prec_scale",
    "auto_increment", "local_type_name", "minimum_scale", "maximum_scale", "sql_data_type",
    "datetime_subcode", "num_prec_radix", "interval_precision"]


def test_raw_flight_xdbc_type_info(server):
    """GetXdbcTypeInfo (JDBC's DatabaseMetaData.getTypeInfo): the columns of the
    Flight SQL spec, in order, and at least a BIGINT and a VARCHAR-like type."""
    client, opts = raw_client(server)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(
            _any("CommandGetXdbcTypeInfo", b"")), opts)
        t = pa.concat_tables([client.do_get(ep.ticket, opts).read_all() for ep in info.endpoints])
        assert t.schema.names == XDBC_TYPE_INFO_COLUMNS
        assert info.schema.equals(t.schema)
        data_types = set(t.column("data_type").to_pylist())
        assert -5 in data_types, data_types  # XDBC_BIGINT
        assert data_types & {12, -9, -1}, data_types  # XDBC_VARCHAR / WVARCHAR / LONGVARCHAR
    finally:
        client.close()


def test_raw_flight_ddl_runs_in_get_flight_info(server, admin):
    """A client may never call DoGet for a statement: GetFlightInfo alone must
    create the table."""
    client, opts = raw_client(server)
    try:
        client.get_flight_info(flight.FlightDescriptor.for_command(
            command_statement_query("CREATE TABLE main.raw_eager AS SELECT 5 AS five")), opts)
    finally:
        client.close()
    assert rows(admin, "SELECT five FROM main.raw_eager") == [(5,)]


def test_raw_flight_error_message(server):
    client, opts = raw_client(server)
    try:
        # pyarrow raises FlightError subclasses for most gRPC codes, but
        # ArrowKeyError for NOT_FOUND: both are ArrowExceptions
        with pytest.raises(pa.ArrowException) as e:
            client.get_flight_info(flight.FlightDescriptor.for_command(
                command_statement_query("SELECT * FROM main.raw_missing_tbl")), opts)
        assert "raw_missing_tbl" in str(e.value)
        assert not isinstance(e.value, (flight.FlightUnauthenticatedError, flight.FlightUnauthorizedError))
    finally:
        client.close()


def test_raw_flight_actions_and_close_session(server):
    client, opts = raw_client(server)
    try:
        names = {a.type for a in client.list_actions(opts)}
        assert {"CreatePreparedStatement", "ClosePreparedStatement"} <= names, names
        # CloseSession: body is an (empty) CloseSessionRequest; the result a
        # CloseSessionResult { status = 1 } with CLOSED = 1 (or CLOSING = 2).
        results = list(client.do_action(flight.Action("CloseSession", b""), opts))
        assert len(results) == 1
        status = parse_fields(results[0].body.to_pybytes()).get(1, [0])[0]
        assert status in (1, 2), f"CloseSession status {status}"
    finally:
        client.close()


# ----------------------------------------------------------------------------
# A second server with no users: open to loopback only
# ----------------------------------------------------------------------------
def test_no_users_server_is_open_and_loopback_only(sluice_bin, tmp_path):
    project = write_project(tmp_path / "open")
    try:
        refused = subprocess.run([sluice_bin, "--project", str(project), "--progress", "never",
                                  "serve", "--host", "0.0.0.0", "--port", "0"],
                                 capture_output=True, text=True, timeout=60,
                                 env={k: v for k, v in os.environ.items()
                                      if k not in ("SLUICE_USER", "SLUICE_PASSWORD")})
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"serve --host 0.0.0.0 with no users configured kept running:\n{e.stdout}\n{e.stderr}")
    assert refused.returncode != 0, f"serve on 0.0.0.0 without users started:\n{refused.stdout}\n{refused.stderr}"
    assert "listening on" not in refused.stdout

    srv = start_server(sluice_bin, project, {})
    try:
        conn = adbc_connect(srv, user=None)
        try:
            assert rows(conn, "SELECT 40 + 2 AS x") == [(42,)]
        finally:
            conn.close()
        conn = adbc_connect(srv, user="anyone", password="anything")
        try:
            assert rows(conn, "SELECT 1 AS x") == [(1,)]
        finally:
            conn.close()
    finally:
        rc = stop_server(srv, sig=signal.SIGINT)
    assert rc != -9999, f"sluice serve did not stop within 30 s of SIGINT\n{srv.logs()}"


def test_query_timeout(sluice_bin, tmp_path):
    """[server] query_timeout cancels a long query with DEADLINE_EXCEEDED (ADBC:
    TIMEOUT), and the server keeps answering."""
    import adbc_driver_manager

    project = write_project(tmp_path / "timeout", '\n[server]\nquery_timeout = "2s"\n')
    srv = start_server(sluice_bin, project, {})
    try:
        conn = adbc_connect(srv, user=None)
        try:
            t0 = time.monotonic()
            with pytest.raises(adbc_driver_manager.Error) as e:
                rows(conn, "SELECT count(*) FROM generate_series(1, 100000000000)")
            assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.TIMEOUT, str(e.value)
            assert time.monotonic() - t0 < 60
            assert rows(conn, "SELECT 1 AS x") == [(1,)]

            # A statement that writes is timed too (before: it ran to the end,
            # however long), and nothing is committed.
            cur = conn.cursor()
            t0 = time.monotonic()
            with pytest.raises(adbc_driver_manager.Error) as e:
                cur.execute("CREATE TABLE main.slow AS SELECT count(*) AS n FROM generate_series(1, 100000000000)")
            took = time.monotonic() - t0
            cur.close()
            assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.TIMEOUT, str(e.value)
            assert "query_timeout" in str(e.value), str(e.value)
            assert took < 30, f"the statement was cancelled after {took:.1f}s, query_timeout is 2s"
            with pytest.raises(adbc_driver_manager.Error):
                rows(conn, "SELECT * FROM main.slow")
        finally:
            conn.close()
    finally:
        stop_server(srv)


def test_every_path_runs_under_the_callers_limits_and_role(sluice_bin, tmp_path):
    """[server] query_memory_limit and the user's role apply the same way
    whatever the client calls: a query, a prepared query, metadata, ingest
    (ADBC's adbc_ingest, flightsql-dbapi's reflection)."""
    import adbc_driver_manager

    ro_hash = hash_password(sluice_bin, RO_PASSWORD)
    project = write_project(
        tmp_path / "limits",
        '\n[server]\nquery_memory_limit = "4MiB"\n\n'
        f'[[server.users]]\nname = "{RO_USER}"\npassword_hash = {json.dumps(ro_hash)}\nrole = "read_only"\n',
    )
    srv = start_server(sluice_bin, project, {"SLUICE_USER": ADMIN_USER, "SLUICE_PASSWORD": ADMIN_PASSWORD})
    heavy = "SELECT cardinality(array_agg(value)) AS n FROM generate_series(1, 3000000)"
    try:
        rw = adbc_connect(srv)
        ro = adbc_connect(srv, user=RO_USER, password=RO_PASSWORD)
        try:
            # Ingest streams into the table: far more data than the limit.
            n = 1_000_000
            data = pa.table({"id": pa.array(range(n), pa.int64()),
                             "x": pc.multiply(pa.array(range(n), pa.float64()), 0.5)})
            assert data.nbytes > 3 * 4 * 1024 * 1024
            with rw.cursor() as cur:
                assert cur.adbc_ingest("big", data, mode="create", db_schema_name="main") == n
            for conn in (rw, ro):
                assert rows(conn, "SELECT count(*), sum(id) FROM main.big") == [(n, n * (n - 1) // 2)]
                # The same query is refused by the limit, with or without a parameter.
                for params in (None, (0,)):
                    sql = heavy if params is None else heavy + " WHERE value > ?"
                    with pytest.raises(adbc_driver_manager.Error) as e:
                        rows(conn, sql, params)
                    assert "ResourceExhausted" in str(e.value), str(e.value)
                    assert "query_memory_limit" in str(e.value), str(e.value)
                assert rows(conn, "SELECT 1 AS one") == [(1,)]
                # Metadata answers every role.
                objs = conn.adbc_get_objects(depth="all", db_schema_filter="main").read_all().to_pylist()
                tables = {t["table_name"] for c in objs for s in c["catalog_db_schemas"]
                          for t in (s["db_schema_tables"] or [])}
                assert "big" in tables
                schemas = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
                assert "main" in {s["db_schema_name"] for s in schemas[0]["catalog_db_schemas"]}
                assert conn.adbc_get_table_schema("big", db_schema_filter="main").names == ["id", "x"]

            # The read-only user's ingest is refused and writes nothing.
            small = data.slice(0, 3)
            for table, mode in [("big", "append"), ("big", "replace"), ("ro_new", "create"),
                                ("ro_new2", "create_append")]:
                with pytest.raises(adbc_driver_manager.Error) as e:
                    with ro.cursor() as cur:
                        cur.adbc_ingest(table, small, mode=mode, db_schema_name="main")
                assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, str(e.value)
                assert "read-only" in str(e.value), str(e.value)
            assert rows(rw, "SELECT count(*) FROM main.big") == [(n,)]
            objs = rw.adbc_get_objects(depth="tables", db_schema_filter="main").read_all().to_pylist()
            tables = {t["table_name"] for c in objs for s in c["catalog_db_schemas"]
                      for t in (s["db_schema_tables"] or [])}
            assert not {"ro_new", "ro_new2"} & tables, tables
        finally:
            ro.close()
            rw.close()
        # flightsql-dbapi's reflection (GetDbSchemas, GetTables) as the read-only user.
        client = dbapi_client(srv, user=RO_USER, password=RO_PASSWORD)
        try:
            reader = client.do_get(client.get_db_schemas().endpoints[0].ticket)
            assert "main" in reader.read_all().column("db_schema_name").to_pylist()
            reader = client.do_get(client.get_tables(db_schema_filter_pattern="main").endpoints[0].ticket)
            assert "big" in reader.read_all().column("table_name").to_pylist()
        finally:
            client.close()
    finally:
        stop_server(srv)


def test_other_clients_are_answered_while_one_query_hogs_the_cpu(sluice_bin, tmp_path):
    """A query that keeps every core busy does not stall other clients: their
    `SELECT 1` is answered within a second while it runs."""
    import threading

    project = write_project(tmp_path / "hog", '\n[server]\nquery_timeout = "8s"\n')
    srv = start_server(sluice_bin, project, {})
    try:
        hog = adbc_connect(srv, user=None)
        other = adbc_connect(srv, user=None)
        started = threading.Event()
        hog_error = []

        def run_hog():
            started.set()
            try:
                rows(hog, "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3")
            except Exception as e:  # cancelled by query_timeout
                hog_error.append(str(e))

        t = threading.Thread(target=run_hog, daemon=True)
        try:
            t.start()
            started.wait()
            time.sleep(1.0)  # the hog is running on every worker by now
            took = []
            for _ in range(5):
                t0 = time.monotonic()
                assert rows(other, "SELECT 1 AS x") == [(1,)]
                took.append(time.monotonic() - t0)
            assert t.is_alive(), f"the hog finished early ({hog_error}); the test measured nothing"
            assert max(took) < 1.0, f"SELECT 1 took {took} while another query ran"
        finally:
            t.join(timeout=60)
            hog.close()
            other.close()
    finally:
        stop_server(srv)


def test_tls(sluice_bin, tmp_path):
    """[server] tls_cert/tls_key: the server speaks grpc+tls; a client trusting
    the certificate queries it, and a plaintext client is refused."""
    import shutil as _shutil
    if _shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    import adbc_driver_flightsql
    import adbc_driver_flightsql.dbapi as adbc_flight

    project = write_project(
        tmp_path / "tls",
        '\n[server]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n',
    )
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(project / "key.pem"), "-out", str(project / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    srv = start_server(sluice_bin, project, {"SLUICE_USER": "tls", "SLUICE_PASSWORD": "tls-pw"})
    try:
        assert any("grpc+tls://" in l for l in srv.stdout_lines), srv.stdout_lines
        cert = (project / "cert.pem").read_text()
        client = flight.FlightClient(f"grpc+tls://127.0.0.1:{srv.port}", tls_root_certs=cert)
        try:
            token = client.authenticate_basic_token("tls", "tls-pw")
            opts = flight.FlightCallOptions(headers=[token])
            info = client.get_flight_info(
                flight.FlightDescriptor.for_command(command_statement_query("SELECT 7 AS seven")), opts)
            table = client.do_get(info.endpoints[0].ticket, opts).read_all()
            assert table.column("seven").to_pylist() == [7]
        finally:
            client.close()
        conn = adbc_flight.connect(
            f"grpc+tls://127.0.0.1:{srv.port}",
            db_kwargs={
                "username": "tls",
                "password": "tls-pw",
                adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: cert,
            },
            autocommit=True,
        )
        try:
            assert rows(conn, "SELECT 8 AS eight") == [(8,)]
        finally:
            conn.close()
        plain = flight.FlightClient(f"grpc://127.0.0.1:{srv.port}")
        try:
            with pytest.raises(pa.ArrowException):
                plain.authenticate_basic_token("tls", "tls-pw")
        finally:
            plain.close()
    finally:
        stop_server(srv)


def test_prepared_lookups_on_a_cached_table(server):
    """Prepared `SELECT cols FROM t WHERE <conditions on ?>` on a table the
    server holds in memory is answered without planning (the query log says
    `path="lookup"`), and every answer equals the same query planned (an ORDER
    BY takes a query off the lookup path). A statement prepared once sees later
    commits."""
    with adbc_connect(server) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE main.lk AS SELECT * FROM (VALUES "
                        "(1, 'a', 1.5), (2, 'b', NULL), (3, NULL, 3.5), (4, 'b', 4.5)) v(id, name, score)")
        cases = [
            ("SELECT name, score FROM main.lk WHERE id = ?", [(1,), (3,), (99,), (None,)]),
            ("SELECT id, score FROM main.lk WHERE name = ?", [("b",), ("zz",)]),
            ("SELECT id FROM main.lk WHERE id >= ? AND score < ?", [(2, 4.0), (1, 10.0)]),
            ("SELECT id, name FROM main.lk WHERE score IS NULL OR id = ?", [(4,)]),
            ("SELECT name FROM lk WHERE id IN (?, ?)", [(1, 4), (2, 2)]),
        ]
        for sql, params in cases:
            for p in params:
                literals = sql
                for v in p:
                    lit = "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else str(v))
                    literals = literals.replace("?", lit, 1)
                planned = f"SELECT * FROM ({literals}) ORDER BY 1"
                got = sorted(rows(conn, sql, p), key=repr)
                assert got == sorted(rows(conn, planned), key=repr), (sql, p)
        # One statement, executed again after commits: it sees each of them.
        with conn.cursor() as cur:
            sql = "SELECT name FROM main.lk WHERE id = ?"
            cur.adbc_prepare(sql)
            cur.execute(sql, (5,))
            assert cur.fetchall() == []
            with conn.cursor() as w:
                w.execute("INSERT INTO main.lk VALUES (5, 'e', 5.5)")
            cur.execute(sql, (5,))
            assert cur.fetchall() == [("e",)]
            with conn.cursor() as w:
                w.execute("UPDATE main.lk SET name = 'E' WHERE id = 5")
            cur.execute(sql, (5,))
            assert cur.fetchall() == [("E",)]
        # A string parameter for a number column is cast to the parameter's
        # type when bound, as planning does.
        assert rows(conn, "SELECT name FROM main.lk WHERE id = ?", ("4",)) == [("b",)]
    log = server.stderr_path.read_text().splitlines()
    for sql in ("FROM main.lk WHERE id = $1", "WHERE id >= $1 AND score < $2",
                "WHERE name = $1", "WHERE score IS NULL OR id = $1", "FROM lk WHERE id IN ($1, $2)"):
        assert any('path="lookup"' in line and sql in line for line in log), (sql, log[-20:])
