"""The report's out-of-fold section: every figure of the card's ``evaluation`` block, n/a for nulls,
the note for older cards."""

from __future__ import annotations

import base64
import copy
import io
from html.parser import HTMLParser

import pytest
from helpers_report import make_card, make_predictions
from PIL import Image

from micrograde.pipeline.report.oof import NO_CARD, NO_EVALUATION
from micrograde.pipeline.report.page import SECTION_IDS, build_report

EVALUATION = {
    "protocol": "leave-one-session-out",
    "protocol_note": (
        "3 labelled sessions: each session is held out once; every choice was made from the out-of-fold predictions"
    ),
    "group_by": "session",
    "n_folds": 3,
    "n_labelled": 175,
    "class_counts": {"good": 60, "medium": 55, "bad": 60},
    "chosen": "combined",
    "baseline": "baseline",
    "candidates": [
        {
            "name": "baseline",
            "description": "random forest on the spectrum profile and the five scores",
            "macro_f1": 0.81,
            "accuracy": 0.82,
            "balanced_accuracy": 0.808,
            "ece": 0.06,
            "log_loss": 0.52,
            "skipped": None,
        },
        {
            "name": "combined",
            "description": "frozen backbone features + spectrum profile + scores, boosted trees",
            "macro_f1": 0.903,
            "accuracy": 0.905,
            "balanced_accuracy": 0.901,
            "ece": 0.041,
            "log_loss": 0.31,
            "skipped": None,
        },
        {
            "name": "finetune",
            "description": "fine-tuned backbone",
            "macro_f1": None,
            "accuracy": None,
            "balanced_accuracy": None,
            "ece": None,
            "log_loss": None,
            "skipped": "not evaluated: no GPU (use --finetune cv)",
        },
    ],
    "oof": {
        "labels": ["good", "medium", "bad"],
        "n": 175,
        "macro_f1": 0.903,
        "accuracy": 0.905,
        "balanced_accuracy": 0.901,
        "ece": 0.041,
        "log_loss": 0.31,
        "recall": {"good": 0.95, "medium": 0.855, "bad": 0.9},
        "precision": {"good": 0.904, "medium": 0.87, "bad": 0.947},
        "confusion_matrix": [[57, 3, 0], [5, 47, 3], [1, 5, 54]],
        "per_session": [
            {"session": "s1", "n": 60, "macro_f1": 0.92, "accuracy": 0.93},
            {"session": "s2", "n": 55, "macro_f1": 0.88, "accuracy": 0.89},
            {"session": "s3", "n": 60, "macro_f1": 0.905, "accuracy": 0.9},
        ],
    },
    "baseline_oof": {
        "labels": ["good", "medium", "bad"],
        "n": 175,
        "macro_f1": 0.81,
        "per_session": [
            {"session": "s1", "n": 60, "macro_f1": 0.84, "accuracy": 0.85},
            {"session": "s2", "n": 55, "macro_f1": 0.77, "accuracy": 0.8},
            {"session": "s3", "n": 60, "macro_f1": 0.81, "accuracy": 0.82},
        ],
    },
    "temperature": 1.37,
    "warnings": ["only 2 labels of class medium in session s2: its per-session recall is noisy"],
}
METRICS = ("macro_f1", "accuracy", "balanced_accuracy", "ece", "log_loss")


class _Section(HTMLParser):
    """Text of one section of the page: tables (by class) as rows of cell texts, rows' attributes,
    paragraphs, list items and images."""

    def __init__(self, sid: str):
        super().__init__()
        self.sid, self.depth = sid, 0
        self.tables: dict[str, list[list[str]]] = {}
        self.rows: list[dict] = []
        self.cells: list[tuple[dict, str]] = []
        self.notes, self.items, self.images, self.text = [], [], [], []
        self._table, self._cell, self._attrs, self._buf = None, None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.depth = 1 if a.get("id") == self.sid else (self.depth + 1 if self.depth else 0)
            return
        if not self.depth:
            return
        if tag == "table":
            self._table = self.tables.setdefault(a.get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
            self.rows.append(a)
        elif tag in ("td", "th") and self._table is not None:
            self._cell, self._attrs = [], a
        elif tag in ("p", "li"):
            self._buf = []
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag):
        if tag == "section" and self.depth:
            self.depth -= 1
        if not self.depth:
            return
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            self._table[-1].append(text)
            self.cells.append((self._attrs, text))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag in ("p", "li") and self._buf is not None:
            (self.notes if tag == "p" else self.items).append("".join(self._buf).strip())
            self._buf = None

    def handle_data(self, data):
        if not self.depth:
            return
        self.text.append(data)
        for buf in (self._cell, self._buf):
            if buf is not None:
                buf.append(data)


def _section(card) -> _Section:
    html = build_report(
        make_predictions(9), card=card, rejects=None, get_images=None, run_info={"run_id": "r"}, review_url=None
    )
    parsed = _Section("out-of-fold")
    parsed.feed(html)
    return parsed


def _shown(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def test_section_sits_right_after_the_summary():
    assert SECTION_IDS[:2] == ("summary", "out-of-fold")


def test_every_figure_of_the_evaluation_block_is_shown():
    ev = EVALUATION
    page = _section(make_card(evaluation=copy.deepcopy(ev)))
    assert ev["protocol_note"] in page.notes
    facts = dict(page.tables["kv"][:8])
    assert facts["protocol"] == "leave-one-session-out" and facts["grouped by"] == "session"
    assert facts["folds"] == "3" and facts["labelled micrographs"] == "175"
    assert facts["labels per class"] == "good: 60, medium: 55, bad: 60"
    assert facts["calibration temperature"] == "1.37" and facts["chosen head"] == "combined"

    # candidates: every figure, the chosen and the baseline marked, the skipped reason
    header, *rows = page.tables["candidates"]
    assert header[2:7] == ["macro-F1", "accuracy", "balanced accuracy", "ECE", "log loss"]
    by_head = {r[0].split()[0]: r for r in rows}
    for cand in ev["candidates"]:
        assert by_head[cand["name"]][2:7] == [_shown(cand[k]) for k in METRICS], cand["name"]
    assert by_head["finetune"][7] == "not evaluated: no GPU (use --finetune cv)"
    marks = {r.get("data-head"): r.get("class", "") for r in page.rows if r.get("data-head")}
    assert marks == {"baseline": "baseline", "combined": "chosen", "finetune": ""}
    assert by_head["combined"][0] == "combined chosen" and by_head["baseline"][0] == "baseline baseline"

    # the chosen head's out-of-fold figures
    oof = dict(page.tables["kv"][8:])
    assert oof == {
        "micrographs": "175",
        "macro-F1": "0.903",
        "accuracy": "0.905",
        "balanced accuracy": "0.901",
        "ECE": "0.041",
        "log loss": "0.31",
    }
    matrix = {(a["data-consensus"], a["data-predicted"]): int(t) for a, t in page.cells if "data-consensus" in a}
    labels = ev["oof"]["labels"]
    assert matrix == {
        (labels[i], labels[j]): n for i, row in enumerate(ev["oof"]["confusion_matrix"]) for j, n in enumerate(row)
    }
    assert page.tables["confusion"][0] == ["consensus \\ predicted", *labels]
    assert [r[0] for r in page.tables["confusion"][1:]] == labels  # rows = consensus
    per_class = {r[0]: r[1:] for r in page.tables["per-class"][1:]}
    assert per_class == {
        lab: [_shown(ev["oof"]["recall"][lab]), _shown(ev["oof"]["precision"][lab])] for lab in labels
    }
    header, *sessions = page.tables["per-session"]
    assert header == ["session", "n", "macro-F1", "accuracy", "baseline macro-F1"]
    base = {s["session"]: s["macro_f1"] for s in ev["baseline_oof"]["per_session"]}
    assert sessions == [
        [s["session"], str(s["n"]), _shown(s["macro_f1"]), _shown(s["accuracy"]), _shown(base[s["session"]])]
        for s in ev["oof"]["per_session"]
    ]
    assert page.items == ev["warnings"]

    # the heat-map beside the table: a real PNG
    (heatmap,) = [i for i in page.images if i.get("alt") == "out-of-fold confusion matrix"]
    png = base64.b64decode(heatmap["src"].removeprefix("data:image/png;base64,"))
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and 150 < im.size[0] < 400


def test_null_figures_show_as_na():
    ev = copy.deepcopy(EVALUATION)
    ev["candidates"][1]["macro_f1"] = None
    ev["oof"].update(macro_f1=None, ece=None)
    ev["oof"]["recall"]["medium"] = None
    ev["oof"]["precision"]["bad"] = None
    ev["oof"]["per_session"][1]["macro_f1"] = None
    ev["oof"]["confusion_matrix"][2][1] = None
    ev["temperature"] = None
    del ev["baseline_oof"]
    page = _section(make_card(evaluation=ev))
    rows = {r[0].split()[0]: r for r in page.tables["candidates"][1:]}
    assert rows["combined"][2:4] == ["n/a", "0.905"]
    oof = dict(page.tables["kv"][8:])
    assert oof["macro-F1"] == "n/a" and oof["ECE"] == "n/a" and oof["accuracy"] == "0.905"
    assert dict(page.tables["kv"][:8])["calibration temperature"] == "n/a"
    per_class = {r[0]: r[1:] for r in page.tables["per-class"][1:]}
    assert per_class["medium"] == ["n/a", "0.87"] and per_class["bad"] == ["0.9", "n/a"]
    header, *sessions = page.tables["per-session"]
    assert header == ["session", "n", "macro-F1", "accuracy"]  # no baseline figures in the card
    assert sessions[1] == ["s2", "55", "n/a", "0.89"]
    cells = {(a["data-consensus"], a["data-predicted"]): t for a, t in page.cells if "data-consensus" in a}
    assert cells[("bad", "medium")] == "n/a" and cells[("bad", "bad")] == "54"
    assert not [i for i in page.images if i.get("alt") == "out-of-fold confusion matrix"]  # no heat-map of a gap


@pytest.mark.parametrize(
    ("card", "message"),
    [(make_card(), NO_EVALUATION), (make_card(evaluation=None), NO_EVALUATION), (None, NO_CARD)],
    ids=["older card", "null block", "no card"],
)
def test_cards_without_an_evaluation_say_so(card, message):
    page = _section(card)
    assert page.notes == [message]
    assert not page.tables and not page.images
    if card is not None:
        assert message == "This model's card has no out-of-fold evaluation (trained by micrograde < 0.2)"


def test_a_malformed_block_still_renders():
    ev = {"protocol": "stratified-k-fold", "candidates": [{"name": "baseline"}], "oof": {"confusion_matrix": [[1, 2]]}}
    page = _section(make_card(evaluation=ev))
    assert "Protocol: stratified-k-fold." in page.notes
    assert "The card's out-of-fold confusion matrix is missing or does not match its classes." in page.notes
    assert page.tables["candidates"][1][2:7] == ["n/a"] * 5
    assert "The card lists no per-session figures." in page.notes


def test_a_card_whose_estimate_repeats_the_choice_per_fold_shows_both_figures():
    ev = copy.deepcopy(EVALUATION)
    ev["fold_choices"] = ["combined", "physics", "combined"]
    ev["chosen_oof"] = {**ev["oof"], "macro_f1": 0.934}
    page = _section(make_card(evaluation=ev))
    facts = dict(page.tables["kv"][:10])
    assert facts["heads chosen inside the folds"] == "combined, physics, combined"
    assert facts["the chosen head's own out-of-fold macro-F1 (optimistic: it was chosen on it)"] == "0.934"
    assert dict(page.tables["kv"][10:])["macro-F1"] == "0.903"  # the estimate shown is the procedure's
    assert any("the head chosen inside each fold; shipped: combined" in t for t in page.text)
