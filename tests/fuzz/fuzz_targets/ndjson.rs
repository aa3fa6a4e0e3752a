//! The NDJSON reader: line splitting, the line check, arrow's decoder, typing
//! and quarantine.
//!
//! Input: two bytes of options, then the file.
//! - byte 0: bit 0 declared columns (`id BIGINT NOT NULL`, `v DOUBLE`,
//!   `t TIMESTAMPTZ`);
//! - byte 1: read size (1..=16 bytes).
//!
//! Invariants:
//! 1. Every line that is not blank is loaded or rejected, once: rows +
//!    rejected = the non-blank lines, each rejection names one of them, and the
//!    reader reports every input byte.
//! 2. How the bytes arrive does not matter: read in small chunks and in one,
//!    the file gives the same plan, rows and rejections.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::read_file;
use sluice::project::{parse_type, ColumnDecl, CsvOptions, SourceFormat};
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Line numbers of the lines that are records (not blank).
fn record_lines(text: &[u8]) -> Vec<u64> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    if text.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, text @ ..] = data else {
        return;
    };
    let column = |name: &str, ty: &str, not_null| ColumnDecl {
        name: name.into(),
        type_name: ty.into(),
        not_null,
        data_type: parse_type(ty).ok(),
    };
    let declared = if flags & 1 != 0 {
        vec![
            column("id", "bigint", true),
            column("v", "double", false),
            column("t", "timestamptz", false),
        ]
    } else {
        Vec::new()
    };
    let csv = CsvOptions::default();
    let read = |chunk: usize| {
        runtime()
            .block_on(read_file(
                SourceFormat::Ndjson,
                &csv,
                &declared,
                text,
                usize::MAX,
                chunk,
            ))
            .map_err(|e| e.to_string())
    };
    let small = read(usize::from(chunk % 16) + 1);
    let whole = read(text.len().max(1));
    assert_eq!(small, whole, "small reads against one read");
    let Ok(Some(out)) = whole else {
        return;
    };
    assert_eq!(out.bytes, text.len() as u64, "bytes reported");
    let records = record_lines(text);
    assert_eq!(
        out.rows.len() + out.rejected.len(),
        records.len(),
        "loaded + rejected = non-blank lines: {out:?}"
    );
    let mut rejected: Vec<u64> = out.rejected.iter().map(|r| r.0).collect();
    rejected.dedup();
    assert_eq!(rejected.len(), out.rejected.len(), "a line rejected twice");
    for line in rejected {
        assert!(
            records.binary_search(&line).is_ok(),
            "rejected line {line} is not a record: {out:?}"
        );
    }
});
