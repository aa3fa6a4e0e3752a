//! The composition root: an engine over a project's warehouse with every
//! extension installed. The engine (`sql`) knows no extension; the feature
//! store installs its `online` schema, `historical_features` and its model
//! hook here. The CLI, the server and tests build their engines with
//! [`engine`].

use crate::error::Result;
use crate::features::FeatureSettings;
use crate::project::Project;
use crate::sql::{Engine, EngineOptions};
use crate::warehouse::Warehouse;

/// An engine over `warehouse` for `project`: the project's default schema,
/// online store (`[online]`) and feature services (`[feature_services.*]`).
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
    let builder =
        Engine::builder(warehouse, &project.config.warehouse.default_schema).options(options);
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
