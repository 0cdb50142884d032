"""One line per stage, with timing; a failing stage names itself and why, and stops the rest."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlcore.errors import MLPipelineException

T = TypeVar("T")


class StageFailed(MLPipelineException):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"stage '{stage}' failed: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass
class StageRunner:
    total: int
    out: Any = field(default_factory=lambda: sys.stdout)
    timings: dict[str, float] = field(default_factory=dict)
    _index: int = 0

    def run(self, name: str, action: Callable[[], T], *, done: Callable[[T], str] | None = None) -> T:
        self._index += 1
        prefix = f"[{self._index}/{self.total}] {name}"
        print(f"{prefix} ...", file=self.out, flush=True)
        started = time.perf_counter()
        try:
            result = action()
        except StageFailed:
            raise
        except KeyboardInterrupt:
            raise StageFailed(name, "interrupted") from None
        except Exception as exc:  # the stage boundary: report any cause, stop the rest
            raise StageFailed(name, f"{type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter() - started
        self.timings[name] = elapsed
        detail = f" — {done(result)}" if done else ""
        print(f"{prefix} ok ({elapsed:.1f}s){detail}", file=self.out, flush=True)
        return result

    def skip(self, name: str, reason: str) -> None:
        """A stage that has nothing to do this time (an earlier stage's result says so): one line, no timing."""
        self._index += 1
        print(f"[{self._index}/{self.total}] {name} skipped — {reason}", file=self.out, flush=True)
