"""Prometheus metrics, in the default registry that the ModelServer's /metrics already exposes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter(
    "mlp_predictions_total",
    "Predictions served, by model version, deployment role and predicted label.",
    ["model_version", "role", "label"],
)
PREDICTION_ERRORS = Counter(
    "mlp_prediction_errors_total",
    "Requests that failed on the server side (not client errors).",
    ["model_version", "role"],
)
INFERENCE_LATENCY = Histogram(
    "mlp_inference_latency_seconds",
    "Duration of one model forward pass (tokenize + forward) for a micro-batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUEST_LATENCY = Histogram(
    "mlp_request_latency_seconds",
    "Time from a request reaching the model to its predictions being ready (queueing included).",
    ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "mlp_batch_size",
    "Texts per model forward pass (micro-batches grow with concurrency).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CONFIDENCE = Histogram(
    "mlp_prediction_confidence",
    "Probability of the winning label.",
    ["model_version", "role"],
    buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
LOG_QUEUE_DEPTH = Gauge("mlp_prediction_log_queue_depth", "Prediction log rows waiting in memory for the writer.")
LOG_SPILL_PENDING = Gauge("mlp_prediction_log_spill_pending_rows", "Rows in the local spill file awaiting replay.")
LOG_ROWS_WRITTEN = Counter("mlp_prediction_log_rows_written_total", "Prediction log rows inserted into the database.")
LOG_ROWS_RETRIED = Counter("mlp_prediction_log_rows_retried_total", "Row insert attempts that failed and were retried.")
LOG_ROWS_SPILLED = Counter(
    "mlp_prediction_log_rows_spilled_total", "Rows written to the local spill file (queue full or shutdown)."
)
LOG_ROWS_FAILED = Counter(
    "mlp_prediction_log_rows_failed_total", "Rows lost: the queue was full and the spill file could not be written."
)
REQUESTS_SHED = Counter(
    "mlp_requests_shed_total", "Requests answered 503 because the micro-batcher's queue was full (max_queued_requests)."
)
LOG_SPILL_BYTES = Gauge("mlp_prediction_log_spill_bytes", "Bytes in the local spill files awaiting replay.")
