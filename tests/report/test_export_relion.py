"""RELION selection: name matching, reading user stars, selected.star round trips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import starfile
from helpers_report import make_predictions

from micrograde.pipeline.export.relion import (
    StarFormatError,
    read_star,
    selection_star,
    write_star,
)
from micrograde.pipeline.io.names import match_names, match_names_detailed, name_key

REAL_STAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "Ucsf_stack_1142_DW_autopick.star"


def test_name_key_strips_motion_suffixes_and_extensions():
    assert name_key("MotionCorr/job002/Movies/x_fractions.mrc") == name_key("/abs/x.mrc")
    assert name_key("a/b/x_EER.eer") == name_key("x.tif") == name_key("x_DW.mrc") == name_key("x_doseweighted.mrcs")
    assert name_key("000003@stack.mrcs") != name_key("000004@stack.mrcs")
    assert name_key("000003@a/stack.mrcs") == name_key("3@/data/stack.mrcs")
    # cryoSPARC: numeric uid prefix and patch-motion suffixes
    assert name_key("J3/motioncorrected/014209842523478453917_x_fractions_patch_aligned_doseweighted.mrc") == name_key(
        "x.tif"
    )


def test_match_names_paths_suffixes_and_ambiguity():
    mics = [
        "/data/s1/Movies/x.mrc",
        "/data/s1/Movies/y.mrc",
        "/data/s2/Movies/z.mrc",
        "/data/s3/Movies/z.mrc",
        "/data/s4/Movies/w.mrc",
        "/data/s4/Movies/w_DW.mrc",
    ]
    got = match_names_detailed(
        [
            "MotionCorr/job002/Movies/x_fractions.mrc",
            "Movies/y.mrc",
            "Movies/z.mrc",
            "s3/Movies/z.mrc",
            "q.mrc",
            "w_DW.mrc",
            "/data/s1/Movies/x.mrc",
        ],
        mics,
    )
    assert got.mapping["MotionCorr/job002/Movies/x_fractions.mrc"] == "/data/s1/Movies/x.mrc"
    assert got.mapping["Movies/y.mrc"] == "/data/s1/Movies/y.mrc"
    assert got.mapping["Movies/z.mrc"] is None  # two sessions hold a z.mrc in Movies/
    assert got.ambiguous["Movies/z.mrc"] == ["/data/s2/Movies/z.mrc", "/data/s3/Movies/z.mrc"]
    assert got.mapping["s3/Movies/z.mrc"] == "/data/s3/Movies/z.mrc"  # a longer shared folder breaks the tie
    assert got.mapping["q.mrc"] is None
    assert got.mapping["w_DW.mrc"] == "/data/s4/Movies/w_DW.mrc"  # the exact file name wins
    assert got.mapping["/data/s1/Movies/x.mrc"] == "/data/s1/Movies/x.mrc"
    assert set(got.unmatched) == {"Movies/z.mrc", "q.mrc"}
    assert match_names(["Movies/y.mrc"], mics) == {"Movies/y.mrc": "/data/s1/Movies/y.mrc"}


def _user_star(
    path: Path, predictions: pd.DataFrame, extra_names=("MotionCorr/job002/Movies/Unknown_0001_fractions.mrc",)
):
    names = [f"MotionCorr/job002/Movies/{Path(m).stem}_fractions.mrc" for m in predictions["micrograph"]]
    names += list(extra_names)
    n = len(names)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"],
            "rlnOpticsGroup": [1, 2],
            "rlnMicrographOriginalPixelSize": [0.415, 0.415],
            "rlnVoltage": [300.0, 300.0],
            "rlnSphericalAberration": [2.7, 2.7],
            "rlnAmplitudeContrast": [0.1, 0.1],
            "rlnMicrographPixelSize": [0.83, 0.83],
        }
    )
    mics = pd.DataFrame(
        {
            "rlnMicrographName": names,
            "rlnOpticsGroup": [1 + i % 2 for i in range(n)],
            "rlnCtfImage": [f"CtfFind/job003/Movies/m{i}_fractions.ctf:mrc" for i in range(n)],
            "rlnDefocusU": [10000.0 + 123.456789 * i for i in range(n)],
            "rlnDefocusV": [9800.0 + 11.5 * i for i in range(n)],
            "rlnCtfMaxResolution": [3.0 + 0.1 * i for i in range(n)],
        }
    )
    starfile.write({"optics": optics, "micrographs": mics}, path)
    return optics, mics


@pytest.mark.parametrize("include_medium", [False, True])
def test_selected_star_keeps_columns_and_filters_rows(tmp_path, include_medium):
    # predictions live in two session folders; the star spells names as motion-corrected relative paths
    preds = make_predictions(24, root="/facility/proj")
    preds["micrograph"] = [f"/facility/proj/Movies/{n}" for n in preds["name"]]
    optics, mics = _user_star(tmp_path / "micrographs_ctf.star", preds)
    star = read_star(tmp_path / "micrographs_ctf.star")
    blocks, unmatched = selection_star(preds, include_medium=include_medium, star=star)
    out = tmp_path / "selected.star"
    write_star(out, blocks)
    back = starfile.read(out, always_dict=True)
    assert set(back) == {"optics", "micrographs"}
    assert list(back["micrographs"].columns) == list(mics.columns)
    assert list(back["optics"].columns) == list(optics.columns)
    pd.testing.assert_frame_equal(back["optics"], optics, check_dtype=False)
    wanted = {"good", "medium"} if include_medium else {"good"}
    expected = {
        f"MotionCorr/job002/Movies/{Path(m).stem}_fractions.mrc"
        for m, lab in zip(preds["micrograph"], preds["label"], strict=True)
        if lab in wanted
    }
    assert set(back["micrographs"]["rlnMicrographName"]) == expected
    assert len(back["micrographs"]) == len(expected)
    # the other columns travel with their rows, unchanged
    merged = back["micrographs"].merge(mics, on="rlnMicrographName", suffixes=("", "_in"))
    assert len(merged) == len(expected)
    for col in ("rlnDefocusU", "rlnDefocusV", "rlnCtfMaxResolution", "rlnOpticsGroup"):
        assert (abs(merged[col] - merged[f"{col}_in"]) < 1e-6).all(), col
    assert (merged["rlnCtfImage"] == merged["rlnCtfImage_in"]).all()
    assert unmatched == ["MotionCorr/job002/Movies/Unknown_0001_fractions.mrc"]


def test_selected_star_without_user_star_writes_only_known_optics(tmp_path):
    preds = make_predictions(12)
    preds.loc[preds.index[-3:], "pixel_size"] = 1.1
    blocks, unmatched = selection_star(preds, include_medium=False)
    write_star(tmp_path / "selected.star", blocks)
    back = starfile.read(tmp_path / "selected.star", always_dict=True)
    assert unmatched == []
    good = preds[preds["label"] == "good"]
    assert list(back["micrographs"]["rlnMicrographName"]) == list(good["micrograph"])
    optics = back["optics"]
    # nothing invented: no voltage, Cs or amplitude contrast is known for these micrographs
    assert list(optics.columns) == ["rlnOpticsGroupName", "rlnOpticsGroup", "rlnMicrographPixelSize"]
    text = (tmp_path / "selected.star").read_text()
    assert text.startswith("# micrograde: optics not known, not written: rlnVoltage, rlnSphericalAberration, "
                           "rlnAmplitudeContrast.")
    by_group = dict(zip(optics["rlnOpticsGroup"], optics["rlnMicrographPixelSize"], strict=True))
    for name, group in zip(
        back["micrographs"]["rlnMicrographName"], back["micrographs"]["rlnOpticsGroup"], strict=True
    ):
        expected_ps = float(preds.loc[preds["micrograph"] == name, "pixel_size"].iloc[0])
        assert by_group[group] == pytest.approx(expected_ps)
    assert (tmp_path / "selected.star").read_text().count("# version 30001") == 2


def test_selected_star_without_user_star_keeps_known_voltages_per_group(tmp_path):
    preds = make_predictions(9).assign(label="good", pixel_size=0.83, voltage_kv=300.0)
    preds.loc[preds.index[:4], "voltage_kv"] = 200.0
    preds.loc[preds.index[-2:], "voltage_kv"] = float("nan")  # unknown for these two
    blocks, _ = selection_star(preds)
    write_star(tmp_path / "selected.star", blocks)
    back = starfile.read(tmp_path / "selected.star", always_dict=True)
    optics, mics = back["optics"], back["micrographs"]
    assert len(optics) == 3
    # a voltage known for some groups only is not written for any (RELION reads one value per column)
    assert "rlnVoltage" not in optics.columns and "rlnSphericalAberration" not in optics.columns
    assert sorted(mics.groupby("rlnOpticsGroup").size().tolist()) == [2, 3, 4]
    known = preds.iloc[:7]
    blocks, _ = selection_star(known)
    write_star(tmp_path / "known.star", blocks)
    optics = starfile.read(tmp_path / "known.star", always_dict=True)["optics"]
    assert sorted(optics["rlnVoltage"].tolist()) == [200.0, 300.0]
    assert "rlnVoltage" not in (tmp_path / "known.star").read_text().split("data_")[0]


def test_relion30_single_loop_star_is_filtered(tmp_path):
    preds = make_predictions(10)
    names = [f"Micrographs/{n}" for n in preds["name"]]
    path = tmp_path / "old.star"
    starfile.write(
        pd.DataFrame(
            {"rlnMicrographName": names, "rlnDefocusU": [1.5e4] * len(names), "rlnVoltage": [300.0] * len(names)}
        ),
        path,
    )
    star = read_star(path)
    assert star.optics is None
    blocks, unmatched = selection_star(preds, star=star, include_medium=True)
    write_star(tmp_path / "selected.star", blocks)
    back = starfile.read(tmp_path / "selected.star")
    assert set(back["rlnMicrographName"]) == {
        f"Micrographs/{n}" for n, lab in zip(preds["name"], preds["label"], strict=True) if lab != "bad"
    }
    assert list(back.columns) == ["rlnMicrographName", "rlnDefocusU", "rlnVoltage"]
    assert unmatched == []


def test_particle_star_is_a_clear_error(tmp_path):
    if REAL_STAR.is_file():  # a RELION 3.0 particle (autopick) star: one loop, no _rlnMicrographName
        with pytest.raises(StarFormatError, match="no _rlnMicrographName"):
            read_star(REAL_STAR)
    particles = pd.DataFrame(
        {
            "rlnMicrographName": ["a.mrc"],
            "rlnCoordinateX": [1.0],
            "rlnCoordinateY": [2.0],
            "rlnImageName": ["000001@x.mrcs"],
        }
    )
    starfile.write({"optics": pd.DataFrame({"rlnOpticsGroup": [1]}), "particles": particles}, tmp_path / "p.star")
    with pytest.raises(StarFormatError, match="particles"):
        read_star(tmp_path / "p.star")
    (tmp_path / "coords.star").write_text("data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1.0 2.0\n")
    with pytest.raises(StarFormatError, match="no _rlnMicrographName"):
        read_star(tmp_path / "coords.star")


def test_write_star_is_atomic_and_leaves_no_temporaries(tmp_path):
    preds = make_predictions(6)
    blocks, _ = selection_star(preds)
    target = tmp_path / "out" / "selected.star"
    write_star(target, blocks)
    write_star(target, blocks)  # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["selected.star"]


def test_nothing_selected_still_writes_a_valid_star(tmp_path):
    preds = make_predictions(5).assign(label="bad")
    blocks, _ = selection_star(preds, include_medium=True)
    write_star(tmp_path / "selected.star", blocks)
    back = starfile.read(tmp_path / "selected.star", always_dict=True)
    assert len(back["micrographs"]) == 0
    assert back["optics"]["rlnMicrographPixelSize"].tolist() == [pytest.approx(0.83)]


def test_stars_written_at_once_in_one_folder_do_not_share_a_temporary_file(tmp_path):
    import threading

    preds = make_predictions(12)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(5):
                blocks, _ = selection_star(preds.assign(micrograph=preds["micrograph"] + f".{i}"))
                write_star(tmp_path / f"selected-{i}.star", blocks)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        names = starfile.read(tmp_path / f"selected-{i}.star", always_dict=True)["micrographs"]["rlnMicrographName"]
        assert all(str(n).endswith(f".{i}") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"selected-{i}.star" for i in range(4)]
