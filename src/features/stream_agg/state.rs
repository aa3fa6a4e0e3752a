//! The online state of a stream feature view: per entity, the raw events of
//! the longest window (plus the allowed lateness) and, per tile width, tiles of
//! partial aggregates over them. See the parent module for the semantics and
//! the costs.

use super::spec::{model_error, AggFunc, StreamAggSpec};
use crate::error::{Error, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::collections::HashMap;
use std::sync::Arc;

/// Settings of the online state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamAggOptions {
    /// How much older than the longest window, measured back from the newest
    /// event seen, an event may be and still be applied (microseconds).
    pub allowed_lateness_us: i64,
}

/// What one [`StreamAggState::apply`] did with a batch's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyStats {
    /// Rows in the batch.
    pub rows: u64,
    /// Rows the row filter (`WHERE`) dropped (false or NULL).
    pub filtered_out: u64,
    /// Rows with a NULL entity column: no label can match them (SQL `=`
    /// never matches NULL), so they are not kept.
    pub null_key: u64,
    /// Rows with a NULL event timestamp: in no window.
    pub null_timestamp: u64,
    /// Rows whose event timestamp is outside ±2^62 µs (about ±146,000
    /// years): not applied, they are in no window an instant in range has.
    pub out_of_range: u64,
    /// Rows older than the lateness horizon: not applied (the Delta table
    /// has them, so offline values include them; online values never will,
    /// and the state refuses to answer the instants they would change).
    pub too_late: u64,
    /// Rows applied to the state.
    pub applied: u64,
}

/// How a channel (one distinct aggregate argument) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// Signed integers, unsigned up to 32 bits, timestamps, dates: `i64`.
    Int,
    /// Floats: `f64` (exact for `f32` and `f16`).
    Float,
    /// Any other type: only NULL or not (for `count(expr)`).
    CountOnly,
}

#[derive(Debug, Clone)]
struct Channel {
    expr: Arc<dyn PhysicalExpr>,
    domain: Domain,
}

#[derive(Debug, Clone)]
struct CompiledAgg {
    func: AggFunc,
    channel: Option<usize>,
    tile_set: usize,
    window_us: i64,
    /// The input type (for min/max, the output type too).
    input_type: Option<DataType>,
    output_type: DataType,
}

/// Event times and instants the state handles (µs): wide enough for any
/// real timestamp, narrow enough that window and tile arithmetic cannot
/// overflow.
pub(crate) const TIME_RANGE_US: std::ops::RangeInclusive<i64> = -(1 << 62)..=(1 << 62);

/// The longest allowed lateness (about 100 years, as the longest window).
const MAX_LATENESS_US: i64 = super::spec::MAX_WINDOW_US;

/// An entity's key: its entity columns' values as Arrow row bytes (the
/// same bytes the online store keys entities by).
pub type EntityKey = Box<[u8]>;

/// A map by entity key.
pub type KeyMap<V> = HashMap<EntityKey, V, ahash::RandomState>;

/// Keys given as values (one `Vec` per entity, one value per entity column)
/// as arrays of the entity columns' types (`fields`), values cast to them.
pub fn key_columns(fields: &[Field], keys: &[Vec<ScalarValue>]) -> Result<Vec<ArrayRef>> {
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let array = if keys.is_empty() {
            datafusion::arrow::array::new_empty_array(f.data_type())
        } else {
            let mut values = Vec::with_capacity(keys.len());
            for k in keys {
                values.push(k.get(i).cloned().ok_or_else(|| {
                    Error::Sql(format!(
                        "a key has {} values; the entity columns are {}",
                        k.len(),
                        fields
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?);
            }
            ScalarValue::iter_to_array(values)
                .map_err(|e| Error::Sql(format!("entity `{}`: {e}", f.name())))?
        };
        out.push(cast(&array, f.data_type()).map_err(|e| {
            Error::Sql(format!(
                "a value for `{}` is not a {} ({e})",
                f.name(),
                f.data_type()
            ))
        })?);
    }
    Ok(out)
}

/// The Arrow row converter of the entity columns.
fn key_converter(fields: &[Field]) -> std::result::Result<RowConverter, String> {
    RowConverter::new(
        fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .map_err(|e| format!("the entity columns cannot be keys: {e}"))
}

/// The exact online state of one stream feature view (see the module doc).
#[derive(Debug)]
pub struct StreamAggState {
    spec: StreamAggSpec,
    options: StreamAggOptions,
    source_schema: SchemaRef,
    output_schema: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    entity_idx: Vec<usize>,
    ts_idx: usize,
    ts_unit: TimeUnit,
    channels: Vec<Channel>,
    aggs: Vec<CompiledAgg>,
    tile_widths: Vec<i64>,
    /// Whether entities keep tiles (see [`keep_tiles`](Self::keep_tiles)).
    tiles: bool,
    max_window_us: i64,
    /// Encodes entity keys.
    keys: RowConverter,
    entities: KeyMap<EntityState>,
    max_event_us: Option<i64>,
    expired_to_us: Option<i64>,
    /// The newest time of an event dropped (too late, pruned or expired).
    dropped_to_us: Option<i64>,
    /// While recording: per entity, the events applied since the last
    /// [`take_changes`](Self::take_changes), as event records.
    changes: Option<KeyMap<Vec<u8>>>,
}

/// Whether arrays of types `a` and `b` hold the same values in other
/// layouts (string and binary views, large offsets).
fn same_values(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    let family = |t: &DataType| match t {
        Utf8 | LargeUtf8 | Utf8View => 1,
        Binary | LargeBinary | BinaryView => 2,
        _ => 0,
    };
    family(a) != 0 && family(a) == family(b)
}

/// Whether `dt` is an integer type kept as `i64` (UInt64 is not: it does not fit).
fn is_small_int(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

fn is_float(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

fn domain_of(dt: &DataType) -> Domain {
    if is_small_int(dt)
        || matches!(
            dt,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        )
    {
        Domain::Int
    } else if is_float(dt) {
        Domain::Float
    } else {
        Domain::CountOnly
    }
}

/// The result type DataFusion gives `func` over `input` (see
/// datafusion-functions-aggregate 55: `sum` widens signed integers to Int64,
/// unsigned to UInt64, floats to Float64; `avg` coerces numbers to Float64;
/// `min`/`max` keep their input type), or what to write instead.
fn output_type(func: AggFunc, input: Option<&DataType>) -> std::result::Result<DataType, String> {
    let cast_hint =
        "cast it in the argument, e.g. sum(CAST(x AS DOUBLE)) or sum(CAST(x AS BIGINT))";
    match (func, input) {
        (AggFunc::CountStar | AggFunc::Count, _) => Ok(DataType::Int64),
        (_, None) => Err("needs an argument".into()),
        (AggFunc::Sum, Some(dt)) => match dt {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                Ok(DataType::Int64)
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Ok(DataType::UInt64),
            dt if is_float(dt) => Ok(DataType::Float64),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Err(format!(
                "sums of decimals ({dt}) are not supported in stream feature views yet; {cast_hint}"
            )),
            other => Err(format!(
                "sum over {other} is not supported in stream feature views (integers up to 32-bit unsigned or 64-bit signed, floats); {cast_hint}"
            )),
        },
        (AggFunc::Avg, Some(dt)) if is_small_int(dt) || is_float(dt) => Ok(DataType::Float64),
        (AggFunc::Avg, Some(other)) => Err(format!(
            "avg over {other} is not supported in stream feature views (integers up to 32-bit unsigned or 64-bit signed, floats); cast it in the argument, e.g. avg(CAST(x AS DOUBLE))"
        )),
        (AggFunc::Min | AggFunc::Max, Some(dt)) if domain_of(dt) != Domain::CountOnly => {
            Ok(dt.clone())
        }
        (AggFunc::Min | AggFunc::Max, Some(other)) => Err(format!(
            "{}() over {other} is not supported in stream feature views (integers up to 32-bit unsigned or 64-bit signed, floats, timestamps, dates)",
            func.sql_name()
        )),
    }
}

impl StreamAggState {
    /// The state of `spec` over a source with `source_schema` (the columns of
    /// the batches given to [`apply`](Self::apply)). Plans the row filter and
    /// the aggregate arguments with DataFusion, so they mean what they mean
    /// offline, and checks the types.
    pub fn new(
        spec: StreamAggSpec,
        source_schema: SchemaRef,
        options: StreamAggOptions,
    ) -> Result<Self> {
        let err = |m: String| model_error(&spec.model, m);
        if !(0..=MAX_LATENESS_US).contains(&options.allowed_lateness_us) {
            return Err(err(format!(
                "allowed lateness must be between 0 and 36500 days (got {} µs)",
                options.allowed_lateness_us
            )));
        }
        let columns = || {
            source_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = |name: &str| {
            source_schema.index_of(name).map_err(|_| {
                err(format!(
                    "source `{}` has no column `{name}` (columns: {})",
                    spec.source,
                    columns()
                ))
            })
        };
        let entity_idx = spec
            .entities
            .iter()
            .map(|e| index(e))
            .collect::<Result<Vec<_>>>()?;
        let ts_idx = index(&spec.event_timestamp)?;
        let ts_unit = match source_schema.field(ts_idx).data_type() {
            DataType::Timestamp(unit, _) => *unit,
            other => {
                return Err(err(format!(
                    "the event timestamp `{}` is {other}; it must be a TIMESTAMP (cast it in the source)",
                    spec.event_timestamp
                )))
            }
        };

        let qualifier = match &spec.source_alias {
            Some(a) => TableReference::bare(a.as_str()),
            None => TableReference::parse_str(&spec.source),
        };
        let df_schema = DFSchema::try_from_qualified_schema(qualifier, &source_schema)
            .map_err(|e| err(format!("cannot read the source schema: {e}")))?;
        let ctx = SessionContext::new();
        let plan = |sql: &str, what: &str| -> Result<Arc<dyn PhysicalExpr>> {
            let expr = ctx
                .parse_sql_expr(sql, &df_schema)
                .map_err(|e| err(format!("{what} `{sql}`: {}", Error::from(e))))?;
            // As the planner does before physical planning (`coalesce`, for
            // one, only runs once rewritten into CASE).
            let simplify = datafusion::logical_expr::simplify::SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build();
            let expr = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(simplify)
                .simplify(expr)
                .map_err(|e| err(format!("{what} `{sql}`: {}", Error::from(e))))?;
            ctx.create_physical_expr(expr, &df_schema)
                .map_err(|e| err(format!("{what} `{sql}`: {}", Error::from(e))))
        };
        let filter = match &spec.row_filter {
            None => None,
            Some(sql) => {
                let f = plan(sql, "the row filter")?;
                let dt = f
                    .data_type(&source_schema)
                    .map_err(|e| err(format!("the row filter `{sql}`: {e}")))?;
                if dt != DataType::Boolean {
                    return Err(err(format!(
                        "the row filter `WHERE {sql}` is {dt}, not a boolean predicate"
                    )));
                }
                Some(f)
            }
        };

        let mut channel_sql: Vec<String> = Vec::new();
        let mut channels: Vec<Channel> = Vec::new();
        let mut channel_types: Vec<DataType> = Vec::new();
        let mut tile_widths: Vec<i64> = Vec::new();
        let mut aggs = Vec::new();
        for a in &spec.aggregates {
            let channel = match &a.arg {
                None => None,
                Some(sql) => Some(match channel_sql.iter().position(|s| s == sql) {
                    Some(i) => i,
                    None => {
                        let expr = plan(sql, &format!("`{}`: the argument", a.sql))?;
                        let dt = expr
                            .data_type(&source_schema)
                            .map_err(|e| err(format!("`{}`: {e}", a.sql)))?;
                        channels.push(Channel {
                            expr,
                            domain: domain_of(&dt),
                        });
                        channel_types.push(dt);
                        channel_sql.push(sql.clone());
                        channels.len() - 1
                    }
                }),
            };
            let input_type = channel.map(|c| channel_types[c].clone());
            let output_type = output_type(a.func, input_type.as_ref())
                .map_err(|m| err(format!("`{}`: {m}", a.sql)))?;
            let width = tile_width_us(a.window_us);
            let tile_set = match tile_widths.iter().position(|&w| w == width) {
                Some(i) => i,
                None => {
                    tile_widths.push(width);
                    tile_widths.len() - 1
                }
            };
            aggs.push(CompiledAgg {
                func: a.func,
                channel,
                tile_set,
                window_us: a.window_us,
                input_type,
                output_type,
            });
        }
        let mut fields: Vec<Field> = entity_idx
            .iter()
            .map(|&i| source_schema.field(i).clone())
            .collect();
        for (a, c) in spec.aggregates.iter().zip(&aggs) {
            let counts = matches!(c.func, AggFunc::Count | AggFunc::CountStar);
            fields.push(Field::new(&a.alias, c.output_type.clone(), !counts));
        }
        let max_window_us = spec.max_window_us();
        let key_fields: Vec<Field> = entity_idx
            .iter()
            .map(|&i| source_schema.field(i).clone())
            .collect();
        let keys = key_converter(&key_fields).map_err(err)?;
        Ok(StreamAggState {
            keys,
            output_schema: Arc::new(Schema::new(fields)),
            spec,
            options,
            source_schema,
            filter,
            entity_idx,
            ts_idx,
            ts_unit,
            channels,
            aggs,
            tile_widths,
            tiles: true,
            max_window_us,
            entities: KeyMap::default(),
            max_event_us: None,
            expired_to_us: None,
            dropped_to_us: None,
            changes: None,
        })
    }

    /// The definition.
    pub fn spec(&self) -> &StreamAggSpec {
        &self.spec
    }

    /// The columns of a value row: the entity columns, then one per aggregate
    /// (counts are Int64 and never NULL; the others are NULL when no event
    /// with a non-NULL argument is in the window).
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// The row filter's SQL. [`apply`](Self::apply) evaluates it itself
    /// (with DataFusion, as offline does): callers pass unfiltered rows. It is
    /// given for callers that want to push it into a scan; rows already
    /// filtered pass it again unchanged.
    pub fn filter_sql(&self) -> Option<&str> {
        self.spec.row_filter.as_deref()
    }

    /// The newest event time applied (µs), if any.
    pub fn max_event_us(&self) -> Option<i64> {
        self.max_event_us
    }

    /// Events at or before this time (µs) may have been dropped: too late, or
    /// expired. `None` while nothing was dropped.
    pub fn horizon_us(&self) -> Option<i64> {
        let late = self
            .max_event_us
            .map(|m| m - self.max_window_us - self.options.allowed_lateness_us);
        // No overflow: event times are within TIME_RANGE_US, windows and
        // lateness far smaller (lateness is capped in `new`).
        match (late, self.expired_to_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest instant (µs) whose values the state knows exactly: every
    /// window of it lies after the newest event dropped so far (too late,
    /// or expired). `None` while no event was dropped: every instant is
    /// exact. Instants before it are refused by [`value`](Self::value).
    pub fn earliest_exact_us(&self) -> Option<i64> {
        self.dropped_to_us.map(|d| d + self.max_window_us)
    }

    fn dropped(&mut self, newest: Option<i64>) {
        if let Some(t) = newest {
            self.dropped_to_us = Some(self.dropped_to_us.map_or(t, |d| d.max(t)));
        }
    }

    /// A state of the same definition holding nothing (for readers that
    /// decode a few entities: no planning again).
    pub fn empty_like(&self) -> Result<StreamAggState> {
        Ok(StreamAggState {
            keys: key_converter(&self.entity_fields())
                .map_err(|m| model_error(&self.spec.model, m))?,
            spec: self.spec.clone(),
            options: self.options,
            source_schema: self.source_schema.clone(),
            output_schema: self.output_schema.clone(),
            filter: self.filter.clone(),
            entity_idx: self.entity_idx.clone(),
            ts_idx: self.ts_idx,
            ts_unit: self.ts_unit,
            channels: self.channels.clone(),
            aggs: self.aggs.clone(),
            tile_widths: self.tile_widths.clone(),
            tiles: self.tiles,
            max_window_us: self.max_window_us,
            entities: KeyMap::default(),
            max_event_us: None,
            expired_to_us: None,
            dropped_to_us: None,
            changes: None,
        })
    }

    /// Whether entities keep tiles of partial aggregates (the default). Tiles
    /// make a value of an entity with many events cost about 60 tiles per
    /// window instead of its events; they pay for a state that answers many
    /// lookups. A state that only collects events (the ingester's, which
    /// writes them to the online store, or a reader's decoded for one
    /// lookup) keeps none: each event then costs its bytes only.
    pub fn keep_tiles(&mut self, on: bool) {
        if on == self.tiles {
            return;
        }
        self.tiles = on;
        let widths = self.widths().to_vec();
        let channels = self.channels.len();
        for e in self.entities.values_mut() {
            let mut fresh = EntityState::new(channels, widths.len());
            let mut vals = Vec::with_capacity(channels);
            for i in 0..e.len() {
                vals.clear();
                vals.extend(e.vals(i));
                fresh.insert(e.times[i], &vals, &widths);
            }
            *e = fresh;
        }
    }

    /// The tile widths entities keep (none without tiles).
    fn widths(&self) -> &[i64] {
        if self.tiles {
            &self.tile_widths
        } else {
            &[]
        }
    }

    fn new_entity(&self) -> EntityState {
        EntityState::new(self.channels.len(), self.widths().len())
    }

    /// Starts (or stops) recording the events each [`apply`](Self::apply)
    /// adds, per entity, for [`take_changes`](Self::take_changes): what a
    /// writer appends to the online store, so that its cost follows the new
    /// events, not the events the windows hold.
    pub fn record_changes(&mut self, on: bool) {
        self.changes = on.then(KeyMap::default);
    }

    /// The events applied since the last call (while recording), per entity,
    /// as event records (see [`entity_events`](Self::entity_events)).
    pub fn take_changes(&mut self) -> KeyMap<Vec<u8>> {
        match &mut self.changes {
            Some(c) => std::mem::take(c),
            None => KeyMap::default(),
        }
    }

    /// The keys of entities given as values (one `Vec` per entity, one value
    /// per entity column, cast to the column's type), as row bytes.
    pub fn key_rows(&self, keys: &[Vec<ScalarValue>]) -> Result<Rows> {
        let cols = key_columns(&self.entity_fields(), keys)?;
        self.rows_of(&cols)
    }

    /// The key of one entity given as values.
    pub fn key_of(&self, key: &[ScalarValue]) -> Result<EntityKey> {
        if key.len() != self.entity_idx.len() {
            return Err(model_error(
                &self.spec.model,
                format!(
                    "a key has {} values; the entities are {}",
                    key.len(),
                    self.spec.entities.join(", ")
                ),
            ));
        }
        let rows = self.key_rows(&[key.to_vec()])?;
        Ok(rows.row(0).as_ref().into())
    }

    /// Row bytes of entity columns (arrays of the entity columns' types).
    fn rows_of(&self, cols: &[ArrayRef]) -> Result<Rows> {
        self.keys
            .convert_columns(cols)
            .map_err(|e| Error::Internal(format!("encoding entity keys: {e}")))
    }

    /// Events held for entity `key`.
    pub fn entity_event_count(&self, key: &[u8]) -> usize {
        self.entities.get(key).map_or(0, EntityState::len)
    }

    /// The newest event time (µs) held for entity `key`.
    pub fn entity_newest_us(&self, key: &[u8]) -> Option<i64> {
        self.entities.get(key).and_then(EntityState::newest)
    }

    /// Whether the state holds an event of `key`.
    pub fn has_entity(&self, key: &[u8]) -> bool {
        self.entities.contains_key(key)
    }

    /// The keys of every entity held.
    pub fn entity_keys(&self) -> Vec<EntityKey> {
        self.entities.keys().cloned().collect()
    }

    /// The entity columns of the source, as its schema has them.
    pub fn entity_fields(&self) -> Vec<Field> {
        self.entity_idx
            .iter()
            .map(|&i| self.source_schema.field(i).clone())
            .collect()
    }

    /// The time zone of the source's event timestamp, if it has one.
    pub fn event_timezone(&self) -> Option<Arc<str>> {
        match self.source_schema.field(self.ts_idx).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        }
    }

    /// The longest window (µs).
    pub fn max_window_us(&self) -> i64 {
        self.max_window_us
    }

    /// Entities held.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Events held, over all entities.
    pub fn event_count(&self) -> usize {
        self.entities.values().map(EntityState::len).sum()
    }

    /// `batch` with the columns of the source schema, in its order.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        if schema.fields().len() == self.source_schema.fields().len()
            && schema
                .fields()
                .iter()
                .zip(self.source_schema.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
        {
            return RecordBatch::try_new(self.source_schema.clone(), batch.columns().to_vec())
                .map_err(|e| Error::Internal(format!("re-labelling a batch: {e}")));
        }
        let mut cols = Vec::with_capacity(self.source_schema.fields().len());
        for f in self.source_schema.fields() {
            let c = batch.column_by_name(f.name()).ok_or_else(|| {
                model_error(
                    &self.spec.model,
                    format!(
                        "a batch of `{}` has no column `{}`; the stream feature view was set up for columns {}",
                        self.spec.source,
                        f.name(),
                        self.source_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            if c.data_type() != f.data_type() && same_values(c.data_type(), f.data_type()) {
                // DataFusion reads strings as views, the stream writes plain
                // arrays: the same values either way.
                cols.push(cast(c, f.data_type()).map_err(|e| {
                    Error::Internal(format!("column `{}` to {}: {e}", f.name(), f.data_type()))
                })?);
                continue;
            }
            if c.data_type() != f.data_type() {
                return Err(model_error(
                    &self.spec.model,
                    format!(
                        "column `{}` of `{}` is {} in this batch but {} when the stream feature view was set up; restart it with the table's current schema",
                        f.name(),
                        self.spec.source,
                        c.data_type(),
                        f.data_type()
                    ),
                ));
            }
            cols.push(c.clone());
        }
        RecordBatch::try_new(self.source_schema.clone(), cols)
            .map_err(|e| Error::Internal(format!("re-ordering a batch: {e}")))
    }

    /// Event times in µs (`Err(())` for a time outside [`TIME_RANGE_US`]).
    /// Nanoseconds are rounded up: the instants of values and the window
    /// bounds are whole microseconds, and `ceil(ns / 1000) <= T` exactly when
    /// `ns <= T * 1000`, so windows keep the same events.
    fn times_us(&self, col: &ArrayRef) -> Result<Vec<Option<std::result::Result<i64, ()>>>> {
        let raw = cast(col, &DataType::Int64)
            .map_err(|e| Error::Internal(format!("timestamp as Int64: {e}")))?;
        let raw = raw.as_primitive::<Int64Type>();
        let unit = self.ts_unit;
        Ok(raw
            .iter()
            .map(|v| {
                let v = v?;
                let us = match unit {
                    TimeUnit::Second => v.checked_mul(1_000_000),
                    TimeUnit::Millisecond => v.checked_mul(1_000),
                    TimeUnit::Microsecond => Some(v),
                    TimeUnit::Nanosecond => Some(ceil_div(v, 1_000)),
                };
                Some(us.filter(|t| TIME_RANGE_US.contains(t)).ok_or(()))
            })
            .collect())
    }

    /// The values of channel `c` over `batch`.
    fn channel_values(&self, c: &Channel, batch: &RecordBatch) -> Result<Vec<Val>> {
        let model_err = |e: String| model_error(&self.spec.model, e);
        let arr = c
            .expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| {
                model_err(format!(
                    "evaluating an aggregate argument: {}",
                    Error::from(e)
                ))
            })?;
        Ok(match c.domain {
            Domain::Int => {
                let a = cast(&arr, &DataType::Int64)
                    .map_err(|e| Error::Internal(format!("argument as Int64: {e}")))?;
                a.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map_or(Val::Null, Val::I))
                    .collect()
            }
            Domain::Float => {
                let a = cast(&arr, &DataType::Float64)
                    .map_err(|e| Error::Internal(format!("argument as Float64: {e}")))?;
                a.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map_or(Val::Null, Val::F))
                    .collect()
            }
            Domain::CountOnly => (0..arr.len())
                .map(|i| if arr.is_null(i) { Val::Null } else { Val::I(0) })
                .collect(),
        })
    }

    /// Applies the rows of `batch` (columns of the source table, unfiltered:
    /// the row filter is evaluated here). Cost: the rows of the batch times
    /// (log of the events per entity + tile widths), independent of the
    /// window lengths. See [`ApplyStats`] for what is skipped.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<ApplyStats> {
        let mut stats = ApplyStats {
            rows: batch.num_rows() as u64,
            ..ApplyStats::default()
        };
        if batch.num_rows() == 0 {
            return Ok(stats);
        }
        let batch = self.conform(batch)?;
        let batch = match &self.filter {
            None => batch,
            Some(f) => {
                let keep = f
                    .evaluate(&batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|e| {
                        model_error(
                            &self.spec.model,
                            format!("evaluating the row filter: {}", Error::from(e)),
                        )
                    })?;
                let keep: &BooleanArray = keep.as_boolean();
                let kept = filter_record_batch(&batch, keep)
                    .map_err(|e| Error::Internal(format!("filtering a batch: {e}")))?;
                stats.filtered_out = (batch.num_rows() - kept.num_rows()) as u64;
                kept
            }
        };
        let times = self.times_us(batch.column(self.ts_idx))?;
        if let Some(newest) = times.iter().flatten().flatten().max() {
            self.max_event_us = Some(self.max_event_us.map_or(*newest, |m| m.max(*newest)));
        }
        let horizon = self.horizon_us();
        let values = self
            .channels
            .iter()
            .map(|c| self.channel_values(c, &batch))
            .collect::<Result<Vec<_>>>()?;
        let key_cols: Vec<ArrayRef> = self
            .entity_idx
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let key_rows = self.rows_of(&key_cols)?;
        let mut late_max: Option<i64> = None;
        let mut vals: Vec<Val> = Vec::with_capacity(values.len());
        for (row, ts) in times.iter().enumerate() {
            if key_cols.iter().any(|c| c.is_null(row)) {
                stats.null_key += 1;
                continue;
            }
            let ts = match *ts {
                None => {
                    stats.null_timestamp += 1;
                    continue;
                }
                Some(Err(())) => {
                    stats.out_of_range += 1;
                    continue;
                }
                Some(Ok(ts)) => ts,
            };
            if horizon.is_some_and(|h| ts <= h) {
                stats.too_late += 1;
                late_max = late_max.max(Some(ts));
                continue;
            }
            let key_row = key_rows.row(row);
            let key: &[u8] = key_row.as_ref();
            vals.clear();
            vals.extend(values.iter().map(|v| v[row]));
            if let Some(changes) = &mut self.changes {
                match changes.get_mut(key) {
                    Some(c) => codec::encode_event(c, ts, &vals),
                    None => {
                        let mut c = Vec::with_capacity(64);
                        codec::encode_event(&mut c, ts, &vals);
                        changes.insert(key.into(), c);
                    }
                }
            }
            let (channels, sets) = (self.channels.len(), self.widths().len());
            let widths: &[i64] = if self.tiles { &self.tile_widths } else { &[] };
            if !self.entities.contains_key(key) {
                self.entities
                    .insert(key.into(), EntityState::new(channels, sets));
            }
            let entity = self
                .entities
                .get_mut(key)
                .ok_or_else(|| Error::Internal("an entity just inserted is missing".into()))?;
            // Keep memory bounded for entities that keep receiving events
            // (the others are swept by `expire`): prune when the horizon has
            // passed the entity's oldest event.
            if let Some(h) = horizon {
                if entity.oldest().is_some_and(|t| t <= h) {
                    let (_, newest) = entity.prune(h, widths);
                    late_max = late_max.max(newest);
                }
            }
            entity.insert(ts, &vals, widths);
            stats.applied += 1;
        }
        self.dropped(late_max);
        Ok(stats)
    }

    /// Drops what no window of an instant at or after `now_us` can need:
    /// events at or before `now_us - longest window - allowed lateness`, and
    /// entities left with no event. Values of earlier instants are refused
    /// from then on. Returns the number of events dropped.
    pub fn expire(&mut self, now_us: i64) -> u64 {
        self.expire_entities(now_us).0
    }

    /// [`expire`](Self::expire), also giving the keys of the entities it
    /// dropped whole.
    pub fn expire_entities(&mut self, now_us: i64) -> (u64, Vec<EntityKey>) {
        let cut = now_us
            .saturating_sub(self.max_window_us)
            .saturating_sub(self.options.allowed_lateness_us);
        self.expired_to_us = Some(self.expired_to_us.map_or(cut, |e| e.max(cut)));
        let widths: &[i64] = if self.tiles { &self.tile_widths } else { &[] };
        let (mut dropped, mut newest) = (0, None);
        for e in self.entities.values_mut() {
            let (n, t) = e.prune(cut, widths);
            dropped += n;
            newest = newest.max(t);
        }
        let gone: Vec<EntityKey> = self
            .entities
            .iter()
            .filter(|(_, e)| e.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.entities.remove(k);
        }
        self.dropped(newest);
        (dropped, gone)
    }

    /// The partial aggregate of `agg` for `entity` over `(at - w, at]`:
    /// the whole tiles inside the window plus the raw events of the partial
    /// tiles at its two edges.
    fn window(&self, entity: &EntityState, agg: &CompiledAgg, at: i64) -> (i64, Partial) {
        let lo = at - agg.window_us;
        let t = self.tile_widths[agg.tile_set];
        let (ka, kb) = (ceil_div(lo, t), at.div_euclid(t));
        let mut rows = 0;
        let mut acc = Partial::default();
        let raw = |from: i64, to: i64, rows: &mut i64, acc: &mut Partial| {
            if from >= to {
                return;
            }
            let range = entity.between(from, to);
            *rows += range.len() as i64;
            if let Some(c) = agg.channel {
                for i in range {
                    acc.add(entity.val(i, c));
                }
            }
        };
        if ka < kb && !entity.tiles.is_empty() {
            raw(lo, ka * t, &mut rows, &mut acc);
            for tile in entity.tiles[agg.tile_set].range(ka..kb).map(|(_, t)| t) {
                rows += tile.rows;
                if let Some(c) = agg.channel {
                    acc.merge(&tile.channels[c]);
                }
            }
            raw(kb * t, at, &mut rows, &mut acc);
        } else {
            raw(lo, at, &mut rows, &mut acc);
        }
        (rows, acc)
    }

    /// The final value of `agg` from its window's partial.
    fn finish(
        &self,
        alias: &str,
        agg: &CompiledAgg,
        rows: i64,
        p: &Partial,
    ) -> Result<ScalarValue> {
        let null = || {
            ScalarValue::try_from(&agg.output_type)
                .map_err(|e| Error::Internal(format!("NULL of {}: {e}", agg.output_type)))
        };
        Ok(match agg.func {
            AggFunc::CountStar => ScalarValue::Int64(Some(rows)),
            AggFunc::Count => ScalarValue::Int64(Some(p.count)),
            _ if p.count == 0 => null()?,
            AggFunc::Sum => match agg.output_type {
                DataType::Float64 => ScalarValue::Float64(Some(p.fsum)),
                DataType::Int64 => ScalarValue::Int64(Some(i64::try_from(p.isum).map_err(|_| {
                    model_error(
                        &self.spec.model,
                        format!("`{alias}`: the sum {} does not fit BIGINT; sum CAST(x AS DOUBLE) instead", p.isum),
                    )
                })?)),
                DataType::UInt64 => ScalarValue::UInt64(Some(u64::try_from(p.isum).map_err(|_| {
                    model_error(
                        &self.spec.model,
                        format!("`{alias}`: the sum {} does not fit BIGINT UNSIGNED", p.isum),
                    )
                })?)),
                ref other => return Err(Error::Internal(format!("sum to {other}"))),
            },
            AggFunc::Avg => {
                let sum = match agg.input_type.as_ref().map(domain_of) {
                    Some(Domain::Float) => p.fsum,
                    _ => p.isum as f64,
                };
                ScalarValue::Float64(Some(sum / p.count as f64))
            }
            AggFunc::Min | AggFunc::Max => {
                let v = if agg.func == AggFunc::Min { p.min } else { p.max };
                match v {
                    Val::Null => null()?,
                    Val::F(x) => ScalarValue::Float64(Some(x))
                        .cast_to(&agg.output_type)
                        .map_err(|e| Error::Internal(format!("min/max to {}: {e}", agg.output_type)))?,
                    Val::I(x) => int_to_scalar(x, &agg.output_type)?,
                }
            }
        })
    }

    /// The aggregates of entity `key` (values in the entity columns' types)
    /// as of instant `at_us`: each over the events in `(at_us - w, at_us]`.
    /// An entity the state does not hold (never seen, or all its events
    /// expired) gets what offline gives a label with no event: count 0 and
    /// NULL for the others. Instants before
    /// [`earliest_exact_us`](Self::earliest_exact_us) are refused.
    pub fn value(&self, key: &[ScalarValue], at_us: i64) -> Result<Vec<ScalarValue>> {
        let key = self.key_of(key)?;
        self.value_of(&key, at_us)
    }

    /// [`value`](Self::value) of the entity with key bytes `key`.
    pub fn value_of(&self, key: &[u8], at_us: i64) -> Result<Vec<ScalarValue>> {
        if !TIME_RANGE_US.contains(&at_us) {
            return Err(model_error(
                &self.spec.model,
                format!("the instant {at_us} µs is out of range (±2^62 µs from 1970)"),
            ));
        }
        if let Some(earliest) = self.earliest_exact_us() {
            if at_us < earliest {
                return Err(model_error(
                    &self.spec.model,
                    format!(
                        "the online state cannot give the value at {at_us} µs exactly: events up to {} µs may have been dropped (too late or expired); ask for instants from {earliest} µs on, or compute older values offline",
                        earliest - self.max_window_us
                    ),
                ));
            }
        }
        let entity = self.entities.get(key);
        let empty = self.new_entity();
        let entity = entity.unwrap_or(&empty);
        self.spec
            .aggregates
            .iter()
            .zip(&self.aggs)
            .map(|(a, agg)| {
                let (rows, p) = self.window(entity, agg, at_us);
                self.finish(&a.alias, agg, rows, &p)
            })
            .collect()
    }

    /// [`value`](Self::value) for every row of `keys` (a batch holding at
    /// least the entity columns), as a batch of [`output_schema`](Self::output_schema).
    pub fn values(&self, keys: &RecordBatch, at_us: i64) -> Result<RecordBatch> {
        let mut key_cols = Vec::new();
        for e in &self.spec.entities {
            let c = keys.column_by_name(e).ok_or_else(|| {
                model_error(
                    &self.spec.model,
                    format!("the keys have no entity column `{e}`"),
                )
            })?;
            key_cols.push(c.clone());
        }
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (i, c) in key_cols.iter().enumerate() {
            let want = self.output_schema.field(i).data_type();
            arrays.push(cast(c, want).map_err(|e| {
                model_error(
                    &self.spec.model,
                    format!("entity column `{}`: {e}", self.spec.entities[i]),
                )
            })?);
        }
        let rows = self.rows_of(&arrays)?;
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.aggs.len()];
        for row in 0..keys.num_rows() {
            for (col, v) in columns
                .iter_mut()
                .zip(self.value_of(rows.row(row).as_ref(), at_us)?)
            {
                col.push(v);
            }
        }
        for (col, agg) in columns.into_iter().zip(&self.aggs) {
            let arr = if col.is_empty() {
                datafusion::arrow::array::new_empty_array(&agg.output_type)
            } else {
                ScalarValue::iter_to_array(col)
                    .map_err(|e| Error::Internal(format!("values to an array: {e}")))?
            };
            arrays.push(arr);
        }
        RecordBatch::try_new(self.output_schema.clone(), arrays)
            .map_err(|e| Error::Internal(format!("values batch: {e}")))
    }
}

/// `x` (an integer, timestamp or date as `i64`) as a value of `dt`.
fn int_to_scalar(x: i64, dt: &DataType) -> Result<ScalarValue> {
    let arr: ArrayRef = Arc::new(Int64Array::from(vec![x]));
    let arr = match dt {
        // arrow casts Int32 (not Int64) to Date32.
        DataType::Date32 => cast(&arr, &DataType::Int32).and_then(|a| cast(&a, dt)),
        _ => cast(&arr, dt),
    }
    .map_err(|e| Error::Internal(format!("Int64 to {dt}: {e}")))?;
    ScalarValue::try_from_array(&arr, 0)
        .map_err(|e| Error::Internal(format!("scalar of {dt}: {e}")))
}

mod codec;
mod entity;

use entity::ceil_div;
pub(crate) use entity::tile_width_us;
use entity::{EntityState, Partial, Val};
