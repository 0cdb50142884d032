"""Command line of the training job; flags override the environment settings of the shared config."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from mlcore.errors import MLPipelineException

logger = logging.getLogger("training_job")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _word_range(value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    if not (sep and low.isdigit() and high.isdigit()) or not 1 <= int(low) <= int(high):
        raise argparse.ArgumentTypeError(f"must be MIN-MAX words with 1 <= MIN <= MAX, e.g. 3-30 (got {value!r})")
    return int(low), int(high)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training_job",
        description="Fine-tune a sentiment classifier, publish it to storage, register it in MLflow.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="hub name (imdb), a local .csv/.parquet/.jsonl file, or 'auto' (default)")
    data.add_argument("--text-column", help="column holding the text (default: text, review, sentence, ...)")
    data.add_argument("--label-column", help="column holding the label (default: label, sentiment, ...)")
    data.add_argument("--max-train-samples", type=_positive_int, help="stratified sample of the train split")
    data.add_argument("--max-validation-samples", type=_positive_int, help="stratified sample of the validation split")
    data.add_argument("--max-test-samples", type=_positive_int, help="fixed (hash-ordered) subset of the test split")
    data.add_argument(
        "--chunks-per-review",
        type=int,
        help="opinionated sentence runs of each training review added to the training rows, labelled by their "
        "review (default 0: off; quick: see --chunk-words)",
    )
    data.add_argument(
        "--chunk-words",
        type=_word_range,
        metavar="MIN-MAX",
        help="words per sentence run of --chunks-per-review (default 4-40)",
    )
    data.add_argument(
        "--eval-set",
        action="append",
        metavar="NAME=PATH",
        help="extra labelled evaluation set (CSV/JSONL) reported as its own slice; repeatable "
        "(default: the repository's hand-written tests/data/short_texts.csv when present)",
    )
    data.add_argument("--reference-rows", type=_positive_int, help="rows of the published reference sample (300)")
    data.add_argument(
        "--runtime-eval-rows",
        type=_positive_int,
        help="test rows each exported runtime (ONNX fp32/int8) is scored on (all; quick: 500)",
    )

    model = parser.add_argument_group("model and training")
    model.add_argument("--model", help="hub name or local directory; 'auto' picks an offline model without network")
    model.add_argument("--quick", action="store_true", default=None, help="fast preset: <=10 min on 2 CPU cores")
    model.add_argument("--epochs", type=_positive_float)
    model.add_argument("--max-length", type=_positive_int)
    model.add_argument("--batch-size", type=_positive_int)
    model.add_argument("--learning-rate", type=_positive_float)
    model.add_argument("--weight-decay", type=float)
    model.add_argument("--warmup-fraction", type=float, help="fraction of steps with linear warm-up (0.1)")
    model.add_argument("--head-lr-multiplier", type=_positive_float, help="head learns this much faster (10)")
    model.add_argument("--head-fraction", type=float, help="share of max-length kept from a long text's start")
    model.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=None)
    model.add_argument("--freeze-layers", type=int, help="leave the first N encoder layers untrained (0)")
    model.add_argument(
        "--train-max-length",
        type=_positive_int,
        help="token limit of the training rows only (default: --max-length, which evaluation and serving use)",
    )
    model.add_argument(
        "--hidden-dropout", type=float, help="dropout on hidden states and the head (default: the checkpoint's)"
    )
    model.add_argument("--early-stopping-patience", type=_positive_int)
    model.add_argument("--seed", type=int)

    search = parser.add_argument_group("hyper-parameter search")
    search.add_argument("--optimize", action="store_true", default=None, help="Optuna search before the final fit")
    search.add_argument("--n-trials", type=_positive_int, help="trials of the search (10)")

    out = parser.add_argument_group("output")
    out.add_argument("--output", help="s3://bucket[/prefix], file:///dir or a local dir (default STORAGE_URI)")
    out.add_argument("--model-name", help="registered model name (default REGISTERED_MODEL_NAME, 'sentiment')")
    out.add_argument("--no-register", action="store_true", default=None, help="skip the MLflow Model Registry")
    out.add_argument("--tracking-uri", help="MLflow tracking URI (default MLFLOW_TRACKING_URI)")
    out.add_argument("--experiment", help="MLflow experiment (default MLFLOW_EXPERIMENT)")
    out.add_argument("--run-key", help="identity of this job for checkpoints and the study (default: derived)")
    out.add_argument("--final-dir", help="local copy of the published model (default models/final)")
    out.add_argument("--work-dir", help="local working directory (default $MLP_HOME/work)")
    loop = parser.add_argument_group("retraining loop (set by the operator's training Job)")
    loop.add_argument(
        "--include-feedback", action="store_true", default=None, help="train also on feedback-labelled predictions"
    )
    loop.add_argument("--feedback-deployment", help="namespace/name whose prediction_logs feedback is used")
    loop.add_argument("--retraining-job", help="namespace/job: tags the run so the operator finds its version")
    loop.add_argument(
        "--promote-champion",
        metavar="NAMESPACE/JOB",
        help="train nothing: the version that retraining Job registered becomes champion (the loop promoted it)",
    )
    return parser


def parse_flags(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Flags as a dict; options not given are None so that they do not override the environment."""
    return vars(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    from mlcore.config import get_settings
    from mlcore.logging import configure_logging, progress_bars_wanted

    flags = parse_flags(argv)
    configure_logging()
    if not progress_bars_wanted():
        from training_job.progress import quiet_library_bars

        quiet_library_bars()
    # Migrations and HTTP clients are chatty at INFO; the job's own progress is what matters here.
    for noisy in ("alembic", "urllib3", "botocore", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if flags.get("promote_champion"):
            return _promote_champion(flags)
        from training_job.config import build_config
        from training_job.pipeline import run

        config = build_config(get_settings(), flags)
        result = run(config, get_settings())
    except MLPipelineException as exc:
        logger.error("training failed: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


def _promote_champion(flags: dict[str, Any]) -> int:
    """--promote-champion: the MLflow alias (and is_champion) move to the promoted candidate; nothing is trained."""
    from mlcore.config import get_settings
    from mlcore.db import create_db_engine
    from training_job.challenger import promote_champion
    from training_job.tracking import Tracker

    settings = get_settings()
    tracker = Tracker(flags.get("tracking_uri") or settings.effective_tracking_uri, settings.mlflow_experiment)
    engine = create_db_engine(settings=settings)
    try:
        print(promote_champion(engine, flags["promote_champion"], tracker.set_champion))
    finally:
        engine.dispose()
    return 0
