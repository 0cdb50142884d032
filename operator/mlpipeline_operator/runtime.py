"""What every handler shares: settings, the Kubernetes and database clients, and one lock per ModelDeployment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from mlpipeline_operator.kube import Kube
from mlpipeline_operator.render import Defaults


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    engine: Engine
    defaults: Defaults
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Timers and event handlers of one object run concurrently in kopf: serialise them per object."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        with self._guard:
            self._locks.pop(key, None)


def as_handler(fn: Callable[..., Any]) -> Any:
    """A handler for kopf's registration decorators. kopf's handler protocols name every keyword; ours take the few
    they use (and **_), the same at run time: this is where that typing gap is bridged, for every handler module."""
    return fn
