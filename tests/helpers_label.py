"""Fixtures of the labelling tests: a workspace with synthetic micrographs.

PostgreSQL and Chromium come from the shared fixtures in conftest.py (``postgres_url``,
``chromium_executable``), which skip locally and fail in CI when the service is missing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from micrograde.pipeline.catalogue.cache import save_entry
from micrograde.pipeline.catalogue.schema import Micrograph, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace


def add_micrographs(ws: Workspace, n: int, *, session: str = "grid1", names: list[str] | None = None,
                    folder: str = "/data") -> list[int]:
    """Insert ``n`` micrograph rows (with small cached arrays) and return their ids."""
    rng = np.random.default_rng(len(session) + n)
    ids = []
    with ws.transaction() as s:
        srow = SessionRow(name=session, detector="K3")
        s.add(srow)
        s.flush()
        for i in range(n):
            name = names[i] if names else f"mic_{i:03d}.mrc"
            key = uuid.uuid4().hex
            yy, xx = np.mgrid[-32:32, -32:32]
            save_entry(
                ws.cache_dir,
                key,
                thumbnail=rng.integers(0, 255, size=(48, 64), dtype=np.uint8),
                spectrum=np.exp(-(yy**2 + xx**2) / 200.0).astype(np.float32)
                + rng.random((64, 64), dtype=np.float32) * 0.1,
                image=rng.standard_normal((64, 64)).astype(np.float32),
                radial=np.linspace(1, 0, 16, dtype=np.float32),
                radial_freq=np.linspace(0, 0.3, 16, dtype=np.float32),
            )
            m = Micrograph(
                path=f"{folder}/{session}/{name}",
                name=name,
                session_id=srow.id,
                digest=uuid.uuid4().hex,
                size_bytes=1000,
                shape_y=4092,
                shape_x=5760,
                mode="float32",
                pixel_size=0.83,
                pixel_size_source="header",
                cache_key=key,
                features={"ice_ring_score": 0.1 * i, "thon_reach_A": 4.0 + i, "anisotropy": 0.05, "contrast": 1.0,
                          "dark_fraction": 0.0},
            )
            s.add(m)
            s.flush()
            ids.append(m.id)
    return ids


@pytest.fixture
def label_ws(tmp_path: Path):
    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()
