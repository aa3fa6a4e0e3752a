//! `sluice docs generate` / `sluice docs serve`: a static site of the project
//! (as `dbt docs`): the graph of sources, models, seeds, snapshots and
//! feature views; each node's SQL, columns (types from the planned query,
//! descriptions from `schema.yml`), column lineage, data tests with their
//! history, Delta versions, run history, source freshness and loads.
//!
//! The site is four files: `index.html`, `app.css`, `app.js` (our own code,
//! no third-party library, nothing fetched: it works from `file://`) and
//! `data.js` (`window.SLUICE_DOCS = {...}`, the facts below).

pub mod serve;

use crate::error::{Error, Result};
use crate::models::compile::Compiled;
use crate::models::lineage::{project_lineage, ProjectLineage};
use crate::models::records::RunRecord;
use crate::models::CompileOptions;
use crate::project::Project;
use crate::sql::Engine;
use crate::warehouse::CommitRecord;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

const INDEX_HTML: &str = include_str!("site/index.html");
const APP_JS: &str = include_str!("site/app.js");
const APP_CSS: &str = include_str!("site/app.css");

/// Versions and runs kept per node.
const KEEP: usize = 30;

/// What `generate` wrote.
#[derive(Debug, Clone)]
pub struct DocsSummary {
    pub out: PathBuf,
    pub nodes: usize,
    pub edges: usize,
    pub columns: usize,
    /// Column lineage entries (a column and its direct upstream columns).
    pub lineage: usize,
    /// Models that could not be traced (their error is in the site).
    pub untraced: Vec<(String, String)>,
    pub seconds: f64,
}

/// Status words of the site: pass / fail / error / warn / skipped.
fn test_status(s: &str) -> &str {
    match s {
        "success" | "pass" => "pass",
        "fail" => "fail",
        "warn" => "warn",
        "skipped" => "skipped",
        _ => "error",
    }
}

struct NodeBuilder {
    nodes: BTreeMap<String, Value>,
    /// `schema.table` → node id.
    by_relation: HashMap<String, String>,
}

impl NodeBuilder {
    fn add(&mut self, id: String, relation: Option<String>, node: Value) {
        if let Some(r) = relation {
            self.by_relation.entry(r).or_insert_with(|| id.clone());
        }
        self.nodes.entry(id).or_insert(node);
    }

    /// The node of a relation, a `source` node made for it when none exists
    /// (a table or files models read that no declaration names).
    fn of_relation(&mut self, relation: &str) -> String {
        if let Some(id) = self.by_relation.get(relation) {
            return id.clone();
        }
        let id = format!("source.{relation}");
        let (name, rel) = if relation.contains("://") || relation.starts_with('/') {
            (
                relation
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or(relation)
                    .to_string(),
                relation.to_string(),
            )
        } else {
            (
                relation.rsplit('.').next().unwrap_or(relation).to_string(),
                relation.to_string(),
            )
        };
        self.add(
            id.clone(),
            Some(relation.to_string()),
            json!({"id": id, "kind": "source", "name": name, "relation": rel, "description": "read by models; not declared as a source",
                   "columns": [], "tests": [], "versions": [], "runs": [], "loads": []}),
        );
        id
    }
}

/// Builds the site's data: every node with its facts, the edges and the
/// column lineage.
pub async fn site_data(
    project: &Project,
    engine: &Engine,
    options: &CompileOptions,
) -> Result<(Value, DocsSummary)> {
    let t0 = Instant::now();
    let phase =
        |name: &str| tracing::debug!("docs: {name} after {:.3}s", t0.elapsed().as_secs_f64());
    let compiled = crate::models::compile(project, engine, options).await?;
    phase("compile");
    let lineage = project_lineage(&compiled, engine).await?;
    phase("column lineage");
    let tests = crate::models::datatest::compile_tests(
        project,
        engine.warehouse(),
        &compiled,
        &options.vars,
    )
    .await
    .unwrap_or_else(|e| {
        tracing::warn!("docs: tests not compiled: {e}");
        Vec::new()
    });
    phase("tests");
    let runs = crate::models::records::read_runs(engine)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("docs: run history not read: {e}");
            Vec::new()
        });
    let mut b = NodeBuilder {
        nodes: BTreeMap::new(),
        by_relation: HashMap::new(),
    };
    model_nodes(&compiled, &lineage, &mut b);
    source_nodes(project, &compiled, &mut b);
    seed_and_snapshot_nodes(project, &compiled, options, &mut b);

    // Edges and column lineage (relations no node names become sources).
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for m in &compiled.models {
        let to = format!("model.{}", m.id());
        for &d in &m.deps {
            if let Some(up) = compiled.models.get(d) {
                edges.insert((format!("model.{}", up.id()), to.clone()));
            }
        }
        // What the query reads directly (ephemeral models and views as
        // nodes of their own, not what they read); the compiled inputs
        // when the model could not be traced.
        let reads: Vec<String> = match lineage.models.get(&m.id()) {
            Some(l) if l.error.is_none() => l.reads.clone(),
            _ => m.inputs.iter().map(|(s, t)| format!("{s}.{t}")).collect(),
        };
        for r in reads {
            let from = b.of_relation(&r);
            if from != to {
                edges.insert((from, to.clone()));
            }
        }
    }
    let mut column_lineage = Vec::new();
    for ml in lineage.models.values() {
        let node = format!("model.{}", ml.relation);
        for (col, deps) in &ml.columns {
            let mut inputs = Vec::new();
            for (o, k) in deps {
                let from = b.of_relation(&o.relation);
                inputs.push(json!({"node": from, "column": o.column, "kind": k.as_str()}));
            }
            if !inputs.is_empty() {
                column_lineage.push(json!({"node": node, "column": col, "inputs": inputs}));
            }
        }
    }
    // Source columns seen through lineage, so a source node lists what
    // models read of it.
    let mut source_cols: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ml in lineage.models.values() {
        for (_, deps) in &ml.columns {
            for o in deps.keys() {
                if !lineage.models.contains_key(&o.relation) {
                    source_cols
                        .entry(o.relation.clone())
                        .or_default()
                        .insert(o.column.clone());
                }
            }
        }
    }
    for (rel, cols) in &source_cols {
        let id = b.of_relation(rel);
        if let Some(Value::Array(c)) = b.nodes.get_mut(&id).and_then(|n| n.get_mut("columns")) {
            let known: BTreeSet<String> = c
                .iter()
                .filter_map(|x| x.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            for col in cols.difference(&known) {
                c.push(json!({"name": col, "type": null, "description": null}));
            }
        }
    }

    phase("runs and nodes");
    attach_online(engine, &lineage, &mut b).await;
    attach_tests(&compiled, &tests, &runs, &mut b);
    attach_runs(&runs, &mut b);
    attach_versions(engine, &mut b).await;
    phase("versions");
    attach_freshness(project, engine, &mut b).await;
    phase("freshness");

    let untraced: Vec<(String, String)> = lineage
        .models
        .values()
        .filter_map(|m| m.error.clone().map(|e| (m.relation.clone(), e)))
        .collect();
    let columns = b
        .nodes
        .values()
        .map(|n| {
            n.get("columns")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    let data = json!({
        "project": project.settings.name,
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "sluice_version": env!("CARGO_PKG_VERSION"),
        "nodes": b.nodes.values().collect::<Vec<_>>(),
        "edges": edges.iter().map(|(f, t)| json!({"from": f, "to": t})).collect::<Vec<_>>(),
        "column_lineage": column_lineage,
    });
    let summary = DocsSummary {
        out: PathBuf::new(),
        nodes: b.nodes.len(),
        edges: edges.len(),
        columns,
        lineage: data["column_lineage"].as_array().map_or(0, Vec::len),
        untraced,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((data, summary))
}

fn model_nodes(compiled: &Compiled, lineage: &ProjectLineage, b: &mut NodeBuilder) {
    for m in &compiled.models {
        let id = format!("model.{}", m.id());
        let docs: HashMap<&str, Option<&str>> = m
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.description.as_deref()))
            .collect();
        let ml = lineage.models.get(&m.id());
        let mut columns: Vec<Value> = Vec::new();
        if let Some(ml) = ml {
            for ((name, _), ty) in ml.columns.iter().zip(ml.types.iter()) {
                columns.push(json!({"name": name, "type": ty, "description": docs.get(name.as_str()).copied().flatten()}));
            }
        }
        // Documented columns the query does not have (yet) still show.
        for c in &m.columns {
            if !columns.iter().any(|x| x["name"] == c.name.as_str()) {
                columns.push(json!({"name": c.name, "type": null, "description": c.description}));
            }
        }
        let file = m.file.display.clone();
        let feature_view = m.config.feature_view.as_ref().map(|fv| {
            json!({
                "entities": fv.entities,
                "event_timestamp": fv.event_timestamp,
                "ttl": fv.ttl,
                "features": ml.map(|l| l.features.clone()).unwrap_or_default(),
                "online": {"store": if fv.online { "configured, not materialized yet" } else { "none" }, "materialized_at": null, "entities": null},
                "stream": fv.stream,
            })
        });
        let kind = if feature_view.is_some() {
            "feature_view"
        } else {
            "model"
        };
        let materialized = m.config.materialized.to_string();
        let error = ml.and_then(|l| l.error.clone());
        b.add(
            id.clone(),
            Some(m.id()),
            json!({
                "id": id, "kind": kind, "name": m.name, "relation": m.id(), "file": file,
                "description": m.description, "materialized": materialized, "tags": m.config.tags,
                "raw_sql": m.file.text, "compiled_sql": m.sql, "columns": columns,
                "tests": [], "versions": [], "runs": [], "loads": [], "freshness": null,
                "feature_view": feature_view, "lineage_error": error,
            }),
        );
    }
}

fn source_nodes(project: &Project, compiled: &Compiled, b: &mut NodeBuilder) {
    for s in &project.sources {
        let relation = s.target_name();
        let id = format!("source.{relation}");
        b.add(
            id.clone(),
            Some(relation.clone()),
            json!({"id": id, "kind": "source", "name": s.name, "relation": relation,
                   "file": if s.location.is_empty() { Value::Null } else { Value::from(s.location.clone()) },
                   "description": format!("sluice load source ({:?}, {:?})", s.kind, s.format).to_lowercase(),
                   "columns": [], "tests": [], "versions": [], "runs": [], "loads": []}),
        );
    }
    for p in &compiled.properties {
        for s in &p.sources {
            let schema = s.schema.clone().unwrap_or_else(|| s.name.clone());
            for t in &s.tables {
                let relation = format!("{schema}.{}", t.identifier.as_deref().unwrap_or(&t.name));
                let id = format!("source.{relation}");
                let columns: Vec<Value> = t
                    .columns
                    .iter()
                    .map(|c| json!({"name": c.name, "type": null, "description": c.description}))
                    .collect();
                b.add(
                    id.clone(),
                    Some(relation.clone()),
                    json!({"id": id, "kind": "source", "name": format!("{}.{}", s.name, t.name), "relation": relation,
                           "description": null, "columns": columns, "tests": [], "versions": [], "runs": [], "loads": []}),
                );
            }
        }
    }
}

fn seed_and_snapshot_nodes(
    project: &Project,
    compiled: &Compiled,
    options: &CompileOptions,
    b: &mut NodeBuilder,
) {
    if let Ok(seeds) = crate::models::compile::named_seeds(project, &options.vars) {
        for s in seeds {
            let relation = format!("{}.{}", s.schema, s.name);
            let id = format!("seed.{relation}");
            let file = s
                .file
                .strip_prefix(&project.root)
                .unwrap_or(&s.file)
                .to_string_lossy()
                .into_owned();
            b.add(
                id.clone(),
                Some(relation.clone()),
                json!({"id": id, "kind": "seed", "name": s.name, "relation": relation, "file": file,
                       "columns": [], "tests": [], "versions": [], "runs": [], "loads": []}),
            );
        }
    }
    for s in &compiled.snapshots {
        let id = format!("snapshot.{}", s.id());
        b.add(
            id.clone(),
            Some(s.id()),
            json!({"id": id, "kind": "snapshot", "name": s.name, "relation": s.id(),
                   "columns": [], "tests": [], "versions": [], "runs": [], "loads": []}),
        );
    }
}

fn attach_tests(
    compiled: &Compiled,
    tests: &[crate::models::datatest::DataTest],
    runs: &[RunRecord],
    b: &mut NodeBuilder,
) {
    let mut history: HashMap<&str, Vec<&RunRecord>> = HashMap::new();
    for r in runs.iter().filter(|r| r.kind == "test") {
        history.entry(r.node.as_str()).or_default().push(r);
    }
    for t in tests {
        let Some(m) = t.model.and_then(|i| compiled.models.get(i)) else {
            continue;
        };
        let node = format!("model.{}", m.id());
        let h = history.get(t.name.as_str()).cloned().unwrap_or_default();
        let last = h.last();
        let entry = json!({
            "name": t.name, "kind": t.kind, "column": t.column,
            "status": last.map_or("never run", |r| test_status(&r.status)),
            "failures": last.and_then(|r| r.failures),
            "last_run": last.and_then(|r| r.started_at.clone()),
            "history": h.iter().rev().take(KEEP).rev().map(|r| json!({
                "at": r.started_at, "status": test_status(&r.status), "failures": r.failures, "run_id": r.run_id,
            })).collect::<Vec<_>>(),
        });
        if let Some(Value::Array(list)) = b.nodes.get_mut(&node).and_then(|n| n.get_mut("tests")) {
            list.push(entry);
        }
    }
}

/// The online state of each feature view: store, last materialization,
/// entities.
async fn attach_online(engine: &Engine, lineage: &ProjectLineage, b: &mut NodeBuilder) {
    let Ok(settings) = crate::features::settings(engine) else {
        return;
    };
    let store = match settings.online.backend() {
        crate::features::online::Backend::Embedded => "embedded",
        crate::features::online::Backend::Redis { .. } => "redis",
    };
    for ml in lineage.models.values() {
        let id = format!("model.{}", ml.relation);
        let Some(n) = b.nodes.get_mut(&id) else {
            continue;
        };
        if n["kind"] != "feature_view" {
            continue;
        }
        let state = settings.online.state(&ml.name).await.ok().flatten();
        n["feature_view"]["online"] = match state {
            Some(s) => {
                json!({"store": store, "materialized_at": s.materialized_at, "entities": s.entity_count,
                              "table_version": s.table_version})
            }
            // Never materialized: as configured (online: true or not).
            None => continue,
        };
    }
}

fn attach_runs(runs: &[RunRecord], b: &mut NodeBuilder) {
    let mut by_node: HashMap<&str, Vec<&RunRecord>> = HashMap::new();
    for r in runs.iter().filter(|r| r.kind != "test") {
        by_node.entry(r.node.as_str()).or_default().push(r);
    }
    for (relation, id) in b.by_relation.clone() {
        let Some(rs) = by_node.get(relation.as_str()) else {
            continue;
        };
        let list: Vec<Value> = rs
            .iter()
            .rev()
            .take(KEEP)
            .map(|r| json!({"run_id": r.run_id, "started_at": r.started_at, "seconds": r.seconds, "status": r.status, "rows": r.rows}))
            .collect();
        if let Some(n) = b.nodes.get_mut(&id) {
            n["runs"] = Value::Array(list);
        }
    }
}

/// Delta versions of every stored node (newest first), and for load sources
/// their loads with the rows they quarantined.
async fn attach_versions(engine: &Engine, b: &mut NodeBuilder) {
    let wh = engine.warehouse().clone();
    let targets: Vec<(String, String)> = b
        .by_relation
        .iter()
        .filter(|(r, _)| r.split('.').count() == 2 && !r.contains('/'))
        .map(|(r, id)| (r.clone(), id.clone()))
        .collect();
    type Found = (
        String,
        Option<Vec<CommitRecord>>,
        Option<datafusion::arrow::datatypes::SchemaRef>,
    );
    let results: Vec<Found> = futures::stream::iter(targets)
        .map(|(rel, id)| {
            let wh = wh.clone();
            async move {
                let Some((s, t)) = rel.split_once('.') else {
                    return (id, None, None);
                };
                // Models: their commits only, read from the log without
                // loading the table. Others: their columns too.
                if id.starts_with("model.") {
                    let Ok(handle) = wh.table_url(s, t).and_then(|u| wh.table_handle(&u)) else {
                        return (id, None, None);
                    };
                    let h = crate::warehouse::history_tail(&handle, KEEP).await.ok();
                    return (id, h.filter(|h| !h.is_empty()), None);
                }
                match wh.open_table(s, t).await {
                    Ok(Some(table)) => {
                        let schema = table.snapshot().ok().map(|s| s.snapshot().arrow_schema());
                        (
                            id,
                            crate::warehouse::history_tail(&table, KEEP).await.ok(),
                            schema,
                        )
                    }
                    _ => (id, None, None),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (id, h, schema) in results {
        // Sources, seeds and snapshots: the table's own columns and types
        // (descriptions from their declarations kept).
        if let (Some(schema), Some(n)) = (schema, b.nodes.get_mut(&id)) {
            if n["kind"] != "model" && n["kind"] != "feature_view" {
                let described: HashMap<String, Value> = n["columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(|x| {
                                Some((
                                    x.get("name")?.as_str()?.to_string(),
                                    x["description"].clone(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let columns: Vec<Value> = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        json!({"name": f.name(), "type": f.data_type().to_string(),
                               "description": described.get(f.name()).cloned().unwrap_or(Value::Null)})
                    })
                    .collect();
                n["columns"] = Value::Array(columns);
            }
        }
        let Some(h) = h else { continue };
        let Some(n) = b.nodes.get_mut(&id) else {
            continue;
        };
        let versions: Vec<Value> = h
            .iter()
            .rev()
            .take(KEEP)
            .map(|c| {
                json!({"version": c.version, "timestamp": c.timestamp_ms.and_then(millis_rfc3339),
                       "operation": c.operation, "rows": c.rows_added, "run_id": c.run_id.clone().or(c.load_id.clone())})
            })
            .collect();
        n["versions"] = Value::Array(versions);
        let loads: Vec<Value> = h
            .iter()
            .rev()
            .filter(|c| c.load_id.is_some())
            .take(KEEP)
            .map(|c| {
                let rejected: u64 = c
                    .source_files
                    .iter()
                    .filter_map(|f| f.get("rejects").and_then(Value::as_u64))
                    .sum();
                json!({"at": c.timestamp_ms.and_then(millis_rfc3339), "load_id": c.load_id, "rows": c.rows_added,
                       "quarantined": rejected, "files": c.source_files.len()})
            })
            .collect();
        if !loads.is_empty() {
            n["loads"] = Value::Array(loads);
        }
    }
}

async fn attach_freshness(project: &Project, engine: &Engine, b: &mut NodeBuilder) {
    let report = match crate::models::freshness::source_freshness(project, engine, &[]).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("docs: no freshness: {e}");
            return;
        }
    };
    for r in report.results {
        let Some(id) = b.by_relation.get(&r.relation).cloned() else {
            continue;
        };
        let Some(n) = b.nodes.get_mut(&id) else {
            continue;
        };
        n["freshness"] = json!({
            "max_loaded_at": r.max_loaded_at,
            "age_seconds": r.max_loaded_at_time_ago_in_s,
            "warn_after_seconds": r.criteria.warn_after.as_ref().map(|t| t.seconds),
            "error_after_seconds": r.criteria.error_after.as_ref().map(|t| t.seconds),
            "status": serde_json::to_value(r.status).unwrap_or(Value::Null),
            "checked_at": r.snapshotted_at,
            "message": r.message,
        });
    }
}

/// Writes the site into `out` (created; files of an earlier site replaced).
pub async fn generate(
    project: &Project,
    engine: &Engine,
    options: &CompileOptions,
    out: &Path,
) -> Result<DocsSummary> {
    let (data, mut summary) = site_data(project, engine, options).await?;
    if out.exists() && !out.is_dir() {
        return Err(Error::Usage(format!(
            "docs: --out {} is a file, not a folder; name a folder (created when missing)",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| {
        Error::Usage(format!(
            "docs: cannot create the folder {}: {e}; name a folder you can write (--out DIR)",
            out.display()
        ))
    })?;
    let json =
        serde_json::to_string(&data).map_err(|e| Error::Internal(format!("docs data: {e}")))?;
    // `</script` cannot end anything in a .js file, but the data may be
    // pasted into a page: escape it anyway, and the separators JSON allows
    // and old JavaScript did not.
    let json = json
        .replace("</", "<\\/")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let files: [(&str, String); 4] = [
        ("index.html", INDEX_HTML.to_string()),
        ("app.js", APP_JS.to_string()),
        ("app.css", APP_CSS.to_string()),
        ("data.js", format!("window.SLUICE_DOCS = {json};\n")),
    ];
    for (name, text) in files {
        let path = out.join(name);
        // A name of this process's own: two generates into one folder
        // each replace whole files, never each other's half-written ones.
        let tmp = out.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    summary.out = out.to_path_buf();
    Ok(summary)
}

fn millis_rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
