//! Views and model names stored in the warehouse, so every session (`sluice sql`,
//! the Flight SQL server) sees what `sluice run` created.
//!
//! - A view is one JSON object `_sluice/views/<schema>/<name>.json` holding its
//!   SQL. One object per view (not a shared Delta table) means models running in
//!   parallel never conflict on a commit. A view is planned afresh on every read,
//!   so it always sees the latest version of the tables it reads.
//! - `_sluice/models.json` maps every model's bare name to its `schema.table`, so
//!   a bare model name (`SELECT * FROM user_features`) resolves when unique.

use super::Warehouse;
use crate::error::{Error, Result};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown,
};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The objects of a Delta table (its log at `log`) in three deletion steps:
/// 1. the checkpoints and `_last_checkpoint`: readers then replay the commits,
///    which still end at the latest one;
/// 2. the lowest commit: with no checkpoint and no first commit no version
///    can be loaded any more;
/// 3. everything else, in any order.
fn drop_order(log: &ObjPath, locations: Vec<ObjPath>) -> [Vec<ObjPath>; 3] {
    let commit = |p: &ObjPath| -> Option<u64> {
        if !p.prefix_matches(log) {
            return None;
        }
        p.filename()?.strip_suffix(".json")?.parse().ok()
    };
    let first = locations.iter().filter_map(commit).min();
    let mut steps: [Vec<ObjPath>; 3] = Default::default();
    for p in locations {
        let step =
            if p.prefix_matches(log) && p.filename().is_some_and(|f| f.contains("checkpoint")) {
                0
            } else if first.is_some() && commit(&p) == first {
                1
            } else {
                2
            };
        steps[step].push(p);
    }
    steps
}

/// Plans a SQL text in a session: the session's own front end (installed by
/// the engine as a config extension), so views get the same SQL as queries.
pub type SqlFrontEndFn = Arc<
    dyn Fn(SessionState, String) -> futures::future::BoxFuture<'static, DfResult<LogicalPlan>>
        + Send
        + Sync,
>;

/// Config extension holding the session's SQL front end.
pub struct SqlFrontEnd(pub SqlFrontEndFn);

/// Plans `sql` with the session's front end, or DataFusion's when none is set.
pub async fn plan_in_session(state: &SessionState, sql: &str) -> DfResult<LogicalPlan> {
    match state.config().get_extension::<SqlFrontEnd>() {
        Some(f) => (f.0)(state.clone(), sql.to_string()).await,
        None => state.create_logical_plan(sql).await,
    }
}

/// Whether a plan reads files of the machine it runs on (URL tables,
/// `read_csv`...), directly or through views, rather than only warehouse tables.
pub fn plan_reads_files(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNode;
    plan.exists(|p| {
        Ok(match p {
            LogicalPlan::TableScan(scan) => {
                datafusion::datasource::source_as_provider(&scan.source)
                    .map(|t| {
                        t.is::<datafusion::datasource::listing::ListingTable>()
                            || t.downcast_ref::<SqlView>().is_some_and(|v| v.reads_files)
                    })
                    .unwrap_or(false)
            }
            _ => false,
        })
    })
    .unwrap_or(true)
}

/// A stored view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewDef {
    pub schema: String,
    pub name: String,
    pub sql: String,
    /// The model that created it, the run and the SQL hash.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub sql_hash: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Bare model name → `(schema, table)`, for names that are unique.
pub type Aliases = BTreeMap<String, (String, String)>;

impl Warehouse {
    fn meta_path(&self, rel: &str) -> ObjPath {
        let mut p = self.root_path().join("_sluice");
        for part in rel.split('/') {
            p = p.join(part);
        }
        p
    }

    /// Stores bytes at `_sluice/<rel>` (replacing them).
    pub async fn put_meta_bytes(&self, rel: &str, body: Vec<u8>) -> Result<()> {
        let path = self.meta_path(rel);
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(())
    }

    /// The bytes at `_sluice/<rel>`, if any.
    pub async fn get_meta_bytes(&self, rel: &str) -> Result<Option<bytes::Bytes>> {
        let path = self.meta_path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::storage(&path, e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Paths, relative to `_sluice/`, of every object under `_sluice/<rel>/`.
    pub async fn list_meta(&self, rel: &str) -> Result<Vec<String>> {
        let prefix = self.meta_path(rel);
        let root = self.meta_path("");
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| Error::storage(&prefix, e))?;
            let full = meta.location.as_ref();
            let rel = full
                .strip_prefix(root.as_ref())
                .unwrap_or(full)
                .trim_start_matches('/');
            out.push(rel.to_string());
        }
        out.sort();
        Ok(out)
    }

    /// Stores bytes at `_sluice/<rel>` unless something is there already:
    /// `false` when it was.
    pub async fn create_meta_bytes(&self, rel: &str, body: Vec<u8>) -> Result<bool> {
        let path = self.meta_path(rel);
        let opts = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Deletes `_sluice/<rel>` (absent is fine).
    pub async fn delete_meta(&self, rel: &str) -> Result<()> {
        let path = self.meta_path(rel);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Stores a JSON document at `_sluice/<rel>` (replacing it).
    pub async fn put_meta_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        let path = self.meta_path(rel);
        let body = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(())
    }

    /// The JSON document at `_sluice/<rel>`, if any.
    pub async fn get_meta_json<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
    ) -> Result<Option<T>> {
        let path = self.meta_path(rel);
        let bytes = match self.store.get(&path).await {
            Ok(r) => r.bytes().await.map_err(|e| Error::storage(&path, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Warehouse {
                uri: path.to_string(),
                message: format!("unreadable: {e}"),
            })
    }

    /// File names (without `.json`) of the documents under `_sluice/<rel>/`.
    pub async fn list_meta_json(&self, rel: &str) -> Result<Vec<String>> {
        let prefix = self.meta_path(rel);
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(item) = listing.next().await {
            match item {
                Ok(meta) => {
                    if let Some(name) = meta
                        .location
                        .filename()
                        .and_then(|f| f.strip_suffix(".json"))
                    {
                        out.push(name.to_string());
                    }
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(Error::storage(&prefix, e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Stores (creates or replaces) a view.
    pub async fn put_view(&self, view: &ViewDef) -> Result<()> {
        self.put_meta_json(&format!("views/{}/{}.json", view.schema, view.name), view)
            .await
    }

    /// Removes a view; no error when there is none.
    pub async fn delete_view(&self, schema: &str, name: &str) -> Result<()> {
        let path = self.meta_path(&format!("views/{schema}/{name}.json"));
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// The view `schema.name`, if stored.
    pub async fn get_view(&self, schema: &str, name: &str) -> Result<Option<ViewDef>> {
        self.get_meta_json(&format!("views/{schema}/{name}.json"))
            .await
            .map_err(|e| match e {
                Error::Warehouse { uri, message } => Error::Warehouse {
                    uri,
                    message: format!(
                        "{message} (a view definition); re-run the model or CREATE OR REPLACE VIEW that creates it"
                    ),
                },
                other => other,
            })
    }

    /// Names of the views stored in `schema`.
    pub async fn list_views(&self, schema: &str) -> Result<Vec<String>> {
        self.list_meta_json(&format!("views/{schema}")).await
    }

    /// Schemas that hold stored views.
    pub async fn list_view_schemas(&self) -> Result<Vec<String>> {
        let prefix = self.meta_path("views");
        let listed = match self.store.list_with_delimiter(Some(&prefix)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage(&prefix, e)),
        };
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes every object of the Delta table `schema.table` (DROP TABLE, and
    /// a model that changes from a table to a view, as dbt drops a relation of
    /// another type). Object stores delete in no guaranteed order, so this goes
    /// in three steps (see [`drop_order`]) that never leave an older version
    /// loadable if it stops half-way: a reader then gets an error instead, and
    /// dropping again finishes the job.
    pub async fn drop_table_files(&self, schema: &str, table: &str) -> Result<()> {
        use futures::TryStreamExt;
        let prefix = self.root_path().join(schema).join(table);
        let locations: Vec<ObjPath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(&prefix, e))?;
        for step in drop_order(&prefix.clone().join("_delta_log"), locations) {
            let mut deleted = self
                .store
                .delete_stream(futures::stream::iter(step.into_iter().map(Ok)).boxed());
            while let Some(r) = deleted.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(Error::storage(&prefix, e)),
                }
            }
        }
        Ok(())
    }

    /// Stores the bare-name map of the project's models.
    pub async fn put_aliases(&self, aliases: &Aliases) -> Result<()> {
        let path = self.meta_path("models.json");
        let body =
            serde_json::to_vec_pretty(aliases).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(())
    }

    /// The stored bare-name map (empty when no run has stored one).
    pub async fn get_aliases(&self) -> Result<Aliases> {
        let path = self.meta_path("models.json");
        let bytes = match self.store.get(&path).await {
            Ok(r) => r.bytes().await.map_err(|e| Error::storage(&path, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Aliases::new()),
            Err(e) => return Err(Error::storage(&path, e)),
        };
        // A damaged map only loses the bare-name shortcut; qualified names still work.
        Ok(serde_json::from_slice(&bytes).unwrap_or_default())
    }
}

/// A view as a table provider: the SQL is planned on every scan in the reading
/// session, so the view follows the tables it reads.
#[derive(Debug)]
pub struct SqlView {
    sql: String,
    schema: SchemaRef,
    /// Whether the query reads files (URL tables, `read_csv`, ...) rather than
    /// only warehouse tables, directly or through other views.
    reads_files: bool,
}

impl SqlView {
    /// Plans `sql` once in `state` to learn its schema.
    pub async fn try_new(sql: String, state: &SessionState) -> DfResult<Self> {
        let plan = plan_in_session(state, &sql).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let reads_files = plan_reads_files(&plan);
        Ok(SqlView {
            sql,
            schema,
            reads_files,
        })
    }

    /// Whether the view reads files of the machine it runs on.
    pub fn reads_files(&self) -> bool {
        self.reads_files
    }

    /// The view's SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

#[async_trait]
impl TableProvider for SqlView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.sql)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                DataFusionError::Internal("view scanned outside a SessionState".into())
            })?;
        let plan = plan_in_session(state, &self.sql).await?;
        let fresh = plan.schema().as_arrow();
        if fresh.fields().len() != self.schema.fields().len()
            || fresh
                .fields()
                .iter()
                .zip(self.schema.fields())
                .any(|(a, b)| a.name() != b.name() || a.data_type() != b.data_type())
        {
            return Err(DataFusionError::Plan(
                "the columns of this view changed since the query was planned (a table it reads was replaced); run the query again".into(),
            ));
        }
        let columns: Vec<Expr> = match projection {
            Some(p) => p
                .iter()
                .map(|i| {
                    let (q, f) = plan.schema().qualified_field(*i);
                    Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()))
                })
                .collect(),
            None => Vec::new(),
        };
        let mut builder = LogicalPlanBuilder::from(plan);
        if let Some(f) = filters.iter().cloned().reduce(|a, b| a.and(b)) {
            builder = builder.filter(f)?;
        }
        if projection.is_some() {
            builder = builder.project(columns)?;
        }
        if let Some(n) = limit {
            builder = builder.limit(0, Some(n))?;
        }
        let plan = state.optimize(&builder.build()?)?;
        // A view is a part of the query reading it: planned as one, not as
        // a query of its own (a cluster's planner would make it a second
        // distributed query inside the first).
        match state.config().get_extension::<NestedPlanner>() {
            Some(nested) => nested.0.create_physical_plan(&plan, state).await,
            None => state.create_physical_plan(&plan).await,
        }
    }
}

/// The query planner for plans nested in a query (views), when the
/// session's own planner does more than plan (distributes).
pub struct NestedPlanner(pub Arc<dyn datafusion::execution::context::QueryPlanner + Send + Sync>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_order_removes_checkpoints_then_the_first_commit() {
        let table = ObjPath::from("wh/main/t");
        let log = table.clone().join("_delta_log");
        let names = [
            "part-0001.zstd.parquet",
            "_delta_log/00000000000000000002.json",
            "_delta_log/_last_checkpoint",
            "_delta_log/00000000000000000001.json",
            "_delta_log/00000000000000000001.checkpoint.parquet",
            "_delta_log/00000000000000000000.json",
            "x=1/part-0002.zstd.parquet",
            "_delta_log/00000000000000000003.crc",
        ];
        let all: Vec<ObjPath> = names
            .iter()
            .map(|n| ObjPath::from(format!("wh/main/t/{n}")))
            .collect();
        let [checkpoints, first, rest] = drop_order(&log, all.clone());
        let short = |v: &[ObjPath]| -> Vec<String> {
            let mut v: Vec<String> = v
                .iter()
                .map(|p| p.as_ref().trim_start_matches("wh/main/t/").to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            short(&checkpoints),
            [
                "_delta_log/00000000000000000001.checkpoint.parquet",
                "_delta_log/_last_checkpoint"
            ]
        );
        assert_eq!(short(&first), ["_delta_log/00000000000000000000.json"]);
        assert_eq!(rest.len(), all.len() - 3);
        // Log cleaned up below a checkpoint: the lowest commit left goes second.
        let cleaned: Vec<ObjPath> = all
            .into_iter()
            .filter(|p| !p.as_ref().ends_with("00000000000000000000.json"))
            .collect();
        let [_, first, _] = drop_order(&log, cleaned);
        assert_eq!(short(&first), ["_delta_log/00000000000000000001.json"]);
        // No log at all: everything in the last step.
        let [a, b, c] = drop_order(&log, vec![table.clone().join("part-1.parquet")]);
        assert_eq!((a.len(), b.len(), c.len()), (0, 0, 1));
    }
}
