//! A streaming CSV tokenizer that keeps every record's raw text and line number,
//! so that a record that does not fit can be quarantined instead of failing the load.
//!
//! It produces string columns in batches; typing happens in [`super::convert`].

use super::quarantine::Rejected;
use crate::project::CsvOptions;
use arrow::array::StringBuilder;
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// One batch of tokenized records: all fields as strings.
pub struct RawBatch {
    /// One column per header field (null where a null marker was found).
    pub columns: Vec<arrow::array::StringArray>,
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

fn trim_terminator(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    while let [b'\n' | b'\r', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Incremental tokenizer: feed bytes, get batches.
pub struct CsvTokenizer {
    reader: Reader,
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
}

impl CsvTokenizer {
    pub fn new(opts: &CsvOptions, batch_rows: usize, known_columns: Option<usize>) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(opts.delimiter_byte().unwrap_or(b','))
            .quote(opts.quote_byte().unwrap_or(b'"'))
            .build();
        let mut t = CsvTokenizer {
            reader,
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
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            self.raw.extend_from_slice(&input[..nin]);
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if !eof {
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

    fn finish_record(&mut self) {
        // The record's raw bytes are the tail of `self.raw` after the last kept record.
        let rec_start = self.offsets.last().copied().unwrap_or(0);
        let nfields = self.ends_len;
        if self.header.is_none() && !self.expect_header {
            self.set_header((1..=nfields).map(|i| format!("column_{i}")).collect());
        }
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
        RawBatch {
            columns: self.builders.iter_mut().map(|b| b.finish()).collect(),
            lines: std::mem::take(&mut self.lines),
            raw: std::mem::take(&mut self.raw).into(),
            spans: offsets.windows(2).map(|w| w[0]..w[1]).collect(),
            rejected: std::mem::take(&mut self.rejected),
        }
    }
}

/// Line breaks in `s`: every `\n`, and every `\r` not followed by `\n` (CRLF is
/// one break; a lone CR, as in old Mac files, is one too). `next` is the byte
/// after `s`, if known; a final `\r` with no known next byte is not counted but
/// reported as pending.
fn line_breaks(s: &[u8], next: Option<u8>) -> (u64, bool) {
    let mut n = 0;
    for i in memchr::memchr2_iter(b'\n', b'\r', s) {
        if s[i] == b'\n' {
            n += 1;
        } else {
            match s.get(i + 1).copied().or(next) {
                Some(b'\n') => {}
                Some(_) => n += 1,
                None => return (n, true),
            }
        }
    }
    (n, false)
}

/// Line breaks in a piece of a file (see [`PieceCutter`]: pieces end with `\n`),
/// so the next piece starts on line `first + count_lines(piece)`.
pub fn count_lines(s: &[u8]) -> u64 {
    let (n, pending) = line_breaks(s, None);
    n + u64::from(pending)
}

/// Tokenizes a piece of a file (whole records after the header, the first on
/// line `line`) that has no quote and no carriage return and is valid UTF-8:
/// then every field is the bytes between two delimiters, and records are lines,
/// so no state machine is needed. Gives exactly what [`CsvTokenizer`] gives for
/// such a piece (blank lines skipped, wrong field counts rejected), several times
/// faster. `None` when the piece does not qualify.
pub fn tokenize_plain_piece(
    opts: &CsvOptions,
    piece: &bytes::Bytes,
    columns: usize,
    line: u64,
    batch_rows: usize,
) -> Option<Vec<RawBatch>> {
    let delimiter = opts.delimiter_byte().unwrap_or(b',');
    let quote = opts.quote_byte().unwrap_or(b'"');
    let text: &[u8] = piece;
    if matches!(delimiter, b'\n' | b'\r')
        || delimiter == quote
        || memchr::memchr2(quote, b'\r', text).is_some()
    {
        return None;
    }
    let text_str = std::str::from_utf8(text).ok()?;
    let nulls: Vec<&[u8]> = opts.null_values.iter().map(|n| n.as_bytes()).collect();
    let new_builders = || {
        (0..columns)
            .map(|_| StringBuilder::with_capacity(batch_rows, text.len() / columns.max(1)))
            .collect::<Vec<_>>()
    };
    let mut builders = new_builders();
    let mut lines = Vec::new();
    let mut spans = Vec::new();
    let mut rejected = Vec::new();
    let mut done = Vec::new();
    let mut ends = Vec::with_capacity(columns + 1);
    let mut hits = memchr::memchr2_iter(delimiter, b'\n', text);
    let mut pos = 0;
    let mut line = line;
    while pos < text.len() {
        ends.clear();
        let end = loop {
            match hits.next() {
                Some(p) if text[p] == delimiter => ends.push(p),
                Some(p) => break p,
                None => break text.len(),
            }
        };
        ends.push(end);
        if end > pos {
            if ends.len() != columns {
                rejected.push(Rejected {
                    line,
                    raw: String::from_utf8_lossy(&text[pos..end]).into_owned(),
                    reason: format!("expected {columns} fields, found {}", ends.len()),
                });
            } else {
                let mut start = pos;
                for (b, &e) in builders.iter_mut().zip(&ends) {
                    // Valid UTF-8 cut at ASCII delimiters: each field is too.
                    let v = &text_str[start..e];
                    if nulls.contains(&v.as_bytes()) {
                        b.append_null();
                    } else {
                        b.append_value(v);
                    }
                    start = e + 1;
                }
                lines.push(line);
                spans.push(pos..end);
                if lines.len() >= batch_rows {
                    done.push(RawBatch {
                        columns: std::mem::replace(&mut builders, new_builders())
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
        }
        line += 1;
        pos = end + 1;
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

/// Finds record boundaries (a newline outside any quoted field) exactly as
/// `csv_core` reads them (RFC 4180 quoting with doubled quotes; a quote opens a
/// quoted field only at the start of a field), so that a file can be cut into
/// pieces that are tokenized in parallel and give the same records as one pass.
///
/// Only quotes and newlines are looked at (with `memchr`), so a scan costs a
/// small fraction of tokenizing.
pub struct RecordSplitter {
    quote: u8,
    delimiter: u8,
    state: SplitState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitState {
    /// Outside quotes.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: a second quote is an escaped
    /// quote, anything else ends the quoting.
    QuoteInQuoted,
}

impl RecordSplitter {
    pub fn new(opts: &CsvOptions) -> Self {
        RecordSplitter {
            quote: opts.quote_byte().unwrap_or(b'"'),
            delimiter: opts.delimiter_byte().unwrap_or(b','),
            state: SplitState::Unquoted,
        }
    }

    /// Scans `buf[from..]`, the bytes not scanned before (`buf` itself starts at
    /// a record boundary and `buf[..from]` was scanned by earlier calls), and
    /// returns the end of the last complete record in it: the position just after
    /// a record-ending newline.
    pub fn scan(&mut self, buf: &[u8], from: usize) -> Option<usize> {
        let q = self.quote;
        let mut last = None;
        let mut i = from;
        while i < buf.len() {
            match self.state {
                SplitState::Unquoted => {
                    let rest = &buf[i..];
                    let stop = memchr::memchr(q, rest).map_or(buf.len(), |p| i + p);
                    if let Some(p) = memchr::memrchr(b'\n', &buf[i..stop]) {
                        last = Some(i + p + 1);
                    }
                    if stop == buf.len() {
                        break;
                    }
                    // A quote opens a quoted field only at the start of a field.
                    let field_start = stop == 0
                        || matches!(buf[stop - 1], b'\n' | b'\r')
                        || buf[stop - 1] == self.delimiter;
                    if field_start {
                        self.state = SplitState::Quoted;
                    }
                    i = stop + 1;
                }
                SplitState::Quoted => match memchr::memchr(q, &buf[i..]) {
                    Some(p) => {
                        self.state = SplitState::QuoteInQuoted;
                        i += p + 1;
                    }
                    None => break,
                },
                SplitState::QuoteInQuoted => {
                    if buf[i] == q {
                        self.state = SplitState::Quoted;
                        i += 1;
                    } else {
                        // Quoting ended; this byte is read unquoted.
                        self.state = SplitState::Unquoted;
                    }
                }
            }
        }
        last
    }
}

/// Cuts a file's bytes, as they arrive, into pieces of about `min_piece` bytes
/// that end at record boundaries. The first piece always holds the first record
/// (the header, when there is one).
pub struct PieceCutter {
    splitter: RecordSplitter,
    buf: Vec<u8>,
    /// `buf[..scanned]` has been scanned.
    scanned: usize,
    /// End of the last complete record in `buf` (0: none yet).
    boundary: usize,
    min_piece: usize,
    first: bool,
}

impl PieceCutter {
    pub fn new(opts: &CsvOptions, min_piece: usize) -> Self {
        PieceCutter {
            splitter: RecordSplitter::new(opts),
            buf: Vec::new(),
            scanned: 0,
            boundary: 0,
            min_piece: min_piece.max(1),
            first: true,
        }
    }

    /// Adds `bytes`; complete pieces are pushed to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        let step = (self.min_piece / 4).max(1);
        for part in bytes.chunks(step) {
            self.buf.extend_from_slice(part);
            if let Some(b) = self.splitter.scan(&self.buf, self.scanned) {
                self.boundary = b;
            }
            self.scanned = self.buf.len();
            if self.boundary >= self.min_piece && self.holds_a_record() {
                let rest = self.buf[self.boundary..].to_vec();
                self.buf.truncate(self.boundary);
                out.push(std::mem::replace(&mut self.buf, rest));
                self.scanned -= self.boundary;
                self.boundary = 0;
                self.first = false;
            }
        }
    }

    /// The last piece (possibly empty), at the end of the file.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.boundary = 0;
        std::mem::take(&mut self.buf)
    }

    /// The first piece must hold the header: not only blank lines.
    fn holds_a_record(&self) -> bool {
        !self.first
            || self.buf[..self.boundary]
                .iter()
                .any(|c| !matches!(c, b'\n' | b'\r'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn pieces_cut_at_record_boundaries_read_like_one_pass() {
        let opts = CsvOptions::default();
        // Deterministic pseudo-random texts over the bytes that matter to quoting.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut plain_pieces = 0;
        for case in 0..4000 {
            // Half the texts have no quote and no CR, so the plain path reads them.
            let alphabet: &[u8] = if case % 2 == 0 {
                b"ab,,\"\"\n\n\r "
            } else {
                b"ab,,\n\nx"
            };
            let len = (next() % 120) as usize;
            let mut text: Vec<u8> = b"h1,h2\n".to_vec();
            text.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));

            let mut whole = CsvTokenizer::new(&opts, 3, Some(2));
            let mut expected = Vec::new();
            whole.feed(&text, &mut expected);
            whole.feed(&[], &mut expected);

            let min_piece = 1 + (next() % 20) as usize;
            let mut cutter = PieceCutter::new(&opts, min_piece);
            let mut pieces = Vec::new();
            for part in text.chunks(1 + (next() % 7) as usize) {
                cutter.push(part, &mut pieces);
            }
            pieces.push(cutter.finish());
            assert_eq!(pieces.concat(), text, "case {case}");

            let mut got = Vec::new();
            let mut plain = Vec::new();
            let mut line = 1;
            for (k, piece) in pieces.iter().enumerate() {
                let mut t = if k == 0 {
                    CsvTokenizer::new(&opts, 3, Some(2))
                } else {
                    CsvTokenizer::for_piece(&opts, 3, 2, line)
                };
                t.feed(piece, &mut got);
                t.feed(&[], &mut got);
                if k > 0 {
                    let bytes = bytes::Bytes::from(piece.clone());
                    if let Some(batches) = tokenize_plain_piece(&opts, &bytes, 2, line, 3) {
                        plain.push((k, batches));
                    }
                }
                line += count_lines(piece);
            }
            // A piece read by the plain fast path gives what the tokenizer gives.
            for (k, batches) in plain {
                let mut one = CsvTokenizer::for_piece(
                    &opts,
                    3,
                    2,
                    1 + pieces[..k].iter().map(|p| count_lines(p)).sum::<u64>(),
                );
                let mut slow = Vec::new();
                one.feed(&pieces[k], &mut slow);
                one.feed(&[], &mut slow);
                assert_eq!(records(&batches), records(&slow), "case {case} piece {k}");
                let rows = |b: &[RawBatch]| b.iter().map(|b| b.num_rows()).collect::<Vec<_>>();
                assert_eq!(rows(&batches), rows(&slow), "case {case} piece {k}");
                plain_pieces += 1;
            }
            assert_eq!(
                records(&got),
                records(&expected),
                "case {case}: {:?} cut into {:?}",
                String::from_utf8_lossy(&text),
                pieces
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
            );
        }
        assert!(plain_pieces > 1000, "only {plain_pieces} plain pieces");
    }
}
