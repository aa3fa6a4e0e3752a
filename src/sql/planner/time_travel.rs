//! Delta time travel in SQL: `t VERSION AS OF n` and `t TIMESTAMP AS OF x`.
//! Relation planners cannot do I/O, so the versions a statement asks for are
//! loaded before planning and planned as scans of those snapshots.

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
use datafusion::logical_expr::{cast, LogicalPlanBuilder, TableSource};
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

/// Plans `t VERSION AS OF n` / `t TIMESTAMP AS OF x` as a scan of the version
/// loaded before planning (relation planners cannot do I/O).
#[derive(Default)]
pub(super) struct TimeTravelPlanner {
    tables: HashMap<(String, String), Arc<dyn TableSource>>,
}

impl std::fmt::Debug for TimeTravelPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeTravelPlanner")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TimeTravelPlanner {
    /// Loads every `(table, version)` a statement reads.
    pub(super) async fn load(
        state: &SessionState,
        tt: &TimeTravel,
        versions: Vec<(ObjectName, TableVersion)>,
    ) -> Result<Self> {
        let mut planner = TimeTravelPlanner::default();
        for (name, version) in versions {
            let key = (name.to_string(), version.to_string());
            if planner.tables.contains_key(&key) {
                continue;
            }
            let provider = load_version(state, tt, &name, &version).await?;
            planner.tables.insert(key, provider_as_source(provider));
        }
        Ok(planner)
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
            if catalog.as_ref() != crate::sql::CATALOG {
                return plan_err!(
                    "time travel reads warehouse tables (catalog `{}`), not `{reference}`",
                    crate::sql::CATALOG
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
    tt.catalog.delta_provider(&id, handle).await
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
