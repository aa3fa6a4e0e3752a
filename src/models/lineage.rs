//! Column-level lineage of a project: every model column's upstream columns,
//! through other models down to sources, tables and files, with the kind of
//! dependency (see [`crate::sql::lineage`]).
//!
//! Each model's SQL is planned by the engine (our front end: AS OF joins,
//! `historical_features`, time travel) and its plan walked. Models are
//! planned in dependency order; a model whose table is not built yet is
//! planned against the columns its own plan has (an empty table of that
//! shape), so a project can be traced before its first run as long as its
//! sources exist. Ephemeral models are inlined where they are read, so the
//! columns of the models reading them trace through them to what they read.

use super::compile::Compiled;
use super::config::Materialization;
use crate::error::{Error, Object, Result};
use crate::sql::lineage::{Deps, Kind, LineageWalker};
use crate::sql::Engine;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::{MemTable, TableProvider};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

/// The lineage of one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelLineage {
    /// `schema.table`.
    pub relation: String,
    /// The bare model name.
    pub name: String,
    /// Output columns with their direct origins (row filters included as
    /// `filter`), in the model's column order.
    pub columns: Vec<(String, Deps)>,
    /// The columns' types, as the plan gives them.
    pub types: Vec<String>,
    /// Relations the model's query reads directly (tables, views, ephemeral
    /// models, files), itself excluded.
    pub reads: Vec<String>,
    /// Why the model could not be traced (its columns are then empty).
    pub error: Option<String>,
    /// Feature columns when the model is a feature view.
    pub features: Vec<String>,
    /// Not stored: inlined into the models that read it.
    pub ephemeral: bool,
}

/// One step of a traced path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub relation: String,
    pub column: String,
    /// The kind of the whole path from the start column (upstream) or to
    /// the reached column (downstream).
    pub kind: Kind,
    /// Steps from the start column.
    pub depth: usize,
    /// The column this hop was reached from (`relation.column`).
    pub via: String,
    /// Whether `relation` is a model of the project (else a source, table
    /// or files).
    pub is_model: bool,
    /// Whether the column is a feature of a feature view.
    pub is_feature: bool,
}

/// Lineage of every model of a project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectLineage {
    pub models: BTreeMap<String, ModelLineage>,
}

/// Serves a schema's tables, and for tables that do not exist yet, empty
/// tables with the columns their models' plans give.
#[derive(Debug)]
struct Overlay {
    base: Option<Arc<dyn SchemaProvider>>,
    planned: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    /// Serve a model's planned columns before its stored table (planning
    /// needs only columns: this saves loading every table's Delta log); off
    /// for a second attempt when a model does not plan that way.
    prefer_planned: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl SchemaProvider for Overlay {
    fn table_names(&self) -> Vec<String> {
        let mut names = self
            .base
            .as_ref()
            .map(|b| b.table_names())
            .unwrap_or_default();
        if let Ok(p) = self.planned.read() {
            names.extend(p.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if self
            .prefer_planned
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            if let Some(t) = self.planned.read().ok().and_then(|p| p.get(name).cloned()) {
                return Ok(Some(t));
            }
        }
        if let Some(base) = &self.base {
            if let Ok(Some(t)) = base.table(name).await {
                return Ok(Some(t));
            }
        }
        Ok(self.planned.read().ok().and_then(|p| p.get(name).cloned()))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.base.as_ref().is_some_and(|b| b.table_exist(name))
            || self.planned.read().is_ok_and(|p| p.contains_key(name))
    }
}

/// Traces every model of `compiled`. `engine` must be one of its own: it
/// learns the planned columns of models that are not built yet.
pub async fn project_lineage(compiled: &Compiled, engine: &Engine) -> Result<ProjectLineage> {
    let leaves: BTreeSet<String> = compiled
        .models
        .iter()
        .filter(|m| m.config.materialized != Materialization::Ephemeral)
        .map(|m| m.id())
        .collect();
    let mut overlays: HashMap<String, Arc<Overlay>> = HashMap::new();
    let prefer_planned = Arc::new(std::sync::atomic::AtomicBool::new(true));
    for m in &compiled.models {
        if overlays.contains_key(&m.schema) {
            continue;
        }
        let base = engine.catalog().schema(&m.schema);
        let o = Arc::new(Overlay {
            base,
            planned: RwLock::new(HashMap::new()),
            prefer_planned: prefer_planned.clone(),
        });
        engine.catalog().set_extra_schema(&m.schema, o.clone());
        overlays.insert(m.schema.clone(), o);
    }
    let mut out = ProjectLineage::default();
    for i in compiled.dag.topo_order() {
        let Some(m) = compiled.models.get(i) else {
            continue;
        };
        let features = m
            .config
            .feature_view
            .as_ref()
            .map(|fv| (fv.entities.clone(), fv.event_timestamp.clone()));
        let mut ml = ModelLineage {
            relation: m.id(),
            name: m.name.clone(),
            columns: Vec::new(),
            types: Vec::new(),
            reads: Vec::new(),
            error: None,
            features: Vec::new(),
            ephemeral: m.config.materialized == Materialization::Ephemeral,
        };
        // Against the upstream models' planned columns first; against their
        // stored tables when that does not plan (a stored type differs).
        let mut planned = engine.plan(&m.sql).await;
        if planned.is_err() {
            prefer_planned.store(false, std::sync::atomic::Ordering::Relaxed);
            planned = engine.plan(&m.sql).await;
            prefer_planned.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match planned {
            Ok(plan) => {
                let state = engine.context().state();
                let walker = LineageWalker {
                    state: &state,
                    leaves: &leaves,
                    default_schema: engine.default_schema(),
                    reads: Default::default(),
                };
                ml.types = plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect();
                match walker.lineage(&plan).await {
                    Ok(l) => {
                        // An incremental model reads itself (`{{ this }}`):
                        // not an origin of its own columns.
                        let me = m.id();
                        ml.columns = l
                            .resolved()
                            .into_iter()
                            .map(|(c, mut d)| {
                                d.retain(|o, _| o.relation != me);
                                (c, d)
                            })
                            .collect();
                    }
                    Err(e) => ml.error = Some(e.to_string()),
                }
                ml.reads = walker
                    .reads
                    .lock()
                    .map(|r| r.iter().filter(|r| **r != m.id()).cloned().collect())
                    .unwrap_or_default();
                if let Some((entities, ts)) = &features {
                    ml.features = ml
                        .columns
                        .iter()
                        .map(|(c, _)| c.clone())
                        .filter(|c| !entities.contains(c) && c != ts)
                        .collect();
                }
                if let Some(o) = overlays.get(&m.schema) {
                    let schema = plan.schema().as_arrow().clone();
                    if let Ok(t) = MemTable::try_new(Arc::new(schema), vec![vec![]]) {
                        if let Ok(mut p) = o.planned.write() {
                            p.insert(m.table.clone(), Arc::new(t));
                        }
                    }
                }
            }
            Err(e) => ml.error = Some(e.to_string()),
        }
        out.models.insert(ml.relation.clone(), ml);
    }
    Ok(out)
}

/// `MODEL.COLUMN` / `schema.table.column` split into a relation and a column
/// of this project (a relation that is not a model is taken as written:
/// sources and other tables).
pub fn resolve_column(
    compiled: &Compiled,
    lineage: &ProjectLineage,
    spec: &str,
) -> Result<(String, String)> {
    let Some((rel, column)) = spec.rsplit_once('.') else {
        return Err(Error::Usage(format!(
            "`{spec}` names no column: write MODEL.COLUMN (`orders.amount`) or schema.table.column (`raw.transactions.amount`)"
        )));
    };
    let relation = match compiled.find(rel) {
        Ok(i) => compiled.models[i].id(),
        Err(_) if rel.contains('.') => rel.to_string(),
        Err(e) => return Err(e),
    };
    if let Some(m) = lineage.models.get(&relation) {
        if m.error.is_none() && !m.columns.iter().any(|(c, _)| c == column) {
            let hint =
                crate::error::did_you_mean(column, m.columns.iter().map(|(c, _)| c.as_str()));
            return Err(Error::not_found(
                Object::Column,
                format!("model `{}` has no column `{column}`{hint}", m.name),
            ));
        }
    } else if !lineage.models.values().any(|m| {
        m.columns.iter().any(|(_, d)| {
            d.keys()
                .any(|o| o.relation == relation && o.column == column)
        })
    }) {
        return Err(Error::not_found(
            Object::Column,
            format!("no model reads `{relation}.{column}` (and `{relation}` is not a model of this project)"),
        ));
    }
    Ok((relation, column.to_string()))
}

/// The columns that read one column: `(relation, column, kind)`.
type Reads<'a> = Vec<(&'a str, &'a str, Kind)>;

impl ProjectLineage {
    fn is_feature(&self, relation: &str, column: &str) -> bool {
        self.models
            .get(relation)
            .is_some_and(|m| m.features.iter().any(|f| f == column))
    }

    /// The direct origins of `relation.column` with ephemeral models looked
    /// through (they are not stored: their own origins, kinds composed).
    pub fn stored_deps(&self, relation: &str, column: &str) -> Deps {
        let mut out = Deps::new();
        let mut stack: Vec<(String, String, Kind)> =
            vec![(relation.to_string(), column.to_string(), Kind::Copied)];
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        while let Some((rel, col, kind)) = stack.pop() {
            let Some(m) = self.models.get(&rel) else {
                continue;
            };
            let Some((_, deps)) = m.columns.iter().find(|(c, _)| *c == col) else {
                continue;
            };
            for (o, k) in deps {
                let path = k.then(kind);
                if self.models.get(&o.relation).is_some_and(|x| x.ephemeral) {
                    if seen.insert((o.relation.clone(), o.column.clone())) {
                        stack.push((o.relation.clone(), o.column.clone(), path));
                    }
                } else {
                    let e = out.entry(o.clone()).or_insert(path);
                    if path > *e {
                        *e = path;
                    }
                }
            }
        }
        out
    }

    /// Every column `relation.column` is computed from, each once, with the
    /// strongest kind over all the paths to it (a value dependency wins over
    /// a filter one) and the column it is reached from on that path.
    pub fn upstream(&self, relation: &str, column: &str) -> Vec<Hop> {
        self.traverse(relation, column, |rel, col| {
            self.models
                .get(rel)
                .and_then(|m| m.columns.iter().find(|(c, _)| c == col))
                .map(|(_, deps)| {
                    deps.iter()
                        .map(|(o, k)| (o.relation.clone(), o.column.clone(), *k))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Every model column computed from `relation.column`, as [`Self::upstream`].
    pub fn downstream(&self, relation: &str, column: &str) -> Vec<Hop> {
        let mut rev: HashMap<(&str, &str), Reads> = HashMap::new();
        for m in self.models.values() {
            for (c, deps) in &m.columns {
                for (o, k) in deps {
                    rev.entry((o.relation.as_str(), o.column.as_str()))
                        .or_default()
                        .push((m.relation.as_str(), c.as_str(), *k));
                }
            }
        }
        self.traverse(relation, column, |rel, col| {
            rev.get(&(rel, col))
                .map(|v| {
                    v.iter()
                        .map(|&(r, c, k)| (r.to_string(), c.to_string(), k))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Breadth first from `relation.column` over `next` (the columns one step
    /// away and the kind of that step). A column found again by a path of a
    /// stronger kind takes that kind and that path, and is walked again from
    /// (kinds only grow, so this ends).
    fn traverse(
        &self,
        relation: &str,
        column: &str,
        next: impl Fn(&str, &str) -> Vec<(String, String, Kind)>,
    ) -> Vec<Hop> {
        let start = (relation.to_string(), column.to_string());
        let mut order: Vec<(String, String)> = Vec::new();
        let mut best: HashMap<(String, String), (Kind, usize, String)> = HashMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(at) = queue.pop_front() {
            let (kind, depth) = if at == start {
                (Kind::Copied, 0)
            } else {
                match best.get(&at) {
                    Some((k, d, _)) => (*k, *d),
                    None => continue,
                }
            };
            for (r, c, step) in next(&at.0, &at.1) {
                let key = (r, c);
                if key == start {
                    continue;
                }
                let path = step.then(kind);
                let via = format!("{}.{}", at.0, at.1);
                match best.get_mut(&key) {
                    None => {
                        best.insert(key.clone(), (path, depth + 1, via));
                        order.push(key.clone());
                        queue.push_back(key);
                    }
                    Some(b) if path > b.0 => {
                        *b = (path, depth + 1, via);
                        queue.push_back(key);
                    }
                    Some(_) => {}
                }
            }
        }
        order
            .into_iter()
            .filter_map(|key| {
                let (kind, depth, via) = best.remove(&key)?;
                Some(Hop {
                    is_model: self.models.contains_key(&key.0),
                    is_feature: self.is_feature(&key.0, &key.1),
                    relation: key.0,
                    column: key.1,
                    kind,
                    depth,
                    via,
                })
            })
            .collect()
    }
}

/// Text: one line per column reached, indented by depth under the column it
/// was reached from.
pub fn render_text(start: &str, up: Option<&[Hop]>, down: Option<&[Hop]>) -> String {
    let mut s = String::new();
    s.push_str(start);
    s.push('\n');
    let mut section = |title: &str, hops: &[Hop], arrow: &str| {
        s.push_str(&format!("{title}:\n"));
        if hops.is_empty() {
            s.push_str("  (none)\n");
        }
        // Children of each `via`, in order.
        let mut children: BTreeMap<&str, Vec<&Hop>> = BTreeMap::new();
        for h in hops {
            children.entry(h.via.as_str()).or_default().push(h);
        }
        let mut stack: Vec<(&Hop, usize)> = children
            .get(start)
            .map(|v| v.iter().rev().map(|h| (*h, 1)).collect())
            .unwrap_or_default();
        let mut shown: BTreeSet<String> = BTreeSet::new();
        while let Some((h, indent)) = stack.pop() {
            let name = format!("{}.{}", h.relation, h.column);
            if !shown.insert(name.clone()) {
                continue;
            }
            let mut tags = vec![h.kind.as_str().to_string()];
            if !h.is_model {
                tags.push("source".into());
            }
            if h.is_feature {
                tags.push("feature".into());
            }
            s.push_str(&format!(
                "{}{arrow} {name} ({})\n",
                "  ".repeat(indent),
                tags.join(", ")
            ));
            if let Some(v) = children.get(name.as_str()) {
                for c in v.iter().rev() {
                    stack.push((c, indent + 1));
                }
            }
        }
    };
    if let Some(up) = up {
        section("upstream", up, "←");
    }
    if let Some(down) = down {
        section("downstream", down, "→");
    }
    s
}

/// Graphviz: the start column and every hop, edges labelled with the kind of
/// the step.
pub fn render_dot(start: &str, up: Option<&[Hop]>, down: Option<&[Hop]>) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut s = String::from("digraph column_lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    s.push_str(&format!("  {} [style=bold];\n", q(start)));
    for h in up.unwrap_or_default() {
        let name = format!("{}.{}", h.relation, h.column);
        s.push_str(&format!(
            "  {} -> {} [label={}];\n",
            q(&name),
            q(&h.via),
            q(h.kind.as_str())
        ));
    }
    for h in down.unwrap_or_default() {
        let name = format!("{}.{}", h.relation, h.column);
        s.push_str(&format!(
            "  {} -> {} [label={}];\n",
            q(&h.via),
            q(&name),
            q(h.kind.as_str())
        ));
    }
    s.push_str("}\n");
    s
}

/// JSON: `{"column", "upstream": [...], "downstream": [...]}`.
pub fn render_json(start: &str, up: Option<&[Hop]>, down: Option<&[Hop]>) -> String {
    let mut v = serde_json::json!({ "column": start });
    if let Some(up) = up {
        v["upstream"] = serde_json::to_value(up).unwrap_or_default();
    }
    if let Some(down) = down {
        v["downstream"] = serde_json::to_value(down).unwrap_or_default();
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
