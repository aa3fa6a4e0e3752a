//! The one error type of the library.
//!
//! User mistakes (bad configuration, an unknown source, table, feature view or
//! feature service, bad SQL, a bad `--select`, an unreadable input file) are
//! distinct variants whose messages name the object and the fix;
//! [`Error::Internal`] is a bug in sluice. [`Error::exit_code`] is the single
//! place that maps errors to process exit codes (and `server::status` the one
//! that maps them to gRPC codes), both by variant, never by message text.
//!
//! DataFusion's errors (and Arrow's, Parquet's and sqlparser's, which reach us
//! inside them) are kept whole as the [`source`](std::error::Error::source) of
//! the variant they become. DataFusion gives some kinds only as text ("table
//! 'x' not found", "Table 'x' already exists"): `error/classify.rs` reads them
//! once, there, and nowhere else.
//!
//! **Printing.** Every variant's `Display` is complete: it already holds the
//! readable text of its cause (`{path}: {I/O error}`, DataFusion's message
//! without its `Error during planning: ` prefix). Print errors with [`report`],
//! which does not repeat a cause; the `source()` chain is for programs
//! (downcasting, logs), not for people.

mod classify;

use crate::models::jinja::JinjaError;
use crate::models::select::SelectError;
use classify::strip_df_prefix;
use datafusion::error::DataFusionError;
use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a statement names, in [`Error::NotFound`] and [`Error::AlreadyExists`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Table,
    /// A model of the project (`ref('x')`).
    Model,
    View,
    Schema,
    Column,
    Function,
    /// Anything else (a prepared statement, a table version, a catalog).
    Other,
}

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

    /// An input file cannot be read as its format says: a malformed record or
    /// header, not Parquet, a line over the limit. `reader` is what read it (a
    /// load's ``source `orders` ``, a query's `read_csv('data/*.csv')`);
    /// `message` says where in `file` and what to do.
    #[error("{reader}: {message}")]
    BadInputFile {
        reader: String,
        file: String,
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

    /// A feature view named in a training set or a `features` command is not
    /// registered.
    #[error("unknown feature view `{name}`{hint}; registered: {known} (a model with feature_view config registers when it runs)")]
    UnknownFeatureView {
        name: String,
        hint: String,
        known: String,
    },

    /// `service=NAME` names no `[feature_services.NAME]` of `sluice.toml`.
    #[error("unknown feature service `{name}`{hint}; declared in sluice.toml [feature_services.NAME]: {known}")]
    UnknownFeatureService {
        name: String,
        hint: String,
        known: String,
    },

    /// A `--select`/`--exclude` selector is malformed or matches no model.
    /// `option` is the option it was given to.
    #[error("{option}: {reason}")]
    BadSelection {
        option: &'static str,
        #[source]
        reason: SelectError,
    },

    /// A Jinja template (a model, test or analysis file) does not render.
    #[error(transparent)]
    Template(#[from] JinjaError),

    /// Object storage failed (unreachable endpoint, permissions, ...).
    #[error("storage `{location}`: {message}")]
    Storage { location: String, message: String },

    /// A worker of the cluster could not be reached or went away mid-query
    /// (running the query again may succeed once it is back).
    #[error("{worker}: {message}")]
    Unavailable { worker: String, message: String },

    /// A SQL statement cannot be planned (sluice's own planning messages:
    /// DataFusion's are [`Error::Plan`]).
    #[error("{0}")]
    Sql(String),

    /// DataFusion cannot plan a statement: bad syntax, an unknown function,
    /// wrong types.
    #[error("{message}")]
    Plan {
        message: String,
        #[source]
        source: DataFusionError,
    },

    /// Something a statement names does not exist.
    #[error("{message}")]
    NotFound {
        object: Object,
        message: String,
        #[source]
        source: Option<DataFusionError>,
    },

    /// A statement would create something that exists already.
    #[error("{message}")]
    AlreadyExists {
        object: Object,
        message: String,
        #[source]
        source: Option<DataFusionError>,
    },

    /// A statement uses SQL that sluice or DataFusion does not support.
    #[error("{message}")]
    NotSupported {
        message: String,
        #[source]
        source: Option<DataFusionError>,
    },

    /// A statement failed while it ran, because of the data (division by zero,
    /// overflow, a value that does not cast) or a function's own limit.
    #[error("{message}")]
    Execution {
        message: String,
        #[source]
        source: Option<DataFusionError>,
    },

    /// A query needed more memory (or another resource) than its limit allows.
    #[error("{message}; the query needs more memory than its limit allows ([server] query_memory_limit for the server, SLUICE_MEMORY_LIMIT elsewhere)")]
    ResourcesExhausted {
        message: String,
        #[source]
        source: Option<DataFusionError>,
    },

    /// Another writer committed to the table first; nothing of this write was
    /// committed.
    #[error("table `{table}`: {message}; nothing was committed, run the command again")]
    Conflict { table: String, message: String },

    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),

    /// A value that does not parse or is not allowed (a size, a duration, a
    /// role, a column type, a model config or test value); the message names
    /// the value and what is expected. Callers that know where the value came
    /// from say so (an [`Error::Config`] naming the file and key, an
    /// [`Error::Model`]).
    #[error("{0}")]
    InvalidValue(String),

    /// Local file I/O failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A model cannot be compiled or run.
    #[error("model `{model}`{}: {message}", in_file(.file))]
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

    /// A bug found by the query engine: DataFusion's internal error, or a query
    /// task that panicked.
    #[error("internal error (a bug in sluice, please report it): {message}")]
    EngineBug {
        message: String,
        #[source]
        source: DataFusionError,
    },
}

impl Error {
    /// Process exit code: 2 for user errors (configuration, arguments, bad SQL,
    /// unknown names), 1 for runtime failures (a statement that failed on its
    /// data or its input file, a resource limit), 3 for storage, I/O and write
    /// conflicts (worth retrying), 70 for bugs.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) | Error::EngineBug { .. } => 70,
            Error::Storage { .. }
            | Error::Unavailable { .. }
            | Error::Io { .. }
            | Error::Conflict { .. } => 3,
            Error::Execution { .. }
            | Error::ResourcesExhausted { .. }
            | Error::BadInputFile { .. } => 1,
            Error::Many(errors) => errors.iter().map(Error::exit_code).max().unwrap_or(2),
            Error::Config { .. }
            | Error::UnknownSource { .. }
            | Error::Source { .. }
            | Error::LoadAborted { .. }
            | Error::Schema { .. }
            | Error::Warehouse { .. }
            | Error::UnknownTable { .. }
            | Error::UnknownFeatureView { .. }
            | Error::UnknownFeatureService { .. }
            | Error::BadSelection { .. }
            | Error::Template(_)
            | Error::Sql(_)
            | Error::Plan { .. }
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::NotSupported { .. }
            | Error::Usage(_)
            | Error::InvalidValue(_)
            | Error::Model { .. } => 2,
        }
    }

    /// A write to a closed pipe (`sluice sql ... | head`): the reader has what
    /// it wanted, so the binary exits 0 without a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
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
                Error::execution(strip_df_prefix(&message))
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

    /// `file` of source `source` cannot be read as its format says.
    pub(crate) fn bad_load_file(source: &str, file: &str, message: impl std::fmt::Display) -> Self {
        Error::BadInputFile {
            reader: format!("source `{source}`"),
            file: file.to_string(),
            message: format!("`{file}`: {message}"),
        }
    }

    /// No registered feature view is named `name`; `registered` are the names.
    pub(crate) fn unknown_feature_view<'a>(
        name: &str,
        registered: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let (hint, known) = suggest(name, registered);
        Error::UnknownFeatureView {
            name: name.to_string(),
            hint,
            known,
        }
    }

    /// `sluice.toml` declares no feature service `name`; `declared` are the names.
    pub(crate) fn unknown_feature_service<'a>(
        name: &str,
        declared: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let (hint, known) = suggest(name, declared);
        Error::UnknownFeatureService {
            name: name.to_string(),
            hint,
            known,
        }
    }

    /// A value that does not parse or is not allowed; `message` says what is
    /// expected.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidValue(message.into())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A statement failed on its data, with no DataFusion error to keep.
    pub(crate) fn execution(message: impl Into<String>) -> Self {
        Error::Execution {
            message: message.into(),
            source: None,
        }
    }

    /// sluice does not support what a statement asks for.
    pub(crate) fn not_supported(message: impl Into<String>) -> Self {
        Error::NotSupported {
            message: message.into(),
            source: None,
        }
    }

    /// A statement names `object`, which does not exist.
    pub(crate) fn not_found(object: Object, message: impl Into<String>) -> Self {
        Error::NotFound {
            object,
            message: message.into(),
            source: None,
        }
    }

    /// A statement would create `object`, which exists already.
    pub(crate) fn already_exists(object: Object, message: impl Into<String>) -> Self {
        Error::AlreadyExists {
            object,
            message: message.into(),
            source: None,
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

/// The text to print for `err` and its causes, each once: the `Display` of
/// each error in the chain joined by `": "`, stopping after the first
/// [`Error`] (whose `Display` already holds its causes). An application's own
/// context above a sluice error (anyhow's `.context(..)`) is kept.
///
/// ```
/// let e = sluice::Error::Io {
///     path: "data/x.csv".into(),
///     source: std::io::Error::other("disk on fire"),
/// };
/// assert_eq!(sluice::error::report(&e), "data/x.csv: disk on fire");
/// ```
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err;
    while !current.is::<Error>() {
        match current.source() {
            Some(next) => {
                out.push_str(": ");
                out.push_str(&next.to_string());
                current = next;
            }
            None => break,
        }
    }
    out
}

impl From<arrow_flight::error::FlightError> for Error {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        Error::Internal(e.to_string())
    }
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

/// The "did you mean" hint for `name` and the list of `names` ("none" when empty).
fn suggest<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> (String, String) {
    let names: Vec<&str> = names.into_iter().collect();
    let known = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    (did_you_mean(name, names), known)
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

/// ` (file)` for a model error that knows its file, else nothing.
fn in_file(file: &str) -> String {
    if file.is_empty() {
        String::new()
    } else {
        format!(" ({file})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("warehous", ["project", "warehouse"]),
            " (did you mean `warehouse`?)"
        );
        assert_eq!(did_you_mean("zzz", ["project", "warehouse"]), "");
    }

    #[test]
    fn new_variants_name_the_object_and_the_fix() {
        let view = Error::unknown_feature_view("user_feature", ["user_features", "merchants"]);
        assert_eq!(
            view.to_string(),
            "unknown feature view `user_feature` (did you mean `user_features`?); registered: user_features, merchants (a model with feature_view config registers when it runs)"
        );
        assert_eq!(
            Error::unknown_feature_view("x", []).to_string(),
            "unknown feature view `x`; registered: none (a model with feature_view config registers when it runs)"
        );
        let service = Error::unknown_feature_service("scorin", ["scoring"]);
        assert_eq!(
            service.to_string(),
            "unknown feature service `scorin` (did you mean `scoring`?); declared in sluice.toml [feature_services.NAME]: scoring"
        );
        let selection = Error::BadSelection {
            option: "--select",
            reason: SelectError::NoTag {
                tag: "dayly".into(),
                suggestion: Some("daily".into()),
            },
        };
        assert_eq!(
            selection.to_string(),
            "--select: no model has tag `dayly` — did you mean `daily`?"
        );
        let file = Error::bad_load_file(
            "orders",
            "data/o.csv",
            "column 1 of the header contains a NUL byte",
        );
        assert_eq!(
            file.to_string(),
            "source `orders`: `data/o.csv`: column 1 of the header contains a NUL byte"
        );
        for (err, exit, code) in [
            (&view, 2, Code::NotFound),
            (&service, 2, Code::NotFound),
            (&selection, 2, Code::InvalidArgument),
            (&file, 1, Code::InvalidArgument),
        ] {
            assert_eq!(err.exit_code(), exit, "{err}");
            assert_eq!(crate::server::code(err), code, "{err}");
        }
    }

    /// An error wrapping a sluice error, as anyhow's `.context(..)` does.
    #[derive(Debug)]
    struct Context(Error);

    impl std::fmt::Display for Context {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot run")
        }
    }

    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_report_prints_each_cause_once() {
        let io = Error::io("data/x.csv", std::io::Error::other("permission denied"));
        assert_eq!(report(&io), "data/x.csv: permission denied");
        assert!(!io.is_broken_pipe());
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(Error::io("<stdout>", pipe).is_broken_pipe());
        assert_eq!(
            report(&Context(io)),
            "cannot run: data/x.csv: permission denied"
        );
        let plan = Error::from(DataFusionError::Plan("table 'main.t' not found".into()));
        assert_eq!(report(&plan), "table 'main.t' not found");
        // Other errors' causes are followed down to the sluice error.
        let other = Context(Error::Usage("--threads 0".into()));
        assert_eq!(report(&other), "cannot run: --threads 0");
    }
}
