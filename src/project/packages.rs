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

/// One entry of `packages.yml` (or of `package-lock.yml`) as a spec.
fn spec_of(entry: &serde_yaml::Value) -> Option<PackageSource> {
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
    Some(if let Some(p) = get("local") {
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
    } else {
        PackageSource::Tarball {
            url: get("tarball")?,
        }
    })
}

/// What `dbt deps` recorded in `package-lock.yml`: each package's spec and
/// the name (its dbt_project.yml `name`) it installed it under. Empty when
/// there is no lock file, it cannot be read, or it predates dbt's `name:`
/// entries.
pub fn read_lock(root: &Path) -> Vec<(PackageSource, String)> {
    #[derive(Deserialize)]
    struct LockFile {
        #[serde(default)]
        packages: Vec<serde_yaml::Value>,
    }
    let Ok(text) = std::fs::read_to_string(root.join("package-lock.yml")) else {
        return Vec::new();
    };
    let Ok(lock) = serde_yaml::from_str::<LockFile>(&text) else {
        return Vec::new();
    };
    lock.packages
        .iter()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?.to_string();
            Some((spec_of(e)?, name))
        })
        .collect()
}

impl PackageSource {
    /// Whether a lock entry records this spec: the same path, git URL (and
    /// subdirectory), hub package or tarball URL; the lock pins the version.
    fn same_package(&self, other: &PackageSource) -> bool {
        match (self, other) {
            (PackageSource::Local(a), PackageSource::Local(b)) => a == b,
            (
                PackageSource::Git {
                    url: a,
                    subdirectory: sa,
                    ..
                },
                PackageSource::Git {
                    url: b,
                    subdirectory: sb,
                    ..
                },
            ) => a == b && sa == sb,
            (PackageSource::Hub { package: a, .. }, PackageSource::Hub { package: b, .. }) => {
                a == b
            }
            (PackageSource::Tarball { url: a }, PackageSource::Tarball { url: b }) => a == b,
            _ => false,
        }
    }

    /// The names the package may be installed under, as far as they can be
    /// known without fetching it. A `local:` package: its own name, read from
    /// its dbt_project.yml (`dbt deps` links it into the install folder under
    /// that name, whatever its folder is called). Others: the name
    /// `package-lock.yml` records for the spec, and the guessed name
    /// ([`PackageSource::guessed_name`], also with `-` as `_`).
    pub fn possible_names(&self, root: &Path, lock: &[(PackageSource, String)]) -> Vec<String> {
        if let PackageSource::Local(p) = self {
            let dir = if p.is_absolute() {
                p.clone()
            } else {
                root.join(p)
            };
            let own = std::fs::read_to_string(dir.join(DBT_PROJECT_FILE))
                .ok()
                .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
                .and_then(|v| v.get("name")?.as_str().map(str::to_string));
            if let Some(name) = own {
                return vec![name];
            }
        }
        let mut names: Vec<String> = lock
            .iter()
            .filter(|(spec, _)| spec.same_package(self))
            .map(|(_, name)| name.clone())
            .collect();
        let guessed = self.guessed_name();
        names.push(guessed.replace('-', "_"));
        names.push(guessed);
        names.dedup();
        names
    }
}

/// The specs of `specs` (the project at `root`'s packages.yml) whose package
/// is not among `installed` (the names of the installed packages), by
/// [`PackageSource::possible_names`].
pub fn missing<'a>(
    root: &Path,
    specs: &'a [PackageSource],
    installed: &[&str],
) -> Vec<&'a PackageSource> {
    let lock = read_lock(root);
    specs
        .iter()
        .filter(|s| {
            !s.possible_names(root, &lock)
                .iter()
                .any(|n| installed.contains(&n.as_str()))
        })
        .collect()
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
            let Some(spec) = spec_of(entry) else {
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

/// What happened to one package spec in [`install`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallOutcome {
    /// The spec as written.
    pub spec: String,
    /// The installed package's name (its dbt_project.yml `name`).
    pub name: Option<String>,
    /// Where it was installed.
    pub path: Option<PathBuf>,
    /// Why it was not installed.
    pub error: Option<String>,
}

/// `sluice deps`: installs every package of `packages.yml` into
/// `install_dir`: `local:` packages are copied, `git:` packages cloned with the
/// `git` command (`revision`, `subdirectory`); hub and tarball packages are not
/// fetched (each outcome says what to do instead). A package that cannot be
/// fetched leaves what was installed before in place.
pub fn install(root: &Path, specs: &[PackageSource], install_dir: &Path) -> Vec<InstallOutcome> {
    specs
        .iter()
        .map(|spec| {
            let mut out = InstallOutcome {
                spec: spec.to_string(),
                name: None,
                path: None,
                error: None,
            };
            match install_one(root, spec, install_dir) {
                Ok((name, path)) => {
                    out.name = Some(name);
                    out.path = Some(path);
                }
                Err(e) => out.error = Some(e),
            }
            out
        })
        .collect()
}

fn install_one(
    root: &Path,
    spec: &PackageSource,
    install_dir: &Path,
) -> std::result::Result<(String, PathBuf), String> {
    let staging = Staging::new(install_dir)?;
    let source: PathBuf = match spec {
        PackageSource::Local(p) => {
            let p = if p.is_absolute() { p.clone() } else { root.join(p) };
            if !p.join(DBT_PROJECT_FILE).is_file() {
                return Err(format!(
                    "{} has no {DBT_PROJECT_FILE}; a local package is a folder with its own dbt project",
                    p.display()
                ));
            }
            p
        }
        PackageSource::Git {
            url,
            revision,
            subdirectory,
        } => {
            let dest = staging.path().join("clone");
            let mut cmd = std::process::Command::new("git");
            cmd.args(["clone", "--quiet", "--depth", "1"]);
            if let Some(r) = revision {
                cmd.args(["--branch", r]);
            }
            cmd.arg(url).arg(&dest);
            cmd.env("GIT_TERMINAL_PROMPT", "0");
            let output = cmd
                .output()
                .map_err(|e| format!("cannot run git ({e}); install git, or install the package by hand into {}", install_dir.display()))?;
            if !output.status.success() {
                // A commit hash is not a branch: clone everything, then check it out.
                let is_commit = |r: &String| {
                    (7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
                };
                let retry = revision.as_ref().filter(|r| is_commit(r)).and_then(|r| {
                    let _ = std::fs::remove_dir_all(&dest);
                    let ok = std::process::Command::new("git")
                        .args(["clone", "--quiet"])
                        .arg(url)
                        .arg(&dest)
                        .env("GIT_TERMINAL_PROMPT", "0")
                        .output()
                        .ok()?
                        .status
                        .success()
                        && std::process::Command::new("git")
                            .arg("-C")
                            .arg(&dest)
                            .args(["checkout", "--quiet", r])
                            .output()
                            .ok()?
                            .status
                            .success();
                    ok.then_some(())
                });
                if retry.is_none() {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    return Err(format!(
                        "could not fetch {url}: {}; check the URL and the network, or install the package by hand into {}",
                        stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("git clone failed").trim(),
                        install_dir.display()
                    ));
                }
            }
            match subdirectory {
                Some(s) => dest.join(s),
                None => dest,
            }
        }
        PackageSource::Hub { package, .. } => {
            return Err(format!(
                "dbt hub packages are not fetched by sluice: write it as a git package (`git: https://github.com/<owner>/<repo>.git` with `revision: <tag>`), or install `{package}` into {} with `dbt deps`",
                install_dir.display()
            ))
        }
        PackageSource::Tarball { url } => {
            return Err(format!(
                "tarball packages are not fetched by sluice: unpack {url} into {} by hand",
                install_dir.display()
            ))
        }
    };
    let settings = ModelSettings::from_dbt_package(&source).map_err(|e| e.to_string())?;
    let name = settings.name.clone();
    std::fs::create_dir_all(install_dir)
        .map_err(|e| format!("cannot create {}: {e}", install_dir.display()))?;
    let copy = staging.path().join("copy");
    copy_tree(&source, &copy).map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
    let target = install_dir.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .map_err(|e| format!("cannot replace {}: {e}", target.display()))?;
    }
    std::fs::rename(&copy, &target)
        .map_err(|e| format!("cannot move the package into {}: {e}", target.display()))?;
    Ok((name, target))
}

/// A temporary folder beside the install folder, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new(install_dir: &Path) -> std::result::Result<Staging, String> {
        let parent = install_dir.parent().unwrap_or(install_dir);
        let dir = parent.join(format!(
            ".sluice-deps-{}-{}",
            std::process::id(),
            crate::names::new_id()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create a temporary folder {}: {e}", dir.display()))?;
        Ok(Staging(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a package folder, leaving out version control and build output.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some(".git" | "target" | "dbt_packages" | "logs" | "dbt_modules")
        ) {
            continue;
        }
        let ty = entry.file_type()?;
        let dest = to.join(&name);
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_file() || ty.is_symlink() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
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
    fn install_local_and_report_unfetchable() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkgs/util");
        std::fs::create_dir_all(pkg.join("macros")).unwrap();
        std::fs::create_dir_all(pkg.join(".git")).unwrap();
        std::fs::write(pkg.join(DBT_PROJECT_FILE), "name: util_pkg\n").unwrap();
        std::fs::write(pkg.join("macros/m.sql"), "{% macro m() %}1{% endmacro %}").unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        let specs = vec![
            PackageSource::Local("../pkgs/util".into()),
            PackageSource::Hub {
                package: "dbt-labs/dbt_utils".into(),
                version: "1.3.0".into(),
            },
            PackageSource::Local("../nope".into()),
        ];
        let out = install(&root, &specs, &root.join("dbt_packages"));
        assert_eq!(out[0].name.as_deref(), Some("util_pkg"), "{out:?}");
        assert!(root.join("dbt_packages/util_pkg/macros/m.sql").is_file());
        assert!(!root.join("dbt_packages/util_pkg/.git").exists());
        assert!(
            out[1].error.as_deref().unwrap().contains("git package"),
            "{out:?}"
        );
        assert!(
            out[2].error.as_deref().unwrap().contains("dbt_project.yml"),
            "{out:?}"
        );
        // Installing again replaces the copy.
        let again = install(&root, &specs[..1], &root.join("dbt_packages"));
        assert!(again[0].error.is_none(), "{again:?}");
    }

    #[test]
    fn install_git_with_revision_and_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let pkg = repo.join("packages/dates");
        std::fs::create_dir_all(pkg.join("macros")).unwrap();
        std::fs::write(pkg.join(DBT_PROJECT_FILE), "name: dates\n").unwrap();
        std::fs::write(pkg.join("macros/d.sql"), "{% macro d() %}1{% endmacro %}").unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.email=t@t", "-c", "user.name=t"])
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "v1"]);
        git(&["tag", "v1.0.0"]);
        let root = dir.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        let spec = PackageSource::Git {
            url: format!("file://{}", repo.display()),
            revision: Some("v1.0.0".into()),
            subdirectory: Some("packages/dates".into()),
        };
        let out = install(&root, &[spec], &root.join("dbt_packages"));
        assert!(out[0].error.is_none(), "{out:?}");
        assert!(root.join("dbt_packages/dates/macros/d.sql").is_file());
        let bad = PackageSource::Git {
            url: format!("file://{}", dir.path().join("missing").display()),
            revision: None,
            subdirectory: None,
        };
        let out = install(&root, &[bad], &root.join("dbt_packages"));
        assert!(
            out[0].error.as_deref().unwrap().contains("could not fetch"),
            "{out:?}"
        );
        // No temporary folder is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".sluice-deps"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// Which declared packages are missing: a `local:` package by the name in
    /// its own dbt_project.yml (not its folder's: `dbt deps` links
    /// `../pkgs/util_folder` as `dbt_packages/pkg_util`); a git package by the
    /// name `package-lock.yml` records (the format `dbt deps` of dbt-core
    /// 1.10 writes, copied from a real run), else by the guessed name.
    #[test]
    fn missing_packages_by_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkgs/util_folder");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(
            pkg.join(DBT_PROJECT_FILE),
            "name: 'pkg_util'\nversion: '1.0'\n",
        )
        .unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("packages.yml"),
            "packages:\n  - local: ../pkgs/util_folder\n  - git: \"file:///tmp/gitpkg\"\n    revision: v1\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n  - git: https://github.com/dbt-labs/dbt-audit-helper.git\n    revision: main\n",
        )
        .unwrap();
        let specs = read_specs(&root).unwrap();
        let shown = |m: Vec<&PackageSource>| m.iter().map(|s| s.guessed_name()).collect::<Vec<_>>();
        // Without a lock: the local package is found by its project name; the
        // git one is looked for as `gitpkg`, the hub one as `dbt_utils`.
        assert_eq!(
            shown(missing(
                &root,
                &specs,
                &["pkg_util", "dbt_utils", "pkg_dates"]
            )),
            vec!["gitpkg", "dbt-audit-helper"]
        );
        // The folder's name is not the package's.
        assert_eq!(
            shown(missing(&root, &specs, &["util_folder", "dbt_utils"])),
            vec!["util_folder", "gitpkg", "dbt-audit-helper"]
        );
        std::fs::write(
            root.join("package-lock.yml"),
            "packages:\n  - local: ../pkgs/util_folder\n    name: pkg_util\n  - git: file:///tmp/gitpkg\n    name: pkg_dates\n    revision: 927768dcfe27fce878934ea17a2675b0c36cf788\n  - package: dbt-labs/dbt_utils\n    name: dbt_utils\n    version: 1.3.0\n  - git: https://github.com/dbt-labs/dbt-audit-helper.git\n    name: audit_helper\n    revision: b8f3a3348ce0ff8afc3aa4b9ade2123b00772473\nsha1_hash: df582ce29f5614b5c6f94c7df4e61ce98e40f407\n",
        )
        .unwrap();
        assert_eq!(read_lock(&root).len(), 4);
        assert!(missing(
            &root,
            &specs,
            &["pkg_util", "dbt_utils", "pkg_dates", "audit_helper"]
        )
        .is_empty());
        assert_eq!(
            shown(missing(
                &root,
                &specs,
                &["pkg_util", "dbt_utils", "audit_helper"]
            )),
            vec!["gitpkg"]
        );
        // A lock without names (as the one jaffle-shop commits) changes nothing.
        std::fs::write(
            root.join("package-lock.yml"),
            "packages:\n  - git: file:///tmp/gitpkg\n    revision: 927768d\n",
        )
        .unwrap();
        assert!(read_lock(&root).is_empty());
        assert_eq!(
            shown(missing(
                &root,
                &specs,
                &["pkg_util", "dbt_utils", "pkg_dates", "audit_helper"]
            )),
            vec!["gitpkg", "dbt-audit-helper"]
        );
    }

    #[test]
    fn bad_entry_names_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("packages.yml"), "packages:\n  - nope: 1\n").unwrap();
        let e = read_specs(dir.path()).unwrap_err().to_string();
        assert!(e.contains("packages.yml") && e.contains("#1"), "{e}");
    }
}
