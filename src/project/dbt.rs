//! What the models layer needs from a project, from either `sluice.toml` or a dbt
//! project's `dbt_project.yml` (so a dbt project runs unchanged).
//!
//! Folder configuration is kept as a JSON tree: keys that are model config
//! (`materialized`, `schema`, ...) apply to the folder and below; other
//! table-valued keys are subfolders. dbt's `+` prefix is accepted and stripped.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file that marks a dbt project.
pub const DBT_PROJECT_FILE: &str = "dbt_project.yml";

/// Which kind of project file the models come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectKind {
    /// `sluice.toml`.
    Sluice,
    /// `dbt_project.yml` without `sluice.toml`.
    Dbt,
}

/// Everything about models, seeds and tests of a project.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    pub kind: ProjectKind,
    /// Project name (dbt: `name`), the root of `models:` in dbt_project.yml.
    pub name: String,
    /// Absolute folders holding `.sql` models (and `schema.yml` files).
    pub model_paths: Vec<PathBuf>,
    /// Absolute folders holding seed CSV files.
    pub seed_paths: Vec<PathBuf>,
    /// Absolute folders holding singular tests.
    pub test_paths: Vec<PathBuf>,
    /// Absolute folders holding snapshots (`{% snapshot %}` blocks in `.sql`
    /// files, `snapshots:` entries in `.yml` files).
    pub snapshot_paths: Vec<PathBuf>,
    /// Absolute folders holding Jinja macro files (`{% macro %}`), global to models.
    pub macro_paths: Vec<PathBuf>,
    /// Absolute folders holding analyses: SQL that compiles and never runs.
    pub analysis_paths: Vec<PathBuf>,
    /// `var()` values.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Folder config tree for models (JSON object).
    pub models: serde_json::Value,
    /// Folder config tree for seeds (JSON object).
    pub seeds: serde_json::Value,
    /// Folder config tree for snapshots (JSON object).
    pub snapshots: serde_json::Value,
    /// Materialization of models that set none.
    pub default_materialization: String,
    /// The project folder.
    pub root: PathBuf,
    /// Installed dbt packages (`dbt_packages/`), each read like a project.
    pub packages: Vec<ModelSettings>,
    /// What `packages.yml` / `dependencies.yml` asks for.
    pub package_specs: Vec<super::packages::PackageSource>,
    /// Where packages are installed (`packages-install-path`, default `dbt_packages`).
    pub install_path: PathBuf,
    /// `dispatch:` config: macro namespace → package search order.
    pub dispatch: BTreeMap<String, Vec<String>>,
    /// `on-run-start` SQL (Jinja), run before `run` / `build`.
    pub on_run_start: Vec<String>,
    /// `on-run-end` SQL (Jinja), run after `run` / `build`.
    pub on_run_end: Vec<String>,
}

impl ModelSettings {
    /// Settings of a `sluice.toml` project.
    pub(crate) fn from_sluice(root: &Path, cfg: &super::ProjectConfig) -> Result<Self> {
        let vars = cfg
            .vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), toml_to_json(v))))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(ModelSettings {
            kind: ProjectKind::Sluice,
            name: cfg.project.name.clone(),
            model_paths: vec![root.join(&cfg.project.models)],
            seed_paths: vec![root.join(&cfg.project.seeds)],
            test_paths: vec![root.join(&cfg.project.tests)],
            snapshot_paths: vec![root.join(&cfg.project.snapshots)],
            macro_paths: vec![root.join("macros")],
            analysis_paths: vec![root.join("analyses")],
            vars,
            models: normalise_tree(toml_to_json(&toml::Value::Table(cfg.models.clone()))),
            seeds: serde_json::Value::Object(Default::default()),
            snapshots: normalise_tree(toml_to_json(&toml::Value::Table(cfg.snapshots.clone()))),
            default_materialization: "table".into(),
            root: root.to_path_buf(),
            packages: Vec::new(),
            package_specs: Vec::new(),
            install_path: root.join("dbt_packages"),
            dispatch: BTreeMap::new(),
            on_run_start: Vec::new(),
            on_run_end: Vec::new(),
        })
    }

    /// Settings of a dbt project (`dbt_project.yml`) with its installed packages.
    pub(crate) fn from_dbt(root: &Path) -> Result<Self> {
        let mut s = Self::from_dbt_package(root)?;
        s.package_specs = super::packages::read_specs(root)?;
        let mut packages = super::packages::installed(&s.install_path)?;
        packages.retain(|p| p.name != s.name);
        let mut seen = std::collections::HashSet::new();
        for p in &packages {
            if !seen.insert(p.name.clone()) {
                return Err(Error::config(
                    &s.install_path,
                    format!(
                        "two installed packages are named `{}`; remove one of them from {}",
                        p.name,
                        s.install_path.display()
                    ),
                ));
            }
        }
        // The root's `models: {<package>: ...}` (and seeds, snapshots) config
        // wins over the package's own, as in dbt.
        let raw = read_dbt_project(root)?;
        for p in &mut packages {
            for (mine, theirs) in [
                (&mut p.models, &raw.models),
                (&mut p.seeds, &raw.seeds),
                (&mut p.snapshots, &raw.snapshots),
            ] {
                let over = project_tree(theirs.clone(), &p.name);
                deep_merge(mine, over);
            }
        }
        s.packages = packages;
        Ok(s)
    }

    /// The vars a node of `package` (`None`: the root project) sees, as dbt
    /// scopes them: the package's own vars, then the root project's global
    /// vars, then the root's vars under the package's (or root's) name.
    pub fn vars_for(&self, package: Option<&str>) -> BTreeMap<String, serde_json::Value> {
        let scopes: std::collections::HashSet<&str> = self
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .chain([self.name.as_str()])
            .collect();
        let mut out = BTreeMap::new();
        if let Some(p) = package.and_then(|n| self.packages.iter().find(|p| p.name == n)) {
            for (k, v) in &p.vars {
                if k == &p.name {
                    continue;
                }
                out.insert(k.clone(), v.clone());
            }
            if let Some(serde_json::Value::Object(m)) = p.vars.get(&p.name) {
                out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        for (k, v) in &self.vars {
            if !scopes.contains(k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        let scope = package.unwrap_or(&self.name);
        if let Some(serde_json::Value::Object(m)) = self.vars.get(scope) {
            out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Settings of one dbt project folder (a package or the root), without packages.
    pub(crate) fn from_dbt_package(root: &Path) -> Result<Self> {
        let file = root.join(DBT_PROJECT_FILE);
        let p = read_dbt_project(root)?;
        let paths = |v: Option<Vec<String>>, d: &str| -> Vec<PathBuf> {
            v.unwrap_or_else(|| vec![d.to_string()])
                .into_iter()
                .map(|p| root.join(p))
                .collect()
        };
        let vars = match p.vars {
            Some(serde_json::Value::Object(m)) => m.into_iter().collect(),
            Some(serde_json::Value::Null) | None => BTreeMap::new(),
            Some(other) => {
                return Err(Error::config(
                    &file,
                    format!("`vars` must be a mapping of names to values, not {other}"),
                ))
            }
        };
        let name = p.name.unwrap_or_else(|| "dbt_project".to_string());
        let mut dispatch = BTreeMap::new();
        for d in p.dispatch.unwrap_or_default() {
            dispatch.insert(d.macro_namespace, d.search_order);
        }
        let on_run_start = run_hooks(p.on_run_start, &file, "on-run-start")?;
        let on_run_end = run_hooks(p.on_run_end, &file, "on-run-end")?;
        Ok(ModelSettings {
            root: root.to_path_buf(),
            packages: Vec::new(),
            package_specs: Vec::new(),
            install_path: root.join(p.packages_install_path.as_deref().unwrap_or("dbt_packages")),
            dispatch,
            kind: ProjectKind::Dbt,
            model_paths: paths(p.model_paths.or(p.source_paths), "models"),
            seed_paths: paths(p.seed_paths.or(p.data_paths), "seeds"),
            test_paths: paths(p.test_paths, "tests"),
            snapshot_paths: paths(p.snapshot_paths, "snapshots"),
            macro_paths: paths(p.macro_paths, "macros"),
            analysis_paths: paths(p.analysis_paths, "analyses"),
            vars,
            models: project_tree(p.models, &name),
            seeds: project_tree(p.seeds, &name),
            snapshots: project_tree(p.snapshots, &name),
            name,
            default_materialization: "view".into(),
            on_run_start,
            on_run_end,
        })
    }

    /// The folder config that applies to `rel_dir` (folders below the models
    /// root, outermost first): every level's config keys, inner levels winning.
    pub fn folder_config(
        tree: &serde_json::Value,
        rel_dir: &[String],
        is_config_key: impl Fn(&str) -> bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let mut node = Some(tree);
        let mut depth = 0;
        while let Some(serde_json::Value::Object(map)) = node {
            for (k, v) in map {
                if is_config_key(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            node = rel_dir.get(depth).and_then(|d| map.get(d));
            depth += 1;
            if depth > rel_dir.len() {
                break;
            }
        }
        out
    }
}

/// The subset of `dbt_project.yml` sluice reads (other keys are ignored, as
/// profiles and packages have no meaning here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DbtProject {
    name: Option<String>,
    model_paths: Option<Vec<String>>,
    /// dbt < 1.0 name of model-paths.
    source_paths: Option<Vec<String>>,
    seed_paths: Option<Vec<String>>,
    /// dbt < 1.0 name of seed-paths.
    data_paths: Option<Vec<String>>,
    test_paths: Option<Vec<String>>,
    snapshot_paths: Option<Vec<String>>,
    macro_paths: Option<Vec<String>>,
    analysis_paths: Option<Vec<String>>,
    vars: Option<serde_json::Value>,
    models: Option<serde_json::Value>,
    seeds: Option<serde_json::Value>,
    snapshots: Option<serde_json::Value>,
    packages_install_path: Option<String>,
    dispatch: Option<Vec<DispatchEntry>>,
    on_run_start: Option<serde_json::Value>,
    on_run_end: Option<serde_json::Value>,
}

/// One entry of `dispatch:` in dbt_project.yml.
#[derive(Debug, Deserialize)]
struct DispatchEntry {
    macro_namespace: String,
    search_order: Vec<String>,
}

/// `on-run-start: "sql"` or a list of SQL texts; empty ones are dropped.
fn run_hooks(v: Option<serde_json::Value>, file: &Path, key: &str) -> Result<Vec<String>> {
    let items = match v {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a,
        Some(other) => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            serde_json::Value::String(s) if s.trim().is_empty() => {}
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Null => {}
            other => {
                return Err(Error::config(
                    file,
                    format!("`{key}` must be SQL text or a list of SQL texts, not {other}"),
                ))
            }
        }
    }
    Ok(out)
}

fn read_dbt_project(root: &Path) -> Result<DbtProject> {
    let file = root.join(DBT_PROJECT_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    serde_yaml::from_str(&text).map_err(|e| {
        Error::config(
            &file,
            match e.location() {
                Some(l) => format!("line {}: {e}", l.line()),
                None => e.to_string(),
            },
        )
    })
}

/// `over` laid over `base`: mappings merge key by key, anything else is replaced.
fn deep_merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// `models: {my_project: {...}, +materialized: x}` → the tree of this project
/// (config keys at the top level apply to every model).
fn project_tree(v: Option<serde_json::Value>, name: &str) -> serde_json::Value {
    let Some(serde_json::Value::Object(top)) = v.map(normalise_tree) else {
        return serde_json::Value::Object(Default::default());
    };
    let mut out = serde_json::Map::new();
    for (k, v) in &top {
        if k != name && !v.is_object() {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(serde_json::Value::Object(project)) = top.get(name) {
        for (k, v) in project {
            out.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(out)
}

/// Strips dbt's `+` prefix from every key of the tree.
fn normalise_tree(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = k.strip_prefix('+').map(str::to_string).unwrap_or(k);
                    (k, normalise_tree(v))
                })
                .collect(),
        ),
        other => other,
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbt_project_tree_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DBT_PROJECT_FILE),
            "name: shop\nversion: '1.0'\nprofile: shop\nmodel-paths: ['m']\nsnapshot-paths: ['snaps']\nvars:\n  start: '2024-01-01'\nmodels:\n  shop:\n    +materialized: table\n    staging:\n      +materialized: view\n      +schema: stg\n",
        )
        .unwrap();
        let s = ModelSettings::from_dbt(dir.path()).unwrap();
        assert_eq!(s.model_paths, vec![dir.path().join("m")]);
        assert_eq!(s.seed_paths, vec![dir.path().join("seeds")]);
        assert_eq!(s.snapshot_paths, vec![dir.path().join("snaps")]);
        assert_eq!(s.vars["start"], "2024-01-01");
        let is_key = |k: &str| k == "materialized" || k == "schema";
        let root = ModelSettings::folder_config(&s.models, &[], is_key);
        assert_eq!(root["materialized"], "table");
        let stg = ModelSettings::folder_config(&s.models, &["staging".into()], is_key);
        assert_eq!(stg["materialized"], "view");
        assert_eq!(stg["schema"], "stg");
        let deep = ModelSettings::folder_config(&s.models, &["staging".into(), "x".into()], is_key);
        assert_eq!(deep["materialized"], "view");
        let other = ModelSettings::folder_config(&s.models, &["marts".into()], is_key);
        assert_eq!(other["materialized"], "table");
    }

    #[test]
    fn run_hooks_and_analysis_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DBT_PROJECT_FILE),
            "name: shop\non-run-start: \"create schema if not exists audit\"\non-run-end: ['select 1', '', 'select 2']\nanalysis-paths: ['queries']\n",
        )
        .unwrap();
        let s = ModelSettings::from_dbt(dir.path()).unwrap();
        assert_eq!(s.on_run_start, vec!["create schema if not exists audit"]);
        assert_eq!(s.on_run_end, vec!["select 1", "select 2"]);
        assert_eq!(s.analysis_paths, vec![dir.path().join("queries")]);
        std::fs::write(
            dir.path().join(DBT_PROJECT_FILE),
            "name: shop\non-run-end: {sql: x}\n",
        )
        .unwrap();
        let e = ModelSettings::from_dbt(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`on-run-end` must be SQL text"), "{e}");
    }

    #[test]
    fn bad_yaml_names_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DBT_PROJECT_FILE),
            "name: shop\nmodels:\n  - [\n",
        )
        .unwrap();
        let e = ModelSettings::from_dbt(dir.path()).unwrap_err().to_string();
        assert!(e.contains("dbt_project.yml") && e.contains("line"), "{e}");
    }
}
