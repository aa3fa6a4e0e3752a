//! The command line, over the library: `main` parses [`args::Cli`] and calls
//! the command's `run` in `cli/<command>.rs`.
//!
//! A command opens what it needs through [`Context`], calls the library, and
//! prints: rows and JSON documents through [`print_format`], summaries for
//! people through [`render`], progress through [`progress`], all output
//! through [`stdio`]. Deciding what an argument names (a file or a table, a
//! table's schema) and building SQL are the library's job, never a command's.
//!
//! Errors are `anyhow` here; `main` maps them to exit codes by their type: a
//! [`sluice::Error`] by its [`exit_code`](sluice::Error::exit_code), a
//! [`Failed`] command 1, an I/O error 3.

pub mod args;
pub mod build;
pub mod compile;
pub mod deps;
pub mod docs;
pub mod features;
pub mod hash_password;
pub mod history;
pub mod init;
pub mod lineage;
pub mod load;
pub mod materialize;
pub mod optimize;
mod print_format;
mod progress;
mod render;
mod rows;
pub mod run;
pub mod seed;
pub mod serve;
mod shell;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod stdio;
pub mod stream;
pub mod test;
pub mod vacuum;
pub mod worker;

use sluice::project::Project;
use sluice::sql::Engine;
use sluice::warehouse::Warehouse;

/// What a command works on: the project, its warehouse, and how to show
/// progress.
pub struct Context {
    pub project: Project,
    pub warehouse: Warehouse,
    /// The warehouse as named (for messages).
    pub warehouse_uri: String,
    /// Whether progress bars are shown.
    pub progress: bool,
    /// Whether progress that is not the report (a run's node lines beside
    /// JSON) goes to stderr: unless `--progress never`.
    pub progress_lines: bool,
}

impl Context {
    /// The project and warehouse the global options name.
    pub fn open(global: &args::GlobalArgs) -> anyhow::Result<Self> {
        let mut project = Project::open(global.project.as_deref())?;
        if let Some(t) = &global.target {
            project.target = t.clone();
        }
        if let Some(w) = &global.workers {
            project.config.cluster.workers = w.clone();
        }
        let warehouse_uri = project.warehouse_location(global.warehouse.as_deref());
        let warehouse = Warehouse::open(&warehouse_uri, &project.config.warehouse.storage_options)?;
        Ok(Context {
            project,
            warehouse,
            warehouse_uri,
            progress: progress::shown(global.progress),
            progress_lines: global.progress != args::Progress::Never,
        })
    }

    /// An engine over the warehouse, with the project's online store and
    /// feature services.
    pub async fn engine(&self) -> anyhow::Result<Engine> {
        Ok(sluice::app::engine(&self.project, self.warehouse.clone()).await?)
    }
}

/// A command that ran and failed in part (models, feature views): the details
/// are printed already; exit 1.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// `e` as the one line the binary prints: `error: ` and the chain down to
/// the first sluice error, which already shows its causes (`{path}:
/// {source}`, DataFusion's readable text); a cause whose text the message
/// already holds is not repeated.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut message = format!("error: {e}");
    let mut chain = e.chain();
    let mut current = chain.next();
    while let Some(c) = current {
        if c.is::<sluice::Error>() {
            break;
        }
        current = chain.next();
        if let Some(next) = current {
            let text = next.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
        }
    }
    message
}

/// Whether `e` comes from a reader of standard output that went away
/// (`sluice sql ... | head`): no error, the command just ends.
pub fn output_closed(e: &anyhow::Error) -> bool {
    stdio::closed_by_reader()
        || e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<sluice::Error>()
                    .is_some_and(sluice::Error::is_broken_pipe)
        })
}
