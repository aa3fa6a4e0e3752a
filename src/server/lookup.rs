//! The serving path of a prepared lookup, `SELECT cols FROM t WHERE <conditions
//! on ?>`: each execution binds its parameters into the prepared plan and
//! answers it without optimizing and physically planning a query (about a
//! millisecond per lookup, many times the lookup itself).
//!
//! - On an online table (`online.<view or service>`), the table is asked for
//!   the keys directly; it reads its view's current state on every call.
//! - On a warehouse table, the table is resolved again on every execution (so
//!   a newer commit, by this server or anyone else, is seen, as planning would
//!   see it), and when the server's table cache holds it in memory, the bound
//!   condition is evaluated over its rows with DataFusion's own expressions.
//!
//! Anything this path does not recognise, a table not held in memory, or any
//! error on it falls back to planning, so the answer is always the one planning
//! would give.

use super::types::client_schema;
use crate::features::online::table::{OnlineTable, StreamOnlineTable};
use crate::sql::Engine;
use crate::warehouse::{InMemoryTable, KeyIndex};
use arrow::array::AsArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{plan_err, DFSchema, DFSchemaRef, ScalarValue, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableScan,
};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_plan::memory::MemoryStream;
use std::sync::Arc;

pub(super) struct PreparedLookup {
    /// The condition, parameters unbound, and the schema it is over.
    predicate: Expr,
    input_schema: DFSchemaRef,
    /// The type of each parameter `$1`, `$2`, ... (`None`: not inferred).
    parameter_types: Vec<Option<DataType>>,
    source: Source,
    /// Output columns, as indices into the table's schema.
    projection: Vec<usize>,
    /// The answer's schema as clients see it (the prepared dataset schema).
    schema: SchemaRef,
}

enum Source {
    /// An online table, asked for the keys.
    Online(Arc<dyn TableProvider>),
    /// A warehouse table, resolved on every execution; answered here only
    /// while the table cache holds it and its schema is the prepared one.
    Table {
        name: TableReference,
        table_schema: SchemaRef,
    },
}

/// The parts of `Projection(columns) -> Filter -> TableScan`: the column
/// names, the condition, the scan and the schema the condition is over.
fn parts(plan: &LogicalPlan) -> Option<(Vec<String>, &Expr, &TableScan, &DFSchemaRef)> {
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
    Some((names, &f.predicate, scan, f.input.schema()))
}

/// The rows a condition's first key conjunct (`column = value` or `column IN
/// (values)`, values of the column's type, column indexed) can match: row
/// ids, ascending. `None` when no conjunct is one.
fn keyed_rows(table: &InMemoryTable, predicate: &Expr, schema: &DFSchema) -> Option<Vec<u32>> {
    for conjunct in split_conjunction(predicate) {
        let (column, values): (_, Vec<&ScalarValue>) = match conjunct {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                    (c, vec![v])
                }
                _ => continue,
            },
            Expr::InList(InList {
                expr,
                list,
                negated: false,
            }) => {
                let Expr::Column(c) = expr.as_ref() else {
                    continue;
                };
                let values = list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal(v, _) => Some(v),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>();
                match values {
                    Some(v) => (c, v),
                    None => continue,
                }
            }
            _ => continue,
        };
        let Ok(i) = schema.index_of_column(column) else {
            continue;
        };
        let data_type = schema.field(i).data_type();
        if !KeyIndex::indexes(data_type) || values.iter().any(|v| v.data_type() != *data_type) {
            continue;
        }
        let Some(index) = table.key_index(i) else {
            continue;
        };
        let Ok(values) = ScalarValue::iter_to_array(values.into_iter().cloned()) else {
            continue;
        };
        let mut ids = Vec::new();
        if index.candidates(values.as_ref(), &mut ids).is_err() {
            continue;
        }
        ids.sort_unstable();
        ids.dedup();
        return Some(ids);
    }
    None
}

impl PreparedLookup {
    /// The lookup a prepared query's (unbound) plan is, if it is one.
    pub(super) fn detect(plan: &LogicalPlan, schema: &SchemaRef) -> Option<Self> {
        let (names, predicate, scan, input_schema) = parts(plan)?;
        let types = plan.get_parameter_types().ok()?;
        let parameter_types = (1..=types.len())
            .map(|i| types.get(&format!("${i}")).cloned())
            .collect::<Option<Vec<_>>>()?;
        let provider = source_as_provider(&scan.source).ok()?;
        let table_schema = provider.schema();
        let projection = names
            .iter()
            .map(|n| table_schema.index_of(n).ok())
            .collect::<Option<Vec<_>>>()?;
        let source = if provider.is::<OnlineTable>() || provider.is::<StreamOnlineTable>() {
            Source::Online(provider)
        } else {
            Source::Table {
                name: scan.table_name.clone(),
                table_schema,
            }
        };
        Some(PreparedLookup {
            predicate: predicate.clone(),
            input_schema: input_schema.clone(),
            parameter_types,
            source,
            projection,
            schema: schema.clone(),
        })
    }

    /// The condition with `params` in place of its parameters (each cast to
    /// the parameter's type, as binding a plan casts it); `None` when they do
    /// not fit (the caller plans the query, which reports why).
    pub(super) fn bind(&self, params: &[ScalarValue]) -> Option<Expr> {
        if params.len() != self.parameter_types.len() {
            return None;
        }
        let mut values = Vec::with_capacity(params.len());
        for (v, t) in params.iter().zip(&self.parameter_types) {
            values.push(match t {
                Some(t) if v.is_null() => ScalarValue::try_from(t).ok()?,
                Some(t) if v.data_type() != *t => v.cast_to(t).ok()?,
                _ => v.clone(),
            });
        }
        self.predicate
            .clone()
            .transform(|e| match &e {
                Expr::Placeholder(p) => {
                    let i =
                        p.id.strip_prefix('$')
                            .and_then(|n| n.parse::<usize>().ok())
                            .filter(|&n| n >= 1 && n <= values.len());
                    match i {
                        Some(i) => Ok(Transformed::yes(Expr::Literal(values[i - 1].clone(), None))),
                        None => plan_err!("unknown parameter {}", p.id),
                    }
                }
                _ => Ok(Transformed::no(e)),
            })
            .ok()
            .map(|t| t.data)
    }

    /// The answer's schema (as planning would give it).
    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs the lookup with its condition bound (see [`PreparedLookup::bind`]);
    /// `None` when it is not answerable here (the caller plans it instead).
    pub(super) async fn execute(
        &self,
        predicate: &Expr,
        engine: &Engine,
    ) -> Option<SendableRecordBatchStream> {
        let input_schema = &self.input_schema;
        match &self.source {
            Source::Online(provider) => self.online(provider, predicate, engine).await,
            Source::Table { name, table_schema } => {
                let provider = engine.context().table_provider(name.clone()).await.ok()?;
                let table = provider.downcast_ref::<InMemoryTable>()?;
                if provider.schema() != *table_schema
                    || input_schema.as_arrow() != table_schema.as_ref()
                {
                    return None;
                }
                let projected = Arc::new(table_schema.project(&self.projection).ok()?);
                if client_schema(&projected) != self.schema {
                    return None;
                }
                let condition = create_physical_expr(
                    predicate,
                    input_schema,
                    &ExecutionProps::new(),
                    &PhysicalPlanningContext::default(),
                )
                .ok()?;
                // A key condition reads its candidate rows from the key
                // index; the whole condition is still evaluated on them.
                let keyed = match keyed_rows(table, predicate, input_schema) {
                    Some(ids) => Some(table.rows(&ids).ok()?),
                    None => None,
                };
                let batches = keyed.as_deref().unwrap_or(table.batches());
                let mut out = Vec::new();
                for b in batches {
                    let mask = condition.evaluate(b).ok()?.into_array(b.num_rows()).ok()?;
                    let rows = filter_record_batch(b, mask.as_boolean_opt()?).ok()?;
                    if rows.num_rows() > 0 {
                        out.push(rows.project(&self.projection).ok()?);
                    }
                }
                let stream = MemoryStream::try_new(out, projected, None).ok()?;
                Some(Box::pin(stream))
            }
        }
    }

    async fn online(
        &self,
        provider: &Arc<dyn TableProvider>,
        predicate: &Expr,
        engine: &Engine,
    ) -> Option<SendableRecordBatchStream> {
        let filters: Vec<Expr> = split_conjunction(predicate).into_iter().cloned().collect();
        let refs: Vec<&Expr> = filters.iter().collect();
        // Every condition must be a key condition the table answers exactly.
        let pushdown = provider.supports_filters_pushdown(&refs).ok()?;
        if pushdown
            .iter()
            .any(|p| *p != TableProviderFilterPushDown::Exact)
        {
            return None;
        }
        let state = engine.context().state();
        let exec = match provider
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
