//! Models: SQL files in the models folder, run in dependency order and
//! materialized as Delta tables or stored views, with data tests.
//!
//! [`compile::compile`] finds and renders the models and builds the DAG from
//! their SQL; [`select::select`] picks models dbt-style; [`run::run`] executes
//! them with bounded parallelism, materializing each ([`materialize`]) and
//! running data tests ([`datatest`]); [`records`] keeps the run in
//! `target/run_results.json` and `_sluice.runs`. [`snapshot`] runs dbt
//! snapshots (SCD type 2 history tables), which compile with the models.

pub mod compile;
pub mod config;
pub mod dag;
pub mod datatest;
pub mod dbt_macros;
pub mod discover;
pub mod hooks;
mod introspect;
pub mod jinja;
pub mod materialize;
pub mod pycompat;
pub mod records;
mod resolve;
pub mod run;
pub mod schema_yml;
pub mod select;
pub mod snapshot;

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
    let models = selection.apply(&compiled)?;
    let tests = if steps == Steps::Models {
        Vec::new()
    } else {
        let all = datatest::compile_tests(project, engine.warehouse(), &compiled, vars).await?;
        let no_selection = selection.select.is_empty() && selection.exclude.is_empty();
        all.into_iter()
            .filter(|t| match t.model {
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
    };
    tracing::debug!(
        "run {run_id}: {} models and {} tests selected of {} models, {threads} at once",
        opts.models.len(),
        opts.tests.len(),
        compiled.models.len()
    );
    let report = run::run(engine, compiled.clone(), opts, &run_id, observer).await;
    records::write_run_results(&project.root, &project.settings.name, &report)?;
    records::append_runs(engine.warehouse(), &report).await?;
    tracing::debug!("run {run_id}: recorded in target/run_results.json and _sluice.runs");
    if steps != Steps::Tests {
        engine.warehouse().put_aliases(&compiled.aliases).await?;
    }
    Ok(report)
}

/// A new run id, in the format of load ids ([`crate::names::new_id`]).
pub fn new_run_id() -> String {
    crate::names::new_id()
}
