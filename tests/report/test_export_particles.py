"""Particle picks filtered by masks, written back in the picker's own format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from micrograde.pipeline.export.particles import (
    UnmatchedParticlesError,
    filter_particles,
    match_particles,
    pick_codes,
    read_particles,
    selected_name,
    write_particles,
)
from micrograde.pipeline.masks import CARBON, CONTAMINATION


def _mask() -> np.ndarray:
    m = np.zeros((100, 200), dtype=np.uint8)
    m[:40, :50] = CONTAMINATION  # top-left block
    m[:, 180:] = CARBON  # right strip
    return m


def test_coordinate_star_without_names_matches_by_file_name_and_keeps_columns(tmp_path):
    picks = pd.DataFrame({"rlnCoordinateX": [10.0, 100.0, 190.0, 60.0, 500.0],
                          "rlnCoordinateY": [10.0, 50.0, 50.0, 20.0, 5.0],
                          "rlnAutopickFigureOfMerit": [0.9, 0.8, 0.7, 0.6, 0.5], "rlnClassNumber": [0, 0, 0, 0, 0]})
    path = tmp_path / "mic_001_DW_autopick.star"
    starfile.write({"": picks}, path)
    pf = read_particles(path)
    assert pf.kind == "star" and len(pf) == 5
    (assigned,) = match_particles([pf], ["/data/s1/mic_001_DW.mrc", "/data/s1/mic_002_DW.mrc"])
    assert set(assigned) == {"/data/s1/mic_001_DW.mrc"}
    keep, summary = filter_particles(pf, assigned, {"/data/s1/mic_001_DW.mrc": (_mask(), 1.0)})
    # on contamination, on clean ice, on carbon, on clean ice (10 px from the blob), outside the image
    assert keep.tolist() == [False, True, False, True, True]
    row = summary.iloc[0]
    assert (row["picks"], row["kept"], row["removed_contamination"], row["removed_carbon"], row["outside"]) == \
        (5, 3, 1, 1, 1)
    # with a 15 A margin (1 A/px) the pick 10 px from the blob goes too
    keep_margin, summary_m = filter_particles(pf, assigned, {"/data/s1/mic_001_DW.mrc": (_mask(), 1.0)}, 15.0)
    assert keep_margin.tolist() == [False, True, False, False, True]
    assert summary_m.iloc[0]["removed_contamination"] == 2
    out = tmp_path / selected_name(pf)
    assert out.name == "particles_selected.star"
    write_particles(pf, keep, out)
    back = starfile.read(out)
    assert list(back.columns) == list(picks.columns)
    assert np.allclose(back["rlnCoordinateX"], picks["rlnCoordinateX"][keep])
    assert np.allclose(back["rlnAutopickFigureOfMerit"], picks["rlnAutopickFigureOfMerit"][keep])


def test_particle_star_with_micrograph_names_and_optics(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1], "rlnImagePixelSize": [1.0]})
    parts = pd.DataFrame(
        {
            "rlnCoordinateX": [10.0, 100.0, 10.0, 100.0],
            "rlnCoordinateY": [10.0, 50.0, 10.0, 50.0],
            "rlnMicrographName": ["MotionCorr/job002/a_fractions.mrc"] * 2 + ["MotionCorr/job002/b.mrc"] * 2,
            "rlnOpticsGroup": [1, 1, 1, 1],
        }
    )
    path = tmp_path / "particles.star"
    starfile.write({"optics": optics, "particles": parts}, path)
    pf = read_particles(path)
    (assigned,) = match_particles([pf], ["/x/a.mrc", "/x/b.mrc"])
    clean = np.zeros((100, 200), dtype=np.uint8)
    keep, summary = filter_particles(pf, assigned, {"/x/a.mrc": (_mask(), 1.0), "/x/b.mrc": (clean, 1.0)})
    assert keep.tolist() == [False, True, True, True]
    assert summary.set_index("micrograph").loc["/x/a.mrc", "kept"] == 1
    write_particles(pf, keep, tmp_path / "out.star")
    back = starfile.read(tmp_path / "out.star", always_dict=True)
    assert back["optics"].to_dict() == optics.to_dict()
    assert list(back["particles"].columns) == list(parts.columns) and len(back["particles"]) == 3


def test_unmatched_names_are_listed_before_any_filtering(tmp_path):
    parts = pd.DataFrame({"rlnCoordinateX": [1.0, 2.0], "rlnCoordinateY": [1.0, 2.0],
                          "rlnMicrographName": ["Movies/zz_1.mrc", "Movies/zz_2.mrc"]})
    path = tmp_path / "picks.star"
    starfile.write({"particles": parts}, path)
    with pytest.raises(UnmatchedParticlesError, match="zz_1.mrc.*zz_2.mrc|zz_2.mrc.*zz_1.mrc") as info:
        match_particles([read_particles(path)], ["/x/a.mrc"])
    assert sorted(info.value.names) == ["Movies/zz_1.mrc", "Movies/zz_2.mrc"]


def test_box_and_txt_keep_their_lines(tmp_path):
    box = tmp_path / "mic_7.box"
    box.write_text("0\t0\t20\t20\n90\t40\t20\t20\n175\t40\t20\t20\n")  # centres (10,10), (100,50), (185,50)
    pf = read_particles(box)
    assert np.allclose(pf.x, [10, 100, 185]) and np.allclose(pf.y, [10, 50, 50])
    (assigned,) = match_particles([pf], ["/d/mic_7.mrc"])
    keep, _ = filter_particles(pf, assigned, {"/d/mic_7.mrc": (_mask(), 1.0)})
    write_particles(pf, keep, tmp_path / "particles_selected.box")
    assert (tmp_path / "particles_selected.box").read_text() == "90\t40\t20\t20\n"
    txt = tmp_path / "mic_7_coords.txt"
    txt.write_text("x y score\n10 10 0.5\n100 50 0.7\n")
    pt = read_particles(txt)
    (assigned,) = match_particles([pt], ["/d/mic_7.mrc"])
    keep, _ = filter_particles(pt, assigned, {"/d/mic_7.mrc": (_mask(), 1.0)})
    write_particles(pt, keep, tmp_path / "particles_selected.txt")
    assert (tmp_path / "particles_selected.txt").read_text() == "x y score\n100 50 0.7\n"


def test_cryosparc_particles_use_fractions_and_keep_every_field(tmp_path):
    from cryosparc.dataset import Dataset

    n = 3
    dset = Dataset.allocate(n, [("location/micrograph_path", "O"), ("location/center_x_frac", "f4"),
                                ("location/center_y_frac", "f4"), ("location/micrograph_shape", "u4", (2,)),
                                ("pick_stats/ncc_score", "f4")])
    dset["location/micrograph_path"] = ["J1/imported/123456789012345678_mic_9.mrc"] * n
    dset["location/center_x_frac"] = [10 / 200, 100 / 200, 190 / 200]
    dset["location/center_y_frac"] = [10 / 100, 50 / 100, 50 / 100]
    dset["location/micrograph_shape"] = [[100, 200]] * n
    dset["pick_stats/ncc_score"] = [0.1, 0.2, 0.3]
    path = tmp_path / "picked.cs"
    dset.save(path)
    pf = read_particles(path)
    (assigned,) = match_particles([pf], ["/d/mic_9.mrc"])
    keep, _ = filter_particles(pf, assigned, {"/d/mic_9.mrc": (_mask(), 1.0)})
    assert keep.tolist() == [False, True, False]
    write_particles(pf, keep, tmp_path / "particles_selected.cs")
    back = Dataset.load(tmp_path / "particles_selected.cs")
    assert len(back) == 1 and set(back.fields()) == set(dset.fields())
    assert np.isclose(back["pick_stats/ncc_score"][0], 0.2)


def test_pick_codes_outside_and_margin():
    m = _mask()
    codes = pick_codes(np.array([-5.0, 10.0, 60.0, 199.5]), np.array([5.0, 10.0, 20.0, 99.9]), m, margin_px=0)
    assert codes.tolist() == [-1, CONTAMINATION, 0, CARBON]


def test_resample_mask_round_trips_at_pixel_centres():
    from micrograde.pipeline.masks import resample_mask

    small = np.zeros((48, 64), dtype=np.uint8)
    small[7, 3:23] = 2  # a one-pixel stroke
    small[40:, 50:] = 1
    big = resample_mask(small, (4092, 5760))
    assert big.shape == (4092, 5760) and set(np.unique(big)) == {0, 1, 2}
    assert (resample_mask(big, (48, 64)) == small).all()
