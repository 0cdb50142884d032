"""Drift job benchmark: N logged predictions (default 100k) through `python -m drift_cronjob` (no descriptors,
no embeddings).

    .venv/bin/python benchmarks/drift.py                 # SQLite file + local storage (the embedded default)
    .venv/bin/python benchmarks/drift.py --db postgres   # a throwaway PostgreSQL from tests/fixtures/services.py

The job runs as a child process, as the CronJob does, so the figures include interpreter start and imports. It prints
wall time and peak RSS for the full size and for a small baseline measured side by side (the ratio shows how the cost
grows with rows); the goal for the full size is at most 30 s. Texts are IMDB-sized (~230 words).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL_S = 30.0
DEPLOYMENT = "bench/sentiment"


def _prepare(database_url: str, storage_uri: str, rows: int, seed: int) -> None:
    import numpy as np

    from mlcore.db import create_db_engine, upgrade_to_head
    from mlcore.timeutil import utc_now
    from tests.integration.drift_cronjob import drift_synthetic as syn

    rng = np.random.default_rng(seed)
    engine = create_db_engine(database_url)
    upgrade_to_head(engine)
    reference = syn.sample(rng, 5_000)
    reference["text"] = syn.texts(rng, len(reference), 230)
    uri = syn.publish_model_version(storage_uri, "sentiment", "1", reference)
    syn.record_deployment(engine, DEPLOYMENT, "sentiment", "1", uri)
    now = utc_now()
    chunk = 20_000
    for begin in range(0, rows, chunk):
        size = min(chunk, rows - begin)
        frame = syn.sample(rng, size, shifted=begin % (2 * chunk) != 0)  # half shifted: the report has drift to show
        frame["text"] = syn.texts(rng, size, 230 if begin % (2 * chunk) == 0 else 400)
        span = timedelta(hours=20) * size / rows
        start = now - timedelta(hours=22) + timedelta(hours=20) * begin / rows
        syn.insert_logs(engine, syn.log_rows(frame, DEPLOYMENT, "sentiment", "1", start, start + span, rng=rng))
    engine.dispose()


def _run_job(env: dict[str, str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and the printed summary of one `python -m drift_cronjob` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    begin = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "drift_cronjob"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - begin
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"drift job exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the max over all children so far: run the larger size last.
    return wall, max(peak_kib, before) / 1024, summary


def measure(rows: int, db: str, seed: int) -> tuple[float, float, dict, float]:
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        server = None
        if db == "postgres":
            from tests.fixtures.services import start_postgres

            server = start_postgres()
            database_url = server.create_database("bench")
        else:
            database_url = f"sqlite+pysqlite:///{tmp}/bench.db"
        try:
            storage_uri = Path(tmp, "storage").as_uri()
            begin = time.perf_counter()
            _prepare(database_url, storage_uri, rows, seed)
            prepare_s = time.perf_counter() - begin
            env = {
                **os.environ,
                "MLP_HOME": str(Path(tmp, "home")),
                "DATABASE_URL": database_url,
                "STORAGE_URI": storage_uri,
                "DRIFT_WINDOW_DELAY_S": "0",
                "DRIFT_LOOKBACK_HOURS": "24",
                "DRIFT_TEXT_DESCRIPTORS": "false",
                "DRIFT_EMBEDDINGS": "false",
                "LOG_FORMAT": "text",
                "DO_NOT_TRACK": "1",
            }
            wall, peak, summary = _run_job(env)
        finally:
            if server is not None:
                server.close()
    return wall, peak, summary, prepare_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000, help="small size measured alongside (0: none)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"drift job benchmark: {args.db}, no text descriptors, no embeddings; cpus={os.cpu_count()}")
    results = []
    for rows in [r for r in (args.baseline_rows, args.rows) if r > 0]:
        wall, peak, summary, prepare_s = measure(rows, args.db, args.seed)
        (run,) = summary["runs"]
        assert run["status"] == "success" and run["rows"] == rows, run
        results.append((rows, wall, peak))
        print(
            f"  rows={rows:>7}  wall={wall:6.2f} s  peak_rss={peak:7.1f} MiB  "
            f"(drift share {run['drift_share']:.2f}; data preparation {prepare_s:.1f} s, not counted)"
        )
    rows, wall, peak = results[-1]
    print(f"full size: {rows} rows in {wall:.2f} s = {rows / wall:,.0f} rows/s; peak RSS {peak:.0f} MiB")
    print(f"goal <= {GOAL_S:.0f} s: {'MET' if wall <= GOAL_S else 'MISSED'} (wall / goal = {wall / GOAL_S:.2f})")
    if len(results) == 2:
        (small_rows, small_wall, _), _ = results
        print(
            f"scaling: {rows / small_rows:.0f}x rows -> {wall / small_wall:.2f}x wall time "
            f"(fixed cost of start-up and imports is in both)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
