//! The offline side of a stream feature view: one SQL query (DataFusion
//! dialect) that computes every aggregate as of each label row's instant,
//! with the same `(T - w, T]` windows as the online state.

use super::spec::{AggFunc, StreamAggSpec};
use crate::names::quote_ident;

/// Columns the query adds internally (not in its result).
const ROW: &str = "__sluice_row";
const TS: &str = "__sluice_ts";

/// `INTERVAL` of `us` microseconds, as DataFusion parses it (a nanosecond
/// interval, never days or months, so no calendar arithmetic is involved).
fn interval(us: i64) -> String {
    format!("INTERVAL '{us} microseconds'")
}

/// `labels` as a relation: a table name as is, a query in parentheses.
fn relation(labels: &str) -> String {
    let t = labels.trim();
    let first = t
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if first == "select" || first == "with" || first == "values" {
        format!("({t})")
    } else {
        t.to_string()
    }
}

/// SQL computing the aggregates of `spec` for every row of `labels` (a table
/// name or a query whose columns are `label_columns`, among them the entity
/// columns, by the entities' names, and the instant column `label_ts`) as of
/// that row's `label_ts`:
///
/// labels `LEFT JOIN` the source's rows that pass the row filter, on entity
/// equality and `label_ts - longest window < event_ts <= label_ts`, grouped
/// per label row (duplicate label rows stay distinct: each gets a
/// `row_number()`), each aggregate with `FILTER (WHERE event_ts > label_ts -
/// its window)`. The result has the label columns, then one column per
/// aggregate, in label order; a label with no event gets count 0 and NULL for
/// the others, as the online state gives.
///
/// The labels are read once (grouped by their row number and their columns):
/// a `row_number() OVER ()` is not stable between two evaluations of the
/// same relation, so joining results back to the labels by it would pair
/// values with the wrong rows.
pub fn offline_sql(
    spec: &StreamAggSpec,
    labels: &str,
    label_ts: &str,
    label_columns: &[&str],
) -> String {
    let lt = format!("l.{}", quote_ident(label_ts));
    let ets = format!("e.{TS}");
    let mut events_cols: Vec<String> = spec.entities.iter().map(|e| quote_ident(e)).collect();
    events_cols.push(format!("{} AS {TS}", quote_ident(&spec.event_timestamp)));
    let mut args: Vec<&str> = Vec::new();
    for a in &spec.aggregates {
        if let Some(arg) = &a.arg {
            if !args.contains(&arg.as_str()) {
                args.push(arg);
            }
        }
    }
    for (i, arg) in args.iter().enumerate() {
        events_cols.push(format!("({arg}) AS __sluice_a{i}"));
    }
    let where_ = spec
        .row_filter
        .as_ref()
        .map(|f| format!(" WHERE ({f})"))
        .unwrap_or_default();
    let aggs: Vec<String> = spec
        .aggregates
        .iter()
        .map(|a| {
            let input = match &a.arg {
                None => "*".to_string(),
                Some(arg) => {
                    let i = args.iter().position(|x| x == arg).unwrap_or_default();
                    format!("e.__sluice_a{i}")
                }
            };
            let f = match a.func {
                AggFunc::CountStar | AggFunc::Count => "count",
                AggFunc::Sum => "sum",
                AggFunc::Avg => "avg",
                AggFunc::Min => "min",
                AggFunc::Max => "max",
            };
            format!(
                "{f}({input}) FILTER (WHERE {ets} > {lt} - {}) AS {}",
                interval(a.window_us),
                quote_ident(&a.alias)
            )
        })
        .collect();
    let on: Vec<String> = spec
        .entities
        .iter()
        .map(|e| format!("l.{q} = e.{q}", q = quote_ident(e)))
        .chain([
            format!("{ets} <= {lt}"),
            format!("{ets} > {lt} - {}", interval(spec.max_window_us())),
        ])
        .collect();
    let label_cols: Vec<String> = label_columns
        .iter()
        .map(|c| format!("l.{}", quote_ident(c)))
        .collect();
    let mut group = vec![format!("l.{ROW}")];
    group.extend(label_cols.iter().cloned());
    let mut select = label_cols;
    select.extend(aggs);
    format!(
        "WITH __sluice_labels AS (SELECT row_number() OVER () AS {ROW}, __sluice_l.* FROM {labels} AS __sluice_l), \
__sluice_events AS (SELECT {events} FROM {from}{where_}) \
SELECT {select} FROM __sluice_labels AS l LEFT JOIN __sluice_events AS e ON {on} GROUP BY {group} ORDER BY l.{ROW}",
        labels = relation(labels),
        events = events_cols.join(", "),
        from = spec.source_sql(),
        select = select.join(", "),
        on = on.join(" AND "),
        group = group.join(", "),
    )
}
