//! CSV record framing: where records start and end, and which cannot be read.
//!
//! See [`PieceCutter`]. The loader's tokenizer (`load::csv`) and the SQL file
//! functions' check ([`super::csv_check`]) read the records it frames; all read
//! quoting exactly as `csv_core` does.

use super::lines::{count_lines, line_breaks, trim_terminator};
use super::CsvFormat;

/// A record refused before tokenizing: a quote that is never closed, text after
/// a closing quote, or more than `max_record_bytes`. Its bytes are `range` of
/// the piece: the record's first line only, so that the lines after it are read
/// again as records of their own (a runaway quote cannot swallow the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub range: std::ops::Range<usize>,
    /// The first line's text, at most `max_record_bytes` of it.
    pub raw: String,
    pub reason: String,
}

/// Whole records of a file, after a record boundary, with the records refused
/// by the framer (in order, within `bytes`).
#[derive(Debug, Default)]
pub struct Piece {
    pub bytes: Vec<u8>,
    pub bad: Vec<BadRecord>,
    /// Bytes of the file it covers (a byte-order mark and the tail of an
    /// over-long line are not kept in `bytes`).
    pub input_bytes: u64,
}

impl Piece {
    /// Line breaks in the piece, so the next piece starts on line
    /// `first + piece.count_lines()`.
    pub fn count_lines(&self) -> u64 {
        count_lines(&self.bytes)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitState {
    /// Outside quotes.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: a second quote is an escaped
    /// quote, a delimiter or line break ends the field, anything else is an error.
    QuoteInQuoted,
    /// In a refused record that has no line break yet: bytes are dropped until
    /// the next one.
    Skip,
}

/// Cuts a file's bytes, as they arrive, into pieces of about `min_piece` bytes
/// that end at record boundaries, finding the records that cannot be read.
/// The first piece always holds the first record (the header, when there is one).
///
/// It reads quoting exactly as `csv_core` does (RFC 4180 with doubled quotes; a
/// quote opens a quoted field only at the start of a field; CR, LF and CRLF end
/// records), so pieces are tokenized in parallel and give the same records as one
/// pass, and it refuses what `csv_core` would silently accept: a quoted field
/// never closed, text after a closing quote, a record over `max_record_bytes`.
/// A refused record is its first line; reading resumes on the next line, as
/// DuckDB's and PostgreSQL's error reports point at a line.
///
/// Only quotes and line breaks are looked at (with `memchr`), one search per
/// quote and per `max_record_bytes` of text, so a scan costs a small fraction of
/// tokenizing.
pub struct PieceCutter {
    quote: u8,
    delimiter: u8,
    cap: usize,
    /// How to raise `cap`, for messages.
    raise_cap: &'static str,
    state: SplitState,
    buf: Vec<u8>,
    /// Next byte of `buf` to look at.
    pos: usize,
    /// Where the current record starts (just after the last line break).
    rec_start: usize,
    /// Just after the first line break inside a quoted field of the current record.
    first_break: Option<usize>,
    /// Why the record being skipped is refused.
    skip_reason: String,
    /// End of the last complete record ending with `\n` (0: none yet).
    boundary: usize,
    bad: Vec<BadRecord>,
    min_piece: usize,
    first: bool,
    /// The file's first bytes were checked for a byte-order mark.
    bom_checked: bool,
    /// File bytes taken since the last piece.
    input: u64,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most a cutter reserves ahead for its next piece.
const MAX_RESERVE: usize = 256 << 20;

impl PieceCutter {
    pub fn new(format: &CsvFormat, min_piece: usize) -> Self {
        PieceCutter {
            quote: format.quote,
            delimiter: format.delimiter,
            cap: format.max_record_bytes.max(1),
            raise_cap: format.raise_max_record_bytes,
            state: SplitState::Unquoted,
            buf: Vec::new(),
            pos: 0,
            rec_start: 0,
            first_break: None,
            skip_reason: String::new(),
            boundary: 0,
            bad: Vec::new(),
            min_piece: min_piece.max(1),
            first: true,
            bom_checked: false,
            input: 0,
        }
    }

    /// Adds `bytes`; complete pieces are pushed to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        let step = (self.min_piece / 4).max(1);
        for part in bytes.chunks(step) {
            self.buf.extend_from_slice(part);
            self.input += part.len() as u64;
            if !self.bom_checked {
                if self.buf.len() < UTF8_BOM.len() && UTF8_BOM.starts_with(&self.buf) {
                    continue;
                }
                self.strip_bom();
            }
            self.scan(false);
            if self.boundary >= self.min_piece && self.holds_a_record() {
                out.push(self.cut(self.boundary));
            }
        }
    }

    /// The last piece (possibly empty), at the end of the file.
    pub fn finish(&mut self) -> Piece {
        if !self.bom_checked {
            self.strip_bom();
        }
        self.scan(true);
        let end = self.buf.len();
        self.cut(end)
    }

    fn strip_bom(&mut self) {
        self.bom_checked = true;
        if self.buf.starts_with(UTF8_BOM) {
            self.buf.drain(..UTF8_BOM.len());
        }
    }

    /// Takes `buf[..at]` (`at` is a record boundary) as a piece.
    fn cut(&mut self, at: usize) -> Piece {
        // The next piece grows to about `min_piece` plus a push: make room for
        // that now rather than by doubling (each doubling copies the piece and
        // touches fresh pages).
        // (Not for a cutter that never cuts before the end: `usize::MAX`.)
        let next = match self.min_piece.checked_add(self.min_piece / 2) {
            Some(n) if n <= MAX_RESERVE => n,
            _ => 0,
        };
        let mut rest = Vec::with_capacity((self.buf.len() - at).max(next));
        rest.extend_from_slice(&self.buf[at..]);
        self.buf.truncate(at);
        let bytes = std::mem::replace(&mut self.buf, rest);
        let keep = self.bad.iter().take_while(|b| b.range.start < at).count();
        let mut bad: Vec<BadRecord> = self.bad.drain(..keep).collect();
        for b in &mut self.bad {
            b.range = b.range.start - at..b.range.end - at;
        }
        bad.shrink_to_fit();
        // At a boundary the current record starts after `at`; at the end of the
        // file nothing is left.
        self.pos = self.pos.saturating_sub(at);
        self.rec_start = self.rec_start.saturating_sub(at);
        self.first_break = self.first_break.map(|f| f.saturating_sub(at));
        self.boundary = 0;
        self.first = false;
        Piece {
            bytes,
            bad,
            input_bytes: std::mem::take(&mut self.input),
        }
    }

    /// The first piece must hold the header: not only blank lines.
    fn holds_a_record(&self) -> bool {
        !self.first
            || self
                .bad
                .first()
                .is_some_and(|b| b.range.start < self.boundary)
            || self.buf[..self.boundary]
                .iter()
                .any(|c| !matches!(c, b'\n' | b'\r'))
    }

    /// The raw text kept for a refused record starting at `start` whose first
    /// line ends at `end` (line break excluded).
    fn raw_text(&self, start: usize, end: usize) -> String {
        let end = end.min(start.saturating_add(self.cap));
        String::from_utf8_lossy(trim_terminator(&self.buf[start..end])).into_owned()
    }

    /// Refuses the current record: its first line becomes a [`BadRecord`] and
    /// scanning resumes after it (bytes a quote swallowed are read again).
    fn refuse(&mut self, reason: String) {
        let start = self.rec_start;
        let line_end = match self.first_break {
            Some(b) => Some(b),
            None => memchr::memchr2(b'\n', b'\r', &self.buf[self.pos..]).map(|p| self.pos + p + 1),
        };
        self.first_break = None;
        match line_end {
            Some(end) => {
                self.bad.push(BadRecord {
                    range: start..end,
                    raw: self.raw_text(start, end),
                    reason,
                });
                self.rec_start = end;
                self.pos = end;
                self.state = SplitState::Unquoted;
            }
            None => {
                self.skip_reason = reason;
                self.state = SplitState::Skip;
            }
        }
    }

    fn over_cap(&self, quoted: bool) -> String {
        let cap = self.cap;
        let raise = self.raise_cap;
        if quoted {
            format!("record is longer than max_record_bytes ({cap} bytes): a quoted field is not closed within it; {raise} if the field is real")
        } else {
            format!("record is longer than max_record_bytes ({cap} bytes); raw holds its first {cap} bytes; {raise} if the record is real")
        }
    }

    /// Scans `buf[pos..]`: finds record boundaries and refused records.
    fn scan(&mut self, eof: bool) {
        let q = self.quote;
        loop {
            let len = self.buf.len();
            // A record may not run past `limit` without a line break.
            let limit = self.rec_start.saturating_add(self.cap).saturating_add(1);
            match self.state {
                SplitState::Unquoted => {
                    if self.pos >= limit {
                        let reason = self.over_cap(false);
                        self.refuse(reason);
                        continue;
                    }
                    let end = len.min(limit);
                    let from = self.pos;
                    let stop = memchr::memchr(q, &self.buf[from..end]).map_or(end, |p| from + p);
                    if let Some(p) = memchr::memrchr2(b'\n', b'\r', &self.buf[from..stop]) {
                        let b = from + p;
                        self.rec_start = b + 1;
                        self.first_break = None;
                        if self.buf[b] == b'\n' {
                            self.boundary = b + 1;
                        } else if let Some(n) = memchr::memrchr(b'\n', &self.buf[from..b]) {
                            self.boundary = from + n + 1;
                        }
                    }
                    self.pos = stop;
                    if stop < end {
                        // A quote opens a quoted field only at the start of a field.
                        if stop == self.rec_start || self.buf[stop - 1] == self.delimiter {
                            self.state = SplitState::Quoted;
                        }
                        self.pos = stop + 1;
                    } else if end == len {
                        if eof && len - self.rec_start > self.cap {
                            let reason = self.over_cap(false);
                            self.refuse(reason);
                            continue;
                        }
                        return;
                    }
                }
                SplitState::Quoted => {
                    if self.pos >= limit {
                        let reason = self.over_cap(true);
                        self.refuse(reason);
                        continue;
                    }
                    let end = len.min(limit);
                    let from = self.pos;
                    let stop = memchr::memchr(q, &self.buf[from..end]).map_or(end, |p| from + p);
                    if self.first_break.is_none() {
                        if let Some(p) = memchr::memchr2(b'\n', b'\r', &self.buf[from..stop]) {
                            self.first_break = Some(from + p + 1);
                        }
                    }
                    self.pos = stop;
                    if stop < end {
                        self.state = SplitState::QuoteInQuoted;
                        self.pos = stop + 1;
                    } else if end == len {
                        if !eof {
                            return;
                        }
                        self.refuse(
                            "a quoted field is never closed (no closing quote before the end of the file)"
                                .to_string(),
                        );
                    }
                }
                SplitState::QuoteInQuoted => {
                    let Some(&c) = self.buf.get(self.pos) else {
                        if eof {
                            // The closing quote ends the file.
                            self.state = SplitState::Unquoted;
                            continue;
                        }
                        return;
                    };
                    if c == q {
                        self.state = SplitState::Quoted;
                        self.pos += 1;
                    } else if c == self.delimiter {
                        self.state = SplitState::Unquoted;
                        self.pos += 1;
                    } else if c == b'\n' || c == b'\r' {
                        self.state = SplitState::Unquoted;
                    } else {
                        let below = match self.first_break {
                            Some(_) => {
                                let (n, _) = line_breaks(&self.buf[self.rec_start..self.pos], None);
                                format!(" (a quoted field opened on this line closes {n} line(s) below)")
                            }
                            None => String::new(),
                        };
                        let shown = char::from(c);
                        let shown = if c.is_ascii_graphic() || c == b' ' {
                            format!("`{shown}`")
                        } else {
                            format!("byte 0x{c:02x}")
                        };
                        self.refuse(format!(
                            "unexpected {shown} after the closing quote of a quoted field{below}; a quote inside a quoted field must be doubled (\"\")"
                        ));
                    }
                }
                SplitState::Skip => {
                    let from = self.pos.max(self.rec_start);
                    match memchr::memchr2(b'\n', b'\r', &self.buf[from..]) {
                        Some(p) => {
                            let end = from + p + 1;
                            let reason = std::mem::take(&mut self.skip_reason);
                            self.bad.push(BadRecord {
                                range: self.rec_start..end,
                                raw: self.raw_text(self.rec_start, end),
                                reason,
                            });
                            self.rec_start = end;
                            self.pos = end;
                            self.state = SplitState::Unquoted;
                        }
                        None if eof => {
                            let reason = std::mem::take(&mut self.skip_reason);
                            self.bad.push(BadRecord {
                                range: self.rec_start..len,
                                raw: self.raw_text(self.rec_start, len),
                                reason,
                            });
                            self.rec_start = len;
                            self.pos = len;
                            self.state = SplitState::Unquoted;
                        }
                        None => {
                            // Keep what the raw text needs; drop the rest of the line.
                            let keep = self.rec_start.saturating_add(self.cap).min(len);
                            self.buf.truncate(keep);
                            self.pos = keep;
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Frames all of `bytes` (a whole file, or its first bytes) as one piece.
pub fn frame_all(format: &CsvFormat, bytes: &[u8]) -> Piece {
    let mut cutter = PieceCutter::new(format, usize::MAX);
    let mut none = Vec::new();
    cutter.push(bytes, &mut none);
    cutter.finish()
}
