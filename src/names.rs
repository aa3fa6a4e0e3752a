//! SQL names as sluice writes and reads them: which names need no quoting,
//! and how to quote the others; and the ids sluice gives loads and runs. One
//! place, used by every layer (it depends on nothing).

/// `true` for names usable as schema and table names without quoting
/// (lowercase letters, digits and `_`, not starting with a digit).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `name` double-quoted for SQL, inner quotes doubled: always quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as SQL writes it: plain when it is an identifier, else quoted.
pub fn ident(name: &str) -> String {
    if is_identifier(name) {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// A table name as users write it, `schema.table` or `table`, split into
/// `(Some(schema), table)` or `(None, table)`; `None` for more parts or an
/// empty part.
pub fn split_table(name: &str) -> Option<(Option<&str>, &str)> {
    match name.split_once('.') {
        None if !name.is_empty() => Some((None, name)),
        Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => Some((Some(s), t)),
        _ => None,
    }
}

/// `(schema, table)` of `name`, a bare name being in `default_schema`;
/// `None` as for [`split_table`].
pub fn qualify(name: &str, default_schema: &str) -> Option<(String, String)> {
    let (schema, table) = split_table(name)?;
    Some((
        schema.unwrap_or(default_schema).to_string(),
        table.to_string(),
    ))
}

/// A new id of a load or a run (`20260131T120000Z-1a2b3c4d`): the UTC time
/// it started, so that ids sort by time, and 8 random hex digits. Loads and
/// runs share the format, so one pattern finds both in commit metadata,
/// `_sluice.runs` and quarantine tables.
pub fn new_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &random[..8]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_unique() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), "20260131T120000Z-1a2b3c4d".len(), "{a}");
        assert_eq!(a.as_bytes()[15], b'Z', "{a}");
        assert!(a[..8].chars().all(|c| c.is_ascii_digit()), "{a}");
    }

    #[test]
    fn quotes_what_needs_it() {
        assert!(is_identifier("stg_users2") && is_identifier("_x"));
        assert!(!is_identifier("Users") && !is_identifier("2x") && !is_identifier(""));
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("My \"T\""), "\"My \"\"T\"\"\"");
        assert_eq!(quote_ident("users"), "\"users\"");
    }

    #[test]
    fn splits_table_names() {
        assert_eq!(split_table("raw.users"), Some((Some("raw"), "users")));
        assert_eq!(split_table("users"), Some((None, "users")));
        for bad in ["", ".x", "x.", "a.b.c"] {
            assert_eq!(split_table(bad), None, "{bad}");
        }
        assert_eq!(
            qualify("users", "main"),
            Some(("main".to_string(), "users".to_string()))
        );
    }
}
