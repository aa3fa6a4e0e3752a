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
