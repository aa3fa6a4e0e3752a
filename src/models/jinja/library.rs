//! The macro library of a project: every macro namespace (the root project,
//! each installed package, dbt's built-ins) compiled once into one minijinja
//! environment, and the calling conventions dbt code relies on.
//!
//! # How a call finds its macro
//! Each namespace is one template (its macro files concatenated) in which every
//! `{% macro name(...) %}` is renamed `__m_name`. A template being rendered
//! imports every namespace first (on its first line, so line numbers do not
//! move) and hands the imported modules to its [`RenderState`]. Macro names are
//! then reached only through proxies ([`MacroRef`]):
//! - an unqualified name (`cents_to_dollars(...)`) is a global proxy that looks
//!   in the node's own package, then the root project, then dbt's built-ins, as
//!   dbt does, then in the one other package that defines it;
//! - a qualified name (`dbt_utils.star(...)`, `dbt.date_trunc(...)`) is an
//!   attribute of the namespace's global object;
//! - `adapter.dispatch('m', 'pkg')` searches `sluice__m`, `datafusion__m`,
//!   `default__m` in the packages of the namespace's search order.
//!
//! Because every call goes through a proxy, `return(value)` works: the proxy
//! gives the caller the returned value instead of the macro's text.

use super::objects::{self, Relation};
use super::{lock, user_error, Collected, JinjaError, RenderContext, Rendered};
use minijinja::value::{from_args, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

/// The adapter names `adapter.dispatch` tries, in order, before `default`.
pub const DISPATCH_PREFIXES: &[&str] = &["sluice", "datafusion", "duckdb", "postgres", "default"];

/// Prefix given to macro definitions inside namespace templates.
const MANGLE: &str = "__m_";

/// Macro files of one namespace.
#[derive(Debug, Clone)]
pub struct NamespaceSource {
    /// Namespace name: the project or package name, or `dbt`.
    pub name: String,
    /// (display path, text) of each macro file.
    pub files: Vec<(String, String)>,
}

#[derive(Debug)]
struct Space {
    name: String,
    /// (display path, first line in the template, number of lines).
    files: Vec<(String, usize, usize)>,
    macros: HashSet<String>,
}

/// Shared, immutable facts about the namespaces.
#[derive(Debug)]
pub(crate) struct Index {
    spaces: Vec<Space>,
    by_space_name: HashMap<String, usize>,
    root: usize,
    dbt: usize,
    /// dispatch config: macro namespace → package search order.
    search_order: BTreeMap<String, Vec<String>>,
}

impl Index {
    fn space(&self, name: &str) -> Option<usize> {
        self.by_space_name.get(name).copied()
    }

    fn defines(&self, space: usize, name: &str) -> bool {
        self.spaces
            .get(space)
            .is_some_and(|s| s.macros.contains(name))
    }

    /// dbt's lookup of an unqualified name for a node in `package`.
    fn resolve_unqualified(&self, package: Option<usize>, name: &str) -> Option<usize> {
        let order = package
            .into_iter()
            .chain([self.root, self.dbt])
            .collect::<Vec<_>>();
        if let Some(s) = order.iter().copied().find(|s| self.defines(*s, name)) {
            return Some(s);
        }
        let others: Vec<usize> = (0..self.spaces.len())
            .filter(|s| self.defines(*s, name))
            .collect();
        match others.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Maps a line of a namespace template to (file, line in that file).
    fn locate(&self, template: &str, line: usize) -> Option<(String, usize)> {
        let idx: usize = template.strip_prefix("__ns/")?.parse().ok()?;
        self.spaces[idx]
            .files
            .iter()
            .find(|(_, start, n)| line >= *start && line < start + n)
            .map(|(f, start, _)| (f.clone(), line - start + 1))
    }
}

/// Every macro of a project, compiled once.
pub struct MacroLibrary {
    env: Environment<'static>,
    index: Arc<Index>,
    /// Imports every namespace; put in front of each template (no newline).
    prefix: String,
}

impl fmt::Debug for MacroLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacroLibrary")
            .field(
                "namespaces",
                &self
                    .index
                    .spaces
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// dbt's built-in macros written for sluice (`dbt` namespace), in load order.
fn builtin_files() -> Vec<(String, String)> {
    super::super::dbt_macros::FILES
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

impl MacroLibrary {
    /// A library with only dbt's built-ins and an empty root project.
    pub fn builtin() -> Arc<MacroLibrary> {
        static LIB: std::sync::OnceLock<Arc<MacroLibrary>> = std::sync::OnceLock::new();
        LIB.get_or_init(|| {
            let lib = MacroLibrary::new(
                vec![NamespaceSource {
                    name: "__root".into(),
                    files: Vec::new(),
                }],
                "__root",
                BTreeMap::new(),
            );
            match lib {
                Ok(l) => Arc::new(l),
                // The built-in files are tested to compile; an empty library
                // keeps templates without macros working if they ever do not.
                Err(e) => {
                    tracing::error!("dbt built-in macros do not compile: {e}");
                    Arc::new(MacroLibrary::empty())
                }
            }
        })
        .clone()
    }

    fn empty() -> MacroLibrary {
        let spaces = vec![Space {
            name: "__root".into(),
            files: Vec::new(),
            macros: HashSet::new(),
        }];
        let index = Arc::new(Index {
            by_space_name: [("__root".to_string(), 0)].into_iter().collect(),
            spaces,
            root: 0,
            dbt: 0,
            search_order: BTreeMap::new(),
        });
        let mut env = base_environment();
        install_globals(&mut env, &index);
        MacroLibrary {
            env,
            index,
            prefix: String::new(),
        }
    }

    /// Compiles the namespaces: `spaces` holds the root project and packages
    /// (dbt's built-ins are added); `root` names the root project;
    /// `search_order` is the project's `dispatch:` config.
    pub fn new(
        mut sources: Vec<NamespaceSource>,
        root: &str,
        search_order: BTreeMap<String, Vec<String>>,
    ) -> Result<MacroLibrary, JinjaError> {
        if !sources.iter().any(|s| s.name == "dbt") {
            sources.push(NamespaceSource {
                name: "dbt".into(),
                files: builtin_files(),
            });
        }
        let mut env = base_environment();
        let mut spaces = Vec::with_capacity(sources.len());
        let mut by_space_name = HashMap::new();
        let mut prefix = String::new();
        let mut templates = Vec::new();
        for (i, src) in sources.into_iter().enumerate() {
            let mut text = String::new();
            let mut files = Vec::new();
            let mut macros = HashSet::new();
            for (path, body) in &src.files {
                let start = text.matches('\n').count() + 1;
                let (mangled, names) = mangle_macros(&super::preprocess(body));
                macros.extend(names);
                text.push_str(&mangled);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                let lines = text.matches('\n').count() + 1 - start;
                files.push((path.clone(), start, lines));
            }
            by_space_name.insert(src.name.clone(), i);
            prefix.push_str(&format!(
                "{{% import \"__ns/{i}\" as __ns{i} %}}{{{{ __sluice.register({i}, __ns{i}) }}}}"
            ));
            templates.push((format!("__ns/{i}"), text));
            spaces.push(Space {
                name: src.name,
                files,
                macros,
            });
        }
        let root = by_space_name.get(root).copied().unwrap_or(0);
        let dbt = by_space_name.get("dbt").copied().unwrap_or(root);
        let index = Arc::new(Index {
            spaces,
            by_space_name,
            root,
            dbt,
            search_order,
        });
        for (name, text) in templates {
            if let Err(e) = env.add_template_owned(name.clone(), text) {
                let line = e.line().unwrap_or(1);
                let (file, line) = index
                    .locate(&name, line)
                    .map(|(f, l)| (f, Some(l)))
                    .unwrap_or((name.clone(), e.line()));
                return Err(JinjaError {
                    file,
                    line,
                    message: super::error_message("", &e),
                });
            }
        }
        install_globals(&mut env, &index);
        Ok(MacroLibrary { env, index, prefix })
    }

    /// Whether the root project (not a package, not dbt) defines `name`.
    pub fn root_defines(&self, name: &str) -> bool {
        self.index.defines(self.index.root, name)
    }

    /// Namespace names, in search order (root, packages, dbt).
    pub fn namespaces(&self) -> Vec<String> {
        self.index.spaces.iter().map(|s| s.name.clone()).collect()
    }

    /// Every macro of `namespace` (unmangled names).
    pub fn macros_of(&self, namespace: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .index
            .space(namespace)
            .map(|s| self.index.spaces[s].macros.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Renders one template (a model, test, hook...) named `file`.
    pub(crate) fn render(
        self: &Arc<Self>,
        file: &str,
        text: &str,
        ctx: &RenderContext,
        extra: &[(&str, Value)],
    ) -> Result<Rendered, JinjaError> {
        let state = Arc::new(RenderState::new(self.index.clone(), ctx));
        let body = super::preprocess(text);
        let full = format!("{}{}", self.prefix, body);
        let context = state.context_value(ctx, extra);
        let result = self
            .env
            .template_from_named_str(file, &full)
            .and_then(|t| t.render(context));
        let sql = result.map_err(|err| self.convert_error(file, &full, &err))?;
        let collected = std::mem::take(&mut *lock(&state.collected));
        Ok(Rendered {
            sql,
            config: collected.config,
            refs: collected.refs,
            sources: collected.sources,
        })
    }

    fn convert_error(&self, file: &str, text: &str, err: &Error) -> JinjaError {
        // The innermost located error says where it really happened.
        let mut located: Option<(String, usize)> = None;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(c) = cur {
            if let Some(e) = c.downcast_ref::<Error>() {
                if let (Some(name), Some(line)) = (e.name(), e.line()) {
                    located = Some((name.to_string(), line));
                }
            }
            cur = c.source();
        }
        let message = super::error_message(text, err);
        match located {
            Some((name, line)) if name.starts_with("__ns/") => {
                let (f, l) = self
                    .index
                    .locate(&name, line)
                    .unwrap_or((file.to_string(), line));
                JinjaError {
                    file: f,
                    line: Some(l),
                    message,
                }
            }
            Some((_, line)) => JinjaError {
                file: file.to_string(),
                line: Some(line),
                message,
            },
            None => JinjaError {
                file: file.to_string(),
                line: err.line(),
                message,
            },
        }
    }
}

fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Jinja's (and so dbt's) default: an undefined value prints as nothing and
    // iterates as empty; calling it or reading its attributes is an error.
    // dbt_utils' generic tests print variables they set only sometimes.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_debug(false);
    super::install_pycompat(&mut env);
    env
}

/// Renames every `{% macro name(` to `{% macro __m_name(`; returns the names.
fn mangle_macros(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len() + 64);
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("{%") {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..];
        let mut i = 2;
        let bytes = tag.as_bytes();
        if bytes.get(i) == Some(&b'-') || bytes.get(i) == Some(&b'+') {
            i += 1;
        }
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if tag[i..].starts_with("macro")
            && tag[i + 5..]
                .chars()
                .next()
                .is_some_and(|c| c.is_whitespace())
        {
            let mut j = i + 5;
            while bytes.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
                j += 1;
            }
            let start = j;
            while bytes
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                j += 1;
            }
            if j > start {
                let name = &tag[start..j];
                names.push(name.to_string());
                out.push_str(&tag[..start]);
                out.push_str(MANGLE);
                out.push_str(name);
                rest = &tag[j..];
                continue;
            }
        }
        out.push_str("{%");
        rest = &tag[2..];
    }
    out.push_str(rest);
    (out, names)
}

// ---------------------------------------------------------------------------
// Per-render state

/// Everything one rendering needs at call time; in the context as `__sluice`.
pub(crate) struct RenderState {
    pub(crate) index: Arc<Index>,
    pub(crate) vars: BTreeMap<String, serde_json::Value>,
    pub(crate) resolve_ref: super::RefResolver,
    pub(crate) resolve_source: super::SourceResolver,
    pub(crate) is_incremental: bool,
    pub(crate) execute: bool,
    pub(crate) default_schema: String,
    package: Option<usize>,
    pub(crate) introspect: Option<Arc<dyn super::Introspect>>,
    pub(crate) collected: Mutex<Collected>,
    modules: Mutex<Vec<Value>>,
    returns: Mutex<Vec<Option<Value>>>,
    pub(crate) results: Mutex<HashMap<String, Value>>,
}

impl fmt::Debug for RenderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<render state>")
    }
}

impl RenderState {
    fn new(index: Arc<Index>, ctx: &RenderContext) -> Self {
        let package = ctx.package.as_deref().and_then(|p| index.space(p));
        RenderState {
            vars: ctx.vars.clone(),
            resolve_ref: ctx.resolve_ref.clone(),
            resolve_source: ctx.resolve_source.clone(),
            is_incremental: ctx.is_incremental,
            execute: ctx.execute,
            default_schema: ctx.target_schema.clone(),
            package,
            introspect: ctx.introspect.clone(),
            collected: Mutex::new(Collected::default()),
            modules: Mutex::new(vec![Value::UNDEFINED; index.spaces.len()]),
            returns: Mutex::new(Vec::new()),
            results: Mutex::new(HashMap::new()),
            index,
        }
    }

    /// The render context: `this`, `target`, `model`, `execute`, ...
    fn context_value(self: &Arc<Self>, ctx: &RenderContext, extra: &[(&str, Value)]) -> Value {
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        map.insert("__sluice".into(), Value::from_dyn_object(self.clone()));
        map.insert(
            "this".into(),
            Relation::from_text(&ctx.this, &ctx.target_schema),
        );
        map.insert(
            "target".into(),
            Value::from_iter([
                ("name", Value::from(ctx.target_name.as_str())),
                ("schema", Value::from(ctx.target_schema.as_str())),
                ("type", Value::from("sluice")),
                ("database", Value::from("warehouse")),
                ("profile_name", Value::from("sluice")),
                ("threads", Value::from(1)),
            ]),
        );
        let mut model: BTreeMap<String, Value> = match &ctx.node {
            Some(n) => match Value::from_serialize(n).try_iter() {
                Ok(keys) => {
                    let v = Value::from_serialize(n);
                    keys.filter_map(|k| {
                        let key = k.as_str()?.to_string();
                        let val = v.get_item(&k).ok()?;
                        Some((key, val))
                    })
                    .collect()
                }
                Err(_) => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        model
            .entry("name".into())
            .or_insert_with(|| Value::from(ctx.model_name.as_str()));
        map.insert("model".into(), Value::from_iter(model));
        map.insert("execute".into(), Value::from(ctx.execute));
        map.insert(
            "graph".into(),
            match &ctx.graph {
                Some(g) => g.clone(),
                None => Value::from_serialize(serde_json::json!({
                    "nodes": {}, "sources": {}, "exposures": {}, "metrics": {},
                    "semantic_models": {}, "saved_queries": {}, "groups": {}
                })),
            },
        );
        map.insert(
            "flags".into(),
            Value::from_iter([
                ("FULL_REFRESH", Value::from(false)),
                ("WHICH", Value::from("run")),
                ("STORE_FAILURES", Value::from(false)),
            ]),
        );
        map.insert(
            "project_name".into(),
            Value::from(self.index.spaces[self.index.root].name.as_str()),
        );
        for (k, v) in extra {
            map.insert((*k).to_string(), v.clone());
        }
        Value::from_iter(map)
    }

    pub(crate) fn of(state: &State<'_, '_>) -> Result<Arc<RenderState>, Error> {
        state
            .lookup("__sluice")
            .and_then(|v| v.downcast_object::<RenderState>())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "dbt context is not available here",
                )
            })
    }

    fn module(&self, space: usize) -> Value {
        lock(&self.modules)
            .get(space)
            .cloned()
            .unwrap_or(Value::UNDEFINED)
    }

    /// Calls macro `name` of namespace `space` with dbt's `return()` semantics.
    fn call_macro(
        &self,
        state: &State<'_, '_>,
        space: usize,
        name: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let module = self.module(space);
        let mac = module
            .get_attr(&format!("{MANGLE}{name}"))
            .ok()
            .filter(|v| !v.is_undefined())
            .ok_or_else(|| {
                user_error(format!(
                    "macro `{}.{name}` is not defined",
                    self.index.spaces[space].name
                ))
            })?;
        lock(&self.returns).push(None);
        let out = mac.call(state, args);
        let ret = lock(&self.returns).pop().flatten();
        // `return()` ends the macro with an error that carries no message:
        // the value it stored is the macro's result.
        match (out, ret) {
            (_, Some(v)) => Ok(v),
            (Ok(text), None) => Ok(text),
            (Err(e), None) => Err(e),
        }
    }

    /// Stores `value` as the running macro's result; false outside a macro.
    fn set_return(&self, value: Value) -> bool {
        let mut r = lock(&self.returns);
        match r.last_mut() {
            Some(slot) => {
                if slot.is_none() {
                    *slot = Some(value);
                }
                true
            }
            None => false,
        }
    }

    /// `adapter.dispatch(name, namespace)`.
    fn dispatch(&self, name: &str, namespace: Option<&str>) -> Result<Value, Error> {
        if name.contains('.') {
            return Err(user_error(format!(
                "adapter.dispatch('{name}'): the macro name must not contain a dot; pass the package as macro_namespace"
            )));
        }
        let idx = &self.index;
        let search: Vec<Option<usize>> = match namespace {
            None => vec![None],
            Some(ns) => match idx.search_order.get(ns) {
                Some(order) => order.iter().map(|p| idx.space(p)).collect(),
                None if ns != "dbt" && idx.space(ns).is_some() => {
                    vec![Some(idx.root), idx.space(ns)]
                }
                None => vec![None],
            },
        };
        let mut tried = Vec::new();
        for pkg in &search {
            for prefix in DISPATCH_PREFIXES {
                let candidate = format!("{prefix}__{name}");
                let found = match pkg {
                    None => idx.resolve_unqualified(self.package, &candidate),
                    Some(s) => idx.defines(*s, &candidate).then_some(*s),
                };
                match (found, pkg) {
                    (Some(s), _) => {
                        return Ok(Value::from_object(MacroRef {
                            space: Some(s),
                            name: candidate,
                        }))
                    }
                    (None, Some(s)) => tried.push(format!("{}.{candidate}", idx.spaces[*s].name)),
                    (None, None) => tried.push(candidate),
                }
            }
        }
        Err(user_error(format!(
            "adapter.dispatch: no macro named `{name}` in namespace `{}`; searched for {}",
            namespace.unwrap_or("(none)"),
            tried.join(", ")
        )))
    }
}

impl Object for RenderState {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "register" => {
                let (i, module): (usize, Value) = from_args(args)?;
                let mut m = lock(&self.modules);
                if let Some(slot) = m.get_mut(i) {
                    *slot = module;
                }
                Ok(Value::from(""))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

// ---------------------------------------------------------------------------
// Proxies

/// A macro reached by name; calling it finds the macro at call time.
#[derive(Debug)]
pub(crate) struct MacroRef {
    /// The namespace, or `None` for dbt's unqualified lookup.
    space: Option<usize>,
    name: String,
}

impl Object for MacroRef {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "name" => Some(Value::from(self.name.as_str())),
            _ => None,
        }
    }

    fn call(self: &Arc<Self>, state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let rs = RenderState::of(state)?;
        let space = match self.space {
            Some(s) => s,
            None => rs
                .index
                .resolve_unqualified(rs.package, &self.name)
                .ok_or_else(|| {
                    user_error(format!(
                        "macro `{}` is defined in several packages; call it with its package, e.g. `pkg.{}(...)`",
                        self.name, self.name
                    ))
                })?,
        };
        rs.call_macro(state, space, &self.name, args)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<macro {}>", self.name)
    }
}

/// A namespace object (`dbt_utils`, `dbt`, the root project's name).
#[derive(Debug)]
struct NamespaceObj {
    space: usize,
    index: Arc<Index>,
}

impl Object for NamespaceObj {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        self.index.defines(self.space, name).then(|| {
            Value::from_object(MacroRef {
                space: Some(self.space),
                name: name.to_string(),
            })
        })
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if self.index.defines(self.space, method) {
            let rs = RenderState::of(state)?;
            return rs.call_macro(state, self.space, method, args);
        }
        Err(user_error(format!(
            "package `{}` has no macro `{method}`{}",
            self.index.spaces[self.space].name,
            crate::error::did_you_mean(
                method,
                self.index.spaces[self.space]
                    .macros
                    .iter()
                    .map(String::as_str)
            )
        )))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.index.spaces[self.space].name)
    }
}

// ---------------------------------------------------------------------------
// Globals

/// Names our Rust functions own; a macro of the same name only replaces them
/// when the root project defines it (as dbt lets a project override `ref`).
const BUILTIN_FUNCTIONS: &[&str] = &[
    "ref",
    "source",
    "var",
    "env_var",
    "log",
    "exceptions",
    "is_incremental",
    "config",
    "return",
    "run_query",
    "load_relation",
    "load_result",
    "store_result",
    "adapter",
    "api",
    "builtins",
    "this",
    "target",
    "model",
    "execute",
    "__sluice_statement",
];

fn install_globals(env: &mut Environment<'static>, index: &Arc<Index>) {
    env.add_function("ref", ref_fn);
    env.add_function("source", source_fn);
    env.add_function("var", var_fn);
    env.add_function("env_var", env_var_fn);
    env.add_function("log", |msg: Value, _rest: Rest<Value>| {
        tracing::debug!("jinja log: {msg}");
        String::new()
    });
    env.add_function("is_incremental", |state: &State| -> Result<bool, Error> {
        Ok(RenderState::of(state)?.is_incremental)
    });
    // dbt's return() ends the macro: an error stops the template, and the
    // proxy that called the macro turns it into the stored value.
    env.add_function("return", |state: &State, value: Option<Value>| {
        let rs = RenderState::of(state)?;
        if rs.set_return(value.unwrap_or(Value::from(()))) {
            return Err(Error::new(ErrorKind::InvalidOperation, "return()"));
        }
        Ok::<_, Error>(Value::from(""))
    });
    env.add_global(
        "exceptions",
        Value::from_iter([
            (
                "raise_compiler_error",
                Value::from_function(|msg: Value, _rest: Rest<Value>| -> Result<String, Error> {
                    Err(user_error(msg.to_string()))
                }),
            ),
            (
                "raise_not_implemented",
                Value::from_function(|msg: Value| -> Result<String, Error> {
                    Err(user_error(format!("not implemented: {msg}")))
                }),
            ),
            (
                "warn",
                Value::from_function(|msg: Value, _rest: Rest<Value>| {
                    tracing::warn!("{msg}");
                    String::new()
                }),
            ),
            (
                "raise_fail_fast_error",
                Value::from_function(|msg: Value, _rest: Rest<Value>| -> Result<String, Error> {
                    Err(user_error(msg.to_string()))
                }),
            ),
        ]),
    );
    env.add_global("config", Value::from_object(ConfigFn));
    env.add_function("run_query", objects::run_query);
    env.add_function("load_relation", objects::load_relation);
    env.add_function("__sluice_statement", objects::statement);
    env.add_function("load_result", objects::load_result);
    env.add_function("store_result", objects::store_result);
    env.add_global("adapter", Value::from_object(Adapter));
    env.add_global("api", objects::api());
    env.add_global(
        "builtins",
        Value::from_iter([
            ("ref", Value::from_function(ref_fn)),
            ("source", Value::from_function(source_fn)),
            ("config", Value::from_object(ConfigFn)),
        ]),
    );

    // Namespace objects, then unqualified macro names.
    for (i, s) in index.spaces.iter().enumerate() {
        if s.name.starts_with("__") {
            continue;
        }
        env.add_global(
            s.name.clone(),
            Value::from_object(NamespaceObj {
                space: i,
                index: index.clone(),
            }),
        );
    }
    let mut names: HashSet<&str> = HashSet::new();
    for s in &index.spaces {
        names.extend(s.macros.iter().map(String::as_str));
    }
    for name in names {
        let builtin = BUILTIN_FUNCTIONS.contains(&name) || env.globals().any(|(n, _)| n == name);
        if builtin && !index.defines(index.root, name) {
            continue;
        }
        if index.by_space_name.contains_key(name) {
            continue;
        }
        env.add_global(
            name.to_string(),
            Value::from_object(MacroRef {
                space: None,
                name: name.to_string(),
            }),
        );
    }
}

fn ref_fn(state: &State, args: Rest<Value>, _kwargs: Kwargs) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    let strings: Vec<String> = args
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| user_error(format!("ref() takes model names as strings, got `{v}`")))
        })
        .collect::<Result<_, _>>()?;
    let name = match strings.as_slice() {
        [name] | [_, name] => name.clone(),
        _ => {
            return Err(user_error(
                "ref() takes a model name, or a package and a model name".into(),
            ))
        }
    };
    let relation = (rs.resolve_ref)(&name).map_err(|e| user_error(e.to_string()))?;
    let mut c = lock(&rs.collected);
    if !c.refs.contains(&name) {
        c.refs.push(name);
    }
    Ok(Relation::from_text(&relation, &rs.default_schema))
}

fn source_fn(state: &State, source: String, table: String) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    let relation = (rs.resolve_source)(&source, &table).map_err(|e| user_error(e.to_string()))?;
    let mut c = lock(&rs.collected);
    if !c.sources.iter().any(|(s, t)| *s == source && *t == table) {
        c.sources.push((source, table));
    }
    Ok(Relation::from_text(&relation, &rs.default_schema))
}

fn var_fn(state: &State, name: String, rest: Rest<Value>) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    if rest.len() > 1 {
        return Err(user_error(
            "var() takes a variable name and an optional default".to_string(),
        ));
    }
    match (rs.vars.get(&name), rest.first()) {
        (Some(value), _) => Ok(Value::from_serialize(value)),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(user_error(format!(
            "variable `{name}` is not defined and var() was given no default; \
             define it under `vars` in sluice.toml or dbt_project.yml, \
             or pass it with --vars '{{\"{name}\": ...}}'"
        ))),
    }
}

fn env_var_fn(name: String, rest: Rest<Value>) -> Result<Value, Error> {
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
}

/// `config(...)`: records keyword arguments; `config.get(key, default)` reads them back.
#[derive(Debug)]
struct ConfigFn;

fn to_json(key: &str, value: &Value) -> Result<serde_json::Value, Error> {
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

    fn call(self: &Arc<Self>, state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let rs = RenderState::of(state)?;
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
        let mut c = lock(&rs.collected);
        c.config.extend(entries);
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let rs = RenderState::of(state)?;
        match method {
            "get" => {
                let (key, default, _kw): (&str, Option<Value>, Option<Kwargs>) = from_args(args)?;
                let c = lock(&rs.collected);
                Ok(match c.config.get(key) {
                    Some(value) => Value::from_serialize(value),
                    None => default.unwrap_or(Value::from(())),
                })
            }
            "require" => {
                let (key,): (&str,) = from_args(args)?;
                let c = lock(&rs.collected);
                match c.config.get(key) {
                    Some(value) => Ok(Value::from_serialize(value)),
                    None => Err(user_error(format!(
                        "config `{key}` is required but was not set with config({key}=...)"
                    ))),
                }
            }
            "set" => {
                let (key, value): (&str, Value) = from_args(args)?;
                let json = to_json(key, &value)?;
                lock(&rs.collected).config.insert(key.to_string(), json);
                Ok(Value::from(""))
            }
            _ => Err(user_error(format!(
                "config has no method `{method}` (available: get, require, set)"
            ))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("")
    }
}

/// `adapter`: dispatch and warehouse introspection.
#[derive(Debug)]
struct Adapter;

impl Object for Adapter {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let rs = RenderState::of(state)?;
        match method {
            "dispatch" => {
                let (name, namespace, kwargs): (String, Option<Value>, Kwargs) = from_args(args)?;
                let ns_kw: Option<Value> = kwargs.get("macro_namespace")?;
                let _packages: Option<Value> = kwargs.get("packages")?;
                kwargs.assert_all_used()?;
                let ns = namespace
                    .or(ns_kw)
                    .filter(|v| !v.is_none() && !v.is_undefined());
                let ns = ns.as_ref().and_then(|v| v.as_str()).map(str::to_string);
                rs.dispatch(&name, ns.as_deref())
            }
            "type" => Ok(Value::from("sluice")),
            "quote" => {
                let (s,): (Value,) = from_args(args)?;
                Ok(Value::from(format!(
                    "\"{}\"",
                    s.to_string().replace('"', "\"\"")
                )))
            }
            "quote_as_configured" | "quote_seed_column" => {
                let (s, _rest): (Value, Rest<Value>) = from_args(args)?;
                Ok(Value::from(s.to_string()))
            }
            "check_schema_exists" => Ok(Value::from(true)),
            "get_columns_in_relation" => {
                let (relation,): (Value,) = from_args(args)?;
                objects::columns_in_relation(&rs, &relation)
            }
            "get_relation" => {
                let (args_pos, kwargs): (&[Value], Kwargs) = from_args(args)?;
                let get = |i: usize, k: &str| -> Result<Option<String>, Error> {
                    let kw: Option<Value> = kwargs.get(k)?;
                    Ok(args_pos
                        .get(i)
                        .cloned()
                        .or(kw)
                        .filter(|v| !v.is_none() && !v.is_undefined())
                        .map(|v| v.to_string()))
                };
                let _db = get(0, "database")?;
                let schema = get(1, "schema")?.unwrap_or_else(|| rs.default_schema.clone());
                let ident = get(2, "identifier")?.unwrap_or_default();
                objects::get_relation(&rs, &schema, &ident)
            }
            "get_missing_columns" => Ok(Value::from(Vec::<Value>::new())),
            "already_exists" => {
                let (schema, ident): (String, String) = from_args(args)?;
                let r = objects::get_relation(&rs, &schema, &ident)?;
                Ok(Value::from(!r.is_none()))
            }
            _ => Err(user_error(format!(
                "adapter.{method}() is not supported by sluice (supported: dispatch, quote, get_columns_in_relation, get_relation, type, check_schema_exists)"
            ))),
        }
    }
}
