"""Watching a folder that a microscope writes into: which files are complete and new.

A file is handed over (to ingest) exactly once, when it is *complete*:

* its size and modification time were the same over ``stable_polls`` consecutive polls, and
  unchanged for at least ``min_age_s`` seconds (a writer that pauses between chunks is waited for);
* and the format probe (:func:`micrograde.pipeline.io.readers.probe_complete`: the MRC header's
  dimensions and mode agree with the file size) says so.

A file that stays stable but never passes the probe (a transfer that died half-way) is handed over
anyway once it has not changed for ``give_up_s`` seconds, with ``reason="gave-up"``: the ingest
then quarantines it as ``truncated`` and the facility sees it in the report instead of it hiding
in the watch folder forever. Should that file later change (the transfer resumed), it is watched
again and handed over once more when complete (its content, hence its digest, is new).

Hand-over is two-phase so that a watcher killed mid-ingest (kill -9) loses nothing: :meth:`poll`
returns the files that became ready and remembers them as *delivered*; the caller ingests them and
then calls :meth:`commit`. Delivered but uncommitted files are delivered again by the next poll
(at least once; ingest is idempotent on content, so in effect exactly once). What was committed
(path, size, mtime), what was delivered and the observations of files still being written are kept
in a small JSON state file, written atomically, so a restarted watcher neither re-reports a file
nor forgets how long another has been stable. The clock and the probe are injectable for tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import Field

from micrograde.pipeline.config import FrozenModel
from micrograde.pipeline.io.atomic import atomic_write_text
from micrograde.pipeline.io.discover import is_candidate, is_candidate_folder
from micrograde.pipeline.io.locks import file_lock

__all__ = [
    "WatchConfig",
    "FileStat",
    "Handover",
    "CompletionTracker",
    "list_candidates",
    "settled_files",
    "state_lock",
]

STATE_VERSION = 1


class WatchConfig(FrozenModel):
    """When the watcher calls a file complete."""

    stable_polls: int = Field(
        2, ge=1, description="consecutive polls that saw the same size and mtime (1: first sight)"
    )
    min_age_s: float = Field(2.0, ge=0, description="seconds a file must be unchanged")
    give_up_s: float = Field(600.0, gt=0, description="hand over a stable file that never passes the probe after this")
    recursive: bool = True


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Handover:
    """A file handed over to ingest. ``reason``: ``complete`` or ``gave-up`` (never passed the probe)."""

    path: str
    size: int
    mtime_ns: int
    reason: str


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable: int  # consecutive polls with this size and mtime
    since: float  # clock time the current size/mtime was first seen


def list_candidates(folder: str | Path, cfg: WatchConfig | None = None) -> dict[str, FileStat]:
    """The micrograph files under ``folder`` with their size and mtime (hidden, ``*.part`` and ``masks/`` skipped)."""
    cfg = cfg or WatchConfig()
    root = Path(folder)
    out: dict[str, FileStat] = {}
    walker: Iterable = os.walk(root) if cfg.recursive else [(str(root), [], os.listdir(root))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if is_candidate_folder(d))  # as ingest's discovery
        for name in filenames:
            if not is_candidate(name):  # the same rule as ingest's folder discovery
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:  # removed between listing and stat
                continue
            if not os.path.isfile(path):
                continue
            out[path] = FileStat(st.st_size, st.st_mtime_ns)
    return out


def _default_probe(path: Path) -> bool:
    from micrograde.pipeline.io.readers import probe_complete

    return probe_complete(path)


class CompletionTracker:
    """Reports each complete file once; see the module docstring for the rules."""

    def __init__(
        self,
        cfg: WatchConfig | None = None,
        *,
        state_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        probe: Callable[[Path], bool] | None = None,
    ) -> None:
        self.cfg = cfg or WatchConfig()
        self.state_path = Path(state_path) if state_path is not None else None
        self.clock = clock
        self.probe = probe or _default_probe
        self.handed: dict[str, FileStat] = {}  # committed
        self.delivered: dict[str, Handover] = {}  # returned by poll, not yet committed
        self.pending: dict[str, _Pending] = {}
        if self.state_path is not None and self.state_path.is_file():
            self._load()

    # -- state -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self.state_path is None:
            return
        data = json.loads(self.state_path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.state_path}: unknown watch state version {data.get('version')!r}")
        self.handed = {p: FileStat(v["size"], v["mtime_ns"]) for p, v in data.get("handed", {}).items()}
        self.delivered = {p: Handover(**v) for p, v in data.get("delivered", {}).items()}
        self.pending = {p: _Pending(**v) for p, v in data.get("pending", {}).items()}

    def save(self) -> None:
        if self.state_path is None:
            return
        data = {
            "version": STATE_VERSION,
            "handed": {p: asdict(s) for p, s in sorted(self.handed.items())},
            "delivered": {p: asdict(h) for p, h in sorted(self.delivered.items())},
            "pending": {p: asdict(v) for p, v in sorted(self.pending.items())},
        }
        atomic_write_text(self.state_path, json.dumps(data, indent=1) + "\n")

    # -- polling ---------------------------------------------------------------------------
    def poll(self, listing: Mapping[str, FileStat]) -> list[Handover]:
        """Take one listing (path -> size/mtime); return the files to ingest now.

        That is the files that became complete at this poll plus those delivered before but never
        committed (a watcher that died mid-ingest), as long as they are unchanged.
        """
        now = self.clock()
        for gone in set(self.pending) - set(listing):
            del self.pending[gone]
        for gone in set(self.delivered) - set(listing):
            del self.delivered[gone]
        ready: list[Handover] = []
        for path, stat in sorted(listing.items()):
            if self.handed.get(path) == stat:
                continue  # handed over already, unchanged since
            earlier = self.delivered.get(path)
            if earlier is not None:
                if (earlier.size, earlier.mtime_ns) == (stat.size, stat.mtime_ns):
                    ready.append(earlier)
                    continue
                del self.delivered[path]  # changed after delivery: watch it again
            seen = self.pending.get(path)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.size, stat.mtime_ns):
                seen = self.pending[path] = _Pending(stat.size, stat.mtime_ns, 1, now)
            else:
                seen.stable += 1
            if seen.stable < self.cfg.stable_polls or now - seen.since < self.cfg.min_age_s:
                continue
            reason = self._verdict(path, stat, now - seen.since)
            if reason is None:
                continue
            handover = Handover(path, stat.size, stat.mtime_ns, reason)
            ready.append(handover)
            self.delivered[path] = handover
            del self.pending[path]
        self.save()
        return ready

    def commit(self, handovers: Iterable[Handover]) -> None:
        """Record that these files were ingested: they are never delivered again (unless they change)."""
        for h in handovers:
            self.delivered.pop(h.path, None)
            self.handed[h.path] = FileStat(h.size, h.mtime_ns)
        self.save()

    def scan(self, folder: str | Path) -> list[Handover]:
        """One poll of ``folder``."""
        return self.poll(list_candidates(folder, self.cfg))

    def _verdict(self, path: str, stat: FileStat, unchanged_for: float) -> str | None:
        if stat.size > 0:
            try:
                if self.probe(Path(path)):
                    return "complete"
            except OSError:
                return None  # unreadable just now (removed, permissions in flux): try next poll
        return "gave-up" if unchanged_for >= self.cfg.give_up_s else None

    @property
    def waiting(self) -> list[str]:
        """Files seen but not yet handed over."""
        return sorted(self.pending)


def settled_files(
    folder: str | Path,
    cfg: WatchConfig | None = None,
    *,
    now: float | None = None,
    probe: Callable[[Path], bool] | None = None,
) -> list[Handover]:
    """Stateless check for a sweep over a whole folder: the files unchanged for ``min_age_s``
    (by mtime) that pass the probe, plus those unchanged for ``give_up_s`` that don't.

    Files still being written are left out (the watcher, or the next sweep, takes them).
    """
    cfg = cfg or WatchConfig()
    probe = probe or _default_probe
    now = time.time() if now is None else now
    out = []
    for path, stat in sorted(list_candidates(folder, cfg).items()):
        age = now - stat.mtime_ns / 1e9
        if age < cfg.min_age_s:
            continue
        try:
            ok = stat.size > 0 and probe(Path(path))
        except OSError:
            continue
        if ok:
            out.append(Handover(path, stat.size, stat.mtime_ns, "complete"))
        elif age >= cfg.give_up_s:
            out.append(Handover(path, stat.size, stat.mtime_ns, "gave-up"))
    return out


@contextlib.contextmanager
def state_lock(state_path: str | Path, *, blocking: bool = False) -> Iterator[bool]:
    """An advisory lock beside the state file, so two watchers never poll the same state at once.

    Yields True when the lock was taken, False when another process holds it (``blocking=False``).
    Released on exit and by the kernel if the process dies (kill -9 included).
    """
    with file_lock(Path(str(state_path) + ".lock"), blocking=blocking) as got:
        yield got
