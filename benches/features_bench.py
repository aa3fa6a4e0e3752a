"""Helpers of benches/features.sh (the feature-store benchmark); run through it.

Subcommands (each prints JSON on stdout, progress on stderr):

  gen DIR [--rows N --views V --entities E --entity-rows M --missing-frac F
           --sub-rows N --sub-entities E --sub-entity-rows M --seed S]
      Deterministic ZSTD Parquet (1 Mi-row row groups, numpy PCG64):
        view{k}.parquet  k = 1..V, ROWS rows each: entity_id int64 uniform in
                         [0, E), event_ts timestamp[us, UTC] uniform over the 365
                         days before the generation time (rounded down to the
                         hour; the rows in time order, the entities not), and
                         four features v{k}_a float64 (uniform), v{k}_b float64
                         (normal), v{k}_c int64 (0..999), v{k}_d float64 (gamma).
                         view1 also has created_ts (event time + 0..1 h), and 1%
                         of its rows repeat the (entity_id, event_ts) of the row
                         before with a later created_ts and other values, so the
                         created-timestamp tie-break matters.
        entities.parquet M rows: row_id (0..M-1), entity_id, ts timestamp[us, UTC]
                         uniform over the last 335 days (labels after the first
                         month); MISSING_FRAC of the rows name an entity in
                         [E, 2E), which no view has (their features must come
                         back NULL, the row kept); 0.1% of the rows repeat the
                         (entity_id, ts) of the row before (two labels of one
                         entity at one time: both must be kept). Random order.
        sub_view.parquet / sub_entities.parquet: the same shapes (with created_ts
                         and duplicates, like view1; features sub1_a..sub1_d) at
                         the Feast subset's size: SUB_ROWS rows over SUB_ENTITIES
                         entities, SUB_ENTITY_ROWS entity rows.
        meta.json        the parameters and the time window.
      Files that already exist with the same parameters are kept.

  check OUT --entities ENT --view NAME=PATH ... --ttl-days 90 --existing E
      Checks a training set: rows in vs out (dropped or duplicated row_ids), rows
      of non-existent entities (must be all NULL), matched rows per view, and a
      NumPy oracle on a fixed sample of entity rows (newest row at or before the
      entity time, no older than the TTL (inclusive), newest created_ts among
      equal event times, NULL when none).

  compare A B --features ...    row-by-row comparison of two training sets on row_id
  feast DATA --repo DIR --out OUT   Feast's file offline store on the subset (Feast venv)
  expect DATA --views ...       the newest row per entity of each view (online checks)
  online --uri URI --data DATA --views ... --clients C --seconds S [--rate R]
      C client processes, one ADBC connection and one prepared statement per view
      each: `SELECT * FROM online.<view> WHERE entity_id = ?` with a random
      existing entity of a random view per call; every answer is checked
      (one row; _status 'present' when the entity's newest event is within the
      TTL, else 'outside_ttl'; _event_time and the features equal to the newest
      row). --rate 0: back to back (closed loop); --rate R: each client sends R
      queries/s on a fixed schedule, latency measured from the scheduled send
      time (no coordinated omission) and also from the actual send.
  record LOG NAME [key=value ...]   append a result to LOG/results.jsonl
  report LOG                        the results table and README rows
"""
import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

US = 1_000_000
DAY_US = 86_400 * US
FEATURE_SUFFIXES = ("a", "b", "c", "d")
ROW_GROUP = 1 << 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def features_of(view: str) -> list:
    return [f"{view}_{s}" for s in FEATURE_SUFFIXES]


# ----------------------------------------------------------------------------
# gen
# ----------------------------------------------------------------------------
def _write(path: Path, table) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
    os.replace(tmp, path)


def gen_view(path: Path, view: str, rows: int, entities: int, seed: int, t_end: int,
             created: bool, dup_frac: float = 0.01) -> None:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    t_start = t_end - 365 * DAY_US
    ts = np.sort(rng.integers(t_start, t_end, rows, dtype=np.int64))
    eid = rng.integers(0, entities, rows, dtype=np.int64)
    a, b, c, d = features_of(view)
    cols = {
        "entity_id": eid,
        "event_ts": ts,
        a: rng.random(rows),
        b: rng.standard_normal(rows),
        c: rng.integers(0, 1000, rows, dtype=np.int64),
        d: rng.gamma(2.0, 10.0, rows),
    }
    if created:
        cts = ts + rng.integers(0, 3600 * US, rows, dtype=np.int64)
        # duplicates: odd rows j copy (entity_id, event_ts) of row j-1 (even, never
        # itself a duplicate), with a created_ts strictly later (so the newest wins
        # deterministically); the features stay independent.
        k = int(rows * dup_frac)
        if k and rows >= 2:
            j = 2 * rng.choice(rows // 2, size=min(k, rows // 2), replace=False) + 1
            j = j[j < rows]
            eid[j] = eid[j - 1]
            ts[j] = ts[j - 1]
            cts[j] = cts[j - 1] + rng.integers(1, 3600 * US, j.size, dtype=np.int64)
        cols["created_ts"] = cts
    tz = pa.timestamp("us", tz="UTC")
    arrays, names = [], []
    for name, arr in cols.items():
        arrays.append(pa.array(arr, type=tz) if name in ("event_ts", "created_ts") else pa.array(arr))
        names.append(name)
    _write(path, pa.table(arrays, names=names))


def gen_entities(path: Path, rows: int, entities: int, missing_frac: float, seed: int, t_end: int,
                 dup_frac: float = 0.001) -> None:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    eid = rng.integers(0, entities, rows, dtype=np.int64)
    missing = rng.random(rows) < missing_frac
    eid[missing] = entities + rng.integers(0, max(entities, 1), int(missing.sum()), dtype=np.int64)
    ts = rng.integers(t_end - 335 * DAY_US, t_end, rows, dtype=np.int64)
    k = int(rows * dup_frac)
    if k and rows >= 2:
        j = 2 * rng.choice(rows // 2, size=min(k, rows // 2), replace=False) + 1
        j = j[j < rows]
        eid[j] = eid[j - 1]
        ts[j] = ts[j - 1]
    table = pa.table({"row_id": pa.array(np.arange(rows, dtype=np.int64)),
                      "entity_id": pa.array(eid),
                      "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC"))})
    _write(path, table)


def cmd_gen(a) -> dict:
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {k: getattr(a, k) for k in ("rows", "views", "entities", "entity_rows", "missing_frac",
                                          "sub_rows", "sub_entities", "sub_entity_rows", "seed")}
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta and meta.get("params") == params and meta.get("complete"):
        log(f"data in {out} is up to date")
        meta["reused"] = True
        return meta
    hour = 3600 * US
    t_end = (int(time.time() * US) // hour) * hour
    meta = {"params": params, "t_end_us": t_end, "t_end": _iso(t_end), "ttl_days": 90,
            "views": [f"v{k}" for k in range(1, a.views + 1)], "created_view": "v1",
            "sub_view": "sub1", "complete": False}
    meta_path.write_text(json.dumps(meta, indent=2))
    t0 = time.perf_counter()
    for k in range(1, a.views + 1):
        log(f"generating view{k}.parquet ({a.rows:,} rows, {a.entities:,} entities)")
        gen_view(out / f"view{k}.parquet", f"v{k}", a.rows, a.entities, a.seed + k, t_end, created=(k == 1))
    log(f"generating entities.parquet ({a.entity_rows:,} rows, {a.missing_frac:.0%} unknown entities)")
    gen_entities(out / "entities.parquet", a.entity_rows, a.entities, a.missing_frac, a.seed, t_end)
    log(f"generating sub_view.parquet ({a.sub_rows:,} rows, {a.sub_entities:,} entities) "
        f"and sub_entities.parquet ({a.sub_entity_rows:,} rows)")
    gen_view(out / "sub_view.parquet", "sub1", a.sub_rows, a.sub_entities, a.seed + 100, t_end, created=True)
    gen_entities(out / "sub_entities.parquet", a.sub_entity_rows, a.sub_entities, a.missing_frac,
                 a.seed + 101, t_end)
    meta["gen_s"] = round(time.perf_counter() - t0, 2)
    meta["bytes"] = {p.name: p.stat().st_size for p in sorted(out.glob("*.parquet"))}
    meta["complete"] = True
    meta_path.write_text(json.dumps(meta, indent=2))
    # online expectations are derived from the data: drop stale ones
    for p in (out / "online_expected").glob("*/*.npy") if (out / "online_expected").exists() else []:
        p.unlink()
    return meta


def _iso(us: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(us / US, dt.timezone.utc).isoformat()


# ----------------------------------------------------------------------------
# check: a training set against the rules
# ----------------------------------------------------------------------------
def _ts_us(col) -> "object":
    """A timestamp column (any unit, any tz) as int64 microseconds (numpy), nulls as INT64_MIN."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("us", tz=col.type.tz))
        col = col.cast(pa.int64())
    return np.asarray(pc.fill_null(col, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False), dtype=np.int64)


def _float(col):
    """A numeric column as float64 numpy with NaN for null (Feast returns NaN, sluice null)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.num_chunks == 0:
        return np.zeros(0)
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def oracle(view_path: Path, features: list, ttl_us: int, sample_eid, sample_ts):
    """Expected features (float64, NaN = none) for each (entity, ts) of the sample, and whether
    the expected row ties with another on event time (the created timestamp decides)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = pq.read_schema(view_path)
    created = "created_ts" in schema.names
    cols = ["entity_id", "event_ts"] + (["created_ts"] if created else []) + features
    t = pq.read_table(view_path, columns=cols)
    t = t.filter(pc.is_in(t.column("entity_id"), value_set=pa.array(np.unique(sample_eid))))
    eid = t.column("entity_id").to_numpy()
    ets = _ts_us(t.column("event_ts"))
    cts = _ts_us(t.column("created_ts")) if created else np.zeros_like(ets)
    feats = np.stack([_float(t.column(f)) for f in features], axis=1) if len(t) else np.zeros((0, len(features)))
    order = np.lexsort((cts, ets, eid))
    eid, ets, cts, feats = eid[order], ets[order], cts[order], feats[order]
    out = np.full((len(sample_eid), len(features)), np.nan)
    tie = np.zeros(len(sample_eid), dtype=bool)  # the answer is one of several rows with its event time
    lo = np.searchsorted(eid, sample_eid, side="left")
    hi = np.searchsorted(eid, sample_eid, side="right")
    for i, (l, h, t_) in enumerate(zip(lo, hi, sample_ts)):
        if l == h:
            continue
        # rows of this entity sorted by (event_ts, created_ts): the last with event_ts <= t
        p = l + np.searchsorted(ets[l:h], t_, side="right") - 1
        if p >= l and ets[p] >= t_ - ttl_us:
            out[i] = feats[p]
            tie[i] = p > l and ets[p - 1] == ets[p]
    return out, tie


def cmd_check(a) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    out = pq.read_table(a.out)
    ent = pq.read_table(a.entities)
    rows_in, rows_out = ent.num_rows, out.num_rows
    in_ids = np.sort(ent.column("row_id").to_numpy())
    out_ids_raw = out.column("row_id").to_numpy()
    out_ids = np.sort(out_ids_raw)
    uniq_out = np.unique(out_ids)
    res = {"label": a.label, "rows_in": rows_in, "rows_out": rows_out,
           "row_ids_dropped": int(np.setdiff1d(in_ids, uniq_out, assume_unique=True).size),
           "row_ids_duplicated": int(out_ids.size - uniq_out.size)}
    views = [v.split("=", 1) for v in a.view]
    # rows of entities that exist in no view
    eid_out = out.column("entity_id").to_numpy()
    unknown = eid_out >= a.existing
    res["unknown_entity_rows_in"] = int((ent.column("entity_id").to_numpy() >= a.existing).sum())
    res["unknown_entity_rows_out"] = int(unknown.sum())
    all_null = np.ones(rows_out, dtype=bool)
    matched = {}
    for name, _ in views:
        m = np.zeros(rows_out, dtype=bool)
        for f in features_of(name):
            m |= ~np.isnan(_float(out.column(f)))
        matched[name] = int(m.sum())
        all_null &= ~m
    res["matched_rows_per_view"] = matched
    res["unknown_entity_rows_with_features"] = int((unknown & ~all_null).sum())
    # the oracle on a fixed sample of entity rows (the same for every tool)
    rng = np.random.default_rng(7)
    n = min(a.sample, rows_in)
    pick = np.sort(rng.choice(rows_in, size=n, replace=False)) if n else np.zeros(0, dtype=np.int64)
    e_row = ent.column("row_id").to_numpy()[pick]
    e_eid = ent.column("entity_id").to_numpy()[pick]
    e_ts = _ts_us(ent.column("ts"))[pick]
    pos_sorted = np.argsort(out_ids_raw, kind="stable")
    where = np.searchsorted(out_ids_raw[pos_sorted], e_row)
    present = (where < rows_out) & (out_ids_raw[pos_sorted][np.minimum(where, max(rows_out - 1, 0))] == e_row) \
        if rows_out else np.zeros(n, dtype=bool)
    out_pos = pos_sorted[np.minimum(where, max(rows_out - 1, 0))] if rows_out else np.zeros(n, dtype=np.int64)
    wrong, wrong_ties, ties, checked, wrong_examples = 0, 0, 0, 0, []
    ttl_us = int(a.ttl_days * DAY_US)
    for name, path in views:
        feats = features_of(name)
        exp, tie = oracle(Path(path), feats, ttl_us, e_eid, e_ts)
        got = np.stack([_float(out.column(f)) for f in feats], axis=1)[out_pos] if rows_out else exp * np.nan
        for i in np.flatnonzero(present):
            checked += 1
            ties += int(tie[i])
            e, g = exp[i], got[i]
            same = np.all((np.isnan(e) & np.isnan(g)) | (e == g))
            if not same:
                wrong += 1
                wrong_ties += int(tie[i])
                if len(wrong_examples) < 5:
                    wrong_examples.append({"view": name, "row_id": int(e_row[i]), "entity_id": int(e_eid[i]),
                                           "ts": _iso(int(e_ts[i])), "event_time_tie": bool(tie[i]),
                                           "expected": _jsonable(e), "got": _jsonable(g)})
    res["oracle"] = {"sample_rows": int(n), "sample_rows_present": int(present.sum()),
                     "row_views_checked": checked, "row_views_wrong": wrong,
                     "row_views_at_event_time_ties": ties, "wrong_at_event_time_ties": wrong_ties,
                     "examples": wrong_examples}
    res["dropped_why"] = dropped_why(ent, in_ids, uniq_out, views, ttl_us, a.existing)
    res["ok"] = (rows_out == rows_in and res["row_ids_dropped"] == 0 and res["row_ids_duplicated"] == 0
                 and res["unknown_entity_rows_with_features"] == 0 and wrong == 0)
    return res


def dropped_why(ent, in_ids, out_ids, views, ttl_us: int, existing: int) -> dict:
    """Why entity rows are missing from a training set: 'duplicate' (another entity row has the
    same entity and time and is in the output), 'unknown_entity' (in no view), 'no_row_within_ttl'
    (every view's answer would be NULL: no row at or before the time within the TTL), 'other'."""
    import numpy as np

    dropped = np.setdiff1d(in_ids, out_ids, assume_unique=True)
    if dropped.size == 0:
        return {}
    rid = ent.column("row_id").to_numpy()
    eid = ent.column("entity_id").to_numpy()
    ts = _ts_us(ent.column("ts"))
    order = np.argsort(rid)
    pos = order[np.searchsorted(rid[order], dropped)]
    d_eid, d_ts = eid[pos], ts[pos]
    kept = np.ones(rid.size, dtype=bool)
    kept[pos] = False
    kept_keys = set(zip(eid[kept].tolist(), ts[kept].tolist()))
    dup = np.array([(e, t) in kept_keys for e, t in zip(d_eid.tolist(), d_ts.tolist())], dtype=bool)
    unknown = d_eid >= existing
    no_match = np.ones(dropped.size, dtype=bool)
    for name, path in views:
        exp, _ = oracle(Path(path), features_of(name), ttl_us, d_eid, d_ts)
        no_match &= np.all(np.isnan(exp), axis=1)
    why = {"duplicate": int(dup.sum()), "unknown_entity": int((~dup & unknown).sum()),
           "no_row_within_ttl": int((~dup & ~unknown & no_match).sum()),
           "other": int((~dup & ~unknown & ~no_match).sum())}
    return why


def _jsonable(row) -> list:
    return [None if (isinstance(x, float) and math.isnan(x)) else float(x) for x in row]


def cmd_compare(a) -> dict:
    """Row-by-row comparison of two training sets joined on row_id (rows in both)."""
    import numpy as np
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a.a), pq.read_table(a.b)
    ia, ib = ta.column("row_id").to_numpy(), tb.column("row_id").to_numpy()
    common, pa_, pb_ = np.intersect1d(ia, ib, assume_unique=False, return_indices=True)
    diff = np.zeros(common.size, dtype=bool)
    per_feature = {}
    for f in a.features:
        x, y = _float(ta.column(f))[pa_], _float(tb.column(f))[pb_]
        d = ~((np.isnan(x) & np.isnan(y)) | (x == y))
        per_feature[f] = int(d.sum())
        diff |= d
    ex = []
    for k in np.flatnonzero(diff)[:5]:
        ex.append({"row_id": int(common[k]),
                   a.label_a: _jsonable([_float(ta.column(f))[pa_[k]] for f in a.features]),
                   a.label_b: _jsonable([_float(tb.column(f))[pb_[k]] for f in a.features])})
    return {"rows_a": int(ia.size), "rows_b": int(ib.size), "rows_in_both": int(common.size),
            "rows_only_in_a": int(np.setdiff1d(ia, ib).size), "rows_only_in_b": int(np.setdiff1d(ib, ia).size),
            "rows_differing": int(diff.sum()), "differing_per_feature": per_feature, "examples": ex}


# ----------------------------------------------------------------------------
# feast (run with the Feast venv's python)
# ----------------------------------------------------------------------------
FEAST_YAML = """project: featbench
registry: {repo}/data/registry.db
provider: local
online_store:
  type: sqlite
  path: {repo}/data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def cmd_feast(a) -> dict:
    t0 = time.perf_counter()
    os.environ.setdefault("FEAST_USAGE", "False")
    import datetime as dt
    import shutil

    import pyarrow.parquet as pq
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64
    import feast

    t_import = time.perf_counter()
    data, repo = Path(a.data), Path(a.repo)
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(FEAST_YAML.format(repo=repo))
    meta = json.loads((data / "meta.json").read_text())
    view = meta["sub_view"]
    feats = features_of(view)
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    source = FileSource(name=f"{view}_source", path=str(data / "sub_view.parquet"), timestamp_field="event_ts",
                        created_timestamp_column="created_ts")
    fv = FeatureView(name=view, entities=[entity], ttl=dt.timedelta(days=meta["ttl_days"]),
                     schema=[Field(name=feats[0], dtype=Float64), Field(name=feats[1], dtype=Float64),
                             Field(name=feats[2], dtype=Int64), Field(name=feats[3], dtype=Float64)],
                     source=source, online=False)
    store = FeatureStore(repo_path=str(repo))
    store.apply([entity, fv])
    t_apply = time.perf_counter()
    entity_df = pq.read_table(data / "sub_entities.parquet").to_pandas()
    entity_df = entity_df.rename(columns={"ts": "event_timestamp"})
    rows_in = len(entity_df)
    t_read = time.perf_counter()
    job = store.get_historical_features(entity_df=entity_df, features=[f"{view}:{f}" for f in feats])
    table = job.to_arrow()
    t_ret = time.perf_counter()
    pq.write_table(table, a.out, compression="zstd")
    t_write = time.perf_counter()
    return {"feast_version": feast.__version__, "offline_store": "file (DaskOfflineStore)",
            "import_s": round(t_import - t0, 3), "apply_s": round(t_apply - t_import, 3),
            "read_entities_s": round(t_read - t_apply, 3), "retrieval_s": round(t_ret - t_read, 3),
            "write_s": round(t_write - t_ret, 3), "rows_in": rows_in, "rows_out": table.num_rows,
            "columns": table.column_names}


# ----------------------------------------------------------------------------
# online: expectations and clients
# ----------------------------------------------------------------------------
def cmd_expect(a) -> dict:
    """Per view: the newest row per entity (by event_ts, then created_ts), as .npy files."""
    import numpy as np
    import pyarrow.parquet as pq

    data = Path(a.data)
    res = {}
    for k, view in enumerate(a.views, start=1):
        d = data / "online_expected" / view
        feats = features_of(view)
        names = ["entity_id", "event_ts"] + feats
        if all((d / f"{n}.npy").exists() for n in names):
            res[view] = int(np.load(d / "entity_id.npy", mmap_mode="r").size)
            continue
        t0 = time.perf_counter()
        path = data / f"view{k}.parquet" if view.startswith("v") else data / "sub_view.parquet"
        t = pq.read_table(path)
        eid = t.column("entity_id").to_numpy()
        ets = _ts_us(t.column("event_ts"))
        cts = _ts_us(t.column("created_ts")) if "created_ts" in t.column_names else np.zeros_like(ets)
        order = np.lexsort((cts, ets, eid))
        es = eid[order]
        last = order[np.flatnonzero(np.r_[es[1:] != es[:-1], True])] if es.size else order
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "entity_id.npy", eid[last])
        np.save(d / "event_ts.npy", ets[last])
        for f in feats:
            np.save(d / f"{f}.npy", _float(t.column(f))[last])
        res[view] = int(last.size)
        log(f"expected online rows of {view}: {last.size:,} entities ({time.perf_counter() - t0:.1f} s)")
    return res


class Expect:
    """The newest row per entity of each view, memory-mapped (shared by the clients' page cache)."""

    def __init__(self, data: Path, views: list, ttl_days: float):
        import numpy as np

        self.views = views
        self.ttl_us = int(ttl_days * DAY_US)
        self.cols = {}
        for v in views:
            d = data / "online_expected" / v
            self.cols[v] = {n: np.load(d / f"{n}.npy", mmap_mode="r")
                            for n in ["entity_id", "event_ts"] + features_of(v)}

    def pick(self, rng: random.Random, view: str = None):
        """(view, index, entity id): a random existing entity of VIEW (default: a random view)."""
        v = view or self.views[rng.randrange(len(self.views))]
        i = rng.randrange(self.cols[v]["entity_id"].size)
        return v, i, int(self.cols[v]["entity_id"][i])

    def check(self, view: str, i: int, table, now_us: int) -> str:
        """'' when the answer is right, else what is wrong. Also returns the status seen via self.last_status."""
        c = self.cols[view]
        self.last_status = None
        if table.num_rows != 1:
            return f"{table.num_rows} rows (expected 1)"
        row = table.to_pylist()[0]
        status = row.get("_status")
        self.last_status = status
        ts = int(c["event_ts"][i])
        age_edge = now_us - self.ttl_us
        if abs(ts - age_edge) <= 120 * US:  # within 2 minutes of the TTL edge: either is right
            ok_status = ("present", "outside_ttl")
        else:
            ok_status = ("present",) if ts >= age_edge else ("outside_ttl",)
        if status not in ok_status:
            return f"_status {status!r}, expected {' or '.join(ok_status)} (event time {_iso(ts)})"
        if row.get("entity_id") != int(c["entity_id"][i]):
            return f"entity_id {row.get('entity_id')!r}, expected {int(c['entity_id'][i])}"
        if status == "outside_ttl":  # features NULL, as in a training set
            bad = [f for f in features_of(view) if row.get(f) is not None]
            if bad:
                return f"outside_ttl but features {bad} are not NULL"
        if status == "present":
            got_ts = _dt_us(row.get("_event_time"))
            if got_ts != ts:
                return f"_event_time {row.get('_event_time')!r}, expected {_iso(ts)}"
            for f in features_of(view):
                g, e = row.get(f), float(c[f][i])
                if g is None or float(g) != e:
                    return f"{f} = {g!r}, expected {e!r}"
        return ""


def _dt_us(v):
    import datetime as dt

    if v is None:
        return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        delta = v - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds
    if hasattr(v, "value"):  # pandas Timestamp
        return int(v.value) // 1000
    return int(v)


ONLINE_COLUMNS_EXTRA = ("_event_time", "_status")


def online_query(view: str) -> str:
    return f"SELECT * FROM online.{view} WHERE entity_id = ?"


def connect(uri: str, user: str, password: str):
    import adbc_driver_flightsql.dbapi as fs

    kw = {"username": user, "password": password} if user else {}
    return fs.connect(uri, db_kwargs=kw, autocommit=True)


def online_worker(idx: int, args: dict, barrier, results) -> None:
    exp = Expect(Path(args["data"]), args["views"], args["ttl_days"])
    rng = random.Random(1000 + idx)
    try:
        conn = connect(args["uri"], args["user"], args["password"])
        curs = {}
        for v in args["views"]:  # one cursor (= one prepared statement) per view; warm-up
            cur = conn.cursor()
            _, i, eid = exp.pick(random.Random(v), v)
            cur.execute(online_query(v), (eid,))
            t = cur.fetch_arrow_table()
            missing = [c for c in ["entity_id", *features_of(v), *ONLINE_COLUMNS_EXTRA] if c not in t.column_names]
            if missing:
                raise RuntimeError(f"online.{v}: columns {t.column_names}, missing {missing}")
            curs[v] = cur
    except Exception as e:  # noqa: BLE001
        barrier.abort()
        results.put({"idx": idx, "fatal": f"{type(e).__name__}: {e}"[:1000]})
        return
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001
        results.put({"idx": idx, "fatal": "barrier broken"})
        return
    rate = args["rate"]
    lat, service = [], []
    n = errors = wrong = 0
    statuses = {}
    first = []
    start = time.perf_counter()
    deadline = start + args["seconds"]
    interval = 1.0 / rate if rate else 0.0
    next_t = start + rng.random() * interval
    behind = 0
    while True:
        if rate:
            now = time.perf_counter()
            if next_t >= deadline:
                break
            if next_t > now:
                time.sleep(next_t - now)
            else:
                behind += now - next_t > interval
            intended = next_t
            next_t += interval
        t0 = time.perf_counter()
        if not rate:
            if t0 >= deadline:
                break
            intended = t0
        v, i, eid = exp.pick(rng)
        cur = curs[v]
        try:
            cur.execute(online_query(v), (eid,))
            table = cur.fetch_arrow_table()
            t1 = time.perf_counter()
            problem = exp.check(v, i, table, int(time.time() * US))
            statuses[exp.last_status] = statuses.get(exp.last_status, 0) + 1
            n += 1
            lat.append(t1 - intended)
            service.append(t1 - t0)
            if problem:
                wrong += 1
                if len(first) < 3:
                    first.append(f"online.{v} entity {eid}: {problem}"[:500])
        except Exception as e:  # noqa: BLE001
            errors += 1
            if len(first) < 3:
                first.append(f"{type(e).__name__}: {e}"[:500])
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass
            curs[v] = conn.cursor()
    elapsed = time.perf_counter() - start
    try:
        for c in curs.values():
            c.close()
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    results.put({"idx": idx, "n": n, "errors": errors, "wrong": wrong, "statuses": statuses, "lat": lat,
                 "service": service, "elapsed": elapsed, "first_errors": first, "late_sends": behind})


def pct(sorted_vals: list, p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def _lat_ms(vals: list) -> dict:
    s = sorted(vals)
    d = {k: round(pct(s, p) * 1000, 3) for k, p in (("p50", 50), ("p90", 90), ("p99", 99))}
    d["max"] = round(s[-1] * 1000, 3) if s else None
    return d


def _cpu_s(pid: int):
    """utime + stime of a process in seconds, or None."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _rss_mib(pid: int):
    try:
        st = {l.split(":")[0]: l.split(":")[1].strip() for l in Path(f"/proc/{pid}/status").read_text().splitlines()
              if ":" in l}
        return {"rss_mib": int(st["VmRSS"].split()[0]) // 1024, "peak_rss_mib": int(st["VmHWM"].split()[0]) // 1024}
    except (OSError, KeyError, ValueError):
        return {}


def probe(a, exp: Expect) -> dict:
    """Before the timed runs: per view, one existing entity (checked as in the runs)
    and one entity no view has (expected: one row, _status 'not_found')."""
    conn = connect(a.uri, a.user, a.password)
    problems, shown = [], {}
    try:
        for v in a.views:
            cur = conn.cursor()
            _, i, eid = exp.pick(random.Random(v), v)
            cur.execute(online_query(v), (eid,))
            t = cur.fetch_arrow_table()
            shown[v] = {"columns": t.column_names, "types": [str(x) for x in t.schema.types],
                        "existing": {k: str(x) for k, x in (t.to_pylist()[0].items() if t.num_rows else [])}}
            p = exp.check(v, i, t, int(time.time() * US))
            if p:
                problems.append(f"online.{v} entity {eid}: {p}")
            if a.no_unknown_probe:
                cur.close()
                continue
            unknown = 10 ** 15 + 7
            cur.execute(online_query(v), (unknown,))
            t = cur.fetch_arrow_table()
            rows = t.to_pylist()
            shown[v]["unknown"] = rows
            if len(rows) != 1 or rows[0].get("_status") != "not_found":
                problems.append(f"online.{v} entity {unknown} (in no view): got {rows!r}, "
                                "expected one row with _status 'not_found'")
            cur.close()
    finally:
        conn.close()
    return {"problems": problems, "answers": shown}


def run_clients(a, rate: float) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # never fork a process holding ADBC (Go) threads
    barrier = ctx.Barrier(a.clients + 1, timeout=600)
    results = ctx.Queue()
    args = {"uri": a.uri, "user": a.user, "password": a.password, "data": a.data, "views": a.views,
            "ttl_days": a.ttl_days, "seconds": a.seconds, "rate": rate}
    procs = [ctx.Process(target=online_worker, args=(i, args, barrier, results)) for i in range(a.clients)]
    mode = f"paced {rate:g} q/s per client" if rate else "closed loop (back to back)"
    log(f"online: {a.clients} clients, {mode}, {a.seconds:g} s")
    for p in procs:
        p.start()
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001
        pass
    cpu0 = _cpu_s(a.server_pid) if a.server_pid else None
    t0 = time.perf_counter()
    outs = [results.get(timeout=a.seconds + 600) for _ in procs]
    wall = time.perf_counter() - t0
    cpu1 = _cpu_s(a.server_pid) if a.server_pid else None
    for p in procs:
        p.join(30)
    fatal = [o for o in outs if "fatal" in o]
    if fatal:
        return {"mode": mode, "clients": a.clients, "fatal": [o["fatal"] for o in fatal][:5]}
    total = sum(o["n"] for o in outs)
    errors = sum(o["errors"] for o in outs)
    wrong = sum(o["wrong"] for o in outs)
    statuses = {}
    for o in outs:
        for k, v in o["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    longest = max(o["elapsed"] for o in outs)
    res = {"mode": mode, "clients": a.clients, "seconds": a.seconds, "rate_per_client": rate,
           "queries": total, "errors": errors, "wrong_answers": wrong, "statuses": statuses,
           "qps": round(total / longest, 1),
           "latency_ms": _lat_ms([x for o in outs for x in o["lat"]]),
           "per_client_queries_min_max": [min(o["n"] for o in outs), max(o["n"] for o in outs)],
           "wall_s": round(wall, 2), "first_errors": [e for o in outs for e in o["first_errors"]][:5]}
    if rate:
        res["target_qps"] = round(rate * a.clients, 1)
        res["service_ms"] = _lat_ms([x for o in outs for x in o["service"]])
        res["sends_late_by_more_than_one_interval"] = sum(o["late_sends"] for o in outs)
    if cpu0 is not None and cpu1 is not None:
        res["server_cpu_s"] = round(cpu1 - cpu0, 2)
        res["server_cpu_ms_per_query"] = round((cpu1 - cpu0) * 1000 / max(total, 1), 3)
    lat = res["latency_ms"]
    log(f"  {total:,} queries, {res['qps']} q/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"{errors} errors, {wrong} wrong, statuses {statuses}"
        + (f"; service p50 {res['service_ms']['p50']} ms p99 {res['service_ms']['p99']} ms" if rate else ""))
    return res


def cmd_online(a) -> dict:
    meta = json.loads((Path(a.data) / "meta.json").read_text())
    a.ttl_days = meta["ttl_days"]
    exp = Expect(Path(a.data), a.views, a.ttl_days)
    res = {"probe": probe(a, exp)}
    for p in res["probe"]["problems"]:
        log(f"  probe: {p}")
    res["closed"] = run_clients(a, 0.0)
    if a.rate:
        res["paced"] = run_clients(a, a.rate)
    if a.server_pid:
        res["server"] = _rss_mib(a.server_pid)
    return res


# ----------------------------------------------------------------------------
# record / report
# ----------------------------------------------------------------------------
def _val(s: str):
    try:
        return json.loads(s)
    except ValueError:
        return s


def cmd_record(a) -> dict:
    entry = {"name": a.name}
    for kv in a.kv:
        k, v = kv.split("=", 1)
        if k.endswith("@file"):
            k, v = k[:-5], Path(v).read_text()
        entry[k] = _val(v)
    with open(Path(a.log) / "results.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)


def cmd_report(a) -> dict:
    log_dir = Path(a.log)
    entries = {}
    for line in (log_dir / "results.jsonl").read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            entries[e["name"]] = e
    ctx = entries.get("context", {})
    lines, md = [], []
    P = lines.append

    def mib(e):
        return e.get("kib", 0) // 1024 if e.get("kib") is not None else None

    P(f"feature-store benchmark  {ctx.get('date', '')}  commit {ctx.get('commit', '?')}  "
      f"{ctx.get('cores', '?')} cores  sluice {ctx.get('sluice', '')}")
    P(f"data: {ctx.get('views')} views x {ctx.get('rows'):,} rows over {ctx.get('entities'):,} entities; "
      f"{ctx.get('entity_rows'):,} entity rows ({ctx.get('missing_frac')} unknown ids); TTL 90d; "
      f"subset: 1 view x {ctx.get('sub_rows'):,} rows over {ctx.get('sub_entities'):,} entities, "
      f"{ctx.get('sub_entity_rows'):,} entity rows")
    P("")
    P(f"{'step':<34} {'seconds':>9} {'peak MiB':>9} {'rows out':>11}  notes")
    for name, label in (("gen", "generate Parquet"), ("load", "sluice load (all sources)"),
                        ("run", "sluice run models"), ("hist_full", "(a) sluice historical, full"),
                        ("hist_sub", "(a) sluice historical, subset"), ("feast", "(a) Feast file store, subset"),
                        ("materialize", "(b) sluice materialize"),
                        ("materialize_full", "(b) sluice materialize --full")):
        e = entries.get(name)
        if not e:
            continue
        note = e.get("note", "")
        rows = e.get("rows_out")
        P(f"{label:<34} {_f(e.get('secs')):>9} {_f(mib(e), '{}'):>9} {_f(rows, '{:,}'):>11}  {note}")

    hf, hs, fe = entries.get("hist_full"), entries.get("hist_sub"), entries.get("feast")
    nviews = ctx.get("views", 5)
    summary = {}
    if hf:
        er, vr = ctx["entity_rows"], ctx["rows"] * nviews
        summary["full"] = {"us_per_entity_row_view": hf["secs"] * 1e6 / (er * nviews),
                           "ns_per_view_row": hf["secs"] * 1e9 / vr}
    if hs:
        summary["sub_sluice"] = {"us_per_entity_row_view": hs["secs"] * 1e6 / ctx["sub_entity_rows"],
                                 "ns_per_view_row": hs["secs"] * 1e9 / ctx["sub_rows"]}
    if fe and fe.get("secs") is not None:
        fr = fe.get("detail", {}).get("retrieval_s")
        summary["sub_feast"] = {"us_per_entity_row_view": fe["secs"] * 1e6 / ctx["sub_entity_rows"],
                                "ns_per_view_row": fe["secs"] * 1e9 / ctx["sub_rows"],
                                "retrieval_us_per_entity_row_view": (fr * 1e6 / ctx["sub_entity_rows"]) if fr else None}
    if fe and fe.get("detail", {}).get("retrieval_s"):
        fr = fe["detail"]["retrieval_s"]
        summary["sub_feast_retrieval"] = {"us_per_entity_row_view": fr * 1e6 / ctx["sub_entity_rows"],
                                          "ns_per_view_row": fr * 1e9 / ctx["sub_rows"]}
    P("")
    P(f"{'normalised':<38} {'us / (entity row x view)':>24} {'ns / view row':>14}")
    for k, label in (("full", "sluice, full (whole process)"), ("sub_sluice", "sluice, subset (whole process)"),
                     ("sub_feast", "Feast, subset (whole process)"),
                     ("sub_feast_retrieval", "Feast, subset (retrieval alone)")):
        if k in summary:
            s = summary[k]
            P(f"  {label:<36} {s['us_per_entity_row_view']:>24.3f} {s['ns_per_view_row']:>14.1f}")
    ratios = {}
    if hs and fe and fe.get("secs") is not None:
        fr = fe.get("detail", {}).get("retrieval_s")
        ratios["same_subset_process"] = fe["secs"] / hs["secs"]
        ratios["same_subset_retrieval_only"] = (fr / hs["secs"]) if fr else None
        ratios["same_subset_rss"] = (fe["kib"] / hs["kib"]) if hs.get("kib") else None
        P("")
        P(f"Feast / sluice on the same subset: time {ratios['same_subset_process']:.1f}x (whole processes), "
          f"{_f(ratios['same_subset_retrieval_only'], '{:.1f}')}x (Feast's get_historical_features().to_arrow() alone "
          f"vs sluice's whole process); peak RSS {_f(ratios['same_subset_rss'], '{:.2f}')}x")
        if "full" in summary and "sub_feast_retrieval" in summary:
            fs, fl = summary["sub_feast_retrieval"], summary["full"]
            r = fs["us_per_entity_row_view"] / fl["us_per_entity_row_view"]
            r2 = fs["ns_per_view_row"] / fl["ns_per_view_row"]
            ratios["feast_subset_retrieval_vs_sluice_full_per_entity_row_view"] = r
            ratios["feast_subset_retrieval_vs_sluice_full_per_view_row"] = r2
            P(f"Feast retrieval alone (subset) / sluice whole process (full), normalised: {r:.1f}x per entity row x view, "
              f"{r2:.1f}x per view row  (different sizes and shapes: indicative only; the same-subset ratio is the one to quote)")
    for name in ("hist_full", "hist_sub", "feast"):
        e = entries.get(name)
        if e and isinstance(e.get("check"), dict):
            c = e["check"]
            o = c.get("oracle", {})
            P(f"check {name}: rows in {c['rows_in']:,} out {c['rows_out']:,} (dropped {c['row_ids_dropped']:,}, "
              f"duplicated {c['row_ids_duplicated']:,}); unknown-entity rows in {c['unknown_entity_rows_in']:,} "
              f"out {c['unknown_entity_rows_out']:,} (with features: {c['unknown_entity_rows_with_features']}); "
              f"oracle {o.get('row_views_wrong')} wrong of {o.get('row_views_checked')} row x view "
              f"({o.get('wrong_at_event_time_ties')} of them where the answer ties on event time, "
              f"{o.get('row_views_at_event_time_ties')} such checks); matched per view {c['matched_rows_per_view']}"
              + (f"; dropped because: {c['dropped_why']}" if c.get("dropped_why") else ""))
    cmpe = entries.get("compare")
    if cmpe:
        c = cmpe.get("detail", {})
        P(f"sluice vs Feast (subset, rows in both): {c.get('rows_in_both'):,} rows, {c.get('rows_differing')} differ; "
          f"only in sluice {c.get('rows_only_in_a')}, only in Feast {c.get('rows_only_in_b')}")

    on = entries.get("online")
    if on:
        d = on.get("detail", {})
        P("")
        probe_ = d.get("probe", {})
        if probe_.get("problems"):
            P(f"online probe problems: {probe_['problems']}")
        P(f"{'online (b)':<34} {'queries':>9} {'q/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>7} {'wrong':>6} {'srv CPU ms/q':>12}")
        for k in ("closed", "paced"):
            r = d.get(k)
            if not r:
                continue
            if "fatal" in r:
                P(f"  {r['mode']}: FAILED {r['fatal']}")
                continue
            l = r["latency_ms"]
            P(f"  {r['mode']:<32} {r['queries']:>9,} {r['qps']:>8} {l['p50']:>8} {l['p90']:>8} {l['p99']:>8} "
              f"{l['max']:>8} {r['errors']:>7} {r['wrong_answers']:>6} {_f(r.get('server_cpu_ms_per_query'), '{:.2f}'):>12}")
            if k == "paced":
                s = r["service_ms"]
                P(f"  {'':<32} target {r['target_qps']} q/s; latency above is from the scheduled send; "
                  f"from the actual send: p50 {s['p50']} p90 {s['p90']} p99 {s['p99']} max {s['max']} ms")
            P(f"  {'':<32} statuses {r['statuses']}")
        if d.get("server"):
            P(f"  server RSS {d['server']}")

    # README rows
    date, commit = ctx.get("date", ""), ctx.get("commit", "?")
    M = md.append
    M("| date | commit | measure | sluice | Feast 0.67 (file offline store) | ratio |")
    M("|---|---|---|---|---|---|")
    if hf:
        M(f"| {date} | {commit} | (a) {ctx['entity_rows']:,} entity rows x {nviews} views of {ctx['rows']:,} rows | "
          f"{hf['secs']:.2f} s, {mib(hf)} MiB, {hf.get('rows_out', 0):,} rows out | - | - |")
    if hs and fe and fe.get("secs") is not None:
        fr = fe.get("detail", {}).get("retrieval_s")
        M(f"| {date} | same run | (a) subset: {ctx['sub_entity_rows']:,} entity rows x 1 view of {ctx['sub_rows']:,} rows | "
          f"{hs['secs']:.2f} s, {mib(hs)} MiB, {hs.get('rows_out', 0):,} rows out | "
          f"{fe['secs']:.2f} s (retrieval alone {_f(fr)} s), {mib(fe)} MiB, {fe.get('rows_out', 0):,} rows out | "
          f"Feast / sluice: {ratios['same_subset_process']:.1f}x time (processes), "
          f"{_f(ratios['same_subset_retrieval_only'], '{:.1f}')}x (Feast retrieval alone), "
          f"{_f(ratios['same_subset_rss'])}x memory |")
    if "feast_subset_retrieval_vs_sluice_full_per_entity_row_view" in ratios:
        M(f"| {date} | same run | (a) per entity row x view (sluice full vs Feast subset, retrieval alone) | "
          f"{summary['full']['us_per_entity_row_view']:.3f} us | "
          f"{summary['sub_feast_retrieval']['us_per_entity_row_view']:.3f} us | "
          f"{ratios['feast_subset_retrieval_vs_sluice_full_per_entity_row_view']:.1f}x |")
    for name, label in (("load", "`sluice load` (all sources)"), ("run", "`sluice run models` (build the views)"),
                        ("materialize", "`sluice materialize v1..v5` after `sluice run`"),
                        ("materialize_full", "`sluice materialize --full v1..v5`")):
        e = entries.get(name)
        if e and e.get("secs") is not None:
            M(f"| {date} | same run | {label} | {e['secs']:.2f} s, {mib(e)} MiB | - | - |")
    if on:
        for k in ("closed", "paced"):
            r = on.get("detail", {}).get(k)
            if r and "fatal" not in r:
                l = r["latency_ms"]
                extra = ""
                if k == "paced":
                    s = r["service_ms"]
                    extra = f" (target {r['target_qps']} q/s; from actual send p50 {s['p50']} / p99 {s['p99']} ms)"
                M(f"| {date} | same run | (b) {r['clients']} clients, {r['mode']}, {r['seconds']:g} s | "
                  f"{r['queries']:,} queries, {r['qps']} q/s, p50 {l['p50']} ms, p99 {l['p99']} ms, "
                  f"{r['errors']} errors, {r['wrong_answers']} wrong{extra} | - | - |")
    text = "\n".join(lines)
    mdtext = "\n".join(md)
    print(text)
    print()
    print("README rows:")
    print(mdtext)
    (log_dir / "results.txt").write_text(text + "\n")
    (log_dir / "README-rows.md").write_text(mdtext + "\n")
    (log_dir / "summary.json").write_text(json.dumps({"entries": entries, "normalised": summary,
                                                       "ratios": ratios}, indent=2))
    return {}


# ----------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--rows", type=int, default=10_000_000)
    g.add_argument("--views", type=int, default=5)
    g.add_argument("--entities", type=int, default=1_000_000)
    g.add_argument("--entity-rows", type=int, default=1_000_000)
    g.add_argument("--missing-frac", type=float, default=0.05)
    g.add_argument("--sub-rows", type=int, default=1_000_000)
    g.add_argument("--sub-entities", type=int, default=100_000)
    g.add_argument("--sub-entity-rows", type=int, default=100_000)
    g.add_argument("--seed", type=int, default=42)
    c = sub.add_parser("check")
    c.add_argument("out")
    c.add_argument("--entities", required=True)
    c.add_argument("--view", action="append", required=True, help="NAME=PATH of the view's Parquet file")
    c.add_argument("--ttl-days", type=float, default=90)
    c.add_argument("--existing", type=int, required=True, help="entity ids >= this exist in no view")
    c.add_argument("--sample", type=int, default=2000)
    c.add_argument("--label", default="")
    m = sub.add_parser("compare")
    m.add_argument("a")
    m.add_argument("b")
    m.add_argument("--features", nargs="+", required=True)
    m.add_argument("--label-a", default="a")
    m.add_argument("--label-b", default="b")
    f = sub.add_parser("feast")
    f.add_argument("data")
    f.add_argument("--repo", required=True)
    f.add_argument("--out", required=True)
    e = sub.add_parser("expect")
    e.add_argument("data")
    e.add_argument("--views", nargs="+", required=True)
    o = sub.add_parser("online")
    o.add_argument("--uri", required=True)
    o.add_argument("--data", required=True)
    o.add_argument("--views", nargs="+", required=True)
    o.add_argument("--clients", type=int, default=16)
    o.add_argument("--seconds", type=float, default=30)
    o.add_argument("--rate", type=float, default=50, help="paced run: queries/s per client (0: skip it)")
    o.add_argument("--user", default=os.environ.get("BENCH_USER", "bench"))
    o.add_argument("--password", default=os.environ.get("BENCH_PASSWORD", "bench-password"))
    o.add_argument("--server-pid", type=int, default=0)
    o.add_argument("--no-unknown-probe", action="store_true",
                   help="do not expect a 'not_found' row for an unknown entity (ONLINE_MOCK)")
    r = sub.add_parser("record")
    r.add_argument("log")
    r.add_argument("name")
    r.add_argument("kv", nargs="*")
    p = sub.add_parser("report")
    p.add_argument("log")
    a = ap.parse_args()
    fn = {"gen": cmd_gen, "check": cmd_check, "compare": cmd_compare, "feast": cmd_feast, "expect": cmd_expect,
          "online": cmd_online, "record": cmd_record, "report": cmd_report}[a.cmd]
    res = fn(a)
    if a.cmd not in ("report", "record"):
        print(json.dumps(res, indent=2, default=str))
    if a.cmd == "check" and not res.get("ok"):
        return 3  # the caller decides whether that fails the run (Feast is expected to drop rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
