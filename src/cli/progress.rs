//! Progress on standard error: a bar for loads and seeds (bytes and rows of
//! the current source), and for model runs a line per node as it ends (on
//! standard output when they are the report) under a bar counting nodes.
//! Bars are shown per `--progress` (auto: only when stderr is a terminal);
//! hidden bars cost nothing. A bar is cleared when it is dropped, also when
//! the command fails.

use super::args::Progress;
use super::render::{self, NodeColumns};
use super::stdio::{note, stdout};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice::load::{FileReport, LoadObserver};
use sluice::models::{NodeResult, RunObserver};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Whether `--progress` shows bars here.
pub fn shown(progress: Progress) -> bool {
    match progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    }
}

fn bar(template: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// Progress of a load or a seed: bytes read of the current source, and its
/// rows so far.
pub struct LoadBars {
    bar: Option<ProgressBar>,
    rows: AtomicU64,
}

impl LoadBars {
    pub fn new(show: bool) -> Self {
        let bar = show.then(|| {
            let b = bar(
                "{msg:24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {prefix} rows",
            );
            b.set_prefix("0");
            b
        });
        LoadBars {
            bar,
            rows: AtomicU64::new(0),
        }
    }
}

impl Drop for LoadBars {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl LoadObserver for LoadBars {
    fn source_started(&self, source: &str, files: usize, bytes: u64) {
        self.rows.store(0, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(bytes);
            b.set_position(0);
            b.set_prefix("0");
            b.set_message(format!("{source} ({files} files)"));
        }
    }

    fn progress(&self, rows: u64, bytes: u64) {
        let done = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(b) = &self.bar {
            b.inc(bytes);
            b.set_prefix(done.to_string());
        }
    }

    fn file_finished(&self, _source: &str, file: &FileReport) {
        if let Some(b) = &self.bar {
            if file.rows_rejected > 0 {
                b.println(format!(
                    "{}: {} rows rejected",
                    file.path, file.rows_rejected
                ));
            }
        }
    }
}

/// Where a run's node lines go.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeLines {
    /// Standard output: they are the report people read (`--format table`).
    Stdout,
    /// Standard error, beside a JSON report on standard output.
    Stderr,
    /// Nowhere.
    Off,
}

/// Progress of a model run: a line per node as it ends (also when no
/// terminal shows bars: CI logs and pipes see the run as it goes), and on a
/// terminal a bar counting nodes and naming the one last started.
pub struct RunBars {
    bar: Option<ProgressBar>,
    lines: NodeLines,
    command: String,
    /// Sized when the run says what it will run.
    columns: Mutex<Option<NodeColumns>>,
}

impl RunBars {
    pub fn new(show: bool, lines: NodeLines, command: &str) -> Self {
        RunBars {
            bar: show.then(|| bar("[{bar:30}] {pos}/{len} {elapsed} {msg}")),
            lines,
            command: command.to_string(),
            columns: Mutex::new(None),
        }
    }

    /// `line` where node lines go, above the bar.
    fn print(&self, line: &str) {
        let write = || match self.lines {
            NodeLines::Stdout => {
                // A failed write is remembered by `Stdout`; the report's own
                // write then fails and sets the exit code.
                let mut out = stdout();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            NodeLines::Stderr => note(line),
            NodeLines::Off => {}
        };
        match &self.bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }
}

impl Drop for RunBars {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl RunObserver for RunBars {
    fn planned(&self, run_id: &str, nodes: &[(String, &'static str)]) {
        if let Ok(mut c) = self.columns.lock() {
            *c = Some(NodeColumns::new(nodes));
        }
        if let Some(b) = &self.bar {
            b.set_length(nodes.len() as u64);
        }
        self.print(&render::run_header(&self.command, run_id, nodes));
    }

    fn started(&self, id: &str, _kind: &str) {
        if let Some(b) = &self.bar {
            b.set_message(id.to_string());
        }
    }

    fn finished(&self, r: &NodeResult, done: usize, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
        let line = match self.columns.lock() {
            Ok(mut c) => c.get_or_insert_with(|| NodeColumns::new(&[])).line(r, done),
            Err(_) => NodeColumns::new(&[]).line(r, done),
        };
        self.print(&line);
    }

    fn retrying(&self, id: &str, attempt: u32, allowed: u32, error: &str) {
        let first = error.lines().next().unwrap_or_default();
        self.print(&format!(
            "RETRY {id}: a worker failed, running it again ({attempt} of {allowed}): {first}"
        ));
    }
}
