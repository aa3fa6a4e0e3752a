//! `read_csv`, `read_json` and `read_parquet` table functions, as DuckDB users expect.
//!
//! `read_csv(path [, has_header [, delimiter]])`, `read_json(path)` (newline-delimited),
//! `read_parquet(path)`; `path` may be a file, a folder, a glob or a URL.
//!
//! CSV and NDJSON files are checked first ([`super::file_checks`]): a record
//! that cannot be read as written fails the query, naming the file and line.

use super::file_checks::{check_files, Check, MAX_RECORD_BYTES};
use crate::formats::CsvFormat;
use datafusion::catalog::{
    DynamicFileCatalog, TableFunctionArgs, TableFunctionImpl, TableProvider, UrlTableFactory,
};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::{
    ListingTable, ListingTableConfig, ListingTableConfigExt, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Csv,
    Json,
    Parquet,
}

/// A file table function: what it reads, and its name.
#[derive(Debug)]
struct ReadFile(Kind, &'static str);

pub(super) fn register(ctx: &SessionContext) {
    for f in [
        ReadFile(Kind::Csv, "read_csv"),
        ReadFile(Kind::Json, "read_json"),
        ReadFile(Kind::Json, "read_ndjson"),
        ReadFile(Kind::Parquet, "read_parquet"),
    ] {
        ctx.register_udtf(f.1, Arc::new(f));
    }
}

impl ReadFile {
    fn name(&self) -> &'static str {
        self.1
    }
}

/// The text of a string literal argument of a table function.
pub(crate) fn literal_string(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

fn literal_bool(e: &Expr) -> Option<bool> {
    match e {
        Expr::Literal(ScalarValue::Boolean(Some(b)), _) => Some(*b),
        _ => None,
    }
}

impl TableFunctionImpl for ReadFile {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let usage = || {
            DataFusionError::Plan(match self.0 {
                Kind::Csv => {
                    "usage: read_csv('path or glob' [, has_header BOOLEAN [, 'delimiter']])"
                        .to_string()
                }
                _ => format!("usage: {}('path or glob')", self.name()),
            })
        };
        let path = exprs.first().and_then(literal_string).ok_or_else(usage)?;
        let ctx = SessionContext::new_with_state(session_state(&args)?);
        let kind = self.0;
        let (header, delim) = match kind {
            Kind::Csv => {
                let header = match exprs.get(1) {
                    Some(e) => literal_bool(e).ok_or_else(usage)?,
                    None => true,
                };
                let delim = match exprs.get(2) {
                    Some(e) => {
                        let s = literal_string(e).ok_or_else(usage)?;
                        match s.as_bytes() {
                            [b] => *b,
                            _ => return Err(usage()),
                        }
                    }
                    None => b',',
                };
                if exprs.len() > 3 {
                    return Err(usage());
                }
                (header, delim)
            }
            _ => {
                if exprs.len() > 1 {
                    return Err(usage());
                }
                (true, b',')
            }
        };
        // Schema inference is async; table functions are not. Run it on this
        // worker thread without blocking the runtime's other workers.
        block_on(checked_table(ctx, kind, self.name(), path, header, delim))
    }
}

/// The table `name(path)` reads: CSV and NDJSON files checked first (a record
/// that cannot be read as written fails the query, naming the file and line),
/// CSV read with line breaks allowed in quoted values.
async fn checked_table(
    ctx: SessionContext,
    kind: Kind,
    name: &str,
    path: String,
    header: bool,
    delim: u8,
) -> Result<Arc<dyn TableProvider>> {
    let df = match kind {
        Kind::Csv => {
            // Quoted fields may hold line breaks: DataFusion must not cut
            // a file into byte ranges at arbitrary line breaks.
            let options = CsvReadOptions::new()
                .has_header(header)
                .delimiter(delim)
                .newlines_in_values(true);
            let check = Check::Csv(CsvFormat {
                delimiter: delim,
                quote: options.quote,
                header,
                max_record_bytes: MAX_RECORD_BYTES,
                raise_max_record_bytes:
                    "load the file with `sluice load` and raise [source.csv] max_record_bytes",
            });
            let state = ctx.state();
            check_files(&state, name, &path, options.file_extension, &check).await?;
            ctx.read_csv(path.as_str(), options).await
        }
        Kind::Json => {
            let options = JsonReadOptions::default().file_extension("");
            let state = ctx.state();
            check_files(&state, name, &path, options.file_extension, &Check::Ndjson).await?;
            ctx.read_json(path.as_str(), options).await
        }
        Kind::Parquet => {
            ctx.read_parquet(
                path.as_str(),
                ParquetReadOptions::default().file_extension(""),
            )
            .await
        }
    }?;
    Ok(df.into_view())
}

/// `SELECT ... FROM 'data/x.csv'` (DataFusion's URL tables) as `read_csv` and
/// `read_json` read: CSV and NDJSON files are checked first and CSV quoted values
/// may hold line breaks. DataFusion's own URL tables merged the rest of a file
/// into one value after a stray quote, silently. Other files (Parquet, Arrow,
/// Avro) are DataFusion's URL tables, unchanged.
pub(super) fn enable_url_tables(ctx: SessionContext) -> SessionContext {
    let factory = Arc::new(UrlTables::default());
    let catalogs = Arc::new(DynamicFileCatalog::new(
        Arc::clone(ctx.state().catalog_list()),
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let session_id = ctx.session_id();
    let ctx: SessionContext = ctx
        .into_state_builder()
        .with_session_id(session_id)
        .with_catalog_list(catalogs)
        .build()
        .into();
    let weak = ctx.state_weak_ref();
    let _ = factory.session.set(Box::new(move || {
        weak.upgrade().map(|state| state.read().clone())
    }));
    ctx
}

/// The current session, if it is still alive.
type CurrentSession = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

#[derive(Default)]
struct UrlTables {
    session: std::sync::OnceLock<CurrentSession>,
}

impl std::fmt::Debug for UrlTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlTables")
    }
}

#[async_trait::async_trait]
impl UrlTableFactory for UrlTables {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Ok(table_url) = ListingTableUrl::parse(url) else {
            return Ok(None);
        };
        let state = self
            .session
            .get()
            .and_then(|current| current())
            .ok_or_else(|| DataFusionError::Internal("URL table without a session".into()))?;
        // Plain (not compressed) CSV and NDJSON files, or globs of them, that
        // exist; anything else is DataFusion's (`None` leaves the name unknown).
        let name = url.to_ascii_lowercase();
        let kind = if name.ends_with(".csv") {
            Kind::Csv
        } else if [".json", ".ndjson", ".jsonl"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            Kind::Json
        } else {
            let Ok(config) = ListingTableConfig::new(table_url)
                .infer_options(&state)
                .await
            else {
                return Ok(None);
            };
            let config = config
                .infer_partitions_from_path(&state)
                .await?
                .infer_schema(&state)
                .await?;
            return Ok(Some(Arc::new(ListingTable::try_new(config)?)));
        };
        let store = state.runtime_env().object_store(table_url.object_store())?;
        let any_file = table_url
            .list_all_files(&state, store.as_ref(), "")
            .await?
            .next()
            .await
            .is_some();
        if !any_file {
            return Ok(None);
        }
        let ctx = SessionContext::new_with_state(state);
        checked_table(ctx, kind, "FROM", url.to_string(), true, b',')
            .await
            .map(Some)
    }
}

/// The session a table function is called in.
pub(crate) fn session_state(args: &TableFunctionArgs) -> Result<SessionState> {
    args.session()
        .as_any()
        .downcast_ref::<SessionState>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("unexpected session type".into()))
}

/// Runs async planning work from a (synchronous) table function on this worker
/// thread, without blocking the runtime's other workers.
///
/// That needs tokio's multi-threaded runtime (`block_in_place` panics on a
/// current-thread one): elsewhere this is an error, not a panic. Every sluice
/// entry point runs on the multi-threaded runtime.
pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let unsupported = |runtime: &str| {
        DataFusionError::from(crate::error::Error::not_supported(format!(
            "this statement reads files or feature views while it is planned (read_csv, read_json, read_parquet, FROM 'file', training sets, the online schema), which needs tokio's multi-threaded runtime; it ran {runtime} (use #[tokio::main] or Builder::new_multi_thread())"
        )))
    };
    let handle = Handle::try_current().map_err(|_| unsupported("outside a tokio runtime"))?;
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| handle.block_on(fut)),
        _ => Err(unsupported("on a current-thread runtime")),
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::sql::Engine;
    use crate::warehouse::Warehouse;

    async fn engine(name: &str) -> Engine {
        let wh = Warehouse::open(&format!("memory://{name}"), &Default::default()).unwrap();
        Engine::new(wh, "main").await.unwrap()
    }

    /// `#[tokio::test]` runs on a current-thread runtime, where `block_in_place`
    /// panics: planning `read_csv` there is an error naming the fix.
    #[tokio::test]
    async fn table_functions_on_a_current_thread_runtime_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "a\n1\n").unwrap();
        let e = engine("current-thread").await;
        for f in ["read_csv", "read_json", "read_parquet"] {
            let sql = format!("SELECT * FROM {f}('{}')", path.display());
            let err = e.query(&sql).await.unwrap_err();
            assert!(matches!(err, Error::NotSupported { .. }), "{f}: {err:?}");
            assert!(
                err.to_string().contains(
                    "needs tokio's multi-threaded runtime; it ran on a current-thread runtime"
                ),
                "{f}: {err}"
            );
            assert_eq!(err.exit_code(), 2, "{f}: {err}");
        }
        // Listing the schemas (the online schema blocks to list its tables)
        // answers rather than panicking.
        e.query("SELECT count(*) FROM information_schema.tables")
            .await
            .unwrap();
    }

    /// The same statement on the multi-threaded runtime reads the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_functions_on_the_multi_threaded_runtime_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "a\n1\n2\n").unwrap();
        let e = engine("multi-thread").await;
        let sql = format!("SELECT count(*) FROM read_csv('{}')", path.display());
        let rows: usize = e
            .query(&sql)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 1);
    }

    /// A malformed file is a [`Error::BadInputFile`] naming the call, the
    /// line and the fix; it fails the statement on its data (exit 1).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_malformed_file_is_a_bad_input_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "a,b\n1,\"x\n").unwrap();
        let e = engine("bad-file").await;
        let call = format!("read_csv('{}')", path.display());
        let err = e.query(&format!("SELECT * FROM {call}")).await.unwrap_err();
        match &err {
            Error::BadInputFile { reader, file, .. } => {
                assert_eq!(reader, &call);
                assert!(file.ends_with("bad.csv"), "{file}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("{call}: line 2: a quoted field is never closed")),
            "{err}"
        );
        assert!(
            err.to_string().ends_with(
                "fix the file, or load it with `sluice load`, which quarantines bad records"
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
    }
}
