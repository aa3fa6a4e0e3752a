//! [`AsOfStreamSideStream`]: one partition of the stream strategy, in three
//! phases: index the whole left side (reading the right side ahead), stream
//! the right side past the index, then emit the left batches in their input
//! order with their matches.

use super::kept::Kept;
use super::left_index::{LeftIndex, LeftIndexBuilder, NONE};
use super::read_ahead::ReadAhead;
use super::right_pass::RightPass;
use crate::asof::join::{JoinSpec, Partition};
use crate::asof::matching::{eval, within_tolerance};
use crate::asof::node::AsOfKind;
use crate::asof::output::{plan_rebuild, OutputRows, Rebuild};
use datafusion::arrow::array::{new_null_array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::metrics::BaselineMetrics;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Where a partition is.
enum Phase {
    /// Reading the left side into the index (and the right side ahead).
    Indexing(LeftIndexBuilder),
    /// Reading the right side past the index.
    Joining(LeftIndex, RightPass),
    /// Emitting the left batches (`usize`: the first row of the next one).
    Emitting(LeftIndex, Kept, usize),
    /// Ended (the output is emitted, or an error was returned).
    Done,
}

/// The stream strategy's join of one partition.
pub struct AsOfStreamSideStream {
    left: SendableRecordBatchStream,
    /// The right input, read ahead while the left side is indexed.
    right: ReadAhead,
    spec: JoinSpec,
    rebuild: Vec<Rebuild>,
    phase: Phase,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    partition: usize,
    /// When the partition started (for the phase timings in the debug log).
    started: Option<Instant>,
}

impl AsOfStreamSideStream {
    pub(super) fn new(p: Partition, partition: usize) -> Self {
        AsOfStreamSideStream {
            left: p.left,
            right: ReadAhead::new(p.right, p.reservation.new_empty()),
            rebuild: plan_rebuild(&p.spec),
            spec: p.spec,
            phase: Phase::Indexing(LeftIndexBuilder::new()),
            reservation: p.reservation,
            baseline: p.baseline,
            partition,
            started: None,
        }
    }

    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Indexing(mut builder) => {
                    let next = match self.right.poll_next_left(&mut self.left, cx) {
                        Poll::Pending => {
                            self.phase = Phase::Indexing(builder);
                            return Poll::Pending;
                        }
                        Poll::Ready(next) => next.transpose()?,
                    };
                    let start = Instant::now();
                    match next {
                        Some(b) if b.num_rows() == 0 => self.phase = Phase::Indexing(builder),
                        Some(b) => {
                            builder.push(&self.spec, b, &self.reservation, &mut self.right)?;
                            self.phase = Phase::Indexing(builder);
                        }
                        None => {
                            let idx = builder.finish();
                            tracing::debug!(
                                "AS OF stream [{}]: left side indexed ({} entries) after {:?}",
                                self.partition,
                                idx.entries.len(),
                                started.elapsed()
                            );
                            self.phase = if idx.entries.is_empty() {
                                // No left row can match: the right side need not be read.
                                Phase::Emitting(idx, Kept::new(0), 0)
                            } else {
                                let pass = RightPass::new(
                                    &self.spec,
                                    &self.rebuild,
                                    &idx,
                                    &self.reservation,
                                );
                                Phase::Joining(idx, pass)
                            };
                        }
                    }
                    self.baseline.elapsed_compute().add_elapsed(start);
                }
                Phase::Joining(mut idx, mut pass) => {
                    let next = match self.right.poll_next_right(cx) {
                        Poll::Pending => {
                            self.phase = Phase::Joining(idx, pass);
                            return Poll::Pending;
                        }
                        Poll::Ready(next) => next.transpose()?,
                    };
                    let start = Instant::now();
                    match next {
                        Some(b) => {
                            if b.num_rows() > 0 {
                                pass.push(&self.spec, &mut idx, &b, &self.reservation)?;
                            }
                            self.phase = Phase::Joining(idx, pass);
                        }
                        None => {
                            let kept = pass.finish(&self.spec, &mut idx, &self.reservation)?;
                            tracing::debug!(
                                "AS OF stream [{}]: right side joined ({} rows kept) after {:?}",
                                self.partition,
                                kept.rows,
                                started.elapsed()
                            );
                            self.phase = Phase::Emitting(idx, kept, 0);
                        }
                    }
                    self.baseline.elapsed_compute().add_elapsed(start);
                }
                Phase::Emitting(mut idx, kept, first_row) => {
                    let Some(batch) = idx.batches.pop_front() else {
                        self.baseline.done();
                        tracing::debug!(
                            "AS OF stream [{}]: output emitted after {:?}",
                            self.partition,
                            started.elapsed()
                        );
                        return Poll::Ready(None);
                    };
                    let start = Instant::now();
                    let out = emit(&self.spec, &self.rebuild, &idx, &kept, &batch, first_row)?;
                    let rows = batch.num_rows();
                    self.reservation
                        .shrink(batch.get_array_memory_size().min(self.reservation.size()));
                    self.baseline.elapsed_compute().add_elapsed(start);
                    self.phase = Phase::Emitting(idx, kept, first_row + rows);
                    if out.num_rows() > 0 {
                        self.baseline.record_output(out.num_rows());
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }
}

/// The output batch for the next left batch (`batch`, whose first row is
/// left row `first_row` of the partition).
fn emit(
    spec: &JoinSpec,
    rebuild: &[Rebuild],
    idx: &LeftIndex,
    kept: &Kept,
    batch: &RecordBatch,
    first_row: usize,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut out = OutputRows::with_capacity(n);
    for i in 0..n {
        let e = idx.entry_of[first_row + i];
        let found = (e != NONE)
            .then(|| idx.entries[e as usize])
            .filter(|x| x.best != NONE && within_tolerance(spec.tolerance, x.time, x.best_time));
        match found {
            Some(x) => out.matched(i, Some(x.best), x.best_time),
            None if spec.kind == AsOfKind::Left => out.unmatched(i, None),
            None => {}
        }
    }
    let rows = out.left.len();
    let right_at = UInt32Array::from(out.right.clone());
    // After the final compaction every kept row is in one chunk, its columns
    // in the order of the held right columns.
    let mut held = 0usize;
    out.build(
        spec,
        rebuild,
        batch,
        || eval(&spec.left_keys, batch),
        |_, f, _| {
            let column = match kept.chunks.first() {
                Some(chunk) => take(chunk[held].as_ref(), &right_at, None)?,
                None => new_null_array(f.data_type(), rows),
            };
            held += 1;
            Ok(column)
        },
    )
}

impl Stream for AsOfStreamSideStream {
    type Item = Result<RecordBatch>;

    /// After an error the phase stays `Done`: the stream ends.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_join(cx)
    }
}

impl RecordBatchStream for AsOfStreamSideStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }
}
