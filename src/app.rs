//! The composition root: an engine over a project's warehouse with every
//! extension installed. The engine (`sql`) knows no extension; the feature
//! store installs its `online` schema, `historical_features` and its model
//! hook here. The CLI, the server and tests build their engines with
//! [`engine`].

use crate::error::Result;
use crate::features::FeatureSettings;
use crate::load::{LoadObserver, LoadReport};
use crate::models::{Compiled, Selection};
use crate::project::Project;
use crate::sql::cluster::ClusterOptions;
use crate::sql::{Engine, EngineOptions};
use crate::warehouse::Warehouse;

/// An engine over `warehouse` for `project`: the project's default schema,
/// online store (`[online]`), feature services (`[feature_services.*]`) and
/// workers (`[cluster] workers`).
pub async fn engine(project: &Project, warehouse: Warehouse) -> Result<Engine> {
    engine_with(project, warehouse, &EngineOptions::default()).await
}

/// [`engine`] with explicit session settings.
pub async fn engine_with(
    project: &Project,
    warehouse: Warehouse,
    options: &EngineOptions,
) -> Result<Engine> {
    let settings = FeatureSettings::from_project(project, warehouse.clone())?;
    let mut options = options.clone();
    if options.cluster.is_none() {
        let workers = ClusterOptions::parse_workers(&project.config.cluster.workers)?;
        if !workers.is_empty() {
            options.cluster = Some(ClusterOptions::new(workers));
        }
    }
    if let Some(c) = options.cluster.as_mut() {
        if c.settings.is_empty() {
            c.settings = project
                .config
                .cluster
                .settings
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect();
        }
    }
    let builder =
        Engine::builder(warehouse, &project.config.warehouse.default_schema).options(&options);
    crate::features::install(builder, settings, Default::default())
        .build()
        .await
}

/// An engine over `warehouse` without a project: the embedded online store,
/// no feature services.
pub async fn bare_engine(warehouse: Warehouse, default_schema: &str) -> Result<Engine> {
    let settings = FeatureSettings::embedded(warehouse.clone());
    let builder = Engine::builder(warehouse, default_schema);
    crate::features::install(builder, settings, Default::default())
        .build()
        .await
}

/// Loads the seeds that the selected models read, as `dbt build` builds the
/// seeds upstream of what it builds (`all`: every seed when nothing is
/// selected or excluded, as `dbt build` does): each one whose table is missing or whose
/// file changed since it was loaded. `None` when the selection reads no seed.
pub async fn seed_inputs(
    project: &Project,
    warehouse: &Warehouse,
    compiled: &Compiled,
    selection: &Selection,
    all: bool,
    vars: &std::collections::BTreeMap<String, serde_json::Value>,
    observer: &dyn LoadObserver,
) -> Result<Option<LoadReport>> {
    let models = selection.apply(compiled)?;
    let seeds = crate::models::compile::named_seeds(project, vars)?;
    let everything = all && selection.select.is_empty() && selection.exclude.is_empty();
    let needed: Vec<String> = seeds
        .iter()
        .filter(|s| {
            everything
                || models.iter().any(|&m| {
                    compiled.models[m]
                        .inputs
                        .iter()
                        .any(|(schema, table)| *schema == s.schema && *table == s.name)
                })
        })
        .map(|s| s.name.clone())
        .collect();
    if needed.is_empty() {
        return Ok(None);
    }
    crate::load::seeds::seed_with(project, warehouse, seeds, &needed, false, observer)
        .await
        .map(Some)
}

/// Records a load in `_sluice.runs` (kind `load`, one row per source: rows
/// loaded, rows quarantined as `failures`, the version committed), so loads
/// have a history as tests and models do. A failure to record is logged,
/// never the load's failure.
pub async fn record_load(
    warehouse: &Warehouse,
    report: &LoadReport,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    use crate::models::run::{NodeResult, RunReport, Status};
    let results: Vec<NodeResult> = report
        .sources
        .iter()
        .map(|s| NodeResult {
            id: s.table.clone(),
            kind: "load",
            materialization: s.mode.clone(),
            status: Status::Success,
            rows: Some(s.rows_loaded),
            version: s.version,
            failures: Some(s.rows_rejected),
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            seconds: s.seconds,
            message: s
                .rejected_table
                .as_ref()
                .map(|t| format!("{} rows quarantined in {t}", s.rows_rejected)),
            inputs: Vec::new(),
            sql_hash: None,
            file: s.source.clone(),
            retries: 0,
        })
        .collect();
    let run = RunReport {
        run_id: report.load_id.clone(),
        command: "load".into(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        seconds: report.sources.iter().map(|s| s.seconds).sum(),
        results,
    };
    if let Err(e) = crate::models::records::append_runs(warehouse, &run).await {
        tracing::warn!("load {}: not recorded in _sluice.runs: {e}", report.load_id);
    }
}

/// Records a load that failed in `_sluice.runs`: an `error` row per source
/// (`(name, schema.table)`) with the message. Logged, never the command's
/// failure, when it cannot be recorded.
pub async fn record_load_failure(
    warehouse: &Warehouse,
    sources: &[(String, String)],
    message: &str,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    use crate::models::run::{NodeResult, RunReport, Status};
    let at = started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let seconds = (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0;
    let results: Vec<NodeResult> = sources
        .iter()
        .map(|(name, table)| NodeResult {
            id: table.clone(),
            kind: "load",
            materialization: "load".into(),
            status: Status::Error,
            rows: None,
            version: None,
            failures: None,
            started_at: at.clone(),
            seconds,
            message: Some(message.to_string()),
            inputs: Vec::new(),
            sql_hash: None,
            file: name.clone(),
            retries: 0,
        })
        .collect();
    let run = RunReport {
        run_id: crate::load::new_load_id(),
        command: "load".into(),
        started_at: at,
        seconds,
        results,
    };
    if let Err(e) = crate::models::records::append_runs(warehouse, &run).await {
        // The load's own error is what the user sees.
        tracing::debug!("failed load: not recorded in _sluice.runs: {e}");
    }
}

/// OpenLineage events of a load (`[lineage]`): one run per source, job
/// `<project>.load.<source>`, its files as the input and its table (and the
/// quarantine table, when rows were rejected) as outputs with the rows
/// written. Sent in the background after the load (START at its start time);
/// never fails it.
pub fn load_events(
    project: &Project,
    warehouse: &Warehouse,
    result: std::result::Result<&LoadReport, &str>,
    started_at: chrono::DateTime<chrono::Utc>,
    parent: Option<&crate::models::openlineage::CommandRun>,
) {
    use crate::lineage::openlineage::{run_event, Dataset, EventType, Job, QualityMetrics};
    let Some(parent) = parent else { return };
    let emitter = parent.emitter.clone();
    let name = &project.settings.name;
    let job_of = |source: &str| Job {
        namespace: emitter.namespace().to_string(),
        name: format!("{name}.load.{source}"),
        sql: None,
        job_type: "LOAD",
    };
    let now = chrono::Utc::now();
    let ns = warehouse.root().to_string();
    match result {
        Ok(report) => {
            for s in &report.sources {
                let job = job_of(&s.source);
                let run = parent.child();
                let location = project
                    .sources
                    .iter()
                    .find(|d| d.name == s.source)
                    .map(|d| d.location.clone())
                    .unwrap_or_default();
                let input = if location.contains("://") {
                    let scheme = location.split("://").next().unwrap_or("file");
                    Dataset::new(format!("{scheme}://"), location.clone())
                } else {
                    let path = project.root.join(&location);
                    Dataset::new("file://", path.to_string_lossy().into_owned())
                };
                let mut out = Dataset::new(ns.clone(), s.table.clone());
                out.output_rows = Some(s.rows_loaded);
                out.quality = Some(QualityMetrics {
                    row_count: Some(s.rows_loaded),
                    file_count: Some(s.files.len() as u64),
                    bytes: Some(s.files.iter().map(|f| f.bytes).sum()),
                    ..Default::default()
                });
                let mut outputs = vec![out];
                if let Some(q) = &s.rejected_table {
                    let mut d = Dataset::new(ns.clone(), q.clone());
                    d.output_rows = Some(s.rows_rejected);
                    outputs.push(d);
                }
                let start = run_event(
                    EventType::Start,
                    started_at,
                    &job,
                    &run,
                    std::slice::from_ref(&input),
                    &[],
                    None,
                );
                let end = run_event(
                    EventType::Complete,
                    now,
                    &job,
                    &run,
                    &[input],
                    &outputs,
                    None,
                );
                parent.send(vec![start, end]);
            }
        }
        Err(message) => {
            let job = job_of("all");
            let run = parent.child();
            parent.send(vec![
                run_event(EventType::Start, started_at, &job, &run, &[], &[], None),
                run_event(EventType::Fail, now, &job, &run, &[], &[], Some(message)),
            ]);
        }
    }
}

/// OpenLineage events of one `sluice materialize` of a feature view
/// (`[lineage]`): job `<project>.materialize.<view>`, the offline table as
/// input (rows read), the online view `online.<view>` as output (entities
/// written). Never fails the command.
pub fn materialize_events(
    project: &Project,
    warehouse: &Warehouse,
    view: &crate::features::registry::FeatureViewDef,
    result: std::result::Result<&crate::features::online::MaterializeReport, &str>,
    started_at: chrono::DateTime<chrono::Utc>,
    parent: Option<&crate::models::openlineage::CommandRun>,
) {
    use crate::lineage::openlineage::{run_event, Dataset, EventType, Job, QualityMetrics};
    let Some(parent) = parent else { return };
    let emitter = parent.emitter.clone();
    let job = Job {
        namespace: emitter.namespace().to_string(),
        name: format!("{}.materialize.{}", project.settings.name, view.name),
        sql: None,
        job_type: "MATERIALIZE",
    };
    let run = parent.child();
    let ns = warehouse.root().to_string();
    let mut input = Dataset::new(ns.clone(), format!("{}.{}", view.schema, view.table));
    let start = run_event(
        EventType::Start,
        started_at,
        &job,
        &run,
        std::slice::from_ref(&input),
        &[],
        None,
    );
    let end = match result {
        Ok(r) => {
            input.quality = Some(QualityMetrics {
                row_count: Some(r.rows_read),
                ..Default::default()
            });
            let mut out = Dataset::new(ns, format!("online.{}", view.name));
            out.output_rows = Some(r.entities_written);
            run_event(
                EventType::Complete,
                chrono::Utc::now(),
                &job,
                &run,
                &[input],
                &[out],
                None,
            )
        }
        Err(message) => run_event(
            EventType::Fail,
            chrono::Utc::now(),
            &job,
            &run,
            &[input],
            &[],
            Some(message),
        ),
    };
    parent.send(vec![start, end]);
}
