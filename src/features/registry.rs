//! The feature registry: what each feature view is and how it changed.

use crate::error::{Error, Result};
use crate::sql::Engine;
use serde::{Deserialize, Serialize};

/// One feature column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureColumn {
    pub name: String,
    /// Arrow type, as DataFusion prints it (`Int64`, `Float64`, `Utf8`...).
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One materialization of a view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewVersion {
    pub sql_hash: String,
    /// The Delta version the run wrote (`None` for a stored view).
    pub table_version: Option<u64>,
    pub run_id: String,
    pub at: String,
}

/// A registered feature view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureViewDef {
    /// The model's name (`user_features`).
    pub name: String,
    pub schema: String,
    pub table: String,
    pub entities: Vec<String>,
    pub event_timestamp: String,
    #[serde(default)]
    pub created_timestamp: Option<String>,
    /// Maximum feature age, in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// The TTL as written in the config (`30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    pub features: Vec<FeatureColumn>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether `sluice run` materializes the view into the online store.
    #[serde(default)]
    pub online: bool,
    /// Oldest first.
    #[serde(default)]
    pub versions: Vec<ViewVersion>,
    /// A stream feature view's definition (`None` for a batch view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamDef>,
}

/// What makes a feature view a stream feature view (see
/// [`crate::features::stream_agg`]): its SQL is the definition, read again
/// by `sluice stream`, the server and training sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamDef {
    /// The model's SQL, names resolved.
    pub sql: String,
    /// The source table, `schema.table`.
    pub source: String,
    /// Allowed lateness, microseconds.
    #[serde(default)]
    pub allowed_lateness_us: i64,
    /// As written (`5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<String>,
}

impl FeatureViewDef {
    /// `schema.table`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The TTL as written (`30d`); for views registered before the text was
    /// kept, the seconds in the largest unit that divides them.
    pub fn ttl_text(&self) -> Option<String> {
        self.ttl.clone().or_else(|| {
            self.ttl_seconds.map(|s| {
                [(604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
                    .iter()
                    .find(|(unit, _)| s > 0 && s % unit == 0)
                    .map(|(unit, name)| format!("{}{name}", s / unit))
                    .unwrap_or_else(|| format!("{s}s"))
            })
        })
    }
}

fn doc_name(schema: &str, table: &str) -> String {
    format!("features/{schema}.{table}.json")
}

/// Records a view after its model ran: its definition now (columns and types
/// read from the table) and one more version when the SQL or the table changed.
pub async fn record_view(
    engine: &Engine,
    mut view: FeatureViewDef,
    version: ViewVersion,
    column_docs: &[(String, Option<String>)],
) -> Result<()> {
    let reference =
        datafusion::common::TableReference::partial(view.schema.as_str(), view.table.as_str());
    let provider = engine.context().table_provider(reference).await?;
    let schema = provider.schema();
    // A stream view's event timestamp is a column of its source, not of its result.
    let event = (view.stream.is_none()).then_some(&view.event_timestamp);
    for required in view
        .entities
        .iter()
        .chain(event)
        .chain(view.created_timestamp.iter())
    {
        if schema.field_with_name(required).is_err() {
            return Err(Error::Model {
                model: view.id(),
                file: String::new(),
                message: format!(
                    "feature_view names column `{required}`, which the model does not produce (columns: {})",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    view.features = schema
        .fields()
        .iter()
        .filter(|f| {
            !view.entities.contains(f.name())
                && f.name() != &view.event_timestamp
                && view.created_timestamp.as_ref() != Some(f.name())
        })
        .map(|f| FeatureColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            description: column_docs
                .iter()
                .find(|(n, _)| n == f.name())
                .and_then(|(_, d)| d.clone()),
        })
        .collect();
    let wh = engine.warehouse();
    let doc = doc_name(&view.schema, &view.table);
    let previous: Option<FeatureViewDef> = wh.get_meta_json(&doc).await?;
    view.versions = previous.map(|p| p.versions).unwrap_or_default();
    let same = view.versions.last().is_some_and(|v| {
        v.sql_hash == version.sql_hash && v.table_version == version.table_version
    });
    if !same {
        view.versions.push(version);
    }
    wh.put_meta_json(&doc, &view).await
}

/// Every registered view, by `schema.table`.
pub async fn list_views(wh: &crate::warehouse::Warehouse) -> Result<Vec<FeatureViewDef>> {
    let mut out = Vec::new();
    for name in wh.list_meta_json("features").await? {
        if let Some(v) = wh
            .get_meta_json::<FeatureViewDef>(&format!("features/{name}.json"))
            .await?
        {
            out.push(v);
        }
    }
    out.sort_by_key(|v| v.id());
    Ok(out)
}

/// The view named `name` (`user_features` or `features.user_features`).
pub async fn get_view(wh: &crate::warehouse::Warehouse, name: &str) -> Result<FeatureViewDef> {
    let views = list_views(wh).await?;
    let found: Vec<&FeatureViewDef> = views
        .iter()
        .filter(|v| v.id() == name || v.name == name || v.table == name)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::unknown_feature_view(
            name,
            views.iter().map(|v| v.name.as_str()),
        )),
        many => Err(Error::Sql(format!(
            "feature view `{name}` is ambiguous: {}; use schema.table",
            many.iter().map(|v| v.id()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The views named in `names` (as [`get_view`] finds them), or every
/// registered view when `names` is empty; an error when none is registered.
pub async fn select_views(
    wh: &crate::warehouse::Warehouse,
    names: &[String],
) -> Result<Vec<FeatureViewDef>> {
    if names.is_empty() {
        let all = list_views(wh).await?;
        if all.is_empty() {
            return Err(Error::Usage(
                "no feature views yet: give a model feature_view config and run it (`sluice run`)"
                    .into(),
            ));
        }
        return Ok(all);
    }
    let mut views = Vec::with_capacity(names.len());
    for name in names {
        views.push(get_view(wh, name).await?);
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::sql::Engine;
    use crate::warehouse::Warehouse;

    async fn engine(name: &str) -> Engine {
        let wh = Warehouse::open(&format!("memory://{name}"), &Default::default()).unwrap();
        crate::app::bare_engine(wh, "main").await.unwrap()
    }

    /// An unknown feature view or service comes back through DataFusion as its
    /// own variant: NOT_FOUND for Flight SQL clients, exit 2 for the CLI.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_views_and_services_are_their_own_errors() {
        let e = engine("unknown-features").await;
        let err = e
            .query("SELECT * FROM historical_features('SELECT 1 AS user_id', 'user_featurs')")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownFeatureView { name, .. } if name == "user_featurs"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "unknown feature view `user_featurs`; registered: none (a model with feature_view config registers when it runs)"
        );
        assert_eq!(err.exit_code(), 2);
        assert_eq!(crate::server::code(&err), tonic::Code::NotFound);

        let err = e
            .query("SELECT * FROM historical_features('SELECT 1 AS user_id', 'service=scoring')")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownFeatureService { name, .. } if name == "scoring"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("unknown feature service `scoring`; declared in sluice.toml"),
            "{err}"
        );
        assert_eq!(crate::server::code(&err), tonic::Code::NotFound);
    }

    /// `historical_features` plans by blocking its worker thread: on a
    /// current-thread runtime that is an error, not `block_in_place`'s panic.
    #[tokio::test]
    async fn training_sets_on_a_current_thread_runtime_are_an_error() {
        let e = engine("current-thread-features").await;
        let err = e
            .query("SELECT * FROM historical_features('SELECT 1 AS user_id', 'user_features')")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
        assert!(err.to_string().contains("multi-threaded runtime"), "{err}");
    }
}
