//! `historical_features(entities, 'view' | 'view:feature', ... [, 'timestamp=col'] [, 'full_names=true'])`:
//! a training set as a table function, usable in any query, model or Flight
//! SQL client.

use super::historical::{training_sql, Options};
use crate::sql::deps::ReadsFn;
use crate::warehouse::{SqlView, Warehouse};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};
use std::sync::Arc;

#[derive(Debug)]
struct HistoricalFeatures {
    warehouse: Warehouse,
    settings: Settings,
}

type Settings = Arc<super::FeatureSettings>;

/// The name of the table function.
pub const NAME: &str = "historical_features";

/// `historical_features` over `warehouse`.
pub fn function(warehouse: Warehouse, settings: Settings) -> Arc<dyn TableFunctionImpl> {
    Arc::new(HistoricalFeatures {
        warehouse,
        settings,
    })
}

/// What `historical_features(...)` reads, for model dependencies: the entity
/// table (or the tables of the entity query) and every feature view named
/// directly or through `service=NAME`.
pub fn reads(settings: Settings) -> ReadsFn {
    Arc::new(move |args: &[Option<String>]| {
        let Some((Some(entity), rest)) = args.split_first() else {
            return Vec::new();
        };
        let rest: Vec<String> = rest.iter().flatten().cloned().collect();
        let (options, mut refs): (Vec<String>, Vec<String>) =
            rest.into_iter().partition(|v| v.contains('='));
        if let Ok(Options {
            service: Some(service),
            ..
        }) = Options::parse(&options)
        {
            if let Ok((expanded, _)) = settings.expand(&[], Some(&service)) {
                refs.extend(expanded);
            }
        }
        std::iter::once(entity.clone())
            .chain(refs.iter().map(|r| view_of(r).to_string()))
            .collect()
    })
}

/// The view of `view` or `view:feature`.
pub(crate) fn view_of(reference: &str) -> &str {
    reference
        .split_once(':')
        .map_or(reference, |(view, _)| view)
        .trim()
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
        let (refs, full) = self
            .settings
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
