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
    /// Raw bytes of the kept records, concatenated; record i is `raw[offsets[i]..offsets[i+1]]`.
    pub raw: Vec<u8>,
    pub offsets: Vec<usize>,
    /// Records rejected while tokenizing (wrong field count, invalid UTF-8).
    pub rejected: Vec<Rejected>,
}

impl RawBatch {
    /// The raw text of kept record `i`, without its line terminator.
    pub fn raw_text(&self, i: usize) -> String {
        let s = &self.raw[self.offsets[i]..self.offsets[i + 1]];
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
        let leading = raw
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .filter(|b| **b == b'\n')
            .count() as u64;
        let line = self.next_line + leading;
        self.next_line += memchr_count(raw);
        // A record consumed at end of input without a terminator still counts one line.
        if !raw.ends_with(b"\n") {
            self.next_line += 1;
        }
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
        RawBatch {
            columns: self.builders.iter_mut().map(|b| b.finish()).collect(),
            lines: std::mem::take(&mut self.lines),
            raw: std::mem::take(&mut self.raw),
            offsets: std::mem::replace(&mut self.offsets, vec![0]),
            rejected: std::mem::take(&mut self.rejected),
        }
    }
}

fn memchr_count(s: &[u8]) -> u64 {
    s.iter().filter(|b| **b == b'\n').count() as u64
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
}
