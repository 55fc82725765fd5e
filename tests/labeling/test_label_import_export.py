"""Importing labels CSVs (all or nothing, errors with line numbers) and the export round trip."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers_label import add_micrographs, label_ws  # noqa: F401 - fixture
from sqlalchemy import func, select

from micrograde.labeling import store
from micrograde.labeling.errors import LabelImportError
from micrograde.labeling.export import agreement_sidecar, export_labels
from micrograde.pipeline.catalogue.schema import Annotation, Annotator


def counts(ws):
    with ws.session() as s:
        return (
            s.execute(select(func.count(Annotation.id))).scalar_one(),
            s.execute(select(func.count(Annotator.id))).scalar_one(),
        )


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_import_by_path_and_name(label_ws, tmp_path):
    add_micrographs(label_ws, 3)
    csv = write(
        tmp_path / "labels.csv",
        "micrograph,label,reasons,comment\n"
        "/data/grid1/mic_000.mrc,good,,\n"
        "mic_001.mrc, Bad ,\"crystalline-ice;drift\",\"ring at 3.7 A, strong\"\n"
        "\n"
        "mic_002.mrc,medium,thick-ice,\n",
    )
    res = store.import_labels(label_ws, csv, "ana", "postdoc")
    assert (res.n_rows, res.n_written, res.n_unchanged, res.created_annotator) == (3, 3, 0, True)
    latest = store.latest_annotations(label_ws)
    assert list(latest["label"]) == ["good", "bad", "medium"]
    assert set(latest["source"]) == {"import"} and set(latest["expertise"]) == {"postdoc"}
    hist = store.annotation_history(label_ws)
    assert hist.loc[1, "reasons"] == "crystalline-ice,drift" and hist.loc[1, "comment"] == "ring at 3.7 A, strong"
    again = store.import_labels(label_ws, csv, "ana", "postdoc")  # idempotent
    assert (again.n_written, again.n_unchanged, again.created_annotator) == (0, 3, False)
    assert counts(label_ws) == (3, 1)


def test_import_errors_have_line_numbers_and_write_nothing(label_ws, tmp_path):
    add_micrographs(label_ws, 2, session="grid1")
    add_micrographs(label_ws, 2, session="grid2")  # same file names in another session
    store.add_annotator(label_ws, "ben", "grad")
    before = counts(label_ws)
    csv = write(
        tmp_path / "bad.csv",
        "micrograph,label,reasons\n"
        "/data/grid1/mic_000.mrc,good,\n"  # line 2: fine
        "/data/nowhere/x.mrc,good,\n"  # line 3: unknown micrograph
        "/data/grid1/mic_001.mrc,excellent,\n"  # line 4: bad label
        "/data/grid2/mic_000.mrc,bad,\"drift;aliens\"\n"  # line 5: bad reason tag
        "mic_001.mrc,bad,\n"  # line 6: ambiguous file name (grid1 and grid2)
        "\"/data/grid1/\nmic_000.mrc\",good,\n"  # lines 7-8: a quoted newline (unknown)
        "/data/grid1/mic_000.mrc,bad,\n",  # line 9: listed twice
    )
    with pytest.raises(LabelImportError) as info:
        store.import_labels(label_ws, csv, "ana", "postdoc")
    problems = {p.line: p.message for p in info.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 9]
    assert "unknown micrograph" in problems[3]
    assert "unknown label 'excellent'" in problems[4]
    assert "aliens" in problems[5]
    assert (
        "ambiguous" in problems[6]
        and "/data/grid1/mic_001.mrc" in problems[6]
        and "/data/grid2/mic_001.mrc" in problems[6]
    )
    assert "line 2" in problems[9]
    assert "line 3:" in str(info.value)
    assert counts(label_ws) == before  # no annotation, no new annotator

    with pytest.raises(LabelImportError, match="missing column"):
        store.import_labels(label_ws, write(tmp_path / "h.csv", "file,grade\nx,good\n"), "ana", "postdoc")
    with pytest.raises(LabelImportError, match="exists with expertise"):
        store.import_labels(label_ws, write(tmp_path / "ok.csv", "micrograph,label\n/data/grid1/mic_000.mrc,good\n"),
                            "ben", "postdoc")
    with pytest.raises(LabelImportError, match="cannot read"):
        store.import_labels(label_ws, tmp_path / "absent.csv", "ana", "postdoc")
    assert counts(label_ws) == before


def test_export_round_trip(label_ws, tmp_path):
    ids = add_micrographs(label_ws, 4)
    s, _ = store.add_annotator(label_ws, "sen", "senior-scientist")
    g, _ = store.add_annotator(label_ws, "gra", "grad")
    session, _ = store.add_annotator(label_ws, "session", "undergrad")  # collides with a fixed column
    plan = {ids[0]: {"sen": "good", "gra": "good"}, ids[1]: {"sen": "bad", "gra": "good", "session": "good"},
            ids[2]: {"gra": "medium"}}
    who = {"sen": s.id, "gra": g.id, "session": session.id}
    for mid, labs in plan.items():
        for name, lab in labs.items():
            store.annotate(label_ws, mid, who[name], lab)
    out = tmp_path / "out" / "labels.csv"
    table = export_labels(label_ws, out)
    back = pd.read_csv(out, keep_default_na=False)
    assert list(back.columns[:7]) == [
        "micrograph",
        "name",
        "session",
        "consensus",
        "disputed",
        "n_annotators",
        "support",
    ]
    assert set(back.columns[7:]) == {"sen", "gra", "annotator:session"}
    assert len(back) == len(table) == 3  # ids[3] has no label
    rows = back.set_index("name")
    assert rows.loc["mic_000.mrc", "consensus"] == "good" and rows.loc["mic_000.mrc", "sen"] == "good"
    # 1: senior bad (4) vs grad + undergrad good (2 + 1): bad, disputed
    assert rows.loc["mic_001.mrc", "consensus"] == "bad" and bool(rows.loc["mic_001.mrc", "disputed"])
    assert rows.loc["mic_001.mrc", "annotator:session"] == "good"
    assert rows.loc["mic_002.mrc", "sen"] == "" and rows.loc["mic_002.mrc", "n_annotators"] == 1
    assert list(back["micrograph"]) == [f"/data/grid1/mic_00{i}.mrc" for i in range(3)]
    assert set(back["session"]) == {"grid1"}
    side = json.loads(agreement_sidecar(out).read_text())
    assert side["n_labels"] == 6 and side["n_annotators"] == 3 and "fleiss_kappa" in side
    assert not list(out.parent.glob("*.part"))


def test_export_with_no_labels(label_ws, tmp_path):
    add_micrographs(label_ws, 2)
    table = export_labels(label_ws, tmp_path / "e.csv")
    assert table.empty and list(pd.read_csv(tmp_path / "e.csv").columns)[:4] == [
        "micrograph",
        "name",
        "session",
        "consensus",
    ]


def test_import_by_relative_path_tail(label_ws, tmp_path):
    add_micrographs(label_ws, 2, session="grid1")
    add_micrographs(label_ws, 2, session="grid2")  # same file names under /data/grid2
    csv = write(tmp_path / "rel.csv", "micrograph,label\ngrid2/mic_000.mrc,bad\n./grid1/mic_001.mrc,good\n")
    store.import_labels(label_ws, csv, "ana", "postdoc")
    latest = store.latest_annotations(label_ws).set_index("micrograph")
    assert latest.loc["/data/grid2/mic_000.mrc", "label"] == "bad"
    assert latest.loc["/data/grid1/mic_001.mrc", "label"] == "good"
    ambiguous = write(tmp_path / "amb.csv", "micrograph,label\nmic_000.mrc,bad\n")
    with pytest.raises(LabelImportError, match="ambiguous"):
        store.import_labels(label_ws, ambiguous, "ana", "postdoc")
