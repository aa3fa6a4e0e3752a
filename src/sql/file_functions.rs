//! `read_csv`, `read_json` and `read_parquet` table functions, as DuckDB users expect.
//!
//! `read_csv(path [, has_header [, delimiter]])`, `read_json(path)` (newline-delimited),
//! `read_parquet(path)`; `path` may be a file, a folder, a glob or a URL.

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Csv,
    Json,
    Parquet,
}

#[derive(Debug)]
struct ReadFile(Kind);

pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udtf("read_csv", Arc::new(ReadFile(Kind::Csv)));
    ctx.register_udtf("read_json", Arc::new(ReadFile(Kind::Json)));
    ctx.register_udtf("read_ndjson", Arc::new(ReadFile(Kind::Json)));
    ctx.register_udtf("read_parquet", Arc::new(ReadFile(Kind::Parquet)));
}

impl ReadFile {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Csv => "read_csv",
            Kind::Json => "read_json",
            Kind::Parquet => "read_parquet",
        }
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
        let fut = async move {
            let df = match kind {
                Kind::Csv => {
                    ctx.read_csv(
                        path.as_str(),
                        CsvReadOptions::new().has_header(header).delimiter(delim),
                    )
                    .await
                }
                Kind::Json => {
                    ctx.read_json(path.as_str(), JsonReadOptions::default().file_extension(""))
                        .await
                }
                Kind::Parquet => {
                    ctx.read_parquet(
                        path.as_str(),
                        ParquetReadOptions::default().file_extension(""),
                    )
                    .await
                }
            }?;
            Ok::<_, DataFusionError>(df.into_view())
        };
        block_on(fut)
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
pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| DataFusionError::Internal("table functions need a tokio runtime".into()))?;
    tokio::task::block_in_place(|| handle.block_on(fut))
}
