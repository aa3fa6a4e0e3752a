//! DataFusion's errors into sluice's: the variant each becomes, read once.
//!
//! Errors of sluice that travelled through DataFusion (a table function's, a
//! planner's) come back whole ([`take_ours`]); the others are classified by
//! [`classify`] and kept as the cause of the variant they become.

use super::{Error, Object};
use datafusion::error::DataFusionError;

/// The variant a DataFusion error becomes, read from it once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Plan,
    NotFound(Object),
    AlreadyExists(Object),
    NotSupported,
    Execution,
    ResourcesExhausted,
    Internal,
    Storage,
    /// A worker of the cluster could not be reached (the location names it).
    Unavailable(String),
}

/// The kind and the readable message of a DataFusion error. This is the one
/// place that reads DataFusion's text, for the kinds it gives only as text:
///
/// - planning and execution errors that say "not found", "does not exist" or
///   "doesn't exist" are [`Error::NotFound`] (`table 'x' not found`, `Table
///   'x' doesn't exist.`, `Schema 'x' doesn't exist.`); "already exists" is
///   [`Error::AlreadyExists`] (`Table 'x' already exists`); planning errors
///   that say "not supported" or "Unsupported" are [`Error::NotSupported`];
/// - the object (table, view, schema, column, function) is the first word of
///   such a message.
///
/// Everything else is chosen by DataFusion's own variant: a missing column
/// (`SchemaError::FieldNotFound`) is not found, a duplicate one already
/// exists, `NotImplemented` is not supported, `Execution` an execution error,
/// `Internal` and a panicked task a bug.
fn classify(e: &DataFusionError) -> (Kind, String) {
    use datafusion::common::SchemaError as S;
    use DataFusionError as D;
    match e {
        D::External(inner) => {
            if let Some(ours) = inner.downcast_ref::<Error>() {
                // Only when shared: an owned one is taken back whole.
                return (Kind::Execution, ours.to_string());
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return classify(df);
            }
            if let Some(arrow) = inner.downcast_ref::<arrow::error::ArrowError>() {
                return classify_arrow(arrow);
            }
            if let Some(status) = inner.downcast_ref::<tonic::Status>() {
                // A transport failure between processes of a cluster: its
                // message without gRPC's debug form.
                return (
                    Kind::Execution,
                    format!("{:?}: {}", status.code(), status.message()),
                );
            }
            (Kind::Plan, inner.to_string())
        }
        // An error a worker of a cluster returned (or could not be reached
        // for): the worker stays named, whatever the kind.
        D::Context(ctx, inner) if ctx.starts_with("worker ") => {
            let (kind, m) = classify(inner);
            if ctx.contains("(is `sluice worker` running there?") {
                let url = ctx.split(' ').nth(1).unwrap_or_default();
                return (
                    Kind::Unavailable(format!("worker {url}")),
                    format!("{m} {}", &ctx[ctx.find('(').unwrap_or(0)..]),
                );
            }
            (kind, format!("{ctx}: {m}"))
        }
        D::Context(ctx, inner) => match classify(inner) {
            (kind @ (Kind::Execution | Kind::ResourcesExhausted | Kind::Internal), m) => (kind, m),
            (kind, m) => (kind, format!("{ctx}: {m}")),
        },
        D::Diagnostic(_, inner) => classify(inner),
        D::Shared(inner) => classify(inner),
        D::Collection(errors) => match errors.first() {
            Some(first) => classify(first),
            None => (Kind::Plan, strip_df_prefix(&e.to_string())),
        },
        D::ArrowError(a, _) => classify_arrow(a),
        D::ParquetError(p) => classify_parquet(p),
        D::SQL(p, _) => (Kind::Plan, parser_message(p)),
        D::Plan(m) => (planning_kind(m), strip_df_prefix(&e.to_string())),
        D::SchemaError(s, _) => {
            let kind = match s.as_ref() {
                S::FieldNotFound { .. } => Kind::NotFound(Object::Column),
                S::DuplicateQualifiedField { .. } | S::DuplicateUnqualifiedField { .. } => {
                    Kind::AlreadyExists(Object::Column)
                }
                S::AmbiguousReference { .. } => Kind::Plan,
            };
            (kind, strip_df_prefix(&e.to_string()))
        }
        D::NotImplemented(_) => (Kind::NotSupported, strip_df_prefix(&e.to_string())),
        D::Execution(m) => {
            let kind = match existence(m) {
                Some(kind) => kind,
                None => Kind::Execution,
            };
            (kind, m.clone())
        }
        D::ResourcesExhausted(m) => (Kind::ResourcesExhausted, m.clone()),
        D::Internal(m) => (Kind::Internal, m.clone()),
        D::ExecutionJoin(j) => (Kind::Internal, format!("a query task failed: {j}")),
        D::ObjectStore(s) => match missing_file_in(&s.to_string()) {
            Some(m) if matches!(s.as_ref(), object_store::Error::NotFound { .. }) => {
                (Kind::NotFound(Object::Other), m)
            }
            _ => (Kind::Storage, s.to_string()),
        },
        D::IoError(io) => (Kind::Execution, format!("I/O error: {io}")),
        D::Configuration(_) | D::Substrait(_) | D::Ffi(_) => {
            (Kind::Plan, strip_df_prefix(&e.to_string()))
        }
    }
}

/// A planning message's kind (see [`classify`]).
fn planning_kind(message: &str) -> Kind {
    if let Some(kind) = existence(message) {
        return kind;
    }
    if message.contains("not supported") || message.contains("Unsupported") {
        return Kind::NotSupported;
    }
    Kind::Plan
}

/// "not found" / "does not exist" / "already exists" in DataFusion's text.
fn existence(message: &str) -> Option<Kind> {
    if message.contains("already exists") {
        Some(Kind::AlreadyExists(object_of(message)))
    } else if message.contains("not found")
        || message.contains("does not exist")
        || message.contains("doesn't exist")
    {
        Some(Kind::NotFound(object_of(message)))
    } else {
        None
    }
}

/// What DataFusion's message is about: its first word (`table 'x' not
/// found`, `Schema 'x' doesn't exist.`, `The table x already exists`).
fn object_of(message: &str) -> Object {
    let lower = message.to_ascii_lowercase();
    let lower = lower.trim_start_matches("the ");
    let lower = lower.trim_start_matches("external ");
    if lower.starts_with("table function") || lower.starts_with("function") {
        Object::Function
    } else if lower.starts_with("table") {
        Object::Table
    } else if lower.starts_with("view") {
        Object::View
    } else if lower.starts_with("schema") {
        Object::Schema
    } else if lower.starts_with("column") {
        Object::Column
    } else {
        Object::Other
    }
}

fn classify_arrow(e: &arrow::error::ArrowError) -> (Kind, String) {
    use arrow::error::ArrowError as A;
    match e {
        A::ExternalError(inner) => {
            if let Some(ours) = inner.downcast_ref::<Error>() {
                return (Kind::Execution, ours.to_string());
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return classify(df);
            }
            (Kind::Execution, inner.to_string())
        }
        A::DivideByZero => (Kind::Execution, "division by zero".into()),
        A::MemoryError(m) => (Kind::ResourcesExhausted, m.clone()),
        A::ComputeError(m) => (Kind::Execution, data_error_in(m).unwrap_or(m.clone())),
        other => (Kind::Execution, other.to_string()),
    }
}

/// A Parquet reader's error. An error of the data while the reader evaluated a
/// pushed-down filter (an overflow in a join key, a division by zero) reaches
/// us only as text (`Error evaluating filter predicate: ArrowError(...)`): it
/// is reported as the same error evaluated elsewhere would be.
fn classify_parquet(e: &parquet::errors::ParquetError) -> (Kind, String) {
    if let parquet::errors::ParquetError::External(inner) = e {
        if let Some(arrow) = inner.downcast_ref::<arrow::error::ArrowError>() {
            return classify_arrow(arrow);
        }
        if let Some(df) = inner.downcast_ref::<DataFusionError>() {
            return classify(df);
        }
    }
    let text = e.to_string();
    if let Some(message) = missing_file_in(&text) {
        return (Kind::NotFound(Object::Other), message);
    }
    let message = data_error_in(&text).unwrap_or_else(|| format!("Parquet: {text}"));
    (Kind::Execution, message)
}

/// When `text` says that a data file a table version lists is gone (object
/// store's `Object at location X not found`), a message saying why that
/// happens and what to read instead.
fn missing_file_in(text: &str) -> Option<String> {
    const AT: &str = "Object at location ";
    let rest = &text[text.find(AT)? + AT.len()..];
    let path = rest
        .split(" not found")
        .next()
        .filter(|p| p.len() < rest.len())?;
    Some(format!(
        "data file `{path}` no longer exists: `sluice vacuum` deletes the files that only \
         versions older than its retention read, so such a version (VERSION AS OF, \
         TIMESTAMP AS OF) can no longer be read; read a newer version (the latest version \
         is never vacuumed: if it fails, the file was deleted outside sluice)"
    ))
}

/// The message of the error of the data that `text` (an error that arrived
/// only as text, with the original in debug form) is about, if any.
fn data_error_in(text: &str) -> Option<String> {
    const OVERFLOW: &str = "ArithmeticOverflow(\"";
    if let Some(at) = text.find(OVERFLOW) {
        let rest = &text[at + OVERFLOW.len()..];
        let what = rest.split("\")").next().unwrap_or(rest);
        return Some(format!("Arithmetic overflow: {what}"));
    }
    if text.contains("DivideByZero") {
        return Some("division by zero".into());
    }
    None
}

/// sqlparser's errors as a person reads them (not `ParserError("...")`).
fn parser_message(e: &sqlparser::parser::ParserError) -> String {
    use sqlparser::parser::ParserError as P;
    match e {
        P::ParserError(m) => format!("syntax error: {m}"),
        P::TokenizerError(m) => format!("syntax error: {m}"),
        P::RecursionLimitExceeded => "the statement nests parentheses, subqueries or function calls too deeply (over the parser's recursion limit, datafusion.sql_parser.recursion_limit); flatten it, e.g. with WITH clauses".to_string(),
    }
}

/// Takes back a sluice error that travelled through DataFusion (a table
/// function's, a planner's), or gives `e` back. A context DataFusion added is
/// kept in front of a planning message, as [`classify`] does.
fn take_ours(e: DataFusionError) -> std::result::Result<Error, DataFusionError> {
    use DataFusionError as D;
    match e {
        D::External(inner) => match inner.downcast::<Error>() {
            Ok(ours) => Ok(*ours),
            Err(inner) => match inner.downcast::<DataFusionError>() {
                Ok(df) => take_ours(*df).map_err(|df| D::External(Box::new(df))),
                Err(inner) => match inner.downcast::<arrow::error::ArrowError>() {
                    Ok(arrow) => {
                        take_ours_arrow(*arrow).map_err(|a| D::External(Box::new(a) as Box<_>))
                    }
                    Err(inner) => Err(D::External(inner)),
                },
            },
        },
        D::Context(ctx, inner) => match take_ours(*inner) {
            Ok(Error::Sql(m)) => Ok(Error::Sql(format!("{ctx}: {m}"))),
            Ok(ours) => Ok(ours),
            Err(inner) => Err(D::Context(ctx, Box::new(inner))),
        },
        D::Diagnostic(d, inner) => take_ours(*inner).map_err(|i| D::Diagnostic(d, Box::new(i))),
        D::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(inner) => take_ours(inner),
            Err(shared) => Err(D::Shared(shared)),
        },
        D::Collection(mut errors) if !errors.is_empty() => match take_ours(errors.remove(0)) {
            Ok(ours) => Ok(ours),
            Err(first) => {
                errors.insert(0, first);
                Err(D::Collection(errors))
            }
        },
        D::ArrowError(a, backtrace) => {
            take_ours_arrow(*a).map_err(|a| D::ArrowError(Box::new(a), backtrace))
        }
        D::ParquetError(p) => match *p {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<DataFusionError>() {
                    Ok(df) => take_ours(*df),
                    Err(inner) => match inner.downcast::<arrow::error::ArrowError>() {
                        Ok(arrow) => take_ours_arrow(*arrow).map_err(|a| {
                            D::ParquetError(Box::new(parquet::errors::ParquetError::External(
                                Box::new(a),
                            )))
                        }),
                        Err(inner) => Err(D::ParquetError(Box::new(
                            parquet::errors::ParquetError::External(inner),
                        ))),
                    },
                }
            }
            other => Err(D::ParquetError(Box::new(other))),
        },
        other => Err(other),
    }
}

fn take_ours_arrow(
    e: arrow::error::ArrowError,
) -> std::result::Result<Error, arrow::error::ArrowError> {
    use arrow::error::ArrowError as A;
    match e {
        A::ExternalError(inner) => match inner.downcast::<Error>() {
            Ok(ours) => Ok(*ours),
            Err(inner) => match inner.downcast::<DataFusionError>() {
                Ok(df) => take_ours(*df).map_err(|df| A::ExternalError(Box::new(df))),
                Err(inner) => Err(A::ExternalError(inner)),
            },
        },
        other => Err(other),
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        let e = match take_ours(e) {
            Ok(ours) => return ours,
            Err(e) => e,
        };
        let (kind, message) = classify(&e);
        let source = e;
        match kind {
            Kind::Plan => Error::Plan { message, source },
            Kind::NotFound(object) => Error::NotFound {
                object,
                message,
                source: Some(source),
            },
            Kind::AlreadyExists(object) => Error::AlreadyExists {
                object,
                message,
                source: Some(source),
            },
            Kind::NotSupported => Error::NotSupported {
                message,
                source: Some(source),
            },
            Kind::Execution => Error::Execution {
                message,
                source: Some(source),
            },
            Kind::ResourcesExhausted => Error::ResourcesExhausted {
                message,
                source: Some(source),
            },
            Kind::Internal => Error::EngineBug { message, source },
            // Object storage has its own variant (and hints), without the cause.
            Kind::Storage => Error::storage("object store", message),
            Kind::Unavailable(worker) => Error::Unavailable { worker, message },
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::from(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// DataFusion messages carry prefixes such as "Error during planning: "; keep the
/// readable part.
pub(super) fn strip_df_prefix(msg: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::{Column, SchemaError, TableReference};
    use tonic::Code;

    /// The variant, exit code and gRPC code a DataFusion error becomes.
    fn check(e: DataFusionError, exit: i32, code: Code) -> Error {
        let err = Error::from(e);
        assert_eq!(err.exit_code(), exit, "{err:?}");
        assert_eq!(crate::server::code(&err), code, "{err:?}");
        err
    }

    /// A data file a version lists that is gone (vacuumed) is named, with
    /// the reason and what to read instead.
    #[test]
    fn a_vacuumed_file_says_so() {
        let missing = "Failed to fetch metadata for file w/raw/t/part-1.parquet: Object Store \
                       error: Object at location /w/raw/t/part-1.parquet not found: No such \
                       file or directory (os error 2)";
        let e = DataFusionError::ParquetError(Box::new(parquet::errors::ParquetError::General(
            missing.into(),
        )));
        let err = check(e, 2, Code::NotFound);
        let text = err.to_string();
        assert!(
            text.starts_with("data file `/w/raw/t/part-1.parquet` no longer exists"),
            "{text}"
        );
        assert!(text.contains("sluice vacuum"), "{text}");
        let e = DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "/w/raw/t/part-2.parquet".into(),
            source: "gone".into(),
        }));
        let err = check(e, 2, Code::NotFound);
        assert!(
            err.to_string().contains("`/w/raw/t/part-2.parquet`"),
            "{err}"
        );
        // Other Parquet errors are unchanged.
        let e = DataFusionError::ParquetError(Box::new(parquet::errors::ParquetError::General(
            "bad magic".into(),
        )));
        assert_eq!(
            check(e, 1, Code::InvalidArgument).to_string(),
            "Parquet: Parquet error: bad magic"
        );
    }

    /// The DataFusion error a variant keeps.
    fn cause(err: &Error) -> &DataFusionError {
        std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<DataFusionError>())
            .unwrap_or_else(|| panic!("no DataFusion cause: {err:?}"))
    }

    #[test]
    fn planning_errors_keep_datafusion_as_their_cause() {
        let err = check(
            DataFusionError::Plan("Invalid function 'nope'".into()),
            2,
            Code::InvalidArgument,
        );
        assert!(matches!(err, Error::Plan { .. }), "{err:?}");
        assert_eq!(err.to_string(), "Invalid function 'nope'");
        assert!(matches!(cause(&err), DataFusionError::Plan(_)));

        let parse = sqlparser::parser::ParserError::ParserError("Expected: end, found: x".into());
        let err = check(
            DataFusionError::SQL(Box::new(parse), None),
            2,
            Code::InvalidArgument,
        );
        assert_eq!(err.to_string(), "syntax error: Expected: end, found: x");
        assert!(matches!(cause(&err), DataFusionError::SQL(..)));
    }

    #[test]
    fn missing_things_are_not_found() {
        for (e, object, text) in [
            (
                DataFusionError::Plan("table 'main.nope' not found".into()),
                Object::Table,
                "table 'main.nope' not found",
            ),
            (
                DataFusionError::Plan("table function 'nope' not found".into()),
                Object::Function,
                "table function 'nope' not found",
            ),
            (
                DataFusionError::Execution("Table 't' doesn't exist.".into()),
                Object::Table,
                "Table 't' doesn't exist.",
            ),
            (
                DataFusionError::Execution("Schema 's' doesn't exist.".into()),
                Object::Schema,
                "Schema 's' doesn't exist.",
            ),
            (
                DataFusionError::Execution("View 'v' doesn't exist.".into()),
                Object::View,
                "View 'v' doesn't exist.",
            ),
            (
                DataFusionError::Plan(
                    "version 7 of `main.t` does not exist: its versions are 0 to 2".into(),
                ),
                Object::Other,
                "version 7 of `main.t` does not exist: its versions are 0 to 2",
            ),
        ] {
            let err = check(e, 2, Code::NotFound);
            match &err {
                Error::NotFound { object: o, .. } => assert_eq!(*o, object, "{err}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(err.to_string(), text);
            cause(&err);
        }
        // A column, by DataFusion's own variant.
        let missing = SchemaError::FieldNotFound {
            field: Box::new(Column::from_name("x")),
            valid_fields: vec![Column::from_name("a")],
        };
        let err = check(
            DataFusionError::SchemaError(Box::new(missing), Box::new(None)),
            2,
            Code::NotFound,
        );
        assert!(
            matches!(
                err,
                Error::NotFound {
                    object: Object::Column,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("No field named x"), "{err}");
    }

    #[test]
    fn existing_things_already_exist() {
        let err = check(
            DataFusionError::Execution("Table 'main.t' already exists".into()),
            2,
            Code::AlreadyExists,
        );
        assert!(
            matches!(
                err,
                Error::AlreadyExists {
                    object: Object::Table,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "Table 'main.t' already exists");
        let duplicate = SchemaError::DuplicateQualifiedField {
            qualifier: Box::new(TableReference::bare("t")),
            name: "a".into(),
        };
        let err = check(
            DataFusionError::SchemaError(Box::new(duplicate), Box::new(None)),
            2,
            Code::AlreadyExists,
        );
        assert!(
            matches!(
                err,
                Error::AlreadyExists {
                    object: Object::Column,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().starts_with("Schema error"), "{err}");
        cause(&err);
    }

    #[test]
    fn unsupported_sql_is_not_supported() {
        let err = check(
            DataFusionError::NotImplemented("Unsupported SQL statement: LOCK".into()),
            2,
            Code::Unimplemented,
        );
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
        assert_eq!(err.to_string(), "Unsupported SQL statement: LOCK");
        assert!(matches!(cause(&err), DataFusionError::NotImplemented(_)));
        let err = check(
            DataFusionError::Plan("`CURRENT` is not supported; use VERSION AS OF <n>".into()),
            2,
            Code::Unimplemented,
        );
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
    }

    #[test]
    fn failures_of_the_data_are_execution_errors() {
        let err = check(
            DataFusionError::Execution("Cast error: 'x' is not an Int32".into()),
            1,
            Code::InvalidArgument,
        );
        assert!(matches!(err, Error::Execution { .. }), "{err:?}");
        let err = check(
            DataFusionError::ArrowError(Box::new(arrow::error::ArrowError::DivideByZero), None),
            1,
            Code::InvalidArgument,
        );
        assert_eq!(err.to_string(), "division by zero");
        assert!(matches!(cause(&err), DataFusionError::ArrowError(..)));
        let overflow = arrow::error::ArrowError::ComputeError(
            "Error evaluating filter predicate: ArithmeticOverflow(\"Overflow happened on: 1 + 2\")"
                .into(),
        );
        let err = check(
            DataFusionError::ArrowError(Box::new(overflow), None),
            1,
            Code::InvalidArgument,
        );
        assert_eq!(
            err.to_string(),
            "Arithmetic overflow: Overflow happened on: 1 + 2"
        );
        // Arrow's own errors take the same road.
        let err = Error::from(arrow::error::ArrowError::DivideByZero);
        assert!(matches!(err, Error::Execution { .. }), "{err:?}");
        cause(&err);
    }

    #[test]
    fn limits_and_bugs() {
        let err = check(
            DataFusionError::ResourcesExhausted("Failed to allocate 1 GB".into()),
            1,
            Code::ResourceExhausted,
        );
        assert!(err
            .to_string()
            .starts_with("Failed to allocate 1 GB; the query needs more memory"));
        cause(&err);
        let err = check(
            DataFusionError::Internal("no plan".into()),
            70,
            Code::Internal,
        );
        assert!(matches!(err, Error::EngineBug { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "internal error (a bug in sluice, please report it): no plan"
        );
        assert!(matches!(cause(&err), DataFusionError::Internal(_)));
    }

    #[test]
    fn our_errors_come_back_whole_through_datafusion() {
        let ours = Error::UnknownTable {
            table: "main.t".into(),
            hint: String::new(),
        };
        let err = check(DataFusionError::from(ours), 2, Code::NotFound);
        assert!(matches!(err, Error::UnknownTable { .. }), "{err:?}");
        // Inside Arrow, inside a context, shared.
        let bad = Error::BadInputFile {
            reader: "read_csv('x.csv')".into(),
            file: "/x.csv".into(),
            message: "line 2: bad".into(),
        };
        let wrapped = DataFusionError::Shared(std::sync::Arc::new(DataFusionError::ArrowError(
            Box::new(arrow::error::ArrowError::ExternalError(Box::new(bad))),
            None,
        )))
        .context("while planning");
        let err = check(wrapped, 1, Code::InvalidArgument);
        assert!(matches!(err, Error::BadInputFile { .. }), "{err:?}");
        assert_eq!(err.to_string(), "read_csv('x.csv'): line 2: bad");
        // A context DataFusion adds stays in front of a planning message.
        let err = Error::from(DataFusionError::from(Error::Sql("bad".into())).context("rule"));
        assert_eq!(err.to_string(), "rule: bad");
        let err = Error::from(DataFusionError::Plan("bad plan".into()).context("rule"));
        assert_eq!(err.to_string(), "rule: bad plan");
        assert!(matches!(cause(&err), DataFusionError::Context(..)));
    }
}
