"""Process-level settings for Prefect, applied by the command line before Prefect is imported.

Prefect runs fully offline against a local API server whose SQLite database lives under
PREFECT_HOME (see :mod:`micrograde.flows.prefect_api`: one server shared by successive commands).
We keep PREFECT_HOME inside the workspace unless the user set one, switch off analytics and
telemetry, and give a local server 90 s to start on slow machines. A user's own settings
(``PREFECT_API_URL`` for a Prefect server, for instance) always win.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["configure_prefect", "configure_process", "begin_prefect", "early_prefect", "prefect_session",
           "PREFECT_DEFAULTS", "PROCESS_DEFAULTS"]

PREFECT_DEFAULTS: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


#: Environment defaults of a micrograde command's process, read by libraries when they load.
#: Arrow allocates through the C library's malloc: its own pool (mimalloc) keeps freed pages, and an
#: assessment, which reads and writes Parquet once per chunk (the prediction store,
#: predictions.parquet), grew by about 20 KB per micrograph while holding nothing per micrograph.
PROCESS_DEFAULTS: dict[str, str] = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


def configure_process() -> None:
    """Set :data:`PROCESS_DEFAULTS` (never overriding what the user set). Called by the command line
    before any command's work, so before pyarrow loads (the setting has no effect after)."""
    for key, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(key, value)


def configure_prefect(workspace: str | Path | None = None) -> None:
    """Set Prefect's environment defaults (never overriding what the user already set)."""
    configure_process()
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if workspace is not None and "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = str(Path(workspace).expanduser().resolve() / ".prefect")
    if "PREFECT_HOME" in os.environ:  # Prefect cannot create its database in a missing folder
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


def begin_prefect(workspace: str | Path) -> bool:
    """:func:`configure_prefect`, then start the shared local API in the background when none runs
    (:func:`~micrograde.flows.prefect_api.start_shared_api`); True when it started one."""
    from micrograde.flows.prefect_api import start_shared_api

    configure_prefect(workspace)
    return start_shared_api(os.environ["PREFECT_HOME"])


@contextlib.contextmanager
def early_prefect(workspace: str | Path) -> Iterator[None]:
    """:func:`begin_prefect` for a block that imports a command's modules and checks its inputs, so the
    local API starts meanwhile; when the block stops the command (a bad input: an exception or an exit),
    a server it started is stopped again, and nothing is left running."""
    started = begin_prefect(workspace)
    try:
        yield
    except BaseException:
        if started:
            from micrograde.flows.prefect_api import stop_shared_api

            stop_shared_api(os.environ["PREFECT_HOME"])
        raise


@contextlib.contextmanager
def prefect_session(workspace: str | Path) -> Iterator[str | None]:
    """Settings for ``workspace`` and a Prefect API for the block (call before Prefect is imported).

    Yields the API URL: the user's ``PREFECT_API_URL``, else the local server shared by successive
    commands (started if none runs), or None with ``MICROGRADE_PREFECT_API=private``.
    """
    from micrograde.flows.prefect_api import prefect_api

    configure_prefect(workspace)
    with prefect_api(os.environ["PREFECT_HOME"]) as url:
        yield url
