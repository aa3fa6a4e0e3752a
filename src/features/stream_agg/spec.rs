//! The definition of a stream feature view, read from its SQL: the source
//! table, the row filter, the entity columns and the windowed aggregates.
//!
//! The SQL is parsed with sluice's one front end
//! ([`crate::sql::parser::parse_statements`]) and only this shape is accepted:
//!
//! ```sql
//! SELECT <entity>, ...,
//!        <f>(<arg>) FILTER (WHERE <event_timestamp> > now() - INTERVAL '<n> <unit>') AS <alias>, ...
//! FROM <table> [AS <alias>]
//! [WHERE <row filter>]
//! GROUP BY <entity>, ...
//! ```
//!
//! with `f` one of `count(*)`, `count(expr)`, `sum`, `avg`, `min`, `max`.
//! Everything else is refused with a message naming the model, the item and
//! what is allowed, because every accepted form must have an online state that
//! is updated per event and gives exactly what the same SQL gives offline.

use crate::error::{Error, Result};
use crate::names::quote_ident;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    visit_expressions, BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, SelectItem, SetExpr,
    Statement, TableFactor, Value,
};
use std::ops::ControlFlow;

/// The longest window accepted (about 100 years): intervals stay far from the
/// `i64` nanoseconds DataFusion computes with.
pub const MAX_WINDOW_US: i64 = 36_500 * 86_400_000_000;

/// An aggregate function of a stream feature view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count(*)`: rows.
    CountStar,
    /// `count(expr)`: rows where `expr` is not NULL.
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFunc {
    /// The SQL name (`count` for both counts).
    pub fn sql_name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
        }
    }
}

/// One windowed aggregate: `func(arg) FILTER (WHERE ts > now() - INTERVAL w) AS alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAgg {
    /// The output column (an unquoted alias lowercased, as DataFusion does).
    pub alias: String,
    pub func: AggFunc,
    /// The SQL text of the argument (`None` for `count(*)`).
    pub arg: Option<String>,
    /// The window `w` in microseconds: the value at `T` aggregates the events
    /// with a timestamp in `(T - w, T]`.
    pub window_us: i64,
    /// The select item as written (for messages).
    pub sql: String,
}

/// A stream feature view: see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAggSpec {
    /// The model it comes from (named in every error).
    pub model: String,
    /// The source table as written (`raw.events`).
    pub source: String,
    /// The alias of the source (`FROM raw.events AS e`), if any.
    pub source_alias: Option<String>,
    /// The row filter (`WHERE`) as SQL text, if any.
    pub row_filter: Option<String>,
    /// The entity (key) columns, as the feature view config names them.
    pub entities: Vec<String>,
    /// The event timestamp column.
    pub event_timestamp: String,
    /// The aggregates, in select order.
    pub aggregates: Vec<StreamAgg>,
}

/// Builds an [`Error::Model`] for `model`. The file is left empty: the
/// definition is parsed from rendered SQL; callers that know the file set it.
pub(crate) fn model_error(model: &str, message: impl Into<String>) -> Error {
    Error::Model {
        model: model.to_string(),
        file: String::new(),
        message: message.into(),
    }
}

const SHAPE: &str = "a stream feature view is `SELECT <entities>, <f>(<arg>) FILTER (WHERE <ts> > now() - INTERVAL '<n> <unit>') AS <alias>, ... FROM <table> [WHERE <row filter>] GROUP BY <entities>` with <f> one of count(*), count, sum, avg, min, max";

/// The name DataFusion gives an identifier: unquoted ones are lowercased.
fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The column an expression names: `c`, or `q.c` where `q` is the source
/// alias or table name.
fn column_name(expr: &Expr, qualifiers: &[String]) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(normalize(i)),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let (last, quals) = parts.split_last()?;
            let q: Vec<String> = quals.iter().map(normalize).collect();
            let q = q.join(".");
            qualifiers.contains(&q).then(|| normalize(last))
        }
        Expr::Nested(inner) => column_name(inner, qualifiers),
        _ => None,
    }
}

impl StreamAggSpec {
    /// Parses the (rendered) SQL of model `model`; see the module doc for
    /// what is accepted. `entities` and `event_timestamp` come from the
    /// feature view config.
    pub fn parse(
        model: &str,
        sql: &str,
        entities: &[String],
        event_timestamp: &str,
    ) -> Result<StreamAggSpec> {
        let err = |m: String| model_error(model, m);
        if entities.is_empty() {
            return Err(err(
                "a stream feature view needs at least one entity column (feature_view={'entities': ['user_id'], ...})".into(),
            ));
        }
        for (i, e) in entities.iter().enumerate() {
            if entities[..i].contains(e) {
                return Err(err(format!(
                    "entity `{e}` is listed twice in feature_view entities"
                )));
            }
            if e == event_timestamp {
                return Err(err(format!(
                    "`{e}` is both an entity and the event timestamp; they must be different columns"
                )));
            }
        }
        let limit = datafusion::config::SqlParserOptions::default().recursion_limit;
        let statements = crate::sql::parser::parse_statements(sql, limit.get())
            .map_err(|e| err(format!("the SQL does not parse: {}", Error::from(e))))?;
        let [DFStatement::Statement(statement)] = statements.as_slice() else {
            return Err(err(format!(
                "a stream feature view is one SELECT statement, found {} statements",
                statements.len()
            )));
        };
        let Statement::Query(query) = statement.as_ref() else {
            return Err(err(format!("`{statement}` is not a SELECT; {SHAPE}")));
        };
        let q = query.as_ref();
        let extra = [
            (q.with.is_some(), "WITH"),
            (q.order_by.is_some(), "ORDER BY"),
            (q.limit_clause.is_some(), "LIMIT/OFFSET"),
            (q.fetch.is_some(), "FETCH"),
            (!q.locks.is_empty(), "FOR UPDATE"),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return Err(err(format!(
                "{what} is not supported in a stream feature view (its result is one row per entity, kept up to date per event); {SHAPE}"
            )));
        }
        let SetExpr::Select(select) = q.body.as_ref() else {
            return Err(err(format!(
                "`{}` is not a plain SELECT (no UNION, VALUES or subquery); {SHAPE}",
                q.body
            )));
        };
        let s = select.as_ref();
        let select_extra = [
            (s.distinct.is_some(), "DISTINCT"),
            (s.top.is_some(), "TOP"),
            (s.into.is_some(), "INTO"),
            (s.having.is_some(), "HAVING"),
            (s.qualify.is_some(), "QUALIFY"),
            (!s.named_window.is_empty(), "WINDOW"),
            (!s.lateral_views.is_empty(), "LATERAL VIEW"),
            (s.prewhere.is_some(), "PREWHERE"),
            (!s.connect_by.is_empty(), "CONNECT BY"),
            (!s.cluster_by.is_empty(), "CLUSTER BY"),
            (!s.distribute_by.is_empty(), "DISTRIBUTE BY"),
            (!s.sort_by.is_empty(), "SORT BY"),
            (s.exclude.is_some(), "EXCLUDE"),
        ];
        if let Some((_, what)) = select_extra.iter().find(|(present, _)| *present) {
            return Err(err(format!(
                "{what} is not supported in a stream feature view; {SHAPE}"
            )));
        }

        // FROM: one table.
        let [from] = s.from.as_slice() else {
            return Err(err(format!(
                "a stream feature view reads exactly one table (FROM raw.events), found {} relations; joins and several sources are not supported",
                s.from.len()
            )));
        };
        if !from.joins.is_empty() {
            return Err(err(format!(
                "`{from}`: joins are not supported in a stream feature view; read one table (FROM raw.events) and join at serving time"
            )));
        }
        let TableFactor::Table {
            name, alias, args, ..
        } = &from.relation
        else {
            return Err(err(format!(
                "`{}`: a stream feature view reads a table by name (FROM raw.events), not a subquery or function",
                from.relation
            )));
        };
        if args.is_some() || table_has_extras(&from.relation) {
            return Err(err(format!(
                "`{}`: a stream feature view reads a plain table (FROM raw.events): no table function, time travel or sampling",
                from.relation
            )));
        }
        let source = name.to_string();
        let source_alias = match alias {
            None => None,
            Some(a) if a.columns.is_empty() => Some(normalize(&a.name)),
            Some(a) => {
                return Err(err(format!(
                    "`{a}`: column aliases on the source are not supported; use the table's column names"
                )))
            }
        };
        let mut qualifiers = vec![source_alias.clone().unwrap_or_else(|| object_name(name))];
        if source_alias.is_none() {
            if let Some(ObjectNamePart::Identifier(last)) = name.0.last() {
                qualifiers.push(normalize(last));
            }
        }

        // WHERE: the row filter.
        let row_filter = match &s.selection {
            None => None,
            Some(w) => {
                check_plain_expr(w).map_err(|what| {
                    err(format!(
                        "the row filter `WHERE {w}` {what}; it must be a predicate on the event row alone (windows go in each aggregate's FILTER)"
                    ))
                })?;
                Some(w.to_string())
            }
        };

        // GROUP BY: the entities.
        let GroupByExpr::Expressions(group, modifiers) = &s.group_by else {
            return Err(err(format!(
                "GROUP BY ALL is not supported; write GROUP BY {}",
                entities.join(", ")
            )));
        };
        if !modifiers.is_empty() {
            return Err(err(format!(
                "GROUP BY modifiers (ROLLUP, CUBE, TOTALS) are not supported; write GROUP BY {}",
                entities.join(", ")
            )));
        }
        let mut grouped = Vec::new();
        for g in group {
            match column_name(g, &qualifiers) {
                Some(c) if entities.contains(&c) && !grouped.contains(&c) => grouped.push(c),
                _ => {
                    return Err(err(format!(
                        "GROUP BY `{g}`: a stream feature view groups by its entity columns exactly ({})",
                        entities.join(", ")
                    )))
                }
            }
        }
        if grouped.len() != entities.len() {
            return Err(err(format!(
                "GROUP BY must list the entity columns exactly ({}); it lists {}",
                entities.join(", "),
                if grouped.is_empty() {
                    "none".to_string()
                } else {
                    grouped.join(", ")
                }
            )));
        }

        // SELECT: the entities, then aggregates.
        let mut selected_entities: Vec<String> = Vec::new();
        let mut aggregates: Vec<StreamAgg> = Vec::new();
        for item in &s.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                other => {
                    return Err(err(format!(
                        "`{other}` is not supported in a stream feature view; select the entity columns and aliased aggregates; {SHAPE}"
                    )))
                }
            };
            if let Some(c) = column_name(expr, &qualifiers) {
                let named = alias.map(normalize).unwrap_or_else(|| c.clone());
                if !entities.contains(&c) || named != c {
                    return Err(err(format!(
                        "`{item}`: a stream feature view selects its entity columns ({}) under their own names, and aggregates",
                        entities.join(", ")
                    )));
                }
                if selected_entities.contains(&c) {
                    return Err(err(format!("`{item}`: entity `{c}` is selected twice")));
                }
                selected_entities.push(c);
                continue;
            }
            let Expr::Function(_) = expr else {
                return Err(err(format!(
                    "`{item}` is not supported in a stream feature view: a select item is an entity column or an aggregate `f(arg) FILTER (WHERE {event_timestamp} > now() - INTERVAL '1 hour') AS name` (f: count, sum, avg, min, max); compute derived values at serving time or in a downstream model"
                )));
            };
            let Some(alias) = alias else {
                return Err(err(format!(
                    "`{item}` needs a name: add `AS <feature_name>`"
                )));
            };
            let agg = parse_aggregate(expr, alias, event_timestamp, &qualifiers).map_err(err)?;
            if entities.contains(&agg.alias) || aggregates.iter().any(|a| a.alias == agg.alias) {
                return Err(err(format!(
                    "`{item}`: the name `{}` is used twice",
                    agg.alias
                )));
            }
            aggregates.push(agg);
        }
        if let Some(missing) = entities.iter().find(|e| !selected_entities.contains(e)) {
            return Err(err(format!(
                "entity `{missing}` must be selected (SELECT {}, ...)",
                entities.join(", ")
            )));
        }
        if aggregates.is_empty() {
            return Err(err(format!(
                "a stream feature view needs at least one aggregate; {SHAPE}"
            )));
        }
        Ok(StreamAggSpec {
            model: model.to_string(),
            source,
            source_alias,
            row_filter,
            entities: entities.to_vec(),
            event_timestamp: event_timestamp.to_string(),
            aggregates,
        })
    }

    /// The longest window, in microseconds.
    pub fn max_window_us(&self) -> i64 {
        self.aggregates
            .iter()
            .map(|a| a.window_us)
            .max()
            .unwrap_or(0)
    }

    /// The source as SQL (`raw.events AS e`).
    pub(crate) fn source_sql(&self) -> String {
        match &self.source_alias {
            Some(a) => format!("{} AS {}", self.source, quote_ident(a)),
            None => self.source.clone(),
        }
    }
}

/// The dotted, normalized name of a table (`raw.events`).
fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => normalize(i),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a `TableFactor::Table` carries anything beyond a name and an alias.
fn table_has_extras(t: &TableFactor) -> bool {
    match t {
        TableFactor::Table {
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
            ..
        } => {
            !with_hints.is_empty()
                || version.is_some()
                || *with_ordinality
                || !partitions.is_empty()
                || json_path.is_some()
                || sample.is_some()
                || !index_hints.is_empty()
        }
        _ => true,
    }
}

/// Names of the functions that read the clock.
fn is_clock_function(name: &ObjectName) -> bool {
    let n = name.to_string().to_lowercase();
    matches!(
        n.as_str(),
        "now"
            | "current_timestamp"
            | "current_date"
            | "current_time"
            | "localtimestamp"
            | "localtime"
            | "today"
            | "utc_timestamp"
    )
}

/// `Err(what is wrong)` when `e` reads the clock, runs a subquery or
/// aggregates: things an event row alone cannot answer.
fn check_plain_expr(e: &Expr) -> std::result::Result<(), &'static str> {
    let flow = visit_expressions(e, |x| match x {
        Expr::Function(f) if is_clock_function(&f.name) => ControlFlow::Break(
            "reads the clock (now()); the instant of a value is the window's end, not a column",
        ),
        Expr::Function(f) if f.over.is_some() => {
            ControlFlow::Break("uses a window function (OVER), which one event alone cannot answer")
        }
        Expr::Function(f) if f.filter.is_some() => {
            ControlFlow::Break("uses an aggregate, which one event alone cannot answer")
        }
        Expr::Function(f)
            if matches!(
                f.name.to_string().to_lowercase().as_str(),
                "count"
                    | "sum"
                    | "avg"
                    | "min"
                    | "max"
                    | "mean"
                    | "median"
                    | "array_agg"
                    | "string_agg"
                    | "first_value"
                    | "last_value"
                    | "stddev"
                    | "variance"
            ) =>
        {
            ControlFlow::Break("uses an aggregate, which one event alone cannot answer")
        }
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            ControlFlow::Break("uses a subquery, which the online state cannot evaluate per event")
        }
        _ => ControlFlow::Continue(()),
    });
    match flow {
        ControlFlow::Break(what) => Err(what),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// One select item `f(arg) FILTER (WHERE ...) AS alias`.
fn parse_aggregate(
    expr: &Expr,
    alias: &Ident,
    event_timestamp: &str,
    qualifiers: &[String],
) -> std::result::Result<StreamAgg, String> {
    let item = format!("{expr} AS {alias}");
    let Expr::Function(f) = expr else {
        return Err(format!("`{item}` is not an aggregate"));
    };
    let allowed = "allowed: count(*), count(expr), sum(expr), avg(expr), min(expr), max(expr), each with FILTER (WHERE <ts> > now() - INTERVAL '<n> <unit>')";
    let name = f.name.to_string().to_lowercase();
    let func = match name.as_str() {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" | "mean" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        _ => {
            return Err(format!(
                "`{item}`: `{}` is not supported in a stream feature view (its online state must be updated per event and combined exactly); {allowed}",
                f.name
            ))
        }
    };
    if f.over.is_some() {
        return Err(format!(
            "`{item}`: window functions (OVER) are not supported; the window is the FILTER: {allowed}"
        ));
    }
    if !f.within_group.is_empty() || f.null_treatment.is_some() || f.uses_odbc_syntax {
        return Err(format!("`{item}` is not supported; {allowed}"));
    }
    if !matches!(f.parameters, FunctionArguments::None) {
        return Err(format!(
            "`{item}`: function parameters are not supported; {allowed}"
        ));
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(format!("`{item}`: takes one argument; {allowed}"));
    };
    if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) {
        return Err(format!(
            "`{item}`: {}(DISTINCT ...) is not supported in a stream feature view: its online state cannot be updated per event and expired exactly; use {}(...) without DISTINCT, or compute distinct counts in a batch feature view",
            func.sql_name(),
            func.sql_name()
        ));
    }
    if !list.clauses.is_empty() {
        return Err(format!(
            "`{item}`: clauses inside the aggregate (ORDER BY, LIMIT, ...) are not supported; {allowed}"
        ));
    }
    let [arg] = list.args.as_slice() else {
        return Err(format!(
            "`{item}`: {} takes exactly one argument; {allowed}",
            func.sql_name()
        ));
    };
    let FunctionArg::Unnamed(arg) = arg else {
        return Err(format!(
            "`{item}`: named arguments are not supported; {allowed}"
        ));
    };
    let (func, arg) = match (func, arg) {
        (AggFunc::Count, FunctionArgExpr::Wildcard) => (AggFunc::CountStar, None),
        (_, FunctionArgExpr::Expr(e)) => {
            check_plain_expr(e)
                .map_err(|what| format!("`{item}`: the argument `{e}` {what}; {allowed}"))?;
            (func, Some(e.to_string()))
        }
        _ => {
            return Err(format!(
                "`{item}`: `{arg}` as an argument is only allowed as count(*); {allowed}"
            ))
        }
    };
    let Some(filter) = &f.filter else {
        return Err(format!(
            "`{item}` needs a window: add FILTER (WHERE {event_timestamp} > now() - INTERVAL '1 hour') after the aggregate"
        ));
    };
    let window_us = parse_window(filter, event_timestamp, qualifiers)
        .map_err(|m| format!("`{item}`: the FILTER `{filter}` {m}"))?;
    Ok(StreamAgg {
        alias: normalize(alias),
        func,
        arg,
        window_us,
        sql: item,
    })
}

/// The window of `FILTER (WHERE ts > now() - INTERVAL ...)`, in microseconds.
fn parse_window(
    filter: &Expr,
    event_timestamp: &str,
    qualifiers: &[String],
) -> std::result::Result<i64, String> {
    let expected = format!(
        "is not a window; write FILTER (WHERE {event_timestamp} > now() - INTERVAL '<n> <unit>'), the window (T - w, T] ending at the instant T of the value (units: microseconds to weeks)"
    );
    let filter = match filter {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let Expr::BinaryOp { left, op, right } = filter else {
        return Err(expected);
    };
    // `ts > now() - w` or `now() - w < ts`.
    let (ts_side, bound) = match op {
        BinaryOperator::Gt => (left.as_ref(), right.as_ref()),
        BinaryOperator::Lt => (right.as_ref(), left.as_ref()),
        BinaryOperator::GtEq | BinaryOperator::LtEq => {
            return Err(format!(
                "uses `{op}`: windows are half-open (T - w, T], so the bound is strict; write {event_timestamp} > now() - INTERVAL '...'"
            ))
        }
        _ => return Err(expected),
    };
    if column_name(ts_side, qualifiers).as_deref() != Some(event_timestamp) {
        return Err(format!(
            "compares `{ts_side}`, not the event timestamp `{event_timestamp}`; write FILTER (WHERE {event_timestamp} > now() - INTERVAL '...')"
        ));
    }
    let bound = match bound {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let Expr::BinaryOp {
        left: now,
        op: BinaryOperator::Minus,
        right: interval,
    } = bound
    else {
        return Err(expected);
    };
    let is_now = match now.as_ref() {
        Expr::Function(f) => {
            let n = f.name.to_string().to_lowercase();
            (n == "now" || n == "current_timestamp")
                && match &f.args {
                    FunctionArguments::None => true,
                    FunctionArguments::List(l) => l.args.is_empty(),
                    FunctionArguments::Subquery(_) => false,
                }
                && f.filter.is_none()
                && f.over.is_none()
        }
        _ => false,
    };
    if !is_now {
        return Err(format!(
            "must measure the window back from now() (the instant of the value), not from `{now}`"
        ));
    }
    let Expr::Interval(iv) = interval.as_ref() else {
        return Err(format!(
            "needs an INTERVAL literal after `now() -`, found `{interval}`"
        ));
    };
    if iv.last_field.is_some() || iv.fractional_seconds_precision.is_some() {
        return Err(format!(
            "uses `{interval}`; write INTERVAL '<n> <unit>' (e.g. INTERVAL '10 minutes')"
        ));
    }
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return Err(format!("uses `{interval}`; write INTERVAL '<n> <unit>'")),
        },
        _ => return Err(format!("uses `{interval}`; write INTERVAL '<n> <unit>'")),
    };
    let text = match &iv.leading_field {
        Some(field) => format!("{text} {}", field.to_string().to_lowercase()),
        None => text,
    };
    let us = parse_interval_us(&text).map_err(|m| format!("has INTERVAL '{text}': {m}"))?;
    if us <= 0 {
        return Err(format!("has INTERVAL '{text}': a window must be positive"));
    }
    if us > MAX_WINDOW_US {
        return Err(format!(
            "has INTERVAL '{text}': windows longer than 36500 days are not supported"
        ));
    }
    Ok(us)
}

/// Microseconds per unit, for the units DataFusion's interval parser knows
/// (arrow-cast's `IntervalUnit::from_str`) that have a fixed length. A day is
/// 24 hours (DataFusion keeps days apart from nanoseconds in intervals; on
/// UTC or zone-less timestamps the two agree).
fn unit_us(unit: &str) -> Option<i128> {
    Some(match unit {
        "w" | "week" | "weeks" => 7 * 86_400_000_000,
        "d" | "day" | "days" => 86_400_000_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000,
        "ms" | "msec" | "msecs" | "msecond" | "mseconds" | "millisecond" | "milliseconds" => 1_000,
        "us" | "usec" | "usecs" | "usecond" | "useconds" | "microsecond" | "microseconds" => 1,
        _ => return None,
    })
}

/// `'1 hour 30 minutes'` in microseconds. Amounts may be decimal
/// (`'1.5 hours'`) as long as the total is a whole number of microseconds.
pub(crate) fn parse_interval_us(text: &str) -> std::result::Result<i64, String> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() || words.len() % 2 != 0 {
        return Err(
            "expected `<number> <unit>` pairs such as '10 minutes' or '1 hour 30 minutes'".into(),
        );
    }
    // Exact arithmetic in units of 1e-9 microsecond (amounts up to 9 decimals).
    const SCALE: i128 = 1_000_000_000;
    let mut total: i128 = 0;
    for pair in words.chunks(2) {
        let (amount, unit) = (&pair[0], &pair[1]);
        let Some(per) = unit_us(unit) else {
            let variable = matches!(
                unit.as_str(),
                "mon"
                    | "mons"
                    | "month"
                    | "months"
                    | "y"
                    | "yr"
                    | "yrs"
                    | "year"
                    | "years"
                    | "c"
                    | "cent"
                    | "cents"
                    | "century"
                    | "centuries"
                    | "dec"
                    | "decs"
                    | "decade"
                    | "decades"
            );
            return Err(if variable {
                format!("`{unit}` has no fixed length; use days or weeks")
            } else {
                format!("unknown unit `{unit}` (use microseconds, milliseconds, seconds, minutes, hours, days or weeks)")
            });
        };
        let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if (int.is_empty() && frac.is_empty())
            || !digits_ok(int)
            || !digits_ok(frac)
            || frac.len() > 9
            || int.len() > 12
        {
            return Err(format!(
                "`{amount}` is not a positive number (digits, an optional fraction of up to 9 digits)"
            ));
        }
        let int_v: i128 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| format!("`{amount}` is not a number"))?
        };
        let frac_v: i128 = if frac.is_empty() {
            0
        } else {
            let v: i128 = frac
                .parse()
                .map_err(|_| format!("`{amount}` is not a number"))?;
            v * 10i128.pow(9 - frac.len() as u32)
        };
        total = total
            .checked_add((int_v * SCALE + frac_v) * per)
            .ok_or_else(|| "the interval is too long".to_string())?;
    }
    if total % SCALE != 0 {
        return Err("the interval is not a whole number of microseconds".into());
    }
    i64::try_from(total / SCALE).map_err(|_| "the interval is too long".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(e: &[&str]) -> Vec<String> {
        e.iter().map(|s| s.to_string()).collect()
    }

    fn parse(sql: &str) -> Result<StreamAggSpec> {
        StreamAggSpec::parse("user_txn_stats", sql, &ents(&["user_id"]), "ts")
    }

    fn parse_err(sql: &str) -> String {
        match parse(sql) {
            Ok(s) => panic!("expected an error for {sql}, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = "SELECT user_id,
       count(*)    FILTER (WHERE ts > now() - INTERVAL '10 minutes') AS txn_count_10m,
       sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour')    AS amount_1h,
       avg(amount) FILTER (WHERE ts > now() - INTERVAL '1 day')     AS avg_amount_1d,
       MAX(amount) FILTER (WHERE ts > current_timestamp - INTERVAL '1' DAY) AS Max_Amount_1d,
       count(amount * 2) FILTER (WHERE now() - INTERVAL '1.5 seconds' < ts) AS \"Cnt\"
FROM raw.events
WHERE kind = 'payment'
GROUP BY user_id";

    #[test]
    fn parses_the_documented_shape() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.source, "raw.events");
        assert_eq!(s.source_alias, None);
        assert_eq!(s.row_filter.as_deref(), Some("kind = 'payment'"));
        let got: Vec<(&str, AggFunc, Option<&str>, i64)> = s
            .aggregates
            .iter()
            .map(|a| (a.alias.as_str(), a.func, a.arg.as_deref(), a.window_us))
            .collect();
        assert_eq!(
            got,
            vec![
                ("txn_count_10m", AggFunc::CountStar, None, 600_000_000),
                ("amount_1h", AggFunc::Sum, Some("amount"), 3_600_000_000),
                (
                    "avg_amount_1d",
                    AggFunc::Avg,
                    Some("amount"),
                    86_400_000_000
                ),
                (
                    "max_amount_1d",
                    AggFunc::Max,
                    Some("amount"),
                    86_400_000_000
                ),
                ("Cnt", AggFunc::Count, Some("amount * 2"), 1_500_000),
            ]
        );
        assert_eq!(s.max_window_us(), 86_400_000_000);
    }

    #[test]
    fn parses_aliases_and_several_entities() {
        let s = StreamAggSpec::parse(
            "m",
            "SELECT e.user_id, region, min(e.price) FILTER (WHERE e.ts > now() - INTERVAL '1 hour 30 minutes') AS p FROM events AS e GROUP BY region, e.user_id",
            &ents(&["user_id", "region"]),
            "ts",
        )
        .unwrap();
        assert_eq!(s.source_alias.as_deref(), Some("e"));
        assert_eq!(s.source_sql(), "events AS \"e\"");
        assert_eq!(s.aggregates[0].window_us, 5_400_000_000);
        assert_eq!(s.aggregates[0].arg.as_deref(), Some("e.price"));
    }

    #[test]
    fn interval_texts() {
        assert_eq!(parse_interval_us("10 minutes"), Ok(600_000_000));
        assert_eq!(parse_interval_us("1 WEEK"), Ok(604_800_000_000));
        assert_eq!(parse_interval_us("250 ms"), Ok(250_000));
        assert_eq!(
            parse_interval_us("0.5 us").unwrap_err(),
            "the interval is not a whole number of microseconds"
        );
        assert!(parse_interval_us("1 month")
            .unwrap_err()
            .contains("no fixed length"));
        assert!(parse_interval_us("1 fortnight")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_interval_us("-1 hour").is_err());
        assert!(parse_interval_us("hour").is_err());
    }

    #[test]
    fn rejects_with_a_message_naming_the_model_and_item() {
        let cases: &[(&str, &str)] = &[
            ("SELECT user_id, count(DISTINCT merchant) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS m FROM raw.events GROUP BY user_id", "count(DISTINCT ...) is not supported"),
            ("SELECT user_id, sum(amount) AS s FROM raw.events GROUP BY user_id", "needs a window"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') FROM raw.events GROUP BY user_id", "needs a name"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts >= now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "half-open"),
            ("SELECT user_id, sum(amount) FILTER (WHERE other_ts > now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "not the event timestamp"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 month') AS s FROM raw.events GROUP BY user_id", "no fixed length"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > now() - INTERVAL '0 seconds') AS s FROM raw.events GROUP BY user_id", "must be positive"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour' AND kind = 'x') AS s FROM raw.events GROUP BY user_id", "is not a window"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > ts2 - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "back from now()"),
            ("SELECT user_id, median(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "`median` is not supported"),
            ("SELECT user_id, sum(amount) OVER () AS s FROM raw.events GROUP BY user_id", "window functions (OVER)"),
            ("SELECT user_id, sum(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "only allowed as count(*)"),
            ("SELECT user_id, sum(amount, 2) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "exactly one argument"),
            ("SELECT user_id, sum(CASE WHEN now() > ts THEN 1 END) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS s FROM raw.events GROUP BY user_id", "reads the clock"),
            ("SELECT user_id, sum(amount) FILTER (WHERE ts > now() - INTERVAL '1 hour') + 1 AS s FROM raw.events GROUP BY user_id", "is not supported in a stream feature view"),
            ("SELECT user_id, amount FROM raw.events GROUP BY user_id", "under their own names"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events WHERE ts > now() - INTERVAL '1 day' GROUP BY user_id", "row filter"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id, kind", "GROUP BY `kind`"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events", "GROUP BY must list"),
            ("SELECT count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id", "must be selected"),
            ("SELECT user_id FROM raw.events GROUP BY user_id", "at least one aggregate"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events e JOIN raw.users u ON e.user_id = u.id GROUP BY user_id", "joins are not supported"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM (SELECT * FROM raw.events) GROUP BY user_id", "reads a table by name"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id HAVING count(*) > 1", "HAVING"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id ORDER BY user_id", "ORDER BY"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n, count(*) FILTER (WHERE ts > now() - INTERVAL '2 hour') AS n FROM raw.events GROUP BY user_id", "used twice"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id UNION ALL SELECT 1, 2", "not a plain SELECT"),
            ("SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id; SELECT 1", "one SELECT statement"),
            ("SELEC user_id", "does not parse"),
            ("INSERT INTO t VALUES (1)", "is not a SELECT"),
        ];
        for (sql, needle) in cases {
            let msg = parse_err(sql);
            assert!(msg.contains("user_txn_stats"), "{sql}: {msg}");
            assert!(msg.contains(needle), "{sql}: expected `{needle}` in: {msg}");
        }
    }

    #[test]
    fn rejects_bad_entity_configs() {
        let sql = "SELECT user_id, count(*) FILTER (WHERE ts > now() - INTERVAL '1 hour') AS n FROM raw.events GROUP BY user_id";
        assert!(StreamAggSpec::parse("m", sql, &[], "ts")
            .unwrap_err()
            .to_string()
            .contains("at least one entity"));
        assert!(
            StreamAggSpec::parse("m", sql, &ents(&["user_id", "user_id"]), "ts")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(StreamAggSpec::parse("m", sql, &ents(&["ts"]), "ts")
            .unwrap_err()
            .to_string()
            .contains("both an entity"));
    }
}
