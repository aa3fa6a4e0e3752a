//! Table names as people type them outside SQL (`sluice history raw.events`,
//! `--out features.training`): read as SQL reads a table reference, so the
//! same words name the same table in both places.
//!
//! A name is `table` (in the default schema), `schema.table` or
//! `sluice.schema.table`; unquoted parts are lowercased, `"quoted"` parts are
//! kept. It is checked before it becomes a path under the warehouse root: a
//! name such as `../x` or an empty one is a usage error, not a storage error.

use super::is_identifier;
use crate::error::{Error, Result};
use datafusion::common::TableReference;

/// `schema.table` of a warehouse table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    /// Parses `name`, with unqualified names in `default_schema`.
    pub fn parse(name: &str, default_schema: &str) -> Result<Self> {
        let catalog = super::CATALOG;
        let invalid = |why: &str| {
            Error::Usage(format!(
                "`{name}` is not a table name: {why}; write `schema.table`, or `table` for a table of schema `{default_schema}`"
            ))
        };
        let (schema, table) = match TableReference::parse_str(name) {
            TableReference::Bare { table } => (default_schema.to_string(), table.to_string()),
            TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
            TableReference::Full {
                catalog: c,
                schema,
                table,
            } if c.as_ref() == catalog => (schema.to_string(), table.to_string()),
            TableReference::Full { .. } => {
                return Err(invalid(&format!("the warehouse catalog is `{catalog}`")))
            }
        };
        if !is_identifier(&schema) || !is_identifier(&table) {
            return Err(invalid(
                "warehouse schema and table names are lowercase letters, digits and `_`, starting with a letter or `_`",
            ));
        }
        Ok(TableName { schema, table })
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<String> {
        TableName::parse(name, "raw").map(|t| t.to_string())
    }

    #[test]
    fn reads_names_as_sql_does() {
        assert_eq!(parse("events").unwrap(), "raw.events");
        assert_eq!(parse("staging.stg_events").unwrap(), "staging.stg_events");
        assert_eq!(parse("Raw.Events").unwrap(), "raw.events");
        assert_eq!(parse("sluice.raw.events").unwrap(), "raw.events");
        assert_eq!(parse("\"raw\".\"events\"").unwrap(), "raw.events");
    }

    #[test]
    fn refuses_what_is_not_a_warehouse_table() {
        for bad in [
            "",
            "../x",
            "a.b.c",
            "a.b.c.d",
            "\"Raw\".events",
            "raw.",
            "x y",
        ] {
            let e = TableName::parse(bad, "raw").unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
            assert!(e.to_string().contains("is not a table name"), "{bad}: {e}");
        }
    }
}
