//! [`AsOfMergeStream`]: one partition of the sort-merge AS OF join.
//!
//! Both inputs arrive sorted by key and time, so the merge is forward-only:
//! each input is read once, the state is a couple of batches per side plus
//! one candidate row, and the output keeps the left input's order (chained
//! AS OF joins on the same keys and time do not sort their left side again).
//! One merge serves all four operators: for `<` and `<=` the time column is
//! sorted descending, so "the earliest right time at or after" becomes "the
//! latest at or before". Among equal right times the last row in sort order
//! wins: the one with the highest tie-break value (or, without a tie-break,
//! the highest values of the other right columns, compared here).
//!
//! A left batch may need many right batches; the stream keeps its progress
//! through the batch ([`LeftBatch`]), so it can return `Pending` while the
//! right input (a sort, perhaps merging spill files) is not ready and pick up
//! at the same row.

use crate::asof::join::{JoinSpec, Partition};
use crate::asof::matching::{beats, eval, eval_times, within_tolerance};
use crate::asof::node::AsOfKind;
use crate::asof::output::{OutputRows, Rebuild};
use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::arrow::row::Rows;
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::metrics::{BaselineMetrics, Count};
use futures::{ready, Stream, StreamExt};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A right batch with its keys and times prepared, and the matches taken from it.
struct RightBatch {
    seq: u64,
    batch: RecordBatch,
    keys: Rows,
    times: ArrayRef,
    /// Values of the implicit tie-break columns.
    ties: Vec<ArrayRef>,
}

/// Most right batches referenced by one output batch before they are compacted.
const MAX_HELD: usize = 8;

/// Right columns an output batch takes rows from: a right batch (`seq`) or
/// rows already copied out of batches the merge has left behind (`None`).
struct Held {
    seq: Option<u64>,
    columns: Vec<ArrayRef>,
}

/// Where the current candidate row lives.
#[derive(Clone, Copy)]
struct Candidate {
    seq: u64,
    row: usize,
    time: i64,
}

/// A left batch being joined: its keys and times, the next row to join, and
/// the output rows so far (right rows as (held source, row)).
struct LeftBatch {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    rows: Rows,
    times: ArrayRef,
    next: usize,
    out: OutputRows<Option<(usize, usize)>>,
}

/// The merge of one partition.
pub struct AsOfMergeStream {
    left: SendableRecordBatchStream,
    right: SendableRecordBatchStream,
    spec: JoinSpec,
    /// Columns that order rows with equal times (highest wins), compared here
    /// (the implicit tie-break; an explicit one is part of the sort).
    ties: Vec<PhysicalExprRef>,
    /// Every right column is taken from the held right rows.
    rebuild: Vec<Rebuild>,
    null_right: Vec<ArrayRef>,
    /// The right batch being scanned and the position in it.
    cursor: Option<(Arc<RightBatch>, usize)>,
    right_done: bool,
    /// The best right row so far for the current key (its batch stays held).
    candidate: Option<(Candidate, Arc<RightBatch>)>,
    /// Sources of the right columns of the output being built (current left batch).
    held: Vec<Held>,
    next_seq: u64,
    /// The left batch being joined (waiting for right batches).
    current: Option<LeftBatch>,
    /// The stream has ended (its inputs did, or it returned an error).
    finished: bool,
    reservation: MemoryReservation,
    /// Time spent in the right input's `poll_next` (its work, not the join's).
    waited: Duration,
    baseline: BaselineMetrics,
    matched: Count,
    unmatched: Count,
}

impl AsOfMergeStream {
    pub(super) fn new(p: Partition, matched: Count, unmatched: Count) -> Self {
        let null_right: Vec<ArrayRef> = p
            .spec
            .right_schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let ties = if p.spec.implicit_tiebreak {
            p.spec.tiebreak.clone()
        } else {
            Vec::new()
        };
        AsOfMergeStream {
            left: p.left,
            right: p.right,
            rebuild: vec![Rebuild::Held; null_right.len()],
            spec: p.spec,
            ties,
            null_right,
            cursor: None,
            right_done: false,
            candidate: None,
            held: Vec::new(),
            next_seq: 0,
            current: None,
            finished: false,
            reservation: p.reservation,
            waited: Duration::ZERO,
            baseline: p.baseline,
            matched,
            unmatched,
        }
    }

    /// The next output batch (skipping empty ones).
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        loop {
            if self.current.is_none() {
                let batch = match ready!(self.left.poll_next_unpin(cx)) {
                    None => {
                        self.baseline.done();
                        return Poll::Ready(None);
                    }
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Some(Ok(b)) if b.num_rows() == 0 => continue,
                    Some(Ok(b)) => b,
                };
                let start = Instant::now();
                let current = self.start_left(batch);
                self.baseline.elapsed_compute().add_elapsed(start);
                self.current = Some(current?);
            }
            let start = Instant::now();
            self.waited = Duration::ZERO;
            let out = self.poll_left_batch(cx);
            let own = start.elapsed().saturating_sub(self.waited);
            self.baseline.elapsed_compute().add_duration(own);
            let out = ready!(out)?;
            if out.num_rows() == 0 {
                continue;
            }
            self.baseline.record_output(out.num_rows());
            return Poll::Ready(Some(Ok(out)));
        }
    }

    /// Prepares a left batch's keys and times.
    fn start_left(&mut self, batch: RecordBatch) -> Result<LeftBatch> {
        let keys = eval(&self.spec.left_keys, &batch)?;
        let rows = self.spec.converter.convert_columns(&keys)?;
        let times = eval_times(&self.spec.match_left, &batch)?;
        self.held.clear();
        Ok(LeftBatch {
            out: OutputRows::with_capacity(batch.num_rows()),
            batch,
            keys,
            rows,
            times,
            next: 0,
        })
    }

    /// Joins the rest of the current left batch (all its rows, in order) and
    /// returns its output batch; `Pending` when a right batch is not ready
    /// (the batch stays current, at the row that waits).
    fn poll_left_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<RecordBatch>> {
        let Some(mut lb) = self.current.take() else {
            return Poll::Ready(datafusion::common::internal_err!(
                "AsOfMergeStream: no left batch to join"
            ));
        };
        let times = Arc::clone(&lb.times);
        let ltimes = times.as_primitive::<Int64Type>();
        while lb.next < lb.batch.num_rows() {
            let i = lb.next;
            let valid = ltimes.is_valid(i) && lb.keys.iter().all(|a| a.is_valid(i));
            let found = if valid {
                match self.poll_advance(cx, &lb.rows, i, ltimes.value(i)) {
                    Poll::Pending => {
                        self.current = Some(lb);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(found)) => found,
                }
            } else {
                None
            };
            match found {
                Some(c) => {
                    self.matched.add(1);
                    let h = self.hold(c.seq);
                    lb.out.matched(i, h.map(|h| (h, c.row)), c.time);
                    if self.held.len() > MAX_HELD {
                        if let Err(e) = self.compact(&mut lb.out.right) {
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                None => {
                    self.unmatched.add(1);
                    if self.spec.kind == AsOfKind::Left {
                        lb.out.unmatched(i, None);
                    }
                }
            }
            lb.next += 1;
        }
        self.account();
        let out = self.build(lb);
        self.held.clear();
        Poll::Ready(out)
    }

    /// The output batch of a joined left batch.
    fn build(&self, lb: LeftBatch) -> Result<RecordBatch> {
        let nulls = self.held.len();
        let indices: Vec<(usize, usize)> = lb
            .out
            .right
            .iter()
            .map(|r| r.unwrap_or((nulls, 0)))
            .collect();
        lb.out.build(
            &self.spec,
            &self.rebuild,
            &lb.batch,
            || Ok(Vec::new()),
            |c, _, _| {
                let mut sources: Vec<&dyn Array> =
                    self.held.iter().map(|h| h.columns[c].as_ref()).collect();
                sources.push(self.null_right[c].as_ref());
                Ok(interleave(&sources, &indices)?)
            },
        )
    }

    /// Loads the next non-empty right batch into the cursor; false at the end.
    fn poll_next_right(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool>> {
        while !self.right_done {
            let waiting = Instant::now();
            let next = self.right.poll_next_unpin(cx);
            self.waited += waiting.elapsed();
            match ready!(next) {
                None => {
                    self.right_done = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(b)) if b.num_rows() == 0 => {}
                Some(Ok(b)) => {
                    let rb = match self.prepare_right(b) {
                        Ok(rb) => rb,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    self.cursor = Some((Arc::new(rb), 0));
                    self.account();
                    return Poll::Ready(Ok(true));
                }
            }
        }
        self.cursor = None;
        Poll::Ready(Ok(false))
    }

    fn prepare_right(&mut self, b: RecordBatch) -> Result<RightBatch> {
        let keys = self
            .spec
            .converter
            .convert_columns(&eval(&self.spec.right_keys, &b)?)?;
        let times = eval_times(&self.spec.match_right, &b)?;
        let ties = eval(&self.ties, &b)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(RightBatch {
            seq,
            batch: b,
            keys,
            times,
            ties,
        })
    }

    /// Memory held: the cursor batch, the candidate's batch and the referenced
    /// batches. Bounded by design (the cursor, the candidate and at most
    /// `MAX_HELD` batches): accounted, but never a reason to fail the query
    /// while the sorts below are spilling to make room.
    fn account(&mut self) {
        let mut seen: Vec<u64> = Vec::new();
        let mut total = 0usize;
        let batches = self
            .cursor
            .iter()
            .map(|(b, _)| b)
            .chain(self.candidate.iter().map(|(_, b)| b));
        for b in batches {
            if !seen.contains(&b.seq) {
                seen.push(b.seq);
                total += b.batch.get_array_memory_size() + b.keys.size();
            }
        }
        for h in &self.held {
            if h.seq.is_none_or(|s| !seen.contains(&s)) {
                total += h
                    .columns
                    .iter()
                    .map(|c| c.get_array_memory_size())
                    .sum::<usize>();
            }
        }
        self.reservation.resize(total);
    }

    /// Whether right row `p` of `rb` (time `rt`) has the same time as the
    /// candidate but lower implicit tie-break values, so the candidate stays.
    fn loses_tie(&self, rb: &RightBatch, p: usize, rt: i64) -> Result<bool> {
        if self.ties.is_empty() {
            return Ok(false);
        }
        let Some((c, cb)) = &self.candidate else {
            return Ok(false);
        };
        if c.time != rt {
            return Ok(false);
        }
        let columns = cb.ties.iter().zip(&rb.ties);
        beats(columns.map(|(a, b)| (a.as_ref(), b.as_ref())), c.row, p)
    }

    /// Index in `held` of the batch with `seq` (adding the candidate's batch).
    fn hold(&mut self, seq: u64) -> Option<usize> {
        if let Some(i) = self.held.iter().position(|h| h.seq == Some(seq)) {
            return Some(i);
        }
        let b = self
            .candidate
            .as_ref()
            .filter(|(c, _)| c.seq == seq)
            .map(|(_, b)| Arc::clone(b))?;
        self.held.push(Held {
            seq: Some(seq),
            columns: b.batch.columns().to_vec(),
        });
        Some(self.held.len() - 1)
    }

    /// Copies the referenced rows of every held batch the merge no longer needs
    /// into one small source, so a left batch whose matches are spread over many
    /// right batches does not keep them all in memory.
    fn compact(&mut self, out_right: &mut [Option<(usize, usize)>]) -> Result<()> {
        let keep: Vec<u64> = self
            .candidate
            .iter()
            .map(|(c, _)| c.seq)
            .chain(self.cursor.iter().map(|(b, _)| b.seq))
            .collect();
        let old = std::mem::take(&mut self.held);
        let mut remap: Vec<Option<usize>> = vec![None; old.len()];
        let mut gathered: Vec<(usize, usize)> = Vec::new();
        let mut gathered_at: HashMap<(usize, usize), usize> = HashMap::new();
        for (j, h) in old.iter().enumerate() {
            if h.seq.is_some_and(|s| keep.contains(&s)) {
                remap[j] = Some(self.held.len());
                self.held.push(Held {
                    seq: h.seq,
                    columns: h.columns.clone(),
                });
            }
        }
        for r in out_right.iter_mut().flatten() {
            if remap[r.0].is_none() {
                let at = *gathered_at.entry(*r).or_insert_with(|| {
                    gathered.push(*r);
                    gathered.len() - 1
                });
                *r = (usize::MAX, at);
            }
        }
        let width = self.null_right.len();
        let mut columns = Vec::with_capacity(width);
        for c in 0..width {
            let sources: Vec<&dyn Array> = old.iter().map(|h| h.columns[c].as_ref()).collect();
            columns.push(interleave(&sources, &gathered)?);
        }
        let compacted = self.held.len();
        self.held.push(Held { seq: None, columns });
        for r in out_right.iter_mut().flatten() {
            *r = if r.0 == usize::MAX {
                (compacted, r.1)
            } else {
                (remap[r.0].unwrap_or(compacted), r.1)
            };
        }
        Ok(())
    }

    /// Moves the right cursor for left row `i` (key `lkeys.row(i)`, time `lt`)
    /// and returns the matching right row. After `Pending` the call is made
    /// again for the same row and resumes where it stopped (the cursor and
    /// the candidate are the merge's state).
    fn poll_advance(
        &mut self,
        cx: &mut Context<'_>,
        lkeys: &Rows,
        i: usize,
        lt: i64,
    ) -> Poll<Result<Option<Candidate>>> {
        // Without keys every row is in the one group (the row format has no rows then).
        let keyed = !self.spec.left_keys.is_empty();
        if keyed {
            if let Some((c, b)) = &self.candidate {
                if b.keys.row(c.row) != lkeys.row(i) {
                    self.candidate = None;
                }
            }
        }
        loop {
            if self.cursor.is_none() && !ready!(self.poll_next_right(cx))? {
                break;
            }
            let Some((rb, pos)) = self.cursor.clone() else {
                break;
            };
            let times = rb.times.as_primitive::<Int64Type>();
            let mut p = pos;
            let len = rb.batch.num_rows();
            let mut stop = false;
            while p < len {
                if times.is_null(p) {
                    p += 1;
                    continue;
                }
                let order = if keyed {
                    rb.keys.row(p).cmp(&lkeys.row(i))
                } else {
                    Ordering::Equal
                };
                match order {
                    Ordering::Less => p += 1,
                    Ordering::Greater => {
                        stop = true;
                        break;
                    }
                    Ordering::Equal => {
                        let rt = times.value(p);
                        if !self.spec.op.eligible(rt, lt) {
                            stop = true;
                            break;
                        }
                        if !self.loses_tie(&rb, p, rt)? {
                            let c = Candidate {
                                seq: rb.seq,
                                row: p,
                                time: rt,
                            };
                            self.candidate = Some((c, Arc::clone(&rb)));
                        }
                        p += 1;
                    }
                }
            }
            if stop {
                self.cursor = Some((rb, p));
                break;
            }
            // This batch is exhausted: move on (the candidate keeps its batch alive).
            self.cursor = None;
        }
        let tolerance = self.spec.tolerance;
        Poll::Ready(Ok(self
            .candidate
            .as_ref()
            .map(|(c, _)| *c)
            .filter(|c| within_tolerance(tolerance, lt, c.time))))
    }
}

impl Stream for AsOfMergeStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let next = self.poll_join(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        next
    }
}

impl RecordBatchStream for AsOfMergeStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }
}
