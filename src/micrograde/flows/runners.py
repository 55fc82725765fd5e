"""Task runners: a thread pool on this machine (default) or a Dask cluster (scale-out).

Dask workers are separate processes (possibly on other machines): every task of the ingest and
assess flows takes picklable arguments only (the :class:`~micrograde.flows.context.RunContext`,
pydantic configs) and opens the workspace itself, once per worker process. With a Dask cluster on
several machines the workspace folder and the catalogue database must be reachable from every
worker (a shared file system, PostgreSQL via ``--db``).
"""

from __future__ import annotations

import logging
import os

import click

__all__ = ["make_task_runner", "dask_options", "task_runner_from_options", "check_runner_options", "default_threads",
           "subflow", "release_task_result"]


def default_threads() -> int:
    return os.cpu_count() or 1


def make_task_runner(dask_address: str | None = None, dask_workers: int | None = None, threads: int | None = None):
    """The Prefect task runner for a flow.

    * ``dask_address`` (``tcp://host:8786``): an existing Dask scheduler;
    * ``dask_workers`` N: a local Dask cluster of N single-threaded worker processes, started with
      the flow and stopped after it;
    * otherwise a thread pool of ``threads`` workers (default: one per CPU core).
    """
    _check_runner(dask_address, dask_workers, threads)
    if dask_address or dask_workers:
        from prefect_dask import DaskTaskRunner

        # the scheduler and nannies log every connection at INFO; keep the command line readable
        # (worker processes inherit the environment, so they read the same dask setting)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.core"):
            logging.getLogger(name).setLevel(logging.ERROR)
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        assert dask_workers is not None
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": int(dask_workers),
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "silence_logs": logging.ERROR,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=threads or default_threads())


def _check_runner(dask_address: str | None, dask_workers: int | None, threads: int | None) -> None:
    if dask_address and dask_workers:
        raise ValueError("give either a Dask scheduler address or a local cluster size, not both")
    if dask_workers is not None and dask_workers < 1:
        raise ValueError("a local Dask cluster needs at least one worker")
    if threads is not None and threads < 1:
        raise ValueError("a thread pool needs at least one thread")


def check_runner_options(dask_address: str | None, dask_workers: int | None, threads: int | None = None) -> None:
    """The usage error (exit 2) of :func:`task_runner_from_options`, checked before any work (imports nothing)."""
    try:
        _check_runner(dask_address, dask_workers, threads)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def subflow(flow):
    """``flow`` set to run on the calling flow's task runner, for calling it as a subflow.

    A flow that needs another's work calls that flow (assess calls ingest; the facility flows call
    ingest, assess and train); the subflow fans its tasks out over the same threads or Dask
    cluster as its caller. Outside a flow run, ``flow`` is returned unchanged.
    """
    from prefect.context import FlowRunContext

    run = FlowRunContext.get()
    if run is None or run.task_runner is None:
        return flow
    return flow.with_options(task_runner=run.task_runner)


def _check_address(_ctx, _param, value: str | None) -> str | None:
    if value is not None and "://" not in value and ":" not in value:
        raise click.BadParameter("expected a scheduler address such as tcp://10.0.0.5:8786")
    return value


def dask_options(func):
    """``--dask ADDRESS`` and ``--dask-workers N`` (mutually exclusive), for any command that runs a flow."""
    options = [
        click.option(
            "--dask",
            "dask_address",
            default=None,
            metavar="ADDRESS",
            envvar="MICROGRADE_DASK",
            callback=_check_address,
            help="Fan tasks out over this Dask scheduler (e.g. tcp://10.0.0.5:8786). Env: MICROGRADE_DASK.",
        ),
        click.option(
            "--dask-workers",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Start a local Dask cluster of N worker processes for this run.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def task_runner_from_options(dask_address: str | None, dask_workers: int | None, threads: int | None = None):
    """``make_task_runner`` for command-line values, with a usage error (exit 2) when both Dask options are given."""
    try:
        return make_task_runner(dask_address, dask_workers, threads)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def release_task_result(result, task_run_id) -> None:
    """Forget Prefect's in-flow link from a consumed task ``result`` (and its first-level parts) to its state.

    For dependency tracking, Prefect keeps a map from the ``id`` of every task result of a flow run
    to a copy of its state (``FlowRunContext.run_results``) until the flow run ends: about 6 KB per
    task. A flow that fans out one task per file and passes no result on to another task (ingest)
    would hold one per file for the whole run; calling this once a result is consumed keeps the map
    to the tasks in flight. Entries are matched by task run id, so nothing else is dropped.
    """
    from prefect.context import FlowRunContext
    from prefect.utilities.collections import visit_collection

    run = FlowRunContext.get()
    links = getattr(run, "run_results", None) if run is not None else None
    if not links:
        return

    def forget(obj):
        entry = links.get(id(obj))
        if entry is not None and getattr(entry[0].state_details, "task_run_id", None) == task_run_id:
            del links[id(obj)]
        return obj

    visit_collection(expr=result, visit_fn=forget, max_depth=1)
