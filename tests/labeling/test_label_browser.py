"""The labelling page in headless Chromium: log in, label three micrographs with the keyboard, undo one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_label import add_micrographs
from helpers_label_server import serve_in_thread

from micrograde.labeling import store
from micrograde.labeling.web.app import create_app
from micrograde.pipeline.catalogue.workspace import Workspace

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pw_api(chromium_executable):
    """Playwright's sync API and Debian's Chromium (skips, or fails in CI, when absent; never downloads one)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, args=ARGS, headless=True)
        try:
            yield browser, sync_api.expect
        finally:
            browser.close()


def test_keyboard_labelling_and_undo(tmp_path: Path, pw_api):
    browser, expect = pw_api
    ws = Workspace.open(tmp_path / "ws")
    ids = add_micrographs(ws, 5)
    annotator, token = store.add_annotator(ws, "ana", "postdoc")
    ben, _ = store.add_annotator(ws, "ben", "senior-scientist")
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    store.annotate(ws, ids[3], ben.id, "bad", comment=evil)
    with serve_in_thread(create_app(ws)) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.fill("#token", "wrong")
        page.press("#token", "Enter")
        page.wait_for_selector("#login-error:has-text('Unknown token')")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_selector("body[data-ready='1']")
        progress = page.locator("#progress")
        assert progress.inner_text() == "0 of 5 labelled"
        assert page.locator("#mname").inner_text() == "mic_000.mrc"

        page.keyboard.press("i")  # crystalline-ice, then bad
        page.keyboard.press("3")
        expect(progress).to_have_text("1 of 5 labelled")
        page.wait_for_selector("#mname:has-text('mic_001.mrc')")
        page.keyboard.press("1")
        page.wait_for_selector("#mname:has-text('mic_002.mrc')")
        page.keyboard.press("2")
        expect(progress).to_have_text("3 of 5 labelled")
        page.wait_for_selector("#mname:has-text('mic_003.mrc')")
        page.keyboard.press("u")  # undo the last label (mic_002 medium)
        expect(progress).to_have_text("2 of 5 labelled")
        page.wait_for_selector("#mname:has-text('mic_002.mrc')")
        assert page.locator("#mylabel").inner_text() == "none"
        page.keyboard.press("ArrowLeft")
        page.wait_for_selector("#mname:has-text('mic_001.mrc')")
        assert page.locator("#mylabel").inner_text() == "good"
        assert page.evaluate("document.getElementById('img').naturalWidth") > 0
        page.screenshot(path=str(tmp_path / "labelling.png"))
        assert not errors, errors

        # a reload resumes at the first micrograph this annotator has not labelled
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#mname").inner_text() == "mic_002.mrc"

        # unblinded, another annotator's comment shows as text and never runs
        page.keyboard.press("ArrowRight")
        page.wait_for_selector("#mname:has-text('mic_003.mrc')")
        assert page.locator("#others-wrap").is_hidden()
        page.click("#blind")
        expect(page.locator("#others li")).to_contain_text("ben (senior-scientist): bad")
        assert evil in page.locator("#others li").inner_text()
        assert page.locator("#others img, #others script").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert not errors, errors
        page.close()

    latest = store.latest_annotations(ws)
    latest = latest[latest["annotator"] == "ana"].set_index("micrograph_id")
    assert dict(latest["label"]) == {ids[0]: "bad", ids[1]: "good"}  # 2 labels effective
    assert latest.loc[ids[0], "reasons"] == "crystalline-ice"
    hist = store.annotation_history(ws)
    hist = hist[hist["annotator"] == "ana"]
    assert list(hist["micrograph_id"]) == [ids[0], ids[1], ids[2], ids[2]]
    assert hist["label"].iloc[2] == "medium" and hist["label"].isna().iloc[3]  # the retraction row
    assert set(hist["source"]) == {"web"} and set(hist["annotator"]) == {annotator.name}
    ws.close()
