//! The `sluice` command line: a thin front end over the library.
//!
//! This file sets the process up (allocator, logging, a runtime whose threads
//! have large stacks), parses the arguments, hands the command to its module
//! in `cli/`, and turns the outcome into an exit code (README, "Errors and
//! exit codes"): 0 success, 1 a runtime failure, 2 a user error (clap's own
//! errors included), 3 storage, I/O or a write conflict, 70 a bug.

mod cli;

use clap::FromArgMatches;
use cli::args::{Cli, Command};
use std::io::IsTerminal;

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

fn main() {
    tune_allocator();
    // Bad arguments exit 2 here, with clap's message.
    let cli =
        Cli::from_arg_matches(&cli::args::command().get_matches()).unwrap_or_else(|e| e.exit());
    init_tracing(cli.global.verbose);
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
            cli::stdio::note(format!("error: cannot start the async runtime: {e}"));
            std::process::exit(70);
        }
    };
    let main = std::thread::Builder::new()
        .name("sluice-main".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let code = match runtime.block_on(dispatch(cli)) {
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
            cli::stdio::note(format!("error: cannot start the main thread: {e}"));
            70
        }
    };
    std::process::exit(code);
}

/// Stack of the threads that run SQL (see `main`).
const THREAD_STACK: usize = 64 << 20;

/// Runs the command. `init` and `hash-password` need no project; every
/// other command opens the project and warehouse the global options name.
async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    let ctx = || cli::Context::open(&global);
    match cli.command {
        Command::Init(args) => cli::init::run(args),
        Command::HashPassword(args) => cli::hash_password::run(args),
        Command::Load(args) => cli::load::run(&ctx()?, args).await,
        Command::Stream(args) => cli::stream::run(&ctx()?, args).await,
        Command::Sql(args) => cli::sql::run(&ctx()?, args).await,
        Command::Run(args) => cli::run::run(&ctx()?, args).await,
        Command::Build(args) => cli::build::run(&ctx()?, args).await,
        Command::Test(args) => cli::test::run(&ctx()?, args).await,
        Command::Seed(args) => cli::seed::run(&ctx()?, args).await,
        Command::Deps(args) => cli::deps::run(&ctx()?, args).await,
        Command::Snapshot(args) => cli::snapshot::run(&ctx()?, args).await,
        Command::Compile(args) => cli::compile::run(&ctx()?, args).await,
        Command::Lineage(args) => cli::lineage::run(&ctx()?, args).await,
        Command::Serve(args) => cli::serve::run(&ctx()?, args).await,
        Command::Worker(args) => cli::worker::run(&ctx()?, args).await,
        Command::Materialize(args) => cli::materialize::run(&ctx()?, args).await,
        Command::Features { command } => cli::features::run(&ctx()?, command).await,
        Command::History(args) => cli::history::run(&ctx()?, args).await,
        Command::Optimize(args) => cli::optimize::run(&ctx()?, args).await,
        Command::Vacuum(args) => cli::vacuum::run(&ctx()?, args).await,
        Command::Source { command } => cli::source::run(&ctx()?, command).await,
        Command::Docs { command } => cli::docs::run(&ctx()?, command).await,
    }
}

/// Prints `e` on one line of stderr and returns its exit code. A reader of
/// stdout that went away (`sluice sql ... | head`) is no error: exit 0,
/// nothing printed.
fn report_error(e: &anyhow::Error) -> i32 {
    if cli::output_closed(e) {
        return 0;
    }
    cli::stdio::note(cli::error_message(e));
    exit_code(e)
}

/// The exit code of `e`, chosen by the type of the error, never its text.
fn exit_code(e: &anyhow::Error) -> i32 {
    // Writing the output failed (a full disk), whatever type the writer
    // wrapped the failure in.
    if cli::stdio::write_failed() {
        return 3;
    }
    for cause in e.chain() {
        if let Some(err) = cause.downcast_ref::<sluice::Error>() {
            return err.exit_code();
        }
        if cause.is::<std::io::Error>() {
            return 3;
        }
        if cause.is::<cli::Failed>() {
            return 1;
        }
    }
    1
}

/// The log filter: warnings (and the server's info lines) by default; `-v`
/// adds sluice's own debug lines and nothing from the libraries (their info
/// lines flood: a line per file DataFusion or Delta touches); `-vv` adds the
/// libraries' debug lines too.
fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,deltalake_core=error,rskafka=error,sluice::server=info",
        1 => "warn,deltalake_core=error,rskafka=error,sluice=debug",
        _ => "debug",
    }
}

fn init_tracing(verbose: u8) {
    let default = log_filter(verbose);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
