//! `sluice seed`: the project's seed CSV files ([`crate::project::seeds`])
//! loaded as tables with inferred types (or `column_types` from config),
//! replacing the table each time. They go through the loader, so a malformed
//! row fails the seed naming the file and line instead of being dropped.

use crate::error::{did_you_mean, Error, Result};
use crate::load::{LoadObserver, LoadOptions, LoadReport};
use crate::project::seeds::discover;
use crate::project::{CsvOptions, LoadMode, Project, SchemaEvolution, SourceDecl, SourceFormat};
use crate::warehouse::Warehouse;

/// Loads the seeds named in `names` (all when empty), replacing their tables:
/// always with `force` (`sluice seed`), else only those whose table is
/// missing or whose file changed since it was loaded.
pub async fn seed(
    project: &Project,
    warehouse: &Warehouse,
    names: &[String],
    force: bool,
    observer: &dyn LoadObserver,
) -> Result<LoadReport> {
    seed_with(
        project,
        warehouse,
        discover(project)?,
        names,
        force,
        observer,
    )
    .await
}

/// [`seed`] with the seeds already found (and their schemas named, e.g. by a
/// dbt project's `generate_schema_name`).
pub async fn seed_with(
    project: &Project,
    warehouse: &Warehouse,
    seeds: Vec<crate::project::seeds::Seed>,
    names: &[String],
    force: bool,
    observer: &dyn LoadObserver,
) -> Result<LoadReport> {
    if seeds.is_empty() {
        let mut csv_files = 0;
        for dir in &project.settings.seed_paths {
            csv_files += crate::project::files_with_extension(dir, &["csv"])?.len();
        }
        if csv_files > 0 && names.is_empty() {
            // As `dbt seed`: nothing to do is no error.
            tracing::warn!(
                "nothing to seed: every seed is disabled by its `enabled` config ({csv_files} CSV files)"
            );
            return Ok(LoadReport {
                load_id: crate::load::new_load_id(),
                sources: Vec::new(),
            });
        }
        return Err(Error::config(
            project
                .settings
                .seed_paths
                .first()
                .cloned()
                .unwrap_or_else(|| project.root.join("seeds")),
            "no seed files (*.csv) found; put CSV files in the seeds folder",
        ));
    }
    for n in names {
        if !seeds.iter().any(|s| &s.name == n) {
            return Err(Error::config(
                project.root.join("seeds"),
                format!(
                    "no seed named `{n}`{}",
                    did_you_mean(n, seeds.iter().map(|s| s.name.as_str()))
                ),
            ));
        }
    }
    let mut seed_project = project.clone();
    seed_project.sources = seeds
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .map(|s| SourceDecl {
            kind: crate::project::SourceKind::Files,
            kafka: None,
            name: s.name.clone(),
            format: SourceFormat::Csv,
            location: s.file.to_string_lossy().into_owned(),
            target: Some(format!("{}.{}", s.schema, s.name)),
            mode: LoadMode::Overwrite,
            merge_keys: Vec::new(),
            schema_evolution: SchemaEvolution::AddColumns,
            max_rejected: Some(0),
            csv: CsvOptions {
                delimiter: s.delimiter.clone().unwrap_or_else(|| ",".into()),
                ..CsvOptions::default()
            },
            ndjson: Default::default(),
            columns: s.columns.clone(),
            declared_in: s.file.clone(),
        })
        .collect();
    let options = LoadOptions {
        force,
        allow_duplicates: false,
        max_rejected: Some(0),
    };
    crate::load::load(&seed_project, warehouse, &[], &options, observer).await
}
