//! The one error type of the library.
//!
//! User mistakes (bad configuration, unknown source or table, bad SQL, unreadable
//! input) are distinct variants whose messages name the object and the fix;
//! [`Error::Internal`] is a bug in sluice. [`Error::exit_code`] is the single place
//! that maps errors to process exit codes.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sluice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file is missing, malformed or inconsistent.
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },

    /// A source named on the command line is not declared.
    #[error("unknown source `{name}`{hint}; declared sources: {known}")]
    UnknownSource {
        name: String,
        hint: String,
        known: String,
    },

    /// The input of a load is missing or unusable.
    #[error("source `{source_name}`: {message}")]
    Source {
        source_name: String,
        message: String,
    },

    /// A load was refused and committed nothing.
    #[error("source `{source_name}`: {message}; nothing was committed")]
    LoadAborted {
        source_name: String,
        message: String,
    },

    /// The schema of new data does not fit the table.
    #[error("table `{table}`: {message}")]
    Schema { table: String, message: String },

    /// A warehouse URI cannot be used.
    #[error("warehouse `{uri}`: {message}")]
    Warehouse { uri: String, message: String },

    /// A table does not exist.
    #[error("table `{table}` does not exist{hint}")]
    UnknownTable { table: String, hint: String },

    /// Object storage failed (unreachable endpoint, permissions, ...).
    #[error("storage `{location}`: {message}")]
    Storage { location: String, message: String },

    /// A SQL statement cannot be planned: bad syntax, unknown names, wrong types.
    #[error("{0}")]
    Sql(String),

    /// A statement failed while it ran, because of the data (division by zero,
    /// overflow, a value that does not cast) or a function's own limit.
    #[error("{0}")]
    Execution(String),

    /// A query needed more memory (or another resource) than its limit allows.
    #[error("{0}; the query needs more memory than its limit allows ([server] query_memory_limit for the server, SLUICE_MEMORY_LIMIT elsewhere)")]
    ResourcesExhausted(String),

    /// Another writer committed to the table first; nothing of this write was
    /// committed.
    #[error("table `{table}`: {message}; nothing was committed, run the command again")]
    Conflict { table: String, message: String },

    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),

    /// Local file I/O failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A model cannot be compiled or run.
    #[error("model `{model}` ({file}): {message}")]
    Model {
        model: String,
        file: String,
        message: String,
    },

    /// Several independent problems, reported together (every model is checked
    /// before anything runs).
    #[error("{}", join_errors(.0))]
    Many(Vec<Error>),

    /// A bug in sluice: please report it.
    #[error("internal error (a bug in sluice, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Process exit code: 2 for user errors (configuration, arguments, bad SQL),
    /// 1 for runtime failures (a statement that failed on its data, a resource
    /// limit), 3 for storage, I/O and write conflicts (worth retrying), 70 for
    /// bugs.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 70,
            Error::Storage { .. } | Error::Io { .. } | Error::Conflict { .. } => 3,
            Error::Execution(_) | Error::ResourcesExhausted(_) => 1,
            Error::Many(errors) => errors.iter().map(Error::exit_code).max().unwrap_or(2),
            _ => 2,
        }
    }

    /// Wraps a Delta failure while writing `table`: a lost race with another
    /// writer is a [`Error::Conflict`], a failure of the query whose rows were
    /// written an [`Error::Execution`], anything else a storage error.
    pub(crate) fn delta_write(
        table: impl std::fmt::Display,
        err: deltalake::DeltaTableError,
    ) -> Self {
        use deltalake::kernel::transaction::TransactionError as T;
        let conflict = match &err {
            deltalake::DeltaTableError::Transaction { source } => matches!(
                source,
                T::VersionAlreadyExists(_) | T::CommitConflict(_) | T::MaxCommitAttempts(_)
            ),
            deltalake::DeltaTableError::VersionAlreadyExists(_) => true,
            _ => false,
        };
        if conflict {
            return Error::Conflict {
                table: table.to_string(),
                message: format!(
                    "another writer committed first ({})",
                    first_line(&err.to_string())
                ),
            };
        }
        match err {
            // The query that produced the rows failed (division by zero, a bad
            // cast): deltalake wraps DataFusion's error, as Arrow or as text.
            deltalake::DeltaTableError::Arrow { source } => Error::from(source),
            deltalake::DeltaTableError::Generic(message) => {
                Error::Execution(strip_df_prefix(&message))
            }
            other => Error::storage(table, other),
        }
    }

    pub fn config(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.into(),
            message: message.into(),
        }
    }

    pub(crate) fn source(name: &str, message: impl Into<String>) -> Self {
        Error::Source {
            source_name: name.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a Delta/object-store failure while touching `location`.
    pub(crate) fn storage(location: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        let mut message = first_line(&err.to_string());
        if message.contains("error sending request") || message.contains("dns error") {
            message.push_str(
                "; is the endpoint reachable? (AWS_ENDPOINT_URL or aws_endpoint_url in [warehouse.storage_options])",
            );
        } else if message.contains("403 Forbidden") || message.contains("InvalidAccessKeyId") {
            message.push_str("; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or [warehouse.storage_options])");
        }
        Error::Storage {
            location: location.to_string(),
            message,
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Sql(other.to_string()),
            },
            D::Context(ctx, inner) => match Error::from(*inner) {
                Error::Sql(msg) => Error::Sql(format!("{ctx}: {msg}")),
                other => other,
            },
            D::Internal(msg) => Error::Internal(msg),
            D::SQL(parse, _) => Error::Sql(parser_message(*parse)),
            D::ResourcesExhausted(msg) => Error::ResourcesExhausted(msg),
            D::ArrowError(e, _) => Error::from(*e),
            D::Execution(msg) => Error::Execution(msg),
            D::ExecutionJoin(e) => Error::Internal(format!("a query task failed: {e}")),
            D::ObjectStore(e) => Error::storage("object store", e),
            D::IoError(e) => Error::Execution(format!("I/O error: {e}")),
            D::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => Error::from(inner),
                Err(shared) => Error::Execution(strip_df_prefix(&shared.to_string())),
            },
            D::Collection(mut errors) if !errors.is_empty() => Error::from(errors.remove(0)),
            D::Diagnostic(_, inner) => Error::from(*inner),
            D::ParquetError(e) => parquet_error(*e),
            other => Error::Sql(strip_df_prefix(&other.to_string())),
        }
    }
}

/// A Parquet reader's error. An error of the data while the reader evaluated a
/// pushed-down filter (an overflow in a join key, a division by zero) reaches
/// us only as text (`Error evaluating filter predicate: ArrowError(...)`): it
/// is reported as the same error evaluated elsewhere would be.
fn parquet_error(e: parquet::errors::ParquetError) -> Error {
    use parquet::errors::ParquetError as P;
    let e = match e {
        P::External(inner) => match inner.downcast::<arrow::error::ArrowError>() {
            Ok(arrow) => return Error::from(*arrow),
            Err(inner) => match inner.downcast::<datafusion::error::DataFusionError>() {
                Ok(df) => return Error::from(*df),
                Err(inner) => P::External(inner),
            },
        },
        other => other,
    };
    let text = e.to_string();
    data_error_in(&text).unwrap_or_else(|| Error::Execution(format!("Parquet: {text}")))
}

/// The error of the data that `text` (an error that arrived only as text, with
/// the original in debug form) is about, if any.
fn data_error_in(text: &str) -> Option<Error> {
    const OVERFLOW: &str = "ArithmeticOverflow(\"";
    if let Some(at) = text.find(OVERFLOW) {
        let rest = &text[at + OVERFLOW.len()..];
        let what = rest.split("\")").next().unwrap_or(rest);
        return Some(Error::Execution(format!("Arithmetic overflow: {what}")));
    }
    if text.contains("DivideByZero") {
        return Some(Error::Execution("division by zero".into()));
    }
    None
}

/// sqlparser's errors as a person reads them (not `ParserError("...")`).
fn parser_message(e: sqlparser::parser::ParserError) -> String {
    use sqlparser::parser::ParserError as P;
    match e {
        P::ParserError(m) => format!("syntax error: {m}"),
        P::TokenizerError(m) => format!("syntax error: {m}"),
        P::RecursionLimitExceeded => "the statement nests parentheses, subqueries or function calls too deeply (over the parser's recursion limit, datafusion.sql_parser.recursion_limit); flatten it, e.g. with WITH clauses".to_string(),
    }
}

impl From<arrow_flight::error::FlightError> for Error {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        use arrow::error::ArrowError as A;
        match e {
            A::ExternalError(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<datafusion::error::DataFusionError>() {
                    Ok(df) => Error::from(*df),
                    Err(other) => Error::Execution(other.to_string()),
                },
            },
            A::DivideByZero => Error::Execution("division by zero".into()),
            A::MemoryError(m) => Error::ResourcesExhausted(m),
            A::ComputeError(m) => data_error_in(&m).unwrap_or(Error::Execution(m)),
            other => Error::Execution(other.to_string()),
        }
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

/// DataFusion messages carry prefixes such as "Error during planning: "; keep the
/// readable part.
fn strip_df_prefix(msg: &str) -> String {
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Schema error: ",
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    msg.to_string()
}

fn join_errors(errors: &[Error]) -> String {
    let mut out = format!("{} problems:", errors.len());
    for e in errors {
        out.push_str("\n  - ");
        out.push_str(&e.to_string().replace('\n', "\n    "));
    }
    out
}

/// Object-store errors can be many lines long (full HTTP bodies); one line is enough.
pub(crate) fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or_default().trim().to_string()
}

/// "did you mean `x`?" for the closest of `candidates` to `name`, or "".
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("warehous", ["project", "warehouse"]),
            " (did you mean `warehouse`?)"
        );
        assert_eq!(did_you_mean("zzz", ["project", "warehouse"]), "");
    }
}
