"""`mlpipeline demo --loop`: the closed loop on one machine, after the demo's first drift check.

Drifted traffic (short snippets instead of whole reviews: another text-length domain) with feedback labels ->
the drift job raises an alert -> the retraining loop (the operator's own transitions: local_loop.py) runs the
training Job as a process, on the data set plus the feedback -> the candidate is compared with the champion on
the same test split -> if offered it serves, its alerts are resolved and it becomes the MLflow champion.
One line per stage, as in the rest of the demo.

Two sets of snippets, both cut from reviews and labelled by them: those sent back as feedback come from the
training split (the retraining Job may train on them); the before/after accuracy is measured on snippets of the
test split, which no run trains on.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from mlcore.config import get_settings
from mlcore.db import create_db_engine
from mlcore.errors import MLPipelineException
from mlpipeline_cli.assets import ensure_imdb_csv
from mlpipeline_cli.client import accuracy, send_feedback, send_reviews
from mlpipeline_cli.local_loop import LocalLoop, local_spec
from mlpipeline_cli.progress import progress
from mlpipeline_cli.stages import StageRunner
from mlpipeline_operator.loop import LoopDecision
from mlpipeline_operator.state import LoopPhase

LOOP_STAGES = 5


@dataclass(frozen=True)
class Snippets:
    fed_texts: list[str]  # from the training split: sent with feedback labels
    fed_labels: list[str]
    held_texts: list[str]  # from the test split: never trained on, the before/after measure
    held_labels: list[str]


@dataclass
class LoopOutcome:
    loop: LocalLoop
    accuracy_before: float | None = None  # on the held-out snippets, the model that served
    accuracy_after: float | None = None  # on the same snippets, the promoted candidate
    drift: dict[str, Any] = field(default_factory=dict)
    failed: bool = False  # the loop ended in a failure the user must see (exit code 1)

    def summary_lines(self) -> list[str]:
        r = self.loop.retraining
        lines = [
            f"loop                 {r.outcome or r.phase}: {r.message}",
            f"loop drift           {self.drift.get('headline', 'not run')}",
        ]
        if self.accuracy_before is not None:
            after = f" -> {self.accuracy_after:.4f}" if self.accuracy_after is not None else ""
            lines.append(f"snippet accuracy     {self.accuracy_before:.4f}{after} (held-out short snippets)")
        if self.loop.resolved:
            lines.append(f"alerts resolved      {', '.join(str(i) for i in self.loop.resolved)}")
        lines.append("status.retraining    " + json.dumps(self.loop.status(), sort_keys=True))
        lines += [f"event                {kind} {reason}: {message}" for kind, reason, message in self.loop.events]
        return lines


def snippets(count: int) -> Snippets:
    from training_job.cleaning import LABEL_NAMES, prepare
    from training_job.data import load_raw
    from training_job.slices import snippet_frame
    from training_job.splitting import split_dataset, stable_subset

    splits = split_dataset(prepare(load_raw(str(ensure_imdb_csv())))[0])

    def cut(reviews: Any) -> tuple[list[str], list[str]]:
        # A few reviews per snippet wanted is enough: most reviews give one or two opinionated edge sentences.
        frame = stable_subset(snippet_frame(stable_subset(reviews, 3 * count), opinionated=True), count)
        return list(frame["text"]), [LABEL_NAMES[int(label)] for label in frame["label"]]

    fed_texts, fed_labels = cut(splits.train)
    held_texts, held_labels = cut(splits.test)
    return Snippets(fed_texts, fed_labels, held_texts, held_labels)


def _served_round(
    model_uri: str, version: str, args: argparse.Namespace, texts: Snippets, feedback: bool
) -> tuple[float, int]:
    """Serve `version`, send the held-out snippets (and, with `feedback`, the fed ones with their labels); stop
    gracefully so that every log row has landed. Returns (accuracy on the held-out snippets, feedback accepted)."""
    from mlpipeline_cli.demo import record_local_deployment, start_predictor, stop

    home = get_settings().home
    record_local_deployment(model_uri, version)
    predictor, base_url = start_predictor(model_uri, version, home, args.startup_timeout)
    try:
        sent = texts.held_texts + (texts.fed_texts if feedback else [])
        with progress(len(sent), "      snippets", unit="req") as bar:
            result = send_reviews(base_url, "sentiment", sent, concurrency=args.concurrency, progress=bar)
        if result.errors:
            raise MLPipelineException(f"{result.errors} of {len(sent)} snippets failed")
        held = len(texts.held_texts)
        accepted = 0
        if feedback:
            accepted, refused = send_feedback(base_url, result.prediction_ids[held:], texts.fed_labels)
            if refused:
                raise MLPipelineException(f"{refused} feedback labels refused")
        return accuracy(result.labels[:held], texts.held_labels), accepted
    finally:
        stop(predictor)


def _ended(decision: LoopDecision) -> str:
    return f"{decision.reason}: {decision.message}"


def run_loop(runner: StageRunner, args: argparse.Namespace, state: Any) -> LoopOutcome:
    """The loop's five stages; `state` (the demo's DemoState) moves to the candidate once it serves."""
    from mlpipeline_cli.demo import local_rollout_id, run_drift, run_process

    settings = get_settings()
    engine = create_db_engine()
    job_args = [*shlex.split(args.train_args), "--output", settings.effective_storage_uri]
    spec = local_spec(settings.registered_model_name, state.model_version, state.model_uri, job_args, True)
    local = LocalLoop.serving(engine, spec, local_rollout_id(state.model_version), state.retraining)
    outcome = LoopOutcome(local)
    try:
        texts = snippets(args.loop_requests)
        outcome.accuracy_before, _feedback = runner.run(
            "send drifted traffic (short snippets) with feedback",
            lambda: _served_round(state.model_uri, state.model_version, args, texts, feedback=True),
            done=lambda r: f"accuracy {r[0]:.4f} on {len(texts.held_texts)} held-out snippets, {r[1]} feedback labels",
        )
        outcome.drift = runner.run("run the drift job on it", lambda: run_drift(args), done=lambda r: r["headline"])
        runner.run("start retraining on the alerts", local.start, done=_ended)
        if local.retraining.phase != LoopPhase.TRAINING:
            reason = "no open alert matches spec.retraining.onAlerts"
            runner.skip("run the retraining Job", reason)
            runner.skip("serve the candidate", reason)
            return outcome
        runner.run("run the retraining Job", lambda: local.train(run_process), done=_ended)
        if local.retraining.phase != LoopPhase.ROLLING_OUT:
            outcome.failed = local.retraining.outcome != "not_offered"
            runner.skip("serve the candidate", local.retraining.message)
            return outcome

        def serve_candidate() -> LoopDecision:
            r = local.retraining
            assert r.candidate_version and r.candidate_storage_uri
            outcome.accuracy_after, _ = _served_round(r.candidate_storage_uri, r.candidate_version, args, texts, False)
            state.model_uri, state.model_version = r.candidate_storage_uri, r.candidate_version  # served next time
            decision = local.promoted(run_process, local_rollout_id(r.candidate_version))
            if local.champion_exit:
                print(
                    f"      warning: the champion Job exited with {local.champion_exit} (its output is above): "
                    "the MLflow alias champion did not move",
                    flush=True,
                )
            return decision

        runner.run("serve the candidate", serve_candidate, done=_ended)
        return outcome
    finally:
        state.retraining = local.status()
        state.save()
        engine.dispose()
