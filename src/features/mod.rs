//! The feature store's offline side: feature views (models declared with an
//! entity key and an event timestamp), their registry in the warehouse, and
//! point-in-time training sets built on the AS OF join.
//!
//! - [`registry`]: `_sluice/features/<schema>.<table>.json`, one document per
//!   view: entities, timestamps, TTL, feature columns and types, description,
//!   owner, tags, and every version (SQL hash, table version, run).
//! - [`historical`]: the SQL of a training set (`historical_features(...)`,
//!   `sluice features historical`).

pub mod function;
pub mod historical;
pub mod registry;

pub use historical::{training_sql, Options, TrainingSet};
pub use registry::{get_view, list_views, record_view, FeatureColumn, FeatureViewDef, ViewVersion};
