//! Checks every record of a CSV file as its bytes stream in, stopping at the
//! first that cannot be read as written: what the framer refuses (a quote never
//! closed, text after a closing quote, a record over `max_record_bytes`), a NUL
//! byte, invalid UTF-8, or a field count different from the first record's.
//!
//! For readers that have no quarantine (the SQL file functions): they refuse the
//! file, naming the line, rather than merge or drop records silently.

use super::framing::{Piece, PieceCutter};
use super::lines::{line_breaks, trim_terminator};
use super::{csv_core_input, CsvFormat};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// Bytes per piece the framer hands over (memory stays about this size).
const PIECE_BYTES: usize = 1 << 20;

/// The first record of a file that cannot be read as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Physical line where the record starts (1-based).
    pub line: u64,
    pub reason: String,
    /// The record's first line (at most `max_record_bytes` of it).
    pub raw: String,
}

/// What a checked file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvSummary {
    /// Records, the header included.
    pub records: u64,
    /// Fields per record (`None` for a file without records).
    pub fields: Option<usize>,
}

/// Feed a file's bytes with [`CsvCheck::push`], in chunks of any size, then
/// call [`CsvCheck::finish`]. Memory stays about one piece (1 MiB) plus the
/// longest record.
pub struct CsvCheck {
    header: bool,
    cutter: PieceCutter,
    reader: Reader,
    pieces: Vec<Piece>,
    /// Line where the next piece starts.
    line: u64,
    /// Fields of the first record, and its line.
    fields: Option<(usize, u64)>,
    records: u64,
    out: Vec<u8>,
    ends: Vec<usize>,
}

/// Why a record holding a NUL byte is refused.
const NUL_REASON: &str =
    "the record contains a NUL byte (0x00); is the file UTF-16 or binary? convert it to UTF-8 text";

impl CsvCheck {
    pub fn new(format: &CsvFormat) -> Self {
        CsvCheck {
            header: format.header,
            cutter: PieceCutter::new(format, PIECE_BYTES),
            reader: ReaderBuilder::new()
                .delimiter(format.delimiter)
                .quote(format.quote)
                .build(),
            pieces: Vec::new(),
            line: 1,
            fields: None,
            records: 0,
            out: vec![0; 64 * 1024],
            ends: vec![0; 1024],
        }
    }

    /// Checks the records `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BadLine> {
        self.cutter.push(bytes, &mut self.pieces);
        self.drain()
    }

    /// Checks the rest, at the end of the file.
    pub fn finish(mut self) -> Result<CsvSummary, BadLine> {
        let last = self.cutter.finish();
        self.pieces.push(last);
        self.drain()?;
        Ok(CsvSummary {
            records: self.records,
            fields: self.fields.map(|(n, _)| n),
        })
    }

    fn drain(&mut self) -> Result<(), BadLine> {
        for piece in std::mem::take(&mut self.pieces) {
            self.check_piece(&piece)?;
            self.line += piece.count_lines();
        }
        Ok(())
    }

    fn check_piece(&mut self, piece: &Piece) -> Result<(), BadLine> {
        let bytes = &piece.bytes;
        let mut lines = LineCounter {
            pos: 0,
            line: self.line,
        };
        // Refused records come in order: the records before the first are
        // checked first, so the error names the first bad line.
        if let Some(bad) = piece.bad.first() {
            self.check_records(bytes, 0..bad.range.start, &mut lines)?;
            return Err(BadLine {
                line: lines.line_of(bytes, bad.range.start),
                reason: bad.reason.clone(),
                raw: bad.raw.clone(),
            });
        }
        self.check_records(bytes, 0..bytes.len(), &mut lines)
    }

    /// Reads the whole records in `bytes[range]` with `csv_core`, as the readers
    /// after this check will, counting their fields.
    fn check_records(
        &mut self,
        bytes: &[u8],
        range: std::ops::Range<usize>,
        lines: &mut LineCounter,
    ) -> Result<(), BadLine> {
        self.reader.reset();
        let mut input = &bytes[range.clone()];
        let mut consumed = range.start;
        let mut rec_start = range.start;
        let mut fields = 0;
        let mut first = true;
        loop {
            // Field values are not kept: the buffers are reused from the start.
            let (res, nin, _, nend) = self.reader.read_record(
                csv_core_input(input, std::mem::take(&mut first)),
                &mut self.out,
                &mut self.ends,
            );
            input = &input[nin..];
            consumed += nin;
            fields += nend;
            match res {
                // The next call, with no input left, ends the input.
                ReadRecordResult::InputEmpty
                | ReadRecordResult::OutputFull
                | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => {
                    self.record(bytes, rec_start..consumed, fields, lines)?;
                    rec_start = consumed;
                    fields = 0;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn record(
        &mut self,
        bytes: &[u8],
        span: std::ops::Range<usize>,
        fields: usize,
        lines: &mut LineCounter,
    ) -> Result<(), BadLine> {
        let line = lines.line_of(bytes, span.start);
        let text = &bytes[span];
        let bad = |reason: String| BadLine {
            line,
            reason,
            raw: String::from_utf8_lossy(trim_terminator(text)).into_owned(),
        };
        self.records += 1;
        if memchr::memchr(0, text).is_some() {
            return Err(bad(NUL_REASON.to_string()));
        }
        if std::str::from_utf8(text).is_err() {
            return Err(bad("the record is not valid UTF-8".to_string()));
        }
        match self.fields {
            None => self.fields = Some((fields, line)),
            Some((n, at)) if n != fields => {
                let first = if self.header {
                    format!("the header on line {at}")
                } else {
                    format!("the first record, on line {at}")
                };
                return Err(bad(format!(
                    "expected {n} fields (as in {first}), found {fields}"
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Line numbers of positions in a piece, found in increasing order.
struct LineCounter {
    /// Position up to which line breaks are counted.
    pos: usize,
    /// Line at `pos`.
    line: u64,
}

impl LineCounter {
    /// The line of the first byte at or after `start` that is not a line break
    /// (where a record starting at `start` begins, past blank lines).
    fn line_of(&mut self, bytes: &[u8], start: usize) -> u64 {
        let lead = bytes[start..]
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        let p = (start + lead).max(self.pos);
        let (n, _) = line_breaks(&bytes[self.pos..p], bytes.get(p).copied());
        self.line += n;
        self.pos = p;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> CsvFormat {
        CsvFormat {
            delimiter: b',',
            quote: b'"',
            header: true,
            max_record_bytes: 1 << 20,
            raise_max_record_bytes: "raise it",
        }
    }

    /// Checks `text` fed in chunks of every size from 1 to 7 and whole; all
    /// must agree.
    fn check(text: &[u8]) -> Result<CsvSummary, BadLine> {
        let whole = {
            let mut c = CsvCheck::new(&format());
            c.push(text).and_then(|()| c.finish())
        };
        for size in 1..8 {
            let mut c = CsvCheck::new(&format());
            let mut got = Ok(());
            for part in text.chunks(size) {
                got = got.and_then(|()| c.push(part));
            }
            let got = got.and_then(|()| c.finish());
            assert_eq!(got, whole, "chunks of {size}");
        }
        whole
    }

    fn bad_line(text: &[u8]) -> (u64, String) {
        match check(text) {
            Err(b) => (b.line, b.reason),
            Ok(s) => panic!("accepted: {s:?}"),
        }
    }

    #[test]
    fn legal_files_pass() {
        let ok = check(b"\xEF\xBB\xBFa,b\r\n1,\"x\r\ny\"\r\n\r\n2,\"say \"\"hi\"\"\"\n3,").unwrap();
        assert_eq!(
            ok,
            CsvSummary {
                records: 4,
                fields: Some(2)
            }
        );
        assert_eq!(check(b"").unwrap(), CsvSummary::default());
        // Fields and records larger than the reader's buffers.
        let wide = format!(
            "{}\n{}\n",
            vec!["h"; 3000].join(","),
            vec!["1"; 3000].join(",")
        );
        let long = format!("a,b\n1,\"{}\"\n", "x".repeat(200_000));
        for (text, fields) in [(wide, 3000), (long, 2)] {
            let mut c = CsvCheck::new(&format());
            let got = c.push(text.as_bytes()).and_then(|()| c.finish());
            assert_eq!(got.map(|s| s.fields), Ok(Some(fields)));
        }
        assert_eq!(check(b"a,b\n").unwrap().records, 1);
    }

    #[test]
    fn the_first_bad_record_is_named_by_line() {
        let (line, reason) = bad_line(b"a,b\n1,x\n2,\"open\n3,y\n4,z\n");
        assert_eq!(line, 3);
        assert!(reason.contains("never closed"), "{reason}");
        let (line, reason) = bad_line(b"a,b\n1,\"x\ny\"\n\n2,\"q\"z\n");
        assert_eq!(line, 5);
        assert!(
            reason.contains("unexpected `z` after the closing quote"),
            "{reason}"
        );
        let (line, reason) = bad_line(b"a,b\r\n1,\"x\r\ny\"\r\n2,y,z\r\n");
        assert_eq!(line, 4);
        assert_eq!(
            reason,
            "expected 2 fields (as in the header on line 1), found 3"
        );
        let (line, reason) = bad_line(b"a,b\n1,\xff\n");
        assert_eq!(
            (line, reason.as_str()),
            (2, "the record is not valid UTF-8")
        );
        let (line, reason) = bad_line(b"a,b\n\n1,x\0\n");
        assert_eq!(line, 3);
        assert!(reason.contains("NUL byte"), "{reason}");
        // The file's byte-order mark goes, a second one is data: here a
        // record of one field (csv_core would drop it too).
        let (line, reason) = bad_line(b"\xEF\xBB\xBF\xEF\xBB\xBF\n1,2\n");
        assert_eq!(
            (line, reason.as_str()),
            (2, "expected 1 fields (as in the header on line 1), found 2")
        );
        // A bad record after a legal one in the same piece, after many lines.
        let mut text = b"a,b\n".to_vec();
        for i in 0..100_000 {
            text.extend_from_slice(format!("{i},\"v\nw\"\n").as_bytes());
        }
        text.extend_from_slice(b"x,\"open\n");
        let mut c = CsvCheck::new(&format());
        let got = c.push(&text).and_then(|()| c.finish());
        assert_eq!(got.map_err(|b| b.line), Err(200_002));
    }
}
