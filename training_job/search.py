"""Optuna hyper-parameter search: median pruning on validation accuracy, the study kept in the database.

Each trial is logged by hand as a nested MLflow run (Optuna's MLflowCallback is deprecated). The study lives in
an RDB storage, so a search that was interrupted continues with the trials it still owes: PostgreSQL in its own
schema `optuna` (Optuna keeps its own alembic_version table, which must not meet the core's), SQLite in a file of
its own next to the embedded database. OPTUNA_STORAGE overrides both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import text
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from mlcore.config import Settings
from mlcore.db import create_db_engine

logger = logging.getLogger(__name__)

OPTUNA_SCHEMA = "optuna"


def storage_url(settings: Settings) -> str:
    if settings.optuna_storage is not None and settings.optuna_storage.get_secret_value():
        return settings.optuna_storage.get_secret_value()
    if settings.uses_postgres:
        engine = create_db_engine(settings=settings)
        try:
            with engine.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        finally:
            engine.dispose()
        url = settings.sqlalchemy_url.update_query_dict({"options": f"-csearch_path={OPTUNA_SCHEMA}"})
        return url.render_as_string(hide_password=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.home / 'optuna.db'}"


def suggest(trial: optuna.Trial, *, max_epochs: int) -> dict[str, Any]:
    """The search space: learning rate, batch size, weight decay, warm-up and epochs."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-4, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
        "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        "warmup_fraction": trial.suggest_float("warmup_fraction", 0.0, 0.2),
        "epochs": trial.suggest_int("epochs", 1, max_epochs),
    }


class PruningCallback(TrainerCallback):
    """Report validation accuracy after each epoch; stop the trial when the median rule says so."""

    def __init__(self, trial: optuna.Trial, metric: str = "eval_accuracy") -> None:
        self.trial = trial
        self.metric = metric

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not metrics or self.metric not in metrics:
            return
        step = round(state.epoch or 0)
        self.trial.report(float(metrics[self.metric]), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric}={metrics[self.metric]:.4f} below the median at epoch {step}")


def _fail_stale_trials(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed job never finish: mark them failed so they are run again."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        logger.info("trial %d was interrupted; it will be replaced", trial.number)


def run_search(
    *,
    study_name: str,
    storage: str,
    n_trials: int,
    seed: int,
    objective: Callable[[optuna.Trial], float],
) -> dict[str, Any]:
    """Run the trials the study still owes (of n_trials) and return the best trial's parameters."""
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    _fail_stale_trials(study)
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = max(0, n_trials - finished)
    logger.info("study %s: %d trials finished, %d to run", study_name, finished, remaining)
    if remaining:
        study.optimize(objective, n_trials=remaining, gc_after_trial=True)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        from mlcore.errors import ModelError

        raise ModelError(f"study {study_name}: no trial completed (all pruned or failed)")
    best = study.best_trial
    logger.info("best trial %d: accuracy %.4f with %s", best.number, best.value, best.params)
    return dict(best.params) | {"best_value": best.value, "best_trial": best.number}
