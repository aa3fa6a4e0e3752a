//! Feature views are models: after a model with `feature_view` config is
//! materialized, this hook records the view in the registry and, for online
//! views, writes its latest values to the online store. The model runner calls
//! it through [`crate::models::ModelHook`] without knowing the feature store.

use crate::models::config::FeatureView;
use crate::models::materialize::Materialized;
use crate::models::{Model, ModelHook};
use crate::sql::Engine;
use async_trait::async_trait;
use std::sync::Arc;

/// Registers feature views and fills the online store after their models run.
#[derive(Debug)]
pub struct FeatureViewHook {
    pub(crate) settings: Arc<super::FeatureSettings>,
}

#[async_trait]
impl ModelHook for FeatureViewHook {
    async fn after_materialize(
        &self,
        engine: &Engine,
        model: &Model,
        mat: &Materialized,
        run_id: &str,
    ) -> crate::Result<()> {
        let Some(fv) = &model.config.feature_view else {
            return Ok(());
        };
        let view = register_feature_view(engine, model, fv, mat, run_id).await?;
        if !fv.online {
            return Ok(());
        }
        let store = self.settings.online.clone();
        match super::online::materialize(engine, &store, &view, None, false).await {
            Ok(r) => {
                tracing::info!(
                    "online store: {} {} ({} entities written)",
                    r.view,
                    r.mode,
                    r.entities_written
                );
                Ok(())
            }
            Err(e) => Err(crate::Error::Model {
                model: model.id(),
                file: model.file.display.clone(),
                message: format!("the table was built, but writing the online store failed: {e}"),
            }),
        }
    }
}

/// Records a feature view model in the feature registry after it ran.
async fn register_feature_view(
    engine: &Engine,
    model: &Model,
    fv: &FeatureView,
    mat: &Materialized,
    run_id: &str,
) -> crate::Result<super::FeatureViewDef> {
    let view = super::FeatureViewDef {
        name: model.name.clone(),
        schema: model.schema.clone(),
        table: model.table.clone(),
        entities: fv.entities.clone(),
        event_timestamp: fv.event_timestamp.clone(),
        created_timestamp: fv.created_timestamp.clone(),
        ttl_seconds: fv.ttl_seconds,
        features: Vec::new(),
        description: model.description.clone(),
        owner: model.config.owner.clone(),
        tags: model.config.tags.clone(),
        online: fv.online,
        versions: Vec::new(),
    };
    let version = super::ViewVersion {
        sql_hash: model.sql_hash.clone(),
        table_version: mat.version,
        run_id: run_id.to_string(),
        at: chrono::Utc::now().to_rfc3339(),
    };
    let docs: Vec<(String, Option<String>)> = model
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.description.clone()))
        .collect();
    super::record_view(engine, view.clone(), version, &docs)
        .await
        .map_err(|e| crate::Error::Model {
            model: model.id(),
            file: model.file.display.clone(),
            message: format!("feature registry: {e}"),
        })?;
    Ok(view)
}
