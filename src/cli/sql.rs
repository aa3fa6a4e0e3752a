//! `sluice sql`: run the statements of the command line (`sluice sql
//! "QUERY"`), of a file (`-f FILE`) or of standard input, and print their
//! results ([`super::rows`]); with none of these and a terminal, the
//! interactive shell ([`super::shell`]).

use super::args::{RowsFormat, SqlArgs};
use super::rows::{self, Printer};
use super::stdio::{self, stdout};
use super::{shell, Context};
use sluice::sql::Engine;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

pub async fn run(ctx: &Context, args: SqlArgs) -> anyhow::Result<()> {
    let printer = Printer::new(args.format, args.max_rows);
    let (text, source) = match (args.query, args.file) {
        (Some(query), _) => (query, None),
        (None, Some(file)) if file.as_os_str() == "-" => (read_stdin()?, Some("<stdin>".into())),
        (None, Some(file)) => (read_script(&file)?, Some(file.display().to_string())),
        (None, None) if std::io::stdin().is_terminal() => return shell::run(ctx, printer).await,
        (None, None) => (read_stdin()?, Some("<stdin>".into())),
    };
    let engine = ctx.engine().await?;
    let mut out = stdout();
    // Programs get only the last statement's result: one document.
    let results = match args.format {
        RowsFormat::Table => Results::All,
        RowsFormat::Csv | RowsFormat::Json => Results::Last,
    };
    run_script(
        &engine,
        &text,
        source.as_deref(),
        results,
        &printer,
        &mut out,
        &mut stdio::stderr(),
    )
    .await?;
    out.flush()?;
    Ok(())
}

/// Which results of a script are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Results {
    All,
    /// Only the last statement's (the others run without printing).
    Last,
}

/// Runs the statements of `text` in order, printing their results; the first
/// that fails stops the run. Its error names where it is: `FILE:LINE` for a
/// script from `source`, `statement N of M` for several on the command line.
pub async fn run_script(
    engine: &Engine,
    text: &str,
    source: Option<&str>,
    results: Results,
    printer: &Printer,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> anyhow::Result<()> {
    let statements = sluice::sql::split_statements_with_lines(text);
    let n = statements.len();
    for (i, (line, sql)) in statements.iter().enumerate() {
        let print = results == Results::All || i + 1 == n;
        let run = async {
            let started = Instant::now();
            let df = engine.sql(sql).await?;
            if print {
                printer.print(df, started, out, notes).await
            } else {
                rows::drain(df).await
            }
        };
        if let Err(e) = run.await {
            return Err(match source {
                Some(source) => e.context(format!("{source}:{line}")),
                None if n > 1 => e.context(format!("statement {} of {n}", i + 1)),
                None => e,
            });
        }
    }
    Ok(())
}

/// The text of a script file; a file that is not there is a user error.
pub fn read_script(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(sluice::Error::Usage(format!(
            "cannot read `{}`: no such file",
            path.display()
        ))
        .into()),
        Err(e) => Err(sluice::Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
        .into()),
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| sluice::Error::Io {
            path: "<stdin>".into(),
            source: e,
        })?;
    Ok(text)
}
