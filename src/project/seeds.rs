//! Seeds: small CSV files under `seeds/` (and its subfolders) that `sluice
//! seed` loads as tables (`crate::load::seeds`). This finds them and their
//! config, as dbt reads it: the folder tree of `seeds:` in dbt_project.yml
//! (`+schema`, `+column_types`, `+enabled`, `+delimiter`; `+quote_columns` is
//! accepted), then `config:` of the seed's entry under `seeds:` in a
//! properties `.yml` file (in the seed or model folders), which wins. Models
//! resolve `ref('seed')` with it.

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
    /// `delimiter` config (default `,`).
    pub delimiter: Option<String>,
    /// The installed package it comes from (`None`: the project's own).
    pub package: Option<String>,
}

/// Seed config keys sluice reads (dbt's others are accepted and ignored).
const SEED_KEYS: &[&str] = &["schema", "column_types", "enabled", "delimiter"];

/// A properties file's `seeds:` entries (only what seeds need).
#[derive(Debug, Default, serde::Deserialize)]
struct SeedProperties {
    #[serde(default)]
    seeds: Vec<SeedEntry>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SeedEntry {
    name: String,
    #[serde(default)]
    config: Option<serde_json::Map<String, Value>>,
}

/// `config:` of every seed named under `seeds:` in the `.yml` files of the
/// seed and model folders.
fn properties_config(
    settings: &ModelSettings,
) -> Result<std::collections::HashMap<String, serde_json::Map<String, Value>>> {
    let mut out = std::collections::HashMap::new();
    let mut files = Vec::new();
    for dir in settings.seed_paths.iter().chain(&settings.model_paths) {
        files.extend(super::files_with_extension(dir, &["yml", "yaml"])?);
    }
    files.sort();
    files.dedup();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        if !text.contains("seeds") {
            continue;
        }
        let props: SeedProperties = serde_yaml::from_str(&text).map_err(|e| {
            Error::config(
                &f,
                match e.location() {
                    Some(l) => format!("line {}: {e}", l.line()),
                    None => e.to_string(),
                },
            )
        })?;
        for s in props.seeds {
            if let Some(c) = s.config {
                let entry: &mut serde_json::Map<String, Value> = out.entry(s.name).or_default();
                entry.extend(c);
            }
        }
    }
    Ok(out)
}

/// Renders a config value written as Jinja text (dbt renders the values of
/// dbt_project.yml and of properties files): `(key, text)` → the value, or
/// why not. Text without Jinja is returned as it is.
pub type RenderConfig<'a> = &'a dyn Fn(&str, &str) -> std::result::Result<Value, String>;

/// Every `.csv` under the seed folders of the project and of its installed
/// packages (dbt seeds a package's seeds too), with its target. Config values
/// are taken as written: a value with Jinja (`+enabled: "{{ var('x') }}"`)
/// needs [`discover_with`].
pub fn discover(project: &Project) -> Result<Vec<Seed>> {
    discover_with(project, None)
}

/// Renders the strings of a config value (inside mappings and lists too).
fn render_config(
    key: &str,
    v: &mut Value,
    render: RenderConfig,
) -> std::result::Result<(), String> {
    match v {
        Value::String(text) => *v = render(key, text)?,
        Value::Array(items) => {
            for item in items {
                render_config(key, item, render)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                render_config(key, item, render)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// [`discover`], rendering the config values with `render` before reading them.
pub fn discover_with(project: &Project, render: Option<RenderConfig>) -> Result<Vec<Seed>> {
    let mut out: Vec<Seed> = Vec::new();
    discover_in(project, &project.settings, None, render, &mut out)?;
    for p in &project.settings.packages {
        discover_in(project, p, Some(&p.name), render, &mut out)?;
    }
    Ok(out)
}

/// The seeds of one project (`package`: `None` for the root).
fn discover_in(
    project: &Project,
    settings: &ModelSettings,
    package: Option<&str>,
    render: Option<RenderConfig>,
    out: &mut Vec<Seed>,
) -> Result<()> {
    let by_properties = properties_config(settings)?;
    for dir in &settings.seed_paths {
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
            let mut cfg = ModelSettings::folder_config(&settings.seeds, &rel_dirs, |k| {
                SEED_KEYS.contains(&k)
            });
            // Per-seed config: `seeds: {my_project: {country_codes: {+column_types: ...}}}`.
            let mut path = rel_dirs.clone();
            path.push(name.clone());
            for (k, v) in
                ModelSettings::folder_config(&settings.seeds, &path, |k| SEED_KEYS.contains(&k))
            {
                cfg.insert(k, v);
            }
            if let Some(c) = by_properties.get(&name) {
                for (k, v) in c {
                    cfg.insert(k.strip_prefix('+').unwrap_or(k).to_string(), v.clone());
                }
            }
            if let Some(render) = render {
                for (k, v) in cfg.iter_mut() {
                    render_config(k, v, render).map_err(|m| {
                        Error::config(&file, format!("seed `{name}`, config `{k}`: {m}"))
                    })?;
                }
            }
            match cfg.get("enabled") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => continue,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => {}
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => continue,
                Some(other) => {
                    return Err(Error::config(
                        &file,
                        format!("seed `{name}`: enabled must be true or false, not {other} (Jinja in seed config is rendered in dbt projects)"),
                    ))
                }
            }
            let delimiter = match cfg.get("delimiter") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) if d.len() == 1 => Some(d.clone()),
                Some(other) => {
                    return Err(Error::config(
                        &file,
                        format!(
                            "seed `{name}`: delimiter must be one character such as ';' or '|', not {other}"
                        ),
                    ))
                }
            };
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
                    let Some(type_name) = t.as_str().map(str::to_string) else {
                        return Err(Error::config(
                            &file,
                            format!("seed `{name}`, column `{col}`: a column type is a name such as 'bigint' or 'date', not {t}"),
                        ));
                    };
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
                delimiter,
                package: package.map(str::to_string),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folder config from dbt_project.yml, then a properties file's config;
    /// a disabled folder's seeds are not seeds.
    #[test]
    fn folder_and_properties_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("dbt_project.yml"),
            "name: shop\nseeds:\n  shop:\n    +schema: raw\n    data:\n      +delimiter: '|'\n      +schema: landing\n    old:\n      +enabled: false\n",
        )
        .unwrap();
        std::fs::create_dir_all(p.join("seeds/data")).unwrap();
        std::fs::create_dir_all(p.join("seeds/old")).unwrap();
        std::fs::write(p.join("seeds/data/items.csv"), "a|b\n1|2\n").unwrap();
        std::fs::write(p.join("seeds/old/gone.csv"), "a\n1\n").unwrap();
        std::fs::write(p.join("seeds/top.csv"), "a\n1\n").unwrap();
        std::fs::write(
            p.join("seeds/props.yml"),
            "seeds:\n  - name: top\n    config: {schema: other, column_types: {a: bigint}}\n",
        )
        .unwrap();
        let project = Project::open(Some(p)).unwrap();
        let seeds = discover(&project).unwrap();
        let shown: Vec<(&str, &str, Option<&str>)> = seeds
            .iter()
            .map(|s| (s.name.as_str(), s.schema.as_str(), s.delimiter.as_deref()))
            .collect();
        assert_eq!(
            shown,
            // dbt's default schema naming: `<target schema>_<custom>`.
            vec![
                ("items", "main_landing", Some("|")),
                ("top", "main_other", None)
            ]
        );
        assert_eq!(seeds[1].columns[0].name, "a");
        std::fs::write(
            p.join("seeds/props.yml"),
            "seeds:\n  - name: top\n    config: {delimiter: ';;'}\n",
        )
        .unwrap();
        let e = discover(&project).unwrap_err().to_string();
        assert!(e.contains("delimiter must be one character"), "{e}");
    }

    /// Jinja in seed config is rendered by the renderer the caller gives
    /// (models::compile::named_seeds renders it with the vars), before the
    /// values are read; without one it is an error naming the value.
    #[test]
    fn config_values_are_rendered_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("dbt_project.yml"),
            "name: shop\nseeds:\n  shop:\n    data:\n      +enabled: \"{{ var('on', false) }}\"\n      +schema: \"{{ 'x' }}\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(p.join("seeds/data")).unwrap();
        std::fs::write(p.join("seeds/data/items.csv"), "a\n1\n").unwrap();
        let project = Project::open(Some(p)).unwrap();
        let e = discover(&project).unwrap_err().to_string();
        assert!(e.contains("var('on', false)"), "{e}");
        let render = |on: bool| {
            move |key: &str, text: &str| -> std::result::Result<Value, String> {
                Ok(match key {
                    "enabled" => Value::Bool(on),
                    _ => Value::from(text.replace("{{ 'x' }}", "landing")),
                })
            }
        };
        assert!(discover_with(&project, Some(&render(false)))
            .unwrap()
            .is_empty());
        let seeds = discover_with(&project, Some(&render(true))).unwrap();
        assert_eq!(seeds[0].schema, "main_landing");
    }
}
