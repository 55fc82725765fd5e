"""What the mask model trains on: every defect class drawn often, crops that find the rare classes."""

from __future__ import annotations

import numpy as np
import pytest

from micrograde.models.segmentation.inputs import MaskInputConfig
from micrograde.models.segmentation.train import REGION_CYCLE, crop_origin, simulated_examples
from micrograde.pipeline.masks import DEFECT_CLASSES, MASK_CODES
from micrograde.pipeline.sim.families import family_sessions, get_family, sample_with_region


@pytest.mark.parametrize("family", ["a", "b"])
@pytest.mark.parametrize("region", DEFECT_CLASSES)
def test_a_region_draw_covers_the_region_in_both_families(family, region):
    session = family_sessions(family)[0]
    fam = get_family(family)
    rng = np.random.default_rng(11)
    areas = [fam.regions(sample_with_region(rng, session, region, min_area=0.05))[region] for _ in range(5)]
    assert min(areas) >= 0.05
    natural = [fam.regions(fam.sample(rng, session, None))[region] for _ in range(40)]
    assert np.mean(np.asarray(natural) >= 0.05) < 0.5  # the draw changes what is seen, not a class always there


def test_a_region_draw_rejects_an_unknown_region():
    with pytest.raises(ValueError, match="unknown mask region 'ice'"):
        sample_with_region(np.random.default_rng(0), family_sessions("a")[0], "ice")


def test_a_region_draw_returns_its_best_try_when_none_qualifies():
    fam = get_family("a")
    params = sample_with_region(np.random.default_rng(2), family_sessions("a")[0], "empty", min_area=0.99,
                                max_draws=30)
    assert isinstance(params, fam.params_type) and fam.regions(params)["empty"] < 0.99


def test_balanced_simulated_examples_show_every_defect_class():
    cfg = MaskInputConfig()
    n = 2 * len(REGION_CYCLE)
    examples = list(simulated_examples(n, seed=5, family="both", cfg=cfg, balance_regions=True))
    seen = {name for ex in examples for name in DEFECT_CLASSES if np.any(ex.y == MASK_CODES[name])}
    assert seen == set(DEFECT_CLASSES)
    natural = list(simulated_examples(n, seed=5, family="a", cfg=cfg))
    assert not any(np.any(ex.y == MASK_CODES["empty"]) for ex in natural)  # family a's natural draws: no vacuum


def test_focused_crops_land_on_the_rare_class_and_plain_crops_do_not():
    y = np.zeros((400, 600), np.uint8)
    y[350:360, 20:30] = MASK_CODES["empty"]  # 100 of 240,000 pixels
    crop = 64

    def hits(focus: float) -> float:
        rng = np.random.default_rng(0)
        out = []
        for _ in range(200):
            y0, x0 = crop_origin(y, crop, rng, focus)
            assert 0 <= y0 <= y.shape[0] - crop and 0 <= x0 <= y.shape[1] - crop
            out.append(np.any(y[y0 : y0 + crop, x0 : x0 + crop] == MASK_CODES["empty"]))
        return float(np.mean(out))

    assert hits(1.0) == 1.0
    assert 0.35 < hits(0.5) < 0.7
    assert hits(0.0) < 0.1
    only_usable = np.zeros((100, 100), np.uint8)
    y0, x0 = crop_origin(only_usable, crop, np.random.default_rng(1), 1.0)  # nothing to focus on: uniform
    assert 0 <= y0 <= 36 and 0 <= x0 <= 36
