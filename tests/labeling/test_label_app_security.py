"""Security of the labelling app: sessions, CSRF, 401/403, images by id only, escaping, 4xx never 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_label_app import app_env  # noqa: F401 - fixture

from micrograde.labeling import store
from micrograde.labeling.web.app import STATIC_DIR


def post(c, url, body, csrf):
    return c.post(url, json=body, headers={"X-CSRF-Token": csrf})


def test_login_sets_a_strict_httponly_session(app_env):
    c = app_env.client()
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    login_csrf = c.cookies.get("mg_login_csrf")
    assert login_csrf
    assert c.post("/api/login", json={"token": app_env.tokens["ana"]}).status_code == 403  # no CSRF header
    assert post(c, "/api/login", {"token": app_env.tokens["ana"]}, "forged").status_code == 403
    bad = post(c, "/api/login", {"token": "1.not-the-token"}, login_csrf)
    assert bad.status_code == 401 and bad.json()["error"] == "unknown token"
    ok = post(c, "/api/login", {"token": app_env.tokens["ana"]}, login_csrf)
    assert ok.status_code == 200 and ok.json()["name"] == "ana"
    cookie = ok.headers["set-cookie"].lower()
    assert "mg_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    me = c.get("/api/me").json()
    assert me["name"] == "ana" and me["total"] == 5 and me["labelled"] == 0 and me["csrf"] == ok.json()["csrf"]


def test_no_or_forged_session_is_401(app_env):
    c = app_env.client()
    mid = app_env.ids[0]
    for url in ["/api/me", "/api/queue", f"/api/micrographs/{mid}", f"/api/micrographs/{mid}/image.png"]:
        r = c.get(url)
        assert r.status_code == 401 and "error" in r.json(), url
    assert c.post(f"/api/micrographs/{mid}/annotations", json={"label": "good"}).status_code == 401
    c.cookies.set("mg_session", f"{app_env.annotator_ids['ana']}.9999999999.x.forgedmac")
    assert c.get("/api/me").status_code == 401
    logged, _ = app_env.login("ana")
    foreign = app_env.client(secret=b"t" * 32)  # a server with another secret refuses the cookie
    foreign.cookies.set("mg_session", logged.cookies.get("mg_session"))
    assert foreign.get("/api/me").status_code == 401


def test_inactive_annotator_is_403(app_env):
    c, csrf = app_env.login("ana")
    store.set_active(app_env.ws, "ana", False)
    assert c.get("/api/me").status_code == 403
    assert post(c, f"/api/micrographs/{app_env.ids[0]}/annotations", {"label": "good"}, csrf).status_code == 403
    fresh = app_env.client()
    fresh.get("/")
    r = post(fresh, "/api/login", {"token": app_env.tokens["ana"]}, fresh.cookies.get("mg_login_csrf"))
    assert r.status_code == 403 and "inactive" in r.json()["error"]


def test_csrf_is_required_on_every_post(app_env):
    c, csrf = app_env.login("ana")
    _, ben_csrf = app_env.login("ben")
    url = f"/api/micrographs/{app_env.ids[0]}/annotations"
    assert c.post(url, json={"label": "good"}).status_code == 403
    assert post(c, url, {"label": "good"}, "forged").status_code == 403
    assert post(c, url, {"label": "good"}, ben_csrf).status_code == 403  # another session's token
    form = c.post(url, data={"label": "good"}, headers={"X-CSRF-Token": csrf})
    assert form.status_code == 415
    assert c.post("/api/logout", json={}).status_code == 403
    assert store.annotation_history(app_env.ws).empty
    ok = post(c, url, {"label": "good"}, csrf)
    assert ok.status_code == 200 and ok.json()["labelled"] == 1


@pytest.mark.parametrize(
    "mid",
    ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fmicrograde.db", "..%252F..%252Fetc",
     "1;ls", "-1", "0", "1.5", "0x10", "99999999999999999999999", str(2**63), "%00", "micrograde.db"],
)
def test_images_are_served_by_catalogue_id_only(app_env, mid):
    c, _ = app_env.login("ana")
    for kind in ("image.png", "spectrum.png"):
        r = c.get(f"/api/micrographs/{mid}/{kind}")
        assert r.status_code in (404, 422), (mid, r.status_code)
        assert r.headers["content-type"].startswith("application/json") and "error" in r.json()


def test_images_and_contrast(app_env):
    c, _ = app_env.login("ana")
    mid = app_env.ids[1]
    for kind in ("image.png", "spectrum.png"):
        r = c.get(f"/api/micrographs/{mid}/{kind}")
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get(f"/api/micrographs/{mid}/image.png?low=5&high=95").status_code == 200
    for query in ["low=50&high=10", "low=-1", "high=101", "low=nan", "high=inf", "low=abc", "low=5&high=5"]:
        r = c.get(f"/api/micrographs/{mid}/image.png?{query}")
        assert r.status_code == 422 and "error" in r.json(), query
    assert c.get("/api/micrographs/424242/image.png").status_code == 404
    for path in ["/static/../micrograde.db", "/static/%2e%2e/%2e%2e/pipeline/catalogue.py", "/static/..%2fapp.py"]:
        assert c.get(path).status_code == 404, path


def test_user_text_is_never_markup(app_env):
    c, csrf = app_env.login("ana")
    mid = app_env.ids[0]
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = post(c, f"/api/micrographs/{mid}/annotations", {"label": "bad", "reasons": ["other"], "comment": evil}, csrf)
    assert r.status_code == 200
    b, _ = app_env.login("ben")
    detail = b.get(f"/api/micrographs/{mid}?reveal=1")
    assert detail.headers["content-type"].startswith("application/json")
    assert detail.json()["others"][0]["comment"] == evil  # data kept as written, served as JSON only
    page = b.get(f"/micrograph/{mid}")
    assert "<script>alert" not in page.text and "onerror" not in page.text
    js = (Path(STATIC_DIR) / "app.js").read_text()
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "eval(" not in js and "document.write" not in js
    html = (Path(STATIC_DIR) / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN
    assert "<script>" not in html  # no inline script (CSP script-src 'self')


@pytest.mark.parametrize(
    "body, content",
    [
        ("{bad json", None),
        ("[1, 2]", None),
        ('{"label": "excellent"}', None),
        ('{"label": "good", "reasons": ["aliens"]}', None),
        ('{"label": "good", "reasons": "drift"}', None),
        ('{"label": "good", "extra": 1}', None),
        ('{"label": null}', None),
        ('{"label": "good", "comment": "' + "x" * 2001 + '"}', None),
        ("", None),
        ('{"label": "good"}', "text/plain"),
    ],
)
def test_malformed_annotations_are_4xx_with_a_message(app_env, body, content):
    c, csrf = app_env.login("ana")
    r = c.post(
        f"/api/micrographs/{app_env.ids[0]}/annotations",
        content=body.encode(),
        headers={"X-CSRF-Token": csrf, "Content-Type": content or "application/json"},
    )
    assert 400 <= r.status_code < 500, (body, r.status_code)
    assert r.json()["error"]
    assert store.annotation_history(app_env.ws).empty


def test_other_malformed_requests(app_env):
    c, csrf = app_env.login("ana")
    assert post(c, "/api/micrographs/999/annotations", {"label": "good"}, csrf).status_code == 404
    assert post(c, "/api/undo", {"annotation_id": 12345}, csrf).status_code == 404
    assert post(c, "/api/undo", {"annotation_id": "x"}, csrf).status_code == 422
    assert post(c, "/api/undo", {"annotation_id": 2**70}, csrf).status_code == 422
    assert c.get("/api/micrographs/abc").status_code == 422
    assert c.get("/micrograph/abc").status_code == 422
    assert c.get("/api/nothing").status_code == 404
    assert c.delete(f"/api/micrographs/{app_env.ids[0]}").status_code == 405
    login = app_env.client()
    login.get("/")
    r = login.post("/api/login", content=b"{", headers={"X-CSRF-Token": login.cookies.get("mg_login_csrf"),
                                                        "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]
