//! The interactive shell of `sluice sql` (standard input a terminal, no
//! query): line editing and history (`~/.sluice_history`) by rustyline,
//! statements that end with `;` and may span lines, dot commands in the
//! manner of DuckDB's and psql's backslash commands, errors printed without
//! leaving, Ctrl-C cancelling the input or the running statement, Ctrl-D
//! leaving.
//!
//! The shell reads through a [`LineSource`], so that its logic (statements
//! gathered from lines, commands) runs in tests with scripted lines; the
//! terminal is one [`LineSource`].

use super::args::RowsFormat;
use super::rows::Printer;
use super::sql::{run_script, Results};
use super::stdio::{self, stdout};
use super::Context;
use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sluice::sql::{input_state, Engine, InputState};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The prompt of a new statement, and of its next lines.
pub const PROMPT: &str = "sluice> ";
pub const CONTINUATION: &str = "   ...> ";

/// What reading a line gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D, or the end of the input.
    Eof,
}

/// Where the shell's lines come from: the terminal, or a test's script.
pub trait LineSource {
    fn read_line(&mut self, prompt: &str) -> Read;
    /// `entry` (a whole statement, or a command) is worth recalling.
    fn add_history(&mut self, entry: &str);
    /// The table names there are now, for completion.
    fn set_names(&mut self, names: Vec<String>);
}

/// What a line completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing yet: the statement goes on (or the line was blank).
    More,
    /// A dot or backslash command (the line, trimmed).
    Command(String),
    /// Statements that end with `;`, to run (and remember) together.
    Statements(String),
}

/// The statement being typed, line by line.
#[derive(Debug, Default)]
pub struct Input {
    buffer: String,
}

impl Input {
    /// Whether no statement is under way (the prompt is [`PROMPT`]).
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Forgets the statement under way (Ctrl-C).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    /// Adds `line` (which may hold several lines: a pasted or recalled
    /// statement). A command is recognised only at the start of a statement.
    pub fn push(&mut self, line: &str) -> Step {
        if self.buffer.is_empty() && is_command(line) {
            return Step::Command(line.trim().to_string());
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        match input_state(&self.buffer) {
            InputState::Blank => {
                self.buffer.clear();
                Step::More
            }
            InputState::Open => Step::More,
            InputState::Complete => Step::Statements(std::mem::take(&mut self.buffer)),
        }
    }
}

/// `.tables`, `\d`, and the bare words people try first (`exit`, `quit`,
/// `help`).
fn is_command(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('.')
        || t.starts_with('\\')
        || matches!(
            t.trim_end_matches(';').trim().to_ascii_lowercase().as_str(),
            "exit" | "quit" | "help"
        )
}

/// A shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Quit,
    /// List tables and views.
    Tables,
    /// The columns of a table (or of every table).
    Describe(Option<String>),
    Timer(bool),
    MaxRows(usize),
    Format(RowsFormat),
    /// Run the statements of a file.
    Read(String),
}

/// Every command with its arguments, and what it does (`.help`).
const HELP: &[(&str, &str)] = &[
    (".tables", "list tables and views (also \\d, \\dt)"),
    (
        ".schema [TABLE]",
        "the columns of TABLE, or of every table (also \\d TABLE, .describe TABLE)",
    ),
    (
        ".format table|csv|json",
        "how results are printed (also .mode)",
    ),
    (
        ".maxrows N",
        "print at most N rows of each result; 0 prints all",
    ),
    (".timer on|off", "show how long each statement took"),
    (".read FILE", "run the statements in FILE"),
    (".help", "this help (also \\?)"),
    (".quit", "leave (also .exit, \\q, Ctrl-D)"),
];

/// Words Tab completes besides table names and commands.
const KEYWORDS: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "ASC",
    "ASOF",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "COUNT",
    "CREATE",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "EXPLAIN",
    "FALSE",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IN",
    "INNER",
    "INSERT",
    "INTO",
    "IS",
    "JOIN",
    "LEFT",
    "LIKE",
    "LIMIT",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "REPLACE",
    "RIGHT",
    "SELECT",
    "SET",
    "TABLE",
    "THEN",
    "TIMESTAMP",
    "TOLERANCE",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UPDATE",
    "USING",
    "VALUES",
    "VERSION",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
    "read_csv",
    "read_json",
    "read_parquet",
];

/// Tab completion of the word before `pos` in `line`: a command at the
/// start of a line, else a table name (`names`) or a keyword (in the case
/// the word is typed in). Returns where the word starts and the candidates.
pub fn complete(line: &str, pos: usize, names: &[String]) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '\\')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    if word.is_empty() {
        return (pos, Vec::new());
    }
    let mut out: Vec<String> =
        if before[..start].trim().is_empty() && (word.starts_with('.') || word.starts_with('\\')) {
            HELP.iter()
                .filter_map(|(c, _)| c.split_whitespace().next())
                .filter(|c| c.starts_with(word))
                .map(str::to_string)
                .collect()
        } else {
            let lower = word.to_ascii_lowercase();
            let upper = word.chars().any(|c| c.is_ascii_uppercase());
            let keywords = KEYWORDS
                .iter()
                .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
                .map(|k| {
                    if k.contains('_') {
                        k.to_string()
                    } else if upper {
                        k.to_ascii_uppercase()
                    } else {
                        k.to_ascii_lowercase()
                    }
                });
            names
                .iter()
                .filter(|n| n.starts_with(word))
                .cloned()
                .chain(keywords)
                .collect()
        };
    out.sort();
    out.dedup();
    (start, out)
}

impl Command {
    /// Reads a command line (`.schema raw.orders`, `\d`, `exit`).
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim().trim_end_matches(';').trim();
        let (name, arg) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (line, ""),
        };
        let arg = (!arg.is_empty()).then(|| arg.to_string());
        let usage = |u: &str| Err(format!("usage: {u}"));
        match (name.to_ascii_lowercase().as_str(), arg) {
            (".help" | "\\?" | "\\h" | "help", _) => Ok(Command::Help),
            (".quit" | ".exit" | "\\q" | "quit" | "exit", _) => Ok(Command::Quit),
            (".tables" | "\\dt", _) | ("\\d", None) => Ok(Command::Tables),
            (".schema", arg) => Ok(Command::Describe(arg)),
            (".describe" | "\\d", Some(t)) => Ok(Command::Describe(Some(t))),
            (".describe", None) => usage(".describe TABLE"),
            (".timer", Some(a)) if a == "on" => Ok(Command::Timer(true)),
            (".timer", Some(a)) if a == "off" => Ok(Command::Timer(false)),
            (".timer", _) => usage(".timer on|off"),
            (".maxrows", Some(a)) => match a.parse() {
                Ok(n) => Ok(Command::MaxRows(n)),
                Err(_) => usage(".maxrows N (0 shows all rows)"),
            },
            (".maxrows", None) => usage(".maxrows N (0 shows all rows)"),
            (".format" | ".mode", Some(a)) => match a.as_str() {
                "table" => Ok(Command::Format(RowsFormat::Table)),
                "csv" => Ok(Command::Format(RowsFormat::Csv)),
                "json" => Ok(Command::Format(RowsFormat::Json)),
                _ => usage(".format table|csv|json"),
            },
            (".format" | ".mode", None) => usage(".format table|csv|json"),
            (".read", Some(file)) => Ok(Command::Read(file)),
            (".read", None) => usage(".read FILE"),
            (other, _) => {
                let names = HELP.iter().filter_map(|(c, _)| c.split_whitespace().next());
                Err(format!(
                    "unknown command `{other}`{}; .help lists the commands",
                    sluice::error::did_you_mean(other, names)
                ))
            }
        }
    }
}

/// What a command leaves the shell to do.
enum Flow {
    Continue,
    Quit,
}

/// A shell session: the engine (one session: `SET`, temporary tables and
/// views last until the shell ends) and the printing settings.
pub struct Shell<'a> {
    engine: &'a Engine,
    printer: Printer,
    /// Whether Ctrl-C (SIGINT) cancels a running statement (the terminal;
    /// tests leave the test process's SIGINT alone).
    cancel_on_ctrl_c: bool,
}

impl<'a> Shell<'a> {
    pub fn new(engine: &'a Engine, mut printer: Printer, cancel_on_ctrl_c: bool) -> Self {
        printer.footer_always = true;
        printer.show_all = ".maxrows 0";
        Shell {
            engine,
            printer,
            cancel_on_ctrl_c,
        }
    }

    /// Reads and runs until `.quit` or the end of the input. Results go to
    /// `out`, errors and notes to `err`; an error ends the shell only when
    /// `out` can no longer be written.
    pub async fn run(
        &mut self,
        lines: &mut dyn LineSource,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let mut input = Input::default();
        self.refresh_names(lines).await;
        loop {
            out.flush()?;
            let prompt = if input.is_empty() {
                PROMPT
            } else {
                CONTINUATION
            };
            let line = match lines.read_line(prompt) {
                Read::Line(line) => line,
                Read::Eof => break,
                Read::Interrupted => {
                    if input.is_empty() {
                        writeln!(err, "(.quit or Ctrl-D leaves)")?;
                    }
                    input.clear();
                    continue;
                }
            };
            let result = match input.push(&line) {
                Step::More => continue,
                Step::Command(command) => {
                    lines.add_history(&command);
                    match Command::parse(&command) {
                        Ok(command) => match self.command(command, out, err).await {
                            Ok(Flow::Quit) => break,
                            Ok(Flow::Continue) => Ok(()),
                            Err(e) => Err(e),
                        },
                        Err(message) => {
                            writeln!(err, "error: {message}")?;
                            Ok(())
                        }
                    }
                }
                Step::Statements(text) => {
                    lines.add_history(text.trim());
                    let result = self
                        .cancellable(run_script(
                            self.engine,
                            &text,
                            None,
                            Results::All,
                            &self.printer,
                            out,
                            err,
                        ))
                        .await
                        .and_then(|cancelled| {
                            if cancelled {
                                writeln!(err, "\ncancelled")?;
                            }
                            Ok(())
                        });
                    let lower = text.to_ascii_lowercase();
                    if lower.contains("create") || lower.contains("drop") {
                        self.refresh_names(lines).await;
                    }
                    result
                }
            };
            if let Err(e) = result {
                if super::output_closed(&e) {
                    return Err(e);
                }
                writeln!(err, "{}", super::error_message(&e))?;
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Tells `lines` the table names there are (`schema.table`, and bare in
    /// the default schema), for completion; none when they cannot be listed.
    async fn refresh_names(&self, lines: &mut dyn LineSource) {
        let sql = "SELECT table_schema, table_name FROM information_schema.tables \
                   WHERE table_schema <> 'information_schema'";
        let batches = self.engine.query(sql).await.unwrap_or_default();
        let mut names = Vec::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                let text = |c| {
                    arrow::util::display::array_value_to_string(b.column(c), row)
                        .unwrap_or_default()
                };
                let (schema, table) = (text(0), text(1));
                if schema == self.engine.default_schema() {
                    names.push(table.clone());
                }
                names.push(format!("{schema}.{table}"));
            }
        }
        names.sort();
        names.dedup();
        lines.set_names(names);
    }

    /// Runs `work`; `Ok(true)` when Ctrl-C cancelled it.
    async fn cancellable(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<bool> {
        if !self.cancel_on_ctrl_c {
            return work.await.map(|()| false);
        }
        let outcome = tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        match outcome {
            Some(r) => r.map(|()| false),
            None => Ok(true),
        }
    }

    async fn command(
        &mut self,
        command: Command,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<Flow> {
        match command {
            Command::Quit => return Ok(Flow::Quit),
            Command::Help => {
                writeln!(
                    out,
                    "Statements end with `;` and may span lines. Ctrl-C cancels the input or the running statement."
                )?;
                for (command, what) in HELP {
                    writeln!(out, "  {command:<24}{what}")?;
                }
                let max_rows = self.printer.cap().unwrap_or(0);
                writeln!(
                    out,
                    "Now: .format {}, .maxrows {max_rows}, .timer {}.",
                    format_name(self.printer.format),
                    if self.printer.timer { "on" } else { "off" }
                )?;
            }
            Command::Tables => {
                self.query(
                    "SELECT table_schema AS schema, table_name AS name, \
                     lower(replace(table_type, 'BASE ', '')) AS type \
                     FROM information_schema.tables \
                     WHERE table_schema <> 'information_schema' ORDER BY 1, 2",
                    out,
                    err,
                )
                .await?;
            }
            Command::Describe(None) => {
                self.query(
                    "SELECT table_schema AS schema, table_name AS table, column_name AS column, \
                     data_type AS type, is_nullable AS nullable \
                     FROM information_schema.columns \
                     WHERE table_schema <> 'information_schema' \
                     ORDER BY table_schema, table_name, ordinal_position",
                    out,
                    err,
                )
                .await?;
            }
            Command::Describe(Some(table)) => self.describe(&table, out, err).await?,
            Command::Timer(on) => self.printer.timer = on,
            Command::MaxRows(n) => self.printer.max_rows = Some(n),
            Command::Format(f) => self.printer.format = f,
            Command::Read(file) => {
                let text = super::sql::read_script(std::path::Path::new(&file))?;
                let cancelled = self
                    .cancellable(run_script(
                        self.engine,
                        &text,
                        Some(&file),
                        Results::All,
                        &self.printer,
                        out,
                        err,
                    ))
                    .await?;
                if cancelled {
                    writeln!(err, "\ncancelled")?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs one query of the shell's own and prints it.
    async fn query(
        &self,
        sql: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let df = self.engine.sql(sql).await?;
        self.printer.print(df, started, out, err).await
    }

    /// The columns of `table` (anything `FROM` takes: a table, a view, a
    /// file), read from its plan without running it.
    async fn describe(
        &self,
        table: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let df = self.engine.sql(&format!("SELECT * FROM {table}")).await?;
        let fields = df.schema().fields();
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        let types: Vec<String> = fields.iter().map(|f| f.data_type().to_string()).collect();
        let nullable: Vec<&str> = fields
            .iter()
            .map(|f| if f.is_nullable() { "YES" } else { "NO" })
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("column", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("nullable", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(types)),
                Arc::new(StringArray::from(nullable)),
            ],
        )?;
        let df = self.engine.context().read_batch(batch)?;
        self.printer.print(df, started, out, err).await
    }
}

fn format_name(f: RowsFormat) -> &'static str {
    match f {
        RowsFormat::Table => "table",
        RowsFormat::Csv => "csv",
        RowsFormat::Json => "json",
    }
}

/// The terminal, through rustyline, with the history in
/// `~/.sluice_history` and Tab completion.
struct Terminal {
    editor: rustyline::Editor<Completion, rustyline::history::DefaultHistory>,
    history: Option<PathBuf>,
}

/// rustyline's helper: [`complete`] over the names the shell last listed.
struct Completion {
    names: Vec<String>,
}

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos, &self.names))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Completion {}

impl rustyline::validate::Validator for Completion {}

impl rustyline::Helper for Completion {}

impl Terminal {
    fn open() -> anyhow::Result<Self> {
        let config = rustyline::Config::builder()
            .max_history_size(10_000)?
            .auto_add_history(false)
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut editor = rustyline::Editor::with_config(config)?;
        editor.set_helper(Some(Completion { names: Vec::new() }));
        let history = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".sluice_history"));
        if let Some(path) = &history {
            // None yet, or unreadable: start without.
            let _ = editor.load_history(path);
        }
        Ok(Terminal { editor, history })
    }
}

impl LineSource for Terminal {
    fn read_line(&mut self, prompt: &str) -> Read {
        use rustyline::error::ReadlineError;
        match self.editor.readline(prompt) {
            Ok(line) => Read::Line(line),
            Err(ReadlineError::Interrupted) => Read::Interrupted,
            Err(ReadlineError::Eof) => Read::Eof,
            Err(e) => {
                stdio::note(format!("error: cannot read the terminal: {e}"));
                Read::Eof
            }
        }
    }

    fn add_history(&mut self, entry: &str) {
        if let (Ok(true), Some(path)) = (self.editor.add_history_entry(entry), &self.history) {
            // A history that cannot be written is no reason to stop.
            let _ = self.editor.append_history(path);
        }
    }

    fn set_names(&mut self, names: Vec<String>) {
        if let Some(helper) = self.editor.helper_mut() {
            helper.names = names;
        }
    }
}

/// `sluice sql` on a terminal: the shell.
pub async fn run(ctx: &Context, printer: Printer) -> anyhow::Result<()> {
    let engine = ctx.engine().await?;
    let mut terminal = Terminal::open()?;
    stdio::note(format!(
        "sluice {}: warehouse {}, default schema `{}`",
        env!("CARGO_PKG_VERSION"),
        ctx.warehouse_uri,
        engine.default_schema()
    ));
    stdio::note("Statements end with `;`. .help lists the commands; .quit or Ctrl-D leaves.");
    let mut shell = Shell::new(&engine, printer, true);
    shell
        .run(&mut terminal, &mut stdout(), &mut stdio::stderr())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(lines: &[&str]) -> Vec<Step> {
        let mut input = Input::default();
        lines.iter().map(|l| input.push(l)).collect()
    }

    #[test]
    fn statements_gather_until_a_semicolon() {
        use Step::*;
        assert_eq!(
            steps(&["SELECT 1,", "  2", "AS x;"]),
            vec![More, More, Statements("SELECT 1,\n  2\nAS x;\n".into())]
        );
        // A `;` in a string or comment does not end it.
        assert_eq!(
            steps(&["SELECT 'a;", "b' -- ;", ";"]),
            vec![More, More, Statements("SELECT 'a;\nb' -- ;\n;\n".into())]
        );
        // Several statements on a line (a paste), comments after the last.
        assert_eq!(
            steps(&["SELECT 1; SELECT 2; -- done"]),
            vec![Statements("SELECT 1; SELECT 2; -- done\n".into())]
        );
        // Blank and comment lines are no statements.
        assert_eq!(steps(&["", "  ", "-- note"]), vec![More, More, More]);
        let mut input = Input::default();
        input.push("-- note");
        assert!(input.is_empty());
        // Commands only at the start of a statement.
        assert_eq!(
            steps(&[".tables", "SELECT a", ".5 AS b;"]),
            vec![
                Command(".tables".into()),
                More,
                Statements("SELECT a\n.5 AS b;\n".into())
            ]
        );
        assert_eq!(steps(&["  exit  "]), vec![Command("exit".into())]);
        assert_eq!(steps(&["quit;"]), vec![Command("quit;".into())]);
        let mut input = Input::default();
        input.push("SELECT 1");
        assert!(!input.is_empty());
        input.clear();
        assert!(input.is_empty());
    }

    #[test]
    fn commands_parse() {
        use super::Command::*;
        let p = |s: &str| super::Command::parse(s);
        assert_eq!(p(".tables"), Ok(Tables));
        assert_eq!(p("\\d"), Ok(Tables));
        assert_eq!(p("\\dt"), Ok(Tables));
        assert_eq!(p("\\d raw.orders"), Ok(Describe(Some("raw.orders".into()))));
        assert_eq!(p(".schema  orders ;"), Ok(Describe(Some("orders".into()))));
        assert_eq!(p(".schema"), Ok(Describe(None)));
        assert_eq!(p(".timer off"), Ok(Timer(false)));
        assert_eq!(p(".maxrows 0"), Ok(MaxRows(0)));
        assert_eq!(p(".mode csv"), Ok(Format(RowsFormat::Csv)));
        assert_eq!(p(".read a b.sql"), Ok(Read("a b.sql".into())));
        for q in [".quit", ".exit", "\\q", "exit", "QUIT;"] {
            assert_eq!(p(q), Ok(Quit), "{q}");
        }
        for h in [".help", "\\?", "help"] {
            assert_eq!(p(h), Ok(Help), "{h}");
        }
        assert_eq!(p(".timer maybe"), Err("usage: .timer on|off".into()));
        assert_eq!(
            p(".maxrows many"),
            Err("usage: .maxrows N (0 shows all rows)".into())
        );
        assert_eq!(
            p(".tabels"),
            Err(
                "unknown command `.tabels` (did you mean `.tables`?); .help lists the commands"
                    .into()
            )
        );
    }

    #[test]
    fn tab_completes_commands_tables_and_keywords() {
        let names: Vec<String> = ["orders", "raw.orders", "raw.customers"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = |line: &str| complete(line, line.len(), &names);
        assert_eq!(c(".ta"), (0, vec![".tables".to_string()]));
        assert_eq!(c("  .s"), (2, vec![".schema".to_string()]));
        assert_eq!(
            c("SELECT * FROM raw.c"),
            (14, vec!["raw.customers".to_string()])
        );
        assert_eq!(
            c("select * from or"),
            (14, vec!["or".to_string(), "order".into(), "orders".into()])
        );
        assert_eq!(c("SEL"), (0, vec!["SELECT".to_string()]));
        assert_eq!(c("select * fr"), (9, vec!["from".to_string()]));
        assert_eq!(
            c("select * from read_p"),
            (14, vec!["read_parquet".to_string()])
        );
        assert_eq!(c("SELECT "), (7, Vec::<String>::new()));
        // A dot in the middle of a statement is no command.
        assert_eq!(c("SELECT 1 .t").1, Vec::<String>::new());
    }

    /// Lines from a script, with what was remembered and the prompts shown.
    struct Script {
        lines: std::collections::VecDeque<Read>,
        prompts: Vec<String>,
        history: Vec<String>,
        names: Vec<String>,
    }

    impl Script {
        fn new(lines: Vec<Read>) -> Self {
            Script {
                lines: lines.into(),
                prompts: Vec::new(),
                history: Vec::new(),
                names: Vec::new(),
            }
        }
    }

    impl LineSource for Script {
        fn read_line(&mut self, prompt: &str) -> Read {
            self.prompts.push(prompt.to_string());
            self.lines.pop_front().unwrap_or(Read::Eof)
        }
        fn add_history(&mut self, entry: &str) {
            self.history.push(entry.to_string());
        }
        fn set_names(&mut self, names: Vec<String>) {
            self.names = names;
        }
    }

    fn line(s: &str) -> Read {
        Read::Line(s.to_string())
    }

    async fn session(lines: Vec<Read>) -> (String, String, Script) {
        let wh = sluice::warehouse::Warehouse::open("memory://", &Default::default()).unwrap();
        let engine = Engine::new(wh, "main").await.unwrap();
        let mut script = Script::new(lines);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(RowsFormat::Table, None);
        printer.timer = false;
        Shell::new(&engine, printer, false)
            .run(&mut script, &mut out, &mut err)
            .await
            .unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            script,
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_session() {
        let (out, err, script) = session(vec![
            line("CREATE TABLE main.orders AS"),
            line("  SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(id, name);"),
            line("SELECT count(*) AS n"),
            Read::Interrupted,
            line("SELECT * FROM orderz;"),
            line("SELECT id FROM orders ORDER BY id; -- both"),
            line(".timer on"),
            line(".maxrows 1"),
            line("SELECT id FROM orders ORDER BY id;"),
            line(".maxrows 0"),
            line(".timer off"),
            line("\\d orders"),
            line(".tables"),
            line(".format csv"),
            line("SELECT 1 AS x; SELECT 2 AS y;"),
            line(".nope"),
            line(".quit"),
            line("SELECT 'never run';"),
        ])
        .await;
        // The cancelled input was not run; the typo was named and the shell went on.
        assert!(
            err.contains("error: table `orderz` not found (did you mean `orders`?)"),
            "{err}"
        );
        assert!(err.contains("error: unknown command `.nope`"), "{err}");
        assert!(!out.contains("never run"), "{out}");
        assert!(out.contains("| 1  |\n| 2  |\n+----+\n2 rows\n"), "{out}");
        // .maxrows 1 with the timer: one row shown, the rest elided.
        assert!(
            out.contains("| 1   |\n| ... |\n+-----+\n2 rows, 1 shown ("),
            "{out}"
        );
        assert!(out.contains(" s); .maxrows 0 shows all\n"), "{out}");
        // \d: the columns.
        assert!(out.contains("| id     | Int64    | YES      |"), "{out}");
        assert!(out.contains("| main   | orders | table |"), "{out}");
        // csv in the shell: every statement's rows, the counts on stderr.
        assert!(out.ends_with("x\n1\ny\n2\n"), "{out}");
        assert!(err.contains("1 row\n1 row\n"), "{err}");
        assert_eq!(
            script.prompts[..4],
            [PROMPT, CONTINUATION, PROMPT, CONTINUATION]
        );
        assert_eq!(script.prompts[4], PROMPT);
        // Tab completes the table the session created.
        assert_eq!(script.names, ["main.orders", "orders"]);
        assert_eq!(
            script.history[..3],
            [
                "CREATE TABLE main.orders AS\n  SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(id, name);",
                "SELECT * FROM orderz;",
                "SELECT id FROM orders ORDER BY id; -- both"
            ]
        );
    }
}
