"""The labelling app's mask painting API: read and save an annotator's painted mask of a micrograph.

The page paints on the micrograph image it shows (``width`` x ``height`` pixels) and sends the codes
(base64 of uint8, row-major); the server brings them to the micrograph's full resolution (nearest
neighbour) and stores a new version (:mod:`micrograde.labeling.painted`: append-only, with the
annotator and expertise). Reading returns the annotator's latest version at the size asked for.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
from fastapi import Body, Depends, FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from micrograde.labeling.errors import UnknownMicrographError
from micrograde.labeling.painted import latest_painted, resize_codes, save_painted
from micrograde.pipeline.catalogue.schema import Micrograph
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.masks import MASK_CLASSES

__all__ = ["MAX_SIDE", "MaskIn", "add_painting_routes"]

MAX_SIDE = 4096
MAX_ID = 2**63 - 1


class MaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(ge=1, le=MAX_SIDE)
    height: int = Field(ge=1, le=MAX_SIDE)
    codes: str = Field(max_length=4 * MAX_SIDE * MAX_SIDE // 3 + 8, description="base64 of width*height uint8 codes")


def _micrograph(ws: Workspace, micrograph_id: int) -> Micrograph:
    with ws.session() as s:
        mic = s.get(Micrograph, micrograph_id)
    if mic is None:
        raise UnknownMicrographError(f"no micrograph with id {micrograph_id}")
    return mic


def add_painting_routes(app: FastAPI, ws: Workspace, auth) -> None:
    """Add ``GET``/``POST /api/micrographs/{id}/mask`` to ``app`` (same auth as labels: ``auth`` is the
    app's :class:`~micrograde.labeling.web.auth.WebAuth`)."""

    @app.get("/api/micrographs/{micrograph_id}/mask")
    def get_mask(micrograph_id: int = PathParam(ge=1, le=MAX_ID), width: int = Query(ge=1, le=MAX_SIDE),
                 height: int = Query(ge=1, le=MAX_SIDE), v=Depends(auth.annotator)) -> dict:
        _micrograph(ws, micrograph_id)
        found = latest_painted(ws.root, micrograph_id, annotator_id=v[0].id)
        if found is None:
            return {"codes": None, "created_at": None}
        codes = resize_codes(found.read(), (height, width))
        return {"codes": base64.b64encode(codes.tobytes()).decode("ascii"), "created_at": found.record["created_at"]}

    @app.post("/api/micrographs/{micrograph_id}/mask")
    def post_mask(micrograph_id: int = PathParam(ge=1, le=MAX_ID), body: MaskIn = Body(),
                  row=Depends(auth.annotator_for_post)) -> dict:
        mic = _micrograph(ws, micrograph_id)
        try:
            raw = base64.b64decode(body.codes, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, "codes: not base64") from None
        if len(raw) != body.width * body.height:
            raise HTTPException(422, f"codes: expected {body.width * body.height} bytes, got {len(raw)}")
        codes = np.frombuffer(raw, dtype=np.uint8).reshape(body.height, body.width)
        if int(codes.max()) >= len(MASK_CLASSES):
            raise HTTPException(422, f"codes must lie within 0..{len(MASK_CLASSES) - 1}")
        full = resize_codes(codes, (int(mic.shape_y), int(mic.shape_x)))
        saved = save_painted(ws.root, mic.id, mic.name, full, float(mic.pixel_size), annotator=row.name,
                             annotator_id=row.id, expertise=row.expertise, source="web")
        return {"created_at": saved.record["created_at"], "pixels": saved.record["pixels"]}
