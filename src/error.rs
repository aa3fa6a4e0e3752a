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

    /// A SQL statement failed to plan or execute.
    #[error("{0}")]
    Sql(String),

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
    /// Process exit code: 2 for user errors, 3 for storage/environment, 70 for bugs.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 70,
            Error::Storage { .. } | Error::Io { .. } => 3,
            Error::Many(errors) => errors.iter().map(Error::exit_code).max().unwrap_or(2),
            _ => 2,
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
            other => Error::Sql(strip_df_prefix(&other.to_string())),
        }
    }
}

impl From<arrow_flight::error::FlightError> for Error {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Sql(e.to_string())
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
