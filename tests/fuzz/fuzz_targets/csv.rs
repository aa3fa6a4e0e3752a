//! The CSV reader: framing, tokenizing, typing and quarantine.
//!
//! Input: four bytes of options, then the file.
//! - byte 0: bit 0 header, bits 1-2 delimiter (`,` `;` tab `|`), bit 3 quote
//!   (`"` or `'`), bit 4 `NA` is null too, bit 5 declared columns
//!   (`a BIGINT NOT NULL`, `b DOUBLE`);
//! - byte 1: `max_record_bytes` (1..=64 below 64, else 1 MiB);
//! - byte 2: piece size (1..=64 bytes); byte 3: read size (1..=16 bytes).
//!
//! Invariants:
//! 1. Pieces cut at record boundaries, at any size, read exactly like one pass:
//!    the same refused records, the same records with the same lines, fields
//!    and raw text; a piece the fast path takes gives what the tokenizer
//!    gives.
//! 2. Every record is loaded or rejected: rows + rejected = the records of the
//!    input, and the reader reports every input byte.
//! 3. The loader, run with tiny pieces and with one piece, plans and reads the
//!    same rows and rejections (values and reasons included).
//! 4. With inferred types, a file the SQL file functions' check accepts loads,
//!    every record of it, and the first record the loader rejects is the
//!    record that check names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::formats::csv_check::CsvCheck;
use sluice::formats::framing::{frame_all, BadRecord, PieceCutter};
use sluice::formats::lines::line_breaks;
use sluice::fuzzing::{
    csv_format, read_file, tokenize_fast_piece, tokenize_piece, CsvTokenizer, RawBatch,
};
use sluice::project::{parse_type, ColumnDecl, CsvOptions, SourceFormat};
use std::sync::OnceLock;

struct Case<'a> {
    opts: CsvOptions,
    declared: Vec<ColumnDecl>,
    min_piece: usize,
    chunk: usize,
    text: &'a [u8],
}

fn case(data: &[u8]) -> Option<Case<'_>> {
    let [flags, cap, piece, chunk, text @ ..] = data else {
        return None;
    };
    let delimiter = [",", ";", "\t", "|"][usize::from((flags >> 1) & 3)];
    let quote = if flags & 8 == 0 { "\"" } else { "'" };
    let mut null_values = vec![String::new()];
    if flags & 16 != 0 {
        null_values.push("NA".into());
    }
    let column = |name: &str, ty: &str, not_null| ColumnDecl {
        name: name.into(),
        type_name: ty.into(),
        not_null,
        data_type: parse_type(ty).ok(),
    };
    let declared = if flags & 32 != 0 {
        vec![column("a", "bigint", true), column("b", "double", false)]
    } else {
        Vec::new()
    };
    Some(Case {
        opts: CsvOptions {
            delimiter: delimiter.into(),
            header: flags & 1 != 0,
            quote: quote.into(),
            null_values,
            timestamp_format: None,
            max_record_bytes: if *cap < 64 {
                usize::from(*cap) + 1
            } else {
                1 << 20
            },
        },
        declared,
        min_piece: usize::from(piece % 64) + 1,
        chunk: usize::from(chunk % 16) + 1,
        text,
    })
}

/// All records of `batches`, as (line, fields and raw text or rejection).
fn records(batches: &[RawBatch]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.lines.len() {
            let fields: Vec<Option<&str>> = b
                .columns
                .iter()
                .map(|c| {
                    use sluice::fuzzing::Array;
                    (!c.is_null(i)).then(|| c.value(i))
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

fn rows(batches: &[RawBatch]) -> usize {
    batches
        .iter()
        .map(|b| b.lines.len() + b.rejected.len())
        .sum()
}

/// Invariant 1 (and 2 for the tokenizer); the records of the input and
/// whether the header could be read.
fn pieces_read_like_one_pass(c: &Case) -> (u64, bool) {
    let (opts, text) = (&c.opts, c.text);
    let format = csv_format(opts);
    let whole = frame_all(&format, text);
    assert_eq!(whole.input_bytes, text.len() as u64);
    let mut one = CsvTokenizer::new(opts, 3, None);
    let mut expected = Vec::new();
    tokenize_piece(&mut one, &whole.bytes, &whole.bad, &mut expected);
    assert_eq!(rows(&expected) as u64, one.records, "records counted");
    let columns = one.header().map_or(1, |h| h.len());

    let mut cutter = PieceCutter::new(&format, c.min_piece);
    let mut pieces = Vec::new();
    for part in text.chunks(c.chunk) {
        cutter.push(part, &mut pieces);
    }
    pieces.push(cutter.finish());
    assert_eq!(
        pieces.iter().map(|p| p.input_bytes).sum::<u64>(),
        text.len() as u64,
        "every byte is in a piece"
    );
    let bad = |b: &[BadRecord]| {
        b.iter()
            .map(|b| (b.raw.clone(), b.reason.clone()))
            .collect::<Vec<_>>()
    };
    let all_bad: Vec<BadRecord> = pieces.iter().flat_map(|p| p.bad.clone()).collect();
    assert_eq!(bad(&all_bad), bad(&whole.bad), "refused records");

    let mut got = Vec::new();
    let mut counted = 0;
    let mut line = 1;
    let mut header_error = None;
    for (k, piece) in pieces.iter().enumerate() {
        let mut t = if k == 0 {
            CsvTokenizer::new(opts, 3, None)
        } else {
            CsvTokenizer::for_piece(opts, 3, columns, line)
        };
        tokenize_piece(&mut t, &piece.bytes, &piece.bad, &mut got);
        counted += t.records;
        if k == 0 {
            header_error = t.header_error().map(str::to_string);
        } else if piece.bad.is_empty() {
            let bytes = bytes_of(&piece.bytes);
            if let Some(fast) = tokenize_fast_piece(opts, &bytes, columns, line, 3) {
                let mut slow_t = CsvTokenizer::for_piece(opts, 3, columns, line);
                let mut slow = Vec::new();
                tokenize_piece(&mut slow_t, &piece.bytes, &[], &mut slow);
                assert_eq!(records(&fast), records(&slow), "fast path, piece {k}");
                let sizes = |b: &[RawBatch]| b.iter().map(|b| b.lines.len()).collect::<Vec<_>>();
                assert_eq!(sizes(&fast), sizes(&slow), "fast path batches, piece {k}");
            }
        }
        line += piece.count_lines();
    }
    assert_eq!(header_error.as_deref(), one.header_error(), "header error");
    if header_error.is_some() {
        // The load stops at a bad header.
        return (one.records, false);
    }
    assert_eq!(records(&got), records(&expected), "pieces against one pass");
    assert_eq!(counted, one.records, "records counted in pieces");
    (one.records, true)
}

fn bytes_of(b: &[u8]) -> sluice::fuzzing::Bytes {
    sluice::fuzzing::Bytes::copy_from_slice(b)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Invariants 2 to 4 on the loader itself.
fn loader_reads_like_one_pass(c: &Case, records: u64, header_ok: bool) {
    let rt = runtime();
    let read = |piece_bytes| {
        rt.block_on(read_file(
            SourceFormat::Csv,
            &c.opts,
            &c.declared,
            c.text,
            piece_bytes,
            c.chunk,
        ))
        .map_err(|e| e.to_string())
    };
    let one = read(usize::MAX);
    let pieces = read(c.min_piece);
    assert_eq!(pieces, one, "loader: pieces against one pass");
    let mut check = CsvCheck::new(&csv_format(&c.opts));
    let checked = check.push(c.text).and_then(|()| check.finish());
    let out = match one {
        Ok(Some(out)) => out,
        Ok(None) => return,
        Err(e) => {
            // A file read_csv reads is loaded, unless its header cannot name
            // columns.
            if checked.is_ok() && c.declared.is_empty() {
                assert!(e.contains("of the header is"), "the loader refused {e}");
            }
            return;
        }
    };
    assert!(header_ok, "a file with a bad header was read: {out:?}");
    assert_eq!(out.bytes, c.text.len() as u64, "bytes reported");
    assert_eq!(
        (out.rows.len() + out.rejected.len()) as u64,
        records,
        "loaded + rejected = records: {out:?}"
    );
    let header = u64::from(c.opts.header);
    if !c.declared.is_empty() {
        return;
    }
    match checked {
        Ok(summary) => {
            assert_eq!(
                out.rejected,
                Vec::new(),
                "the file check accepts what the loader rejects"
            );
            assert_eq!(
                out.rows.len() as u64,
                summary.records - header,
                "rows against the file check"
            );
        }
        Err(bad) => {
            // The loader reads a header that is not UTF-8 lossily.
            if c.opts.header && bad.line == first_record_line(c.text) {
                return;
            }
            assert_eq!(
                out.rejected.first().map(|r| r.0),
                Some(bad.line),
                "the first rejected record against the file check's {bad:?}: {out:?}"
            );
        }
    }
}

/// The line of the first record (past a byte-order mark and blank lines).
fn first_record_line(text: &[u8]) -> u64 {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let start = text
        .iter()
        .position(|b| !matches!(b, b'\n' | b'\r'))
        .unwrap_or(text.len());
    1 + line_breaks(&text[..start], text.get(start).copied()).0
}

fuzz_target!(|data: &[u8]| {
    let Some(c) = case(data) else {
        return;
    };
    let (records, header_ok) = pieces_read_like_one_pass(&c);
    loader_reads_like_one_pass(&c, records, header_ok);
});
