"""`python -m mlpipeline_operator --help` answers without a cluster (the image's smoke run relies on it)."""

from __future__ import annotations

import pytest

from mlpipeline_operator.__main__ import main

pytestmark = pytest.mark.unit


def test_help_prints_usage_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "MLP_OPERATOR_" in capsys.readouterr().out


def test_stray_argument_is_refused_before_any_connection(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--kubeconfig", "/nowhere"])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
