//! The one integration-test binary (one module per area).

mod asof;
mod cli;
mod common;
mod load;
mod models;
mod s3;
mod server;
mod slt;
mod sql;
