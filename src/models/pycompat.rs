//! Python compatibility for dbt-style Jinja on minijinja.
//!
//! dbt packages (dbt_utils, dbt_date, dbt_expectations, audit_helper) and dbt
//! projects are written for Python's Jinja2, where values are Python objects:
//! lists and dicts are mutable (`{% do cols.append(c) %}`), strings have
//! Python's methods (`"a.b".split(".")[-1]`), and dbt adds `{% test %}` and
//! `{% materialization %}` blocks plus context members such as `zip`, `set`,
//! `tojson` and `modules.datetime`. minijinja's values are immutable, so this
//! module bridges the gap in two places:
//!
//! * [`preprocess`] rewrites a template's source before minijinja compiles it:
//!   list literals `[...]` become `__list(...)` and dict literals `{k: v}`
//!   become `__dict(k, v)` (mutable containers, see [`PyList`] and [`PyDict`]),
//!   `{% test x() %}` becomes `{% macro test_x() %}`, and `{% materialization %}`
//!   and `{% docs %}` blocks are dropped. Lines never move.
//! * [`install`] registers the mutable containers' constructors, Python's
//!   methods on strings, lists and dicts (through the environment's unknown
//!   method callback), dbt's functions and filters, and `modules`.

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

// ---------------------------------------------------------------------------
// Source rewrite
// ---------------------------------------------------------------------------

/// Name of the function a list literal is rewritten to.
const LIST_FN: &str = "__list";
/// Name of the function a dict literal is rewritten to.
const DICT_FN: &str = "__dict";

/// Words after which `[` opens a list literal rather than a subscript.
const LITERAL_AFTER: &[&str] = &[
    "in", "and", "or", "not", "if", "elif", "else", "do", "is", "include", "extends", "import",
];

/// Rewrites a dbt template's source for minijinja; see the module docs.
///
/// Every newline stays where it is (only text within a line is rewritten, and
/// removed blocks keep their newlines), so errors keep their line numbers.
/// Text without `{` is returned borrowed.
pub fn preprocess(text: &str) -> Cow<'_, str> {
    if memchr::memchr(b'{', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let mut r = Rewriter {
        src: text,
        out: String::new(),
        copied: 0,
        edited: false,
        stack: Vec::new(),
    };
    r.run();
    if !r.edited {
        return Cow::Borrowed(text);
    }
    r.out.push_str(&text[r.copied..]);
    Cow::Owned(r.out)
}

struct Rewriter<'a> {
    src: &'a str,
    out: String,
    /// Bytes of `src` before this are in `out` (or were replaced).
    copied: usize,
    edited: bool,
    /// Open brackets of the expression being scanned: `(`, `[` (subscript),
    /// `L` (list literal) or `D` (dict literal).
    stack: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq)]
enum Prev {
    /// An operator, an opening bracket, a keyword or the start: `[` opens a literal.
    Other,
    /// A name, a number, a string or a closing bracket: `[` is a subscript.
    Operand,
    /// A `.`: the next name is an attribute.
    Dot,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// At `i` (just after a tag's name): whitespace, an optional `-`/`+` and `%}`;
/// returns the index after `%}`.
fn tag_close(b: &[u8], i: usize) -> Option<usize> {
    let mut i = skip_ws(b, i);
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    (b.get(i..i + 2) == Some(b"%}")).then_some(i + 2)
}

/// The end (index after `%}`) of the first `{% name %}` tag at or after `from`.
fn find_tag(b: &[u8], from: usize, name: &[u8]) -> Option<usize> {
    let mut at = from;
    while let Some(off) = memchr::memmem::find(&b[at..], b"{%") {
        let mut i = at + off + 2;
        at = i;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        i = skip_ws(b, i);
        if b[i..].starts_with(name) && !b.get(i + name.len()).is_some_and(|&c| is_ident_byte(c)) {
            if let Some(end) = tag_close(b, i + name.len()) {
                return Some(end);
            }
        }
    }
    None
}

impl Rewriter<'_> {
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        if !self.edited {
            self.edited = true;
            self.out.reserve(self.src.len() + self.src.len() / 8 + 16);
        }
        self.out.push_str(&self.src[self.copied..start]);
        self.out.push_str(with);
        self.copied = end;
    }

    fn run(&mut self) {
        let b = self.src.as_bytes();
        let mut i = 0;
        while let Some(off) = memchr::memchr(b'{', &b[i..]) {
            let s = i + off;
            i = match b.get(s + 1) {
                Some(b'{') => self.expr(s + 2, b'}', Prev::Other),
                Some(b'%') => self.block(s),
                Some(b'#') => match memchr::memmem::find(&b[s + 2..], b"#}") {
                    Some(e) => s + 2 + e + 2,
                    None => b.len(),
                },
                _ => s + 1,
            };
        }
    }

    /// A `{% ... %}` tag starting at `s`; returns the index after it.
    fn block(&mut self, s: usize) -> usize {
        let b = self.src.as_bytes();
        let mut j = s + 2;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        j = skip_ws(b, j);
        let name_start = j;
        while j < b.len() && is_ident_byte(b[j]) {
            j += 1;
        }
        let name = &self.src[name_start..j];
        match name {
            "raw" => {
                if let Some(after) = tag_close(b, j) {
                    return find_tag(b, after, b"endraw").unwrap_or(b.len());
                }
            }
            "test" => {
                self.replace(name_start, j, "macro");
                let k = skip_ws(b, j);
                if k < b.len() && is_ident_start(b[k]) {
                    self.replace(k, k, "test_");
                }
                return self.expr(j, b'%', Prev::Operand);
            }
            "endtest" => {
                self.replace(name_start, j, "endmacro");
                return self.expr(j, b'%', Prev::Operand);
            }
            "materialization" | "docs" => {
                let end_name = if name == "docs" {
                    &b"enddocs"[..]
                } else {
                    &b"endmaterialization"[..]
                };
                if let Some(end) = find_tag(b, j, end_name) {
                    let newlines: String = self.src[s..end]
                        .chars()
                        .filter(|&c| c == '\n' || c == '\r')
                        .collect();
                    self.replace(s, end, &newlines);
                    return end;
                }
            }
            _ => {}
        }
        let prev = if name.is_empty() || LITERAL_AFTER.contains(&name) {
            Prev::Other
        } else {
            Prev::Operand
        };
        self.expr(j, b'%', prev)
    }

    /// Scans an expression from `start` up to its closing `}}` (`close` is
    /// `}`) or `%}` (`close` is `%`) at bracket depth 0, rewriting literals;
    /// returns the index after the closing marker.
    fn expr(&mut self, start: usize, close: u8, mut prev: Prev) -> usize {
        let b = self.src.as_bytes();
        let n = b.len();
        self.stack.clear();
        let mut i = start;
        while i < n {
            let c = b[i];
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if self.stack.is_empty() {
                let k = if c == b'-' || c == b'+' { i + 1 } else { i };
                if b.get(k) == Some(&close) && b.get(k + 1) == Some(&b'}') {
                    return k + 2;
                }
            }
            match c {
                b'\'' | b'"' => {
                    let mut j = i + 1;
                    while j < n && b[j] != c {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    i = (j + 1).min(n);
                    prev = Prev::Operand;
                }
                b'0'..=b'9' => {
                    i += 1;
                    while i < n
                        && (is_ident_byte(b[i])
                            || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
                    {
                        i += 1;
                    }
                    prev = Prev::Operand;
                }
                c if is_ident_start(c) => {
                    let st = i;
                    while i < n && is_ident_byte(b[i]) {
                        i += 1;
                    }
                    prev = if prev != Prev::Dot && LITERAL_AFTER.contains(&&self.src[st..i]) {
                        Prev::Other
                    } else {
                        Prev::Operand
                    };
                }
                b'[' => {
                    if prev == Prev::Operand {
                        self.stack.push(b'[');
                    } else {
                        self.replace(i, i + 1, "__list(");
                        self.stack.push(b'L');
                    }
                    i += 1;
                    prev = Prev::Other;
                }
                b'{' => {
                    self.replace(i, i + 1, "__dict(");
                    self.stack.push(b'D');
                    i += 1;
                    prev = Prev::Other;
                }
                b'(' => {
                    self.stack.push(b'(');
                    i += 1;
                    prev = Prev::Other;
                }
                b')' | b']' | b'}' => {
                    if let Some(b'L' | b'D') = self.stack.pop() {
                        self.replace(i, i + 1, ")");
                    }
                    i += 1;
                    prev = Prev::Operand;
                }
                b':' => {
                    if self.stack.last() == Some(&b'D') {
                        self.replace(i, i + 1, ",");
                    }
                    i += 1;
                    prev = Prev::Other;
                }
                b'.' => {
                    i += 1;
                    prev = Prev::Dot;
                }
                _ => {
                    i += 1;
                    prev = Prev::Other;
                }
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------
// Installation
// ---------------------------------------------------------------------------

/// Registers everything this module provides on `env`: the unknown method
/// callback ([`call_method`]), `__list`/`__dict` (targets of [`preprocess`]),
/// `zip`, `zip_strict`, `set`, `set_strict`, `dict`, `tojson`, `fromjson`,
/// `toyaml`, `fromyaml`, `local_md5`, `print`, `modules`, and the filters
/// `as_bool`, `as_number`, `as_text`, `as_native`, `center`, `truncate`,
/// `wordcount`, plus `list` and `sort` returning mutable lists, and the test
/// `callable`.
pub fn install(env: &mut Environment<'_>) {
    env.set_unknown_method_callback(call_method);
    env.add_function(LIST_FN, |items: Rest<Value>| -> Value {
        PyList::value(items.0)
    });
    env.add_function(DICT_FN, |items: Rest<Value>| -> Result<Value, Error> {
        if items.len() % 2 != 0 {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "dict literal needs a value for every key",
            ));
        }
        let mut it = items.0.into_iter();
        let mut pairs = Vec::with_capacity(it.len() / 2);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(PyDict::value(pairs))
    });
    env.add_function("zip", |args: Rest<Value>| -> Value {
        zip_values(&args).unwrap_or(Value::from(()))
    });
    env.add_function("zip_strict", |args: Rest<Value>| -> Result<Value, Error> {
        zip_values(&args).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "zip_strict(): arguments must be iterable",
            )
        })
    });
    env.add_function("set", |args: Rest<Value>| -> Result<Value, Error> {
        let a = PyArgs::new("set", &args);
        let value = a.opt(0, "value")?;
        let default = a.opt(1, "default")?;
        a.done(2)?;
        Ok(match value {
            None => PyList::new_set(Vec::new()),
            Some(v) if v.is_none() || v.is_undefined() => PyList::new_set(Vec::new()),
            Some(v) => match v.try_iter() {
                Ok(it) if !matches!(v.kind(), ValueKind::Number | ValueKind::Bool) => {
                    PyList::new_set(it.collect())
                }
                _ => default.unwrap_or(Value::from(())),
            },
        })
    });
    env.add_function("set_strict", |value: Value| -> Result<Value, Error> {
        if matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
        ) {
            Ok(PyList::new_set(value.try_iter()?.collect()))
        } else {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("set_strict(): a {} is not iterable", value.kind()),
            ))
        }
    });
    env.add_function("dict", py_dict_fn);
    env.add_function("tojson", |args: Rest<Value>| -> Result<Value, Error> {
        let a = PyArgs::new("tojson", &args);
        let value = a.req(0, "value")?;
        let default = a.opt(1, "default")?;
        let sort_keys = a.opt(2, "sort_keys")?.is_some_and(|v| v.is_true());
        a.done(3)?;
        match to_json(&value, sort_keys) {
            Ok(s) => Ok(Value::from(s)),
            Err(e) => default.ok_or(e),
        }
    });
    env.add_function("fromjson", |args: Rest<Value>| -> Result<Value, Error> {
        let a = PyArgs::new("fromjson", &args);
        let text = a.req(0, "string")?;
        let default = a.opt(1, "default")?.unwrap_or(Value::from(()));
        a.done(2)?;
        let Some(text) = text.as_str() else {
            return Ok(default);
        };
        Ok(serde_json::from_str::<PyValue>(text)
            .map(|v| v.0)
            .unwrap_or(default))
    });
    env.add_function("toyaml", |args: Rest<Value>| -> Result<Value, Error> {
        let a = PyArgs::new("toyaml", &args);
        let value = a.req(0, "value")?;
        let default = a.opt(1, "default")?;
        a.done(2)?;
        match serde_yaml::to_string(&value) {
            Ok(s) => Ok(Value::from(s)),
            Err(e) => default
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("toyaml(): {e}"))),
        }
    });
    env.add_function("fromyaml", |args: Rest<Value>| -> Result<Value, Error> {
        let a = PyArgs::new("fromyaml", &args);
        let text = a.req(0, "value")?;
        let default = a.opt(1, "default")?.unwrap_or(Value::from(()));
        a.done(2)?;
        let Some(text) = text.as_str() else {
            return Ok(default);
        };
        Ok(serde_yaml::from_str::<PyValue>(text)
            .map(|v| v.0)
            .unwrap_or(default))
    });
    env.add_function("local_md5", |value: Value| -> Value {
        Value::from(md5_hex(py_str(&value).as_bytes()))
    });
    env.add_function("print", |args: Rest<Value>| -> Value {
        let line: Vec<String> = args.iter().map(py_str).collect();
        tracing::info!("{}", line.join(" "));
        Value::from("")
    });
    env.add_global("modules", modules());

    env.add_filter("as_bool", as_bool);
    env.add_filter("as_number", as_number);
    env.add_filter("as_text", |v: Value| -> Value {
        if v.is_none() || v.is_undefined() {
            Value::from("")
        } else {
            Value::from(v.to_string())
        }
    });
    env.add_filter("as_native", as_native);
    env.add_filter("list", |state: &State, v: Value| -> Result<Value, Error> {
        let list = minijinja::filters::list(state, v)?;
        Ok(PyList::value(list.try_iter()?.collect()))
    });
    env.add_filter(
        "sort",
        |state: &State, v: Value, kw: Kwargs| -> Result<Value, Error> {
            let sorted = minijinja::filters::sort(state, v, kw)?;
            Ok(PyList::value(sorted.try_iter()?.collect()))
        },
    );
    env.add_filter("center", |s: String, width: Option<usize>| -> String {
        center(&s, width.unwrap_or(80), ' ')
    });
    env.add_filter("truncate", truncate);
    env.add_filter("wordcount", |s: String| -> usize {
        s.split_whitespace().count()
    });
    env.add_test("callable", |v: Value| -> bool {
        v.kind() == ValueKind::Plain && v.as_object().is_some_and(|o| o.repr() == ObjectRepr::Plain)
    });
}

/// A deep copy of `value` in which every list and map is mutable
/// ([`PyList`]/[`PyDict`]), for values that templates may change in place
/// (e.g. `var()` results, parsed YAML).
pub fn to_mutable(value: &Value) -> Value {
    if value.downcast_object_ref::<PyList>().is_some()
        || value.downcast_object_ref::<PyDict>().is_some()
    {
        return value.clone();
    }
    match value.kind() {
        ValueKind::Seq => match value.try_iter() {
            Ok(it) => PyList::value(it.map(|v| to_mutable(&v)).collect()),
            Err(_) => value.clone(),
        },
        ValueKind::Map => match value.as_object().and_then(|o| o.try_iter_pairs()) {
            Some(it) => PyDict::value(it.map(|(k, v)| (k, to_mutable(&v))).collect()),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

// ---------------------------------------------------------------------------
// Argument handling
// ---------------------------------------------------------------------------

/// Python-style arguments: positional values, then keyword arguments.
struct PyArgs<'a> {
    what: &'a str,
    pos: &'a [Value],
    kw: Option<Kwargs>,
}

impl<'a> PyArgs<'a> {
    fn new(what: &'a str, args: &'a [Value]) -> Self {
        if let Some(last) = args.last() {
            if last.is_kwargs() {
                return PyArgs {
                    what,
                    pos: &args[..args.len() - 1],
                    kw: Kwargs::try_from(last.clone()).ok(),
                };
            }
        }
        PyArgs {
            what,
            pos: args,
            kw: None,
        }
    }

    /// The argument at position `idx` or named `name`, if given.
    fn opt(&self, idx: usize, name: &str) -> Result<Option<Value>, Error> {
        if let Some(v) = self.pos.get(idx) {
            return Ok(Some(v.clone()));
        }
        match &self.kw {
            Some(kw) if kw.has(name) => Ok(Some(kw.get::<Value>(name)?)),
            _ => Ok(None),
        }
    }

    /// Like [`opt`](Self::opt), with `none` meaning not given.
    fn opt_some(&self, idx: usize, name: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .opt(idx, name)?
            .filter(|v| !v.is_none() && !v.is_undefined()))
    }

    fn req(&self, idx: usize, name: &str) -> Result<Value, Error> {
        self.opt(idx, name)?.ok_or_else(|| {
            Error::new(
                ErrorKind::MissingArgument,
                format!("{}() missing required argument '{name}'", self.what),
            )
        })
    }

    fn opt_str(&self, idx: usize, name: &str) -> Result<Option<String>, Error> {
        match self.opt_some(idx, name)? {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(self.type_error(name, "a string", &v)),
            },
        }
    }

    fn req_str(&self, idx: usize, name: &str) -> Result<String, Error> {
        let v = self.req(idx, name)?;
        match v.as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(self.type_error(name, "a string", &v)),
        }
    }

    fn opt_int(&self, idx: usize, name: &str) -> Result<Option<i64>, Error> {
        match self.opt_some(idx, name)? {
            None => Ok(None),
            Some(v) => as_int(&v)
                .map(Some)
                .ok_or_else(|| self.type_error(name, "an integer", &v)),
        }
    }

    fn type_error(&self, name: &str, expected: &str, got: &Value) -> Error {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{}(): argument '{name}' must be {expected}, not {}",
                self.what,
                got.kind()
            ),
        )
    }

    /// Fails on more than `max` positional arguments or unknown keywords.
    fn done(&self, max: usize) -> Result<(), Error> {
        if self.pos.len() > max {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!(
                    "{}() takes at most {max} arguments ({} given)",
                    self.what,
                    self.pos.len()
                ),
            ));
        }
        if let Some(kw) = &self.kw {
            kw.assert_all_used().map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("{}(): {}", self.what, e.detail().unwrap_or("")),
                )
            })?;
        }
        Ok(())
    }
}

fn as_int(v: &Value) -> Option<i64> {
    if v.kind() == ValueKind::Bool {
        return Some(v.is_true() as i64);
    }
    if v.is_integer() {
        v.as_i64()
    } else {
        None
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v.kind() {
        ValueKind::Number => f64::try_from(v.clone()).ok(),
        ValueKind::Bool => Some(v.is_true() as i64 as f64),
        _ => None,
    }
}

fn none() -> Value {
    Value::from(())
}

fn unknown_method() -> Error {
    Error::from(ErrorKind::UnknownMethod)
}

fn op_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------
// Mutable list (and set)
// ---------------------------------------------------------------------------

/// A mutable list: what `[...]` evaluates to after [`preprocess`], and what
/// `set()`, `| list`, `| sort` and `.copy()` return. With `set`, it keeps no
/// duplicates and has Python's set methods.
#[derive(Debug, Default)]
pub struct PyList {
    items: Mutex<Vec<Value>>,
    set: bool,
}

impl PyList {
    /// A mutable list value holding `items`.
    pub fn value(items: Vec<Value>) -> Value {
        Value::from_object(PyList {
            items: Mutex::new(items),
            set: false,
        })
    }

    /// A mutable set value holding the distinct `items`, in first-seen order.
    pub fn new_set(items: Vec<Value>) -> Value {
        let mut unique: Vec<Value> = Vec::with_capacity(items.len());
        for item in items {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        Value::from_object(PyList {
            items: Mutex::new(unique),
            set: true,
        })
    }

    /// A copy of the items (never call into values while holding the lock:
    /// a list may contain itself).
    pub fn snapshot(&self) -> Vec<Value> {
        lock(&self.items).clone()
    }

    fn len(&self) -> usize {
        lock(&self.items).len()
    }
}

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let idx = key.as_usize()?;
        lock(&self.items).get(idx).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.snapshot())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.len() > 0
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if self.set {
            return set_method(self, method, args);
        }
        match list_mut_method(self, method, args) {
            Err(e) if e.kind() == ErrorKind::UnknownMethod => {
                list_read_method(&self.snapshot(), method, args)
            }
            other => other,
        }
    }
}

const LIST_MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
    "clear",
    "__setitem__",
    "add",
    "discard",
    "update",
];

fn list_mut_method(list: &PyList, method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    match method {
        "append" => {
            let x = a.req(0, "object")?;
            a.done(1)?;
            lock(&list.items).push(x);
            Ok(none())
        }
        "extend" => {
            let other = a.req(0, "iterable")?;
            a.done(1)?;
            let new: Vec<Value> = other.try_iter()?.collect();
            lock(&list.items).extend(new);
            Ok(none())
        }
        "insert" => {
            let idx = a
                .opt_int(0, "index")?
                .ok_or_else(|| a.type_error("index", "an integer", &none()))?;
            let x = a.req(1, "object")?;
            a.done(2)?;
            let mut items = lock(&list.items);
            let at = py_index_clamped(idx, items.len());
            items.insert(at, x);
            Ok(none())
        }
        "pop" => {
            let idx = a.opt_int(0, "index")?;
            a.done(1)?;
            let mut items = lock(&list.items);
            if items.is_empty() {
                return Err(op_error("pop from empty list"));
            }
            let len = items.len() as i64;
            let i = idx.unwrap_or(-1);
            let i = if i < 0 { i + len } else { i };
            if i < 0 || i >= len {
                return Err(op_error("pop index out of range"));
            }
            Ok(items.remove(i as usize))
        }
        "remove" => {
            let x = a.req(0, "value")?;
            a.done(1)?;
            let pos = list.snapshot().iter().position(|v| v == &x);
            match pos {
                Some(p) => {
                    let mut items = lock(&list.items);
                    if p < items.len() {
                        items.remove(p);
                    }
                    Ok(none())
                }
                None => Err(op_error(format!(
                    "list.remove(x): {} not in list",
                    py_repr(&x)
                ))),
            }
        }
        "reverse" => {
            a.done(0)?;
            lock(&list.items).reverse();
            Ok(none())
        }
        "sort" => {
            let reverse = a.opt(usize::MAX, "reverse")?.is_some_and(|v| v.is_true());
            if a.opt_some(usize::MAX, "key")?.is_some() {
                return Err(op_error(
                    "list.sort(): key= is not supported; use the sort filter with attribute=",
                ));
            }
            a.done(0)?;
            let mut items = list.snapshot();
            items.sort();
            if reverse {
                items.reverse();
            }
            *lock(&list.items) = items;
            Ok(none())
        }
        "clear" => {
            a.done(0)?;
            lock(&list.items).clear();
            Ok(none())
        }
        "__setitem__" => {
            let idx = a
                .opt_int(0, "index")?
                .ok_or_else(|| a.type_error("index", "an integer", &none()))?;
            let x = a.req(1, "value")?;
            a.done(2)?;
            let mut items = lock(&list.items);
            let len = items.len() as i64;
            let i = if idx < 0 { idx + len } else { idx };
            if i < 0 || i >= len {
                return Err(op_error("list assignment index out of range"));
            }
            items[i as usize] = x;
            Ok(none())
        }
        _ => Err(unknown_method()),
    }
}

/// Methods that read a list: `index`, `count`, `copy`.
fn list_read_method(items: &[Value], method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    match method {
        "index" => {
            let x = a.req(0, "value")?;
            let start = a.opt_int(1, "start")?;
            let end = a.opt_int(2, "end")?;
            a.done(3)?;
            let (s, e) = py_slice(items.len(), start, end);
            items[s..e.max(s)]
                .iter()
                .position(|v| v == &x)
                .map(|p| Value::from(s + p))
                .ok_or_else(|| op_error(format!("{} is not in list", py_repr(&x))))
        }
        "count" => {
            let x = a.req(0, "value")?;
            a.done(1)?;
            Ok(Value::from(items.iter().filter(|v| *v == &x).count()))
        }
        "copy" => {
            a.done(0)?;
            Ok(PyList::value(items.to_vec()))
        }
        _ => Err(unknown_method()),
    }
}

fn set_method(set: &PyList, method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    let other_items = |idx: usize| -> Result<Vec<Value>, Error> {
        let mut all = Vec::new();
        for v in a.pos.iter().skip(idx) {
            all.extend(v.try_iter()?);
        }
        Ok(all)
    };
    match method {
        "add" => {
            let x = a.req(0, "elem")?;
            a.done(1)?;
            if !set.snapshot().contains(&x) {
                lock(&set.items).push(x);
            }
            Ok(none())
        }
        "update" => {
            let new = other_items(0)?;
            let mut items = set.snapshot();
            for x in new {
                if !items.contains(&x) {
                    items.push(x);
                }
            }
            *lock(&set.items) = items;
            Ok(none())
        }
        "discard" | "remove" => {
            let x = a.req(0, "elem")?;
            a.done(1)?;
            let pos = set.snapshot().iter().position(|v| v == &x);
            match pos {
                Some(p) => {
                    let mut items = lock(&set.items);
                    if p < items.len() {
                        items.remove(p);
                    }
                    Ok(none())
                }
                None if method == "discard" => Ok(none()),
                None => Err(op_error(format!(
                    "set.remove(x): {} not in set",
                    py_repr(&x)
                ))),
            }
        }
        "pop" => {
            a.done(0)?;
            let mut items = lock(&set.items);
            if items.is_empty() {
                return Err(op_error("pop from an empty set"));
            }
            Ok(items.remove(0))
        }
        "clear" => {
            a.done(0)?;
            lock(&set.items).clear();
            Ok(none())
        }
        "copy" => {
            a.done(0)?;
            Ok(PyList::new_set(set.snapshot()))
        }
        "union" => {
            let mut items = set.snapshot();
            items.extend(other_items(0)?);
            Ok(PyList::new_set(items))
        }
        "intersection" | "difference" | "symmetric_difference" => {
            let mine = set.snapshot();
            let other = other_items(0)?;
            let items: Vec<Value> = match method {
                "intersection" => mine.into_iter().filter(|v| other.contains(v)).collect(),
                "difference" => mine.into_iter().filter(|v| !other.contains(v)).collect(),
                _ => {
                    let mut out: Vec<Value> = mine
                        .iter()
                        .filter(|v| !other.contains(v))
                        .cloned()
                        .collect();
                    out.extend(other.into_iter().filter(|v| !mine.contains(v)));
                    out
                }
            };
            Ok(PyList::new_set(items))
        }
        "issubset" | "issuperset" | "isdisjoint" => {
            let mine = set.snapshot();
            let other = other_items(0)?;
            Ok(Value::from(match method {
                "issubset" => mine.iter().all(|v| other.contains(v)),
                "issuperset" => other.iter().all(|v| mine.contains(v)),
                _ => !mine.iter().any(|v| other.contains(v)),
            }))
        }
        _ => Err(unknown_method()),
    }
}

/// Python's `list.insert` position: negative counts from the end, clamped.
fn py_index_clamped(idx: i64, len: usize) -> usize {
    let len = len as i64;
    let i = if idx < 0 {
        (idx + len).max(0)
    } else {
        idx.min(len)
    };
    i as usize
}

/// Python slice bounds `[start:end]` over `len` elements, clamped.
fn py_slice(len: usize, start: Option<i64>, end: Option<i64>) -> (usize, usize) {
    let l = len as i64;
    let norm = |v: i64| -> usize {
        let v = if v < 0 { v + l } else { v };
        v.clamp(0, l) as usize
    };
    (start.map_or(0, norm), end.map_or(len, norm))
}

// ---------------------------------------------------------------------------
// Mutable dict
// ---------------------------------------------------------------------------

/// A mutable dict keeping insertion order: what `{...}` evaluates to after
/// [`preprocess`], and what `dict()`, `fromjson()` and `.copy()` return.
#[derive(Debug, Default)]
pub struct PyDict {
    inner: Mutex<DictInner>,
}

#[derive(Debug, Default, Clone)]
struct DictInner {
    entries: Vec<(Value, Value)>,
    /// Positions of the string keys.
    index: HashMap<String, usize>,
}

impl DictInner {
    fn reindex(&mut self) {
        self.index.clear();
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if let Some(s) = k.as_str() {
                self.index.insert(s.to_string(), i);
            }
        }
    }
}

impl PyDict {
    /// A mutable dict value holding `pairs` (later duplicates win, keeping
    /// the first one's position, as in Python).
    pub fn value(pairs: Vec<(Value, Value)>) -> Value {
        let dict = PyDict::default();
        for (k, v) in pairs {
            dict.insert(k, v);
        }
        Value::from_object(dict)
    }

    /// A copy of the entries, in insertion order.
    pub fn snapshot(&self) -> Vec<(Value, Value)> {
        lock(&self.inner).entries.clone()
    }

    fn len(&self) -> usize {
        lock(&self.inner).entries.len()
    }

    fn position(&self, key: &Value) -> Option<usize> {
        if let Some(s) = key.as_str() {
            return lock(&self.inner).index.get(s).copied();
        }
        let keys: Vec<Value> = lock(&self.inner)
            .entries
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().position(|k| k == key)
    }

    fn get(&self, key: &Value) -> Option<Value> {
        let pos = self.position(key)?;
        lock(&self.inner).entries.get(pos).map(|(_, v)| v.clone())
    }

    fn insert(&self, key: Value, value: Value) {
        let pos = self.position(&key);
        let mut inner = lock(&self.inner);
        match pos {
            Some(p) if p < inner.entries.len() => inner.entries[p].1 = value,
            _ => {
                if let Some(s) = key.as_str() {
                    let at = inner.entries.len();
                    inner.index.insert(s.to_string(), at);
                }
                inner.entries.push((key, value));
            }
        }
    }

    fn remove(&self, key: &Value) -> Option<Value> {
        let pos = self.position(key)?;
        let mut inner = lock(&self.inner);
        if pos >= inner.entries.len() {
            return None;
        }
        let (_, v) = inner.entries.remove(pos);
        inner.reindex();
        Some(v)
    }
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get(key)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let inner = lock(&self.inner);
        let pos = *inner.index.get(key)?;
        inner.entries.get(pos).map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::KeyValueIter(Box::new(self.snapshot().into_iter()))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.len() > 0
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match dict_mut_method(self, method, args) {
            Err(e) if e.kind() == ErrorKind::UnknownMethod => {
                dict_read_method(&self.snapshot(), method, args)
            }
            other => other,
        }
    }
}

const DICT_MUTATORS: &[&str] = &[
    "update",
    "pop",
    "popitem",
    "setdefault",
    "clear",
    "__setitem__",
];

/// `(key, value)` pairs from a mapping, or from a sequence of pairs.
fn pairs_of(value: &Value) -> Result<Vec<(Value, Value)>, Error> {
    if value.kind() == ValueKind::Map {
        if let Some(d) = value.downcast_object_ref::<PyDict>() {
            return Ok(d.snapshot());
        }
        if let Some(it) = value.as_object().and_then(|o| o.try_iter_pairs()) {
            return Ok(it.collect());
        }
        let mut pairs = Vec::new();
        for k in value.try_iter()? {
            let v = value.get_item(&k)?;
            pairs.push((k, v));
        }
        return Ok(pairs);
    }
    let mut pairs = Vec::new();
    for item in value.try_iter()? {
        let mut it = item.try_iter()?;
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => pairs.push((k, v)),
            _ => {
                return Err(op_error(
                    "dictionary update sequence element must be a pair",
                ))
            }
        }
    }
    Ok(pairs)
}

fn kwargs_pairs(kw: &Option<Kwargs>) -> Result<Vec<(Value, Value)>, Error> {
    let mut pairs = Vec::new();
    if let Some(kw) = kw {
        let names: Vec<String> = kw.args().map(str::to_string).collect();
        for name in names {
            let v: Value = kw.get(&name)?;
            pairs.push((Value::from(name), v));
        }
    }
    Ok(pairs)
}

fn dict_mut_method(dict: &PyDict, method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    match method {
        "update" => {
            let mut pairs = match a.pos.first() {
                Some(other) if !other.is_none() && !other.is_undefined() => pairs_of(other)?,
                _ => Vec::new(),
            };
            if a.pos.len() > 1 {
                return Err(op_error("update expected at most 1 argument"));
            }
            pairs.extend(kwargs_pairs(&a.kw)?);
            for (k, v) in pairs {
                dict.insert(k, v);
            }
            Ok(none())
        }
        "pop" => {
            let k = a.req(0, "key")?;
            let default = a.opt(1, "default")?;
            a.done(2)?;
            match dict.remove(&k) {
                Some(v) => Ok(v),
                None => default.ok_or_else(|| op_error(format!("KeyError: {}", py_repr(&k)))),
            }
        }
        "popitem" => {
            a.done(0)?;
            let mut inner = lock(&dict.inner);
            match inner.entries.pop() {
                Some((k, v)) => {
                    if let Some(s) = k.as_str() {
                        inner.index.remove(s);
                    }
                    Ok(Value::from(vec![k, v]))
                }
                None => Err(op_error("popitem(): dictionary is empty")),
            }
        }
        "setdefault" => {
            let k = a.req(0, "key")?;
            let default = a.opt(1, "default")?.unwrap_or(none());
            a.done(2)?;
            match dict.get(&k) {
                Some(v) => Ok(v),
                None => {
                    dict.insert(k, default.clone());
                    Ok(default)
                }
            }
        }
        "clear" => {
            a.done(0)?;
            *lock(&dict.inner) = DictInner::default();
            Ok(none())
        }
        "__setitem__" => {
            let k = a.req(0, "key")?;
            let v = a.req(1, "value")?;
            a.done(2)?;
            dict.insert(k, v);
            Ok(none())
        }
        _ => Err(unknown_method()),
    }
}

/// Methods that read a dict: `get`, `items`, `keys`, `values`, `copy`.
fn dict_read_method(
    entries: &[(Value, Value)],
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    match method {
        "get" => {
            let k = a.req(0, "key")?;
            let default = a.opt(1, "default")?.unwrap_or(none());
            a.done(2)?;
            Ok(entries
                .iter()
                .find(|(key, _)| key == &k)
                .map(|(_, v)| v.clone())
                .unwrap_or(default))
        }
        "items" => {
            a.done(0)?;
            Ok(Value::from(
                entries
                    .iter()
                    .map(|(k, v)| Value::from(vec![k.clone(), v.clone()]))
                    .collect::<Vec<_>>(),
            ))
        }
        "keys" => {
            a.done(0)?;
            Ok(Value::from(
                entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            ))
        }
        "values" => {
            a.done(0)?;
            Ok(Value::from(
                entries.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            ))
        }
        "copy" => {
            a.done(0)?;
            Ok(PyDict::value(entries.to_vec()))
        }
        "has_key" => {
            let k = a.req(0, "key")?;
            a.done(1)?;
            Ok(Value::from(entries.iter().any(|(key, _)| key == &k)))
        }
        _ => Err(unknown_method()),
    }
}

/// `dict(mapping_or_pairs=none, **kwargs)`, mutable.
fn py_dict_fn(args: Rest<Value>) -> Result<Value, Error> {
    let a = PyArgs::new("dict", &args);
    let mut pairs = match a.pos.first() {
        Some(v) if !v.is_none() && !v.is_undefined() => pairs_of(v)?,
        _ => Vec::new(),
    };
    if a.pos.len() > 1 {
        return Err(op_error("dict expected at most 1 argument"));
    }
    pairs.extend(kwargs_pairs(&a.kw)?);
    Ok(PyDict::value(pairs))
}

// ---------------------------------------------------------------------------
// Methods on plain values
// ---------------------------------------------------------------------------

/// The environment's unknown method callback: Python's methods on strings,
/// and the read-only methods of lists and dicts on every list and map value
/// (mutating ones fail with a message saying the value is read-only).
/// [`PyList`] and [`PyDict`] implement their methods themselves.
pub fn call_method(
    _state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => str_method(value.as_str().unwrap_or_default(), method, args),
        ValueKind::Bytes => bytes_method(value.as_bytes().unwrap_or_default(), method, args),
        ValueKind::Seq | ValueKind::Iterable => {
            if LIST_MUTATORS.contains(&method) {
                return Err(read_only("list", method));
            }
            let items: Vec<Value> = value.try_iter()?.collect();
            list_read_method(&items, method, args)
        }
        ValueKind::Map => {
            // A callable stored under that name (a namespace of macros, say)
            // is called by the engine after this callback declines.
            if let Some(obj) = value.as_object() {
                if obj
                    .get_value(&Value::from(method))
                    .is_some_and(|v| v.kind() == ValueKind::Plain)
                {
                    return Err(unknown_method());
                }
            }
            if DICT_MUTATORS.contains(&method) {
                return Err(read_only("dict", method));
            }
            if !matches!(
                method,
                "get" | "items" | "keys" | "values" | "copy" | "has_key"
            ) {
                return Err(unknown_method());
            }
            dict_read_method(&pairs_of(value)?, method, args)
        }
        _ => Err(unknown_method()),
    }
}

fn read_only(kind: &str, method: &str) -> Error {
    let origin = if kind == "list" {
        "a var(), config or graph value, or the result of `a + b`"
    } else {
        "a var(), config or graph value"
    };
    op_error(format!(
        "cannot call {method}() on this {kind}: it is read-only (only lists and dicts written as \
         literals in the template, or made by `| list`, dict(), set() or .copy(), can be changed in \
         place, not {origin}); make a mutable copy first, e.g. {{% set x = x.copy() %}}"
    ))
}

fn bytes_method(b: &[u8], method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    match method {
        "decode" => {
            let _encoding = a.opt_str(0, "encoding")?;
            let _errors = a.opt_str(1, "errors")?;
            a.done(2)?;
            Ok(Value::from(String::from_utf8_lossy(b).into_owned()))
        }
        "hex" => {
            a.done(0)?;
            Ok(Value::from(hex(b)))
        }
        _ => Err(unknown_method()),
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(data))
}

/// Converts a character index into a byte offset of `s` (clamped).
fn char_to_byte(s: &str, idx: usize) -> usize {
    if s.is_ascii() {
        return idx.min(s.len());
    }
    s.char_indices().nth(idx).map_or(s.len(), |(b, _)| b)
}

fn byte_to_char(s: &str, b: usize) -> usize {
    if s.is_ascii() {
        b
    } else {
        s[..b].chars().count()
    }
}

fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// The strings among a prefix argument: a string, or a list/tuple of them.
fn str_options(v: &Value) -> Result<Vec<String>, Error> {
    if let Some(s) = v.as_str() {
        return Ok(vec![s.to_string()]);
    }
    if matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable) {
        return v
            .try_iter()?
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| op_error("expected a string or a tuple of strings"))
            })
            .collect();
    }
    Err(op_error(format!(
        "expected a string or a tuple of strings, not {}",
        v.kind()
    )))
}

fn strs_value(parts: Vec<String>) -> Value {
    PyList::value(parts.into_iter().map(Value::from).collect())
}

/// Python's string methods.
fn str_method(s: &str, method: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(method, args);
    let string = |x: String| -> Result<Value, Error> { Ok(Value::from(x)) };
    match method {
        "lower" | "casefold" => {
            a.done(0)?;
            string(s.to_lowercase())
        }
        "upper" => {
            a.done(0)?;
            string(s.to_uppercase())
        }
        "swapcase" => {
            a.done(0)?;
            string(
                s.chars()
                    .flat_map(|c| -> Vec<char> {
                        if c.is_uppercase() {
                            c.to_lowercase().collect()
                        } else {
                            c.to_uppercase().collect()
                        }
                    })
                    .collect(),
            )
        }
        "title" => {
            a.done(0)?;
            let mut out = String::with_capacity(s.len());
            let mut prev_cased = false;
            for c in s.chars() {
                if prev_cased {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                prev_cased = c.is_alphabetic();
            }
            string(out)
        }
        "capitalize" => {
            a.done(0)?;
            let mut chars = s.chars();
            let out = match chars.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            };
            string(out)
        }
        "strip" | "lstrip" | "rstrip" => {
            let chars = a.opt_str(0, "chars")?;
            a.done(1)?;
            let out = match (&chars, method) {
                (None, "strip") => s.trim(),
                (None, "lstrip") => s.trim_start(),
                (None, _) => s.trim_end(),
                (Some(cs), "strip") => s.trim_matches(|c| cs.contains(c)),
                (Some(cs), "lstrip") => s.trim_start_matches(|c| cs.contains(c)),
                (Some(cs), _) => s.trim_end_matches(|c| cs.contains(c)),
            };
            string(out.to_string())
        }
        "split" | "rsplit" => {
            let sep = a.opt_str(0, "sep")?;
            let maxsplit = a.opt_int(1, "maxsplit")?.unwrap_or(-1);
            a.done(2)?;
            Ok(strs_value(py_split(
                s,
                sep.as_deref(),
                maxsplit,
                method == "rsplit",
            )?))
        }
        "splitlines" => {
            let keepends = a.opt(0, "keepends")?.is_some_and(|v| v.is_true());
            a.done(1)?;
            Ok(strs_value(splitlines(s, keepends)))
        }
        "replace" => {
            let old = a.req_str(0, "old")?;
            let new = a.req_str(1, "new")?;
            let count = a.opt_int(2, "count")?.unwrap_or(-1);
            a.done(3)?;
            string(if count < 0 {
                s.replace(&old, &new)
            } else {
                s.replacen(&old, &new, count as usize)
            })
        }
        "startswith" | "endswith" => {
            let options = str_options(&a.req(0, "prefix")?)?;
            let start = a.opt_int(1, "start")?;
            let end = a.opt_int(2, "end")?;
            a.done(3)?;
            let (cs, ce) = py_slice(char_len(s), start, end);
            if cs > ce {
                return Ok(Value::from(false));
            }
            let part = &s[char_to_byte(s, cs)..char_to_byte(s, ce)];
            Ok(Value::from(options.iter().any(|p| {
                if method == "startswith" {
                    part.starts_with(p.as_str())
                } else {
                    part.ends_with(p.as_str())
                }
            })))
        }
        "join" => {
            let items = a.req(0, "iterable")?;
            a.done(1)?;
            let parts: Vec<String> = items.try_iter()?.map(|v| py_str(&v)).collect();
            string(parts.join(s))
        }
        "format" => string(py_format(s, a.pos, a.kw.as_ref())?),
        "format_map" => {
            let map = a.req(0, "mapping")?;
            a.done(1)?;
            let kw: Kwargs = pairs_of(&map)?
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            string(py_format(s, &[], Some(&kw))?)
        }
        "count" | "find" | "rfind" | "index" | "rindex" => {
            let sub = a.req_str(0, "sub")?;
            let start = a.opt_int(1, "start")?;
            let end = a.opt_int(2, "end")?;
            a.done(3)?;
            let (cs, ce) = py_slice(char_len(s), start, end);
            if cs > ce {
                return match method {
                    "count" => Ok(Value::from(0)),
                    "index" | "rindex" => Err(op_error("substring not found")),
                    _ => Ok(Value::from(-1)),
                };
            }
            let bs = char_to_byte(s, cs);
            let part = &s[bs..char_to_byte(s, ce)];
            if method == "count" {
                return Ok(Value::from(if sub.is_empty() {
                    char_len(part) + 1
                } else {
                    part.matches(sub.as_str()).count()
                }));
            }
            let found = if method.starts_with('r') {
                part.rfind(sub.as_str())
            } else {
                part.find(sub.as_str())
            };
            match found {
                Some(b) => Ok(Value::from(cs + byte_to_char(part, b))),
                None if method.ends_with("index") => Err(op_error("substring not found")),
                None => Ok(Value::from(-1)),
            }
        }
        "isdigit" | "isdecimal" | "isnumeric" | "isalpha" | "isalnum" | "isspace" | "isupper"
        | "islower" | "istitle" | "isidentifier" | "isascii" | "isprintable" => {
            a.done(0)?;
            let nonempty = !s.is_empty();
            let cased = s.chars().any(|c| c.is_uppercase() || c.is_lowercase());
            Ok(Value::from(match method {
                "isdigit" | "isdecimal" | "isnumeric" => {
                    nonempty && s.chars().all(char::is_numeric)
                }
                "isalpha" => nonempty && s.chars().all(char::is_alphabetic),
                "isalnum" => nonempty && s.chars().all(char::is_alphanumeric),
                "isspace" => nonempty && s.chars().all(char::is_whitespace),
                "isupper" => cased && !s.chars().any(char::is_lowercase),
                "islower" => cased && !s.chars().any(char::is_uppercase),
                "istitle" => {
                    let titled = str_method(s, "title", &[])?;
                    cased && titled.as_str() == Some(s)
                }
                "isidentifier" => {
                    s.chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_')
                        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                }
                "isascii" => s.is_ascii(),
                _ => s.chars().all(|c| !c.is_control()),
            }))
        }
        "zfill" => {
            let width = a.opt_int(0, "width")?.unwrap_or(0).max(0) as usize;
            a.done(1)?;
            let len = char_len(s);
            if len >= width {
                return string(s.to_string());
            }
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'+' | b'-') => s.split_at(1),
                _ => ("", s),
            };
            string(format!("{sign}{}{rest}", "0".repeat(width - len)))
        }
        "center" | "ljust" | "rjust" => {
            let width = a.opt_int(0, "width")?.unwrap_or(0).max(0) as usize;
            let fill = a.opt_str(1, "fillchar")?.unwrap_or_else(|| " ".into());
            a.done(2)?;
            let mut fc = fill.chars();
            let (Some(fill), None) = (fc.next(), fc.next()) else {
                return Err(op_error(
                    "The fill character must be exactly one character long",
                ));
            };
            let len = char_len(s);
            if len >= width {
                return string(s.to_string());
            }
            let pad = |n: usize| -> String { std::iter::repeat_n(fill, n).collect() };
            string(match method {
                "center" => center(s, width, fill),
                "ljust" => format!("{s}{}", pad(width - len)),
                _ => format!("{}{s}", pad(width - len)),
            })
        }
        "partition" | "rpartition" => {
            let sep = a.req_str(0, "sep")?;
            a.done(1)?;
            if sep.is_empty() {
                return Err(op_error("empty separator"));
            }
            let found = if method == "partition" {
                s.find(sep.as_str())
            } else {
                s.rfind(sep.as_str())
            };
            let parts = match found {
                Some(i) => vec![
                    s[..i].to_string(),
                    sep.clone(),
                    s[i + sep.len()..].to_string(),
                ],
                None if method == "partition" => vec![s.to_string(), String::new(), String::new()],
                None => vec![String::new(), String::new(), s.to_string()],
            };
            Ok(Value::from(
                parts.into_iter().map(Value::from).collect::<Vec<_>>(),
            ))
        }
        "removeprefix" => {
            let p = a.req_str(0, "prefix")?;
            a.done(1)?;
            string(s.strip_prefix(p.as_str()).unwrap_or(s).to_string())
        }
        "removesuffix" => {
            let p = a.req_str(0, "suffix")?;
            a.done(1)?;
            string(s.strip_suffix(p.as_str()).unwrap_or(s).to_string())
        }
        "expandtabs" => {
            let size = a.opt_int(0, "tabsize")?.unwrap_or(8).max(0) as usize;
            a.done(1)?;
            let mut out = String::with_capacity(s.len());
            let mut col = 0;
            for c in s.chars() {
                match c {
                    '\t' => {
                        if size > 0 {
                            let n = size - col % size;
                            out.extend(std::iter::repeat_n(' ', n));
                            col += n;
                        }
                    }
                    '\n' | '\r' => {
                        out.push(c);
                        col = 0;
                    }
                    _ => {
                        out.push(c);
                        col += 1;
                    }
                }
            }
            string(out)
        }
        "encode" => {
            let _encoding = a.opt_str(0, "encoding")?;
            let _errors = a.opt_str(1, "errors")?;
            a.done(2)?;
            Ok(Value::from_bytes(s.as_bytes().to_vec()))
        }
        "__len__" => {
            a.done(0)?;
            Ok(Value::from(char_len(s)))
        }
        _ => Err(unknown_method()),
    }
}

/// Python's `str.split` / `str.rsplit`.
fn py_split(
    s: &str,
    sep: Option<&str>,
    maxsplit: i64,
    from_right: bool,
) -> Result<Vec<String>, Error> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    match sep {
        Some("") => Err(op_error("empty separator")),
        Some(sep) => {
            let parts: Vec<String> = match (from_right, maxsplit < 0) {
                (_, true) => s.split(sep).map(str::to_string).collect(),
                (false, false) => s.splitn(limit + 1, sep).map(str::to_string).collect(),
                (true, false) => {
                    let mut v: Vec<String> =
                        s.rsplitn(limit + 1, sep).map(str::to_string).collect();
                    v.reverse();
                    v
                }
            };
            Ok(parts)
        }
        None if !from_right => {
            let mut out = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if out.len() == limit {
                    out.push(rest.to_string());
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            Ok(out)
        }
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_end();
            while !rest.is_empty() {
                if out.len() == limit {
                    out.push(rest.to_string());
                    break;
                }
                let start = rest
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace())
                    .map_or(0, |(i, c)| i + c.len_utf8());
                out.push(rest[start..].to_string());
                rest = rest[..start].trim_end();
            }
            out.reverse();
            Ok(out)
        }
    }
}

fn splitlines(s: &str, keepends: bool) -> Vec<String> {
    let is_break = |c: char| {
        matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        )
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_break(c) {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = iter.peek() {
                iter.next();
                end = j + 1;
            }
        }
        out.push(
            if keepends {
                &s[start..end]
            } else {
                &s[start..i]
            }
            .to_string(),
        );
        start = end;
    }
    if start < s.len() {
        out.push(s[start..].to_string());
    }
    out
}

/// Python's `str.center`.
fn center(s: &str, width: usize, fill: char) -> String {
    let len = char_len(s);
    if len >= width {
        return s.to_string();
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    let right = marg - left;
    let mut out = String::with_capacity(s.len() + marg);
    out.extend(std::iter::repeat_n(fill, left));
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, right));
    out
}

/// Jinja2's `truncate(s, length=255, killwords=False, end='...', leeway=0)`.
fn truncate(s: String, args: Rest<Value>) -> Result<String, Error> {
    let a = PyArgs::new("truncate", &args);
    let length = a.opt_int(0, "length")?.unwrap_or(255).max(0) as usize;
    let killwords = a.opt(1, "killwords")?.is_some_and(|v| v.is_true());
    let end = a.opt_str(2, "end")?.unwrap_or_else(|| "...".into());
    let leeway = a.opt_int(3, "leeway")?.unwrap_or(0).max(0) as usize;
    a.done(4)?;
    let len = char_len(&s);
    if len <= length + leeway {
        return Ok(s);
    }
    let keep = length.saturating_sub(char_len(&end));
    let head = &s[..char_to_byte(&s, keep)];
    if killwords {
        return Ok(format!("{head}{end}"));
    }
    let head = match head.rfind(' ') {
        Some(i) => &head[..i],
        None => head,
    };
    Ok(format!("{head}{end}"))
}

/// Python's `str()` of a value.
fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        ValueKind::Undefined => String::new(),
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => py_repr(v),
        _ => v.to_string(),
    }
}

/// Python's `repr()` of a value.
fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v, 0);
    out
}

fn write_repr(out: &mut String, v: &Value, depth: usize) {
    if depth > 64 {
        out.push_str("...");
        return;
    }
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            out.push(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
        }
        ValueKind::Seq => {
            out.push('[');
            for (i, item) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &item, depth + 1);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(pairs) = pairs_of(v) {
                for (i, (k, val)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, k, depth + 1);
                    out.push_str(": ");
                    write_repr(out, val, depth + 1);
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

// ---------------------------------------------------------------------------
// str.format
// ---------------------------------------------------------------------------

/// Python's `str.format(*args, **kwargs)`.
fn py_format(fmt: &str, pos: &[Value], kw: Option<&Kwargs>) -> Result<String, Error> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut auto = 0usize;
    let mut rest = fmt;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(op_error("Single '}' encountered in format string"));
        }
        // The replacement field, allowing one level of nested fields in the spec.
        let mut depth = 1;
        let mut end = None;
        for (j, ch) in after.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| op_error("Single '{' encountered in format string"))?;
        let field = &after[..end];
        rest = &after[end + 1..];

        let (name_part, spec) = match field.find(':') {
            Some(k) => (&field[..k], &field[k + 1..]),
            None => (field, ""),
        };
        let (name, conversion) = match name_part.find('!') {
            Some(k) => (&name_part[..k], Some(&name_part[k + 1..])),
            None => (name_part, None),
        };
        let value = format_lookup(name, pos, kw, &mut auto)?;
        let spec = if spec.contains('{') {
            py_format(spec, pos, kw)?
        } else {
            spec.to_string()
        };
        let value = match conversion {
            None => value,
            Some("s") => Value::from(py_str(&value)),
            Some("r") | Some("a") => Value::from(py_repr(&value)),
            Some(other) => {
                return Err(op_error(format!("Unknown conversion specifier {other}")));
            }
        };
        out.push_str(&format_spec(&value, &spec)?);
    }
    out.push_str(rest);
    Ok(out)
}

fn format_lookup(
    name: &str,
    pos: &[Value],
    kw: Option<&Kwargs>,
    auto: &mut usize,
) -> Result<Value, Error> {
    let first_end = name.find(['.', '[']).unwrap_or(name.len());
    let (first, mut path) = name.split_at(first_end);
    let mut value = if first.is_empty() {
        let v = pos
            .get(*auto)
            .cloned()
            .ok_or_else(|| op_error("Replacement index out of range for positional args"))?;
        *auto += 1;
        v
    } else if let Ok(i) = first.parse::<usize>() {
        pos.get(i)
            .cloned()
            .ok_or_else(|| op_error(format!("Replacement index {i} out of range")))?
    } else {
        match kw {
            Some(kw) if kw.has(first) => kw.get::<Value>(first)?,
            _ => return Err(op_error(format!("KeyError: '{first}' in format string"))),
        }
    };
    while !path.is_empty() {
        if let Some(p) = path.strip_prefix('.') {
            let end = p.find(['.', '[']).unwrap_or(p.len());
            value = value.get_attr(&p[..end])?;
            path = &p[end..];
        } else if let Some(p) = path.strip_prefix('[') {
            let end = p
                .find(']')
                .ok_or_else(|| op_error("Missing ']' in format string"))?;
            let key = &p[..end];
            value = match key.parse::<i64>() {
                Ok(i) => value.get_item(&Value::from(i))?,
                Err(_) => value.get_item(&Value::from(key))?,
            };
            path = &p[end + 1..];
        } else {
            return Err(op_error(
                "Only '.' or '[' may follow ']' in format field specifier",
            ));
        }
    }
    Ok(value)
}

/// Applies a Python format spec `[[fill]align][sign][#][0][width][,|_][.precision][type]`.
fn format_spec(value: &Value, spec: &str) -> Result<String, Error> {
    if spec.is_empty() {
        return Ok(py_str(value));
    }
    let cs: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let mut fill = ' ';
    let mut align = None;
    if cs.len() >= 2 && "<>=^".contains(cs[1]) {
        fill = cs[0];
        align = Some(cs[1]);
        i = 2;
    } else if !cs.is_empty() && "<>=^".contains(cs[0]) {
        align = Some(cs[0]);
        i = 1;
    }
    let mut sign = '-';
    if i < cs.len() && "+- ".contains(cs[i]) {
        sign = cs[i];
        i += 1;
    }
    if i < cs.len() && cs[i] == '#' {
        i += 1;
    }
    if i < cs.len() && cs[i] == '0' {
        if align.is_none() {
            fill = '0';
            align = Some('=');
        }
        i += 1;
    }
    let mut width = 0usize;
    while i < cs.len() && cs[i].is_ascii_digit() {
        width = width * 10 + cs[i].to_digit(10).unwrap_or(0) as usize;
        i += 1;
    }
    let mut grouping = None;
    if i < cs.len() && (cs[i] == ',' || cs[i] == '_') {
        grouping = Some(cs[i]);
        i += 1;
    }
    let mut precision = None;
    if i < cs.len() && cs[i] == '.' {
        i += 1;
        let mut p = 0usize;
        while i < cs.len() && cs[i].is_ascii_digit() {
            p = p * 10 + cs[i].to_digit(10).unwrap_or(0) as usize;
            i += 1;
        }
        precision = Some(p);
    }
    let ty: String = cs[i..].iter().collect();
    if ty.len() > 1 {
        return Err(op_error(format!("Invalid format specifier '{spec}'")));
    }
    let ty = ty.chars().next();

    let is_number = matches!(value.kind(), ValueKind::Number);
    let (negative, body): (bool, String) = match ty {
        Some('s') | None if !is_number => {
            let s = py_str(value);
            let s = match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            (false, s)
        }
        _ => {
            let f = as_float(value).ok_or_else(|| {
                op_error(format!(
                    "Unknown format code '{}' for a value of type {}",
                    ty.unwrap_or('s'),
                    value.kind()
                ))
            })?;
            let neg = f < 0.0 || (f == 0.0 && f.is_sign_negative() && !value.is_integer());
            let int = as_int(value).map(|x| x.unsigned_abs());
            let a = f.abs();
            let body = match ty {
                Some('d') => match int {
                    Some(n) => n.to_string(),
                    None => {
                        return Err(op_error(
                            "Unknown format code 'd' for object of type 'float'",
                        ))
                    }
                },
                Some('f') | Some('F') => format!("{:.*}", precision.unwrap_or(6), a),
                Some('%') => format!("{:.*}%", precision.unwrap_or(6), a * 100.0),
                Some('e') | Some('E') => {
                    let s = format!("{:.*e}", precision.unwrap_or(6), a);
                    // Rust writes 1.5e2; Python writes 1.5e+02.
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    let s = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                    if ty == Some('E') {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                Some('x') | Some('X') | Some('o') | Some('b') => {
                    let n = int.ok_or_else(|| op_error("integer format code for a float"))?;
                    match ty {
                        Some('x') => format!("{n:x}"),
                        Some('X') => format!("{n:X}"),
                        Some('o') => format!("{n:o}"),
                        _ => format!("{n:b}"),
                    }
                }
                Some('g') | Some('G') | Some('n') | None => match (int, precision) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(p)) => {
                        let s = format!("{:.*e}", p.saturating_sub(1), a);
                        let exp: i32 = s
                            .split_once('e')
                            .and_then(|(_, e)| e.parse().ok())
                            .unwrap_or(0);
                        if exp < -4 || exp >= p.max(1) as i32 {
                            s
                        } else {
                            let decimals = (p.max(1) as i32 - 1 - exp).max(0) as usize;
                            let s = format!("{a:.decimals$}");
                            if s.contains('.') {
                                s.trim_end_matches('0').trim_end_matches('.').to_string()
                            } else {
                                s
                            }
                        }
                    }
                    (None, None) => Value::from(a).to_string(),
                },
                Some(other) => {
                    return Err(op_error(format!("Unknown format code '{other}'")));
                }
            };
            (neg, body)
        }
    };
    let body = match grouping {
        Some(g) if is_number => group_digits(&body, g),
        _ => body,
    };
    let sign_str = match (negative, sign) {
        (true, _) => "-",
        (false, '+') if is_number => "+",
        (false, ' ') if is_number => " ",
        _ => "",
    };
    let len = char_len(sign_str) + char_len(&body);
    if len >= width {
        return Ok(format!("{sign_str}{body}"));
    }
    let pad = width - len;
    let fills = |n: usize| -> String { std::iter::repeat_n(fill, n).collect() };
    let align = align.unwrap_or(if is_number { '>' } else { '<' });
    Ok(match align {
        '<' => format!("{sign_str}{body}{}", fills(pad)),
        '^' => format!("{}{sign_str}{body}{}", fills(pad / 2), fills(pad - pad / 2)),
        '=' => format!("{sign_str}{}{body}", fills(pad)),
        _ => format!("{}{sign_str}{body}", fills(pad)),
    })
}

fn group_digits(body: &str, sep: char) -> String {
    let (int, frac) = match body.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => body.split_at(i),
        None => (body, ""),
    };
    let mut out = String::with_capacity(body.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

// ---------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------

/// `zip(*iterables)`: a list of lists, as long as the shortest argument;
/// `None` when an argument is not iterable.
fn zip_values(args: &[Value]) -> Option<Value> {
    let mut columns = Vec::with_capacity(args.len());
    for a in args {
        if !matches!(
            a.kind(),
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
        ) {
            return None;
        }
        columns.push(a.try_iter().ok()?.collect::<Vec<_>>());
    }
    let n = columns.iter().map(Vec::len).min().unwrap_or(0);
    let rows: Vec<Value> = (0..n)
        .map(|i| Value::from(columns.iter().map(|c| c[i].clone()).collect::<Vec<_>>()))
        .collect();
    Some(Value::from(rows))
}

/// JSON like Python's `json.dumps` (`", "` and `": "` separators, non-ASCII
/// escaped), keeping map order unless `sort_keys`.
fn to_json(value: &Value, sort_keys: bool) -> Result<String, Error> {
    let mut out = String::new();
    write_json(&mut out, value, sort_keys, 0)?;
    Ok(out)
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(out: &mut String, v: &Value, sort_keys: bool, depth: usize) -> Result<(), Error> {
    if depth > 128 {
        return Err(op_error("tojson(): value is nested too deeply"));
    }
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                let _ = write!(out, "{v}");
            } else {
                let f = as_float(v).unwrap_or(f64::NAN);
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    let _ = write!(out, "{v}");
                }
            }
        }
        ValueKind::String => write_json_str(out, v.as_str().unwrap_or_default()),
        ValueKind::Bytes => write_json_str(
            out,
            &String::from_utf8_lossy(v.as_bytes().unwrap_or_default()),
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, &item, sort_keys, depth + 1)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs: Vec<(String, Value)> = pairs_of(v)?
                .into_iter()
                .map(|(k, val)| {
                    let key = match k.kind() {
                        ValueKind::String => k.as_str().unwrap_or_default().to_string(),
                        ValueKind::None => "null".into(),
                        ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).into(),
                        _ => k.to_string(),
                    };
                    (key, val)
                })
                .collect();
            if sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_str(out, k);
                out.push_str(": ");
                write_json(out, val, sort_keys, depth + 1)?;
            }
            out.push('}');
        }
        _ => {
            if let Some(dt) = v.downcast_object_ref::<PyDateTime>() {
                return Err(op_error(format!(
                    "tojson(): Object of type datetime is not JSON serializable ({})",
                    dt.python_str()
                )));
            }
            return Err(op_error(format!(
                "tojson(): Object of type {} is not JSON serializable",
                v.kind()
            )));
        }
    }
    Ok(())
}

/// A value deserialized from JSON or YAML with mutable lists and dicts in
/// document order.
struct PyValue(Value);

impl<'de> serde::Deserialize<'de> for PyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PyVisitor)
    }
}

struct PyVisitor;

impl<'de> serde::de::Visitor<'de> for PyVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<PyValue, E> {
        Ok(PyValue(Value::from(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<PyValue, E> {
        Ok(PyValue(Value::from_bytes(v.to_vec())))
    }
    fn visit_none<E>(self) -> Result<PyValue, E> {
        Ok(PyValue(none()))
    }
    fn visit_unit<E>(self) -> Result<PyValue, E> {
        Ok(PyValue(none()))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        d.deserialize_any(PyVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(PyValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(PyValue(PyList::value(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((PyValue(k), PyValue(v))) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(PyValue(PyDict::value(pairs)))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<PyValue, A::Error> {
        // A YAML tagged value (`!tag value`): keep the value.
        use serde::de::VariantAccess;
        let (_tag, variant): (PyValue, _) = data.variant()?;
        variant.newtype_variant::<PyValue>()
    }
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// dbt's `as_bool`: `"true"`/`"false"` (any case) to booleans; other values unchanged.
fn as_bool(v: Value) -> Value {
    if let Some(s) = v.as_str() {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" => return Value::from(true),
            "false" => return Value::from(false),
            _ => {}
        }
    }
    v
}

/// dbt's `as_number`: numeric strings to numbers; other values unchanged.
fn as_number(v: Value) -> Value {
    if let Some(s) = v.as_str() {
        let t = s.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(f) = t.parse::<f64>() {
            if t.chars().any(|c| c.is_ascii_digit()) {
                return Value::from(f);
            }
        }
    }
    v
}

/// dbt's `as_native`: a string holding a Python literal (number, boolean,
/// `None`, list, dict, quoted string) to that value; other strings unchanged.
fn as_native(v: Value) -> Value {
    let Some(s) = v.as_str() else {
        return v;
    };
    let t = s.trim();
    match t {
        "None" | "none" => return none(),
        "True" | "true" => return Value::from(true),
        "False" | "false" => return Value::from(false),
        _ => {}
    }
    let number = as_number(Value::from(t));
    if number.kind() == ValueKind::Number {
        return number;
    }
    if t.starts_with(['[', '{', '(', '\'', '"']) {
        let yaml = if t.starts_with('(') && t.ends_with(')') {
            format!("[{}]", &t[1..t.len() - 1])
        } else {
            t.to_string()
        };
        if let Ok(PyValue(parsed)) = serde_yaml::from_str::<PyValue>(&yaml) {
            return parsed;
        }
    }
    v
}

// ---------------------------------------------------------------------------
// modules
// ---------------------------------------------------------------------------

/// A module-like namespace: attributes, some callable.
#[derive(Debug)]
struct Namespace {
    name: &'static str,
    entries: Vec<(&'static str, Value)>,
}

impl Object for Namespace {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.entries.iter().map(|(k, _)| Value::from(*k)).collect())
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match self.entries.iter().find(|(k, _)| *k == method) {
            Some((_, f)) => f.call(state, args),
            None => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("module '{}' has no attribute '{method}'", self.name),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<module '{}'>", self.name)
    }
}

fn func<F>(f: F) -> Value
where
    F: Fn(&[Value]) -> Result<Value, Error> + Send + Sync + 'static,
{
    Value::from_function(move |args: Rest<Value>| f(&args))
}

/// The `modules` global: `datetime`, `pytz`, `re`, `itertools`.
fn modules() -> Value {
    static MODULES: OnceLock<Value> = OnceLock::new();
    MODULES
        .get_or_init(|| {
            Value::from_object(Namespace {
                name: "modules",
                entries: vec![
                    ("datetime", datetime_module()),
                    ("pytz", pytz_module()),
                    ("re", re_module()),
                    ("itertools", itertools_module()),
                ],
            })
        })
        .clone()
}

// --- itertools ---------------------------------------------------------------

fn itertools_module() -> Value {
    Value::from_object(Namespace {
        name: "itertools",
        entries: vec![
            (
                "chain",
                func(|args| {
                    let mut out = Vec::new();
                    for a in args {
                        out.extend(a.try_iter()?);
                    }
                    Ok(Value::from(out))
                }),
            ),
            (
                "product",
                func(|args| {
                    let a = PyArgs::new("product", args);
                    let repeat = a.opt_int(usize::MAX, "repeat")?.unwrap_or(1).max(0) as usize;
                    let mut pools: Vec<Vec<Value>> = Vec::new();
                    for v in a.pos {
                        pools.push(v.try_iter()?.collect());
                    }
                    let pools: Vec<Vec<Value>> =
                        (0..repeat).flat_map(|_| pools.iter().cloned()).collect();
                    let mut rows: Vec<Vec<Value>> = vec![Vec::new()];
                    for pool in &pools {
                        let mut next = Vec::with_capacity(rows.len() * pool.len());
                        for row in &rows {
                            for x in pool {
                                let mut r = row.clone();
                                r.push(x.clone());
                                next.push(r);
                            }
                        }
                        rows = next;
                        if rows.len() > 1_000_000 {
                            return Err(op_error("itertools.product(): too many combinations"));
                        }
                    }
                    Ok(Value::from(
                        rows.into_iter().map(Value::from).collect::<Vec<_>>(),
                    ))
                }),
            ),
            (
                "combinations",
                func(|args| {
                    let a = PyArgs::new("combinations", args);
                    let pool: Vec<Value> = a.req(0, "iterable")?.try_iter()?.collect();
                    let r = a.opt_int(1, "r")?.unwrap_or(0).max(0) as usize;
                    a.done(2)?;
                    let mut out = Vec::new();
                    combinations(&pool, r, 0, &mut Vec::new(), &mut out);
                    Ok(Value::from(out))
                }),
            ),
        ],
    })
}

fn combinations(
    pool: &[Value],
    r: usize,
    start: usize,
    cur: &mut Vec<Value>,
    out: &mut Vec<Value>,
) {
    if cur.len() == r {
        out.push(Value::from(cur.clone()));
        return;
    }
    for i in start..pool.len() {
        cur.push(pool[i].clone());
        combinations(pool, r, i + 1, cur, out);
        cur.pop();
    }
}

// --- datetime ----------------------------------------------------------------

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};

/// A `tzinfo`: a fixed offset or an IANA zone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tz {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Tz {
    fn utc() -> Tz {
        Tz::Fixed(FixedOffset::east_opt(0).unwrap_or_else(|| Utc.fix()))
    }

    /// The offset of this zone at local time `naive`.
    fn offset_at_local(&self, naive: &NaiveDateTime) -> FixedOffset {
        match self {
            Tz::Fixed(o) => *o,
            Tz::Named(tz) => tz
                .offset_from_local_datetime(naive)
                .earliest()
                .map(|o| o.fix())
                .unwrap_or_else(|| tz.offset_from_utc_datetime(naive).fix()),
        }
    }

    /// Local time in this zone of the instant `utc`.
    fn local_of_utc(&self, utc: &NaiveDateTime) -> NaiveDateTime {
        match self {
            Tz::Fixed(o) => *utc + *o,
            Tz::Named(tz) => tz.from_utc_datetime(utc).naive_local(),
        }
    }

    fn name(&self) -> String {
        match self {
            Tz::Fixed(o) if o.local_minus_utc() == 0 => "UTC".into(),
            Tz::Fixed(o) => format!("UTC{o}"),
            Tz::Named(tz) => tz.name().to_string(),
        }
    }
}

/// `modules.pytz.timezone(...)`, `datetime.timezone.utc`, a datetime's `tzinfo`.
#[derive(Debug)]
struct PyTz(Tz);

impl Object for PyTz {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "zone" => Some(Value::from(self.0.name())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let a = PyArgs::new(method, args);
        match method {
            // pytz: attach this zone to a naive datetime.
            "localize" => {
                let dt = a.req(0, "dt")?;
                a.done(2)?;
                let dt = dt
                    .downcast_object_ref::<PyDateTime>()
                    .ok_or_else(|| op_error("localize(): expected a datetime"))?;
                Ok(PyDateTime::value(dt.naive, Some(self.0)))
            }
            "utcoffset" => {
                let dt = a.req(0, "dt")?;
                a.done(1)?;
                let naive = dt
                    .downcast_object_ref::<PyDateTime>()
                    .map(|d| d.naive)
                    .unwrap_or_else(|| Utc::now().naive_utc());
                let secs = self.0.offset_at_local(&naive).local_minus_utc();
                Ok(PyTimedelta::value(TimeDelta::seconds(secs as i64)))
            }
            "tzname" => {
                a.done(1)?;
                Ok(Value::from(self.0.name()))
            }
            _ => Err(unknown_method()),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name())
    }
}

fn tz_of(v: &Value) -> Result<Option<Tz>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(None);
    }
    if let Some(tz) = v.downcast_object_ref::<PyTz>() {
        return Ok(Some(tz.0));
    }
    if let Some(name) = v.as_str() {
        return parse_tz(name).map(Some);
    }
    Err(op_error(format!(
        "expected a timezone (tzinfo), not {}",
        v.kind()
    )))
}

fn parse_tz(name: &str) -> Result<Tz, Error> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(Tz::utc());
    }
    name.parse::<chrono_tz::Tz>()
        .map(Tz::Named)
        .map_err(|_| op_error(format!("UnknownTimeZoneError: '{name}'")))
}

fn pytz_module() -> Value {
    let utc = Value::from_object(PyTz(Tz::utc()));
    Value::from_object(Namespace {
        name: "pytz",
        entries: vec![
            (
                "timezone",
                func(|args| {
                    let a = PyArgs::new("timezone", args);
                    let name = a.req_str(0, "zone")?;
                    a.done(1)?;
                    Ok(Value::from_object(PyTz(parse_tz(&name)?)))
                }),
            ),
            ("utc", utc.clone()),
            ("UTC", utc),
        ],
    })
}

/// A `datetime.datetime`: local wall time plus an optional zone.
#[derive(Debug)]
struct PyDateTime {
    naive: NaiveDateTime,
    tz: Option<Tz>,
}

impl PyDateTime {
    fn value(naive: NaiveDateTime, tz: Option<Tz>) -> Value {
        Value::from_object(PyDateTime { naive, tz })
    }

    fn offset(&self) -> Option<FixedOffset> {
        self.tz.map(|tz| tz.offset_at_local(&self.naive))
    }

    fn utc(&self) -> NaiveDateTime {
        match self.offset() {
            Some(o) => self.naive - o,
            None => self.naive,
        }
    }

    fn isoformat(&self, sep: &str) -> String {
        let mut s = self.naive.format("%Y-%m-%d").to_string();
        s.push_str(sep);
        s.push_str(&time_iso(&self.naive.time()));
        if let Some(o) = self.offset() {
            s.push_str(&offset_iso(o));
        }
        s
    }

    fn python_str(&self) -> String {
        self.isoformat(" ")
    }
}

fn time_iso(t: &NaiveTime) -> String {
    let us = t.nanosecond() / 1000 % 1_000_000;
    if us == 0 {
        t.format("%H:%M:%S").to_string()
    } else {
        format!("{}.{us:06}", t.format("%H:%M:%S"))
    }
}

fn offset_iso(o: FixedOffset) -> String {
    let secs = o.local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    if a % 60 == 0 {
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    } else {
        format!("{sign}{:02}:{:02}:{:02}", a / 3600, a % 3600 / 60, a % 60)
    }
}

/// Translates a Python strftime/strptime format for chrono: `%f` is
/// microseconds in Python; `%z`/`%Z` of a naive value are empty.
fn chrono_format(fmt: &str, naive: bool) -> String {
    let mut out = String::with_capacity(fmt.len() + 4);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str("%6f"),
            Some('z') | Some('Z') if naive => {}
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// What `strftime` formats.
enum Stamp {
    Naive(NaiveDateTime),
    Named(DateTime<chrono_tz::Tz>),
    Fixed(DateTime<FixedOffset>),
}

/// Python's `strftime` (via chrono, never panicking on a bad format).
fn strftime(fmt: &str, stamp: Stamp) -> Result<String, Error> {
    let translated = chrono_format(fmt, matches!(stamp, Stamp::Naive(_)));
    let items = chrono::format::StrftimeItems::new(&translated)
        .parse()
        .map_err(|_| op_error(format!("strftime(): invalid format string {fmt:?}")))?;
    let mut out = String::new();
    let written = match stamp {
        Stamp::Naive(n) => write!(out, "{}", n.format_with_items(items.iter())),
        Stamp::Named(d) => write!(out, "{}", d.format_with_items(items.iter())),
        Stamp::Fixed(d) => write!(out, "{}", d.format_with_items(items.iter())),
    };
    written.map_err(|_| op_error(format!("strftime(): cannot format with {fmt:?}")))?;
    Ok(out)
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let n = &self.naive;
        Some(match key.as_str()? {
            "year" => Value::from(n.year()),
            "month" => Value::from(n.month()),
            "day" => Value::from(n.day()),
            "hour" => Value::from(n.hour()),
            "minute" => Value::from(n.minute()),
            "second" => Value::from(n.second()),
            "microsecond" => Value::from(n.nanosecond() / 1000 % 1_000_000),
            "tzinfo" => match self.tz {
                Some(tz) => Value::from_object(PyTz(tz)),
                None => none(),
            },
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let a = PyArgs::new(method, args);
        match method {
            "strftime" => {
                let fmt = a.req_str(0, "format")?;
                a.done(1)?;
                let stamp = match self.tz {
                    None => Stamp::Naive(self.naive),
                    Some(Tz::Named(tz)) => Stamp::Named(tz.from_utc_datetime(&self.utc())),
                    Some(Tz::Fixed(o)) => Stamp::Fixed(o.from_utc_datetime(&self.utc())),
                };
                let s = strftime(&fmt, stamp)?;
                Ok(Value::from(s))
            }
            "isoformat" => {
                let sep = a.opt_str(0, "sep")?.unwrap_or_else(|| "T".into());
                a.done(1)?;
                Ok(Value::from(self.isoformat(&sep)))
            }
            "date" => {
                a.done(0)?;
                Ok(Value::from_object(PyDate(self.naive.date())))
            }
            "weekday" => {
                a.done(0)?;
                Ok(Value::from(self.naive.weekday().num_days_from_monday()))
            }
            "isoweekday" => {
                a.done(0)?;
                Ok(Value::from(self.naive.weekday().number_from_monday()))
            }
            "isocalendar" => {
                a.done(0)?;
                let w = self.naive.iso_week();
                Ok(Value::from(vec![
                    Value::from(w.year()),
                    Value::from(w.week()),
                    Value::from(self.naive.weekday().number_from_monday()),
                ]))
            }
            "timestamp" => {
                a.done(0)?;
                let utc = match self.tz {
                    Some(_) => self.utc(),
                    None => chrono::Local
                        .from_local_datetime(&self.naive)
                        .earliest()
                        .map(|d| d.naive_utc())
                        .unwrap_or(self.naive),
                };
                Ok(Value::from(utc.and_utc().timestamp_micros() as f64 / 1e6))
            }
            "astimezone" => {
                let tz = match a.opt_some(0, "tz")? {
                    Some(v) => tz_of(&v)?,
                    None => None,
                };
                a.done(1)?;
                let utc = match self.tz {
                    Some(_) => self.utc(),
                    None => chrono::Local
                        .from_local_datetime(&self.naive)
                        .earliest()
                        .map(|d| d.naive_utc())
                        .unwrap_or(self.naive),
                };
                Ok(match tz {
                    Some(tz) => PyDateTime::value(tz.local_of_utc(&utc), Some(tz)),
                    None => {
                        let local = chrono::Local.from_utc_datetime(&utc);
                        PyDateTime::value(
                            local.naive_local(),
                            Some(Tz::Fixed(local.offset().fix())),
                        )
                    }
                })
            }
            "replace" => {
                let n = self.naive;
                let get = |name: &str, cur: u32| -> Result<i64, Error> {
                    Ok(a.opt_int(usize::MAX, name)?.unwrap_or(cur as i64))
                };
                let year = a.opt_int(usize::MAX, "year")?.unwrap_or(n.year() as i64);
                let (month, day) = (get("month", n.month())?, get("day", n.day())?);
                let (hour, minute) = (get("hour", n.hour())?, get("minute", n.minute())?);
                let second = get("second", n.second())?;
                let micro = get("microsecond", n.nanosecond() / 1000 % 1_000_000)?;
                let tz = match a.opt(usize::MAX, "tzinfo")? {
                    Some(v) => tz_of(&v)?,
                    None => self.tz,
                };
                a.done(0)?;
                Ok(PyDateTime::value(
                    make_datetime(year, month, day, hour, minute, second, micro)?,
                    tz,
                ))
            }
            "utcoffset" => {
                a.done(0)?;
                Ok(match self.offset() {
                    Some(o) => PyTimedelta::value(TimeDelta::seconds(o.local_minus_utc() as i64)),
                    None => none(),
                })
            }
            _ => Err(unknown_method()),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        if self.tz.is_some() && other.tz.is_some() {
            Some(self.utc().cmp(&other.utc()))
        } else {
            Some(self.naive.cmp(&other.naive))
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.python_str())
    }
}

fn make_datetime(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
) -> Result<NaiveDateTime, Error> {
    let date = make_date(year, month, day)?;
    let time = u32::try_from(hour)
        .ok()
        .zip(u32::try_from(minute).ok())
        .zip(u32::try_from(second).ok())
        .zip(u32::try_from(micro).ok())
        .and_then(|(((h, m), s), us)| NaiveTime::from_hms_micro_opt(h, m, s, us))
        .ok_or_else(|| op_error("ValueError: time component out of range"))?;
    Ok(date.and_time(time))
}

fn make_date(year: i64, month: i64, day: i64) -> Result<NaiveDate, Error> {
    i32::try_from(year)
        .ok()
        .zip(u32::try_from(month).ok())
        .zip(u32::try_from(day).ok())
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(|| {
            op_error(format!(
                "ValueError: date {year}-{month}-{day} out of range"
            ))
        })
}

/// A `datetime.date`.
#[derive(Debug)]
struct PyDate(NaiveDate);

impl Object for PyDate {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "year" => Value::from(self.0.year()),
            "month" => Value::from(self.0.month()),
            "day" => Value::from(self.0.day()),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let a = PyArgs::new(method, args);
        let d = self.0;
        match method {
            "strftime" => {
                let fmt = a.req_str(0, "format")?;
                a.done(1)?;
                Ok(Value::from(strftime(
                    &fmt,
                    Stamp::Naive(d.and_time(NaiveTime::MIN)),
                )?))
            }
            "isoformat" | "__str__" => {
                a.done(0)?;
                Ok(Value::from(d.format("%Y-%m-%d").to_string()))
            }
            "weekday" => {
                a.done(0)?;
                Ok(Value::from(d.weekday().num_days_from_monday()))
            }
            "isoweekday" => {
                a.done(0)?;
                Ok(Value::from(d.weekday().number_from_monday()))
            }
            "isocalendar" => {
                a.done(0)?;
                let w = d.iso_week();
                Ok(Value::from(vec![
                    Value::from(w.year()),
                    Value::from(w.week()),
                    Value::from(d.weekday().number_from_monday()),
                ]))
            }
            "replace" => {
                let year = a.opt_int(0, "year")?.unwrap_or(d.year() as i64);
                let month = a.opt_int(1, "month")?.unwrap_or(d.month() as i64);
                let day = a.opt_int(2, "day")?.unwrap_or(d.day() as i64);
                a.done(3)?;
                Ok(Value::from_object(PyDate(make_date(year, month, day)?)))
            }
            "toordinal" => {
                a.done(0)?;
                Ok(Value::from(d.num_days_from_ce()))
            }
            _ => Err(unknown_method()),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&other.downcast_ref::<Self>()?.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A `datetime.timedelta`.
#[derive(Debug)]
struct PyTimedelta(TimeDelta);

impl PyTimedelta {
    fn value(d: TimeDelta) -> Value {
        Value::from_object(PyTimedelta(d))
    }

    /// Python's normalized `(days, seconds, microseconds)`.
    fn parts(&self) -> (i64, i64, i64) {
        let total = self.0.num_microseconds().unwrap_or(i64::MAX);
        let day_us = 86_400_000_000i64;
        let days = total.div_euclid(day_us);
        let rem = total.rem_euclid(day_us);
        (days, rem / 1_000_000, rem % 1_000_000)
    }
}

impl Object for PyTimedelta {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (days, secs, us) = self.parts();
        Some(match key.as_str()? {
            "days" => Value::from(days),
            "seconds" => Value::from(secs),
            "microseconds" => Value::from(us),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => {
                PyArgs::new(method, args).done(0)?;
                Ok(Value::from(
                    self.0.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
                ))
            }
            _ => Err(unknown_method()),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&other.downcast_ref::<Self>()?.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, secs, us) = self.parts();
        if days != 0 {
            write!(f, "{days} day{}, ", if days.abs() != 1 { "s" } else { "" })?;
        }
        write!(
            f,
            "{}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        Ok(())
    }
}

/// The classes of `modules.datetime`: callable, with class methods.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DtClass {
    DateTime,
    Date,
    TimeDelta,
}

impl Object for DtClass {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        match **self {
            DtClass::DateTime => {
                let a = PyArgs::new("datetime", args);
                let int = |i: usize, name: &str, def: Option<i64>| -> Result<i64, Error> {
                    match (a.opt_int(i, name)?, def) {
                        (Some(v), _) | (None, Some(v)) => Ok(v),
                        (None, None) => Err(Error::new(
                            ErrorKind::MissingArgument,
                            format!("datetime() missing required argument '{name}'"),
                        )),
                    }
                };
                let naive = make_datetime(
                    int(0, "year", None)?,
                    int(1, "month", None)?,
                    int(2, "day", None)?,
                    int(3, "hour", Some(0))?,
                    int(4, "minute", Some(0))?,
                    int(5, "second", Some(0))?,
                    int(6, "microsecond", Some(0))?,
                )?;
                let tz = match a.opt(7, "tzinfo")? {
                    Some(v) => tz_of(&v)?,
                    None => None,
                };
                a.done(8)?;
                Ok(PyDateTime::value(naive, tz))
            }
            DtClass::Date => {
                let a = PyArgs::new("date", args);
                let y = a.opt_int(0, "year")?;
                let m = a.opt_int(1, "month")?;
                let d = a.opt_int(2, "day")?;
                a.done(3)?;
                match (y, m, d) {
                    (Some(y), Some(m), Some(d)) => {
                        Ok(Value::from_object(PyDate(make_date(y, m, d)?)))
                    }
                    _ => Err(Error::new(
                        ErrorKind::MissingArgument,
                        "date() needs year, month and day",
                    )),
                }
            }
            DtClass::TimeDelta => {
                let a = PyArgs::new("timedelta", args);
                let names = [
                    ("days", 86_400e6),
                    ("seconds", 1e6),
                    ("microseconds", 1.0),
                    ("milliseconds", 1e3),
                    ("minutes", 60e6),
                    ("hours", 3_600e6),
                    ("weeks", 604_800e6),
                ];
                let mut total = 0f64;
                for (i, (name, scale)) in names.iter().enumerate() {
                    if let Some(v) = a.opt_some(i, name)? {
                        let f = as_float(&v).ok_or_else(|| a.type_error(name, "a number", &v))?;
                        total += f * scale;
                    }
                }
                a.done(names.len())?;
                if !total.is_finite() || total.abs() > 9.0e18 {
                    return Err(op_error("OverflowError: timedelta out of range"));
                }
                Ok(PyTimedelta::value(TimeDelta::microseconds(
                    total.round() as i64
                )))
            }
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let a = PyArgs::new(method, args);
        match (**self, method) {
            (DtClass::DateTime, "now") | (DtClass::DateTime, "today") => {
                let tz = match a.opt_some(0, "tz")? {
                    Some(v) => tz_of(&v)?,
                    None => None,
                };
                a.done(1)?;
                Ok(match tz {
                    Some(tz) => {
                        PyDateTime::value(tz.local_of_utc(&Utc::now().naive_utc()), Some(tz))
                    }
                    None => PyDateTime::value(chrono::Local::now().naive_local(), None),
                })
            }
            (DtClass::DateTime, "utcnow") => {
                a.done(0)?;
                Ok(PyDateTime::value(Utc::now().naive_utc(), None))
            }
            (DtClass::DateTime, "strptime") => {
                let s = a.req_str(0, "date_string")?;
                let fmt = a.req_str(1, "format")?;
                a.done(2)?;
                strptime(&s, &fmt)
            }
            (DtClass::DateTime, "fromisoformat") => {
                let s = a.req_str(0, "date_string")?;
                a.done(1)?;
                fromisoformat(&s)
            }
            (DtClass::DateTime, "fromtimestamp") | (DtClass::DateTime, "utcfromtimestamp") => {
                let ts = a.req(0, "timestamp")?;
                let ts = as_float(&ts).ok_or_else(|| a.type_error("timestamp", "a number", &ts))?;
                let tz = match a.opt_some(1, "tz")? {
                    Some(v) => tz_of(&v)?,
                    None => None,
                };
                a.done(2)?;
                let utc = DateTime::from_timestamp_micros((ts * 1e6).round() as i64)
                    .ok_or_else(|| op_error("timestamp out of range"))?
                    .naive_utc();
                Ok(match (tz, method) {
                    (Some(tz), _) => PyDateTime::value(tz.local_of_utc(&utc), Some(tz)),
                    (None, "utcfromtimestamp") => PyDateTime::value(utc, None),
                    (None, _) => {
                        PyDateTime::value(chrono::Local.from_utc_datetime(&utc).naive_local(), None)
                    }
                })
            }
            (DtClass::DateTime, "combine") => {
                let d = a.req(0, "date")?;
                a.done(2)?;
                let d = d
                    .downcast_object_ref::<PyDate>()
                    .ok_or_else(|| op_error("combine(): expected a date"))?;
                Ok(PyDateTime::value(d.0.and_time(NaiveTime::MIN), None))
            }
            (DtClass::Date, "today") => {
                a.done(0)?;
                Ok(Value::from_object(PyDate(
                    chrono::Local::now().date_naive(),
                )))
            }
            (DtClass::Date, "fromisoformat") => {
                let s = a.req_str(0, "date_string")?;
                a.done(1)?;
                NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .map(|d| Value::from_object(PyDate(d)))
                    .map_err(|_| op_error(format!("ValueError: Invalid isoformat string: '{s}'")))
            }
            _ => Err(unknown_method()),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match **self {
            DtClass::DateTime => "datetime",
            DtClass::Date => "date",
            DtClass::TimeDelta => "timedelta",
        };
        write!(f, "<class 'datetime.{name}'>")
    }
}

fn strptime(s: &str, fmt: &str) -> Result<Value, Error> {
    let translated = chrono_format(fmt, false);
    let fail = |e: chrono::ParseError| {
        op_error(format!(
            "ValueError: time data '{s}' does not match format '{fmt}' ({e})"
        ))
    };
    if fmt.contains("%z") {
        let dt = DateTime::parse_from_str(s, &translated).map_err(fail)?;
        return Ok(PyDateTime::value(
            dt.naive_local(),
            Some(Tz::Fixed(*dt.offset())),
        ));
    }
    match NaiveDateTime::parse_from_str(s, &translated) {
        Ok(n) => Ok(PyDateTime::value(n, None)),
        Err(e) => match NaiveDate::parse_from_str(s, &translated) {
            Ok(d) => Ok(PyDateTime::value(d.and_time(NaiveTime::MIN), None)),
            Err(_) => Err(fail(e)),
        },
    }
}

fn fromisoformat(s: &str) -> Result<Value, Error> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(PyDateTime::value(
            dt.naive_local(),
            Some(Tz::Fixed(*dt.offset())),
        ));
    }
    let t = s.replacen(' ', "T", 1);
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&t, f) {
            return Ok(PyDateTime::value(n, None));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"] {
        if let Ok(dt) = DateTime::parse_from_str(&t, f) {
            return Ok(PyDateTime::value(
                dt.naive_local(),
                Some(Tz::Fixed(*dt.offset())),
            ));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(PyDateTime::value(d.and_time(NaiveTime::MIN), None));
    }
    Err(op_error(format!(
        "ValueError: Invalid isoformat string: '{s}'"
    )))
}

fn datetime_module() -> Value {
    let utc = Value::from_object(PyTz(Tz::utc()));
    Value::from_object(Namespace {
        name: "datetime",
        entries: vec![
            ("datetime", Value::from_object(DtClass::DateTime)),
            ("date", Value::from_object(DtClass::Date)),
            ("timedelta", Value::from_object(DtClass::TimeDelta)),
            (
                "timezone",
                Value::from_object(Namespace {
                    name: "datetime.timezone",
                    entries: vec![("utc", utc)],
                }),
            ),
            ("MINYEAR", Value::from(1)),
            ("MAXYEAR", Value::from(9999)),
        ],
    })
}

// --- re ------------------------------------------------------------------------

const RE_IGNORECASE: i64 = 2;
const RE_LOCALE: i64 = 4;
const RE_MULTILINE: i64 = 8;
const RE_DOTALL: i64 = 16;
const RE_UNICODE: i64 = 32;
const RE_VERBOSE: i64 = 64;
const RE_ASCII: i64 = 256;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Anchor {
    Search,
    Start,
    Full,
}

type RegexCache = HashMap<(Anchor, i64, String), Arc<regex::Regex>>;

/// Compiles a Python regular expression for the `regex` crate (cached).
fn compile_regex(pattern: &str, flags: i64, anchor: Anchor) -> Result<Arc<regex::Regex>, Error> {
    static CACHE: OnceLock<Mutex<RegexCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (anchor, flags, pattern.to_string());
    if let Some(re) = lock(cache).get(&key) {
        return Ok(re.clone());
    }
    // Python's \Z is the regex crate's \z.
    let mut translated = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => translated.push_str("\\z"),
                Some(n) => {
                    translated.push('\\');
                    translated.push(n);
                }
                None => translated.push('\\'),
            }
        } else {
            translated.push(c);
        }
    }
    let nl = if flags & RE_VERBOSE != 0 { "\n" } else { "" };
    let full = match anchor {
        Anchor::Search => translated,
        Anchor::Start => format!("\\A(?:{translated}{nl})"),
        Anchor::Full => format!("\\A(?:{translated}{nl})\\z"),
    };
    let re = regex::RegexBuilder::new(&full)
        .case_insensitive(flags & RE_IGNORECASE != 0)
        .multi_line(flags & RE_MULTILINE != 0)
        .dot_matches_new_line(flags & RE_DOTALL != 0)
        .ignore_whitespace(flags & RE_VERBOSE != 0)
        .build()
        .map_err(|e| {
            op_error(format!(
                "modules.re: cannot compile pattern {pattern:?} (Rust's regex syntax has no \
                 look-around or back-references): {e}"
            ))
        })?;
    let re = Arc::new(re);
    let mut c = lock(cache);
    if c.len() > 512 {
        c.clear();
    }
    c.insert(key, re.clone());
    Ok(re)
}

/// A compiled pattern (`re.compile`).
#[derive(Debug)]
struct PyPattern {
    pattern: String,
    flags: i64,
}

/// A match (`re.match`, `re.search`, ...).
#[derive(Debug)]
struct PyMatch {
    text: Arc<str>,
    /// Byte spans of the groups, 0 being the whole match.
    groups: Vec<Option<(usize, usize)>>,
    names: Arc<Vec<Option<String>>>,
}

impl PyMatch {
    fn new(text: &Arc<str>, caps: &regex::Captures, re: &regex::Regex) -> PyMatch {
        PyMatch {
            text: text.clone(),
            groups: (0..caps.len())
                .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                .collect(),
            names: Arc::new(re.capture_names().map(|n| n.map(str::to_string)).collect()),
        }
    }

    fn index(&self, g: &Value) -> Result<usize, Error> {
        if let Some(name) = g.as_str() {
            return self
                .names
                .iter()
                .position(|n| n.as_deref() == Some(name))
                .ok_or_else(|| op_error(format!("IndexError: no such group '{name}'")));
        }
        let i = as_int(g).ok_or_else(|| op_error("IndexError: no such group"))?;
        if i < 0 || i as usize >= self.groups.len() {
            return Err(op_error(format!("IndexError: no such group {i}")));
        }
        Ok(i as usize)
    }

    fn group(&self, i: usize, default: &Value) -> Value {
        match self.groups.get(i).copied().flatten() {
            Some((s, e)) => Value::from(&self.text[s..e]),
            None => default.clone(),
        }
    }

    fn pos(&self, b: usize) -> Value {
        Value::from(byte_to_char(&self.text, b))
    }
}

impl Object for PyMatch {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "string" => Some(Value::from(&*self.text)),
            "lastindex" => Some(
                self.groups
                    .iter()
                    .rposition(|g| g.is_some())
                    .filter(|&i| i > 0)
                    .map_or(none(), Value::from),
            ),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let a = PyArgs::new(method, args);
        match method {
            "group" => {
                if a.pos.is_empty() {
                    return Ok(self.group(0, &none()));
                }
                let vals: Vec<Value> = a
                    .pos
                    .iter()
                    .map(|g| self.index(g).map(|i| self.group(i, &none())))
                    .collect::<Result<_, _>>()?;
                Ok(if vals.len() == 1 {
                    vals.into_iter().next().unwrap_or_default()
                } else {
                    Value::from(vals)
                })
            }
            "groups" => {
                let default = a.opt(0, "default")?.unwrap_or(none());
                a.done(1)?;
                Ok(Value::from(
                    (1..self.groups.len())
                        .map(|i| self.group(i, &default))
                        .collect::<Vec<_>>(),
                ))
            }
            "groupdict" => {
                let default = a.opt(0, "default")?.unwrap_or(none());
                a.done(1)?;
                Ok(PyDict::value(
                    self.names
                        .iter()
                        .enumerate()
                        .filter_map(|(i, n)| {
                            n.as_ref()
                                .map(|n| (Value::from(n.as_str()), self.group(i, &default)))
                        })
                        .collect(),
                ))
            }
            "start" | "end" | "span" => {
                let i = match a.opt(0, "group")? {
                    Some(g) => self.index(&g)?,
                    None => 0,
                };
                a.done(1)?;
                let (s, e) = match self.groups[i] {
                    Some((s, e)) => (self.pos(s), self.pos(e)),
                    None => (Value::from(-1), Value::from(-1)),
                };
                Ok(match method {
                    "start" => s,
                    "end" => e,
                    _ => Value::from(vec![s, e]),
                })
            }
            _ => Err(unknown_method()),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = self.groups[0].unwrap_or((0, 0));
        write!(
            f,
            "<re.Match object; span=({}, {}), match={}>",
            byte_to_char(&self.text, s),
            byte_to_char(&self.text, e),
            py_repr(&Value::from(&self.text[s..e]))
        )
    }
}

/// One piece of a `re.sub` replacement template.
enum ReplPart {
    Text(String),
    Group(usize),
    Named(String),
}

fn parse_repl(repl: &str) -> Result<Vec<ReplPart>, Error> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        let Some(n) = chars.next() else {
            return Err(op_error("re.sub(): bad escape (end of pattern)"));
        };
        let mut group = |p: ReplPart, text: &mut String| {
            if !text.is_empty() {
                parts.push(ReplPart::Text(std::mem::take(text)));
            }
            parts.push(p);
        };
        match n {
            '0'..='9' => {
                let mut num = n.to_digit(10).unwrap_or(0) as usize;
                if let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    num = num * 10 + d as usize;
                    chars.next();
                }
                group(ReplPart::Group(num), &mut text);
            }
            'g' => {
                if chars.next() != Some('<') {
                    return Err(op_error("re.sub(): missing < after \\g"));
                }
                let mut name = String::new();
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                    name.push(c);
                }
                match name.parse::<usize>() {
                    Ok(i) => group(ReplPart::Group(i), &mut text),
                    Err(_) => group(ReplPart::Named(name), &mut text),
                }
            }
            'n' => text.push('\n'),
            't' => text.push('\t'),
            'r' => text.push('\r'),
            'f' => text.push('\x0c'),
            'v' => text.push('\x0b'),
            'a' => text.push('\x07'),
            'b' => text.push('\x08'),
            '\\' => text.push('\\'),
            other => {
                text.push('\\');
                text.push(other);
            }
        }
    }
    if !text.is_empty() {
        parts.push(ReplPart::Text(text));
    }
    Ok(parts)
}

fn re_sub(re: &regex::Regex, repl: &str, s: &str, count: usize) -> Result<(String, usize), Error> {
    let parts = parse_repl(repl)?;
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut n = 0;
    for caps in re.captures_iter(s) {
        if count > 0 && n >= count {
            break;
        }
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        for p in &parts {
            match p {
                ReplPart::Text(t) => out.push_str(t),
                ReplPart::Group(i) => {
                    if *i >= caps.len() {
                        return Err(op_error(format!("re.sub(): invalid group reference {i}")));
                    }
                    out.push_str(caps.get(*i).map_or("", |m| m.as_str()));
                }
                ReplPart::Named(name) => match caps.name(name) {
                    Some(m) => out.push_str(m.as_str()),
                    None if re.capture_names().any(|n| n == Some(name)) => {}
                    None => return Err(op_error(format!("re.sub(): unknown group name '{name}'"))),
                },
            }
        }
        last = m.end();
        n += 1;
    }
    out.push_str(&s[last..]);
    Ok((out, n))
}

/// The operations shared by `re.X(pattern, ...)` and `compiled.X(...)`;
/// `args` are those after the pattern.
fn re_call(pattern: &str, flags: i64, op: &str, args: &[Value]) -> Result<Value, Error> {
    let a = PyArgs::new(op, args);
    let flags_at =
        |i: usize| -> Result<i64, Error> { Ok(flags | a.opt_int(i, "flags")?.unwrap_or(0)) };
    match op {
        "match" | "search" | "fullmatch" => {
            let s = a.req_str(0, "string")?;
            let flags = flags_at(1)?;
            a.done(2)?;
            let anchor = match op {
                "match" => Anchor::Start,
                "fullmatch" => Anchor::Full,
                _ => Anchor::Search,
            };
            let re = compile_regex(pattern, flags, anchor)?;
            let text: Arc<str> = Arc::from(s);
            Ok(match re.captures(&text) {
                Some(caps) => Value::from_object(PyMatch::new(&text, &caps, &re)),
                None => none(),
            })
        }
        "findall" | "finditer" => {
            let s = a.req_str(0, "string")?;
            let flags = flags_at(1)?;
            a.done(2)?;
            let re = compile_regex(pattern, flags, Anchor::Search)?;
            let text: Arc<str> = Arc::from(s);
            let mut out = Vec::new();
            for caps in re.captures_iter(&text) {
                if op == "finditer" {
                    out.push(Value::from_object(PyMatch::new(&text, &caps, &re)));
                    continue;
                }
                let g = |i: usize| Value::from(caps.get(i).map_or("", |m| m.as_str()));
                out.push(match caps.len() {
                    1 => g(0),
                    2 => g(1),
                    n => Value::from((1..n).map(g).collect::<Vec<_>>()),
                });
            }
            Ok(PyList::value(out))
        }
        "sub" | "subn" => {
            let repl = a.req(0, "repl")?;
            let repl = repl
                .as_str()
                .ok_or_else(|| op_error("re.sub(): repl must be a string"))?
                .to_string();
            let s = a.req_str(1, "string")?;
            let count = a.opt_int(2, "count")?.unwrap_or(0).max(0) as usize;
            let flags = flags_at(3)?;
            a.done(4)?;
            let re = compile_regex(pattern, flags, Anchor::Search)?;
            let (out, n) = re_sub(&re, &repl, &s, count)?;
            Ok(if op == "subn" {
                Value::from(vec![Value::from(out), Value::from(n)])
            } else {
                Value::from(out)
            })
        }
        "split" => {
            let s = a.req_str(0, "string")?;
            let maxsplit = a.opt_int(1, "maxsplit")?.unwrap_or(0).max(0) as usize;
            let flags = flags_at(2)?;
            a.done(3)?;
            let re = compile_regex(pattern, flags, Anchor::Search)?;
            let mut out = Vec::new();
            let mut last = 0;
            for (n, caps) in re.captures_iter(&s).enumerate() {
                if maxsplit > 0 && n >= maxsplit {
                    break;
                }
                let Some(m) = caps.get(0) else { continue };
                out.push(Value::from(&s[last..m.start()]));
                for i in 1..caps.len() {
                    out.push(caps.get(i).map_or(none(), |m| Value::from(m.as_str())));
                }
                last = m.end();
            }
            out.push(Value::from(&s[last..]));
            Ok(PyList::value(out))
        }
        _ => Err(unknown_method()),
    }
}

impl Object for PyPattern {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "pattern" => Some(Value::from(self.pattern.as_str())),
            "flags" => Some(Value::from(self.flags)),
            "groups" => compile_regex(&self.pattern, self.flags, Anchor::Search)
                .ok()
                .map(|re| Value::from(re.captures_len() - 1)),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        re_call(&self.pattern, self.flags, method, args)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "re.compile({})",
            py_repr(&Value::from(self.pattern.as_str()))
        )
    }
}

fn pattern_of(v: &Value) -> Result<(String, i64), Error> {
    if let Some(p) = v.downcast_object_ref::<PyPattern>() {
        return Ok((p.pattern.clone(), p.flags));
    }
    v.as_str().map(|s| (s.to_string(), 0)).ok_or_else(|| {
        op_error(format!(
            "modules.re: pattern must be a string, not {}",
            v.kind()
        ))
    })
}

fn re_module() -> Value {
    fn op(name: &'static str) -> (&'static str, Value) {
        (
            name,
            func(move |args| {
                let first = args.first().filter(|v| !v.is_kwargs()).ok_or_else(|| {
                    Error::new(
                        ErrorKind::MissingArgument,
                        format!("re.{name}() missing the pattern"),
                    )
                })?;
                let (pattern, flags) = pattern_of(first)?;
                re_call(&pattern, flags, name, &args[1..])
            }),
        )
    }
    let mut entries = vec![
        op("match"),
        op("search"),
        op("fullmatch"),
        op("findall"),
        op("finditer"),
        op("sub"),
        op("subn"),
        op("split"),
        (
            "compile",
            func(|args| {
                let a = PyArgs::new("compile", args);
                let (pattern, flags) = pattern_of(&a.req(0, "pattern")?)?;
                let flags = flags | a.opt_int(1, "flags")?.unwrap_or(0);
                a.done(2)?;
                compile_regex(&pattern, flags, Anchor::Search)?;
                Ok(Value::from_object(PyPattern { pattern, flags }))
            }),
        ),
        (
            "escape",
            func(|args| {
                let a = PyArgs::new("escape", args);
                let s = a.req_str(0, "pattern")?;
                a.done(1)?;
                Ok(Value::from(regex::escape(&s)))
            }),
        ),
    ];
    for (name, v) in [
        ("IGNORECASE", RE_IGNORECASE),
        ("I", RE_IGNORECASE),
        ("LOCALE", RE_LOCALE),
        ("L", RE_LOCALE),
        ("MULTILINE", RE_MULTILINE),
        ("M", RE_MULTILINE),
        ("DOTALL", RE_DOTALL),
        ("S", RE_DOTALL),
        ("UNICODE", RE_UNICODE),
        ("U", RE_UNICODE),
        ("VERBOSE", RE_VERBOSE),
        ("X", RE_VERBOSE),
        ("ASCII", RE_ASCII),
        ("A", RE_ASCII),
    ] {
        entries.push((name, Value::from(v)));
    }
    Value::from_object(Namespace {
        name: "re",
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn env() -> Environment<'static> {
        let mut env = Environment::new();
        install(&mut env);
        env
    }

    fn render_with(env: &Environment<'_>, text: &str) -> Result<String, Error> {
        let src = preprocess(text).into_owned();
        env.render_str(
            &src,
            context! { var_list => vec!["a", "b"], cfg => context! { k => 1 } },
        )
    }

    fn render(text: &str) -> String {
        render_with(&env(), text).unwrap_or_else(|e| panic!("{text}: {e:#}"))
    }

    fn render_err(text: &str) -> String {
        match render_with(&env(), text) {
            Ok(out) => panic!("{text}: expected an error, rendered {out:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn preprocess_rewrites_literals_only() {
        let cases = [
            ("plain text", "plain text"),
            ("{{ [1, 2] }}", "{{ __list(1, 2) }}"),
            ("{% set x = [] %}", "{% set x = __list() %}"),
            ("{% set d = {} %}", "{% set d = __dict() %}"),
            ("{{ {'a': 1, 'b': [2]} }}", "{{ __dict('a', 1, 'b', __list(2)) }}"),
            ("{{ a[0] }} {{ x['k'] }} {{ f()[1] }} {{ a.b[1] }}", "{{ a[0] }} {{ x['k'] }} {{ f()[1] }} {{ a.b[1] }}"),
            ("{{ a[1:2] }} {{ 'abc'[-1] }} {{ [1,2][0] }}", "{{ a[1:2] }} {{ 'abc'[-1] }} {{ __list(1,2)[0] }}"),
            ("{{ {'a': x[1:2]} }}", "{{ __dict('a', x[1:2]) }}"),
            ("{% for x in [1] %}{% if y in ['a'] and z not in [] %}", "{% for x in __list(1) %}{% if y in __list('a') and z not in __list() %}"),
            ("{{ '[not' ~ \"a [list]\" ~ 'it\\'s [x]' }}", "{{ '[not' ~ \"a [list]\" ~ 'it\\'s [x]' }}"),
            ("{# [1] {2} #}[3]{4}", "{# [1] {2} #}[3]{4}"),
            ("{% raw %}{{ [1] }}{% endraw %}{{ [2] }}", "{% raw %}{{ [1] }}{% endraw %}{{ __list(2) }}"),
            ("{%- raw -%}{% set x = [] %}{%- endraw -%}{{ [] }}", "{%- raw -%}{% set x = [] %}{%- endraw -%}{{ __list() }}"),
            ("{% macro m(cols=[], opts={}) %}", "{% macro m(cols=__list(), opts=__dict()) %}"),
            ("{{ x if y else [] }}", "{{ x if y else __list() }}"),
            ("{{ loop.in[0] }}", "{{ loop.in[0] }}"),
            ("{{ {'a': {'b': 1}} }}", "{{ __dict('a', __dict('b', 1)) }}"),
            ("{%- test not_null(model, column_name) -%}x{%- endtest -%}", "{%- macro test_not_null(model, column_name) -%}x{%- endmacro -%}"),
            ("a{% docs d %}\nx\n{% enddocs %}b", "a\n\nb"),
            ("a{%- materialization table, adapter='x' -%}\n{{ [1] }}\r\n{%- endmaterialization -%}b", "a\n\r\nb"),
        ];
        for (input, expected) in cases {
            assert_eq!(preprocess(input), expected, "input: {input}");
        }
        assert!(matches!(preprocess("select 1"), Cow::Borrowed(_)));
        assert!(matches!(preprocess("select {{ a[0] }}"), Cow::Borrowed(_)));
    }

    #[test]
    fn preprocess_keeps_lines() {
        let text = "{% set x = [\n 1,\n {'a':\n 2}\n] %}\n{% test t(model) %}\n{% endtest %}\n{% docs x %}\n\n{% enddocs %}\n";
        let out = preprocess(text);
        assert_eq!(out.lines().count(), text.lines().count());
        assert_eq!(out.matches('\n').count(), text.matches('\n').count());
    }

    #[test]
    fn syntax_error_line_is_kept() {
        let text = "{% set a = ['x', {'k': [1, 2]}] %}\n{% set b = {'y': [3]} %}\n{{ a[0] }}\n{{ b.y[0] + }}\n";
        let err = env()
            .template_from_str(&preprocess(text))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.line(), Some(4), "{err:#}");
    }

    #[test]
    fn append_in_loop_persists() {
        let text = r#"{%- set fields = [] -%}
{%- for f in ['a', 'b'] -%}{%- do fields.append("coalesce(cast(" ~ f ~ " as text), '')") -%}{%- endfor -%}
{{ fields | join(', ') }} {{ fields | length }}"#;
        assert_eq!(
            render(text),
            "coalesce(cast(a as text), ''), coalesce(cast(b as text), '') 2"
        );
        let text = "{% set out = [] %}{% macro add(l, x) %}{% do l.append(x) %}{% endmacro %}\
                    {{ add(out, 1) }}{{ add(out, 2) }}{{ out }}";
        assert_eq!(render(text), "[1, 2]");
    }

    #[test]
    fn dict_update_and_access() {
        let text = "{%- set d = {} -%}{%- do d.update({'a': 1}) -%}{%- do d.update(b=2) -%}\
                    {{ d.a }} {{ d['b'] }} {{ d | length }} {{ d.get('c', 'none') }} \
                    {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} \
                    {{ 'a' in d }} {{ d.keys() | list }} {{ d | tojson }}";
        assert_eq!(
            render(text),
            r#"1 2 2 none a=1;b=2; True ["a", "b"] {"a":1,"b":2}"#
        );
        let text = "{% set d = {'z': 1, 'a': 2} %}{{ d }} {{ d | dictsort }} {{ d | items | list }} \
                    {% for k in d %}{{ k }}{% endfor %} {{ d.pop('z') }} {{ d }} {{ d.setdefault('q', 5) }} {{ d }}";
        assert_eq!(
            render(text),
            r#"{"z": 1, "a": 2} [["a", 2], ["z", 1]] [["z", 1], ["a", 2]] za 1 {"a": 2} 5 {"a": 2, "q": 5}"#
        );
    }

    #[test]
    fn nested_literals_are_mutable() {
        let text = "{% set d = {'cols': [], 'meta': {'n': 0}} %}{% do d.cols.append('x') %}\
                    {% do d['meta'].update({'n': 1}) %}{{ d.cols }} {{ d.meta.n }} {{ [[1, 2], [3]][0][1] }}";
        assert_eq!(render(text), r#"["x"] 1 2"#);
    }

    #[test]
    fn test_blocks_become_macros() {
        let text = "{% test my_test(model, column_name) %}select {{ column_name }} from {{ model }}{% endtest %}\
                    {{ test_my_test('m', 'c') }}";
        assert_eq!(render(text), "select c from m");
        let text = "{% materialization view, adapter='x' %}{{ nope( }}{% endmaterialization %}ok";
        assert_eq!(render(text), "ok");
    }

    #[test]
    fn string_methods_follow_python() {
        let cases = [
            (r#"{{ "a,b,,c".split(",") }}"#, r#"["a", "b", "", "c"]"#),
            (r#"{{ "  a  b c ".split() }}"#, r#"["a", "b", "c"]"#),
            (r#"{{ "abc".split() }}"#, r#"["abc"]"#),
            (r#"{{ "a b c".split(None, 1) }}"#, r#"["a", "b c"]"#),
            (r#"{{ "a.b.c".rsplit(".", 1) }}"#, r#"["a.b", "c"]"#),
            (r#"{{ "a.b.c".split(".")[-1] }}"#, "c"),
            (r#"[{{ " x ".strip() }}]"#, "[x]"),
            (
                r#"{{ "xxaxx".strip("x") }} {{ "xxa".lstrip("x") }} {{ "axx".rstrip("x") }}"#,
                "a a a",
            ),
            (
                r#"{{ "x".upper() }} {{ "AbC".lower() }} {{ "hello world".title() }} {{ "hELLO".capitalize() }}"#,
                "X abc Hello World Hello",
            ),
            (
                r#"{{ "dbt_x".startswith('dbt_') }} {{ "a.sql".endswith(('.sql', '.csv')) }}"#,
                "True True",
            ),
            (
                r#"{{ "-".join(['a', 'b']) }} {{ "aaa".count("a") }} {{ "abc".find("c") }} {{ "abc".find("z") }}"#,
                "a-b 3 2 -1",
            ),
            (
                r#"{{ "{}-{}".format(1, 'x') }} {{ "{0}{0} {n}".format('a', n=2) }} {{ "{:>5}|{:<3}|{:^5}".format('a', 'b', 'c') }}"#,
                "1-x aa 2     a|b  |  c  ",
            ),
            (
                r#"{{ "{:.2f} {:,} {:05d} {!r}".format(3.14159, 1234567, 42, 'q') }}"#,
                "3.14 1,234,567 00042 'q'",
            ),
            (
                r#"{{ "42".isdigit() }} {{ "4a".isdigit() }} {{ "ab".isalpha() }} {{ "AB".isupper() }} {{ " ".isspace() }}"#,
                "True False True True True",
            ),
            (
                r#"{{ "7".zfill(3) }} {{ "-7".zfill(3) }} {{ "ab".center(6, '*') }} {{ "a".ljust(3, '.') }} {{ "a".rjust(3) }}"#,
                "007 -07 **ab** a..   a",
            ),
            (
                r#"{{ "a=b=c".partition("=") }} {{ "a=b=c".rpartition("=") }}"#,
                r#"["a", "=", "b=c"] ["a=b", "=", "c"]"#,
            ),
            (
                r#"{{ "test_x".removeprefix("test_") }} {{ "x.sql".removesuffix(".sql") }} {{ "aXbX".replace("X", "-", 1) }}"#,
                "x x a-bX",
            ),
            (r#"{{ "a\nb\r\nc".splitlines() }}"#, r#"["a", "b", "c"]"#),
            (
                r#"{{ "%s-%s" | format('a', 'b') }} {{ "ABC" | lower }}"#,
                "a-b abc",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(render(input), expected, "input: {input}");
        }
    }

    #[test]
    fn mutable_list_behaves_like_a_list() {
        let text = "{% set l = ['b', 'a', 'c'] %}{{ l == ['b', 'a', 'c'] }} {{ l | join(',') }} {{ l | sort | join('') }} \
                    {{ l[-1] }} {{ l | length }} {{ 'a' in l }} {{ l is sequence }} {{ l is iterable }} {{ l ~ '' }} \
                    {{ l | tojson }} {{ l[1:] }} {{ l | first }} {{ l | reverse | list }} {{ [] is sequence }} \
                    {% if [] %}full{% else %}empty{% endif %} {{ l.index('c') }} {{ l.count('a') }} {{ var_list == ['a', 'b'] }}";
        assert_eq!(
            render(text),
            r#"True b,a,c abc c 3 True True True ["b", "a", "c"] ["b","a","c"] ["a", "c"] b ["c", "a", "b"] True empty 2 1 True"#
        );
        let text = "{% set l = [3, 1, 2] %}{% do l.sort(reverse=True) %}{% do l.sort() %}{% do l.insert(0, 0) %}{% do l.extend([9]) %}{{ l }} \
                    {{ l.pop() }} {{ l.pop(0) }} {% do l.remove(2) %}{% do l.reverse() %}{{ l }} {% set c = l.copy() %}{% do c.clear() %}{{ l }} {{ c }}";
        assert_eq!(render(text), "[0, 1, 2, 3, 9] 9 0 [3, 1] [3, 1] []");
        let text = "{% macro show(xs) %}{% for x in xs %}{{ loop.index }}{{ x }}{% endfor %}{% endmacro %}{{ show(['p', 'q']) }}";
        assert_eq!(render(text), "1p2q");
    }

    #[test]
    fn immutable_values_say_read_only() {
        let err = render_err("{% do var_list.append('c') %}");
        assert!(
            err.contains("append()") && err.contains("read-only"),
            "{err}"
        );
        let err = render_err("{% do cfg.update({'a': 1}) %}");
        assert!(
            err.contains("update()") && err.contains("read-only"),
            "{err}"
        );
        assert_eq!(
            render("{{ var_list.index('b') }} {{ cfg.get('k') }} {{ cfg.items() | list }}"),
            r#"1 1 [["k", 1]]"#
        );
        assert_eq!(
            render("{% set c = var_list.copy() %}{% do c.append('c') %}{{ c }} {{ var_list }}"),
            r#"["a", "b", "c"] ["a", "b"]"#
        );
        assert_eq!(
            render("{% set c = var_list | list %}{% do c.append('c') %}{{ c | length }}"),
            "3"
        );
    }

    #[test]
    fn functions() {
        assert_eq!(
            render("{% for a, b in zip([1, 2, 3], ['x', 'y']) %}{{ a }}{{ b }}{% endfor %}"),
            "1x2y"
        );
        assert_eq!(render("{% set s = set(['a', 'b', 'a']) %}{% do s.add('c') %}{% do s.add('a') %}{{ s | length }} {{ s | join('') }}"), "3 abc");
        assert_eq!(
            render("{{ tojson({'b': [1, none, true], 'a': 'é'}) }}"),
            r#"{"b": [1, null, true], "a": "\u00e9"}"#
        );
        assert_eq!(
            render("{{ tojson({'b': 1, 'a': 2}, sort_keys=True) }}"),
            r#"{"a": 2, "b": 1}"#
        );
        assert_eq!(
            render(
                r#"{% set j = fromjson('{"z": [1, 2], "a": {"b": null}}') %}{% do j.z.append(3) %}{{ j.z }} {{ j.a.b is none }} {{ j | list }}"#
            ),
            r#"[1, 2, 3] True ["z", "a"]"#
        );
        assert_eq!(render("{{ fromjson('nope', 'dflt') }}"), "dflt");
        assert_eq!(
            render("{{ fromyaml('a: 1\\nb: [x, y]').b[1] }} {{ toyaml({'a': [1]}) | trim }}"),
            "y a:\n- 1"
        );
        assert_eq!(
            render("{{ local_md5('hello') }}"),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(render("{{ print('hi') }}x"), "x");
        assert_eq!(
            render("{% set d = dict(a=1) %}{% do d.update({'b': 2}) %}{{ d }}"),
            r#"{"a": 1, "b": 2}"#
        );
    }

    #[test]
    fn filters() {
        assert_eq!(render("{{ 'True' | as_bool }} {{ 'false' | as_bool }} {{ '42' | as_number + 1 }} {{ 3 | as_text ~ 'x' }}"), "True False 43 3x");
        assert_eq!(render("{{ ('[1, 2]' | as_native)[1] }} {{ \"{'a': 'b'}\" | as_native }} {{ 'None' | as_native is none }}"), r#"2 {"a": "b"} True"#);
        assert_eq!(render("{{ 'hello world foo' | truncate(9, end='~') }} {{ 'a b c' | wordcount }} {{ 'x' | center(3) }}"), "hello~ 3  x ");
        assert_eq!(
            render("{{ zip is callable }} {{ 1 is callable }}"),
            "True False"
        );
    }

    #[test]
    fn modules_datetime() {
        assert_eq!(
            render("{{ modules.datetime.date(1997, 9, 29) }}"),
            "1997-09-29"
        );
        assert_eq!(
            render("{% set d = modules.datetime.datetime(1997, 9, 29, 6, 14, 0) %}{{ d }} {{ d.isoformat() }} {{ d.strftime('%Y/%m/%d %H:%M:%S.%f') }} {{ d.year }} {{ d.date() }}"),
            "1997-09-29 06:14:00 1997-09-29T06:14:00 1997/09/29 06:14:00.000000 1997 1997-09-29"
        );
        assert_eq!(
            render("{{ modules.datetime.datetime(1997, 9, 29, 6, 14, 0, tzinfo=modules.pytz.timezone('America/Los_Angeles')) }}"),
            "1997-09-29 06:14:00-07:00"
        );
        assert_eq!(
            render("{% set p = modules.datetime.datetime.strptime('2024-03-01 10:00', '%Y-%m-%d %H:%M') %}{{ p }} {{ p < modules.datetime.datetime(2024, 3, 2) }} {{ p == modules.datetime.datetime(2024, 3, 1, 10) }}"),
            "2024-03-01 10:00:00 True True"
        );
        assert_eq!(render("{{ modules.datetime.timedelta(days=1, hours=2) }} {{ modules.datetime.timedelta(minutes=90).total_seconds() }}"), "1 day, 2:00:00 5400.0");
        let now = render("{{ modules.datetime.datetime.now().strftime('%Y') }}");
        assert_eq!(now.len(), 4);
        assert_eq!(
            render("{{ modules.datetime.datetime.utcnow().year > 2000 }}"),
            "True"
        );
        assert_eq!(
            render("{{ modules.datetime.datetime(2024, 1, 31).replace(hour=5, day=1) }}"),
            "2024-01-01 05:00:00"
        );
        assert!(
            render_err("{{ modules.datetime.datetime.now().strftime('%Q') }}").contains("strftime")
        );
    }

    #[test]
    fn modules_re() {
        assert_eq!(
            render("{{ modules.re.sub('[ -]+', '_', 'a b-c') }}"),
            "a_b_c"
        );
        assert_eq!(
            render("{{ modules.re.sub('^[0-9]', '_' ~ '1', '1abc') }}"),
            "_1abc"
        );
        assert_eq!(
            render("{{ modules.re.sub('(a)(b)', '\\\\2\\\\1', 'xaby') }}"),
            "xbay"
        );
        assert_eq!(render("{% set m = modules.re.match('(\\\\w+)@(\\\\w+)', 'me@host x') %}{{ m.group() }} {{ m.group(2) }} {{ m.groups() }} {{ m.span(2) }}"), r#"me@host host ["me", "host"] [3, 7]"#);
        assert_eq!(render("{{ modules.re.match('b', 'ab') is none }} {{ modules.re.search('b', 'ab') is none }}"), "True False");
        assert_eq!(render("{{ modules.re.match('AB', 'abc', modules.re.IGNORECASE) is not none }} {{ modules.re.fullmatch('a.', 'ab') is not none }} {{ modules.re.fullmatch('a', 'ab') is none }}"), "True True True");
        assert_eq!(render("{{ modules.re.findall('[0-9]+', 'a1b22') }} {{ modules.re.findall('(a)(\\\\d)', 'a1a2') }} {{ modules.re.split('[,;]', 'a,b;c') }}"), r#"["1", "22"] [["a", "1"], ["a", "2"]] ["a", "b", "c"]"#);
        assert_eq!(render("{% set re = modules.re %}{% set p = re.compile('x(?P<n>\\\\d)') %}{{ p.search('ax5').group('n') }} {{ p.sub('y', 'x1x2') }}"), "5 yy");
        assert!(render_err("{{ modules.re.match('(?=a)', 'a') }}").contains("look-around"));
    }

    #[test]
    fn true_false_none_literals() {
        assert_eq!(
            render("{{ True }} {{ False }} {{ None is none }} {{ [True, None] | length }}"),
            "True False True 2"
        );
    }

    #[test]
    fn callables_stored_in_maps_still_win() {
        let mut env = env();
        env.add_global(
            "ns",
            Value::from_object(Namespace {
                name: "ns",
                entries: vec![("get", func(|_| Ok(Value::from("macro"))))],
            }),
        );
        let mut map = std::collections::BTreeMap::new();
        map.insert("items", func(|_| Ok(Value::from("stored"))));
        env.add_global("m", Value::from(map));
        assert_eq!(
            render_with(&env, "{{ ns.get('x') }} {{ m.items() }}").unwrap(),
            "macro stored"
        );
    }

    #[test]
    fn preprocess_is_linear() {
        let line = "select {{ a[0] }}, {{ [1, 2, {'k': 'v'}] | length }} {# c #} from t where x in {{ ['a', 'b'] }}\n";
        let text = line.repeat(20_000);
        let start = std::time::Instant::now();
        let out = preprocess(&text);
        assert_eq!(out.matches('\n').count(), 20_000);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn preprocess_never_panics_and_keeps_newlines() {
        let alphabet: Vec<&str> = vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "-",
            "'",
            "\"",
            "\\",
            ":",
            ",",
            ".",
            "a",
            "in",
            " ",
            "\n",
            "\r\n",
            "é",
            "raw",
            "endraw",
            "test",
            "endtest",
            "docs",
            "enddocs",
            "materialization",
            "endmaterialization",
            "1",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let out = preprocess(&text);
            assert_eq!(
                out.matches('\n').count(),
                text.matches('\n').count(),
                "{text:?}"
            );
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        }
    }

    /// Compiles every macro file of dbt packages checked out under
    /// `$SLUICE_DBT_PACKAGES` (e.g. dbt-utils, dbt-date, dbt-expectations,
    /// dbt-audit-helper), after `preprocess`, and lists the failures.
    #[test]
    #[ignore]
    fn dbt_packages_compile() {
        let Ok(root) = std::env::var("SLUICE_DBT_PACKAGES") else {
            return;
        };
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "sql") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(std::path::Path::new(&root), &mut files);
        files.sort();
        let env = env();
        let mut failed = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let src = preprocess(&text);
            assert_eq!(src.matches('\n').count(), text.matches('\n').count());
            if let Err(e) = env.template_from_str(&src) {
                failed += 1;
                println!("FAIL {}: {e:#}", f.display());
            }
        }
        println!("{} files, {failed} failed", files.len());
    }
}
