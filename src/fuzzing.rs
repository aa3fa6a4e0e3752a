//! Entry points for the fuzz targets in `tests/fuzz` (not a stable API).
//!
//! The targets drive the code users reach (the loader's readers, the Flight
//! SQL service's command decoding, the config parsers); what is private to its
//! module is wrapped here rather than made public piecemeal. Nothing here is
//! used by sluice itself.

use crate::error::{Error, Result};
use crate::load::files::SourceFile;
use crate::load::readers::{self, TypeHints};
use crate::project::{ColumnDecl, CsvOptions, NdjsonOptions, SourceFormat};
use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;

pub use crate::load::csv::{
    csv_format, tokenize_fast_piece, tokenize_piece, CsvTokenizer, RawBatch,
};
pub use crate::project::source::parse_catalog;
pub use arrow::array::Array;
pub use bytes::Bytes;

/// One file as the loader read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The planned columns, as `name type`.
    pub columns: Vec<String>,
    /// Every loaded row, in file order, its values as text (`NULL` for null).
    pub rows: Vec<Vec<String>>,
    /// Rejected records as (line, raw text, reason), sorted by line.
    pub rejected: Vec<(u64, String, String)>,
    /// Input bytes the reader reported (the file's size when all is read).
    pub bytes: u64,
}

/// Plans and reads `data` as one file of `format`, as `sluice load` does,
/// with `declared` columns; CSV files are cut into pieces of about
/// `csv_piece_bytes` and the bytes arrive in chunks of `stream_chunk`.
/// `Ok(None)`: the file holds no record (the load skips it); `Err`: the load
/// refuses the file. Call it inside a multi-thread tokio runtime.
pub async fn read_file(
    format: SourceFormat,
    csv: &CsvOptions,
    declared: &[ColumnDecl],
    data: &[u8],
    csv_piece_bytes: usize,
    stream_chunk: usize,
) -> Result<Option<ReadOutcome>> {
    let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::chunked::ChunkedStore::new(
        memory,
        stream_chunk.max(1),
    ));
    let path = object_store::path::Path::from("input");
    store
        .put(&path, PutPayload::from(data.to_vec()))
        .await
        .map_err(|e| Error::storage("input", e))?;
    let file = SourceFile {
        display: "input".into(),
        store,
        path,
        size: data.len() as u64,
        modified: String::new(),
        etag: None,
    };
    let hints = TypeHints { declared };
    let Some(plan) = readers::plan_file("fuzz", format, csv, &file, &hints).await? else {
        return Ok(None);
    };
    let columns = plan
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.data_type))
        .collect();
    let (mut rx, task) = readers::spawn_reader_with_pieces(
        "fuzz".into(),
        format,
        // NDJSON lines have the same cap as CSV records here.
        (
            csv.clone(),
            NdjsonOptions {
                max_line_bytes: csv.max_record_bytes,
            },
        ),
        file,
        plan,
        readers::ReadSizes {
            csv_piece_bytes,
            read_bytes: stream_chunk.max(1) as u64,
        },
    );
    let mut out = ReadOutcome {
        columns,
        rows: Vec::new(),
        rejected: Vec::new(),
        bytes: 0,
    };
    let mut failure = None;
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(chunk) => {
                if let Some(batch) = &chunk.batch {
                    out.rows.extend(rows_as_text(batch)?);
                }
                out.rejected.extend(
                    chunk
                        .rejected
                        .into_iter()
                        .map(|r| (r.line, r.raw, r.reason)),
                );
                out.bytes += chunk.bytes;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(rx);
    task.await
        .map_err(|e| Error::Internal(format!("reader task: {e}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    out.rejected.sort();
    Ok(Some(out))
}

fn rows_as_text(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect())
        .collect())
}

/// Decodes a Flight SQL command as the server does before dispatching it:
/// `Ok` with the request's log description, or the gRPC status code and
/// message a client gets.
pub fn flight_command(bytes: &[u8]) -> std::result::Result<(String, Command), (Code, String)> {
    match crate::server::flight::command(bytes) {
        Ok(c) => Ok((
            crate::server::flight::describe("GetFlightInfo", Some(&c)),
            c,
        )),
        Err(s) => Err(status(s)),
    }
}

pub use arrow_flight::sql::Command;

/// Decodes the body of a `SetSessionOptions` action as the server does.
pub fn flight_session_options(bytes: &[u8]) -> Result<Vec<String>> {
    use prost::Message;
    let req = crate::server::session::SetSessionOptionsRequest::decode(bytes)
        .map_err(|e| Error::invalid(format!("not a SetSessionOptionsRequest: {e}")))?;
    let mut names: Vec<String> = req.session_options.into_keys().collect();
    names.sort();
    Ok(names)
}

/// The Flight SQL service as `sluice serve` mounts it (open access), called
/// in-process.
pub struct FlightService {
    flight: crate::server::flight::Flight,
}

/// What a client gets: the messages of the response, or the status code and
/// message.
pub type FlightReply = std::result::Result<usize, (tonic::Code, String)>;

fn status(s: tonic::Status) -> (tonic::Code, String) {
    (s.code(), s.message().to_string())
}

impl FlightService {
    pub fn new(engine: crate::sql::Engine) -> Result<Self> {
        let auth = Arc::new(crate::server::Auth::new(
            Vec::new(),
            std::time::Duration::from_secs(3600),
        ));
        let server = crate::server::FlightSqlServer::new(engine, auth, Default::default())?;
        Ok(FlightService {
            flight: crate::server::flight::Flight::new(
                Arc::new(server),
                Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            ),
        })
    }

    /// GetFlightInfo for the command `cmd`, then DoGet of every ticket it
    /// returns, each stream read to its end; the messages received.
    pub async fn get(&self, cmd: &[u8]) -> Vec<FlightReply> {
        use arrow_flight::flight_service_server::FlightService as _;
        let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.to_vec());
        let info = match self
            .flight
            .get_flight_info(tonic::Request::new(descriptor))
            .await
        {
            Ok(info) => info.into_inner(),
            Err(s) => return vec![Err(status(s))],
        };
        let mut replies = vec![Ok(0)];
        for ticket in info.endpoint.into_iter().filter_map(|e| e.ticket) {
            replies.push(self.do_get(ticket).await);
        }
        replies
    }

    /// DoGet of `ticket`, read to its end.
    pub async fn do_get(&self, ticket: arrow_flight::Ticket) -> FlightReply {
        use arrow_flight::flight_service_server::FlightService as _;
        use futures::StreamExt;
        let mut stream = self
            .flight
            .do_get(tonic::Request::new(ticket))
            .await
            .map_err(status)?
            .into_inner();
        let mut n = 0;
        while let Some(message) = stream.next().await {
            message.map_err(status)?;
            n += 1;
        }
        Ok(n)
    }

    /// DoGet with `ticket` as the ticket's bytes.
    pub async fn do_get_bytes(&self, ticket: &[u8]) -> FlightReply {
        self.do_get(arrow_flight::Ticket::new(ticket.to_vec()))
            .await
    }

    /// GetSchema for the command `cmd`.
    pub async fn get_schema(&self, cmd: &[u8]) -> FlightReply {
        use arrow_flight::flight_service_server::FlightService as _;
        let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.to_vec());
        self.flight
            .get_schema(tonic::Request::new(descriptor))
            .await
            .map(|_| 1)
            .map_err(status)
    }

    /// DoAction `kind` with `body`, its results read to their end.
    pub async fn do_action(&self, kind: &str, body: &[u8]) -> FlightReply {
        use arrow_flight::flight_service_server::FlightService as _;
        use futures::StreamExt;
        let action = arrow_flight::Action::new(kind, body.to_vec());
        let mut stream = self
            .flight
            .do_action(tonic::Request::new(action))
            .await
            .map_err(status)?
            .into_inner();
        let mut n = 0;
        while let Some(message) = stream.next().await {
            message.map_err(status)?;
            n += 1;
        }
        Ok(n)
    }
}

pub use prost;
pub use tonic::Code;
