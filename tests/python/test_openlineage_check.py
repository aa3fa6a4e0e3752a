"""Self-test of openlineage_check: validate_event accepts a full, well-formed
event (hand-written, and one built by openlineage-python itself) and rejects
malformed ones; Receiver and read_jsonl agree with the package's own HTTP and
file transports. Needs no sluice binary."""
import copy
import json
import urllib.error
import urllib.request
import uuid

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset as cl,
    data_quality_assertions_dataset as dqa,
    data_quality_metrics_input_dataset as dqm,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from openlineage_check import (
    SCHEMA_URLS,
    Receiver,
    assert_lifecycle,
    by_job,
    by_run,
    read_jsonl,
    validate_event,
)

PRODUCER = "https://github.com/sluice-dev/sluice/tree/0.1.0"
RUN_ID = "0190f1a2-3b4c-7d5e-8f60-123456789abc"
PARENT_ID = str(uuid.uuid4())


def facet(key: str, **body) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": SCHEMA_URLS[key], **body}


def full_event(event_type: str = "FAIL", run_id: str = RUN_ID) -> dict:
    """One event carrying every facet sluice sends."""
    ns = "sluice://warehouse"
    ev = {
        "eventType": event_type,
        "eventTime": "2026-01-06T12:34:56.789Z",
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URLS["RunEvent"],
        "run": {
            "runId": run_id,
            "facets": {
                "processing_engine": facet("run.processing_engine", name="sluice", version="0.1.0"),
                "parent": facet("run.parent", run={"runId": PARENT_ID},
                                job={"namespace": "sluice", "name": "build"}),
            },
        },
        "job": {
            "namespace": "sluice",
            "name": "analytics.user_features",
            "facets": {
                "jobType": facet("job.jobType", processingType="BATCH", integration="SLUICE", jobType="MODEL"),
                "sql": facet("job.sql", query="SELECT user_id, sum(amount) AS total FROM raw.txn WHERE amount > 0 GROUP BY 1"),
            },
        },
        "inputs": [{
            "namespace": ns,
            "name": "raw.txn",
            "facets": {
                "schema": facet("dataset.schema", fields=[
                    {"name": "user_id", "type": "Int64"},
                    {"name": "amount", "type": "Decimal128(12, 2)", "description": "in cents"},
                ]),
            },
            "inputFacets": {
                "dataQualityMetrics": facet(
                    "input.dataQualityMetrics", rowCount=1000, bytes=65536, fileCount=3,
                    columnMetrics={
                        "user_id": {"nullCount": 0, "distinctCount": 17},
                        "amount": {"nullCount": 4, "sum": 1234.5, "count": 996, "min": 0.01, "max": 99.5,
                                   "quantiles": {"0.5": 12.0}},
                    }),
                "dataQualityAssertions": facet("input.dataQualityAssertions", assertions=[
                    {"assertion": "not_null", "success": True, "column": "user_id"},
                    {"assertion": "row_count", "success": False},
                ]),
            },
        }],
        "outputs": [{
            "namespace": ns,
            "name": "analytics.user_features",
            "facets": {
                "schema": facet("dataset.schema", fields=[
                    {"name": "user_id", "type": "Int64"},
                    {"name": "total", "type": "Decimal128(22, 2)"},
                ]),
                "columnLineage": facet("dataset.columnLineage", fields={
                    "user_id": {"inputFields": [
                        {"namespace": ns, "name": "raw.txn", "field": "user_id",
                         "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]},
                    ]},
                    "total": {"inputFields": [
                        {"namespace": ns, "name": "raw.txn", "field": "amount",
                         "transformations": [
                             {"type": "DIRECT", "subtype": "AGGREGATION", "description": "sum(amount)", "masking": False},
                             {"type": "INDIRECT", "subtype": "FILTER"},
                         ]},
                    ]},
                }),
                "dataQualityMetrics": facet("dataset.dataQualityMetrics", rowCount=17,
                                            columnMetrics={"total": {"nullCount": 0}}),
            },
            "outputFacets": {
                "outputStatistics": facet("output.outputStatistics", rowCount=17, size=2048, fileCount=1),
            },
        }],
    }
    if event_type == "FAIL":
        ev["run"]["facets"]["errorMessage"] = facet(
            "run.errorMessage", message="division by zero", programmingLanguage="RUST",
            stackTrace="model analytics.user_features")
    return ev


def test_accepts_full_event():
    ev = full_event()
    parsed = validate_event(copy.deepcopy(ev))
    assert isinstance(parsed, RunEvent)
    assert parsed.eventType is RunState.FAIL
    assert parsed.run.facets["errorMessage"].message == "division by zero"
    assert isinstance(parsed.inputs[0].inputFacets["dataQualityAssertions"], dqa.DataQualityAssertionsDatasetFacet)
    total = parsed.outputs[0].facets["columnLineage"].fields["total"]
    assert [t.subtype for t in total.inputFields[0].transformations] == ["AGGREGATION", "FILTER"]
    assert parsed.outputs[0].outputFacets["outputStatistics"].rowCount == 17
    # the same text as received over the wire
    validate_event(json.dumps(ev))
    validate_event(full_event("START"))
    validate_event(full_event("COMPLETE"))


def test_accepts_what_the_package_builds():
    """An event built with openlineage-python's classes and serialized by its Serde."""
    ns = "sluice://warehouse"
    ev = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-01-06T12:00:00.000+00:00",
        producer=PRODUCER,
        run=Run(runId=str(uuid.uuid4()), facets={
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(version="0.1.0", name="sluice"),
            "parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=PARENT_ID),
                                                job=parent_run.Job(namespace="sluice", name="build")),
            "errorMessage": error_message_run.ErrorMessageRunFacet(message="x", programmingLanguage="RUST"),
        }),
        job=Job(namespace="sluice", name="load.txn", facets={
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="SLUICE", jobType="LOAD"),
            "sql": sql_job.SQLJobFacet(query="SELECT 1"),
        }),
        inputs=[InputDataset(namespace="file", name="/data/txn.csv", facets={
            "schema": schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(name="a", type="Int64")]),
        }, inputFacets={
            "dataQualityMetrics": dqm.DataQualityMetricsInputDatasetFacet(
                columnMetrics={"a": dqm.ColumnMetrics(nullCount=0, distinctCount=2)}, rowCount=2),
            "dataQualityAssertions": dqa.DataQualityAssertionsDatasetFacet(
                assertions=[dqa.Assertion(assertion="not_null", success=True, column="a")]),
        })],
        outputs=[OutputDataset(namespace=ns, name="raw.txn", facets={
            "schema": schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(name="a", type="Int64")]),
            "columnLineage": cl.ColumnLineageDatasetFacet(fields={"a": cl.Fields(inputFields=[
                cl.InputField(namespace="file", name="/data/txn.csv", field="a",
                              transformations=[cl.Transformation(type="DIRECT", subtype="IDENTITY")])])}),
        }, outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=2, size=10),
        })],
    )
    d = json.loads(Serde.to_json(ev))
    assert d["run"]["facets"]["parent"]["_schemaURL"] == SCHEMA_URLS["run.parent"]
    validate_event(d)


def _drop(path):
    def f(ev):
        *parents, last = path
        node = ev
        for p in parents:
            node = node[p]
        del node[last]
    return f


def _set(path, value):
    def f(ev):
        *parents, last = path
        node = ev
        for p in parents:
            node = node[p]
        node[last] = value
    return f


def _move_assertions_to_outputs(ev):
    ev["outputs"][0]["outputFacets"]["dataQualityAssertions"] = ev["inputs"][0]["inputFacets"].pop("dataQualityAssertions")


OUT = ["outputs", 0, "facets"]
CLL_TOTAL = OUT + ["columnLineage", "fields", "total"]
MALFORMED = {
    "missing runId": (_drop(["run", "runId"]), "runId"),
    "runId not a uuid": (_set(["run", "runId"], "run-1"), "runId"),
    "bad eventType": (_set(["eventType"], "DONE"), "eventType"),
    "missing eventType": (_drop(["eventType"]), "eventType"),
    "eventTime without time": (_set(["eventTime"], "2026-01-06"), "eventTime"),
    "eventTime without offset": (_set(["eventTime"], "2026-01-06T12:00:00"), "eventTime"),
    "missing job name": (_drop(["job", "name"]), "name"),
    "producer not a URI": (_set(["producer"], "sluice"), "producer"),
    "wrong event schemaURL": (_set(["schemaURL"], "https://openlineage.io/spec/1-0-0/OpenLineage.json"), "schemaURL"),
    "columnLineage without inputFields": (_drop(CLL_TOTAL + ["inputFields"]), "inputFields"),
    "columnLineage inputFields typo": (
        lambda ev: ev["outputs"][0]["facets"]["columnLineage"]["fields"]["total"].__setitem__(
            "inputfields", ev["outputs"][0]["facets"]["columnLineage"]["fields"]["total"].pop("inputFields")),
        "inputfields"),
    "transformation without type": (_drop(CLL_TOTAL + ["inputFields", 0, "transformations", 0, "type"]), "type"),
    "DIRECT with an INDIRECT subtype": (_set(CLL_TOTAL + ["inputFields", 0, "transformations", 0, "subtype"], "FILTER"), "subtype"),
    "unknown transformation type": (_set(CLL_TOTAL + ["inputFields", 0, "transformations", 1, "type"], "SIDEWAYS"), "SIDEWAYS"),
    "lineage to a field not in the output schema": (
        lambda ev: ev["outputs"][0]["facets"]["columnLineage"]["fields"].__setitem__(
            "ghost", ev["outputs"][0]["facets"]["columnLineage"]["fields"]["total"]),
        "ghost"),
    "lineage from a field the input lacks": (_set(CLL_TOTAL + ["inputFields", 0, "field"], "amt"), "amt"),
    "assertions in outputFacets": (_move_assertions_to_outputs, "does not belong"),
    "assertion success as a string": (
        _set(["inputs", 0, "inputFacets", "dataQualityAssertions", "assertions", 0, "success"], "true"), "success"),
    "rowCount as a string": (_set(["outputs", 0, "outputFacets", "outputStatistics", "rowCount"], "17"), "rowCount"),
    "columnMetrics missing": (_drop(["inputs", 0, "inputFacets", "dataQualityMetrics", "columnMetrics"]), "columnMetrics"),
    "nullCount as a float": (
        _set(["inputs", 0, "inputFacets", "dataQualityMetrics", "columnMetrics", "user_id", "nullCount"], 0.5), "nullCount"),
    "facet without _producer": (_drop(OUT + ["schema", "_producer"]), "_producer"),
    "facet with another facet's schemaURL": (_set(OUT + ["schema", "_schemaURL"], SCHEMA_URLS["dataset.columnLineage"]), "_schemaURL"),
    "unknown key in a schema field": (_set(OUT + ["schema", "fields", 0, "nullable"], True), "nullable"),
    "null instead of an omitted key": (_set(OUT + ["schema", "fields", 0, "description"], None), "null"),
    "errorMessage without programmingLanguage": (_drop(["run", "facets", "errorMessage", "programmingLanguage"]), "programmingLanguage"),
    "jobType with a bad processingType": (_set(["job", "facets", "jobType", "processingType"], "NIGHTLY"), "processingType"),
    "sql facet without query": (_drop(["job", "facets", "sql", "query"]), "query"),
    "parent without run": (_drop(["run", "facets", "parent", "run"]), "run"),
    "unknown run facet": (_set(["run", "facets", "spark_version"], {"_producer": PRODUCER, "_schemaURL": PRODUCER}), "spark_version"),
    "outputs not a list": (_set(["outputs"], {}), "outputs"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_rejects_malformed(case):
    mutate, needle = MALFORMED[case]
    ev = full_event()
    mutate(ev)
    with pytest.raises(AssertionError) as err:
        validate_event(ev)
    assert needle in str(err.value), f"{case}: message does not name {needle!r}: {err.value}"


def test_grouping_and_lifecycle():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    evs = [full_event("START", a), full_event("START", b), full_event("COMPLETE", b), full_event("FAIL", a)]
    evs[1]["job"]["name"] = evs[2]["job"]["name"] = "other"
    assert {k: len(v) for k, v in by_job(evs).items()} == {"analytics.user_features": 2, "other": 2}
    assert [e["eventType"] for e in by_run(evs)[a]] == ["START", "FAIL"]
    assert_lifecycle(evs)
    assert_lifecycle([validate_event(e) for e in evs])  # parsed objects work too
    with pytest.raises(AssertionError, match="START then COMPLETE"):
        assert_lifecycle(evs[:3])


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_receiver_fail_first_k():
    body = json.dumps(full_event()).encode()
    with Receiver(fail_first=2) as rx:
        assert rx.url.startswith("http://127.0.0.1:") and rx.endpoint == rx.url + "/api/v1/lineage"
        statuses = [_post(rx.endpoint, body) for _ in range(3)]
        assert statuses == [503, 503, 201]
        assert _post(rx.url + "/elsewhere", body) == 404
        assert [r.status for r in rx.requests] == [503, 503, 201, 404]
        assert rx.wait_for(1, timeout=1) == [json.loads(body)]
        validate_event(rx.events[0])
    with Receiver(status=200) as rx:
        assert _post(rx.endpoint, b"not json") == 400
        assert _post(rx.endpoint, body) == 200
        assert len(rx.events) == 1
        with pytest.raises(AssertionError, match="expected 2"):
            rx.wait_for(2, timeout=0.2)


def test_receiver_down():
    with Receiver(down=True) as rx:
        with pytest.raises(urllib.error.URLError):
            _post(rx.endpoint, b"{}")
        assert rx.requests == [] and rx.events == []


def _package_event(job: str) -> RunEvent:
    return RunEvent(eventType=RunState.START, eventTime="2026-01-06T12:00:00.000Z", producer=PRODUCER,
                    run=Run(runId=str(uuid.uuid4())), job=Job(namespace="sluice", name=job))


def test_receiver_speaks_the_package_http_transport():
    """openlineage-python's HttpTransport (the reference convention: POST
    {url}/api/v1/lineage, application/json, Bearer api key, retries on 5xx)
    delivers to the Receiver through two refusals."""
    with Receiver(fail_first=2) as rx:
        cfg = HttpConfig(url=rx.url, auth=ApiKeyTokenProvider({"api_key": "k3y"}),
                         retry={"total": 3, "connect": 3, "read": 3, "backoff_factor": 0.01,
                                "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]})
        OpenLineageClient(transport=HttpTransport(cfg)).emit(_package_event("http.job"))
        assert [r.status for r in rx.requests] == [503, 503, 201]
        req = rx.requests[-1]
        assert req.path == "/api/v1/lineage"
        assert req.headers["Content-Type"] == "application/json"
        assert req.headers["Authorization"] == "Bearer k3y"
        validate_event(rx.events[0])


def test_read_jsonl_matches_the_package_file_transport(tmp_path):
    log = tmp_path / "lineage.jsonl"
    client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(log), append=True)))
    for name in ("a", "b"):
        client.emit(_package_event(name))
    events = read_jsonl(log)
    assert [e["job"]["name"] for e in events] == ["a", "b"]
    for e in events:
        validate_event(e)
    log.write_text(log.read_text() + "{not json\n")
    with pytest.raises(AssertionError, match="one JSON event per line"):
        read_jsonl(log)
