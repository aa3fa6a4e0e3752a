//! dbt analyses: `.sql` files under `analysis-paths` (`analyses/`) that
//! compile like models (`ref()`, `source()`, `var()`, macros) and never run.
//! `sluice compile` writes each to
//! `target/compiled/<project>/analyses/<path>.sql`, as dbt does.

use super::compile::Compiled;
use super::discover;
use crate::error::{Error, Result};
use crate::project::Project;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One compiled analysis.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Analysis {
    pub name: String,
    /// The file, relative to the project.
    pub file: String,
    /// The rendered SQL.
    pub sql: String,
    /// Where it was written.
    pub compiled_path: PathBuf,
}

/// Renders every analysis with the project's vars and `--vars` and writes
/// it under `target/compiled/`.
pub fn compile_analyses(
    project: &Project,
    compiled: &Compiled,
    cli_vars: &BTreeMap<String, Value>,
) -> Result<Vec<Analysis>> {
    let mut vars = project.settings.vars.clone();
    vars.extend(cli_vars.clone());
    let files = discover::sql_files(&project.root, &project.settings.analysis_paths)?;
    let out_dir = project
        .root
        .join("target/compiled")
        .join(&project.settings.name)
        .join("analyses");
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match compiled.render_other(&f, &vars) {
            Ok((sql, _)) => {
                let path = out_dir.join(&f.rel_path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                std::fs::write(&path, format!("{sql}\n")).map_err(|e| Error::io(&path, e))?;
                out.push(Analysis {
                    name: f.name.clone(),
                    file: f.display.clone(),
                    sql,
                    compiled_path: path,
                });
            }
            Err(e) => errors.push(Error::Model {
                model: format!("analysis {}", f.name),
                file: f.display.clone(),
                message: e.to_string(),
            }),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}
