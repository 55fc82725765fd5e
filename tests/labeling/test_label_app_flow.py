"""The labelling app's behaviour: queue order, resume, undo, review source, blind mode."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from helpers_label_app import app_env  # noqa: F401 - fixture

from micrograde.labeling import store
from micrograde.labeling.queue import build_queue, predictions_confidence
from micrograde.pipeline.catalogue.schema import AssessRun


def post(c, url, body, csrf):
    r = c.post(url, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    return r.json()


def test_queue_puts_unlabelled_and_least_confident_first():
    conf = pd.DataFrame({"micrograph_id": [1, 2, 3, 4], "confidence": [0.9, 0.4, 0.99, 0.6]})
    assert build_queue([1, 2, 3, 4, 5, 6], {3, 5}) == [1, 2, 4, 6, 3, 5]
    assert build_queue([1, 2, 3, 4, 5, 6], {3, 5}, conf) == [2, 4, 1, 6, 3, 5]
    assert build_queue([], set(), conf) == []


def test_labelling_resume_and_undo(app_env):
    c, csrf = app_env.login("ana")
    ids = app_env.ids
    q = c.get("/api/queue").json()
    assert q["ids"] == ids and q["resume"] == ids[0] and (q["labelled"], q["total"]) == (0, 5)
    a = post(c, f"/api/micrographs/{ids[0]}/annotations", {"label": "good"}, csrf)
    b = post(c, f"/api/micrographs/{ids[1]}/annotations", {"label": "bad", "reasons": ["thick-ice", "drift"]}, csrf)
    assert b["labelled"] == 2 and b["reasons"] == ["thick-ice", "drift"] and b["source"] == "web"
    q = c.get("/api/queue").json()
    assert q["resume"] == ids[2] and q["ids"][:3] == ids[2:] and q["ids"][3:] == ids[:2]  # resume where left off
    b2 = post(c, f"/api/micrographs/{ids[1]}/annotations", {"label": "medium"}, csrf)
    u1 = post(c, "/api/undo", {"annotation_id": b2["annotation_id"]}, csrf)
    assert u1["label"] == "bad" and u1["reasons"] == ["thick-ice", "drift"]  # the state before b2
    u2 = post(c, "/api/undo", {"annotation_id": b["annotation_id"]}, csrf)
    assert u2["label"] is None and u2["labelled"] == 1
    mine = c.get(f"/api/micrographs/{ids[0]}").json()["mine"]
    assert mine == {"annotation_id": a["annotation_id"], "label": "good", "reasons": [], "comment": ""}
    ben, ben_csrf = app_env.login("ben")
    r = ben.post("/api/undo", json={"annotation_id": a["annotation_id"]}, headers={"X-CSRF-Token": ben_csrf})
    assert r.status_code == 404  # not ben's
    hist = store.annotation_history(app_env.ws)
    assert len(hist) == 5 and hist["label"].isna().sum() == 1


def test_review_links_store_source_review(app_env):
    c, csrf = app_env.login("ben")
    mid = app_env.ids[3]
    page = c.get(f"/micrograph/{mid}?review=1")
    assert page.status_code == 200 and 'id="labeller"' in page.text
    r = post(c, f"/api/micrographs/{mid}/annotations", {"label": "bad", "review": True}, csrf)
    assert r["source"] == "review"
    u = post(c, "/api/undo", {"annotation_id": r["annotation_id"]}, csrf)
    assert u["source"] == "review" and u["label"] is None


def test_blind_mode(app_env):
    ana, ana_csrf = app_env.login("ana")
    mid = app_env.ids[0]
    post(ana, f"/api/micrographs/{mid}/annotations", {"label": "good", "comment": "nice rings"}, ana_csrf)
    ben, _ = app_env.login("ben")
    blind = ben.get(f"/api/micrographs/{mid}").json()
    assert blind["blind"] and "others" not in blind
    seen = ben.get(f"/api/micrographs/{mid}?reveal=1").json()
    assert seen["others"] == [{"annotator": "ana", "expertise": "postdoc", "label": "good", "reasons": [],
                               "comment": "nice rings"}]
    enforced, _ = app_env.login("ben", enforce_blind=True)
    assert enforced.get("/api/me").json()["enforce_blind"] is True
    forced = enforced.get(f"/api/micrographs/{mid}?reveal=1").json()
    assert forced["blind"] and "others" not in forced


def test_queue_reads_the_latest_predictions(app_env):
    ws, ids = app_env.ws, app_env.ids
    assert predictions_confidence(ws).empty
    # the rolling session report sorts after the assess run by folder name, but was written earlier:
    # the latest predictions are those of the latest run by time
    for run, conf, day in [("session-grid1", [0.1, 0.2, 0.3, 0.4, 0.5], 1),
                           ("assess-20260102-000000-bbbbbb", [0.9, 0.8, 0.3, 0.95, 0.99], 2),
                           ("assess-20260103-000000-cccccc", [0.0] * 5, 3)]:
        folder = ws.reports_dir / run
        folder.mkdir()
        paths = [f"/data/grid1/mic_{i:03d}.mrc" for i in range(5)]
        pd.DataFrame({"micrograph": paths, "label": "good", "confidence": conf}).to_csv(
            folder / "predictions.csv", index=False
        )
        with ws.transaction() as s:
            s.add(AssessRun(id=run, report_dir=str(folder), n_micrographs=5,
                            created_at=dt.datetime(2026, 1, day, tzinfo=dt.UTC)))
    (ws.reports_dir / "assess-20260103-000000-cccccc" / "predictions.csv").unlink()  # a report deleted since
    got = predictions_confidence(ws).set_index("micrograph_id")["confidence"]
    assert got.loc[ids[2]] == 0.3 and got.loc[ids[4]] == 0.99
    c, _ = app_env.login("cat")
    assert c.get("/api/queue").json()["ids"] == [ids[2], ids[1], ids[0], ids[3], ids[4]]
    called = []

    def probs():
        called.append(1)
        return pd.DataFrame({"micrograph_id": [ids[4]], "confidence": [0.01]})

    c2, _ = app_env.login("cat", model_probs=probs)
    assert c2.get("/api/queue").json()["ids"][0] == ids[4] and called

    def broken():
        raise RuntimeError("model store down")

    c3, _ = app_env.login("cat", model_probs=broken)
    assert c3.get("/api/queue").json()["ids"] == ids  # falls back to catalogue order


def test_the_micrograph_view_shows_the_scores_and_imported_estimates_from_the_features(app_env):
    from micrograde.pipeline.catalogue.schema import Micrograph
    from micrograde.pipeline.features import feature_names

    mid = app_env.ids[1]
    with app_env.ws.transaction() as s:
        mic = s.get(Micrograph, mid)
        mic.features = {**mic.features, "ctf_resolution_A": 3.4}
    c, _csrf = app_env.login()
    scores = c.get(f"/api/micrographs/{mid}").json()["scores"]
    assert list(scores)[:5] == list(feature_names("score"))
    assert scores["ice_ring_score"] == 0.1 and scores["thon_reach_A"] == 5.0
    assert scores["ctf_resolution_A"] == 3.4 and "ctf_defocus_um" not in scores  # shown where imported
