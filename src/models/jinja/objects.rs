//! dbt's context objects as minijinja values: relations (`this`, `ref()`,
//! `api.Relation.create`), columns (`adapter.get_columns_in_relation`),
//! query results (`run_query`, `{% call statement %}` + `load_result`).

use super::library::RenderState;
use super::{lock, user_error, QueryResult};
use minijinja::value::{from_args, Enumerator, Kwargs, Object, ObjectRepr, Rest, Value};
use minijinja::{Error, State};
use std::fmt;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Relations

/// A relation: renders as its SQL text; a mapping with dbt's attributes.
#[derive(Debug, Clone)]
pub struct Relation {
    database: Option<String>,
    schema: Option<String>,
    identifier: String,
    /// `table`, `view`, `cte`, `external`...
    kind: Option<String>,
    /// Text rendered when set (e.g. an ephemeral model's CTE name).
    text: Option<String>,
}

impl Relation {
    /// Parses `schema.table` / `table` / `db.schema.table`.
    pub fn from_text(text: &str, default_schema: &str) -> Value {
        let parts: Vec<&str> = text.split('.').map(unquote).collect();
        let (database, schema, identifier) = match parts.as_slice() {
            [name] => (None, default_schema.to_string(), name.to_string()),
            [schema, name] => (None, schema.to_string(), name.to_string()),
            [.., database, schema, name] => (
                Some(database.to_string()),
                schema.to_string(),
                name.to_string(),
            ),
            [] => (None, default_schema.to_string(), String::new()),
        };
        let keeps_text = parts.len() == 1;
        Value::from_object(Relation {
            database,
            schema: Some(schema),
            identifier,
            kind: None,
            text: keeps_text.then(|| text.to_string()),
        })
    }

    /// A relation that renders as `text` as is (a subquery, a CTE name).
    pub fn opaque(text: &str) -> Value {
        let identifier = text
            .rsplit(|c: char| c.is_whitespace() || c == '.')
            .next()
            .unwrap_or(text)
            .to_string();
        Value::from_object(Relation {
            database: None,
            schema: None,
            identifier,
            kind: None,
            text: Some(text.to_string()),
        })
    }

    fn rendered(&self) -> String {
        if let Some(t) = &self.text {
            return t.clone();
        }
        let mut parts = Vec::new();
        if let Some(s) = &self.schema {
            parts.push(s.as_str());
        }
        parts.push(&self.identifier);
        parts.join(".")
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

const RELATION_KEYS: &[&str] = &[
    "database",
    "schema",
    "identifier",
    "name",
    "type",
    "metadata",
    "path",
];

impl Object for Relation {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(RELATION_KEYS)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let opt = |s: &Option<String>| s.as_deref().map(Value::from).unwrap_or(Value::from(()));
        Some(match key.as_str()? {
            "schema" => opt(&self.schema),
            "name" | "identifier" | "table" => Value::from(self.identifier.as_str()),
            "database" => opt(&self.database),
            "type" => opt(&self.kind),
            "is_table" => Value::from(self.kind.as_deref() == Some("table")),
            "is_view" => Value::from(self.kind.as_deref() == Some("view")),
            "is_cte" => Value::from(self.kind.as_deref() == Some("cte")),
            "is_materialized_view" => Value::from(false),
            "metadata" => Value::from_iter([("type", "SluiceRelation")]),
            "path" => Value::from_iter([
                ("database", opt(&self.database)),
                ("schema", opt(&self.schema)),
                ("identifier", Value::from(self.identifier.as_str())),
            ]),
            "quote_policy" | "include_policy" => {
                Value::from_iter([("database", false), ("schema", true), ("identifier", true)])
            }
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
            "render" => Ok(Value::from(self.rendered())),
            "get" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                Ok(self
                    .get_value(&key)
                    .unwrap_or(default.unwrap_or(Value::from(()))))
            }
            "include" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                let mut r = (**self).clone();
                let keep = |k: &str| -> Result<bool, Error> {
                    Ok(kwargs.get::<Option<bool>>(k)?.unwrap_or(true))
                };
                if !keep("database")? {
                    r.database = None;
                }
                if !keep("schema")? {
                    r.schema = None;
                }
                if !keep("identifier")? {
                    r.identifier = String::new();
                }
                r.text = None;
                Ok(Value::from_object(r))
            }
            "quote" | "without_identifier" => Ok(Value::from_dyn_object(self.clone())),
            "incorporate" | "replace_path" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                let mut r = (**self).clone();
                let path: Option<Value> = kwargs.get("path")?;
                let mut set = |k: &str, v: Value| {
                    let s = (!v.is_none() && !v.is_undefined()).then(|| v.to_string());
                    match k {
                        "database" => r.database = s,
                        "schema" => r.schema = s,
                        "identifier" => r.identifier = s.unwrap_or_default(),
                        _ => {}
                    }
                };
                if let Some(p) = path {
                    for k in ["database", "schema", "identifier"] {
                        if let Ok(v) = p.get_attr(k) {
                            if !v.is_undefined() {
                                set(k, v);
                            }
                        }
                    }
                }
                for k in ["database", "schema", "identifier"] {
                    if let Some(v) = kwargs.get::<Option<Value>>(k)? {
                        set(k, v);
                    }
                }
                if let Some(t) = kwargs.get::<Option<Value>>("type")? {
                    r.kind = Some(t.to_string());
                }
                r.text = None;
                Ok(Value::from_object(r))
            }
            _ => Err(user_error(format!("a relation has no method `{method}`"))),
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered())
    }
}

/// `api`: `api.Relation.create(...)`, `api.Column(...)`.
pub(super) fn api() -> Value {
    Value::from_iter([
        (
            "Relation",
            Value::from_iter([(
                "create",
                Value::from_function(|args: Rest<Value>| -> Result<Value, Error> {
                    let (pos, kwargs): (&[Value], Kwargs) = from_args(&args)?;
                    let get = |i: usize, k: &str| -> Result<Option<String>, Error> {
                        let kw: Option<Value> = kwargs.get(k)?;
                        Ok(pos
                            .get(i)
                            .cloned()
                            .or(kw)
                            .filter(|v| !v.is_none() && !v.is_undefined())
                            .map(|v| v.to_string()))
                    };
                    let database = get(0, "database")?;
                    let schema = get(1, "schema")?;
                    let identifier = get(2, "identifier")?.unwrap_or_default();
                    let kind = get(3, "type")?;
                    Ok(Value::from_object(Relation {
                        database,
                        schema,
                        identifier,
                        kind,
                        text: None,
                    }))
                }),
            )]),
        ),
        (
            "Column",
            Value::from_function(|name: String, data_type: Option<String>| {
                Value::from_object(Column {
                    name,
                    data_type: data_type.unwrap_or_default(),
                })
            }),
        ),
    ])
}

// ---------------------------------------------------------------------------
// Columns

/// A column of a relation (`adapter.get_columns_in_relation`).
#[derive(Debug)]
pub struct Column {
    name: String,
    data_type: String,
}

impl Object for Column {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "name" | "column" => Value::from(self.name.as_str()),
            "quoted" => Value::from(format!("\"{}\"", self.name.replace('"', "\"\""))),
            "data_type" | "dtype" => Value::from(self.data_type.as_str()),
            "char_size" | "numeric_precision" | "numeric_scale" => Value::from(()),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        let t = self.data_type.to_ascii_uppercase();
        let is_int = ["INT", "BIGINT", "SMALLINT", "TINYINT", "INTEGER"]
            .iter()
            .any(|p| t.starts_with(p))
            || t.contains("INT");
        let is_float = t.starts_with("FLOAT") || t.starts_with("DOUBLE") || t.starts_with("REAL");
        let is_numeric = t.starts_with("DECIMAL") || t.starts_with("NUMERIC");
        Ok(match method {
            "is_string" => Value::from(
                t.starts_with("VARCHAR")
                    || t.starts_with("TEXT")
                    || t.starts_with("STRING")
                    || t.starts_with("CHAR"),
            ),
            "is_number" => Value::from(is_int || is_float || is_numeric),
            "is_integer" => Value::from(is_int),
            "is_float" => Value::from(is_float),
            "is_numeric" => Value::from(is_numeric),
            "string_size" => Value::from(256),
            _ => return Err(user_error(format!("a column has no method `{method}`"))),
        })
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Column {} ({})>", self.name, self.data_type)
    }
}

fn relation_parts(rs: &RenderState, relation: &Value) -> (String, String) {
    let attr = |k: &str| {
        relation
            .get_attr(k)
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_none())
            .map(|v| v.to_string())
    };
    match (attr("schema"), attr("identifier")) {
        (Some(s), Some(i)) => (s, i),
        (None, Some(i)) => (rs.default_schema.clone(), i),
        _ => {
            let text = relation.to_string();
            match text.rsplit_once('.') {
                Some((s, t)) => (unquote(s).to_string(), unquote(t).to_string()),
                None => (rs.default_schema.clone(), unquote(&text).to_string()),
            }
        }
    }
}

pub(super) fn columns_in_relation(rs: &RenderState, relation: &Value) -> Result<Value, Error> {
    if !rs.execute {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    let (schema, table) = relation_parts(rs, relation);
    let Some(i) = rs.introspect.as_ref() else {
        return Err(user_error(format!(
            "adapter.get_columns_in_relation({schema}.{table}) needs the warehouse, which is not available here"
        )));
    };
    let cols = i
        .columns(&schema, &table)
        .map_err(|e| user_error(e.to_string()))?
        .unwrap_or_default();
    Ok(Value::from_iter(cols.into_iter().map(
        |(name, data_type)| Value::from_object(Column { name, data_type }),
    )))
}

/// dbt's `load_relation(relation)`: the relation when it exists in the
/// warehouse, else none (`adapter.get_relation` of its schema and name).
pub(super) fn load_relation(state: &State, relation: Value) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    let attr = |name: &str| -> Option<String> {
        relation
            .get_attr(name)
            .ok()
            .filter(|v| !v.is_none() && !v.is_undefined())
            .map(|v| v.to_string())
    };
    let (schema, ident) = match (attr("schema"), attr("identifier")) {
        (schema, Some(ident)) => (schema.unwrap_or_else(|| rs.default_schema.clone()), ident),
        _ => match relation.as_str().map(|s| s.rsplit_once('.')) {
            Some(Some((schema, ident))) => (schema.to_string(), ident.to_string()),
            _ => {
                return Err(user_error(format!(
                    "load_relation() takes a relation such as ref('model'), not `{relation}`"
                )))
            }
        },
    };
    get_relation(&rs, unquote(&schema), unquote(&ident))
}

pub(super) fn get_relation(rs: &RenderState, schema: &str, ident: &str) -> Result<Value, Error> {
    let Some(i) = rs.introspect.as_ref() else {
        return Ok(Value::from(()));
    };
    match i
        .columns(schema, ident)
        .map_err(|e| user_error(e.to_string()))?
    {
        Some(_) => Ok(Value::from_object(Relation {
            database: None,
            schema: Some(schema.to_string()),
            identifier: ident.to_string(),
            kind: Some("table".into()),
            text: None,
        })),
        None => Ok(Value::from(())),
    }
}

// ---------------------------------------------------------------------------
// Query results (agate tables)

/// A query result as dbt's agate table: `.rows`, `.columns`, `.column_names`.
#[derive(Debug)]
pub struct Table {
    names: Vec<String>,
    types: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    fn from_result(r: QueryResult) -> Table {
        Table {
            names: r.columns.iter().map(|(n, _)| n.clone()).collect(),
            types: r.columns.iter().map(|(_, t)| t.clone()).collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.iter().map(Value::from_serialize).collect())
                .collect(),
        }
    }

    fn row_values(self: &Arc<Self>) -> Value {
        Value::from_iter((0..self.rows.len()).map(|i| {
            Value::from_object(Row {
                table: self.clone(),
                index: i,
            })
        }))
    }

    fn column_value(self: &Arc<Self>, c: usize) -> Value {
        Value::from_object(TableColumn {
            table: self.clone(),
            index: c,
        })
    }

    fn column_index(&self, key: &Value) -> Option<usize> {
        if let Some(i) = key.as_i64() {
            let n = self.names.len() as i64;
            let i = if i < 0 { n + i } else { i };
            return (0..n).contains(&i).then_some(i as usize);
        }
        let name = key.as_str()?;
        self.names.iter().position(|n| n == name)
    }
}

impl Object for Table {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "rows" => self.row_values(),
            "columns" => Value::from_object(Columns {
                table: self.clone(),
            }),
            "column_names" => Value::from_iter(self.names.iter().map(|n| Value::from(n.as_str()))),
            "column_types" => Value::from_iter(self.types.iter().map(|n| Value::from(n.as_str()))),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            (0..self.rows.len())
                .map(|i| {
                    Value::from_object(Row {
                        table: self.clone(),
                        index: i,
                    })
                })
                .collect(),
        )
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.rows.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "print_table" => Ok(Value::from("")),
            _ => Err(user_error(format!(
                "a query result has no method `{method}`"
            ))),
        }
    }
}

#[derive(Debug)]
struct Columns {
    table: Arc<Table>,
}

impl Object for Columns {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let c = self.table.column_index(key)?;
        Some(self.table.column_value(c))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.table.names.len())
    }
}

#[derive(Debug)]
struct TableColumn {
    table: Arc<Table>,
    index: usize,
}

impl TableColumn {
    fn values(&self) -> Value {
        Value::from_iter(
            self.table
                .rows
                .iter()
                .map(|r| r.get(self.index).cloned().unwrap_or(Value::from(()))),
        )
    }
}

impl Object for TableColumn {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "name" => Value::from(self.table.names[self.index].as_str()),
            "data_type" => Value::from(self.table.types[self.index].as_str()),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "values" | "values_distinct" | "values_without_nulls" => {
                let mut v: Vec<Value> = self.values().try_iter()?.collect();
                if method == "values_without_nulls" {
                    v.retain(|x| !x.is_none());
                }
                if method == "values_distinct" {
                    let mut seen = Vec::new();
                    v.retain(|x| {
                        let new = !seen.contains(x);
                        if new {
                            seen.push(x.clone());
                        }
                        new
                    });
                }
                Ok(Value::from(v))
            }
            _ => Err(user_error(format!(
                "a result column has no method `{method}`"
            ))),
        }
    }
}

#[derive(Debug)]
struct Row {
    table: Arc<Table>,
    index: usize,
}

impl Object for Row {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let c = self.table.column_index(key)?;
        self.table.rows.get(self.index)?.get(c).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.table.names.len())
    }
}

fn run(rs: &RenderState, sql: &str) -> Result<Value, Error> {
    let Some(i) = rs.introspect.as_ref() else {
        return Err(user_error(
            "run_query() needs the warehouse, which is not available here".into(),
        ));
    };
    let result = i.query(sql).map_err(|e| {
        user_error(format!(
            "run_query failed: {e}\n  query: {}",
            sql.trim().lines().take(5).collect::<Vec<_>>().join(" ")
        ))
    })?;
    Ok(Value::from_object(Table::from_result(result)))
}

/// `run_query(sql)`: an agate-like table, or none when not executing.
pub(super) fn run_query(state: &State, sql: Value) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    if !rs.execute {
        return Ok(Value::from(()));
    }
    run(&rs, &sql.to_string())
}

/// `statement` macro's body: runs the SQL and stores the result under `name`.
pub(super) fn statement(
    state: &State,
    name: Option<String>,
    sql: Value,
    fetch_result: Option<bool>,
) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    if !rs.execute {
        return Ok(Value::from(""));
    }
    let table = run(&rs, &sql.to_string())?;
    if let Some(name) = name {
        let data = if fetch_result.unwrap_or(false) {
            table.get_attr("rows")?
        } else {
            Value::from(Vec::<Value>::new())
        };
        let result = Value::from_iter([
            ("data", data),
            ("table", table),
            (
                "response",
                Value::from_iter([("_message", "OK"), ("code", "SELECT")]),
            ),
        ]);
        lock(&rs.results).insert(name, result);
    }
    Ok(Value::from(""))
}

/// `load_result(name)`.
pub(super) fn load_result(state: &State, name: String) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    let r = lock(&rs.results).get(&name).cloned();
    Ok(match r {
        Some(r) => r,
        // While parsing (`execute` false) statements do not run.
        None if !rs.execute => Value::from_iter([
            ("data", Value::from(Vec::<Value>::new())),
            (
                "table",
                Value::from_object(Table {
                    names: Vec::new(),
                    types: Vec::new(),
                    rows: Vec::new(),
                }),
            ),
            ("response", Value::from(())),
        ]),
        None => Value::from(()),
    })
}

/// `store_result(name, response, agate_table)`.
pub(super) fn store_result(
    state: &State,
    name: String,
    response: Option<Value>,
    table: Option<Value>,
) -> Result<Value, Error> {
    let rs = RenderState::of(state)?;
    let result = Value::from_iter([
        ("response", response.unwrap_or(Value::from(()))),
        ("table", table.clone().unwrap_or(Value::from(()))),
        (
            "data",
            table
                .and_then(|t| t.get_attr("rows").ok())
                .unwrap_or(Value::from(())),
        ),
    ]);
    lock(&rs.results).insert(name, result);
    Ok(Value::from(""))
}
