//! Line counting shared by the CSV framer, the loader and the SQL file checks:
//! CR, LF and CRLF each end one line, as `csv_core` reads them.

/// Line breaks in `s`: every `\n`, and every `\r` not followed by `\n` (CRLF is
/// one break; a lone CR, as in old Mac files, is one too). `next` is the byte
/// after `s`, if known; a final `\r` with no known next byte is not counted but
/// reported as pending.
pub fn line_breaks(s: &[u8], next: Option<u8>) -> (u64, bool) {
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

/// Line breaks in a piece of a file (see [`super::framing::PieceCutter`]: pieces end with `\n`),
/// so the next piece starts on line `first + count_lines(piece)`.
pub fn count_lines(s: &[u8]) -> u64 {
    let (n, pending) = line_breaks(s, None);
    n + u64::from(pending)
}

/// `s` without the line breaks at its ends.
pub fn trim_terminator(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    while let [b'\n' | b'\r', rest @ ..] = s {
        s = rest;
    }
    s
}
