//! Compiling a project: find the models, apply their config, render Jinja,
//! infer dependencies from the SQL, resolve every table name and build the DAG.
//!
//! Nothing runs here, and the only storage access is a probe per name that is
//! not a model (does the table exist?), so `sluice compile` stays fast.
//!
//! Name resolution, for a name that is not a CTE in scope:
//! - `schema.table`: a model with that id, else an existing table or view, else a
//!   declared source's target;
//! - `table`: a model or table in the default schema, else the model whose bare
//!   name (file name or alias) is `table` when there is exactly one, else the
//!   declared source named `table`.
//!
//! The compiled SQL is the rendered SQL with bare names that resolved outside the
//! default schema qualified, and ephemeral models inlined as CTEs, so it runs
//! unchanged in any session (and a stored view does not depend on this run).

use super::config::{Materialization, ModelConfig};
use super::dag::{Dag, NodeInfo};
use super::discover::{self, SqlFile};
use super::jinja::{self, RenderContext};
use super::resolve::{ephemeral_cte, ExistsCache, NameError, Names, Target};
use super::schema_yml::{self, PropertiesFile};
use crate::error::{Error, Object, Result};
use crate::project::{ModelSettings, Project, ProjectKind};
use crate::sql::deps;
use crate::sql::Engine;
use crate::warehouse::{Aliases, Warehouse};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Options that change what compiles.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Rebuild incremental models from scratch (`is_incremental()` is false).
    pub full_refresh: bool,
    /// `--vars`, over the project's vars.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// `target.name` in templates (default `dev`).
    pub target: Option<String>,
}

/// A column documented in `schema.yml`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnDoc {
    pub name: String,
    pub description: Option<String>,
}

/// One compiled model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Name used by `ref()` and selectors: the file name.
    pub name: String,
    pub schema: String,
    pub table: String,
    pub file: SqlFile,
    pub config: ModelConfig,
    /// The SQL after Jinja.
    pub rendered: String,
    /// The SQL that runs (names resolved, ephemerals inlined).
    pub sql: String,
    /// SHA-256 of `sql`, hex.
    pub sql_hash: String,
    /// Upstream models (indices into [`Compiled::models`]).
    pub deps: Vec<usize>,
    /// Every stored table or view the model reads, as `(schema, table)`
    /// (through ephemerals too).
    pub inputs: Vec<(String, String)>,
    /// Whether this run builds the model incrementally.
    pub is_incremental: bool,
    pub description: Option<String>,
    pub columns: Vec<ColumnDoc>,
    /// The installed package it comes from (`None`: the project's own).
    pub package: Option<String>,
    /// The template asked the warehouse (`run_query`, `statement`,
    /// `adapter.get_columns_in_relation`, ...), itself or through an ephemeral
    /// model it inlines: the SQL is rendered again just before the model runs,
    /// when the tables it reads are built (dbt compiles each node as it runs).
    pub jit: bool,
}

impl Model {
    /// `schema.table`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// A compiled project.
#[derive(Debug)]
pub struct Compiled {
    pub models: Vec<Model>,
    pub dag: Dag,
    /// Bare name → `(schema, table)` of stored models whose bare name is unique.
    pub aliases: Aliases,
    /// Parsed `schema.yml` files (tests are compiled from them).
    pub properties: Vec<PropertiesFile>,
    pub default_schema: String,
    pub(crate) names: Arc<Names>,
    /// The tables table functions read (from the engine it compiled with).
    pub(crate) functions: deps::TableFunctionReads,
    /// The project's snapshots (`ref()` of one is its table).
    pub snapshots: Vec<super::snapshot::Snapshot>,
    /// The vars templates see (the project's, overlaid with `--vars`).
    pub(crate) vars: BTreeMap<String, serde_json::Value>,
    /// The vars a package's nodes see, by package name.
    pub(crate) package_vars: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// `target.name`.
    pub(crate) target: String,
}

/// A file after pass 1: config known, SQL not yet final.
struct Draft {
    file: SqlFile,
    /// The installed package it comes from (`None`: the project's own).
    package: Option<String>,
    config: ModelConfig,
    schema: String,
    table: String,
    description: Option<String>,
    columns: Vec<ColumnDoc>,
}

/// Checks `[models]` of `sluice.toml`: every key is a model config (a typo is
/// an error with a suggestion, not silently dropped) or a table naming a folder
/// of models that exists.
fn check_folder_tree(
    tree: &serde_json::Value,
    model_paths: &[std::path::PathBuf],
    file: &std::path::Path,
) -> Result<()> {
    let mut pending = vec![(Vec::<String>::new(), tree)];
    while let Some((path, node)) = pending.pop() {
        let serde_json::Value::Object(map) = node else {
            continue;
        };
        let table = if path.is_empty() {
            "[models]".to_string()
        } else {
            format!("[models.{}]", path.join("."))
        };
        for (key, value) in map {
            if super::config::is_config_key(key) {
                continue;
            }
            let mut sub = path.clone();
            sub.push(key.clone());
            if value.is_object() {
                let exists = model_paths
                    .iter()
                    .any(|p| sub.iter().fold(p.clone(), |d, s| d.join(s)).is_dir());
                if !exists {
                    let siblings: Vec<String> = model_paths
                        .iter()
                        .map(|p| path.iter().fold(p.clone(), |d, s| d.join(s)))
                        .filter_map(|d| std::fs::read_dir(d).ok())
                        .flat_map(|entries| entries.flatten())
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    let hint = crate::error::did_you_mean(key, siblings.iter().map(String::as_str));
                    return Err(Error::config(
                        file,
                        format!(
                            "[models.{}] names no folder of models{hint}; a table under [models] is a folder (`[models.staging]` for models/staging/), and its other keys are model configs",
                            sub.join(".")
                        ),
                    ));
                }
                pending.push((sub, value));
            } else {
                let hint = crate::error::did_you_mean(key, super::config::KEYS.iter().copied());
                return Err(Error::config(
                    file,
                    format!(
                        "{table}: unknown model config `{key}`{hint}; allowed: {}",
                        super::config::KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Compiles every model of `project`.
pub async fn compile(
    project: &Project,
    engine: &Engine,
    opts: &CompileOptions,
) -> Result<Compiled> {
    let warehouse = engine.warehouse();
    let functions = engine.table_function_reads().clone();
    let settings = &project.settings;
    let default_schema = project.config.warehouse.default_schema.clone();
    if settings.kind == crate::project::ProjectKind::Sluice {
        check_folder_tree(
            &settings.models,
            &settings.model_paths,
            &project.root.join(crate::project::PROJECT_FILE),
        )?;
    }
    // The project's models, then each installed package's (dbt builds them too).
    let mut files: Vec<(Option<usize>, SqlFile)> =
        discover::sql_files(&project.root, &settings.model_paths)?
            .into_iter()
            .map(|f| (None, f))
            .collect();
    let mut model_dirs = settings.model_paths.clone();
    for (pi, p) in settings.packages.iter().enumerate() {
        files.extend(
            discover::sql_files(&project.root, &p.model_paths)?
                .into_iter()
                .map(|f| (Some(pi), f)),
        );
        model_dirs.extend(p.model_paths.iter().cloned());
    }
    let macros = Some(macro_library(project)?);
    let properties = schema_yml::read_all(&model_dirs)?;
    let vars = project_vars(project, None, &opts.vars);
    let package_vars: BTreeMap<String, BTreeMap<String, serde_json::Value>> = settings
        .packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                project_vars(project, Some(&p.name), &opts.vars),
            )
        })
        .collect();
    let target = opts
        .target
        .clone()
        .unwrap_or_else(|| project.target.clone());
    let default_mat = match settings.default_materialization.as_str() {
        "view" => Materialization::View,
        _ => Materialization::Table,
    };

    let props_by_name: HashMap<&str, &schema_yml::ModelProps> = properties
        .iter()
        .flat_map(|p| p.models.iter())
        .map(|m| (m.name.as_str(), m))
        .collect();

    // Pass 1: config from folders, schema.yml and the file's config().
    let mut errors = Vec::new();
    let mut drafts = Vec::new();
    let mut disabled = HashSet::new();
    for (package, file) in files {
        let (owner, node_vars) = match package.and_then(|pi| settings.packages.get(pi)) {
            Some(p) => (p, package_vars.get(&p.name).unwrap_or(&vars)),
            None => (settings, &vars),
        };
        match draft(
            file,
            owner,
            package.map(|_| owner.name.clone()),
            &props_by_name,
            default_mat,
            &default_schema,
            node_vars,
            &target,
            macros.clone(),
        ) {
            Ok(d) => drafts.push(d),
            Err((name, e)) => {
                // Disabled models are dropped; their names make better errors.
                if let Some(n) = name {
                    disabled.insert(n);
                }
                if let Some(e) = e {
                    errors.push(e);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }

    let mut names = Names {
        default_schema: default_schema.clone(),
        library: macros.clone(),
        introspect: Some(Arc::new(super::introspect::EngineIntrospect {
            engine: engine.clone(),
        })),
        disabled,
        ..Default::default()
    };
    for (i, d) in drafts.iter().enumerate() {
        let id = format!("{}.{}", d.schema, d.table);
        if let Some(prev) = names.by_id.insert(id.clone(), i) {
            errors.push(Error::Model {
                model: id.clone(),
                file: d.file.display.clone(),
                message: format!(
                    "two models build `{id}`: {} and {}; rename one or set a different schema or alias",
                    drafts[prev].file.display, d.file.display
                ),
            });
        }
        names
            .by_bare
            .entry(d.file.name.clone())
            .or_default()
            .push(i);
        if d.table != d.file.name {
            names.by_bare.entry(d.table.clone()).or_default().push(i);
        }
        let eph = d.config.materialized == Materialization::Ephemeral;
        if eph {
            names.by_cte.insert(ephemeral_cte(&id), i);
        }
        names.ids.push(id);
        names.ephemeral.push(eph);
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }
    for s in &project.sources {
        names.sources.insert(s.name.clone(), s.target());
    }
    for s in named_seeds_with(project, macros.as_ref(), &vars)? {
        names
            .seeds
            .insert(s.name.clone(), (s.schema.clone(), s.name.clone()));
    }
    let snapshots = super::snapshot::discover(project, &vars, macros.clone(), &target)?;
    for s in &snapshots {
        if let Some(m) = names
            .by_bare
            .get(&s.name)
            .and_then(|m| m.first())
            .or_else(|| names.by_id.get(&s.id()))
        {
            errors.push(Error::Config {
                file: s.location.clone().into(),
                message: format!(
                    "snapshot `{}` (table `{}`) has the name or table of model `{}` ({}); rename one of them",
                    s.name,
                    s.id(),
                    names.ids[*m],
                    drafts[*m].file.display
                ),
            });
        }
        names
            .seeds
            .insert(s.name.clone(), (s.schema.clone(), s.table.clone()));
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }
    for p in &properties {
        for s in &p.sources {
            let schema = s.schema.clone().unwrap_or_else(|| s.name.clone());
            for t in &s.tables {
                let ident = t.identifier.clone().unwrap_or_else(|| t.name.clone());
                names
                    .yml_sources
                    .insert((s.name.clone(), t.name.clone()), (schema.clone(), ident));
            }
        }
    }
    names.graph = Some(minijinja::Value::from_serialize(graph_json(
        project,
        &drafts,
        &names,
        &properties,
        &snapshots,
    )));
    let names = Arc::new(names);

    // Which incremental models already have a table.
    let mut exists_cache = ExistsCache::new(warehouse);
    let mut incremental_now = vec![false; drafts.len()];
    if !opts.full_refresh {
        for (i, d) in drafts.iter().enumerate() {
            if d.config.materialized == Materialization::Incremental {
                incremental_now[i] = exists_cache.table_exists(&d.schema, &d.table).await?;
            }
        }
    }

    // Pass 2: render with real names, then find every relation.
    let mut rendered = Vec::with_capacity(drafts.len());
    let mut jit = vec![false; drafts.len()];
    let vars_of = |p: &Option<String>| {
        p.as_ref()
            .and_then(|n| package_vars.get(n))
            .unwrap_or(&vars)
    };
    for (i, d) in drafts.iter().enumerate() {
        let mut ctx = render_context(
            &names,
            vars_of(&d.package),
            &target,
            &default_schema,
            &names.ids[i],
            &d.file.name,
            incremental_now[i],
        );
        ctx.package = d.package.clone();
        let tracked = names
            .introspect
            .clone()
            .map(super::introspect::Tracked::new);
        if let Some(t) = &tracked {
            ctx.introspect = Some(t.clone());
        }
        let used = || tracked.as_ref().is_some_and(|t| t.used());
        let first = jinja::render(&d.file.display, &d.file.text, &ctx).map(|r| {
            let sql = clean_sql(&r.sql);
            (sql, r.refs)
        });
        match first {
            // What the warehouse answered may not make SQL yet (the columns of
            // a table this run builds are none): then as below.
            Ok((sql, refs)) if !used() || deps::model_relations(&sql, &functions).is_ok() => {
                jit[i] = used();
                rendered.push((sql, refs));
            }
            Ok((sql, refs)) => {
                ctx.execute = false;
                match jinja::render(&d.file.display, &d.file.text, &ctx) {
                    Ok(r) => {
                        jit[i] = true;
                        rendered.push((clean_sql(&r.sql), r.refs));
                    }
                    // The error is the first render's, reported with its SQL.
                    Err(_) => rendered.push((sql, refs)),
                }
            }
            // The warehouse could not answer yet (most often: a table this run
            // builds). Render as dbt parses (`execute` false) to learn the
            // dependencies; the model renders for real just before it runs.
            Err(e) if used() => {
                ctx.execute = false;
                match jinja::render(&d.file.display, &d.file.text, &ctx) {
                    Ok(r) => {
                        tracing::info!(
                            "model {} is rendered when it runs: its template asked the warehouse, which cannot answer yet ({})",
                            names.ids[i],
                            e.message
                        );
                        jit[i] = true;
                        rendered.push((clean_sql(&r.sql), r.refs));
                    }
                    Err(_) => {
                        errors.push(jinja_error(&names.ids[i], e));
                        rendered.push((String::new(), Vec::new()));
                    }
                }
            }
            Err(e) => {
                errors.push(jinja_error(&names.ids[i], e));
                rendered.push((String::new(), Vec::new()));
            }
        }
    }
    // Hooks render with the model's context (`{{ this }}`).
    for (i, d) in drafts.iter_mut().enumerate() {
        let mut ctx = render_context(
            &names,
            vars_of(&d.package),
            &target,
            &default_schema,
            &names.ids[i],
            &d.file.name,
            incremental_now[i],
        );
        ctx.package = d.package.clone();
        let hooks = d
            .config
            .pre_hook
            .iter_mut()
            .chain(d.config.post_hook.iter_mut());
        for h in hooks {
            match jinja::render(&h.origin, &h.sql, &ctx) {
                Ok(r) => h.sql = r.sql,
                Err(e) => errors.push(Error::Model {
                    model: names.ids[i].clone(),
                    file: d.file.display.clone(),
                    message: format!("hook from {}: {}", h.origin, e.message),
                }),
            }
        }
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }
    let mut occurrences = Vec::with_capacity(drafts.len());
    for (i, (sql, _)) in rendered.iter().enumerate() {
        match deps::model_relations(sql, &functions) {
            Ok(o) => occurrences.push(o),
            Err(e) => {
                let d = &drafts[i];
                let templated = jinja::needs_rendering(&d.file.text);
                let (file, message) = match (e.line, e.column) {
                    (Some(l), Some(c)) if !templated => (
                        format!("{}:{l}", d.file.display),
                        format!("SQL syntax error: {} (column {c})", e.message),
                    ),
                    (Some(l), Some(c)) => (
                        d.file.display.clone(),
                        format!(
                            "SQL syntax error: {} at line {l}, column {c} of the rendered SQL: `{}`",
                            e.message,
                            sql.lines().nth(l.saturating_sub(1) as usize).unwrap_or("").trim()
                        ),
                    ),
                    _ if e.message.starts_with("a model") || e.message.starts_with("the model") => {
                        (d.file.display.clone(), e.message.clone())
                    }
                    _ => (d.file.display.clone(), format!("SQL syntax error: {}", e.message)),
                };
                errors.push(Error::Model {
                    model: names.ids[i].clone(),
                    file,
                    message,
                });
                occurrences.push(Vec::new());
            }
        }
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }
    // Probe storage for names that are not models.
    for occ in &occurrences {
        for o in occ {
            exists_cache.probe(&names, &o.relation).await?;
        }
    }
    let exists = |s: &str, t: &str| exists_cache.known(s, t);

    let mut resolved: Vec<Vec<(deps::Occurrence, Target)>> = Vec::with_capacity(drafts.len());
    let mut nodes = Vec::with_capacity(drafts.len());
    for (i, occ) in occurrences.into_iter().enumerate() {
        let (res, deps_i, problems) = resolve_relations(i, occ, &rendered[i].1, &names, &exists);
        errors.extend(problems.into_iter().map(|message| Error::Model {
            model: names.ids[i].clone(),
            file: drafts[i].file.display.clone(),
            message,
        }));
        let d = &drafts[i];
        nodes.push(NodeInfo {
            id: names.ids[i].clone(),
            name: d.file.name.clone(),
            path: d.file.rel_path.clone(),
            tags: d.config.tags.clone(),
            deps: deps_i.iter().map(|m| names.ids[*m].clone()).collect(),
        });
        resolved.push(res);
    }
    if !errors.is_empty() {
        return Err(many(errors));
    }
    let dag = Dag::new(nodes).map_err(|e| Error::Config {
        file: settings
            .model_paths
            .first()
            .cloned()
            .unwrap_or_else(|| project.root.clone()),
        message: e.to_string(),
    })?;

    let mut models = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.into_iter().enumerate() {
        let mut deps_i: Vec<usize> = dag.parents(i).to_vec();
        deps_i.sort();
        models.push(Model {
            name: d.file.name.clone(),
            sql_hash: String::new(),
            sql: String::new(),
            rendered: std::mem::take(&mut rendered[i].0),
            schema: d.schema,
            table: d.table,
            config: d.config,
            file: d.file,
            deps: deps_i,
            inputs: Vec::new(),
            is_incremental: incremental_now[i],
            description: d.description,
            columns: d.columns,
            package: d.package,
            jit: jit[i],
        });
    }
    // Final SQL, in dependency order (ephemerals before their readers).
    for i in dag.topo_order() {
        let fin = finalize(
            i,
            &models[i].rendered,
            &rendered[i].1,
            &resolved[i],
            &names,
            &dag,
            &|m| &models[m],
        );
        let m = &mut models[i];
        m.sql_hash = sha256_hex(&fin.sql);
        m.sql = fin.sql;
        m.inputs = fin.inputs;
        // Inlining an ephemeral model that renders late renders late too.
        m.jit |= fin.jit_ephemeral;
    }
    let mut aliases = Aliases::new();
    for (bare, idx) in &names.by_bare {
        if let [i] = idx.as_slice() {
            let m = &models[*i];
            if m.config.materialized != Materialization::Ephemeral {
                aliases.insert(bare.clone(), (m.schema.clone(), m.table.clone()));
            }
        }
    }
    Ok(Compiled {
        models,
        dag,
        aliases,
        properties,
        default_schema,
        names,
        functions,
        snapshots,
        vars,
        package_vars,
        target,
    })
}

impl Compiled {
    /// The vars the nodes of `package` (`None`: the project's own) see.
    pub(crate) fn vars_of(&self, package: Option<&str>) -> &BTreeMap<String, serde_json::Value> {
        package
            .and_then(|p| self.package_vars.get(p))
            .unwrap_or(&self.vars)
    }

    /// Index of the model `name` (id or unique bare name).
    pub fn find(&self, name: &str) -> Result<usize> {
        self.names.lookup_model(name).map_err(|e| match e {
            NameError::NoModel { name, hint } => {
                Error::not_found(Object::Model, format!("unknown model `{name}`{hint}"))
            }
            other => other.into(),
        })
    }

    /// Renders a test or analysis file against this project's names.
    pub(crate) fn render_other(
        &self,
        file: &SqlFile,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(String, Vec<String>)> {
        let mut all_vars = self.vars.clone();
        all_vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let ctx = render_context(
            &self.names,
            &all_vars,
            &self.target,
            &self.default_schema,
            &file.name,
            &file.name,
            false,
        );
        let r = jinja::render(&file.display, &file.text, &ctx)?;
        Ok((clean_sql(&r.sql), r.refs))
    }

    /// The SQL of snapshot `s` (its template rendered against this
    /// project's names, trailing semicolons removed) and its `ref()`s.
    pub(crate) fn render_snapshot(
        &self,
        s: &super::snapshot::Snapshot,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(String, Vec<String>)> {
        let r = super::snapshot::render(
            &s.file,
            &s.template,
            Some(&self.names),
            vars,
            &self.target,
            &self.default_schema,
            &s.id(),
            &s.name,
            self.names.library.clone(),
        )?;
        Ok((clean_sql(&r.sql), r.refs))
    }

    /// Renders project-level SQL (an `on-run-start` hook) with the project's
    /// names and `vars`; `origin` names it in errors.
    pub fn render_text(
        &self,
        origin: &str,
        text: &str,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String> {
        let ctx = render_context(
            &self.names,
            vars,
            &self.target,
            &self.default_schema,
            "",
            "",
            false,
        );
        Ok(jinja::render(origin, text, &ctx)?.sql)
    }

    /// The SQL of model `i` rendered again with other `vars` and
    /// `is_incremental()` (a unit test's overrides), names not yet resolved.
    pub(crate) fn render_model_with(
        &self,
        i: usize,
        vars: &BTreeMap<String, serde_json::Value>,
        is_incremental: bool,
    ) -> Result<String> {
        let m = &self.models[i];
        let mut ctx = render_context(
            &self.names,
            vars,
            &self.target,
            &self.default_schema,
            &self.names.ids[i],
            &m.file.name,
            is_incremental,
        );
        ctx.package = m.package.clone();
        let r = jinja::render(&m.file.display, &m.file.text, &ctx)
            .map_err(|e| jinja_error(&self.names.ids[i], e))?;
        Ok(clean_sql(&r.sql))
    }

    /// Model `i` as it runs now: a model whose template asks the warehouse
    /// ([`Model::jit`]) rendered again against the tables as they are (its
    /// upstream models built), its names resolved again. Ephemeral models it
    /// inlines that render late render again first.
    pub(crate) async fn rerender(&self, engine: &Engine, i: usize) -> Result<Model> {
        let mut fresh = HashMap::new();
        let mut late: Vec<usize> = self
            .dag
            .ancestors(i, None)
            .into_iter()
            .filter(|a| self.names.ephemeral[*a] && self.models[*a].jit)
            .collect();
        late.sort_by_key(|a| self.dag.topo_position(*a));
        for a in late {
            let m = self.rerender_one(engine, a, &fresh).await?;
            fresh.insert(a, m);
        }
        self.rerender_one(engine, i, &fresh).await
    }

    async fn rerender_one(
        &self,
        engine: &Engine,
        i: usize,
        fresh: &HashMap<usize, Model>,
    ) -> Result<Model> {
        let m = &self.models[i];
        let id = &self.names.ids[i];
        let model_err = |message: String| Error::Model {
            model: id.clone(),
            file: m.file.display.clone(),
            message,
        };
        let mut ctx = render_context(
            &self.names,
            self.vars_of(m.package.as_deref()),
            &self.target,
            &self.default_schema,
            id,
            &m.file.name,
            m.is_incremental,
        );
        ctx.package = m.package.clone();
        ctx.introspect = Some(Arc::new(super::introspect::EngineIntrospect {
            engine: engine.clone(),
        }));
        let r =
            jinja::render(&m.file.display, &m.file.text, &ctx).map_err(|e| jinja_error(id, e))?;
        let sql = clean_sql(&r.sql);
        let occurrences = deps::model_relations(&sql, &self.functions).map_err(|e| {
            model_err(format!(
                "SQL syntax error in the SQL rendered as the model ran: {}",
                e.message
            ))
        })?;
        let mut cache = ExistsCache::new(engine.warehouse());
        for o in &occurrences {
            cache.probe(&self.names, &o.relation).await?;
        }
        let exists = |s: &str, t: &str| cache.known(s, t);
        let (resolved, deps_i, problems) =
            resolve_relations(i, occurrences, &r.refs, &self.names, &exists);
        if !problems.is_empty() {
            return Err(model_err(problems.join("; ")));
        }
        let ancestors = self.dag.ancestors(i, None);
        if let Some(d) = deps_i.iter().find(|d| !ancestors.contains(d)) {
            let name = &self.models[*d].name;
            return Err(model_err(format!(
                "rendered as it ran, the model reads `{}`, which it did not read when the project compiled, so this run may not have built it first; add `-- depends_on: {{{{ ref('{name}') }}}}` to the model's file (as in dbt)",
                self.names.ids[*d]
            )));
        }
        let fin = finalize(i, &sql, &r.refs, &resolved, &self.names, &self.dag, &|x| {
            fresh.get(&x).unwrap_or(&self.models[x])
        });
        let mut out = m.clone();
        out.rendered = sql;
        out.sql_hash = sha256_hex(&fin.sql);
        out.sql = fin.sql;
        out.inputs = fin.inputs;
        Ok(out)
    }

    /// Resolves the relations of a test query: the models it reads, or an error.
    pub(crate) async fn test_dependencies(
        &self,
        warehouse: &Warehouse,
        sql: &str,
        refs: &[String],
    ) -> Result<Vec<usize>> {
        let occ = deps::relation_occurrences(sql, &self.functions)
            .map_err(|e| Error::Sql(format!("SQL syntax error: {e}")))?;
        let mut cache = ExistsCache::new(warehouse);
        for o in &occ {
            cache.probe(&self.names, &o.relation).await?;
        }
        let exists = |s: &str, t: &str| cache.known(s, t);
        let mut out = Vec::new();
        for o in &occ {
            match self.names.resolve(&o.relation, &exists) {
                Ok(Target::Model(m)) => out.push(m),
                Ok(_) => {}
                Err(_) if o.declared => {}
                Err(e) => return Err(e.into()),
            }
        }
        for r in refs {
            match self.names.lookup_model(r) {
                Ok(m) => out.push(m),
                // A seed is fine; anything else is the lookup's error.
                Err(_) => {
                    self.names.ref_text(r)?;
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn draft(
    file: SqlFile,
    settings: &ModelSettings,
    package: Option<String>,
    props: &HashMap<&str, &schema_yml::ModelProps>,
    default_mat: Materialization,
    default_schema: &str,
    vars: &BTreeMap<String, serde_json::Value>,
    target: &str,
    macros: Option<Arc<jinja::MacroLibrary>>,
) -> std::result::Result<Draft, (Option<String>, Option<Error>)> {
    let model_err = |message: String| Error::Model {
        model: file.name.clone(),
        file: file.display.clone(),
        message,
    };
    let mut config = ModelConfig::defaults(default_mat);
    let mut folder = ModelSettings::folder_config(
        &settings.models,
        &file.rel_dirs,
        super::config::is_config_key,
    );
    // dbt renders Jinja in dbt_project.yml values: `+enabled: "{{ var('x') }}"`.
    // Hooks render later, with the model's `this`.
    for (key, value) in folder.iter_mut() {
        if key.contains("hook") {
            continue;
        }
        if let serde_json::Value::String(text) = value {
            if jinja::needs_rendering(text) {
                let ctx = RenderContext {
                    vars: vars.clone(),
                    target_name: target.to_string(),
                    library: macros.clone(),
                    package: package.clone(),
                    ..RenderContext::echo(&file.name, default_schema)
                };
                let r = jinja::render(&format!("dbt_project.yml (+{key})"), text, &ctx)
                    .map_err(|e| (None, Some(jinja_error(&file.name, e))))?;
                *value = yaml_scalar(r.sql.trim());
            }
        }
    }
    config
        .apply(&folder)
        .map_err(|m| (None, Some(model_err(format!("folder config: {m}")))))?;
    config.label_hooks(match settings.kind {
        ProjectKind::Dbt => "dbt_project.yml",
        ProjectKind::Sluice => "sluice.toml [models]",
    });
    let mut description = None;
    let mut columns = Vec::new();
    if let Some(p) = props.get(file.name.as_str()) {
        if let Some(c) = &p.config {
            config
                .apply(c)
                .map_err(|m| (None, Some(model_err(format!("schema.yml config: {m}")))))?;
            let shown = settings
                .model_paths
                .iter()
                .find_map(|mp| mp.parent().and_then(|r| p.file.strip_prefix(r).ok()))
                .unwrap_or(&p.file);
            config.label_hooks(&format!("config: in {}", shown.display()));
        }
        description = p.description.clone();
        columns = p
            .columns
            .iter()
            .map(|c| ColumnDoc {
                name: c.name.clone(),
                description: c.description.clone(),
            })
            .collect();
    }
    if jinja::needs_rendering(&file.text) {
        // Pass 1 only collects config(): names are not known yet.
        let ctx = RenderContext {
            vars: vars.clone(),
            target_name: target.to_string(),
            library: macros.clone(),
            package: package.clone(),
            ..RenderContext::echo(&file.name, default_schema)
        };
        let r = jinja::render(&file.display, &file.text, &ctx)
            .map_err(|e| (None, Some(jinja_error(&file.name, e))))?;
        let map: serde_json::Map<String, serde_json::Value> = r.config.into_iter().collect();
        config
            .apply(&map)
            .map_err(|m| (None, Some(model_err(format!("config(): {m}")))))?;
        config.label_hooks(&format!("config() in {}", file.display));
    }
    if !config.enabled {
        return Err((Some(file.name.clone()), None));
    }
    config
        .validate()
        .map_err(|e| (None, Some(model_err(e.to_string()))))?;
    let mut schema = match (&config.schema, settings.kind) {
        (Some(s), ProjectKind::Sluice) => s.clone(),
        (None, ProjectKind::Sluice) => match file.rel_dirs.first() {
            Some(d) => d.clone(),
            None => default_schema.to_string(),
        },
        // dbt's default generate_schema_name.
        (Some(s), ProjectKind::Dbt) => format!("{default_schema}_{}", s.trim()),
        (None, ProjectKind::Dbt) => default_schema.to_string(),
    };
    let mut alias = config.alias.clone();
    if let Some(lib) = &macros {
        let node = node_json(&settings.name, &file, &config, "model");
        let named = |m: &str, custom: Option<&str>| {
            naming_macro(lib, m, custom, node.clone(), default_schema, target)
                .map_err(|e| (None, Some(jinja_error(&file.name, e))))
        };
        if let Some(s) = named("generate_schema_name", config.schema.as_deref())? {
            schema = s;
        }
        if let Some(a) = named("generate_alias_name", config.alias.as_deref())? {
            alias = Some(a);
        }
    }
    if !crate::warehouse::is_identifier(&schema) {
        return Err((
            None,
            Some(model_err(format!(
                "folder `{schema}` is not a valid schema name (lowercase letters, digits and _); rename the folder or set config(schema='...')"
            ))),
        ));
    }
    let table = alias.unwrap_or_else(|| file.name.clone());
    if !crate::warehouse::is_identifier(&table) {
        return Err((
            None,
            Some(model_err(format!(
                "`{table}` is not a valid table name (lowercase letters, digits and _); rename the file or set config(alias='...')"
            ))),
        ));
    }
    Ok(Draft {
        file,
        package,
        config,
        schema,
        table,
        description,
        columns,
    })
}

/// The relations model `i` reads, resolved: each occurrence's target, the
/// models it depends on (its explicit `ref()`s included, even when the
/// rendered SQL hides them) and a message per name that resolves to nothing.
type Resolved = Vec<(deps::Occurrence, Target)>;
fn resolve_relations(
    i: usize,
    occurrences: Vec<deps::Occurrence>,
    refs: &[String],
    names: &Names,
    exists: &dyn Fn(&str, &str) -> bool,
) -> (Resolved, Vec<usize>, Vec<String>) {
    let mut deps_i = Vec::new();
    let mut res = Vec::new();
    let mut problems = Vec::new();
    for o in occurrences {
        match names.resolve(&o.relation, exists) {
            // A table function's argument that names no model or table:
            // the function reports it when it runs.
            Err(_) if o.declared => {}
            Ok(t) => {
                // A model may read its own table (`{{ this }}` in incremental
                // models): that is not a dependency.
                if let Target::Model(m) = t {
                    if m != i && !deps_i.contains(&m) {
                        deps_i.push(m);
                    }
                }
                res.push((o, t));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    for r in refs {
        if let Some(m) = names.find_model(r) {
            if m != i && !deps_i.contains(&m) {
                deps_i.push(m);
            }
        }
    }
    (res, deps_i, problems)
}

/// The SQL that runs for a model, and what it reads.
struct Finalized {
    sql: String,
    inputs: Vec<(String, String)>,
    /// It inlines an ephemeral model that renders late.
    jit_ephemeral: bool,
}

/// Model `i`'s final SQL from its rendered SQL: bare names that resolved
/// outside the default schema qualified, ephemeral models inlined as CTEs.
/// `model(m)` gives every other model, final (ephemerals and views before
/// their readers).
fn finalize<'a>(
    i: usize,
    sql: &str,
    refs: &[String],
    resolved: &[(deps::Occurrence, Target)],
    names: &Names,
    dag: &Dag,
    model: &dyn Fn(usize) -> &'a Model,
) -> Finalized {
    let default_schema = &names.default_schema;
    let mut edits = Vec::new();
    let mut ephemerals = Vec::new();
    let mut ins: Vec<(String, String)> = Vec::new();
    for (o, t) in resolved {
        match t {
            Target::Model(m) => {
                let up = model(*m);
                if names.ephemeral[*m] {
                    edits.push((o.clone(), ephemeral_cte(&names.ids[*m])));
                    if !ephemerals.contains(m) {
                        ephemerals.push(*m);
                    }
                    ins.extend(up.inputs.iter().cloned());
                } else {
                    if o.relation.parts.len() == 1 && up.schema != *default_schema {
                        edits.push((o.clone(), names.ids[*m].clone()));
                    }
                    ins.push((up.schema.clone(), up.table.clone()));
                    if up.config.materialized == Materialization::View && *m != i {
                        // A view has no version: record what it reads.
                        ins.extend(up.inputs.iter().cloned());
                    }
                }
            }
            Target::External(s, t) => {
                if o.relation.parts.len() == 1 && s != default_schema {
                    edits.push((o.clone(), format!("{s}.{t}")));
                }
                ins.push((s.clone(), t.clone()));
            }
            Target::Ignore => {}
        }
    }
    ins.sort();
    ins.dedup();
    let mut out = apply_edits(sql, &edits);
    // ref() of an ephemeral renders its CTE name directly.
    for m in refs.iter().filter_map(|r| names.find_model(r)) {
        if names.ephemeral[m] && !ephemerals.contains(&m) {
            ephemerals.push(m);
        }
    }
    let mut jit_ephemeral = false;
    if !ephemerals.is_empty() {
        ephemerals.sort_by_key(|m| dag.topo_position(*m));
        let ctes: Vec<String> = ephemerals
            .iter()
            .map(|m| {
                let up = model(*m);
                jit_ephemeral |= up.jit;
                format!("{} AS (\n{}\n)", ephemeral_cte(&names.ids[*m]), up.sql)
            })
            .collect();
        out = format!(
            "WITH {}\nSELECT * FROM (\n{out}\n) AS __sluice_model",
            ctes.join(",\n")
        );
    }
    Finalized {
        sql: out,
        inputs: ins,
        jit_ephemeral,
    }
}

/// dbt's `graph` as templates see it: every model, seed and snapshot under
/// `nodes`, every `sources:` table under `sources`, keyed by dbt's unique ids
/// (`model.<package>.<name>`), with their names, schemas, config and tags.
fn graph_json(
    project: &Project,
    drafts: &[Draft],
    names: &Names,
    properties: &[PropertiesFile],
    snapshots: &[super::snapshot::Snapshot],
) -> serde_json::Value {
    let root = &project.settings.name;
    let mut nodes = serde_json::Map::new();
    for d in drafts {
        let package = d.package.as_deref().unwrap_or(root);
        let mut fqn = vec![package.to_string()];
        fqn.extend(d.file.rel_dirs.iter().cloned());
        fqn.push(d.file.name.clone());
        let id = format!("model.{package}.{}", d.file.name);
        nodes.insert(
            id.clone(),
            serde_json::json!({
                "unique_id": id,
                "name": d.file.name,
                "resource_type": "model",
                "package_name": package,
                "database": "warehouse",
                "schema": d.schema,
                "alias": d.table,
                "identifier": d.table,
                "relation_name": format!("{}.{}", d.schema, d.table),
                "fqn": fqn,
                "tags": d.config.tags,
                "path": d.file.rel_path,
                "original_file_path": d.file.display,
                "description": d.description.clone().unwrap_or_default(),
                "config": {
                    "materialized": d.config.materialized.to_string(),
                    "schema": d.config.schema,
                    "alias": d.config.alias,
                    "tags": d.config.tags,
                    "enabled": true,
                },
            }),
        );
    }
    for (name, (schema, table)) in &names.seeds {
        // Snapshots are named like seeds (`ref()` of one is its table).
        let kind = if snapshots.iter().any(|s| s.name == *name) {
            "snapshot"
        } else {
            "seed"
        };
        let id = format!("{kind}.{root}.{name}");
        nodes.entry(id.clone()).or_insert_with(|| {
            serde_json::json!({
                "unique_id": id, "name": name, "resource_type": kind,
                "package_name": root, "database": "warehouse", "schema": schema,
                "alias": table, "identifier": table,
                "relation_name": format!("{schema}.{table}"),
                "fqn": [root, name], "tags": [], "config": {"enabled": true},
            })
        });
    }
    let mut sources = serde_json::Map::new();
    for p in properties {
        for s in &p.sources {
            let schema = s.schema.clone().unwrap_or_else(|| s.name.clone());
            for t in &s.tables {
                let ident = t.identifier.clone().unwrap_or_else(|| t.name.clone());
                let id = format!("source.{root}.{}.{}", s.name, t.name);
                sources.insert(
                    id.clone(),
                    serde_json::json!({
                        "unique_id": id, "name": t.name, "source_name": s.name,
                        "resource_type": "source", "package_name": root,
                        "database": "warehouse", "schema": schema, "identifier": ident,
                        "relation_name": format!("{schema}.{ident}"),
                        "fqn": [root, s.name, t.name],
                    }),
                );
            }
        }
    }
    serde_json::json!({
        "nodes": nodes,
        "sources": sources,
        "exposures": {}, "metrics": {}, "semantic_models": {},
        "saved_queries": {}, "groups": {},
    })
}

/// The vars the nodes of `package` (`None`: the root project) see, overlaid
/// with `--vars`: dbt scopes them per package; a sluice project has one scope.
fn project_vars(
    project: &Project,
    package: Option<&str>,
    cli: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    let mut vars = match project.settings.kind {
        ProjectKind::Dbt => project.settings.vars_for(package),
        ProjectKind::Sluice => project.settings.vars.clone(),
    };
    vars.extend(cli.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
}

pub(crate) fn render_context(
    names: &Arc<Names>,
    vars: &BTreeMap<String, serde_json::Value>,
    target: &str,
    default_schema: &str,
    this: &str,
    model_name: &str,
    is_incremental: bool,
) -> RenderContext {
    let n = names.clone();
    let resolve_ref: jinja::RefResolver =
        Arc::new(move |name: &str| n.ref_text(name).map_err(Error::from));
    let n = names.clone();
    let resolve_source: jinja::SourceResolver = Arc::new(move |s: &str, t: &str| {
        if let Some((schema, table)) = n.yml_sources.get(&(s.to_string(), t.to_string())) {
            return Ok(format!("{schema}.{table}"));
        }
        if let Some((schema, table)) = n.sources.get(t) {
            return Ok(format!("{schema}.{table}"));
        }
        if crate::warehouse::is_identifier(s) && crate::warehouse::is_identifier(t) {
            return Ok(format!("{s}.{t}"));
        }
        Err(Error::not_found(
            Object::Other,
            format!("unknown source ('{s}', '{t}'): declare it under `sources:` in a schema.yml or in catalog/*.toml"),
        ))
    });
    RenderContext {
        vars: vars.clone(),
        resolve_ref,
        resolve_source,
        this: this.to_string(),
        is_incremental,
        target_name: target.to_string(),
        target_schema: default_schema.to_string(),
        model_name: model_name.to_string(),
        library: names.library.clone(),
        package: None,
        execute: true,
        introspect: names.introspect.clone(),
        node: None,
        graph: names.graph.clone(),
    }
}

/// The project's macros: the root project's macro folders, each installed
/// package's, then dbt's built-ins. A package that `packages.yml` asks for and
/// that is not installed is an error that says to run `sluice deps`.
pub(crate) fn macro_library(project: &Project) -> Result<Arc<jinja::MacroLibrary>> {
    let settings = &project.settings;
    // As dbt: an error when fewer packages are installed than declared. The
    // missing ones are those no installed package is (by its name).
    if settings.package_specs.len() > settings.packages.len() {
        let installed: Vec<&str> = settings.packages.iter().map(|p| p.name.as_str()).collect();
        let missing: Vec<String> =
            crate::project::packages::missing(&project.root, &settings.package_specs, &installed)
                .iter()
                .map(|s| format!("`{s}`"))
                .collect();
        let missing = if missing.is_empty() {
            String::new()
        } else {
            format!(" (missing: {})", missing.join(", "))
        };
        return Err(Error::config(
            project.root.join("packages.yml"),
            format!(
                "{} package(s) are declared but only {} installed in {}{missing}; run `sluice deps` to install them",
                settings.package_specs.len(),
                settings.packages.len(),
                settings.install_path.display(),
            ),
        ));
    }
    let mut spaces = Vec::new();
    for s in std::iter::once(settings).chain(settings.packages.iter()) {
        // Generic tests under `<test-path>/generic/` are macros too, as in dbt.
        let generic: Vec<std::path::PathBuf> = s
            .test_paths
            .iter()
            .map(|p| p.join("generic"))
            .filter(|p| p.is_dir())
            .collect();
        let files: Vec<(String, String)> = discover::sql_files(&project.root, &s.macro_paths)?
            .into_iter()
            .chain(discover::sql_files(&project.root, &generic)?)
            .map(|f| (f.display, f.text))
            .collect();
        spaces.push(jinja::NamespaceSource {
            name: s.name.clone(),
            files,
        });
    }
    let lib = jinja::MacroLibrary::new(spaces, &settings.name, settings.dispatch.clone()).map_err(
        |e| Error::Model {
            model: "macros".into(),
            file: match e.line {
                Some(l) => format!("{}:{l}", e.file),
                None => e.file.clone(),
            },
            message: e.message,
        },
    )?;
    Ok(Arc::new(lib))
}

/// The project's seeds, with their schemas named as dbt names them: a dbt
/// project's own `generate_schema_name` decides (seeds are nodes with
/// `resource_type` `seed`).
/// Jinja in the seeds' config is rendered with the project's vars overlaid
/// with `cli_vars` (`--vars`), as dbt renders `+enabled: "{{ var('x') }}"`.
pub fn named_seeds(
    project: &Project,
    cli_vars: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<crate::project::seeds::Seed>> {
    let lib = if project.settings.kind == ProjectKind::Dbt {
        Some(macro_library(project)?)
    } else {
        None
    };
    let mut vars = project.settings.vars.clone();
    vars.extend(cli_vars.clone());
    named_seeds_with(project, lib.as_ref(), &vars)
}

/// [`named_seeds`] with the macro library and the vars (the project's
/// overlaid with `--vars`) at hand.
pub(crate) fn named_seeds_with(
    project: &Project,
    lib: Option<&Arc<jinja::MacroLibrary>>,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<crate::project::seeds::Seed>> {
    let default_schema = &project.config.warehouse.default_schema;
    let Some(lib) = lib else {
        return crate::project::seeds::discover(project);
    };
    // dbt renders Jinja in dbt_project.yml values, seeds' as models' (`draft`).
    let render = |key: &str, text: &str| -> std::result::Result<serde_json::Value, String> {
        if !jinja::needs_rendering(text) {
            return Ok(serde_json::Value::String(text.to_string()));
        }
        let ctx = RenderContext {
            vars: vars.clone(),
            library: Some(lib.clone()),
            ..RenderContext::echo(&project.settings.name, default_schema)
        };
        jinja::render(&format!("dbt_project.yml (+{key})"), text, &ctx)
            .map(|r| yaml_scalar(r.sql.trim()))
            .map_err(|e| e.to_string())
    };
    let mut seeds = crate::project::seeds::discover_with(project, Some(&render))?;
    for s in &mut seeds {
        let package = s.package.as_deref().unwrap_or(&project.settings.name);
        let mut fqn = vec![serde_json::Value::from(package)];
        fqn.extend(
            s.rel_dirs
                .iter()
                .map(|d| serde_json::Value::from(d.as_str())),
        );
        fqn.push(serde_json::Value::from(s.name.as_str()));
        let node = serde_json::json!({
            "name": s.name,
            "resource_type": "seed",
            "package_name": package,
            "unique_id": format!("seed.{package}.{}", s.name),
            "fqn": fqn,
            "config": {"schema": s.custom_schema},
        });
        let named = naming_macro(
            lib,
            "generate_schema_name",
            s.custom_schema.as_deref(),
            node,
            default_schema,
            &project.target,
        )
        .map_err(|e| Error::config(&s.file, e.to_string()))?;
        if let Some(schema) = named {
            if !crate::warehouse::is_identifier(&schema) {
                return Err(Error::config(
                    &s.file,
                    format!("generate_schema_name gave `{schema}` for seed `{}`, which is not a valid schema name", s.name),
                ));
            }
            s.schema = schema;
        }
    }
    Ok(seeds)
}

/// A rendered config value as YAML would read it: booleans, numbers, text.
pub(crate) fn yaml_scalar(text: &str) -> serde_json::Value {
    match text {
        "True" | "true" => serde_json::Value::Bool(true),
        "False" | "false" => serde_json::Value::Bool(false),
        "None" | "none" | "null" | "" => serde_json::Value::Null,
        t => t
            .parse::<i64>()
            .map(serde_json::Value::from)
            .or_else(|_| t.parse::<f64>().map(serde_json::Value::from))
            .unwrap_or_else(|_| serde_json::Value::String(t.to_string())),
    }
}

/// dbt's node object for a model (what `generate_schema_name(custom, node)`
/// and `model` see).
fn node_json(
    project_name: &str,
    file: &SqlFile,
    config: &ModelConfig,
    resource_type: &str,
) -> serde_json::Value {
    let mut fqn = vec![serde_json::Value::from(project_name)];
    fqn.extend(
        file.rel_dirs
            .iter()
            .map(|d| serde_json::Value::from(d.as_str())),
    );
    fqn.push(serde_json::Value::from(file.name.as_str()));
    serde_json::json!({
        "name": file.name,
        "resource_type": resource_type,
        "package_name": project_name,
        "path": file.rel_path,
        "original_file_path": file.display,
        "unique_id": format!("{resource_type}.{project_name}.{}", file.name),
        "fqn": fqn,
        "tags": config.tags,
        "config": {
            "materialized": config.materialized.to_string(),
            "schema": config.schema,
            "alias": config.alias,
            "tags": config.tags,
            "enabled": config.enabled,
        },
    })
}

/// Calls the project's `generate_schema_name` / `generate_alias_name` override
/// (only when the project overrides it: dbt's defaults are computed in Rust).
pub(crate) fn naming_macro(
    library: &Arc<jinja::MacroLibrary>,
    macro_name: &str,
    custom: Option<&str>,
    node: serde_json::Value,
    target_schema: &str,
    target: &str,
) -> std::result::Result<Option<String>, jinja::JinjaError> {
    let overridden = [
        macro_name.to_string(),
        format!("sluice__{macro_name}"),
        format!("datafusion__{macro_name}"),
        format!("default__{macro_name}"),
    ]
    .iter()
    .any(|n| library.root_defines(n));
    if !overridden {
        return Ok(None);
    }
    let ctx = RenderContext {
        target_name: target.to_string(),
        library: Some(library.clone()),
        execute: true,
        ..RenderContext::echo("", target_schema)
    };
    let custom = match custom {
        Some(c) => minijinja::Value::from(c),
        None => minijinja::Value::from(()),
    };
    let text = format!("{{{{ {macro_name}(__custom, __node) }}}}");
    let r = jinja::render_with(
        &format!("<{macro_name}>"),
        &text,
        &ctx,
        &[
            ("__custom", custom),
            ("__node", minijinja::Value::from_serialize(&node)),
        ],
    )?;
    Ok(Some(r.sql.trim().to_string()))
}

fn jinja_error(model: &str, e: jinja::JinjaError) -> Error {
    Error::Model {
        model: model.to_string(),
        file: match e.line {
            Some(l) => format!("{}:{l}", e.file),
            None => e.file.clone(),
        },
        message: e.message,
    }
}

fn many(mut errors: Vec<Error>) -> Error {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        Error::Many(errors)
    }
}

/// Trailing semicolons and whitespace removed (the SQL is wrapped and planned).
fn clean_sql(sql: &str) -> String {
    let mut s = sql.trim_end();
    while let Some(rest) = s.strip_suffix(';') {
        s = rest.trim_end();
    }
    s.to_string()
}

pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces each occurrence's text with the given replacement.
pub(crate) fn apply_edits(sql: &str, edits: &[(deps::Occurrence, String)]) -> String {
    if edits.is_empty() {
        return sql.to_string();
    }
    let index = LineIndex::new(sql);
    let mut spans: Vec<(usize, usize, &str)> = edits
        .iter()
        .filter_map(|(o, r)| {
            let a = index.offset(o.start.0, o.start.1)?;
            let b = index.offset(o.end.0, o.end.1)?;
            Some((a, b, r.as_str()))
        })
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = sql.to_string();
    let mut last_start = usize::MAX;
    for (a, b, r) in spans {
        if b > last_start || a > b || b > out.len() {
            continue;
        }
        out.replace_range(a..b, r);
        last_start = a;
    }
    out
}

/// 1-based (line, column in chars) → byte offsets.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, line: u64, col: u64) -> Option<usize> {
        let start = *self.starts.get((line as usize).checked_sub(1)?)?;
        let rest = &self.text[start..];
        let col = (col as usize).checked_sub(1)?;
        match rest.char_indices().nth(col) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == col => Some(start + rest.len()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_and_edits() {
        let sql = "select *\nfrom a join b on a.x = b.x";
        let occ = deps::relation_occurrences(sql, &Default::default()).unwrap();
        let edits: Vec<_> = occ
            .into_iter()
            .map(|o| {
                let r = format!("s.{}", o.relation.parts.join("."));
                (o, r)
            })
            .collect();
        assert_eq!(
            apply_edits(sql, &edits),
            "select *\nfrom s.a join s.b on a.x = b.x"
        );
    }

    #[test]
    fn clean_sql_strips_semicolons() {
        assert_eq!(clean_sql("select 1 ;\n; \n"), "select 1");
    }
}
