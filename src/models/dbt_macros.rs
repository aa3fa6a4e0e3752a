//! dbt's built-in cross-database macros (`dbt.dateadd`, `dbt.type_string`,
//! `generate_schema_name`, ...), written for DataFusion 55's SQL.
//!
//! dbt projects and packages call these by name and expect SQL that runs on
//! the warehouse, so sluice ships its own `dbt` namespace. Each public macro
//! dispatches as dbt's does (`adapter.dispatch('dateadd', 'dbt')`), which finds
//! a project's override first, then `sluice__`, then `datafusion__`, then
//! `default__`; the `sluice__` forms are the ones checked against DataFusion.
//! The files are Jinja text, loaded in [`FILES`] order by the template
//! machinery in [`super::jinja`]; `datepart.sql` holds a helper the date
//! macros share and comes first.
//!
//! What the machinery must provide: `return(value)` ending a macro with a
//! value, `adapter.dispatch(name, 'dbt')`, the `dbt.` prefix for calls between
//! these macros, `exceptions.raise_compiler_error`, `var`, `target`.

/// The built-in `dbt` macro namespace: (display path, text), loaded in this order.
pub const FILES: &[(&str, &str)] = &[
    ("dbt/core.sql", include_str!("dbt_macros/core.sql")),
    ("dbt/datepart.sql", include_str!("dbt_macros/datepart.sql")),
    (
        "dbt/date_trunc.sql",
        include_str!("dbt_macros/date_trunc.sql"),
    ),
    ("dbt/dateadd.sql", include_str!("dbt_macros/dateadd.sql")),
    ("dbt/datediff.sql", include_str!("dbt_macros/datediff.sql")),
    ("dbt/last_day.sql", include_str!("dbt_macros/last_day.sql")),
    ("dbt/date.sql", include_str!("dbt_macros/date.sql")),
    (
        "dbt/generate_series.sql",
        include_str!("dbt_macros/generate_series.sql"),
    ),
    (
        "dbt/date_spine.sql",
        include_str!("dbt_macros/date_spine.sql"),
    ),
    ("dbt/cast.sql", include_str!("dbt_macros/cast.sql")),
    (
        "dbt/data_types.sql",
        include_str!("dbt_macros/data_types.sql"),
    ),
    (
        "dbt/timestamps.sql",
        include_str!("dbt_macros/timestamps.sql"),
    ),
    ("dbt/strings.sql", include_str!("dbt_macros/strings.sql")),
    (
        "dbt/aggregates.sql",
        include_str!("dbt_macros/aggregates.sql"),
    ),
    (
        "dbt/set_operators.sql",
        include_str!("dbt_macros/set_operators.sql"),
    ),
    ("dbt/arrays.sql", include_str!("dbt_macros/arrays.sql")),
    ("dbt/equals.sql", include_str!("dbt_macros/equals.sql")),
    ("dbt/naming.sql", include_str!("dbt_macros/naming.sql")),
];

/// The public macros of dbt 1.10's `dbt` namespace that sluice provides
/// (`is_incremental` is a Rust function of the template machinery).
pub const PUBLIC_MACROS: &[&str] = &[
    "date_trunc",
    "dateadd",
    "datediff",
    "last_day",
    "date",
    "date_spine",
    "get_intervals_between",
    "get_powers_of_two",
    "generate_series",
    "safe_cast",
    "cast",
    "cast_bool_to_text",
    "concat",
    "hash",
    "type_string",
    "type_timestamp",
    "type_float",
    "type_numeric",
    "type_bigint",
    "type_int",
    "type_boolean",
    "current_timestamp",
    "current_timestamp_backcompat",
    "current_timestamp_in_utc_backcompat",
    "snapshot_get_time",
    "split_part",
    "listagg",
    "bool_or",
    "any_value",
    "escape_single_quotes",
    "string_literal",
    "except",
    "intersect",
    "position",
    "length",
    "replace",
    "right",
    "array_construct",
    "array_append",
    "array_concat",
    "equals",
    "generate_schema_name",
    "generate_alias_name",
    "generate_database_name",
];

/// The names of the macros defined in `text` (`{% macro name(` and `{%- macro name(`).
pub fn macro_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{%") {
        rest = &rest[at + 2..];
        let tag = rest.trim_start_matches('-').trim_start();
        if let Some(after) = tag.strip_prefix("macro ") {
            let after = after.trim_start();
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end > 0 {
                names.push(&after[..end]);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn all_names() -> BTreeSet<&'static str> {
        FILES
            .iter()
            .flat_map(|(_, text)| macro_names(text))
            .collect()
    }

    #[test]
    fn every_file_parses_in_a_plain_environment() {
        let mut env = minijinja::Environment::new();
        for (path, text) in FILES {
            env.add_template(path, text)
                .unwrap_or_else(|e| panic!("{path} does not parse: {e:#}"));
        }
        // All together, as the machinery concatenates them.
        let joined: String = FILES.iter().map(|(_, t)| *t).collect::<Vec<_>>().join("\n");
        env.add_template("all", &joined).unwrap();
        // Only macros: rendering the files defines them and emits nothing.
        let out = env.get_template("all").unwrap().render(()).unwrap();
        assert!(
            out.trim().is_empty(),
            "files emit text outside macros: {out:?}"
        );
    }

    #[test]
    fn macro_names_finds_both_tag_forms() {
        let text =
            "{% macro a(x) %}{% endmacro %}{%- macro b__c() -%}{%- endmacro %}{# macro no #}";
        assert_eq!(macro_names(text), ["a", "b__c"]);
    }

    #[test]
    fn every_public_macro_is_defined_once() {
        let mut seen = BTreeSet::new();
        for (path, text) in FILES {
            for name in macro_names(text) {
                assert!(seen.insert(name), "macro `{name}` defined twice ({path})");
            }
        }
        for name in PUBLIC_MACROS {
            assert!(seen.contains(name), "macro `{name}` is missing");
        }
    }

    #[test]
    fn every_public_macro_dispatches_to_an_implementation() {
        let names = all_names();
        for (path, text) in FILES {
            for name in PUBLIC_MACROS {
                let head = format!("macro {name}(");
                let Some(at) = text.find(&head) else { continue };
                let body = &text[at..];
                let body = &body[..body.find("endmacro").unwrap_or(body.len())];
                let dispatch = format!("adapter.dispatch('{name}', 'dbt')");
                assert!(
                    body.contains(&dispatch),
                    "{path}: `{name}` does not dispatch"
                );
            }
        }
        for name in PUBLIC_MACROS {
            let targets = ["sluice__", "datafusion__", "default__"].map(|p| format!("{p}{name}"));
            assert!(
                targets.iter().any(|t| names.contains(t.as_str())),
                "`{name}` has no sluice__, datafusion__ or default__ implementation"
            );
        }
        // No stray implementation without a public macro (a typo in a name).
        for name in &names {
            if let Some((prefix, public)) = name.split_once("__") {
                assert!(
                    ["sluice", "datafusion", "default"].contains(&prefix),
                    "`{name}`: unknown dispatch prefix"
                );
                assert!(
                    PUBLIC_MACROS.contains(&public),
                    "`{name}` implements no public macro"
                );
            }
        }
    }
}
