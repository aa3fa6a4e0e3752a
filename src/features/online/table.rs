//! The `online` schema: `online.<view>` and `online.<service>`, answered by
//! key lookups in the online store.
//!
//! `SELECT * FROM online.user_features WHERE user_id = $1` (or `IN (...)`,
//! or `(a = 1 AND b = 2) OR (...)` for keys of several columns) returns one
//! row per key asked for: the entity columns, the features, `_event_time`
//! and `_status` (`present`, `not_found`, or `outside_ttl`, whose features
//! are NULL as in a training set: TTL is applied when reading). A service
//! returns, per view, its features then `<view>__event_time` and
//! `<view>__status`.

use super::{Layout, OnlineState, OnlineStore};
use crate::error::Error;
use crate::features::FeatureSettings;
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use std::collections::HashSet;
use std::sync::Arc;

/// The schema name.
pub const SCHEMA: &str = "online";

/// Most keys one query may look up.
const MAX_KEYS: usize = 100_000;

/// The `online` schema.
#[derive(Debug)]
pub struct OnlineSchema {
    settings: Arc<FeatureSettings>,
}

impl OnlineSchema {
    pub fn new(settings: Arc<FeatureSettings>) -> Self {
        OnlineSchema { settings }
    }
}

fn df_err(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl SchemaProvider for OnlineSchema {
    fn table_names(&self) -> Vec<String> {
        let settings = &self.settings;
        let views = crate::sql::file_functions::block_on(async {
            settings.online.states().await.map_err(df_err)
        });
        let views: Vec<String> = views
            .map(|s| s.into_iter().map(|s| s.view).collect())
            .unwrap_or_default();
        // Services whose views are all materialized (the others do not plan:
        // listing them would fail information_schema queries).
        let mut names: Vec<String> = settings
            .services
            .iter()
            .filter(|(_, s)| {
                s.features.iter().all(|r| {
                    let view = crate::features::function::view_of(r);
                    views.iter().any(|v| v == view)
                })
            })
            .map(|(n, _)| n.clone())
            .collect();
        names.extend(views);
        let streams = crate::sql::file_functions::block_on(async {
            settings.online.stream_states().await.map_err(df_err)
        });
        names.extend(streams.into_iter().flatten().map(|s| s.view));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let settings = &self.settings;
        if !crate::warehouse::is_identifier(name) {
            return Ok(None);
        }
        let store = settings.online.clone();
        if let Some(service) = settings.services.get(name) {
            let mut parts: Vec<Part> = Vec::new();
            for r in &service.features {
                let (view, feature) = match r.split_once(':') {
                    Some((v, f)) => (v.trim(), Some(f.trim())),
                    None => (r.trim(), None),
                };
                if store.stream_state(view).await.map_err(df_err)?.is_some() {
                    return Err(df_err(Error::NotSupported {
                        message: format!(
                            "feature service `{name}` includes `{view}`, a stream feature view: services of stream views are not supported yet; look it up on its own (online.{view})"
                        ),
                        source: None,
                    }));
                }
                let state = materialized(&store, view).await?;
                let layout = Layout::from_state(&state).map_err(df_err)?;
                let wanted: Vec<usize> = match feature {
                    None | Some("*") => (0..layout.features.len()).collect(),
                    Some(f) => match layout.features.iter().position(|c| c.name() == f) {
                        Some(i) => vec![i],
                        None => {
                            return Err(df_err(Error::Sql(format!(
                                "feature service `{name}`: view `{view}` has no feature `{f}` online; features: {}",
                                layout.features.iter().map(|c| c.name().as_str()).collect::<Vec<_>>().join(", ")
                            ))))
                        }
                    },
                };
                match parts.iter_mut().find(|p| p.state.view == state.view) {
                    Some(p) => {
                        for w in wanted {
                            if !p.wanted.contains(&w) {
                                p.wanted.push(w);
                            }
                        }
                    }
                    None => parts.push(Part {
                        state,
                        layout,
                        wanted,
                    }),
                }
            }
            let table = OnlineTable::try_new(store, name, parts, Some(service.full_names))
                .map_err(df_err)?;
            return Ok(Some(Arc::new(table)));
        }
        if let Some(doc) = store.stream_state(name).await.map_err(df_err)? {
            let reader = store.stream_reader(doc).await.map_err(df_err)?;
            return Ok(Some(Arc::new(StreamOnlineTable::new(store, name, reader))));
        }
        let state = match store.state(name).await.map_err(df_err)? {
            Some(s) => s,
            None => {
                // A registered view not in the store yet is not an unknown table.
                let views = crate::features::list_views(store.warehouse())
                    .await
                    .map_err(df_err)?;
                if let Some(v) = views.iter().find(|v| v.name == name) {
                    if v.stream.is_some() {
                        return Err(df_err(Error::not_found(
                            crate::error::Object::Table,
                            format!(
                                "stream feature view `{name}` has no values in the online store yet: run `sluice stream` (it keeps the view fresh while it runs)"
                            ),
                        )));
                    }
                    return Err(df_err(not_materialized(name)));
                }
                return Ok(None);
            }
        };
        let layout = Layout::from_state(&state).map_err(df_err)?;
        let wanted = (0..layout.features.len()).collect();
        let part = Part {
            state,
            layout,
            wanted,
        };
        let table = OnlineTable::try_new(store, name, vec![part], None).map_err(df_err)?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}

async fn materialized(store: &OnlineStore, view: &str) -> DfResult<OnlineState> {
    store
        .state(view)
        .await
        .map_err(df_err)?
        .ok_or_else(|| df_err(not_materialized(view)))
}

/// A feature view with no values in the online store.
fn not_materialized(view: &str) -> Error {
    Error::not_found(
        crate::error::Object::Table,
        format!(
            "feature view `{view}` has no values in the online store yet: run `sluice materialize {view}` (or set 'online': true in its feature_view config, and `sluice run` writes it after the model)"
        ),
    )
}

/// One view of a table.
#[derive(Debug)]
struct Part {
    state: OnlineState,
    layout: Layout,
    /// Indexes of the features returned.
    wanted: Vec<usize>,
}

/// `online.<view>` or `online.<service>`.
#[derive(Debug)]
pub struct OnlineTable {
    store: Arc<OnlineStore>,
    name: String,
    parts: Vec<Part>,
    /// Entity columns (name, type) over all parts.
    entities: Vec<Field>,
    /// Per part, the index of each of its entities in `entities`.
    part_keys: Vec<Vec<usize>>,
    schema: SchemaRef,
}

impl OnlineTable {
    /// `service`: `Some(full_names)` for a feature service.
    fn try_new(
        store: Arc<OnlineStore>,
        name: &str,
        parts: Vec<Part>,
        service: Option<bool>,
    ) -> crate::Result<Self> {
        let mut entities: Vec<Field> = Vec::new();
        let mut part_keys = Vec::new();
        for p in &parts {
            let mut idx = Vec::new();
            for e in &p.layout.entities {
                match entities.iter().position(|f| f.name() == e.name()) {
                    Some(i) if entities[i].data_type() != e.data_type() => {
                        return Err(Error::Sql(format!(
                            "feature service `{name}`: entity `{}` is {} in one view and {} in `{}`",
                            e.name(),
                            entities[i].data_type(),
                            e.data_type(),
                            p.state.view
                        )))
                    }
                    Some(i) => idx.push(i),
                    None => {
                        entities.push(e.clone().with_nullable(true));
                        idx.push(entities.len() - 1);
                    }
                }
            }
            part_keys.push(idx);
        }
        let mut fields = entities.clone();
        let mut seen: HashSet<String> = entities.iter().map(|f| f.name().clone()).collect();
        for p in &parts {
            let prefix = match service {
                Some(true) => format!("{}__", p.state.view),
                _ => String::new(),
            };
            let features = p.layout.feature_fields();
            for &w in &p.wanted {
                let f = &features[w];
                let out = format!("{prefix}{}", f.name());
                if !seen.insert(out.clone()) {
                    return Err(Error::Sql(format!(
                        "feature service `{name}`: two columns are named `{out}`; set full_names = true in [feature_services.{name}] to prefix features with their view"
                    )));
                }
                fields.push(f.clone().with_name(out));
            }
            let (t, s) = match service {
                Some(_) => (
                    format!("{}__event_time", p.state.view),
                    format!("{}__status", p.state.view),
                ),
                None => ("_event_time".to_string(), "_status".to_string()),
            };
            fields.push(Field::new(t, p.layout.event_type(), true));
            fields.push(Field::new(s, DataType::Utf8, false));
        }
        Ok(OnlineTable {
            store,
            name: name.to_string(),
            parts,
            entities,
            part_keys,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Looks the keys up and builds the rows.
    async fn rows(&self, keys: Vec<Vec<ScalarValue>>) -> crate::Result<RecordBatch> {
        let n = keys.len();
        // Entity columns of the output, cast to the entity types.
        let mut entity_cols: Vec<ArrayRef> = Vec::with_capacity(self.entities.len());
        for (i, f) in self.entities.iter().enumerate() {
            let values = keys.iter().map(|k| k[i].clone());
            let array = if n == 0 {
                datafusion::arrow::array::new_empty_array(f.data_type())
            } else {
                ScalarValue::iter_to_array(values).map_err(|e| Error::Sql(e.to_string()))?
            };
            let array = cast(&array, f.data_type()).map_err(|e| {
                Error::Sql(format!(
                    "online.{}: a value for `{}` is not a {} ({e})",
                    self.name,
                    f.name(),
                    f.data_type()
                ))
            })?;
            entity_cols.push(array);
        }
        let now = chrono::Utc::now().timestamp_micros();
        let mut columns = entity_cols.clone();
        for (p, key_idx) in self.parts.iter().zip(&self.part_keys) {
            let cols: Vec<ArrayRef> = key_idx.iter().map(|&i| entity_cols[i].clone()).collect();
            let rows = p.layout.keys(&cols)?;
            // A prepared statement keeps this table: read the view's current
            // state (a newer materialization may have replaced the values).
            let state = match self.store.state(&p.state.view).await? {
                Some(s) if p.layout.matches(&s) => s,
                Some(_) => {
                    return Err(Error::Sql(format!(
                        "online view `{}` changed its columns since this statement was planned; prepare it again",
                        p.state.view
                    )))
                }
                None => p.state.clone(),
            };
            let values = self.store.lookup(&state, &rows).await?;
            let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
            let (features, events) = p.layout.decode(&refs)?;
            let ttl = p
                .state
                .ttl_seconds
                .map(|s| (s as i64).saturating_mul(1_000_000));
            let mut status = StringBuilder::with_capacity(n, n * 8);
            let mut keep = Vec::with_capacity(n);
            for e in &events {
                match e {
                    None => {
                        status.append_value("not_found");
                        keep.push(false);
                    }
                    Some(t) if ttl.is_some_and(|ttl| now.saturating_sub(*t) > ttl) => {
                        status.append_value("outside_ttl");
                        keep.push(false);
                    }
                    Some(_) => {
                        status.append_value("present");
                        keep.push(true);
                    }
                }
            }
            let mask = datafusion::arrow::array::BooleanArray::from(keep);
            for &w in &p.wanted {
                // Outside TTL reads as missing, as in a training set.
                let f = datafusion::arrow::compute::nullif(
                    &features[w],
                    &datafusion::arrow::compute::not(&mask)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                )
                .map_err(|e| Error::Internal(e.to_string()))?;
                columns.push(f);
            }
            let times = TimestampMicrosecondArray::from(events);
            let times = match p.layout.event_type() {
                DataType::Timestamp(_, Some(tz)) => times.with_timezone(tz),
                _ => times,
            };
            columns.push(Arc::new(times));
            columns.push(Arc::new(status.finish()));
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("online rows: {e}")))
    }
}

/// `online.<view>` of a stream feature view: the aggregates as of the
/// lookup's instant (`_event_time`), from the entities' events that
/// `sluice stream` keeps in the online store.
#[derive(Debug)]
pub struct StreamOnlineTable {
    store: Arc<OnlineStore>,
    name: String,
    reader: Arc<super::stream::ReaderView>,
    entities: Vec<Field>,
    schema: SchemaRef,
}

impl StreamOnlineTable {
    fn new(store: Arc<OnlineStore>, name: &str, reader: Arc<super::stream::ReaderView>) -> Self {
        let schema = super::stream::output_schema(&reader);
        let entities = reader
            .template
            .entity_fields()
            .into_iter()
            .map(|f| f.with_nullable(true))
            .collect();
        StreamOnlineTable {
            store,
            name: name.to_string(),
            reader,
            entities,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for StreamOnlineTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(&self.entities, filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let keys = keys_of(&self.name, &self.entities, filters)?;
        let now = chrono::Utc::now().timestamp_micros();
        let batch = self
            .store
            .stream_values(&self.reader, &keys, now, &self.schema)
            .await
            .map_err(df_err)?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

/// `l AND r` over disjunctions of conjunctions.
fn and(
    l: Vec<Vec<(usize, ScalarValue)>>,
    r: Vec<Vec<(usize, ScalarValue)>>,
) -> Option<Vec<Vec<(usize, ScalarValue)>>> {
    if l.len().saturating_mul(r.len()) > MAX_KEYS {
        return None;
    }
    let mut out = Vec::new();
    for a in &l {
        'pairs: for b in &r {
            let mut merged = a.clone();
            for (i, v) in b {
                match merged.iter().find(|(j, _)| j == i) {
                    Some((_, w)) if w != v => continue 'pairs,
                    Some(_) => {}
                    None => merged.push((*i, v.clone())),
                }
            }
            out.push(merged);
        }
    }
    Some(out)
}

#[async_trait]
impl TableProvider for OnlineTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(&self.entities, filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let keys = keys_of(&self.name, &self.entities, filters)?;
        let batch = self.rows(keys).await.map_err(df_err)?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

fn entity_index(entities: &[Field], e: &Expr) -> Option<usize> {
    let name = match e {
        Expr::Column(c) => &c.name,
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Column(c) => &c.name,
            _ => return None,
        },
        Expr::TryCast(c) => match c.expr.as_ref() {
            Expr::Column(c) => &c.name,
            _ => return None,
        },
        _ => return None,
    };
    entities.iter().position(|f| f.name() == name)
}

/// The keys a filter allows, as a disjunction of conjunctions of
/// `entity = value`; `None` when it is not of that form.
fn key_filter(entities: &[Field], e: &Expr) -> Option<Vec<Vec<(usize, ScalarValue)>>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => {
                let (c, v) = match (left.as_ref(), right.as_ref()) {
                    (c, Expr::Literal(v, _)) => (c, v),
                    (Expr::Literal(v, _), c) => (c, v),
                    _ => return None,
                };
                let i = entity_index(entities, c)?;
                Some(vec![vec![(i, v.clone())]])
            }
            Operator::Or => {
                let mut l = key_filter(entities, left)?;
                l.extend(key_filter(entities, right)?);
                Some(l)
            }
            Operator::And => {
                let l = key_filter(entities, left)?;
                let r = key_filter(entities, right)?;
                and(l, r)
            }
            _ => None,
        },
        Expr::InList(list) if !list.negated => {
            let i = entity_index(entities, &list.expr)?;
            list.list
                .iter()
                .map(|v| match v {
                    Expr::Literal(v, _) => Some(vec![(i, v.clone())]),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn usage(name: &str, entities: &[Field]) -> String {
    let cols: Vec<&str> = entities.iter().map(|f| f.name().as_str()).collect();
    format!(
        "online.{} is read by key: filter every entity column ({}) with = or IN, e.g. WHERE {} = 42",
        name,
        cols.join(", "),
        cols.first().copied().unwrap_or("id")
    )
}

/// Key conditions are answered exactly; anything else is left to the plan.
fn pushdown(entities: &[Field], filters: &[&Expr]) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| match key_filter(entities, f) {
            Some(_) => TableProviderFilterPushDown::Exact,
            None => TableProviderFilterPushDown::Unsupported,
        })
        .collect()
}

/// The keys `filters` ask for (each once; `= NULL` matches nothing).
fn keys_of(name: &str, entities: &[Field], filters: &[Expr]) -> DfResult<Vec<Vec<ScalarValue>>> {
    let mut combos: Vec<Vec<(usize, ScalarValue)>> = vec![Vec::new()];
    for f in filters {
        if let Some(k) = key_filter(entities, f) {
            combos = and(combos, k).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "online.{}: more than {MAX_KEYS} keys in one query",
                    name
                ))
            })?;
        }
    }
    let mut keys: Vec<Vec<ScalarValue>> = Vec::with_capacity(combos.len());
    let mut seen = HashSet::new();
    for c in combos {
        let mut key = vec![ScalarValue::Null; entities.len()];
        let mut set = 0;
        for (i, v) in c {
            key[i] = v;
            set += 1;
        }
        if set < entities.len() {
            return Err(DataFusionError::Plan(usage(name, entities)));
        }
        // `= NULL` matches nothing.
        if key.iter().any(ScalarValue::is_null) {
            continue;
        }
        if seen.insert(key.clone()) {
            keys.push(key);
        }
    }
    if keys.len() > MAX_KEYS {
        return Err(DataFusionError::Plan(format!(
            "online.{}: {} keys in one query; the most is {MAX_KEYS}",
            name,
            keys.len()
        )));
    }
    Ok(keys)
}
