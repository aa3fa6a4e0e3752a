//! The one integration-test binary (one module per area).

mod asof;
mod cli;
mod common;
mod features;
mod load;
mod model_syntax;
mod models;
mod online;
mod s3;
mod server;
mod slt;
mod sql;
mod sql_cli;
