//! Models: SQL files in the models folder, run in dependency order and
//! materialized as Delta tables or stored views, with data tests.
//!
//! [`compile::compile`] finds and renders the models and builds the DAG from
//! their SQL; [`select::select`] picks models dbt-style; [`run::run`] executes
//! them with bounded parallelism, materializing each ([`materialize`]) and
//! running data tests ([`datatest`]) and dbt unit tests ([`unittest`], each
//! before its model); [`records`] keeps the run in
//! `target/run_results.json` and `_sluice.runs`. Model `pre-hook` /
//! `post-hook`s run around each materialization and the project's
//! `on-run-start` / `on-run-end` around a run. [`freshness`] checks dbt
//! sources' freshness; [`analyses`] compiles analyses that never run. [`snapshot`] runs dbt
//! snapshots (SCD type 2 history tables), which compile with the models.

pub mod analyses;
pub mod compile;
pub mod config;
pub mod dag;
pub mod datatest;
pub mod dbt_macros;
pub mod discover;
pub mod freshness;
pub mod hooks;
mod introspect;
pub mod jinja;
pub mod lineage;
pub mod materialize;
pub mod openlineage;
pub mod pycompat;
pub mod records;
mod resolve;
pub mod run;
pub mod schema_yml;
pub mod select;
pub mod snapshot;
pub mod unittest;

pub use compile::{compile, CompileOptions, Compiled, Model};
pub use hooks::{ModelHook, ModelHooks};
pub use run::{NodeResult, RunObserver, RunReport, Status};

use crate::error::{Error, Result};
use crate::project::Project;
use crate::sql::Engine;
use std::sync::Arc;

/// `--select` / `--exclude` arguments.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub select: Vec<String>,
    pub exclude: Vec<String>,
}

impl Selection {
    /// Indices of the selected models, in execution order.
    pub fn apply(&self, compiled: &Compiled) -> Result<Vec<usize>> {
        let bad = |option: &'static str| {
            move |reason: select::SelectError| Error::BadSelection { option, reason }
        };
        let sel = select::Selector::parse(&self.select).map_err(bad("--select"))?;
        let exc = select::Selector::parse(&self.exclude).map_err(bad("--exclude"))?;
        select::select(&compiled.dag, &sel, &exc).map_err(bad("--select/--exclude"))
    }
}

/// What `execute` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// Models only (`run models`).
    Models,
    /// Tests only (`test`).
    Tests,
    /// Models, each followed by its tests; a failing test skips descendants (`build`, `run`).
    Build,
}

/// Runs the selected models and/or tests of a compiled project, then writes the
/// run records. The report lists every model and test; check
/// [`RunReport::success`].
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    project: &Project,
    engine: &Engine,
    compiled: Arc<Compiled>,
    selection: &Selection,
    steps: Steps,
    threads: usize,
    vars: &std::collections::BTreeMap<String, serde_json::Value>,
    command: &str,
    observer: &dyn RunObserver,
) -> Result<RunReport> {
    // Unit tests are selected by their model, or by their name.
    let (selection, unit_names) = split_unit_test_names(selection, &compiled);
    let selection = &selection;
    let models = if selection.select.is_empty() && !unit_names.is_empty() {
        Vec::new()
    } else {
        selection.apply(&compiled)?
    };
    let tests = if steps == Steps::Models {
        Vec::new()
    } else {
        let mut all = datatest::compile_tests(project, engine.warehouse(), &compiled, vars).await?;
        all.extend(unittest::compile_unit_tests(project, &compiled, vars)?);
        let no_selection =
            selection.select.is_empty() && selection.exclude.is_empty() && unit_names.is_empty();
        all.into_iter()
            .filter(|t| match t.model {
                _ if t.unit.is_some() && unit_names.contains(&t.name) => true,
                Some(m) => models.contains(&m),
                None => no_selection,
            })
            .collect()
    };
    let run_id = new_run_id();
    let opts = run::RunOptions {
        models: if steps == Steps::Tests {
            Vec::new()
        } else {
            models
        },
        tests,
        tests_block: steps == Steps::Build,
        threads,
        command: command.to_string(),
        retries: project.config.run.retries.unwrap_or(1),
    };
    tracing::debug!(
        "run {run_id}: {} models and {} tests selected of {} models, {threads} at once",
        opts.models.len(),
        opts.tests.len(),
        compiled.models.len()
    );
    let project_hooks = steps != Steps::Tests;
    if project_hooks {
        run_project_hooks(project, engine, &compiled, vars, "on-run-start")
            .await
            .map_err(|(_, e)| e)?;
    }
    let mut report = run::run(engine, compiled.clone(), opts, &run_id, observer).await;
    if project_hooks {
        if let Err((n, e)) = run_project_hooks(project, engine, &compiled, vars, "on-run-end").await
        {
            report.results.push(run::NodeResult {
                id: format!("{}-on-run-end-{n}", project.settings.name),
                kind: "operation",
                materialization: "hook".into(),
                status: Status::Error,
                rows: None,
                version: None,
                failures: None,
                started_at: chrono::Utc::now().to_rfc3339(),
                seconds: 0.0,
                message: Some(e.to_string()),
                inputs: Vec::new(),
                sql_hash: None,
                retries: 0,
                file: crate::project::DBT_PROJECT_FILE.into(),
            });
        }
    }
    records::write_run_results(&project.root, &project.settings.name, &report)?;
    records::append_runs(engine.warehouse(), &report).await?;
    tracing::debug!("run {run_id}: recorded in target/run_results.json and _sluice.runs");
    if steps != Steps::Tests {
        engine.warehouse().put_aliases(&compiled.aliases).await?;
    }
    Ok(report)
}

/// Runs the project's `on-run-start` or `on-run-end` hooks (`key`) outside a
/// model run (`sluice seed`); the project compiles (for `ref()` in them) only
/// when it has such hooks.
pub async fn project_hooks(
    project: &Project,
    engine: &Engine,
    vars: &std::collections::BTreeMap<String, serde_json::Value>,
    key: &str,
) -> Result<()> {
    let hooks = match key {
        "on-run-start" => &project.settings.on_run_start,
        _ => &project.settings.on_run_end,
    };
    if hooks.is_empty() {
        return Ok(());
    }
    let options = CompileOptions {
        vars: vars.clone(),
        ..Default::default()
    };
    let compiled = compile(project, engine, &options).await?;
    run_project_hooks(project, engine, &compiled, vars, key)
        .await
        .map_err(|(_, e)| e)
}

/// Runs the project's `on-run-start` or `on-run-end` hooks (`key`), rendered
/// with the project's vars; the first that fails stops them: its index
/// (from 0, as dbt numbers them) and an error naming it.
async fn run_project_hooks(
    project: &Project,
    engine: &Engine,
    compiled: &Compiled,
    cli_vars: &std::collections::BTreeMap<String, serde_json::Value>,
    key: &str,
) -> std::result::Result<(), (usize, Error)> {
    let hooks = match key {
        "on-run-start" => &project.settings.on_run_start,
        _ => &project.settings.on_run_end,
    };
    let mut vars = project.settings.vars.clone();
    vars.extend(cli_vars.clone());
    for (n, text) in hooks.iter().enumerate() {
        let origin = format!(
            "{key} hook {} in {}",
            n + 1,
            crate::project::DBT_PROJECT_FILE
        );
        let fail = |message: String| {
            (
                n,
                Error::config(
                    project.root.join(crate::project::DBT_PROJECT_FILE),
                    format!("{key}[{n}] failed: {message}"),
                ),
            )
        };
        let sql = compiled
            .render_text(&origin, text, &vars)
            .map_err(|e| fail(e.to_string()))?;
        for stmt in crate::sql::split_statements(&sql) {
            let result = async {
                match engine.execute(&stmt).await? {
                    crate::sql::Executed::Rows(df) => {
                        df.collect().await.map(|_| ()).map_err(Error::from)
                    }
                    _ => Ok(()),
                }
            }
            .await;
            result.map_err(|e| fail(format!("{e}\n  hook SQL: {}", stmt.trim())))?;
        }
        tracing::debug!("{origin} ran");
    }
    Ok(())
}

/// `--select` without the specs that pick unit tests rather than models, and
/// the names of the unit tests they pick: a unit test's name (when no model
/// has it), `tag:x` when a unit test has tag `x` (the spec stays for models
/// when a model has it too) and `test_type:unit` (every unit test).
fn split_unit_test_names(selection: &Selection, compiled: &Compiled) -> (Selection, Vec<String>) {
    let units: Vec<(&str, Vec<String>)> = compiled
        .properties
        .iter()
        .flat_map(|p| p.unit_tests.iter())
        .map(|u| {
            let tags = match u.config.as_ref().and_then(|c| c.get("tags")) {
                Some(serde_json::Value::String(t)) => vec![t.clone()],
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            (u.name.as_str(), tags)
        })
        .collect();
    let mut names = Vec::new();
    let mut select = Vec::new();
    for value in &selection.select {
        let mut kept = Vec::new();
        for spec in value.split_whitespace() {
            if spec == "test_type:unit" {
                names.extend(units.iter().map(|(n, _)| n.to_string()));
            } else if let Some(tag) = spec.strip_prefix("tag:") {
                let tagged: Vec<String> = units
                    .iter()
                    .filter(|(_, tags)| tags.iter().any(|t| t == tag))
                    .map(|(n, _)| n.to_string())
                    .collect();
                let model_tagged = compiled
                    .models
                    .iter()
                    .any(|m| m.config.tags.iter().any(|t| t == tag));
                if tagged.is_empty() || model_tagged {
                    kept.push(spec);
                }
                names.extend(tagged);
            } else if units.iter().any(|(n, _)| *n == spec) && compiled.find(spec).is_err() {
                names.push(spec.to_string());
            } else {
                kept.push(spec);
            }
        }
        if !kept.is_empty() {
            select.push(kept.join(" "));
        }
    }
    (
        Selection {
            select,
            exclude: selection.exclude.clone(),
        },
        names,
    )
}

/// A new run id, in the format of load ids ([`crate::names::new_id`]).
pub fn new_run_id() -> String {
    crate::names::new_id()
}
