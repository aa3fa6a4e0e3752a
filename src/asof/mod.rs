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
//! - [`physical_planner`]: node → operator (an extension planner) and the
//!   choice of strategy.
//! - [`exec`]: the operator, a per-partition merge over inputs DataFusion has
//!   hash-partitioned and sorted (spilling through the memory pool).

pub mod exec;
pub mod node;
pub mod physical_planner;
mod probe;
pub mod pushdown;
mod stream;

pub use exec::{is_time_type, AsOfJoinExec, Strategy};
pub use node::{AsOfJoinNode, AsOfKind, AsOfOp};
pub use physical_planner::{tolerance_value, AsOfExtensionPlanner, AsOfMode};
pub use pushdown::PushLeftFiltersThroughAsOf;
