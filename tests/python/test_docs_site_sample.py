"""The docs site's front-end (src/docs/site) on hand-written data, in headless Chromium.

No sluice binary needed: the test copies the three site files into tmp_path and
writes data.js itself, once with a small project that uses every kind and every
section, once with a generated project of 1,000 models. Skips when Playwright or
chromium is missing, unless SLUICE_REQUIRE_CHROMIUM=1 (then it fails).
SLUICE_DOCS_SHOTS=DIR also copies the screenshots there.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from collections import deque
from pathlib import Path

import pytest

from docs_browser import DocsPage, check_site, unavailable_reason

SITE_SRC = Path(__file__).resolve().parents[2] / "src" / "docs" / "site"
SITE_FILES = ("index.html", "app.js", "app.css")


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("SLUICE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"SLUICE_REQUIRE_CHROMIUM=1 but {reason}")
        pytest.skip(reason)


def write_site(dir: Path, data: dict) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    for f in SITE_FILES:
        shutil.copyfile(SITE_SRC / f, dir / f)
    (dir / "data.js").write_text("window.SLUICE_DOCS = " + json.dumps(data, indent=1) + ";\n", encoding="utf-8")
    return dir


def keep_shot(path: Path):
    out = os.environ.get("SLUICE_DOCS_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(out) / path.name)


# ---------------------------------------------------------------- the data

def node(id, kind, name, columns=(), **kw):
    n = {
        "id": id, "kind": kind, "name": name, "relation": None, "file": None, "description": None,
        "materialized": None, "tags": [], "raw_sql": None, "compiled_sql": None,
        "columns": [{"name": c, "type": t, "description": None} for c, t in columns],
        "tests": [], "versions": [], "runs": [], "loads": [], "freshness": None, "feature_view": None,
    }
    n.update(kw)
    return n


def hist(*statuses):
    return [{"at": f"2026-12-0{i + 1}T06:00:00Z", "status": s, "failures": 0 if s == "pass" else 3}
            for i, s in enumerate(statuses)]


XSS_DESCRIPTION = 'Orders, one row per order. <script>window.__xss = 1</script><img src=x onerror="window.__xss=2"> & <b>not bold</b>'
RAW_SQL = "select o.*, '<b>not bold</b>' as tag\nfrom {{ ref('stg_orders') }} o\n{% if is_incremental() %} where o.order_id > (select max(order_id) from {{ this }}) {% endif %}"


def sample_project() -> dict:
    i64, dec, txt, ts, b = "Int64", "Decimal128(10, 2)", "Utf8", "Timestamp(Microsecond, None)", "Boolean"
    nodes = [
        node("source.raw.orders", "source", "orders", [("id", i64), ("user_id", i64), ("amount_cents", i64), ("status", txt), ("loaded_at", ts)],
             relation="raw.orders", file="sources.yml", description="Raw orders landed by `sluice load`.",
             tests=[{"name": "not_null_orders_id", "column": "id", "status": "pass", "failures": 0, "last_run": "2026-12-06T06:00:00Z",
                     "history": hist("pass", "pass", "pass")}],
             loads=[{"at": "2026-12-06T04:30:00Z", "load_id": "load-3", "rows": 100, "quarantined": 2},
                    {"at": "2026-12-05T04:30:00Z", "load_id": "load-2", "rows": 80, "quarantined": 0}],
             freshness={"max_loaded_at": "2026-12-06T04:30:00Z", "age_seconds": 9000.0, "warn_after_seconds": 7200,
                        "error_after_seconds": 86400, "status": "warn", "checked_at": "2026-12-06T07:00:00Z"}),
        node("source.raw.users", "source", "users", [("id", i64), ("name", txt), ("country_code", txt)],
             relation="raw.users", file="sources.yml",
             freshness={"max_loaded_at": "2026-12-06T06:30:00Z", "age_seconds": 1800.0, "warn_after_seconds": 7200,
                        "error_after_seconds": 86400, "status": "pass", "checked_at": "2026-12-06T07:00:00Z"}),
        node("seed.country_codes", "seed", "country_codes", [("code", txt), ("country_name", txt)],
             relation="analytics.country_codes", file="seeds/country_codes.csv", materialized="table"),
        node("model.stg_orders", "model", "stg_orders", [("order_id", i64), ("user_id", i64), ("amount", dec), ("status", txt)],
             relation="analytics.stg_orders", file="sql/stg_orders.sql", materialized="view", tags=["staging"],
             raw_sql="select id as order_id, user_id, amount_cents / 100.0 as amount, status\nfrom {{ source('raw', 'orders') }}",
             compiled_sql="select id as order_id, user_id, amount_cents / 100.0 as amount, status\nfrom raw.orders"),
        node("model.orders", "model", "orders",
             [("order_id", i64), ("user_id", i64), ("amount", dec), ("is_paid", b), ("country", txt)],
             relation="analytics.orders", file="sql/orders.sql", materialized="incremental", tags=["core", "finance"],
             description=XSS_DESCRIPTION, raw_sql=RAW_SQL,
             compiled_sql=RAW_SQL.replace("{{ ref('stg_orders') }}", "analytics.stg_orders").replace("{{ this }}", "analytics.orders"),
             tests=[
                 {"name": "not_null_orders_amount", "column": "amount", "status": "pass", "failures": 0,
                  "last_run": "2026-12-06T06:00:00Z", "history": hist("pass", "pass", "pass", "pass")},
                 {"name": "unique_orders_order_id", "column": "order_id", "status": "fail", "failures": 3,
                  "last_run": "2026-12-06T06:00:00Z", "history": hist("pass", "pass", "fail", "fail")},
                 {"name": "accepted_values_orders_is_paid", "column": "is_paid", "status": "warn", "failures": 1,
                  "last_run": "2026-12-06T06:00:00Z", "history": hist("pass", "warn")},
                 {"name": "orders_recent_rows", "column": None, "status": "never run", "failures": None,
                  "last_run": None, "history": []},
             ],
             versions=[{"version": 3, "timestamp": "2026-12-06T06:00:01Z", "operation": "MERGE", "rows": 1200, "run_id": "run-3"},
                       {"version": 2, "timestamp": "2026-12-05T06:00:01Z", "operation": "MERGE", "rows": 1100, "run_id": "run-2"},
                       {"version": 1, "timestamp": "2026-12-04T06:00:01Z", "operation": "WRITE", "rows": 1000, "run_id": None}],
             runs=[{"run_id": "run-3", "started_at": "2026-12-06T06:00:00Z", "seconds": 0.42, "status": "success", "rows": 1200},
                   {"run_id": "run-2", "started_at": "2026-12-05T06:00:00Z", "seconds": 1.9, "status": "error", "rows": 0},
                   {"run_id": "run-1", "started_at": "2026-12-04T06:00:00Z", "seconds": 0.37, "status": "success", "rows": 1000}]),
        node("model.user_stats", "model", "user_stats", [("user_id", i64), ("total_amount", dec), ("n_orders", i64)],
             relation="analytics.user_stats", file="sql/user_stats.sql", materialized="table",
             raw_sql="select user_id, sum(amount) filter (where is_paid) as total_amount, count(order_id) as n_orders\nfrom {{ ref('orders') }} group by 1",
             runs=[{"run_id": "run-3", "started_at": "2026-12-06T06:00:02Z", "seconds": 0.05, "status": "success", "rows": 40}]),
        node("snapshot.users_snapshot", "snapshot", "users_snapshot",
             [("id", i64), ("name", txt), ("country_code", txt), ("valid_from", ts), ("valid_to", ts)],
             relation="snapshots.users_snapshot", file="snapshots/users_snapshot.sql", materialized="table"),
        node("feature_view.user_features", "feature_view", "user_features",
             [("user_id", i64), ("total_amount", dec), ("n_orders", i64), ("ts", ts)],
             relation="features.user_features", file="features.yml", description="Spend features per user.",
             feature_view={"entities": ["user_id"], "event_timestamp": "ts", "ttl": "1d", "features": ["total_amount", "n_orders"],
                           "online": {"store": "embedded", "materialized_at": "2026-12-06T06:10:00Z", "entities": 1234}}),
        # everything null or missing: the page must not throw
        {"id": "model.bare", "kind": "model", "name": "bare", "columns": None, "tests": None, "tags": None,
         "versions": None, "runs": None, "loads": None, "freshness": None, "feature_view": None},
    ]
    edges = [
        ("source.raw.orders", "model.stg_orders"), ("model.stg_orders", "model.orders"),
        ("seed.country_codes", "model.orders"), ("source.raw.users", "model.orders"),
        ("model.orders", "model.user_stats"), ("source.raw.users", "snapshot.users_snapshot"),
        ("model.user_stats", "feature_view.user_features"), ("model.orders", "model.bare"),
    ]
    L = []

    def lin(n, c, *inputs):
        L.append({"node": n, "column": c, "inputs": [{"node": a, "column": b, "kind": k} for a, b, k in inputs]})

    lin("model.stg_orders", "order_id", ("source.raw.orders", "id", "copied"))
    lin("model.stg_orders", "user_id", ("source.raw.orders", "user_id", "copied"))
    lin("model.stg_orders", "amount", ("source.raw.orders", "amount_cents", "transformed"))
    lin("model.stg_orders", "status", ("source.raw.orders", "status", "copied"))
    lin("model.orders", "order_id", ("model.stg_orders", "order_id", "copied"))
    lin("model.orders", "user_id", ("model.stg_orders", "user_id", "copied"))
    lin("model.orders", "amount", ("model.stg_orders", "amount", "copied"))
    lin("model.orders", "is_paid", ("model.stg_orders", "status", "transformed"))
    lin("model.orders", "country", ("seed.country_codes", "country_name", "copied"), ("source.raw.users", "country_code", "filter"))
    lin("model.user_stats", "user_id", ("model.orders", "user_id", "copied"))
    lin("model.user_stats", "total_amount", ("model.orders", "amount", "aggregated"), ("model.orders", "is_paid", "filter"))
    lin("model.user_stats", "n_orders", ("model.orders", "order_id", "aggregated"))
    lin("snapshot.users_snapshot", "id", ("source.raw.users", "id", "copied"))
    lin("snapshot.users_snapshot", "country_code", ("source.raw.users", "country_code", "copied"))
    lin("feature_view.user_features", "user_id", ("model.user_stats", "user_id", "copied"))
    lin("feature_view.user_features", "total_amount", ("model.user_stats", "total_amount", "copied"))
    lin("feature_view.user_features", "n_orders", ("model.user_stats", "n_orders", "copied"))
    # lineage between nodes with no dependency edge, on a column the node does not list
    lin("model.bare", "x", ("model.stg_orders", "order_id", "transformed"))
    return {
        "project": "jaffle <shop>", "generated_at": "2026-12-06T07:00:00Z", "sluice_version": "0.1.0",
        "nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges], "column_lineage": L,
    }


def big_project(n_models=1000, n_sources=20, seed=24) -> dict:
    """Chains with random fan-in: each model reads the model just before it in
    its chain and up to two random earlier nodes; ten columns each, every model
    column derived from one or two columns of its inputs."""
    rng = random.Random(seed)
    cols = ["id"] + [f"c{i}" for i in range(1, 9)]
    nodes, edges, lineage = [], [], []
    ids = []
    for s in range(n_sources):
        id = f"source.raw.s{s:02d}"
        nodes.append(node(id, "source", f"s{s:02d}", [(c, "Int64") for c in cols] + [("loaded_at", "Timestamp")],
                          relation=f"raw.s{s:02d}", file="sources.yml"))
        ids.append(id)
    for m in range(n_models):
        id = f"model.m{m:04d}"
        parents = [ids[-rng.randint(1, min(6, len(ids)))]]
        for _ in range(rng.choice([0, 1, 1, 2])):
            p = rng.choice(ids)
            if p not in parents:
                parents.append(p)
        for p in parents:
            edges.append({"from": p, "to": id})
        mcols = cols + [f"kpi_{m:04d}"]
        for c in mcols:
            ins = []
            for _ in range(rng.choice([1, 1, 1, 2])):
                p = rng.choice(parents)
                pc = c if c in cols and rng.random() < 0.8 else rng.choice(cols)
                ins.append({"node": p, "column": pc, "kind": rng.choice(["copied", "copied", "transformed", "aggregated", "filter"])})
            lineage.append({"node": id, "column": c, "inputs": ins})
        nodes.append(node(id, "model", f"m{m:04d}", [(c, "Int64") for c in mcols], relation=f"analytics.m{m:04d}",
                          file=f"sql/m{m:04d}.sql", materialized=rng.choice(["table", "view", "incremental"]),
                          description=f"Model number {m} of the generated project.",
                          raw_sql=f"select * from {{{{ ref('{parents[0].split('.')[-1]}') }}}}"))
        ids.append(id)
    return {"project": "generated", "generated_at": "2026-12-06T07:00:00Z", "sluice_version": "0.1.0",
            "nodes": nodes, "edges": edges, "column_lineage": lineage}


# ------------------------------------------------------- expected answers

def adjacency(data):
    up, down = {}, {}
    for e in data["edges"]:
        down.setdefault(e["from"], []).append(e["to"])
        up.setdefault(e["to"], []).append(e["from"])
    return up, down


def neighbourhood(data, id, depth):
    up, down = adjacency(data)
    out = {id}
    for adj in (up, down):
        seen, frontier = {id}, [id]
        for _ in range(depth):
            nxt = []
            for x in frontier:
                for y in adj.get(x, []):
                    if y not in seen:
                        seen.add(y)
                        nxt.append(y)
            out.update(nxt)
            frontier = nxt
    return out


def column_closure(data, node_id, column, direction="up"):
    """{(node, column): kind of the edge next to it on a shortest path}."""
    m = {}
    for cl in data["column_lineage"]:
        for i in cl["inputs"]:
            if direction == "up":
                m.setdefault((cl["node"], cl["column"]), []).append((i["node"], i["column"], i["kind"]))
            else:
                m.setdefault((i["node"], i["column"]), []).append((cl["node"], cl["column"], i["kind"]))
    start = (node_id, column)
    seen, out, q = {start}, {}, deque([start])
    while q:
        k = q.popleft()
        for n, c, kind in m.get(k, []):
            if (n, c) not in seen:
                seen.add((n, c))
                out[(n, c)] = kind
                q.append((n, c))
    return out


def refs(closure):
    return sorted(f"{n}.{c}" for n, c in closure)


# ------------------------------------------------------------------ tests

def test_small_project(tmp_path):
    data = sample_project()
    site = write_site(tmp_path / "small", data)
    all_ids = sorted(n["id"] for n in data["nodes"])
    all_edges = sorted((e["from"], e["to"]) for e in data["edges"])
    with DocsPage(site) as p:
        # everything drawn, nothing selected
        assert sorted(p.nodes()) == all_ids
        assert sorted(p.edges()) == all_edges
        assert p.page.inner_text("#project") == "jaffle <shop>"
        assert "showing 9 of 9 nodes" in p.status_text()
        legend = p.page.inner_text("#legend")
        for kind in ("source", "seed", "snapshot", "model", "feature view"):
            assert kind in legend
        # the sidebar lists every node grouped by kind
        groups = p.page.eval_on_selector_all("#results .group-head", "els => els.map(e => e.firstChild.nextSibling.textContent)")
        assert groups == ["Sources", "Seeds", "Snapshots", "Models", "Feature views"]

        # click a model: details, columns, hash, sections
        p.click_node("model.orders")
        assert p.selected_node() == "model.orders"
        assert p.hash() == "#node=model.orders"
        assert p.columns() == ["order_id", "user_id", "amount", "is_paid", "country"]
        assert p.sections() == ["overview", "columns", "sql", "tests", "versions", "runs"]
        # user text is text, never markup
        assert p.page.evaluate("() => window.__xss") is None
        desc = p.page.inner_text("#details .description")
        assert "<script>window.__xss = 1</script>" in desc and "<b>not bold</b>" in desc
        assert p.page.evaluate("() => document.querySelectorAll('#details script, #details img, #details b').length") == 0
        sql = p.page.inner_text("#details pre.sql")
        assert "'<b>not bold</b>'" in sql and "analytics.stg_orders" in sql  # compiled first
        p.page.click("#details .sql-toggle button[data-mode='raw']")
        assert "{{ ref('stg_orders') }}" in p.page.inner_text("#details pre.sql")
        # tests: badges, failures, trend strip with one bar per history entry
        statuses = p.page.eval_on_selector_all("#details tr.test td:first-child .badge", "els => els.map(e => e.textContent)")
        assert statuses == ["pass", "fail", "warn", "never run"]
        assert p.page.eval_on_selector_all("#details tr.test svg.trend", "els => els.map(e => e.querySelectorAll('rect').length)") == [4, 4, 2]
        assert p.page.eval_on_selector_all("#details tr.column[data-column='order_id'] .badge", "els => els.map(e => e.className)") == ["badge small s-fail"]
        assert p.page.eval_on_selector_all("#details svg.run-chart rect", "els => els.length") == 3
        assert p.page.eval_on_selector_all("#details [data-section='versions'] tbody tr", "els => els.length") == 3
        # the selected node's neighbours are linked
        links = p.page.eval_on_selector_all("#details [data-section='overview'] a.node-link", "els => els.map(e => e.getAttribute('data-id'))")
        assert sorted(links) == ["model.bare", "model.stg_orders", "model.user_stats", "seed.country_codes", "source.raw.users"]

        # a source: freshness with thresholds, loads with quarantined rows
        p.click_node("source.raw.orders")
        assert p.sections() == ["overview", "columns", "tests", "freshness"]
        fresh = p.page.inner_text("#details [data-section='freshness']")
        assert "warn" in fresh and "2 h 30 min" in fresh
        assert p.page.eval_on_selector_all("#details td.quarantined", "els => els.map(e => e.textContent)") == ["2"]

        # a feature view
        p.click_node("feature_view.user_features")
        assert "feature_view" in p.sections()
        fv = p.page.inner_text("#details [data-section='feature_view']")
        for text in ("user_id", "ts", "1d", "total_amount", "n_orders", "embedded", "1,234"):
            assert text in fv

        # a column: exactly its transitive upstream columns, the nodes that hold
        # them and the edges between them are highlighted
        p.select_column("total_amount")
        up = column_closure(data, "feature_view.user_features", "total_amount")
        assert refs(up) == [
            "model.orders.amount", "model.orders.is_paid", "model.stg_orders.amount", "model.stg_orders.status",
            "model.user_stats.total_amount", "source.raw.orders.amount_cents", "source.raw.orders.status",
        ]
        assert sorted(p.highlighted_columns()) == refs(up)
        assert sorted(p.graph_columns()) == refs(up)
        assert p.upstream_kinds() == {f"{n}.{c}": k for (n, c), k in up.items()}
        assert sorted(p.highlighted_nodes()) == sorted({n for n, _ in up})
        assert sorted(p.highlighted_edges()) == sorted([
            ("source.raw.orders", "model.stg_orders"), ("model.stg_orders", "model.orders"),
            ("model.orders", "model.user_stats"), ("model.user_stats", "feature_view.user_features")])
        assert p.downstream_columns() == []
        assert p.hash() == "#node=feature_view.user_features&column=total_amount"
        assert sorted(p.edges()) == all_edges  # lineage adds no edge the data lacks
        shot = p.screenshot(tmp_path / "docs-small-lineage.png")
        keep_shot(shot)

        # a mid-chain column has both directions
        p.click_node("model.orders")
        p.select_column("amount")
        assert sorted(p.highlighted_columns()) == refs(column_closure(data, "model.orders", "amount"))
        assert sorted(p.downstream_columns()) == refs(column_closure(data, "model.orders", "amount", "down")) == [
            "feature_view.user_features.total_amount", "model.user_stats.total_amount"]
        # clicking the selected row again clears the column
        p.select_column("country")
        assert sorted(p.highlighted_nodes()) == ["seed.country_codes", "source.raw.users"]
        p._find("#details tr.column", "data-column", "country").click()
        assert p.selected_column() is None and p.highlighted_nodes() == []

        # a node with every field null or missing
        p.click_node("model.bare")
        assert p.sections() == ["overview"] and p.columns() == []

    # the hash is read on load
    with DocsPage(site, hash="#node=model.orders&column=is_paid") as p:
        assert p.selected_node() == "model.orders"
        assert p.selected_column() == "is_paid"
        assert sorted(p.highlighted_columns()) == ["model.stg_orders.status", "source.raw.orders.status"]

    # a column the node does not list (from the hash), with lineage from a node it
    # has no dependency edge to: listed, and drawn as an extra dashed edge
    with DocsPage(site, hash="#node=model.bare&column=x") as p:
        assert p.columns() == []
        assert sorted(p.highlighted_columns()) == ["model.stg_orders.order_id", "source.raw.orders.id"]
        assert sorted(p.highlighted_edges()) == [("model.stg_orders", "model.bare"), ("source.raw.orders", "model.stg_orders")]
        extra = p.page.eval_on_selector_all("#edges path.edge.extra", "els => els.map(e => [e.getAttribute('data-from'), e.getAttribute('data-to')])")
        assert extra == [["model.stg_orders", "model.bare"]]

    # pan by dragging (also from a node, which then is not selected), zoom with
    # the wheel around the cursor, the buttons, close and Back
    with DocsPage(site) as p:
        v0 = p.view()
        b = p.page.locator("#nodes g.node[data-id='model.orders']").bounding_box()
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        p.page.mouse.move(x, y)
        p.page.mouse.down()
        p.page.mouse.move(x + 60, y + 40, steps=4)
        p.page.mouse.up()
        v1 = p.view()
        assert (round(v1["tx"] - v0["tx"]), round(v1["ty"] - v0["ty"]), v1["k"]) == (60, 40, v0["k"])
        assert p.selected_node() is None
        g = p.page.locator("#graph").bounding_box()
        mx, my = g["x"] + 200, g["y"] + 150
        p.page.mouse.move(mx, my)
        p.page.mouse.wheel(0, -200)
        p.page.wait_for_function("k => window.SLUICE_APP.view.k > k", arg=v1["k"])
        v2 = p.view()
        lx, ly = mx - g["x"], my - g["y"]  # the point under the cursor stays put
        assert abs((lx - v1["tx"]) / v1["k"] - (lx - v2["tx"]) / v2["k"]) < 0.5
        assert abs((ly - v1["ty"]) / v1["k"] - (ly - v2["ty"]) / v2["k"]) < 0.5
        p.page.click("#zoom-out")
        assert abs(p.view()["k"] - v2["k"] * 0.8) < 1e-3
        p.page.click("#zoom-fit")
        assert p.view() == v0
        p.click_node("model.user_stats")
        p.page.click("#details .details-head .close")
        assert p.selected_node() is None and p.sections()[0] == "overview"
        p.page.go_back()
        p.page.wait_for_function("() => window.SLUICE_APP.state.selected === 'model.user_stats'")
        assert p.columns() == ["user_id", "total_amount", "n_orders"]

    # the one-call check a test of `sluice docs generate` can use
    seen = check_site(site, tmp_path / "docs-small-check.png", {
        "project": "jaffle <shop>", "nodes": all_ids, "edges": all_edges, "select": "model.user_stats",
        "columns": ["user_id", "total_amount", "n_orders"], "sections": ["overview", "columns", "sql", "runs"],
        "column": "n_orders", "upstream": ["model.orders.order_id", "model.stg_orders.order_id", "source.raw.orders.id"],
    })
    assert seen["upstream"]


def test_large_project(tmp_path):
    data = big_project()
    total = len(data["nodes"])
    assert total == 1020
    site = write_site(tmp_path / "big", data)
    with DocsPage(site) as p:
        # too big to draw: a prompt instead
        assert p.nodes() == []
        assert p.prompt_visible()
        assert "showing 0 of 1,020 nodes" in p.status_text()

        # search by a column name, within 2 s from typing to results
        ids, seconds = p.search("kpi_0777")
        assert ids[:1] == ["model.m0777"], ids[:5]
        assert seconds < 2.0, seconds
        ids, seconds = p.search("m0777")
        assert ids[0] == "model.m0777" and seconds < 2.0, (ids[:5], seconds)
        ids, seconds = p.search("analytics m09")
        assert len(ids) == 100 and all(i.startswith("model.m09") for i in ids) and seconds < 2.0
        ids, _ = p.search("m0777")

        # selecting the result draws its neighbourhood (depth 2 by default)
        p.select_result("model.m0777")
        want = neighbourhood(data, "model.m0777", 2)
        assert sorted(p.nodes()) == sorted(want)
        assert p.selected_node() == "model.m0777"
        assert not p.prompt_visible()
        assert f"showing {len(want)} of 1,020 nodes" in p.status_text()
        drawn = set(want)
        want_edges = sorted((e["from"], e["to"]) for e in data["edges"] if e["from"] in drawn and e["to"] in drawn)
        assert sorted(p.edges()) == want_edges
        perf = p.page.evaluate("() => window.SLUICE_APP.perf")
        assert perf["renderMs"] < 1000, perf

        # Enter selects the first result
        p.search("m0500")
        p.page.keyboard.press("Enter")
        p.page.wait_for_function("() => window.SLUICE_APP.state.selected === 'model.m0500'")
        assert sorted(p.nodes()) == sorted(neighbourhood(data, "model.m0500", 2))

        # depth 1, then a column: its whole lineage is drawn, beyond depth 1
        p.set_depth(1)
        nb1 = neighbourhood(data, "model.m0500", 1)
        assert sorted(p.nodes()) == sorted(nb1)
        assert "#node=model.m0500&depth=1" == p.hash()
        p.select_column("c3")
        up = column_closure(data, "model.m0500", "c3")
        down = column_closure(data, "model.m0500", "c3", "down")
        assert len({n for n, _ in up} - nb1) > 0  # the test means something
        assert sorted(p.highlighted_columns()) == refs(up)
        assert sorted(p.downstream_columns()) == refs(down)
        assert sorted(p.highlighted_nodes()) == sorted({n for n, _ in up})
        assert sorted(p.nodes()) == sorted(nb1 | {n for n, _ in up} | {n for n, _ in down})
        perf = p.page.evaluate("() => window.SLUICE_APP.perf")
        assert perf["renderMs"] < 2000, perf
        shot = p.screenshot(tmp_path / "docs-large-lineage.png")
        keep_shot(shot)
