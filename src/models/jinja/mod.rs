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

pub mod library;
pub mod objects;

pub use library::{MacroLibrary, NamespaceSource, DISPATCH_PREFIXES};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::value::Value;
use minijinja::ErrorKind;

/// Resolves `ref('name')` / `ref('package', 'name')` to the SQL text of a relation (e.g. `staging.stg_users`);
/// an error for an unknown model (its message is user-facing and already includes a suggestion:
/// it becomes the template's error).
pub type RefResolver = Arc<dyn Fn(&str) -> crate::Result<String> + Send + Sync>;

/// Resolves `source('source_name', 'table_name')` to a relation text.
pub type SourceResolver = Arc<dyn Fn(&str, &str) -> crate::Result<String> + Send + Sync>;

/// A query result handed to templates (`run_query`, `statement`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// (name, SQL type) of each column.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// The warehouse, as templates see it at compile time (`run_query`,
/// `adapter.get_columns_in_relation`, `adapter.get_relation`). Blocking.
pub trait Introspect: Send + Sync + fmt::Debug {
    /// Runs a query.
    fn query(&self, sql: &str) -> crate::Result<QueryResult>;
    /// (name, SQL type) of the columns of `schema.table`; `None` when it does not exist.
    fn columns(&self, schema: &str, table: &str) -> crate::Result<Option<Vec<(String, String)>>>;
}

/// Everything a model template can see.
#[derive(Clone)]
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
    /// The project's macros (root, packages, dbt built-ins); `None`: built-ins only.
    pub library: Option<Arc<MacroLibrary>>,
    /// The package the node belongs to (`None`: the root project).
    pub package: Option<String>,
    /// dbt's `execute`: false while only collecting config, true when compiling for real.
    pub execute: bool,
    /// The warehouse for `run_query` and introspection (`None`: not available).
    pub introspect: Option<Arc<dyn Introspect>>,
    /// dbt's `model` / node object (resource_type, config, ...), merged into `model`.
    pub node: Option<serde_json::Value>,
    /// dbt's `graph`: `nodes` and `sources` by unique id (`None`: empty),
    /// as a template value built once per compile.
    pub graph: Option<minijinja::Value>,
}

impl RenderContext {
    /// A context with no names: `ref('x')` renders `x`, `source('s', 't')` renders `s.t`.
    pub fn echo(name: &str, target_schema: &str) -> RenderContext {
        RenderContext {
            vars: BTreeMap::new(),
            resolve_ref: Arc::new(|n: &str| Ok(n.to_string())),
            resolve_source: Arc::new(|s: &str, t: &str| Ok(format!("{s}.{t}"))),
            this: name.to_string(),
            is_incremental: false,
            target_name: "dev".into(),
            target_schema: target_schema.to_string(),
            model_name: name.to_string(),
            library: None,
            package: None,
            execute: false,
            introspect: None,
            node: None,
            graph: None,
        }
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
    render_with(file, text, ctx, &[])
}

/// [`render`] with extra context values (e.g. `custom_schema_name`, `node`).
pub fn render_with(
    file: &str,
    text: &str,
    ctx: &RenderContext,
    extra: &[(&str, Value)],
) -> Result<Rendered, JinjaError> {
    if !needs_rendering(text) {
        return Ok(Rendered {
            sql: text.to_string(),
            ..Rendered::default()
        });
    }
    let library = ctx.library.clone().unwrap_or_else(MacroLibrary::builtin);
    library.render(file, text, ctx, extra)
}

/// dbt's Python-flavoured template source, rewritten for minijinja (line numbers kept).
pub(crate) fn preprocess(text: &str) -> std::borrow::Cow<'_, str> {
    super::pycompat::preprocess(text)
}

/// Python methods and helpers dbt code uses.
pub(crate) fn install_pycompat(env: &mut minijinja::Environment<'static>) {
    super::pycompat::install(env);
}

/// What the template declared while rendering.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) config: BTreeMap<String, serde_json::Value>,
    pub(crate) refs: Vec<String>,
    pub(crate) sources: Vec<(String, String)>,
}

/// Locks without ever panicking: a poisoned lock still holds usable data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

pub(crate) fn user_error(message: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(UserMessage(message))
}

pub(crate) fn error_message(text: &str, err: &minijinja::Error) -> String {
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
            library: None,
            package: None,
            execute: true,
            introspect: None,
            node: None,
            graph: None,
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
        // As in dbt (Jinja's default), an undefined value prints as nothing;
        // reading from it is an error that names it.
        assert_eq!(ok("select 1 {{ foo }}").sql, "select 1 ");
        let e = err("select\n  a,\n  b,\n  {{ foo.bar }}\nfrom t");
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("undefined"), "{e}");
        assert!(e.to_string().starts_with("models/a.sql:4: "), "{e}");

        // As in dbt, an undefined value is false in a test.
        assert_eq!(ok("\n{% if missing_flag %}x{% endif %}").sql, "\n");

        // Jinja's defaults, which dbt's packages rely on: a missing attribute
        // is undefined, a filter or a loop over undefined gives nothing.
        assert_eq!(ok("{{ this.nope }}|").sql, "|");
        assert_eq!(ok("select\n  {{ cols | upper }}").sql, "select\n  ");
        assert_eq!(ok("{% for c in columns %}{{ c }}{% endfor %}").sql, "");
        // Calling an undefined value is an error.
        let e = err("select\n  {{ nope() }}");
        assert_eq!(e.line, Some(2));

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
        let e = err("{{ config.nope('a', 1) }}");
        assert_eq!(
            e.message,
            "config has no method `nope` (available: get, require, set)"
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
        ctx.library = Some(Arc::new(
            MacroLibrary::new(
                vec![NamespaceSource {
                    name: "proj".into(),
                    files: vec![(
                        "macros/m.sql".to_string(),
                        "{% macro double(x) %}{{ x }} * 2{% endmacro %}\n{% macro bad() %}\n{{ nope.x }}\n{% endmacro %}".to_string(),
                    )],
                }],
                "proj",
                BTreeMap::new(),
            )
            .unwrap(),
        ));
        let r = render("models/a.sql", "select {{ double('x') }} as y", &ctx).unwrap();
        assert_eq!(r.sql.trim(), "select x * 2 as y");
        let e = render("models/a.sql", "select 1\n{{ missing.x }}", &ctx).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("models/a.sql", Some(2)), "{e}");
        let e = render("models/a.sql", "select {{ bad() }}", &ctx).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("macros/m.sql", Some(3)), "{e}");
    }
}
