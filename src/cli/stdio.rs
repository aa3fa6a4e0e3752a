//! Standard output and standard error for commands.
//!
//! Output goes through [`Stdout`], which remembers how a write failed: a
//! reader that went away (`sluice sql ... | head`) ends the command quietly
//! with exit 0, as ripgrep does, and any other failed write (a full disk) is
//! an I/O error (exit 3), whatever error type the failure reaches `main` as
//! (Arrow's CSV and JSON writers turn it into text). `println!` and
//! `eprintln!` are not used: they panic when the stream is closed or full.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED_BY_READER: AtomicBool = AtomicBool::new(false);
static WRITE_FAILED: AtomicBool = AtomicBool::new(false);

/// Standard output, locked.
pub struct Stdout(std::io::StdoutLock<'static>);

/// Standard output for a command's result.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

impl Stdout {
    fn noted<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                CLOSED_BY_READER.store(true, Ordering::Relaxed);
            } else {
                WRITE_FAILED.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::noted(self.0.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Self::noted(self.0.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::noted(self.0.flush())
    }
}

/// Whether the reader of standard output went away (a broken pipe).
pub fn closed_by_reader() -> bool {
    CLOSED_BY_READER.load(Ordering::Relaxed)
}

/// Whether writing standard output failed for another reason (a full disk).
pub fn write_failed() -> bool {
    WRITE_FAILED.load(Ordering::Relaxed)
}

/// One line on standard error (notes, warnings, errors); a closed or full
/// standard error is ignored.
pub fn note(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Standard error as a writer, for notes that go with a result (row counts):
/// a closed or full standard error is ignored, as in [`note`].
pub struct Stderr;

/// Standard error for notes.
pub fn stderr() -> Stderr {
    Stderr
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
