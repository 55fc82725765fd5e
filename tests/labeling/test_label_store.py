"""Annotators, tokens and the append-only annotation store."""

from __future__ import annotations

import pytest
from helpers_label import add_micrographs, label_ws  # noqa: F401 - fixture
from sqlalchemy import func, select

from micrograde.labeling import store
from micrograde.labeling.consensus import consensus_table
from micrograde.labeling.errors import (
    AnnotatorError,
    InactiveAnnotatorError,
    InvalidLabelError,
    UnknownAnnotationError,
    UnknownMicrographError,
)
from micrograde.labeling.web.tokens import SessionSigner
from micrograde.pipeline.catalogue.schema import Annotation, Annotator


def n_rows(ws) -> int:
    with ws.session() as s:
        return s.execute(select(func.count(Annotation.id))).scalar_one()


def test_tokens_are_hashed_and_checked(label_ws):
    row, token = store.add_annotator(label_ws, "Ana Lopez", "Postdoc")
    assert row.expertise == "postdoc" and row.active
    assert token not in (row.token_hash or "") and row.token_hash.startswith("scrypt$")
    assert store.authenticate(label_ws, token).id == row.id
    other, other_token = store.add_annotator(label_ws, "ben", "grad")
    assert store.authenticate(label_ws, other_token).id == other.id
    forged = f"{row.id}.{other_token.split('.', 1)[1]}"  # right id, someone else's secret
    for bad in ["", "x", f"{row.id}.", f"{row.id}.wrong", "999.abc", forged, token + "x", "1" * 300]:
        assert store.authenticate(label_ws, bad) is None, bad
    new = store.reset_token(label_ws, "Ana Lopez")
    assert store.authenticate(label_ws, token) is None and store.authenticate(label_ws, new).id == row.id


def test_annotator_names_and_levels_are_validated(label_ws):
    store.add_annotator(label_ws, "ana", "grad")
    with pytest.raises(AnnotatorError, match="already exists"):
        store.add_annotator(label_ws, "ana", "grad")
    for bad in ["", "=cmd()", "<script>", "a/b", "x" * 65]:
        with pytest.raises(AnnotatorError, match="invalid annotator name"):
            store.add_annotator(label_ws, bad, "grad")
    with pytest.raises(AnnotatorError, match="unknown expertise"):
        store.add_annotator(label_ws, "carl", "professor")
    assert store.get_or_create_annotator(label_ws, "ana", "grad").name == "ana"
    with pytest.raises(AnnotatorError, match="exists with expertise 'grad'"):
        store.get_or_create_annotator(label_ws, "ana", "postdoc")
    created = store.get_or_create_annotator(label_ws, "dora", "undergrad")
    assert created.token_hash is None and store.authenticate(label_ws, f"{created.id}.x") is None


def test_session_signer_rejects_forged_and_expired():
    signer = SessionSigner(b"k" * 32, max_age=100)
    cookie = signer.sign(7, now=1000)
    assert signer.verify(cookie, now=1050).annotator_id == 7
    assert signer.verify(cookie, now=1101) is None
    assert signer.verify(cookie.replace("7.", "8.", 1), now=1050) is None
    assert SessionSigner(b"x" * 32).verify(cookie, now=1050) is None
    assert signer.check_csrf(cookie, signer.csrf_token(cookie)) and not signer.check_csrf(cookie, "nope")
    assert not signer.check_csrf(cookie, None)


def test_annotations_are_append_only_with_undo(label_ws):
    ids = add_micrographs(label_ws, 3)
    a, _ = store.add_annotator(label_ws, "ana", "postdoc")
    first = store.annotate(label_ws, ids[0], a.id, "good", reasons=["drift"], comment="streaks")
    second = store.annotate(label_ws, ids[0], a.id, "BAD", reasons="crystalline-ice; drift")
    assert second.reasons == "crystalline-ice,drift" and second.label == "bad"
    latest = store.latest_annotations(label_ws)
    assert list(latest["label"]) == ["bad"] and list(latest["micrograph"]) == ["/data/grid1/mic_000.mrc"]

    back = store.undo(label_ws, second.id, a.id)  # restores the state before `second`
    assert (back.label, back.reasons, back.comment) == ("good", "drift", "streaks")
    gone = store.undo(label_ws, first.id, a.id)  # before `first` there was nothing: a retraction
    assert gone.label is None
    assert store.latest_annotations(label_ws).empty
    assert store.labelled_ids(label_ws, a.id) == set()
    assert n_rows(label_ws) == 4  # nothing updated or deleted
    hist = store.annotation_history(label_ws)
    assert list(hist["label"].fillna("-")) == ["good", "bad", "good", "-"]
    assert store.current_annotation(label_ws, a.id, ids[0]).id == gone.id


def test_annotate_refuses_bad_input(label_ws):
    ids = add_micrographs(label_ws, 1)
    a, _ = store.add_annotator(label_ws, "ana", "grad")
    with pytest.raises(InvalidLabelError):
        store.annotate(label_ws, ids[0], a.id, "excellent")
    with pytest.raises(InvalidLabelError, match="reason"):
        store.annotate(label_ws, ids[0], a.id, "bad", reasons=["aliens"])
    with pytest.raises(InvalidLabelError, match="source"):
        store.annotate(label_ws, ids[0], a.id, "bad", source="email")
    with pytest.raises(InvalidLabelError, match="comment"):
        store.annotate(label_ws, ids[0], a.id, "bad", comment="x" * 2001)
    with pytest.raises(UnknownMicrographError):
        store.annotate(label_ws, 12345, a.id, "bad")
    b, _ = store.add_annotator(label_ws, "ben", "grad")
    own = store.annotate(label_ws, ids[0], a.id, "good")
    with pytest.raises(UnknownAnnotationError):
        store.undo(label_ws, own.id, b.id)  # not ben's annotation
    store.set_active(label_ws, "ana", False)
    with pytest.raises(InactiveAnnotatorError):
        store.annotate(label_ws, ids[0], a.id, "bad")
    assert n_rows(label_ws) == 1


def test_consensus_table_from_the_store(label_ws):
    ids = add_micrographs(label_ws, 2)
    s, _ = store.add_annotator(label_ws, "sen", "senior-scientist")
    u, _ = store.add_annotator(label_ws, "und", "undergrad")
    store.annotate(label_ws, ids[0], s.id, "bad")
    store.annotate(label_ws, ids[0], u.id, "good")
    store.annotate(label_ws, ids[1], u.id, "medium")
    store.annotate(label_ws, ids[1], u.id, None)  # retracted: micrograph 2 has no label
    table = consensus_table(label_ws)
    assert list(table["micrograph_id"]) == [ids[0]]
    row = table.iloc[0]
    assert row["label"] == "bad" and bool(row["disputed"]) and row["support"] == pytest.approx(4 / 5)
    assert row["micrograph"].endswith("mic_000.mrc") and row["n_annotators"] == 2
    with label_ws.session() as sess:
        assert sess.execute(select(func.count(Annotator.id))).scalar_one() == 2
