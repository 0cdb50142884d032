"""Progress of a counted task (requests sent, files uploaded): a tqdm bar on a terminal, plain lines elsewhere.

Off a terminal (CI, a pod, `make run > log`) a bar would write carriage returns into the log; instead one line every
`every_seconds` (and at the end): done/total, rate, ETA. Safe to update from several threads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from mlcore.logging import progress_bars_wanted


def _duration(seconds: float) -> str:
    minutes, secs = divmod(max(0, round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


class LineProgress:
    """The non-terminal reporter: `update(n)` counts; a line is printed at most every `every_seconds`."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        every_seconds: float = 10.0,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.every_seconds = every_seconds
        self.out = out if out is not None else sys.stdout
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_line = self._started
        self.n = 0

    def line(self) -> str:
        elapsed = self._clock() - self._started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        eta = _duration((self.total - self.n) / rate) if rate > 0 else "-"
        percent = 100.0 * self.n / self.total if self.total else 100.0
        return (
            f"{self.desc}: {self.n}/{self.total} {self.unit} ({percent:.0f}%), {rate:.1f} {self.unit}/s, "
            f"elapsed {_duration(elapsed)}, eta {eta}"
        )

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            now = self._clock()
            if now - self._last_line >= self.every_seconds and self.n < self.total:
                self._last_line = now
                print(self.line(), file=self.out, flush=True)

    def close(self) -> None:
        with self._lock:
            print(self.line(), file=self.out, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it", *, bars: bool | None = None, **line_options: Any) -> Any:
    """A context manager with update(n): tqdm on a terminal, LineProgress otherwise (`bars` forces the choice)."""
    if progress_bars_wanted() if bars is None else bars:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return LineProgress(total, desc, unit, **line_options)
