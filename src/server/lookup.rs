//! The serving path of a prepared online lookup,
//! `SELECT cols FROM online.<view or service> WHERE <entity conditions on ?>`:
//! each execution binds its parameters into the prepared plan and asks the
//! online table for the keys directly, without optimizing and physically
//! planning a query (about a millisecond per lookup, many times the lookup
//! itself). The online table reads its view's current state on every call,
//! so the answer is the one planning would give; anything this path does not
//! recognise, or any error on it, falls back to planning.

use super::types::client_schema;
use crate::features::online::table::OnlineTable;
use crate::sql::Engine;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableScan};
use std::sync::Arc;

pub(super) struct OnlineLookup {
    /// The prepared plan, parameters unbound.
    plan: LogicalPlan,
    provider: Arc<dyn TableProvider>,
    /// Output columns, as indices into the online table's schema.
    projection: Vec<usize>,
    /// The answer's schema as clients see it (the prepared dataset schema).
    schema: SchemaRef,
}

/// The parts of `Projection(columns) -> Filter -> TableScan(online table)`.
fn parts(plan: &LogicalPlan) -> Option<(Vec<String>, &Expr, &TableScan)> {
    let LogicalPlan::Projection(p) = plan else {
        return None;
    };
    let mut names = Vec::with_capacity(p.expr.len());
    for e in &p.expr {
        match e {
            Expr::Column(c) => names.push(c.name.clone()),
            _ => return None,
        }
    }
    let LogicalPlan::Filter(f) = p.input.as_ref() else {
        return None;
    };
    let scan = match f.input.as_ref() {
        LogicalPlan::TableScan(t) => t,
        LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
            LogicalPlan::TableScan(t) => t,
            _ => return None,
        },
        _ => return None,
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() || scan.projection.is_some() {
        return None;
    }
    Some((names, &f.predicate, scan))
}

impl OnlineLookup {
    /// The lookup a prepared query's (unbound) plan is, if it is one.
    pub(super) fn detect(plan: &LogicalPlan, schema: &SchemaRef) -> Option<Self> {
        let (names, _, scan) = parts(plan)?;
        let provider = source_as_provider(&scan.source).ok()?;
        if !provider.is::<OnlineTable>() {
            return None;
        }
        let table_schema = provider.schema();
        let projection = names
            .iter()
            .map(|n| table_schema.index_of(n).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(OnlineLookup {
            plan: plan.clone(),
            provider,
            projection,
            schema: schema.clone(),
        })
    }

    /// The prepared plan, parameters unbound.
    pub(super) fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The answer's schema (as planning would give it).
    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs `bound` (this lookup's plan with its parameters bound); `None`
    /// when it is not answerable here (the caller plans it instead).
    pub(super) async fn execute(
        &self,
        bound: &LogicalPlan,
        engine: &Engine,
    ) -> Option<SendableRecordBatchStream> {
        let (_, predicate, _) = parts(bound)?;
        let filters: Vec<Expr> = split_conjunction(predicate).into_iter().cloned().collect();
        let refs: Vec<&Expr> = filters.iter().collect();
        // Every condition must be a key condition the table answers exactly.
        let pushdown = self.provider.supports_filters_pushdown(&refs).ok()?;
        if pushdown
            .iter()
            .any(|p| *p != TableProviderFilterPushDown::Exact)
        {
            return None;
        }
        let state = engine.context().state();
        let exec = match self
            .provider
            .scan(&state, Some(&self.projection), &filters, None)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("online lookup planned instead: {e}");
                return None;
            }
        };
        if exec.properties().output_partitioning().partition_count() != 1
            || client_schema(&exec.schema()) != self.schema
        {
            return None;
        }
        exec.execute(0, state.task_ctx()).ok()
    }
}
