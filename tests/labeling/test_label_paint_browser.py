"""Painting masks in headless Chromium: brush, polygon, class per stroke, undo, save, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_label import add_micrographs
from helpers_label_server import serve_in_thread

from micrograde.labeling import store
from micrograde.labeling.painted import latest_painted
from micrograde.labeling.web.app import create_app
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.masks import CARBON, CONTAMINATION, CRYSTALLINE

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.timeout(180), pytest.mark.browser]


def test_paint_a_region_save_and_read_it_back(tmp_path: Path, chromium_executable):
    from playwright import sync_api

    ws = Workspace.open(tmp_path / "ws")
    ids = add_micrographs(ws, 2)
    ana, token = store.add_annotator(ws, "ana", "postdoc")
    with serve_in_thread(create_app(ws)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_selector("body[data-ready='1']")
        page.check("#paint-mode")
        page.wait_for_function("document.getElementById('paint').width === 64")
        page.wait_for_selector("#paint-status:has-text('no mask yet')")
        box = page.locator("#paint").bounding_box()

        def at(fx: float, fy: float) -> tuple[float, float]:
            return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

        # a contamination brush stroke across the top left
        page.mouse.move(*at(0.05, 0.15))
        page.mouse.down()
        for fx in np.linspace(0.05, 0.35, 8):
            page.mouse.move(*at(float(fx), 0.15))
        page.mouse.up()
        # a carbon polygon in the bottom right
        page.click("#paint-tool-buttons button[data-tool='polygon']")
        page.click("#paint-classes button[data-code='1']")
        for fx, fy in [(0.6, 0.6), (0.95, 0.6), (0.95, 0.95), (0.6, 0.95)]:
            page.mouse.click(*at(fx, fy))
        page.click("#paint-close")
        # a crystalline stroke, then undone
        page.click("#paint-tool-buttons button[data-tool='brush']")
        page.click("#paint-classes button[data-code='3']")
        page.mouse.move(*at(0.5, 0.4))
        page.mouse.down()
        page.mouse.move(*at(0.55, 0.4))
        page.mouse.up()
        page.click("#paint-undo")
        page.click("#paint-save")
        page.wait_for_selector("#paint-status:has-text('saved')")
        assert not errors, errors

        saved = latest_painted(ws.root, ids[0], ana.id)
        assert saved is not None and saved.record["annotator"] == "ana" and saved.record["expertise"] == "postdoc"
        mask = saved.read()
        h, w = mask.shape
        assert (h, w) == (4092, 5760)
        assert mask[int(0.15 * h), int(0.2 * w)] == CONTAMINATION
        assert mask[int(0.8 * h), int(0.8 * w)] == CARBON
        assert not (mask == CRYSTALLINE).any()  # the undone stroke was not saved
        assert mask[int(0.8 * h), int(0.2 * w)] == 0

        # next micrograph and back: the saved mask is loaded again
        page.click("#next")
        page.wait_for_selector("#mname:has-text('mic_001.mrc')")
        page.wait_for_selector("#paint-status:has-text('no mask yet')")
        page.click("#prev")
        page.wait_for_selector("#mname:has-text('mic_000.mrc')")
        page.wait_for_selector("#paint-status:has-text('your mask of')")
        red = page.evaluate("""() => { const c = document.getElementById('paint');
            const x = Math.floor(0.2 * c.width), y = Math.floor(0.15 * c.height);
            const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
            return [d[0], d[1], d[2]]; }""")
        assert red[0] > red[2]  # tinted red (contamination)
        browser.close()
    ws.close()
