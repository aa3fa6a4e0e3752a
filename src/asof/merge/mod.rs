//! The sort-merge strategy: [`AsOfMergeExec`] asks DataFusion for both inputs
//! sorted by key and time (its sorts spill), and [`AsOfMergeStream`] merges
//! them forward, one partition at a time. It holds a few batches whatever the
//! inputs' sizes, so the planner picks it when neither side is known to fit in
//! memory.

mod exec;
mod stream;

pub use exec::AsOfMergeExec;
pub use stream::AsOfMergeStream;
