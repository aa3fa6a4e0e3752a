//! Seeds: small CSV files under `seeds/` loaded as tables (`sluice seed`), with
//! inferred types (or `column_types` from config), replacing the table each time.
//! They go through the loader, so a malformed row fails the seed naming the
//! file and line instead of being dropped.

use crate::error::{did_you_mean, Error, Result};
use crate::load::{LoadObserver, LoadOptions, LoadReport};
use crate::project::{
    parse_type, ColumnDecl, CsvOptions, LoadMode, ModelSettings, Project, SchemaEvolution,
    SourceDecl, SourceFormat,
};
use crate::warehouse::Warehouse;
use serde_json::Value;
use std::path::PathBuf;

/// One seed file and where it goes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub name: String,
    pub file: PathBuf,
    pub schema: String,
    pub columns: Vec<ColumnDecl>,
}

/// Every `.csv` under the seed folders, with its target.
pub fn discover(project: &Project) -> Result<Vec<Seed>> {
    let mut out: Vec<Seed> = Vec::new();
    for dir in &project.settings.seed_paths {
        for file in super::discover::files_with_extension(dir, &["csv"])? {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !crate::warehouse::is_identifier(&name) {
                return Err(Error::config(
                    &file,
                    "a seed's file name is its table name: use lowercase letters, digits and _",
                ));
            }
            let rel_dirs: Vec<String> = file
                .parent()
                .and_then(|p| p.strip_prefix(dir).ok())
                .map(|p| {
                    p.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let mut cfg = ModelSettings::folder_config(&project.settings.seeds, &rel_dirs, |k| {
                k == "schema" || k == "column_types"
            });
            // Per-seed config: `seeds: {my_project: {country_codes: {+column_types: ...}}}`.
            let mut path = rel_dirs.clone();
            path.push(name.clone());
            for (k, v) in ModelSettings::folder_config(&project.settings.seeds, &path, |k| {
                k == "schema" || k == "column_types"
            }) {
                cfg.insert(k, v);
            }
            let schema = match cfg.get("schema") {
                Some(Value::String(s)) if crate::warehouse::is_identifier(s) => s.clone(),
                Some(other) => {
                    return Err(Error::config(
                        &file,
                        format!("seed schema {other} is not a valid schema name"),
                    ))
                }
                None => project.config.warehouse.default_schema.clone(),
            };
            let mut columns = Vec::new();
            if let Some(Value::Object(types)) = cfg.get("column_types") {
                for (col, t) in types {
                    let type_name = t.as_str().unwrap_or_default().to_string();
                    let data_type = parse_type(&type_name).map_err(|m| {
                        Error::config(&file, format!("seed `{name}`, column `{col}`: {m}"))
                    })?;
                    columns.push(ColumnDecl {
                        name: col.clone(),
                        type_name,
                        not_null: false,
                        data_type: Some(data_type),
                    });
                }
            }
            if let Some(prev) = out.iter().find(|s| s.name == name) {
                return Err(Error::config(
                    &file,
                    format!(
                        "seed `{name}` is also {}; seed names must be unique",
                        prev.file.display()
                    ),
                ));
            }
            out.push(Seed {
                name,
                file,
                schema,
                columns,
            });
        }
    }
    Ok(out)
}

/// Loads the seeds named in `names` (all when empty), replacing their tables.
pub async fn seed(
    project: &Project,
    warehouse: &Warehouse,
    names: &[String],
    observer: &dyn LoadObserver,
) -> Result<LoadReport> {
    let seeds = discover(project)?;
    if seeds.is_empty() {
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
            name: s.name.clone(),
            format: SourceFormat::Csv,
            location: s.file.to_string_lossy().into_owned(),
            target: Some(format!("{}.{}", s.schema, s.name)),
            mode: LoadMode::Overwrite,
            merge_keys: Vec::new(),
            schema_evolution: SchemaEvolution::AddColumns,
            max_rejected: Some(0),
            csv: CsvOptions::default(),
            ndjson: Default::default(),
            columns: s.columns.clone(),
            declared_in: s.file.clone(),
        })
        .collect();
    let options = LoadOptions {
        force: true,
        max_rejected: Some(0),
    };
    crate::load::load(&seed_project, warehouse, &[], &options, observer).await
}
