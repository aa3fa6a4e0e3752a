//! Name resolution for models and tests: what a table name in a model's SQL
//! refers to (a model, an existing table or view, a source, a seed), with the
//! suggestions shown when it is none of them.

use super::jinja;
use crate::error::{did_you_mean, Error, Object, Result};
use crate::sql::deps::Relation;
use crate::warehouse::Warehouse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How names resolve (shared by models and tests).
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) default_schema: String,
    pub(crate) by_id: HashMap<String, usize>,
    pub(crate) by_bare: HashMap<String, Vec<usize>>,
    pub(crate) ids: Vec<String>,
    pub(crate) ephemeral: Vec<bool>,
    /// CTE name of each ephemeral model (what `ref()` renders for it).
    pub(crate) by_cte: HashMap<String, usize>,
    pub(crate) disabled: HashSet<String>,
    /// sluice catalog sources by name → target.
    pub(crate) sources: HashMap<String, (String, String)>,
    /// dbt `sources:` (source, table) → relation.
    pub(crate) yml_sources: HashMap<(String, String), (String, String)>,
    /// Seeds and snapshots by name → their table (`ref('seed')` and
    /// `ref('snapshot')` work, as in dbt).
    pub(crate) seeds: HashMap<String, (String, String)>,
    /// The project's macro library (root project, packages, dbt built-ins).
    pub(crate) library: Option<Arc<jinja::MacroLibrary>>,
    /// The warehouse for `run_query` and introspection at compile time.
    pub(crate) introspect: Option<Arc<dyn jinja::Introspect>>,
    /// dbt's `graph` (nodes and sources), as templates see it: converted
    /// once (a template value is shared, not copied, by every render).
    pub(crate) graph: Option<minijinja::Value>,
}

/// Why a name in a model's SQL or a `ref()` does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    /// `ref('x')` where `x` is the bare name of several models.
    #[error("`{name}` is ambiguous: it names {}; use ref('schema.name')", quoted(.ids))]
    AmbiguousRef { name: String, ids: Vec<String> },
    /// `ref('x')` of a model with `enabled=false`.
    #[error("model `{0}` is disabled (enabled=false)")]
    Disabled(String),
    /// `ref('x')` where no model is `x`.
    #[error("no model named `{name}`{hint}")]
    NoModel { name: String, hint: String },
    /// A bare table name that is the name of several models.
    #[error("table `{name}` is ambiguous: it names {}; qualify it", quoted(.ids))]
    AmbiguousTable { name: String, ids: Vec<String> },
    /// A table that is no model, stored table or declared source.
    #[error(
        "references unknown table `{name}`{hint}: it is not a model, an existing table or a declared source{}",
        if .hint.is_empty() { " (load it with `sluice load`, or add a model or seed)" } else { "" }
    )]
    UnknownTable { name: String, hint: String },
    /// More than `schema.table`.
    #[error("`{0}` is not a table of the warehouse (use `schema.table`)")]
    NotATable(String),
}

fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(" and ")
}

impl From<NameError> for Error {
    fn from(e: NameError) -> Self {
        let object = match &e {
            NameError::Disabled(_) | NameError::NoModel { .. } => Object::Model,
            NameError::UnknownTable { .. } => Object::Table,
            NameError::AmbiguousRef { .. }
            | NameError::AmbiguousTable { .. }
            | NameError::NotATable(_) => return Error::Sql(e.to_string()),
        };
        Error::not_found(object, e.to_string())
    }
}

/// What a name in a model's SQL is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Model(usize),
    /// A table or view that exists (or a declared source), not built by a model.
    External(String, String),
    /// Not a table (a file path, `information_schema`).
    Ignore,
}

impl Names {
    /// The model `name` names (an id or a unique bare name), without the
    /// error's "did you mean" (a seed's name is no model, and is looked up
    /// for every `ref()` of it).
    pub(crate) fn find_model(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.by_id.get(name) {
            return Some(*i);
        }
        if let Some(i) = self.by_id.get(&format!("{}.{name}", self.default_schema)) {
            return Some(*i);
        }
        match self.by_bare.get(name).map(Vec::as_slice) {
            Some([i]) => Some(*i),
            _ => None,
        }
    }

    /// `ref('x')`: a model id or a unique bare name.
    pub(crate) fn lookup_model(&self, name: &str) -> std::result::Result<usize, NameError> {
        if let Some(i) = self.by_id.get(name) {
            return Ok(*i);
        }
        if let Some(i) = self.by_id.get(&format!("{}.{name}", self.default_schema)) {
            return Ok(*i);
        }
        match self.by_bare.get(name).map(Vec::as_slice) {
            Some([i]) => Ok(*i),
            Some(many) if !many.is_empty() => Err(NameError::AmbiguousRef {
                name: name.to_string(),
                ids: many.iter().map(|i| self.ids[*i].clone()).collect(),
            }),
            _ => {
                if self.disabled.contains(name) {
                    return Err(NameError::Disabled(name.to_string()));
                }
                Err(NameError::NoModel {
                    name: name.to_string(),
                    hint: did_you_mean(
                        name,
                        self.by_bare
                            .keys()
                            .map(String::as_str)
                            .chain(self.ids.iter().map(String::as_str)),
                    ),
                })
            }
        }
    }

    /// Resolves a relation of a model's SQL. `exists` tells whether a stored
    /// table or view exists.
    pub(crate) fn resolve(
        &self,
        rel: &Relation,
        exists: &dyn Fn(&str, &str) -> bool,
    ) -> std::result::Result<Target, NameError> {
        let parts: &[String] = match rel.parts.as_slice() {
            [c, rest @ ..] if rest.len() == 2 && c == crate::sql::CATALOG => rest,
            p => p,
        };
        match parts {
            [one] => {
                if one.contains('/') || one.contains('.') {
                    return Ok(Target::Ignore);
                }
                let id = format!("{}.{one}", self.default_schema);
                if let Some(i) = self.by_id.get(&id).or_else(|| self.by_cte.get(one)) {
                    return Ok(Target::Model(*i));
                }
                if exists(&self.default_schema, one) {
                    return Ok(Target::External(self.default_schema.clone(), one.clone()));
                }
                match self.by_bare.get(one).map(Vec::as_slice) {
                    Some([i]) => return Ok(Target::Model(*i)),
                    Some(many) if many.len() > 1 => {
                        return Err(NameError::AmbiguousTable {
                            name: one.clone(),
                            ids: many.iter().map(|i| self.ids[*i].clone()).collect(),
                        })
                    }
                    _ => {}
                }
                if let Some((s, t)) = self.sources.get(one).or_else(|| self.seeds.get(one)) {
                    return Ok(Target::External(s.clone(), t.clone()));
                }
                Err(self.unknown(&rel.display()))
            }
            [schema, table] => {
                if schema == "information_schema" {
                    return Ok(Target::Ignore);
                }
                if let Some(i) = self.by_id.get(&format!("{schema}.{table}")) {
                    return Ok(Target::Model(*i));
                }
                if exists(schema, table)
                    || self
                        .sources
                        .values()
                        .any(|(s, t)| s == schema && t == table)
                    || self
                        .yml_sources
                        .values()
                        .chain(self.seeds.values())
                        .any(|(s, t)| s == schema && t == table)
                {
                    return Ok(Target::External(schema.clone(), table.clone()));
                }
                Err(self.unknown(&rel.display()))
            }
            _ => Err(NameError::NotATable(rel.display())),
        }
    }

    pub(crate) fn unknown(&self, name: &str) -> NameError {
        let mut candidates: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        candidates.extend(self.by_bare.keys().map(String::as_str));
        let source_targets: Vec<String> = self
            .sources
            .values()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        candidates.extend(source_targets.iter().map(String::as_str));
        NameError::UnknownTable {
            name: name.to_string(),
            hint: did_you_mean(name, candidates),
        }
    }

    /// `ref('x')` as SQL text: a model's relation, else a seed's table.
    pub(crate) fn ref_text(&self, name: &str) -> std::result::Result<String, NameError> {
        if let Some(i) = self.find_model(name) {
            return Ok(self.relation_text(i));
        }
        if let Some((s, t)) = self.seeds.get(name) {
            return Ok(format!("{s}.{t}"));
        }
        self.lookup_model(name).map(|i| self.relation_text(i))
    }

    pub(crate) fn relation_text(&self, i: usize) -> String {
        if self.ephemeral[i] {
            ephemeral_cte(&self.ids[i])
        } else {
            self.ids[i].clone()
        }
    }
}

/// The CTE name an ephemeral model is inlined as.
pub(crate) fn ephemeral_cte(id: &str) -> String {
    format!("__sluice_ephemeral__{}", id.replace('.', "__"))
}

/// Remembers which stored tables and views exist.
pub(crate) struct ExistsCache<'w> {
    pub(crate) warehouse: &'w Warehouse,
    pub(crate) known: HashMap<(String, String), bool>,
}

impl<'w> ExistsCache<'w> {
    pub(crate) fn new(warehouse: &'w Warehouse) -> Self {
        ExistsCache {
            warehouse,
            known: HashMap::new(),
        }
    }

    pub(crate) async fn table_exists(&mut self, schema: &str, table: &str) -> Result<bool> {
        let key = (schema.to_string(), table.to_string());
        if let Some(k) = self.known.get(&key) {
            return Ok(*k);
        }
        let e = self.warehouse.relation_exists(schema, table).await?;
        self.known.insert(key, e);
        Ok(e)
    }

    /// Probes the table a relation could be when it is not a model.
    pub(crate) async fn probe(&mut self, names: &Names, rel: &Relation) -> Result<()> {
        let parts: &[String] = match rel.parts.as_slice() {
            [c, rest @ ..] if rest.len() == 2 && c == crate::sql::CATALOG => rest,
            p => p,
        };
        match parts {
            [one] if !one.contains('/') && !one.contains('.') => {
                let id = format!("{}.{one}", names.default_schema);
                if !names.by_id.contains_key(&id) {
                    self.table_exists(&names.default_schema, one).await?;
                }
            }
            [s, t]
                if s != "information_schema" && !names.by_id.contains_key(&format!("{s}.{t}")) =>
            {
                self.table_exists(s, t).await?;
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn known(&self, schema: &str, table: &str) -> bool {
        self.known
            .get(&(schema.to_string(), table.to_string()))
            .copied()
            .unwrap_or(false)
    }
}
