"""`label undo` takes back only the annotator's current label; the app's secret is private from its first byte."""

from __future__ import annotations

import os
import stat

import pytest
from helpers_label import add_micrographs, label_ws  # noqa: F401 - fixture
from helpers_label_app import app_env  # noqa: F401 - fixture

from micrograde.labeling import store
from micrograde.labeling.errors import UnknownAnnotationError
from micrograde.labeling.web import auth


def _current(ws, annotator_id, micrograph_id):
    row = store.current_annotation(ws, annotator_id, micrograph_id)
    return None if row is None else row.label


def test_an_older_annotation_cannot_be_undone(label_ws):
    mid = add_micrographs(label_ws, 1)[0]
    ana, _ = store.add_annotator(label_ws, "ana", "postdoc")
    first = store.annotate(label_ws, mid, ana.id, "good")
    second = store.annotate(label_ws, mid, ana.id, "bad")
    n_rows = len(store.annotation_history(label_ws))
    with pytest.raises(UnknownAnnotationError, match="only the latest can be undone"):
        store.undo(label_ws, first.id, ana.id)  # 0.1.0 retracted the current label here
    assert _current(label_ws, ana.id, mid) == "bad" and len(store.annotation_history(label_ws)) == n_rows
    undone = store.undo(label_ws, second.id, ana.id)
    assert undone.undoes == second.id and _current(label_ws, ana.id, mid) == "good"
    with pytest.raises(UnknownAnnotationError):
        store.undo(label_ws, second.id, ana.id)  # already undone
    store.undo(label_ws, first.id, ana.id)  # now first is on top: walking back newest-first works
    assert _current(label_ws, ana.id, mid) is None
    third = store.annotate(label_ws, mid, ana.id, "medium")
    with pytest.raises(UnknownAnnotationError):
        store.undo(label_ws, first.id, ana.id)
    store.undo(label_ws, third.id, ana.id)
    assert _current(label_ws, ana.id, mid) is None


def test_the_app_refuses_undoing_a_label_that_is_not_the_latest(app_env):
    c, csrf = app_env.login("ana")
    mid = app_env.ids[0]
    headers = {"X-CSRF-Token": csrf}
    first = c.post(f"/api/micrographs/{mid}/annotations", json={"label": "good"}, headers=headers).json()
    c.post(f"/api/micrographs/{mid}/annotations", json={"label": "bad"}, headers=headers)
    r = c.post("/api/undo", json={"annotation_id": first["annotation_id"]}, headers=headers)
    assert r.status_code == 404 and "only the latest" in r.json()["error"]
    assert _current(app_env.ws, app_env.annotator_ids["ana"], mid) == "bad"


def test_the_secret_is_created_private_and_never_widened(tmp_path, monkeypatch):
    from micrograde.pipeline.catalogue.workspace import Workspace

    monkeypatch.setattr(os, "chmod", lambda *a, **k: pytest.fail("the secret must not be created open, then narrowed"))
    old = os.umask(0o022)
    try:
        with Workspace.open(tmp_path / "ws") as ws:
            secret = auth.load_or_create_secret(ws)
            path = ws.root / auth.SECRET_FILE
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert len(secret) == 32 and auth.load_or_create_secret(ws) == secret  # read back, not replaced
            assert [p.name for p in ws.root.iterdir() if p.name.startswith(f".{auth.SECRET_FILE}")] == []
    finally:
        os.umask(old)
