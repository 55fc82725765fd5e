"""cryoSPARC selection: .cs round trip with the input dtype, the .csg result group, the CSV fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
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

EXPOSURE_DTYPE = np.dtype(
    [
        ("uid", "<u8"),
        ("micrograph_blob/path", "S120"),
        ("micrograph_blob/idx", "<u4"),
        ("micrograph_blob/shape", "<u4", (2,)),
        ("micrograph_blob/psize_A", "<f4"),
        ("ctf/type", "S16"),
        ("ctf/df1_A", "<f4"),
        ("ctf/df2_A", "<f4"),
        ("mscope_params/accel_kv", "<f4"),
    ]
)


def _exposures(preds: pd.DataFrame, extra: int = 2) -> np.ndarray:
    # cryoSPARC's own copies: J-numbered import folder, motion-corrected names
    paths = [
        f"J2/motioncorrected/{i:021d}_{Path(m).stem}_fractions_patch_aligned_doseweighted.mrc"
        for i, m in enumerate(preds["micrograph"])
    ]
    paths += [f"J2/motioncorrected/{k:021d}_Other_{k}_patch_aligned_doseweighted.mrc" for k in range(extra)]
    arr = np.zeros(len(paths), dtype=EXPOSURE_DTYPE)
    rng = np.random.default_rng(3)
    arr["uid"] = rng.integers(1, 2**63, size=len(paths), dtype=np.uint64)
    arr["micrograph_blob/path"] = [p.encode() for p in paths]
    arr["micrograph_blob/shape"] = (4092, 5760)
    arr["micrograph_blob/psize_A"] = 0.83
    arr["ctf/type"] = b"spline"
    arr["ctf/df1_A"] = rng.uniform(8000, 20000, len(paths))
    arr["ctf/df2_A"] = arr["ctf/df1_A"] - 150
    arr["mscope_params/accel_kv"] = 300
    return arr


@pytest.mark.parametrize("include_medium", [False, True])
def test_cs_round_trip_keeps_dtype_and_selects(tmp_path, include_medium):
    preds = make_predictions(20)
    cs_in = _exposures(preds)
    np.save(tmp_path / "exposures.npy", cs_in)
    (tmp_path / "exposures.npy").rename(tmp_path / "J5_exposures_accepted.cs")
    arr = read_cs(tmp_path / "J5_exposures_accepted.cs")
    assert arr.dtype == cs_in.dtype
    selected, unmatched = select_cs(arr, preds, include_medium=include_medium)
    write_cs(tmp_path / "selected.cs", selected)
    back = np.load(tmp_path / "selected.cs")
    assert back.dtype == cs_in.dtype
    wanted = {"good", "medium"} if include_medium else {"good"}
    expected = {
        f"J2/motioncorrected/{i:021d}_{Path(m).stem}_fractions_patch_aligned_doseweighted.mrc".encode()
        for i, (m, lab) in enumerate(zip(preds["micrograph"], preds["label"], strict=True))
        if lab in wanted
    }
    assert set(back["micrograph_blob/path"].tolist()) == expected
    assert len(back) == len(expected)
    # whole rows travel: uid and CTF values equal those of the input rows
    by_uid = {int(r["uid"]): r for r in cs_in}
    for row in back:
        src = by_uid[int(row["uid"])]
        assert row.tobytes() == src.tobytes()
    assert sorted(unmatched) == [
        f"J2/motioncorrected/{k:021d}_Other_{k}_patch_aligned_doseweighted.mrc" for k in range(2)
    ]
    assert not (tmp_path / "selected.cs.npy").exists()


def test_csg_is_yaml_pointing_at_the_cs(tmp_path):
    preds = make_predictions(12)
    selected, _ = select_cs(_exposures(preds), preds)
    write_cs(tmp_path / "selected.cs", selected)
    write_csg(tmp_path / "selected.csg", "selected.cs", selected)
    doc = yaml.safe_load((tmp_path / "selected.csg").read_text())
    assert doc["group"]["type"] == "exposure"
    assert doc["group"]["name"] == "exposures_selected"
    assert set(doc["results"]) == {"micrograph_blob", "ctf", "mscope_params"} == set(result_slots(selected.dtype))
    for slot, res in doc["results"].items():
        assert res["metafile"] == ">selected.cs"
        assert (tmp_path / res["metafile"][1:]).is_file()
        assert res["num_items"] == len(selected) == len(np.load(tmp_path / "selected.cs"))
        assert res["type"] == f"exposure.{slot}"
    assert "created" in doc and str(doc["version"]).startswith("v")


def test_write_cs_requires_cs_suffix_and_read_cs_rejects_wrong_files(tmp_path):
    arr = _exposures(make_predictions(4))
    with pytest.raises(ValueError, match=r"\.cs"):
        write_cs(tmp_path / "selected", arr)
    particles = np.zeros(3, dtype=[("uid", "<u8"), ("blob/path", "S20")])
    with open(tmp_path / "particles.cs", "wb") as fh:
        np.save(fh, particles)
    with pytest.raises(CsFormatError, match="particle"):
        read_cs(tmp_path / "particles.cs")
    (tmp_path / "junk.cs").write_bytes(b"not numpy")
    with pytest.raises(CsFormatError):
        read_cs(tmp_path / "junk.cs")


def test_paths_csv_fallback(tmp_path):
    preds = make_predictions(15)
    n = selection_paths_csv(tmp_path / "selected_micrographs.csv", preds, include_medium=True)
    back = pd.read_csv(tmp_path / "selected_micrographs.csv")
    expected = preds.loc[preds["label"].isin(["good", "medium"]), "micrograph"].tolist()
    assert n == len(expected)
    assert back["micrograph"].tolist() == expected
    assert set(back["label"]) <= {"good", "medium"}
