//! OpenLineage events of a model run (`[lineage]` in sluice.toml): the
//! command is a parent run (`<project>.command.<command>`, [`CommandRun`]);
//! each model, seed and
//! snapshot a run of job `<project>.model.<schema.table>` (`seed.`, `snapshot.`) (START when it starts,
//! COMPLETE or FAIL when it ends) with its inputs and its output (schema,
//! column lineage, rows written); each data test a run of job
//! `<project>.test.<name>` whose inputs carry the test as a data-quality
//! assertion. Events are sent in the background and never fail the run; a
//! run's START is sent before its end.

use super::compile::Compiled;
use super::lineage::{project_lineage, ProjectLineage};
use super::run::{NodeResult, RunObserver, Status};
use crate::error::{Error, Result};
use crate::lineage::openlineage::{
    self as ol, Assertion, ColumnLineage, Dataset, Emitter, EventType, InputField, Job,
    LineageConfig, QualityMetrics, RunInfo, TransformKind,
};
use crate::project::Project;
use crate::sql::lineage::Kind;
use crate::sql::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The longest the end of a command waits for undelivered events.
const DRAIN: Duration = Duration::from_secs(30);

/// The emitter of `[lineage]`, `None` when it sends nowhere.
pub fn emitter(project: &Project) -> Result<Option<Emitter>> {
    let config: LineageConfig = project.section("lineage")?;
    Emitter::new(&config, &project.root)
        .map_err(|m| Error::config(project.root.join("sluice.toml"), m))
}

/// The run of one command (`<project>.command.<command>`): the parent of
/// every run the command makes (loads, models, tests, materializations).
/// Every event is sent in the background; [`CommandRun::end`] waits at most
/// 30 s for what is still being sent.
#[derive(Debug)]
pub struct CommandRun {
    pub emitter: Emitter,
    pub job: Job,
    pub run: RunInfo,
    /// The START send of the command (its END is sent after it).
    start: Mutex<Option<JoinHandle<()>>>,
    /// Every other send still going.
    sends: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CommandRun {
    /// Starts sending the command's START; `None` without `[lineage]`.
    pub async fn start(project: &Project, command: &str) -> Result<Option<CommandRun>> {
        let Some(emitter) = emitter(project)? else {
            return Ok(None);
        };
        let job = Job {
            namespace: emitter.namespace().to_string(),
            name: format!(
                "{}.command.{}",
                project.settings.name,
                command.replace(' ', "_")
            ),
            sql: None,
            job_type: "COMMAND",
        };
        let run = RunInfo::new();
        let (e, j, r) = (emitter.clone(), job.clone(), run.clone());
        let start =
            tokio::spawn(async move { e.emit_run(EventType::Start, &j, &r, &[], &[], None).await });
        Ok(Some(CommandRun {
            emitter,
            job,
            run,
            start: Mutex::new(Some(start)),
            sends: Arc::new(Mutex::new(Vec::new())),
        }))
    }

    /// A run this command makes.
    pub fn child(&self) -> RunInfo {
        RunInfo::child_of(&self.job, &self.run)
    }

    /// Sends `events` in order, in the background.
    pub fn send(&self, events: Vec<serde_json::Value>) {
        let e = self.emitter.clone();
        self.track(tokio::spawn(async move {
            for ev in &events {
                e.emit(ev).await;
            }
        }));
    }

    fn track(&self, h: JoinHandle<()>) {
        if let Ok(mut s) = self.sends.lock() {
            s.push(h);
        }
    }

    /// Sends COMPLETE, or FAIL with `error`, after the START; then waits at
    /// most 30 s for every send still going (and gives those up).
    pub async fn end(&self, error: Option<&str>) {
        let kind = if error.is_some() {
            EventType::Fail
        } else {
            EventType::Complete
        };
        let start = self.start.lock().ok().and_then(|mut s| s.take());
        let (e, j, r, why) = (
            self.emitter.clone(),
            self.job.clone(),
            self.run.clone(),
            error.map(str::to_string),
        );
        self.track(tokio::spawn(async move {
            if let Some(s) = start {
                let _ = s.await;
            }
            e.emit_run(kind, &j, &r, &[], &[], why.as_deref()).await
        }));
        let mut handles: Vec<JoinHandle<()>> = match self.sends.lock() {
            Ok(mut s) => s.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let n = handles.len();
        let wait = futures::future::join_all(handles.iter_mut());
        if tokio::time::timeout(DRAIN, wait).await.is_err() {
            let pending = handles.iter().filter(|h| !h.is_finished()).count();
            tracing::warn!(
                "lineage: {pending} of {n} event sends still retrying after {}s; given up (the command itself is unaffected)",
                DRAIN.as_secs()
            );
            for h in handles {
                h.abort();
            }
        }
    }
}

fn transform(k: Kind) -> TransformKind {
    match k {
        Kind::Copied => TransformKind::Copied,
        Kind::Transformed => TransformKind::Transformed,
        Kind::Aggregated => TransformKind::Aggregated,
        Kind::Filter => TransformKind::Filter,
    }
}

/// Background sends, in order per run.
#[derive(Default)]
struct Sends {
    /// The START send of each run still going, by node id.
    started: HashMap<String, JoinHandle<()>>,
    all: Vec<JoinHandle<()>>,
}

/// The events of one command.
pub struct RunLineage {
    emitter: Emitter,
    project: String,
    /// Namespace of the warehouse's datasets (its URI).
    datasets: String,
    parent_job: Job,
    parent_run: RunInfo,
    lineage: ProjectLineage,
    /// SQL of each model, by `schema.table`.
    sql: HashMap<String, String>,
    runs: Mutex<HashMap<String, RunInfo>>,
    sends: Mutex<Sends>,
    /// The command's list of sends (drained by [`CommandRun::end`]).
    all: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl RunLineage {
    /// The events of the nodes `command` runs. `scratch` is an engine of its
    /// own (tracing columns plans every model with it).
    pub async fn start(
        project: &Project,
        scratch: &Engine,
        compiled: &Compiled,
        command: &CommandRun,
    ) -> Result<Arc<RunLineage>> {
        let emitter = command.emitter.clone();
        let lineage = match project_lineage(compiled, scratch).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("lineage: columns not traced: {e}");
                ProjectLineage::default()
            }
        };
        let rl = Arc::new(RunLineage {
            datasets: scratch.warehouse().root().to_string(),
            project: project.settings.name.clone(),
            parent_run: command.run.clone(),
            parent_job: command.job.clone(),
            lineage,
            sql: compiled
                .models
                .iter()
                .map(|m| (m.id(), m.sql.clone()))
                .collect(),
            runs: Mutex::new(HashMap::new()),
            sends: Mutex::new(Sends::default()),
            all: command.sends.clone(),
            emitter,
        });
        Ok(rl)
    }

    /// Forwards to `inner` and sends the events of each node.
    pub fn observer<'a>(self: &'a Arc<Self>, inner: &'a dyn RunObserver) -> Observer<'a> {
        Observer {
            inner,
            events: self,
        }
    }

    fn job(&self, id: &str, kind: &str) -> Job {
        let (name, job_type) = match kind {
            "test" => (format!("{}.test.{id}", self.project), "TEST"),
            "seed" => (format!("{}.seed.{id}", self.project), "SEED"),
            "snapshot" => (format!("{}.snapshot.{id}", self.project), "SNAPSHOT"),
            _ => (format!("{}.model.{id}", self.project), "MODEL"),
        };
        Job {
            namespace: self.emitter.namespace().to_string(),
            name,
            sql: self.sql.get(id).cloned(),
            job_type,
        }
    }

    /// The namespace of a dataset: the warehouse's, or the scheme of files
    /// read directly (`file://`, `s3://`).
    fn namespace_of(&self, relation: &str) -> String {
        match relation.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://"),
            None => self.datasets.clone(),
        }
    }

    /// A dataset of the warehouse, with its columns when a model makes it.
    fn dataset(&self, relation: &str) -> Dataset {
        let mut d = Dataset::new(self.datasets.clone(), relation);
        if let Some(m) = self.lineage.models.get(relation) {
            d.fields = m
                .columns
                .iter()
                .zip(&m.types)
                .map(|((c, _), t)| ol::Field::new(c.clone(), t.clone()))
                .collect();
        }
        d
    }

    fn output(&self, relation: &str, rows: Option<u64>) -> Dataset {
        let mut d = self.dataset(relation);
        if let Some(m) = self.lineage.models.get(relation) {
            d.column_lineage = m
                .columns
                .iter()
                .map(|(c, _)| (c, self.lineage.stored_deps(relation, c)))
                .filter(|(_, deps)| !deps.is_empty())
                .map(|(c, deps)| ColumnLineage {
                    field: c.clone(),
                    inputs: deps
                        .iter()
                        .map(|(o, k)| InputField {
                            namespace: self.namespace_of(&o.relation),
                            name: o.relation.clone(),
                            field: o.column.clone(),
                            kind: transform(*k),
                        })
                        .collect(),
                })
                .collect();
        }
        d.output_rows = rows;
        if rows.is_some() {
            d.quality = Some(QualityMetrics {
                row_count: rows,
                ..Default::default()
            });
        }
        d
    }

    /// The input datasets of a model: the relations its columns come from
    /// (files too), else the tables its run read.
    fn inputs(&self, id: &str, result: Option<&NodeResult>) -> Vec<Dataset> {
        let mut names: Vec<String> = Vec::new();
        if let Some(m) = self.lineage.models.get(id) {
            for (c, _) in &m.columns {
                for o in self.lineage.stored_deps(id, c).keys() {
                    if !names.contains(&o.relation) {
                        names.push(o.relation.clone());
                    }
                }
            }
        }
        if let Some(r) = result {
            for i in &r.inputs {
                if !names.contains(&i.table) {
                    names.push(i.table.clone());
                }
            }
        }
        names
            .iter()
            .filter(|n| n.as_str() != id)
            .map(|n| {
                if n.contains("://") {
                    Dataset::new(
                        n.split("://")
                            .next()
                            .map(|s| format!("{s}://"))
                            .unwrap_or_default(),
                        n.clone(),
                    )
                } else {
                    self.dataset(n)
                }
            })
            .collect()
    }

    fn spawn_start(&self, id: &str, kind: &str) {
        let run = RunInfo::child_of(&self.parent_job, &self.parent_run);
        if let Ok(mut r) = self.runs.lock() {
            r.insert(id.to_string(), run.clone());
        }
        let job = self.job(id, kind);
        let inputs = if kind == "test" {
            Vec::new()
        } else {
            self.inputs(id, None)
        };
        let e = self.emitter.clone();
        let h = tokio::spawn(async move {
            e.emit_run(EventType::Start, &job, &run, &inputs, &[], None)
                .await
        });
        if let Ok(mut s) = self.sends.lock() {
            s.started.insert(id.to_string(), h);
        }
    }

    fn spawn_end(&self, result: &NodeResult) {
        let id = result.id.as_str();
        let kind = result.kind;
        let run = self
            .runs
            .lock()
            .ok()
            .and_then(|mut r| r.remove(id))
            .unwrap_or_else(|| RunInfo::child_of(&self.parent_job, &self.parent_run));
        let job = self.job(id, kind);
        let failed = result.status.is_failure();
        let (inputs, outputs) = if kind == "test" {
            let success = matches!(result.status, Status::Pass | Status::Warn);
            let inputs = result
                .inputs
                .iter()
                .map(|i| {
                    let mut d = self.dataset(&i.table);
                    d.assertions = vec![Assertion {
                        assertion: id.to_string(),
                        success,
                        column: None,
                    }];
                    d
                })
                .collect();
            (inputs, Vec::new())
        } else if result.status == Status::Skipped {
            (Vec::new(), Vec::new())
        } else if self.lineage.models.get(id).is_some_and(|m| m.ephemeral) {
            // Not stored: nothing is written.
            (self.inputs(id, Some(result)), Vec::new())
        } else {
            let out = if failed {
                Vec::new()
            } else {
                vec![self.output(id, result.rows)]
            };
            (self.inputs(id, Some(result)), out)
        };
        let (kind_of_event, error) = if failed || result.status == Status::Skipped {
            let why = result
                .message
                .clone()
                .unwrap_or_else(|| format!("{} {}", result.kind, result.status.as_str()));
            (EventType::Fail, Some(why))
        } else {
            (EventType::Complete, None)
        };
        let e = self.emitter.clone();
        let start = self
            .sends
            .lock()
            .ok()
            .and_then(|mut s| s.started.remove(id));
        let h = tokio::spawn(async move {
            if let Some(start) = start {
                let _ = start.await;
            } else {
                // A node that never started (skipped): its START first.
                e.emit_run(EventType::Start, &job, &run, &[], &[], None)
                    .await;
            }
            e.emit_run(
                kind_of_event,
                &job,
                &run,
                &inputs,
                &outputs,
                error.as_deref(),
            )
            .await;
        });
        if let Ok(mut s) = self.sends.lock() {
            s.all.push(h);
        }
        if let Ok(mut a) = self.all.lock() {
            if let Ok(mut s) = self.sends.lock() {
                a.append(&mut s.all);
            }
        }
    }

    /// Hands the sends still going to the command ([`CommandRun::end`]
    /// waits for them).
    pub fn finish(&self) {
        if let (Ok(mut a), Ok(mut s)) = (self.all.lock(), self.sends.lock()) {
            a.extend(s.started.drain().map(|(_, h)| h));
            a.append(&mut s.all);
        }
    }
}

/// A [`RunObserver`] that also sends the events.
pub struct Observer<'a> {
    inner: &'a dyn RunObserver,
    events: &'a Arc<RunLineage>,
}

impl RunObserver for Observer<'_> {
    fn planned(&self, run_id: &str, nodes: &[(String, &'static str)]) {
        self.inner.planned(run_id, nodes)
    }

    fn started(&self, id: &str, kind: &str) {
        self.events.spawn_start(id, kind);
        self.inner.started(id, kind)
    }

    fn finished(&self, result: &NodeResult, done: usize, total: usize) {
        self.events.spawn_end(result);
        self.inner.finished(result, done, total)
    }

    fn retrying(&self, id: &str, attempt: u32, allowed: u32, error: &str) {
        self.inner.retrying(id, attempt, allowed, error)
    }
}
