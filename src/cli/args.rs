//! The command line's grammar: the global options, one subcommand per command,
//! and the formats each command can print. The `///` docs are the `--help`
//! text. What a command does is in `cli/<command>.rs`.

use clap::{Args, Parser, Subcommand, ValueEnum};
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

/// Options every command takes.
#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Project folder (holding sluice.toml). Default: the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,

    /// Warehouse URI: a local folder, file://..., s3://bucket/prefix or memory://.
    /// Default: `warehouse` in the project's sluice.toml (`warehouse/` in the project).
    #[arg(long, global = true, env = "SLUICE_WAREHOUSE", value_name = "URI")]
    pub warehouse: Option<String>,

    /// Progress bars on stderr: auto (only on a terminal), always or never.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
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
    Test(ModelArgs),
    /// Load the CSV files under seeds/ as tables (types inferred), replacing them.
    Seed(SeedArgs),
    /// Render every selected model and print the execution order and the SQL that
    /// would run, without running anything.
    Compile(ModelArgs),
    /// Show the models upstream and downstream of MODEL.
    Lineage(LineageArgs),
    /// Serve the warehouse over Arrow Flight SQL (ADBC, JDBC, SQLAlchemy, pyarrow).
    ///
    /// Users come from [[server.users]] in sluice.toml (password hashes from
    /// `sluice hash-password`) and SLUICE_USER/SLUICE_PASSWORD. Without users the
    /// server is open and binds only to loopback. Clients log in with Basic
    /// credentials (Handshake) and get a bearer token. Same SQL as `sluice sql`;
    /// CREATE TABLE / INSERT / DELETE / DROP write Delta tables.
    Serve(ServeArgs),
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
    /// Reload files even if they were loaded before.
    #[arg(long)]
    pub force: bool,
    /// Fail the load (committing nothing) when more than N rows are rejected.
    #[arg(long, value_name = "N")]
    pub max_rejected: Option<u64>,
    /// Summary format: a table for people, json for programs.
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
    /// `models`: only the models (no load, no tests).
    #[arg(value_enum)]
    pub step: Option<RunStep>,
    #[command(flatten)]
    pub models: ModelArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunStep {
    /// Only the models.
    Models,
}

/// Options shared by run, build, test and compile.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Models to include, dbt syntax: `name`, `+name` (with ancestors), `name+`
    /// (with descendants), `tag:x`, `path:dir`, `stg_*`; space = union,
    /// comma = intersection. Default: all.
    #[arg(short = 's', long, num_args = 1.., value_name = "SPEC")]
    pub select: Vec<String>,
    /// Models to leave out (same syntax as --select).
    #[arg(long, num_args = 1.., value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Models run at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Rebuild incremental models from scratch.
    #[arg(long)]
    pub full_refresh: bool,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

impl ModelArgs {
    /// `--select` and `--exclude`.
    pub fn selection(&self) -> sluice::models::Selection {
        sluice::models::Selection {
            select: self.select.clone(),
            exclude: self.exclude.clone(),
        }
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
        let Some(raw) = self.vars.as_deref() else {
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
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Seed names (file names without .csv). Default: every seed.
    pub seeds: Vec<String>,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,
}

#[derive(Args, Debug)]
pub struct LineageArgs {
    /// Model name (`user_features`) or `schema.table`.
    pub model: String,
    /// Output: an indented tree, Graphviz dot or JSON.
    #[arg(long, value_enum, default_value_t = LineageFormat::Text)]
    pub format: LineageFormat,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to bind (default: [server] host, else 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default: [server] port, else 50051; 0 picks a free port).
    #[arg(long)]
    pub port: Option<u16>,
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
        #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
        format: SummaryFormat,
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
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000_000));
        assert_eq!(parse_time("1970-01-01 00:00:01"), Ok(1_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01+01:00"), Ok(-3_599_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}
