//! The command line's grammar: the global options, one subcommand per command,
//! and the formats each command can print. The `///` docs are the `--help`
//! text. What a command does is in `cli/<command>.rs`.
//!
//! The global options are described once, in `sluice --help`; a command's
//! help lists its own options and names the global ones it honours
//! ([`command`]).

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// sluice: a SQL-first ELT warehouse engine on Delta tables.
///
/// Load raw CSV / NDJSON / Parquet files into Delta tables on a local folder or
/// object storage, build SQL models from them, and query everything with SQL.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command's name.
#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Project folder (holding sluice.toml or dbt_project.yml). Default: the
    /// current directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,

    /// Warehouse URI: a local folder, file://..., s3://bucket/prefix or memory://.
    /// Default: `warehouse` in the project's sluice.toml (`warehouse/` in the project).
    #[arg(long, global = true, env = "SLUICE_WAREHOUSE", value_name = "URI")]
    pub warehouse: Option<String>,

    /// Progress bars on stderr (load, seed, run, build, test).
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// dbt's `target.name` in templates and naming macros (`{% if target.name
    /// == 'prod' %}`). Default: dev.
    #[arg(long, global = true, env = "SLUICE_TARGET", value_name = "NAME")]
    pub target: Option<String>,

    /// Plan queries and model runs over these `sluice worker`s
    /// (comma-separated http://host:port). Default: `[cluster] workers` in
    /// sluice.toml; none runs everything in this process.
    #[arg(
        long,
        global = true,
        env = "SLUICE_WORKERS",
        value_name = "URLS",
        value_delimiter = ','
    )]
    pub workers: Option<Vec<String>>,

    /// Log more on stderr: -v sluice's own debug lines, -vv also the
    /// libraries' (DataFusion, Delta, ...). RUST_LOG overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// When progress bars are drawn.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Only when stderr is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The global options (by id) each command honours: they are named at the
/// end of its help. A command accepts the others and ignores them.
fn honoured_globals(command: &str) -> &'static [&'static str] {
    match command {
        "init" | "hash-password" => &["verbose"],
        "load" | "seed" => &["project", "warehouse", "progress", "verbose"],
        "run" | "build" | "test" => &["project", "warehouse", "progress", "workers", "verbose"],
        "worker" => &["project", "warehouse", "verbose"],
        "sql" | "serve" | "materialize" | "features" | "snapshot" | "compile" | "lineage" => {
            &["project", "warehouse", "workers", "verbose"]
        }
        _ => &["project", "warehouse", "verbose"],
    }
}

/// The command line, as `main` parses it: [`Cli`]'s grammar with the global
/// options described once, in `sluice --help`. Each command's help lists
/// only its own options and, in a last line, the global options it honours.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // Copies the global options into every command (what clap shows).
    cmd.build();
    let globals: Vec<(String, String)> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| {
            let name = match (a.get_long(), a.get_short()) {
                (_, Some(short)) => format!("-{short}"),
                (Some(long), None) => format!("--{long}"),
                (None, None) => a.get_id().to_string(),
            };
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .filter(|_| a.get_action().takes_values())
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            (a.get_id().to_string(), format!("{name}{value}"))
        })
        .collect();
    for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
        let honoured = honoured_globals(sub.get_name());
        let names: Vec<&str> = globals
            .iter()
            .filter(|(id, _)| honoured.contains(&id.as_str()))
            .map(|(_, shown)| shown.as_str())
            .collect();
        hide_globals(sub, &names.join(", "));
    }
    cmd
}

/// Hides the global options in `cmd` and its subcommands and names the
/// honoured ones (`shown`) in a last line.
fn hide_globals(cmd: &mut clap::Command, shown: &str) {
    let note = format!("Global options: {shown} (see `sluice --help`)");
    *cmd = std::mem::take(cmd)
        .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a })
        .after_help(note);
    for sub in cmd.get_subcommands_mut() {
        hide_globals(sub, shown);
    }
}

/// What `sql`, `history` and `features historical` print rows as.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RowsFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// What a command that reports on its work prints the report as.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Aligned text, for people.
    Table,
    /// One JSON document, for programs.
    Json,
}

/// What `compile` and `features show` print (text that is no table).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextFormat {
    /// Text, for people.
    #[value(alias = "table")]
    Text,
    /// One JSON document, for programs.
    Json,
}

/// What `lineage` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LineageFormat {
    /// An indented tree.
    Text,
    /// A Graphviz digraph.
    Dot,
    /// `{"model", "upstream", "downstream"}`.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new project skeleton (sluice.toml, catalog/, sql/) in DIR.
    Init(InitArgs),
    /// Load declared sources (all, or the named ones) into Delta tables.
    ///
    /// Files already loaded (same path, size and modification time or ETag) are
    /// skipped; each source's new files land in one atomic commit. Rows that do not
    /// fit the declared schema go to `<target>__rejected`.
    Load(LoadArgs),
    /// Ingest Kafka sources (all, or the named ones) into their Delta tables
    /// until stopped: one commit per micro-batch (trigger_ms, default 1 s),
    /// each record once across restarts, kills and concurrent ingesters.
    ///
    /// Offsets live in the table (Delta `txn` actions per partition), not in a
    /// consumer group. Ctrl-C or SIGTERM commits the batch in flight and
    /// stops. `sluice load SOURCE` catches up to the current end and exits.
    Stream(StreamArgs),
    /// Run SQL against the warehouse (and files) and print the results; with no
    /// statements on a terminal, an interactive shell.
    ///
    /// Tables are `schema.table`; unqualified names resolve in the default schema.
    /// Files: SELECT * FROM 'data/x.parquet', read_csv('x.csv'), read_json('x.ndjson'),
    /// read_parquet('dir/*.parquet'). Point in time: `l ASOF [LEFT] JOIN r ON l.k = r.k
    /// AND l.ts >= r.ts [TOLERANCE ...] [TIEBREAK BY ...]`, `t VERSION AS OF 3`,
    /// `t TIMESTAMP AS OF '2026-01-01T00:00:00Z'`.
    Sql(SqlArgs),
    /// Run the pipeline: `sluice run` loads every source, then builds the models
    /// with their tests; `sluice run models` builds only the models.
    Run(RunArgs),
    /// Build the selected models, running each model's tests right after it; a
    /// failing test skips the model's descendants.
    Build(ModelArgs),
    /// Run the data tests (schema.yml generic tests, config checks, singular tests).
    Test(TestArgs),
    /// Load the CSV files under seeds/ as tables (types inferred), replacing them.
    Seed(SeedArgs),
    /// Install the dbt packages of packages.yml into dbt_packages/: `local:`
    /// packages are copied, `git:` packages cloned (revision, subdirectory).
    Deps(DepsArgs),
    /// Run the snapshots (dbt SCD type 2): record each changed row of their
    /// queries as a new version in the snapshot's table, closing the old one.
    ///
    /// Snapshots are `{% snapshot name %}` blocks in .sql files under
    /// snapshots/ (dbt_project.yml `snapshot-paths`) and `snapshots:` entries
    /// with `relation:` in .yml files. Each run is one commit. `sluice build`
    /// runs them too: before the models when they read no model, after them
    /// otherwise.
    Snapshot(SnapshotArgs),
    /// Render every selected model and print the execution order and the SQL that
    /// would run, without running anything.
    Compile(CompileArgs),
    /// Show the models upstream and downstream of MODEL, or the column lineage of
    /// MODEL.COLUMN.
    Lineage(LineageArgs),
    /// Serve the warehouse over Arrow Flight SQL (ADBC, JDBC, SQLAlchemy, pyarrow).
    ///
    /// Users come from [[server.users]] in sluice.toml (password hashes from
    /// `sluice hash-password`) and SLUICE_USER/SLUICE_PASSWORD. Without users the
    /// server is open and binds only to loopback. Clients log in with Basic
    /// credentials (Handshake) and get a bearer token. Same SQL as `sluice sql`;
    /// CREATE TABLE / INSERT / DELETE / DROP write Delta tables.
    Serve(ServeArgs),
    /// Run a worker of a cluster: coordinators (`sluice sql`, `run`, `serve`
    /// with `[cluster] workers` or --workers) send it parts of their queries.
    ///
    /// It reads the same warehouse as its coordinator (a folder every process
    /// sees, or s3:// with the same settings). Prints `sluice worker:
    /// listening on http://HOST:PORT`; stop it with Ctrl-C or SIGTERM.
    Worker(WorkerArgs),
    /// Write the latest feature values per entity into the online store.
    ///
    /// Without --start/--end, continues from the table version the last run
    /// covered: appended rows are merged (newest event time wins, so late rows
    /// never replace newer values); a rewritten table is re-read in full.
    /// With --start/--end, merges the rows whose event time is in [start, end).
    Materialize(MaterializeArgs),
    /// Feature views (models with feature_view config) and training sets.
    Features {
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Print a password hash for [[server.users]] password_hash in sluice.toml.
    ///
    /// Reads the password from standard input when not given (keeps it out of
    /// the shell history).
    HashPassword(HashPasswordArgs),
    /// List the versions of a table: version, time, operation, rows, load id, files.
    History(HistoryArgs),
    /// Compact a table's small data files into files of about 128 MiB, in one
    /// commit that changes no rows.
    ///
    /// Files under half the target size are merged (and only when there are
    /// at least --min-small-files of them); no file is deleted, so every older
    /// version still reads (`sluice vacuum` deletes the replaced files later).
    /// Commits made meanwhile by loads or a stream are kept; a concurrent
    /// commit that replaced the same files makes this one fail: run it again.
    Optimize(OptimizeArgs),
    /// Delete the data files that no version committed in the last --retain
    /// still reads (files replaced by optimize, overwrites, deletes).
    ///
    /// Versions committed before the retention window may no longer read
    /// afterwards (`VERSION AS OF` fails naming the deleted file). The log is
    /// kept. A retention under 7 days needs --allow-short-retention.
    Vacuum(VacuumArgs),
    /// dbt sources declared under `sources:` in the models' .yml files.
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// The project's documentation site: graph, SQL, columns, column lineage,
    /// tests and their history, table versions, runs, freshness.
    Docs {
        #[command(subcommand)]
        command: DocsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Write the site (index.html, app.js, app.css, data.js) into --out; it
    /// opens from file:// with nothing fetched.
    Generate(DocsGenerateArgs),
    /// Serve the site over HTTP (generating it first when --out holds none).
    Serve(DocsServeArgs),
}

#[derive(Args, Debug)]
pub struct DocsGenerateArgs {
    /// Folder of the site. Default: target/docs in the project.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
}

#[derive(Args, Debug)]
pub struct DocsServeArgs {
    /// Folder of the site. Default: target/docs in the project.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Subcommand, Debug)]
pub enum SourceCommand {
    /// Check how recently each source table was loaded: max(loaded_at_field)
    /// against its freshness policy (warn_after, error_after); writes
    /// target/sources.json and fails when a table is past error_after.
    Freshness(FreshnessArgs),
}

#[derive(Args, Debug)]
pub struct FreshnessArgs {
    /// Tables to check: `source:NAME` or `source:NAME.TABLE`. Default: every
    /// table with a freshness policy.
    #[arg(short = 's', long, num_args = 1.., value_name = "SPEC")]
    pub select: Vec<String>,
    /// Summary format: a line per table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Folder to create the project in (created when missing).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Source names from catalog/*.toml. Default: every source.
    pub sources: Vec<String>,
    /// Reload files even if they were loaded before. On an append source this
    /// adds their rows a second time, so it also needs --allow-duplicates.
    #[arg(long)]
    pub force: bool,
    /// Let an append source load rows it already holds again: with --force,
    /// every file; alone, the files that changed since they were loaded
    /// (otherwise an error names them).
    #[arg(long)]
    pub allow_duplicates: bool,
    /// Fail the load (committing nothing) when more than N rows are rejected.
    #[arg(long, value_name = "N")]
    pub max_rejected: Option<u64>,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// Kafka source names from catalog/*.toml. Default: every Kafka source.
    pub sources: Vec<String>,
    /// Print each partition's loaded offset, end and lag, and exit.
    #[arg(long)]
    pub status: bool,
    /// Micro-batch trigger interval in milliseconds (default: each source's
    /// `trigger_ms`, 1000).
    #[arg(long, value_name = "MS")]
    pub trigger_ms: Option<u64>,
    /// Report format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The statements to run, separated by `;`. Without QUERY and -f: an
    /// interactive shell when standard input is a terminal (.help lists its
    /// commands), else the statements read from standard input.
    pub query: Option<String>,
    /// Run the statements in FILE (`-`: standard input); the first that fails
    /// stops the run and is named by its line.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "query"
    )]
    pub file: Option<PathBuf>,
    /// Output format. A table is followed by its row count and time; csv and
    /// json print only the rows (and, with several statements, only the last
    /// one's result).
    #[arg(long, value_enum, default_value_t = RowsFormat::Table)]
    pub format: RowsFormat,
    /// Print at most N rows of each result (a table shows the first and last
    /// N/2, a note says how many were left out); 0 prints all. Default: 40 for
    /// tables, all rows for csv and json.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// `models`: build only the models (no load, no tests).
    #[arg(value_enum, value_name = "models", hide_possible_values = true)]
    pub step: Option<RunStep>,
    #[command(flatten)]
    pub models: ModelArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunStep {
    /// Only the models.
    Models,
}

/// Which models, and the values of var(): taken by run, build, test and
/// compile.
#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Models to include, dbt syntax: `name`, `+name` (with ancestors), `name+`
    /// (with descendants), `tag:x`, `path:dir`, `stg_*`; space = union,
    /// comma = intersection. Default: all.
    #[arg(short = 's', long, num_args = 1.., value_name = "SPEC")]
    pub select: Vec<String>,
    /// Models to leave out (same syntax as --select).
    #[arg(long, num_args = 1.., value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
}

/// Options of run and build.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub pick: SelectArgs,
    /// Models run at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Rebuild incremental models from scratch.
    #[arg(long)]
    pub full_refresh: bool,
    /// Summary format: a line per model and test for people, json for programs
    /// (the lines then go to stderr).
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

/// Options of test.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    #[command(flatten)]
    pub pick: SelectArgs,
    /// Tests run at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Summary format: a line per test for people, json for programs (the
    /// lines then go to stderr).
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
    /// Run nothing: show every recorded result of each test and load (from
    /// _sluice.runs): runs, pass/fail counts, last failures and the trend.
    #[arg(long)]
    pub history: bool,
}

impl From<TestArgs> for ModelArgs {
    fn from(t: TestArgs) -> Self {
        ModelArgs {
            pick: t.pick,
            threads: t.threads,
            full_refresh: false,
            format: t.format,
        }
    }
}

/// Options of compile.
#[derive(Args, Debug, Clone)]
pub struct CompileArgs {
    #[command(flatten)]
    pub pick: SelectArgs,
    /// Render incremental models as on a first run (as `run --full-refresh`
    /// would build them).
    #[arg(long)]
    pub full_refresh: bool,
    /// Output: the execution order and SQL as text, or json for programs.
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    pub format: TextFormat,
}

impl ModelArgs {
    /// `--select` and `--exclude`.
    pub fn selection(&self) -> sluice::models::Selection {
        self.pick.selection()
    }

    /// `--threads`, else the number of cores.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// `--vars` as a mapping (none: empty).
    pub fn vars(&self) -> sluice::Result<BTreeMap<String, serde_json::Value>> {
        self.pick.vars()
    }
}

impl SelectArgs {
    /// `--select` and `--exclude`.
    pub fn selection(&self) -> sluice::models::Selection {
        sluice::models::Selection {
            select: self.select.clone(),
            exclude: self.exclude.clone(),
        }
    }

    /// `--vars` as a mapping (none: empty).
    pub fn vars(&self) -> sluice::Result<BTreeMap<String, serde_json::Value>> {
        parse_vars(self.vars.as_deref())
    }
}

/// A `--vars` value as a mapping (none: empty).
pub fn parse_vars(raw: Option<&str>) -> sluice::Result<BTreeMap<String, serde_json::Value>> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    let v: serde_json::Value = serde_yaml::from_str(raw).map_err(|e| {
            sluice::Error::Usage(format!(
                "--vars `{raw}` is not JSON or YAML ({}); pass a mapping, e.g. '{{\"start_date\": \"2026-01-01\"}}'",
                e.to_string().lines().next().unwrap_or_default()
            ))
        })?;
    match v {
        serde_json::Value::Object(m) => Ok(m.into_iter().collect()),
        serde_json::Value::Null => Ok(BTreeMap::new()),
        _ => Err(sluice::Error::Usage(
            "--vars must be a mapping, e.g. '{\"start_date\": \"2026-01-01\"}'".into(),
        )),
    }
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Seed names (file names without .csv). Default: every seed.
    pub seeds: Vec<String>,
    /// Values for var() in the project's on-run-start / on-run-end hooks, as
    /// JSON or YAML, e.g. '{"schema": "raw"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

/// Options of snapshot.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Snapshots to run: names, globs (`orders_*`) or `tag:x`. Default: all.
    #[arg(short = 's', long, num_args = 1.., value_name = "SPEC")]
    pub select: Vec<String>,
    /// Snapshots to leave out (same syntax as --select).
    #[arg(long, num_args = 1.., value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
    /// Summary format: a line per snapshot for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

impl SnapshotArgs {
    /// `--vars` as a mapping (none: empty).
    pub fn vars(&self) -> sluice::Result<BTreeMap<String, serde_json::Value>> {
        SelectArgs {
            vars: self.vars.clone(),
            ..Default::default()
        }
        .vars()
    }
}

#[derive(Args, Debug)]
pub struct DepsArgs {
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct LineageArgs {
    /// Model name (`user_features`) or `schema.table`: the models upstream and
    /// downstream of it. MODEL.COLUMN (`orders.amount`) or
    /// schema.table.column (`raw.transactions.amount`, a source's column
    /// too): the columns it is computed from and the columns and features
    /// computed from it, with the kind of each dependency (copied,
    /// transformed, aggregated, filter).
    pub model: String,
    /// Only the columns upstream of MODEL.COLUMN.
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// Only the columns downstream of MODEL.COLUMN (impact analysis).
    #[arg(long)]
    pub downstream: bool,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
    /// Output: an indented tree, Graphviz dot or JSON.
    #[arg(long, value_enum, default_value_t = LineageFormat::Text)]
    pub format: LineageFormat,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to bind (default: [server] host, else 127.0.0.1).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port (default: [server] port, else 50051; 0 picks a free port).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Address to bind (default 127.0.0.1; 0.0.0.0 for other machines).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port (default 50052; 0 picks a free port).
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub port: u16,
}

#[derive(Args, Debug)]
pub struct MaterializeArgs {
    /// Views to materialize (default: every registered feature view).
    pub views: Vec<String>,
    /// Event-time lower bound, inclusive: `2026-01-01`, `2026-01-01 12:00:00`
    /// (UTC) or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start: Option<i64>,
    /// Event-time upper bound, exclusive (same forms as --start).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end: Option<i64>,
    /// Rebuild from the whole table.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub full: bool,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// List the registered feature views.
    List {
        /// A table for people, json (the views' definitions) for programs.
        #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
        format: SummaryFormat,
    },
    /// Show one feature view: entities, timestamps, TTL, features, versions.
    Show {
        /// `user_features` or `features.user_features`.
        name: String,
        /// Text for people, json (the definition) for programs.
        #[arg(long, value_enum, default_value_t = TextFormat::Text)]
        format: TextFormat,
    },
    /// Build a point-in-time training set: for each entity row, each view's
    /// newest row at or before the entity's timestamp, within the view's TTL.
    Historical(HistoricalArgs),
}

#[derive(Args, Debug)]
pub struct HistoricalArgs {
    /// Entity rows: a table (`raw.labels`) or a query (`SELECT ...`).
    #[arg(long)]
    pub entities: String,
    /// Views (`user_features`) or features (`merchant_features:risk_score`).
    #[arg(long, num_args = 1.., required_unless_present = "service")]
    pub features: Vec<String>,
    /// A feature service from [feature_services.NAME] in sluice.toml.
    #[arg(long)]
    pub service: Option<String>,
    /// The entities' timestamp column (default: event_timestamp, else the
    /// view's event-time name, else the only time column).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Prefix feature columns with their view (`user_features__txn_count`).
    #[arg(long)]
    pub full_names: bool,
    /// Write the result to a file (.parquet, .csv, .json or .ndjson, or any
    /// path with a `/`) or a table (`schema.table`, replaced) instead of
    /// printing it.
    #[arg(long, value_name = "FILE|TABLE")]
    pub out: Option<String>,
    /// Print the SQL (with pinned table versions) instead of running it.
    #[arg(long)]
    pub sql: bool,
    /// How the rows are printed (without --out or --sql).
    #[arg(long, value_enum, default_value_t = RowsFormat::Table)]
    pub format: RowsFormat,
}

#[derive(Args, Debug)]
pub struct HashPasswordArgs {
    /// The password.
    pub password: Option<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// `schema.table`, or a table of the default schema.
    pub table: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RowsFormat::Table)]
    pub format: RowsFormat,
}

#[derive(Args, Debug)]
pub struct OptimizeArgs {
    /// `schema.table`, or a table of the default schema.
    pub table: String,
    /// Also write a checkpoint of the latest version (readers then start from
    /// it instead of replaying every commit).
    #[arg(long)]
    pub checkpoint: bool,
    /// Compact only when at least this many files are under half the target
    /// size (cheap to call after every batch).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub min_small_files: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct VacuumArgs {
    /// `schema.table`, or a table of the default schema.
    pub table: String,
    /// Keep every file a version committed this recently reads: `7d`, `168h`,
    /// `30m` (units s, m, h, d, w).
    #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
    pub retain: u64,
    /// List the files that would be deleted and their bytes; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept a retention under 7 days (time travel to older versions and
    /// readers still on them fail).
    #[arg(long)]
    pub allow_short_retention: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

/// A retention such as `7d` or `168h`, in seconds (clap's value parser of
/// `vacuum --retain`).
fn parse_retention(s: &str) -> Result<u64, String> {
    sluice::models::config::parse_duration(s).map_err(|e| e.to_string())
}

/// `2026-01-01`, `2026-01-01 12:00:00` (UTC) or RFC 3339, as microseconds
/// since the epoch (clap's value parser of --start and --end).
fn parse_time(s: &str) -> Result<i64, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc().timestamp_micros());
    }
    Err("not a time: use 2026-01-31, '2026-01-31 12:00:00' (UTC) or RFC 3339".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    /// Every option and argument a command shows has a description, and a
    /// command shows no global option (they are described once, at the top).
    #[test]
    fn every_shown_option_is_described_once() {
        fn walk(cmd: &clap::Command, top: bool) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                assert!(
                    a.get_help().is_some(),
                    "`{}` of `{}` has no description",
                    a.get_id(),
                    cmd.get_name()
                );
                assert!(
                    top || !a.is_global_set(),
                    "`{}` shows the global `{}`",
                    cmd.get_name(),
                    a.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub, false);
            }
        }
        walk(&command(), true);
    }

    #[test]
    fn retentions() {
        assert_eq!(parse_retention("7d"), Ok(7 * 86_400));
        assert_eq!(parse_retention("168h"), Ok(7 * 86_400));
        assert_eq!(parse_retention("30m"), Ok(1800));
        assert!(parse_retention("7").unwrap_err().contains("no unit"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000_000));
        assert_eq!(parse_time("1970-01-01 00:00:01"), Ok(1_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01+01:00"), Ok(-3_599_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}
