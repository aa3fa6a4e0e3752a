//! dbt's built-in cross-database macros (the `dbt` namespace), written for DataFusion SQL.

/// The built-in `dbt` macro namespace: (display path, text), loaded in this order.
pub const FILES: &[(&str, &str)] = &[("dbt/core.sql", include_str!("jinja/core.sql"))];
