//! # sluice
//!
//! A SQL-first ELT warehouse engine and feature store on Delta tables and
//! Apache DataFusion.
//!
//! ```text
//!  raw files / object storage ──load──▶ raw.* Delta tables ──run models──▶ staging.*, features.*
//!    (csv, ndjson, parquet)        │         (+ raw.*__rejected)
//!                                  │
//!                         quarantine, idempotency          one SQL session (`sluice sql`)
//! ```
//!
//! Layers, dependencies pointing downward only:
//!
//! | module      | owns                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | `models`    | discovery, Jinja, dependency inference, DAG, scheduler, materializations, data tests, seeds, run records |
//! | `project`   | `sluice.toml` / `dbt_project.yml`, source declarations (`catalog/*.toml`) |
//! | `load`      | readers, typing, quarantine, idempotent single-commit loads       |
//! | `sql`       | the DataFusion session over the warehouse, file table functions   |
//! | `asof`      | the AS OF join: syntax, logical node, planners, the operator        |
//! | `warehouse` | URIs, object stores, Delta tables, history, the catalog provider  |
//! | `formats`   | byte-level record framing for CSV and NDJSON, no I/O, used by `load` and `sql` |
//!
//! The binary (`main.rs`) is a thin clap front end; this library never depends
//! on clap, indicatif or anyhow.

pub mod asof;
pub mod error;
pub mod features;
pub mod formats;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod models;
pub mod project;
pub mod server;
pub mod sql;
pub mod warehouse;

pub use error::{Error, Result};
