"""report.html in headless Chromium: no console errors, no network requests, counts match predictions.csv."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import CHROMIUM_ARGS as BROWSER_ARGS
from helpers_report import fake_images, make_card, make_predictions

from micrograde.pipeline.report.ood import ood_warnings
from micrograde.pipeline.report.page import SECTION_IDS, build_report, write_predictions, write_report


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    preds = make_predictions(36)
    preds.loc[2, "name"] = "<img src=x onerror=alert(1)>.mrc"
    card = make_card()
    rejects = pd.DataFrame({"path": ["/data/s1/broken.mrc"], "reason": ["corrupt"], "detail": ["truncated"]})
    html = build_report(
        preds,
        card=card,
        rejects=rejects,
        get_images=fake_images,
        run_info={"run_id": "r1", "model_id": card["id"]},
        metrics=None,
        warnings=ood_warnings(preds.assign(detector="Falcon 4"), card),
        review_url="http://127.0.0.1:8765",
        gallery_per_class=8,
    )
    write_report(out, html)
    write_predictions(out, preds)
    return out


@pytest.mark.browser
def test_report_opens_without_console_errors_or_requests(report_dir, chromium_executable):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("data:", "file:")) else None)
            page.goto((report_dir / "report.html").as_uri(), wait_until="load")
            page.wait_for_load_state("networkidle")
            ids = page.eval_on_selector_all("section[id]", "els => els.map(e => e.id)")
            counts = page.eval_on_selector_all(
                "table.summary-counts td[data-count]", "els => els.map(e => [e.dataset.label, +e.dataset.count])"
            )
            session_counts = page.eval_on_selector_all(
                "table.session-counts td[data-count]",
                "els => els.map(e => [e.dataset.session, e.dataset.label, +e.dataset.count])",
            )
            broken_images = page.eval_on_selector_all(
                "img", "els => els.filter(i => !(i.complete && i.naturalWidth > 0)).length"
            )
            n_images = page.eval_on_selector_all("img", "els => els.length")
        finally:
            browser.close()
    assert errors == []
    assert requests == []
    assert list(ids) == list(SECTION_IDS)
    assert n_images > 10 and broken_images == 0
    assert dialogs == []  # the escaped <img onerror> name did not run
    back = pd.read_csv(report_dir / "predictions.csv")
    expected = back["label"].value_counts()
    assert dict(counts) == {
        "good": int(expected.get("good", 0)),
        "medium": int(expected.get("medium", 0)),
        "bad": int(expected.get("bad", 0)),
        "total": len(back),
    }
    for session, label, n in session_counts:
        rows = back[back["session"] == session]
        assert n == (len(rows) if label == "total" else int((rows["label"] == label).sum()))
