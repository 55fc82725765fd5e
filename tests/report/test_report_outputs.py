"""write_outputs: every file of a report folder, the cryoSPARC pair through cryosparc-tools."""

from __future__ import annotations

import pandas as pd
import yaml
from cryosparc.dataset import Dataset
from cryosparc_exposures import exposure_path, make_exposures, other_path
from helpers_report import fake_images, make_card, make_predictions

from micrograde.pipeline.report.outputs import write_outputs


def _write(tmp_path, preds, **kw):
    return write_outputs(
        tmp_path / "run1",
        preds,
        card=make_card(),
        rejects=pd.DataFrame(columns=["path", "reason", "detail"]),
        get_images=fake_images,
        run_info={"run_id": "run1"},
        **kw,
    )


def test_report_folder_with_a_cryosparc_selection(tmp_path):
    preds = make_predictions(16)
    make_exposures(preds).save(tmp_path / "J3_exposures_accepted_exported.cs")
    out = _write(tmp_path, preds, cs=tmp_path / "J3_exposures_accepted_exported.cs", include_medium=True)
    folder = tmp_path / "run1"
    assert out.cryosparc == [folder / "selected.cs", folder / "selected.csg"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["report.html", "predictions.csv", "predictions.parquet", "selected.star", "selected.cs", "selected.csg"]
    )
    kept = Dataset.load(folder / "selected.cs")
    wanted = [
        exposure_path(i, m)
        for i, (m, lab) in enumerate(zip(preds["micrograph"], preds["label"], strict=True))
        if lab in ("good", "medium")
    ]
    assert list(kept["micrograph_blob/path"]) == wanted
    doc = yaml.safe_load((folder / "selected.csg").read_text())
    assert {r["num_items"] for r in doc["results"].values()} == {len(wanted)}
    assert {r["metafile"] for r in doc["results"].values()} == {">selected.cs"}
    assert sorted(out.unmatched) == [other_path(k) for k in range(2)]
    assert out.counts == preds["label"].value_counts().reindex(["good", "medium", "bad"]).to_dict()
    html = out.report.read_text(encoding="utf-8")
    assert 'id="out-of-fold"' in html and html.rstrip().endswith("</html>")


def test_without_a_cs_the_selection_is_a_path_list(tmp_path):
    preds = make_predictions(10)
    out = _write(tmp_path, preds)
    assert out.cryosparc == [tmp_path / "run1" / "selected_micrographs.csv"]
    listed = pd.read_csv(out.cryosparc[0])
    assert listed["micrograph"].tolist() == preds.loc[preds["label"] == "good", "micrograph"].tolist()
