"""report.html: self-contained, every section present, counts match predictions, text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from helpers_report import fake_images, make_card, make_predictions

from micrograde.pipeline.report.gallery import gallery_sample
from micrograde.pipeline.report.ood import ood_warnings
from micrograde.pipeline.report.page import (
    PREDICTION_COLUMNS,
    SECTION_IDS,
    build_report,
    write_predictions,
    write_report,
)

REVIEW = "http://127.0.0.1:8000"
RUN_INFO = {
    "run_id": "20260301-101500-ab12",
    "created_at": "2026-03-01T10:15:00",
    "micrograde_version": "0.1.0",
    "command_line": "micrograde assess /data --workspace ws",
    "inputs_digest": "d1g3st",
    "model_id": "m-1",
}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.urls, self.scripts, self.counts, self.text = [], [], 0, [], []
        self.review_links = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if tag == "a" and "review" in (a.get("class") or ""):
            self.review_links.append(a["href"])
        if "data-count" in a:
            self.counts.append(a)

    def handle_data(self, data):
        self.text.append(data)


def _rejects():
    return pd.DataFrame(
        {
            "path": ["/data/s1/broken.mrc", "/data/s1/tiny.mrc", "/data/s2/x.txt"],
            "reason": ["corrupt", "too-small", "unsupported"],
            "detail": ["header truncated", "64x64 px", "not a micrograph"],
        }
    )


@pytest.fixture(scope="module")
def report():
    preds = make_predictions(40)
    preds.loc[5, "name"] = "<script>alert('x')</script>.mrc"
    preds.loc[5, "micrograph"] = "/data/s2/<script>alert('x')</script>.mrc"
    preds.loc[5, "label"] = "bad"
    preds.loc[5, "confidence"] = 0.01  # least confident: always in the gallery
    card = make_card()
    preds.loc[preds["session"] == "s2", "detector"] = "Falcon <4>"
    warnings = ood_warnings(preds, card)
    html = build_report(
        preds,
        card=card,
        rejects=_rejects(),
        get_images=fake_images,
        run_info=RUN_INFO,
        metrics=None,
        warnings=warnings,
        review_url=REVIEW,
        gallery_per_class=6,
    )
    parsed = _Collector()
    parsed.feed(html)
    return preds, html, parsed


def test_every_section_is_present(report):
    _, _, parsed = report
    for sid in SECTION_IDS:
        assert sid in parsed.ids, sid


def test_self_contained_no_network_no_script(report):
    _, html, parsed = report
    assert parsed.scripts == 0
    external = [u for u in parsed.urls if re.match(r"^(https?:)?//", u)]
    assert external and all(u.startswith(f"{REVIEW}/micrograph/") and u.endswith("?review=1") for u in external)
    assert all(u.startswith(("data:image/png;base64,", "#", f"{REVIEW}/")) for u in parsed.urls)
    assert "@import" not in html and "url(" not in html


def test_counts_match_predictions(report, tmp_path):
    preds, _, parsed = report
    csv_path, pq_path = write_predictions(tmp_path, preds)
    back = pd.read_csv(csv_path)
    overall = {
        a["data-label"]: int(a["data-count"]) for a in parsed.counts if "data-label" in a and "data-session" not in a
    }
    expected = back["label"].value_counts().to_dict()
    assert overall == {**{k: expected.get(k, 0) for k in ("good", "medium", "bad")}, "total": len(back)}
    per_session = {
        (a["data-session"], a["data-label"]): int(a["data-count"]) for a in parsed.counts if "data-session" in a
    }
    for (session, label), n in per_session.items():
        rows = back[back["session"] == session]
        assert n == (len(rows) if label == "total" else int((rows["label"] == label).sum()))
    rejects = {a["data-reason"]: int(a["data-count"]) for a in parsed.counts if "data-reason" in a}
    assert rejects == {"corrupt": 1, "too-small": 1, "unsupported": 1}


def test_text_is_escaped(report):
    _, html, parsed = report
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.mrc" in html  # markupsafe's escapes
    assert "Falcon &lt;4&gt;" in html
    assert any("<script>alert('x')</script>.mrc" in t for t in parsed.text)  # shown as text


def test_gallery_links_and_least_confident_first(report):
    preds, html, parsed = report
    ids = set(preds["micrograph_id"].astype(str))
    for link in parsed.review_links:
        mid = re.match(rf"^{re.escape(REVIEW)}/micrograph/(\d+)\?review=1$", link).group(1)
        assert mid in ids
    bad_section = html[html.index('id="gallery-bad"') : html.index('id="scores"')]
    shown = [int(m) for m in re.findall(r'data-micrograph-id="(\d+)"', bad_section)]
    conf = preds.set_index("micrograph_id").loc[shown, "confidence"].to_numpy()
    assert list(conf) == sorted(conf) and shown[0] == int(preds.loc[5, "micrograph_id"])


def test_gallery_sample_mixes_least_confident_and_random():
    rows = make_predictions(50)
    sample = gallery_sample(rows, 10)
    assert len(sample) == 10
    lowest = rows.nsmallest(5, "confidence").index
    assert set(lowest) <= set(sample.index)
    assert sample["confidence"].is_monotonic_increasing
    assert gallery_sample(rows.head(4), 10).index.tolist() == rows.head(4).sort_values("confidence").index.tolist()


def test_report_without_labels_card_or_images_still_has_every_section(tmp_path):
    preds = make_predictions(8, labelled=0.0, with_time=False)
    preds = preds.drop(columns=["consensus"])

    def broken(key):
        raise FileNotFoundError(key)

    html = build_report(
        preds,
        card=None,
        rejects=None,
        get_images=broken,
        run_info={},
        metrics=None,
        warnings=[],
        review_url=None,
        gallery_per_class=4,
    )
    parsed = _Collector()
    parsed.feed(html)
    assert set(SECTION_IDS) <= set(parsed.ids)
    assert "image unavailable" in html and "consensus label" in html and "No model card" in html
    assert not parsed.review_links
    path = write_report(tmp_path / "run1", html)
    assert path.read_text(encoding="utf-8") == html


def test_predictions_files_column_order_and_round_trip(tmp_path):
    preds = make_predictions(10)
    shuffled = preds[list(reversed(preds.columns))]
    csv_path, pq_path = write_predictions(tmp_path, shuffled)
    back = pd.read_csv(csv_path)
    assert list(back.columns[:9]) == list(PREDICTION_COLUMNS[:9])
    pq = pd.read_parquet(pq_path)
    assert list(pq.columns) == list(back.columns)
    assert pq["micrograph"].tolist() == preds["micrograph"].tolist()
    assert (abs(pq["p_good"] - preds["p_good"]) < 1e-12).all()
    with pytest.raises(ValueError, match="unknown label"):
        write_predictions(tmp_path, preds.assign(label="great"))


class _Markup(HTMLParser):
    """Every tag and attribute of a page, and its text, as the browser would parse them."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_strings_are_shown_as_text_never_as_markup():
    script = "<script>alert(1)</script>.mrc"
    session = "&\"'<"
    preds = make_predictions(12)
    preds.loc[0, ["micrograph", "name", "label", "confidence"]] = [f"/data/{script}", script, "good", 0.01]
    preds.loc[preds["session"] == "s2", "session"] = session
    preds.loc[preds["session"] == session, "detector"] = "<b onmouseover=alert(2)>K2</b>"
    card = make_card(id="m-<i>1</i>")
    card["evaluation"] = {
        "protocol": "<u>lo</u>",
        "protocol_note": "held out: <img src=x onerror=alert(3)>",
        "chosen": "<head>",
        "baseline": "base",
        "candidates": [{"name": "<head>", "description": "</table><script>alert(4)</script>", "macro_f1": 0.5}],
        "oof": {"per_session": [{"session": session, "n": 4, "macro_f1": 0.5, "accuracy": 0.5}]},
        "warnings": ["only 2 labels of class <medium>"],
    }
    rejects = pd.DataFrame({"path": [f"/in/{script}"], "reason": ["<corrupt>"], "detail": ["&amp; \"quoted\""]})
    html = build_report(
        preds,
        card=card,
        rejects=rejects,
        get_images=fake_images,
        run_info={"run_id": "r<1>", "command_line": ["micrograde", "assess", f"/in/{script}"]},
        warnings=ood_warnings(preds, card),
        review_url=REVIEW,
        gallery_per_class=12,
    )
    page = _Markup()
    page.feed(html)
    assert "script" not in page.tags and not {"b", "u", "i"} & set(page.tags) and page.tags.count("head") == 1
    assert page.tags.count("img") == sum(1 for _ in re.finditer(r"<img ", html))  # only the report's own images
    assert not [name for name, _ in page.attrs if name.startswith("on")]
    assert script not in html and session not in html and "<corrupt>" not in html
    text = "".join(page.text)
    for raw in (script, f"/in/{script}", "<corrupt>", "&amp; \"quoted\"", "<head>", "</table><script>alert(4)</script>",
                "held out: <img src=x onerror=alert(3)>", "only 2 labels of class <medium>", "m-<i>1</i>", "r<1>"):
        assert raw in text, raw  # shown, as text
    assert f"session {session}" in text and "<b onmouseover=alert(2)>K2</b>" in text
    # attribute values parse back to the very strings: the session, the file path
    assert ("data-session", session) in page.attrs and ("title", f"/data/{script}") in page.attrs
