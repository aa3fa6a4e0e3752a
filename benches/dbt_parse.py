#!/usr/bin/env python3
"""Benchmark: parsing and compiling a dbt project that leans on packages.

    python3 benches/dbt_parse.py [--models 200] [--rounds 5] [--work DIR]
        [--dbt-utils DIR --dbt-date DIR]   # real packages (folders as `dbt deps` leaves them)
        [--sluice PATH] [--dbt PATH]

Generates a project of N models under WORK (default /var/tmp/sluice-bench/dbt_parse_N)
with its packages in dbt_packages/: the real dbt_utils and dbt_date when both folders
are given (fetch them; they never go into this repository), else the fixture packages
tests/fixtures/dbt_pkgs/pkg_util and pkg_dates. Each model calls package macros the
way real projects do (a surrogate key, a star over the seed, date truncation and a
weekday through the date package, dbt's own cross-database macros) and refs the seed
or an earlier model.

Both tools first load the seed (`dbt seed`, `sluice seed`: the star macro reads its
columns). Then, alternating the order each round, it times:
  dbt parse      --no-partial-parse (no warehouse)
  dbt compile    --no-partial-parse (dbt-duckdb, introspects the DuckDB file)
  sluice compile
and prints each command's median, min and max seconds over the rounds, or the error
a command failed with (a failed command is still timed, and marked).
dbt comes from --dbt, else `dbt` next to this Python; sluice from --sluice, else
$SLUICE_BIN.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PKGS = ROOT / "tests" / "fixtures" / "dbt_pkgs"

# Macro calls per flavour of packages: (surrogate key, star over the seed, date part).
REAL = {
    "packages": {"dbt_utils": None, "dbt_date": None},
    "key": "{{ dbt_utils.generate_surrogate_key(['event_id', 'user_id']) }}",
    "star": "{{ dbt_utils.star(from=ref('raw_events'), except=['note']) }}",
    "weekday": "{{ dbt_date.day_of_week('event_ts', isoweek=true) }}",
    "day_name": "{{ dbt_date.day_name('event_ts', short=true) }}",
}
FIXTURE = {
    "packages": {"pkg_util": FIXTURE_PKGS / "pkg_util", "pkg_dates": FIXTURE_PKGS / "pkg_dates"},
    "key": "{{ pkg_util.surrogate_key(['event_id', 'user_id']) }}",
    "star": "{{ pkg_util.star_except(ref('raw_events'), except=['note']) }}",
    "weekday": "{{ pkg_dates.day_of_week('event_ts') }}",
    "day_name": "{{ pkg_util.ymd('event_ts') }}",
}


def generate(work: Path, n: int, flavour: dict) -> None:
    if work.exists():
        shutil.rmtree(work)
    (work / "models" / "gen").mkdir(parents=True)
    (work / "seeds").mkdir()
    (work / "dbt_project.yml").write_text(
        "name: parse_bench\nversion: '1.0'\nconfig-version: 2\nprofile: parse_bench\n"
        "model-paths: ['models']\nseed-paths: ['seeds']\n"
        "vars:\n  'dbt_date:time_zone': 'UTC'\n"
        "models:\n  parse_bench:\n    +materialized: view\n")
    (work / "profiles.yml").write_text(
        "parse_bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {work / 'bench.duckdb'}\n      schema: main\n      threads: 2\n")
    with open(work / "seeds" / "raw_events.csv", "w") as f:
        f.write("event_id,user_id,event_ts,amount,note\n")
        for i in range(1, 101):
            f.write(f"{i},{i % 17},2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:00:00,"
                    f"{i * 1.25:.2f},n{i}\n")
    for k in range(n):
        if k % 10 == 0:
            source, columns = "ref('raw_events')", flavour["star"]
        else:
            parent = k - 1 - (k * 7) % min(k, 9)
            source, columns = f"ref('m_{parent:04d}')", "event_id, user_id, event_ts, amount"
        (work / "models" / "gen" / f"m_{k:04d}.sql").write_text(
            f"select\n    {columns},\n"
            f"    {flavour['key']} as key_{k},\n"
            f"    cast({{{{ dbt.date_trunc('month', 'event_ts') }}}} as date) as month_{k},\n"
            f"    {flavour['weekday']} as weekday_{k},\n"
            f"    {flavour['day_name']} as day_{k},\n"
            f"    cast(amount as {{{{ dbt.type_numeric() }}}}) * {k % 5 + 1} as amount_{k}\n"
            f"from {{{{ {source} }}}}\n")
    for name, src in flavour["packages"].items():
        shutil.copytree(src, work / "dbt_packages" / name, symlinks=False,
                        ignore=shutil.ignore_patterns("integration_tests", ".git*", "docs"))


def timed(cmd, cwd, env):
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    return time.perf_counter() - start, proc


def first_error(proc) -> str:
    text = (proc.stderr or "") + (proc.stdout or "")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "error" in line.lower():
            # "error: N problems:" is followed by the first problem
            more = " " + lines[i + 1].strip() if line.endswith(":") and i + 1 < len(lines) else ""
            return (line.strip() + more)[:400]
    return text.strip().splitlines()[-1][:300] if text.strip() else f"exit {proc.returncode}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--dbt-utils", type=Path)
    ap.add_argument("--dbt-date", type=Path)
    ap.add_argument("--dbt", default=str(Path(sys.executable).parent / "dbt"))
    ap.add_argument("--sluice", default=os.environ.get("SLUICE_BIN"))
    args = ap.parse_args()
    if not args.sluice:
        sys.exit("dbt_parse.py: give --sluice PATH or set SLUICE_BIN")
    if bool(args.dbt_utils) != bool(args.dbt_date):
        sys.exit("dbt_parse.py: give both --dbt-utils and --dbt-date, or neither")
    if args.dbt_utils:
        flavour = dict(REAL, packages={"dbt_utils": args.dbt_utils, "dbt_date": args.dbt_date})
        label = f"dbt_utils ({args.dbt_utils}), dbt_date ({args.dbt_date})"
    else:
        flavour, label = FIXTURE, "fixture packages pkg_util, pkg_dates"
    work = args.work or Path(f"/var/tmp/sluice-bench/dbt_parse_{args.models}")
    generate(work, args.models, flavour)
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    env.pop("SLUICE_WAREHOUSE", None)
    dbt_flags = ["--project-dir", work, "--profiles-dir", work]
    print(f"{args.models} models using {label}; project {work}")

    for name, cmd in [("dbt seed", [args.dbt, "seed", *dbt_flags]),
                      ("sluice seed", [args.sluice, "--project", work, "--progress", "never", "seed"])]:
        secs, proc = timed(cmd, work, env)
        status = "ok" if proc.returncode == 0 else f"FAILED: {first_error(proc)}"
        print(f"  {name:15s} {secs:6.2f} s  {status}")

    commands = {
        "dbt parse": [args.dbt, "parse", "--no-partial-parse", *dbt_flags],
        "dbt compile": [args.dbt, "compile", "--no-partial-parse", *dbt_flags],
        "sluice compile": [args.sluice, "--project", work, "compile"],
    }
    times = {name: [] for name in commands}
    errors = {}
    names = list(commands)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            secs, proc = timed(commands[name], work, env)
            times[name].append(secs)
            if proc.returncode != 0:
                errors.setdefault(name, first_error(proc))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names),
              flush=True)

    print(f"\nmedian of {args.rounds} rounds (min - max), seconds:")
    for name in names:
        t = times[name]
        mark = f"  FAILED: {errors[name]}" if name in errors else ""
        print(f"  {name:15s} {statistics.median(t):7.2f}  ({min(t):.2f} - {max(t):.2f}){mark}")
    ok = [n for n in names if n not in errors]
    if "sluice compile" in ok:
        base = statistics.median(times["sluice compile"])
        for name in ok:
            if name != "sluice compile":
                print(f"  {name} / sluice compile = {statistics.median(times[name]) / base:.1f}x")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
