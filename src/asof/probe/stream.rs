//! [`AsOfProbeStream`]: one partition of the probe strategy. It reads the
//! whole right side into a [`RightIndex`] first, then joins each left batch as
//! it comes, in the left input's order.

use super::index::{RightIndex, RightIndexBuilder};
use crate::asof::join::{JoinSpec, Partition};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::metrics::BaselineMetrics;
use futures::{ready, Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The probe of one partition: building the right index, then probing it.
pub struct AsOfProbeStream {
    left: SendableRecordBatchStream,
    right: SendableRecordBatchStream,
    spec: JoinSpec,
    /// While the right side is read.
    building: Option<RightIndexBuilder>,
    /// Once it has been.
    index: Option<RightIndex>,
    /// Each left row's run in the index (scratch space reused per batch).
    runs: Vec<(usize, usize)>,
    /// The stream has ended (its inputs did, or it returned an error).
    finished: bool,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
}

impl AsOfProbeStream {
    pub(super) fn new(p: Partition) -> Self {
        AsOfProbeStream {
            left: p.left,
            right: p.right,
            building: Some(RightIndexBuilder::new(&p.spec)),
            spec: p.spec,
            index: None,
            runs: Vec::new(),
            finished: false,
            reservation: p.reservation,
            baseline: p.baseline,
        }
    }

    /// Reads the right side into the index; ready once it is built.
    fn poll_build(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while let Some(builder) = self.building.as_mut() {
            let next = ready!(self.right.poll_next_unpin(cx)).transpose()?;
            let start = Instant::now();
            match next {
                Some(b) if b.num_rows() == 0 => {}
                Some(b) => builder.push(&self.spec, b, &self.reservation)?,
                None => {
                    if let Some(builder) = self.building.take() {
                        self.index = Some(builder.finish(&self.reservation)?);
                    }
                }
            }
            self.baseline.elapsed_compute().add_elapsed(start);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        ready!(self.poll_build(cx))?;
        let Some(index) = &self.index else {
            return Poll::Ready(None);
        };
        loop {
            let Some(batch) = ready!(self.left.poll_next_unpin(cx)).transpose()? else {
                self.baseline.done();
                return Poll::Ready(None);
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let start = Instant::now();
            let out = index.probe(&self.spec, &batch, &mut self.runs)?;
            self.baseline.elapsed_compute().add_elapsed(start);
            if out.num_rows() == 0 {
                continue;
            }
            self.baseline.record_output(out.num_rows());
            return Poll::Ready(Some(Ok(out)));
        }
    }
}

impl Stream for AsOfProbeStream {
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

impl RecordBatchStream for AsOfProbeStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }
}
