//! The online store: the latest row per entity of each feature view, read by
//! key in microseconds.
//!
//! - Values are encoded once, with arrow's row format: the key is the entity
//!   columns' row bytes; the value is 16 ordering bytes (event time, then
//!   created time, big-endian with the sign flipped, so byte order is time
//!   order) followed by the feature columns' row bytes. "Newest wins" is a
//!   byte comparison of the first 16 bytes, in Rust and in Redis' Lua alike.
//! - Backends: `embedded` (default: a snapshot file per view in the
//!   warehouse, `_sluice/online/<view>/`, held in memory by readers and
//!   reloaded when a materialization replaces it) and `redis`.
//! - Each view's state (`_sluice/online/<view>.json`) records the Delta
//!   version the store covers, the layout the values were encoded with and
//!   the generation of its keys; [`materialize`] continues from it.

mod embedded;
mod materialize;
pub mod redis;
mod redis_store;
pub mod stream;
pub mod table;

pub use materialize::{materialize, MaterializeReport, Range};

use crate::error::{Error, Result};
use crate::features::FeatureViewDef;
use crate::warehouse::Warehouse;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;

/// Bumped when the value encoding changes (with arrow's row format version):
/// a store written by another format is rebuilt by the next materialization.
const FORMAT: &str = "sluice-online-1/arrow-row-59";

/// `[online]` in `sluice.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineSection {
    /// `embedded` (default) or `redis`.
    pub store: Option<String>,
    /// `redis://[user:password@]host[:port][/db]` (default redis://127.0.0.1:6379/0).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (default `sluice`).
    pub key_prefix: Option<String>,
}

/// Which backend holds the values.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    Embedded,
    Redis {
        addr: redis::RedisAddr,
        prefix: String,
    },
}

impl Backend {
    /// From `[online]`.
    pub fn from_config(section: &OnlineSection) -> Result<Backend> {
        match section.store.as_deref().unwrap_or("embedded") {
            "embedded" => Ok(Backend::Embedded),
            "redis" => {
                let url = section
                    .redis_url
                    .as_deref()
                    .unwrap_or("redis://127.0.0.1:6379/0");
                let prefix = section
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| "sluice".into());
                if prefix.is_empty() || prefix.contains(['*', '?', '[', ']', ':']) {
                    return Err(Error::config(
                        "sluice.toml",
                        format!(
                            "[online] key_prefix `{prefix}` must be non-empty, without * ? [ ] :"
                        ),
                    ));
                }
                Ok(Backend::Redis {
                    addr: redis::RedisAddr::parse(url)?,
                    prefix,
                })
            }
            other => Err(Error::config(
                "sluice.toml",
                format!("[online] store = \"{other}\" is unknown; use \"embedded\" or \"redis\""),
            )),
        }
    }

    /// How the state file names this backend (a different one means a rebuild).
    fn label(&self) -> String {
        match self {
            Backend::Embedded => "embedded".into(),
            Backend::Redis { addr, prefix } => {
                format!("redis://{}:{}/{} {prefix}", addr.host, addr.port, addr.db)
            }
        }
    }
}

/// A column as stored in the state file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredField {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

impl StoredField {
    fn of(f: &Field) -> Self {
        StoredField {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        }
    }

    fn field(&self) -> Result<Field> {
        let dt = DataType::from_str(&self.data_type)
            .map_err(|e| Error::Internal(format!("online state type `{}`: {e}", self.data_type)))?;
        Ok(Field::new(&self.name, dt, self.nullable))
    }
}

/// What was materialized last, per view: `_sluice/online/<view>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OnlineState {
    /// The view's name and `schema.table`.
    pub view: String,
    pub table: String,
    pub backend: String,
    pub format: String,
    pub entities: Vec<StoredField>,
    pub event_timestamp: StoredField,
    #[serde(default)]
    pub created_timestamp: Option<StoredField>,
    pub features: Vec<StoredField>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Keys of one generation are replaced together by a full rebuild.
    pub generation: u64,
    /// The Delta version whose rows are all in the store (`None` after a
    /// range materialization into an empty store: the next unbounded run
    /// rebuilds).
    pub table_version: Option<u64>,
    /// Embedded store: the snapshot file, relative to `_sluice/`.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Entities in the store (exact for the embedded store; for Redis, the
    /// keys written since the last rebuild, an upper bound).
    pub entity_count: u64,
    pub materialized_at: String,
    /// What the last materialization did.
    pub last: MaterializeReport,
}

pub(crate) fn state_doc(view: &str) -> String {
    format!("online/{view}.json")
}

/// How a view's rows are encoded.
#[derive(Debug)]
pub struct Layout {
    pub entities: Vec<Field>,
    pub event: Field,
    pub created: Option<Field>,
    pub features: Vec<Field>,
    key_conv: RowConverter,
    value_conv: RowConverter,
}

impl Layout {
    /// From the view and its table's schema.
    pub fn for_table(view: &FeatureViewDef, schema: &Schema) -> Result<Layout> {
        let field = |name: &str| -> Result<Field> {
            schema.field_with_name(name).cloned().map_err(|_| {
                Error::Sql(format!(
                    "feature view `{}`: its table has no column `{name}`; re-run the model",
                    view.name
                ))
            })
        };
        let entities = view
            .entities
            .iter()
            .map(|e| field(e))
            .collect::<Result<Vec<_>>>()?;
        let event = field(&view.event_timestamp)?;
        let created = match &view.created_timestamp {
            Some(c) => Some(field(c)?),
            None => None,
        };
        let features = schema
            .fields()
            .iter()
            .filter(|f| {
                !view.entities.contains(f.name())
                    && f.name() != &view.event_timestamp
                    && view.created_timestamp.as_ref() != Some(f.name())
            })
            .map(|f| f.as_ref().clone())
            .collect();
        Layout::new(entities, event, created, features)
    }

    fn new(
        entities: Vec<Field>,
        event: Field,
        created: Option<Field>,
        features: Vec<Field>,
    ) -> Result<Layout> {
        for f in std::iter::once(&event).chain(created.iter()) {
            if time_unit(f.data_type()).is_none() {
                return Err(Error::Sql(format!(
                    "feature view timestamp column `{}` is {}; the online store needs a timestamp or date",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        let sort = |fs: &[Field]| -> Vec<SortField> {
            fs.iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect()
        };
        let key_conv = RowConverter::new(sort(&entities)).map_err(|e| {
            Error::Sql(format!(
                "the entity columns cannot be used as online keys: {e}"
            ))
        })?;
        let value_conv = RowConverter::new(sort(&features))
            .map_err(|e| Error::Sql(format!("the feature columns cannot be stored online: {e}")))?;
        Ok(Layout {
            entities,
            event,
            created,
            features,
            key_conv,
            value_conv,
        })
    }

    /// From a state file.
    pub fn from_state(state: &OnlineState) -> Result<Layout> {
        Layout::new(
            state
                .entities
                .iter()
                .map(StoredField::field)
                .collect::<Result<_>>()?,
            state.event_timestamp.field()?,
            match &state.created_timestamp {
                Some(c) => Some(c.field()?),
                None => None,
            },
            state
                .features
                .iter()
                .map(StoredField::field)
                .collect::<Result<_>>()?,
        )
    }

    /// Whether `state` was written with this layout.
    pub fn matches(&self, state: &OnlineState) -> bool {
        state.format == FORMAT
            && state.entities
                == self
                    .entities
                    .iter()
                    .map(StoredField::of)
                    .collect::<Vec<_>>()
            && state.event_timestamp == StoredField::of(&self.event)
            && state.created_timestamp == self.created.as_ref().map(StoredField::of)
            && state.features
                == self
                    .features
                    .iter()
                    .map(StoredField::of)
                    .collect::<Vec<_>>()
    }

    fn fill_state(&self, state: &mut OnlineState) {
        state.format = FORMAT.to_string();
        state.entities = self.entities.iter().map(StoredField::of).collect();
        state.event_timestamp = StoredField::of(&self.event);
        state.created_timestamp = self.created.as_ref().map(StoredField::of);
        state.features = self.features.iter().map(StoredField::of).collect();
    }

    /// The columns a materialization reads, in this order: entities, event,
    /// created, features.
    pub fn columns(&self) -> Vec<String> {
        self.entities
            .iter()
            .chain(std::iter::once(&self.event))
            .chain(self.created.iter())
            .chain(self.features.iter())
            .map(|f| f.name().clone())
            .collect()
    }

    /// Encodes entity values (already of the entity types) as keys.
    pub fn keys(&self, columns: &[ArrayRef]) -> Result<Rows> {
        self.key_conv
            .convert_columns(columns)
            .map_err(|e| Error::Internal(format!("encoding online keys: {e}")))
    }

    /// Encodes a batch laid out as [`Layout::columns`]: per row, its key and
    /// its ordering bytes (None for rows with a NULL key or event time, which
    /// no lookup can find), and the value rows.
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Encoded> {
        let ne = self.entities.len();
        let keys = self.keys(&columns[..ne])?;
        let event = micros(&columns[ne], self.event.data_type())?;
        let mut at = ne + 1;
        let created = match &self.created {
            Some(f) => {
                at += 1;
                Some(micros(&columns[ne + 1], f.data_type())?)
            }
            None => None,
        };
        let values = self
            .value_conv
            .convert_columns(&columns[at..])
            .map_err(|e| Error::Internal(format!("encoding online values: {e}")))?;
        let rows = columns.first().map(|c| c.len()).unwrap_or(0);
        let mut order = Vec::with_capacity(rows);
        for i in 0..rows {
            let key_null = columns[..ne].iter().any(|c| c.is_null(i));
            if key_null || event.is_null(i) {
                order.push(None);
                continue;
            }
            let c = match &created {
                Some(c) if c.is_valid(i) => c.value(i),
                _ => i64::MIN,
            };
            order.push(Some(order_bytes(event.value(i), c)));
        }
        Ok(Encoded {
            keys,
            order,
            values,
        })
    }

    /// Decodes stored values into feature columns plus event times; `None`
    /// entries become NULL rows.
    pub fn decode(&self, values: &[Option<&[u8]>]) -> Result<(Vec<ArrayRef>, Vec<Option<i64>>)> {
        let parser = self.value_conv.parser();
        let found: Vec<&[u8]> = values
            .iter()
            .flatten()
            .filter(|v| v.len() >= 16)
            .map(|v| &v[16..])
            .collect();
        let arrays = self
            .value_conv
            .convert_rows(found.iter().map(|b| parser.parse(b)))
            .map_err(|e| {
                Error::Sql(format!(
                    "cannot decode online values ({e}); run `sluice materialize --full`"
                ))
            })?;
        let mut idx = 0u32;
        let mut take = Vec::with_capacity(values.len());
        let mut events = Vec::with_capacity(values.len());
        for v in values {
            match v {
                Some(b) if b.len() >= 16 => {
                    take.push(Some(idx));
                    idx += 1;
                    events.push(Some(unorder(&b[..8])));
                }
                _ => {
                    take.push(None);
                    events.push(None);
                }
            }
        }
        let take = datafusion::arrow::array::UInt32Array::from(take);
        let columns = arrays
            .iter()
            .map(|a| datafusion::arrow::compute::take(a.as_ref(), &take, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((columns, events))
    }

    /// The feature fields as output columns (always nullable: a missing
    /// entity has NULL features).
    pub fn feature_fields(&self) -> Vec<Field> {
        self.features
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect()
    }

    /// The event-time output type (microseconds, the column's time zone).
    pub fn event_type(&self) -> DataType {
        match self.event.data_type() {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// One encoded batch.
pub struct Encoded {
    pub keys: Rows,
    pub order: Vec<Option<[u8; 16]>>,
    pub values: Rows,
}

fn time_unit(dt: &DataType) -> Option<()> {
    matches!(
        dt,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
    .then_some(())
}

/// A timestamp or date column as microseconds since the epoch (UTC).
fn micros(
    a: &ArrayRef,
    dt: &DataType,
) -> Result<datafusion::arrow::array::PrimitiveArray<TimestampMicrosecondType>> {
    let target = match dt {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        _ => DataType::Timestamp(TimeUnit::Microsecond, None),
    };
    let c = cast(a, &target).map_err(|e| Error::Internal(format!("event time: {e}")))?;
    Ok(c.as_primitive::<TimestampMicrosecondType>().clone())
}

/// Event then created time, as bytes in time order.
pub fn order_bytes(event: i64, created: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((event as u64) ^ (1 << 63)).to_be_bytes());
    out[8..].copy_from_slice(&((created as u64) ^ (1 << 63)).to_be_bytes());
    out
}

fn unorder(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

/// Whether a value with ordering bytes `new` replaces `old` (newest event
/// time wins, then newest created time; on a full tie, the later write).
pub fn newer_or_equal(new: &[u8], old: &[u8]) -> bool {
    new[..16.min(new.len())] >= old[..16.min(old.len())]
}

/// The online store of a warehouse.
#[derive(Debug)]
pub struct OnlineStore {
    warehouse: Warehouse,
    backend: Backend,
    embedded: embedded::Embedded,
    redis: Option<redis_store::RedisStore>,
    streams: stream::StreamReaders,
}

impl OnlineStore {
    pub fn new(warehouse: Warehouse, backend: Backend) -> Arc<OnlineStore> {
        let redis = match &backend {
            Backend::Redis { addr, prefix } => {
                Some(redis_store::RedisStore::new(addr.clone(), prefix.clone()))
            }
            Backend::Embedded => None,
        };
        Arc::new(OnlineStore {
            warehouse,
            backend,
            embedded: embedded::Embedded::default(),
            redis,
            streams: stream::StreamReaders::default(),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The state of a view's store, if it was ever materialized.
    pub async fn state(&self, view: &str) -> Result<Option<OnlineState>> {
        self.warehouse.get_meta_json(&state_doc(view)).await
    }

    /// Every materialized view's state.
    pub async fn states(&self) -> Result<Vec<OnlineState>> {
        let mut out = Vec::new();
        for name in self.warehouse.list_meta_json("online").await? {
            if let Some(s) = self.state(&name).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Looks keys up in a view's store: the stored value (ordering bytes and
    /// features) per key, `None` when absent.
    pub async fn lookup(&self, state: &OnlineState, keys: &Rows) -> Result<Vec<Option<Vec<u8>>>> {
        if state.backend != self.backend.label() {
            return Err(Error::Sql(format!(
                "online view `{}` was materialized into {} but the store is now {}; run `sluice materialize {}`",
                state.view,
                state.backend,
                self.backend.label(),
                state.view
            )));
        }
        match &self.redis {
            Some(r) => r.lookup(state, keys).await,
            None => self.embedded.lookup(&self.warehouse, state, keys).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    #[test]
    fn order_bytes_sort_like_times() {
        let pairs = [
            (i64::MIN + 1, 0),
            (-5, 7),
            (-5, 8),
            (0, i64::MIN),
            (0, 0),
            (1_700_000_000_000_000, -1),
            (1_700_000_000_000_000, 3),
        ];
        for w in pairs.windows(2) {
            assert!(
                order_bytes(w[0].0, w[0].1) < order_bytes(w[1].0, w[1].1),
                "{w:?}"
            );
        }
        assert_eq!(unorder(&order_bytes(-42, 0)), -42);
        assert!(newer_or_equal(&order_bytes(5, 1), &order_bytes(5, 1)));
        assert!(!newer_or_equal(&order_bytes(4, 9), &order_bytes(5, 1)));
    }

    #[test]
    fn encodes_and_decodes_rows() {
        let layout = Layout::new(
            vec![Field::new("user", DataType::Utf8, true)],
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            None,
            vec![
                Field::new("n", DataType::Int64, true),
                Field::new("x", DataType::Float64, true),
            ],
        )
        .unwrap();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None, Some("b")])),
            Arc::new(TimestampMicrosecondArray::from(vec![10, 20, 30]).with_timezone("UTC")),
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])),
        ];
        let enc = layout.encode(&cols).unwrap();
        assert!(enc.order[1].is_none(), "a NULL key is not stored");
        let stored: Vec<Vec<u8>> = [0usize, 2]
            .iter()
            .map(|&i| {
                let mut v = enc.order[i].unwrap().to_vec();
                v.extend_from_slice(enc.values.row(i).as_ref());
                v
            })
            .collect();
        let (cols, events) = layout
            .decode(&[Some(&stored[1]), None, Some(&stored[0])])
            .unwrap();
        assert_eq!(events, vec![Some(30), None, Some(10)]);
        let n = cols[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert!(n.is_null(0) && n.is_null(1) && n.value(2) == 1);
        let x = cols[1].as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!((x.value(0), x.is_null(1), x.value(2)), (2.5, true, 0.5));
    }
}
