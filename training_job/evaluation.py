"""Test-split evaluation with scikit-learn: metrics, confusion matrix (PNG), classification report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training_job.cleaning import LABEL_NAMES


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    predicted = probabilities.argmax(axis=1)
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
    }
    # ROC-AUC is undefined on a single-class sample (tiny test runs): leave it NaN rather than fail.
    metrics["roc_auc"] = (
        float(roc_auc_score(labels, probabilities[:, 1])) if len(np.unique(labels)) == 2 else float("nan")
    )
    return metrics


def predict_probabilities(trainer: Any, dataset: Any, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities in the dataset's row order.

    Not `trainer.predict`: with length grouping on, the Trainer's evaluation sampler shuffles rows, so its output
    order is not the dataset's. Here rows run sorted by length (little padding) and go back to their places.
    """
    import torch
    from transformers import DataCollatorWithPadding

    model = trainer.model
    model.eval()
    collator = DataCollatorWithPadding(trainer.processing_class)
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names]
    size = batch_size or trainer.args.per_device_eval_batch_size
    order = np.argsort(np.asarray(dataset["length"]), kind="stable")
    logits = np.zeros((len(dataset), model.config.num_labels), dtype=np.float64)
    device = next(model.parameters()).device
    with torch.inference_mode(), trainer.accelerator.autocast():
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = dataset.select(rows.tolist()).select_columns(columns)
            features = collator(
                [dict(zip(columns, values, strict=True)) for values in zip(*batch[:].values(), strict=True)]
            )
            output = model(**{k: v.to(device) for k, v in features.items()})
            logits[rows] = output.logits.float().cpu().numpy()
    return softmax(logits)


SLICE_METRICS = ("accuracy", "f1", "roc_auc")


def evaluate_slices(
    trainer: Any, tokenizer: Any, slices: list[Any], max_length: int, head_fraction: float
) -> dict[str, dict[str, Any]]:
    """Accuracy, F1 and ROC-AUC of each slice (training_job.slices.EvalSlice), tokenised as the test split is."""
    from training_job.tokenization import to_dataset

    report: dict[str, dict[str, Any]] = {}
    for item in slices:
        dataset = to_dataset(tokenizer, item.frame, max_length, head_fraction)
        metrics = classification_metrics(item.frame["label"].to_numpy(), predict_probabilities(trainer, dataset))
        words = item.frame["text"].str.split().str.len()
        report[item.name] = {
            "description": item.description,
            "rows": len(item.frame),
            "mean_words": round(float(words.mean()), 1),
            # NaN (ROC-AUC of a one-class set) is not JSON: null in the card.
            **{k: (None if metrics[k] != metrics[k] else metrics[k]) for k in SLICE_METRICS},
        }
    return report


def write_confusion_matrix(labels: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    figure, axes = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(matrix, display_labels=list(LABEL_NAMES)).plot(ax=axes, colorbar=False)
    axes.set_title("test split")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_reports(labels: np.ndarray, probabilities: np.ndarray, directory: Path) -> dict[str, Any]:
    """confusion_matrix.png, classification_report.txt/.json in `directory`; returns the JSON report."""
    directory.mkdir(parents=True, exist_ok=True)
    predicted = probabilities.argmax(axis=1)
    write_confusion_matrix(labels, predicted, directory / "confusion_matrix.png")
    kwargs: dict[str, Any] = {"labels": [0, 1], "target_names": list(LABEL_NAMES), "zero_division": 0}
    (directory / "classification_report.txt").write_text(classification_report(labels, predicted, **kwargs))
    report = classification_report(labels, predicted, output_dict=True, **kwargs)
    report["confusion_matrix"] = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    (directory / "classification_report.json").write_text(json.dumps(report, indent=2))
    return dict(report)
