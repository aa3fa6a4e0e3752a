//! Running models and tests: a bounded-parallel scheduler over the DAG.
//!
//! Each selected model waits for its selected upstream models (and, in `build`
//! mode, for their blocking tests). A failure skips exactly the descendants of
//! the failed model; everything else runs to the end. Tests run as soon as every
//! model they read is built.

use super::compile::Compiled;
use super::config::Materialization;
use super::datatest::{self, DataTest};
use super::materialize::{self, Materialized};
use crate::sql::Engine;
use crate::warehouse::Warehouse;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Models to run (indices into the compiled models, any order).
    pub models: Vec<usize>,
    /// Tests to run.
    pub tests: Vec<DataTest>,
    /// Whether a failing test skips the descendants of its model (`build`).
    pub tests_block: bool,
    /// Models run at once.
    pub threads: usize,
    /// The command, for run records (`run`, `build`, `test`).
    pub command: String,
    /// How often a model failed by a worker is run again, unless its own
    /// `retries` says otherwise.
    pub retries: u32,
}

/// How a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A model was built.
    Success,
    /// A model or a test query failed to run.
    Error,
    /// Not run because something upstream failed.
    Skipped,
    /// A test found no failing rows.
    Pass,
    /// A test found failing rows.
    Fail,
    /// A `severity: warn` test found failing rows.
    Warn,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Skipped => "skipped",
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
        }
    }

    /// Whether this status makes the command fail.
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Error | Status::Fail | Status::Skipped)
    }
}

/// The version of a table a model read.
#[derive(Debug, Clone, Serialize)]
pub struct InputVersion {
    pub table: String,
    /// `None` for views (they have no version; what they read is listed too).
    pub version: Option<u64>,
}

/// The result of one model or test.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// `schema.table` for models, the test name for tests.
    pub id: String,
    /// `model` or `test`.
    pub kind: &'static str,
    /// Materialization (models) or test kind.
    pub materialization: String,
    pub status: Status,
    pub rows: Option<u64>,
    /// Table version the model committed.
    pub version: Option<u64>,
    /// Failing rows (tests).
    pub failures: Option<u64>,
    pub started_at: String,
    pub seconds: f64,
    pub message: Option<String>,
    pub inputs: Vec<InputVersion>,
    pub sql_hash: Option<String>,
    pub file: String,
    /// Attempts after the first (a model retried after a worker failed).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    pub seconds: f64,
    /// Every model and test, in the order they ended (execution order).
    pub results: Vec<NodeResult>,
}

impl RunReport {
    /// True when nothing failed.
    pub fn success(&self) -> bool {
        !self.results.iter().any(|r| r.status.is_failure())
    }
}

/// Receives progress.
pub trait RunObserver: Send + Sync {
    /// Before anything runs: the run's id and every node the run will report,
    /// as `(id, kind)` (`model` or `test`), in dependency order.
    fn planned(&self, _run_id: &str, _nodes: &[(String, &'static str)]) {}
    fn started(&self, _id: &str, _kind: &str) {}
    /// A node ended (also a node skipped because something upstream failed):
    /// the `done`-th of `total` to end.
    fn finished(&self, _result: &NodeResult, _done: usize, _total: usize) {}
    /// A model failed because a worker failed and runs again (`attempt` of
    /// `allowed` retries).
    fn retrying(&self, _id: &str, _attempt: u32, _allowed: u32, _error: &str) {}
}

/// Ignores progress.
pub struct Quiet;
impl RunObserver for Quiet {}

#[derive(Clone, Copy)]
enum Task {
    Model(usize),
    Test(usize),
}

/// Runs `opts.models` and `opts.tests` with at most `opts.threads` at once.
pub async fn run(
    engine: &Engine,
    compiled: Arc<Compiled>,
    opts: RunOptions,
    run_id: &str,
    observer: &dyn RunObserver,
) -> RunReport {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    engine.set_aliases(compiled.aliases.clone());

    // Tasks: models first (by topological position), then tests.
    let selected: BTreeSet<usize> = opts.models.iter().copied().collect();
    let mut order: Vec<usize> = selected.iter().copied().collect();
    order.sort_by_key(|m| compiled.dag.topo_position(*m));
    let mut tasks: Vec<Task> = order.iter().map(|m| Task::Model(*m)).collect();
    let mut task_of_model = vec![usize::MAX; compiled.models.len()];
    for (t, m) in order.iter().enumerate() {
        task_of_model[*m] = t;
    }
    let tests = Arc::new(opts.tests.clone());
    for i in 0..tests.len() {
        tasks.push(Task::Test(i));
    }
    let n = tasks.len();
    let mut waits_on: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (t, task) in tasks.iter().enumerate() {
        match task {
            Task::Model(m) => {
                for p in compiled.dag.parents(*m) {
                    if task_of_model[*p] != usize::MAX {
                        waits_on[t].push(task_of_model[*p]);
                    }
                }
            }
            Task::Test(i) => {
                for d in &tests[*i].deps {
                    if task_of_model[*d] != usize::MAX {
                        waits_on[t].push(task_of_model[*d]);
                    }
                }
            }
        }
    }
    if opts.tests_block {
        // A model also waits for the blocking tests of its selected ancestors'
        // direct parents: tests declared on a parent that read only the parent's
        // own lineage (a test reading a descendant cannot block it).
        for (ti, test) in tests.iter().enumerate() {
            let Some(m) = test.model else { continue };
            if test.warn_only {
                continue;
            }
            if test.unit.is_some() {
                // A unit test runs before its model, as in dbt.
                if task_of_model[m] != usize::MAX {
                    waits_on[task_of_model[m]].push(order.len() + ti);
                }
                continue;
            }
            let reads_only_lineage = test
                .deps
                .iter()
                .all(|d| *d == m || compiled.dag.ancestors(m, None).contains(d));
            if !reads_only_lineage {
                continue;
            }
            let test_task = order.len() + ti;
            for c in compiled.dag.children(m) {
                if task_of_model[*c] != usize::MAX {
                    waits_on[task_of_model[*c]].push(test_task);
                }
            }
        }
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut remaining = vec![0usize; n];
    for (t, w) in waits_on.iter_mut().enumerate() {
        w.sort();
        w.dedup();
        remaining[t] = w.len();
        for d in w.iter() {
            dependents[*d].push(t);
        }
    }

    let planned: Vec<(String, &'static str)> = tasks
        .iter()
        .map(|t| match t {
            Task::Model(m) => (compiled.models[*m].id(), "model"),
            Task::Test(i) => (tests[*i].name.clone(), "test"),
        })
        .collect();
    observer.planned(run_id, &planned);

    let mut results: Vec<Option<NodeResult>> = vec![None; n];
    // Runs of each task after its first (models failed by a worker).
    let mut attempts: Vec<u32> = vec![0; n];
    // Task indices in the order they ended: the report's order.
    let mut ended: Vec<usize> = Vec::with_capacity(n);
    let mut ready: Vec<usize> = (0..n).filter(|t| remaining[*t] == 0).collect();
    ready.reverse();
    let mut running = tokio::task::JoinSet::new();
    let threads = opts.threads.max(1);
    let mut done = 0usize;
    loop {
        while running.len() < threads {
            let Some(t) = ready.pop() else { break };
            let engine = engine.clone();
            let compiled = compiled.clone();
            let tests = tests.clone();
            let run_id = run_id.to_string();
            let (id, kind) = match &tasks[t] {
                Task::Model(m) => (compiled.models[*m].id(), "model"),
                Task::Test(i) => (tests[*i].name.clone(), "test"),
            };
            tracing::debug!("run {run_id}: {kind} {id} starts");
            observer.started(&id, kind);
            let task = tasks[t];
            running.spawn(async move {
                use futures::FutureExt;
                let work = async {
                    match task {
                        Task::Model(m) => run_model(&engine, &compiled, m, &run_id).await,
                        Task::Test(i) => run_one_test(&engine, &compiled, &tests[i]).await,
                    }
                };
                // A bug must not lose the node: a panic becomes its error.
                let result = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
                    Ok(r) => r,
                    Err(_) => {
                        let mut r = skipped(&task, &compiled, &tests, "");
                        r.status = Status::Error;
                        r.message = Some(format!(
                            "internal error (a bug in sluice, please report it) while running {kind} `{id}`"
                        ));
                        r
                    }
                };
                (t, result)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (t, mut result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // Only cancellation reaches here (panics are caught in the task).
                tracing::error!("a task stopped unexpectedly: {e}");
                continue;
            }
        };
        if let Task::Model(m) = tasks[t] {
            let allowed = compiled.models[m].config.retries.unwrap_or(opts.retries);
            // Only a model that committed nothing runs again.
            let transient = result.status == Status::Error
                && result.version.is_none()
                && result
                    .message
                    .as_deref()
                    .is_some_and(crate::sql::cluster::is_transient);
            if transient && attempts[t] < allowed {
                attempts[t] += 1;
                let message = result.message.clone().unwrap_or_default();
                let wait =
                    Duration::from_secs(2 * u64::from(attempts[t])).min(Duration::from_secs(30));
                tracing::warn!(
                    "run {run_id}: model {} failed ({message}); retry {} of {allowed} in {}s",
                    result.id,
                    attempts[t],
                    wait.as_secs()
                );
                observer.retrying(&result.id, attempts[t], allowed, &message);
                let engine = engine.clone();
                let compiled = compiled.clone();
                let run_id = run_id.to_string();
                running.spawn(async move {
                    use futures::FutureExt;
                    tokio::time::sleep(wait).await;
                    let work = run_model(&engine, &compiled, m, &run_id);
                    let result = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
                        Ok(r) => r,
                        Err(_) => {
                            let mut r = skipped(&Task::Model(m), &compiled, &[], "");
                            r.status = Status::Error;
                            r.message = Some(format!(
                                "internal error (a bug in sluice, please report it) while running model `{}`",
                                compiled.models[m].id()
                            ));
                            r
                        }
                    };
                    (t, result)
                });
                continue;
            }
            result.retries = attempts[t];
            if attempts[t] > 0 && result.status == Status::Error {
                if let Some(m) = result.message.as_mut() {
                    m.push_str(&format!(" (after {} retries)", attempts[t]));
                }
            }
        }
        let failed = result.status.is_failure() && result.status != Status::Skipped;
        let blocks = failed && matches!(tasks[t], Task::Model(_) | Task::Test(_));
        done += 1;
        tracing::debug!(
            "run {run_id}: {} {} {} in {:.3}s{}",
            result.kind,
            result.id,
            result.status.as_str(),
            result.seconds,
            match (result.rows, result.version) {
                (Some(rows), Some(v)) => format!(", {rows} rows, committed v{v}"),
                (Some(rows), None) => format!(", {rows} rows"),
                _ => String::new(),
            }
        );
        observer.finished(&result, done, n);
        let failed_id = result.id.clone();
        results[t] = Some(result);
        ended.push(t);
        if blocks {
            // Skip every task that (transitively) waits on this one.
            let mut stack = dependents[t].clone();
            while let Some(d) = stack.pop() {
                if results[d].is_some() {
                    continue;
                }
                let r = skipped(&tasks[d], &compiled, &tests, &failed_id);
                done += 1;
                observer.finished(&r, done, n);
                results[d] = Some(r);
                ended.push(d);
                stack.extend(dependents[d].iter().copied());
            }
        } else {
            for d in dependents[t].clone() {
                remaining[d] = remaining[d].saturating_sub(1);
                if remaining[d] == 0 && results[d].is_none() {
                    ready.push(d);
                }
            }
        }
    }
    // In execution order: what ended, in the order it ended, then what never
    // ran (in dependency order).
    let never_ran: Vec<usize> = (0..n).filter(|t| results[*t].is_none()).collect();
    let report_order: Vec<usize> = ended.into_iter().chain(never_ran).collect();
    RunReport {
        run_id: run_id.to_string(),
        command: opts.command.clone(),
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        results: report_order
            .into_iter()
            .map(|t| {
                results[t].take().unwrap_or_else(|| {
                    let mut r = skipped(&tasks[t], &compiled, &tests, "");
                    r.message = Some("not run: the run stopped before it".into());
                    r
                })
            })
            .collect(),
    }
}

fn skipped(task: &Task, compiled: &Compiled, tests: &[DataTest], because: &str) -> NodeResult {
    let (id, kind, mat, file) = match task {
        Task::Model(m) => {
            let model = &compiled.models[*m];
            (
                model.id(),
                "model",
                model.config.materialized.to_string(),
                model.file.display.clone(),
            )
        }
        Task::Test(i) => (
            tests[*i].name.clone(),
            "test",
            tests[*i].kind.clone(),
            tests[*i].declared_in.clone(),
        ),
    };
    NodeResult {
        id,
        kind,
        materialization: mat,
        status: Status::Skipped,
        rows: None,
        version: None,
        failures: None,
        started_at: chrono::Utc::now().to_rfc3339(),
        seconds: 0.0,
        message: Some(format!("skipped because `{because}` failed")),
        inputs: Vec::new(),
        sql_hash: None,
        retries: 0,
        file,
    }
}

async fn run_model(engine: &Engine, compiled: &Compiled, m: usize, run_id: &str) -> NodeResult {
    let started_at = chrono::Utc::now().to_rfc3339();
    let t0 = Instant::now();
    // A template that asks the warehouse renders now, its upstream built.
    let late;
    let model = if compiled.models[m].jit {
        match compiled.rerender(engine, m).await {
            Ok(fresh) => {
                late = fresh;
                &late
            }
            Err(e) => {
                let model = &compiled.models[m];
                return NodeResult {
                    id: model.id(),
                    kind: "model",
                    materialization: model.config.materialized.to_string(),
                    status: Status::Error,
                    rows: None,
                    version: None,
                    failures: None,
                    started_at,
                    seconds: t0.elapsed().as_secs_f64(),
                    message: Some(e.to_string()),
                    inputs: Vec::new(),
                    sql_hash: None,
                    retries: 0,
                    file: model.file.display.clone(),
                };
            }
        }
    } else {
        &compiled.models[m]
    };
    let inputs = input_versions(engine.warehouse(), &model.inputs).await;
    // An ephemeral model runs nothing, so neither do its hooks (as in dbt).
    let ephemeral = model.config.materialized == Materialization::Ephemeral;
    let pre: &[super::config::Hook] = if ephemeral {
        &[]
    } else {
        &model.config.pre_hook
    };
    let materialized = match run_hooks(engine, model, "pre-hook", pre).await {
        Ok(()) => materialize::materialize(engine, model, run_id).await,
        Err(e) => Err(e),
    };
    let (status, mat, message) = match materialized {
        Err(e) => (Status::Error, Materialized::default(), Some(e.to_string())),
        Ok(mat) => match post_hooks(engine, model, &mat, run_id).await {
            Ok(()) => (Status::Success, mat, None),
            // The table is committed: the report keeps its version and says so.
            Err(e) => {
                let message = committed_then_failed(model, &mat, e);
                (Status::Error, mat, Some(message))
            }
        },
    };
    NodeResult {
        id: model.id(),
        kind: "model",
        materialization: if model.config.materialized == Materialization::Incremental
            && !model.is_incremental
        {
            "incremental (full)".to_string()
        } else {
            model.config.materialized.to_string()
        },
        status,
        rows: mat.rows,
        version: mat.version,
        failures: None,
        started_at,
        seconds: t0.elapsed().as_secs_f64(),
        message,
        inputs,
        sql_hash: Some(model.sql_hash.clone()),
        file: model.file.display.clone(),
        retries: 0,
    }
}

/// The model's `post-hook`s, then the engine's hooks.
async fn post_hooks(
    engine: &Engine,
    model: &super::Model,
    mat: &Materialized,
    run_id: &str,
) -> crate::Result<()> {
    if !model.config.post_hook.is_empty() && model.config.materialized != Materialization::Ephemeral
    {
        // A hook may change the table: later models read it afresh.
        engine.unpin(&model.schema, &model.table);
        run_hooks(engine, model, "post-hook", &model.config.post_hook).await?;
    }
    super::hooks::after_materialize(engine, model, mat, run_id).await
}

/// Runs a model's `pre-hook`s or `post-hook`s in order; the first that fails
/// fails the model, named with where it was configured.
async fn run_hooks(
    engine: &Engine,
    model: &super::Model,
    what: &str,
    hooks: &[super::config::Hook],
) -> crate::Result<()> {
    for (n, h) in hooks.iter().enumerate() {
        for stmt in crate::sql::split_statements(&h.sql) {
            let run = async {
                match engine.execute(&stmt).await? {
                    crate::sql::Executed::Rows(df) => {
                        df.collect().await.map(|_| ()).map_err(Into::into)
                    }
                    _ => Ok(()),
                }
            };
            let r: crate::Result<()> = run.await;
            if let Err(e) = r {
                return Err(crate::Error::Model {
                    model: model.id(),
                    file: model.file.display.clone(),
                    message: format!(
                        "{what} {} of {} (from {}) failed: {e}\n  hook SQL: {}",
                        n + 1,
                        hooks.len(),
                        h.origin,
                        stmt.trim()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// What a model that failed after its write left: the version committed (or
/// the view stored), then what failed.
fn committed_then_failed(model: &super::Model, mat: &Materialized, e: crate::Error) -> String {
    let what = match e {
        crate::Error::Model { message, .. } => message,
        other => other.to_string(),
    };
    let done = match mat.version {
        Some(v) => format!("committed version {v} of table {}", model.id()),
        None if model.config.materialized == Materialization::View => {
            format!("stored view {}", model.id())
        }
        None => format!("left table {} unchanged", model.id()),
    };
    format!(
        "model `{}` ({}): {done}, then failed: {what}",
        model.id(),
        model.file.display
    )
}

async fn run_one_test(engine: &Engine, compiled: &Compiled, test: &DataTest) -> NodeResult {
    let started_at = chrono::Utc::now().to_rfc3339();
    let t0 = Instant::now();
    let inputs: Vec<(String, String)> = test
        .deps
        .iter()
        .map(|d| {
            let m = &compiled.models[*d];
            (m.schema.clone(), m.table.clone())
        })
        .collect();
    let inputs = input_versions(engine.warehouse(), &inputs).await;
    let outcome = match &test.unit {
        Some(unit) => super::unittest::run(engine, compiled, unit).await,
        None => datatest::run_test(engine, test).await,
    };
    let (status, failures, message) = match outcome {
        Ok(o) if o.failures == 0 => (Status::Pass, Some(0), None),
        Ok(o) if test.unit.is_some() => (Status::Fail, Some(o.failures), Some(o.sample)),
        Ok(o) => (
            if test.warn_only {
                Status::Warn
            } else {
                Status::Fail
            },
            Some(o.failures),
            Some(format!(
                "{} failing row{}{}\n{}",
                o.failures,
                if o.failures == 1 { "" } else { "s" },
                match test.model {
                    Some(m) => format!(" in {}", compiled.models[m].id()),
                    None => String::new(),
                },
                o.sample
            )),
        ),
        Err(e) => (
            Status::Error,
            None,
            Some(format!("test `{}` ({}): {e}", test.name, test.declared_in)),
        ),
    };
    NodeResult {
        id: test.name.clone(),
        kind: "test",
        materialization: test.kind.clone(),
        status,
        rows: None,
        version: None,
        failures,
        started_at,
        seconds: t0.elapsed().as_secs_f64(),
        message,
        inputs,
        sql_hash: Some(super::compile::sha256_hex(&test.sql)),
        retries: 0,
        file: test.declared_in.clone(),
    }
}

/// The current version of every input (views have none).
async fn input_versions(wh: &Warehouse, inputs: &[(String, String)]) -> Vec<InputVersion> {
    let mut out = Vec::with_capacity(inputs.len());
    for (s, t) in inputs {
        let version = wh.latest_version(s, t).await.ok().flatten();
        out.push(InputVersion {
            table: format!("{s}.{t}"),
            version,
        });
    }
    out
}
