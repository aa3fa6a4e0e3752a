//! Column lineage of a whole project (`models::lineage`), expected lineage
//! written by hand from the models' SQL.

use crate::common::*;
use sluice::models::lineage::{project_lineage, ProjectLineage};
use sluice::models::CompileOptions;
use sluice::project::Project;

/// `relation.column:kind` of every hop, sorted.
fn hops(h: &[sluice::models::lineage::Hop]) -> Vec<String> {
    let mut v: Vec<String> = h
        .iter()
        .map(|h| format!("{}.{}:{}", h.relation, h.column, h.kind))
        .collect();
    v.sort();
    v
}

fn direct(l: &ProjectLineage, relation: &str, column: &str) -> Vec<String> {
    let m = &l.models[relation];
    assert!(m.error.is_none(), "{relation}: {:?}", m.error);
    let (_, deps) = m
        .columns
        .iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("{relation} has no {column}: {:?}", m.columns));
    let mut v: Vec<String> = deps
        .iter()
        .map(|(o, k)| format!("{}.{}:{k}", o.relation, o.column))
        .collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The jaffle-shop-style fixture, traced before any model is built (only
/// its seeds are loaded): the staging views and `customers` are planned from
/// the columns their upstream plans give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_shop_columns_trace_to_the_seeds() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("tests/fixtures/dbt_shop"), dir.path());
    let project = Project::load(dir.path()).unwrap();
    let wh = open(&project, None);
    sluice::load::seeds::seed(&project, &wh, &[], true, &sluice::load::NoProgress)
        .await
        .unwrap();
    let e = engine(&project, &wh).await;
    let compiled = sluice::models::compile(&project, &e, &CompileOptions::default())
        .await
        .unwrap();
    let l = project_lineage(&compiled, &e).await.unwrap();

    // stg_orders: `select id as order_id, customer_id, amount, status from
    // raw_orders where amount >= var('min_amount')`.
    assert_eq!(
        direct(&l, "main_staging.stg_orders", "order_id"),
        sorted(&["main.raw_orders.id:copied", "main.raw_orders.amount:filter"])
    );
    // customers: total_amount = coalesce(sum(amount)) over orders with
    // status 'done', grouped by customer_id, left-joined on customer_id.
    let keys = [
        "main_staging.stg_orders.status:filter",
        "main_staging.stg_orders.customer_id:filter",
        "main_staging.stg_customers.customer_id:filter",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<&str> = keys.to_vec();
        v.extend_from_slice(extra);
        sorted(&v)
    };
    assert_eq!(
        direct(&l, "main.customers", "total_amount"),
        with(&["main_staging.stg_orders.amount:aggregated"])
    );
    assert_eq!(
        direct(&l, "main.customers", "total_cents"),
        with(&["main_staging.stg_orders.amount:aggregated"])
    );
    assert_eq!(
        direct(&l, "main.customers", "name"),
        with(&["main_staging.stg_customers.name:copied"])
    );
    // count(*) reads no column's value: only what decides its rows.
    assert_eq!(direct(&l, "main.customers", "order_count"), with(&[]));

    // Upstream of total_amount, down to the seeds.
    let up = hops(&l.upstream("main.customers", "total_amount"));
    for want in [
        "main_staging.stg_orders.amount:aggregated",
        "main.raw_orders.amount:aggregated",
        "main.raw_orders.status:filter",
        "main.raw_orders.customer_id:filter",
        "main.raw_customers.id:filter",
    ] {
        assert!(up.contains(&want.to_string()), "{want} not in {up:?}");
    }
    assert!(
        !up.iter().any(|h| h.starts_with("main.raw_customers.name")),
        "{up:?}"
    );
    // Downstream of a seed column: every column computed from it.
    let down = hops(&l.downstream("main.raw_orders", "amount"));
    assert_eq!(
        down.iter()
            .filter(|h| !h.ends_with(":filter"))
            .cloned()
            .collect::<Vec<_>>(),
        sorted(&[
            "main_staging.stg_orders.amount:copied",
            "main.customers.total_amount:aggregated",
            "main.customers.total_cents:aggregated",
        ])
    );
}
