//! Shared helpers: temporary projects, engines and queries.

use sluice::project::Project;
use sluice::sql::Engine;
use sluice::warehouse::Warehouse;
use std::path::{Path, PathBuf};

/// Repository root (the example project).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the example project (sluice.toml + catalog/) into a temp folder.
pub fn example_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("catalog"), &dir.path().join("catalog"));
    std::fs::copy(
        repo_root().join("sluice.toml"),
        dir.path().join("sluice.toml"),
    )
    .unwrap();
    dir
}

/// A project with one source declared by `source_toml`.
pub fn project_with(source_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[project]\nname = \"t\"\n\n[warehouse]\nuri = \"warehouse\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("catalog/sources.toml"), source_toml).unwrap();
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

pub fn open(project: &Project, uri: Option<&str>) -> Warehouse {
    let uri = project.warehouse_uri(uri);
    Warehouse::open(&uri, &project.config.warehouse.storage_options).unwrap()
}

pub async fn engine(project: &Project, warehouse: &Warehouse) -> Engine {
    sluice::app::engine(project, warehouse.clone())
        .await
        .unwrap()
}

/// Runs a query and returns the first column of the first row as text.
pub async fn scalar(engine: &Engine, sql: &str) -> String {
    let batches = engine.query(sql).await.unwrap();
    let b = batches.iter().find(|b| b.num_rows() > 0).expect("no rows");
    arrow::util::display::array_value_to_string(b.column(0), 0).unwrap()
}

/// Runs a query and returns all rows rendered as `a|b|c` strings.
pub async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let batches = engine.query(sql).await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| arrow::util::display::array_value_to_string(b.column(c), r).unwrap())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// Number of commits in a table's log.
pub async fn version_of(w: &Warehouse, schema: &str, table: &str) -> Option<u64> {
    w.open_table(schema, table)
        .await
        .unwrap()
        .and_then(|t| t.version())
}
