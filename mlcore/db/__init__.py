"""Database: SQLAlchemy 2 models, engine with pooling, sessions, migrations and identifier safety."""

from mlcore.db.engine import create_db_engine, session_scope
from mlcore.db.migrate import upgrade_to_head
from mlcore.db.models import (
    Base,
    DatasetMetric,
    DriftRun,
    ExperimentRun,
    ModelDeployment,
    MonitoringAlert,
    PredictionLog,
)
from mlcore.db.prediction_row import PredictionRow

__all__ = [
    "Base",
    "DatasetMetric",
    "DriftRun",
    "ExperimentRun",
    "ModelDeployment",
    "MonitoringAlert",
    "PredictionLog",
    "PredictionRow",
    "create_db_engine",
    "session_scope",
    "upgrade_to_head",
]
