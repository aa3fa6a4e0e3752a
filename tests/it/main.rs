//! The one integration-test binary (one module per area).

mod asof;
mod cli;
mod cli_output;
mod cluster;
mod common;
mod dbt_day;
mod dbt_macros;
mod dbt_packages;
mod features;
mod first_hour;
mod lineage;
mod load;
mod maintain;
mod model_syntax;
mod models;
mod online;
mod s3;
mod server;
mod slt;
mod snapshots;
mod sql;
mod sql_cli;
mod stream_views;
