"""Validating the OpenLineage events sluice sends, with `openlineage-python`.

`openlineage-python` (1.54) ships no JSON schema files: the spec's schemas are
compiled into the attrs classes under `openlineage.client.generated` (one
class per spec object, with the spec's required fields, its UUID and
date-time validators and each facet's `_schemaURL`), and the package has no
parser from JSON back into those classes. So `validate_event` is a strict
structurer driven by those classes:

  * every JSON object is built into its generated class (`RunEvent`, `Run`,
    `Job`, `InputDataset`, each facet class ...) through the class's own
    constructor, so the package's validators run (runId is a UUID, eventTime
    an ISO date-time with a time part);
  * keys must be fields of the class: a missing required key, an unknown key
    (a typo such as `inputfields`) or an explicit null is an error (the spec
    lets facets carry extra keys; sluice sends none, so any is a mistake);
  * every value must have the field's type (str, bool, int that is not a
    bool, number, list, object, enum value);
  * facets are looked up by key in the container they sit in (run.facets,
    job.facets, dataset facets, inputFacets, outputFacets), so a facet in the
    wrong place (e.g. dataQualityAssertions in outputFacets) is an error;
  * `schemaURL` / `_schemaURL` must equal what openlineage-python 1.54 itself
    writes for that class, `producer` / `_producer` must be absolute URIs;
  * spec rules the classes only document: eventTime carries a UTC offset,
    eventType is present, column-lineage transformations pair DIRECT with
    IDENTITY|TRANSFORMATION|AGGREGATION and INDIRECT with
    JOIN|GROUP_BY|FILTER|SORT|WINDOW|CONDITIONAL, jobType.processingType is
    BATCH|STREAMING|SERVICE, columnLineage only names fields of the dataset's
    own schema facet and of the inputs' schema facets (where present);
  * finally the parsed object is serialized back with the package's `Serde`
    and must reproduce every key and value of the input.

Also here: `Receiver`, a local OpenLineage HTTP endpoint (what the package's
HttpTransport posts to: `{url}/api/v1/lineage`, JSON body) that can refuse the
first K requests or be down entirely; `read_jsonl` for the file transport
(one event per line, appended); `by_job`, `by_run` and `assert_lifecycle`.
"""
from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import types
import typing
import uuid
from datetime import datetime
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import attr
from openlineage.client.constants import __version__ as OPENLINEAGE_CLIENT_VERSION
from openlineage.client.generated import (
    base,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    data_quality_metrics_input_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    symlinks_dataset,
    tags_job,
    tags_run,
)
from openlineage.client.serde import Serde

LINEAGE_PATH = "/api/v1/lineage"

# Facet key -> generated class, per container. The keys are the property names
# of the spec's facet schemas (spec/facets/*.json: "properties": {"<key>": ...}).
RUN_FACETS = {
    "parent": parent_run.ParentRunFacet,
    "tags": tags_run.TagsRunFacet,  # openlineage-python's client adds it
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "nominalTime": nominal_time_run.NominalTimeRunFacet,
}
JOB_FACETS = {
    "jobType": job_type_job.JobTypeJobFacet,
    "sql": sql_job.SQLJobFacet,
    "documentation": documentation_job.DocumentationJobFacet,
    "tags": tags_job.TagsJobFacet,
}
DATASET_FACETS = {
    "schema": schema_dataset.SchemaDatasetFacet,
    "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet,
    "dataQualityMetrics": data_quality_metrics_dataset.DataQualityMetricsDatasetFacet,
    "dataSource": datasource_dataset.DatasourceDatasetFacet,
    "documentation": documentation_dataset.DocumentationDatasetFacet,
    "symlinks": symlinks_dataset.SymlinksDatasetFacet,
}
INPUT_FACETS = {
    "dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet,
    "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
    "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
}
OUTPUT_FACETS = {
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}
# facet base class (the value type of a facets map) -> (where, registry)
_CONTAINERS = {
    base.RunFacet: ("run.facets", RUN_FACETS),
    base.JobFacet: ("job.facets", JOB_FACETS),
    base.DatasetFacet: ("dataset facets", DATASET_FACETS),
    base.InputDatasetFacet: ("inputFacets", INPUT_FACETS),
    base.OutputDatasetFacet: ("outputFacets", OUTPUT_FACETS),
}

# The schemaURL strings openlineage-python 1.54 writes (cls._get_schema()).
SCHEMA_URLS = {
    "RunEvent": base.RunEvent._get_schema(),
    **{f"run.{k}": c._get_schema() for k, c in RUN_FACETS.items()},
    **{f"job.{k}": c._get_schema() for k, c in JOB_FACETS.items()},
    **{f"dataset.{k}": c._get_schema() for k, c in DATASET_FACETS.items()},
    **{f"input.{k}": c._get_schema() for k, c in INPUT_FACETS.items()},
    **{f"output.{k}": c._get_schema() for k, c in OUTPUT_FACETS.items()},
}

DIRECT_SUBTYPES = {"IDENTITY", "TRANSFORMATION", "AGGREGATION"}
INDIRECT_SUBTYPES = {"JOIN", "GROUP_BY", "FILTER", "SORT", "WINDOW", "CONDITIONAL"}
PROCESSING_TYPES = {"BATCH", "STREAMING", "SERVICE"}


class _Invalid(AssertionError):
    pass


def _fail(path: str, msg: str) -> typing.NoReturn:
    raise _Invalid(f"invalid OpenLineage event at {path}: {msg}")


def _check_uri(value: str, path: str) -> None:
    u = urlparse(value)
    if not (u.scheme and u.netloc):
        _fail(path, f"{value!r} is not an absolute URI")


_RESOLVED: set[type] = set()


def _fields(cls: type) -> tuple:
    if cls not in _RESOLVED:
        attr.resolve_types(cls)
        _RESOLVED.add(cls)
    return attr.fields(cls)


def _structure_facets(value: typing.Any, facet_base: type, path: str) -> dict:
    where, registry = _CONTAINERS[facet_base]
    if not isinstance(value, dict):
        _fail(path, f"expected an object of facets, got {type(value).__name__}")
    out = {}
    for key, facet in value.items():
        cls = registry.get(key)
        if cls is None:
            elsewhere = [w for b, (w, reg) in _CONTAINERS.items() if key in reg and b is not facet_base]
            if elsewhere:
                _fail(f"{path}.{key}", f"facet {key!r} does not belong in {where} (it goes in {', '.join(elsewhere)})")
            _fail(f"{path}.{key}", f"unknown facet {key!r} for {where} (known: {sorted(registry)})")
        if not issubclass(cls, facet_base):
            _fail(f"{path}.{key}", f"{cls.__name__} is not a {facet_base.__name__}")
        out[key] = _structure(facet, cls, f"{path}.{key}")
    return out


def _check(value: typing.Any, tp: typing.Any, path: str) -> typing.Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            _fail(path, "null is not allowed (omit the key instead)")
        if len(args) == 1:
            return _check(value, args[0], path)
        errors = []
        for a in args:
            try:
                return _check(value, a, path)
            except _Invalid as e:
                errors.append(str(e))
        _fail(path, "matches none of " + "; ".join(errors))
    if value is None:
        _fail(path, "null is not allowed (omit the key instead)")
    if tp is typing.Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            _fail(path, f"expected an array, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            _fail(path, f"expected an object, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        if item in _CONTAINERS:
            return _structure_facets(value, item, path)
        return {k: _check(v, item, f"{path}.{k}") for k, v in value.items()}
    if tp is str:
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected a boolean, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, Enum):
        allowed = [e.value for e in tp]
        if value not in allowed:
            _fail(path, f"{value!r} is not one of {allowed}")
        return tp(value)
    if isinstance(tp, type) and attr.has(tp):
        return _structure(value, tp, path)
    _fail(path, f"validator does not know the type {tp!r}")


def _structure(value: typing.Any, cls: type, path: str) -> typing.Any:
    if not isinstance(value, dict):
        _fail(path, f"expected an object ({cls.__name__}), got {type(value).__name__}")
    fields = _fields(cls)
    names = {f.name for f in fields}
    extra = sorted(set(value) - names)
    if extra:
        _fail(path, f"unknown key(s) {extra} for {cls.__name__} (allowed: {sorted(names)})")
    # required by the spec although the classes default them
    required = set()
    if issubclass(cls, base.BaseFacet):
        required = {"_producer", "_schemaURL"}
    elif issubclass(cls, base.BaseEvent):
        required = {"producer", "schemaURL"}
    if cls is base.RunEvent:
        required.add("eventType")  # optional in the spec; sluice always sends it
    kwargs = {}
    for f in fields:
        fpath = f"{path}.{f.name}"
        if f.name not in value:
            if f.default is attr.NOTHING or f.name in required:
                _fail(path, f"missing required key {f.name!r} of {cls.__name__}")
            continue
        v = value[f.name]
        if f.name in ("schemaURL", "_schemaURL"):
            expected = cls._get_schema()
            if v != expected:
                _fail(fpath, f"{v!r} is not the {cls.__name__} schema URL {expected!r}")
            continue
        if not f.init:
            _fail(fpath, "is not settable")
        checked = _check(v, f.type, fpath)
        if f.name in ("producer", "_producer"):
            _check_uri(checked, fpath)
        kwargs[f.alias] = checked
    try:
        return cls(**kwargs)
    except _Invalid:
        raise
    except Exception as e:  # the package's own validators (UUID, date-time, ...)
        # name the field: run the field validators one by one
        for f in fields:
            if f.validator is not None and f.alias in kwargs:
                try:
                    f.validator(None, f, kwargs[f.alias])
                except Exception as fe:  # noqa: BLE001
                    _fail(f"{path}.{f.name}", f"{cls.__name__} rejected {kwargs[f.alias]!r}: {type(fe).__name__}: {fe}")
        _fail(path, f"{cls.__name__} rejected it: {type(e).__name__}: {e}")


def _covers(out: typing.Any, inp: typing.Any, path: str) -> None:
    """`out` (re-serialized) must reproduce `inp`; extra keys only as empty defaults."""
    if isinstance(inp, dict):
        if not isinstance(out, dict):
            _fail(path, f"round trip changed an object into {out!r}")
        for k, v in inp.items():
            if k not in out:
                _fail(f"{path}.{k}", "dropped by the round trip through openlineage-python")
            _covers(out[k], v, f"{path}.{k}")
        for k, v in out.items():
            if k not in inp and v not in ([], {}):
                _fail(f"{path}.{k}", f"round trip added a value {v!r}")
    elif isinstance(inp, list):
        if not isinstance(out, list) or len(out) != len(inp):
            _fail(path, f"round trip changed the array into {out!r}")
        for i, (o, v) in enumerate(zip(out, inp)):
            _covers(o, v, f"{path}[{i}]")
    elif out != inp or type(out) is not type(inp):
        _fail(path, f"round trip changed {inp!r} into {out!r}")


def _semantic_checks(ev: base.RunEvent, d: dict) -> None:
    t = datetime.fromisoformat(d["eventTime"].replace("Z", "+00:00"))
    if t.tzinfo is None:
        _fail("event.eventTime", f"{d['eventTime']!r} has no UTC offset")
    uuid.UUID(ev.run.runId)
    jt = (ev.job.facets or {}).get("jobType")
    if jt is not None and jt.processingType not in PROCESSING_TYPES:
        _fail("event.job.facets.jobType.processingType", f"{jt.processingType!r} is not one of {sorted(PROCESSING_TYPES)}")

    input_schemas = {}
    for ds in ev.inputs or []:
        sch = (ds.facets or {}).get("schema")
        if sch is not None:
            input_schemas[(ds.namespace, ds.name)] = {f.name for f in sch.fields or []}
    for kind, datasets in (("inputs", ev.inputs or []), ("outputs", ev.outputs or [])):
        for i, ds in enumerate(datasets):
            facets = ds.facets or {}
            cll = facets.get("columnLineage")
            if cll is None:
                continue
            base_path = f"event.{kind}[{i}].facets.columnLineage"
            sch = facets.get("schema")
            own = {f.name for f in sch.fields or []} if sch is not None else None
            refs = [(f"{base_path}.fields.{k}", fld.inputFields) for k, fld in cll.fields.items()]
            refs.append((f"{base_path}.dataset", cll.dataset or []))
            for k in cll.fields:
                if own is not None and k not in own:
                    _fail(f"{base_path}.fields.{k}", f"{k!r} is not a field of the dataset's schema facet {sorted(own)}")
            for p, input_fields in refs:
                for j, inf in enumerate(input_fields):
                    known = input_schemas.get((inf.namespace, inf.name))
                    if known is not None and inf.field not in known:
                        _fail(f"{p}.inputFields[{j}]", f"input {inf.namespace}/{inf.name} has no field {inf.field!r}")
                    for m, tr in enumerate(inf.transformations or []):
                        tp = f"{p}.inputFields[{j}].transformations[{m}]"
                        if tr.type == "DIRECT":
                            allowed = DIRECT_SUBTYPES
                        elif tr.type == "INDIRECT":
                            allowed = INDIRECT_SUBTYPES
                        else:
                            _fail(f"{tp}.type", f"{tr.type!r} is not DIRECT or INDIRECT")
                        if tr.subtype is not None and tr.subtype not in allowed:
                            _fail(f"{tp}.subtype", f"{tr.subtype!r} is not a {tr.type} subtype {sorted(allowed)}")


def validate_event(d: dict) -> base.RunEvent:
    """Validate one received RunEvent (a JSON dict); return the parsed
    `openlineage.client.event_v2.RunEvent`. Raises AssertionError naming the
    offending path otherwise."""
    if isinstance(d, (str, bytes)):
        d = json.loads(d)
    ev = _structure(d, base.RunEvent, "event")
    _semantic_checks(ev, d)
    _covers(Serde.to_dict(ev), d, "event")
    return ev


# ---------------------------------------------------------------- grouping


def _get(ev: typing.Any, *keys: str) -> typing.Any:
    for k in keys:
        ev = ev[k] if isinstance(ev, dict) else getattr(ev, k)
    return ev.value if isinstance(ev, Enum) else ev


def by_job(events: typing.Iterable[typing.Any]) -> dict[str, list]:
    """Events grouped by job name, each group in arrival order (dicts or parsed RunEvents)."""
    out: dict[str, list] = {}
    for ev in events:
        out.setdefault(_get(ev, "job", "name"), []).append(ev)
    return out


def by_run(events: typing.Iterable[typing.Any]) -> dict[str, list]:
    """Events grouped by run.runId, each group in arrival order."""
    out: dict[str, list] = {}
    for ev in events:
        out.setdefault(_get(ev, "run", "runId"), []).append(ev)
    return out


def assert_lifecycle(events: typing.Iterable[typing.Any]) -> None:
    """Each run has exactly one START followed by exactly one COMPLETE or FAIL,
    all under one job, with eventTime not going backwards."""
    for run_id, evs in by_run(events).items():
        kinds = [_get(e, "eventType") for e in evs]
        if kinds not in (["START", "COMPLETE"], ["START", "FAIL"]):
            raise AssertionError(f"run {run_id}: event types {kinds}, expected START then COMPLETE|FAIL")
        jobs = {(_get(e, "job", "namespace"), _get(e, "job", "name")) for e in evs}
        if len(jobs) != 1:
            raise AssertionError(f"run {run_id}: events name several jobs {sorted(jobs)}")
        times = [datetime.fromisoformat(_get(e, "eventTime").replace("Z", "+00:00")) for e in evs]
        if times != sorted(times):
            raise AssertionError(f"run {run_id}: eventTime goes backwards {times}")


def read_jsonl(path: str | Path) -> list[dict]:
    """The events of a file-transport log: one JSON event per line."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            raise AssertionError(f"{path}:{n}: empty line in the lineage log")
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"{path}:{n}: not one JSON event per line: {e}") from None
    return out


# ---------------------------------------------------------------- receiver


@attr.define
class Request:
    path: str
    headers: dict
    body: bytes
    status: int

    def json(self) -> typing.Any:
        return json.loads(self.body)


class Receiver:
    """A local OpenLineage HTTP endpoint on 127.0.0.1 (free port).

    `url` is the base URL (no path); events are POSTed to `url + "/api/v1/lineage"`.
    `fail_first=K` answers the first K lineage POSTs with `fail_status` (503);
    `down=True` only reserves a port and listens on nothing (connection refused);
    `delay` seconds are waited before each answer; successful POSTs answer `status`.
    `requests` records every request (including refused ones), `events` the
    JSON bodies of the accepted ones.
    """

    def __init__(self, *, fail_first: int = 0, fail_status: int = 503, status: int = 201,
                 down: bool = False, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.status = status
        self.down = down
        self.delay = delay
        self.requests: list[Request] = []
        self.events: list[dict] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def endpoint(self) -> str:
        return self.url + LINEAGE_PATH

    def __enter__(self) -> "Receiver":
        if self.down:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            return self
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: typing.Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    data = gzip.decompress(data)
                return data

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                path = self.path.split("?")[0]
                with receiver._lock:
                    lineage_posts = sum(1 for r in receiver.requests if r.path == LINEAGE_PATH)
                    if path != LINEAGE_PATH:
                        status = 404
                    elif lineage_posts < receiver.fail_first:
                        status = receiver.fail_status
                    else:
                        status = receiver.status
                    parsed = None
                    if status < 300:
                        try:
                            parsed = json.loads(body)
                        except ValueError:
                            status = 400
                    receiver.requests.append(Request(path, dict(self.headers.items()), body, status))
                    if parsed is not None:
                        receiver.events.append(parsed)
                    receiver._lock.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                if status >= 300:
                    self._answer(status, json.dumps({"error": f"receiver answered {status}"}).encode())
                else:
                    self._answer(status)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="openlineage-receiver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: typing.Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait until at least `n` events were accepted; return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver got {len(self.events)} event(s) in {timeout}s, expected {n} "
                        f"({len(self.requests)} request(s): {[r.status for r in self.requests]})")
                self._lock.wait(left)
            return list(self.events)
