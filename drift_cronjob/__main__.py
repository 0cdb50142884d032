"""`python -m drift_cronjob`: drift, quality and volume checks over the logged predictions.

Exit codes: 0 the job ran (drift or not, runs skipped for too little data included); 1 a deployment's analysis
failed; 2 invalid configuration or arguments; 3 the database is unreachable (after retries) or lacks the schema;
4 object storage failed (reference sample or report upload).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from drift_cronjob.settings import DriftSettings, load_drift_settings
from mlcore.errors import ConfigurationError, DatabaseError, MLPipelineException, SecurityError, StorageError

log = logging.getLogger("drift_cronjob")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DATABASE, EXIT_STORAGE = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drift_cronjob",
        description="Compare the logged predictions of each active deployment with its reference; raise alerts.",
    )
    parser.add_argument("--deployment", metavar="ID", help="only this deployment ('<namespace>/<name>')")
    parser.add_argument("--model-version", metavar="V", help="only this model version of the deployment(s)")
    parser.add_argument(
        "--reference-window",
        metavar="SPEC",
        help="compare with earlier logs instead of the model's reference sample: a duration right before the "
        "current window (7d, 36h) or an ISO 8601 interval START/END",
    )
    parser.add_argument("--text-descriptors", action="store_true", default=None, help="also compare text descriptors")
    parser.add_argument(
        "--embeddings", action="store_true", default=None, help="also compare sentence embeddings (deployed model)"
    )
    parser.add_argument("--lookback-hours", type=float, help="first run: window length (DRIFT_LOOKBACK_HOURS)")
    parser.add_argument("--min-rows", type=int, help="skip windows with fewer predictions (DRIFT_MIN_ROWS)")
    parser.add_argument(
        "--now", metavar="ISO", help="pretend the run starts at this instant (backfills; default: the clock)"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "text_descriptors": args.text_descriptors,
        "embeddings": args.embeddings,
        "lookback_hours": args.lookback_hours,
        "min_rows": args.min_rows,
    }
    return {k: v for k, v in pairs.items() if v is not None}


def _parse_now(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    from mlcore.timeutil import as_utc

    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise ConfigurationError(f"--now: {raw!r} is not an ISO 8601 timestamp") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry: never from a production job
    from mlcore.logging import configure_logging

    configure_logging(args.log_level)
    try:
        from mlcore.config import load_settings

        core = load_settings()
        settings: DriftSettings = load_drift_settings(**_overrides(args))
        from drift_cronjob.job import JobOptions, run_job

        options = JobOptions(args.deployment, args.model_version, args.reference_window, _parse_now(args.now))
        result = run_job(core, settings, options)
    except (ConfigurationError, SecurityError) as exc:
        log.error("cannot run: %s", exc)
        return EXIT_CONFIG
    except DatabaseError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_DATABASE
    except StorageError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_STORAGE
    except MLPipelineException as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILED
    summary = {
        "runs": [o.as_dict() for o in result.outcomes],
        "alerts_notified": result.notified,
        "alerts_notify_failed": result.notify_failed,
    }
    sys.stdout.write(json.dumps(summary, default=str) + "\n")
    code = result.exit_code
    if code:
        log.error("the job ran, but %d deployment run(s) failed", sum(o.status == "failed" for o in result.outcomes))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
