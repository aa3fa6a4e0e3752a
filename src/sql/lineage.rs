//! Column-level lineage of one planned query: for every output column, the
//! columns of the relations it reads that it is computed from, and how.
//!
//! It walks DataFusion's logical plan as our front end planned it (before the
//! optimizer, so CTEs, subqueries and views are still where the SQL put them):
//! projections, filters, joins (AS OF joins too: any extension node whose
//! output columns are its inputs' columns), aggregates, windows, unions,
//! unnest, recursive CTEs, and subqueries inside expressions.
//!
//! A scan of a warehouse relation is a leaf named `schema.table`; the caller
//! composes leaves that are models with those models' own lineage. A scan of a
//! view that is not a relation of its own (`historical_features(...)`, a
//! stored view the caller does not know) is expanded in place: its SQL is
//! planned and walked. A scan of files (`read_parquet('...')`) is a leaf named
//! by the files' URL.
//!
//! Kinds, weakest first: `filter` (the column decides which rows exist or how
//! they pair up: WHERE, JOIN ON, GROUP BY keys, EXISTS/IN subqueries; such
//! columns are listed under every output column), `copied` (the value itself),
//! `transformed` (an expression of it), `aggregated` (an aggregate or window
//! function over it). Two paths to one column keep the strongest.

use crate::warehouse::{plan_in_session, SqlView};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result as DfResult, TableReference};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How an output column depends on an input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Decides which rows exist or how they pair up (WHERE, JOIN ON, GROUP
    /// BY, EXISTS/IN), not the value.
    Filter,
    /// The value, unchanged.
    Copied,
    /// An expression of the value.
    Transformed,
    /// An aggregate or window function over the value.
    Aggregated,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Copied => "copied",
            Kind::Transformed => "transformed",
            Kind::Aggregated => "aggregated",
        }
    }

    /// The kind of `self` seen through a step of kind `step` (a column copied
    /// from an aggregated one is aggregated; anything seen through a filter
    /// is a filter).
    pub fn then(self, step: Kind) -> Kind {
        if self == Kind::Filter || step == Kind::Filter {
            Kind::Filter
        } else {
            self.max(step)
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column of a relation a query reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// `schema.table`, or the URL of files read directly.
    pub relation: String,
    pub column: String,
}

/// Origins of one value, with the strongest kind of each.
pub type Deps = BTreeMap<Origin, Kind>;

fn add(into: &mut Deps, origin: Origin, kind: Kind) {
    let e = into.entry(origin).or_insert(kind);
    if kind > *e {
        *e = kind;
    }
}

fn merge(into: &mut Deps, from: &Deps, step: Kind) {
    for (o, k) in from {
        add(into, o.clone(), k.then(step));
    }
}

/// Lineage of a plan's output.
#[derive(Debug, Clone, Default)]
pub struct PlanLineage {
    /// One entry per output column, in order: its name and value origins.
    pub columns: Vec<(String, Deps)>,
    /// Origins that decide which rows exist (all `Filter`); they apply to
    /// every column.
    pub rows: Deps,
}

impl PlanLineage {
    /// Every column's origins, the row origins included (as `filter` where
    /// the column does not also depend on the value).
    pub fn resolved(&self) -> Vec<(String, Deps)> {
        self.columns
            .iter()
            .map(|(name, deps)| {
                let mut all = deps.clone();
                for o in self.rows.keys() {
                    add(&mut all, o.clone(), Kind::Filter);
                }
                (name.clone(), all)
            })
            .collect()
    }
}

/// Walks plans of one session.
pub struct LineageWalker<'a> {
    pub state: &'a SessionState,
    /// Relations that are leaves even when they are views (the caller's
    /// models): `schema.table`.
    pub leaves: &'a BTreeSet<String>,
    /// Schema of unqualified names.
    pub default_schema: &'a str,
    /// Every relation the walked plans read (tables, views that are leaves,
    /// ephemeral models, files; through expanded views and subqueries).
    pub reads: std::sync::Mutex<BTreeSet<String>>,
}

/// Views expanded inside one another deeper than this are leaves.
const MAX_VIEW_DEPTH: usize = 16;

impl LineageWalker<'_> {
    /// The lineage of `plan`'s output columns.
    pub async fn lineage(&self, plan: &LogicalPlan) -> DfResult<PlanLineage> {
        self.walk(plan, 0).await
    }

    fn leaf(&self, relation: &str, fields: &[String]) -> PlanLineage {
        if let Ok(mut r) = self.reads.lock() {
            r.insert(relation.to_string());
        }
        leaf(relation, fields)
    }

    fn relation_name(&self, table: &TableReference) -> String {
        match table {
            TableReference::Bare { table } => format!("{}.{table}", self.default_schema),
            TableReference::Partial { schema, table } => format!("{schema}.{table}"),
            TableReference::Full { schema, table, .. } => format!("{schema}.{table}"),
        }
    }

    fn walk<'b>(
        &'b self,
        plan: &'b LogicalPlan,
        depth: usize,
    ) -> BoxFuture<'b, DfResult<PlanLineage>> {
        Box::pin(async move { self.walk_inner(plan, depth).await })
    }

    async fn walk_inner(&self, plan: &LogicalPlan, depth: usize) -> DfResult<PlanLineage> {
        let names = |schema: &DFSchema| -> Vec<String> {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };
        Ok(match plan {
            LogicalPlan::TableScan(scan) => {
                let fields = names(&scan.projected_schema);
                let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
                let relation = self.relation_name(&scan.table_name);
                // A CTE's work table inside its recursive term: no origin of
                // its own (the static term gives them).
                if let Some(p) = &provider {
                    if p.downcast_ref::<datafusion::datasource::cte_worktable::CteWorkTable>()
                        .is_some()
                    {
                        return Ok(PlanLineage {
                            columns: fields.into_iter().map(|f| (f, Deps::new())).collect(),
                            rows: Deps::new(),
                        });
                    }
                }
                let files = provider.as_ref().and_then(|p| {
                    p.downcast_ref::<datafusion::datasource::listing::ListingTable>()
                        .map(|t| {
                            t.table_paths()
                                .iter()
                                .map(|u| u.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                });
                let view_sql = provider
                    .as_ref()
                    .and_then(|p| p.downcast_ref::<SqlView>().map(|v| v.sql().to_string()));
                let mut out = match (files, view_sql) {
                    (Some(url), _) => self.leaf(&url, &fields),
                    (None, Some(sql))
                        if !self.leaves.contains(&relation) && depth < MAX_VIEW_DEPTH =>
                    {
                        let inner = plan_in_session(self.state, &sql).await?;
                        let l = self.walk(&inner, depth + 1).await?;
                        // The scan's columns by name (a projection may have
                        // dropped some).
                        let by_name: BTreeMap<&str, &Deps> =
                            l.columns.iter().map(|(n, d)| (n.as_str(), d)).collect();
                        PlanLineage {
                            columns: fields
                                .iter()
                                .map(|f| {
                                    (
                                        f.clone(),
                                        by_name
                                            .get(f.as_str())
                                            .map(|d| (*d).clone())
                                            .unwrap_or_default(),
                                    )
                                })
                                .collect(),
                            rows: l.rows,
                        }
                    }
                    _ => self.leaf(&relation, &fields),
                };
                let refs = self
                    .expr_deps(
                        &scan.filters,
                        &out,
                        scan.projected_schema.as_ref(),
                        Kind::Filter,
                        depth,
                    )
                    .await?;
                merge(&mut out.rows, &refs, Kind::Filter);
                out
            }
            LogicalPlan::Projection(p) => {
                let input = self.walk(&p.input, depth).await?;
                let mut columns = Vec::with_capacity(p.expr.len());
                let mut rows = input.rows.clone();
                for (e, f) in p.expr.iter().zip(p.schema.fields()) {
                    let (deps, sub_rows) =
                        self.value_deps(e, &input, p.input.schema(), depth).await?;
                    merge(&mut rows, &sub_rows, Kind::Filter);
                    columns.push((f.name().clone(), deps));
                }
                PlanLineage { columns, rows }
            }
            LogicalPlan::Filter(f) => {
                let mut out = self.walk(&f.input, depth).await?;
                let deps = self
                    .expr_deps(
                        std::slice::from_ref(&f.predicate),
                        &out,
                        f.input.schema(),
                        Kind::Filter,
                        depth,
                    )
                    .await?;
                merge(&mut out.rows, &deps, Kind::Filter);
                out
            }
            LogicalPlan::Window(w) => {
                let input = self.walk(&w.input, depth).await?;
                let mut columns = input.columns.clone();
                let rows = input.rows.clone();
                for (e, f) in w
                    .window_expr
                    .iter()
                    .zip(w.schema.fields().iter().skip(input.columns.len()))
                {
                    // The function's arguments (and FILTER) are aggregated;
                    // PARTITION BY / ORDER BY decide which rows it sees, as
                    // GROUP BY keys do (row_number() reads no value).
                    let (args, keys): (Vec<Expr>, Vec<Expr>) = match strip_alias(e) {
                        Expr::WindowFunction(wf) => {
                            let p = &wf.params;
                            let mut args = p.args.clone();
                            args.extend(p.filter.iter().map(|f| f.as_ref().clone()));
                            let mut keys = p.partition_by.clone();
                            keys.extend(p.order_by.iter().map(|s| s.expr.clone()));
                            (args, keys)
                        }
                        other => (vec![other.clone()], Vec::new()),
                    };
                    let mut agg = self
                        .expr_deps(&args, &input, w.input.schema(), Kind::Aggregated, depth)
                        .await?;
                    let by = self
                        .expr_deps(&keys, &input, w.input.schema(), Kind::Filter, depth)
                        .await?;
                    merge(&mut agg, &by, Kind::Filter);
                    columns.push((f.name().clone(), agg));
                }
                PlanLineage { columns, rows }
            }
            LogicalPlan::Aggregate(a) => {
                let input = self.walk(&a.input, depth).await?;
                let groups =
                    datafusion::logical_expr::utils::grouping_set_to_exprlist(&a.group_expr)?;
                let fields = a.schema.fields();
                let mut columns = Vec::with_capacity(fields.len());
                let mut rows = input.rows.clone();
                let mut keys = Deps::new();
                for (e, f) in groups.iter().zip(fields.iter()) {
                    let (deps, sub_rows) =
                        self.value_deps(e, &input, a.input.schema(), depth).await?;
                    merge(&mut rows, &sub_rows, Kind::Filter);
                    merge(&mut keys, &deps, Kind::Filter);
                    columns.push((f.name().clone(), deps));
                }
                // GROUPING SETS' internal grouping id: from the keys.
                let extra = fields
                    .len()
                    .saturating_sub(groups.len() + a.aggr_expr.len());
                for f in fields.iter().skip(groups.len()).take(extra) {
                    let mut d = Deps::new();
                    merge(&mut d, &keys, Kind::Transformed);
                    columns.push((f.name().clone(), d));
                }
                for (e, f) in a
                    .aggr_expr
                    .iter()
                    .zip(fields.iter().skip(groups.len() + extra))
                {
                    let (deps, sub_rows) =
                        self.value_deps(e, &input, a.input.schema(), depth).await?;
                    merge(&mut rows, &sub_rows, Kind::Filter);
                    let mut agg = Deps::new();
                    merge(&mut agg, &deps, Kind::Aggregated);
                    columns.push((f.name().clone(), agg));
                }
                merge(&mut rows, &keys, Kind::Filter);
                PlanLineage { columns, rows }
            }
            LogicalPlan::Join(j) => {
                let left = self.walk(&j.left, depth).await?;
                let right = self.walk(&j.right, depth).await?;
                let both_schema = j.left.schema().join(j.right.schema())?;
                let both = PlanLineage {
                    columns: left
                        .columns
                        .iter()
                        .chain(right.columns.iter())
                        .cloned()
                        .collect(),
                    rows: Deps::new(),
                };
                let mut exprs: Vec<Expr> =
                    j.on.iter()
                        .flat_map(|(l, r)| [l.clone(), r.clone()])
                        .collect();
                exprs.extend(j.filter.iter().cloned());
                let keys = self
                    .expr_deps(&exprs, &both, &both_schema, Kind::Filter, depth)
                    .await?;
                let mut rows = left.rows.clone();
                merge(&mut rows, &right.rows, Kind::Filter);
                merge(&mut rows, &keys, Kind::Filter);
                let columns = by_name_from(&j.schema, &[(&j.left, &left), (&j.right, &right)]);
                PlanLineage { columns, rows }
            }
            LogicalPlan::Union(u) => {
                let mut columns: Vec<(String, Deps)> = names(&u.schema)
                    .into_iter()
                    .map(|n| (n, Deps::new()))
                    .collect();
                let mut rows = Deps::new();
                for input in &u.inputs {
                    let l = self.walk(input, depth).await?;
                    for (slot, (_, d)) in columns.iter_mut().zip(&l.columns) {
                        merge(&mut slot.1, d, Kind::Copied);
                    }
                    merge(&mut rows, &l.rows, Kind::Filter);
                }
                PlanLineage { columns, rows }
            }
            LogicalPlan::RecursiveQuery(r) => {
                let st = self.walk(&r.static_term, depth).await?;
                let rec = self.walk(&r.recursive_term, depth).await?;
                let mut out = st.clone();
                for (slot, (_, d)) in out.columns.iter_mut().zip(&rec.columns) {
                    merge(&mut slot.1, d, Kind::Copied);
                }
                merge(&mut out.rows, &rec.rows, Kind::Filter);
                out.columns = names(&r.schema)
                    .into_iter()
                    .zip(out.columns)
                    .map(|(n, (_, d))| (n, d))
                    .collect();
                out
            }
            LogicalPlan::Sort(s) => {
                let out = self.walk(&s.input, depth).await?;
                // ORDER BY ... LIMIT decides which rows remain.
                if s.fetch.is_some() {
                    let exprs: Vec<Expr> = s.expr.iter().map(|e| e.expr.clone()).collect();
                    let deps = self
                        .expr_deps(&exprs, &out, s.input.schema(), Kind::Filter, depth)
                        .await?;
                    let mut out = out;
                    merge(&mut out.rows, &deps, Kind::Filter);
                    return Ok(out);
                }
                out
            }
            LogicalPlan::Unnest(u) => {
                let input = self.walk(&u.input, depth).await?;
                let columns = u
                    .schema
                    .fields()
                    .iter()
                    .zip(&u.dependency_indices)
                    .map(|(f, &i)| {
                        let mut d = Deps::new();
                        if let Some((_, deps)) = input.columns.get(i) {
                            let step =
                                if u.exec_columns.iter().any(|c| c.name == *input.columns[i].0) {
                                    Kind::Transformed
                                } else {
                                    Kind::Copied
                                };
                            merge(&mut d, deps, step);
                        }
                        (f.name().clone(), d)
                    })
                    .collect();
                PlanLineage {
                    columns,
                    rows: input.rows,
                }
            }
            LogicalPlan::Values(v) => {
                let empty = PlanLineage::default();
                let mut columns: Vec<(String, Deps)> = names(&v.schema)
                    .into_iter()
                    .map(|n| (n, Deps::new()))
                    .collect();
                let mut rows = Deps::new();
                for row in &v.values {
                    for (slot, e) in columns.iter_mut().zip(row) {
                        let (d, r) = self
                            .value_deps(e, &empty, &DFSchema::empty(), depth)
                            .await?;
                        merge(&mut slot.1, &d, Kind::Copied);
                        merge(&mut rows, &r, Kind::Filter);
                    }
                }
                PlanLineage { columns, rows }
            }
            LogicalPlan::EmptyRelation(e) => PlanLineage {
                columns: names(&e.schema)
                    .into_iter()
                    .map(|n| (n, Deps::new()))
                    .collect(),
                rows: Deps::new(),
            },
            LogicalPlan::SubqueryAlias(s) => match ephemeral_relation(s.alias.table()) {
                // An ephemeral model inlined as a CTE: a relation of its own
                // (the caller composes it with the model's lineage).
                Some(relation) => self.leaf(&relation, &names(&s.schema)),
                None => rename(self.walk(&s.input, depth).await?, &s.schema),
            },
            LogicalPlan::Subquery(s) => rename(self.walk(&s.subquery, depth).await?, plan.schema()),
            LogicalPlan::Limit(l) => self.walk(&l.input, depth).await?,
            LogicalPlan::Repartition(r) => self.walk(&r.input, depth).await?,
            LogicalPlan::Distinct(d) => match d {
                datafusion::logical_expr::Distinct::All(input) => self.walk(input, depth).await?,
                datafusion::logical_expr::Distinct::On(on) => {
                    let input = self.walk(&on.input, depth).await?;
                    let mut columns = Vec::new();
                    let mut rows = input.rows.clone();
                    for (e, f) in on.select_expr.iter().zip(on.schema.fields()) {
                        let (deps, sub) =
                            self.value_deps(e, &input, on.input.schema(), depth).await?;
                        merge(&mut rows, &sub, Kind::Filter);
                        columns.push((f.name().clone(), deps));
                    }
                    let mut keys: Vec<Expr> = on.on_expr.clone();
                    keys.extend(on.sort_expr.iter().flatten().map(|s| s.expr.clone()));
                    let deps = self
                        .expr_deps(&keys, &input, on.input.schema(), Kind::Filter, depth)
                        .await?;
                    merge(&mut rows, &deps, Kind::Filter);
                    PlanLineage { columns, rows }
                }
            },
            // Extension nodes (the AS OF join) and anything else: an output
            // column is the input column of the same qualified name; the
            // node's expressions decide rows.
            other => {
                let inputs = other.inputs();
                let mut walked = Vec::with_capacity(inputs.len());
                for i in &inputs {
                    walked.push(self.walk(i, depth).await?);
                }
                let mut rows = Deps::new();
                let mut all_cols = PlanLineage::default();
                let mut schema = DFSchema::empty();
                for (i, l) in inputs.iter().zip(&walked) {
                    merge(&mut rows, &l.rows, Kind::Filter);
                    all_cols.columns.extend(l.columns.iter().cloned());
                    schema = schema.join(i.schema())?;
                }
                let exprs = other.expressions();
                let keys = self
                    .expr_deps(&exprs, &all_cols, &schema, Kind::Filter, depth)
                    .await?;
                merge(&mut rows, &keys, Kind::Filter);
                let columns = other
                    .schema()
                    .iter()
                    .map(|(q, f)| {
                        let deps = match schema.index_of_column(&Column::new(q.cloned(), f.name()))
                        {
                            Ok(i) => all_cols
                                .columns
                                .get(i)
                                .map(|(_, d)| d.clone())
                                .unwrap_or_default(),
                            Err(_) => match schema.index_of_column_by_name(None, f.name()) {
                                Some(i) => all_cols
                                    .columns
                                    .get(i)
                                    .map(|(_, d)| d.clone())
                                    .unwrap_or_default(),
                                None => {
                                    // A column the node makes: from all its
                                    // inputs' columns.
                                    let mut d = Deps::new();
                                    for (_, c) in &all_cols.columns {
                                        merge(&mut d, c, Kind::Transformed);
                                    }
                                    d
                                }
                            },
                        };
                        (f.name().clone(), deps)
                    })
                    .collect();
                PlanLineage { columns, rows }
            }
        })
    }

    /// Origins of one value expression over `input`: the columns it names
    /// (copied when the expression is a bare column, transformed otherwise)
    /// and its scalar subqueries' outputs; plus origins that decide rows
    /// (EXISTS / IN subqueries, the subqueries' own filters).
    async fn value_deps(
        &self,
        e: &Expr,
        input: &PlanLineage,
        schema: &DFSchema,
        depth: usize,
    ) -> DfResult<(Deps, Deps)> {
        let mut deps = Deps::new();
        let mut rows = Deps::new();
        let bare = strip_alias(e);
        if let Expr::Column(c) = bare {
            if let Some(d) = column_deps(c, input, schema) {
                merge(&mut deps, d, Kind::Copied);
            }
            return Ok((deps, rows));
        }
        let (cols, subqueries) = refs(e);
        for c in cols {
            if let Some(d) = column_deps(&c, input, schema) {
                merge(&mut deps, d, Kind::Transformed);
            }
        }
        for (sub, is_value) in subqueries {
            let l = self.walk(&sub, depth).await?;
            merge(&mut rows, &l.rows, Kind::Filter);
            for (_, d) in &l.columns {
                if is_value {
                    merge(&mut deps, d, Kind::Transformed);
                } else {
                    merge(&mut rows, d, Kind::Filter);
                }
            }
        }
        Ok((deps, rows))
    }

    /// Every origin `exprs` read, seen through `step`.
    async fn expr_deps(
        &self,
        exprs: &[Expr],
        input: &PlanLineage,
        schema: &DFSchema,
        step: Kind,
        depth: usize,
    ) -> DfResult<Deps> {
        let mut out = Deps::new();
        for e in exprs {
            let (d, r) = self.value_deps(e, input, schema, depth).await?;
            merge(&mut out, &d, step);
            merge(&mut out, &r, Kind::Filter);
        }
        Ok(out)
    }
}

/// Prefix of the CTE an ephemeral model is inlined as (`__sluice_ephemeral__`
/// then `schema__table`).
const EPHEMERAL_PREFIX: &str = "__sluice_ephemeral__";

/// `schema.table` of the ephemeral model a CTE inlines.
fn ephemeral_relation(alias: &str) -> Option<String> {
    let id = alias.strip_prefix(EPHEMERAL_PREFIX)?;
    let (schema, table) = id.split_once("__")?;
    Some(format!("{schema}.{table}"))
}

fn leaf(relation: &str, fields: &[String]) -> PlanLineage {
    PlanLineage {
        columns: fields
            .iter()
            .map(|f| {
                let mut d = Deps::new();
                d.insert(
                    Origin {
                        relation: relation.to_string(),
                        column: f.clone(),
                    },
                    Kind::Copied,
                );
                (f.clone(), d)
            })
            .collect(),
        rows: Deps::new(),
    }
}

/// The same columns under the names of `schema` (an alias renames them).
fn rename(mut l: PlanLineage, schema: &DFSchema) -> PlanLineage {
    for ((name, _), f) in l.columns.iter_mut().zip(schema.fields()) {
        *name = f.name().clone();
    }
    l
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn column_deps<'l>(c: &Column, input: &'l PlanLineage, schema: &DFSchema) -> Option<&'l Deps> {
    let i = schema.index_of_column(c).ok()?;
    input.columns.get(i).map(|(_, d)| d)
}

/// The columns an expression names and the subqueries in it (with whether
/// the subquery's value is used: scalar subqueries; EXISTS / IN decide rows).
fn refs(e: &Expr) -> (Vec<Column>, Vec<(LogicalPlan, bool)>) {
    let mut cols = Vec::new();
    let mut subs = Vec::new();
    let _ = e.apply(|x| {
        match x {
            Expr::Column(c) => cols.push(c.clone()),
            Expr::ScalarSubquery(s) => subs.push((s.subquery.as_ref().clone(), true)),
            Expr::Exists(s) => subs.push((s.subquery.subquery.as_ref().clone(), false)),
            Expr::InSubquery(s) => subs.push((s.subquery.subquery.as_ref().clone(), false)),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (cols, subs)
}

/// A join's output columns from its inputs' (semi and anti joins keep one
/// side, mark joins add a column).
fn by_name_from(
    schema: &DFSchema,
    inputs: &[(&Arc<LogicalPlan>, &PlanLineage)],
) -> Vec<(String, Deps)> {
    // Positional when the output is the inputs side by side.
    let total: usize = inputs.iter().map(|(_, l)| l.columns.len()).sum();
    if schema.fields().len() == total {
        return inputs
            .iter()
            .flat_map(|(_, l)| l.columns.iter().cloned())
            .zip(schema.fields())
            .map(|((_, d), f)| (f.name().clone(), d))
            .collect();
    }
    schema
        .iter()
        .map(|(q, f)| {
            let col = Column::new(q.cloned(), f.name());
            let deps = inputs
                .iter()
                .find_map(|(p, l)| {
                    p.schema()
                        .index_of_column(&col)
                        .ok()
                        .and_then(|i| l.columns.get(i))
                        .map(|(_, d)| d.clone())
                })
                .unwrap_or_default();
            (f.name().clone(), deps)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Engine;
    use crate::warehouse::Warehouse;

    async fn engine() -> Engine {
        let wh = Warehouse::open("memory://lineage", &Default::default()).unwrap();
        let e = Engine::new(wh, "main").await.unwrap();
        for sql in [
            "CREATE TABLE main.orders AS SELECT * FROM (VALUES (1, 10, 5.0, TIMESTAMP '2026-01-01 00:00:00')) t(id, customer_id, amount, ts)",
            "CREATE TABLE main.customers AS SELECT * FROM (VALUES (10, 'a', 'eu')) t(id, name, region)",
            "CREATE TABLE main.prices AS SELECT * FROM (VALUES (10, TIMESTAMP '2025-12-31 00:00:00', 1.5)) t(customer_id, ts, price)",
        ] {
            e.query(sql).await.unwrap();
        }
        e
    }

    /// Each output column with its origins as `table.column:kind`, sorted.
    async fn lineage(e: &Engine, sql: &str) -> Vec<(String, Vec<String>)> {
        let plan = e.plan(sql).await.unwrap();
        let state = e.context().state();
        let leaves = BTreeSet::new();
        let w = LineageWalker {
            state: &state,
            leaves: &leaves,
            default_schema: "main",
            reads: Default::default(),
        };
        w.lineage(&plan)
            .await
            .unwrap()
            .resolved()
            .into_iter()
            .map(|(c, d)| {
                let mut v: Vec<String> = d
                    .iter()
                    .map(|(o, k)| {
                        format!(
                            "{}.{}:{k}",
                            o.relation.trim_start_matches("main."),
                            o.column
                        )
                    })
                    .collect();
                v.sort();
                (c, v)
            })
            .collect()
    }

    fn expect(rows: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        rows.iter()
            .map(|(c, d)| {
                let mut v: Vec<String> = d.iter().map(|s| s.to_string()).collect();
                v.sort();
                (c.to_string(), v)
            })
            .collect()
    }

    #[tokio::test]
    async fn copies_transforms_and_filters_through_ctes_and_aliases() {
        let e = engine().await;
        let got = lineage(
            &e,
            "WITH o AS (SELECT orders.id, amount * 2 AS dbl, CASE WHEN amount > 1 THEN 'big' ELSE name END AS label \
             FROM orders, customers WHERE amount > 0) \
             SELECT id AS order_id, dbl, coalesce(label, 'x') AS label FROM o AS renamed",
        )
        .await;
        assert_eq!(
            got,
            expect(&[
                ("order_id", &["orders.id:copied", "orders.amount:filter"]),
                ("dbl", &["orders.amount:transformed"]),
                (
                    "label",
                    &["orders.amount:transformed", "customers.name:transformed"]
                ),
            ])
        );
    }

    #[tokio::test]
    async fn joins_and_aggregates() {
        let e = engine().await;
        let got = lineage(
            &e,
            "SELECT c.region, sum(o.amount) AS total, count(*) AS n \
             FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.region",
        )
        .await;
        let keys = ["orders.customer_id:filter", "customers.id:filter"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            let mut v: Vec<&str> = keys.to_vec();
            v.extend_from_slice(extra);
            v
        };
        assert_eq!(
            got,
            expect(&[
                ("region", &with(&["customers.region:copied"])),
                (
                    "total",
                    &with(&["orders.amount:aggregated", "customers.region:filter"])
                ),
                ("n", &with(&["customers.region:filter"])),
            ])
        );
    }

    #[tokio::test]
    async fn unions_windows_and_subqueries() {
        let e = engine().await;
        assert_eq!(
            lineage(
                &e,
                "SELECT id FROM orders UNION ALL SELECT id FROM customers"
            )
            .await,
            expect(&[("id", &["orders.id:copied", "customers.id:copied"])])
        );
        assert_eq!(
            lineage(
                &e,
                "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY ts) AS rn, \
                 sum(amount) OVER (PARTITION BY customer_id) AS s FROM orders"
            )
            .await,
            expect(&[
                ("id", &["orders.id:copied"]),
                ("rn", &["orders.customer_id:filter", "orders.ts:filter"]),
                (
                    "s",
                    &["orders.amount:aggregated", "orders.customer_id:filter"]
                ),
            ])
        );
        assert_eq!(
            lineage(
                &e,
                "SELECT c.id, (SELECT max(amount) FROM orders) AS mx FROM customers c \
                 WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) \
                 AND c.region IN (SELECT name FROM customers)"
            )
            .await,
            expect(&[
                (
                    "id",
                    &[
                        "customers.id:copied",
                        "orders.customer_id:filter",
                        "customers.region:filter",
                        "customers.name:filter"
                    ]
                ),
                (
                    "mx",
                    &[
                        "orders.amount:aggregated",
                        "orders.customer_id:filter",
                        "customers.region:filter",
                        "customers.name:filter"
                    ]
                ),
            ])
        );
    }

    #[tokio::test]
    async fn asof_joins_keep_each_sides_columns() {
        let e = engine().await;
        let got = lineage(
            &e,
            "SELECT o.id, p.price FROM orders o ASOF JOIN prices p \
             MATCH_CONDITION (o.ts >= p.ts) ON o.customer_id = p.customer_id",
        )
        .await;
        let keys = [
            "orders.customer_id:filter",
            "prices.customer_id:filter",
            "orders.ts:filter",
            "prices.ts:filter",
        ];
        let with = |extra: &'static str| -> Vec<&'static str> {
            let mut v: Vec<&str> = keys.to_vec();
            v.push(extra);
            v
        };
        // The operator breaks ties between rows of one key and time by the
        // right side's other columns: they decide which row matches.
        assert_eq!(
            got,
            expect(&[
                (
                    "id",
                    &[with("orders.id:copied"), vec!["prices.price:filter"]].concat()
                ),
                ("price", &with("prices.price:copied")),
            ])
        );
    }

    #[test]
    fn kinds_compose() {
        assert_eq!(Kind::Copied.then(Kind::Transformed), Kind::Transformed);
        assert_eq!(Kind::Aggregated.then(Kind::Copied), Kind::Aggregated);
        assert_eq!(Kind::Aggregated.then(Kind::Filter), Kind::Filter);
        assert_eq!(Kind::Filter.then(Kind::Copied), Kind::Filter);
    }
}
