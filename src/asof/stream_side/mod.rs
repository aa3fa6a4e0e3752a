//! The stream strategy: when the left side of a partition is the smaller one
//! (a training set's labels against the feature history), [`AsOfStreamExec`]
//! indexes the left rows by key with their times sorted
//! ([`left_index`]), then reads the right side once as a stream
//! ([`right_pass`]). Memory is the left side plus, per left row, at most a few
//! right rows that are still candidates ([`kept`]): right rows nobody can
//! match are never kept, however large the right side. While the left side is
//! indexed, the right side is read ahead ([`read_ahead`]).

mod exec;
mod kept;
mod left_index;
mod read_ahead;
mod right_pass;
mod stream;

pub use exec::AsOfStreamExec;
pub use stream::AsOfStreamSideStream;
