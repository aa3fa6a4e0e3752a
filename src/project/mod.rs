//! A sluice project: `sluice.toml`, the models folder and the source declarations.
//!
//! The project only describes; it does not touch storage. Paths in the project
//! are relative to the project root unless absolute or URIs.

mod config;
mod dbt;
mod files;
mod open;
pub mod packages;
pub mod seeds;
pub(crate) mod source;

pub use dbt::{ModelSettings, ProjectKind, DBT_PROJECT_FILE};
pub use files::files_with_extension;

pub use config::{ProjectConfig, ProjectSection, ServerSection, ServerUser, WarehouseSection};
pub use source::{
    parse_type, ColumnDecl, CsvOptions, KafkaOptions, KafkaStart, LoadMode, NdjsonOptions,
    SchemaEvolution, SourceDecl, SourceFormat, SourceKind,
};

use crate::error::{did_you_mean, Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deserializes the value of one top-level key of a TOML document, skipping
/// the others (errors keep their position in the file).
struct Section<'k, T> {
    key: &'k str,
    value: std::marker::PhantomData<T>,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Section<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Section<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.key {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The name of the project file.
pub const PROJECT_FILE: &str = "sluice.toml";

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Project root folder.
    pub root: PathBuf,
    /// Parsed `sluice.toml` (defaults when the folder has none).
    pub config: ProjectConfig,
    /// Whether `sluice.toml` exists (commands such as `sql` work without one).
    pub has_config: bool,
    /// Declared sources, in declaration order.
    pub sources: Vec<SourceDecl>,
    /// Models, seeds and tests (from `sluice.toml` or `dbt_project.yml`).
    pub settings: ModelSettings,
    /// The text of `sluice.toml` (empty without one), for [`Project::section`].
    text: Arc<str>,
    /// dbt's `target.name` in templates (`--target`; default `dev`).
    pub target: String,
}

impl Project {
    /// Loads the project at `root`. A folder without `sluice.toml` is an empty
    /// project (no sources) with the default configuration.
    ///
    /// A folder with `dbt_project.yml` and no `sluice.toml` is a dbt project: its
    /// models, seeds, tests and vars come from there, its default schema is `main`
    /// (as with dbt-duckdb) and it has no load sources.
    pub fn load(root: &Path) -> Result<Self> {
        // Absolute once, here: every path below derives from the root.
        let root = &std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        let file = root.join(PROJECT_FILE);
        if file.exists() {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let config = ProjectConfig::parse(&text, &file)?;
            let sources = source::load_catalog(&root.join(&config.project.catalog))?;
            let settings = ModelSettings::from_sluice(root, &config)?;
            return Ok(Project {
                target: "dev".into(),
                root: root.to_path_buf(),
                config,
                has_config: true,
                sources,
                settings,
                text: text.into(),
            });
        }
        let mut config = ProjectConfig::default();
        if root.join(DBT_PROJECT_FILE).exists() {
            let settings = ModelSettings::from_dbt(root)?;
            config.project.name = settings.name.clone();
            config.warehouse.default_schema = "main".into();
            return Ok(Project {
                target: "dev".into(),
                root: root.to_path_buf(),
                config,
                has_config: true,
                sources: Vec::new(),
                settings,
                text: "".into(),
            });
        }
        let settings = ModelSettings::from_sluice(root, &config)?;
        Ok(Project {
            target: "dev".into(),
            root: root.to_path_buf(),
            config,
            has_config: false,
            sources: Vec::new(),
            settings,
            text: "".into(),
        })
    }

    /// The table `[key]` of `sluice.toml` as `T` (its default when the file or
    /// the table is missing). Sections owned by other parts of sluice (the
    /// feature store's `[online]`, ...) are parsed by their owners with the
    /// types they define; errors name the line, and unknown keys get a
    /// suggestion, as everywhere in the file.
    pub fn section<T: serde::de::DeserializeOwned + Default>(&self, key: &str) -> Result<T> {
        let file = self.root.join(PROJECT_FILE);
        let seed = Section {
            key,
            value: std::marker::PhantomData::<T>,
        };
        let de = toml::Deserializer::new(&self.text);
        serde::de::DeserializeSeed::deserialize(seed, de)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::config(&file, line_of(&self.text, &e)))
    }

    /// Whether this is a dbt project (no `sluice.toml`).
    pub fn is_dbt(&self) -> bool {
        self.settings.kind == ProjectKind::Dbt
    }

    /// The sources named in `names`, or all sources when `names` is empty.
    pub fn select_sources(&self, names: &[String]) -> Result<Vec<&SourceDecl>> {
        if names.is_empty() {
            return Ok(self.sources.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.sources.iter().find(|s| &s.name == n).ok_or_else(|| {
                    let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                    Error::UnknownSource {
                        name: n.clone(),
                        hint: did_you_mean(n, known.iter().copied()),
                        known: if known.is_empty() {
                            format!(
                                "none (declare sources in {}/*.toml)",
                                self.config.project.catalog
                            )
                        } else {
                            known.join(", ")
                        },
                    }
                })
            })
            .collect()
    }

    /// The warehouse URI: explicit override, else the config's, resolved
    /// against the project root when it is a relative path.
    pub fn warehouse_uri(&self, override_uri: Option<&str>) -> String {
        let raw = override_uri.unwrap_or(&self.config.warehouse.uri);
        resolve_location(&self.root, raw)
    }
}

/// Resolves a location that may be a URI (`s3://`, `file://`, `memory://`), an
/// absolute path or a path relative to `root`.
pub fn resolve_location(root: &Path, raw: &str) -> String {
    if raw.contains("://") || Path::new(raw).is_absolute() {
        raw.to_string()
    } else {
        root.join(raw).to_string_lossy().into_owned()
    }
}

/// Writes a working project skeleton into `dir` (`sluice init`).
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let file = dir.join(PROJECT_FILE);
    if file.exists() {
        return Err(Error::config(
            &file,
            "a project already exists here; choose an empty folder",
        ));
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(sanitize_name)
        .unwrap_or_else(|| "my_project".to_string());
    let files: Vec<(PathBuf, String)> = vec![
        (file, config::skeleton(&name)),
        (dir.join("catalog/sources.toml"), source::SKELETON.to_string()),
        (
            dir.join("catalog/data/events/2026-01-01.csv"),
            "event_id,user_id,kind,ts\n1,1,signup,2026-01-01T00:00:00Z\n2,1,purchase,2026-01-02T10:30:00Z\n3,2,signup,2026-01-03T08:00:00Z\n"
                .to_string(),
        ),
        (
            dir.join("sql/README.md"),
            "SQL models live in this folder, one `.sql` file per model; the first folder is the schema.\n".to_string(),
        ),
        (
            dir.join("sql/marts/events_by_kind.sql"),
            "-- A model: `sluice run` builds it as the table marts.events_by_kind.\nSELECT kind, count(*) AS events, min(ts) AS first_seen\nFROM raw.events\nGROUP BY kind\n".to_string(),
        ),
        (dir.join(".gitignore"), "/warehouse/\n/target/\n".to_string()),
    ];
    let mut written = Vec::new();
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

fn sanitize_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() {
        "my_project".into()
    } else {
        n
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a message
/// with a suggestion.
pub(crate) fn explain_toml_error(err: &toml::de::Error) -> String {
    let msg = err.message().to_string();
    let mut out = msg.clone();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = did_you_mean(field, known.iter().copied());
            out = format!(
                "unknown key `{field}`{hint}; allowed keys: {}",
                known.join(", ")
            );
        }
    }
    if let Some(span) = err.span() {
        out = format!("{out} (at byte {})", span.start);
    }
    out
}

/// Converts a byte offset into `line N` for error messages.
pub(crate) fn line_of(text: &str, err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", explain_toml_error_no_span(err))
        }
        None => explain_toml_error_no_span(err),
    }
}

fn explain_toml_error_no_span(err: &toml::de::Error) -> String {
    let s = explain_toml_error(err);
    match s.rfind(" (at byte ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_gets_suggestion() {
        let text = "[project]\nname = 'x'\n\n[warehouse]\nurl = 'w'\n";
        let err = ProjectConfig::parse(text, Path::new("sluice.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("unknown key `url`"), "{msg}");
        assert!(msg.contains("did you mean `uri`?"), "{msg}");
    }

    #[test]
    fn init_writes_a_loadable_project() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let p = Project::load(dir.path()).unwrap();
        assert_eq!(p.sources.len(), 1);
        assert!(init(dir.path()).is_err());
    }

    #[test]
    fn unknown_source_lists_known() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let p = Project::load(dir.path()).unwrap();
        let err = p.select_sources(&["event".into()]).unwrap_err().to_string();
        assert!(err.contains("did you mean `events`?"), "{err}");
    }
}
