"""Liveness and readiness follow the model: kserve's own answer 'alive' with no model loaded at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from kserve.model_repository import ModelRepository

from predictor.server import _versioned_dataplane, import_model_server, model_is_loaded
from predictor.settings import PredictorSettings

pytestmark = pytest.mark.unit


class _Server:
    def __init__(self, registry: ModelRepository) -> None:
        self.registered_models = registry


async def test_live_and_ready_only_while_the_model_is_loaded(tmp_path: Path) -> None:
    import_model_server()
    from predictor.model import SentimentModel

    model = SentimentModel(PredictorSettings(model_dir=tmp_path))
    registry = ModelRepository()
    server = _Server(registry)
    dataplane = _versioned_dataplane(registry, {}, {}, lambda: model_is_loaded(server, model))
    registry.update(model)

    assert await dataplane.live() == {"status": "model not loaded"}  # registered, but no weights yet
    assert not await dataplane.ready()

    class Loaded:
        loaded = True

    model.runtime = Loaded()  # type: ignore[assignment]
    model.ready = True
    assert await dataplane.live() == {"status": "alive"}
    assert await dataplane.ready()

    registry.unload(model.name)  # what kserve's (no longer served) unload route did
    assert await dataplane.live() == {"status": "model not loaded"}
    assert not await dataplane.ready()
