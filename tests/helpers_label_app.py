"""A labelling app over a small synthetic workspace, and a logged-in TestClient."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from helpers_label import add_micrographs

from micrograde.labeling import store
from micrograde.labeling.web.app import create_app
from micrograde.pipeline.catalogue.workspace import Workspace


@dataclass
class AppEnv:
    ws: Workspace
    ids: list[int]
    tokens: dict[str, str]
    annotator_ids: dict[str, int]

    def client(self, **app_kwargs) -> TestClient:
        app_kwargs.setdefault("secret", b"s" * 32)
        return TestClient(create_app(self.ws, **app_kwargs), raise_server_exceptions=False)

    def login(self, name: str = "ana", **app_kwargs) -> tuple[TestClient, str]:
        c = self.client(**app_kwargs)
        assert c.get("/").status_code == 200
        r = c.post("/api/login", json={"token": self.tokens[name]},
                   headers={"X-CSRF-Token": c.cookies.get("mg_login_csrf")})
        assert r.status_code == 200, r.text
        return c, r.json()["csrf"]


@pytest.fixture
def app_env(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    ids = add_micrographs(ws, 5)
    tokens, aids = {}, {}
    for name, level in [("ana", "postdoc"), ("ben", "senior-scientist"), ("cat", "undergrad")]:
        row, tokens[name] = store.add_annotator(ws, name, level)
        aids[name] = row.id
    yield AppEnv(ws, ids, tokens, aids)
    ws.close()
