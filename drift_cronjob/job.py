"""One run of the drift job: for each watched deployment version, window -> reference -> checks -> outputs."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from drift_cronjob import db
from drift_cronjob.alerts import reconcile, resolve_retired
from drift_cronjob.analysis import DriftResult, compare, compare_embeddings
from drift_cronjob.checks import Condition, Quality, drift_condition, quality_condition, volume_condition
from drift_cronjob.features import columns_for
from drift_cronjob.notify import deliver_pending
from drift_cronjob.pushgateway import build_registry, push
from drift_cronjob.reference import (
    ModelReference,
    load_model_card,
    load_model_reference,
    parse_reference_window,
    storage_for_reports,
)
from drift_cronjob.settings import DriftSettings
from mlcore.config import Settings
from mlcore.db import DatasetMetric, create_db_engine, session_scope
from mlcore.errors import DatabaseError, MLPipelineException, StorageError
from mlcore.model_version import ModelCard
from mlcore.storage import join_key
from mlcore.timeutil import utc_now

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    deployment_id: str
    model_version: str
    run_id: str
    status: str  # success | skipped | failed
    reason: str = ""
    rows: int = 0
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    report_uri: str | None = None
    alerts_raised: list[int] = field(default_factory=list)
    alerts_resolved: list[int] = field(default_factory=list)
    storage_failure: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "storage_failure"}


@dataclass
class JobResult:
    outcomes: list[RunOutcome]
    notified: int = 0
    notify_failed: int = 0

    @property
    def exit_code(self) -> int:
        if any(o.storage_failure for o in self.outcomes):
            return 4
        return 1 if any(o.status == "failed" for o in self.outcomes) else 0


@dataclass(frozen=True)
class JobOptions:
    deployment_id: str | None = None
    model_version: str | None = None
    reference_window: str | None = None
    now: datetime | None = None  # tests and backfills: the instant the run pretends to start at


def run_job(core: Settings, settings: DriftSettings, options: JobOptions | None = None) -> JobResult:
    """Analyse every target; DatabaseError when the database cannot be reached at all."""
    options = options or JobOptions()
    if options.reference_window:
        parse_reference_window(options.reference_window, utc_now())  # refuse a bad spec before any work
    engine = create_db_engine(settings=core)
    try:
        db.wait_for_database(engine, settings.db_retry_attempts, settings.db_retry_wait_s)
        with session_scope(engine) as session:
            targets = db.find_targets(session, options.deployment_id, options.model_version)
            if options.deployment_id is None:
                retired = resolve_retired(session)
                if retired:
                    log.info("resolved %d alerts of model versions no longer deployed", len(retired))
        if not targets:
            log.info("no active deployment in model_deployments: nothing to analyse")
        outcomes = [_run_target(engine, core, settings, target, options) for target in targets]
        sent, failed = deliver_pending(engine, settings, core.effective_storage_uri)
        return JobResult(outcomes, sent, failed)
    finally:
        engine.dispose()


def _run_target(
    engine: Engine, core: Settings, settings: DriftSettings, target: db.Target, options: JobOptions
) -> RunOutcome:
    run_id = uuid.uuid4().hex
    where = f"{target.deployment_id} (model {target.model_name} v{target.model_version})"
    start, end, behind = window_bounds(
        engine, target, (options.now or utc_now()) - timedelta(seconds=settings.window_delay_s), settings
    )
    outcome = RunOutcome(target.deployment_id, target.model_version, run_id, "running")
    if start >= end:
        outcome.status, outcome.reason = "skipped", "the window is empty: the watermark is at or after its end"
        log.info("%s: %s", where, outcome.reason)
        return outcome
    db.start_run(engine, run_id, target, start, end)
    log.info("%s: run %s over (%s, %s]", where, run_id, start.isoformat(), end.isoformat())
    try:
        _analyse(TargetRun(engine, core, settings, target, options, run_id, where, start, end, outcome, behind))
    except DatabaseError:
        raise
    except Exception as exc:  # one broken deployment must not stop the others; the run records why
        outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
        outcome.storage_failure = isinstance(exc, StorageError)
        log.error("%s: run failed: %s", where, outcome.reason, exc_info=not isinstance(exc, MLPipelineException))
        with session_scope(engine) as session:
            db.finish_run(session, run_id, "failed", reason=outcome.reason[:4000])
    return outcome


def window_bounds(
    engine: Engine, target: db.Target, latest_end: datetime, settings: DriftSettings
) -> tuple[datetime, datetime, bool]:
    """(start, end, behind): from the watermark (or lookback_hours before `latest_end`), at most lookback_hours
    long, every run. A job that paused for days catches up one bounded chunk per run instead of loading everything
    at once (and running out of memory or time again and again); `behind` says the window stops short of now."""
    lookback = timedelta(hours=settings.lookback_hours)
    with session_scope(engine) as session:
        mark = db.watermark(session, target)
    start = mark or latest_end - lookback
    end = min(latest_end, start + lookback)
    return start, end, end < latest_end


@dataclass
class TargetRun:
    """One analysis of one deployment version: what every step reads, and the outcome they fill in."""

    engine: Engine
    core: Settings
    settings: DriftSettings
    target: db.Target
    options: JobOptions
    run_id: str
    where: str
    start: datetime
    end: datetime
    outcome: RunOutcome
    behind: bool = False


@dataclass
class Observed:
    """The current window as the database has it: volume figures, the features, the labelled feedback."""

    current_count: int
    previous_counts: list[int]
    window: db.Window
    pairs: pd.DataFrame


def _analyse(run: TargetRun) -> None:
    """reference -> window -> (too little: skip) -> compare -> conditions -> alerts and records -> push."""
    # The reference first: a broken model version is a failure even when the window is too small to analyse.
    reference = _load_reference(run)
    observed = _observe(run, reference.card.label_names())
    volume = volume_condition(observed.current_count, observed.previous_counts, run.settings, run.where)
    run.outcome.rows = observed.window.rows
    skip_reason = _skip_reason(run, observed, reference)
    if skip_reason:
        _record_skip(run, observed, volume, skip_reason)
        return
    result = _compare(run, observed, reference)
    drift = drift_condition(result, run.settings, run.where)
    drift.details["reference"] = reference.uri
    metrics = reference.card.metrics or run.target.model_metrics
    performance, quality = quality_condition(observed.pairs, metrics, run.settings, run.where)
    if performance.active is None and performance.reason:
        log.info("%s: no quality verdict: %s", run.where, performance.reason)
    report_uri = _upload_reports(run.core, run.settings, run.target, run.end, result)
    _record_success(run, observed, result, quality, [drift, performance, volume], report_uri)
    registry = build_registry(run.target, result, quality, observed.window.rows, utc_now().timestamp())
    push(run.settings, run.target, registry)


def _observe(run: TargetRun, labels: list[str] | None) -> Observed:
    settings, target = run.settings, run.target
    with session_scope(run.engine) as session:
        current_count, previous_counts = db.request_counts(
            session, target, run.start, run.end, settings.volume_baseline_windows
        )
        window = db.load_window(
            session,
            target,
            run.start,
            run.end,
            descriptors=settings.text_descriptors,
            keep_texts=settings.embeddings,
            batch_rows=settings.fetch_batch_rows,
            labels=labels,
        )
        pairs = db.feedback_pairs(session, target, run.start, run.end, labels)
    return Observed(current_count, previous_counts, window, pairs)


def _skip_reason(run: TargetRun, observed: Observed, reference: ModelReference) -> str:
    """Why there is too little to compare distributions; empty when there is enough."""
    min_rows = run.settings.min_rows
    if observed.window.rows < min_rows:
        return f"{observed.window.rows} successful predictions in the window, fewer than DRIFT_MIN_ROWS={min_rows}"
    if len(reference.frame) < min_rows:
        return f"the reference ({reference.uri}) has {len(reference.frame)} rows, fewer than {min_rows}"
    return ""


def _record_skip(run: TargetRun, observed: Observed, volume: Condition, reason: str) -> None:
    """Too little to compare distributions, but the volume verdict still counts (an outage empties the window)."""
    rows = observed.window.rows
    with session_scope(run.engine) as session:
        done = reconcile(session, run.target, [volume], run.run_id, None)
        _add_metrics(session, run.run_id, run.target, None, None, observed.current_count, volume)
        # Behind the clock, a sparse chunk is passed over ("sparse" moves the watermark); at the clock, the
        # next window starts at the same watermark and gathers more rows.
        recorded = "sparse" if run.behind and rows < run.settings.min_rows else "skipped"
        db.finish_run(session, run.run_id, recorded, reason=reason, rows=rows)
    run.outcome.status, run.outcome.reason = "skipped", reason
    run.outcome.alerts_raised, run.outcome.alerts_resolved = done.raised, done.resolved
    log.info("%s: skipped: %s", run.where, reason)


def _compare(run: TargetRun, observed: Observed, reference: ModelReference) -> DriftResult:
    """Evidently over the feature columns, plus (DRIFT_EMBEDDINGS) the embedding distance of the texts."""
    settings = run.settings
    numerical, categorical = columns_for(settings.text_descriptors)
    result = compare(observed.window.frame, reference.frame, numerical, categorical, settings, title=run.where)
    if settings.embeddings:
        from drift_cronjob.embeddings import embed_both

        current_emb, reference_emb = embed_both(
            run.target,
            run.core,
            observed.window.texts,
            reference.texts,
            max_rows=settings.embeddings_max_rows,
            seed=settings.sample_seed,
            batch_size=settings.embeddings_batch_size,
            max_length=min(reference.card.max_length or 128, 256),
        )
        result.embedding, result.embedding_html = compare_embeddings(current_emb, reference_emb, settings)
    return result


def _record_success(
    run: TargetRun,
    observed: Observed,
    result: DriftResult,
    quality: Quality | None,
    conditions: list[Condition],
    report_uri: str,
) -> None:
    rows = observed.window.rows
    volume = conditions[-1]
    with session_scope(run.engine) as session:
        done = reconcile(session, run.target, conditions, run.run_id, report_uri)
        _add_metrics(session, run.run_id, run.target, result, quality, observed.current_count, volume)
        db.finish_run(session, run.run_id, "success", rows=rows, drift_share=result.drift_share, report_uri=report_uri)
    outcome = run.outcome
    outcome.status = "success"
    outcome.drift_share = result.drift_share
    outcome.drifted_columns = result.drifted_columns
    outcome.report_uri = report_uri
    outcome.alerts_raised, outcome.alerts_resolved = done.raised, done.resolved
    log.info(
        "%s: %d rows, drift share %.2f, drifted %s, alerts raised %s resolved %s",
        run.where,
        rows,
        result.drift_share,
        result.drifted_columns or "none",
        done.raised or "none",
        done.resolved or "none",
    )


def _load_reference(run: TargetRun) -> ModelReference:
    """The published reference sample of the version, or (--reference-window) earlier logs plus the model card."""
    settings, target, core = run.settings, run.target, run.core
    descriptors = settings.text_descriptors
    if not run.options.reference_window:
        return load_model_reference(
            target, core, max_rows=settings.reference_max_rows, seed=settings.sample_seed, descriptors=descriptors
        )
    span = parse_reference_window(run.options.reference_window, run.start)
    card = _card_or_empty(target, core)
    with session_scope(run.engine) as session:
        logs = db.load_window(
            session,
            target,
            span.start,
            span.end,
            descriptors=descriptors,
            keep_texts=settings.embeddings,
            batch_rows=settings.fetch_batch_rows,
            labels=card.label_names(),
        )
    frame = logs.frame
    if len(frame) > settings.reference_max_rows:
        frame = frame.sample(n=settings.reference_max_rows, random_state=settings.sample_seed)
    source = f"prediction_logs ({span.start.isoformat()}, {span.end.isoformat()}]"
    return ModelReference(frame, logs.texts, card, source)


def _card_or_empty(target: db.Target, core: Settings) -> ModelCard:
    """With a reference window the model card only feeds the quality check: its absence is not fatal."""
    try:
        return load_model_card(target, core)
    except MLPipelineException as exc:
        log.warning(
            "model card of %s v%s unavailable (%s): quality compares with model_deployments.model_metrics",
            target.deployment_id,
            target.model_version,
            exc,
        )
        return ModelCard()


def _upload_reports(
    core: Settings, settings: DriftSettings, target: db.Target, end: datetime, result: DriftResult
) -> str:
    """reports/<deployment>/<timestamp>_v<version>.html (+ -embeddings.html); the version keeps stable and canary
    runs of the same instant apart."""
    storage = storage_for_reports(core)
    stamp = f"{end.strftime('%Y%m%dT%H%M%SZ')}_v{target.model_version}"
    base = join_key(settings.reports_prefix, target.deployment_id)
    key = join_key(base, f"{stamp}.html")
    storage.put_bytes(key, result.html.encode("utf-8"), content_type="text/html; charset=utf-8")
    if result.embedding_html is not None:
        storage.put_bytes(
            join_key(base, f"{stamp}-embeddings.html"),
            result.embedding_html.encode("utf-8"),
            content_type="text/html; charset=utf-8",
        )
    return storage.uri_for(key)


def _add_metrics(
    session: Any,
    run_id: str,
    target: db.Target,
    result: DriftResult | None,
    quality: Quality | None,
    requests: int,
    volume: Condition,
) -> None:
    """dataset_metrics: one row per compared column, plus the run's share, quality and volume figures."""

    def row(column: str | None, metric: str, value: float | None, details: dict[str, Any] | None = None) -> None:
        session.add(
            DatasetMetric(
                run_id=run_id,
                source="drift",
                deployment_id=target.deployment_id,
                model_name=target.model_name,
                model_version=target.model_version,
                split="current",
                column_name=column,
                metric_name=metric,
                value=value,
                details=details,
            )
        )

    if result is not None:
        columns = list(result.columns) + ([result.embedding] if result.embedding else [])
        for col in columns:
            row(
                col.column,
                "drift_score",
                col.score,
                {
                    "method": col.method,
                    "threshold": col.threshold,
                    "drift_detected": col.drifted,
                    "kind": col.kind,
                    "current_rows": result.current_rows,
                    "reference_rows": result.reference_rows,
                },
            )
        row(
            None,
            "drift_share",
            result.drift_share,
            {"drifted_columns": result.drifted_columns, "dataset_drift": result.dataset_drift},
        )
    if quality is not None:
        details = {"feedback_rows": quality.rows, "f1_average": quality.f1_average}
        row(None, "feedback_accuracy", quality.accuracy, details)
        row(None, "feedback_f1", quality.f1, details)
    row(None, "request_count", float(requests), {k: v for k, v in volume.details.items() if k != "current"})
