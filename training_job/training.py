"""Fine-tuning with the transformers Trainer: precision per device, a faster-learning head, callbacks.

Choices that buy accuracy per CPU second (measured in benchmarks/train.py): bf16 autocast where the CPU has
bf16 instructions (about 2x on AVX512-BF16/AMX), dynamic padding with length-grouped batches, a head (pooler +
classifier) that learns `head_lr_multiplier` times faster than the encoder, linear warm-up then linear decay,
torch threads = the CPUs this process may use.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from mlcore.config import get_settings
from mlcore.errors import ModelError
from mlcore.logging import progress_bars_wanted
from training_job.cleaning import LABEL_NAMES
from training_job.progress import ProgressLogCallback, quiet_library_bars

logger = logging.getLogger(__name__)

ID2LABEL = dict(enumerate(LABEL_NAMES))
LABEL2ID = {name: i for i, name in ID2LABEL.items()}
_HEAD_MARKERS = ("classifier", "pooler", "pre_classifier", "score")
_NO_DECAY_MARKERS = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


@dataclass(frozen=True)
class HyperParams:
    learning_rate: float
    batch_size: int
    epochs: float
    max_length: int
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    head_lr_multiplier: float = 1.0
    attention_dropout: float | None = 0.0
    hidden_dropout: float | None = None  # None: the checkpoint's own (0.1 for BERT-style models)
    train_max_length: int | None = None  # token limit of the training rows; None: max_length (what serving uses)
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    seed: int = 42
    early_stopping_patience: int = 2
    gradient_accumulation_steps: int = 1
    eval_batch_size: int = 64

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainOutcome:
    train_runtime_s: float
    train_samples_per_second: float
    global_step: int
    best_metric: float | None
    resumed_from: str | None


def cpu_budget() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 quota (Kubernetes limits)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_args() -> dict[str, Any]:
    """TrainingArguments for the device: bf16/fp16 on GPU, bf16 autocast on CPUs that have it (MLP_PRECISION)."""
    choice = get_settings().mlp_precision
    if torch.cuda.is_available():
        if choice == "fp32":
            return {}
        bf16 = choice == "bf16" or (choice == "auto" and torch.cuda.is_bf16_supported())
        return {"bf16": True} if bf16 else {"fp16": True}
    torch.set_num_threads(cpu_budget())
    if choice == "bf16" or (choice == "auto" and _cpu_has_bf16()):
        return {"use_cpu": True, "bf16": True}
    return {"use_cpu": True}


# Names architectures give their attention-dropout probability.
_ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")
# ... and the dropout on hidden states and before the classification head (BERT's classifier_dropout defaults to
# its hidden dropout; DistilBERT calls them dropout and seq_classif_dropout).
_HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "classifier_dropout", "dropout", "seq_classif_dropout")


def load_model(
    model_path: str, attention_dropout: float | None = None, hidden_dropout: float | None = None
) -> PreTrainedModel:
    """A two-class classifier (id2label negative/positive) from a hub name or a local directory.

    attention_dropout=0 lets scaled-dot-product attention take its fused kernel while training: with dropout on the
    attention matrix it falls back to the plain path, several times slower on CPU (measured: 0.19 s per layer call
    vs a few ms at batch 16 x 256 tokens).
    """
    from transformers import AutoConfig

    if not progress_bars_wanted():
        quiet_library_bars()
    try:
        config = AutoConfig.from_pretrained(model_path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)
        for keys, probability in ((_ATTENTION_DROPOUT_KEYS, attention_dropout), (_HIDDEN_DROPOUT_KEYS, hidden_dropout)):
            if probability is None:
                continue
            for key in keys:
                if hasattr(config, key):
                    setattr(config, key, probability)
        model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(model_path, config=config)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a sequence-classification model from {model_path!r}: {exc}") from exc
    return model


def freeze_embeddings(model: PreTrainedModel) -> int:
    """Stop training the embedding tables (half of MiniLM's weights): a cheaper step, little accuracy lost."""
    embeddings = getattr(model.base_model, "embeddings", None)
    if embeddings is None:
        return 0
    frozen = 0
    for param in embeddings.parameters():
        param.requires_grad = False
        frozen += param.numel()
    return frozen


def freeze_bottom_layers(model: PreTrainedModel, count: int) -> int:
    """Stop training the first `count` encoder layers: with the embeddings frozen too, the backward pass ends above
    them, so each step skips their gradient work (about a third of a layer's step cost each)."""
    base = model.base_model
    encoder = getattr(base, "encoder", None) or getattr(base, "transformer", None)  # BERT / DistilBERT
    layers = getattr(encoder, "layer", None)
    if count <= 0 or layers is None:
        return 0
    frozen = 0
    for layer in list(layers)[:count]:
        for param in layer.parameters():
            param.requires_grad = False
            frozen += param.numel()
    return frozen


def build_optimizer(model: torch.nn.Module, params: HyperParams) -> torch.optim.Optimizer:
    """AdamW with four groups: encoder/head x decay/no-decay; the head learns faster (it starts from scratch)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head = any(marker in name for marker in _HEAD_MARKERS)
        decay = not any(marker in name for marker in _NO_DECAY_MARKERS)
        groups.setdefault((head, decay), []).append(param)
    param_groups = [
        {
            "params": tensors,
            "lr": params.learning_rate * (params.head_lr_multiplier if head else 1.0),
            "weight_decay": params.weight_decay if decay else 0.0,
        }
        for (head, decay), tensors in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=params.learning_rate)


def compute_eval_metrics(prediction: Any) -> dict[str, float]:
    from training_job.evaluation import classification_metrics, softmax

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return classification_metrics(np.asarray(prediction.label_ids), softmax(np.asarray(logits)))


class MetricsLogCallback(TrainerCallback):
    """Per-step training logs and per-epoch evaluations forwarded to a logging function (MLflow)."""

    def __init__(self, log: Callable[[dict[str, float], int], None], prefix: str = "") -> None:
        self._log = log
        self._prefix = prefix

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        numeric = {
            f"{self._prefix}{k}": float(v)
            for k, v in (logs or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        if numeric:
            self._log(numeric, state.global_step)


def _version_specific(params: HyperParams) -> dict[str, Any]:
    """Arguments whose names moved inside transformers 5.x: length grouping and the warm-up fraction."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    options: dict[str, Any] = {}
    if "train_sampling_strategy" in names:
        options["train_sampling_strategy"] = "group_by_length"
    else:
        options["group_by_length"] = True
    if "warmup_ratio" in names:
        options["warmup_ratio"] = params.warmup_fraction
    else:
        options["warmup_steps"] = params.warmup_fraction  # a float below 1 is a fraction of all steps
    return options


def logging_steps(steps_per_epoch: int) -> int:
    """Ten loss logs (and progress lines off a terminal) per epoch."""
    return max(1, steps_per_epoch // 10)


def training_arguments(
    params: HyperParams, output_dir: Path, *, steps_per_epoch: int, bars: bool | None = None
) -> TrainingArguments:
    """`bars`: tqdm progress bars (default: only on a terminal, see mlcore.logging.progress_bars_wanted)."""
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.eval_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=logging_steps(steps_per_epoch),
        disable_tqdm=not (progress_bars_wanted() if bars is None else bars),
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        save_total_limit=2,
        length_column_name="length",
        report_to="none",
        seed=params.seed,
        data_seed=params.seed,
        dataloader_num_workers=0,
        optim="adamw_torch",
        **_version_specific(params),
        **precision_args(),
    )


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Any,
    eval_dataset: Any,
    params: HyperParams,
    output_dir: Path,
    callbacks: list[TrainerCallback],
) -> Trainer:
    if params.freeze_embeddings:
        logger.info("froze %d embedding weights", freeze_embeddings(model))
    if params.freeze_layers:
        logger.info(
            "froze %d weights of the first %d layers",
            freeze_bottom_layers(model, params.freeze_layers),
            params.freeze_layers,
        )
    steps_per_epoch = max(1, math.ceil(len(train_dataset) / (params.batch_size * params.gradient_accumulation_steps)))
    args = training_arguments(params, output_dir, steps_per_epoch=steps_per_epoch)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_eval_metrics,
        optimizers=(build_optimizer(model, params), None),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=params.early_stopping_patience), *callbacks],
    )
    if args.disable_tqdm:
        # Off a terminal: no bars and no raw log dicts on stdout, one structured progress line instead.
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(ProgressLogCallback(every_steps=args.logging_steps))
    return trainer


def train(trainer: Trainer, resume_from: Path | None = None) -> TrainOutcome:
    """Train (resuming from a checkpoint dir when given); the best epoch's weights are loaded at the end."""
    if resume_from is not None:
        logger.info("resuming from checkpoint %s", resume_from)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    metrics = result.metrics
    return TrainOutcome(
        train_runtime_s=float(metrics.get("train_runtime", 0.0)),
        train_samples_per_second=float(metrics.get("train_samples_per_second", 0.0)),
        global_step=int(result.global_step),
        best_metric=trainer.state.best_metric,
        resumed_from=str(resume_from) if resume_from else None,
    )


def inference_trainer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64) -> Trainer:
    """A Trainer used only for predict(): same device and precision handling as training."""
    import tempfile

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="mlp-infer-"),
        per_device_eval_batch_size=batch_size,
        report_to="none",
        disable_tqdm=True,
        **precision_args(),
    )
    return Trainer(model=model, args=args, processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer))
