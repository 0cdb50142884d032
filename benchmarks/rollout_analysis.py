"""Rollout analysis benchmark: one analysis of each strategy over a window of 1,000,000 logged predictions on
PostgreSQL, timed, with the memory of the process that runs it.

    .venv/bin/python benchmarks/rollout_analysis.py                 # 1,000,000 rows, 3 runs per strategy
    .venv/bin/python benchmarks/rollout_analysis.py --rows 200000 --runs 5

A throwaway PostgreSQL is filled server-side (INSERT ... SELECT generate_series): half stable rows, 30% canary,
20% shadow copies that mirror stable rows (same input, mirrored_request_id), 2% errors, 30% with feedback, all
inside the analysis window. Then a child process that imports the operator (kopf, handlers and all, as its Deployment
runs it) calls strategies.measure() for Canary, ABTest and Shadow and reports wall times, the CPU seconds PostgreSQL
and the operator spent (what the wall time would be on idle cores, minus parallelism: the figure to read on a busy
machine) and its peak RSS (VmHWM). Goals: <= 2 s per analysis, <= 200 MB for the process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

GOAL_S = 2.0
GOAL_MIB = 200.0
DEPLOYMENT = "bench/sentiment"

FILL = """
INSERT INTO prediction_logs (id, input_text, input_hash, predicted_sentiment, confidence, model_name, model_version,
                             deployment_id, role, latency_ms, request_id, mirrored_request_id, status, predicted_at,
                             feedback_label)
SELECT gen_random_uuid(), 'review ' || g, md5(src::text), label, CASE WHEN failed THEN NULL ELSE 0.5 + r2 / 2 END,
       'sentiment', CASE role WHEN 'stable' THEN '1' ELSE '2' END, :deployment, role,
       10 + 40 * r3 * r3 * r3, CASE WHEN role = 'stable' THEN 'r' || g END,
       CASE WHEN role = 'shadow' THEN 'r' || src END, CASE WHEN failed THEN 'error' ELSE 'ok' END,
       now() - (g % 240000) * interval '1 millisecond',
       CASE WHEN NOT failed AND r4 < 0.3 THEN CASE WHEN r2 < 0.85 THEN label
            WHEN label = 'positive' THEN 'negative' ELSE 'positive' END END
FROM (
    SELECT g, failed, r2, r3, r4, role, src,
           CASE WHEN failed THEN NULL
                -- the shadow sees the input of the stable row it mirrors, and agrees with it 93% of the time
                WHEN role = 'shadow' AND r1 < 0.07 THEN CASE WHEN abs(hashtext(src::text)) % 2 = 0 THEN 'negative'
                                                            ELSE 'positive' END
                WHEN role = 'canary' THEN CASE WHEN r1 < 0.5 THEN 'positive' ELSE 'negative' END
                WHEN abs(hashtext(src::text)) % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM (
        SELECT g, random() < 0.02 AS failed, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
               CASE WHEN g % 10 < 5 THEN 'stable' WHEN g % 10 < 8 THEN 'canary' ELSE 'shadow' END AS role,
               CASE WHEN g % 10 >= 8 THEN g - 8 ELSE g END AS src
        FROM generate_series(1, :rows) AS g
    ) raw
) labelled
"""


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def postgres_cpu_s(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL cluster: the postmaster, its live children (backends, parallel workers) and the
    children it has reaped (cutime/cstime). Under a loaded machine this is what the analysis cost, free of waiting."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    fields = stat(postmaster)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
    return total / tick


def measure(url: str, runs: int) -> dict[str, object]:
    """The child: the operator's imports, then `runs` analyses per strategy."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    import mlpipeline_operator.handlers  # noqa: F401 - the operator's whole footprint, as deployed
    from mlcore.db import create_db_engine
    from mlpipeline_operator.spec import parse_spec
    from mlpipeline_operator.state import Canary, RolloutState, Stable
    from mlpipeline_operator.strategies import measure as analyse

    engine = create_db_engine(url)
    with engine.connect() as conn:
        backend = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    idle_kib = vm_kib("VmRSS")
    now = datetime.now(UTC)
    since = now - timedelta(minutes=10)
    model = {"name": "sentiment", "version": "2", "storageUri": "s3://m/sentiment/2"}
    specs = {
        "Canary": {"strategy": "Canary"},
        "ABTest": {"strategy": "ABTest", "abTest": {"stickiness": {"header": "x-user-id"}}},
        "Shadow": {"strategy": "Shadow"},
    }
    results: dict[str, object] = {}
    for strategy, rollout in specs.items():
        spec = parse_spec({"model": model, "routing": {"parentRef": {"name": "gw"}}, "rollout": rollout})
        candidate = Canary("2", model["storageUri"], "g2-v2", 0, 0, since, since, strategy=strategy)
        state = RolloutState(phase="Progressing", stable=Stable("1", "s3://m/sentiment/1", "g1-v1"), canary=candidate)
        times, db_cpu, own_cpu = [], [], []
        for _ in range(runs):
            cpu0, own0, started = postgres_cpu_s(postmaster), time.process_time(), time.perf_counter()
            result = analyse(engine, DEPLOYMENT, state, spec, since, now)
            times.append(time.perf_counter() - started)
            db_cpu.append(postgres_cpu_s(postmaster) - cpu0)
            own_cpu.append(time.process_time() - own0)
        results[strategy] = {
            "median_s": statistics.median(times),
            "max_s": max(times),
            "db_cpu_s": statistics.median(db_cpu),
            "operator_cpu_s": statistics.median(own_cpu),
            "verdict": result.verdict,
            "summary": result.summary,
            "samples": {g.name: dict(g.samples) for g in result.gates[:2]},
        }
    engine.dispose()
    return {"strategies": results, "idle_mib": idle_kib / 1024, "peak_mib": vm_kib("VmHWM") / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)  # the child's entry point
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs)))
        return 0

    import sqlalchemy as sa

    from mlcore.db import create_db_engine, upgrade_to_head
    from tests.fixtures.services import start_postgres

    postgres = start_postgres()
    try:
        url = postgres.create_database("rollout_bench")
        engine = create_db_engine(url)
        upgrade_to_head(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"rows": args.rows, "deployment": DEPLOYMENT})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE prediction_logs"))
            size = conn.execute(sa.text("SELECT pg_size_pretty(pg_total_relation_size('prediction_logs'))")).scalar()
        engine.dispose()
        print(f"filled {args.rows:,} prediction_logs rows ({size}) in {time.perf_counter() - started:.1f} s")
        child = subprocess.run(
            [sys.executable, __file__, "--measure", url, "--runs", str(args.runs)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'operator'}"},
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        postgres.close()

    load = os.getloadavg()[0]
    print(f"rollout analysis over {args.rows:,} rows, {args.runs} runs each, cpus={os.cpu_count()}, load {load:.1f}")
    print(
        f"{'strategy':<8} {'median s':>9} {'max s':>7} {'db cpu s':>9} {'op cpu s':>9} {'goal s':>7} {'max/goal':>9}"
        "  verdict / summary"
    )
    worst = 0.0
    for strategy, row in figures["strategies"].items():
        worst = max(worst, row["max_s"])
        print(
            f"{strategy:<8} {row['median_s']:>9.3f} {row['max_s']:>7.3f} {row['db_cpu_s']:>9.3f}"
            f" {row['operator_cpu_s']:>9.3f} {GOAL_S:>7.1f} {row['max_s'] / GOAL_S:>9.2f}"
            f"  {row['verdict']}: {row['summary']}  {row['samples']}"
        )
    print("db cpu s: CPU seconds PostgreSQL spent (all its processes); op cpu s: the operator process's own")
    peak = figures["peak_mib"]
    print(f"operator process: idle {figures['idle_mib']:.0f} MiB after imports, peak {peak:.0f} MiB (VmHWM)")
    print(f"goal <= {GOAL_S:.0f} s: {'MET' if worst <= GOAL_S else 'MISSED'} (worst / goal = {worst / GOAL_S:.2f})")
    print(f"goal <= {GOAL_MIB:.0f} MB: {'MET' if peak <= GOAL_MIB else 'MISSED'} (peak / goal = {peak / GOAL_MIB:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
