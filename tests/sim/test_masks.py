"""The mask code table, mask files (round trip), and family a's ground-truth masks and vacuum."""

from __future__ import annotations

import dataclasses

import mrcfile
import numpy as np
import pytest
from helpers_simulate import SMALL_FLOAT, clean_params

from micrograde.pipeline.io.label_maps import MASK_HEADER_LABEL, read_label_map, write_label_map
from micrograde.pipeline.masks import (
    DEFECT_CLASSES,
    MASK_CLASSES,
    MASK_CODES,
    PRECEDENCE,
    area_column,
    area_fractions,
    compose_mask,
)
from micrograde.pipeline.sim.physics import render_micrograph, sample_params, simulate_micrograph

SESSION_384 = dataclasses.replace(SMALL_FLOAT, name="t384", shape=(384, 384))


def test_code_table_is_one_consistent_table():
    assert [c.code for c in MASK_CLASSES] == list(range(len(MASK_CLASSES)))
    assert MASK_CODES == {"usable": 0, "carbon": 1, "contamination": 2, "crystalline": 3, "empty": 4}
    assert set(PRECEDENCE) == set(DEFECT_CLASSES) == set(MASK_CODES) - {"usable"}
    assert all(c.description for c in MASK_CLASSES)
    assert [area_column(n) for n in DEFECT_CLASSES] == ["area_carbon", "area_contamination", "area_crystalline",
                                                        "area_empty"]  # fmt: skip
    with pytest.raises(ValueError, match="unknown mask class"):
        area_column("ice")


def test_compose_mask_resolves_overlaps_by_precedence():
    shape = (4, 6)
    full = np.ones(shape, dtype=bool)
    left = np.zeros(shape, dtype=bool)
    left[:, :3] = True
    corner = np.zeros(shape, dtype=bool)
    corner[0, 0] = True
    mask = compose_mask(shape, {"empty": full, "carbon": left, "contamination": corner, "crystalline": None})
    assert mask.dtype == np.uint8
    assert mask[0, 0] == MASK_CODES["contamination"]  # contamination > carbon > empty
    assert mask[1, 0] == MASK_CODES["carbon"] and mask[1, 5] == MASK_CODES["empty"]
    crystal_on_film = compose_mask(shape, {"carbon": full, "crystalline": left})
    assert (crystal_on_film[:, :3] == MASK_CODES["crystalline"]).all()
    fractions = area_fractions(mask)
    assert fractions == pytest.approx({"area_carbon": 11 / 24, "area_contamination": 1 / 24,
                                       "area_crystalline": 0.0, "area_empty": 12 / 24})  # fmt: skip
    with pytest.raises(ValueError, match="unknown mask layers"):
        compose_mask(shape, {"ice": full})
    with pytest.raises(ValueError, match="shape"):
        compose_mask(shape, {"carbon": np.ones((2, 2), dtype=bool)})
    with pytest.raises(ValueError, match="codes above"):
        area_fractions(np.full(shape, 9, dtype=np.uint8))


def test_mask_file_round_trip(tmp_path):
    mask = np.random.default_rng(0).integers(0, 5, size=(37, 53)).astype(np.uint8)
    path = tmp_path / "masks" / "m.mrc"
    write_label_map(path, mask, 1.07)
    with mrcfile.open(path) as mrc:  # strict reading
        assert int(mrc.header.mode) == 0 and mrc.data.shape == (37, 53)
        assert mrc.voxel_size.x == pytest.approx(1.07, rel=1e-6)
        assert bytes(mrc.header.label[0]).decode().strip("\x00 ") == MASK_HEADER_LABEL
    back, pixel_size = read_label_map(path)
    assert back.dtype == np.uint8 and pixel_size == pytest.approx(1.07, rel=1e-6)
    np.testing.assert_array_equal(back, mask)
    assert not list(path.parent.glob(".*part"))


def test_mask_files_refuse_what_is_not_a_mask(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        write_label_map(tmp_path / "a.mrc", np.zeros((2, 3, 3), dtype=np.uint8), 1.0)
    with pytest.raises(ValueError, match="codes"):
        write_label_map(tmp_path / "b.mrc", np.full((4, 4), 7, dtype=np.uint8), 1.0)
    with pytest.raises(ValueError, match="integer"):
        write_label_map(tmp_path / "c.mrc", np.zeros((4, 4), dtype=np.float32), 1.0)
    with mrcfile.new(tmp_path / "micrograph.mrc") as mrc:
        mrc.set_data(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="not a mask"):
        read_label_map(tmp_path / "micrograph.mrc")
    assert not (tmp_path / "a.mrc").exists()


@pytest.mark.parametrize(
    ("changes", "name", "value"),
    [
        ({"contamination": 0.3}, "contamination", 0.3),
        ({"crystalline_fraction": 0.35, "crystal_spacings_A": (3.9,)}, "crystalline", 0.35),
        ({"carbon_fraction": 0.4}, "carbon", 0.4),
        ({"vacuum_fraction": 0.3, "empty": True, "n_particles": 0}, "empty", 0.3),
    ],
)
def test_family_a_masks_agree_with_its_parameters(changes, name, value):
    out = render_micrograph(clean_params(**changes), SESSION_384, np.random.default_rng(3))
    fractions = area_fractions(out.mask)
    assert fractions[f"area_{name}"] == pytest.approx(value, abs=0.03)
    assert sum(fractions.values()) == pytest.approx(fractions[f"area_{name}"])  # nothing else marked
    np.testing.assert_array_equal(out.image, simulate_micrograph(clean_params(**changes), SESSION_384,
                                                                 np.random.default_rng(3)))  # fmt: skip


def test_family_a_vacuum_is_bright_and_only_drawn_for_empty_holes():
    out = render_micrograph(clean_params(vacuum_fraction=0.3, empty=True, n_particles=0), SESSION_384,
                            np.random.default_rng(1))  # fmt: skip
    vac = out.mask == MASK_CODES["empty"]
    img = out.image.astype(np.float64)
    assert img[vac].mean() > 1.1 * img[~vac].mean()
    draws = [sample_params(np.random.default_rng(s), SMALL_FLOAT, "bad") for s in range(400)]
    assert all(p.empty for p in draws if p.vacuum_fraction > 0)
    with_vacuum = [p for p in draws if p.vacuum_fraction > 0]
    assert 0 < len(with_vacuum) < sum(p.empty for p in draws)
