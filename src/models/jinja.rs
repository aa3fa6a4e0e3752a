//! dbt-style Jinja rendering for model files.
//!
//! A model is a `.sql` file that may contain Jinja (`{{ ... }}`, `{% ... %}`,
//! `{# ... #}`). Rendering turns it into plain SQL and, on the way, records
//! what the model declared about itself:
//!
//! * `config(...)` keyword arguments (merged in call order, later wins),
//! * the models named in `ref(...)` (call order, deduplicated),
//! * the `(source, table)` pairs named in `source(...)` (call order, deduplicated).
//!
//! Only calls that are actually executed are recorded: a `ref()` inside an
//! `{% if is_incremental() %}` block is only seen when the model renders in
//! incremental mode.
//!
//! The template language is provided by [`minijinja`]. The dbt-flavoured
//! context available to templates is:
//!
//! | name | meaning |
//! |------|---------|
//! | `ref('model')`, `ref('package', 'model')` | relation of another model (the package is ignored) |
//! | `source('source', 'table')` | relation of a declared source table |
//! | `var('name')`, `var('name', default)` | project / CLI variable |
//! | `env_var('NAME')`, `env_var('NAME', default)` | process environment variable |
//! | `config(key=value, ...)` | model configuration; renders as nothing; `config.get('key', default)` reads it back |
//! | `is_incremental()` | true when the model is being built incrementally |
//! | `this` | relation of the model being rendered (`this.schema`, `this.name`, `this.identifier`) |
//! | `target` | `target.name`, `target.schema` |
//! | `model` | `model.name` |
//!
//! Relations (`this`, and the results of `ref()` / `source()`) render as their
//! SQL text and expose `.database` (when present), `.schema`, `.name` and
//! `.identifier`.
//!
//! Undefined variables are errors (minijinja's `Strict` mode) when printed,
//! tested with `if`, iterated, passed to a function or filter, or used for an
//! attribute lookup; `is defined` and the `default` filter still work. Two
//! minijinja gaps remain: an undefined inside a list literal (`[a, b]`) and the
//! `join` filter applied to an undefined render as empty strings. Every error
//! carries the file and, when known, the line of the template where it happened.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::value::{from_args, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior};

/// Resolves `ref('name')` / `ref('package', 'name')` to the SQL text of a relation (e.g. `staging.stg_users`);
/// an error for an unknown model (its message is user-facing and already includes a suggestion:
/// it becomes the template's error).
pub type RefResolver = Arc<dyn Fn(&str) -> crate::Result<String> + Send + Sync>;

/// Resolves `source('source_name', 'table_name')` to a relation text.
pub type SourceResolver = Arc<dyn Fn(&str, &str) -> crate::Result<String> + Send + Sync>;

/// Everything a model template can see.
pub struct RenderContext {
    /// Project vars (dbt_project.yml `vars`, sluice.toml `[vars]`) overlaid with CLI `--vars`.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Resolves `ref()`.
    pub resolve_ref: RefResolver,
    /// Resolves `source()`.
    pub resolve_source: SourceResolver,
    /// Relation text of the model being rendered, e.g. `features.user_features`.
    pub this: String,
    /// Value of `is_incremental()`.
    pub is_incremental: bool,
    /// `target.name` (e.g. `"dev"`).
    pub target_name: String,
    /// `target.schema`: the default schema.
    pub target_schema: String,
    /// `model.name`.
    pub model_name: String,
    /// Project macros (`macros/*.sql`), available to every template.
    pub macros: Option<Arc<Macros>>,
}

/// The project's macro files, concatenated in front of each template that needs
/// rendering, so their `{% macro %}`s are global functions (as in dbt).
#[derive(Debug, Default)]
pub struct Macros {
    text: String,
    /// (display path, first line in `text`, number of lines).
    files: Vec<(String, usize, usize)>,
}

impl Macros {
    /// Builds the prefix from `(display path, text)` pairs.
    pub fn new(files: &[(String, String)]) -> Self {
        let mut m = Macros::default();
        for (path, text) in files {
            let start = m.text.matches('\n').count() + 1;
            let mut t = text.clone();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            let lines = t.matches('\n').count();
            m.text.push_str(&t);
            m.files.push((path.clone(), start, lines));
        }
        m
    }

    fn lines(&self) -> usize {
        self.text.matches('\n').count()
    }

    /// Maps a line of the prefix to (file, line in that file).
    fn locate(&self, line: usize) -> Option<(String, usize)> {
        self.files
            .iter()
            .find(|(_, start, n)| line >= *start && line < start + n)
            .map(|(f, start, _)| (f.clone(), line - start + 1))
    }
}

/// The result of rendering one model file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// The rendered SQL.
    pub sql: String,
    /// Keyword arguments of every `config(...)` call, merged in call order (later wins). Values as JSON.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Model names passed to ref(), in call order, deduplicated.
    pub refs: Vec<String>,
    /// (source, table) pairs passed to source(), in call order, deduplicated.
    pub sources: Vec<(String, String)>,
}

/// A template error, located in the user's file.
#[derive(Debug, Clone, PartialEq)]
pub struct JinjaError {
    /// Display path of the file.
    pub file: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// User-facing message.
    pub message: String,
}

impl fmt::Display for JinjaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for JinjaError {}

/// True when `text` needs rendering (contains `{{`, `{%` or `{#`).
/// Plain SQL files skip Jinja entirely (fast path).
pub fn needs_rendering(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find('{') {
        let at = from + pos;
        if matches!(bytes.get(at + 1), Some(b'{' | b'%' | b'#')) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Renders one model file. `file` is the display path used in errors.
///
/// Text without Jinja markers is returned unchanged (and nothing is recorded).
pub fn render(file: &str, text: &str, ctx: &RenderContext) -> Result<Rendered, JinjaError> {
    if !needs_rendering(text) {
        return Ok(Rendered {
            sql: text.to_string(),
            ..Rendered::default()
        });
    }

    let collected = Arc::new(Mutex::new(Collected::default()));
    let env = build_environment(ctx, &collected);

    let macros = ctx.macros.as_deref().filter(|m| !m.text.is_empty());
    let full: std::borrow::Cow<'_, str> = match macros {
        Some(m) => format!("{}{text}", m.text).into(),
        None => text.into(),
    };
    let result = env
        .template_from_named_str(file, &full)
        .and_then(|template| template.render(()));
    // Release the environment (and the closures holding `collected`) first.
    drop(env);

    let sql = result.map_err(|err| {
        let mut e = convert_error(file, &full, &err);
        if let (Some(m), Some(line)) = (macros, e.line) {
            let prefix = m.lines();
            if line > prefix {
                e.line = Some(line - prefix);
            } else if let Some((f, l)) = m.locate(line) {
                e.file = f;
                e.line = Some(l);
            }
        }
        e
    })?;
    // The macro definitions render as blank lines: drop them.
    let sql = match macros {
        Some(_) => sql.trim_start_matches(['\n', '\r', ' ', '\t']).to_string(),
        None => sql,
    };
    let collected = std::mem::take(&mut *lock(&collected));
    Ok(Rendered {
        sql,
        config: collected.config,
        refs: collected.refs,
        sources: collected.sources,
    })
}

// ---------------------------------------------------------------------------
// Environment

/// What the template declared while rendering.
#[derive(Debug, Default)]
struct Collected {
    config: BTreeMap<String, serde_json::Value>,
    refs: Vec<String>,
    sources: Vec<(String, String)>,
}

/// Locks without ever panicking: a poisoned lock still holds usable data.
fn lock(collected: &Mutex<Collected>) -> MutexGuard<'_, Collected> {
    collected
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn build_environment<'s>(
    ctx: &RenderContext,
    collected: &Arc<Mutex<Collected>>,
) -> Environment<'s> {
    // `Environment::new()` is cheap (well under a microsecond): the built-in
    // filter and test tables are shared.
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_debug(false);

    let default_schema: Arc<str> = Arc::from(ctx.target_schema.as_str());

    // ref('model') / ref('package', 'model'); version kwargs (v=, version=) are ignored.
    {
        let resolve = Arc::clone(&ctx.resolve_ref);
        let collected = Arc::clone(collected);
        let default_schema = Arc::clone(&default_schema);
        env.add_function(
            "ref",
            move |first: String, second: Option<String>, _kwargs: Kwargs| {
                let name = second.unwrap_or(first);
                let relation = resolve(&name).map_err(|e| user_error(e.to_string()))?;
                let mut c = lock(&collected);
                if !c.refs.contains(&name) {
                    c.refs.push(name);
                }
                Ok::<_, minijinja::Error>(Relation::value(&relation, &default_schema))
            },
        );
    }

    // source('source', 'table')
    {
        let resolve = Arc::clone(&ctx.resolve_source);
        let collected = Arc::clone(collected);
        let default_schema = Arc::clone(&default_schema);
        env.add_function("source", move |source: String, table: String| {
            let relation = resolve(&source, &table).map_err(|e| user_error(e.to_string()))?;
            let mut c = lock(&collected);
            if !c.sources.iter().any(|(s, t)| *s == source && *t == table) {
                c.sources.push((source, table));
            }
            Ok::<_, minijinja::Error>(Relation::value(&relation, &default_schema))
        });
    }

    // var('name'), var('name', default)
    {
        let vars = ctx.vars.clone();
        env.add_function("var", move |name: String, rest: Rest<Value>| {
            if rest.len() > 1 {
                return Err(user_error(
                    "var() takes a variable name and an optional default".to_string(),
                ));
            }
            match (vars.get(&name), rest.first()) {
                (Some(value), _) => Ok(Value::from_serialize(value)),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(user_error(format!(
                    "variable `{name}` is not defined and var() was given no default; \
                     define it under `vars` in sluice.toml or dbt_project.yml, \
                     or pass it with --vars '{{\"{name}\": ...}}'"
                ))),
            }
        });
    }

    // env_var('NAME'), env_var('NAME', default)
    env.add_function("env_var", |name: String, rest: Rest<Value>| {
        if rest.len() > 1 {
            return Err(user_error(
                "env_var() takes a variable name and an optional default".to_string(),
            ));
        }
        match (std::env::var(&name), rest.first()) {
            (Ok(value), _) => Ok(Value::from(value)),
            (Err(std::env::VarError::NotUnicode(_)), _) => Err(user_error(format!(
                "environment variable `{name}` is not valid UTF-8"
            ))),
            (Err(std::env::VarError::NotPresent), Some(default)) => Ok(default.clone()),
            (Err(std::env::VarError::NotPresent), None) => Err(user_error(format!(
                "environment variable `{name}` is not set and env_var() was given no default"
            ))),
        }
    });

    // log(msg) renders nothing (dbt prints it; sluice logs it at debug level).
    env.add_function("log", |msg: Value, _rest: Rest<Value>| {
        tracing::debug!("jinja log: {msg}");
        String::new()
    });
    env.add_global(
        "exceptions",
        Value::from_iter([(
            "raise_compiler_error",
            Value::from_function(|msg: String| -> Result<String, minijinja::Error> {
                Err(user_error(msg))
            }),
        )]),
    );

    // is_incremental()
    let is_incremental = ctx.is_incremental;
    env.add_function("is_incremental", move || is_incremental);

    // config(...), config.get(...), config.require(...)
    env.add_global(
        "config",
        Value::from_object(ConfigFn {
            collected: Arc::clone(collected),
        }),
    );

    env.add_global("this", Relation::value(&ctx.this, &default_schema));

    env.add_global(
        "target",
        Value::from_iter([
            ("name", ctx.target_name.as_str()),
            ("schema", ctx.target_schema.as_str()),
        ]),
    );
    env.add_global(
        "model",
        Value::from_iter([("name", ctx.model_name.as_str())]),
    );

    env
}

// ---------------------------------------------------------------------------
// Errors

/// Marks an error raised by our own functions: its message is shown verbatim.
#[derive(Debug)]
struct UserMessage(String);

impl fmt::Display for UserMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserMessage {}

fn user_error(message: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(UserMessage(message))
}

fn convert_error(file: &str, text: &str, err: &minijinja::Error) -> JinjaError {
    JinjaError {
        file: file.to_string(),
        line: err.line(),
        message: error_message(text, err),
    }
}

fn error_message(text: &str, err: &minijinja::Error) -> String {
    // Errors raised by our functions (ref, source, var, ...) keep their text.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut extra_causes = Vec::new();
    while let Some(c) = cause {
        if let Some(user) = c.downcast_ref::<UserMessage>() {
            return user.0.clone();
        }
        extra_causes.push(strip_location(&c.to_string()));
        cause = c.source();
    }

    let detail = err.detail().map(strip_location);
    let snippet = err
        .range()
        .and_then(|range| text.get(range))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 80 && !s.contains('\n'));

    let mut message = match err.kind() {
        ErrorKind::UndefinedError => describe_undefined(text, err.range(), snippet),
        ErrorKind::UnknownFunction => match detail.as_deref() {
            Some(d) => match d.strip_suffix(" is unknown") {
                Some(name) => format!("unknown function `{name}`"),
                None => format!("unknown function: {d}"),
            },
            None => "unknown function".to_string(),
        },
        ErrorKind::UnknownFilter | ErrorKind::UnknownTest => {
            let what = if err.kind() == ErrorKind::UnknownFilter {
                "filter"
            } else {
                "test"
            };
            match detail.as_deref() {
                Some(d) => match d
                    .strip_prefix(what)
                    .map(str::trim_start)
                    .and_then(|rest| rest.strip_suffix(" is unknown"))
                {
                    Some(name) => format!("unknown {what} `{name}`"),
                    None => format!("unknown {what}: {d}"),
                },
                None => format!("unknown {what}"),
            }
        }
        ErrorKind::SyntaxError => match detail {
            Some(d) => format!("syntax error: {d}"),
            None => "syntax error".to_string(),
        },
        kind => {
            let mut m = match detail {
                Some(d) => format!("{kind}: {d}"),
                None => kind.to_string(),
            };
            if let Some(s) = snippet {
                m.push_str(&format!(" (in `{s}`)"));
            }
            m
        }
    };
    for c in extra_causes {
        if !c.is_empty() && !message.contains(&c) {
            message.push_str(": ");
            message.push_str(&c);
        }
    }
    message
}

/// Names the undefined value from the span minijinja reports.
fn describe_undefined(
    text: &str,
    range: Option<std::ops::Range<usize>>,
    snippet: Option<&str>,
) -> String {
    let Some(snippet) = snippet else {
        return "undefined value".to_string();
    };
    // In a filter application (`x | upper`) the span is the filter, not its input.
    let before = range
        .and_then(|r| text.get(..r.start))
        .unwrap_or("")
        .trim_end();
    if let Some(before_pipe) = before.strip_suffix('|') {
        let filter: String = snippet
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let before_pipe = before_pipe.trim_end();
        let start = before_pipe
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let operand = &before_pipe[start..];
        let operand_is_filter = before_pipe[..start].trim_end().ends_with('|');
        // Only a filter without arguments has its input as the sole suspect.
        if filter == snippet && !operand_is_filter && is_dotted_path(operand) {
            let what = if is_identifier(operand) {
                "variable"
            } else {
                "value"
            };
            return format!("undefined {what} `{operand}` (passed to filter `{filter}`)");
        }
        return format!("undefined value passed to filter `{filter}`");
    }
    if is_identifier(snippet) {
        format!("undefined variable `{snippet}`")
    } else if is_dotted_path(snippet) {
        format!("undefined value `{snippet}`")
    } else {
        format!("undefined value in `{snippet}`")
    }
}

/// Removes minijinja's ` (in file:line)` location suffixes: we report the location ourselves.
fn strip_location(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" (in ") {
        let after = &rest[start + 5..];
        let end = after.find(')');
        let is_location = end.is_some_and(|end| {
            let inner = &after[..end];
            inner.rsplit_once(':').is_some_and(|(name, line)| {
                !name.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
            })
        });
        match (is_location, end) {
            (true, Some(end)) => {
                out.push_str(&rest[..start]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..start + 5]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn is_dotted_path(s: &str) -> bool {
    s.split('.').all(is_identifier)
}

// ---------------------------------------------------------------------------
// Template objects

/// A relation (`this`, `ref(...)`, `source(...)`): renders as its SQL text.
#[derive(Debug)]
struct Relation {
    text: String,
    database: Option<String>,
    schema: String,
    name: String,
}

impl Relation {
    fn value(text: &str, default_schema: &str) -> Value {
        let parts: Vec<&str> = text.split('.').map(unquote).collect();
        let (database, schema, name) = match parts.as_slice() {
            [name] => (None, default_schema.to_string(), name.to_string()),
            [schema, name] => (None, schema.to_string(), name.to_string()),
            [.., database, schema, name] => (
                Some(database.to_string()),
                schema.to_string(),
                name.to_string(),
            ),
            [] => (None, default_schema.to_string(), String::new()),
        };
        Value::from_object(Relation {
            text: text.to_string(),
            database,
            schema,
            name,
        })
    }
}

fn unquote(part: &str) -> &str {
    let part = part.trim();
    for (open, close) in [('"', '"'), ('`', '`'), ('[', ']')] {
        if let Some(inner) = part.strip_prefix(open).and_then(|p| p.strip_suffix(close)) {
            return inner;
        }
    }
    part
}

impl Object for Relation {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "schema" => Some(Value::from(self.schema.as_str())),
            "name" | "identifier" | "table" => Some(Value::from(self.name.as_str())),
            "database" => self.database.as_deref().map(Value::from),
            _ => None,
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `config(...)`: records keyword arguments; `config.get(key, default)` reads them back.
#[derive(Debug)]
struct ConfigFn {
    collected: Arc<Mutex<Collected>>,
}

fn to_json(key: &str, value: &Value) -> Result<serde_json::Value, minijinja::Error> {
    serde_json::to_value(value).map_err(|err| {
        user_error(format!(
            "config value for `{key}` cannot be represented as JSON: {err}"
        ))
    })
}

impl Object for ConfigFn {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        let (positional, kwargs): (&[Value], Kwargs) = from_args(args)?;
        let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
        // dbt also accepts a single dict: config({'materialized': 'table'}).
        for arg in positional {
            if arg.kind() != ValueKind::Map {
                return Err(user_error(
                    "config() takes keyword arguments, e.g. config(materialized='table')"
                        .to_string(),
                ));
            }
            for key in arg.try_iter()? {
                let Some(name) = key.as_str() else {
                    return Err(user_error(format!(
                        "config() keys must be strings, got `{key}`"
                    )));
                };
                let value = arg.get_item(&key)?;
                entries.push((name.to_string(), to_json(name, &value)?));
            }
        }
        for key in kwargs.args() {
            let value: Value = kwargs.get(key)?;
            entries.push((key.to_string(), to_json(key, &value)?));
        }
        let mut c = lock(&self.collected);
        c.config.extend(entries);
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        match method {
            "get" => {
                let (key, default): (&str, Option<Value>) = from_args(args)?;
                let c = lock(&self.collected);
                Ok(match c.config.get(key) {
                    Some(value) => Value::from_serialize(value),
                    None => default.unwrap_or(Value::from(())),
                })
            }
            "require" => {
                let (key,): (&str,) = from_args(args)?;
                let c = lock(&self.collected);
                match c.config.get(key) {
                    Some(value) => Ok(Value::from_serialize(value)),
                    None => Err(user_error(format!(
                        "config `{key}` is required but was not set with config({key}=...)"
                    ))),
                }
            }
            _ => Err(user_error(format!(
                "config has no method `{method}` (available: get, require)"
            ))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("")
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> RenderContext {
        let mut vars = BTreeMap::new();
        vars.insert("start_date".to_string(), json!("2024-01-01"));
        vars.insert("countries".to_string(), json!(["fr", "de"]));
        vars.insert("lookback".to_string(), json!(7));
        RenderContext {
            vars,
            resolve_ref: Arc::new(|name: &str| match name {
                "stg_users" | "stg_orders" | "stg_events" => Ok(format!("staging.{name}")),
                _ => Err(crate::Error::Sql(format!(
                    "unknown model `{name}` in ref() (did you mean `stg_users`?)"
                ))),
            }),
            resolve_source: Arc::new(|source: &str, table: &str| {
                if source == "raw" {
                    Ok(format!("raw.{table}"))
                } else {
                    Err(crate::Error::Sql(format!("unknown source `{source}`")))
                }
            }),
            this: "features.user_features".to_string(),
            is_incremental: false,
            target_name: "dev".to_string(),
            target_schema: "main".to_string(),
            model_name: "user_features".to_string(),
            macros: None,
        }
    }

    fn ok(text: &str) -> Rendered {
        match render("models/a.sql", text, &ctx()) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(text: &str) -> JinjaError {
        match render("models/a.sql", text, &ctx()) {
            Ok(r) => panic!("expected an error, got {:?}", r.sql),
            Err(e) => e,
        }
    }

    #[test]
    fn needs_rendering_detects_markers() {
        assert!(!needs_rendering("select 1"));
        assert!(!needs_rendering("select '{\"a\": 1}' as j, '{x}'"));
        assert!(!needs_rendering("trailing {"));
        assert!(needs_rendering("select {{ 1 }}"));
        assert!(needs_rendering("{% if true %}{% endif %}"));
        assert!(needs_rendering("{# c #}"));
    }

    #[test]
    fn plain_text_passthrough() {
        let text = "select a, b\nfrom t\nwhere x = '{y}'\n";
        let r = ok(text);
        assert_eq!(r.sql, text);
        assert!(r.refs.is_empty() && r.sources.is_empty() && r.config.is_empty());
        // Rendered text also keeps its trailing newline.
        assert_eq!(ok("select {{ 1 }}\n").sql, "select 1\n");
    }

    #[test]
    fn ref_resolves_to_relation() {
        let r = ok("select * from {{ ref('stg_users') }} u\njoin {{ ref('pkg', 'stg_orders') }} o using (id)\njoin {{ ref('stg_users') }} u2 using (id)");
        assert_eq!(
            r.sql,
            "select * from staging.stg_users u\njoin staging.stg_orders o using (id)\njoin staging.stg_users u2 using (id)"
        );
        assert_eq!(r.refs, vec!["stg_users", "stg_orders"]);
        let r = ok("{{ ref('stg_users').schema }}/{{ ref('stg_users').name }}/{{ ref('stg_users', v=2).identifier }}");
        assert_eq!(r.sql, "staging/stg_users/stg_users");
    }

    #[test]
    fn ref_unknown_is_error_with_line() {
        let e = err("select *\nfrom\n  {{ ref('nope') }}");
        assert_eq!(e.file, "models/a.sql");
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.message,
            "unknown model `nope` in ref() (did you mean `stg_users`?)"
        );
        assert_eq!(
            e.to_string(),
            "models/a.sql:3: unknown model `nope` in ref() (did you mean `stg_users`?)"
        );
    }

    #[test]
    fn source_resolves_and_is_recorded() {
        let r = ok("select * from {{ source('raw', 'events') }} join {{ source('raw', 'users') }} using (id) join {{ source('raw', 'events') }} e2 using (id)");
        assert_eq!(
            r.sql,
            "select * from raw.events join raw.users using (id) join raw.events e2 using (id)"
        );
        assert_eq!(
            r.sources,
            vec![
                ("raw".to_string(), "events".to_string()),
                ("raw".to_string(), "users".to_string())
            ]
        );
        let e = err("\n{{ source('nope', 't') }}");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "unknown source `nope`");
    }

    #[test]
    fn var_with_and_without_default() {
        let r = ok("where d >= '{{ var('start_date') }}' and n = {{ var('lookback') + 1 }} and c in ({{ var('countries') | join(', ') }}) and z = '{{ var('missing', 'fallback') }}' {{ var('missing2', none) is none }}");
        assert_eq!(
            r.sql,
            "where d >= '2024-01-01' and n = 8 and c in (fr, de) and z = 'fallback' True"
        );
    }

    #[test]
    fn missing_var_is_error() {
        let e = err("select 1\n\n\nwhere x = {{ var('region') }}");
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("`region`"), "{}", e.message);
        assert!(e.message.contains("sluice.toml"), "{}", e.message);
        assert!(e.message.contains("dbt_project.yml"), "{}", e.message);
        assert!(e.message.contains("--vars"), "{}", e.message);
    }

    #[test]
    fn config_capture() {
        let r = ok("{{ config(materialized='incremental', unique_key=['a','b'], tags=['x'], enabled=true, batch=500, ratio=0.5,\n   feature_view={'entity': 'user_id', 'timestamp': 'ts', 'ttl': '30d'}) }}\n{{ config(materialized='table', schema='marts') }}select 1");
        assert_eq!(r.sql, "\nselect 1");
        let expected: BTreeMap<String, serde_json::Value> = [
            ("materialized", json!("table")),
            ("unique_key", json!(["a", "b"])),
            ("tags", json!(["x"])),
            ("enabled", json!(true)),
            ("batch", json!(500)),
            ("ratio", json!(0.5)),
            (
                "feature_view",
                json!({"entity": "user_id", "timestamp": "ts", "ttl": "30d"}),
            ),
            ("schema", json!("marts")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(r.config, expected);
    }

    #[test]
    fn config_dict_form_and_get() {
        let r = ok("{{ config({'materialized': 'view'}) }}{{ config.get('materialized') }}|{{ config.get('nope', 'dflt') }}");
        assert_eq!(r.sql, "view|dflt");
        assert_eq!(r.config.get("materialized"), Some(&json!("view")));
    }

    #[test]
    fn is_incremental_branches() {
        let text = "select * from {{ ref('stg_events') }}\n{% if is_incremental() %}where ts > (select max(ts) from {{ this }}){% endif %}";
        let r = ok(text);
        assert_eq!(r.sql, "select * from staging.stg_events\n");
        let mut c = ctx();
        c.is_incremental = true;
        let r = render("models/a.sql", text, &c).unwrap();
        assert_eq!(
            r.sql,
            "select * from staging.stg_events\nwhere ts > (select max(ts) from features.user_features)"
        );
    }

    #[test]
    fn this_target_model() {
        let r = ok("{{ this }} {{ this.schema }} {{ this.name }} {{ this.identifier }} {{ target.name }} {{ target.schema }} {{ model.name }}");
        assert_eq!(
            r.sql,
            "features.user_features features user_features user_features dev main user_features"
        );
        let mut c = ctx();
        c.this = "lonely".to_string();
        let r = render("m.sql", "{{ this.schema }}.{{ this.name }}", &c).unwrap();
        assert_eq!(r.sql, "main.lonely");
    }

    #[test]
    fn set_for_if_whitespace_control() {
        let text = "{%- set cols = ['a', 'b', 'c'] -%}\nselect\n{%- for c in cols %}\n  {{ c | upper }}{% if not loop.last %},{% endif %}\n{%- endfor %}\nfrom t";
        assert_eq!(ok(text).sql, "select\n  A,\n  B,\n  C\nfrom t");
        let r = ok("{{ ['x', 'y'] | length }} {{ 'AbC' | lower }} {{ 'a-b' | replace('-', '_') }} {{ {'k': 1} | tojson }} {{ undefined_thing | default('d') }}");
        assert_eq!(r.sql, "2 abc a_b {\"k\":1} d");
    }

    #[test]
    fn comments_are_removed() {
        assert_eq!(
            ok("select 1 {# a comment\nwith {{ jinja }} inside #}as x").sql,
            "select 1 as x"
        );
    }

    #[test]
    fn macro_in_file() {
        let text = "{% macro cents_to_dollars(col, scale=2) -%}\n  round({{ col }} / 100.0, {{ scale }})\n{%- endmacro %}\nselect {{ cents_to_dollars('amount') }} as amount_usd from {{ ref('stg_orders') }}";
        let r = ok(text);
        assert_eq!(
            r.sql,
            "\nselect round(amount / 100.0, 2) as amount_usd from staging.stg_orders"
        );
        assert_eq!(r.refs, vec!["stg_orders"]);
    }

    #[test]
    fn undefined_variable_error_has_line() {
        let e = err("select\n  a,\n  b,\n  {{ foo }}\nfrom t");
        assert_eq!(e.line, Some(4));
        assert_eq!(e.message, "undefined variable `foo`");
        assert_eq!(e.to_string(), "models/a.sql:4: undefined variable `foo`");

        let e = err("\n{% if missing_flag %}x{% endif %}");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "undefined variable `missing_flag`");

        let e = err("{{ this.nope }}");
        assert_eq!(e.line, Some(1));
        assert_eq!(e.message, "undefined value `this.nope`");

        let e = err("select\n  {{ cols | upper }}");
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.message,
            "undefined variable `cols` (passed to filter `upper`)"
        );

        let e = err("{% for c in columns %}{{ c }}{% endfor %}");
        assert_eq!(e.message, "undefined variable `columns`");

        // Tests and the `default` filter still work on undefined values.
        assert_eq!(
            ok("{{ foo is defined }} {{ foo | default('x') }}").sql,
            "False x"
        );
    }

    #[test]
    fn unknown_function_and_filter() {
        let e = err("select\n{{ dbt_utils_star(ref('stg_users')) }}");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "unknown function `dbt_utils_star`");
        let e = err("\n\n{{ 'a' | shout }}");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.message, "unknown filter `shout`");
        let e = err("{{ config.set('a', 1) }}");
        assert_eq!(
            e.message,
            "config has no method `set` (available: get, require)"
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("select 1\n{% if true %}\nfrom t");
        assert!(e.line.is_some());
        assert!(e.message.starts_with("syntax error: "), "{}", e.message);
        assert!(!e.message.contains("(in "), "{}", e.message);

        let e = err("select 1,\n  {{ 1 + }}\nfrom t");
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("syntax error: "), "{}", e.message);
    }

    #[test]
    fn error_in_macro_points_at_call() {
        let e = err("{% macro m() %}\n  {{ ref('ghost') }}\n{% endmacro %}\n{{ m() }}");
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("unknown model `ghost`"));
    }

    #[test]
    fn other_errors_are_clean() {
        let e = err("\n{{ 'a' + 1 }}");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.starts_with("invalid operation: "),
            "{}",
            e.message
        );
        assert!(e.message.contains("`'a' + 1`"), "{}", e.message);
        assert!(!e.message.contains("(in models/a.sql"), "{}", e.message);
    }

    #[test]
    fn env_var_lookup() {
        // PATH is set in any test environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(ok("{{ env_var('PATH') }}").sql, path);
        assert_eq!(
            ok("{{ env_var('SLUICE_SURELY_UNSET_VAR_42', 'dflt') }}").sql,
            "dflt"
        );
        let e = err("\n{{ env_var('SLUICE_SURELY_UNSET_VAR_42') }}");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains("SLUICE_SURELY_UNSET_VAR_42"),
            "{}",
            e.message
        );
    }

    #[test]
    fn strip_location_suffix() {
        assert_eq!(strip_location("boom (in models/a.sql:3) tail"), "boom tail");
        assert_eq!(strip_location("keep (in words)"), "keep (in words)");
    }

    #[test]
    fn timing_1000_renders() {
        let text = "{{ config(materialized='table') }}\n-- model\nselect u.id,\n  o.total\nfrom {{ ref('stg_users') }} u\njoin {{ ref('stg_orders') }} o on o.user_id = u.id\njoin {{ ref('stg_events') }} e on e.user_id = u.id\nwhere u.created_at >= '{{ var('start_date') }}'\n{% if is_incremental() %}and e.ts > (select max(ts) from {{ this }}){% endif %}\n";
        let c = ctx();
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            let r = render("models/a.sql", text, &c).unwrap();
            assert_eq!(r.refs.len(), 3);
        }
        let elapsed = start.elapsed();
        eprintln!("1000 renders: {elapsed:?} ({:?} each)", elapsed / 1000);
    }

    #[test]
    fn project_macros_are_global_and_errors_point_into_them() {
        let mut ctx = ctx();
        ctx.macros = Some(Arc::new(Macros::new(&[(
            "macros/m.sql".to_string(),
            "{% macro double(x) %}{{ x }} * 2{% endmacro %}\n{% macro bad() %}\n{{ nope }}\n{% endmacro %}".to_string(),
        )])));
        let r = render("models/a.sql", "select {{ double('x') }} as y", &ctx).unwrap();
        assert_eq!(r.sql.trim(), "select x * 2 as y");
        let e = render("models/a.sql", "select 1\n{{ missing }}", &ctx).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("models/a.sql", Some(2)), "{e}");
        let e = render("models/a.sql", "select {{ bad() }}", &ctx).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("macros/m.sql", Some(3)), "{e}");
    }
}
