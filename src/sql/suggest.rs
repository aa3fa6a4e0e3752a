//! "Did you mean": when a statement names a table that does not exist, the
//! existing table it most likely meant. Every front end gets it (the CLI,
//! the shell, the Flight SQL server), since it is part of the planning error.
//!
//! Which name is missing is found from the statement, not from DataFusion's
//! message: the statement's table names ([`super::deps`]) are checked, in
//! the order they are written, against the warehouse's names (one listing
//! per schema), and a name not listed there against the session (temporary
//! tables, `information_schema`).

use super::deps::Relation;
use super::Engine;
use crate::error::{Error, Object};
use crate::names::ident;
use datafusion::common::TableReference;

/// How alike two names must be (Jaro-Winkler) to be suggested; as
/// [`crate::error::did_you_mean`].
const THRESHOLD: f64 = 0.8;

impl Engine {
    /// The message of `err` with the closest existing table named, when
    /// `err` is a table the planner could not find in `sql` and an existing
    /// one is close enough.
    pub(super) async fn suggest_table(&self, err: &Error, sql: &str) -> Option<String> {
        let Error::NotFound {
            object: Object::Table,
            source: Some(source),
            ..
        } = err
        else {
            return None;
        };
        if !matches!(
            source.find_root(),
            datafusion::error::DataFusionError::Plan(_)
        ) {
            return None;
        }
        let tables = self.relation_names().await;
        let missing = self.missing_relation(sql, &tables).await?;
        let best = closest_table(&missing.parts, &self.default_schema, &tables)?;
        Some(format!(
            "table `{missing}` not found (did you mean `{best}`?)"
        ))
    }

    /// Every `(schema, name)` of the warehouse that may be a table or view
    /// (nothing when listing fails: a suggestion is no reason to fail).
    async fn relation_names(&self) -> Vec<(String, String)> {
        let wh = &self.warehouse;
        let mut schemas = wh.list_schemas().await.unwrap_or_default();
        schemas.extend(wh.list_view_schemas().await.unwrap_or_default());
        schemas.sort();
        schemas.dedup();
        let mut out = Vec::new();
        for schema in schemas {
            for name in wh.list_relation_names(&schema).await.unwrap_or_default() {
                out.push((schema.clone(), name));
            }
        }
        out
    }

    /// The first table name of `sql` (in the order written) that names
    /// nothing: neither a listed warehouse name, nor a model's bare name, nor
    /// anything the session knows.
    async fn missing_relation(&self, sql: &str, tables: &[(String, String)]) -> Option<Relation> {
        let occurrences =
            super::deps::relation_occurrences(sql, self.table_function_reads()).ok()?;
        for o in occurrences.into_iter().filter(|o| !o.declared) {
            let parts = &o.relation.parts;
            // A file path ('data/x.csv') is no table name.
            if parts.iter().any(|p| p.is_empty() || p.contains(['/', '.'])) {
                continue;
            }
            let (schema, table) = match parts.as_slice() {
                [t] => match self.catalog.alias(t) {
                    Some(st) => st,
                    None => (self.default_schema.clone(), t.clone()),
                },
                [s, t] => (s.clone(), t.clone()),
                [c, s, t] if c == super::CATALOG => (s.clone(), t.clone()),
                _ => continue,
            };
            if tables.iter().any(|(s, t)| *s == schema && *t == table) {
                continue;
            }
            let reference = match parts.as_slice() {
                [t] => TableReference::bare(t.as_str()),
                [s, t] => TableReference::partial(s.as_str(), t.as_str()),
                [c, s, t] => TableReference::full(c.as_str(), s.as_str(), t.as_str()),
                _ => continue,
            };
            if self.ctx.table_provider(reference).await.is_err() {
                return Some(o.relation);
            }
        }
        None
    }
}

/// The existing table closest to `missing` (a table name as written, with
/// the case normalised: `[table]`, `[schema, table]` or `[catalog, schema,
/// table]`) among `tables` (`(schema, table)`), written as the statement
/// should write it: bare for a bare name found in the default schema, else
/// `schema.table`. A table of the same name in another schema is the best
/// match of all.
pub(crate) fn closest_table(
    missing: &[String],
    default_schema: &str,
    tables: &[(String, String)],
) -> Option<String> {
    let (schema, table) = match missing {
        [t] => (None, t.as_str()),
        [s, t] | [_, s, t] => (Some(s.as_str()), t.as_str()),
        _ => return None,
    };
    let wanted_schema = schema.unwrap_or(default_schema);
    if tables.iter().any(|(s, t)| s == wanted_schema && t == table) {
        // It exists after all: nothing to suggest.
        return None;
    }
    let written = format!("{wanted_schema}.{table}");
    let score = |(s, t): &(String, String)| -> f64 {
        if t == table {
            return 0.99;
        }
        let by_name = strsim::jaro_winkler(table, t);
        if s == wanted_schema {
            by_name
        } else {
            // A typo in the schema, or in the name of a table elsewhere
            // (slightly behind a table of the schema it was looked for in).
            strsim::jaro_winkler(&written, &format!("{s}.{t}")).max(by_name - 0.02)
        }
    };
    let (s, t) = tables
        .iter()
        .map(|st| (st, score(st)))
        .filter(|(_, score)| *score > THRESHOLD)
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    Some(if schema.is_none() && s == default_schema {
        ident(t)
    } else {
        format!("{}.{}", ident(s), ident(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<(String, String)> {
        [
            ("raw", "customers"),
            ("raw", "orders"),
            ("main", "order_items"),
            ("marts", "daily_revenue"),
        ]
        .iter()
        .map(|(s, t)| (s.to_string(), t.to_string()))
        .collect()
    }

    fn suggest(parts: &[&str]) -> Option<String> {
        let parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        closest_table(&parts, "raw", &tables())
    }

    #[test]
    fn typos_in_names_and_schemas() {
        assert_eq!(suggest(&["orderz"]).as_deref(), Some("orders"));
        assert_eq!(suggest(&["customer"]).as_deref(), Some("customers"));
        assert_eq!(suggest(&["raw", "ordrs"]).as_deref(), Some("raw.orders"));
        assert_eq!(
            suggest(&["mart", "daily_revenue"]).as_deref(),
            Some("marts.daily_revenue")
        );
        assert_eq!(
            suggest(&["sluice", "marts", "daily_revenu"]).as_deref(),
            Some("marts.daily_revenue")
        );
        // A table of another schema: named with its schema.
        assert_eq!(
            suggest(&["daily_revenue"]).as_deref(),
            Some("marts.daily_revenue")
        );
        assert_eq!(
            suggest(&["order_item"]).as_deref(),
            Some("main.order_items")
        );
        assert_eq!(suggest(&["main", "orders"]).as_deref(), Some("raw.orders"));
        // Nothing close: no suggestion.
        assert_eq!(suggest(&["zzz"]), None);
        assert_eq!(suggest(&["raw", "orders"]), None);
    }
}
