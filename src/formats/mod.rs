//! Byte-level record framing for CSV and NDJSON: where records start and end,
//! on which line, and which cannot be read. No I/O: callers feed bytes.
//!
//! It sits below every other layer because two of them read the same files and
//! must agree on what a record is: `load` quarantines the records refused here,
//! `sql`'s `read_csv` / `read_json` refuse the file naming the first one.

pub mod csv_check;
pub mod framing;
pub mod lines;
pub mod ndjson;

/// How a CSV file is framed (the loader builds it from `[source.csv]`, the SQL
/// file functions from their arguments).
#[derive(Debug, Clone)]
pub struct CsvFormat {
    pub delimiter: u8,
    pub quote: u8,
    /// The first record is a header (it sets the number of fields all the same).
    pub header: bool,
    /// A record longer than this (bytes, line break excluded) is refused, and a
    /// quoted field still open after this many bytes is a quote never closed.
    pub max_record_bytes: usize,
    /// How the user raises `max_record_bytes`, for messages
    /// (e.g. "raise [source.csv] max_record_bytes").
    pub raise_max_record_bytes: &'static str,
}
