//! Dependency inference: which tables a statement reads.
//!
//! Users never declare what a model reads from: the dependencies of a model are
//! inferred from its *rendered* SQL, parsed by the same front end as every query
//! ([`super::parser::parse_statements`]: sluice's dialect, the AS OF join forms,
//! `VERSION AS OF` / `TIMESTAMP AS OF`), so a model accepts exactly the syntax a
//! query does. Every table reference is collected, resolving single-part names
//! against the CTEs visible at that point so that a CTE is never mistaken for an
//! upstream model. Identifier case is normalised the way DataFusion does it:
//! unquoted lowercased, quoted kept as written.
//!
//! Table functions read tables too: a function registered with a
//! [`ReadsFn`] (through the engine's builder) declares the tables its literal
//! arguments name, e.g. `historical_features('raw.labels', 'user_txn_rolling')`
//! reads `raw.labels` and the feature view `user_txn_rolling`. Functions without
//! a declaration (`read_parquet('x')`) read no table.
//!
//! The walker is hand written rather than built on sqlparser's `visitor`
//! feature because that visitor has no notion of CTE scope (DataFusion's
//! `resolve_table_references` has, but gives no positions, which model
//! compilation needs to rewrite names in place).

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;

use datafusion::error::DataFusionError;
use datafusion::sql::parser::Statement as DFStatement;
use sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinConstraint,
    JoinOperator, ObjectName, OrderByExpr, Query, Select, SelectItem, SetExpr, SetOperator,
    Statement, TableFactor, TableWithJoins, WildcardAdditionalOptions, WindowSpec,
};
use sqlparser::parser::{Parser, ParserError};
use std::collections::HashMap;
use std::sync::Arc;

/// One table reference as written: identifier parts with case normalised like DataFusion
/// does (unquoted identifiers lowercased, quoted kept as written), e.g. ["raw","users"] or ["stg_users"].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub parts: Vec<String>,
}

impl Relation {
    /// Parts joined by '.', double-quoting parts that are not plain lowercase identifiers.
    pub fn display(&self) -> String {
        let parts: Vec<String> = self.parts.iter().map(|p| crate::names::ident(p)).collect();
        parts.join(".")
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// One place in the SQL where a relation is named, so that the name can be rewritten in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub relation: Relation,
    /// 1-based (line, column in chars) of the first character of the name, quotes included.
    /// (0, 0) when sqlparser keeps no position (only for the rare `TABLE name` query form).
    pub start: (u64, u64),
    /// 1-based (line, column) just past the last character of the name; (0, 0) when unknown.
    pub end: (u64, u64),
    /// Named by a table function's argument (a string), not written as a table
    /// name: a dependency when it names a model, and never an error otherwise
    /// (the function reports what it cannot find when it runs). Its position is
    /// (0, 0): there is no name to rewrite.
    pub declared: bool,
}

/// What a table function reads, from its arguments (`None` for an argument
/// that is not a string literal): table names (`schema.table`, `name`) or
/// queries (`SELECT ...`, whose tables are read).
pub type ReadsFn = Arc<dyn Fn(&[Option<String>]) -> Vec<String> + Send + Sync>;

/// The declared reads of every table function that has them, by lowercase name.
#[derive(Clone, Default)]
pub struct TableFunctionReads {
    functions: HashMap<String, ReadsFn>,
}

impl TableFunctionReads {
    /// Declares what the table function `name` reads.
    pub fn insert(&mut self, name: &str, reads: ReadsFn) {
        self.functions.insert(name.to_ascii_lowercase(), reads);
    }

    fn get(&self, name: &str) -> Option<&ReadsFn> {
        self.functions.get(name)
    }
}

impl fmt::Debug for TableFunctionReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.functions.keys().collect();
        names.sort();
        f.debug_set().entries(names).finish()
    }
}

/// A SQL syntax error; `line`/`column` are 1-based, as reported by sqlparser.
#[derive(Debug, Clone, PartialEq)]
pub struct DepsError {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl fmt::Display for DepsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " at line {l}, column {c}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for DepsError {}

impl From<ParserError> for DepsError {
    /// Splits sqlparser's " at Line: 3, Column: 5" suffix off the message.
    fn from(err: ParserError) -> Self {
        let raw = match err {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => "recursion limit exceeded".to_string(),
        };
        const MARK: &str = " at Line: ";
        if let Some(idx) = raw.rfind(MARK) {
            if let Some((l, c)) = raw[idx + MARK.len()..].split_once(", Column: ") {
                if let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse()) {
                    let message = raw[..idx].to_string();
                    return DepsError {
                        message,
                        line: Some(line),
                        column: Some(column),
                    };
                }
            }
        }
        DepsError {
            message: raw,
            line: None,
            column: None,
        }
    }
}

/// Every relation referenced anywhere in `sql` (all statements), minus names that refer
/// to a CTE visible at that point. Sorted and deduplicated.
///
/// The target of `INSERT` / `CREATE TABLE` / `CREATE VIEW` is not a dependency, the query
/// inside is. Table-valued functions in `FROM` (`read_csv('x')`) are not relations.
pub fn referenced_relations(
    sql: &str,
    functions: &TableFunctionReads,
) -> Result<Vec<Relation>, DepsError> {
    let occurrences = relation_occurrences(sql, functions)?;
    let set: BTreeSet<Relation> = occurrences.into_iter().map(|o| o.relation).collect();
    Ok(set.into_iter().collect())
}

/// Like [`referenced_relations`], but every occurrence with its position, in source order.
pub fn relation_occurrences(
    sql: &str,
    functions: &TableFunctionReads,
) -> Result<Vec<Occurrence>, DepsError> {
    let statements = parse(sql)?;
    Ok(occurrences_in(&statements, functions))
}

/// The relations of a model: its SQL must be exactly one query (`SELECT`,
/// `WITH ... SELECT`, `VALUES`, set operations); DDL or DML is refused.
pub fn model_relations(
    sql: &str,
    functions: &TableFunctionReads,
) -> Result<Vec<Occurrence>, DepsError> {
    let statements = parse(sql)?;
    match statements.as_slice() {
        [DFStatement::Statement(s)] if matches!(**s, Statement::Query(_)) => {
            Ok(occurrences_in(&statements, functions))
        }
        [] => Err(DepsError {
            message: "the model is empty: write one SELECT query".into(),
            line: None,
            column: None,
        }),
        [_] => Err(DepsError {
            message: "a model is one SELECT query (sluice creates the table or view); DDL and DML are not allowed here".into(),
            line: None,
            column: None,
        }),
        _ => Err(DepsError {
            message: format!(
                "a model is one SELECT query, but this file has {} statements",
                statements.len()
            ),
            line: None,
            column: None,
        }),
    }
}

fn occurrences_in(statements: &[DFStatement], functions: &TableFunctionReads) -> Vec<Occurrence> {
    let mut walker = Walker::new(functions);
    for statement in statements {
        walker.df_statement(statement);
    }
    walker.found.sort_by_key(|o| o.start);
    walker.found
}

/// Parses with the front end (which refuses, and safely takes apart, statements
/// nested too deeply for the recursive walk below).
fn parse(sql: &str) -> Result<Vec<DFStatement>, DepsError> {
    let limit = datafusion::config::SqlParserOptions::default().recursion_limit;
    super::parser::parse_statements(sql, limit.get()).map_err(|e| {
        // DataFusion wraps the parser's error (in a diagnostic, ...).
        let mut err = match e.find_root() {
            DataFusionError::SQL(parse, _) => DepsError::from(parse.as_ref().clone()),
            _ => DepsError {
                message: crate::Error::from(e).to_string(),
                line: None,
                column: None,
            },
        };
        // sqlparser reports no position for an unexpected end of input: use the end.
        if err.line.is_none() && err.message.ends_with("found: EOF") {
            let last_line = sql.rsplit('\n').next().unwrap_or_default();
            err.line = Some(sql.matches('\n').count() as u64 + 1);
            err.column = Some(last_line.chars().count() as u64 + 1);
        }
        err
    })
}

/// A string a table function declared it reads: a table name, or the tables
/// of a query.
fn declared(text: &str, functions: &TableFunctionReads) -> Vec<Occurrence> {
    let name = Parser::new(&super::parser::SluiceDialect)
        .try_with_sql(text)
        .and_then(|mut p| {
            let name = p.parse_object_name(false)?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
            Ok(name)
        });
    let mut found = match name {
        Ok(name) => {
            let mut walker = Walker::new(functions);
            walker.relation(&name);
            walker.found
        }
        Err(_) => match parse(text) {
            Ok(statements) => occurrences_in(&statements, functions),
            // The function reports a bad query when it runs.
            Err(_) => Vec::new(),
        },
    };
    for o in &mut found {
        o.declared = true;
        o.start = (0, 0);
        o.end = (0, 0);
    }
    found
}

fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

struct Walker<'f> {
    /// Normalised names of the CTEs visible at the current point; a stack: a query
    /// pushes its CTEs while it is walked and truncates them when done.
    ctes: Vec<String>,
    found: Vec<Occurrence>,
    functions: &'f TableFunctionReads,
}

impl<'f> Walker<'f> {
    fn new(functions: &'f TableFunctionReads) -> Self {
        Walker {
            ctes: Vec::new(),
            found: Vec::new(),
            functions,
        }
    }

    fn df_statement(&mut self, statement: &DFStatement) {
        match statement {
            DFStatement::Statement(s) => self.statement(s),
            DFStatement::Explain(e) => self.df_statement(&e.statement),
            DFStatement::CopyTo(c) => match &c.source {
                datafusion::sql::parser::CopyToSource::Query(q) => self.query(q, None),
                datafusion::sql::parser::CopyToSource::Relation(name) => self.relation(name),
            },
            DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => {}
        }
    }

    /// The tables a table function `name(args)` declared it reads.
    fn function_reads(&mut self, name: &ObjectName, args: &[FunctionArg]) {
        let Some(last) = name.0.last().and_then(|p| p.as_ident()) else {
            return;
        };
        let Some(reads) = self.functions.get(&normalize(last)) else {
            return;
        };
        let values: Vec<Option<String>> = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => {
                    v.value.clone().into_string()
                }
                _ => None,
            })
            .collect();
        for text in reads(&values) {
            let found = declared(&text, self.functions);
            self.found.extend(found);
        }
    }

    fn add(&mut self, parts: Vec<String>, start: (u64, u64), end: (u64, u64)) {
        let is_cte = parts.len() == 1 && self.ctes.contains(&parts[0]);
        if !parts.is_empty() && !is_cte {
            let relation = Relation { parts };
            self.found.push(Occurrence {
                relation,
                start,
                end,
                declared: false,
            });
        }
    }

    fn relation(&mut self, name: &ObjectName) {
        // A part computed by a function (`IDENTIFIER(...)`) cannot be resolved statically.
        let idents: Option<Vec<&Ident>> = name.0.iter().map(|p| p.as_ident()).collect();
        if let Some([first, .., last] | [first @ last]) = idents.as_deref() {
            let (start, end) = (first.span.start, last.span.end);
            let parts = idents.iter().flatten().map(|i| normalize(i)).collect();
            self.add(parts, (start.line, start.column), (end.line, end.column));
        }
    }

    fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::Query(q) => self.query(q, None),
            Statement::Explain { statement, .. } => self.statement(statement),
            Statement::Insert(insert) => {
                if let Some(source) = &insert.source {
                    self.query(source, None);
                }
                self.exprs(insert.assignments.iter().map(|a| &a.value));
            }
            Statement::CreateTable(create) => {
                if let Some(q) = &create.query {
                    self.query(q, None);
                }
                if let Some(
                    ast::CreateTableLikeKind::Parenthesized(like)
                    | ast::CreateTableLikeKind::Plain(like),
                ) = &create.like
                {
                    self.relation(&like.name);
                }
                if let Some(clone) = &create.clone {
                    self.relation(clone);
                }
            }
            Statement::CreateView(create) => self.query(&create.query, None),
            // UPDATE/DELETE/MERGE, SET, COPY, DDL without a query, ...: not model SQL.
            _ => {}
        }
    }

    /// Walks a query in its own CTE scope. `recursive_name` is set for the body of a CTE
    /// declared `WITH RECURSIVE`: as in DataFusion's planner, the CTE then sees itself only
    /// in the recursive term (right-hand side of a top-level `UNION [ALL]`), not in the
    /// anchor term nor in a body that is not a UNION.
    fn query(&mut self, query: &Query, recursive_name: Option<&str>) {
        let mark = self.ctes.len();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = normalize(&cte.alias.name);
                self.query(&cte.query, with.recursive.then_some(name.as_str()));
                // Visible to later siblings and to the query itself, not to earlier siblings.
                self.ctes.push(name);
            }
        }
        match (recursive_name, query.body.as_ref()) {
            (
                Some(name),
                SetExpr::SetOperation {
                    op: SetOperator::Union,
                    left,
                    right,
                    ..
                },
            ) => {
                self.set_expr(left);
                self.ctes.push(name.to_string());
                self.set_expr(right);
            }
            (_, body) => self.set_expr(body),
        }
        if let Some(order_by) = &query.order_by {
            if let ast::OrderByKind::Expressions(exprs) = &order_by.kind {
                self.order_by_exprs(exprs);
            }
            for i in order_by
                .interpolate
                .iter()
                .flat_map(|i| i.exprs.iter().flatten())
            {
                self.opt_expr(&i.expr);
            }
        }
        match &query.limit_clause {
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                self.opt_expr(limit);
                self.opt_expr(&offset.as_ref().map(|o| &o.value));
                self.exprs(limit_by);
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.exprs([offset, limit]);
            }
            None => {}
        }
        self.opt_expr(&query.fetch.as_ref().and_then(|f| f.quantity.as_ref()));
        for op in &query.pipe_operators {
            self.pipe_operator(op);
        }
        self.ctes.truncate(mark);
    }

    fn set_expr(&mut self, mut set: &SetExpr) {
        // Iterate down the left spine: long `UNION ALL` chains nest to the left.
        while let SetExpr::SetOperation { left, right, .. } = set {
            self.set_expr(right);
            set = left;
        }
        match set {
            SetExpr::SetOperation { .. } => {} // consumed by the loop above
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(q) => self.query(q, None),
            SetExpr::Values(values) => self.exprs(values.rows.iter().flat_map(|r| &r.content)),
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                self.statement(s)
            }
            // `TABLE [schema.]name`: sqlparser keeps no quoting information here.
            SetExpr::Table(t) => {
                let parts = [&t.schema_name, &t.table_name].into_iter().flatten();
                self.add(
                    parts.map(|p| p.to_ascii_lowercase()).collect(),
                    (0, 0),
                    (0, 0),
                );
            }
        }
    }

    fn select(&mut self, s: &Select) {
        if let Some(ast::Distinct::On(exprs)) = &s.distinct {
            self.exprs(exprs);
        }
        if let Some(ast::TopQuantity::Expr(e)) = s.top.as_ref().and_then(|t| t.quantity.as_ref()) {
            self.expr(e);
        }
        self.select_items(&s.projection);
        self.from(&s.from);
        self.exprs(s.lateral_views.iter().map(|v| &v.lateral_view));
        self.opt_expr(&s.prewhere);
        self.opt_expr(&s.selection);
        for clause in &s.connect_by {
            match clause {
                ast::ConnectByKind::ConnectBy { relationships, .. } => self.exprs(relationships),
                ast::ConnectByKind::StartWith { condition, .. } => self.expr(condition),
            }
        }
        let modifiers = match &s.group_by {
            ast::GroupByExpr::All(modifiers) => modifiers,
            ast::GroupByExpr::Expressions(exprs, modifiers) => {
                self.exprs(exprs);
                modifiers
            }
        };
        for modifier in modifiers {
            if let ast::GroupByWithModifier::GroupingSets(e) = modifier {
                self.expr(e);
            }
        }
        self.exprs(s.cluster_by.iter().chain(&s.distribute_by));
        self.order_by_exprs(&s.sort_by);
        self.opt_expr(&s.having);
        for ast::NamedWindowDefinition(_, window) in &s.named_window {
            if let ast::NamedWindowExpr::WindowSpec(spec) = window {
                self.window_spec(spec);
            }
        }
        self.opt_expr(&s.qualify);
    }

    fn select_items<'a>(&mut self, items: impl IntoIterator<Item = &'a SelectItem>) {
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e)
                | SelectItem::ExprWithAlias { expr: e, .. }
                | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
                SelectItem::QualifiedWildcard(kind, options) => {
                    if let ast::SelectItemQualifiedWildcardKind::Expr(e) = kind {
                        self.expr(e);
                    }
                    self.wildcard_options(options);
                }
                SelectItem::Wildcard(options) => self.wildcard_options(options),
            }
        }
    }

    fn wildcard_options(&mut self, options: &WildcardAdditionalOptions) {
        self.exprs(
            options
                .opt_replace
                .iter()
                .flat_map(|r| &r.items)
                .map(|i| &i.expr),
        );
    }

    fn from<'a>(&mut self, from: impl IntoIterator<Item = &'a TableWithJoins>) {
        for twj in from {
            self.table_factor(&twj.relation);
            self.joins(&twj.joins);
        }
    }

    fn joins(&mut self, joins: &[ast::Join]) {
        for join in joins {
            self.table_factor(&join.relation);
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c)
                | JoinOperator::StraightJoin(c) => c,
                JoinOperator::AsOf {
                    match_condition,
                    constraint,
                } => {
                    self.expr(match_condition);
                    constraint
                }
                JoinOperator::CrossApply
                | JoinOperator::OuterApply
                | JoinOperator::ArrayJoin
                | JoinOperator::LeftArrayJoin
                | JoinOperator::InnerArrayJoin => continue,
            };
            if let JoinConstraint::On(e) = constraint {
                self.expr(e);
            }
        }
    }

    fn table_factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                ..
            } => {
                match args {
                    // `name(args)` in FROM is a table-valued function, not a
                    // relation; it may declare the tables it reads.
                    Some(args) => {
                        self.function_args(&args.args);
                        self.function_reads(name, &args.args);
                    }
                    None => self.relation(name),
                }
                self.exprs(with_hints);
                match version {
                    Some(
                        ast::TableVersion::ForSystemTimeAsOf(e)
                        | ast::TableVersion::TimestampAsOf(e)
                        | ast::TableVersion::VersionAsOf(e)
                        | ast::TableVersion::Function(e),
                    ) => self.expr(e),
                    Some(ast::TableVersion::Changes { changes, at, end }) => {
                        self.exprs([changes, at].into_iter().chain(end));
                    }
                    None => {}
                }
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery, None),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.from([table_with_joins.as_ref()]),
            TableFactor::Function { name, args, .. } => {
                self.function_args(args);
                self.function_reads(name, args);
            }
            TableFactor::UNNEST { array_exprs, .. } => self.exprs(array_exprs),
            TableFactor::TableFunction { expr: e, .. }
            | TableFactor::JsonTable { json_expr: e, .. }
            | TableFactor::OpenJsonTable { json_expr: e, .. } => self.expr(e),
            TableFactor::Pivot {
                table,
                aggregate_functions,
                value_source,
                ..
            } => {
                self.table_factor(table);
                self.exprs(aggregate_functions.iter().map(|a| &a.expr));
                self.pivot_values(value_source);
            }
            TableFactor::Unpivot { table, .. } | TableFactor::MatchRecognize { table, .. } => {
                self.table_factor(table)
            }
            // Dialect-specific factors DataFusion cannot plan (XMLTABLE, SEMANTIC_VIEW).
            TableFactor::XmlTable { .. } | TableFactor::SemanticView { .. } => {}
        }
    }

    fn pivot_values(&mut self, source: &ast::PivotValueSource) {
        match source {
            ast::PivotValueSource::List(list) => self.exprs(list.iter().map(|a| &a.expr)),
            ast::PivotValueSource::Any(order_by) => self.order_by_exprs(order_by),
            ast::PivotValueSource::Subquery(q) => self.query(q, None),
        }
    }

    /// BigQuery-style pipe syntax (`FROM t |> WHERE ...`), which DataFusion plans.
    fn pipe_operator(&mut self, op: &ast::PipeOperator) {
        use ast::PipeOperator as P;
        match op {
            P::Where { expr } => self.expr(expr),
            P::Limit { expr, offset } => self.exprs(std::iter::once(expr).chain(offset)),
            P::OrderBy { exprs } => self.order_by_exprs(exprs),
            P::Select { exprs } | P::Extend { exprs } => self.select_items(exprs),
            P::Set { assignments } => self.exprs(assignments.iter().map(|a| &a.value)),
            P::Aggregate {
                full_table_exprs: a,
                group_by_expr: b,
            } => self.exprs(a.iter().chain(b).map(|e| &e.expr.expr)),
            P::Union { queries, .. } | P::Intersect { queries, .. } | P::Except { queries, .. } => {
                queries.iter().for_each(|q| self.query(q, None))
            }
            P::Call { function, .. } => self.function(function),
            P::Pivot {
                aggregate_functions,
                value_source,
                ..
            } => {
                self.exprs(aggregate_functions.iter().map(|a| &a.expr));
                self.pivot_values(value_source);
            }
            P::Join(join) => self.joins(std::slice::from_ref(join)),
            P::Drop { .. }
            | P::As { .. }
            | P::TableSample { .. }
            | P::Rename { .. }
            | P::Unpivot { .. } => {}
        }
    }

    fn order_by_exprs(&mut self, exprs: &[OrderByExpr]) {
        for e in exprs {
            self.expr(&e.expr);
            if let Some(fill) = &e.with_fill {
                self.exprs([&fill.from, &fill.to, &fill.step].into_iter().flatten());
            }
        }
    }

    fn window_spec(&mut self, spec: &WindowSpec) {
        self.exprs(&spec.partition_by);
        self.order_by_exprs(&spec.order_by);
        if let Some(frame) = &spec.window_frame {
            for bound in std::iter::once(&frame.start_bound).chain(&frame.end_bound) {
                if let ast::WindowFrameBound::Preceding(Some(e))
                | ast::WindowFrameBound::Following(Some(e)) = bound
                {
                    self.expr(e);
                }
            }
        }
    }

    fn function(&mut self, f: &ast::Function) {
        self.function_arguments(&f.parameters);
        self.function_arguments(&f.args);
        self.opt_expr(&f.filter);
        if let Some(ast::WindowType::WindowSpec(spec)) = &f.over {
            self.window_spec(spec);
        }
        self.order_by_exprs(&f.within_group);
    }

    fn function_arguments(&mut self, args: &FunctionArguments) {
        match args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(q) => self.query(q, None),
            FunctionArguments::List(list) => {
                self.function_args(&list.args);
                for clause in &list.clauses {
                    use ast::FunctionArgumentClause as C;
                    match clause {
                        C::OrderBy(exprs) => self.order_by_exprs(exprs),
                        C::Limit(e) | C::Having(ast::HavingBound(_, e)) => self.expr(e),
                        C::OnOverflow(ast::ListAggOnOverflow::Truncate { filler, .. }) => {
                            self.opt_expr(filler)
                        }
                        C::OnOverflow(_)
                        | C::IgnoreOrRespectNulls(_)
                        | C::Separator(_)
                        | C::JsonNullClause(_)
                        | C::JsonReturningClause(_) => {}
                    }
                }
            }
        }
    }

    fn function_args(&mut self, args: &[FunctionArg]) {
        for arg in args {
            let arg = match arg {
                FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
                FunctionArg::ExprNamed { name, arg, .. } => {
                    self.expr(name);
                    arg
                }
            };
            match arg {
                FunctionArgExpr::Expr(e) => self.expr(e),
                FunctionArgExpr::WildcardWithOptions(options) => self.wildcard_options(options),
                FunctionArgExpr::QualifiedWildcard(_) | FunctionArgExpr::Wildcard => {}
            }
        }
    }

    fn exprs<'a, E: Borrow<Expr> + 'a>(&mut self, exprs: impl IntoIterator<Item = &'a E>) {
        for e in exprs {
            self.expr(e.borrow());
        }
    }

    fn opt_expr<E: Borrow<Expr>>(&mut self, e: &Option<E>) {
        if let Some(e) = e {
            self.expr(e.borrow());
        }
    }

    /// Walks every sub-expression; the match lists all `Expr` variants (no catch-all) so that
    /// a sqlparser upgrade adding a variant fails to compile here instead of missing subqueries.
    fn expr(&mut self, mut e: &Expr) {
        // Iterate down the left spine: `a OR b OR c ...` nests to the left without bound.
        while let Expr::BinaryOp { left, right, .. } = e {
            self.expr(right);
            e = left;
        }
        match e {
            Expr::BinaryOp { .. } => {} // consumed by the loop above
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q, None),
            Expr::InSubquery { expr, subquery, .. } => {
                self.expr(expr);
                self.query(subquery, None);
            }
            Expr::Function(f) => self.function(f),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                self.opt_expr(operand);
                self.exprs(conditions.iter().flat_map(|w| [&w.condition, &w.result]));
                self.opt_expr(else_result);
            }
            Expr::InList { expr, list, .. } => {
                self.expr(expr);
                self.exprs(list);
            }
            Expr::Between {
                expr, low, high, ..
            } => self.exprs([expr, low, high]),
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. }
            | Expr::RLike { expr, pattern, .. } => self.exprs([expr, pattern]),
            Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::Position {
                expr: left,
                r#in: right,
            }
            | Expr::MemberOf(ast::MemberOf {
                value: left,
                array: right,
            }) => self.exprs([left, right]),
            Expr::InUnnest {
                expr, array_expr, ..
            } => self.exprs([expr, array_expr]),
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => self.exprs([timestamp, time_zone]),
            Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::IsNormalized { expr: x, .. }
            | Expr::UnaryOp { expr: x, .. }
            | Expr::Cast { expr: x, .. }
            | Expr::Extract { expr: x, .. }
            | Expr::Ceil { expr: x, .. }
            | Expr::Floor { expr: x, .. }
            | Expr::Collate { expr: x, .. }
            | Expr::Nested(x)
            | Expr::Prefixed { value: x, .. }
            | Expr::Named { expr: x, .. }
            | Expr::OuterJoin(x)
            | Expr::Prior(x)
            | Expr::Interval(ast::Interval { value: x, .. })
            | Expr::Lambda(ast::LambdaFunction { body: x, .. }) => self.expr(x),
            Expr::Convert { expr, styles, .. } => {
                self.expr(expr);
                self.exprs(styles);
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.expr(expr);
                self.exprs([substring_from, substring_for].into_iter().flatten());
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                self.expr(expr);
                self.opt_expr(trim_what);
                self.exprs(trim_characters.iter().flatten());
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                self.exprs(
                    [expr, overlay_what, overlay_from]
                        .into_iter()
                        .chain(overlay_for),
                );
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.expr(root);
                for access in access_chain {
                    match access {
                        ast::AccessExpr::Dot(e)
                        | ast::AccessExpr::Subscript(ast::Subscript::Index { index: e }) => {
                            self.expr(e)
                        }
                        ast::AccessExpr::Subscript(ast::Subscript::Slice {
                            lower_bound: a,
                            upper_bound: b,
                            stride: c,
                        }) => self.exprs([a, b, c].into_iter().flatten()),
                    }
                }
            }
            Expr::JsonAccess { value, path } => {
                self.expr(value);
                for elem in &path.path {
                    if let ast::JsonPathElem::Bracket { key }
                    | ast::JsonPathElem::ColonBracket { key } = elem
                    {
                        self.expr(key);
                    }
                }
            }
            Expr::Tuple(list)
            | Expr::Struct { values: list, .. }
            | Expr::Array(ast::Array { elem: list, .. }) => self.exprs(list),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                self.exprs(sets.iter().flatten())
            }
            Expr::Dictionary(fields) => self.exprs(fields.iter().map(|f| &f.value)),
            Expr::Map(map) => self.exprs(map.entries.iter().flat_map(|e| [&e.key, &e.value])),
            // Leaves: no nested expressions or queries.
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::MatchAgainst { .. }
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> TableFunctionReads {
        TableFunctionReads::default()
    }

    /// Each case is `"<sql> => <expected relations, space separated>"`.
    fn check(cases: &[&str]) {
        for case in cases {
            let (sql, expected) = case.rsplit_once("=>").unwrap();
            let short: String = sql.chars().take(120).collect();
            let rels =
                referenced_relations(sql, &none()).unwrap_or_else(|e| panic!("{short}: {e}"));
            let got: Vec<String> = rels.iter().map(Relation::display).collect();
            assert_eq!(got.join(" "), expected.trim(), "{short}");
        }
    }

    #[test]
    fn names_case_and_quoting() {
        check(&[
            "select * from users => users",
            "select 1 =>",
            " =>",
            "select * from RAW.USERS => raw.users",
            r#"select * from "Raw"."Users" => "Raw"."Users""#,
            r#"select * from cat.sch."my table" => cat.sch."my table""#,
            "select * from b join a on true join B on true, a => a b",
        ]);
        let rels =
            referenced_relations(r#"select * from "Raw"."Users", RAW.USERS"#, &none()).unwrap();
        assert_eq!(rels[0].parts, ["Raw", "Users"]);
        assert_eq!(rels[1].parts, ["raw", "users"]);
        let odd = Relation {
            parts: vec!["a\"b".into(), "1x".into(), "ok_1".into()],
        };
        assert_eq!(odd.to_string(), r#""a""b"."1x".ok_1"#);
    }

    #[test]
    fn joins_of_every_kind() {
        check(&[
            "select * from t00 \
            join t01 on t01.id = t00.id inner join t02 using (id) \
            left join t03 on true left outer join t04 on true \
            right join t05 on true right outer join t06 on true \
            full outer join t07 on true cross join t08 natural join t09 \
            left semi join t10 on true left anti join t11 on true \
            right semi join t12 on true right anti join t13 on true \
            semi join t14 on true anti join t15 on true \
            cross apply t16 outer apply t17 \
            asof join t18 match_condition (t00.ts >= t18.ts) on t00.k = t18.k \
            => t00 t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16 t17 t18",
            "select * from a join b on b.x in (select x from c) \
            asof join d match_condition (a.ts >= (select max(ts) from e)) on true => a b c d e",
        ]);
    }

    #[test]
    fn cte_scoping() {
        check(&[
            // The WITH covers the whole set operation body ...
            "with c as (select 1) select * from c union select * from c =>",
            "with c as (select 1) select * from c intersect select * from o except table c => o",
            // ... while a CTE on one side of a UNION is visible on that side only.
            "select * from c union all (with c as (select 1) select * from c) => c",
            // A CTE shadows a table only where visible.
            "select * from (with x as (select 1) select * from x) s join x on s.a = x.a => x",
            "with x as (select 1) select * from x where exists (select * from x) =>",
            "select (with a as (select 1) select * from a), * from a => a",
            // Earlier siblings are visible, later ones are not.
            "with a as (select * from r.a), b as (select * from a) select * from b => r.a",
            "with a as (select * from b), b as (select 1) select * from a, b => b",
            "with a as (select 1), b as (select * from (select * from a)) table b =>",
            // Only single-part names match, after case normalisation.
            "with x as (select 1) select * from raw.x, x => raw.x",
            "with Foo as (select 1) select * from FOO =>",
            r#"with "Foo" as (select 1) select * from foo => foo"#,
            r#"with "Foo" as (select 1) select * from "Foo" =>"#,
            // A CTE's body does not see the CTE itself.
            "with orders as (select * from orders) select * from orders => orders",
        ]);
    }

    #[test]
    fn recursive_cte() {
        check(&[
            "with recursive r as (select 1 union all select n from r) select * from r =>",
            "with recursive tree as (select id from nodes where parent is null \
            union all select n.id from nodes n join tree t on n.parent = t.id) \
            select * from tree => nodes",
            // As in DataFusion: neither the anchor term nor a non-UNION body sees the CTE.
            "with recursive t as (select * from t) select * from t => t",
            "with recursive t as (select * from t union select * from t) select 1 => t",
        ]);
    }

    #[test]
    fn subqueries_in_expressions() {
        check(&[
            "select * from a where id in (select id from b) => a b",
            "select 1 where exists (select 1 from c) and not exists (select 1 from d) => c d",
            "select 1 where x > (select max(x) from e) and y between 1 and (select 1 from f) => e f",
            "select (select count(*) from b) as n, coalesce((select y from e), 0) => b e",
            "select x from a group by x having count(*) > (select count(*) from k) => a k",
            "select case when x in (select x from c) then 1 else (select 1 from d) end => c d",
            "select cast((select 1 from f) as int), -(select 1 from g), [(select 1 from h)] => f g h",
            "select sum(v) filter (where v > (select 1 from g)) from a => a g",
            "select rank() over (partition by (select 1 from h) order by (select 1 from i)) => h i",
            "select 1 group by (select 1 from j) qualify 1 = (select 1 from l) => j l",
            "select 1 order by (select 1 from m) limit (select 1 from n) offset (select 1 from o) \
            => m n o",
            "select * from (values (1, (select 1 from a)), (2, 3)) v(x, y) => a",
            "select struct((select 1 from b)), f(x => (select 1 from c)), x is null => b c",
        ]);
    }

    #[test]
    fn from_clause_shapes() {
        check(&[
            "select * from (select * from raw.users) u => raw.users",
            "select * from a, lateral (select * from b where b.id = a.id) l => a b",
            "select * from ((a join b on true) left join (c cross join d) on true) => a b c d",
            "select * from read_csv('x.csv') =>",
            "select * from generate_series(1, (select max(n) from nums)) g, t => nums t",
            "select * from unnest([1, 2]) u =>",
            "from a |> where x in (select x from b) |> join c on true => a b c",
        ]);
    }

    #[test]
    fn time_travel_is_still_a_dependency() {
        check(&[
            "select * from events version as of 3 => events",
            "select * from raw.events timestamp as of '2026-01-01T00:00:00Z' e => raw.events",
            "select * from a version as of 1 join a version as of 2 on true => a",
        ]);
    }

    #[test]
    fn asof_joins_in_every_form_are_dependencies() {
        check(&[
            // Snowflake form.
            "select * from l asof join r match_condition (l.ts >= r.ts) on l.k = r.k => l r",
            // DuckDB forms, which sqlparser alone does not parse.
            "select * from l asof left join q on l.k = q.k and l.ts >= q.ts => l q",
            "select * from l asof join q using (k, ts) => l q",
            "select * from l asof join q on l.k = q.k and l.ts >= q.ts tolerance interval '1 day' tiebreak by q.seq => l q",
            "with q as (select * from b) select * from l asof left join q on l.k = q.k and l.ts >= q.ts => b l",
        ]);
    }

    #[test]
    fn table_functions_declare_what_they_read() {
        let mut functions = TableFunctionReads::default();
        functions.insert(
            "historical_features",
            Arc::new(|args: &[Option<String>]| {
                args.iter()
                    .flatten()
                    .filter(|a| !a.contains('='))
                    .map(|a| a.split(':').next().unwrap_or(a).to_string())
                    .collect()
            }),
        );
        let cases = [
            ("select * from historical_features('raw.labels', 'user_txn_rolling', 'v2:f', 'timestamp=at')", "raw.labels user_txn_rolling v2"),
            ("select * from HISTORICAL_FEATURES('SELECT * FROM stg_users u JOIN raw.x ON true', 'fv')", "fv raw.x stg_users"),
            // A CTE of the query is not what the function reads.
            ("with fv as (select 1) select * from historical_features('e', 'fv')", "e fv"),
            ("select * from read_parquet('x.parquet')", ""),
            ("select * from historical_features('not valid sql ((', 'fv')", "fv"),
        ];
        for (sql, expected) in cases {
            let rels = referenced_relations(sql, &functions).unwrap();
            let got: Vec<String> = rels.iter().map(Relation::display).collect();
            assert_eq!(got.join(" "), expected, "{sql}");
            let occ = relation_occurrences(sql, &functions).unwrap();
            assert!(
                occ.iter().all(|o| o.declared && o.start == (0, 0)),
                "{occ:?}"
            );
        }
    }

    #[test]
    fn statements() {
        check(&[
            "create table out.t as select * from src.a join b on true => b src.a",
            "create view v as with c as (select * from a) select * from c => a",
            "insert into tgt select * from src where x in (select x from s2) => s2 src",
            "insert into tgt values (1), ((select 1 from s)) => s",
            "with c as (select 1) insert into tgt select * from c =>",
            "explain select * from a => a",
            "create table x as select * from b; with a as (select 1) select * from a, b => b",
        ]);
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = referenced_relations("select *\nfrom a\nwhere x = = 1", &none()).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(11)));
        assert_eq!(err.message, "Expected: an expression, found: =");
        assert_eq!(
            err.to_string(),
            "Expected: an expression, found: = at line 3, column 11"
        );
        let err = referenced_relations("select 'unterminated", &none()).unwrap_err();
        assert_eq!((err.line, err.column), (Some(1), Some(8)));
        // Unexpected end of input: sqlparser gives no position, so the end is used.
        let err = referenced_relations("select *\nfrom a\nwhere (x", &none()).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(9)));
    }

    #[test]
    fn long_chains_do_not_overflow_the_stack() {
        let ors = vec!["x = 1"; 5000].join(" or ");
        check(&[&format!(
            "select * from a where {ors} or x in (select 1 from b) => a b"
        )]);
        let unions = vec!["select 1 from a"; 2000].join(" union all ");
        check(&[&format!("{unions} union all select 2 from b => a b")]);
    }

    #[test]
    fn occurrences_have_positions() {
        let sql =
            "with c as (select 1)\nselect * from c, raw.Users u\n  join \"Q\".\"T\" on true, c2";
        let occ = relation_occurrences(sql, &none()).unwrap();
        let got: Vec<_> = occ
            .iter()
            .map(|o| (o.relation.display(), o.start, o.end))
            .collect();
        assert_eq!(
            got,
            [
                ("raw.users".to_string(), (2, 18), (2, 27)),
                (r#""Q"."T""#.to_string(), (3, 8), (3, 15)),
                ("c2".to_string(), (3, 25), (3, 27)),
            ]
        );
    }
}
