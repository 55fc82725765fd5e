"""The run context: what every flow and task needs to know about the run it belongs to.

One typed, frozen, picklable object instead of loose ``root``, ``db_url``, ``command`` and
``progress`` parameters. It travels to Dask workers (another process, possibly another machine)
and into Prefect deployments as JSON; each process opens the workspace it names once
(:meth:`RunContext.workspace`, cached per process) and shares the engine and its connection pool
between its tasks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from micrograde.pipeline.config import FrozenModel

if TYPE_CHECKING:
    from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["RunContext", "cached_workspace"]


@functools.lru_cache(maxsize=8)
def cached_workspace(root: str, db_url: str | None) -> Workspace:
    """The open workspace for (folder, catalogue URL), opened once per process."""
    from micrograde.pipeline.catalogue.workspace import Workspace

    return Workspace.open(root, db_url)


class RunContext(FrozenModel):
    """Where a run works and who asked for it (handed to every flow and task)."""

    root: str = Field(description="workspace folder (made absolute, so that workers elsewhere find it)")
    db_url: str | None = Field(None, description="SQLAlchemy URL of the catalogue (default: SQLite in the workspace)")
    command: str | None = Field(None, description="the command line that started the run (stamped on its outputs)")
    progress: bool = Field(False, description="show progress bars (the command line does; tasks on workers do not)")

    @field_validator("root", mode="before")
    @classmethod
    def _absolute(cls, value: str | Path) -> str:
        return str(Path(value).expanduser().resolve())

    def workspace(self) -> Workspace:
        """The open workspace (one per process, shared by the tasks running there)."""
        return cached_workspace(self.root, self.db_url)

    def quiet(self) -> RunContext:
        """The same run without progress bars (for work running beside others)."""
        return self.model_copy(update={"progress": False})
