#!/usr/bin/env python3
"""Generates a dbt project of N ref()-linked models over a small seed.

    python3 benches/gen_models.py DIR [N] [MATERIALIZED]

The same folder runs with `sluice` (it reads dbt_project.yml) and with dbt-core
+ dbt-duckdb (profiles.yml points at DIR/bench.duckdb). Model k reads one to
three earlier models (deterministic choice) through ref(), so the DAG is wide
and deep.
"""
import os
import random
import sys


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    materialized = sys.argv[3] if len(sys.argv) > 3 else "table"
    rng = random.Random(42)
    os.makedirs(os.path.join(out, "models", "layer"), exist_ok=True)
    os.makedirs(os.path.join(out, "seeds"), exist_ok=True)
    with open(os.path.join(out, "dbt_project.yml"), "w") as f:
        f.write(
            "name: bench\nversion: '1.0'\nprofile: bench\nconfig-version: 2\n"
            "model-paths: ['models']\nseed-paths: ['seeds']\n"
            f"models:\n  bench:\n    +materialized: {materialized}\n"
        )
    with open(os.path.join(out, "profiles.yml"), "w") as f:
        f.write(
            "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
            f"      path: {os.path.join(os.path.abspath(out), 'bench.duckdb')}\n      threads: 2\n"
        )
    with open(os.path.join(out, "seeds", "events.csv"), "w") as f:
        f.write("id,user_id,amount,kind\n")
        for i in range(1, 1001):
            f.write(f"{i},{i % 97},{(i * 37) % 1000 / 10:.1f},{['a', 'b', 'c'][i % 3]}\n")
    for k in range(1, n + 1):
        name = f"m{k:04d}"
        if k == 1:
            body = (
                "select id, user_id, amount, kind\n"
                "from {{ ref('events') }}\n"
            )
        else:
            parents = sorted(set(rng.randrange(max(1, k - 50), k) for _ in range(rng.randint(1, 3))))
            def rel(p):
                return "{{ ref('m%04d') }}" % p
            first = parents[0]
            body = f"select a.id, a.user_id, a.amount + {k % 7} as amount, a.kind\nfrom {rel(first)} as a\n"
            for j, p in enumerate(parents[1:]):
                body += f"where a.id in (select id from {rel(p)} where amount >= {j})\n" if j == 0 else \
                    f"  and a.user_id in (select user_id from {rel(p)})\n"
        with open(os.path.join(out, "models", "layer", f"{name}.sql"), "w") as f:
            f.write(body)


if __name__ == "__main__":
    main()
