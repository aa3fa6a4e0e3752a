//! The probe strategy: when the right side of a partition fits in memory,
//! [`AsOfProbeExec`] indexes it by key (times sorted per key, ties resolved
//! once) and looks every left row up with a binary search. No sort of either
//! input, and the left input's order is kept. The planner picks it only when
//! the right side's estimated size is well within the memory limit and the
//! left side is the larger one; otherwise the stream or sort-merge strategy
//! runs.

mod exec;
mod index;
mod stream;

pub use exec::AsOfProbeExec;
pub use stream::AsOfProbeStream;
