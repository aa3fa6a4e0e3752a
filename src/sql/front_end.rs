//! sluice's SQL front end: DataFusion's parser and planner with the AS OF join
//! syntax and Delta time travel.
//!
//! `plan_sql` tokenizes with [`SluiceDialect`] (DataFusion's generic dialect
//! plus `VERSION AS OF` / `TIMESTAMP AS OF`), rewrites AS OF joins sqlparser
//! cannot parse ([`crate::asof::syntax`]), parses with DataFusion's parser,
//! wraps AS OF joins for the relation planner, loads the table versions time
//! travel asks for, and plans. Every SQL entry point (queries, models, stored
//! views, the Flight SQL server) goes through it.

use crate::asof::syntax::{self, SluiceDialect};
use crate::warehouse::{Warehouse, WarehouseCatalog};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{plan_err, DFSchema, Result, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{cast, LogicalPlan, LogicalPlanBuilder, TableSource};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, ObjectName, TableFactor, TableVersion, Value,
};
use std::collections::HashMap;
use std::sync::Arc;

/// What time travel needs to find tables: the warehouse and its catalog.
#[derive(Debug, Clone)]
pub struct TimeTravel {
    pub(crate) warehouse: Warehouse,
    pub(crate) catalog: Arc<WarehouseCatalog>,
    pub(crate) default_schema: String,
}

/// Parses and plans one SQL statement (see the module doc).
pub async fn plan_sql(state: &SessionState, sql: &str, tt: &TimeTravel) -> Result<LogicalPlan> {
    let tokens =
        syntax::tokenize_and_rewrite(sql).map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
    let limit = state.config().options().sql_parser.recursion_limit;
    let mut checked = super::depth::parse_guarded(sql.len(), || -> Result<Vec<DFStatement>> {
        let statements = DFParserBuilder::new(tokens)
            .with_dialect(&SluiceDialect)
            .with_recursion_limit(limit.get())
            .build()?
            .parse_statements()?;
        // Every statement is checked (a refused one must be taken apart, not
        // dropped).
        let mut checked = Vec::with_capacity(statements.len());
        let mut refused = None;
        for statement in statements {
            match super::depth::check(statement) {
                Ok(s) => checked.push(s),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(checked),
        }
    })?;
    if checked.len() > 1 {
        return datafusion::common::not_impl_err!(
            "The context currently only supports a single SQL statement"
        );
    }
    let Some(mut statement) = checked.pop() else {
        return plan_err!("No SQL statements were provided in the query string");
    };
    let mut versions = Vec::new();
    prepare(&mut statement, &mut versions);
    if versions.is_empty() {
        return state.statement_to_plan(statement).await;
    }
    let mut planner = TimeTravelPlanner::default();
    for (name, version) in versions {
        let key = (name.to_string(), version.to_string());
        if planner.tables.contains_key(&key) {
            continue;
        }
        let provider = load_version(state, tt, &name, &version).await?;
        planner.tables.insert(key, provider_as_source(provider));
    }
    let mut state = state.clone();
    state.register_relation_planner(Arc::new(planner))?;
    state.statement_to_plan(statement).await
}

/// Splits a `;`-separated list of statements (as the CLI receives them) into
/// their texts, with sluice's dialect: semicolons inside strings, quoted names
/// and comments do not split.
pub fn split_statements(sql: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&SluiceDialect, sql).tokenize_with_location() else {
        return vec![sql.to_string()];
    };
    let starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, col: u64| -> Option<usize> {
        let start = *starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(col).ok()?.checked_sub(1)?;
        sql[start..].char_indices().nth(col).map(|(i, _)| start + i)
    };
    let mut out = Vec::new();
    let mut from = 0;
    for t in &tokens {
        if t.token == Token::SemiColon {
            let Some(at) = offset(t.span.start.line, t.span.start.column) else {
                return vec![sql.to_string()];
            };
            out.push(sql[from..at].to_string());
            from = at + 1;
        }
    }
    out.push(sql[from..].to_string());
    let out: Vec<String> = out.into_iter().filter(|s| !s.trim().is_empty()).collect();
    if out.is_empty() {
        vec![sql.to_string()]
    } else {
        out
    }
}

/// Wraps AS OF joins and collects time-travel table factors, in every
/// statement kind DataFusion's parser produces.
fn prepare(statement: &mut DFStatement, versions: &mut Vec<(ObjectName, TableVersion)>) {
    match statement {
        DFStatement::Statement(s) => {
            syntax::nest_asof_joins(s);
            versions.extend(syntax::time_travel_factors(s));
        }
        DFStatement::Explain(e) => prepare(&mut e.statement, versions),
        DFStatement::CopyTo(c) => {
            if let datafusion::sql::parser::CopyToSource::Query(q) = &mut c.source {
                syntax::nest_asof_joins_in_query(q);
                versions.extend(syntax::time_travel_factors_in_query(q));
            }
        }
        _ => {}
    }
}

/// Plans `t VERSION AS OF n` / `t TIMESTAMP AS OF x` as a scan of the version
/// loaded before planning (relation planners cannot do I/O).
#[derive(Default)]
struct TimeTravelPlanner {
    tables: HashMap<(String, String), Arc<dyn TableSource>>,
}

impl std::fmt::Debug for TimeTravelPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeTravelPlanner")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RelationPlanner for TimeTravelPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        ctx: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version: Some(version),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let Some(source) = self
            .tables
            .get(&(name.to_string(), version.to_string()))
            .cloned()
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let reference = ctx.object_name_to_table_reference(name.clone())?;
        let plan = LogicalPlanBuilder::scan(reference, source, None)?.build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// Loads `name` at `version` from the warehouse.
async fn load_version(
    state: &SessionState,
    tt: &TimeTravel,
    name: &ObjectName,
    version: &TableVersion,
) -> Result<Arc<dyn TableProvider>> {
    let reference = datafusion::sql::planner::object_name_to_table_reference(name.clone(), true)?;
    let (schema, table) = match &reference {
        TableReference::Bare { table } => {
            let in_default = tt
                .warehouse
                .relation_exists(&tt.default_schema, table)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            match tt.catalog.alias(table) {
                Some(target) if !in_default => target,
                _ => (tt.default_schema.clone(), table.to_string()),
            }
        }
        TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
        TableReference::Full {
            catalog,
            schema,
            table,
        } => {
            if catalog.as_ref() != super::CATALOG {
                return plan_err!(
                    "time travel reads warehouse tables (catalog `{}`), not `{reference}`",
                    super::CATALOG
                );
            }
            (schema.to_string(), table.to_string())
        }
    };
    let id = format!("{schema}.{table}");
    let not_a_table = || {
        DataFusionError::Plan(format!(
            "time travel needs a Delta table, and `{id}` is not one (views and files have no versions)"
        ))
    };
    let latest = tt
        .warehouse
        .latest_version(&schema, &table)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .ok_or_else(not_a_table)?;
    let url = tt
        .warehouse
        .table_url(&schema, &table)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let mut handle = tt
        .warehouse
        .table_handle(&url)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    match version {
        TableVersion::VersionAsOf(expr) => {
            let v = version_number(expr)?;
            if v > latest {
                return plan_err!(
                    "version {v} of `{id}` does not exist: its versions are 0 to {latest}"
                );
            }
            handle.load_version(v).await.map_err(|e| {
                DataFusionError::Plan(format!(
                    "cannot read version {v} of `{id}`: {}",
                    crate::error::Error::storage(&id, e)
                ))
            })?;
        }
        TableVersion::TimestampAsOf(expr) => {
            let at = timestamp(state, expr)?;
            handle.load_with_datetime(at).await.map_err(|e| {
                DataFusionError::Plan(format!(
                    "cannot read `{id}` as of {at}: {}",
                    crate::error::Error::storage(&id, e)
                ))
            })?;
            // deltalake falls back to the first version for earlier times.
            let v = handle.version().unwrap_or(0);
            let first = handle
                .snapshot()
                .ok()
                .and_then(|s| s.version_timestamp(v))
                .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis);
            if let Some(first) = first {
                if first > at {
                    return plan_err!(
                        "`{id}` did not exist at {at}: its first version (0) was committed at {first}"
                    );
                }
            }
        }
        other => {
            return plan_err!(
                "`{other}` is not supported; use VERSION AS OF <n> or TIMESTAMP AS OF '<time>'"
            )
        }
    }
    handle
        .table_provider()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

fn version_number(expr: &SqlExpr) -> Result<u64> {
    if let SqlExpr::Value(v) = expr {
        if let Value::Number(n, _) = &v.value {
            if let Ok(v) = n.parse::<u64>() {
                return Ok(v);
            }
        }
    }
    plan_err!("VERSION AS OF needs a version number (0, 1, ...), not `{expr}`")
}

/// Evaluates the constant expression of `TIMESTAMP AS OF` as a UTC time.
fn timestamp(state: &SessionState, expr: &SqlExpr) -> Result<chrono::DateTime<chrono::Utc>> {
    let empty = DFSchema::empty();
    let e = state.create_logical_expr_from_sql_expr(
        ExprWithAlias {
            expr: expr.clone(),
            alias: None,
        },
        &empty,
    )?;
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    // Simplify first: now() and friends are folded at this point in time.
    let ctx = datafusion::logical_expr::simplify::SimplifyContext::builder()
        .with_query_execution_start_time(Some(chrono::Utc::now()))
        .build();
    let bad = |e: DataFusionError| {
        DataFusionError::Plan(format!(
            "TIMESTAMP AS OF needs a time such as '2026-01-01T00:00:00Z', not `{expr}` ({})",
            crate::error::Error::from(e)
        ))
    };
    let e = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(ctx)
        .simplify(cast(e, ts))
        .map_err(bad)?;
    let physical = state.create_physical_expr(e, &empty)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let value = physical
        .evaluate(&batch)
        .and_then(|v| v.into_array(1))
        .map_err(bad)?;
    match ScalarValue::try_from_array(&value, 0)? {
        ScalarValue::TimestampMicrosecond(Some(us), _) => {
            chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us).ok_or_else(|| {
                DataFusionError::Plan(format!("TIMESTAMP AS OF {expr} is out of range"))
            })
        }
        _ => plan_err!("TIMESTAMP AS OF needs a time such as '2026-01-01T00:00:00Z', not `{expr}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statement_lists_with_sluice_syntax() {
        let sql = "SELECT ';' AS a; SELECT * FROM l ASOF JOIN r ON l.k = r.k AND l.t >= r.t TOLERANCE 3 ;\n-- x; y\nSELECT \"a;b\" FROM t VERSION AS OF 2;";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0], "SELECT ';' AS a");
        assert!(parts[1].trim().ends_with("TOLERANCE 3"), "{parts:?}");
        assert!(parts[2].contains("VERSION AS OF 2"), "{parts:?}");
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
    }
}
