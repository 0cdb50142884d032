"""`mlpipeline train|serve|drift|operator|demo|db ...` — one entry point for every component.

Component subcommands hand their arguments to the component's own `python -m` entry point, so `mlpipeline train
--help` is the training job's help, and the same settings (environment variables of mlcore.config) apply.
"""

from __future__ import annotations

import argparse
import os
import sys

COMPONENTS = {
    "train": ("training_job", "train a model, track it in MLflow and publish a version"),
    "serve": ("predictor", "serve a published model over the Open Inference Protocol (KServe)"),
    "drift": ("drift_cronjob", "run the drift and quality checks over logged predictions"),
    "operator": ("mlpipeline_operator", "run the ModelDeployment operator against the current kube context"),
}


def _exec_component(module: str, args: list[str]) -> int:
    # Replace this process: signals, exit codes and argv parsing (KServe reads sys.argv at import) stay the component's.
    os.execv(sys.executable, [sys.executable, "-m", module, *args])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, summary) in COMPONENTS.items():
        commands.add_parser(name, help=summary, add_help=False)
    from mlpipeline_cli.demo import add_demo_parser

    add_demo_parser(commands)
    db = commands.add_parser("db", help="database maintenance (migrations)")
    db.add_argument("action", choices=["upgrade", "check"], help="upgrade: apply migrations; check: models == schema")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMPONENTS:
        return _exec_component(COMPONENTS[argv[0]][0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from mlpipeline_cli.demo import run_demo

        return run_demo(args)
    return _db_command(args.action)


def _db_command(action: str) -> int:
    from mlcore.db import create_db_engine, upgrade_to_head
    from mlcore.db.migrate import schema_differences

    engine = create_db_engine()
    if action == "upgrade":
        upgrade_to_head(engine)
        print(f"schema at head: {engine.url.render_as_string(hide_password=True)}")
        return 0
    differences = schema_differences(engine)
    for difference in differences:
        kind, subject = (difference[0][0], difference[0][1]) if isinstance(difference, list) else difference[:2]
        print(f"{kind}: {getattr(subject, 'name', subject)}")
    print("schema matches the models" if not differences else f"{len(differences)} differences")
    return 0 if not differences else 1


if __name__ == "__main__":
    sys.exit(main())
