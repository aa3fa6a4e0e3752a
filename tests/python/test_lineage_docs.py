"""Column lineage, the docs site, test/load history and OpenLineage events
(issue 24), end to end on the example project and a generated one.

Every expectation here is written by hand from the SQL of the example project
(sql/staging/*.sql, sql/features/*.sql, catalog/sources.toml, the schema.yml
files), never copied from sluice's output:

  * `sluice lineage` (json, text, dot, errors) on the built example, and on
    models added on top of it that read a feature view through
    historical_features(...) and through an AS OF JOIN;
  * the OpenLineage events of a real `sluice run` (HTTP endpoint that refuses
    the first two posts, plus the file transport), of a run with a failing
    model, and of a run whose endpoint is down;
  * `sluice docs generate` / `docs serve` on the example (in headless Chromium:
    graph, columns, column lineage, tests with their history) and on a
    generated project of 1,000 unbuilt models (search, neighbourhood);
  * `sluice test --history` after a run with a failing test and a load with a
    quarantined row.

The browser parts skip without Playwright or chromium unless
SLUICE_REQUIRE_CHROMIUM=1 (then they fail). SLUICE_DOCS_SCREENSHOT=PATH also
writes the README's screenshot (tests/screenshots/docs-site.png) there.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_project, parse_json_output
from docs_browser import DocsPage, unavailable_reason
from openlineage_check import Receiver, assert_lifecycle, by_job, read_jsonl, validate_event

PROJECT = "fraud_features"  # [project] name in sluice.toml: the jobs' name prefix

# ----------------------------------------------------------------- the example
# Written from reading the example's SQL.

# features.user_features' select list, in order
USER_FEATURES_COLUMNS = [
    "user_id", "as_of_ts", "txn_count", "avg_amount", "total_amount", "stddev_amount",
    "last_txn_ts", "days_since_last_txn", "txn_count_30d", "amount_30d",
]

# Every column computed from raw.transactions.amount: (kind, is_feature).
# stg_transactions and txn_enriched select `amount` as is; daily_user_spend
# sums it; user_features aggregates it in avg/sum/stddev_samp/sum FILTER;
# merchant_features sums it; user_txn_rolling copies it and sums/averages it
# over windows. Not in the list: any count(*) (txn_count, txn_count_30d,
# txn_count_24h: they read no column's value, and amount decides no row: it is
# in no WHERE, JOIN ON, GROUP BY, PARTITION BY or ORDER BY), and every other
# column of those models.
AMOUNT_DOWNSTREAM = {
    "staging.stg_transactions.amount": ("copied", False),
    "staging.txn_enriched.amount": ("copied", False),
    "features.daily_user_spend.amount": ("aggregated", False),
    "features.merchant_features.total_amount": ("aggregated", True),
    "features.user_features.avg_amount": ("aggregated", True),
    "features.user_features.total_amount": ("aggregated", True),
    "features.user_features.stddev_amount": ("aggregated", True),
    "features.user_features.amount_30d": ("aggregated", True),
    "features.user_txn_rolling.amount": ("copied", True),
    "features.user_txn_rolling.amount_30d": ("aggregated", True),
    "features.user_txn_rolling.avg_amount_30d": ("aggregated", True),
    "features.user_txn_rolling.amount_24h": ("aggregated", True),
}

# Everything features.user_features.total_amount (sum(amount) ... GROUP BY
# user_id) comes from: its value from amount; the rows from the WHERE ts < as_of
# of the CTE, the GROUP BY user_id, txn_enriched's LEFT JOIN ON merchant_id and
# stg_transactions' WHERE user_id IS NOT NULL. (kind, is_model). The ephemeral
# txn_enriched's own columns are left out of the comparison: whether an inlined
# model shows as a step is a presentation choice.
TOTAL_AMOUNT_UPSTREAM = {
    "staging.stg_transactions.amount": ("aggregated", True),
    "staging.stg_transactions.user_id": ("filter", True),
    "staging.stg_transactions.ts": ("filter", True),
    "staging.stg_transactions.merchant_id": ("filter", True),
    "staging.stg_merchants.merchant_id": ("filter", True),
    "raw.transactions.amount": ("aggregated", False),
    "raw.transactions.user_id": ("filter", False),
    "raw.transactions.ts": ("filter", False),
    "raw.transactions.merchant_id": ("filter", False),
    "raw.merchants.merchant_id": ("filter", False),
}

# The example's graph. Sources (catalog/sources.toml; merchants and labels
# land in the default schema raw) and models (sql/**.sql).
EXAMPLE_NODES = sorted([
    "source.raw.users", "source.raw.merchants", "source.raw.transactions", "source.raw.labels",
    "model.staging.stg_users", "model.staging.stg_merchants", "model.staging.stg_transactions",
    "model.staging.txn_enriched", "model.features.daily_user_spend", "model.features.merchant_features",
    "model.features.user_features", "model.features.user_txn_rolling",
])
# What each model's SQL reads (FROM / JOIN / ref, the incremental branches too)
EXAMPLE_EDGES = sorted([
    ("source.raw.users", "model.staging.stg_users"),
    ("source.raw.merchants", "model.staging.stg_merchants"),
    ("source.raw.transactions", "model.staging.stg_transactions"),
    ("model.staging.stg_transactions", "model.staging.txn_enriched"),
    ("model.staging.stg_merchants", "model.staging.txn_enriched"),
    ("model.staging.txn_enriched", "model.features.user_features"),
    ("model.staging.txn_enriched", "model.features.merchant_features"),
    ("model.staging.stg_transactions", "model.features.merchant_features"),  # is_incremental() branch
    ("model.staging.stg_transactions", "model.features.daily_user_spend"),
    ("model.staging.stg_transactions", "model.features.user_txn_rolling"),
])

# The data tests (schema.yml files, and user_features' three `checks`) and the
# relation each one tests.
EXAMPLE_TESTS = {
    "unique_stg_users_user_id": "staging.stg_users",
    "not_null_stg_users_user_id": "staging.stg_users",
    "not_null_stg_users_country": "staging.stg_users",
    "unique_stg_merchants_merchant_id": "staging.stg_merchants",
    "not_null_stg_merchants_merchant_id": "staging.stg_merchants",
    "accepted_values_stg_merchants_risk_tier": "staging.stg_merchants",
    "unique_stg_transactions_txn_id": "staging.stg_transactions",
    "not_null_stg_transactions_txn_id": "staging.stg_transactions",
    "accepted_values_stg_transactions_currency": "staging.stg_transactions",
    "relationships_stg_transactions_user_id": "staging.stg_transactions",
    "unique_user_features_user_id": "features.user_features",
    "not_null_user_features_user_id": "features.user_features",
    "not_null_user_features_txn_count": "features.user_features",
    "check_user_features_1": "features.user_features",
    "check_user_features_2": "features.user_features",
    "check_user_features_3": "features.user_features",
    "expression_is_true_daily_user_spend": "features.daily_user_spend",
    "unique_merchant_features_merchant_id": "features.merchant_features",
}
EXAMPLE_SOURCES = {"users": "raw.users", "merchants": "raw.merchants",
                   "transactions": "raw.transactions", "labels": "raw.labels"}
EXAMPLE_MODELS = [  # materialized (the ephemeral txn_enriched writes nothing)
    "staging.stg_users", "staging.stg_merchants", "staging.stg_transactions",
    "features.daily_user_spend", "features.merchant_features", "features.user_features",
    "features.user_txn_rolling",
]

# Models added on top of the example: a training set through
# historical_features (entities: the labels with their transaction's user) and
# the transactions AS OF joined with the user's rolling features.
TRAINING_SET_SQL = """\
SELECT *
FROM historical_features(
    'SELECT l.txn_id, t.user_id, l.label_ts, l.is_fraud
     FROM raw.labels l JOIN raw.transactions t USING (txn_id)',
    'user_txn_rolling', 'timestamp=label_ts')
"""
ASOF_SQL = """\
SELECT t.txn_id, t.ts, f.txn_count_30d, f.amount_30d AS prior_amount_30d
FROM raw.transactions t
ASOF JOIN features.user_txn_rolling f MATCH_CONDITION (t.ts > f.ts) ON t.user_id = f.user_id
"""

VALUE_KINDS = {"copied", "transformed", "aggregated"}


# ------------------------------------------------------------------- helpers

def require_browser():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("SLUICE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"SLUICE_REQUIRE_CHROMIUM=1 but {reason}")
        pytest.skip(reason)


def sluice(run_sluice, project: Path, *args, check=True, env=None):
    return run_sluice("--project", project, "--progress", "never", *args, check=check, env=env)


def lineage(run_sluice, project: Path, column: str, *flags) -> dict:
    return parse_json_output(sluice(run_sluice, project, "lineage", column, *flags, "--format", "json"))


def refs(entries: list[dict]) -> dict[str, dict]:
    """{"schema.table.column": entry} of a `lineage --format json` list; each once."""
    out = {}
    for e in entries:
        ref = f"{e['relation']}.{e['column']}"
        assert ref not in out, f"{ref} listed twice: {out[ref]} and {e}"
        out[ref] = e
    return out


def read_data_js(site: Path) -> dict:
    text = (site / "data.js").read_text(encoding="utf-8")
    prefix = "window.SLUICE_DOCS = "
    assert text.startswith(prefix), text[:80]
    body = text[len(prefix):].rstrip()
    assert body.endswith(";"), body[-80:]
    return json.loads(body[:-1])


def add_lineage_config(project: Path, **keys):
    lines = ["", "[lineage]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    with open(project / "sluice.toml", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def job_type(ev: dict) -> str:
    return ev["job"]["facets"]["jobType"]["jobType"]


def event_time(ev: dict) -> datetime:
    return datetime.fromisoformat(ev["eventTime"].replace("Z", "+00:00"))


def neighbourhood(edges: list[tuple[str, str]], node: str, depth: int) -> set[str]:
    up, down = {}, {}
    for a, b in edges:
        down.setdefault(a, []).append(b)
        up.setdefault(b, []).append(a)
    out = {node}
    for adj in (up, down):
        seen, frontier = {node}, [node]
        for _ in range(depth):
            frontier = [y for x in frontier for y in adj.get(x, []) if y not in seen]
            seen.update(frontier)
            out.update(frontier)
    return out


@pytest.fixture(scope="module")
def example(tmp_path_factory, run_sluice) -> Path:
    """The example project, run twice (so each test has a history of two runs).
    Read only: tests that change it work on a copy."""
    project = copy_project(tmp_path_factory.mktemp("example") / "project")
    sluice(run_sluice, project, "run")
    sluice(run_sluice, project, "run")
    return project


@pytest.fixture(scope="module")
def example_site(example, run_sluice) -> tuple[Path, dict, str]:
    """`sluice docs generate` of the example: (site dir, data.js, summary output)."""
    site = example / "docs_site"  # so that /../sluice.toml exists next to it
    proc = sluice(run_sluice, example, "docs", "generate", "--out", site)
    return site, read_data_js(site), proc.stdout + proc.stderr


# ------------------------------------------------------------ column lineage

def test_column_lineage_cli_on_the_example(example, run_sluice):
    # Downstream of the raw amount: exactly the columns computed from it
    down = lineage(run_sluice, example, "raw.transactions.amount", "--downstream")
    assert down["column"] == "raw.transactions.amount"
    assert "upstream" not in down
    got = refs(down["downstream"])
    assert {r: (e["kind"], e["is_feature"]) for r, e in got.items()} == AMOUNT_DOWNSTREAM
    assert all(e["is_model"] for e in got.values())
    assert got["staging.stg_transactions.amount"]["depth"] == 1
    assert got["staging.stg_transactions.amount"]["via"] == "raw.transactions.amount"
    # count(*) reads no value and amount decides no row
    for ref in ("features.user_features.txn_count", "features.user_features.txn_count_30d",
                "features.user_features.user_id", "features.user_txn_rolling.txn_count_30d",
                "features.daily_user_spend.txn_count", "features.merchant_features.txn_count"):
        assert ref not in got

    # Upstream of a feature, named without its schema
    up = lineage(run_sluice, example, "user_features.total_amount", "--upstream")
    assert up["column"] == "features.user_features.total_amount"
    assert "downstream" not in up
    got = refs(up["upstream"])
    assert {r: (e["kind"], e["is_model"]) for r, e in got.items()
            if not r.startswith("staging.txn_enriched.")} == TOTAL_AMOUNT_UPSTREAM
    assert all(e["is_feature"] is False for e in got.values())
    # count(*) has no value input: only the columns that decide its rows
    up = refs(lineage(run_sluice, example, "user_features.txn_count", "--upstream")["upstream"])
    assert {r: e["kind"] for r, e in up.items() if not r.startswith("staging.txn_enriched.")} == {
        r: "filter" for r, (k, _) in TOTAL_AMOUNT_UPSTREAM.items() if k == "filter"}
    # both directions by default; nothing reads user_features
    both = lineage(run_sluice, example, "features.user_features.total_amount")
    assert refs(both["upstream"]).keys() == got.keys()
    assert both["downstream"] == []

    # text: a header, then sections
    text = sluice(run_sluice, example, "lineage", "user_features.total_amount").stdout
    lines = text.splitlines()
    assert lines[0] == "features.user_features.total_amount"
    assert "upstream:" in lines and "downstream:" in lines
    assert lines.index("upstream:") < lines.index("downstream:")
    assert re.search(r"← staging\.stg_transactions\.amount \(aggregated\)", text)
    assert re.search(r"← raw\.transactions\.amount \(aggregated, source\)", text)
    assert lines[lines.index("downstream:") + 1].strip() == "(none)"
    text = sluice(run_sluice, example, "lineage", "raw.transactions.amount", "--downstream").stdout
    assert "downstream:" in text.splitlines() and "upstream:" not in text.splitlines()
    assert re.search(r"→ staging\.stg_transactions\.amount \(copied\)\n", text)
    assert re.search(r"→ features\.user_features\.total_amount \(aggregated, feature\)\n", text)
    assert "txn_count" not in text

    # dot: a digraph with one labelled edge per step
    dot = sluice(run_sluice, example, "lineage", "raw.transactions.amount", "--downstream", "--format", "dot").stdout
    assert dot.lstrip().startswith("digraph") and dot.rstrip().endswith("}")
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)" \[label="(\w+)"\]', dot))
    assert ("raw.transactions.amount", "staging.stg_transactions.amount", "copied") in edges
    assert {(b, k) for _, b, k in edges} >= {
        ("features.user_features.total_amount", "aggregated"),
        ("features.daily_user_spend.amount", "aggregated"),
        ("features.user_txn_rolling.amount", "copied")}
    assert {b for _, b, _ in edges} == set(AMOUNT_DOWNSTREAM)

    # errors
    p = sluice(run_sluice, example, "lineage", "user_features.no_such_col", check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "no_such_col" in p.stderr and "user_features" in p.stderr
    p = sluice(run_sluice, example, "lineage", "user_features.total_amout", check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "did you mean `total_amount`" in p.stderr
    p = sluice(run_sluice, example, "lineage", "user_features", "--upstream", check=False)
    assert p.returncode != 0 and p.stdout == ""
    assert "user_features.COLUMN" in p.stderr, p.stderr
    # a bad argument is a user error: exit 2 (README, "Errors and exit codes")
    assert p.returncode == 2, (p.returncode, p.stderr)


def test_column_lineage_through_historical_features_and_asof(example, run_sluice, tmp_path):
    """Models not built yet that read a feature view: through
    historical_features(...) and through an AS OF JOIN."""
    project = tmp_path / "project"
    shutil.copytree(example, project, ignore=shutil.ignore_patterns("docs_site", "target"))
    (project / "sql" / "training").mkdir()
    (project / "sql" / "training" / "training_set.sql").write_text(TRAINING_SET_SQL)
    (project / "sql" / "training" / "txn_with_history.sql").write_text(ASOF_SQL)

    # historical_features: the view's feature is copied (the newest row at or
    # before label_ts), the view's feature was a 30-day window sum of amount
    up = refs(lineage(run_sluice, project, "training_set.amount_30d", "--upstream")["upstream"])
    e = up["features.user_txn_rolling.amount_30d"]
    assert (e["kind"], e["depth"], e["is_model"], e["is_feature"]) == ("copied", 1, True, True)
    assert up["staging.stg_transactions.amount"]["kind"] == "aggregated"
    assert up["raw.transactions.amount"]["is_model"] is False
    # the AS OF pairing: entity key and times
    for ref in ("features.user_txn_rolling.user_id", "features.user_txn_rolling.ts",
                "raw.labels.label_ts", "raw.transactions.user_id"):
        assert up[ref]["kind"] == "filter", (ref, up[ref])
    assert "raw.labels.is_fraud" not in up
    # the entities' own columns keep their lineage; the view's colliding txn_id is renamed
    up = refs(lineage(run_sluice, project, "training_set.is_fraud", "--upstream")["upstream"])
    assert (up["raw.labels.is_fraud"]["kind"], up["raw.labels.is_fraud"]["is_model"]) == ("copied", False)
    assert all(e["kind"] == "filter" for r, e in up.items() if r.startswith("features."))
    up = refs(lineage(run_sluice, project, "training_set.user_txn_rolling__txn_id", "--upstream")["upstream"])
    assert up["features.user_txn_rolling.txn_id"]["kind"] == "copied"
    assert up["raw.labels.txn_id"]["kind"] == "filter"
    down = refs(lineage(run_sluice, project, "raw.labels.is_fraud", "--downstream")["downstream"])
    assert {r: e["kind"] for r, e in down.items()} == {"training.training_set.is_fraud": "copied"}

    # AS OF JOIN
    up = refs(lineage(run_sluice, project, "txn_with_history.prior_amount_30d", "--upstream")["upstream"])
    assert up["features.user_txn_rolling.amount_30d"]["kind"] == "copied"
    assert up["staging.stg_transactions.amount"]["kind"] == "aggregated"
    for ref in ("raw.transactions.user_id", "raw.transactions.ts",
                "features.user_txn_rolling.user_id", "features.user_txn_rolling.ts"):
        assert up[ref]["kind"] == "filter", (ref, up[ref])
    up = refs(lineage(run_sluice, project, "txn_with_history.txn_id", "--upstream")["upstream"])
    assert up["raw.transactions.txn_id"]["kind"] == "copied"

    # and downstream from the feature view's column
    down = refs(lineage(run_sluice, project, "user_txn_rolling.amount_30d", "--downstream")["downstream"])
    assert down["training.training_set.amount_30d"]["kind"] == "copied"
    assert down["training.txn_with_history.prior_amount_30d"]["kind"] == "copied"
    assert all(e["kind"] == "filter" for r, e in down.items()
               if r not in ("training.training_set.amount_30d", "training.txn_with_history.prior_amount_30d"))
    down = refs(lineage(run_sluice, project, "raw.transactions.amount", "--downstream")["downstream"])
    assert down["training.training_set.amount_30d"]["kind"] == "aggregated"
    assert down["training.training_set.amount"]["kind"] == "copied"
    assert down["training.txn_with_history.prior_amount_30d"]["kind"] == "aggregated"

    # Last: a column reached along several paths has the strongest kind of
    # them (a value input beats a filter one, as stg_transactions.amount above
    # shows): the raw amount reaches both models' feature column through the
    # view's window sum (raw -> stg copied -> user_txn_rolling.amount_30d
    # aggregated -> copied), as the downstream answers above say, besides the
    # AS OF tie-break on the view's other columns (filter); the view's txn_id is
    # a copy of the raw txn_id (raw -> stg -> view, all copied), besides the
    # entities' join key (filter).
    wrong = []
    for col, ref, kind in [
        ("training_set.amount_30d", "raw.transactions.amount", "aggregated"),
        ("txn_with_history.prior_amount_30d", "raw.transactions.amount", "aggregated"),
        ("training_set.user_txn_rolling__txn_id", "raw.transactions.txn_id", "copied"),
    ]:
        up = refs(lineage(run_sluice, project, col, "--upstream")["upstream"])
        e = up[ref]
        if e["kind"] != kind:
            via = up.get(e["via"], {})
            wrong.append(f"{col}: {ref} is {e['kind']} (depth {e['depth']}, via {e['via']}, which is "
                         f"{via.get('kind')} via {via.get('via')}), expected {kind}")
    assert not wrong, "\n".join(wrong)


def test_column_lineage_through_the_ephemeral_model(example, run_sluice):
    """txn_enriched (ephemeral) is read by user_features and merchant_features:
    its amount column feeds theirs."""
    models = sluice(run_sluice, example, "lineage", "txn_enriched").stdout
    assert "features.user_features" in models and "features.merchant_features" in models
    down = refs(lineage(run_sluice, example, "txn_enriched.amount", "--downstream")["downstream"])
    assert {r: e["kind"] for r, e in down.items()} == {
        "features.user_features.avg_amount": "aggregated",
        "features.user_features.total_amount": "aggregated",
        "features.user_features.stddev_amount": "aggregated",
        "features.user_features.amount_30d": "aggregated",
        "features.merchant_features.total_amount": "aggregated",
    }


# -------------------------------------------------------------- OpenLineage

def test_openlineage_events_of_a_real_run(tmp_path, run_sluice):
    project = copy_project(tmp_path / "project")
    with Receiver(fail_first=2) as receiver:
        add_lineage_config(project, url=receiver.url, file="target/lineage.jsonl")
        sluice(run_sluice, project, "run")
        events = list(receiver.events)
        in_file = read_jsonl(project / "target" / "lineage.jsonl")

        # the two refused posts were retried: every event arrived, once
        assert [r.status for r in receiver.requests[:2]] == [503, 503]
        assert len(receiver.requests) == len(events) + 2
        assert len(in_file) == len(events)
        key = lambda e: (e["run"]["runId"], e["eventType"])  # noqa: E731
        assert sorted(map(key, in_file)) == sorted(map(key, events))
        assert len(set(map(key, events))) == len(events)
        for ev in events + in_file:
            validate_event(ev)
        assert_lifecycle(events)
        assert_lifecycle(in_file)

        jobs = by_job(events)
        assert all(ev["job"]["namespace"] == "sluice" for ev in events)
        of_type = lambda t: {n: evs for n, evs in jobs.items() if job_type(evs[0]) == t}  # noqa: E731

        # one command run, the parent of every model and test run
        commands = of_type("COMMAND")
        assert list(commands) == [f"{PROJECT}.command.run"], list(commands)
        (command,) = commands.values()
        parent_id = command[0]["run"]["runId"]
        assert "parent" not in command[0]["run"]["facets"]
        models, tests, loads = of_type("MODEL"), of_type("TEST"), of_type("LOAD")
        assert {f"{PROJECT}.model.{m}" for m in EXAMPLE_MODELS} <= set(models)
        assert set(models) <= {f"{PROJECT}.model.{m}" for m in EXAMPLE_MODELS} | {f"{PROJECT}.model.staging.txn_enriched"}
        assert set(tests) == {f"{PROJECT}.test.{t}" for t in EXAMPLE_TESTS}
        assert set(loads) == {f"{PROJECT}.load.{s}" for s in EXAMPLE_SOURCES}
        assert len(jobs) == 1 + len(models) + len(tests) + len(loads)
        children = [ev for evs in list(models.values()) + list(tests.values()) for ev in evs]
        for ev in children:
            parent = ev["run"]["facets"].get("parent")
            assert parent is not None, (ev["job"]["name"], ev["eventType"])
            assert parent["run"]["runId"] == parent_id
            assert parent["job"] == {"namespace": "sluice", "name": f"{PROJECT}.command.run"}
        # the command's run spans its children's
        assert [e["eventType"] for e in command] == ["START", "COMPLETE"]
        assert event_time(command[0]) <= min(map(event_time, children))
        assert event_time(command[1]) >= max(map(event_time, children))

        # loads: what they wrote, as many rows as the tables hold
        counts = parse_json_output(sluice(run_sluice, project, "sql", " UNION ALL ".join(
            f"SELECT '{s}' AS source, count(*) AS n FROM {t}" for s, t in EXAMPLE_SOURCES.items()),
            "--format", "json"))
        counts = {r["source"]: r["n"] for r in counts}
        assert counts["transactions"] == 5000 and counts["users"] == 1000  # the example's data
        warehouse_ns = None
        for source, table in EXAMPLE_SOURCES.items():
            start, complete = jobs[f"{PROJECT}.load.{source}"]
            assert complete["eventType"] == "COMPLETE"
            (out,) = complete["outputs"]
            assert out["name"] == table
            warehouse_ns = warehouse_ns or out["namespace"]
            assert out["namespace"] == warehouse_ns
            assert out["outputFacets"]["outputStatistics"]["rowCount"] == counts[source], source
            assert complete["inputs"], f"load of {source} names no input"

        # user_features: its output's column lineage
        complete = jobs[f"{PROJECT}.model.features.user_features"][-1]
        assert complete["eventType"] == "COMPLETE"
        (out,) = complete["outputs"]
        assert (out["namespace"], out["name"]) == (warehouse_ns, "features.user_features")
        assert [f["name"] for f in out["facets"]["schema"]["fields"]] == USER_FEATURES_COLUMNS
        assert out["outputFacets"]["outputStatistics"]["rowCount"] > 0
        cll = out["facets"]["columnLineage"]["fields"]
        assert set(cll) == set(USER_FEATURES_COLUMNS)
        inputs = {(f["namespace"], f["name"], f["field"]): f["transformations"]
                  for f in cll["total_amount"]["inputFields"]}
        assert inputs[(warehouse_ns, "staging.stg_transactions", "amount")] == [
            {"type": "DIRECT", "subtype": "AGGREGATION"}]
        assert inputs[(warehouse_ns, "staging.stg_transactions", "user_id")] == [
            {"type": "INDIRECT", "subtype": "FILTER"}]
        assert not any(f == "currency" or f == "txn_id" for _, _, f in inputs)
        # count(*) has no DIRECT input
        assert all(t["type"] == "INDIRECT" for f in cll["txn_count"]["inputFields"] for t in f["transformations"])
        assert {("staging.stg_transactions"), ("staging.stg_merchants")} <= {i["name"] for i in complete["inputs"]}
        assert "sql" in complete["job"]["facets"]

        # tests: an assertion on the dataset they test
        for test, relation in EXAMPLE_TESTS.items():
            complete = jobs[f"{PROJECT}.test.{test}"][-1]
            assert complete["eventType"] == "COMPLETE"
            tested = [i for i in complete["inputs"] if "dataQualityAssertions" in i.get("inputFacets", {})]
            names = [i["name"] for i in tested]
            if test == "relationships_stg_transactions_user_id":  # it reads both sides
                assert sorted(names) in ([relation], sorted([relation, "staging.stg_users"])), names
            else:
                assert names == [relation], test
            for i in tested:
                assertions = i["inputFacets"]["dataQualityAssertions"]["assertions"]
                assert [(a["assertion"], a["success"]) for a in assertions] == [(test, True)], (test, i["name"])

        # Second run: a model that fails on its data (division by zero)
        n_before = len(receiver.events)
        (project / "sql" / "staging" / "stg_merchants.sql").write_text(
            "SELECT merchant_id, name AS merchant_name, category,\n"
            "       risk_tier / (risk_tier - risk_tier) AS risk_tier\n"
            "FROM raw.merchants\n")
        p = sluice(run_sluice, project, "run", check=False)
        assert p.returncode == 1, p.stderr
        second = receiver.events[n_before:]
        assert len(read_jsonl(project / "target" / "lineage.jsonl")) == len(receiver.events)
        for ev in second:
            validate_event(ev)
        assert_lifecycle(second)
        jobs2 = by_job(second)
        (cmd_start, cmd_end) = jobs2[f"{PROJECT}.command.run"]
        assert cmd_start["run"]["runId"] != parent_id
        assert cmd_end["eventType"] == "FAIL"
        assert cmd_end["run"]["facets"]["errorMessage"]["message"]
        start, fail = jobs2[f"{PROJECT}.model.staging.stg_merchants"]
        assert fail["eventType"] == "FAIL"
        assert "division by zero" in fail["run"]["facets"]["errorMessage"]["message"]
        assert fail["run"]["facets"]["parent"]["run"]["runId"] == cmd_start["run"]["runId"]
        # what does not read stg_merchants still completes
        assert jobs2[f"{PROJECT}.model.features.user_txn_rolling"][-1]["eventType"] == "COMPLETE"

    # Last: the loads of `sluice run` belong to the command too (README: "every
    # load, model run and test ... under a parent run for the command")
    for source in EXAMPLE_SOURCES:
        for ev in jobs[f"{PROJECT}.load.{source}"]:
            parent = ev["run"]["facets"].get("parent")
            assert parent and parent["run"]["runId"] == parent_id, (
                f"load of {source} ({ev['eventType']}): parent facet {parent}, expected the "
                f"command run {parent_id}")


def test_openlineage_endpoint_down_never_fails_the_run(tmp_path, run_sluice):
    project = copy_project(tmp_path / "project")
    sluice(run_sluice, project, "load")
    with Receiver(down=True) as receiver:
        add_lineage_config(project, url=receiver.url, retries=1, timeout_ms=500)
        t0 = time.monotonic()
        p = sluice(run_sluice, project, "run", "models", check=False)
        seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert seconds < 30, seconds
    assert "Done. PASS=8 " in p.stdout
    # at the default log level, each event's failure is a warning naming the endpoint
    warnings = [l for l in p.stderr.splitlines() if "lineage" in l and receiver.url in l]
    assert warnings, p.stderr
    assert any("dropped" in l for l in warnings), p.stderr
    assert any(f"{PROJECT}.model.features.user_features" in l for l in warnings), p.stderr


# -------------------------------------------------------------------- docs

def test_docs_site_in_a_real_browser(example, example_site, sluice_bin, tmp_path):
    site, data, summary = example_site
    ids = sorted(n["id"] for n in data["nodes"])
    assert ids == EXAMPLE_NODES
    assert re.search(rf"\b{len(EXAMPLE_NODES)} nodes\b", summary), summary
    data_edges = sorted((e["from"], e["to"]) for e in data["edges"])
    assert set(EXAMPLE_EDGES) <= set(data_edges)

    # docs serve: the site, and nothing outside it
    assert (site / ".." / "sluice.toml").is_file()
    proc = subprocess.Popen(
        [sluice_bin, "--project", str(example), "--progress", "never",
         "docs", "serve", "--port", "0", "--out", str(site)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert first and first[0], f"docs serve printed nothing (exit {proc.poll()})"
        m = re.match(r"sluice docs: serving (.+) on http://([^/\s]+)/\s*$", first[0])
        assert m, first[0]
        assert Path(m.group(1)).resolve() == site.resolve()
        host, port = m.group(2).rsplit(":", 1)

        def get(path):
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", path)  # sent as written: no client-side normalizing
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, r.getheader("Content-Type") or "", body

        status, ctype, body = get("/")
        assert status == 200 and ctype.startswith("text/html")
        assert body == (site / "index.html").read_bytes()
        status, ctype, body = get("/data.js")
        assert status == 200 and "javascript" in ctype
        assert body == (site / "data.js").read_bytes()
        for path in ("/../sluice.toml", "/%2e%2e/sluice.toml", "/..%2fsluice.toml", "/../../sluice.toml",
                     "/no-such-file.js"):
            status, _, body = get(path)
            assert status == 404, path
            assert b"[project]" not in body
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("docs serve did not stop on SIGTERM within 10 s")

    require_browser()
    shot = tmp_path / "docs-site.png"
    with DocsPage(site, viewport=(1280, 800)) as p:
        assert p.page.inner_text("#project") == PROJECT
        assert sorted(p.nodes()) == ids
        assert sorted(p.edges()) == data_edges

        p.click_node("model.features.user_features")
        assert p.columns() == USER_FEATURES_COLUMNS
        assert p.sections()[:2] == ["overview", "columns"]
        assert {"sql", "tests", "runs", "feature_view"} <= set(p.sections())

        # tests, each with the history of the two runs
        rows = p.page.eval_on_selector_all("#details tr.test", "els => els.map(e => e.getAttribute('data-test'))")
        assert sorted(rows) == sorted(t for t, r in EXAMPLE_TESTS.items() if r == "features.user_features")
        trend = p.page.eval_on_selector_all(
            "#details tr.test[data-test='unique_user_features_user_id'] svg.trend rect",
            "els => els.map(e => e.getAttribute('class'))")
        assert trend == ["st-pass", "st-pass"]
        assert p.page.eval_on_selector_all("#details svg.run-chart rect", "els => els.length") >= 2

        p.select_column("total_amount")
        assert p.selected_column() == "total_amount"
        up = set(p.highlighted_columns())
        assert {"model.staging.stg_transactions.amount", "source.raw.transactions.amount"} <= up
        expected_up = {f"{'source' if not e[1] else 'model'}.{r}" for r, e in TOTAL_AMOUNT_UPSTREAM.items()}
        enriched = {f"model.staging.txn_enriched.{c}" for c in ("amount", "user_id", "ts", "merchant_id")}
        assert expected_up <= up <= expected_up | enriched, sorted(up)
        assert sorted(p.graph_columns()) == sorted(up)
        assert {"model.staging.stg_transactions", "source.raw.transactions"} <= set(p.highlighted_nodes())
        assert "source.raw.users" not in p.highlighted_nodes()
        # Each link carries the kind of its one step: user_features sums the
        # ephemeral txn_enriched's amount, which copies stg_transactions'.
        kinds = p.upstream_kinds()
        assert kinds["model.staging.txn_enriched.amount"] == "aggregated"
        assert kinds["model.staging.stg_transactions.amount"] == "copied"
        assert p.downstream_columns() == []
        assert p.hash() == "#node=model.features.user_features&column=total_amount"
        p.screenshot(shot)
    assert shot.stat().st_size > 10_000
    out = os.environ.get("SLUICE_DOCS_SCREENSHOT")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, out)


def test_docs_graph_edges_follow_the_sql(example_site):
    """An edge for each relation a model's SQL reads, and no other: a model that
    reads the stg_transactions view or the ephemeral txn_enriched does not read
    what those read."""
    _, data, _ = example_site
    assert sorted((e["from"], e["to"]) for e in data["edges"]) == EXAMPLE_EDGES


def test_docs_source_columns_are_the_declared_ones(example_site):
    """A loaded source lists its declared columns (catalog/sources.toml), in
    order, with their types, whether or not a model reads them."""
    _, data, _ = example_site
    merchants = next(n for n in data["nodes"] if n["id"] == "source.raw.merchants")
    assert [c["name"] for c in merchants["columns"]] == [
        "merchant_id", "name", "category", "risk_tier", "onboarded_at"]
    assert all(c["type"] for c in merchants["columns"]), merchants["columns"]


def test_docs_1000_models_and_search(tmp_path, run_sluice):
    project = tmp_path / "gen"
    subprocess.run([sys.executable, str(REPO_ROOT / "benches" / "gen_models.py"), str(project), "1000"], check=True)
    # m1000 as generated (benches/gen_models.py, seed 42), read by hand
    assert (project / "models" / "layer" / "m1000.sql").read_text() == (
        "select a.id, a.user_id, a.amount + 6 as amount, a.kind\n"
        "from {{ ref('m0974') }} as a\n"
        "where a.id in (select id from {{ ref('m0977') }} where amount >= 0)\n"
        "  and a.user_id in (select user_id from {{ ref('m0984') }})\n")
    sluice(run_sluice, project, "seed")
    site = tmp_path / "site"
    t0 = time.monotonic()
    proc = sluice(run_sluice, project, "docs", "generate", "--out", site)  # no run: nothing built
    generate_s = time.monotonic() - t0
    summary = proc.stdout + proc.stderr
    assert re.search(r"\b1001 nodes\b", summary), summary
    assert generate_s < 60, generate_s
    data = read_data_js(site)
    assert len(data["nodes"]) == 1001

    # m1000: each column from m0974's (amount + 6 transformed); its rows decided
    # by m0974.id and .user_id (IN), m0977.id and .amount (the first subquery),
    # m0984.user_id (the second)
    lin = {cl["column"]: {(i["node"], i["column"]): i["kind"] for i in cl["inputs"]}
           for cl in data["column_lineage"] if cl["node"] == "model.main.m1000"}
    filters = {("model.main.m0974", "id"): "filter", ("model.main.m0974", "user_id"): "filter",
               ("model.main.m0977", "id"): "filter", ("model.main.m0977", "amount"): "filter",
               ("model.main.m0984", "user_id"): "filter"}
    assert lin == {
        c: {**filters, ("model.main.m0974", c): "transformed" if c == "amount" else "copied"}
        for c in ("id", "user_id", "amount", "kind")}
    m1000 = next(n for n in data["nodes"] if n["id"] == "model.main.m1000")
    assert [c["name"] for c in m1000["columns"]] == ["id", "user_id", "amount", "kind"]
    edges = [(e["from"], e["to"]) for e in data["edges"]]
    assert sorted(a for a, b in edges if b == "model.main.m1000") == [
        "model.main.m0974", "model.main.m0977", "model.main.m0984"]

    require_browser()
    with DocsPage(site) as p:
        assert p.nodes() == []  # too many to draw: a prompt
        assert p.prompt_visible()
        ids, seconds = p.search("m1000")
        assert ids[:1] == ["model.main.m1000"], ids[:5]
        assert seconds < 2.0, seconds
        p.select_result("model.main.m1000")
        want = neighbourhood(edges, "model.main.m1000", 2)
        assert {"model.main.m0974", "model.main.m0977", "model.main.m0984"} <= want
        assert sorted(p.nodes()) == sorted(want)
        assert len(want) < 100
        assert p.selected_node() == "model.main.m1000"
        assert p.columns() == ["id", "user_id", "amount", "kind"]


# ------------------------------------------------------------------ history

def test_history_of_tests_and_loads(tmp_path, run_sluice):
    project = copy_project(tmp_path / "project")
    sluice(run_sluice, project, "run")
    # a new file for the append source: txn 4002 again (unique_stg_transactions_txn_id
    # fails with one duplicated key), and an amount that is not a number (the
    # row is rejected into raw.transactions__rejected)
    (project / "catalog" / "data" / "transactions" / "2026-01-06.csv").write_text(
        "txn_id,user_id,merchant_id,amount,currency,ts\n"
        "5001,960,97,12.50,EUR,2026-01-06T00:00:05Z\n"
        "4002,321,199,1.00,USD,2026-01-06T00:00:14Z\n"
        "5002,321,199,notanumber,USD,2026-01-06T00:00:20Z\n")
    p = sluice(run_sluice, project, "run", check=False)
    assert p.returncode == 1, p.stdout + p.stderr

    hist = parse_json_output(sluice(run_sluice, project, "test", "--history", "--format", "json"))
    by_node = {(h["kind"], h["node"]): h for h in hist}
    t = by_node[("test", "unique_stg_transactions_txn_id")]
    assert t["runs"] == 2
    assert [s for _, s, _ in t["history"]] == ["pass", "fail"]
    assert [f for _, _, f in t["history"]] == [0, 1]
    assert (t["last_status"], t["last_failures"]) == ("fail", 1)
    assert t["history"][0][0] <= t["history"][1][0] == t["last_run"]
    t = by_node[("test", "not_null_stg_transactions_txn_id")]
    assert [s for _, s, _ in t["history"]] == ["pass", "pass"]
    load = by_node[("load", "raw.transactions")]
    assert load["runs"] == 2
    assert [f for _, _, f in load["history"]] == [0, 1]
    assert load["last_failures"] == 1
    assert by_node[("load", "raw.users")]["last_failures"] == 0
    assert {n for k, n in by_node if k == "test"} == set(EXAMPLE_TESTS)
    assert {n for k, n in by_node if k == "load"} == set(EXAMPLE_SOURCES.values())

    table = sluice(run_sluice, project, "test", "--history").stdout.splitlines()
    header = table[0].split()
    assert header[:2] == ["kind", "name"] and "trend" in header
    row = next(l for l in table if re.match(r"test\s+unique_stg_transactions_txn_id\s", l))
    assert row.split()[-1] == ".F"
    row = next(l for l in table if re.match(r"load\s+raw\.transactions\s", l))
    assert row.split()[-1] == ".Q"
    row = next(l for l in table if re.match(r"test\s+not_null_stg_users_user_id\s", l))
    assert row.split()[-1] == ".."
