//! Resolving a source's location (path, glob or object-store URI) into files.

use crate::error::{Error, Result};
use crate::warehouse::Warehouse;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// One input file with its identity for idempotency.
#[derive(Clone)]
pub struct SourceFile {
    /// What users see: a local path or a URL.
    pub display: String,
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjPath,
    pub size: u64,
    /// RFC 3339 modification time.
    pub modified: String,
    pub etag: Option<String>,
}

impl SourceFile {
    /// The identity recorded in commit metadata.
    pub fn identity(&self) -> serde_json::Value {
        json!({
            "path": self.display,
            "size": self.size,
            "modified": self.modified,
            "etag": self.etag,
        })
    }

    /// Whether a recorded identity names this same file content.
    pub fn matches(&self, recorded: &serde_json::Value) -> bool {
        let path = recorded.get("path").and_then(|p| p.as_str());
        let size = recorded.get("size").and_then(|s| s.as_u64());
        if path != Some(self.display.as_str()) || size != Some(self.size) {
            return false;
        }
        let etag = recorded.get("etag").and_then(|e| e.as_str());
        let modified = recorded.get("modified").and_then(|m| m.as_str());
        match (&self.etag, etag) {
            (Some(a), Some(b)) if a == b => true,
            _ => modified == Some(self.modified.as_str()),
        }
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lists the files of `location` (already resolved against the project root),
/// sorted by path. No match is an error naming the location.
pub async fn resolve(
    warehouse: &Warehouse,
    source: &str,
    location: &str,
) -> Result<Vec<SourceFile>> {
    let url = crate::warehouse::to_url(location)?;
    let (store, full) = warehouse.store_for(&url)?;
    let full_str = full.as_ref().to_string();
    let (prefix, pattern) = if has_glob(&full_str) {
        let cut = full_str.find(['*', '?', '[']).unwrap_or(full_str.len());
        let dir = match full_str[..cut].rfind('/') {
            Some(i) => &full_str[..i],
            None => "",
        };
        let pattern = glob::Pattern::new(&full_str).map_err(|e| {
            Error::source(
                source,
                format!("location `{location}` is not a valid glob: {e}"),
            )
        })?;
        (ObjPath::from(dir), Some(pattern))
    } else {
        (full.clone(), None)
    };
    let storage_err = |e: object_store::Error| Error::Storage {
        location: location.to_string(),
        message: crate::error::first_line(&e.to_string()),
    };
    let metas: Vec<object_store::ObjectMeta> = match &pattern {
        None => match store.head(&full).await {
            Ok(m) => vec![m],
            Err(object_store::Error::NotFound { .. }) => {
                // A folder: load every file in it.
                let listed: Vec<_> = store
                    .list(Some(&full))
                    .try_collect()
                    .await
                    .map_err(storage_err)?;
                if listed.is_empty() {
                    return Err(Error::source(
                        source,
                        format!("file `{location}` does not exist; check the source's location"),
                    ));
                }
                listed
            }
            Err(e) => return Err(storage_err(e)),
        },
        Some(p) => {
            let opts = glob::MatchOptions {
                require_literal_separator: true,
                ..Default::default()
            };
            let listed: Vec<_> = match store.list(Some(&prefix)).try_collect().await {
                Ok(l) => l,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(storage_err(e)),
            };
            let matched: Vec<_> = listed
                .into_iter()
                .filter(|m| p.matches_with(m.location.as_ref(), opts))
                .collect();
            if matched.is_empty() {
                return Err(Error::source(
                    source,
                    format!("no file matches `{location}`; check the source's location"),
                ));
            }
            matched
        }
    };
    let mut files: Vec<SourceFile> = metas
        .into_iter()
        .filter(|m| {
            let name = m.location.filename().unwrap_or_default();
            !name.starts_with('.') && !name.starts_with('_')
        })
        .map(|m| SourceFile {
            display: display_name(&url, &m.location),
            store: store.clone(),
            size: m.size,
            modified: m.last_modified.to_rfc3339(),
            etag: if url.scheme() == "file" {
                None
            } else {
                m.e_tag.clone()
            },
            path: m.location,
        })
        .collect();
    files.sort_by(|a, b| a.display.cmp(&b.display));
    Ok(files)
}

fn display_name(url: &url::Url, path: &ObjPath) -> String {
    if url.scheme() == "file" {
        Path::new("/")
            .join(path.as_ref())
            .to_string_lossy()
            .into_owned()
    } else {
        format!(
            "{}://{}/{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            path.as_ref()
        )
    }
}
