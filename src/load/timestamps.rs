//! Parsing timestamps in a declared `timestamp_format` (chrono's strftime
//! syntax) quickly, with chrono's results.
//!
//! `chrono::NaiveDateTime::parse_from_str` re-reads the format string for every
//! value; on a CSV load that was most of the CPU of a timestamp column. Here the
//! format is read once per column: [`TimestampFormat::new`] keeps chrono's parsed
//! items for the general case, and when the format only uses fixed-width numeric
//! fields (`%Y %m %d %H %M %S %F %T`, fractions `%.f %.3f %.6f %.9f`, offsets
//! `%z %:z`) and literals, a byte layout that reads the canonical spelling of
//! each value without chrono. A value the layout does not take (another width,
//! whitespace, a leap second, a bad date...) goes to chrono's parser, so the
//! result of every value is chrono's: the layout only ever accepts values that
//! chrono parses to the same instant (unit test `layout_agrees_with_chrono`).

use chrono::format::{parse, Item, Parsed, StrftimeItems};
use chrono::Datelike;

/// A declared timestamp format, read once.
pub struct TimestampFormat<'a> {
    /// The format has an offset (`%z`, `%:z`, `%#z`): values are instants,
    /// converted to UTC. Otherwise values are wall-clock times taken as UTC.
    has_offset: bool,
    /// chrono's items of the format (`None` when chrono cannot read the format:
    /// then no value parses, as with `parse_from_str`).
    items: Option<Vec<Item<'a>>>,
    layout: Option<Layout>,
}

impl<'a> TimestampFormat<'a> {
    pub fn new(fmt: &'a str) -> Self {
        let has_offset = fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z");
        let items = StrftimeItems::new(fmt).parse().ok();
        let layout = items
            .as_ref()
            .and_then(|_| Layout::compile(fmt))
            .filter(|l| l.has_offset == has_offset && (l.has_time || !has_offset));
        TimestampFormat {
            has_offset,
            items,
            layout,
        }
    }

    /// Whether values in the canonical spelling skip chrono (for tests and the
    /// benchmark notes).
    #[cfg(test)]
    fn has_layout(&self) -> bool {
        self.layout.is_some()
    }

    /// Microseconds since the epoch (UTC) of `s`, as chrono's
    /// `DateTime::parse_from_str` (formats with an offset) or
    /// `NaiveDateTime::parse_from_str`, falling back to
    /// `NaiveDate::parse_from_str` at midnight, would give; `None` when chrono
    /// does not parse it.
    pub fn micros(&self, s: &str) -> Option<i64> {
        if let Some(v) = self.layout.as_ref().and_then(|l| l.parse(s.as_bytes())) {
            return Some(v);
        }
        self.chrono_micros(s)
    }

    fn chrono_micros(&self, s: &str) -> Option<i64> {
        let items = self.items.as_ref()?;
        let mut parsed = Parsed::new();
        parse(&mut parsed, s, items.iter()).ok()?;
        if self.has_offset {
            parsed.to_datetime().ok().map(|d| d.timestamp_micros())
        } else {
            parsed
                .to_naive_datetime_with_offset(0)
                .ok()
                .or_else(|| {
                    parsed
                        .to_naive_date()
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
                .map(|d| d.and_utc().timestamp_micros())
        }
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|+00:00]` (the default spelling, no
/// format declared) as microseconds since the epoch (UTC); `None` for anything
/// else, including impossible dates.
pub(super) fn iso_micros(s: &[u8]) -> Option<i64> {
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let field = |at: usize, n: usize| digits(&s[at..], n);
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits(tail, n)? * 10i64.pow(6 - n as u32);
        rest = &tail[n..];
    }
    if !matches!(rest, b"" | b"Z" | b"+00:00") {
        return None;
    }
    let date = [field(0, 4)?, field(5, 2)?, field(8, 2)?];
    let time = [field(11, 2)?, field(14, 2)?, field(17, 2)?];
    epoch_micros(date, time, micros)
}

/// The first `n` bytes of `s` as a decimal number; `None` unless all are
/// ASCII digits.
fn digits(s: &[u8], n: usize) -> Option<i64> {
    let d = s.get(..n)?;
    let mut v = 0i64;
    for b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

/// Microseconds since the epoch of a wall-clock time taken as UTC; `None` for
/// an impossible date or time of day (no leap seconds).
fn epoch_micros(
    [year, month, day]: [i64; 3],
    [hour, minute, second]: [i64; 3],
    micros: i64,
) -> Option<i64> {
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    let days = i64::from(date.num_days_from_ce()) - 719_163;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(Vec<u8>),
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// `%.f`: an optional `.` and 1 to 9 digits.
    Fraction,
    /// `%.3f`, `%.6f`, `%.9f`: an optional `.` and exactly that many digits.
    FractionOf(u8),
    /// `%z`, `%:z`: `+HH:MM` or `+HHMM` (or `-`).
    Offset,
}

/// The fixed-width reading of a format.
#[derive(Debug)]
struct Layout {
    parts: Vec<Part>,
    has_time: bool,
    has_offset: bool,
}

impl Layout {
    /// The layout of `fmt`, or `None` when it uses anything but the fields this
    /// reads (names, 12-hour clocks, padding modifiers, whitespace...), repeats
    /// a field, or lacks a full date or a full time of day.
    fn compile(fmt: &str) -> Option<Layout> {
        let mut parts = Vec::new();
        let mut chars = fmt.chars();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c != '%' {
                // chrono reads whitespace in a format as "any whitespace".
                if c.is_whitespace() && c != ' ' {
                    return None;
                }
                literal.push(c);
                continue;
            }
            let spec = chars.next()?;
            let mut push = |p: Part, literal: &mut String| {
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(literal).into_bytes()));
                }
                parts.push(p);
            };
            match spec {
                '%' => literal.push('%'),
                'Y' => push(Part::Year, &mut literal),
                'm' => push(Part::Month, &mut literal),
                'd' => push(Part::Day, &mut literal),
                'H' => push(Part::Hour, &mut literal),
                'M' => push(Part::Minute, &mut literal),
                'S' => push(Part::Second, &mut literal),
                'z' => push(Part::Offset, &mut literal),
                'F' => {
                    push(Part::Year, &mut literal);
                    literal.push('-');
                    push(Part::Month, &mut literal);
                    literal.push('-');
                    push(Part::Day, &mut literal);
                }
                'T' => {
                    push(Part::Hour, &mut literal);
                    literal.push(':');
                    push(Part::Minute, &mut literal);
                    literal.push(':');
                    push(Part::Second, &mut literal);
                }
                ':' => match chars.next()? {
                    'z' => push(Part::Offset, &mut literal),
                    _ => return None,
                },
                '.' => match chars.next()? {
                    'f' => push(Part::Fraction, &mut literal),
                    d @ ('3' | '6' | '9') => {
                        if chars.next()? != 'f' {
                            return None;
                        }
                        push(Part::FractionOf(d as u8 - b'0'), &mut literal);
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into_bytes()));
        }
        let count = |p: &Part| parts.iter().filter(|q| *q == p).count();
        let fractions = parts
            .iter()
            .filter(|p| matches!(p, Part::Fraction | Part::FractionOf(_)))
            .count();
        if count(&Part::Year) != 1 || count(&Part::Month) != 1 || count(&Part::Day) != 1 {
            return None;
        }
        let times = [Part::Hour, Part::Minute, Part::Second].map(|p| count(&p));
        let has_time = match times {
            [1, 1, 1] => true,
            [0, 0, 0] if fractions == 0 => false,
            _ => return None,
        };
        let offsets = count(&Part::Offset);
        if fractions > 1 || offsets > 1 {
            return None;
        }
        // A digit right after a field of digits would be read by chrono as
        // part of a wider field; keep to formats where fields end clearly.
        for pair in parts.windows(2) {
            if let [Part::Fraction, next] = pair {
                if !matches!(next, Part::Literal(l) if !l[0].is_ascii_digit()) {
                    return None;
                }
            }
        }
        Some(Layout {
            parts,
            has_time,
            has_offset: offsets == 1,
        })
    }

    /// Microseconds since the epoch (UTC) of `s` in the canonical spelling of
    /// the layout; `None` for anything else.
    fn parse(&self, mut s: &[u8]) -> Option<i64> {
        let (mut year, mut month, mut day) = (0, 0, 0);
        let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
        let mut offset_secs = 0i64;
        for part in &self.parts {
            let width = match part {
                Part::Literal(l) => {
                    if !s.starts_with(l) {
                        return None;
                    }
                    l.len()
                }
                Part::Year => {
                    year = digits(s, 4)?;
                    4
                }
                Part::Month => {
                    month = digits(s, 2)?;
                    2
                }
                Part::Day => {
                    day = digits(s, 2)?;
                    2
                }
                Part::Hour => {
                    hour = digits(s, 2)?;
                    2
                }
                Part::Minute => {
                    minute = digits(s, 2)?;
                    2
                }
                Part::Second => {
                    second = digits(s, 2)?;
                    2
                }
                Part::Fraction | Part::FractionOf(_) => match s.first() {
                    Some(b'.') => {
                        let n = s[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                        let ok = match part {
                            Part::FractionOf(want) => n == usize::from(*want),
                            _ => (1..=9).contains(&n),
                        };
                        if !ok {
                            return None;
                        }
                        let kept = n.min(6);
                        micros = digits(&s[1..], kept)? * 10i64.pow(6 - kept as u32);
                        1 + n
                    }
                    _ => 0,
                },
                Part::Offset => {
                    let negative = match s.first()? {
                        b'+' => false,
                        b'-' => true,
                        _ => return None,
                    };
                    let h = digits(&s[1..], 2)?;
                    let (m, width) = match s.get(3) {
                        Some(b':') => (digits(&s[4..], 2)?, 6),
                        _ => (digits(&s[3..], 2)?, 5),
                    };
                    // A digit after the minutes would be read as seconds or
                    // rejected by chrono; leave it to chrono.
                    if h > 23 || m > 59 || s.get(width).is_some_and(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    offset_secs = (h * 60 + m) * 60 * if negative { -1 } else { 1 };
                    width
                }
            };
            s = &s[width..];
        }
        if !s.is_empty() {
            return None;
        }
        let wall = epoch_micros([year, month, day], [hour, minute, second], micros)?;
        Some(wall - offset_secs * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_reference(fmt: &str, s: &str) -> Option<i64> {
        let has_offset = fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z");
        if has_offset {
            chrono::DateTime::parse_from_str(s, fmt)
                .ok()
                .map(|d| d.timestamp_micros())
        } else {
            chrono::NaiveDateTime::parse_from_str(s, fmt)
                .ok()
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(s, fmt)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
                .map(|d| d.and_utc().timestamp_micros())
        }
    }

    const FORMATS: &[&str] = &[
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.fZ",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%:z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.3f%z",
        "%Y-%m-%d %H:%M:%S%.6f",
        "%FT%T%.9fZ",
        "%F %T",
        "%Y-%m-%d",
        "%d/%m/%Y %H:%M:%S",
        "%m/%d/%Y",
        "%Y%m%d%H%M%S",
        "%Y%m%d",
        "%d.%m.%Y %H:%M",
        "%Y-%m-%dT%H:%M:%S%#z",
        "%Y-%m-%d %I:%M:%S %p",
        "%e %b %Y %H:%M:%S",
        "%s",
        "%Y-%m-%d %H:%M:%S %%",
        "%Y-%m-%d\t%H:%M:%S",
    ];

    const VALUES: &[&str] = &[
        "2026-01-01T00:00:00Z",
        "2026-01-01 00:00:00",
        "2026-01-01T12:34:56.5Z",
        "2026-01-01 12:34:56.123456",
        "2026-01-01 12:34:56.123456789",
        "2026-01-01 12:34:56.1234567891",
        "2026-01-01 12:34:56.",
        "2026-01-01T12:34:56.123Z",
        "2026-01-01T12:34:56.123+02:00",
        "1969-12-31T23:59:59.999999Z",
        "1969-12-31 23:59:59.5",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:59:60Z",
        "2026-01-01T23:60:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00+0000",
        "2026-01-01T00:00:00+05:30",
        "2026-01-01T00:00:00-0830",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+99:00",
        "2026-01-01T00:00:00+00:60",
        "2026-01-01T00:00:00+00:0000",
        "2026-01-01T00:00:00+00",
        "2026-01-01T00:00:00 +00:00",
        "2026-01-01 00:00:00+00:00",
        "2026-01-01 00:00:00.25+01:00",
        "2026-01-01 00:00:00.25-01:00",
        "2026-01-01",
        "2026-1-01 00:00:00",
        "2026-01-01  00:00:00",
        " 2026-01-01 00:00:00",
        "2026-01-01 00:00:00 ",
        "2026-01-01 0:00:00",
        "0000-01-01 00:00:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-01-01t00:00:00z",
        "01/02/2026 03:04:05",
        "31/12/1999 23:59:59",
        "12/31/1999",
        "20260102030405",
        "20260102",
        "01.02.2026 03:04",
        "2026-01-01 00:00:00 %",
        "2026-01-01\t00:00:00",
        "2026-01-01T00:00:00−01:00",
        "1767225600",
        "garbage",
        "",
    ];

    /// Every value the layout takes gives chrono's instant, and values it
    /// leaves go to chrono: `micros` is chrono's answer for every format and
    /// value.
    #[test]
    fn layout_agrees_with_chrono() {
        for fmt in FORMATS {
            let f = TimestampFormat::new(fmt);
            for v in VALUES {
                assert_eq!(
                    f.micros(v),
                    chrono_reference(fmt, v),
                    "format {fmt:?} value {v:?}"
                );
                if let Some(layout) = &f.layout {
                    if let Some(fast) = layout.parse(v.as_bytes()) {
                        assert_eq!(Some(fast), chrono_reference(fmt, v), "{fmt:?} {v:?}");
                    }
                }
            }
        }
    }

    /// Randomised: values built from the layouts' own fields, with digits,
    /// separators and lengths perturbed.
    #[test]
    fn layout_agrees_with_chrono_on_perturbed_values() {
        let mut next = crate::load::test_rng();
        let alphabet = b"0123456789-:T .Z+z/";
        for fmt in FORMATS {
            let f = TimestampFormat::new(fmt);
            for v in VALUES {
                for _ in 0..40 {
                    let mut b = v.as_bytes().to_vec();
                    for _ in 0..(next() % 3 + 1) {
                        let i = (next() as usize) % (b.len() + 1);
                        match next() % 3 {
                            0 if i < b.len() => {
                                b[i] = alphabet[(next() as usize) % alphabet.len()];
                            }
                            1 if i < b.len() => {
                                b.remove(i);
                            }
                            _ => b.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                        }
                    }
                    let Ok(s) = std::str::from_utf8(&b) else {
                        continue;
                    };
                    assert_eq!(
                        f.micros(s),
                        chrono_reference(fmt, s),
                        "format {fmt:?} value {s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn common_formats_take_the_layout() {
        for fmt in [
            "%Y-%m-%dT%H:%M:%SZ",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%:z",
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y-%m-%dT%H:%M:%S%.fZ",
            "%Y-%m-%d %H:%M:%S%.f",
            "%F %T",
            "%Y-%m-%d",
            "%d/%m/%Y %H:%M:%S",
        ] {
            let f = TimestampFormat::new(fmt);
            assert!(f.has_layout(), "{fmt}");
        }
        for fmt in [
            "%Y-%m-%d %I:%M:%S %p",
            "%s",
            "%e %b %Y",
            "%Y-%m-%dT%H:%M:%S%#z",
        ] {
            assert!(!TimestampFormat::new(fmt).has_layout(), "{fmt}");
        }
        let f = TimestampFormat::new("%Y-%m-%dT%H:%M:%S%:z");
        assert_eq!(
            f.layout
                .as_ref()
                .and_then(|l| l.parse(b"1970-01-01T01:00:00+01:00")),
            Some(0)
        );
    }
}
