//! The one SQL front end's planner: statements parsed by [`super::parser`]
//! become DataFusion logical plans, with AS OF joins planned by [`asof`] and
//! Delta time travel (`VERSION AS OF`, `TIMESTAMP AS OF`) by [`time_travel`].
//! [`SluiceQueryPlanner`] turns logical plans into physical ones with the
//! extension planners the engine was built with (Delta's writes and merges,
//! the AS OF join's operator, and any an extension adds).

pub(crate) mod asof;
mod time_travel;

pub use time_travel::TimeTravel;

use super::parser;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{plan_err, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, TableVersion};
use std::sync::Arc;

/// Parses and plans one SQL statement: parse ([`parser::parse_statements`]),
/// wrap AS OF joins for the relation planner, load the table versions time
/// travel asks for, plan.
pub async fn plan_sql(state: &SessionState, sql: &str, tt: &TimeTravel) -> Result<LogicalPlan> {
    let limit = state.config().options().sql_parser.recursion_limit;
    let mut checked = parser::parse_statements(sql, limit.get())?;
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
    let plan = if versions.is_empty() {
        state.statement_to_plan(statement).await?
    } else {
        let planner = time_travel::TimeTravelPlanner::load(state, tt, versions).await?;
        let mut state = state.clone();
        state.register_relation_planner(Arc::new(planner))?;
        state.statement_to_plan(statement).await?
    };
    crate::sql::types::with_sql_type_names(plan)
}

/// Wraps AS OF joins and collects time-travel table factors, in every
/// statement kind DataFusion's parser produces.
fn prepare(statement: &mut DFStatement, versions: &mut Vec<(ObjectName, TableVersion)>) {
    match statement {
        DFStatement::Statement(s) => {
            parser::nest_asof_joins(s);
            versions.extend(parser::time_travel_factors(s));
        }
        DFStatement::Explain(e) => prepare(&mut e.statement, versions),
        DFStatement::CopyTo(c) => {
            if let datafusion::sql::parser::CopyToSource::Query(q) = &mut c.source {
                parser::nest_asof_joins_in_query(q);
                versions.extend(parser::time_travel_factors_in_query(q));
            }
        }
        _ => {}
    }
}

/// The query planner of every sluice session: DataFusion's default planner
/// with the engine's extension planners.
#[derive(Clone)]
pub struct SluiceQueryPlanner {
    extensions: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>,
}

impl std::fmt::Debug for SluiceQueryPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SluiceQueryPlanner")
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl SluiceQueryPlanner {
    /// Delta's extension planner (writes, merges: deltalake needs it in every
    /// session it writes with) and the AS OF join's, then `more`.
    pub fn new(more: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>) -> Self {
        let mut extensions: Vec<Arc<dyn ExtensionPlanner + Send + Sync>> = vec![
            deltalake::delta_datafusion::planner::DeltaExtensionPlanner::new(),
            Arc::new(crate::asof::AsOfExtensionPlanner),
        ];
        extensions.extend(more);
        SluiceQueryPlanner { extensions }
    }
}

impl Default for SluiceQueryPlanner {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

#[async_trait]
impl QueryPlanner for SluiceQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(self.extensions.clone());
        planner.create_physical_plan(logical_plan, session).await
    }
}
