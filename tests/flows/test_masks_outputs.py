"""Masks and particle filtering of an assessment: files written, columns added, bad input refused."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import starfile

from micrograde.flows.masks import ParticleInputError, check_particle_inputs, compute_masks, write_mask_outputs
from micrograde.pipeline.io.label_maps import read_label_map
from micrograde.pipeline.masks import CONTAMINATION, DEFECT_CLASSES, area_column


class _BlobModel:
    """Stands in for a mask model: marks the darkest tenth of the network's grid as contamination."""

    card = {"id": "blob", "files": {"weights": {"sha256": "0" * 64}}}

    def predict_view(self, image, pixel_size):
        from micrograde.models.segmentation.inputs import mask_inputs

        view = mask_inputs(image, pixel_size)[0]
        return np.where(view <= np.quantile(view, 0.1), CONTAMINATION, 0).astype(np.uint8)


@pytest.fixture
def real_star(real_micrograph):
    star = real_micrograph.parent / "Ucsf_stack_1142_DW_autopick.star"
    if not star.is_file():
        pytest.skip("real autopick STAR absent")
    return star


def _predictions(path) -> pd.DataFrame:
    return pd.DataFrame({"micrograph": [str(path)], "name": [path.name], "cache_key": ["k1"], "pixel_size": [1.0]})


def test_masks_are_written_full_size_with_areas_and_filtered_picks(real_micrograph, real_star, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    mic = shutil.copy(real_micrograph, src / real_micrograph.name)
    pred, results = compute_masks(_BlobModel(), _predictions(src / real_micrograph.name).rename(
        columns={"micrograph": "path"}).assign(micrograph=str(mic)))
    cols = [area_column(n) for n in DEFECT_CLASSES]
    assert set(cols) | {"usable_area"} <= set(pred.columns)
    assert np.isclose(pred[cols].sum(axis=1) + pred["usable_area"], 1.0).all()
    assert 0.05 < pred[area_column("contamination")].iloc[0] < 0.3
    report = tmp_path / "report"
    summary = write_mask_outputs(report, pred, results, particles=[str(real_star)], margin_A=0.0)
    mask, pixel_size = read_label_map(report / "masks" / "Ucsf_stack_1142_DW.mrc")
    assert mask.shape == (927, 959) and pixel_size == pytest.approx(1.0)
    picks = starfile.read(real_star)
    kept = starfile.read(report / "particles_selected.star")
    on_mask = mask[picks["rlnCoordinateY"].astype(int), picks["rlnCoordinateX"].astype(int)] != 0
    assert len(kept) == int((~on_mask).sum()) and on_mask.any()
    assert list(kept.columns) == list(picks.columns)
    row = summary.iloc[0]
    assert row["picks"] == len(picks) and row["removed_contamination"] == int(on_mask.sum())
    assert pd.read_csv(report / "particles_summary.csv")["kept"].tolist() == [len(kept)]


def test_particle_names_are_checked_against_the_sources(real_star, tmp_path):
    check_particle_inputs([str(real_star)], ["/data/Ucsf_stack_1142_DW.mrc"])
    with pytest.raises(ParticleInputError, match="Ucsf_stack_1142_DW"):
        check_particle_inputs([str(real_star)], ["/data/other_micrograph.mrc"])
    bad = tmp_path / "x.star"
    bad.write_text("data_\nloop_\n_rlnMicrographName #1\na.mrc\n")
    with pytest.raises(ParticleInputError, match="_rlnCoordinateX"):
        check_particle_inputs([str(bad)])
