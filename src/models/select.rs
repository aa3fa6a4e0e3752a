//! dbt-style node selection: `--select` / `--exclude`.
//!
//! Each CLI value holds one or more space-separated specs, and a node is
//! selected when any spec matches it (union). A spec with commas is the
//! intersection of its comma-separated atoms. An atom is
//!
//! ```text
//! [@ | N+ | +] method [+ | +N]
//! ```
//!
//! * `@x`: `x`, all its descendants, and all ancestors of those;
//! * `+x` / `N+x`: `x` and all its ancestors / those at most `N` edges up;
//! * `x+` / `x+N`: `x` and all its descendants / those at most `N` edges down.
//!
//! Methods: `tag:x` (models tagged `x`), `path:dir` (models whose path,
//! relative to the models folder, is that file or lies under that folder),
//! or a plain name matching a node's id (`schema.name`) or its bare name,
//! with `*` and `?` wildcards. An atom that matches nothing is an error (a
//! typo in `--exclude` would otherwise silently run what it meant to skip).

use std::collections::BTreeSet;
use std::fmt;

use super::dag::Dag;

/// Why a selection could not be parsed or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// A CLI value is empty or only whitespace.
    Empty,
    /// A spec has an empty comma-separated part (`a,`, `,a`, `a,,b`).
    StrayComma { spec: String },
    /// An atom is malformed (no value, `@` with `+`, bad depth).
    Invalid { atom: String, reason: String },
    /// `method:value` with a method other than `tag` or `path`.
    UnknownMethod { atom: String, method: String },
    /// A name (or glob) that matches no model.
    NoModel {
        name: String,
        suggestion: Option<String>,
    },
    /// `tag:x` where no model has tag `x`.
    NoTag {
        tag: String,
        suggestion: Option<String>,
    },
    /// `path:x` where no model lies at or under `x`.
    NoPath { path: String },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn did_you_mean(f: &mut fmt::Formatter<'_>, s: &Option<String>) -> fmt::Result {
            match s {
                Some(s) => write!(f, " — did you mean `{s}`?"),
                None => Ok(()),
            }
        }
        match self {
            SelectError::Empty => write!(
                f,
                "empty selector: expected a model name, `tag:NAME` or `path:DIR`"
            ),
            SelectError::StrayComma { spec } => write!(
                f,
                "stray comma in selector `{spec}`: commas join selectors that must all match \
                 (`tag:daily,stg_*`) and cannot be empty"
            ),
            SelectError::Invalid { atom, reason } => {
                write!(f, "invalid selector `{atom}`: {reason}")
            }
            SelectError::UnknownMethod { atom, method } => write!(
                f,
                "unknown selector method `{method}:` in `{atom}` (supported: `tag:`, `path:`, \
                 or a plain model name)"
            ),
            SelectError::NoModel { name, suggestion } => {
                write!(f, "no model matches `{name}`")?;
                did_you_mean(f, suggestion)
            }
            SelectError::NoTag { tag, suggestion } => {
                write!(f, "no model has tag `{tag}`")?;
                did_you_mean(f, suggestion)
            }
            SelectError::NoPath { path } => write!(f, "no model under path `{path}`"),
        }
    }
}

impl std::error::Error for SelectError {}

/// What an atom matches before the graph operators apply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    /// Exact id or bare name, possibly with `*`/`?` wildcards.
    Name(String),
    Tag(String),
    /// Normalised: no leading `./`, no trailing `/`; `.` for everything.
    Path(String),
}

/// How far a `+` operator reaches: `None` = all the way.
type Depth = Option<usize>;

/// One selector atom.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    /// As written, for messages.
    raw: String,
    /// `@` prefix.
    at: bool,
    /// `+` / `N+` prefix.
    parents: Option<Depth>,
    /// `+` / `+N` suffix.
    children: Option<Depth>,
    method: Method,
}

/// Parsed `--select`/`--exclude` arguments. Each CLI value is one or more
/// space-separated specs (union); a spec with commas is an intersection of
/// its comma-separated atoms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Union of intersections.
    specs: Vec<Vec<Atom>>,
}

impl Selector {
    /// Parses the values of a repeated `--select`/`--exclude` option. No
    /// values gives an empty selector.
    pub fn parse(args: &[String]) -> Result<Selector, SelectError> {
        let mut specs = Vec::new();
        for arg in args {
            if arg.trim().is_empty() {
                return Err(SelectError::Empty);
            }
            for spec in arg.split_whitespace() {
                let mut atoms = Vec::new();
                for part in spec.split(',') {
                    if part.is_empty() {
                        return Err(SelectError::StrayComma {
                            spec: spec.to_string(),
                        });
                    }
                    atoms.push(parse_atom(part)?);
                }
                specs.push(atoms);
            }
        }
        Ok(Selector { specs })
    }

    /// Whether no spec was given.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The nodes matched (union of specs), or `None` when empty.
    fn resolve(&self, dag: &Dag) -> Result<Option<BTreeSet<usize>>, SelectError> {
        if self.specs.is_empty() {
            return Ok(None);
        }
        let mut union = BTreeSet::new();
        for spec in &self.specs {
            let mut acc: Option<BTreeSet<usize>> = None;
            // Resolve every atom, even once the intersection is empty, so
            // typos are always reported.
            for atom in spec {
                let set = resolve_atom(dag, atom)?;
                acc = Some(match acc {
                    None => set,
                    Some(prev) => prev.intersection(&set).copied().collect(),
                });
            }
            union.extend(acc.unwrap_or_default());
        }
        Ok(Some(union))
    }
}

/// Nodes selected by `select` (all nodes when empty) minus those matched by
/// `exclude`, in topological order.
pub fn select(dag: &Dag, select: &Selector, exclude: &Selector) -> Result<Vec<usize>, SelectError> {
    let chosen = select.resolve(dag)?;
    let excluded = exclude.resolve(dag)?.unwrap_or_default();
    Ok(dag
        .topo_order()
        .into_iter()
        .filter(|i| chosen.as_ref().is_none_or(|c| c.contains(i)) && !excluded.contains(i))
        .collect())
}

fn invalid(atom: &str, reason: &str) -> SelectError {
    SelectError::Invalid {
        atom: atom.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_depth(atom: &str, digits: &str) -> Result<Depth, SelectError> {
    if digits.is_empty() {
        return Ok(None);
    }
    digits
        .parse::<usize>()
        .map(Some)
        .map_err(|_| invalid(atom, "the depth next to `+` is too large"))
}

fn parse_atom(raw: &str) -> Result<Atom, SelectError> {
    let mut rest = raw;
    let mut at = false;
    let mut parents = None;

    if let Some(r) = rest.strip_prefix('@') {
        at = true;
        rest = r;
    } else {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if rest[digits..].starts_with('+') {
            parents = Some(parse_depth(raw, &rest[..digits])?);
            rest = &rest[digits + 1..];
        }
    }

    let mut children = None;
    if let Some(plus) = rest.rfind('+') {
        let digits = &rest[plus + 1..];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            children = Some(parse_depth(raw, digits)?);
            rest = &rest[..plus];
        }
    }

    if at && (rest.contains('+') || children.is_some()) {
        return Err(invalid(
            raw,
            "`@` already includes all descendants and their ancestors; it cannot be combined \
             with `+`",
        ));
    }
    if rest.is_empty() {
        return Err(invalid(
            raw,
            "expected a model name, `tag:NAME` or `path:DIR`",
        ));
    }
    if rest.contains('+') || rest.contains('@') {
        return Err(invalid(
            raw,
            "`+` goes only before or after the name (`+name`, `2+name`, `name+`, `name+1`) and \
             `@` only before it",
        ));
    }

    let method = match rest.split_once(':') {
        None => Method::Name(rest.to_string()),
        Some((method, value)) => {
            if value.is_empty() {
                return Err(invalid(raw, &format!("`{method}:` needs a value")));
            }
            match method {
                "tag" => Method::Tag(value.to_string()),
                "path" => {
                    let path = normalise_path(value);
                    if path.is_empty() {
                        return Err(invalid(
                            raw,
                            "`path:` takes a folder or file relative to the models folder \
                             (`path:.` for all)",
                        ));
                    }
                    Method::Path(path)
                }
                _ => {
                    return Err(SelectError::UnknownMethod {
                        atom: raw.to_string(),
                        method: method.to_string(),
                    })
                }
            }
        }
    };

    Ok(Atom {
        raw: raw.to_string(),
        at,
        parents,
        children,
        method,
    })
}

/// `./a/b/` → `a/b`; backslashes become slashes; `.` and `./` become `.`;
/// only slashes become empty (rejected by the caller).
fn normalise_path(value: &str) -> String {
    let p = value.replace('\\', "/");
    let mut s = p.as_str();
    while let Some(r) = s.strip_prefix("./") {
        s = r;
    }
    let s = s.trim_end_matches('/');
    if s.is_empty() || s == "." {
        return if value.starts_with('.') {
            ".".to_string()
        } else {
            String::new()
        };
    }
    s.to_string()
}

/// Nodes an atom selects, operators applied.
fn resolve_atom(dag: &Dag, atom: &Atom) -> Result<BTreeSet<usize>, SelectError> {
    let base = match_method(dag, &atom.method)?;
    let starts: Vec<usize> = base.iter().copied().collect();
    let mut out = base;
    if atom.at {
        out.extend(dag.descendants_of_all(&starts, None));
        let all: Vec<usize> = out.iter().copied().collect();
        out.extend(dag.ancestors_of_all(&all, None));
        return Ok(out);
    }
    if let Some(depth) = atom.parents {
        out.extend(dag.ancestors_of_all(&starts, depth));
    }
    if let Some(depth) = atom.children {
        out.extend(dag.descendants_of_all(&starts, depth));
    }
    Ok(out)
}

/// Nodes matched by the method alone; an error when none.
fn match_method(dag: &Dag, method: &Method) -> Result<BTreeSet<usize>, SelectError> {
    let nodes = dag.nodes();
    let found: BTreeSet<usize> = match method {
        Method::Name(name) => {
            let glob = name.contains(['*', '?']);
            nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    if glob {
                        glob_match(name, &n.id) || glob_match(name, &n.name)
                    } else {
                        n.id == *name || n.name == *name
                    }
                })
                .map(|(i, _)| i)
                .collect()
        }
        Method::Tag(tag) => nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.tags.iter().any(|t| t == tag))
            .map(|(i, _)| i)
            .collect(),
        Method::Path(path) => nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| path_matches(path, &n.path))
            .map(|(i, _)| i)
            .collect(),
    };
    if !found.is_empty() {
        return Ok(found);
    }
    Err(match method {
        Method::Name(name) => {
            let folder = normalise_path(name);
            let suggestion = if name.contains(['*', '?']) {
                None
            } else if !folder.is_empty()
                && folder != "."
                && nodes.iter().any(|n| path_matches(&folder, &n.path))
            {
                // dbt users write `--select staging` for a folder.
                Some(format!("path:{folder}"))
            } else {
                closest(
                    name,
                    nodes.iter().flat_map(|n| [n.id.as_str(), n.name.as_str()]),
                )
            };
            SelectError::NoModel {
                name: name.clone(),
                suggestion,
            }
        }
        Method::Tag(tag) => SelectError::NoTag {
            tag: tag.clone(),
            suggestion: closest(
                tag,
                nodes.iter().flat_map(|n| n.tags.iter().map(String::as_str)),
            ),
        },
        Method::Path(path) => SelectError::NoPath { path: path.clone() },
    })
}

/// `path` (normalised) matches a model at `model_path` when it is that file
/// (with or without `.sql`) or a folder above it; `.` matches everything.
fn path_matches(path: &str, model_path: &str) -> bool {
    if path == "." {
        return true;
    }
    let model_path = model_path.trim_start_matches("./");
    model_path == path
        || model_path.strip_suffix(".sql") == Some(path)
        || model_path
            .strip_prefix(path)
            .is_some_and(|r| r.starts_with('/'))
}

/// Shell-style glob on whole strings: `*` any run, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Levenshtein distance over characters, two rows.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `wanted`, if within max(2, len/3) edits; ties
/// go to the alphabetically first.
fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (wanted.chars().count() / 3).max(2);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(wanted, c);
        if d > limit {
            continue;
        }
        if best.is_none_or(|(bd, bc)| (d, c) < (bd, bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::dag::NodeInfo;
    use super::*;

    fn n(id: &str, path: &str, tags: &[&str], deps: &[&str]) -> NodeInfo {
        let name = crate::names::split_table(id)
            .map_or(id, |(_, t)| t)
            .to_string();
        NodeInfo {
            id: id.to_string(),
            name,
            path: path.to_string(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// ```text
    /// raw.users ─▶ staging.stg_users ─┬─▶ features.user_features ─▶ marts.dashboard
    /// raw.orders ─▶ staging.stg_orders ┘            ▲
    ///                staging.stg_orders ─▶ features.order_stats ─┘ (user_features reads it)
    /// raw.events ─▶ staging.stg_events   (separate)
    /// ```
    fn project() -> Dag {
        Dag::new(vec![
            n("raw.users", "raw/users.sql", &["raw"], &[]),
            n("raw.orders", "raw/orders.sql", &["raw"], &[]),
            n("raw.events", "raw/events.sql", &["raw"], &[]),
            n(
                "staging.stg_users",
                "staging/stg_users.sql",
                &["daily"],
                &["raw.users"],
            ),
            n(
                "staging.stg_orders",
                "staging/stg_orders.sql",
                &["daily", "pii"],
                &["raw.orders"],
            ),
            n(
                "staging.stg_events",
                "staging/events/stg_events.sql",
                &["hourly"],
                &["raw.events"],
            ),
            n(
                "features.order_stats",
                "features/order_stats.sql",
                &["daily"],
                &["staging.stg_orders"],
            ),
            n(
                "features.user_features",
                "features/user_features.sql",
                &["daily", "ml"],
                &[
                    "staging.stg_users",
                    "staging.stg_orders",
                    "features.order_stats",
                ],
            ),
            n(
                "marts.dashboard",
                "marts/dashboard.sql",
                &[],
                &["features.user_features"],
            ),
        ])
        .expect("acyclic")
    }

    fn sel(args: &[&str]) -> Selector {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Selector::parse(&args).expect("parses")
    }

    fn run(dag: &Dag, select_args: &[&str], exclude_args: &[&str]) -> Vec<String> {
        select(dag, &sel(select_args), &sel(exclude_args))
            .expect("selects")
            .into_iter()
            .map(|i| dag.node(i).id.clone())
            .collect()
    }

    fn err(dag: &Dag, select_args: &[&str]) -> String {
        let args: Vec<String> = select_args.iter().map(|s| s.to_string()).collect();
        match Selector::parse(&args) {
            Err(e) => e.to_string(),
            Ok(s) => match select(dag, &s, &Selector::default()) {
                Err(e) => e.to_string(),
                Ok(v) => panic!("expected an error for {select_args:?}, got {v:?}"),
            },
        }
    }

    #[test]
    fn empty_select_means_everything_in_topo_order() {
        let dag = project();
        let all = run(&dag, &[], &[]);
        assert_eq!(all.len(), dag.len());
        assert_eq!(
            all,
            dag.topo_order()
                .into_iter()
                .map(|i| dag.node(i).id.clone())
                .collect::<Vec<_>>()
        );
        assert!(Selector::parse(&[]).expect("ok").is_empty());
        assert!(!sel(&["a"]).is_empty());
    }

    #[test]
    fn plain_names_by_id_and_bare_name() {
        let dag = project();
        assert_eq!(run(&dag, &["stg_users"], &[]), ["staging.stg_users"]);
        assert_eq!(
            run(&dag, &["staging.stg_users"], &[]),
            ["staging.stg_users"]
        );
    }

    #[test]
    fn ancestors_and_descendants_operators() {
        let dag = project();
        assert_eq!(
            run(&dag, &["+order_stats"], &[]),
            ["raw.orders", "staging.stg_orders", "features.order_stats"]
        );
        assert_eq!(
            run(&dag, &["stg_orders+"], &[]),
            [
                "staging.stg_orders",
                "features.order_stats",
                "features.user_features",
                "marts.dashboard"
            ]
        );
        assert_eq!(
            run(&dag, &["stg_orders+1"], &[]),
            [
                "staging.stg_orders",
                "features.order_stats",
                "features.user_features"
            ]
        );
        assert_eq!(
            run(&dag, &["+stg_orders+"], &[]),
            [
                "raw.orders",
                "staging.stg_orders",
                "features.order_stats",
                "features.user_features",
                "marts.dashboard"
            ]
        );
    }

    #[test]
    fn depth_limited_parents() {
        let dag = project();
        let mut got = run(&dag, &["1+user_features"], &[]);
        got.sort();
        assert_eq!(
            got,
            [
                "features.order_stats",
                "features.user_features",
                "staging.stg_orders",
                "staging.stg_users"
            ]
        );
        let mut got = run(&dag, &["2+user_features"], &[]);
        got.sort();
        assert_eq!(
            got,
            [
                "features.order_stats",
                "features.user_features",
                "raw.orders",
                "raw.users",
                "staging.stg_orders",
                "staging.stg_users"
            ]
        );
        assert_eq!(
            run(&dag, &["0+user_features"], &[]),
            ["features.user_features"]
        );
        assert_eq!(run(&dag, &["2+dashboard+"], &[]).len(), 5);
    }

    #[test]
    fn at_operator() {
        let dag = project();
        // stg_users, its descendants (user_features, dashboard) and all their
        // ancestors (incl. the orders branch).
        let mut got = run(&dag, &["@stg_users"], &[]);
        got.sort();
        assert_eq!(
            got,
            [
                "features.order_stats",
                "features.user_features",
                "marts.dashboard",
                "raw.orders",
                "raw.users",
                "staging.stg_orders",
                "staging.stg_users"
            ]
        );
        // For a leaf, @ is the same as +x.
        assert_eq!(
            run(&dag, &["@dashboard"], &[]),
            run(&dag, &["+dashboard"], &[])
        );
    }

    #[test]
    fn tags() {
        let dag = project();
        assert_eq!(run(&dag, &["tag:pii"], &[]), ["staging.stg_orders"]);
        assert_eq!(
            run(&dag, &["tag:daily"], &[]),
            [
                "staging.stg_orders",
                "features.order_stats",
                "staging.stg_users",
                "features.user_features"
            ]
        );
        assert_eq!(
            run(&dag, &["tag:ml+"], &[]),
            ["features.user_features", "marts.dashboard"]
        );
    }

    #[test]
    fn paths_with_and_without_trailing_slash() {
        let dag = project();
        let want = ["staging.stg_events"];
        assert_eq!(run(&dag, &["path:staging/events"], &[]), want);
        assert_eq!(run(&dag, &["path:staging/events/"], &[]), want);
        assert_eq!(run(&dag, &["path:./staging/events/"], &[]), want);
        assert_eq!(
            run(&dag, &["path:staging/events/stg_events.sql"], &[]),
            want
        );
        assert_eq!(run(&dag, &["path:staging/events/stg_events"], &[]), want);
        assert_eq!(run(&dag, &["path:staging"], &[]).len(), 3);
        assert_eq!(run(&dag, &["path:."], &[]).len(), dag.len());
        // A folder matches whole path segments only: `staging/event` is not `staging/events/`.
        assert_eq!(
            err(&dag, &["path:staging/event"]),
            "no model under path `staging/event`"
        );
    }

    #[test]
    fn globs() {
        let dag = project();
        assert_eq!(
            run(&dag, &["stg_*"], &[]),
            [
                "staging.stg_events",
                "staging.stg_orders",
                "staging.stg_users"
            ]
        );
        assert_eq!(run(&dag, &["raw.*"], &[]).len(), 3);
        assert_eq!(run(&dag, &["stg_?sers"], &[]), ["staging.stg_users"]);
        assert_eq!(run(&dag, &["*"], &[]).len(), dag.len());
        assert_eq!(err(&dag, &["zzz*"]), "no model matches `zzz*`");
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("*_features", "user_features"));
        assert!(!glob_match("a*b", "aXXc"));
        assert!(glob_match("a**", "a"));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn union_vs_intersection() {
        let dag = project();
        // Space: union (in one value or across values).
        let union = run(&dag, &["tag:pii tag:ml"], &[]);
        assert_eq!(union, ["staging.stg_orders", "features.user_features"]);
        assert_eq!(run(&dag, &["tag:pii", "tag:ml"], &[]), union);
        // Comma: intersection.
        assert_eq!(
            run(&dag, &["tag:daily,path:features"], &[]),
            ["features.order_stats", "features.user_features"]
        );
        assert_eq!(
            run(&dag, &["tag:daily,stg_*,+user_features"], &[]),
            ["staging.stg_orders", "staging.stg_users"]
        );
        // An empty intersection is fine (not an error), as long as every
        // atom matches something by itself.
        assert!(run(&dag, &["tag:pii,tag:ml"], &[]).is_empty());
    }

    #[test]
    fn exclude() {
        let dag = project();
        assert_eq!(
            run(&dag, &["+dashboard"], &["tag:raw"]),
            [
                "staging.stg_orders",
                "features.order_stats",
                "staging.stg_users",
                "features.user_features",
                "marts.dashboard"
            ]
        );
        // Exclude with an empty select subtracts from everything.
        assert_eq!(
            run(&dag, &[], &["path:raw path:staging", "path:features"]),
            ["marts.dashboard"]
        );
        assert_eq!(run(&dag, &[], &["stg_orders+"]).len(), dag.len() - 4);
        // Typos in --exclude are errors too.
        let e = select(&dag, &Selector::default(), &sel(&["stg_user"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no model matches `stg_user` — did you mean `stg_users`?"
        );
    }

    #[test]
    fn unknown_names_suggest_closest() {
        let dag = project();
        assert_eq!(
            err(&dag, &["stg_user"]),
            "no model matches `stg_user` — did you mean `stg_users`?"
        );
        assert_eq!(
            err(&dag, &["+staging.stg_userz+"]),
            "no model matches `staging.stg_userz` — did you mean `staging.stg_users`?"
        );
        assert_eq!(
            err(&dag, &["completely_else"]),
            "no model matches `completely_else`"
        );
        assert_eq!(
            err(&dag, &["tag:dialy"]),
            "no model has tag `dialy` — did you mean `daily`?"
        );
        assert_eq!(
            err(&dag, &["tag:nothing_like_it"]),
            "no model has tag `nothing_like_it`"
        );
        assert_eq!(
            err(&dag, &["path:nowhere/"]),
            "no model under path `nowhere`"
        );
        // Every atom of an intersection is checked.
        assert_eq!(
            err(&dag, &["tag:pii,stg_ordres"]),
            "no model matches `stg_ordres` — did you mean `stg_orders`?"
        );
    }

    #[test]
    fn malformed_selectors() {
        let dag = project();
        assert!(err(&dag, &[""]).starts_with("empty selector"));
        assert!(err(&dag, &["   "]).starts_with("empty selector"));
        assert!(err(&dag, &["a,"]).starts_with("stray comma in selector `a,`"));
        assert!(err(&dag, &[",a"]).starts_with("stray comma in selector `,a`"));
        assert!(err(&dag, &["a,,b"]).starts_with("stray comma"));
        assert!(err(&dag, &["+"]).starts_with("invalid selector `+`"));
        assert!(err(&dag, &["2+"]).starts_with("invalid selector `2+`"));
        assert!(err(&dag, &["@"]).starts_with("invalid selector `@`"));
        assert!(err(&dag, &["@+a"]).contains("cannot be combined"));
        assert!(err(&dag, &["@a+"]).contains("cannot be combined"));
        assert!(err(&dag, &["@2+a"]).contains("cannot be combined"));
        assert!(err(&dag, &["a+b"]).starts_with("invalid selector `a+b`"));
        assert!(err(&dag, &["tag:"]).contains("`tag:` needs a value"));
        assert!(err(&dag, &["path:"]).contains("`path:` needs a value"));
        assert_eq!(
            err(&dag, &["config.materialized:view"]),
            "unknown selector method `config.materialized:` in `config.materialized:view` \
             (supported: `tag:`, `path:`, or a plain model name)"
        );
        assert!(err(&dag, &["99999999999999999999999+a"]).contains("too large"));
    }

    #[test]
    fn atom_parsing() {
        let a = parse_atom("3+tag:x+2").expect("parses");
        assert_eq!(a.parents, Some(Some(3)));
        assert_eq!(a.children, Some(Some(2)));
        assert_eq!(a.method, Method::Tag("x".into()));
        assert!(!a.at);
        let a = parse_atom("+m+").expect("parses");
        assert_eq!((a.parents, a.children), (Some(None), Some(None)));
        let a = parse_atom("@path:x/").expect("parses");
        assert!(a.at);
        assert_eq!(a.method, Method::Path("x".into()));
        // Digits not followed by `+` are part of the name.
        let a = parse_atom("2023_orders").expect("parses");
        assert_eq!(a.parents, None);
        assert_eq!(a.method, Method::Name("2023_orders".into()));
    }

    #[test]
    fn levenshtein_and_closest() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("é", "e"), 1);
        // len 9 → limit 3.
        assert_eq!(
            closest("user_feat", ["user_features", "x"].into_iter()),
            None
        );
        assert_eq!(
            closest("usr_features", ["user_features", "x"].into_iter()),
            Some("user_features".into())
        );
        // Ties go to the alphabetically first.
        assert_eq!(closest("ab", ["ac", "aa"].into_iter()), Some("aa".into()));
    }

    #[test]
    fn large_chain_selection() {
        let count = 20_000;
        let nodes: Vec<NodeInfo> = (0..count)
            .map(|i| {
                let deps: Vec<String> = if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("s.n{:05}", i - 1)]
                };
                NodeInfo {
                    id: format!("s.n{i:05}"),
                    name: format!("n{i:05}"),
                    path: format!("chain/n{i:05}.sql"),
                    tags: vec!["chain".into()],
                    deps,
                }
            })
            .collect();
        let dag = Dag::new(nodes).expect("acyclic");
        // `tag:chain+` starts from every node at once: one pass, not n.
        assert_eq!(run(&dag, &["tag:chain+"], &[]).len(), count);
        assert_eq!(run(&dag, &["@n10000"], &[]).len(), count);
        assert_eq!(run(&dag, &["3+n10000"], &[]).len(), 4);
    }
}
