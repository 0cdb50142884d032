"""`python -m mlpipeline_operator`: run the operator with settings from the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mlcore.errors import ConfigurationError
from mlcore.logging import configure_logging
from mlpipeline_operator.app import run
from mlpipeline_operator.config import load_config


def main(argv: list[str] | None = None) -> int:
    # No flags: every setting is an MLP_OPERATOR_* variable. Parsing still answers --help (and refuses stray
    # arguments) before any attempt to reach the API server.
    argparse.ArgumentParser(
        prog="python -m mlpipeline_operator",
        description="Run the ModelDeployment operator (kopf); settings come from MLP_OPERATOR_* environment variables.",
    ).parse_args(argv)
    configure_logging()
    try:
        config = load_config()
    except ConfigurationError as exc:
        print(f"mlpipeline-operator: {exc}", file=sys.stderr)
        return 2
    # kopf logs every timer run at INFO (two per object per tick); decisions are Events and our own logs.
    logging.getLogger("kopf.objects").setLevel(config.kopf_log_level.upper())
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
