//! Point-in-time training sets: for each entity row and feature view, the
//! view's row with the newest event time at or before the entity's timestamp,
//! no older than the view's TTL (inclusive: a row exactly TTL old is used),
//! ties broken by the created timestamp (newest wins), NULL when none.
//!
//! The result is one SQL query of chained `ASOF LEFT JOIN`s (the AS OF
//! operator: fast, memory-bounded with many views) over pinned table versions
//! (`VERSION AS OF n`), so the same SQL rebuilds the same rows later.
//!
//! Column names: the entity source's columns keep theirs; a feature named like
//! one of them is prefixed with its view (`user_txn_rolling__amount`), as all
//! features are with `full_names`. Two views with a feature of the same name
//! are an error asking for `full_names` (Feast's `FeatureNameCollisionError`).

use super::registry::{get_view, FeatureViewDef};
use crate::error::{Error, Result};
use crate::warehouse::{plan_in_session, Warehouse};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::session_state::SessionState;

/// A training set's query and what it reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainingSet {
    pub sql: String,
    /// `(schema.table, version)` of every table read (entity table first when
    /// the entities come from a table).
    pub inputs: Vec<(String, u64)>,
    /// The entity timestamp column used.
    pub timestamp: String,
}

/// Options of a training set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Entity timestamp column (default: `event_timestamp`, else the view's
    /// event-time column name, else the entity source's only time column).
    pub timestamp: Option<String>,
    /// Prefix feature columns with their view (`user_features__txn_count`).
    pub full_names: bool,
    /// A feature service whose features are added (`service=name`).
    pub service: Option<String>,
}

impl Options {
    /// `timestamp=col`, `full_names=true`.
    pub fn parse(items: &[String]) -> Result<Self> {
        let mut o = Options::default();
        for item in items {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            match k.trim() {
                "timestamp" => o.timestamp = Some(v.trim().to_string()),
                "full_names" | "full_feature_names" => {
                    o.full_names = matches!(v.trim(), "" | "true" | "1" | "yes")
                }
                "service" | "feature_service" => o.service = Some(v.trim().to_string()),
                other => {
                    return Err(Error::Sql(format!(
                        "unknown training-set option `{other}`; use timestamp=<column>, service=<name> or full_names=true"
                    )))
                }
            }
        }
        Ok(o)
    }
}

/// `sql` with every warehouse table it reads pinned to its current version
/// (`VERSION AS OF n`, recorded in `inputs`), so the training set can be
/// rebuilt later. CTE names, views, files and tables already pinned are left
/// as they are; SQL sqlparser cannot parse is returned unchanged.
async fn pin_query(
    wh: &Warehouse,
    default_schema: &str,
    sql: &str,
    inputs: &mut Vec<(String, u64)>,
) -> Result<String> {
    use sqlparser::ast::{ObjectName, Query, TableFactor, Visit, VisitMut, Visitor, VisitorMut};
    use std::ops::ControlFlow;
    let dialect = crate::sql::parser::SluiceDialect;
    let Ok(mut statements) = sqlparser::parser::Parser::parse_sql(&dialect, sql) else {
        return Ok(sql.to_string());
    };
    if statements.len() != 1 {
        return Ok(sql.to_string());
    }
    struct Collect {
        ctes: Vec<String>,
        tables: Vec<ObjectName>,
    }
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for c in &with.cte_tables {
                    self.ctes.push(c.alias.name.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                version: None,
                args: None,
                ..
            } = t
            {
                self.tables.push(name.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect {
        ctes: Vec::new(),
        tables: Vec::new(),
    };
    let _ = statements[0].visit(&mut c);
    let mut versions: Vec<(String, u64)> = Vec::new();
    for name in &c.tables {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect();
        let (schema, table) = match parts.as_slice() {
            [t] if c.ctes.contains(&t.to_ascii_lowercase()) => continue,
            [t] => (default_schema.to_string(), t.clone()),
            [s, t] => (s.clone(), t.clone()),
            [cat, s, t] if cat == crate::sql::CATALOG => (s.clone(), t.clone()),
            _ => continue,
        };
        let key = name.to_string();
        if versions.iter().any(|(k, _)| k == &key) {
            continue;
        }
        if let Some(v) = wh.latest_version(&schema, &table).await? {
            let id = format!("{schema}.{table}");
            if !inputs.iter().any(|(t, _)| t == &id) {
                inputs.push((id, v));
            }
            versions.push((key, v));
        }
    }
    // `name VERSION AS OF n` prints the version after any alias, which does
    // not parse back: pinned tables become `(SELECT * FROM name VERSION AS OF n) AS alias`.
    struct Pin<'a>(&'a [(String, u64)]);
    impl VisitorMut for Pin<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias,
                version: None,
                args: None,
                ..
            } = t
            {
                let key = name.to_string();
                if let Some((_, n)) = self.0.iter().find(|(k, _)| k == &key) {
                    let alias = match alias {
                        Some(a) => a.to_string(),
                        None => name
                            .0
                            .last()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| key.clone()),
                    };
                    let sql =
                        format!("SELECT * FROM (SELECT * FROM {key} VERSION AS OF {n}) AS {alias}");
                    let dialect = crate::sql::parser::SluiceDialect;
                    if let Ok(mut parsed) = sqlparser::parser::Parser::parse_sql(&dialect, &sql) {
                        if let Some(sqlparser::ast::Statement::Query(q)) = parsed.pop() {
                            if let sqlparser::ast::SetExpr::Select(sel) = *q.body {
                                if let Some(from) = sel.from.into_iter().next() {
                                    *t = from.relation;
                                }
                            }
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(&mut statements[0], &mut Pin(&versions));
    Ok(statements[0].to_string())
}

fn is_query(source: &str) -> bool {
    let head = source.trim_start().to_ascii_lowercase();
    head.starts_with("select")
        || head.starts_with("with")
        || head.starts_with("values")
        || head.starts_with('(')
}

async fn schema_of(state: &SessionState, relation: &str) -> Result<SchemaRef> {
    let plan = plan_in_session(state, &format!("SELECT * FROM {relation} LIMIT 0")).await?;
    Ok(std::sync::Arc::new(plan.schema().as_arrow().clone()))
}

fn is_time(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

/// The SQL of a training set: `entity` is a table (`raw.labels`) or a query;
/// `refs` are views (`user_features`: every feature) or features
/// (`merchant_features:risk_score`).
pub async fn training_sql(
    wh: &Warehouse,
    state: &SessionState,
    entity: &str,
    refs: &[String],
    options: &Options,
) -> Result<TrainingSet> {
    if refs.is_empty() {
        return Err(Error::Sql(
            "name at least one feature view or view:feature".into(),
        ));
    }
    // The views, in first-mention order, with the features asked for.
    let mut views: Vec<(FeatureViewDef, Vec<String>)> = Vec::new();
    for r in refs {
        let (view_name, feature) = match r.split_once(':') {
            Some((v, f)) => (v.trim(), Some(f.trim())),
            None => (r.trim(), None),
        };
        let view = get_view(wh, view_name).await?;
        let wanted: Vec<String> = match feature {
            None | Some("*") => view.features.iter().map(|f| f.name.clone()).collect(),
            Some(f) => {
                if !view.features.iter().any(|c| c.name == f) {
                    return Err(Error::Sql(format!(
                        "feature view `{}` has no feature `{f}`{}; features: {}",
                        view.name,
                        crate::error::did_you_mean(
                            f,
                            view.features.iter().map(|c| c.name.as_str())
                        ),
                        view.features
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                vec![f.to_string()]
            }
        };
        match views.iter_mut().find(|(v, _)| v.id() == view.id()) {
            Some((_, list)) => {
                for w in wanted {
                    if !list.contains(&w) {
                        list.push(w);
                    }
                }
            }
            None => views.push((view, wanted)),
        }
    }

    // The entity source, pinned to its version when it is a warehouse table.
    let mut inputs = Vec::new();
    let entity_from = if is_query(entity) {
        let default_schema = state.config().options().catalog.default_schema.clone();
        format!(
            "({})",
            pin_query(wh, &default_schema, entity, &mut inputs).await?
        )
    } else {
        match crate::names::split_table(entity) {
            Some((Some(s), t)) => match wh.latest_version(s, t).await? {
                Some(v) => {
                    inputs.push((format!("{s}.{t}"), v));
                    format!("{s}.{t} VERSION AS OF {v}")
                }
                None => entity.to_string(),
            },
            _ => entity.to_string(),
        }
    };
    let entity_schema = schema_of(state, &entity_from)
        .await
        .map_err(|e| Error::Sql(format!("entity source `{entity}`: {e}")))?;
    let has = |c: &str| entity_schema.field_with_name(c).is_ok();
    let timestamp = match &options.timestamp {
        Some(t) if has(t) => t.clone(),
        Some(t) => {
            return Err(Error::Sql(format!(
                "entity source `{entity}` has no column `{t}` (columns: {})",
                names(&entity_schema)
            )))
        }
        None if has("event_timestamp") => "event_timestamp".into(),
        None if has(&views[0].0.event_timestamp) => views[0].0.event_timestamp.clone(),
        None => {
            let times: Vec<&str> = entity_schema
                .fields()
                .iter()
                .filter(|f| is_time(f.data_type()))
                .map(|f| f.name().as_str())
                .collect();
            match times.as_slice() {
                [one] => one.to_string(),
                _ => {
                    return Err(Error::Sql(format!(
                        "entity source `{entity}`: which column is the entity's timestamp? name it with timestamp=<column> (time columns: {})",
                        if times.is_empty() { "none".to_string() } else { times.join(", ") }
                    )))
                }
            }
        }
    };

    let mut select = vec!["e.*".to_string()];
    let entity_columns: Vec<String> = entity_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // Output feature names: (name, view) of each, to name collisions.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut joins = Vec::new();
    for (i, (view, features)) in views.iter().enumerate() {
        let alias = format!("v{i}");
        for k in &view.entities {
            if !has(k) {
                return Err(Error::Sql(format!(
                    "entity source `{entity}` lacks `{k}`, an entity key of feature view `{}` (columns: {})",
                    view.name,
                    names(&entity_schema)
                )));
            }
        }
        if view.stream.is_some() {
            let (join, cols) = stream_join(
                wh,
                state,
                view,
                features,
                &alias,
                &entity_from,
                &timestamp,
                &mut inputs,
            )
            .await?;
            for (f, expr) in cols {
                let out = output_name(view, &f, options, &entity_columns, entity, &mut seen)?;
                select.push(format!("{expr} AS {}", crate::names::quote_ident(&out)));
            }
            joins.push(join);
            continue;
        }
        let version = wh.latest_version(&view.schema, &view.table).await?.ok_or_else(|| {
            Error::not_found(crate::error::Object::Table, format!(
                "feature view `{}`: table {} does not exist; run its model (sluice run models -s {})",
                view.name,
                view.id(),
                view.name
            ))
        })?;
        inputs.push((view.id(), version));
        let view_schema =
            schema_of(state, &format!("{} VERSION AS OF {version}", view.id())).await?;
        let ts_type = view_schema
            .field_with_name(&view.event_timestamp)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                Error::Sql(format!(
                    "feature view `{}` has no column `{}` any more; re-run its model",
                    view.name, view.event_timestamp
                ))
            })?;
        for f in features {
            let out = output_name(view, f, options, &entity_columns, entity, &mut seen)?;
            select.push(format!(
                "{alias}.{} AS {}",
                crate::names::quote_ident(f),
                crate::names::quote_ident(&out)
            ));
        }
        let mut on: Vec<String> = view
            .entities
            .iter()
            .map(|k| format!("e.{q} = {alias}.{q}", q = crate::names::quote_ident(k)))
            .collect();
        on.push(format!(
            "e.{} >= {alias}.{}",
            crate::names::quote_ident(&timestamp),
            crate::names::quote_ident(&view.event_timestamp)
        ));
        let mut join = format!(
            "ASOF LEFT JOIN {} VERSION AS OF {version} AS {alias} ON {}",
            view.id(),
            on.join(" AND ")
        );
        if let Some(ttl) = view.ttl_seconds {
            if is_time(&ts_type) {
                join.push_str(&format!(" TOLERANCE INTERVAL '{ttl} seconds'"));
            } else {
                join.push_str(&format!(" TOLERANCE {ttl}"));
            }
        }
        if let Some(c) = &view.created_timestamp {
            join.push_str(&format!(
                " TIEBREAK BY {alias}.{}",
                crate::names::quote_ident(c)
            ));
        }
        joins.push(join);
    }
    let sql = format!(
        "SELECT {}\nFROM {entity_from} AS e\n{}",
        select.join(", "),
        joins.join("\n")
    );
    Ok(TrainingSet {
        sql,
        inputs,
        timestamp,
    })
}

/// The output name of feature `f` of `view`: entity columns keep their
/// names, so a feature named like one comes back prefixed with its view, as
/// with full_names; two features of one name are an error (recorded in `seen`
/// as (name, view)).
fn output_name(
    view: &FeatureViewDef,
    f: &str,
    options: &Options,
    entity_columns: &[String],
    entity: &str,
    seen: &mut Vec<(String, String)>,
) -> Result<String> {
    let out = if options.full_names || entity_columns.iter().any(|c| c == f) {
        format!("{}__{f}", view.name)
    } else {
        f.to_string()
    };
    if entity_columns.contains(&out) {
        return Err(Error::Sql(format!(
            "feature `{f}` of view `{}` would be named `{out}`, a column of the entity source `{entity}`; rename that column in the entity source",
            view.name
        )));
    }
    if let Some((_, other)) = seen.iter().find(|(n, _)| n == &out) {
        return Err(Error::Sql(format!(
            "feature views `{other}` and `{}` both have a feature `{out}`; pass full_names=true (--full-names) to name features `<view>__<feature>`, or ask for one of them (`{other}:{f}`)",
            view.name
        )));
    }
    seen.push((out.clone(), view.name.clone()));
    Ok(out)
}

/// The join of a stream feature view: its aggregates computed offline
/// ([`offline_sql`](super::stream_agg::offline_sql)) as of each distinct
/// (entity, timestamp) of the entity source, over its source table pinned
/// to its current version, joined back on the entities and the timestamp.
/// Returns the join and, per feature, its name and the expression selecting it.
#[allow(clippy::too_many_arguments)]
async fn stream_join(
    wh: &Warehouse,
    state: &SessionState,
    view: &FeatureViewDef,
    features: &[String],
    alias: &str,
    entity_from: &str,
    timestamp: &str,
    inputs: &mut Vec<(String, u64)>,
) -> Result<(String, Vec<(String, String)>)> {
    use crate::names::quote_ident;
    let mut spec = super::online::stream::spec_of(view)?;
    let default_schema = state.config().options().catalog.default_schema.clone();
    let (s, t) = super::online::stream::source_table(&spec.source, &default_schema)?;
    let version = wh.latest_version(&s, &t).await?.ok_or_else(|| {
        Error::not_found(
            crate::error::Object::Table,
            format!(
                "stream feature view `{}`: its source {s}.{t} does not exist; load it (sluice load / sluice stream)",
                view.name
            ),
        )
    })?;
    let id = format!("{s}.{t}");
    if !inputs.iter().any(|(x, _)| x == &id) {
        inputs.push((id, version));
    }
    let source_alias = spec.source_alias.clone().unwrap_or_else(|| t.clone());
    spec.source = format!(
        "(SELECT * FROM {}.{} VERSION AS OF {version})",
        quote_ident(&s),
        quote_ident(&t)
    );
    spec.source_alias = Some(source_alias);
    const LABEL_TS: &str = "__sluice_label_ts";
    let ents: Vec<String> = view.entities.iter().map(|e| quote_ident(e)).collect();
    let labels = format!(
        "SELECT DISTINCT {}, {} AS {LABEL_TS} FROM {entity_from} AS __sluice_e",
        ents.join(", "),
        quote_ident(timestamp)
    );
    let mut label_columns: Vec<&str> = view.entities.iter().map(String::as_str).collect();
    label_columns.push(LABEL_TS);
    let offline = super::stream_agg::offline_sql(&spec, &labels, LABEL_TS, &label_columns);
    let mut on: Vec<String> = ents
        .iter()
        .map(|k| format!("e.{k} = {alias}.{k}"))
        .collect();
    on.push(format!("e.{} = {alias}.{LABEL_TS}", quote_ident(timestamp)));
    let join = format!("LEFT JOIN ({offline}) AS {alias} ON {}", on.join(" AND "));
    let cols = features
        .iter()
        .map(|f| {
            // A count is 0, not NULL, for an entity with no event in its
            // window (as online); a label with a NULL key or time has none.
            let col = format!("{alias}.{}", quote_ident(f));
            let is_count = spec
                .aggregates
                .iter()
                .any(|a| &a.alias == f && a.func.sql_name() == "count");
            let expr = if is_count {
                format!(
                    "CASE WHEN {} THEN {col} ELSE coalesce({col}, 0) END",
                    ents.iter()
                        .map(|k| format!("e.{k} IS NULL"))
                        .chain([format!("e.{} IS NULL", quote_ident(timestamp))])
                        .collect::<Vec<_>>()
                        .join(" OR ")
                )
            } else {
                col
            };
            (f.clone(), expr)
        })
        .collect();
    Ok((join, cols))
}

fn names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
