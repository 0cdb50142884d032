"""`python -m predictor --model_name sentiment --storage_uri s3://...|file://...` or `--model_dir /mnt/models`.

Flags override PREDICTOR_* environment variables; kserve's own flags (--http_port, --grpc_port) are accepted too.
Exit status 2 for a bad configuration or a model that fails verification or loading.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Before torch (and its OpenMP runtime) loads: idle OpenMP workers sleep instead of spinning. A server has other
# threads (event loop, log writer) and usually neighbours on its CPUs; spinning workers steal their time. On the
# shared 2-core test machine this made single-text inference 4x faster (benchmarks/serve.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mlcore.errors import ConfigurationError, ModelError
from mlcore.logging import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m predictor", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", "--model-name", dest="model_name")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--storage_uri", "--storage-uri", dest="storage_uri")
    source.add_argument("--model_dir", "--model-dir", dest="model_dir")
    parser.add_argument("--http_port", "--http-port", dest="http_port", type=int)
    parser.add_argument("--grpc_port", "--grpc-port", dest="grpc_port", type=int)
    parser.add_argument("--enable_grpc", dest="enable_grpc", choices=["true", "false"])
    parser.add_argument("--max_batch_size", "--max-batch-size", dest="max_batch_size", type=int)
    parser.add_argument("--max_wait_ms", "--max-wait-ms", dest="max_wait_ms", type=float)
    parser.add_argument("--max_pass_rows", "--max-pass-rows", dest="max_pass_rows", type=int)
    parser.add_argument("--max_request_items", "--max-request-items", dest="max_request_items", type=int)
    parser.add_argument("--max_length", "--max-length", dest="max_length", type=int)
    parser.add_argument("--torch_threads", "--torch-threads", dest="torch_threads", type=int)
    parser.add_argument("--runtime", choices=["auto", "onnx", "onnx-int8", "torch"])
    parser.add_argument("--optimize", choices=["none", "int8"])
    logging_group = parser.add_mutually_exclusive_group()
    logging_group.add_argument("--log-predictions", dest="log_predictions", action="store_true", default=None)
    logging_group.add_argument("--no-log-predictions", dest="log_predictions", action="store_false")
    parser.add_argument("--migrate-db", dest="migrate_db", action="store_true", default=None)
    parser.add_argument("--spill_dir", "--spill-dir", dest="spill_dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    from predictor.settings import load_predictor_settings

    try:
        settings = load_predictor_settings(**vars(args))
        from predictor.server import serve

        serve(settings)
    except (ConfigurationError, ModelError) as exc:
        logging.getLogger("predictor").error("predictor cannot start: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
