//! `sluice.toml`: the project file.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The whole `sluice.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    #[serde(default)]
    pub project: ProjectSection,
    #[serde(default)]
    pub warehouse: WarehouseSection,
    /// `[vars]`: values for `var('name')` in models.
    #[serde(default)]
    pub vars: toml::Table,
    /// `[models]`: model config for every model, with per-folder tables
    /// (`[models.staging]` applies to `<models>/staging/`).
    #[serde(default)]
    pub models: toml::Table,
    /// `[snapshots]`: snapshot config for every snapshot, with per-folder
    /// tables (as `[models]`).
    #[serde(default)]
    pub snapshots: toml::Table,
    /// `[server]`: the Flight SQL server (`sluice serve`).
    #[serde(default)]
    pub server: ServerSection,
    /// `[online]`: the online feature store (`sluice materialize`), parsed by
    /// the feature store ([`super::Project::section`]).
    #[serde(default)]
    pub online: toml::Table,
    /// `[feature_services.<name>]`: named sets of features, parsed by the
    /// feature store.
    #[serde(default)]
    pub feature_services: toml::Table,
    /// `[cluster]`: workers queries and model runs are planned over.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// `[run]`: how model runs behave.
    #[serde(default)]
    pub run: RunSection,
    /// `[lineage]`: where OpenLineage events go (`file`, `url`), parsed by
    /// [`crate::lineage::openlineage::LineageConfig`].
    #[serde(default)]
    pub lineage: toml::Table,
}

/// `[run]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// How often a model that failed because a worker failed (unreachable,
    /// gone mid-query) is run again; a model's own `retries` config wins.
    /// Default 1.
    pub retries: Option<u32>,
}

/// `[cluster]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `sluice worker` addresses (`http://host:port`); empty: no cluster.
    /// `--workers` / `SLUICE_WORKERS` replace them.
    #[serde(default)]
    pub workers: Vec<String>,
    /// `[cluster.settings]`: datafusion-distributed's settings, without their
    /// `distributed.` prefix (`compression = "none"`).
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, toml::Value>,
}

/// `[server]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to bind (default 127.0.0.1).
    pub host: Option<String>,
    /// Port (default 50051).
    pub port: Option<u16>,
    /// Lifetime of a bearer token, e.g. "1h" (default 1h).
    pub token_ttl: Option<String>,
    /// A query running longer is cancelled, e.g. "5m" (default: none).
    pub query_timeout: Option<String>,
    /// Memory one query may use before it spills or fails, e.g. "2GiB"
    /// (default: the engine's limit).
    pub query_memory_limit: Option<String>,
    /// Memory for small tables kept decoded between queries, e.g. "256MiB"
    /// (default 256MiB; "0" turns it off). Tables whose files total up to an
    /// eighth of it are kept, per Delta version.
    pub table_cache: Option<String>,
    /// On SIGTERM/Ctrl-C, how long running requests may go on before they are
    /// cancelled, e.g. "10s" (default 30s).
    pub shutdown_grace: Option<String>,
    /// TLS certificate chain and private key (PEM files, relative to the project).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// `[[server.users]]`
    #[serde(default)]
    pub users: Vec<ServerUser>,
}

/// One `[[server.users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerUser {
    pub name: String,
    /// From `sluice hash-password` (never the password itself).
    pub password_hash: String,
    /// `read_write` (default) or `read_only`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `[project]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    #[serde(default = "default_name")]
    pub name: String,
    /// Folder of SQL models, relative to the project root.
    #[serde(default = "default_models")]
    pub models: String,
    /// Folder of source declarations (`*.toml`), relative to the project root.
    #[serde(default = "default_catalog")]
    pub catalog: String,
    /// Folder of seed CSV files, relative to the project root.
    #[serde(default = "default_seeds")]
    pub seeds: String,
    /// Folder of singular data tests (`*.sql` returning failing rows).
    #[serde(default = "default_tests")]
    pub tests: String,
    /// Folder of snapshots (`{% snapshot %}` blocks, `snapshots:` in .yml).
    #[serde(default = "default_snapshots")]
    pub snapshots: String,
}

/// `[warehouse]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseSection {
    /// Local folder, `file://`, `s3://bucket/prefix` or `memory://`.
    #[serde(default = "default_uri")]
    pub uri: String,
    /// Schema that unqualified table names resolve in.
    #[serde(default = "default_schema")]
    pub default_schema: String,
    /// Object store options (`aws_endpoint_url`, `aws_region`, ...).
    #[serde(default)]
    pub storage_options: HashMap<String, String>,
}

fn default_name() -> String {
    "sluice_project".into()
}
fn default_models() -> String {
    "models".into()
}
fn default_snapshots() -> String {
    "snapshots".into()
}
fn default_catalog() -> String {
    "catalog".into()
}
fn default_seeds() -> String {
    "seeds".into()
}
fn default_tests() -> String {
    "tests".into()
}
fn default_uri() -> String {
    "warehouse".into()
}
fn default_schema() -> String {
    "raw".into()
}

impl Default for ProjectSection {
    fn default() -> Self {
        ProjectSection {
            name: default_name(),
            models: default_models(),
            catalog: default_catalog(),
            seeds: default_seeds(),
            tests: default_tests(),
            snapshots: default_snapshots(),
        }
    }
}

impl Default for WarehouseSection {
    fn default() -> Self {
        WarehouseSection {
            uri: default_uri(),
            default_schema: default_schema(),
            storage_options: HashMap::new(),
        }
    }
}

impl ProjectConfig {
    /// Parses the text of `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        let cfg: ProjectConfig =
            toml::from_str(text).map_err(|e| Error::config(file, super::line_of(text, &e)))?;
        if !crate::names::is_identifier(&cfg.warehouse.default_schema) {
            return Err(Error::config(
                file,
                format!(
                    "warehouse.default_schema `{}` is not a valid schema name (use lowercase letters, digits and _)",
                    cfg.warehouse.default_schema
                ),
            ));
        }
        Ok(cfg)
    }
}

/// The `sluice.toml` written by `sluice init`.
pub(crate) fn skeleton(name: &str) -> String {
    format!(
        r#"[project]
name = "{name}"
models = "sql"        # SQL models, one file per model
catalog = "catalog"   # source declarations (*.toml)

[warehouse]
uri = "warehouse"     # a local folder, file://..., s3://bucket/prefix or memory://
# Unqualified table names resolve here, and seeds and models outside a
# schema folder are built here. Loaded sources go to raw.<source>.
default_schema = "main"

# [warehouse.storage_options]
# aws_endpoint_url = "http://127.0.0.1:9000"
# aws_region = "us-east-1"
# aws_allow_http = "true"
"#
    )
}
