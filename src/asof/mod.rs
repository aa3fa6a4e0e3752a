//! The AS OF join: for each left row, the nearest right row with equal keys at
//! or before (or after) the left row's time — the point-in-time join training
//! sets are built with.
//!
//! - [`syntax`]: the SQL forms (Snowflake `MATCH_CONDITION`, DuckDB `ON ... AND
//!   l.ts >= r.ts` / `USING`, `TOLERANCE`, `TIEBREAK BY`) turned into something
//!   sqlparser parses, and the dialect that also parses `VERSION AS OF`.
//! - [`node`]: the logical node both forms plan to.
//! - [`planner`]: SQL → node (a relation planner), node → operator (an
//!   extension planner), and the session's query planner.
//! - [`exec`]: the operator, a per-partition merge over inputs DataFusion has
//!   hash-partitioned and sorted (spilling through the memory pool).

pub mod exec;
pub mod node;
pub mod planner;
mod probe;
pub mod pushdown;
mod stream;
pub mod syntax;

pub use exec::{AsOfJoinExec, Strategy};
pub use node::{AsOfJoinNode, AsOfKind, AsOfOp};
pub use planner::{AsOfExtensionPlanner, AsOfMode, AsOfRelationPlanner, SluiceQueryPlanner};
pub use pushdown::PushLeftFiltersThroughAsOf;
