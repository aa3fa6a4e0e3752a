//! The warehouse: Delta tables on object storage at `<root>/<schema>/<table>/`.
//!
//! This layer knows URIs, storage options and Delta tables; nothing above it
//! talks to object storage directly. Engine metadata lives under `<root>/_sluice/`.

mod catalog;
mod history;
mod maintain;
pub mod parquet_scan;
mod table_cache;
mod table_name;
pub use table_cache::{InMemoryTable, KeyIndex};
mod views;
mod write;

pub use catalog::WarehouseCatalog;
pub use history::{
    history, history_after, history_batch, history_tail, table_history, CommitRecord,
};
pub use maintain::{
    human_duration, optimize, vacuum, OptimizeOptions, OptimizeReport, VacuumOptions, VacuumReport,
    VacuumedFile, MIN_RETENTION,
};
pub use table_name::TableName;
pub use views::NestedPlanner;
pub use views::{
    plan_in_session, plan_reads_files, Aliases, SqlFrontEnd, SqlFrontEndFn, SqlView, ViewDef,
};
pub use write::{added_rows, check_columns, writer_properties, ROW_GROUP_ROWS, TARGET_FILE_SIZE};

use crate::error::{Error, Result};
use deltalake::DeltaTable;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

pub use crate::names::is_identifier;

/// The catalog name under which the warehouse appears in SQL.
pub const CATALOG: &str = "sluice";

/// A warehouse location with its object store.
#[derive(Debug, Clone)]
pub struct Warehouse {
    /// The root as a URL with a trailing slash.
    root: Url,
    /// Store whose "/" is the root of the storage system (filesystem root, bucket).
    store: Arc<dyn ObjectStore>,
    /// Options handed to Delta and object_store (env `AWS_*` merged with config).
    options: HashMap<String, String>,
    /// The root as a local directory (`file://` warehouses only).
    local_dir: Option<std::path::PathBuf>,
}

/// A local commit file's stamp: size, modification time (ns) and inode, as
/// object_store's local ETag has them (a table dropped and re-created up to
/// the same version differs in time or inode).
fn local_stamp(m: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let inode = 0u64;
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}|{modified}|{inode:x}", m.len())
}

impl Warehouse {
    /// Opens the warehouse at `uri` (a local path, `file://`, `s3://` or `memory://`).
    pub fn open(uri: &str, config_options: &HashMap<String, String>) -> Result<Self> {
        let root = to_dir_url(uri)?;
        let options = merged_options(config_options);
        let store = build_store(&root, &options)?;
        let mut local_dir = None;
        if root.scheme() == "file" {
            let path = root.to_file_path().map_err(|_| Error::Warehouse {
                uri: uri.to_string(),
                message: "not a valid local path".into(),
            })?;
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            local_dir = Some(path);
        }
        Ok(Warehouse {
            root,
            store,
            options,
            local_dir,
        })
    }

    /// Root URL (with trailing slash).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// Storage options in force (without secrets redacted: do not print).
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The root object store ("/" = storage root).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Object store path of the warehouse root.
    pub fn root_path(&self) -> ObjPath {
        ObjPath::from_url_path(self.root.path()).unwrap_or_default()
    }

    /// URL of `schema.table`.
    pub fn table_url(&self, schema: &str, table: &str) -> Result<Url> {
        self.root
            .join(&format!("{schema}/{table}/"))
            .map_err(|e| Error::Internal(format!("table url for {schema}.{table}: {e}")))
    }

    /// An unloaded Delta table handle at `url` sharing this warehouse's store.
    pub fn table_handle(&self, url: &Url) -> Result<DeltaTable> {
        let mut builder = deltalake::DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| Error::storage(url, e))?
            .with_storage_options(self.options.clone());
        if url.scheme() == "memory" {
            builder = builder.with_storage_backend(self.store.clone(), url.clone());
        }
        builder.build().map_err(|e| Error::storage(url, e))
    }

    /// Opens `schema.table` at its latest version, or `None` when no Delta table is there.
    pub async fn open_table(&self, schema: &str, table: &str) -> Result<Option<DeltaTable>> {
        let url = self.table_url(schema, table)?;
        self.open_table_at(&url).await
    }

    /// Opens the Delta table at `url`, or `None` when there is none.
    pub async fn open_table_at(&self, url: &Url) -> Result<Option<DeltaTable>> {
        let mut table = self.table_handle(url)?;
        // Probe the log first: a missing table is normal, not an error.
        let log = ObjPath::from_url_path(url.path())
            .map_err(|e| Error::Internal(e.to_string()))?
            .join("_delta_log");
        let mut listing = self.store.list(Some(&log));
        use futures::StreamExt;
        match listing.next().await {
            None => return Ok(None),
            Some(Err(object_store::Error::NotFound { .. })) => return Ok(None),
            Some(Err(e)) => return Err(Error::storage(url, e)),
            Some(Ok(_)) => {}
        }
        if let Err(e) = table.load().await {
            return Err(self
                .broken_log_hint(url, &log)
                .await
                .unwrap_or_else(|| Error::storage(url, e)));
        }
        Ok(Some(table))
    }

    /// When a table's log has commits but neither its first commit nor a
    /// checkpoint (what a DROP TABLE that stopped half-way leaves, see
    /// `drop_order`), an error that says so and how to finish the drop.
    async fn broken_log_hint(&self, url: &Url, log: &ObjPath) -> Option<Error> {
        use futures::TryStreamExt;
        let names: Vec<String> = self
            .store
            .list(Some(log))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .ok()?;
        let commits = names.iter().any(|n| n.ends_with(".json"));
        let first = names.iter().any(|n| n == "00000000000000000000.json");
        let checkpoint = names.iter().any(|n| n.contains("checkpoint"));
        (commits && !first && !checkpoint).then(|| Error::Storage {
            location: url.to_string(),
            message: "the Delta log has later commits but neither its first commit nor a \
                      checkpoint, so no version can be read (a DROP TABLE that stopped \
                      half-way leaves this); run DROP TABLE on it again to finish removing it"
                .into(),
        })
    }

    /// Whether `schema.table` is a stored Delta table or view (one listing, no
    /// log replay).
    pub async fn relation_exists(&self, schema: &str, table: &str) -> Result<bool> {
        if !is_identifier(schema) || !is_identifier(table) {
            return Ok(false);
        }
        let log = self.root_path().join(schema).join(table).join("_delta_log");
        let mut listing = self.store.list(Some(&log));
        use futures::StreamExt;
        match listing.next().await {
            Some(Ok(_)) => return Ok(true),
            None | Some(Err(object_store::Error::NotFound { .. })) => {}
            Some(Err(e)) => return Err(Error::storage(&self.root, e)),
        }
        Ok(self.get_view(schema, table).await?.is_some())
    }

    /// When `version` is still the latest commit of `schema.table` (its commit
    /// file exists and the next one does not: two HEAD requests, sent together), the commit
    /// file's stamp (see [`Warehouse::commit_stamp`]). A dropped table, or a
    /// log cleaned up past `version`, answers `None`.
    pub async fn latest_stamp(
        &self,
        schema: &str,
        table: &str,
        version: Option<u64>,
    ) -> Result<Option<String>> {
        let Some(v) = version else {
            return Ok(None);
        };
        // Both at once: on object storage these are two round trips per query.
        let (next, this) = futures::try_join!(
            self.commit_stamp(schema, table, v + 1),
            self.commit_stamp(schema, table, v)
        )?;
        Ok(if next.is_some() { None } else { this })
    }

    /// Size, modification time and ETag of commit `version` of `schema.table`
    /// (`None` when there is no such commit file): tells a table dropped and
    /// re-created up to the same version from the one read before.
    pub async fn commit_stamp(
        &self,
        schema: &str,
        table: &str,
        version: u64,
    ) -> Result<Option<String>> {
        use object_store::ObjectStoreExt;
        let file = format!("{version:020}.json");
        if let Some(dir) = &self.local_dir {
            // A local warehouse: one stat, on this thread. object_store's
            // `head` would open the file on the blocking pool (a thread hop
            // per call), and servers check every table on every query.
            let path = dir.join(schema).join(table).join("_delta_log").join(&file);
            return match std::fs::metadata(&path) {
                Ok(m) => Ok(Some(local_stamp(&m))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(&path, e)),
            };
        }
        let path = self
            .root_path()
            .join(schema)
            .join(table)
            .join("_delta_log")
            .join(file);
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(format!(
                "{}|{}|{}",
                m.size,
                m.last_modified.to_rfc3339(),
                m.e_tag.unwrap_or_default()
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// The latest committed version of `schema.table` from one listing of its
    /// log (`None` when it is not a Delta table).
    pub async fn latest_version(&self, schema: &str, table: &str) -> Result<Option<u64>> {
        let log = self.root_path().join(schema).join(table).join("_delta_log");
        let listed = match self.store.list_with_delimiter(Some(&log)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage(&self.root, e)),
        };
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse().ok())
            .max())
    }

    /// Schemas (top-level folders holding at least one table), sorted.
    pub async fn list_schemas(&self) -> Result<Vec<String>> {
        let mut names = self.list_dirs(&self.root_path()).await?;
        names.retain(|n| is_identifier(n) && !n.starts_with('_'));
        Ok(names)
    }

    /// Tables of `schema` (folders holding a `_delta_log`), sorted.
    pub async fn list_tables(&self, schema: &str) -> Result<Vec<String>> {
        let base = self.root_path().join(schema);
        let mut out = Vec::new();
        for name in self.list_dirs(&base).await? {
            if !is_identifier(&name) {
                continue;
            }
            let log = base.clone().join(name.as_str()).join("_delta_log");
            let listed = self
                .store
                .list_with_delimiter(Some(&log))
                .await
                .map_err(|e| Error::storage(&self.root, e))?;
            if !listed.objects.is_empty() {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Names in `schema` that may name a table or view: its folders (not
    /// checked for a Delta log, so that one listing serves a schema of any
    /// size) and its stored views, sorted. For suggestions, not for reading.
    pub async fn list_relation_names(&self, schema: &str) -> Result<Vec<String>> {
        let mut names = self.list_dirs(&self.root_path().join(schema)).await?;
        names.retain(|n| is_identifier(n));
        names.extend(self.list_views(schema).await?);
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn list_dirs(&self, prefix: &ObjPath) -> Result<Vec<String>> {
        let listed = match self.store.list_with_delimiter(Some(prefix)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage(&self.root, e)),
        };
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A store able to read `url` (for source files outside the warehouse), with
    /// the same options. Returns the store and the path inside it.
    pub fn store_for(&self, url: &Url) -> Result<(Arc<dyn ObjectStore>, ObjPath)> {
        let path = ObjPath::from_url_path(url.path()).map_err(|e| Error::Storage {
            location: url.to_string(),
            message: e.to_string(),
        })?;
        if same_store(url, &self.root) {
            return Ok((self.store.clone(), path));
        }
        Ok((build_store(url, &self.options)?, path))
    }
}

fn same_store(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str()
}

/// Turns a user URI or path into a directory URL with a trailing slash.
pub fn to_dir_url(uri: &str) -> Result<Url> {
    let mut url = to_url(uri)?;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Turns a user URI or local path (absolute or relative to the cwd) into a URL.
pub fn to_url(uri: &str) -> Result<Url> {
    let bad = |m: String| Error::Warehouse {
        uri: uri.to_string(),
        message: m,
    };
    if uri.contains("://") {
        let url = Url::parse(uri).map_err(|e| bad(e.to_string()))?;
        return match url.scheme() {
            "file" | "s3" | "s3a" | "memory" => Ok(url),
            other => Err(bad(format!(
                "unsupported scheme `{other}`; use a local path, file://, s3:// or memory://"
            ))),
        };
    }
    let path = std::path::Path::new(uri);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(path)
    };
    let abs = normalize(&abs);
    Url::from_file_path(&abs).map_err(|_| bad("not a valid local path".into()))
}

/// Lexically removes `.` and `..` (the path may not exist yet).
fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `AWS_*` environment variables (lower-cased) overridden by configured options.
fn merged_options(config: &HashMap<String, String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    for (k, v) in config {
        out.insert(k.to_ascii_lowercase(), v.clone());
    }
    // deltalake reads "allow_http"; object_store reads "aws_allow_http".
    if let Some(v) = out.get("aws_allow_http").cloned() {
        out.entry("allow_http".into()).or_insert(v);
    }
    out
}

fn build_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    match url.scheme() {
        "file" => Ok(Arc::new(object_store::local::LocalFileSystem::new())),
        "memory" => Ok(Arc::new(object_store::memory::InMemory::new())),
        "s3" | "s3a" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let bucket = url.host_str().unwrap_or_default();
            let mut b = AmazonS3Builder::new().with_bucket_name(bucket);
            for (k, v) in options {
                if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                    if !matches!(key, AmazonS3ConfigKey::Bucket) {
                        b = b.with_config(key, v);
                    }
                }
            }
            let store = b.build().map_err(|e| Error::Storage {
                location: url.to_string(),
                message: format!(
                    "{} (set the endpoint, region and credentials in [warehouse.storage_options] or AWS_* variables)",
                    crate::error::first_line(&e.to_string())
                ),
            })?;
            Ok(Arc::new(store))
        }
        other => Err(Error::Warehouse {
            uri: url.to_string(),
            message: format!("unsupported scheme `{other}`"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("raw"));
        assert!(is_identifier("user_features2"));
        assert!(!is_identifier("Raw"));
        assert!(!is_identifier("2x"));
    }

    #[test]
    fn urls() {
        assert_eq!(to_dir_url("s3://b/p").unwrap().as_str(), "s3://b/p/");
        assert_eq!(
            to_dir_url("/tmp/a/../w").unwrap().as_str(),
            "file:///tmp/w/"
        );
        assert!(to_url("ftp://x")
            .unwrap_err()
            .to_string()
            .contains("unsupported scheme"));
    }
}
