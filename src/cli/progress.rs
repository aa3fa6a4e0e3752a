//! Progress bars on standard error: one for loads and seeds (bytes and rows of
//! the current source), one for model runs (nodes done, a line per finished
//! node). Shown per `--progress` (auto: only when stderr is a terminal);
//! hidden bars cost nothing. A bar is cleared when it is dropped, also when
//! the command fails.

use super::args::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice::load::{FileReport, LoadObserver};
use sluice::models::{NodeResult, RunObserver};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Progress of a model run: a bar counting nodes, and a line per finished node.
pub struct RunBars {
    bar: Option<ProgressBar>,
}

impl RunBars {
    pub fn new(show: bool) -> Self {
        RunBars {
            bar: show.then(|| bar("[{bar:30}] {pos}/{len} {elapsed} {msg}")),
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
    fn started(&self, id: &str, _kind: &str) {
        if let Some(b) = &self.bar {
            b.set_message(id.to_string());
        }
    }

    fn finished(&self, r: &NodeResult, done: usize, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
            b.println(format!(
                "{done} of {total} {} {} {} [{:.2}s]",
                r.status.as_str().to_uppercase(),
                r.kind,
                r.id,
                r.seconds
            ));
        }
    }
}
