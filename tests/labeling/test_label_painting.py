"""Painted masks: the app's mask API (append-only versions with annotator and expertise), export."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
from helpers_label_app import app_env  # noqa: F401 - fixture

from micrograde.labeling.painted import export_painted, latest_painted, painted_versions, save_painted
from micrograde.pipeline.io.label_maps import read_label_map


def _codes(w: int, h: int, code: int, box: tuple[slice, slice]) -> str:
    a = np.zeros((h, w), dtype=np.uint8)
    a[box] = code
    return base64.b64encode(a.tobytes()).decode()


def test_paint_save_read_back_append_only(app_env):
    c, csrf = app_env.login("ana")
    mid = app_env.ids[0]
    assert c.get(f"/api/micrographs/{mid}/mask?width=64&height=48").json()["codes"] is None
    body = {"width": 64, "height": 48, "codes": _codes(64, 48, 2, (slice(0, 24), slice(0, 32)))}
    assert c.post(f"/api/micrographs/{mid}/mask", json=body).status_code == 403  # no CSRF token
    r = c.post(f"/api/micrographs/{mid}/mask", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.json()["pixels"]["contamination"] == 4092 * 5760 // 4  # brought to full resolution
    back = c.get(f"/api/micrographs/{mid}/mask?width=64&height=48").json()
    got = np.frombuffer(base64.b64decode(back["codes"]), dtype=np.uint8).reshape(48, 64)
    assert (got[:24, :32] == 2).all() and (got[24:] == 0).all() and (got[:, 32:] == 0).all()
    # a second save (erase half) is a new version; the first stays
    body2 = {"width": 64, "height": 48, "codes": _codes(64, 48, 2, (slice(0, 24), slice(0, 16)))}
    assert c.post(f"/api/micrographs/{mid}/mask", json=body2, headers={"X-CSRF-Token": csrf}).status_code == 200
    versions = painted_versions(app_env.ws.root, mid)
    assert len(versions) == 2 and {v.record["annotator"] for v in versions} == {"ana"}
    assert versions[0].record["expertise"] == "postdoc" and versions[0].read()[:2000, 1500:2800].min() == 2
    latest = latest_painted(app_env.ws.root, mid, app_env.annotator_ids["ana"])
    assert latest.path == versions[1].path and latest.read()[:, 1500:2800].max() == 0
    mask, pixel_size = read_label_map(latest.path)
    assert mask.shape == (4092, 5760) and abs(pixel_size - 0.83) < 1e-6
    # bad bodies are refused
    bad = {"width": 64, "height": 48, "codes": _codes(64, 48, 7, (slice(0, 2), slice(0, 2)))}
    assert c.post(f"/api/micrographs/{mid}/mask", json=bad, headers={"X-CSRF-Token": csrf}).status_code == 422
    short = {"width": 64, "height": 48, "codes": base64.b64encode(b"\0" * 10).decode()}
    assert c.post(f"/api/micrographs/{mid}/mask", json=short, headers={"X-CSRF-Token": csrf}).status_code == 422
    assert c.post("/api/micrographs/999/mask", json=body, headers={"X-CSRF-Token": csrf}).status_code == 404
    assert len(painted_versions(app_env.ws.root, mid)) == 2


def test_export_takes_the_most_expert_annotator(app_env, tmp_path):
    root, mid = app_env.ws.root, app_env.ids[1]
    a = np.zeros((40, 50), dtype=np.uint8)
    b = a.copy()
    a[:10] = 1
    b[:, :5] = 3
    save_painted(root, mid, "mic_001.mrc", a, 1.0, annotator="cat", annotator_id=app_env.annotator_ids["cat"],
                 expertise="undergrad", source="import")
    save_painted(root, mid, "mic_001.mrc", b, 1.0, annotator="ben", annotator_id=app_env.annotator_ids["ben"],
                 expertise="senior-scientist", source="import")
    save_painted(root, mid, "mic_001.mrc", a, 1.0, annotator="cat", annotator_id=app_env.annotator_ids["cat"],
                 expertise="undergrad", source="import")
    table = export_painted(root, tmp_path / "out", {mid: "/data/grid1/mic_001.mrc"})
    assert table["annotator"].tolist() == ["ben"]
    csv = pd.read_csv(tmp_path / "out" / "masks.csv")
    mask, _ = read_label_map(tmp_path / "out" / csv["mask"].iloc[0])
    assert (mask == b).all()


def test_cli_import_and_export_of_painted_masks(app_env, tmp_path):
    from click.testing import CliRunner

    from micrograde.flows.cli.main import main
    from micrograde.pipeline.io.label_maps import write_label_map

    mask = np.zeros((4092, 5760), dtype=np.uint8)
    mask[100:900, 200:1200] = 4
    src = tmp_path / "painted.mrc"
    write_label_map(src, mask, 0.83)
    ws = str(app_env.ws.root)
    r = CliRunner().invoke(main, ["masks", "import", str(src), "--workspace", ws, "--micrograph", "mic_002.mrc",
                                  "--annotator", "dan", "--expertise", "grad"])
    assert r.exit_code == 0, r.output
    saved = latest_painted(app_env.ws.root, app_env.ids[2])
    assert saved.record["annotator"] == "dan" and saved.record["source"] == "import"
    wrong = tmp_path / "small.mrc"
    write_label_map(wrong, mask[:10, :10], 0.83)
    bad = CliRunner().invoke(main, ["masks", "import", str(wrong), "--workspace", ws, "--micrograph", "mic_002.mrc",
                                    "--annotator", "dan"])
    assert bad.exit_code == 2 and "shape" in bad.output
    out = CliRunner().invoke(main, ["masks", "export", "--workspace", ws, "--out", str(tmp_path / "exp")])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "exp" / "masks.csv")
    assert table["micrograph"].tolist() == ["/data/grid1/mic_002.mrc"]
    back, _ = read_label_map(tmp_path / "exp" / table["mask"].iloc[0])
    assert (back == mask).all()
