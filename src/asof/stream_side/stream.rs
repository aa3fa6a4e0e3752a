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

/// What a step of a phase leads to.
enum Step {
    /// An input is not ready: stay in this phase.
    Wait(Phase),
    /// Go on with this phase.
    Next(Phase),
    /// An output batch, then this phase.
    Output(RecordBatch, Phase),
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
    started: Instant,
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
            started: Instant::now(),
        }
    }

    /// Steps through the phases until an output batch, the end, an error
    /// (the phase is then `Done`) or an input that is not ready.
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        loop {
            let step = match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Indexing(builder) => self.index(cx, builder)?,
                Phase::Joining(idx, pass) => self.join(cx, idx, pass)?,
                Phase::Emitting(idx, kept, row) => self.emit(idx, kept, row)?,
                Phase::Done => return Poll::Ready(None),
            };
            match step {
                Step::Wait(phase) => {
                    self.phase = phase;
                    return Poll::Pending;
                }
                Step::Next(phase) => self.phase = phase,
                Step::Output(out, phase) => {
                    self.phase = phase;
                    return Poll::Ready(Some(Ok(out)));
                }
            }
        }
    }

    /// Indexes the next left batch; at the end of the left side, goes on to
    /// the right side (or straight to the output when no left row can match).
    fn index(&mut self, cx: &mut Context<'_>, mut builder: LeftIndexBuilder) -> Result<Step> {
        let next = match self.right.poll_next_left(&mut self.left, cx) {
            Poll::Pending => return Ok(Step::Wait(Phase::Indexing(builder))),
            Poll::Ready(next) => next.transpose()?,
        };
        let start = Instant::now();
        let phase = match next {
            Some(b) => {
                if b.num_rows() > 0 {
                    builder.push(&self.spec, b, &self.reservation, &mut self.right)?;
                }
                Phase::Indexing(builder)
            }
            None => {
                let idx = builder.finish();
                tracing::debug!(
                    "AS OF stream [{}]: left side indexed ({} entries) after {:?}",
                    self.partition,
                    idx.entries.len(),
                    self.started.elapsed()
                );
                if idx.entries.is_empty() {
                    // No left row can match: the right side need not be read.
                    Phase::Emitting(idx, Kept::new(0), 0)
                } else {
                    let pass = RightPass::new(&self.spec, &self.rebuild, &idx, &self.reservation);
                    Phase::Joining(idx, pass)
                }
            }
        };
        self.baseline.elapsed_compute().add_elapsed(start);
        Ok(Step::Next(phase))
    }

    /// Streams the next right batch past the index; at the end of the right
    /// side, settles every left row's match and goes on to the output.
    fn join(
        &mut self,
        cx: &mut Context<'_>,
        mut idx: LeftIndex,
        mut pass: RightPass,
    ) -> Result<Step> {
        let next = match self.right.poll_next_right(cx) {
            Poll::Pending => return Ok(Step::Wait(Phase::Joining(idx, pass))),
            Poll::Ready(next) => next.transpose()?,
        };
        let start = Instant::now();
        let phase = match next {
            Some(b) => {
                if b.num_rows() > 0 {
                    pass.push(&self.spec, &mut idx, &b, &self.reservation)?;
                }
                Phase::Joining(idx, pass)
            }
            None => {
                let kept = pass.finish(&self.spec, &mut idx, &self.reservation)?;
                tracing::debug!(
                    "AS OF stream [{}]: right side joined ({} rows kept) after {:?}",
                    self.partition,
                    kept.rows,
                    self.started.elapsed()
                );
                Phase::Emitting(idx, kept, 0)
            }
        };
        self.baseline.elapsed_compute().add_elapsed(start);
        Ok(Step::Next(phase))
    }

    /// The output of the next left batch (whose first row is left row
    /// `first_row`), giving its memory back; the end after the last.
    fn emit(&mut self, mut idx: LeftIndex, kept: Kept, first_row: usize) -> Result<Step> {
        let Some(batch) = idx.batches.pop_front() else {
            self.baseline.done();
            tracing::debug!(
                "AS OF stream [{}]: output emitted after {:?}",
                self.partition,
                self.started.elapsed()
            );
            return Ok(Step::Next(Phase::Done));
        };
        let start = Instant::now();
        let out = output(&self.spec, &self.rebuild, &idx, &kept, &batch, first_row)?;
        self.reservation
            .shrink(batch.get_array_memory_size().min(self.reservation.size()));
        self.baseline.elapsed_compute().add_elapsed(start);
        let phase = Phase::Emitting(idx, kept, first_row + batch.num_rows());
        if out.num_rows() == 0 {
            return Ok(Step::Next(phase));
        }
        self.baseline.record_output(out.num_rows());
        Ok(Step::Output(out, phase))
    }
}

/// The output batch of a left batch (`batch`, whose first row is left row
/// `first_row` of the partition).
fn output(
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
