"""Run the operator: kopf settings (finalizer, annotation storage, peering, liveness), the registry, the runtime."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from typing import Any

import kopf
from sqlalchemy.engine import Engine

from mlcore.db import create_db_engine, upgrade_to_head
from mlpipeline_operator import FINALIZER, handlers, loop_handlers, metrics
from mlpipeline_operator.config import OperatorConfig
from mlpipeline_operator.kube import Kube, api_client, load_configuration
from mlpipeline_operator.render import Defaults
from mlpipeline_operator.runtime import Runtime

log = logging.getLogger(__name__)
STORAGE_PREFIX = "kopf.mlpipeline.io"


def build_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    # Handler progress and the last handled spec live in annotations: the status belongs to the rollout state.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.execution.max_workers = config.max_workers
    settings.posting.level = logging.WARNING  # our decisions are posted as Events explicitly; no log echo
    settings.peering.name = config.peering_name
    settings.peering.priority = config.priority if config.priority is not None else random.randint(1, 1_000_000)
    settings.peering.standalone = config.standalone
    # Exact namespaces: no cluster-wide scans of namespaces and CRDs, so a namespaced Role is all it needs
    # (scanning would list namespaces cluster-wide and retry for minutes on 403). Cluster-wide: CRDs are watched
    # so that a CRD installed after the operator is picked up.
    settings.scanning.disabled = bool(config.namespaces) and not any(
        ch in ns for ns in config.namespaces for ch in "*?[!"
    )
    # kopf holds the finalizer until the object's timers have exited and re-checks a timer that was mid-tick at
    # the deletion only after this many seconds (60 by default): a deletion then waited a minute. A tick is one
    # short API/DB round, so a second is plenty.
    settings.background.cancellation_polling = 1.0
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    return settings


def build_runtime(config: OperatorConfig, engine: Engine | None = None) -> Runtime:
    configuration = load_configuration(config.kubeconfig)
    return Runtime(
        config=config,
        kube=Kube(api_client(configuration, pool_size=config.max_workers)),
        engine=engine or create_db_engine(),
        defaults=Defaults(
            predictor_image=config.predictor_image,
            database_secret=config.database_secret,
            storage_secret=config.storage_secret,
        ),
    )


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    def login_with_operator_config(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """The same credentials as the handlers' client: in-cluster, else the configured kubeconfig."""
        configuration = load_configuration(config.kubeconfig)
        token = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
            "authorization"
        )
        scheme, _, value = (token or "").partition(" ")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            scheme=scheme or None if value else None,
            token=(value or scheme) or None,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )

    def start_metrics_and_migrations(**_: Any) -> None:
        if config.metrics_port:
            metrics.serve(config.metrics_port, config.metrics_address)
        if config.migrate_database:
            upgrade_to_head(create_db_engine())

    kopf.on.login(registry=registry)(login_with_operator_config)
    kopf.on.startup(registry=registry)(start_metrics_and_migrations)
    handlers.register(registry, config.tick_seconds)
    loop_handlers.register(registry, config)
    return registry


async def run(
    config: OperatorConfig,
    *,
    engine: Engine | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """The operator until `stop_flag` is set (or the process is signalled)."""
    runtime = build_runtime(config, engine)
    try:
        await kopf.operator(
            registry=build_registry(config),
            settings=build_settings(config),
            memo=kopf.Memo(runtime=runtime),
            standalone=config.standalone,
            # A named peering is mandatory in kopf (streams pause until its CRD exists): only when peering is on.
            peering_name=None if config.standalone else config.peering_name,
            priority=None,
            liveness_endpoint=config.liveness_endpoint,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        runtime.kube.api.close()
