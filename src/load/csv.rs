//! A streaming CSV tokenizer that keeps every record's raw text and line number,
//! so that a record that does not fit can be quarantined instead of failing the load.
//!
//! [`crate::formats::framing::PieceCutter`] frames the file first: it cuts it into pieces at record
//! boundaries (tokenized in parallel) and refuses the records `csv_core` would
//! read wrongly rather than reject (a quote never closed, text after a closing
//! quote, a record over `max_record_bytes`), so every record of the input is
//! loaded or rejected and a stray quote never merges the rest of the file into
//! one value. It produces string columns in batches; typing happens in
//! [`super::convert`].

use super::quarantine::Rejected;
use crate::formats::framing::BadRecord;
use crate::formats::lines::{line_breaks, trim_terminator};
use crate::formats::{csv_core_input, CsvFormat};
use crate::project::CsvOptions;
use arrow::array::{Array, StringArray, StringBuilder};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// One batch of tokenized records: all fields as strings.
pub struct RawBatch {
    /// One column per header field (null where a null marker was found).
    pub columns: Vec<StringArray>,
    /// Physical line where each kept record starts.
    pub lines: Vec<u64>,
    /// Bytes holding the kept records' raw text: record i is `raw[spans[i]]`.
    raw: bytes::Bytes,
    spans: Vec<std::ops::Range<usize>>,
    /// Records rejected while tokenizing (wrong field count, invalid UTF-8).
    pub rejected: Vec<Rejected>,
}

impl RawBatch {
    /// The raw text of kept record `i`, without its line terminator.
    pub fn raw_text(&self, i: usize) -> String {
        let s = &self.raw[self.spans[i].clone()];
        String::from_utf8_lossy(trim_terminator(s)).into_owned()
    }

    #[cfg(test)]
    pub fn num_rows(&self) -> usize {
        self.lines.len()
    }
}

/// The framer's view of a source's CSV options.
pub fn csv_format(opts: &CsvOptions) -> CsvFormat {
    CsvFormat {
        delimiter: opts.delimiter_byte().unwrap_or(b','),
        quote: opts.quote_byte().unwrap_or(b'"'),
        header: opts.header,
        max_record_bytes: opts.max_record_bytes,
        raise_max_record_bytes: "raise [source.csv] max_record_bytes",
    }
}

/// Incremental tokenizer: feed bytes, get batches.
pub struct CsvTokenizer {
    reader: Reader,
    /// `reader` has been given input (see [`csv_core_input`]).
    started: bool,
    null_values: Vec<Vec<u8>>,
    /// Header names (known after the first record when `header = true`).
    header: Option<Vec<String>>,
    expect_header: bool,
    batch_rows: usize,
    // Current record under construction.
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// Line number at which the next record's bytes start.
    next_line: u64,
    /// The last record's bytes ended with a `\r` not yet counted as a line break.
    pending_cr: bool,
    // Batch under construction.
    builders: Vec<StringBuilder>,
    lines: Vec<u64>,
    raw: Vec<u8>,
    offsets: Vec<usize>,
    rejected: Vec<Rejected>,
    /// Records seen (excluding the header).
    pub records: u64,
    /// Why the header could not be read (the framer refused it).
    header_error: Option<String>,
}

/// Why a record holding a NUL byte is rejected.
const NUL_REASON: &str =
    "the record contains a NUL byte (0x00); is the file UTF-16 or binary? convert it to UTF-8 text";

impl CsvTokenizer {
    pub fn new(opts: &CsvOptions, batch_rows: usize, known_columns: Option<usize>) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(opts.delimiter_byte().unwrap_or(b','))
            .quote(opts.quote_byte().unwrap_or(b'"'))
            .build();
        let mut t = CsvTokenizer {
            reader,
            started: false,
            null_values: opts
                .null_values
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            header: None,
            expect_header: opts.header,
            batch_rows,
            out: vec![0; 64 * 1024],
            out_len: 0,
            ends: vec![0; 256],
            ends_len: 0,
            next_line: 1,
            pending_cr: false,
            builders: Vec::new(),
            lines: Vec::new(),
            raw: Vec::new(),
            offsets: vec![0],
            rejected: Vec::new(),
            records: 0,
            header_error: None,
        };
        if !opts.header {
            if let Some(n) = known_columns {
                t.set_header((1..=n).map(|i| format!("column_{i}")).collect());
            }
        }
        t
    }

    /// A tokenizer for a piece of a file that starts at a record boundary after
    /// the header: `columns` fields per record, the first record on `line`.
    pub fn for_piece(opts: &CsvOptions, batch_rows: usize, columns: usize, line: u64) -> Self {
        let mut t = CsvTokenizer::new(opts, batch_rows, None);
        t.expect_header = false;
        t.set_header((1..=columns).map(|i| format!("column_{i}")).collect());
        t.next_line = line;
        t
    }

    /// Header names, once known.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    fn set_header(&mut self, names: Vec<String>) {
        self.builders = names.iter().map(|_| StringBuilder::new()).collect();
        self.header = Some(names);
    }

    /// Feeds `input` (any chunk of the file; `&[]` at end of file). Completed
    /// batches are pushed to `done`.
    pub fn feed(&mut self, mut input: &[u8], done: &mut Vec<RawBatch>) {
        let eof = input.is_empty();
        loop {
            let (res, nin, nout, nend) = self.reader.read_record(
                csv_core_input(input, !self.started),
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            self.started = true;
            self.raw.extend_from_slice(&input[..nin]);
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if !eof && input.is_empty() {
                        return;
                    }
                }
                ReadRecordResult::OutputFull => {
                    let n = self.out.len();
                    self.out.resize(n * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len();
                    self.ends.resize(n * 2, 0);
                }
                ReadRecordResult::Record => {
                    self.finish_record();
                    if self.lines.len() >= self.batch_rows {
                        done.push(self.take_batch());
                    }
                }
                ReadRecordResult::End => {
                    if self.lines.len() + self.rejected.len() > 0 {
                        done.push(self.take_batch());
                    }
                    return;
                }
            }
        }
    }

    /// The line where the record in `self.raw[rec_start..]` starts (after blank
    /// lines); moves the line count past it.
    fn record_line(&mut self, rec_start: usize) -> u64 {
        let raw = &self.raw[rec_start..];
        // A `\r` that ended the previous record's bytes is a line break of its
        // own unless this record's bytes start with the `\n` of a CRLF.
        if std::mem::take(&mut self.pending_cr) && raw.first() != Some(&b'\n') {
            self.next_line += 1;
        }
        let lead = raw
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        let (before, _) = line_breaks(&raw[..lead], raw.get(lead).copied());
        let line = self.next_line + before;
        let (all, pending) = line_breaks(raw, None);
        self.next_line += all;
        self.pending_cr = pending;
        line
    }

    /// Records a record the framer refused (`bytes` are its bytes in the input,
    /// fed in order with the rest).
    pub fn refuse(&mut self, bytes: &[u8], bad: &BadRecord) {
        let rec_start = self.offsets.last().copied().unwrap_or(0);
        self.raw.extend_from_slice(bytes);
        let line = self.record_line(rec_start);
        self.raw.truncate(rec_start);
        if self.header.is_none() && self.expect_header {
            if self.header_error.is_none() {
                self.header_error = Some(format!("the header (line {line}): {}", bad.reason));
            }
            // Read on without taking a data line for the header.
            self.expect_header = false;
            return;
        }
        self.records += 1;
        self.rejected.push(Rejected {
            line,
            raw: bad.raw.clone(),
            reason: bad.reason.clone(),
        });
    }

    /// Why the header could not be read, if it could not.
    pub fn header_error(&self) -> Option<&str> {
        self.header_error.as_deref()
    }

    fn finish_record(&mut self) {
        // The record's raw bytes are the tail of `self.raw` after the last kept record.
        let rec_start = self.offsets.last().copied().unwrap_or(0);
        let nfields = self.ends_len;
        if self.header.is_none() && !self.expect_header {
            self.set_header((1..=nfields).map(|i| format!("column_{i}")).collect());
        }
        let line = self.record_line(rec_start);
        let raw = &self.raw[rec_start..];
        let out_len = self.out_len;
        self.out_len = 0;
        self.ends_len = 0;
        let fields_bytes = &self.out[..out_len];
        let ends = &self.ends[..nfields];

        if self.header.is_none() && self.expect_header {
            let mut names = Vec::with_capacity(nfields);
            let mut start = 0;
            for (i, &end) in ends.iter().enumerate() {
                let name = String::from_utf8_lossy(&fields_bytes[start..end])
                    .trim()
                    .to_string();
                names.push(if name.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    name
                });
                start = end;
            }
            self.set_header(names);
            self.raw.truncate(rec_start);
            return;
        }
        self.records += 1;
        let ncols = self.builders.len();
        let problem = if nfields != ncols {
            Some(format!("expected {ncols} fields, found {nfields}"))
        } else if memchr::memchr(0, fields_bytes).is_some() {
            Some(NUL_REASON.to_string())
        } else {
            match std::str::from_utf8(fields_bytes) {
                Err(_) => Some("the record is not valid UTF-8".to_string()),
                Ok(text) => {
                    let mut start = 0;
                    let mut ok = true;
                    for &end in ends {
                        ok &= text.is_char_boundary(start) && text.is_char_boundary(end);
                        start = end;
                    }
                    if ok {
                        let mut start = 0;
                        for (b, &end) in self.builders.iter_mut().zip(ends) {
                            let v = &text[start..end];
                            if self
                                .null_values
                                .iter()
                                .any(|n| n.as_slice() == v.as_bytes())
                            {
                                b.append_null();
                            } else {
                                b.append_value(v);
                            }
                            start = end;
                        }
                        None
                    } else {
                        Some("the record is not valid UTF-8".to_string())
                    }
                }
            }
        };
        match problem {
            Some(reason) => {
                self.rejected.push(Rejected {
                    line,
                    raw: String::from_utf8_lossy(trim_terminator(raw)).into_owned(),
                    reason,
                });
                self.raw.truncate(rec_start);
            }
            None => {
                self.lines.push(line);
                self.offsets.push(self.raw.len());
            }
        }
    }

    fn take_batch(&mut self) -> RawBatch {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let columns: Vec<StringArray> = self.builders.iter_mut().map(|b| b.finish()).collect();
        // The next batch is likely as large: make room for it up front rather
        // than by doubling (each doubling copies, and touches fresh pages).
        self.builders = columns
            .iter()
            .map(|c| StringBuilder::with_capacity(c.len(), c.value_data().len()))
            .collect();
        let raw_len = self.raw.len();
        RawBatch {
            columns,
            lines: std::mem::take(&mut self.lines),
            raw: std::mem::replace(&mut self.raw, Vec::with_capacity(raw_len)).into(),
            spans: offsets.windows(2).map(|w| w[0]..w[1]).collect(),
            rejected: std::mem::take(&mut self.rejected),
        }
    }
}

/// Tokenizes a piece of a file (whole records after the header, the first on
/// line `line`) that the framer found no bad record in, without `csv_core` and
/// without copying raw text: fields are cut at the delimiters, line feeds and
/// quotes found by one `memchr3` pass, quoted fields are sliced (or unescaped
/// when they hold a doubled quote), and each record's raw text is a span of the
/// piece. Gives exactly what [`CsvTokenizer`] gives for such a piece (blank
/// lines skipped, wrong field counts rejected), several times faster.
///
/// `None` (read it with the tokenizer) when the piece holds what this path
/// does not handle: a NUL byte, invalid UTF-8, a carriage return not followed
/// by a line feed, text after a closing quote or a quote never closed (the
/// framer refuses those records, so such a piece has bad records anyway).
pub fn tokenize_fast_piece(
    opts: &CsvOptions,
    piece: &bytes::Bytes,
    columns: usize,
    line: u64,
    batch_rows: usize,
) -> Option<Vec<RawBatch>> {
    let delimiter = opts.delimiter_byte().unwrap_or(b',');
    let quote = opts.quote_byte().unwrap_or(b'"');
    let text: &[u8] = piece;
    if matches!(delimiter, b'\n' | b'\r' | 0)
        || matches!(quote, b'\n' | b'\r' | 0)
        || delimiter == quote
        || memchr::memchr(0, text).is_some()
    {
        return None;
    }
    // Every CR must start a CRLF: then a CR outside quotes is only ever the
    // end of a record, and line breaks are the line feeds.
    if memchr::memchr_iter(b'\r', text).any(|i| text.get(i + 1) != Some(&b'\n')) {
        return None;
    }
    let text_str = std::str::from_utf8(text).ok()?;
    let nulls: Vec<&[u8]> = opts.null_values.iter().map(|n| n.as_bytes()).collect();
    // Values take at most the bytes left in the piece, split over the columns.
    let new_builders = |left: usize| {
        (0..columns)
            .map(|_| StringBuilder::with_capacity(batch_rows, left / columns.max(1)))
            .collect::<Vec<_>>()
    };
    let mut builders = new_builders(text.len());
    let mut lines = Vec::new();
    let mut spans = Vec::new();
    let mut rejected = Vec::new();
    let mut done = Vec::new();
    // Fields of the record being read: content range, and whether it holds
    // doubled quotes to unescape.
    let mut fields: Vec<(usize, usize, bool)> = Vec::with_capacity(columns + 1);
    let mut unescaped = String::new();
    let mut hits = memchr::memchr3_iter(delimiter, b'\n', quote, text);
    let len = text.len();
    let mut pos = 0;
    let mut line = line;
    while pos < len {
        fields.clear();
        let rec_start = pos;
        let mut field = pos;
        // Line feeds inside quoted fields.
        let mut inner_breaks = 0;
        // Where the record's text ends (terminator excluded), and the next starts.
        let (rec_end, next) = loop {
            if text[field] == quote {
                let content = field + 1;
                let mut from = content;
                let mut doubled = false;
                let close = loop {
                    match hits.next() {
                        Some(p) if p < from => {}
                        Some(p) if text[p] == quote => {
                            if text.get(p + 1) == Some(&quote) {
                                doubled = true;
                                from = p + 2;
                            } else {
                                break p;
                            }
                        }
                        Some(p) if text[p] == b'\n' => inner_breaks += 1,
                        Some(_) => {}
                        None => return None,
                    }
                };
                fields.push((content, close, doubled));
                let after = close + 1;
                match text.get(after) {
                    None => break (after, after),
                    Some(&c) if c == delimiter => field = after + 1,
                    Some(b'\n') => break (after, after + 1),
                    Some(b'\r') => break (after, after + 2),
                    Some(_) => return None,
                }
                if field == len {
                    // A delimiter ends the piece: one more empty field.
                    fields.push((field, field, false));
                    break (field, field);
                }
            } else {
                // Up to the next delimiter or line feed; a quote inside an
                // unquoted field is data.
                let end = loop {
                    match hits.next() {
                        Some(p) if p < field || text[p] == quote => {}
                        Some(p) => break p,
                        None => break len,
                    }
                };
                if end < len && text[end] == delimiter {
                    fields.push((field, end, false));
                    field = end + 1;
                    if field == len {
                        fields.push((field, field, false));
                        break (field, field);
                    }
                    continue;
                }
                let value_end = if end > field && text[end - 1] == b'\r' {
                    end - 1
                } else {
                    end
                };
                fields.push((field, value_end, false));
                break (value_end, (end + 1).min(len));
            }
        };
        pos = next;
        let record_line = line;
        line += inner_breaks + u64::from(next > rec_end && text[next - 1] == b'\n');
        if rec_end == rec_start {
            // A blank line.
            continue;
        }
        if fields.len() != columns {
            rejected.push(Rejected {
                line: record_line,
                raw: text_str[rec_start..rec_end].to_string(),
                reason: format!("expected {columns} fields, found {}", fields.len()),
            });
            continue;
        }
        for (b, &(start, end, doubled)) in builders.iter_mut().zip(&fields) {
            // Valid UTF-8 cut at ASCII bytes: each field is too.
            let mut v = &text_str[start..end];
            if doubled {
                unescaped.clear();
                let mut rest = v;
                while let Some(q) = memchr::memchr(quote, rest.as_bytes()) {
                    // Keep the first quote of the pair, skip the second.
                    unescaped.push_str(&rest[..=q]);
                    rest = &rest[q + 2..];
                }
                unescaped.push_str(rest);
                v = &unescaped;
            }
            if nulls.contains(&v.as_bytes()) {
                b.append_null();
            } else {
                b.append_value(v);
            }
        }
        lines.push(record_line);
        spans.push(rec_start..rec_end);
        if lines.len() >= batch_rows {
            done.push(RawBatch {
                columns: std::mem::replace(&mut builders, new_builders(len - pos))
                    .iter_mut()
                    .map(|b| b.finish())
                    .collect(),
                lines: std::mem::take(&mut lines),
                raw: piece.clone(),
                spans: std::mem::take(&mut spans),
                rejected: std::mem::take(&mut rejected),
            });
        }
    }
    if !lines.is_empty() || !rejected.is_empty() {
        done.push(RawBatch {
            columns: builders.iter_mut().map(|b| b.finish()).collect(),
            lines,
            raw: piece.clone(),
            spans,
            rejected,
        });
    }
    Some(done)
}

/// Tokenizes a piece's `bytes` with `t`: its good records through `csv_core`, the
/// `bad` ones the framer refused straight to the rejected list. Ends the
/// tokenizer's input.
pub fn tokenize_piece(
    t: &mut CsvTokenizer,
    bytes: &[u8],
    bad: &[BadRecord],
    done: &mut Vec<RawBatch>,
) {
    let mut pos = 0;
    for b in bad {
        if b.range.start > pos {
            t.feed(&bytes[pos..b.range.start], done);
        }
        t.refuse(&bytes[b.range.clone()], b);
        pos = b.range.end;
    }
    if pos < bytes.len() {
        t.feed(&bytes[pos..], done);
    }
    t.feed(&[], done);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::framing::{frame_all, BadRecord, PieceCutter};
    use arrow::array::Array;

    fn tokenize(text: &str, chunk: usize) -> (Vec<String>, Vec<RawBatch>) {
        let mut t = CsvTokenizer::new(&CsvOptions::default(), 2, None);
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            t.feed(c, &mut out);
        }
        t.feed(&[], &mut out);
        (t.header().unwrap().to_vec(), out)
    }

    #[test]
    fn quarantines_bad_field_counts_with_lines() {
        for chunk in [1, 3, 1000] {
            let (h, batches) = tokenize("a,b\n1,x\n2\n\"3\n3\",y\n4,z,extra\n5,", chunk);
            assert_eq!(h, vec!["a", "b"]);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let rej: Vec<&Rejected> = batches.iter().flat_map(|b| &b.rejected).collect();
            assert_eq!(rows, 3, "chunk {chunk}");
            assert_eq!(rej.len(), 2);
            assert_eq!(rej[0].line, 3);
            assert_eq!(rej[0].raw, "2");
            assert!(rej[0].reason.contains("expected 2 fields, found 1"));
            assert_eq!(rej[1].line, 6);
            let lines: Vec<u64> = batches.iter().flat_map(|b| b.lines.clone()).collect();
            assert_eq!(lines, vec![2, 4, 7]);
            let last = batches.last().unwrap();
            assert!(last.columns[1].is_null(last.num_rows() - 1));
        }
    }

    /// All records of `text` read in one pass, as (line, fields or reason).
    fn records(batches: &[RawBatch]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for b in batches {
            for i in 0..b.num_rows() {
                let fields: Vec<String> = b
                    .columns
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "<null>".to_string()
                        } else {
                            c.value(i).to_string()
                        }
                    })
                    .collect();
                out.push((b.lines[i], format!("{fields:?} {}", b.raw_text(i))));
            }
            for r in &b.rejected {
                out.push((r.line, format!("rejected {} {}", r.raw, r.reason)));
            }
        }
        out.sort();
        out
    }

    /// Reads `text` in one pass (framer, then tokenizer) with `max_record_bytes`.
    fn one_pass(text: &[u8], cap: usize) -> (Vec<(u64, String)>, Option<String>) {
        let opts = CsvOptions {
            max_record_bytes: cap,
            ..CsvOptions::default()
        };
        let piece = frame_all(&csv_format(&opts), text);
        let mut t = CsvTokenizer::new(&opts, 3, Some(2));
        let mut out = Vec::new();
        tokenize_piece(&mut t, &piece.bytes, &piece.bad, &mut out);
        (records(&out), t.header_error().map(str::to_string))
    }

    #[test]
    fn a_refused_record_is_its_first_line_and_reading_resumes_after_it() {
        // A quote never closed: line 3 is refused, lines 4 and 5 are records.
        let (recs, _) = one_pass(b"a,b\n1,x\n2,\"open\n3,y\n4,z\n", 1 << 20);
        assert_eq!(recs.len(), 4, "{recs:#?}");
        assert_eq!(recs[1].0, 3);
        assert!(recs[1]
            .1
            .starts_with("rejected 2,\"open a quoted field is never closed"));
        assert_eq!(recs[3], (5, "[\"4\", \"z\"] 4,z".to_string()));
        // Closed by a later record's quote and followed by text: refused too.
        let (recs, _) = one_pass(b"a,b\n1,\"open\n2,y\n3,\"x\"\n", 1 << 20);
        assert_eq!(recs.len(), 3, "{recs:#?}");
        assert!(recs[0].1.contains("unexpected `x` after the closing quote"));
        assert!(
            recs[0].1.contains("closes 2 line(s) below"),
            "{}",
            recs[0].1
        );
        assert_eq!(recs[2], (4, "[\"3\", \"x\"] 3,\"x\"".to_string()));
        // Legal quoted line breaks (LF, CRLF, CR) and doubled quotes.
        let (recs, _) = one_pass(
            b"a,b\r\n1,\"x\ny\"\r\n2,\"p\r\nq\rr\"\n3,\"say \"\"hi\"\"\"",
            1 << 20,
        );
        assert_eq!(
            recs.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![2, 4, 7],
            "{recs:#?}"
        );
        assert!(
            recs[2].1.starts_with("[\"3\", \"say \\\"hi\\\"\"]"),
            "{recs:#?}"
        );
        // Over the cap: an unquoted line is cut to the cap in raw; a quote still
        // open at the cap is refused and the next lines read.
        let long = format!("a,b\n1,{}\n2,\"open\n3,y\n4,z\n", "x".repeat(50));
        let (recs, _) = one_pass(long.as_bytes(), 10);
        assert_eq!(recs.len(), 4, "{recs:#?}");
        assert_eq!(recs[0].0, 2);
        assert!(recs[0].1.starts_with(
            "rejected 1,xxxxxxxx record is longer than max_record_bytes (10 bytes); raw"
        ));
        assert!(recs[1].1.starts_with(
            "rejected 2,\"open record is longer than max_record_bytes (10 bytes): a quoted field"
        ));
        assert_eq!(recs[2].0, 4);
        // A bad header is an error, not a record.
        let (recs, err) = one_pass(b"a,\"b\n1,2\n", 1 << 20);
        assert!(err
            .is_some_and(|e| e.starts_with("the header (line 1): a quoted field is never closed")));
        assert_eq!(recs.len(), 1);
        // NUL bytes and a byte-order mark.
        let (recs, err) = one_pass(b"\xEF\xBB\xBFa,b\n1,x\x002\n3,y", 1 << 20);
        assert_eq!(err, None);
        assert!(recs[0].1.contains("NUL byte"), "{recs:#?}");
        assert_eq!(recs[1], (3, "[\"3\", \"y\"] 3,y".to_string()));
    }

    #[test]
    fn the_header_loses_its_byte_order_mark() {
        let opts = CsvOptions::default();
        for chunk in [1, 2, 3, 100] {
            let mut cutter = PieceCutter::new(&csv_format(&opts), 1 << 20);
            let mut out = Vec::new();
            for c in b"\xEF\xBB\xBFid,x\n1,2\n".chunks(chunk) {
                cutter.push(c, &mut out);
            }
            let piece = cutter.finish();
            assert_eq!(piece.bytes, b"id,x\n1,2\n");
            assert_eq!(piece.input_bytes, 12);
        }
    }

    #[test]
    fn a_piece_that_starts_with_a_byte_order_mark_keeps_it() {
        // csv_core drops a BOM at the start of a reader's first input; past
        // the file's start those bytes are data (found by the csv fuzz target:
        // a piece cut before a record starting with U+FEFF lost it, and its
        // `\r` then read as a blank line).
        let opts = CsvOptions::default();
        let text = b"a\n1\n\xEF\xBB\xBF\r2\n";
        let whole = frame_all(&csv_format(&opts), text);
        let mut one = CsvTokenizer::new(&opts, 3, None);
        let mut expected = Vec::new();
        tokenize_piece(&mut one, &whole.bytes, &whole.bad, &mut expected);
        let expected = records(&expected);
        assert_eq!(expected[1], (3, "[\"\\u{feff}\"] \u{feff}".to_string()));
        let mut piece = CsvTokenizer::for_piece(&opts, 3, 1, 3);
        let mut got = Vec::new();
        tokenize_piece(&mut piece, &text[4..], &[], &mut got);
        assert_eq!(records(&got), expected[1..]);
        // The file's own mark goes; a second one is data.
        let (recs, _) = one_pass(b"\xEF\xBB\xBF\xEF\xBB\xBFh1,h2\n1,2\n", 1 << 20);
        assert_eq!(recs, vec![(2, "[\"1\", \"2\"] 1,2".to_string())]);
        let mut t = CsvTokenizer::new(&opts, 3, None);
        tokenize_piece(&mut t, b"\xEF\xBB\xBFh1,h2\n", &[], &mut Vec::new());
        assert_eq!(
            t.header(),
            Some(&["\u{feff}h1".to_string(), "h2".to_string()][..])
        );
    }

    #[test]
    fn the_fast_path_reads_quoted_crlf_pieces_like_the_tokenizer() {
        let opts = CsvOptions::default();
        let text = concat!(
            "1,\"Smith, Ana\",\"a \"\"b\"\"\"\r\n",
            "\r\n",
            "2,\"two\r\nlines\",\r\n",
            "3,x\"y,\"\"\r\n",
            "4,,\"\"\"\"\r\n",
            "5,\"short\"\r\n",
            "6,\"\",\"\n\n\",\"z\""
        );
        let bytes = bytes::Bytes::from_static(text.as_bytes());
        let fast = tokenize_fast_piece(&opts, &bytes, 3, 10, 2).expect("fast path");
        let mut t = CsvTokenizer::for_piece(&opts, 2, 3, 10);
        let mut slow = Vec::new();
        tokenize_piece(&mut t, text.as_bytes(), &[], &mut slow);
        assert_eq!(records(&fast), records(&slow));
        let got = records(&fast);
        assert_eq!(
            got[0],
            (
                10,
                "[\"1\", \"Smith, Ana\", \"a \\\"b\\\"\"] 1,\"Smith, Ana\",\"a \"\"b\"\"\""
                    .to_string()
            )
        );
        assert_eq!(got[1].0, 12);
        assert_eq!(got[2].0, 14);
        assert_eq!(
            got[4],
            (
                16,
                "rejected 5,\"short\" expected 3 fields, found 2".to_string()
            )
        );
        assert_eq!(got[5].0, 17);
        // What it leaves to the tokenizer: a lone CR, a NUL, text after a
        // closing quote, a quote never closed.
        for bad in ["1,2,3\r4,5,6\n", "1,\0,3\n", "1,\"a\"b,3\n", "1,2,\"3\n"] {
            let b = bytes::Bytes::from_static(bad.as_bytes());
            assert!(tokenize_fast_piece(&opts, &b, 3, 1, 2).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn pieces_cut_at_record_boundaries_read_like_one_pass() {
        // Deterministic pseudo-random texts over the bytes that matter to quoting.
        let mut next = crate::load::test_rng();
        let mut fast_pieces = 0;
        let mut refused = 0;
        for case in 0..6000 {
            let opts = CsvOptions {
                // Small caps make over-long records and quotes cut at the cap.
                max_record_bytes: if case % 3 == 0 {
                    1 + (next() % 40) as usize
                } else {
                    1 << 20
                },
                ..CsvOptions::default()
            };
            // A quarter of the texts have no quote and no CR, so the fast path
            // reads them; others hold NULs and quotes followed by text.
            let alphabet: &[u8] = match case % 4 {
                0 => b"ab,,\"\"\n\n\r ",
                1 => b"ab,,\n\nx",
                2 => b"a,\"\"\"\n\r\0x",
                _ => b"ab,\"\n\n\r\n,",
            };
            let len = (next() % 120) as usize;
            let mut text: Vec<u8> = if case % 5 == 0 {
                b"\xEF\xBB\xBFh1,h2\n".to_vec()
            } else {
                b"h1,h2\n".to_vec()
            };
            text.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));

            let whole = frame_all(&csv_format(&opts), &text);
            assert_eq!(whole.input_bytes, text.len() as u64);
            let mut one = CsvTokenizer::new(&opts, 3, Some(2));
            let mut expected = Vec::new();
            tokenize_piece(&mut one, &whole.bytes, &whole.bad, &mut expected);

            let min_piece = 1 + (next() % 20) as usize;
            let mut cutter = PieceCutter::new(&csv_format(&opts), min_piece);
            let mut pieces = Vec::new();
            for part in text.chunks(1 + (next() % 7) as usize) {
                cutter.push(part, &mut pieces);
            }
            pieces.push(cutter.finish());
            assert_eq!(
                pieces.iter().map(|p| p.input_bytes).sum::<u64>(),
                text.len() as u64,
                "case {case}"
            );
            let bad = |b: &[BadRecord]| {
                b.iter()
                    .map(|b| (b.raw.clone(), b.reason.clone()))
                    .collect::<Vec<_>>()
            };
            let all_bad: Vec<BadRecord> = pieces.iter().flat_map(|p| p.bad.clone()).collect();
            assert_eq!(bad(&all_bad), bad(&whole.bad), "case {case}");
            refused += all_bad.len();

            let mut got = Vec::new();
            let mut fast = Vec::new();
            let mut line = 1;
            let mut header_error = None;
            for (k, piece) in pieces.iter().enumerate() {
                let mut t = if k == 0 {
                    CsvTokenizer::new(&opts, 3, Some(2))
                } else {
                    CsvTokenizer::for_piece(&opts, 3, 2, line)
                };
                tokenize_piece(&mut t, &piece.bytes, &piece.bad, &mut got);
                if k == 0 {
                    header_error = t.header_error().map(str::to_string);
                } else if piece.bad.is_empty() {
                    let bytes = bytes::Bytes::from(piece.bytes.clone());
                    if let Some(batches) = tokenize_fast_piece(&opts, &bytes, 2, line, 3) {
                        fast.push((k, line, batches));
                    }
                }
                line += piece.count_lines();
            }
            assert_eq!(header_error.as_deref(), one.header_error(), "case {case}");
            if header_error.is_some() {
                // The load stops at a bad header: its records do not matter.
                continue;
            }
            // A piece read by the fast path gives what the tokenizer gives.
            for (k, line, batches) in fast {
                let mut one = CsvTokenizer::for_piece(&opts, 3, 2, line);
                let mut slow = Vec::new();
                tokenize_piece(&mut one, &pieces[k].bytes, &[], &mut slow);
                assert_eq!(records(&batches), records(&slow), "case {case} piece {k}");
                let rows = |b: &[RawBatch]| b.iter().map(|b| b.num_rows()).collect::<Vec<_>>();
                assert_eq!(rows(&batches), rows(&slow), "case {case} piece {k}");
                fast_pieces += 1;
            }
            assert_eq!(
                records(&got),
                records(&expected),
                "case {case}: {:?} cut into {:?}",
                String::from_utf8_lossy(&text),
                pieces
                    .iter()
                    .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
                    .collect::<Vec<_>>()
            );
        }
        assert!(fast_pieces > 1000, "only {fast_pieces} fast pieces");
        assert!(refused > 1000, "only {refused} refused records");
    }
}
