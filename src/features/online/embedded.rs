//! The embedded online store: per view, one snapshot file in the warehouse
//! (`_sluice/online/<view>/<generation>-<n>.arrow`, an Arrow IPC file of
//! key and value bytes), loaded into a hash map by the first lookup and
//! reloaded when a materialization points the state at a newer file.

use super::OnlineState;
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;
use datafusion::arrow::array::{Array, AsArray, BinaryBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::Rows;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Key bytes → value bytes (ordering prefix + features).
pub type Map = HashMap<Box<[u8]>, Box<[u8]>, ahash::RandomState>;

/// One view's values in memory.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: String,
    pub map: Map,
}

/// The views loaded by this process.
#[derive(Debug, Default)]
pub struct Embedded {
    views: Mutex<HashMap<String, Arc<Loaded>>>,
}

impl Embedded {
    /// The view's values as of `state` (loaded on first use and after a
    /// materialization replaced the snapshot).
    pub async fn load(&self, wh: &Warehouse, state: &OnlineState) -> Result<Arc<Loaded>> {
        let Some(snapshot) = &state.snapshot else {
            return Ok(Arc::new(Loaded {
                snapshot: String::new(),
                map: Map::default(),
            }));
        };
        if let Some(l) = self.cached(&state.view) {
            if &l.snapshot == snapshot {
                return Ok(l);
            }
        }
        let bytes = wh.get_meta_bytes(snapshot).await?.ok_or_else(|| {
            Error::Sql(format!(
                "online view `{}`: its snapshot `_sluice/{snapshot}` is missing; run `sluice materialize --full {}`",
                state.view, state.view
            ))
        })?;
        let map = decode(&bytes).map_err(|e| {
            Error::Sql(format!(
                "online view `{}`: snapshot `_sluice/{snapshot}` is unreadable ({e}); run `sluice materialize --full {}`",
                state.view, state.view
            ))
        })?;
        let loaded = Arc::new(Loaded {
            snapshot: snapshot.clone(),
            map,
        });
        self.install(&state.view, loaded.clone());
        Ok(loaded)
    }

    fn cached(&self, view: &str) -> Option<Arc<Loaded>> {
        self.views.lock().ok().and_then(|v| v.get(view).cloned())
    }

    /// Makes `loaded` the view's current values in this process.
    pub fn install(&self, view: &str, loaded: Arc<Loaded>) {
        if let Ok(mut v) = self.views.lock() {
            v.insert(view.to_string(), loaded);
        }
    }

    pub async fn lookup(
        &self,
        wh: &Warehouse,
        state: &OnlineState,
        keys: &Rows,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let loaded = self.load(wh, state).await?;
        Ok(keys
            .iter()
            .map(|k| loaded.map.get(k.as_ref()).map(|v| v.to_vec()))
            .collect())
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

/// The map as an Arrow IPC file.
pub fn encode(map: &Map) -> Result<Vec<u8>> {
    encode_entries(map.iter(), 0)
}

/// Entries as an Arrow IPC file of (key, value) batches, each at most 65,536
/// entries and about 8 MiB of keys and values (offsets are 32-bit, and
/// small batches keep the copies in flight small). Entries are consumed as
/// they are written, so a caller that drains a map into it holds each entry
/// about once; `size_hint` (the bytes of the entries, if known) sizes the
/// output at once instead of by doubling.
pub fn encode_entries<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    entries: impl Iterator<Item = (K, V)>,
    size_hint: usize,
) -> Result<Vec<u8>> {
    const BATCH_BYTES: usize = 8 << 20;
    let schema = schema();
    let mut out = Vec::with_capacity(size_hint.saturating_add(size_hint / 16 + 4096));
    let err =
        |e: datafusion::arrow::error::ArrowError| Error::Internal(format!("online snapshot: {e}"));
    {
        let mut w = FileWriter::try_new(&mut out, &schema).map_err(err)?;
        let mut entries = entries.peekable();
        while entries.peek().is_some() {
            let mut k = BinaryBuilder::new();
            let mut v = BinaryBuilder::new();
            let (mut n, mut bytes) = (0usize, 0usize);
            while n < 65_536 && bytes < BATCH_BYTES {
                let Some((key, value)) = entries.next() else {
                    break;
                };
                let (key, value) = (key.as_ref(), value.as_ref());
                if value.len() > i32::MAX as usize / 2 {
                    return Err(Error::Internal(format!(
                        "online snapshot: a value of {} bytes is too large",
                        value.len()
                    )));
                }
                k.append_value(key);
                v.append_value(value);
                n += 1;
                bytes += key.len() + value.len();
            }
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(k.finish()), Arc::new(v.finish())],
            )
            .map_err(err)?;
            w.write(&batch).map_err(err)?;
        }
        w.finish().map_err(err)?;
    }
    Ok(out)
}

/// Calls `f` with each (key, value) entry of an IPC file from
/// [`encode_entries`], without building a map.
pub(super) fn for_each_entry(
    bytes: &bytes::Bytes,
    mut f: impl FnMut(&[u8], &[u8]),
) -> std::result::Result<(), ArrowError> {
    let reader = FileReader::try_new(std::io::Cursor::new(bytes.as_ref()), None)?;
    let bad = |what: &str| ArrowError::SchemaError(what.to_string());
    for batch in reader {
        let batch = batch?;
        if batch.num_columns() != 2 {
            return Err(bad("expected key and value columns"));
        }
        let k = batch
            .column(0)
            .as_binary_opt::<i32>()
            .ok_or_else(|| bad("key is not binary"))?;
        let v = batch
            .column(1)
            .as_binary_opt::<i32>()
            .ok_or_else(|| bad("value is not binary"))?;
        for i in 0..k.len() {
            f(k.value(i), v.value(i));
        }
    }
    Ok(())
}

pub(super) fn decode(bytes: &bytes::Bytes) -> std::result::Result<Map, ArrowError> {
    let mut map = Map::default();
    for_each_entry(bytes, |k, v| {
        map.insert(k.into(), v.into());
    })?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip() {
        let mut m = Map::default();
        for i in 0..70_000u32 {
            m.insert(
                i.to_be_bytes().to_vec().into(),
                vec![1u8; (i % 7) as usize].into(),
            );
        }
        let bytes = bytes::Bytes::from(encode(&m).unwrap());
        assert_eq!(decode(&bytes).unwrap(), m);
        assert!(decode(&bytes::Bytes::from_static(b"nope")).is_err());
    }

    #[test]
    fn large_values_are_split_into_batches() {
        let mut m = Map::default();
        for i in 0..70u8 {
            m.insert(vec![i].into(), vec![i; 1 << 20].into());
        }
        let bytes = bytes::Bytes::from(encode_entries(m.iter(), 70 << 20).unwrap());
        let reader = FileReader::try_new(std::io::Cursor::new(bytes.as_ref()), None).unwrap();
        // 8 MiB per batch: eight values each.
        assert_eq!(reader.num_batches(), 9);
        let mut seen = 0;
        for_each_entry(&bytes, |k, v| {
            assert_eq!(m.get(k).map(|x| x.as_ref()), Some(v));
            seen += 1;
        })
        .unwrap();
        assert_eq!(seen, 70);
    }
}
