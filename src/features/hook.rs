//! Feature views are models: before a model with `feature_view` config is
//! written, this hook checks that its result has the view's entity and time
//! columns with usable types (so a bad view commits nothing); after it is
//! materialized, it records the view in the registry and, for online views,
//! writes its latest values to the online store. The model runner calls it
//! through [`crate::models::ModelHook`] without knowing the feature store.

use crate::error::did_you_mean;
use crate::models::config::FeatureView;
use crate::models::materialize::Materialized;
use crate::models::{Model, ModelHook};
use crate::sql::Engine;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema};
use std::sync::Arc;

/// Registers feature views and fills the online store after their models run.
#[derive(Debug)]
pub struct FeatureViewHook {
    pub(crate) settings: Arc<super::FeatureSettings>,
}

fn model_err(model: &Model, message: impl Into<String>) -> crate::Error {
    crate::Error::Model {
        model: model.id(),
        file: model.file.display.clone(),
        message: message.into(),
    }
}

#[async_trait]
impl ModelHook for FeatureViewHook {
    async fn before_write(
        &self,
        engine: &Engine,
        model: &Model,
        schema: &Schema,
    ) -> crate::Result<()> {
        let Some(fv) = &model.config.feature_view else {
            return Ok(());
        };
        if fv.stream {
            return check_stream_view(engine, model, fv, schema)
                .await
                .map(|_| ());
        }
        check_columns(fv, schema).map_err(|m| model_err(model, m))?;
        if fv.online {
            // What the online store would refuse after the commit is refused now.
            super::online::Layout::for_table(&view_def(model, fv), schema)
                .map_err(|e| model_err(model, format!("feature_view with 'online': true: {e}")))?;
        }
        Ok(())
    }

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
        let stream = if fv.stream {
            Some(check_stream_view(engine, model, fv, &mat_schema(engine, model).await?).await?)
        } else {
            None
        };
        let view = register_feature_view(engine, model, fv, mat, run_id, stream).await?;
        if !fv.online || fv.stream {
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
            Err(e) => Err(model_err(
                model,
                format!(
                    "writing the online store: {e}; the online store still serves the values it had: fix the cause, then run `sluice materialize {}`",
                    model.name
                ),
            )),
        }
    }
}

/// The schema of a model's relation, as written.
async fn mat_schema(engine: &Engine, model: &Model) -> crate::Result<Schema> {
    let reference =
        datafusion::common::TableReference::partial(model.schema.as_str(), model.table.as_str());
    let provider = engine.context().table_provider(reference).await?;
    Ok(provider.schema().as_ref().clone())
}

/// A stream feature view's checks: its SQL has the accepted shape (see
/// [`super::stream_agg`]), its source exists and the aggregates fit its
/// columns' types, and the model's result has the entity columns. Returns
/// what the registry keeps of it.
async fn check_stream_view(
    engine: &Engine,
    model: &Model,
    fv: &FeatureView,
    schema: &Schema,
) -> crate::Result<super::StreamDef> {
    let in_file = |e: crate::Error| match e {
        crate::Error::Model {
            model: m, message, ..
        } => crate::Error::Model {
            model: m,
            file: model.file.display.clone(),
            message,
        },
        other => model_err(model, other.to_string()),
    };
    let spec = super::stream_agg::StreamAggSpec::parse(
        &model.id(),
        &model.sql,
        &fv.entities,
        &fv.event_timestamp,
    )
    .map_err(in_file)?;
    let (s, t) = super::online::stream::source_table(&spec.source, engine.default_schema())
        .map_err(|e| model_err(model, e.to_string()))?;
    let source_schema = super::online::stream::table_schema(engine.warehouse(), &s, &t)
        .await
        .map_err(|e| {
            model_err(
                model,
                format!("a stream feature view reads a table of the warehouse: {e}"),
            )
        })?;
    for e in &fv.entities {
        if let Ok(f) = source_schema.field_with_name(e) {
            if !is_key_type(f.data_type()) {
                return Err(model_err(
                    model,
                    format!(
                        "feature_view entity `{e}` is {} in {s}.{t}, which cannot be an entity key; cast it in the source (a string or an integer)",
                        f.data_type()
                    ),
                ));
            }
        }
    }
    super::stream_agg::StreamAggState::new(
        spec,
        source_schema,
        super::stream_agg::StreamAggOptions {
            allowed_lateness_us: fv.allowed_lateness_us,
        },
    )
    .map_err(in_file)?;
    for e in &fv.entities {
        if schema.field_with_name(e).is_err() {
            return Err(model_err(
                model,
                format!("feature_view entity `{e}` is not a column of the model's result; select it and group by it"),
            ));
        }
    }
    Ok(super::StreamDef {
        sql: model.sql.clone(),
        source: format!("{s}.{t}"),
        allowed_lateness_us: fv.allowed_lateness_us,
        allowed_lateness: fv.allowed_lateness.clone(),
    })
}

/// Whether `schema` (the model's result) has the columns `fv` names, with
/// types a feature view can use: entity keys comparable exactly, event and
/// created times timestamps or dates. The message names the column and the fix.
pub fn check_columns(fv: &FeatureView, schema: &Schema) -> std::result::Result<(), String> {
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
    };
    let field = |role: &str, key: &str, name: &str| {
        schema.field_with_name(name).map_err(|_| {
            format!(
                "feature_view {role} `{name}` is not a column of the model's result{}; columns: {}. Set '{key}' in the feature_view config to one of them, or add `{name}` to the model's SELECT",
                did_you_mean(name, columns()),
                columns().join(", ")
            )
        })
    };
    for (i, e) in fv.entities.iter().enumerate() {
        if fv.entities[..i].contains(e) {
            return Err(format!("feature_view entities name `{e}` twice"));
        }
        let f = field("entity", "entities", e)?;
        if !is_key_type(f.data_type()) {
            return Err(format!(
                "feature_view entity `{e}` is {}, which cannot be an entity key{}; cast it in the model's SQL (e.g. CAST({e} AS BIGINT) AS {e}, or a string)",
                f.data_type(),
                if f.data_type().is_floating() { " (floating-point values do not compare exactly)" } else { "" }
            ));
        }
    }
    let times = std::iter::once(("event_timestamp", &fv.event_timestamp)).chain(
        fv.created_timestamp
            .iter()
            .map(|c| ("created_timestamp", c)),
    );
    for (role, name) in times {
        if fv.entities.contains(name) {
            return Err(format!(
                "feature_view {role} `{name}` is also an entity; name the column holding each row's time"
            ));
        }
        let f = field(role, role, name)?;
        if !matches!(
            f.data_type(),
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        ) {
            return Err(format!(
                "feature_view {role} `{name}` is {}; it must be a timestamp or a date: cast it in the model's SQL (e.g. CAST({name} AS TIMESTAMP) AS {name}) or name another column",
                f.data_type()
            ));
        }
    }
    if fv.created_timestamp.as_ref() == Some(&fv.event_timestamp) {
        return Err(format!(
            "feature_view created_timestamp and event_timestamp are both `{}`; leave created_timestamp out, or name the column holding when each row was written",
            fv.event_timestamp
        ));
    }
    Ok(())
}

/// Types whose values compare exactly, so rows can be joined and looked up by them.
fn is_key_type(t: &DataType) -> bool {
    t.is_integer()
        || matches!(
            t,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
                | DataType::Boolean
                | DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
        )
        || matches!(t, DataType::Dictionary(_, v) if is_key_type(v))
}

/// The registry entry of a feature view model (features and versions are
/// filled when it is recorded).
fn view_def(model: &Model, fv: &FeatureView) -> super::FeatureViewDef {
    super::FeatureViewDef {
        name: model.name.clone(),
        schema: model.schema.clone(),
        table: model.table.clone(),
        entities: fv.entities.clone(),
        event_timestamp: fv.event_timestamp.clone(),
        created_timestamp: fv.created_timestamp.clone(),
        ttl_seconds: fv.ttl_seconds,
        ttl: fv.ttl.clone(),
        features: Vec::new(),
        description: model.description.clone(),
        owner: model.config.owner.clone(),
        tags: model.config.tags.clone(),
        online: fv.online,
        versions: Vec::new(),
        stream: None,
    }
}

/// Records a feature view model in the feature registry after it ran.
async fn register_feature_view(
    engine: &Engine,
    model: &Model,
    fv: &FeatureView,
    mat: &Materialized,
    run_id: &str,
    stream: Option<super::StreamDef>,
) -> crate::Result<super::FeatureViewDef> {
    let mut view = view_def(model, fv);
    view.stream = stream;
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
        .map_err(|e| {
            model_err(
                model,
                format!("recording the feature view in the registry: {e}"),
            )
        })?;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    fn fv(entities: &[&str], ts: &str, created: Option<&str>) -> FeatureView {
        FeatureView {
            entities: entities.iter().map(|s| s.to_string()).collect(),
            event_timestamp: ts.into(),
            created_timestamp: created.map(String::from),
            ttl_seconds: None,
            ttl: None,
            online: false,
            stream: false,
            allowed_lateness_us: 0,
            allowed_lateness: None,
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("score", DataType::Float64, true),
            Field::new("label", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
        ])
    }

    #[test]
    fn views_name_existing_columns_of_usable_types() {
        let s = schema();
        check_columns(&fv(&["user_id"], "ts", None), &s).unwrap();
        check_columns(&fv(&["user_id", "label"], "day", Some("ts")), &s).unwrap();

        let e = check_columns(&fv(&["user_id"], "event_ts", None), &s).unwrap_err();
        assert!(
            e.starts_with("feature_view event_timestamp `event_ts` is not a column of the model's result; columns: user_id, score, label, ts, day."),
            "{e}"
        );
        let e = check_columns(&fv(&["usr_id"], "ts", None), &s).unwrap_err();
        assert!(
            e.contains("entity `usr_id`") && e.contains("did you mean `user_id`?"),
            "{e}"
        );
        let e = check_columns(&fv(&["user_id"], "label", None), &s).unwrap_err();
        assert!(
            e.starts_with(
                "feature_view event_timestamp `label` is Utf8; it must be a timestamp or a date"
            ),
            "{e}"
        );
        let e = check_columns(&fv(&["user_id"], "ts", Some("score")), &s).unwrap_err();
        assert!(e.contains("created_timestamp `score` is Float64"), "{e}");
        let e = check_columns(&fv(&["score"], "ts", None), &s).unwrap_err();
        assert!(e.contains("floating-point"), "{e}");
        let e = check_columns(&fv(&["user_id", "user_id"], "ts", None), &s).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = check_columns(&fv(&["ts"], "ts", None), &s).unwrap_err();
        assert!(e.contains("is also an entity"), "{e}");
        let e = check_columns(&fv(&["user_id"], "ts", Some("ts")), &s).unwrap_err();
        assert!(e.contains("are both `ts`"), "{e}");
    }
}
