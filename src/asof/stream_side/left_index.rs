//! The stream strategy's index: the left side of one partition, held in
//! memory in its input order (it is emitted in that order), with one entry per
//! left row that has a key and a time. Entries are grouped by key (a counting
//! sort: one run per key) and sorted by time within a key; each entry records
//! the best right row seen so far with it as its target ([`super::right_pass`]).

use super::read_ahead::ReadAhead;
use crate::asof::join::JoinSpec;
use crate::asof::key_index::{KeyIndex, KeyNumbers, NO_KEY};
use crate::asof::matching::{eval, eval_times};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use std::collections::VecDeque;

/// No entry, no right row.
pub(super) const NONE: u32 = u32::MAX;

/// One left row with a key and a time, and the best right row seen so far
/// with this entry as its target.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub time: i64,
    pub best_time: i64,
    /// A kept-row id, or `NONE`.
    pub best: u32,
}

/// The left side of one partition, indexed by key.
pub(super) struct LeftIndex {
    /// The left batches, in input order (emitted in that order).
    pub batches: VecDeque<RecordBatch>,
    pub keys: KeyIndex,
    /// Per key, one run of entries sorted by time.
    pub entries: Vec<Entry>,
    /// Per left row (input order): its entry, or `NONE` (a NULL key or time).
    pub entry_of: Vec<u32>,
}

/// The left side as it arrives: the batches, each row's key number and time.
pub(super) struct LeftIndexBuilder {
    batches: VecDeque<RecordBatch>,
    keys: KeyNumbers,
    row_key: Vec<u32>,
    row_time: Vec<i64>,
}

impl LeftIndexBuilder {
    pub fn new() -> Self {
        LeftIndexBuilder {
            batches: VecDeque::new(),
            keys: KeyNumbers::new(),
            row_key: Vec::new(),
            row_time: Vec::new(),
        }
    }

    /// Adds a non-empty left batch, counted in `reservation` (the read-ahead
    /// of the right side gives its memory back first if the pool is short).
    pub fn push(
        &mut self,
        spec: &JoinSpec,
        b: RecordBatch,
        reservation: &MemoryReservation,
        ahead: &mut ReadAhead,
    ) -> Result<()> {
        // The batch, and 32 bytes per row for the index built from it.
        let need = b.get_array_memory_size() + 32 * b.num_rows();
        reservation
            .try_grow(need)
            .or_else(|e| match ahead.give_way() {
                true => reservation.try_grow(need),
                false => Err(e),
            })
            .map_err(|e| {
                DataFusionError::ResourcesExhausted(format!(
                    "AS OF join (stream mode): the left side does not fit in the memory limit \
                     ({e}); raise SLUICE_MEMORY_LIMIT or use SLUICE_ASOF_MODE=merge, which spills"
                ))
            })?;
        if self.row_key.len() + b.num_rows() >= NONE as usize {
            return Err(DataFusionError::ResourcesExhausted(
                "AS OF join (stream mode): more than 4 billion left rows in one partition; \
                 use SLUICE_ASOF_MODE=merge"
                    .into(),
            ));
        }
        let kcols = eval(&spec.left_keys, &b)?;
        let times = eval_times(&spec.match_left, &b)?;
        let first = self.row_key.len();
        self.keys
            .number(spec, &spec.left_keys, &b, &kcols, &times, &mut self.row_key)?;
        let t = times.as_primitive::<Int64Type>();
        self.row_time
            .extend(self.row_key[first..].iter().enumerate().map(|(r, &k)| {
                if k == NO_KEY {
                    0
                } else {
                    t.value(r)
                }
            }));
        self.batches.push_back(b);
        Ok(())
    }

    /// Entries grouped by key (counting sort), then sorted by time within a key.
    pub fn finish(self) -> LeftIndex {
        let (runs, entries) = self.keys.runs();
        let mut next: Vec<u32> = runs.iter().map(|&(s, _)| s).collect();
        let mut order: Vec<(i64, u32)> = vec![(0, 0); entries];
        for (row, (&k, &t)) in self.row_key.iter().zip(&self.row_time).enumerate() {
            if k != NO_KEY {
                let pos = next[k as usize] as usize;
                next[k as usize] += 1;
                order[pos] = (t, row as u32);
            }
        }
        drop((next, self.row_key, self.row_time));
        for &(s, n) in &runs {
            order[s as usize..(s + n) as usize].sort_unstable();
        }
        let keys = self.keys.finish(&runs);
        let mut entry_of = vec![NONE; self.batches.iter().map(|b| b.num_rows()).sum()];
        let mut list = Vec::with_capacity(entries);
        for (e, &(time, row)) in order.iter().enumerate() {
            entry_of[row as usize] = e as u32;
            list.push(Entry {
                time,
                best_time: 0,
                best: NONE,
            });
        }
        LeftIndex {
            batches: self.batches,
            keys,
            entries: list,
            entry_of,
        }
    }
}
