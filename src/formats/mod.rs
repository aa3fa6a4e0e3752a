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

/// What of `input` to hand to a `csv_core` reader's `read_record`.
///
/// `csv_core` drops a UTF-8 byte-order mark at the start of the first input a
/// reader is given (after `new` or `reset`). The framer drops the file's own
/// mark; anywhere else, as at the start of a piece whose first record begins
/// with U+FEFF, those bytes are data, and dropping them would make a file read
/// differently depending on where it is cut. So the first read of a reader
/// gets one byte when its input starts with the mark (csv_core strips only a
/// whole mark).
pub(crate) fn csv_core_input(input: &[u8], first_read: bool) -> &[u8] {
    match input {
        [0xEF, 0xBB, 0xBF, ..] if first_read => &input[..1],
        _ => input,
    }
}
