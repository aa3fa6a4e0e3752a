//! The feature store's offline side: feature views (models declared with an
//! entity key and an event timestamp), their registry in the warehouse, and
//! point-in-time training sets built on the AS OF join.
//!
//! - [`registry`]: `_sluice/features/<schema>.<table>.json`, one document per
//!   view: entities, timestamps, TTL, feature columns and types, description,
//!   owner, tags, and every version (SQL hash, table version, run).
//! - [`historical`]: the SQL of a training set (`historical_features(...)`,
//!   `sluice features historical`).
//! - [`online`]: the online store (`sluice materialize`, `online.<view>`).
//! - [`stream_agg`]: stream feature views: windowed aggregates kept exact
//!   online per micro-batch, and the same windows offline as SQL.
//! - [`hook`]: feature views checked before their model writes its table
//!   (a bad view commits nothing), registered after it.
//!
//! The feature store installs itself into an engine through the engine's
//! extension points ([`install`]): the `online` schema, `historical_features`
//! (with the tables it reads, for model dependencies) and the model hook.

pub mod export;
pub mod function;
pub mod historical;
pub mod hook;
pub mod live;
pub mod online;
pub mod registry;
pub mod stream_agg;

pub use historical::{training_sql, Options, TrainingSet};
pub use registry::{
    get_view, list_views, record_view, FeatureColumn, FeatureViewDef, StreamDef, ViewVersion,
};

use crate::error::{Error, Result};
use crate::project::Project;
use crate::sql::{Engine, EngineBuilder};
use crate::warehouse::Warehouse;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `[feature_services.<name>]` in `sluice.toml`: a named set of features.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// Views (`user_features`) or features (`merchant_features:risk_score`).
    pub features: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Prefix features with their view (`user_features__txn_count`).
    #[serde(default)]
    pub full_names: bool,
}

/// The feature store's settings: the online store and the services.
#[derive(Debug)]
pub struct FeatureSettings {
    pub online: Arc<online::OnlineStore>,
    pub services: BTreeMap<String, ServiceSection>,
}

impl FeatureSettings {
    /// The refs of `service=NAME` options expanded, with the service's
    /// `full_names`.
    pub fn expand(&self, refs: &[String], service: Option<&str>) -> Result<(Vec<String>, bool)> {
        let mut out = refs.to_vec();
        let mut full = false;
        if let Some(name) = service {
            let s = self.services.get(name).ok_or_else(|| {
                Error::unknown_feature_service(name, self.services.keys().map(String::as_str))
            })?;
            out.extend(s.features.iter().cloned());
            full = s.full_names;
        }
        Ok((out, full))
    }
}

impl FeatureSettings {
    /// From `sluice.toml`: `[online]` and `[feature_services.*]`.
    pub fn from_project(project: &Project, warehouse: Warehouse) -> Result<Self> {
        let file = project.root.join(crate::project::PROJECT_FILE);
        let online: online::OnlineSection = project.section("online")?;
        let services: BTreeMap<String, ServiceSection> = project.section("feature_services")?;
        let backend = online::Backend::from_config(&online).map_err(|e| match e {
            Error::Config { message, .. } => Error::config(&file, message),
            other => other,
        })?;
        for (name, service) in &services {
            if !crate::names::is_identifier(name) {
                return Err(Error::config(
                    &file,
                    format!("[feature_services.{name}]: the name must be a SQL identifier (letters, digits, _)"),
                ));
            }
            if service.features.is_empty() {
                return Err(Error::config(
                    &file,
                    format!("[feature_services.{name}] needs features = [\"view\", \"view:feature\", ...]"),
                ));
            }
        }
        Ok(FeatureSettings {
            online: online::OnlineStore::new(warehouse, backend),
            services,
        })
    }

    /// The embedded online store and no services.
    pub fn embedded(warehouse: Warehouse) -> Self {
        FeatureSettings {
            online: online::OnlineStore::new(warehouse, online::Backend::Embedded),
            services: BTreeMap::new(),
        }
    }
}

/// Installs the feature store into an engine: the `online` schema,
/// `historical_features` and the hook that registers feature views after
/// their models run (extended with `hooks` the caller already has).
pub fn install(
    builder: EngineBuilder,
    settings: FeatureSettings,
    mut hooks: crate::models::ModelHooks,
) -> EngineBuilder {
    let settings = Arc::new(settings);
    let warehouse = builder.warehouse().clone();
    hooks.0.push(Arc::new(hook::FeatureViewHook {
        settings: settings.clone(),
    }));
    builder
        .schema(
            online::table::SCHEMA,
            Arc::new(online::table::OnlineSchema::new(settings.clone())),
        )
        .table_function(
            function::NAME,
            function::function(warehouse, settings.clone()),
            Some(function::reads(settings.clone())),
        )
        .extension(Arc::new(hooks))
        .extension(settings)
}

/// The feature store installed in `engine`.
pub fn settings(engine: &Engine) -> Result<Arc<FeatureSettings>> {
    engine
        .extension::<FeatureSettings>()
        .ok_or_else(|| Error::Internal("the feature store is not installed in this engine".into()))
}
