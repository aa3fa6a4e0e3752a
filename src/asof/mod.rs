//! The AS OF join: for each left row, the nearest right row with equal keys at
//! or before (or after) the left row's time — the point-in-time join training
//! sets are built with.
//!
//! The SQL forms (Snowflake `MATCH_CONDITION`, DuckDB `ON ... AND l.ts >= r.ts`,
//! `TOLERANCE`, `TIEBREAK BY`) are the SQL front end's (`sql::parser`,
//! `sql::planner`): this module is the operator alone and knows nothing
//! above it.
//!
//! - [`node`]: the logical node every form plans to.
//! - [`physical_planner`]: node → plan (an extension planner), choosing one of
//!   three strategies, each its own `ExecutionPlan` with its own stream, so
//!   `EXPLAIN` names what runs:
//!   - [`merge`]: [`AsOfMergeExec`], a forward merge of inputs DataFusion has
//!     sorted (its sorts spill through the memory pool);
//!   - [`probe`]: [`AsOfProbeExec`], the right side indexed in memory, each
//!     left row looked up;
//!   - [`stream_side`]: [`AsOfStreamExec`], the left side indexed in memory,
//!     the right side streamed past it.
//! - What they share, once: [`join`] (the condition, plan properties,
//!   `EXPLAIN` line, distribution, statistics, partition setup), `matching`
//!   (times, the operator's rules, tolerance, tie-breaks), `output` (output
//!   batches) and `key_index` (rows grouped by key, for the two indexes).
//! - [`codec`]: the three plans on the wire, for workers of a cluster.
//! - [`pushdown`]: filters on left columns go below the join.

pub mod codec;
pub mod join;
mod key_index;
mod matching;
pub mod merge;
pub mod node;
mod output;
pub mod physical_planner;
pub mod probe;
pub mod pushdown;
pub mod stream_side;

pub use codec::AsOfCodec;
pub use join::{AsOfCondition, AsOfJoin};
pub use matching::is_time_type;
pub use merge::AsOfMergeExec;
pub use node::{AsOfJoinNode, AsOfKind, AsOfOp};
pub use physical_planner::{tolerance_value, AsOfExtensionPlanner, AsOfMode};
pub use probe::AsOfProbeExec;
pub use pushdown::PushLeftFiltersThroughAsOf;
pub use stream_side::AsOfStreamExec;
