"""cryoSPARC selection through cryosparc-tools: .cs round trip with every field, the .csg result
group, the CSV fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from cryosparc.dataset import CSDAT_FORMAT, Dataset
from cryosparc_exposures import exposure_path, make_exposures, other_path
from helpers_report import make_predictions

from micrograde.pipeline.export.cryosparc import (
    CsFormatError,
    read_cs,
    result_slots,
    select_cs,
    selection_paths_csv,
    write_cs,
    write_csg,
)


@pytest.mark.parametrize(("include_medium", "fmt"), [(False, None), (True, None), (False, CSDAT_FORMAT)])
def test_cs_round_trip_keeps_every_field_and_selects(tmp_path, include_medium, fmt):
    preds = make_predictions(20)
    cs_in = make_exposures(preds)
    source = tmp_path / "J5_exposures_accepted_exported.cs"
    cs_in.save(source) if fmt is None else cs_in.save(source, format=fmt)  # both of cryoSPARC's formats
    dset = read_cs(source)
    assert dset.fields() == cs_in.fields() and len(dset) == len(cs_in)
    selected, unmatched = select_cs(dset, preds, include_medium=include_medium)
    write_cs(tmp_path / "selected.cs", selected)
    assert not (tmp_path / "selected.cs.npy").exists()
    back = Dataset.load(tmp_path / "selected.cs")
    assert back.fields() == cs_in.fields()  # every field of the user's file, uid first
    wanted = {"good", "medium"} if include_medium else {"good"}
    expected = {
        exposure_path(i, m)
        for i, (m, lab) in enumerate(zip(preds["micrograph"], preds["label"], strict=True))
        if lab in wanted
    }
    assert 0 < len(expected) < len(preds)
    assert set(back["micrograph_blob/path"]) == expected and len(back) == len(expected)
    # whole rows travel: every value equals the input row with the same uid
    src = {int(u): i for i, u in enumerate(cs_in["uid"])}
    rows = [src[int(u)] for u in back["uid"]]
    for field in cs_in.fields():
        assert np.array_equal(np.asarray(back[field]), np.asarray(cs_in[field])[rows]), field
    # what cryoSPARC itself reads: a NumPy structured array under the .cs name
    raw = np.load(tmp_path / "selected.cs", allow_pickle=False)
    assert raw.dtype.names == tuple(cs_in.fields()) and len(raw) == len(expected)
    assert sorted(unmatched) == [other_path(k) for k in range(2)]


def test_csg_is_yaml_pointing_at_the_cs(tmp_path):
    preds = make_predictions(12)
    selected, _ = select_cs(make_exposures(preds), preds)
    write_cs(tmp_path / "selected.cs", selected)
    write_csg(tmp_path / "selected.csg", "selected.cs", selected)
    doc = yaml.safe_load((tmp_path / "selected.csg").read_text())
    assert set(doc) == {"created", "group", "results", "version"}
    assert doc["group"] == {
        "name": "exposures_selected",
        "title": "Exposures selected by micrograde",
        "type": "exposure",
        "description": "Micrographs graded by micrograde",
    }
    slots = {"micrograph_blob", "ctf", "background_blob", "mscope_params"}
    assert set(doc["results"]) == slots == set(result_slots(selected))
    types = {slot: res["type"] for slot, res in doc["results"].items()}
    assert types == {
        "micrograph_blob": "exposure.micrograph_blob",
        "ctf": "exposure.ctf",
        "background_blob": "exposure.stat_blob",
        "mscope_params": "exposure.mscope_params",
    }
    for res in doc["results"].values():
        assert res["metafile"] == ">selected.cs"
        target = tmp_path / res["metafile"][1:]
        assert res["num_items"] == len(selected) == len(Dataset.load(target)) > 0
    assert str(doc["version"]).startswith("v") and str(doc["created"])[:2] == "20"


def test_empty_selection_still_round_trips(tmp_path):
    preds = make_predictions(6).assign(label="bad")
    selected, _ = select_cs(make_exposures(preds), preds)
    write_cs(tmp_path / "selected.cs", selected)
    write_csg(tmp_path / "selected.csg", "selected.cs", selected)
    back = Dataset.load(tmp_path / "selected.cs")
    assert len(back) == 0 and back.fields() == selected.fields()
    doc = yaml.safe_load((tmp_path / "selected.csg").read_text())
    assert {res["num_items"] for res in doc["results"].values()} == {0}


def test_write_cs_requires_cs_suffix_and_read_cs_rejects_wrong_files(tmp_path):
    dset = make_exposures(make_predictions(4))
    with pytest.raises(ValueError, match=r"\.cs"):
        write_cs(tmp_path / "selected", dset)
    particles = Dataset.allocate(3, [("blob/path", "O"), ("blob/idx", "<u4")])
    particles.save(tmp_path / "particles.cs")
    with pytest.raises(CsFormatError, match="particle"):
        read_cs(tmp_path / "particles.cs")
    (tmp_path / "junk.cs").write_bytes(b"not numpy")
    with pytest.raises(CsFormatError, match="junk.cs is not a cryoSPARC"):
        read_cs(tmp_path / "junk.cs")
    with pytest.raises(FileNotFoundError, match="missing.cs"):
        read_cs(tmp_path / "missing.cs")


def test_paths_csv_fallback(tmp_path):
    preds = make_predictions(15)
    n = selection_paths_csv(tmp_path / "selected_micrographs.csv", preds, include_medium=True)
    back = pd.read_csv(tmp_path / "selected_micrographs.csv")
    expected = preds.loc[preds["label"].isin(["good", "medium"]), "micrograph"].tolist()
    assert n == len(expected)
    assert back["micrograph"].tolist() == expected
    assert set(back["label"]) <= {"good", "medium"}
