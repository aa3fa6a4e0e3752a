//! # sluice
//!
//! A SQL-first ELT warehouse engine and feature store on Delta tables and
//! Apache DataFusion.
//!
//! ```text
//!  raw files / object storage ──load──▶ raw.* Delta tables ──run models──▶ staging.*, features.*
//!    (csv, ndjson, parquet)        │         (+ raw.*__rejected)          │  (table | view | incremental)
//!                                  │                                     │
//!                         quarantine, idempotency              DAG from SQL + ref(); tests; run records
//!                                                                        │
//!      training sets ◀── ASOF JOIN / TIMESTAMP AS OF ◀── offline store ◀─┤
//!      online serving ◀── Flight SQL (sluice serve) ◀── online store  ◀──┘ (latest value per entity)
//! ```
//!
//! Layers, dependencies pointing downward only (no module imports one above
//! it; modules on one row know each other only through hooks):
//!
//! | layer | modules | owns |
//! |-------|---------|------|
//! | binary | `main.rs`, `cli/` | clap commands, progress bars, output rendering, exit codes |
//! | top | [`server`], [`app`] | the Flight SQL server; [`app`] builds a project's engine with every extension installed |
//! | domain | [`models`], [`features`], [`load`] | models: discovery, Jinja, DAG, scheduler, materializations, tests, run records, hooks (checks before a write, work after it). features: registry, training sets, online store, installed through the engine's extension points and models' hook. load: readers, typing, quarantine, idempotent single-commit loads, seeds |
//! | engine | [`sql`] | the DataFusion session and its builder (schemas, table functions with the tables they read, planners, typed extensions); the one SQL front end (`sql::parser`, `sql::planner`, `sql::deps`): dialect, AS OF and time-travel rewrites, dependency extraction |
//! | operator | [`asof`] | the AS OF logical node and its operator |
//! | storage | [`warehouse`] | URIs, object stores, Delta tables, history, metadata files, the catalog provider and its name |
//! | leaves | [`project`], [`formats`], [`names`], [`error`] | project: `sluice.toml` / `dbt_project.yml`, source declarations, seed files, parsed as plain data (sections other layers own are parsed by them with [`project::Project::section`]). formats: byte-level CSV/NDJSON framing. names: SQL identifiers and quoting. error: the one error type |
//!
//! The edge `features → models` is the hook: `features` implements
//! [`models::ModelHook`]; `models` never names the feature store.
//!
//! The binary (`main.rs`) is a thin clap front end; this library never depends
//! on clap, indicatif or anyhow.

pub mod app;
pub mod asof;
pub mod docs;
pub mod error;
pub mod features;
pub mod formats;
#[doc(hidden)]
pub mod fuzzing;
pub mod lineage;
pub mod load;
pub mod models;
pub mod names;
pub mod project;
pub mod server;
pub mod sql;
pub mod stream;
pub mod warehouse;

pub use error::{Error, Result};
