"""Feedback-labelled predictions as extra training rows (`--include-feedback`, the operator's retraining loop).

prediction_logs rows of one deployment that carry a feedback label become (text, label) training rows:
successful predictions only, one row per input_hash (the newest feedback wins), cleaned like the data set, and
never a text of the test or validation split, so the champion/challenger comparison stays on unseen texts.
"""

from __future__ import annotations

import logging

import pandas as pd
from sqlalchemy import select

from mlcore.config import Settings
from mlcore.db import PredictionLog, create_db_engine, session_scope
from training_job.cleaning import clean_text, normalize_labels

logger = logging.getLogger(__name__)


def feedback_rows(settings: Settings, deployment_id: str) -> pd.DataFrame:
    """The deployment's feedback as `text`, `label` (0/1), one row per input_hash, newest feedback first."""
    engine = create_db_engine(settings=settings)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(PredictionLog.input_hash, PredictionLog.input_text, PredictionLog.feedback_label)
                .where(
                    PredictionLog.deployment_id == deployment_id,
                    PredictionLog.feedback_label.is_not(None),
                    PredictionLog.status == "ok",
                )
                .order_by(PredictionLog.feedback_at.desc(), PredictionLog.predicted_at.desc())
            ).all()
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["input_hash", "text", "label"]).drop_duplicates("input_hash", keep="first")
    if frame.empty:
        return pd.DataFrame({"text": pd.Series(dtype=str), "label": pd.Series(dtype="int64")})
    frame = pd.DataFrame({"text": frame["text"].map(clean_text), "label": normalize_labels(frame["label"])})
    frame = frame[frame["label"].notna() & (frame["text"].str.len() > 0)]
    return frame.drop_duplicates("text", keep="first").astype({"label": "int64"}).reset_index(drop=True)


def with_feedback(train: pd.DataFrame, held_out: list[pd.DataFrame], feedback: pd.DataFrame) -> pd.DataFrame:
    """`train` plus the feedback rows whose text is in no held-out split nor already in `train`."""
    excluded = set(train["text"])
    for frame in held_out:
        excluded |= set(frame["text"])
    extra = feedback[~feedback["text"].isin(excluded)]
    logger.info(
        "feedback: %d labelled predictions, %d added to training (%d held out or already there)",
        len(feedback),
        len(extra),
        len(feedback) - len(extra),
    )
    return pd.concat([train, extra[["text", "label"]]], ignore_index=True)
