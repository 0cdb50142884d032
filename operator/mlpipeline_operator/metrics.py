"""Prometheus metrics of the operator (served by prometheus_client on MLP_OPERATOR_METRICS_PORT)."""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, start_http_server

RECONCILES = Counter(
    "mlpipeline_operator_reconciles_total", "Handler runs by handler and result.", ["handler", "result"]
)
ROLLOUTS = Counter(
    "mlpipeline_operator_rollouts_total",
    "Finished rollouts by outcome (deployed, promoted, rolled_back, cancelled, superseded).",
    ["outcome"],
)
DECISIONS = Counter("mlpipeline_operator_decisions_total", "Decisions taken, by reason.", ["reason"])
CANARY_WEIGHT = Gauge(
    "mlpipeline_operator_canary_weight_percent", "Current canary traffic percent.", ["namespace", "deployment"]
)
ANALYSIS_SECONDS = Counter(
    "mlpipeline_operator_analysis_seconds_total", "Time spent reading logs and judging canaries."
)

_started: set[int] = set()
_lock = threading.Lock()


def serve(port: int, addr: str = "0.0.0.0") -> bool:
    """Start the /metrics HTTP server once per port per process; False when it already runs."""
    with _lock:
        if port in _started:
            return False
        start_http_server(port, addr=addr)
        _started.add(port)
        return True
