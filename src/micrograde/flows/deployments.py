"""Serving the facility flows as Prefect deployments from one process (``micrograde flows serve``).

Three deployments:

* ``micrograde-watch/watch`` - every ``interval_s`` seconds (default 30): :func:`watch_flow`;
* ``micrograde-sweep/sweep`` - on the ``cron`` schedule when one is given (else on demand):
  :func:`sweep_flow`;
* ``micrograde-retrain/retrain`` - no schedule: ``prefect deployment run micrograde-retrain/retrain``
  or the watch flow (when ``retrain_after`` new labels exist) starts it.

Load limits: the served process runs at most ``limit`` flow runs at once (default 2: a watch or
sweep beside a retrain); each deployment runs one flow run at a time (a new one is cancelled while
the previous still runs, so a slow sweep never piles up watch runs); the ingest tasks of one run
share a thread pool of ``workers`` threads (default: half the CPU cores, leaving the rest to the
machine's other work) or the Dask cluster given. With ``dask_workers`` a single local Dask cluster
is started for the life of the server and shared by every run.

Prefect: a Prefect server when ``PREFECT_API_URL`` is set (never overridden). Otherwise a private
local Prefect server with every service is started for the life of ``flows serve``
(:func:`local_prefect_server`; its database lives in ``PREFECT_HOME``, the workspace's ``.prefect/``
by default): the API shared by one-off commands (:mod:`micrograde.flows.prefect_api`) runs the
services of Prefect's ephemeral mode only, without the scheduler, so schedules would never fire there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from micrograde.flows.context import RunContext
from micrograde.flows.runners import make_task_runner
from micrograde.pipeline.config import IngestConfig

if TYPE_CHECKING:
    from micrograde.flows.facility import FacilityConfig

__all__ = [
    "ServeConfig",
    "build_deployments",
    "serve_facility",
    "local_dask_cluster",
    "local_prefect_server",
    "RETRAIN_DEPLOYMENT",
]

RETRAIN_DEPLOYMENT = "micrograde-retrain/retrain"


@dataclass(frozen=True)
class ServeConfig:
    """Where and how often the facility flows run (``ctx``: the workspace, catalogue and command line)."""

    ctx: RunContext
    watch_dir: str
    cron: str | None = None
    interval_s: float = 30.0
    dask_address: str | None = None
    workers: int | None = None  # threads per run when not on Dask
    limit: int = 2  # concurrent flow runs in the served process


def _default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def build_deployments(serve: ServeConfig, facility: FacilityConfig | None = None,
                      ingest_cfg: IngestConfig | None = None) -> list:
    """The three RunnerDeployments (not yet served)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from micrograde.flows.facility import FacilityConfig, retrain_flow, sweep_flow, watch_flow

    facility = facility or FacilityConfig()
    if facility.retrain_after is not None and facility.retrain_deployment is None:
        facility = facility.model_copy(update={"retrain_deployment": RETRAIN_DEPLOYMENT})
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    runner = make_task_runner(
        serve.dask_address, None, None if serve.dask_address else serve.workers or _default_workers()
    )
    ctx = serve.ctx.model_dump(mode="json")
    common = {
        "watch_dir": serve.watch_dir,
        "ctx": ctx,
        "ingest_cfg": (ingest_cfg or IngestConfig()).model_dump(mode="json"),
        "cfg": facility.model_dump(mode="json"),
    }
    watch = watch_flow.with_options(task_runner=runner).to_deployment(
        name="watch",
        interval=serve.interval_s,
        parameters=common,
        concurrency_limit=one_at_a_time,
        tags=["micrograde", "watch"],
        description=f"Ingest and assess new micrographs in {serve.watch_dir} as they are completed.",
    )
    sweep = sweep_flow.with_options(task_runner=runner).to_deployment(
        name="sweep",
        cron=serve.cron,
        parameters=common,
        concurrency_limit=one_at_a_time,
        tags=["micrograde", "sweep"],
        description=f"Sweep {serve.watch_dir} and rebuild its session reports.",
    )
    retrain = retrain_flow.to_deployment(
        name="retrain",
        parameters={"ctx": ctx, "cfg": common["cfg"], "force": True},
        concurrency_limit=one_at_a_time,
        tags=["micrograde", "retrain"],
        description="Fine-tune a new model on the current consensus labels.",
    )
    return [watch, sweep, retrain]


@contextlib.contextmanager
def local_dask_cluster(n_workers: int | None) -> Iterator[str | None]:
    """A local Dask cluster of ``n_workers`` single-threaded processes for the block; yields its address."""
    if not n_workers:
        yield None
        return
    import logging

    from distributed import LocalCluster

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@contextlib.contextmanager
def local_prefect_server(log_path: str | Path | None = None, timeout_s: float = 120.0) -> Iterator[str]:
    """Yield the Prefect API URL: ``PREFECT_API_URL`` when set, else that of a local server started here.

    The local server (``prefect server start`` on 127.0.0.1, a free port) runs until the block
    ends; ``PREFECT_API_URL`` is set in this process's environment meanwhile, so the flow-run
    processes it starts talk to it too.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from micrograde.flows.prefect_api import free_port, wait_until_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log: IO[bytes] | int = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PREFECT_SERVER_UI_ENABLED": os.environ.get("PREFECT_SERVER_UI_ENABLED", "false")},
    )
    try:
        wait_until_healthy(proc, url, timeout_s, log_path)
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not isinstance(log, int):
            log.close()


def serve_facility(serve: ServeConfig, facility: FacilityConfig | None = None, ingest_cfg: IngestConfig | None = None,
                   dask_workers: int | None = None) -> None:
    """Serve the facility deployments until interrupted (Ctrl-C / SIGTERM).

    Call inside :func:`local_prefect_server` (before Prefect reads its settings) unless
    ``PREFECT_API_URL`` points at a server.
    """
    from prefect import serve as prefect_serve

    with local_dask_cluster(dask_workers) as address:
        if address is not None:
            serve = dataclasses.replace(serve, dask_address=address)
        deployments = build_deployments(serve, facility, ingest_cfg)
        with _api_url_in_settings():
            prefect_serve(*deployments, limit=serve.limit, print_starting_message=True)


@contextlib.contextmanager
def _api_url_in_settings() -> Iterator[None]:
    """Make Prefect's settings agree with ``PREFECT_API_URL`` even if Prefect was imported before it was set."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = os.environ.get("PREFECT_API_URL")
    if url and PREFECT_API_URL.value() != url:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    else:
        yield
