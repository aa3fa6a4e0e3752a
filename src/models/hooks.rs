//! What other parts of sluice run after a model is materialized, without the
//! model runner knowing them: the feature store registers feature views and
//! fills the online store through a [`ModelHook`]. Hooks are installed into
//! the engine ([`crate::sql::EngineBuilder::extension`] with [`ModelHooks`]),
//! so every run over that engine calls them.

use super::compile::Model;
use super::materialize::Materialized;
use crate::error::Result;
use crate::sql::Engine;
use async_trait::async_trait;
use std::sync::Arc;

/// Runs after a model's table or view was written, before its tests.
#[async_trait]
pub trait ModelHook: Send + Sync + std::fmt::Debug {
    /// Called once per successful materialization; an error fails the model
    /// (its table stays as written).
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
