//! The probe strategy's index: the right side of one partition, held in
//! memory, in compressed sparse rows. Each key's entries are one contiguous
//! run of `times` (ascending, one entry per distinct time, the tie already
//! resolved) and `rows` (the winning row's global number): 12 bytes per right
//! row, allocated once at their final size. The right columns the output
//! rebuilds (keys, the time) are not kept. A left row is one key lookup and
//! one binary search.

use crate::asof::join::JoinSpec;
use crate::asof::key_index::{KeyIndex, KeyNumbers, NO_KEY};
use crate::asof::matching::{beats, eval, eval_times, within_tolerance};
use crate::asof::node::AsOfKind;
use crate::asof::output::{plan_rebuild, OutputRows, Rebuild};
use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use std::sync::Arc;

/// The right side as it arrives (pass 1): each row's key number, the
/// batches' kept columns, times and tie-break values.
pub(super) struct RightIndexBuilder {
    rebuild: Vec<Rebuild>,
    /// Right columns kept, per batch (`None` where the column is rebuilt).
    held: Vec<Vec<Option<ArrayRef>>>,
    /// First global row number of each batch.
    starts: Vec<u32>,
    ties: Vec<Vec<ArrayRef>>,
    batch_times: Vec<ArrayRef>,
    keys: KeyNumbers,
    /// Per batch, each row's key number ([`NO_KEY`] for rows a NULL
    /// excludes): one exactly-sized vector per batch, freed batch by batch
    /// in pass 2.
    row_keys: Vec<Vec<u32>>,
    total: u64,
}

impl RightIndexBuilder {
    pub fn new(spec: &JoinSpec) -> Self {
        RightIndexBuilder {
            rebuild: plan_rebuild(spec),
            held: Vec::new(),
            starts: Vec::new(),
            ties: Vec::new(),
            batch_times: Vec::new(),
            keys: KeyNumbers::new(),
            row_keys: Vec::new(),
            total: 0,
        }
    }

    /// Adds a non-empty right batch.
    pub fn push(
        &mut self,
        spec: &JoinSpec,
        b: RecordBatch,
        reservation: &MemoryReservation,
    ) -> Result<()> {
        reservation.try_grow(b.get_array_memory_size())?;
        if self.total + b.num_rows() as u64 >= u64::from(u32::MAX) {
            return Err(DataFusionError::ResourcesExhausted(
                "AS OF probe: more than 4 billion right rows; use SLUICE_ASOF_MODE=merge".into(),
            ));
        }
        let kcols = eval(&spec.right_keys, &b)?;
        let times = eval_times(&spec.match_right, &b)?;
        let mut batch_keys: Vec<u32> = Vec::with_capacity(b.num_rows());
        self.keys
            .number(spec, &spec.right_keys, &b, &kcols, &times, &mut batch_keys)?;
        self.row_keys.push(batch_keys);
        self.starts.push(self.total as u32);
        self.total += b.num_rows() as u64;
        self.ties.push(eval(&spec.tiebreak, &b)?);
        self.batch_times.push(times);
        self.held.push(
            b.columns()
                .iter()
                .zip(&self.rebuild)
                .map(|(c, how)| (how == &Rebuild::Held).then(|| Arc::clone(c)))
                .collect(),
        );
        Ok(())
    }

    /// Pass 2: scatters (time, row) into each key's run, sorts each run by
    /// time and keeps, per distinct time, the row with the highest tie-break
    /// values.
    pub fn finish(self, reservation: &MemoryReservation) -> Result<RightIndex> {
        let (mut runs, entries) = self.keys.runs();
        let mut next: Vec<u32> = runs.iter().map(|&(s, _)| s).collect();
        reservation.try_grow(entries * 12)?;
        let mut times = vec![0i64; entries];
        let mut rows = vec![0u32; entries];
        let mut g = 0u32;
        for (bt, bk) in self.batch_times.into_iter().zip(self.row_keys) {
            let t = bt.as_primitive::<Int64Type>();
            for (r, &k) in bk.iter().enumerate() {
                if k != NO_KEY {
                    let pos = next[k as usize] as usize;
                    next[k as usize] += 1;
                    times[pos] = t.value(r);
                    rows[pos] = g + r as u32;
                }
            }
            g += bk.len() as u32;
        }
        drop(next);
        let starts = self.starts;
        let ties = self.ties;
        let index_of = |global: u32| locate(&starts, global);
        let mut pairs: Vec<(i64, u32)> = Vec::new();
        for run in runs.iter_mut() {
            let (s, n) = (run.0 as usize, run.1 as usize);
            pairs.clear();
            pairs.extend(
                times[s..s + n]
                    .iter()
                    .copied()
                    .zip(rows[s..s + n].iter().copied()),
            );
            pairs.sort_unstable_by_key(|e| e.0);
            let mut kept = 0usize;
            for &(t, r) in pairs.iter() {
                if kept > 0 && times[s + kept - 1] == t {
                    if !ties.is_empty() {
                        let (a, b) = (index_of(r), index_of(rows[s + kept - 1]));
                        let columns = ties[a.0].iter().zip(&ties[b.0]);
                        if beats(columns.map(|(x, y)| (x.as_ref(), y.as_ref())), a.1, b.1)? {
                            rows[s + kept - 1] = r;
                        }
                    }
                    continue;
                }
                times[s + kept] = t;
                rows[s + kept] = r;
                kept += 1;
            }
            run.1 = kept as u32;
        }
        Ok(RightIndex {
            held: self.held,
            rebuild: self.rebuild,
            starts,
            keys: self.keys.finish(&runs),
            times,
            rows,
        })
    }
}

/// (batch, row) of a global row number, given each batch's first one.
fn locate(starts: &[u32], global: u32) -> (usize, usize) {
    let b = starts.partition_point(|&s| s <= global) - 1;
    (b, (global - starts[b]) as usize)
}

/// The indexed right side of one partition.
pub(super) struct RightIndex {
    /// Right columns kept, per batch (`None` where the column is rebuilt).
    held: Vec<Vec<Option<ArrayRef>>>,
    /// How each right column of the output is made.
    rebuild: Vec<Rebuild>,
    /// First global row number of each batch (for mapping rows back).
    starts: Vec<u32>,
    /// Key -> its run of `times` and `rows`.
    keys: KeyIndex,
    times: Vec<i64>,
    rows: Vec<u32>,
}

impl RightIndex {
    /// The output batch of a left batch: each row's key run, then a binary
    /// search in it. `runs` is scratch space reused across batches.
    pub fn probe(
        &self,
        spec: &JoinSpec,
        batch: &RecordBatch,
        runs: &mut Vec<(usize, usize)>,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let keys = eval(&spec.left_keys, batch)?;
        let times = eval_times(&spec.match_left, batch)?;
        self.keys.runs_of(spec, &keys, &times, runs)?;
        let t = times.as_primitive::<Int64Type>();
        let nulls = self.held.len();
        let mut out = OutputRows::with_capacity(n);
        for (i, &(s, len)) in runs.iter().enumerate() {
            let group = &self.times[s..s + len];
            let lt = t.value(i);
            let found = spec
                .op
                .nearest(group, |&x| x, lt)
                .filter(|&a| within_tolerance(spec.tolerance, lt, group[a]))
                .map(|a| (locate(&self.starts, self.rows[s + a]), group[a]));
            match found {
                Some((at, rt)) => out.matched(i, at, rt),
                None if spec.kind == AsOfKind::Left => out.unmatched(i, (nulls, 0)),
                None => {}
            }
        }
        out.build(
            spec,
            &self.rebuild,
            batch,
            || Ok(keys),
            |c, f, right| {
                let null = new_null_array(f.data_type(), 1);
                let mut sources: Vec<&dyn Array> = self
                    .held
                    .iter()
                    .filter_map(|cols| cols[c].as_deref())
                    .collect();
                sources.push(null.as_ref());
                Ok(interleave(&sources, right)?)
            },
        )
    }
}
