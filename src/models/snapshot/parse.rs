//! Reading snapshot definitions from files: `{% snapshot name %} ... {%
//! endsnapshot %}` blocks in `.sql` files, and `snapshots:` entries of `.yml`
//! files (dbt 1.9+), which either define a snapshot (with `relation`) or give
//! properties to a block snapshot (without it).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// One `{% snapshot %}` block of a `.sql` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    /// 1-based line of the opening tag.
    pub line: usize,
    /// The block's body, preceded by as many newlines as come before it in
    /// the file, so template errors name the file's own lines.
    pub body: String,
}

/// The `{% ... %}` tag starting at byte `at` of `text`: its words and the byte
/// after its end.
fn tag_at(text: &str, at: usize) -> Option<(Vec<&str>, usize)> {
    let rest = text.get(at..)?;
    let inner_start = at + 2;
    let close = rest.find("%}")?;
    let inner = text.get(inner_start..at + close)?;
    let inner = inner.trim_start_matches('-').trim_end_matches('-');
    Some((inner.split_whitespace().collect(), at + close + 2))
}

/// Every snapshot block of `text` (the `.sql` file `display`). Text outside
/// blocks is ignored, as dbt does; a file with `{% snapshot %}` but no
/// `{% endsnapshot %}`, or a block without a name, is an error naming the line.
pub fn blocks(display: &str, text: &str) -> Result<Vec<Block>> {
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let err = |at: usize, message: String| Error::Config {
        file: format!("{display}:{}", line_of(at)).into(),
        message,
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("{%") {
        let at = from + pos;
        let Some((words, end)) = tag_at(text, at) else {
            break;
        };
        from = end;
        match words.as_slice() {
            ["snapshot", name] => {
                if !crate::warehouse::is_identifier(name) {
                    return Err(err(
                        at,
                        format!("snapshot name `{name}` is not a valid name (lowercase letters, digits and _)"),
                    ));
                }
                let mut search = end;
                let close = loop {
                    let Some(p) = text[search..].find("{%") else {
                        break None;
                    };
                    let c = search + p;
                    match tag_at(text, c) {
                        Some((w, e)) if w.first() == Some(&"endsnapshot") => break Some((c, e)),
                        Some((w, _)) if w.first() == Some(&"snapshot") => {
                            return Err(err(
                                c,
                                format!("a snapshot block starts inside snapshot `{name}` (line {}); close it with {{% endsnapshot %}} first", line_of(at)),
                            ));
                        }
                        Some((_, e)) => search = e,
                        None => break None,
                    }
                };
                let Some((body_end, after)) = close else {
                    return Err(err(
                        at,
                        format!(
                            "snapshot `{name}` has no {{% endsnapshot %}}: end the block with it"
                        ),
                    ));
                };
                let body = format!("{}{}", "\n".repeat(line_of(end) - 1), &text[end..body_end]);
                out.push(Block {
                    name: name.to_string(),
                    line: line_of(at),
                    body,
                });
                from = after;
            }
            ["snapshot"] => {
                return Err(err(
                    at,
                    "a snapshot block needs a name: {% snapshot my_snapshot %}".into(),
                ))
            }
            ["endsnapshot", ..] => {
                return Err(err(
                    at,
                    "{% endsnapshot %} without a {% snapshot name %} before it".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// One `snapshots:` entry of a `.yml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YmlSnapshot {
    pub name: String,
    /// `ref('x')` or `source('s', 't')`: what to snapshot (dbt 1.9+).
    #[serde(default)]
    pub relation: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub columns: Vec<serde_json::Value>,
    #[serde(default)]
    pub meta: Option<serde_json::Value>,
    #[serde(default)]
    pub docs: Option<serde_json::Value>,
    #[serde(default)]
    pub tests: Vec<serde_json::Value>,
    #[serde(default)]
    pub data_tests: Vec<serde_json::Value>,
    #[serde(default)]
    pub group: Option<String>,
    /// Line of the entry's `name:` in the file (found after parsing).
    #[serde(skip)]
    pub line: usize,
}

#[derive(Deserialize)]
struct SnapshotsOnly {
    #[serde(default)]
    snapshots: Vec<YmlSnapshot>,
}

/// The `snapshots:` entries of one `.yml` file (`display` names it in errors).
pub fn yml_entries(display: &str, text: &str) -> Result<Vec<YmlSnapshot>> {
    if !text.contains("snapshots") {
        return Ok(Vec::new());
    }
    let parsed: SnapshotsOnly = serde_yaml::from_str(text).map_err(|e| Error::Config {
        file: match e.location() {
            Some(l) => format!("{display}:{}", l.line()).into(),
            None => display.into(),
        },
        message: format!("snapshots: {e}"),
    })?;
    let mut entries = parsed.snapshots;
    for e in &mut entries {
        e.line = name_line(text, &e.name).unwrap_or(1);
    }
    Ok(entries)
}

/// The line of `name: <name>` in a YAML text (best effort, for messages).
fn name_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
                .unwrap_or(false)
        })
        .map(|i| i + 1)
}

/// The template of a YAML snapshot: `select * from {{ <relation> }}`, when
/// `relation` is a `ref(...)` or `source(...)` call.
pub fn relation_template(relation: &str) -> std::result::Result<String, String> {
    let r = relation.trim();
    let r = r
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .map(str::trim)
        .unwrap_or(r);
    if (r.starts_with("ref(") || r.starts_with("source(")) && r.ends_with(')') {
        Ok(format!("select * from {{{{ {r} }}}}"))
    } else {
        Err(format!(
            "relation `{relation}` is not a ref() or source(): write relation: ref('my_model') or relation: source('my_source', 'my_table')"
        ))
    }
}

/// Path of `file` below `root` as folder names (the file name dropped).
pub fn rel_dirs(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut dirs: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    dirs.pop();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_with_lines() {
        let text = "-- header\n{% snapshot orders_snap %}\n{{ config(strategy='check') }}\nselect 1\n{% endsnapshot %}\n\n{%- snapshot b -%} select 2 {%- endsnapshot -%}\n";
        let b = blocks("snapshots/x.sql", text).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].name, "orders_snap");
        assert_eq!(b[0].line, 2);
        assert_eq!(b[0].body, "\n\n{{ config(strategy='check') }}\nselect 1\n");
        assert_eq!(b[1].name, "b");
        assert_eq!(b[1].line, 7);
        assert_eq!(b[1].body.trim(), "select 2");
        assert_eq!(b[1].body.matches('\n').count(), 6);
    }

    #[test]
    fn block_errors_name_the_line() {
        let e = blocks("s.sql", "\n{% snapshot x %}\nselect 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.sql:2:") && e.contains("endsnapshot"),
            "{e}"
        );
        let e = blocks("s.sql", "{% snapshot %}select 1{% endsnapshot %}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a name"), "{e}");
        let e = blocks(
            "s.sql",
            "{% snapshot a %}\n{% snapshot b %}{% endsnapshot %}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.sql:2:"), "{e}");
    }

    #[test]
    fn yml_entries_and_relations() {
        let text = "version: 2\nmodels:\n  - name: m\nsnapshots:\n  - name: orders_snapshot\n    relation: ref('orders')\n    config:\n      unique_key: id\n";
        let e = yml_entries("models/s.yml", text).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 5);
        assert_eq!(e[0].relation.as_deref(), Some("ref('orders')"));
        assert_eq!(
            relation_template("source('raw', 'orders')").unwrap(),
            "select * from {{ source('raw', 'orders') }}"
        );
        assert!(relation_template("raw.orders").is_err());
        let e = yml_entries(
            "s.yml",
            "snapshots:\n  - name: a\n    relation: ref('x')\n    confg: {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.yml:4") && e.contains("confg"), "{e}");
    }
}
