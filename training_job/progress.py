"""Training progress a Kubernetes Job's log can carry: one structured line every N steps or S seconds.

On a terminal the Trainer's tqdm bars stay (`mlcore.logging.progress_bars_wanted`); elsewhere (a pod, CI, a
redirected file) the bars are switched off and this callback logs step, epoch, loss, learning rate, samples/s and
ETA instead. With JSON logs (LOG_FORMAT=json, the default without a TTY) the figures are top-level keys.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger("training_job.progress")

DEFAULT_EVERY_SECONDS = 30.0
# Libraries' own bars (artifact transfers, hub downloads, dataset maps), switched off with the Trainer's.
_LIBRARY_BAR_SWITCHES = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}


def quiet_library_bars() -> None:
    """Off a terminal: no tqdm bars from MLflow uploads/downloads, the hub or datasets (explicit settings win)."""
    for name, value in _LIBRARY_BAR_SWITCHES.items():
        os.environ.setdefault(name, value)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" and the like


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ProgressLogCallback(TrainerCallback):
    """A log line every `every_steps` optimizer steps (when the Trainer logs its loss) or `every_seconds`."""

    def __init__(
        self,
        every_steps: int,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        self.every_steps = max(1, every_steps)
        self.every_seconds = every_seconds
        self._clock = clock
        self._log = log
        self._started: float | None = None
        self._first_step = 0
        self._last_emit_step = -1
        self._last_emit_time = 0.0
        self._loss: float | None = None
        self._lr: float | None = None

    def _samples_per_step(self, args: TrainingArguments) -> int:
        return int(args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size))

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._started = self._clock()
        self._first_step = state.global_step  # a resumed run counts its speed from where it resumed
        self._last_emit_time = self._started
        self._log.info(
            "training: %d steps of %d samples (from step %d)",
            state.max_steps,
            self._samples_per_step(args),
            state.global_step,
            extra={"event": "train_begin", "max_steps": state.max_steps, "step": state.global_step},
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if "loss" in logs:
            self._loss = float(logs["loss"])
            self._lr = float(logs["learning_rate"]) if "learning_rate" in logs else self._lr
            if state.global_step - self._last_emit_step >= self.every_steps or state.global_step == state.max_steps:
                self._emit(args, state)
        elif "train_runtime" in logs:
            self._log.info(
                "training done: %d steps in %s, %.1f samples/s",
                state.global_step,
                format_duration(float(logs["train_runtime"])),
                float(logs.get("train_samples_per_second", 0.0)),
                extra={
                    "event": "train_end",
                    "step": state.global_step,
                    "train_runtime_s": round(float(logs["train_runtime"]), 1),
                    "samples_per_s": round(float(logs.get("train_samples_per_second", 0.0)), 2),
                },
            )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        # The time-based line: long steps (big batches, slow CPUs) still show progress between loss logs.
        if self._clock() - self._last_emit_time >= self.every_seconds:
            self._emit(args, state)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        figures = {k: round(float(v), 4) for k, v in (metrics or {}).items() if isinstance(v, int | float)}
        wanted = [k for k in ("eval_accuracy", "eval_loss") if k in figures]
        shown = ", ".join(f"{k.removeprefix('eval_')} {figures[k]}" for k in wanted)
        self._log.info(
            "validation at step %d (epoch %.2f): %s",
            state.global_step,
            state.epoch or 0.0,
            shown,
            extra={"event": "evaluate", "step": state.global_step, "epoch": round(state.epoch or 0.0, 3), **figures},
        )

    def figures(self, args: TrainingArguments, state: TrainerState) -> dict[str, Any]:
        """What one progress line reports (also for tests)."""
        now = self._clock()
        elapsed = now - (self._started if self._started is not None else now)
        done = state.global_step - self._first_step
        steps_per_s = done / elapsed if elapsed > 0 else 0.0
        remaining = max(0, state.max_steps - state.global_step)
        eta = remaining / steps_per_s if steps_per_s > 0 else math.nan
        return {
            "event": "train_progress",
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(state.epoch or 0.0, 3),
            "loss": None if self._loss is None else round(self._loss, 4),
            "learning_rate": self._lr,
            "samples_per_s": round(steps_per_s * self._samples_per_step(args), 2),
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if math.isnan(eta) else round(eta, 1),
        }

    def _emit(self, args: TrainingArguments, state: TrainerState) -> None:
        figures = self.figures(args, state)
        loss = "-" if figures["loss"] is None else f"{figures['loss']:.4f}"
        lr = "-" if figures["learning_rate"] is None else f"{figures['learning_rate']:.2e}"
        eta = "-" if figures["eta_s"] is None else format_duration(figures["eta_s"])
        self._log.info(
            "step %d/%d epoch %.2f loss %s lr %s %.1f samples/s eta %s",
            figures["step"],
            figures["max_steps"],
            figures["epoch"],
            loss,
            lr,
            figures["samples_per_s"],
            eta,
            extra=figures,
        )
        self._last_emit_step = state.global_step
        self._last_emit_time = self._clock()
