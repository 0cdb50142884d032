"""One analysis per rollout strategy: which arms to aggregate (logs.py) and which verdict to draw from them.

The extension point for new strategies: add the measurement here, its judgement in decisions.judge, its children in
render.py and its spec in spec.py (plus the CRD).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from mlpipeline_operator.abtest import evaluate_ab
from mlpipeline_operator.analysis import AnalysisResult, evaluate
from mlpipeline_operator.logs import arm_figures, baseline_figures, paired_figures, role_figures
from mlpipeline_operator.shadow import evaluate_shadow
from mlpipeline_operator.spec import ModelDeploymentSpec
from mlpipeline_operator.state import RolloutState


def measure(
    engine: Engine, deployment_id: str, state: RolloutState, spec: ModelDeploymentSpec, since: datetime, now: datetime
) -> AnalysisResult:
    """The candidate's analysis over the window starting at `since`."""
    candidate, stable = state.canary, state.stable
    assert candidate is not None and stable is not None
    rules = spec.rollout.analysis
    confidence = 1 - rules.significance
    if candidate.strategy == "ABTest":
        arms = arm_figures(
            engine, deployment_id, {"canary": candidate.version, "stable": stable.version}, since, confidence=confidence
        )
        return evaluate_ab(
            arms["canary"], arms["stable"], spec.rollout.ab_test, rules.significance, now - candidate.started_at
        )
    if candidate.strategy == "Shadow":
        shadow = role_figures(engine, deployment_id, "shadow", candidate.version, since, confidence=confidence)
        pairs = paired_figures(engine, deployment_id, candidate.version, stable.version, since)
        return evaluate_shadow(shadow, pairs, rules, spec.rollout.shadow)
    arms = arm_figures(
        engine, deployment_id, {"canary": candidate.version, "stable": stable.version}, since, confidence=confidence
    )
    baseline = arms["stable"]
    if baseline.requests < rules.min_requests:  # the canary at 100%: compare with the stable model's newest rows
        baseline = baseline_figures(engine, deployment_id, stable.version, since, rules.min_requests, confidence)
    return evaluate(arms["canary"], baseline, rules)
