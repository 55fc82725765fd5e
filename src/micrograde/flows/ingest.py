"""The Prefect ingest flow: discover files, fan out one task per file, record rejects.

Tasks are thin: each calls :func:`micrograde.pipeline.catalogue.ingest.ingest_file`. Errors by kind:

* a bad micrograph is not an error: ingest records it as a reject (with its reason);
* an I/O error (``OSError``) is retried while it may pass (:func:`is_transient`); one that
  outlives its retries, or cannot pass (a full disk), becomes an ``io-error`` reject and the run
  goes on; the file gets no ``files`` row, so the next run tries it again;
* anything else (a bug, a database that went away) fails that file's task loudly: the run goes on
  with the other files, records the error in ``ingest_runs.errors``, and then fails with
  :class:`IngestFailed`, which carries the summary. Nothing is recorded against the file, so the
  watcher delivers it again and the next sweep or ingest retries it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from prefect import flow, task
from prefect.futures import as_completed
from tqdm.auto import tqdm

from micrograde.flows.context import RunContext
from micrograde.flows.runners import make_task_runner, release_task_result
from micrograde.pipeline.catalogue.ctf import CtfImport
from micrograde.pipeline.catalogue.ingest import (
    FileOutcome,
    IngestSummary,
    finish_run,
    ingest_file,
    is_transient,
    record_reject,
    start_run,
)
from micrograde.pipeline.catalogue.workspace import new_run_id
from micrograde.pipeline.config import IngestConfig
from micrograde.pipeline.io.ctf import read_ctf
from micrograde.pipeline.io.discover import discover

__all__ = ["ingest_flow", "ingest_file_task", "import_ctf_task", "IngestFailed", "MAX_IN_FLIGHT"]

#: Files submitted to the task runner at once; more are submitted as these finish.
MAX_IN_FLIGHT = 128


class IngestFailed(RuntimeError):
    """Some files failed for another reason than their content or I/O; ``summary`` has the rest."""

    def __init__(self, summary: IngestSummary) -> None:
        shown = "; ".join(f"{p}: {e}" for p, e in list(summary.failed.items())[:5])
        more = f" (and {len(summary.failed) - 5} more)" if len(summary.failed) > 5 else ""
        super().__init__(f"{len(summary.failed)} file(s) failed and will be tried again by the next run: "
                         f"{shown}{more}")
        self.summary = summary


def _retry_only_io(_task, _task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we only classify it
        return is_transient(exc)
    return False


@task(
    name="ingest-file",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=_retry_only_io,
    task_run_name="ingest {path}",
    log_prints=False,
)
def ingest_file_task(ctx: RunContext, path: str, cfg: IngestConfig, run_id: str) -> FileOutcome:
    return ingest_file(ctx.workspace(), path, cfg, run_id)


@task(name="import-ctf", log_prints=False)
def import_ctf_task(ctx: RunContext, star: str | None, cs: str | None, ids: list[int] | None, *,
                    strict: bool = True) -> CtfImport:
    """Store the CTF estimates of ``star`` / ``cs`` with the micrographs ``ids`` they name (all when None).

    ``strict``: a file without CTF columns is an error; otherwise it is left out (assess's selection STAR
    may be a motion-correction STAR)."""
    from micrograde.pipeline.catalogue.ctf import import_ctf

    return import_ctf(ctx.workspace(), read_ctf(star, cs, strict=strict), ids)


def _flow_run_name() -> str:
    return f"ingest-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@flow(name="micrograde-ingest", flow_run_name=_flow_run_name, validate_parameters=False, task_runner=make_task_runner())
def ingest_flow(sources: Sequence[str], ctx: RunContext, cfg: IngestConfig | None = None) -> IngestSummary:
    """Ingest every micrograph file under ``sources`` (one task per file) into ``ctx``'s workspace.

    The assess and facility flows call it as a subflow (:func:`micrograde.flows.runners.subflow`).
    """
    cfg = cfg or IngestConfig()
    ws = ctx.workspace()
    read_ctf(cfg.star, cfg.cs)  # a bad CTF file fails before any work
    paths = [str(p) for p in discover(list(sources), recursive=cfg.recursive)]
    run_id = new_run_id("ingest-")
    summary = IngestSummary(run_id=run_id)
    start_run(ws, cfg, run_id, ctx.command)
    worker_ctx = ctx.quiet()
    todo = iter(paths)
    pending: dict = {}  # at most MAX_IN_FLIGHT submitted tasks: memory does not grow with the number of files

    def fill() -> None:
        while len(pending) < MAX_IN_FLIGHT and (path := next(todo, None)) is not None:
            pending[ingest_file_task.submit(worker_ctx, path, cfg, run_id)] = path

    fill()
    with tqdm(total=len(paths), desc="ingest", unit="file", disable=not ctx.progress) as bar:
        while pending:
            future = next(as_completed(list(pending)))
            path = pending.pop(future)
            try:
                outcome = future.result()
                summary.add(outcome)
                release_task_result(outcome, future.task_run_id)  # memory does not grow with the files
                del outcome
            except OSError as exc:  # an I/O error that outlived its retries, or cannot pass
                detail = f"{type(exc).__name__}: {exc}"
                record_reject(ws, path, "io-error", detail, run_id)
                summary.add(FileOutcome(path, rejects=(("io-error", detail, path),)))
            except Exception as exc:  # noqa: BLE001 - a bug or a database failure: reported below, retried later
                summary.fail(path, exc)
            del future
            fill()
            bar.update(1)
            bar.set_postfix(ok=summary.usable, rejected=summary.rejected)
    errors = [{"path": p, "error": e} for p, e in summary.failed.items()]
    finish_run(ws, run_id, summary.ingested, summary.skipped, summary.rejected,
               status="failed" if errors else "done", errors=errors)
    if summary.failed:
        raise IngestFailed(summary)
    if cfg.star or cfg.cs:
        imported = import_ctf_task(ctx, cfg.star, cfg.cs, list(summary.micrograph_ids))
        summary.ctf_matched, summary.ctf_unmatched = imported.matched, list(imported.unmatched)
    return summary
