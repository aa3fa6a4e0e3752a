//! The right side, read ahead while the stream strategy indexes the left
//! side: the right side's scan then runs on the cores the left side's scan
//! leaves idle (a labels file of one row group is decoded by one core). It
//! never holds more than the left side has delivered so far: a left side that
//! is slow because it is itself a busy plan (a chain of AS OF joins) gets no
//! read-ahead until its rows flow.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::SendableRecordBatchStream;
use futures::{ready, StreamExt};
use std::collections::VecDeque;
use std::task::{Context, Poll};

/// At most this many right-side bytes are read ahead per partition while the
/// left side is indexed.
const READ_AHEAD_BYTES: usize = 16 << 20;

/// The right input, with the batches read ahead of it.
pub(super) struct ReadAhead {
    right: SendableRecordBatchStream,
    batches: VecDeque<Result<RecordBatch>>,
    /// The batches read ahead, counted in the memory pool while the left side
    /// is indexed (then the right pass accounts for the rows it keeps).
    reservation: MemoryReservation,
    /// The left side's bytes so far.
    left_bytes: usize,
    /// Whether the right side may be read further (not ended, no error, the
    /// memory pool not refused).
    open: bool,
    /// Whether the right input has ended.
    ended: bool,
}

impl ReadAhead {
    pub fn new(right: SendableRecordBatchStream, reservation: MemoryReservation) -> Self {
        ReadAhead {
            right,
            batches: VecDeque::new(),
            reservation,
            left_bytes: 0,
            open: true,
            ended: false,
        }
    }

    /// The next left batch, reading right batches while it is not ready
    /// (the left input is always asked first).
    pub fn poll_next_left(
        &mut self,
        left: &mut SendableRecordBatchStream,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<RecordBatch>>> {
        let next = loop {
            let room = READ_AHEAD_BYTES.min(self.left_bytes);
            if !self.open || self.reservation.size() >= room {
                break ready!(left.poll_next_unpin(cx));
            }
            if let Poll::Ready(b) = left.poll_next_unpin(cx) {
                break b;
            }
            match ready!(self.right.poll_next_unpin(cx)) {
                Some(b) => {
                    self.open = match &b {
                        Ok(b) => self.reservation.try_grow(b.get_array_memory_size()).is_ok(),
                        Err(_) => false,
                    };
                    self.batches.push_back(b);
                }
                None => {
                    self.open = false;
                    self.ended = true;
                }
            }
        };
        if let Some(Ok(b)) = &next {
            self.left_bytes += b.get_array_memory_size();
        }
        Poll::Ready(next)
    }

    /// Stops reading ahead and gives its memory back to the pool (for the
    /// left index, which comes first); whether there was any.
    pub fn give_way(&mut self) -> bool {
        self.open = false;
        self.reservation.free() > 0
    }

    /// The next right batch: those read ahead, then the rest of the right
    /// input. The read-ahead's memory goes back to the pool at the first call.
    pub fn poll_next_right(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        self.open = false;
        self.reservation.free();
        if let Some(b) = self.batches.pop_front() {
            return Poll::Ready(Some(b));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        self.right.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::execution::memory_pool::{
        GreedyMemoryPool, MemoryConsumer, MemoryPool, UnboundedMemoryPool,
    };
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::future::poll_fn;
    use std::sync::Arc;

    /// A stream of one-column batches of `sizes` rows; each batch comes after
    /// one `Pending` when `slow` (so a read-ahead gets a chance).
    fn batches(sizes: &[usize], first: i64, slow: bool) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let mut next = first;
        let list: Vec<RecordBatch> = sizes
            .iter()
            .map(|&n| {
                let v: Vec<i64> = (next..next + n as i64).collect();
                next += n as i64;
                let column: ArrayRef = Arc::new(Int64Array::from(v));
                RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap()
            })
            .collect();
        let stream = futures::stream::iter(list).then(move |b| async move {
            if slow {
                tokio::task::yield_now().await;
            }
            Ok(b)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }

    fn values(list: &[RecordBatch]) -> Vec<i64> {
        list.iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    async fn rest(ahead: &mut ReadAhead) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        while let Some(b) = poll_fn(|cx| ahead.poll_next_right(cx)).await {
            out.push(b.unwrap());
        }
        out
    }

    /// The read-ahead holds at most about the left side's bytes so far (one
    /// batch over), never reads before the first left batch, gives way to the
    /// left index, and hands every right batch on in order.
    #[test]
    fn read_ahead_follows_the_left_side_and_keeps_the_right_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
            let mut left = batches(&[10; 4], 0, true);
            let right = batches(&[1000; 20], 100, false);
            let mut ahead = ReadAhead::new(right, MemoryConsumer::new("t").register(&pool));
            let one_right = batches(&[1000], 0, false)
                .next()
                .await
                .unwrap()
                .unwrap()
                .get_array_memory_size();
            let mut got_left = Vec::new();
            while let Some(b) = poll_fn(|cx| ahead.poll_next_left(&mut left, cx)).await {
                got_left.push(b.unwrap());
                let held: usize = ahead
                    .batches
                    .iter()
                    .map(|b| b.as_ref().unwrap().get_array_memory_size())
                    .sum();
                assert!(
                    held <= ahead.left_bytes + one_right,
                    "{held} > {}",
                    ahead.left_bytes
                );
                assert_eq!(held, ahead.reservation.size());
            }
            assert_eq!(values(&got_left), (0..40).collect::<Vec<_>>());
            // Small left batches: a little was read ahead, not the whole right side.
            assert!(!ahead.batches.is_empty() && ahead.batches.len() < 20);
            assert!(ahead.give_way());
            assert_eq!(ahead.reservation.size(), 0);
            assert_eq!(
                values(&rest(&mut ahead).await),
                (100..20_100).collect::<Vec<_>>()
            );

            // A memory pool that refuses: reading ahead stops, nothing is lost.
            let small: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1));
            let mut left = batches(&[4000; 3], 0, true);
            let right = batches(&[1000; 5], 100, false);
            let mut ahead = ReadAhead::new(right, MemoryConsumer::new("t").register(&small));
            while let Some(b) = poll_fn(|cx| ahead.poll_next_left(&mut left, cx)).await {
                b.unwrap();
            }
            assert_eq!(ahead.batches.len(), 1);
            assert!(!ahead.open);
            assert_eq!(
                values(&rest(&mut ahead).await),
                (100..5_100).collect::<Vec<_>>()
            );
        });
    }
}
