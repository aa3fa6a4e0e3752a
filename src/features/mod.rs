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

pub mod function;
pub mod historical;
pub mod online;
pub mod registry;

pub use historical::{training_sql, Options, TrainingSet};
pub use registry::{get_view, list_views, record_view, FeatureColumn, FeatureViewDef, ViewVersion};

use crate::error::{Error, Result};
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
