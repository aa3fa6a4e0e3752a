//! dbt snapshots (slowly changing dimensions, type 2): each run compares a
//! query's rows with the current rows of a Delta table and records every
//! change as a new version, closing the version it replaces.
//!
//! Definitions come from `{% snapshot %}` blocks in `.sql` files under the
//! snapshot folders, and from `snapshots:` entries (with `relation:`) in
//! `.yml` files under the snapshot and model folders ([`parse`]). Their
//! configuration ([`config`]) layers the project's `snapshots:` tree, the YAML
//! `config:` and the block's `config(...)`, as dbt does.
//!
//! The semantics are dbt-core 1.10's with dbt-duckdb's merge ([`sql`] builds
//! the same staging query dbt does); [`run`] applies the staged changes to
//! the table as one Delta merge, so a run commits everything or nothing.
//!
//! The project compiles its snapshots with its models
//! ([`crate::models::compile`]): `ref('my_snapshot')` in a model is the
//! snapshot's table.

pub mod config;
pub mod parse;
pub mod run;
pub mod sql;

pub use config::{CheckCols, HardDeletes, MetaColumns, SnapshotConfig, Strategy};
pub use run::{report, run_snapshots, SnapshotOutcome, SnapshotResult};

use super::jinja::{self, RenderContext};
use super::resolve::Names;
use crate::error::{Error, Result};
use crate::models::Compiled;
use crate::project::{ModelSettings, Project};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One snapshot of the project, its configuration resolved.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The name `ref()` and `--select` use.
    pub name: String,
    pub schema: String,
    pub table: String,
    pub config: SnapshotConfig,
    /// Where it is defined, `path:line`, for messages.
    pub location: String,
    /// Display path of the defining file.
    pub file: String,
    /// The Jinja template of the query (a block's body, padded with newlines
    /// so lines match the file; `select * from {{ ref(..) }}` for YAML).
    pub template: String,
}

impl Snapshot {
    /// `schema.table`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::Config {
            file: self.location.clone().into(),
            message: format!("snapshot `{}`: {message}", self.name),
        }
    }
}

/// A definition found in a file, before its configuration is resolved.
struct Found {
    name: String,
    location: String,
    file: String,
    rel_dirs: Vec<String>,
    template: String,
    /// `config:` of a YAML entry.
    yml_config: Option<serde_json::Map<String, serde_json::Value>>,
    description: Option<String>,
}

/// Every enabled snapshot of `project`. `vars` are the project's vars with
/// `--vars` over them; `macros` the project's macros (a block may call them in
/// its `config()`).
pub fn discover(
    project: &Project,
    vars: &BTreeMap<String, serde_json::Value>,
    macros: Option<Arc<jinja::MacroLibrary>>,
    target: &str,
) -> Result<Vec<Snapshot>> {
    let settings = &project.settings;
    let root = &project.root;
    let display = |p: &std::path::Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    check_tree(project)?;
    let mut found: Vec<Found> = Vec::new();
    // Properties of block snapshots, from YAML entries without `relation`.
    let mut props: BTreeMap<String, (String, parse::YmlSnapshot)> = BTreeMap::new();
    for dir in &settings.snapshot_paths {
        for file in crate::project::files_with_extension(dir, &["sql"])? {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let shown = display(&file);
            for b in parse::blocks(&shown, &text)? {
                found.push(Found {
                    location: format!("{shown}:{}", b.line),
                    name: b.name,
                    file: shown.clone(),
                    rel_dirs: parse::rel_dirs(dir, &file),
                    template: b.body,
                    yml_config: None,
                    description: None,
                });
            }
        }
    }
    let mut yml_dirs = settings.snapshot_paths.clone();
    for p in &settings.model_paths {
        if !yml_dirs.contains(p) {
            yml_dirs.push(p.clone());
        }
    }
    for dir in &yml_dirs {
        for file in crate::project::files_with_extension(dir, &["yml", "yaml"])? {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let shown = display(&file);
            for e in parse::yml_entries(&shown, &text)? {
                let location = format!("{shown}:{}", e.line);
                match &e.relation {
                    Some(r) => {
                        let template = parse::relation_template(r).map_err(|m| Error::Config {
                            file: location.clone().into(),
                            message: format!("snapshot `{}`: {m}", e.name),
                        })?;
                        found.push(Found {
                            name: e.name.clone(),
                            location,
                            file: shown.clone(),
                            rel_dirs: parse::rel_dirs(dir, &file),
                            template,
                            yml_config: e.config.clone(),
                            description: e.description.clone(),
                        });
                    }
                    None => {
                        props.insert(e.name.clone(), (location, e));
                    }
                }
            }
        }
    }
    let mut out: Vec<Snapshot> = Vec::new();
    let mut errors = Vec::new();
    for mut f in found {
        if let Some((_, p)) = props.remove(&f.name) {
            f.yml_config = p.config;
            f.description = f.description.or(p.description);
        }
        match resolve(f, settings, vars, macros.clone(), target, project) {
            Ok(Some(s)) => {
                if let Some(prev) = out.iter().find(|p| p.name == s.name || p.id() == s.id()) {
                    errors.push(s.err(format!(
                        "`{}` is also defined at {} (as `{}`); snapshot names and tables must be unique",
                        s.name,
                        prev.location,
                        prev.id()
                    )));
                } else {
                    out.push(s);
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if let Some((name, (location, _))) = props.into_iter().next() {
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        errors.push(Error::Config {
            file: location.into(),
            message: format!(
                "snapshot `{name}` has no `relation:` and no {{% snapshot {name} %}} block{}; add relation: ref('...') or the block",
                crate::error::did_you_mean(&name, names)
            ),
        });
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// The configuration of one definition; `None` when disabled.
fn resolve(
    f: Found,
    settings: &ModelSettings,
    vars: &BTreeMap<String, serde_json::Value>,
    macros: Option<Arc<jinja::MacroLibrary>>,
    target: &str,
    project: &Project,
) -> Result<Option<Snapshot>> {
    let err = |message: String| Error::Config {
        file: f.location.clone().into(),
        message: format!("snapshot `{}`: {message}", f.name),
    };
    let mut raw = config::RawConfig::default();
    let folder =
        ModelSettings::folder_config(&settings.snapshots, &f.rel_dirs, config::is_config_key);
    raw.apply(&folder)
        .map_err(|e| err(format!("snapshots config in the project file: {e}")))?;
    if let Some(c) = &f.yml_config {
        raw.apply(c).map_err(|e| err(format!("config: {e}")))?;
    }
    let default_schema = &project.config.warehouse.default_schema;
    let rendered = render(
        &f.file,
        &f.template,
        None,
        vars,
        target,
        default_schema,
        &f.name,
        &f.name,
        macros.clone(),
    )?;
    let map: serde_json::Map<String, serde_json::Value> = rendered.config.into_iter().collect();
    raw.apply(&map).map_err(|e| err(format!("config(): {e}")))?;
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    if raw.description.is_none() {
        raw.description = f.description.clone();
    }
    // dbt 1.9+: `schema` names the schema as models' does (the project's
    // `generate_schema_name`, else `<target schema>_<schema>`); the legacy
    // `target_schema` is used as written.
    let legacy = raw.target_schema.is_some();
    let custom = raw.schema.clone();
    let config = raw.validate().map_err(|e| err(e.to_string()))?;
    let mut schema = config
        .schema
        .clone()
        .unwrap_or_else(|| default_schema.clone());
    if project.is_dbt() && !legacy {
        schema = match &custom {
            Some(c) => format!("{default_schema}_{}", c.trim()),
            None => default_schema.clone(),
        };
        if let Some(lib) = &macros {
            let node = serde_json::json!({
                "name": f.name,
                "resource_type": "snapshot",
                "package_name": settings.name,
                "unique_id": format!("snapshot.{}.{}", settings.name, f.name),
                "fqn": [settings.name.clone(), f.name.clone()],
                "config": {"schema": custom},
            });
            let named = super::compile::naming_macro(
                lib,
                "generate_schema_name",
                custom.as_deref(),
                node,
                default_schema,
                target,
            )
            .map_err(|e| err(e.to_string()))?;
            if let Some(n) = named {
                schema = n;
            }
        }
        if !crate::warehouse::is_identifier(&schema) {
            return Err(err(format!(
                "generate_schema_name gave `{schema}`, which is not a valid schema name"
            )));
        }
    }
    let table = config.alias.clone().unwrap_or_else(|| f.name.clone());
    if !crate::warehouse::is_identifier(&table) {
        return Err(err(format!(
            "`{table}` is not a valid table name (lowercase letters, digits and _); rename the snapshot or set alias"
        )));
    }
    Ok(Some(Snapshot {
        name: f.name,
        schema,
        table,
        config,
        location: f.location,
        file: f.file,
        template: f.template,
    }))
}

/// Renders a snapshot's template: with `names`, against the compiled
/// project's relations; without, with `ref()`/`source()` echoing their
/// arguments (only `config()` matters then). The one place snapshots call
/// the template engine.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render(
    file: &str,
    template: &str,
    names: Option<&Arc<Names>>,
    vars: &BTreeMap<String, serde_json::Value>,
    target: &str,
    default_schema: &str,
    this: &str,
    name: &str,
    macros: Option<Arc<jinja::MacroLibrary>>,
) -> Result<jinja::Rendered> {
    let ctx = match names {
        Some(n) => {
            super::compile::render_context(n, vars, target, default_schema, this, name, false)
        }
        None => RenderContext {
            vars: vars.clone(),
            this: this.to_string(),
            target_name: target.to_string(),
            model_name: name.to_string(),
            library: macros,
            ..RenderContext::echo(name, default_schema)
        },
    };
    Ok(jinja::render(file, template, &ctx)?)
}

/// Which snapshots `--select` / `--exclude` name (all when `select` is
/// empty), in definition order. A spec is a snapshot name, a glob (`orders_*`)
/// or `tag:x`; several in one argument are separated by spaces. A spec that
/// matches nothing is an error with a suggestion.
pub fn select(snapshots: &[Snapshot], select: &[String], exclude: &[String]) -> Result<Vec<usize>> {
    let matches = |spec: &str, s: &Snapshot| -> bool {
        match spec.strip_prefix("tag:") {
            Some(t) => s.config.tags.iter().any(|x| x == t),
            None => {
                let spec = spec.strip_prefix("snapshot:").unwrap_or(spec);
                glob_match(spec, &s.name) || spec == s.id()
            }
        }
    };
    let resolve = |option: &'static str, specs: &[String]| -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for spec in specs.iter().flat_map(|a| a.split_whitespace()) {
            let hit: Vec<usize> = (0..snapshots.len())
                .filter(|&i| matches(spec, &snapshots[i]))
                .collect();
            if hit.is_empty() {
                return Err(Error::Usage(format!(
                    "{option}: `{spec}` matches no snapshot{}; snapshots: {}",
                    crate::error::did_you_mean(spec, snapshots.iter().map(|s| s.name.as_str())),
                    if snapshots.is_empty() {
                        "none (define them in {% snapshot %} blocks under the snapshot folders, or snapshots: in a .yml)".to_string()
                    } else {
                        snapshots
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
            out.extend(hit);
        }
        Ok(out)
    };
    let chosen = if select.is_empty() {
        (0..snapshots.len()).collect()
    } else {
        resolve("--select", select)?
    };
    let excluded = resolve("--exclude", exclude)?;
    Ok((0..snapshots.len())
        .filter(|i| chosen.contains(i) && !excluded.contains(i))
        .collect())
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The project's vars with `--vars` over them (what snapshot templates see).
pub fn vars(
    project: &Project,
    cli: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    let mut v = project.settings.vars.clone();
    v.extend(cli.clone());
    v
}

/// The snapshots `sluice build` runs, and when.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildSnapshots {
    /// Snapshots that read no model: run before the models (after seeds).
    pub before: Vec<usize>,
    /// Snapshots that read models: run after the models.
    pub after: Vec<usize>,
    /// Seeds the snapshots read (loaded first, as `dbt build` does).
    pub seeds: Vec<String>,
}

/// The snapshots `sluice build` runs with `selection`: every snapshot
/// without a selection, else those the selected models read. A snapshot
/// that reads no model runs before the models; one that reads models runs
/// after them, which is an error when a selected model reads it in turn (the
/// model would see the previous run's snapshot).
pub async fn for_build(
    project: &Project,
    compiled: &Compiled,
    warehouse: &crate::warehouse::Warehouse,
    selection: &super::Selection,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<BuildSnapshots> {
    let models = selection.apply(compiled)?;
    let reads = |s: &Snapshot, m: usize| {
        compiled.models[m]
            .inputs
            .iter()
            .any(|(schema, table)| *schema == s.schema && *table == s.table)
    };
    let no_selection = selection.select.is_empty() && selection.exclude.is_empty();
    let seeds = super::compile::named_seeds_with(project, compiled.names.library.as_ref(), vars)?;
    let mut out = BuildSnapshots::default();
    for (i, s) in compiled.snapshots.iter().enumerate() {
        let readers: Vec<usize> = models.iter().copied().filter(|&m| reads(s, m)).collect();
        if !no_selection && readers.is_empty() {
            continue;
        }
        let (sql, refs) = compiled.render_snapshot(s, vars)?;
        for seed in read_seeds(&seeds, &sql, &refs, compiled) {
            if !out.seeds.contains(&seed) {
                out.seeds.push(seed);
            }
        }
        let upstream = compiled
            .test_dependencies(warehouse, &sql, &refs)
            .await
            .map_err(|e| s.err(e))?;
        if upstream.is_empty() {
            out.before.push(i);
            continue;
        }
        if let Some(&m) = readers.first() {
            return Err(s.err(format!(
                "it reads model `{}` and model `{}` reads it, so `sluice build` cannot run it before or after the models; run `sluice run models --select +{}`, then `sluice snapshot --select {}`, then build the rest",
                compiled.models[upstream[0]].id(),
                compiled.models[m].id(),
                compiled.models[upstream[0]].name,
                s.name
            )));
        }
        out.after.push(i);
    }
    Ok(out)
}

/// The seeds a snapshot's SQL reads: by `ref()`, or by name (`seed` in the
/// default schema, or `schema.seed`).
fn read_seeds(
    seeds: &[crate::project::seeds::Seed],
    sql: &str,
    refs: &[String],
    compiled: &Compiled,
) -> Vec<String> {
    let relations = crate::sql::deps::relation_occurrences(sql, &compiled.functions)
        .map(|o| o.into_iter().map(|o| o.relation.parts).collect::<Vec<_>>())
        .unwrap_or_default();
    seeds
        .iter()
        .filter(|seed| {
            refs.contains(&seed.name)
                || relations.iter().any(|parts| match parts.as_slice() {
                    [one] => *one == seed.name && seed.schema == compiled.default_schema,
                    [.., schema, table] => *table == seed.name && *schema == seed.schema,
                    [] => false,
                })
        })
        .map(|seed| seed.name.clone())
        .collect()
}

/// Every value in the project file's snapshot tree is a snapshot config key
/// (a table is a folder, or `snapshot_meta_column_names`): a typo is an error,
/// not a silently ignored key.
fn check_tree(project: &Project) -> Result<()> {
    let file = match project.settings.kind {
        crate::project::ProjectKind::Dbt => project.root.join(crate::project::DBT_PROJECT_FILE),
        crate::project::ProjectKind::Sluice => project.root.join(crate::project::PROJECT_FILE),
    };
    let mut pending = vec![(Vec::<String>::new(), &project.settings.snapshots)];
    while let Some((path, node)) = pending.pop() {
        let serde_json::Value::Object(map) = node else {
            continue;
        };
        for (key, value) in map {
            if config::is_config_key(key) {
                continue;
            }
            if value.is_object() {
                let mut sub = path.clone();
                sub.push(key.clone());
                pending.push((sub, value));
                continue;
            }
            let mut at = path.clone();
            at.push(key.clone());
            return Err(Error::Config {
                file,
                message: format!(
                    "snapshots config `{}`: unknown snapshot config `{key}`{}; allowed: {}",
                    at.join("."),
                    crate::error::did_you_mean(key, config::KEYS.iter().copied()),
                    config::KEYS.join(", ")
                ),
            });
        }
    }
    Ok(())
}
