//! `historical_features(entities, 'view' | 'view:feature', ... [, 'timestamp=col'] [, 'full_names=true'])`:
//! a training set as a table function, usable in any query, model or Flight
//! SQL client.

use super::historical::{training_sql, Options};
use crate::warehouse::{SqlView, Warehouse};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

#[derive(Debug)]
struct HistoricalFeatures {
    warehouse: Warehouse,
    settings: Settings,
}

type Settings = Arc<std::sync::RwLock<Arc<super::FeatureSettings>>>;

/// Registers `historical_features` in a session over `warehouse`.
pub fn register(ctx: &SessionContext, warehouse: Warehouse, settings: Settings) {
    ctx.register_udtf(
        "historical_features",
        Arc::new(HistoricalFeatures {
            warehouse,
            settings,
        }),
    );
}

const USAGE: &str = "usage: historical_features('schema.entity_table' or 'SELECT ...', 'view', 'view:feature', ... [, 'service=name'] [, 'timestamp=column'] [, 'full_names=true'])";

impl TableFunctionImpl for HistoricalFeatures {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let values: Vec<String> = args
            .exprs()
            .iter()
            .map(crate::sql::file_functions::literal_string)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| DataFusionError::Plan(format!("{USAGE} (string literals only)")))?;
        let Some((entity, rest)) = values.split_first() else {
            return Err(DataFusionError::Plan(USAGE.into()));
        };
        let (options, refs): (Vec<String>, Vec<String>) =
            rest.iter().cloned().partition(|v| v.contains('='));
        let mut options = Options::parse(&options).map_err(DataFusionError::from)?;
        let settings = self
            .settings
            .read()
            .map(|s| s.clone())
            .map_err(|_| DataFusionError::Internal("feature settings lock poisoned".into()))?;
        let (refs, full) = settings
            .expand(&refs, options.service.as_deref())
            .map_err(DataFusionError::from)?;
        options.full_names |= full;
        let state = crate::sql::file_functions::session_state(&args)?;
        let wh = self.warehouse.clone();
        let entity = entity.clone();
        let fut = async move {
            let set = training_sql(&wh, &state, &entity, &refs, &options)
                .await
                .map_err(DataFusionError::from)?;
            let view = SqlView::try_new(set.sql, &state).await?;
            Ok::<_, DataFusionError>(Arc::new(view) as Arc<dyn TableProvider>)
        };
        crate::sql::file_functions::block_on(fut)
    }
}
