#!/usr/bin/env python3
"""Deterministic point-in-time (AS OF join) workload for benches/asof.sh.

    python benches/gen_asof.py DIR [N_LABELS] [N_FEATURES]
        [--entities 100000] [--days 90] [--seed 42] [--naive-ts]

Writes (ZSTD Parquet, row groups of about 1M rows):

  DIR/labels.parquet    label_id BIGINT, entity_id BIGINT, label_ts TIMESTAMP, label BOOLEAN
                        N_LABELS rows (default 1,000,000), in label_id order, i.e. in no
                        order of entity or time.
  DIR/features.parquet  entity_id BIGINT, feature_ts TIMESTAMP, f1 DOUBLE, f2 DOUBLE, f3 BIGINT
                        N_FEATURES rows (default 10,000,000), in "arrival" order: feature_ts
                        plus a random delay of up to 6 hours, so only roughly ordered by time
                        and not at all by entity.

Timestamps are microseconds in [2026-01-01, 2026-01-01 + DAYS), written as UTC-adjusted
Parquet timestamps (DuckDB TIMESTAMPTZ, Arrow Timestamp(us, "UTC")); --naive-ts writes
plain TIMESTAMP (Arrow Timestamp(us, None)) instead.

Every value is a function of (row number, seed) through DuckDB's hash(), so a given
DuckDB version always writes the same data. By construction:
  * feature i has feature_ts = start + i*step + (hash % step) with step = span // N_FEATURES,
    so feature timestamps are strictly increasing in i and (entity_id, feature_ts) is unique:
    the AS OF match of every label is unambiguous;
  * f1 = k / 1024 and f2 = k / 4096 for integers |k| <= 10^6: sums of up to ~10^9 of them are
    exact in a double in any order, so sum(f1) / sum(f2) can be compared exactly between engines.
Labels have uniform entity and time, so labels early in the range (or of sparse entities)
have no feature at or before label_ts: an ASOF LEFT join yields NULL features for them.
"""
import argparse
import os
import sys
import time

import duckdb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("n_labels", nargs="?", type=int, default=1_000_000)
    p.add_argument("n_features", nargs="?", type=int, default=10_000_000)
    p.add_argument("--entities", type=int, default=100_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--naive-ts", action="store_true", help="plain TIMESTAMP instead of UTC-adjusted")
    p.add_argument("--row-group", type=int, default=1_000_000, help="rows per Parquet row group")
    a = p.parse_args()

    span_us = a.days * 86_400 * 1_000_000
    if a.n_features < 1 or a.n_labels < 1 or a.entities < 1:
        sys.exit("sizes must be positive")
    step = span_us // a.n_features
    if step < 1:
        sys.exit(f"{a.n_features} features do not fit in {a.days} days at microsecond resolution")
    delay_us = 6 * 3_600 * 1_000_000
    ts_type = "TIMESTAMP" if a.naive_ts else "TIMESTAMPTZ"
    s = a.seed
    os.makedirs(a.dir, exist_ok=True)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Insertion order is kept (the default), so ORDER BY decides the file order.
    con.execute("SET preserve_insertion_order = true")
    start = "TIMESTAMP '2026-01-01 00:00:00'"

    def h(expr: str, salt: int) -> str:
        # hash(row, seed, salt): UBIGINT, independent streams per column.
        return f"hash({expr}, {s}::BIGINT, {salt}::BIGINT)"

    def ts(us_expr: str) -> str:
        return f"({start} + to_microseconds(({us_expr})::BIGINT))::{ts_type}"

    copy_opts = f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {a.row_group})"

    t0 = time.time()
    feat = os.path.join(a.dir, "features.parquet")
    con.execute(f"""
COPY (
  SELECT entity_id, feature_ts, f1, f2, f3
  FROM (
    SELECT ({h('i', 1)} % {a.entities})::BIGINT AS entity_id,
           i * {step} + ({h('i', 2)} % {step})::BIGINT AS ts_us,
           {ts('ts_us')} AS feature_ts,
           ({h('i', 3)} % 1000001)::BIGINT / 1024.0 AS f1,
           (({h('i', 4)} % 2000001)::BIGINT - 1000000) / 4096.0 AS f2,
           ({h('i', 5)} % 1000000000)::BIGINT AS f3,
           ts_us + ({h('i', 6)} % {delay_us})::BIGINT AS arrival_us,
           i
    FROM range({a.n_features}) t(i)
  )
  ORDER BY arrival_us, i
) TO '{feat}' {copy_opts}
""")
    t1 = time.time()
    lab = os.path.join(a.dir, "labels.parquet")
    con.execute(f"""
COPY (
  SELECT i AS label_id,
         ({h('i', 7)} % {a.entities})::BIGINT AS entity_id,
         {ts(f"{h('i', 8)} % {span_us}")} AS label_ts,
         ({h('i', 9)} % 10) = 0 AS label
  FROM range({a.n_labels}) t(i)
  ORDER BY i
) TO '{lab}' {copy_opts}
""")
    t2 = time.time()
    for path in (lab, feat):
        groups = con.execute(
            f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{path}')"
        ).fetchone()[0]
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
        print(f"{path}: {rows} rows, {groups} row groups, {os.path.getsize(path) / 1e6:.1f} MB")
    print(f"generated in {t2 - t0:.1f} s (features {t1 - t0:.1f} s, labels {t2 - t1:.1f} s)")


if __name__ == "__main__":
    main()
