"""Custom augmentations: shape, dtype, finite float range, seeds, serialisation round trips."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest
from helpers_data import synthetic_pair

from micrograde.pipeline.data.augment import (
    CUSTOM_TRANSFORMS,
    AugmentConfig,
    apply_augment,
    augment_from_dict,
    augment_to_dict,
    build_augment,
    derive_seed,
    reseed,
)
from micrograde.pipeline.data.augment_cryo import (
    DefocusBlur,
    DefocusChange,
    DoseResample,
    GainStripes,
    IceContrast,
    TileDropout,
    electron_wavelength,
)
from micrograde.pipeline.data.augment_geometry import FieldCrop, Shear, Stretch, Turn

# every custom transform, forced on, with non-default parameters (so a lost one would show)
FORCED = [
    Turn(quarter_turns=True, flip_p=0.7, rotate_p=0.9, angle_range=(-40.0, 40.0), p=1.0),
    Shear(shear_range=(-5.0, 12.0), p=1.0),
    Stretch(stretch_range=(0.97, 1.05), scale_range=(0.95, 1.05), p=1.0),
    FieldCrop(fraction_range=(0.7, 0.9), p=1.0),
    DefocusBlur(kind="disc", sigma_range=(0.4, 1.0), radius_range=(1.5, 2.0), p=1.0),
    TileDropout(n_tiles_range=(2, 3), tile_fraction_range=(0.1, 0.2), fill="mean", p=1.0),
    DoseResample(dose_fraction_range=(0.4, 0.6), electrons_per_pixel=300.0, relative_contrast=0.1, p=1.0),
    IceContrast(contrast_range=(0.7, 0.9), gradient_range=(0.1, 0.3), p=1.0),
    GainStripes(amplitude_range=(0.05, 0.1), stripe_width_range=(2, 4), orientation="columns", p=1.0),
    DefocusChange(defocus_change_range=(500.0, 1500.0), pixel_size=3.0, voltage_kv=200.0, p=1.0),
]
IDS = [type(t).__name__ for t in FORCED]


def test_every_custom_transform_is_covered() -> None:
    assert {type(t) for t in FORCED} == set(CUSTOM_TRANSFORMS)


@pytest.mark.parametrize("transform", FORCED, ids=IDS)
@pytest.mark.parametrize("shape", [(256, 256), (224, 224, 1)])
def test_keeps_shape_dtype_and_finite_float_range(transform, shape) -> None:
    image, spectrum = synthetic_pair(2, size=shape[0])
    image = image.reshape(shape)
    out = A.Compose([transform], seed=1)(image=image, spectrum=spectrum[: shape[0], : shape[0]])
    img = out["image"]
    assert img.shape == shape and img.dtype == np.float32 and np.isfinite(img).all()
    assert not np.allclose(img, image)
    assert img.min() < -0.5 and img.max() > 1.5  # nothing clipped to [0, 1]
    assert 0.5 < img.std() < 1.5 and abs(float(img.mean())) < 0.5


@pytest.mark.parametrize("transform", FORCED, ids=IDS)
def test_serialises_and_loads_back_through_albumentations(transform) -> None:
    compose = A.Compose([transform], seed=0)
    text = json.dumps(A.to_dict(compose))
    loaded = A.from_dict(json.loads(text))
    clone = loaded.transforms[0]
    assert type(clone) is type(transform)
    for name in transform.get_transform_init_args_names():
        a, b = getattr(transform, name), getattr(clone, name)
        assert (tuple(a) if isinstance(a, (list, tuple)) else a) == (tuple(b) if isinstance(b, (list, tuple)) else b), (
            name
        )
    assert clone.p == transform.p
    image, spectrum = synthetic_pair(3)
    reseed(compose, 11)
    reseed(loaded, 11)
    a, b = compose(image=image, spectrum=spectrum), loaded(image=image, spectrum=spectrum)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["spectrum"], b["spectrum"])


def test_compose_round_trip_through_json() -> None:
    compose = build_augment(AugmentConfig(seed=5, shear_p=0.9))
    loaded = augment_from_dict(json.loads(json.dumps(augment_to_dict(compose))))
    assert [type(t) for t in loaded.transforms] == [type(t) for t in compose.transforms]
    image, spectrum = synthetic_pair(4)
    for s in range(3):
        reseed(compose, s)
        reseed(loaded, s)
        for x, y in zip(apply_augment(compose, image, spectrum), apply_augment(loaded, image, spectrum), strict=False):
            np.testing.assert_array_equal(x, y)


def test_same_seed_same_samples_different_seed_different() -> None:
    image, spectrum = synthetic_pair(5)
    a = [apply_augment(build_augment(AugmentConfig(seed=1)), image, spectrum) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    np.testing.assert_array_equal(a[0][1], a[1][1])
    b = apply_augment(build_augment(AugmentConfig(seed=2)), image, spectrum)
    assert not np.allclose(a[0][0], b[0])
    compose = build_augment(AugmentConfig())
    reseed(compose, derive_seed(0, 0, 7))
    first = apply_augment(compose, image, spectrum)
    second = apply_augment(compose, image, spectrum)  # the generator moves on: a new draw
    reseed(compose, derive_seed(0, 0, 7))
    again = apply_augment(compose, image, spectrum)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.allclose(first[0], second[0])
    assert derive_seed(0, 0, 7) != derive_seed(0, 1, 7) != derive_seed(1, 0, 7)


def test_full_pipeline_keeps_normalised_floats() -> None:
    image, spectrum = synthetic_pair(6)
    compose = build_augment(AugmentConfig(seed=3))
    stds, mins = [], []
    for _ in range(40):
        img, spec = apply_augment(compose, image, spectrum)
        assert img.dtype == np.float32 and spec.dtype == np.float32 and np.isfinite(img).all()
        stds.append(img.std())
        mins.append(img.min())
    assert 0.8 < np.mean(stds) < 1.2 and max(mins) < 0


def test_disabled_config_is_the_identity() -> None:
    image, spectrum = synthetic_pair(7)
    compose = build_augment(AugmentConfig(enabled=False))
    assert len(compose.transforms) == 0
    img, spec = apply_augment(compose, image, spectrum)
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(spec, spectrum)


def test_lower_dose_means_more_noise() -> None:
    image, _ = synthetic_pair(8)
    corr = []
    for f in (0.9, 0.6, 0.3):
        out = A.Compose([DoseResample(dose_fraction_range=(f, f), p=1.0)], seed=0)(image=image)["image"]
        corr.append(np.corrcoef(out.ravel(), image.ravel())[0, 1])
        assert out.std() == pytest.approx(image.std(), rel=1e-3)
    assert corr[0] > corr[1] > corr[2]


def test_gain_stripes_run_along_one_axis() -> None:
    image = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    out = A.Compose([GainStripes(amplitude_range=(0.5, 0.5), orientation="columns", p=1.0)], seed=0)(image=image)[
        "image"
    ]
    delta = out - image * (out.std() / image.std())
    assert delta.mean(axis=0).std() > 10 * delta.mean(axis=1).std()


def test_defocus_change_is_physical() -> None:
    assert electron_wavelength(300) == pytest.approx(0.01969, abs=1e-4)
    image, _ = synthetic_pair(9)
    same = A.Compose([DefocusChange(defocus_change_range=(0.0, 0.0), p=1.0)])(image=image)["image"]
    np.testing.assert_array_equal(same, image)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Shear(shear_range=(-50, 50)),
        lambda: FieldCrop(fraction_range=(0.5, 1.2)),
        lambda: Stretch(stretch_range=(1.1, 0.9)),
        lambda: Turn(flip_p=1.5),
        lambda: DoseResample(dose_fraction_range=(0.0, 0.5)),
        lambda: IceContrast(contrast_range=(0.5, 1.5)),
        lambda: DefocusBlur(kind="box"),
        lambda: TileDropout(fill="zeros"),
        lambda: GainStripes(stripe_width_range=(0, 3)),
    ],
)
def test_bad_parameters_are_refused(make) -> None:
    with pytest.raises(ValueError):
        make()
