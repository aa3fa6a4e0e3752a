//! Rows grouped by equality key, for the two plans that index one side in
//! memory (probe: the right side; stream: the left side). Building numbers
//! each key as rows arrive and counts its rows; the plan then lays its
//! entries out in one run per key (a counting sort: compressed sparse rows)
//! and the finished map gives each key's run. A single integer key column is
//! looked up by value, not as row-format bytes, and when its values are dense
//! (ids) by one array load instead of a hash probe.

use super::join::JoinSpec;
use super::matching::times_as_i64;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::Rows;
use datafusion::common::Result;
use datafusion::physical_expr::PhysicalExprRef;
use std::collections::HashMap;

/// No key: a row a NULL key or time keeps out of every group.
pub(super) const NO_KEY: u32 = u32::MAX;

/// One batch's key values as the index looks them up.
pub(super) enum BatchKeys {
    /// A single integer key column, as Int64 (order-preserving for UInt64).
    Int(ArrayRef),
    /// Anything else in the row format; `None` without keys (one group).
    Rows(Option<Rows>),
}

impl BatchKeys {
    /// The key values `kcols` of a batch, as integers when `int`.
    pub fn new(spec: &JoinSpec, kcols: &[ArrayRef], int: bool) -> Result<Self> {
        Ok(if int {
            BatchKeys::Int(times_as_i64(&kcols[0])?)
        } else if kcols.is_empty() {
            BatchKeys::Rows(None)
        } else {
            BatchKeys::Rows(Some(spec.converter.convert_columns(kcols)?))
        })
    }
}

/// Whether the keys `exprs` are one integer column (looked up by value, not as bytes).
fn int_key(exprs: &[PhysicalExprRef], b: &RecordBatch) -> Result<bool> {
    if exprs.len() != 1 {
        return Ok(false);
    }
    Ok(matches!(
        exprs[0].data_type(&b.schema())?,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    ))
}

/// Key -> value (a key number while the index is built, then the key's run of
/// entries packed as `first << 32 | len`).
pub(super) enum KeyMap {
    Int(HashMap<i64, u64, ahash::RandomState>),
    /// A single integer key whose values span a small range (dense ids), once
    /// the index is built: the runs by `key - min` (0: no entries). One load
    /// per lookup instead of a hash probe.
    Dense {
        min: i64,
        runs: Vec<u64>,
    },
    Rows(HashMap<Box<[u8]>, u64, ahash::RandomState>),
}

pub(super) fn unpack(v: u64) -> (usize, usize) {
    ((v >> 32) as usize, (v & 0xffff_ffff) as usize)
}

impl KeyMap {
    /// The dense form of a built integer map whose keys span at most four
    /// slots per key (and at least 4 Ki slots are always allowed), else `None`.
    pub fn dense(m: &HashMap<i64, u64, ahash::RandomState>) -> Option<KeyMap> {
        let (min, max) = m
            .keys()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        let span = i128::from(max) - i128::from(min) + 1;
        if m.is_empty() || span > (4 * m.len()).max(1 << 12) as i128 {
            return None;
        }
        let mut runs = vec![0u64; span as usize];
        for (&k, &v) in m {
            runs[k.abs_diff(min) as usize] = v;
        }
        Some(KeyMap::Dense { min, runs })
    }

    pub fn get(&self, keys: &BatchKeys, r: usize) -> Option<u64> {
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => {
                m.get(&a.as_primitive::<Int64Type>().value(r)).copied()
            }
            (KeyMap::Dense { min, runs }, BatchKeys::Int(a)) => {
                let k = a.as_primitive::<Int64Type>().value(r);
                runs.get(usize::try_from(k.checked_sub(*min)?).ok()?)
                    .copied()
                    .filter(|&v| v != 0)
            }
            (KeyMap::Rows(m), BatchKeys::Rows(rows)) => {
                let key: &[u8] = rows.as_ref().map_or(&[], |rows| rows.row(r).data());
                m.get(key).copied()
            }
            _ => None,
        }
    }

    /// Each row's run of entries (`(0, 0)` for a key not in the index or a
    /// row that is not `valid`), into `out`.
    pub fn runs_of(
        &self,
        keys: &BatchKeys,
        valid: Option<&NullBuffer>,
        n: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        out.clear();
        let ok = |r: usize| valid.is_none_or(|v| v.is_valid(r));
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => {
                let values = a.as_primitive::<Int64Type>().values();
                out.extend(
                    (0..n).map(|r| match ok(r).then(|| m.get(&values[r])).flatten() {
                        Some(&v) => unpack(v),
                        None => (0, 0),
                    }),
                );
            }
            (KeyMap::Dense { min, runs }, BatchKeys::Int(a)) => {
                let values = a.as_primitive::<Int64Type>().values();
                // Below `min` wraps to a large offset: out of range like above.
                out.extend((0..n).map(|r| {
                    let at = usize::try_from(values[r].wrapping_sub(*min) as u64);
                    match runs.get(at.unwrap_or(usize::MAX)) {
                        Some(&v) if ok(r) => unpack(v),
                        _ => (0, 0),
                    }
                }));
            }
            _ => out.extend((0..n).map(|r| {
                ok(r)
                    .then(|| self.get(keys, r))
                    .flatten()
                    .map_or((0, 0), unpack)
            })),
        }
    }

    /// The key's value, inserting `fresh` when the key is new.
    fn get_or_insert(&mut self, keys: &BatchKeys, r: usize, fresh: u64) -> u64 {
        match (self, keys) {
            (KeyMap::Int(m), BatchKeys::Int(a)) => *m
                .entry(a.as_primitive::<Int64Type>().value(r))
                .or_insert(fresh),
            (KeyMap::Rows(m), BatchKeys::Rows(rows)) => {
                let key: &[u8] = rows.as_ref().map_or(&[], |rows| rows.row(r).data());
                match m.get(key) {
                    Some(&v) => v,
                    None => {
                        m.insert(key.into(), fresh);
                        fresh
                    }
                }
            }
            _ => fresh,
        }
    }

    /// Every key's run of entries (once the index is built), in no order.
    pub fn all_runs(&self) -> Vec<(usize, usize)> {
        match self {
            KeyMap::Int(m) => m.values().map(|&v| unpack(v)).collect(),
            KeyMap::Dense { runs, .. } => runs
                .iter()
                .filter(|&&v| v != 0)
                .map(|&v| unpack(v))
                .collect(),
            KeyMap::Rows(m) => m.values().map(|&v| unpack(v)).collect(),
        }
    }

    fn values_mut(&mut self) -> Box<dyn Iterator<Item = &mut u64> + '_> {
        match self {
            KeyMap::Int(m) => Box::new(m.values_mut()),
            KeyMap::Dense { runs, .. } => Box::new(runs.iter_mut().filter(|v| **v != 0)),
            KeyMap::Rows(m) => Box::new(m.values_mut()),
        }
    }
}

/// The first pass of building an index: a number per distinct key, in order
/// of first appearance, and the rows of each.
pub(super) struct KeyNumbers {
    map: Option<KeyMap>,
    /// Whether the keys are one integer column (known from the first batch).
    int: bool,
    /// Rows per key number.
    counts: Vec<u32>,
}

impl KeyNumbers {
    pub fn new() -> Self {
        KeyNumbers {
            map: None,
            int: false,
            counts: Vec::new(),
        }
    }

    /// Appends to `out` the key number of each row of batch `b`, whose key
    /// values (expressions `exprs`) are `kcols` and whose times are `times`;
    /// [`NO_KEY`] for a row with a NULL key or time.
    pub fn number(
        &mut self,
        spec: &JoinSpec,
        exprs: &[PhysicalExprRef],
        b: &RecordBatch,
        kcols: &[ArrayRef],
        times: &ArrayRef,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let map = match &mut self.map {
            Some(m) => m,
            None => {
                self.int = int_key(exprs, b)?;
                self.map.insert(if self.int {
                    KeyMap::Int(HashMap::with_hasher(ahash::RandomState::new()))
                } else {
                    KeyMap::Rows(HashMap::with_hasher(ahash::RandomState::new()))
                })
            }
        };
        let bkeys = BatchKeys::new(spec, kcols, self.int)?;
        let t = times.as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            if t.is_null(r) || kcols.iter().any(|k| k.is_null(r)) {
                out.push(NO_KEY);
                continue;
            }
            let k = map.get_or_insert(&bkeys, r, self.counts.len() as u64) as u32;
            if k as usize == self.counts.len() {
                self.counts.push(0);
            }
            self.counts[k as usize] += 1;
            out.push(k);
        }
        Ok(())
    }

    /// Each key's run `(first, len)` in a list of entries grouped by key (in
    /// key-number order), and the number of entries.
    pub fn runs(&self) -> (Vec<(u32, u32)>, usize) {
        let mut runs = Vec::with_capacity(self.counts.len());
        let mut at = 0u32;
        for &c in &self.counts {
            runs.push((at, c));
            at += c;
        }
        (runs, at as usize)
    }

    /// The map from key to its final run (`runs`, by key number), dense when
    /// the keys allow it.
    pub fn finish(self, runs: &[(u32, u32)]) -> KeyIndex {
        let mut map = self.map.unwrap_or(KeyMap::Rows(HashMap::with_hasher(
            ahash::RandomState::new(),
        )));
        for v in map.values_mut() {
            let (s, n) = runs[*v as usize];
            *v = u64::from(s) << 32 | u64::from(n);
        }
        if let Some(dense) = match &map {
            KeyMap::Int(m) => KeyMap::dense(m),
            _ => None,
        } {
            map = dense;
        }
        KeyIndex { map, int: self.int }
    }
}

/// Built: each key's run of entries.
pub(super) struct KeyIndex {
    pub map: KeyMap,
    /// Whether the keys are one integer column.
    pub int: bool,
}

impl KeyIndex {
    /// Each row's run of entries for a batch whose key values are `kcols`
    /// and times `times` (`(0, 0)`: no match possible), into `out`.
    pub fn runs_of(
        &self,
        spec: &JoinSpec,
        kcols: &[ArrayRef],
        times: &ArrayRef,
        out: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        let bkeys = BatchKeys::new(spec, kcols, self.int)?;
        let valid = kcols.iter().fold(times.nulls().cloned(), |acc, k| {
            NullBuffer::union(acc.as_ref(), k.nulls())
        });
        self.map.runs_of(&bkeys, valid.as_ref(), times.len(), out);
        Ok(())
    }

    /// Every key's run of entries, in entry order.
    pub fn runs(&self) -> Vec<(usize, usize)> {
        let mut out = self.map.all_runs();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use std::sync::Arc;

    #[test]
    fn dense_integer_keys_find_the_same_runs_as_the_hash_map() {
        let build = |keys: &[i64]| {
            let mut m = HashMap::with_hasher(ahash::RandomState::new());
            for (i, &k) in keys.iter().enumerate() {
                m.insert(k, (i as u64) << 32 | 1);
            }
            m
        };
        let probe: Vec<i64> = vec![i64::MIN, -5, -4, -1, 0, 1, 2, 7, 4095, 4096, i64::MAX];
        let valid = NullBuffer::from(vec![
            true, true, true, true, false, true, true, true, true, true, true,
        ]);
        for keys in [
            vec![-4i64, 0, 1, 7],
            vec![0, 4095],
            vec![i64::MAX - 1, i64::MAX],
        ] {
            let m = build(&keys);
            let dense = KeyMap::dense(&m).expect("a small span is dense");
            let hashed = KeyMap::Int(m);
            let batch = BatchKeys::Int(Arc::new(Int64Array::from(probe.clone())));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            hashed.runs_of(&batch, Some(&valid), probe.len(), &mut a);
            dense.runs_of(&batch, Some(&valid), probe.len(), &mut b);
            assert_eq!(a, b, "{keys:?}");
            for r in 0..probe.len() {
                assert_eq!(hashed.get(&batch, r), dense.get(&batch, r), "{keys:?} {r}");
            }
            let (mut ra, mut rb) = (hashed.all_runs(), dense.all_runs());
            ra.sort_unstable();
            rb.sort_unstable();
            assert_eq!(ra, rb);
        }
        // Sparse keys stay hashed.
        assert!(KeyMap::dense(&build(&[0, 1 << 40])).is_none());
        assert!(KeyMap::dense(&build(&[i64::MIN, i64::MAX])).is_none());
    }
}
