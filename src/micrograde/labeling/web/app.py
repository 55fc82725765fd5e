"""The labelling web app (FastAPI): a single page plus a small JSON API.

Pages: ``/`` (login + labelling), ``/micrograph/{id}`` (the same page opened at one micrograph;
with ``?review=1`` its labels are stored with source ``review``). API (JSON; errors are
``{"error": message}`` with a 4xx status):

- ``POST /api/login {token}`` -> session cookie; ``POST /api/logout``; ``GET /api/me``
- ``GET /api/queue`` -> ordered ids, progress and where to resume
- ``GET /api/micrographs/{id}`` -> name, session, scores, the annotator's current label
  (others' labels only with ``?reveal=1`` when blind mode is not enforced)
- ``GET /api/micrographs/{id}/image.png|spectrum.png?low=&high=`` (contrast percentiles)
- ``POST /api/micrographs/{id}/annotations {label, reasons, comment, review}``
- ``POST /api/undo {annotation_id}``

Images are looked up by catalogue id only; no request value ever becomes a file path.
"""


import logging
import math
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from micrograde.labeling import store
from micrograde.labeling.errors import (
    InactiveAnnotatorError,
    LabelingError,
    UnknownAnnotationError,
    UnknownAnnotatorError,
    UnknownMicrographError,
)
from micrograde.labeling.queue import ModelProbs, build_queue, predictions_confidence
from micrograde.labeling.validation import MAX_COMMENT
from micrograde.labeling.web.auth import SECURITY_HEADERS, WebAuth, load_or_create_secret
from micrograde.labeling.web.images import ImageMissingError, micrograph_png
from micrograde.labeling.web.tokens import SessionSigner
from micrograde.pipeline.catalogue.schema import Annotation, Annotator, Micrograph, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.config import LABELS, REASON_TAGS
from micrograde.pipeline.features import features_of

__all__ = ["create_app", "STATIC_DIR"]

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MAX_ID = 2**63 - 1
MicrographId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="catalogue id of the micrograph")]
Percentile = Annotated[float, Query(ge=0.0, le=100.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Strict):
    token: str = Field(min_length=1, max_length=256)


class AnnotationIn(_Strict):
    label: Literal["good", "medium", "bad"]
    reasons: list[Literal[REASON_TAGS]] = Field(default_factory=list, max_length=len(REASON_TAGS))  # type: ignore[valid-type]
    comment: str = Field("", max_length=MAX_COMMENT)
    review: bool = False


class UndoIn(_Strict):
    annotation_id: int = Field(ge=1, le=MAX_ID)


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid request: " + "; ".join(problems[:10]), problems=problems[:10])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        for k, v in (getattr(exc, "headers", None) or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(LabelingError)
    async def _labeling(_request: Request, exc: LabelingError) -> JSONResponse:
        if isinstance(exc, (UnknownMicrographError, UnknownAnnotationError)):
            return _error(404, str(exc))
        if isinstance(exc, UnknownAnnotatorError):
            return _error(401, str(exc))
        if isinstance(exc, InactiveAnnotatorError):
            return _error(403, str(exc))
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - safety net
        log.exception("unexpected error in the labelling app", exc_info=exc)
        return _error(500, "internal error; see the server log")


def create_app(
    ws: Workspace,
    *,
    model_probs: ModelProbs | None = None,
    enforce_blind: bool = False,
    secret: bytes | None = None,
    secure_cookies: bool = False,
    session_max_age: int = 7 * 24 * 3600,
) -> FastAPI:
    """The labelling app for a workspace.

    ``model_probs`` returns ``micrograph_id, confidence`` to put the least confident micrographs
    first (default: the latest ``reports/*/predictions.csv``). ``enforce_blind`` hides other
    annotators' labels with no way to reveal them. ``secret`` signs cookies (default: kept in the
    workspace). ``secure_cookies`` marks cookies Secure (behind an HTTPS proxy).
    """
    auth = WebAuth(ws, SessionSigner(secret or load_or_create_secret(ws), session_max_age), secure_cookies)
    probs = model_probs or (lambda: predictions_confidence(ws))
    # Dependencies run before the body and parameters are validated: no session -> 401 first.
    Viewer = Annotated[tuple[Annotator, str], Depends(auth.annotator)]
    Writer = Annotated[Annotator, Depends(auth.annotator_for_post)]
    LoginCsrf = Annotated[None, Depends(auth.check_login_csrf)]
    app = FastAPI(title="micrograde labelling", docs_url=None, redoc_url=None, openapi_url=None)
    _install_handlers(app)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def page(request: Request) -> FileResponse:
        response = FileResponse(STATIC_DIR / "index.html", media_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        auth.set_login_csrf(request, response)
        return response

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> FileResponse:
        return page(request)

    @app.get("/micrograph/{micrograph_id}", include_in_schema=False)
    def deep_link(request: Request, micrograph_id: MicrographId) -> FileResponse:
        return page(request)

    def all_ids() -> list[int]:
        with ws.session() as s:
            return [int(i) for i in s.execute(select(Micrograph.id).order_by(Micrograph.id)).scalars()]

    def progress(annotator_id: int) -> dict:
        with ws.session() as s:
            total = s.execute(select(func.count(Micrograph.id))).scalar_one()
        return {"labelled": len(store.labelled_ids(ws, annotator_id)), "total": total}

    def me_payload(row, cookie: str) -> dict:
        return {
            "id": row.id,
            "name": row.name,
            "expertise": row.expertise,
            "csrf": auth.signer.csrf_token(cookie),
            "enforce_blind": enforce_blind,
            "labels": list(LABELS),
            "reason_tags": list(REASON_TAGS),
            **progress(row.id),
        }

    @app.post("/api/login")
    def login(_csrf: LoginCsrf, response: Response, body: LoginIn = Body()) -> dict:
        row = store.authenticate(ws, body.token)
        if row is None:
            raise HTTPException(401, "unknown token")
        if not row.active:
            raise HTTPException(403, f"annotator {row.name!r} is inactive")
        cookie = auth.set_session(response, row.id)
        return me_payload(row, cookie)

    @app.post("/api/logout")
    def logout(_row: Writer, response: Response) -> dict:
        auth.clear_session(response)
        return {"ok": True}

    @app.get("/api/me")
    def me(viewer: Viewer) -> dict:
        row, cookie = viewer
        return me_payload(row, cookie)

    @app.get("/api/queue")
    def queue(viewer: Viewer) -> dict:
        row = viewer[0]
        ids = all_ids()
        done = store.labelled_ids(ws, row.id)
        try:
            conf = probs()
        except Exception:  # noqa: BLE001 - a broken predictions file must not block labelling
            log.warning("model confidence unavailable; queue in catalogue order", exc_info=True)
            conf = None
        order = build_queue(ids, done, conf)
        resume = next((i for i in order if i not in done), order[0] if order else None)
        return {"ids": order, "resume": resume, "labelled": len(done), "total": len(ids)}

    @app.get("/api/micrographs/{micrograph_id}")
    def micrograph(viewer: Viewer, micrograph_id: MicrographId, reveal: bool = False) -> dict:
        row = viewer[0]
        with ws.session() as s:
            found = s.execute(
                select(Micrograph, SessionRow.name)
                .join(SessionRow, SessionRow.id == Micrograph.session_id)
                .where(Micrograph.id == micrograph_id)
            ).first()
        if found is None:
            raise UnknownMicrographError(f"no micrograph with id {micrograph_id}")
        mic, session_name = found
        latest = store.latest_rows(ws, micrograph_id=micrograph_id)
        mine = next((a for a in latest if a.annotator_id == row.id), None)
        out = {
            "id": mic.id,
            "name": mic.name,
            "session": session_name,
            "pixel_size": mic.pixel_size,
            "shape": [mic.shape_y, mic.shape_x],
            "acquired_at": mic.acquired_at.isoformat() if mic.acquired_at else None,
            "spectrum_available": bool(mic.spectrum_available),
            "scores": {f.name: _num((mic.features or {}).get(f.name)) for f in features_of()
                       if f.group == "score" or (mic.features or {}).get(f.name) is not None},
            "mine": None
            if mine is None
            else {
                "annotation_id": mine.id,
                "label": mine.label,
                "reasons": [t for t in mine.reasons.split(",") if t],
                "comment": mine.comment,
            },
            "blind": enforce_blind or not reveal,
        }
        if not out["blind"]:
            names = {a.id: (a.name, a.expertise) for a in _annotators(ws)}
            out["others"] = [
                {"annotator": names[a.annotator_id][0], "expertise": names[a.annotator_id][1], "label": a.label,
                 "reasons": [t for t in a.reasons.split(",") if t], "comment": a.comment}
                for a in latest
                if a.annotator_id != row.id and a.label is not None
            ]
        return out

    def image(micrograph_id: int, kind: str, low: float, high: float) -> Response:
        if not low < high:
            raise HTTPException(422, "contrast: low must be below high")
        with ws.session() as s:
            mic = s.get(Micrograph, micrograph_id)
        if mic is None:
            raise UnknownMicrographError(f"no micrograph with id {micrograph_id}")
        try:
            data = micrograph_png(ws.cache_dir, mic.cache_key, kind, low, high)
        except ImageMissingError as exc:
            raise HTTPException(404, str(exc)) from exc
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/micrographs/{micrograph_id}/image.png")
    def image_png(_v: Viewer, micrograph_id: MicrographId, low: Percentile = 1.0, high: Percentile = 99.0) -> Response:
        return image(micrograph_id, "image", low, high)

    @app.get("/api/micrographs/{micrograph_id}/spectrum.png")
    def spectrum_png(
        _v: Viewer, micrograph_id: MicrographId, low: Percentile = 2.0, high: Percentile = 99.8
    ) -> Response:
        return image(micrograph_id, "spectrum", low, high)

    @app.post("/api/micrographs/{micrograph_id}/annotations")
    def add_annotation(row: Writer, micrograph_id: MicrographId, body: AnnotationIn = Body()) -> dict:
        ann = store.annotate(
            ws,
            micrograph_id,
            row.id,
            body.label,
            reasons=body.reasons,
            comment=body.comment,
            source="review" if body.review else "web",
        )
        return {**_ann(ann), **progress(row.id)}

    @app.post("/api/undo")
    def undo(row: Writer, body: UndoIn = Body()) -> dict:
        with ws.session() as s:
            target = s.get(Annotation, body.annotation_id)
        source = target.source if target is not None and target.source in ("web", "review") else "web"
        ann = store.undo(ws, body.annotation_id, row.id, source=source)
        return {**_ann(ann), "undone": body.annotation_id, **progress(row.id)}

    from micrograde.labeling.web.painting import add_painting_routes

    add_painting_routes(app, ws, auth)
    return app


def _ann(a) -> dict:
    return {
        "annotation_id": a.id,
        "micrograph_id": a.micrograph_id,
        "label": a.label,
        "reasons": [t for t in (a.reasons or "").split(",") if t],
        "comment": a.comment,
        "source": a.source,
    }


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _annotators(ws: Workspace):
    with ws.session() as s:
        return s.execute(select(Annotator)).scalars().all()
