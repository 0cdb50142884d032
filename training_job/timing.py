"""Where a run's time goes: wall and CPU seconds per stage (data, tokenise, train, evaluate, publish, ...).

CPU seconds are the process's (all threads): on a shared machine wall time grows with the neighbours' load while
CPU seconds mostly do not, so the two side by side tell a slow job from a busy machine.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("training_job.timing")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StageClock:
    """Stages are timed with `with clock.stage(name)` or `clock.start(name)` ... `clock.stop()` (a stage started
    while another runs ends that one); a stage entered twice adds up."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self._open: tuple[str, float, float] | None = None

    def start(self, name: str) -> None:
        self.stop()
        self._open = (name, time.monotonic(), cpu_seconds())

    def stop(self) -> None:
        if self._open is None:
            return
        name, wall, cpu = self._open
        self._open = None
        spent = {"wall_s": round(time.monotonic() - wall, 2), "cpu_s": round(cpu_seconds() - cpu, 2)}
        previous = self.stages.get(name, {"wall_s": 0.0, "cpu_s": 0.0})
        self.stages[name] = {k: round(previous[k] + v, 2) for k, v in spent.items()}
        logger.info(
            "stage %s: %.1f s wall, %.1f CPU-s", name, spent["wall_s"], spent["cpu_s"], extra={"stage": name, **spent}
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop()

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: timing.<stage>.wall_s / .cpu_s."""
        return {f"timing.{name}.{key}": value for name, row in self.stages.items() for key, value in row.items()}
