"""Mirroring end to end with two real predictor processes and PostgreSQL: the stable predictor forwards copies
(predictor/mirror.py), the shadow logs them with role shadow and the stable request id, and the operator's SQL join
pairs them. Then the shadow goes down: clients still get every stable answer, and the failed copies are counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mlcore.db import create_db_engine
from mlpipeline_operator.logs import paired_figures
from tests.fixtures.models import publish_tiny_model
from tests.fixtures.predictor_server import DEPLOYMENT_ID, fresh_database, start_predictor, wait_for
from tests.fixtures.services import PostgresServer


def metric(base_url: str, line_start: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_stable_predictor_mirrors_to_the_shadow(postgres_server: PostgresServer, tmp_path: Path) -> None:
    if not postgres_server.running:
        postgres_server.start()
    model_dir = publish_tiny_model(tmp_path.as_uri() + "/store", "sentiment", "3").removeprefix("file://")
    db_url = fresh_database(postgres_server)
    since = datetime.now(UTC) - timedelta(seconds=5)
    shadow = start_predictor(
        tmp_path / "shadow", ["--model_dir", model_dir], db_url, {"DEPLOYMENT_ROLE": "shadow", "MODEL_VERSION": "2"}
    )
    stable = None
    engine = create_db_engine(db_url)
    try:
        stable = start_predictor(
            tmp_path / "stable",
            ["--model_dir", model_dir],
            db_url,
            {
                "DEPLOYMENT_ROLE": "stable",
                "MODEL_VERSION": "1",
                "PREDICTOR_MIRROR_URL": f"{shadow.base_url}/v1/models/sentiment:predict",
                "PREDICTOR_MIRROR_PERCENT": "100",
            },
        )
        with httpx.Client(base_url=stable.base_url, timeout=30) as client:
            for i in range(12):  # no request ids: the mirroring predictor gives each request one
                texts = [f"a fine film {i}", f"a dull film {i}"]
                response = client.post("/v1/models/sentiment:predict", json={"instances": texts})
                assert response.status_code == 200

        def logged(role: str) -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text("SELECT count(*) FROM prediction_logs WHERE role = :r"), {"r": role}
                    ).scalar_one()
                )

        wait_for(lambda: logged("shadow") == 24 and logged("stable") == 24, "both predictors' rows")
        with engine.connect() as conn:
            unpaired = conn.execute(
                sa.text(
                    "SELECT count(*) FROM prediction_logs s WHERE s.role = 'shadow' AND NOT EXISTS "
                    "(SELECT 1 FROM prediction_logs p WHERE p.role = 'stable' AND p.request_id = s.mirrored_request_id)"
                )
            ).scalar_one()
        assert unpaired == 0
        # The same model on both sides: every pair agrees, with the same confidence.
        pairs = paired_figures(engine, DEPLOYMENT_ID, "2", "1", since)
        assert (pairs.pairs, pairs.agree) == (24, 24) and pairs.mean_abs_confidence_delta == pytest.approx(0, abs=1e-6)

        shadow.stop()
        failed_before = metric(stable.base_url, 'mlp_mirror_requests_total{outcome="failed"}')
        with httpx.Client(base_url=stable.base_url, timeout=30) as client:
            for i in range(5):
                assert client.post("/v1/models/sentiment:predict", json={"instances": [f"x {i}"]}).status_code == 200
        wait_for(
            lambda: metric(stable.base_url, 'mlp_mirror_requests_total{outcome="failed"}') >= failed_before + 5,
            "failed copies counted",
        )
        assert metric(stable.base_url, 'mlp_mirror_requests_total{outcome="sent"}') == 12
    finally:
        if stable is not None:
            stable.stop()
        shadow.stop()
        engine.dispose()
