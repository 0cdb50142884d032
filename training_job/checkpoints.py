"""Trainer checkpoints mirrored to the output storage, so a re-run of the same job resumes where it stopped.

Each checkpoint-N directory is published like a model version (files, then its manifest), below
`checkpoints/<model-name>/<run-key>/checkpoint-N/`: a checkpoint whose upload died half-way has no manifest and is
never restored. The remote copy follows the local one (the Trainer keeps the best and the last).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from mlcore.errors import ManifestError, StorageError
from mlcore.storage import MANIFEST_NAME, Storage, fetch_version, join_key, publish_directory

logger = logging.getLogger(__name__)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class CheckpointStore:
    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix

    def _names(self) -> dict[str, bool]:
        """checkpoint dir name -> whether its manifest is there."""
        depth = len(self.prefix.split("/"))
        found: dict[str, bool] = {}
        for key in self.storage.list(self.prefix):
            parts = key.split("/")
            if len(parts) > depth + 1 and _CHECKPOINT.match(parts[depth]):
                name = parts[depth]
                found[name] = found.get(name, False) or parts[depth + 1 :] == [MANIFEST_NAME]
        return found

    def published(self) -> list[str]:
        """Complete checkpoints in storage, oldest first."""
        names = [name for name, complete in self._names().items() if complete]
        return sorted(names, key=lambda n: int(n.split("-")[1]))

    def restore(self, local_dir: Path) -> Path | None:
        """Download every complete checkpoint (sha256-checked) into local_dir; the newest one's path or None."""
        latest: Path | None = None
        for name in self.published():
            target = local_dir / name
            try:
                fetch_version(self.storage, join_key(self.prefix, name), target)
            except (ManifestError, StorageError) as exc:
                logger.warning("skipping checkpoint %s: %s", name, exc)
                continue
            _relocate_state(target)
            latest = target
        if latest is not None:
            logger.info("restored checkpoints from %s; resuming from %s", self.storage.uri_for(self.prefix), latest)
        return latest

    def push(self, checkpoint_dir: Path) -> None:
        """Publish one local checkpoint, then drop remote checkpoints the Trainer no longer keeps locally."""
        prefix = join_key(self.prefix, checkpoint_dir.name)
        publish_directory(self.storage, prefix, checkpoint_dir, overwrite=True)
        kept = {p.name for p in checkpoint_dir.parent.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)}
        for name in self._names():
            if name not in kept:
                self._delete(join_key(self.prefix, name))

    def _delete(self, prefix: str) -> None:
        keys = self.storage.list(prefix)
        manifest = join_key(prefix, MANIFEST_NAME)
        # Manifest first: a reader never sees a manifest whose files are going away.
        for key in sorted(keys, key=lambda k: k != manifest):
            self.storage.delete(key)

    def clear(self) -> None:
        """Remove this run's checkpoints (after the model is published they are no longer needed)."""
        for name in self._names():
            self._delete(join_key(self.prefix, name))


class CheckpointSyncCallback(TrainerCallback):
    """After each save, mirror the new checkpoint to storage (best effort would lose resumability: errors raise)."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        checkpoint = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            self.store.push(checkpoint)
            logger.info("checkpoint %s saved to %s", checkpoint.name, self.store.storage.uri_for(self.store.prefix))


def _relocate_state(checkpoint: Path) -> None:
    """trainer_state.json names the best checkpoint by absolute path: point it at this machine's copy."""
    state_path = checkpoint / "trainer_state.json"
    if not state_path.is_file():
        return
    state = json.loads(state_path.read_text())
    best = state.get("best_model_checkpoint")
    if best:
        state["best_model_checkpoint"] = str(checkpoint.parent / Path(best).name)
        state_path.write_text(json.dumps(state, indent=2))
