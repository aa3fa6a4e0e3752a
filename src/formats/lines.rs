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

/// One line of a [`LineSplitter`]'s input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line (without its `\n`), numbered from 1.
    Text { number: u64, text: &'a [u8] },
    /// A line longer than the cap: its first `cap` bytes; the rest was
    /// skipped. `blank`: the whole line is ASCII whitespace.
    TooLong {
        number: u64,
        prefix: &'a [u8],
        blank: bool,
    },
}

/// Splits a byte stream into `\n`-terminated lines (NDJSON), numbered from 1,
/// without a UTF-8 byte-order mark at the start of the first. A line longer than
/// `cap` bytes is not kept whole: it is reported as [`Line::TooLong`] with its
/// first `cap` bytes, and the rest up to its end is skipped, so one line without
/// an end cannot hold the whole file in memory. Memory: at most `cap` plus one
/// pushed chunk.
pub struct LineSplitter {
    cap: usize,
    carry: Vec<u8>,
    /// Lines reported so far (the number of the last one).
    number: u64,
    /// In a line over the cap: its number, first `cap` bytes, and whether all
    /// of it so far is whitespace.
    skipping: Option<(u64, Vec<u8>, bool)>,
}

impl LineSplitter {
    pub fn new(cap: usize) -> Self {
        LineSplitter {
            cap: cap.max(1),
            carry: Vec::new(),
            number: 0,
            skipping: None,
        }
    }

    /// Feeds the next bytes; `f` is called with each complete line, in order
    /// (its error stops the splitting and is returned).
    pub fn push<E>(
        &mut self,
        mut bytes: &[u8],
        mut f: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some((_, _, blank)) = &mut self.skipping {
            let end = memchr::memchr(b'\n', bytes);
            let skipped = &bytes[..end.unwrap_or(bytes.len())];
            *blank = *blank && skipped.iter().all(u8::is_ascii_whitespace);
            let Some(end) = end else {
                return Ok(());
            };
            bytes = &bytes[end + 1..];
            if let Some((number, prefix, blank)) = self.skipping.take() {
                f(Line::TooLong {
                    number,
                    prefix: &prefix,
                    blank,
                })?;
            }
        }
        self.carry.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &self.carry[start..]) {
            let line = start..start + pos;
            start += pos + 1;
            self.number += 1;
            if let Err(e) = emit(&self.carry[line], self.number, self.cap, &mut f) {
                self.carry.drain(..start);
                return Err(e);
            }
        }
        self.carry.drain(..start);
        // The tail is line 1 while no line has ended: without its byte-order mark.
        let bom = match self.number {
            0 if self.carry.starts_with(b"\xEF\xBB\xBF") => 3,
            _ => 0,
        };
        if self.carry.len() - bom > self.cap {
            self.number += 1;
            let line = &self.carry[bom..];
            let blank = line.iter().all(u8::is_ascii_whitespace);
            let prefix = line[..self.cap].to_vec();
            self.carry = Vec::new();
            self.skipping = Some((self.number, prefix, blank));
        }
        Ok(())
    }

    /// Ends the input: the last line, if it has no `\n`, goes to `f`.
    pub fn finish<E>(&mut self, mut f: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        if let Some((number, prefix, blank)) = self.skipping.take() {
            return f(Line::TooLong {
                number,
                prefix: &prefix,
                blank,
            });
        }
        if self.carry.is_empty() {
            return Ok(());
        }
        self.number += 1;
        let carry = std::mem::take(&mut self.carry);
        emit(&carry, self.number, self.cap, &mut f)
    }
}

fn emit<E>(
    line: &[u8],
    number: u64,
    cap: usize,
    f: &mut impl FnMut(Line<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let line = if number == 1 {
        line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
    } else {
        line
    };
    if line.len() > cap {
        f(Line::TooLong {
            number,
            prefix: &line[..cap],
            blank: line.iter().all(u8::is_ascii_whitespace),
        })
    } else {
        f(Line::Text { number, text: line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_cap_are_cut_and_skipped_in_any_chunking() {
        let text = b"\xEF\xBB\xBFab\n\nabcdefgh\nxy\r\n0123456789012345\n          \nlast";
        let want = vec![
            "1 text ab".to_string(),
            "2 text ".to_string(),
            "3 long abcde".to_string(),
            "4 text xy\r".to_string(),
            "5 long 01234".to_string(),
            "6 long blank      ".to_string(),
            "7 text last".to_string(),
        ];
        for chunk in 1..text.len() + 1 {
            let mut s = LineSplitter::new(5);
            let mut got = Vec::new();
            let mut take = |l: Line<'_>| -> Result<(), ()> {
                got.push(match l {
                    Line::Text { number, text } => {
                        format!("{number} text {}", String::from_utf8_lossy(text))
                    }
                    Line::TooLong {
                        number,
                        prefix,
                        blank,
                    } => {
                        format!(
                            "{number} long{} {}",
                            if blank { " blank" } else { "" },
                            String::from_utf8_lossy(prefix)
                        )
                    }
                });
                Ok(())
            };
            for c in text.chunks(chunk) {
                s.push(c, &mut take).unwrap();
                assert!(s.carry.len() <= 5 + chunk, "chunk {chunk}");
            }
            s.finish(&mut take).unwrap();
            assert_eq!(got, want, "chunk {chunk}");
        }
    }
}
