//! The stream strategy's pass over the right side, once the left side is
//! indexed. Each right row has one *target* ([`crate::asof::AsOfOp`]'s
//! `target`: for `>=` the first left entry of its key at or after the right
//! time); per target only the best right row is kept (nearest time, then the
//! highest tie-break values). Right rows with the same target have times
//! between the neighbouring entries' times, so once the right side ends a left
//! entry's match is the best at its own target or at the nearest target before
//! it (after it, for `<=` / `<`): one pass per key ([`RightPass::finish`]).
//! Every right row costs one key lookup and one binary search, whatever the
//! order of either input.

use super::kept::Kept;
use super::left_index::{Entry, LeftIndex, NONE};
use crate::asof::join::JoinSpec;
use crate::asof::matching::{beats, eval, eval_times};
use crate::asof::output::Rebuild;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExprRef;
use std::sync::Arc;

/// Right rows whose runs are touched together before their searches.
const TOUCH_BLOCK: usize = 512;

/// Reads the right side past the left index, recording each target's best
/// right row in the entries and keeping the right rows they point to.
pub(super) struct RightPass {
    /// Right column numbers kept (the `Rebuild::Held` ones).
    held: Vec<usize>,
    /// Where each tie-break value is read among the kept columns: a kept
    /// right column, or an extra evaluated one after them.
    ties: Vec<usize>,
    /// Tie-break expressions that are not plain kept columns.
    extra: Vec<PhysicalExprRef>,
    kept: Kept,
    /// The reservation's size before the pass (the left index).
    base: usize,
    /// Per row of a batch: its key's run of entries (`len` 0: no match
    /// possible); scratch space reused per batch.
    runs: Vec<(usize, usize)>,
}

impl RightPass {
    pub fn new(
        spec: &JoinSpec,
        rebuild: &[Rebuild],
        idx: &LeftIndex,
        reservation: &MemoryReservation,
    ) -> Self {
        let held: Vec<usize> = (0..rebuild.len())
            .filter(|&c| rebuild[c] == Rebuild::Held)
            .collect();
        let mut extra = Vec::new();
        let ties = spec
            .tiebreak
            .iter()
            .map(|e| {
                let col = e
                    .downcast_ref::<Column>()
                    .and_then(|c| held.iter().position(|&h| h == c.index()));
                col.unwrap_or_else(|| {
                    extra.push(Arc::clone(e));
                    held.len() + extra.len() - 1
                })
            })
            .collect();
        RightPass {
            held,
            ties,
            extra,
            kept: Kept::new(idx.entries.len()),
            base: reservation.size(),
            runs: Vec::new(),
        }
    }

    /// Whether row `a` of `columns_a` has higher tie-break values than row
    /// `b` of `columns_b` (both in the kept columns' layout).
    fn beats(&self, a: (&[ArrayRef], usize), b: (&[ArrayRef], usize)) -> Result<bool> {
        let columns = self
            .ties
            .iter()
            .map(|&i| (a.0[i].as_ref(), b.0[i].as_ref()));
        beats(columns, a.1, b.1)
    }

    /// Takes a non-empty right batch: each row that beats its target's best
    /// becomes it, and the batch is kept if one did.
    pub fn push(
        &mut self,
        spec: &JoinSpec,
        idx: &mut LeftIndex,
        b: &RecordBatch,
        reservation: &MemoryReservation,
    ) -> Result<()> {
        let n = b.num_rows();
        let kcols = eval(&spec.right_keys, b)?;
        let times = eval_times(&spec.match_right, b)?;
        let t = times.as_primitive::<Int64Type>();
        // The batch's rows get ids after the kept ones; it is kept (whole, no
        // copy) if one of its rows becomes a target's best.
        let first = self.kept.rows;
        if u64::from(first) + n as u64 >= u64::from(NONE) {
            return Err(DataFusionError::ResourcesExhausted(
                "AS OF join (stream mode): too many right rows kept; use SLUICE_ASOF_MODE=merge"
                    .into(),
            ));
        }
        let mut columns: Vec<ArrayRef> =
            self.held.iter().map(|&c| Arc::clone(b.column(c))).collect();
        columns.extend(eval(&self.extra, b)?);
        // First every row's run of entries (the key map is small and cached).
        let mut runs = std::mem::take(&mut self.runs);
        idx.keys.runs_of(spec, &kcols, &times, &mut runs)?;
        let mut won = false;
        // Then, per block of rows, touch the cache lines of their runs in a
        // tight loop of independent loads, so the CPU overlaps those misses
        // instead of waiting for each in the binary searches that follow; a
        // block's lines stay in cache until its searches.
        for block in (0..n).step_by(TOUCH_BLOCK) {
            let rows = block..(block + TOUCH_BLOCK).min(n);
            touch(&idx.entries, &runs[rows.clone()]);
            for r in rows {
                let (s, len) = runs[r];
                if len == 0 {
                    continue;
                }
                let rt = t.value(r);
                let Some(target) = spec.op.target(&idx.entries[s..s + len], |x| x.time, rt) else {
                    continue;
                };
                let e = s + target;
                let cur = idx.entries[e].best;
                let wins = if cur == NONE {
                    true
                } else {
                    let ct = idx.entries[e].best_time;
                    if ct != rt {
                        spec.op.nearer(rt, ct)
                    } else if self.ties.is_empty() {
                        false
                    } else if cur >= first {
                        self.beats((&columns, r), (&columns, (cur - first) as usize))?
                    } else {
                        let (c, row) = self.kept.locate(cur);
                        self.beats((&columns, r), (&self.kept.chunks[c], row))?
                    }
                };
                if wins {
                    idx.entries[e].best = first + r as u32;
                    idx.entries[e].best_time = rt;
                    won = true;
                }
            }
        }
        self.runs = runs;
        if !won {
            return Ok(());
        }
        self.kept.push(columns, n as u32);
        if self.kept.rows >= self.kept.compact_at {
            self.kept.compact(&mut idx.entries)?;
        }
        // The kept rows are bounded by the left side (compacted above).
        reservation.resize(self.base + self.kept.bytes);
        Ok(())
    }

    /// Once the right side has ended: each entry's match is the best at its
    /// target or the nearest target before it (after it for `<=` / `<`);
    /// those have times between, so the nearest wins. The kept rows are then
    /// compacted to the matched ones, in one chunk.
    pub fn finish(
        mut self,
        spec: &JoinSpec,
        idx: &mut LeftIndex,
        reservation: &MemoryReservation,
    ) -> Result<Kept> {
        let tail = std::time::Instant::now();
        let forward = spec.op.looks_back();
        for (s, n) in idx.keys.runs() {
            let run = &mut idx.entries[s..s + n];
            let mut carry = (NONE, 0i64);
            let mut fill = |e: &mut Entry| {
                if e.best == NONE {
                    (e.best, e.best_time) = carry;
                } else {
                    carry = (e.best, e.best_time);
                }
            };
            if forward {
                run.iter_mut().for_each(&mut fill);
            } else {
                run.iter_mut().rev().for_each(&mut fill);
            }
        }
        self.kept.compact(&mut idx.entries)?;
        reservation.resize(self.base + self.kept.bytes);
        tracing::debug!(
            "AS OF stream: {} compactions took {:?}; the final fill and compaction {:?}",
            self.kept.compactions,
            self.kept.compacting,
            tail.elapsed()
        );
        Ok(self.kept)
    }
}

/// Loads a little of every run (entries are 24 bytes: every other one lands
/// in each cache line of a short run; three points of a long one), in one
/// loop of independent loads.
fn touch(entries: &[Entry], runs: &[(usize, usize)]) {
    let mut touch = 0i64;
    for &(s, len) in runs {
        let run = &entries[s..s + len];
        if len <= 16 {
            for e in run.iter().step_by(2) {
                touch ^= e.time;
            }
            if let Some(e) = run.last() {
                touch ^= e.time;
            }
        } else {
            touch ^= run[len / 4].time ^ run[len / 2].time ^ run[3 * len / 4].time;
        }
    }
    std::hint::black_box(touch);
}
