//! The `sluice` command line: a thin front end over the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice::load::{FileReport, LoadObserver, LoadOptions, LoadReport};
use sluice::project::Project;
use sluice::sql::{Engine, OutputFormat};
use sluice::warehouse::Warehouse;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

// DataFusion allocates many small, short-lived buffers; glibc malloc spent about
// 30% of a 1,000-model run in malloc/free (perf), mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's `mi_option_set` and `mi_option_get` (in the mimalloc
    /// library linked above).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// mimalloc (v3, as libmimalloc-sys 0.1.49 builds it) returns freed memory to
/// the OS 1 s after it is freed. A query that frees and allocates decoded
/// batches all the time still gets much of it back as fresh pages, each zeroed
/// by the kernel: the AS OF benchmark's 2 s query purged and re-faulted about
/// 550 MB, and `clear_page_erms` was 18% of its CPU (perf). A 10 s delay (for
/// arenas too: their multiplier stays 1) keeps that memory for reuse; idle
/// memory still goes back to the OS. mimalloc's own variables
/// (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_PURGE_MULT`) still win.
fn tune_allocator() {
    for (option, variable, value) in [
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10_000),
        (MI_OPTION_ARENA_PURGE_MULT, "MIMALLOC_ARENA_PURGE_MULT", 1),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: a plain setter of a global option (an integer), with a
            // valid option number; mimalloc reads the option when it next purges.
            unsafe { mi_option_set(option, value) };
        }
    }
}

/// `mi_option_purge_delay` and `mi_option_arena_purge_mult` (the same numbers
/// in mimalloc v2 and v3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const MI_OPTION_ARENA_PURGE_MULT: std::ffi::c_int = 24;

/// The allocator settings in effect, for the debug log (and the test that
/// checks the option numbers: mimalloc's own variables set the same options).
fn log_allocator() {
    // SAFETY: plain getters of global integer options, with valid numbers.
    let (delay, mult) = unsafe {
        (
            mi_option_get(MI_OPTION_PURGE_DELAY),
            mi_option_get(MI_OPTION_ARENA_PURGE_MULT),
        )
    };
    tracing::debug!("allocator: mimalloc purge delay {delay} ms, arena purge multiplier {mult}");
}

/// sluice: a SQL-first ELT warehouse engine on Delta tables.
///
/// Load raw CSV / NDJSON / Parquet files into Delta tables on a local folder or
/// object storage, build SQL models from them, and query everything with SQL.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Project folder (holding sluice.toml). Default: the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,

    /// Warehouse URI: a local folder, file://..., s3://bucket/prefix or memory://.
    /// Default: `warehouse` in the project's sluice.toml (`warehouse/` in the project).
    #[arg(long, global = true, env = "SLUICE_WAREHOUSE", value_name = "URI")]
    warehouse: Option<String>,

    /// Progress bars on stderr: auto (only on a terminal), always or never.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,

    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new project skeleton (sluice.toml, catalog/, sql/) in DIR.
    Init {
        /// Folder to create the project in (created when missing).
        dir: PathBuf,
    },
    /// Load declared sources (all, or the named ones) into Delta tables.
    ///
    /// Files already loaded (same path, size and modification time or ETag) are
    /// skipped; each source's new files land in one atomic commit. Rows that do not
    /// fit the declared schema go to `<target>__rejected`.
    Load {
        /// Source names from catalog/*.toml. Default: every source.
        sources: Vec<String>,
        /// Reload files even if they were loaded before.
        #[arg(long)]
        force: bool,
        /// Fail the load (committing nothing) when more than N rows are rejected.
        #[arg(long, value_name = "N")]
        max_rejected: Option<u64>,
        /// Summary format: a table for people, json for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a SQL query against the warehouse (and files) and print the result.
    ///
    /// Tables are `schema.table`; unqualified names resolve in the default schema.
    /// Files: SELECT * FROM 'data/x.parquet', read_csv('x.csv'), read_json('x.ndjson'),
    /// read_parquet('dir/*.parquet'). Point in time: `l ASOF [LEFT] JOIN r ON l.k = r.k
    /// AND l.ts >= r.ts [TOLERANCE ...] [TIEBREAK BY ...]`, `t VERSION AS OF 3`,
    /// `t TIMESTAMP AS OF '2026-01-01T00:00:00Z'`.
    Sql {
        /// The query (several statements may be separated by `;`).
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run the pipeline: `sluice run` loads every source, then builds the models
    /// with their tests; `sluice run models` builds only the models.
    Run {
        /// `models`: only the models (no load, no tests).
        #[arg(value_enum)]
        step: Option<RunStep>,
        #[command(flatten)]
        args: ModelArgs,
    },
    /// Build the selected models, running each model's tests right after it; a
    /// failing test skips the model's descendants.
    Build {
        #[command(flatten)]
        args: ModelArgs,
    },
    /// Run the data tests (schema.yml generic tests, config checks, singular tests).
    Test {
        #[command(flatten)]
        args: ModelArgs,
    },
    /// Load the CSV files under seeds/ as tables (types inferred), replacing them.
    Seed {
        /// Seed names (file names without .csv). Default: every seed.
        seeds: Vec<String>,
        /// Summary format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Render every selected model and print the execution order and the SQL that
    /// would run, without running anything.
    Compile {
        #[command(flatten)]
        args: ModelArgs,
    },
    /// Show the models upstream and downstream of MODEL.
    Lineage {
        /// Model name (`user_features`) or `schema.table`.
        model: String,
        /// Output: an indented tree, Graphviz dot or JSON.
        #[arg(long, value_enum, default_value_t = LineageFormat::Text)]
        format: LineageFormat,
    },
    /// Serve the warehouse over Arrow Flight SQL (ADBC, JDBC, SQLAlchemy, pyarrow).
    ///
    /// Users come from [[server.users]] in sluice.toml (password hashes from
    /// `sluice hash-password`) and SLUICE_USER/SLUICE_PASSWORD. Without users the
    /// server is open and binds only to loopback. Clients log in with Basic
    /// credentials (Handshake) and get a bearer token. Same SQL as `sluice sql`;
    /// CREATE TABLE / INSERT / DELETE / DROP write Delta tables.
    Serve {
        /// Address to bind (default: [server] host, else 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
        /// Port (default: [server] port, else 50051; 0 picks a free port).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Write the latest feature values per entity into the online store.
    ///
    /// Without --start/--end, continues from the table version the last run
    /// covered: appended rows are merged (newest event time wins, so late rows
    /// never replace newer values); a rewritten table is re-read in full.
    /// With --start/--end, merges the rows whose event time is in [start, end).
    Materialize {
        /// Views to materialize (default: every registered feature view).
        views: Vec<String>,
        /// Event-time lower bound, inclusive (`2026-01-01`, RFC 3339).
        #[arg(long)]
        start: Option<String>,
        /// Event-time upper bound, exclusive.
        #[arg(long)]
        end: Option<String>,
        /// Rebuild from the whole table.
        #[arg(long, conflicts_with_all = ["start", "end"])]
        full: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Feature views (models with feature_view config) and training sets.
    Features {
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Print a password hash for [[server.users]] password_hash in sluice.toml.
    ///
    /// Reads the password from standard input when not given (keeps it out of
    /// the shell history).
    HashPassword {
        /// The password.
        password: Option<String>,
    },
    /// List the versions of a table: version, time, operation, rows, load id, files.
    History {
        /// `schema.table`, or a table of the default schema.
        table: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum FeaturesCommand {
    /// List the registered feature views.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one feature view: entities, timestamps, TTL, features, versions.
    Show {
        /// `user_features` or `features.user_features`.
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Build a point-in-time training set: for each entity row, each view's
    /// newest row at or before the entity's timestamp, within the view's TTL.
    Historical {
        /// Entity rows: a table (`raw.labels`) or a query (`SELECT ...`).
        #[arg(long)]
        entities: String,
        /// Views (`user_features`) or features (`merchant_features:risk_score`).
        #[arg(long, num_args = 1.., required_unless_present = "service")]
        features: Vec<String>,
        /// A feature service from [feature_services.NAME] in sluice.toml.
        #[arg(long)]
        service: Option<String>,
        /// The entities' timestamp column (default: event_timestamp, else the
        /// view's event-time name, else the only time column).
        #[arg(long)]
        timestamp: Option<String>,
        /// Prefix feature columns with their view (`user_features__txn_count`).
        #[arg(long)]
        full_names: bool,
        /// Write the result to a file (.parquet, .csv, .json) or a table
        /// (`schema.table`, replaced) instead of printing it.
        #[arg(long)]
        out: Option<String>,
        /// Print the SQL (with pinned table versions) instead of running it.
        #[arg(long)]
        sql: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum RunStep {
    /// Only the models.
    Models,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LineageFormat {
    Text,
    Dot,
    Json,
}

/// Options shared by run, build, test and compile.
#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// Models to include, dbt syntax: `name`, `+name` (with ancestors), `name+`
    /// (with descendants), `tag:x`, `path:dir`, `stg_*`; space = union,
    /// comma = intersection. Default: all.
    #[arg(short = 's', long, num_args = 1.., value_name = "SPEC")]
    select: Vec<String>,
    /// Models to leave out (same syntax as --select).
    #[arg(long, num_args = 1.., value_name = "SPEC")]
    exclude: Vec<String>,
    /// Models run at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Rebuild incremental models from scratch.
    #[arg(long)]
    full_refresh: bool,
    /// Values for var() as JSON or YAML, e.g. '{"start_date": "2026-01-01"}'.
    #[arg(long, value_name = "JSON")]
    vars: Option<String>,
    /// Summary format: a table for people, json for programs.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    log_allocator();
    // Every thread that plans or runs SQL gets a large stack: DataFusion walks
    // expression trees recursively, and a statement may nest up to
    // sluice::sql::MAX_EXPRESSION_DEPTH levels. Untouched stack pages cost no
    // memory.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(70);
        }
    };
    let main = std::thread::Builder::new()
        .name("sluice-main".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let code = match runtime.block_on(run(cli)) {
                Ok(()) => 0,
                Err(e) => report_error(&e),
            };
            // Blocking tasks still running (a cancelled query's file reads) get
            // a moment, not forever.
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            code
        });
    let code = match main.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        // The panic message is already printed.
        Ok(Err(_)) => 70,
        Err(e) => {
            eprintln!("error: cannot start the main thread: {e}");
            70
        }
    };
    std::process::exit(code);
}

/// Stack of the threads that run SQL (see `main`).
const THREAD_STACK: usize = 64 << 20;

fn report_error(e: &anyhow::Error) -> i32 {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return 0;
        }
    }
    let mut msg = format!("error: {e}");
    for cause in e.chain().skip(1) {
        msg.push_str(&format!(": {cause}"));
    }
    eprintln!("{msg}");
    match e.downcast_ref::<sluice::Error>() {
        Some(err) => err.exit_code(),
        None => 1,
    }
}

async fn features_command(engine: &Engine, command: FeaturesCommand) -> anyhow::Result<()> {
    use sluice::features;
    let wh = engine.warehouse();
    let mut out = std::io::stdout().lock();
    match command {
        FeaturesCommand::List { format } => {
            let views = features::list_views(wh).await?;
            if format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?;
            } else if views.is_empty() {
                writeln!(
                    out,
                    "no feature views yet: give a model feature_view config and run it"
                )?;
            } else {
                writeln!(
                    out,
                    "{:<28} {:<24} {:<10} {:>8} {:>9}  online",
                    "view", "entities", "ttl", "features", "versions"
                )?;
                let store = sluice::features::settings(engine)?.online.clone();
                for v in views {
                    let ttl = v
                        .ttl_seconds
                        .map(|s| format!("{s}s"))
                        .unwrap_or_else(|| "-".into());
                    let online = match store.state(&v.name).await? {
                        Some(st) => format!(
                            "{} entities, table v{}, {}",
                            st.entity_count,
                            st.table_version
                                .map(|x| x.to_string())
                                .unwrap_or_else(|| "-".into()),
                            st.materialized_at
                        ),
                        None => "not materialized".into(),
                    };
                    writeln!(
                        out,
                        "{:<28} {:<24} {:<10} {:>8} {:>9}  {online}",
                        v.id(),
                        v.entities.join(","),
                        ttl,
                        v.features.len(),
                        v.versions.len()
                    )?;
                }
                let services = &sluice::features::settings(engine)?.services;
                if !services.is_empty() {
                    writeln!(out, "\nfeature services (sluice.toml):")?;
                    for (name, s) in services.iter() {
                        writeln!(out, "  {name:<26} {}", s.features.join(", "))?;
                    }
                }
            }
        }
        FeaturesCommand::Show { name, format } => {
            let settings = sluice::features::settings(engine)?;
            if let Some(service) = settings.services.get(&name) {
                if format == Format::Json {
                    writeln!(out, "{}", serde_json::to_string_pretty(service)?)?;
                } else {
                    writeln!(out, "feature service {name} (sluice.toml)")?;
                    if let Some(d) = &service.description {
                        writeln!(out, "  {d}")?;
                    }
                    writeln!(out, "  full names: {}", service.full_names)?;
                    writeln!(out, "  features:")?;
                    for f in &service.features {
                        writeln!(out, "    {f}")?;
                    }
                    writeln!(
                        out,
                        "  online: SELECT * FROM online.{name} WHERE <entity keys> ...; training: historical_features(..., 'service={name}')"
                    )?;
                }
                out.flush()?;
                return Ok(());
            }
            let v = features::get_view(wh, &name).await?;
            let online = settings.online.state(&v.name).await?;
            if format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "feature view {} ({})", v.name, v.id())?;
                if let Some(d) = &v.description {
                    writeln!(out, "  {d}")?;
                }
                writeln!(out, "  entities:        {}", v.entities.join(", "))?;
                writeln!(out, "  event timestamp: {}", v.event_timestamp)?;
                if let Some(c) = &v.created_timestamp {
                    writeln!(
                        out,
                        "  created:         {c} (newest wins among equal event times)"
                    )?;
                }
                match v.ttl_seconds {
                    Some(t) => writeln!(
                        out,
                        "  ttl:             {t} s (a value exactly ttl old is used)"
                    )?,
                    None => writeln!(out, "  ttl:             none")?,
                }
                if let Some(o) = &v.owner {
                    writeln!(out, "  owner:           {o}")?;
                }
                if !v.tags.is_empty() {
                    writeln!(out, "  tags:            {}", v.tags.join(", "))?;
                }
                writeln!(out, "  features:")?;
                for f in &v.features {
                    writeln!(
                        out,
                        "    {:<24} {:<28} {}",
                        f.name,
                        f.data_type,
                        f.description.as_deref().unwrap_or("")
                    )?;
                }
                match &online {
                    Some(st) => writeln!(
                        out,
                        "  online:          {} entities from table v{}, {} ({}; query online.{})",
                        st.entity_count,
                        st.table_version
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "-".into()),
                        st.materialized_at,
                        st.last.mode,
                        v.name
                    )?,
                    None => writeln!(
                        out,
                        "  online:          not materialized (sluice materialize {})",
                        v.name
                    )?,
                }
                writeln!(out, "  versions (oldest first):")?;
                for ver in &v.versions {
                    writeln!(
                        out,
                        "    {}  table v{}  sql {}  run {}",
                        ver.at,
                        ver.table_version
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "-".into()),
                        &ver.sql_hash[..ver.sql_hash.len().min(12)],
                        ver.run_id
                    )?;
                }
            }
        }
        FeaturesCommand::Historical {
            entities,
            features: refs,
            service,
            timestamp,
            full_names,
            out: target,
            sql,
            format,
        } => {
            let settings = sluice::features::settings(engine)?;
            let (refs, service_full) = settings.expand(&refs, service.as_deref())?;
            let options = features::Options {
                timestamp,
                full_names: full_names || service_full,
                service: None,
            };
            let state = engine.context().state();
            let set = features::training_sql(wh, &state, &entities, &refs, &options).await?;
            let pinned = set
                .inputs
                .iter()
                .map(|(t, v)| format!("{t}@v{v}"))
                .collect::<Vec<_>>()
                .join(", ");
            if sql {
                writeln!(out, "{};", set.sql)?;
                return Ok(());
            }
            match target {
                None => {
                    let batches = engine.query(&set.sql).await?;
                    sluice::sql::write_batches(&mut out, &batches, format.into())?;
                    eprintln!("training set read {pinned} (rebuild it with --sql)");
                }
                Some(t) => {
                    let lower = t.to_ascii_lowercase();
                    let is_file = t.contains('/')
                        || [".parquet", ".csv", ".json", ".ndjson"]
                            .iter()
                            .any(|e| lower.ends_with(e));
                    let statement = if is_file {
                        format!("COPY ({}) TO '{}'", set.sql, t.replace('\'', "''"))
                    } else {
                        format!("CREATE OR REPLACE TABLE {t} AS {}", set.sql)
                    };
                    let batches = engine.query(&statement).await?;
                    let rows = batches
                        .first()
                        .and_then(|b| b.columns().first())
                        .and_then(|c| {
                            arrow::compute::cast(c, &arrow::datatypes::DataType::UInt64).ok()
                        })
                        .and_then(|a| {
                            a.as_any()
                                .downcast_ref::<arrow::array::UInt64Array>()
                                .map(|a| a.value(0))
                        })
                        .unwrap_or(0);
                    eprintln!("wrote {rows} rows to {t}; read {pinned}");
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `2026-01-01`, `2026-01-01 12:00:00` (UTC) or RFC 3339, as microseconds.
fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
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
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    Err(sluice::Error::Usage(format!(
        "{flag} `{s}` is not a time: use 2026-01-31, '2026-01-31 12:00:00' (UTC) or RFC 3339"
    ))
    .into())
}

async fn materialize_command(
    engine: &Engine,
    names: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    full: bool,
    format: Format,
) -> anyhow::Result<()> {
    use sluice::features;
    let wh = engine.warehouse();
    let range = match (&start, &end) {
        (None, None) => None,
        _ => Some(features::online::Range {
            start: start
                .as_deref()
                .map(|s| parse_time("--start", s))
                .transpose()?,
            end: end.as_deref().map(|s| parse_time("--end", s)).transpose()?,
        }),
    };
    let views = if names.is_empty() {
        let all = features::list_views(wh).await?;
        if all.is_empty() {
            anyhow::bail!(
                "no feature views yet: give a model feature_view config and run it (`sluice run`)"
            );
        }
        all
    } else {
        let mut v = Vec::new();
        for n in &names {
            v.push(features::get_view(wh, n).await?);
        }
        v
    };
    let store = sluice::features::settings(engine)?.online.clone();
    let mut reports = Vec::new();
    let mut failed = 0;
    for view in &views {
        match features::online::materialize(engine, &store, view, range, full).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                failed += 1;
                eprintln!("materialize {}: {e}", view.name);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    } else {
        writeln!(
            out,
            "{:<28} {:<12} {:>9} {:>10} {:>9} {:>10} {:>8}",
            "view", "mode", "version", "rows read", "written", "entities", "seconds"
        )?;
        for r in &reports {
            writeln!(
                out,
                "{:<28} {:<12} {:>9} {:>10} {:>9} {:>10} {:>8.2}",
                r.view,
                r.mode,
                match r.from_version {
                    Some(f) if r.mode == "incremental" => format!("{f}->{}", r.to_version),
                    _ => r.to_version.to_string(),
                },
                r.rows_read,
                r.entities_written,
                r.entity_count,
                r.seconds
            )?;
            if let Some(reason) = &r.reason {
                writeln!(out, "  {}: full because {reason}", r.view)?;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {} view(s) failed to materialize", views.len());
    }
    Ok(())
}

/// An engine over the project's warehouse, with its online store and
/// feature services.
async fn project_engine(project: &Project, warehouse: Warehouse) -> anyhow::Result<Engine> {
    Ok(sluice::app::engine(project, warehouse).await?)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,deltalake_core=error,sluice::server=info",
        1 => "info,sluice=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::HashPassword { password } = &cli.command {
        let password = match password {
            Some(p) => p.clone(),
            None => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        if password.is_empty() {
            return Err(sluice::Error::Usage("the password is empty".into()).into());
        }
        println!("{}", sluice::server::hash_password(&password));
        return Ok(());
    }
    if let Command::Init { dir } = &cli.command {
        let written = sluice::project::init(dir)?;
        println!("created a sluice project in {}:", dir.display());
        for f in written {
            println!("  {}", f.display());
        }
        println!(
            "next: cd {} && sluice run && sluice sql \"SELECT * FROM marts.events_by_kind\"",
            dir.display()
        );
        return Ok(());
    }
    let root = match &cli.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if cli.project.is_some()
        && !root.join(sluice::project::PROJECT_FILE).exists()
        && !root.join(sluice::project::DBT_PROJECT_FILE).exists()
    {
        return Err(sluice::Error::config(
            root.join(sluice::project::PROJECT_FILE),
            "not found; pass the folder holding sluice.toml to --project, or create one with `sluice init DIR`",
        )
        .into());
    }
    let project = Project::load(&root)?;
    let warehouse_uri = match (&cli.warehouse, project.has_config) {
        (Some(w), _) => project.warehouse_uri(Some(w)),
        (None, true) => project.warehouse_uri(None),
        // Outside a project, as `duckdb -c`: use ./warehouse when present,
        // otherwise an empty in-memory warehouse (create nothing on disk).
        (None, false) => {
            if root.join("warehouse").is_dir() {
                project.warehouse_uri(None)
            } else {
                "memory:///".to_string()
            }
        }
    };
    let warehouse = Warehouse::open(&warehouse_uri, &project.config.warehouse.storage_options)?;
    let show_progress = match cli.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::Init { .. } | Command::HashPassword { .. } => Ok(()),
        Command::Features { command } => {
            let engine = project_engine(&project, warehouse).await?;
            features_command(&engine, command).await
        }
        Command::Materialize {
            views,
            start,
            end,
            full,
            format,
        } => {
            let engine = project_engine(&project, warehouse).await?;
            materialize_command(&engine, views, start, end, full, format).await
        }
        Command::Serve { host, port } => {
            let options = sluice::server::ServeOptions::from_config(
                &project.config.server,
                &root,
                host.as_deref(),
                port,
            )?;
            let engine = project_engine(&project, warehouse).await?;
            let users = options.users.len();
            sluice::server::serve(
                engine,
                options,
                |addr, tls| {
                    let scheme = if tls { "grpc+tls" } else { "grpc" };
                    println!("sluice serve: listening on {scheme}://{addr}");
                    eprintln!(
                        "sluice serve: {} user(s); warehouse {}; stop with Ctrl-C",
                        users, warehouse_uri
                    );
                    let _ = std::io::stdout().flush();
                },
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Command::Load {
            sources,
            force,
            max_rejected,
            format,
        } => {
            if !project.has_config {
                return Err(sluice::Error::config(
                    root.join(sluice::project::PROJECT_FILE),
                    "not found: `sluice load` needs a project; run it in the folder holding sluice.toml, pass --project DIR, or create one with `sluice init DIR`",
                )
                .into());
            }
            let options = LoadOptions {
                force,
                max_rejected,
            };
            let bars = Bars::new(show_progress);
            let report = sluice::load::load(&project, &warehouse, &sources, &options, &bars).await;
            bars.finish();
            let report = report?;
            print_load_report(&report, format)?;
            Ok(())
        }
        Command::Sql { query, format } => {
            let engine = project_engine(&project, warehouse).await?;
            let mut out = std::io::stdout().lock();
            let statements = sluice::sql::split_statements(&query);
            let n = statements.len();
            for (i, stmt) in statements.into_iter().enumerate() {
                let batches = engine.query(&stmt).await?;
                // Only the last statement's result is printed for machines.
                if format == Format::Table || i + 1 == n {
                    sluice::sql::write_batches(&mut out, &batches, format.into())?;
                }
            }
            out.flush()?;
            Ok(())
        }
        Command::Run { step, args } => {
            let with_load = step.is_none();
            if with_load && !project.sources.is_empty() {
                let bars = Bars::new(show_progress);
                let report = sluice::load::load(
                    &project,
                    &warehouse,
                    &[],
                    &sluice::load::LoadOptions::default(),
                    &bars,
                )
                .await;
                bars.finish();
                let report = report?;
                if args.format == Format::Table {
                    print_load_report(&report, Format::Table)?;
                }
            }
            let steps = if with_load {
                sluice::models::Steps::Build
            } else {
                sluice::models::Steps::Models
            };
            let command = if with_load { "run" } else { "run models" };
            run_models(&project, warehouse, &args, steps, command, show_progress).await
        }
        Command::Build { args } => {
            run_models(
                &project,
                warehouse,
                &args,
                sluice::models::Steps::Build,
                "build",
                show_progress,
            )
            .await
        }
        Command::Test { args } => {
            run_models(
                &project,
                warehouse,
                &args,
                sluice::models::Steps::Tests,
                "test",
                show_progress,
            )
            .await
        }
        Command::Seed { seeds, format } => {
            let bars = Bars::new(show_progress);
            let report = sluice::load::seeds::seed(&project, &warehouse, &seeds, &bars).await;
            bars.finish();
            print_load_report(&report?, format)?;
            Ok(())
        }
        Command::Compile { args } => {
            let t0 = std::time::Instant::now();
            let vars = parse_vars(args.vars.as_deref())?;
            let opts = sluice::models::CompileOptions {
                full_refresh: args.full_refresh,
                vars,
                target: None,
            };
            let engine = project_engine(&project, warehouse).await?;
            let compiled = sluice::models::compile(&project, &engine, &opts).await?;
            let selection = sluice::models::Selection {
                select: args.select.clone(),
                exclude: args.exclude.clone(),
            };
            let order = selection.apply(&compiled)?;
            print_compiled(&compiled, &order, args.format, t0.elapsed().as_secs_f64())?;
            Ok(())
        }
        Command::Lineage { model, format } => {
            let engine = project_engine(&project, warehouse).await?;
            let compiled = sluice::models::compile(
                &project,
                &engine,
                &sluice::models::CompileOptions::default(),
            )
            .await?;
            let i = compiled.find(&model)?;
            let text = match format {
                LineageFormat::Text => compiled.dag.lineage_text(i),
                LineageFormat::Dot => compiled.dag.lineage_dot(i),
                LineageFormat::Json => compiled.dag.lineage_json(i),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", text.trim_end())?;
            Ok(())
        }
        Command::History { table, format } => {
            let (schema, name) = match table.split_once('.') {
                Some((s, t)) => (s.to_string(), t.to_string()),
                None => (
                    project.config.warehouse.default_schema.clone(),
                    table.clone(),
                ),
            };
            let Some(t) = warehouse.open_table(&schema, &name).await? else {
                return Err(sluice::Error::UnknownTable {
                    table: format!("{schema}.{name}"),
                    hint: format!(" in warehouse {}", warehouse.root()),
                }
                .into());
            };
            let records = sluice::warehouse::history(&t).await?;
            let batch = sluice::warehouse::history_batch(&records)?;
            let mut out = std::io::stdout().lock();
            sluice::sql::write_batches(&mut out, &[batch], format.into())?;
            Ok(())
        }
    }
}

fn parse_vars(
    raw: Option<&str>,
) -> anyhow::Result<std::collections::BTreeMap<String, serde_json::Value>> {
    let Some(raw) = raw else {
        return Ok(Default::default());
    };
    let v: serde_json::Value = serde_yaml::from_str(raw).map_err(|e| {
        sluice::Error::Usage(format!(
            "--vars `{raw}` is not JSON or YAML ({}); pass a mapping, e.g. '{{\"start_date\": \"2026-01-01\"}}'",
            e.to_string().lines().next().unwrap_or_default()
        ))
    })?;
    match v {
        serde_json::Value::Object(m) => Ok(m.into_iter().collect()),
        serde_json::Value::Null => Ok(Default::default()),
        _ => Err(sluice::Error::Usage(
            "--vars must be a mapping, e.g. '{\"start_date\": \"2026-01-01\"}'".into(),
        )
        .into()),
    }
}

async fn run_models(
    project: &Project,
    warehouse: Warehouse,
    args: &ModelArgs,
    steps: sluice::models::Steps,
    command: &str,
    show_progress: bool,
) -> anyhow::Result<()> {
    let vars = parse_vars(args.vars.as_deref())?;
    let opts = sluice::models::CompileOptions {
        full_refresh: args.full_refresh,
        vars: vars.clone(),
        target: None,
    };
    let engine = project_engine(project, warehouse).await?;
    let compiled = std::sync::Arc::new(sluice::models::compile(project, &engine, &opts).await?);
    let selection = sluice::models::Selection {
        select: args.select.clone(),
        exclude: args.exclude.clone(),
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let observer = RunBars::new(show_progress);
    let report = sluice::models::execute(
        project, &engine, compiled, &selection, steps, threads, &vars, command, &observer,
    )
    .await?;
    observer.finish();
    print_run_report(&report, args.format)?;
    if !report.success() {
        let failed = report
            .results
            .iter()
            .filter(|r| r.status.is_failure())
            .count();
        return Err(anyhow::anyhow!(
            "{failed} of {} nodes did not succeed (see above; details in target/run_results.json and _sluice.runs)",
            report.results.len()
        ));
    }
    Ok(())
}

fn print_compiled(
    compiled: &sluice::models::Compiled,
    order: &[usize],
    format: Format,
    seconds: f64,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let models: Vec<_> = order
            .iter()
            .map(|i| {
                let m = &compiled.models[*i];
                serde_json::json!({
                    "model": m.id(),
                    "name": m.name,
                    "file": m.file.display,
                    "materialized": m.config.materialized,
                    "incremental_run": m.is_incremental,
                    "depends_on": m.deps.iter().map(|d| compiled.models[*d].id()).collect::<Vec<_>>(),
                    "reads": m.inputs.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>(),
                    "tags": m.config.tags,
                    "sql_hash": m.sql_hash,
                    "sql": m.sql,
                })
            })
            .collect();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "models": models, "seconds": seconds }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "-- execution order ({} models):", order.len())?;
    for (n, i) in order.iter().enumerate() {
        let m = &compiled.models[*i];
        writeln!(
            out,
            "--   {:>4}. {} ({}) {}",
            n + 1,
            m.id(),
            m.config.materialized,
            m.file.display
        )?;
    }
    for i in order {
        let m = &compiled.models[*i];
        writeln!(
            out,
            "\n-- {} ({}) from {}",
            m.id(),
            m.config.materialized,
            m.file.display
        )?;
        writeln!(out, "{};", m.sql.trim_end())?;
    }
    Ok(())
}

fn print_run_report(report: &sluice::models::RunReport, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} {}", report.command, report.run_id)?;
    for r in &report.results {
        let rows = match (r.rows, r.failures) {
            (Some(n), _) => format!("{n} rows"),
            (None, Some(f)) if f > 0 => format!("{f} failing"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<7} {:<40} {:<20} {:>14} {:>8.2}s",
            r.status.as_str().to_uppercase(),
            r.id,
            r.materialization,
            rows,
            r.seconds
        )?;
    }
    let count = |s: sluice::models::Status| report.results.iter().filter(|r| r.status == s).count();
    use sluice::models::Status as S;
    writeln!(
        out,
        "done in {:.2}s: {} built, {} passed, {} warned, {} failed, {} errors, {} skipped",
        report.seconds,
        count(S::Success),
        count(S::Pass),
        count(S::Warn),
        count(S::Fail),
        count(S::Error),
        count(S::Skipped)
    )?;
    for r in report
        .results
        .iter()
        .filter(|r| matches!(r.status, S::Error | S::Fail | S::Warn))
    {
        writeln!(
            out,
            "\n{} {} ({}):",
            r.status.as_str().to_uppercase(),
            r.id,
            r.file
        )?;
        if let Some(m) = &r.message {
            for line in m.lines() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    Ok(())
}

/// Progress of a model run: a bar counting nodes, and a line per finished node.
struct RunBars {
    bar: Option<ProgressBar>,
}

impl RunBars {
    fn new(show: bool) -> Self {
        let bar = show.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("[{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        RunBars { bar }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl sluice::models::RunObserver for RunBars {
    fn started(&self, id: &str, _kind: &str) {
        if let Some(b) = &self.bar {
            b.set_message(id.to_string());
        }
    }

    fn finished(&self, r: &sluice::models::NodeResult, done: usize, total: usize) {
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

fn print_load_report(report: &LoadReport, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "load {}", report.load_id)?;
    for s in &report.sources {
        let version = match s.version {
            Some(v) => format!("v{v}"),
            None => "unchanged".to_string(),
        };
        writeln!(
            out,
            "  {:<28} {:<10} {:>3} files  {:>10} rows loaded  {:>6} rejected  {:>3} skipped  {:.2}s",
            s.table,
            version,
            s.files.len(),
            s.rows_loaded,
            s.rows_rejected,
            s.skipped_files,
            s.seconds
        )?;
        for f in s.files.iter().filter(|f| f.rows_rejected > 0) {
            writeln!(
                out,
                "    {}: {} loaded, {} rejected",
                f.path, f.rows_loaded, f.rows_rejected
            )?;
        }
        for f in &s.empty_files {
            writeln!(out, "    {f}: no records (empty file), skipped")?;
        }
        for c in &s.loaded_concurrently {
            writeln!(
                out,
                "    {}: skipped, a concurrent load ({}) committed it first as v{}",
                c.path, c.load_id, c.version
            )?;
        }
        if let Some(r) = &s.rejected_table {
            writeln!(
                out,
                "    rejected rows are in {r} (SELECT * FROM {r} WHERE load_id = '{}')",
                report.load_id
            )?;
        }
    }
    Ok(())
}

/// Progress bars on stderr.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn new(show: bool) -> Self {
        let bar = show.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {prefix} rows",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix("0");
            b
        });
        Bars { bar }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl LoadObserver for Bars {
    fn source_started(&self, source: &str, files: usize, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_length(bytes);
            b.set_position(0);
            b.set_prefix("0");
            b.set_message(format!("{source} ({files} files)"));
        }
    }
    fn progress(&self, rows: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            let done: u64 = b.prefix().parse().unwrap_or(0);
            b.set_prefix((done + rows).to_string());
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
