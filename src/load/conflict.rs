//! Exactly-once under overlapping loads.
//!
//! Two `sluice load` runs that start together (overlapping cron jobs) both see a
//! new file as not loaded yet. deltalake 1.1's own retry would let both commit
//! it: its conflict checker accepts concurrent appends. So every load commit is
//! made with retries off (`CommitProperties::with_max_retries(0)`): a commit
//! that landed after our snapshot fails ours. We then read the commits made
//! since that snapshot (their `sluice.source` / `sluice.files` metadata). When
//! one of them loaded any of our files, nothing of ours is committed and the
//! source is planned again against the new table, where those files are
//! already loaded; otherwise the same data files are committed against the new
//! snapshot (overwrite removes recomputed there), or planned again when the
//! table's schema changed under us. The check is always made on the snapshot
//! the commit is made against, which is what a Delta `txn` alone would not do.

use super::files::SourceFile;
use crate::error::Result;
use crate::warehouse::{history_after, CommitRecord, Warehouse};
use deltalake::kernel::transaction::TransactionError;
use deltalake::{DeltaTable, DeltaTableError};
use serde::Serialize;

/// How many times one source is planned again because other loads committed
/// its files or changed its table's schema first.
pub(crate) const PLAN_ATTEMPTS: usize = 8;

/// How many times the same data files are committed again on top of commits
/// that do not touch this load's files.
pub(crate) const COMMIT_ATTEMPTS: usize = 32;

/// A file of this load that another load running at the same time committed
/// first; this load skipped it, so its rows are in the table once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcurrentFile {
    /// The file, as in `files[].path`.
    pub path: String,
    /// The load that committed it.
    pub load_id: String,
    /// The table version that load committed.
    pub version: u64,
}

/// What became of a commit made with retries off.
#[derive(Debug)]
pub(crate) enum Committed {
    /// It is this table version.
    Version(u64),
    /// Not committed: other commits landed first and the source must be
    /// planned again. Lists the files of ours those commits loaded.
    Replan(Vec<ConcurrentFile>),
}

/// Whether a commit failed because another commit landed first (retries are
/// off, so any such commit surfaces here), as opposed to a storage failure.
pub(crate) fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(_)
                    | TransactionError::CommitConflict(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}

/// The files of `ours` that loads of `source` recorded in `commits`.
pub(crate) fn loaded_by(
    commits: &[CommitRecord],
    source: &str,
    ours: &[SourceFile],
) -> Vec<ConcurrentFile> {
    let mut out = Vec::new();
    for c in commits
        .iter()
        .filter(|c| c.source.as_deref() == Some(source))
    {
        for f in ours {
            if c.source_files.iter().any(|r| f.matches(r))
                && !out.iter().any(|o: &ConcurrentFile| o.path == f.display)
            {
                out.push(ConcurrentFile {
                    path: f.display.clone(),
                    load_id: c.load_id.clone().unwrap_or_default(),
                    version: c.version,
                });
            }
        }
    }
    out
}

/// What a commit must not overlap: the files of `source` it loads. Empty with
/// `--force`, which reloads files on purpose.
pub(crate) struct Guard<'a> {
    pub source: &'a str,
    pub files: &'a [SourceFile],
}

impl Guard<'_> {
    pub fn clashes(&self, commits: &[CommitRecord]) -> Vec<ConcurrentFile> {
        loaded_by(commits, self.source, self.files)
    }
}

/// The files of `guard` that loads committed to `schema.table` after the
/// snapshot `planned_on` (all commits when the table did not exist).
pub(crate) async fn loaded_since(
    warehouse: &Warehouse,
    schema: &str,
    table: &str,
    planned_on: Option<&DeltaTable>,
    guard: &Guard<'_>,
) -> Result<Vec<ConcurrentFile>> {
    if guard.files.is_empty() {
        return Ok(Vec::new());
    }
    let commits = match planned_on {
        Some(t) => history_after(t, t.version()).await?,
        None => match warehouse.open_table(schema, table).await? {
            Some(t) => history_after(&t, None).await?,
            None => Vec::new(),
        },
    };
    Ok(guard.clashes(&commits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> SourceFile {
        SourceFile {
            display: path.into(),
            store: std::sync::Arc::new(object_store::memory::InMemory::new()),
            path: path.into(),
            size: 10,
            modified: "2026-01-01T00:00:00Z".into(),
            etag: Some("e".into()),
        }
    }

    fn commit(version: u64, source: &str, files: &[&SourceFile]) -> CommitRecord {
        CommitRecord {
            version,
            timestamp_ms: None,
            operation: "WRITE".into(),
            rows_added: None,
            files_added: 1,
            files_removed: 0,
            load_id: Some(format!("L{version}")),
            source: Some(source.into()),
            source_files: files.iter().map(|f| f.identity()).collect(),
            run_id: None,
            sql_hash: None,
        }
    }

    #[test]
    fn finds_our_files_in_other_loads_commits() {
        let (a, b, c) = (file("a.csv"), file("b.csv"), file("c.csv"));
        let commits = [
            commit(3, "s", &[&a]),
            commit(4, "s__rejected", &[&b]),
            commit(5, "other", &[&b]),
            commit(6, "s", &[&a, &c]),
        ];
        let ours = [a.clone(), b.clone(), c.clone()];
        let got = loaded_by(&commits, "s", &ours);
        let got: Vec<_> = got.iter().map(|f| (f.path.as_str(), f.version)).collect();
        assert_eq!(got, vec![("a.csv", 3), ("c.csv", 6)]);
        // A changed file (other size) is a new file.
        let mut a2 = a.clone();
        a2.size = 11;
        assert!(loaded_by(&commits, "s", &[a2]).is_empty());
    }

    #[test]
    fn only_lost_races_are_conflicts() {
        let lost: DeltaTableError = TransactionError::MaxCommitAttempts(0).into();
        assert!(is_conflict(&lost));
        assert!(is_conflict(&DeltaTableError::VersionAlreadyExists(3)));
        let storage = DeltaTableError::Generic("connection reset".into());
        assert!(!is_conflict(&storage));
    }
}
