//! dbt packages: what `packages.yml` / `dependencies.yml` asks for, and the
//! packages installed in `dbt_packages/` (or `packages-install-path`).
//!
//! An installed package is a folder with its own `dbt_project.yml`; its macros
//! become a namespace named after the package, and its vars, models and seeds
//! are read like the root project's.

use super::dbt::{ModelSettings, DBT_PROJECT_FILE};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where a package comes from (one entry of `packages.yml`).
#[derive(Debug, Clone, PartialEq)]
pub enum PackageSource {
    /// `local: path` (relative to the project root).
    Local(PathBuf),
    /// `git: url` with an optional `revision` and `subdirectory`.
    Git {
        url: String,
        revision: Option<String>,
        subdirectory: Option<String>,
    },
    /// `package: owner/name` from dbt hub, with a version range.
    Hub { package: String, version: String },
    /// `tarball: url`.
    Tarball { url: String },
}

impl PackageSource {
    /// The folder name dbt installs it under, when it can be known without
    /// fetching (hub packages: the part after `/`; git: the repository name).
    pub fn guessed_name(&self) -> String {
        let last = |s: &str| {
            s.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(s)
                .trim_end_matches(".git")
                .to_string()
        };
        match self {
            PackageSource::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            PackageSource::Git {
                url, subdirectory, ..
            } => match subdirectory {
                Some(s) => last(s),
                None => last(url),
            },
            PackageSource::Hub { package, .. } => last(package),
            PackageSource::Tarball { url } => last(url),
        }
    }
}

impl std::fmt::Display for PackageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageSource::Local(p) => write!(f, "local: {}", p.display()),
            PackageSource::Git {
                url,
                revision,
                subdirectory,
            } => {
                write!(f, "git: {url}")?;
                if let Some(r) = revision {
                    write!(f, " (revision {r})")?;
                }
                if let Some(s) = subdirectory {
                    write!(f, " (subdirectory {s})")?;
                }
                Ok(())
            }
            PackageSource::Hub { package, version } => {
                write!(f, "package: {package} (version {version})")
            }
            PackageSource::Tarball { url } => write!(f, "tarball: {url}"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PackagesFile {
    #[serde(default)]
    packages: Vec<serde_yaml::Value>,
}

/// The package specs of the project at `root` (`packages.yml`, else
/// `dependencies.yml`); empty when it has neither.
pub fn read_specs(root: &Path) -> Result<Vec<PackageSource>> {
    for name in ["packages.yml", "dependencies.yml"] {
        let file = root.join(name);
        if !file.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: PackagesFile = serde_yaml::from_str(&text).map_err(|e| {
            Error::config(
                &file,
                match e.location() {
                    Some(l) => format!("line {}: {e}", l.line()),
                    None => e.to_string(),
                },
            )
        })?;
        let mut out = Vec::new();
        for (i, entry) in parsed.packages.iter().enumerate() {
            let get = |k: &str| -> Option<String> {
                entry.get(k).and_then(|v| match v {
                    serde_yaml::Value::String(s) => Some(s.clone()),
                    serde_yaml::Value::Number(n) => Some(n.to_string()),
                    serde_yaml::Value::Sequence(s) => Some(
                        s.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    _ => None,
                })
            };
            let spec = if let Some(p) = get("local") {
                PackageSource::Local(PathBuf::from(p))
            } else if let Some(url) = get("git") {
                PackageSource::Git {
                    url,
                    revision: get("revision"),
                    subdirectory: get("subdirectory"),
                }
            } else if let Some(package) = get("package") {
                PackageSource::Hub {
                    package,
                    version: get("version").unwrap_or_default(),
                }
            } else if let Some(url) = get("tarball") {
                PackageSource::Tarball { url }
            } else {
                return Err(Error::config(
                    &file,
                    format!(
                        "package #{} has none of `local`, `git`, `package` or `tarball`",
                        i + 1
                    ),
                ));
            };
            out.push(spec);
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// Every package installed under `install_dir` (folders with a
/// `dbt_project.yml`), sorted by folder name. Packages a package installs
/// itself are not nested: dbt installs all of them side by side.
pub fn installed(install_dir: &Path) -> Result<Vec<ModelSettings>> {
    let Ok(entries) = std::fs::read_dir(install_dir) else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(DBT_PROJECT_FILE).is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| ModelSettings::from_dbt_package(&d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("packages.yml"),
            "packages:\n  - package: dbt-labs/dbt_utils\n    version: [\">=1.0.0\", \"<2.0.0\"]\n  - local: ../pkg_a\n  - git: https://github.com/x/dbt-date.git\n    revision: 0.10.1\n  - git: https://github.com/x/mono.git\n    subdirectory: pkgs/inner\n",
        )
        .unwrap();
        let specs = read_specs(dir.path()).unwrap();
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[0].guessed_name(), "dbt_utils");
        assert_eq!(specs[1], PackageSource::Local("../pkg_a".into()));
        assert_eq!(specs[2].guessed_name(), "dbt-date");
        assert_eq!(specs[3].guessed_name(), "inner");
        assert!(specs[0].to_string().contains(">=1.0.0, <2.0.0"));
    }

    #[test]
    fn bad_entry_names_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("packages.yml"), "packages:\n  - nope: 1\n").unwrap();
        let e = read_specs(dir.path()).unwrap_err().to_string();
        assert!(e.contains("packages.yml") && e.contains("#1"), "{e}");
    }
}
