"""Storing the user's CTF estimates with the catalogued micrographs they belong to.

:func:`import_ctf` matches each row of a :class:`~micrograde.pipeline.io.ctf.CtfTable` to a
catalogued micrograph by name (:func:`micrograde.pipeline.io.names.match_names_detailed`: the file
stem without motion-correction suffixes, cryoSPARC uid prefixes or extensions, then the most shared
trailing folders; a tie matches nothing) and merges the values into the micrograph's ``features``
JSON. The values of the columns a file gives replace earlier ones; other features are untouched, and
re-ingesting a micrograph keeps them (:mod:`.ingest`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from micrograde.pipeline.catalogue.schema import Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.io.ctf import CtfTable
from micrograde.pipeline.io.names import match_names_detailed

__all__ = ["CtfImport", "import_ctf", "micrograph_ident"]


@dataclass
class CtfImport:
    """What an import did: micrographs given values, and the file's names that matched none."""

    matched: int = 0
    unmatched: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"CTF estimates ({', '.join(self.columns) or 'none'}): {self.matched} micrographs matched"]
        if self.unmatched:
            shown = ", ".join(self.unmatched[:10]) + (" ..." if len(self.unmatched) > 10 else "")
            out.append(f"  {len(self.unmatched)} names in the CTF file matched no micrograph: {shown}")
        return out


def micrograph_ident(path: str, name: str) -> str:
    """The name-matching identifier of a micrograph: its path, or ``'000003@path'`` for a frame of a stack."""
    head, sep, _ = str(name).partition("@")
    return f"{head}@{path}" if sep and head.isdigit() else str(path)


def import_ctf(ws: Workspace, tables: Sequence[CtfTable], ids: Sequence[int] | None = None) -> CtfImport:
    """Merge the CTF estimates of ``tables`` into the catalogue's micrographs (``ids`` only, when given)."""
    result = CtfImport(columns=tuple(dict.fromkeys(c for t in tables for c in t.columns)))
    if not tables:
        return result
    with ws.session() as s:
        stmt = select(Micrograph.id, Micrograph.path, Micrograph.name)
        if ids is not None:
            stmt = stmt.where(Micrograph.id.in_(list(ids)))
        rows = s.execute(stmt).all()
    by_ident = {micrograph_ident(p, n): mid for mid, p, n in rows}
    updates: dict[int, dict[str, float | None]] = {}
    for table in tables:
        names = list(table.table["micrograph"])
        match = match_names_detailed(names, list(by_ident))
        for name in dict.fromkeys(names):
            if match.mapping.get(name) is None and name not in result.unmatched:
                result.unmatched.append(name)
        result.ambiguous.update(match.ambiguous)
        for _, row in table.table.iterrows():
            hit = match.mapping.get(row["micrograph"])
            if hit is None:
                continue
            values = updates.setdefault(by_ident[hit], {})
            for column in table.columns:
                v = float(row[column])
                values[column] = v if math.isfinite(v) else None
    with ws.transaction() as s:
        for mid, values in updates.items():
            mic = s.get(Micrograph, mid)
            if mic is None:  # removed meanwhile (a stale frame dropped by a concurrent ingest)
                continue
            merged = {k: v for k, v in (mic.features or {}).items() if k not in values}
            merged.update({k: v for k, v in values.items() if v is not None})
            mic.features = merged
            result.matched += 1
    return result
