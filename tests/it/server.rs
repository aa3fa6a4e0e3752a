//! The Flight SQL server with arrow-flight's Flight SQL client: every RPC the
//! server implements, authentication, roles, errors and limits.

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandStatementIngest, SqlInfo, TableDefinitionOptions, TableExistsOption,
    TableNotExistOption,
};
use arrow_flight::{FlightInfo, Ticket};
use futures::TryStreamExt;
use sluice::server::{hash_password, serve, PasswordHash, QueryLimits, Role, ServeOptions, User};
use sluice::sql::Engine;
use sluice::warehouse::Warehouse;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

fn user(name: &str, password: &str, role: Role) -> User {
    User {
        name: name.into(),
        hash: PasswordHash::parse(&hash_password(password)).unwrap(),
        role,
    }
}

/// A read-write `admin` (password `pw`) and a read-only `reader` (`rpw`).
fn admin_and_reader() -> Vec<User> {
    vec![
        user("admin", "pw", Role::ReadWrite),
        user("reader", "rpw", Role::ReadOnly),
    ]
}

/// Starts a server on a free port over a fresh warehouse in `dir`.
async fn start(dir: &std::path::Path, users: Vec<User>, limits: QueryLimits) -> SocketAddr {
    let wh = Warehouse::open(dir.join("warehouse").to_str().unwrap(), &HashMap::new()).unwrap();
    let engine = Engine::new(wh, "main").await.unwrap();
    let options = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        users,
        token_ttl: Duration::from_secs(3600),
        limits,
        tls: None,
        table_cache: sluice::server::DEFAULT_TABLE_CACHE,
        shutdown_grace: Duration::from_secs(30),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let r = serve(
            engine,
            options,
            move |addr, _| {
                let _ = tx.send(addr);
            },
            std::future::pending(),
        )
        .await;
        if let Err(e) = r {
            eprintln!("server stopped: {e}");
        }
    });
    rx.await.unwrap()
}

async fn client(addr: SocketAddr) -> FlightSqlServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

async fn login(addr: SocketAddr, name: &str, password: &str) -> FlightSqlServiceClient<Channel> {
    let mut c = client(addr).await;
    c.handshake(name, password).await.unwrap();
    c
}

/// DoGet of every endpoint; checks the stream's schema equals FlightInfo's.
async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let announced = info.clone().try_decode_schema().unwrap();
    let mut out = Vec::new();
    for ep in info.endpoint {
        let ticket: Ticket = ep.ticket.unwrap();
        let stream = c.do_get(ticket).await.unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        for b in &batches {
            assert_eq!(
                b.schema().as_ref(),
                &announced,
                "stream schema != FlightInfo schema"
            );
        }
        out.extend(batches);
    }
    out
}

async fn query(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = c.execute(sql.to_string(), None).await.unwrap();
    fetch(c, info).await
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(col)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// GetTables with schemas: the table names, their types, and the first
/// table's Arrow schema (decoded from its IPC bytes).
async fn get_tables(
    c: &mut FlightSqlServiceClient<Channel>,
    catalog: Option<&str>,
    schema_pattern: &str,
    table_pattern: &str,
) -> (
    Vec<Option<String>>,
    Vec<Option<String>>,
    arrow::datatypes::Schema,
) {
    let info = c
        .get_tables(CommandGetTables {
            catalog: catalog.map(str::to_string),
            db_schema_filter_pattern: Some(schema_pattern.into()),
            table_name_filter_pattern: Some(table_pattern.into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let got = fetch(c, info).await;
    let bytes = got[0]
        .column(4)
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .unwrap()
        .value(0)
        .to_vec();
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(&bytes).unwrap();
    (strings(&got, 2), strings(&got, 3), schema)
}

fn ints(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = arrow::compute::cast(b.column(col), &DataType::Int64).unwrap();
            let a = a.as_any().downcast_ref::<Int64Array>().unwrap().clone();
            a.values().to_vec()
        })
        .collect()
}

fn code(err: impl std::fmt::Debug) -> (tonic::Code, String) {
    // The client wraps statuses in its error type; recover the code from it.
    let text = format!("{err:?}");
    let code = [
        ("Unauthenticated", tonic::Code::Unauthenticated),
        ("PermissionDenied", tonic::Code::PermissionDenied),
        ("NotFound", tonic::Code::NotFound),
        ("InvalidArgument", tonic::Code::InvalidArgument),
        ("AlreadyExists", tonic::Code::AlreadyExists),
        ("DeadlineExceeded", tonic::Code::DeadlineExceeded),
        ("ResourceExhausted", tonic::Code::ResourceExhausted),
    ]
    .into_iter()
    .find(|(n, _)| text.contains(n))
    .map(|(_, c)| c)
    .unwrap_or(tonic::Code::Unknown);
    (code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_ingest_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(dir.path(), admin_and_reader(), QueryLimits::default()).await;
    let mut c = login(addr, "admin", "pw").await;

    // DDL and DML through CommandStatementUpdate.
    let n = c
        .execute_update(
            "CREATE TABLE main.people AS SELECT * FROM (VALUES (1, 'ann'), (2, 'bob')) v(id, name)"
                .into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n = c
        .execute_update("INSERT INTO people VALUES (3, 'cy')".into(), None)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // A statement sent as a query runs in GetFlightInfo, without DoGet.
    c.execute("CREATE TABLE main.eager AS SELECT 42 AS x".into(), None)
        .await
        .unwrap();
    let got = query(&mut c, "SELECT x FROM main.eager").await;
    assert_eq!(ints(&got, 0), vec![42]);

    // Queries: plain string types, schema equal to the stream's.
    let got = query(&mut c, "SELECT id, name FROM people ORDER BY id").await;
    assert_eq!(ints(&got, 0), vec![1, 2, 3]);
    assert_eq!(
        strings(&got, 1),
        vec![Some("ann".into()), Some("bob".into()), Some("cy".into())]
    );
    let got = query(
        &mut c,
        "SELECT arrow_cast('v', 'Utf8View') AS s, arrow_cast('d', 'Dictionary(Int32, Utf8)') AS d",
    )
    .await;
    assert_eq!(got[0].schema().field(0).data_type(), &DataType::Utf8);
    assert_eq!(got[0].schema().field(1).data_type(), &DataType::Utf8);

    // Prepared query with a `?` parameter (ADBC binds column "0").
    let mut stmt = c
        .prepare("SELECT name FROM people WHERE id = ?".into(), None)
        .await
        .unwrap();
    assert_eq!(stmt.dataset_schema().unwrap().field(0).name(), "name");
    assert_eq!(stmt.parameter_schema().unwrap().fields().len(), 1);
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("0", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![2]))],
    )
    .unwrap();
    stmt.set_parameters(params).unwrap();
    let info = stmt.execute().await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(strings(&got, 0), vec![Some("bob".into())]);
    stmt.close().await.unwrap();

    // Prepared update with two parameter rows: executed once per row.
    let mut ins = c
        .prepare("INSERT INTO people VALUES (?, ?)".into(), None)
        .await
        .unwrap();
    assert_eq!(ins.dataset_schema().unwrap().fields().len(), 0);
    let rows = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("0", DataType::Int64, true),
            Field::new("1", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![4, 5])),
            Arc::new(StringArray::from(vec![Some("di"), None])),
        ],
    )
    .unwrap();
    ins.set_parameters(rows).unwrap();
    assert_eq!(ins.execute_update().await.unwrap(), 2);
    let got = query(
        &mut c,
        "SELECT count(*) AS n, count(name) AS named FROM people",
    )
    .await;
    assert_eq!(ints(&got, 0), vec![5]);
    assert_eq!(ints(&got, 1), vec![4]);

    // Bulk ingest: create, then append, then replace.
    let batch = |ids: Vec<i64>| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(ids))],
        )
        .unwrap()
    };
    let ingest = |table: &str,
                  schema: Option<&str>,
                  not_exist: TableNotExistOption,
                  exists: TableExistsOption| {
        CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: not_exist.into(),
                if_exists: exists.into(),
            }),
            table: table.into(),
            schema: schema.map(str::to_string),
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: HashMap::new(),
        }
    };
    let n = c
        .execute_ingest(
            ingest(
                "loaded",
                Some("staging"),
                TableNotExistOption::Create,
                TableExistsOption::Fail,
            ),
            futures::stream::iter(vec![Ok(batch(vec![1, 2])), Ok(batch(vec![3]))]),
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    let err = c
        .execute_ingest(
            ingest(
                "loaded",
                Some("staging"),
                TableNotExistOption::Create,
                TableExistsOption::Fail,
            ),
            futures::stream::iter(vec![Ok(batch(vec![9]))]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    c.execute_ingest(
        ingest(
            "loaded",
            Some("staging"),
            TableNotExistOption::Fail,
            TableExistsOption::Append,
        ),
        futures::stream::iter(vec![Ok(batch(vec![4]))]),
    )
    .await
    .unwrap();
    let got = query(&mut c, "SELECT sum(k) FROM staging.loaded").await;
    assert_eq!(ints(&got, 0), vec![10]);
    c.execute_ingest(
        ingest(
            "loaded",
            Some("staging"),
            TableNotExistOption::Create,
            TableExistsOption::Replace,
        ),
        futures::stream::iter(vec![Ok(batch(vec![7]))]),
    )
    .await
    .unwrap();
    let got = query(&mut c, "SELECT sum(k) FROM staging.loaded").await;
    assert_eq!(ints(&got, 0), vec![7]);
    // Without a schema: the default schema, found by an unqualified query.
    c.execute_ingest(
        ingest(
            "plain",
            None,
            TableNotExistOption::Create,
            TableExistsOption::Fail,
        ),
        futures::stream::iter(vec![Ok(batch(vec![5]))]),
    )
    .await
    .unwrap();
    let got = query(&mut c, "SELECT k FROM plain").await;
    assert_eq!(ints(&got, 0), vec![5]);

    // Metadata.
    let info = c.get_catalogs().await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(strings(&got, 0), vec![Some("sluice".into())]);
    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    let schemas = strings(&got, 1);
    assert!(
        schemas.contains(&Some("main".into())) && schemas.contains(&Some("staging".into())),
        "{schemas:?}"
    );
    let (names, kinds, table_schema) = get_tables(&mut c, None, "ma%", "peo_le").await;
    assert_eq!(names, vec![Some("people".into())]);
    assert_eq!(kinds, vec![Some("TABLE".into())]);
    assert_eq!(table_schema.field(1).name(), "name");
    assert_eq!(table_schema.field(1).data_type(), &DataType::Utf8);
    // information_schema's tables are listed, as system tables, with their columns.
    let (names, kinds, table_schema) =
        get_tables(&mut c, Some("sluice"), "information_schema", "tables").await;
    assert_eq!(names, vec![Some("tables".into())]);
    assert_eq!(kinds, vec![Some("SYSTEM TABLE".into())]);
    assert_eq!(table_schema.field(2).name(), "table_name");
    let info = c.get_table_types().await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(
        strings(&got, 0),
        vec![
            Some("SYSTEM TABLE".into()),
            Some("TABLE".into()),
            Some("VIEW".into())
        ]
    );
    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::SqlIdentifierQuoteChar,
        ])
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let info = c
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    assert!(got.iter().map(|b| b.num_rows()).sum::<usize>() >= 10);
    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("main".into()),
            table: "people".into(),
        })
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    // A failing query names the table; the same client then works.
    let err = c
        .execute("SELECT * FROM main.nope".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let got = query(&mut c, "SELECT 1 AS one").await;
    assert_eq!(ints(&got, 0), vec![1]);

    // DROP.
    c.execute_update("DROP TABLE main.eager".into(), None)
        .await
        .unwrap();
    assert!(c
        .execute("SELECT * FROM main.eager".into(), None)
        .await
        .is_err());

    // Authentication and roles.
    let mut anon = client(addr).await;
    let (code_, _) = code(anon.execute("SELECT 1".into(), None).await.unwrap_err());
    assert_eq!(code_, tonic::Code::Unauthenticated);
    let mut bad = client(addr).await;
    let err = bad.handshake("admin", "wrong").await.unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let mut reader = login(addr, "reader", "rpw").await;
    let got = query(&mut reader, "SELECT count(*) FROM people").await;
    assert_eq!(ints(&got, 0), vec![5]);
    let (code_, text) = code(
        reader
            .execute_update("INSERT INTO people VALUES (9, 'x')".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, tonic::Code::PermissionDenied, "{text}");
    let (code_, _) = code(
        reader
            .execute("CREATE TABLE main.r AS SELECT 1".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, tonic::Code::PermissionDenied);
    let err = reader
        .execute_ingest(
            ingest(
                "r",
                None,
                TableNotExistOption::Create,
                TableExistsOption::Fail,
            ),
            futures::stream::iter(vec![Ok(batch(vec![1]))]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let csv = dir.path().join("secret.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    for sql in [
        format!("SELECT * FROM read_csv('{}')", csv.display()),
        format!("SELECT * FROM '{}'", csv.display()),
    ] {
        let (code_, text) = code(reader.execute(sql.clone(), None).await.unwrap_err());
        assert_eq!(code_, tonic::Code::PermissionDenied, "{sql}: {text}");
    }
    let got = query(&mut c, &format!("SELECT a FROM '{}'", csv.display())).await;
    assert_eq!(ints(&got, 0), vec![1], "a read_write user may read files");
    // Nor through a view over a file.
    c.execute_update(
        format!(
            "CREATE VIEW main.file_v AS SELECT a FROM '{}'",
            csv.display()
        ),
        None,
    )
    .await
    .unwrap();
    let (code_, text) = code(
        reader
            .execute("SELECT * FROM main.file_v".into(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, tonic::Code::PermissionDenied, "{text}");
    let got = query(&mut c, "SELECT count(*) FROM people").await;
    assert_eq!(ints(&got, 0), vec![5], "the reader changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_server_session_options_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(
        dir.path(),
        vec![],
        QueryLimits {
            timeout: Some(Duration::from_millis(300)),
            memory: Some(64 << 20),
        },
    )
    .await;
    // No users: calls need no token.
    let mut c = client(addr).await;
    c.execute_update("CREATE TABLE other.t AS SELECT 7 AS v".into(), None)
        .await
        .unwrap();
    // Session options need a session: log in with any credentials.
    c.handshake("me", "").await.unwrap();
    use arrow_flight::Action;
    use prost::Message;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Value {
        #[prost(string, optional, tag = "1")]
        string_value: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct SetRequest {
        #[prost(map = "string, message", tag = "1")]
        session_options: HashMap<String, Value>,
    }
    let mut req = SetRequest::default();
    req.session_options.insert(
        "schema".into(),
        Value {
            string_value: Some("other".into()),
        },
    );
    let mut out = c
        .do_action(Action {
            r#type: "SetSessionOptions".into(),
            body: req.encode_to_vec().into(),
        })
        .await
        .unwrap();
    // No errors in the result (an empty `errors` map encodes to nothing).
    let result = out.message().await.unwrap().unwrap();
    assert!(result.body.is_empty(), "{:?}", result.body);
    let got = query(&mut c, "SELECT v FROM t").await;
    assert_eq!(ints(&got, 0), vec![7]);

    // A query running past query_timeout is cancelled.
    let info = c
        .execute(
            "SELECT count(*) FROM generate_series(1, 3000000000) a".into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let started = std::time::Instant::now();
    let result: Result<Vec<RecordBatch>, _> = c.do_get(ticket).await.unwrap().try_collect().await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("query_timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The server still answers.
    let got = query(&mut c, "SELECT 2 AS two").await;
    assert_eq!(ints(&got, 0), vec![2]);
}

/// The physical plan of `sql`, as EXPLAIN shows it over Flight SQL.
async fn physical_plan(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    let got = query(c, &format!("EXPLAIN {sql}")).await;
    strings(&got, 1)
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Small tables are served from memory (`[server] table_cache`), and every
/// commit, by this server or by another process, is seen by the next query;
/// writes go to the Delta table, never into the cached copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_cache_sees_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(dir.path(), vec![], QueryLimits::default()).await;
    let mut c = client(addr).await;
    c.execute_update(
        "CREATE TABLE main.dim AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(id, name)".into(),
        None,
    )
    .await
    .unwrap();
    let base = c.clone();
    let lookup = |id: i64| {
        let mut c = base.clone();
        async move {
            let mut stmt = c
                .prepare("SELECT name FROM dim WHERE id = ?".into(), None)
                .await
                .unwrap();
            let params = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("0", DataType::Int64, true)])),
                vec![Arc::new(Int64Array::from(vec![id]))],
            )
            .unwrap();
            stmt.set_parameters(params).unwrap();
            let info = stmt.execute().await.unwrap();
            let got = fetch(&mut c, info).await;
            strings(&got, 0)
        }
    };
    assert_eq!(lookup(2).await, vec![Some("b".to_string())]);
    // The second query reads the table from memory, not Parquet files.
    let plan = physical_plan(&mut c, "SELECT name FROM dim WHERE id = 2").await;
    assert!(plan.contains("partition_sizes"), "not cached:\n{plan}");
    assert!(!plan.contains("parquet"), "not cached:\n{plan}");

    // Writes through the server: each next query sees them.
    c.execute_update("INSERT INTO dim VALUES (3, 'c')".into(), None)
        .await
        .unwrap();
    assert_eq!(lookup(3).await, vec![Some("c".to_string())]);
    c.execute_update("UPDATE dim SET name = 'B' WHERE id = 2".into(), None)
        .await
        .unwrap();
    assert_eq!(lookup(2).await, vec![Some("B".to_string())]);
    c.execute_update("DELETE FROM dim WHERE id = 1".into(), None)
        .await
        .unwrap();
    let got = query(&mut c, "SELECT id FROM dim ORDER BY id").await;
    assert_eq!(ints(&got, 0), vec![2, 3]);

    // Another process commits: the server sees it at its next query.
    let wh = Warehouse::open(
        dir.path().join("warehouse").to_str().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    let other = Engine::new(wh, "main").await.unwrap();
    other
        .query("INSERT INTO dim VALUES (4, 'd')")
        .await
        .unwrap();
    assert_eq!(lookup(4).await, vec![Some("d".to_string())]);
    // What the server wrote is in the Delta table itself.
    let got = other
        .query("SELECT id, arrow_cast(name, 'Utf8') FROM dim ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ints(&got, 0), vec![2, 3, 4]);
    assert_eq!(
        strings(&got, 1),
        vec![Some("B".into()), Some("c".into()), Some("d".into())]
    );
    // Time travel still reads the old version from storage.
    let got = query(&mut c, "SELECT count(*) FROM dim VERSION AS OF 0").await;
    assert_eq!(ints(&got, 0), vec![2]);

    // Another process drops the table and creates it again: the new table is
    // at the same version (0) as the one the server read, and is still seen.
    c.execute_update("CREATE TABLE main.again AS SELECT 1 AS v".into(), None)
        .await
        .unwrap();
    let got = query(&mut c, "SELECT v FROM again").await;
    assert_eq!(ints(&got, 0), vec![1]);
    let got = query(&mut c, "SELECT v FROM again").await;
    assert_eq!(ints(&got, 0), vec![1]);
    other.query("DROP TABLE main.again").await.unwrap();
    other
        .query("CREATE TABLE main.again AS SELECT 2 AS v")
        .await
        .unwrap();
    let got = query(&mut c, "SELECT v FROM again").await;
    assert_eq!(ints(&got, 0), vec![2]);
}

/// Prepared lookups on a table held in memory (answered through its key
/// index) give what the same query gives planned: repeated keys, rows over
/// several batches, NULL keys, absent keys, string keys, `IN` lists, a key
/// condition with another condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lookups_answer_as_planning_does() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(dir.path(), vec![], QueryLimits::default()).await;
    let mut c = client(addr).await;
    c.execute_update(
        "CREATE TABLE main.k AS SELECT CASE WHEN v % 97 = 0 THEN NULL ELSE v % 50 END AS id, \
         'n' || CAST(v % 7 AS VARCHAR) AS name, v AS n FROM generate_series(1, 20000) t(v)"
            .into(),
        None,
    )
    .await
    .unwrap();
    // Sorted, so that only the rows matter (the planned query may run in
    // several partitions).
    let sorted = |mut v: Vec<i64>| {
        v.sort_unstable();
        v
    };
    let base = c.clone();
    let prepared = |sql: &'static str, params: RecordBatch| {
        let mut c = base.clone();
        async move {
            let mut stmt = c.prepare(sql.into(), None).await.unwrap();
            stmt.set_parameters(params).unwrap();
            let info = stmt.execute().await.unwrap();
            let got = fetch(&mut c, info).await;
            sorted(ints(&got, 0))
        }
    };
    let one = |v: Option<i64>| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("0", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![v]))],
        )
        .unwrap()
    };
    // Twice: the first may be read from Delta while the table loads.
    for _ in 0..2 {
        for id in [0, 1, 7, 49, 50, -3] {
            let want = sorted(ints(
                &query(&mut c, &format!("SELECT n FROM k WHERE id = {id}")).await,
                0,
            ));
            assert_eq!(want.is_empty(), !(0..50).contains(&id));
            let got = prepared("SELECT n FROM k WHERE id = ?", one(Some(id))).await;
            assert_eq!(got, want, "id = {id}");
        }
    }
    assert!(prepared("SELECT n FROM k WHERE id = ?", one(None))
        .await
        .is_empty());
    let want = sorted(ints(
        &query(
            &mut c,
            "SELECT n FROM k WHERE id IN (3, 11, 3) AND n > 9000",
        )
        .await,
        0,
    ));
    assert!(!want.is_empty());
    let two = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("0", DataType::Int64, true),
            Field::new("1", DataType::Int64, true),
            Field::new("2", DataType::Int64, true),
            Field::new("3", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![3])),
            Arc::new(Int64Array::from(vec![11])),
            Arc::new(Int64Array::from(vec![3])),
            Arc::new(Int64Array::from(vec![9000])),
        ],
    )
    .unwrap();
    let got = prepared("SELECT n FROM k WHERE id IN (?, ?, ?) AND n > ?", two).await;
    assert_eq!(got, want);
    let want = sorted(ints(
        &query(&mut c, "SELECT n FROM k WHERE name = 'n5' AND id = 12").await,
        0,
    ));
    assert!(!want.is_empty());
    let named = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("0", DataType::Utf8, true),
            Field::new("1", DataType::Int64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["n5"])),
            Arc::new(Int64Array::from(vec![12])),
        ],
    )
    .unwrap();
    let got = prepared("SELECT n FROM k WHERE name = ? AND id = ?", named).await;
    assert_eq!(got, want);

    // A table over 65,536 rows builds its index in the background: answers
    // are the same before and after.
    c.execute_update(
        "CREATE TABLE main.big AS SELECT v % 1000 AS id, v AS n FROM generate_series(1, 100000) t(v)"
            .into(),
        None,
    )
    .await
    .unwrap();
    for round in 0..40 {
        let id = (round * 37) % 1000;
        let got = prepared("SELECT n FROM big WHERE id = ?", one(Some(id))).await;
        let want: Vec<i64> = (1..=100_000).filter(|v| v % 1000 == id).collect();
        assert_eq!(got, want, "big: id = {id}");
        if round == 20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A query's DoGet runs the plan its GetFlightInfo made; a second DoGet of
/// the same ticket plans it again, and another user's DoGet is planned under
/// that user's own rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_tickets_plan_once_then_replan() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(dir.path(), admin_and_reader(), QueryLimits::default()).await;
    let mut a = login(addr, "admin", "pw").await;
    a.execute_update(
        "CREATE TABLE main.t AS SELECT * FROM (VALUES (1), (2)) v(x)".into(),
        None,
    )
    .await
    .unwrap();
    let info = a
        .execute("SELECT sum(x) AS s FROM main.t".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    for _ in 0..2 {
        let got: Vec<RecordBatch> = a
            .do_get(ticket.clone())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(ints(&got, 0), vec![3]);
    }
    // The admin may read server files; the reader may not, even with the
    // admin's ticket.
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "a\n1\n2\n").unwrap();
    let info = a
        .execute(format!("SELECT count(*) FROM '{}'", csv.display()), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut r = login(addr, "reader", "rpw").await;
    let err = match r.do_get(ticket.clone()).await {
        Err(e) => e,
        Ok(s) => s.try_collect::<Vec<RecordBatch>>().await.unwrap_err(),
    };
    let (code_, text) = code(err);
    assert_eq!(code_, tonic::Code::PermissionDenied, "{text}");
    let got: Vec<RecordBatch> = a.do_get(ticket).await.unwrap().try_collect().await.unwrap();
    assert_eq!(ints(&got, 0), vec![2]);
}

/// The error of a DoGet, whether the call or its stream fails.
async fn do_get_error(
    c: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> (tonic::Code, String) {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = match c.do_get(ticket).await {
        Err(e) => format!("{e:?}"),
        Ok(s) => format!(
            "{:?}",
            s.try_collect::<Vec<RecordBatch>>().await.unwrap_err()
        ),
    };
    code(err)
}

/// SetSessionOptions with `schema` for unqualified names.
async fn set_session_schema(c: &mut FlightSqlServiceClient<Channel>, schema: &str) {
    use prost::Message;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Value {
        #[prost(string, optional, tag = "1")]
        string_value: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct SetRequest {
        #[prost(map = "string, message", tag = "1")]
        session_options: HashMap<String, Value>,
    }
    let mut req = SetRequest::default();
    req.session_options.insert(
        "schema".into(),
        Value {
            string_value: Some(schema.into()),
        },
    );
    let mut out = c
        .do_action(arrow_flight::Action {
            r#type: "SetSessionOptions".into(),
            body: req.encode_to_vec().into(),
        })
        .await
        .unwrap();
    let result = out.message().await.unwrap().unwrap();
    assert!(result.body.is_empty(), "{:?}", result.body);
}

/// Every RPC runs on the caller's own engine: the per-query memory limit and
/// the role checks are the same whether a client queries, prepares, ingests
/// or asks for metadata, and a table named without a schema follows the
/// caller's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_runs_on_the_callers_engine() {
    let dir = tempfile::tempdir().unwrap();
    let limits = QueryLimits {
        timeout: None,
        memory: Some(4 << 20),
    };
    let addr = start(dir.path(), admin_and_reader(), limits).await;
    let mut admin = login(addr, "admin", "pw").await;
    let mut reader = login(addr, "reader", "rpw").await;
    admin
        .execute_update(
            "CREATE TABLE main.t AS SELECT * FROM (VALUES (1), (2)) v(x)".into(),
            None,
        )
        .await
        .unwrap();

    // Metadata answers every role.
    for c in [&mut admin, &mut reader] {
        let info = c.get_catalogs().await.unwrap();
        assert_eq!(
            strings(&fetch(c, info).await, 0),
            vec![Some("sluice".into())]
        );
        let info = c
            .get_db_schemas(CommandGetDbSchemas {
                catalog: None,
                db_schema_filter_pattern: None,
            })
            .await
            .unwrap();
        let schemas = strings(&fetch(c, info).await, 1);
        assert!(schemas.contains(&Some("main".into())), "{schemas:?}");
        let (names, _, table_schema) = get_tables(c, None, "main", "t").await;
        assert_eq!(names, vec![Some("t".into())]);
        assert_eq!(table_schema.field(0).name(), "x");
        let info = c
            .get_sql_info(vec![SqlInfo::FlightSqlServerName])
            .await
            .unwrap();
        assert_eq!(
            fetch(c, info)
                .await
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            1
        );
    }

    // The memory limit refuses the same query, ad hoc or prepared, for every role.
    let heavy = "SELECT cardinality(array_agg(value)) AS n FROM generate_series(1, 3000000)";
    for c in [&mut admin, &mut reader] {
        let info = c.execute(heavy.into(), None).await.unwrap();
        let (code_, text) = do_get_error(c, info).await;
        assert_eq!(code_, tonic::Code::ResourceExhausted, "{text}");
        let mut stmt = c.prepare(heavy.into(), None).await.unwrap();
        let info = stmt.execute().await.unwrap();
        let (code_, text) = do_get_error(c, info).await;
        assert_eq!(code_, tonic::Code::ResourceExhausted, "{text}");
        stmt.close().await.unwrap();
        let got = query(c, "SELECT count(*) FROM main.t").await;
        assert_eq!(ints(&got, 0), vec![2], "small queries still run");
    }
    // And a statement that writes, sent as an update or prepared (the limit
    // applies; which status the writer's wrapped error gets is the error
    // mapping's business, so only the cause is checked), which creates nothing.
    let heavy_write = format!("CREATE TABLE main.heavy AS {heavy}");
    let err = admin
        .execute_update(heavy_write.clone(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
    let mut stmt = admin.prepare(heavy_write.clone(), None).await.unwrap();
    let err = stmt.execute_update().await.unwrap_err();
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
    assert!(admin
        .execute("SELECT * FROM main.heavy".into(), None)
        .await
        .is_err());

    // A read-only user's ingest is refused, whatever the mode, and writes nothing.
    let batch = |n: i64| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap()
    };
    let ingest = |table: &str, not_exist: TableNotExistOption, exists: TableExistsOption| {
        CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: not_exist.into(),
                if_exists: exists.into(),
            }),
            table: table.into(),
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: HashMap::new(),
        }
    };
    for (table, not_exist, exists) in [
        ("t", TableNotExistOption::Fail, TableExistsOption::Append),
        ("t", TableNotExistOption::Fail, TableExistsOption::Replace),
        (
            "r_new",
            TableNotExistOption::Create,
            TableExistsOption::Fail,
        ),
    ] {
        let err = reader
            .execute_ingest(
                ingest(table, not_exist, exists),
                futures::stream::iter(vec![Ok(batch(3))]),
            )
            .await
            .unwrap_err();
        let (code_, text) = code(err);
        assert_eq!(code_, tonic::Code::PermissionDenied, "{table}: {text}");
    }
    let got = query(&mut admin, "SELECT count(*), sum(x) FROM main.t").await;
    assert_eq!((ints(&got, 0), ints(&got, 1)), (vec![2], vec![3]));
    assert!(admin
        .execute("SELECT * FROM main.r_new".into(), None)
        .await
        .is_err());
    for sql in ["INSERT INTO main.t VALUES (3)", "DROP TABLE main.t"] {
        let (code_, text) = code(reader.prepare(sql.into(), None).await.unwrap_err());
        assert_eq!(code_, tonic::Code::PermissionDenied, "{sql}: {text}");
    }

    // Ingest streams under the memory limit (far more data than the limit),
    // into the session's schema when the command names none.
    set_session_schema(&mut admin, "other").await;
    // GetDbSchemas answers from the caller's engine too: the session's
    // schema, like the server's default one, exists for unqualified names
    // before any table is in it; other sessions do not see it.
    let schemas = |c: &mut FlightSqlServiceClient<Channel>| {
        let mut c = c.clone();
        async move {
            let info = c
                .get_db_schemas(CommandGetDbSchemas {
                    catalog: None,
                    db_schema_filter_pattern: None,
                })
                .await
                .unwrap();
            strings(&fetch(&mut c, info).await, 1)
        }
    };
    assert!(schemas(&mut admin).await.contains(&Some("other".into())));
    assert!(!schemas(&mut reader).await.contains(&Some("other".into())));
    let n = admin
        .execute_ingest(
            ingest("ing", TableNotExistOption::Create, TableExistsOption::Fail),
            futures::stream::iter((0..4).map(move |_| Ok(batch(250_000)))),
        )
        .await
        .unwrap();
    assert_eq!(n, 1_000_000);
    let got = query(&mut admin, "SELECT count(*) FROM other.ing").await;
    assert_eq!(ints(&got, 0), vec![1_000_000]);
    let got = query(&mut admin, "SELECT count(*) FROM ing").await;
    assert_eq!(ints(&got, 0), vec![1_000_000]);
    assert!(admin
        .execute("SELECT * FROM main.ing".into(), None)
        .await
        .is_err());
}
