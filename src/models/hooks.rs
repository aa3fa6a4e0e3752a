//! What other parts of sluice check before a model is written and run after
//! it is materialized, without the model runner knowing them: the feature
//! store checks a feature view's columns before its table is committed, then
//! registers the view and fills the online store through a [`ModelHook`].
//! Hooks are installed into the engine
//! ([`crate::sql::EngineBuilder::extension`] with [`ModelHooks`]), so every
//! run over that engine calls them.

use super::compile::Model;
use super::materialize::Materialized;
use crate::error::Result;
use crate::sql::Engine;
use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use std::sync::Arc;

/// Checks a model before it is written and runs after it was written.
#[async_trait]
pub trait ModelHook: Send + Sync + std::fmt::Debug {
    /// Called with the columns the model is about to write (its table's
    /// schema after the write, or the stored view's), before anything is
    /// written: an error fails the model and nothing is committed.
    async fn before_write(&self, _engine: &Engine, _model: &Model, _schema: &Schema) -> Result<()> {
        Ok(())
    }

    /// Called once per successful materialization, before the model's tests;
    /// an error fails the model, whose table stays as committed (the run
    /// report keeps the committed version and says so).
    async fn after_materialize(
        &self,
        engine: &Engine,
        model: &Model,
        materialized: &Materialized,
        run_id: &str,
    ) -> Result<()>;
}

/// The hooks of an engine, in the order they run.
#[derive(Debug, Default, Clone)]
pub struct ModelHooks(pub Vec<Arc<dyn ModelHook>>);

/// Runs the engine's checks of the columns `model` is about to write.
pub(crate) async fn before_write(engine: &Engine, model: &Model, schema: &Schema) -> Result<()> {
    if let Some(hooks) = engine.extension::<ModelHooks>() {
        for hook in &hooks.0 {
            hook.before_write(engine, model, schema).await?;
        }
    }
    Ok(())
}

/// Runs the engine's hooks for `model`.
pub(crate) async fn after_materialize(
    engine: &Engine,
    model: &Model,
    materialized: &Materialized,
    run_id: &str,
) -> Result<()> {
    if let Some(hooks) = engine.extension::<ModelHooks>() {
        for hook in &hooks.0 {
            hook.after_materialize(engine, model, materialized, run_id)
                .await?;
        }
    }
    Ok(())
}
