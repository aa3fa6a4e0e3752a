//! Seeds: small CSV files under `seeds/` that `sluice seed` loads as tables
//! (`crate::load::seeds`). This finds them and their targets and column types
//! (`column_types` from config); models resolve `ref('seed')` with it.

use super::{parse_type, ColumnDecl, ModelSettings, Project};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::PathBuf;

/// One seed file and where it goes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub name: String,
    pub file: PathBuf,
    pub schema: String,
    /// The `schema` config as written (dbt's `custom_schema_name`).
    pub custom_schema: Option<String>,
    /// Folders below the seed path (dbt's fqn).
    pub rel_dirs: Vec<String>,
    pub columns: Vec<ColumnDecl>,
}

/// Every `.csv` under the seed folders, with its target.
pub fn discover(project: &Project) -> Result<Vec<Seed>> {
    let mut out: Vec<Seed> = Vec::new();
    for dir in &project.settings.seed_paths {
        for file in super::files_with_extension(dir, &["csv"])? {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !crate::names::is_identifier(&name) {
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
            let default_schema = &project.config.warehouse.default_schema;
            let dbt = project.settings.kind == super::ProjectKind::Dbt;
            let custom_schema = cfg
                .get("schema")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let schema = match cfg.get("schema") {
                // dbt's default generate_schema_name: `<target schema>_<custom>`.
                Some(Value::String(s)) if dbt && crate::names::is_identifier(s) => {
                    format!("{default_schema}_{s}")
                }
                Some(Value::String(s)) if crate::names::is_identifier(s) => s.clone(),
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
                custom_schema,
                rel_dirs,
                columns,
            });
        }
    }
    Ok(out)
}
