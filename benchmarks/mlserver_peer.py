"""The peer for benchmarks/serve.py: MLServer with its Hugging Face runtime serving the same model directory.

MLServer is not a project dependency: `ensure_venv()` installs it into its own virtual environment under
`$MLP_CACHE_DIR/bench/` once (reused afterwards). mlserver-huggingface pins transformers 4.x through optimum and
imports tensorflow, which that environment gets; torch it takes from this project's environment (symlinks on a
.pth path), so the peer runs the same torch build as our torch runtime instead of fetching PyPI's multi-GB CUDA
build. Settings as a user would write them: the same threads, truncation to the model card's max_length per request
(head truncation: the pipeline has no head+tail), and no adaptive batching: its Hugging Face runtime fails every
batched text-classification request (see model_settings below), so a working deployment runs without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlcore.config import get_settings
from tests.fixtures.process import free_port, log_tail

RUNTIME = "mlserver-huggingface==1.7.1"
# Its dependencies, pinned where pip would otherwise backtrack for long: it imports transformers' Conversation
# (gone in 4.42) and optimum 1.x, so transformers 4.41 and an optimum of that time. The
# runtime itself goes in with --no-deps so that optimum's onnxruntime extra (datasets, evaluate) stays out: the
# peer runs its plain transformers pipeline, as a default MLServer-HF deployment does.
DEPENDENCIES = (
    "mlserver==1.7.1",
    "transformers==4.41.2",
    "tokenizers<0.20",
    "huggingface-hub<1.0",
    "optimum==1.20.0",
    # mlserver_huggingface imports tensorflow unconditionally; 2.21 beside the project's torch 2.13 in one process
    # segfaults on the first forward pass (reproduced without MLServer), 2.19 does not. 2.19 needs protobuf 5, and
    # googleapis-common-protos >= 1.70 needs protobuf 6: both pinned back.
    "tensorflow==2.19.0",
    "protobuf>=5.27.2,<6",
    "googleapis-common-protos<1.70",
    "tf-keras",
    "pillow",
    "uvloop<0.22",  # mlserver 1.7's inference workers call asyncio.get_event_loop(), which newer uvloop refuses
)
PACKAGES = (*DEPENDENCIES, RUNTIME)
TORCH_PARTS = ("torch", "functorch", "nvidia", "cuda")  # not triton: with tensorflow loaded it segfaults


def venv_dir() -> Path:
    return get_settings().mlp_cache_dir.expanduser() / "bench" / "mlserver-hf-venv"


def ensure_venv(log: Path) -> Path:
    """The peer's `mlserver` command, installing its environment first if needed (minutes, once)."""
    venv = venv_dir()
    marker = venv / f".installed-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:12]}"
    mlserver = venv / "bin" / "mlserver"
    if marker.is_file() and mlserver.is_file():
        return mlserver
    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base_python), "-m", "venv", "--clear", str(venv)], check=True)
    # torch (and the CUDA libraries and triton it loads) from this project, by symlink; nothing else, so the
    # peer's own packages (transformers 4.x, ...) are the ones it imports.
    project = Path(sysconfig.get_paths()["purelib"])
    borrowed = venv / "torch-from-project"
    borrowed.mkdir()
    for path in project.iterdir():
        if path.name.startswith(TORCH_PARTS):
            (borrowed / path.name).symlink_to(path)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "zz_project_torch.pth").write_text(f"{borrowed}\n")
    pip = [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check"]
    with open(log, "ab") as out:
        subprocess.run([*pip, *DEPENDENCIES], check=True, stdout=out, stderr=subprocess.STDOUT)
        subprocess.run([*pip, "--no-deps", RUNTIME], check=True, stdout=out, stderr=subprocess.STDOUT)
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import mlserver_huggingface.runtime"],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "USE_TF": "0"},
        )
    marker.write_text("ok\n")
    return mlserver


class MLServerPeer:
    def __init__(self, mlserver: Path, model_dir: Path, workdir: Path, *, max_length: int, threads: int) -> None:
        self.mlserver = mlserver
        self.max_length = max_length
        self.workdir = Path(workdir)
        self.http_port = free_port()
        self.log_path = self.workdir / "mlserver.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {"http_port": self.http_port, "grpc_port": free_port(), "metrics_port": free_port()}
        # Inference in the server process (on 2 CPUs more processes only compete; its forked workers also crashed
        # while torch's triton was loaded beside tensorflow, before triton was left out).
        settings["parallel_workers"] = 0
        (self.workdir / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": "sentiment",
            "implementation": "mlserver_huggingface.HuggingFaceRuntime",
            # No adaptive batching (MLServer's default): with it, mlserver-huggingface 1.7 hands a batch of N
            # text-classification requests to the pipeline as N positional arguments and every one of them fails
            # (TypeError: TextClassificationPipeline.__call__() takes 2 positional arguments but 17 were given).
            "max_batch_size": 1,
            "parameters": {
                "extra": {
                    "task": "text-classification",
                    "pretrained_model": str(model_dir),
                    "framework": "pt",
                    "device": "cpu",
                    # No inter_op_threads: the runtime builds its pipeline twice, and torch refuses a second call.
                    "intra_op_threads": threads,
                }
            },
        }
        (self.workdir / "model-settings.json").write_text(json.dumps(model_settings))
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "USE_TF": "0",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "OMP_WAIT_POLICY": "PASSIVE",  # as our predictor sets it
            "OMP_NUM_THREADS": str(threads),
        }
        self.env.pop("PYTHONPATH", None)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 600) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(self.mlserver), "start", str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlserver exited with {self._process.returncode}:\n{log_tail(self.log_path, 40)}")
            try:
                url = f"{self.base_url}/v2/models/sentiment/ready"
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlserver not ready after {timeout:.0f}s:\n{log_tail(self.log_path, 40)}")

    def body(self, text: str) -> dict[str, Any]:
        raw = {"content_type": "raw"}
        return {
            "inputs": [
                {
                    "name": "args",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [text],
                    "parameters": {"content_type": "str"},
                },
                {"name": "truncation", "shape": [1], "datatype": "BOOL", "data": [True], "parameters": raw},
                {"name": "max_length", "shape": [1], "datatype": "INT32", "data": [self.max_length], "parameters": raw},
            ]
        }

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)  # mlserver runs its inference workers as children
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
        self._process = None
