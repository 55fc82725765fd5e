"""The torch Dataset over the workspace cache, the preview grid and ``augment preview``."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers_data import make_workspace

from micrograde.models.training.dataset import LAYOUTS, MicrographDataset, fit_size
from micrograde.pipeline.catalogue.cache import CacheMissError
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.data.augment import AugmentConfig, build_augment
from micrograde.pipeline.data.preview import preview_grid, preview_samples, save_figure_png


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    workspace = make_workspace(tmp_path_factory.mktemp("ws"), 8, sessions=2, labelled=5)
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def keys(ws) -> list[str]:
    return list(micrograph_table(ws)["cache_key"])


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("size", [224, 128])
def test_output_shape_dtype_and_finite(ws, keys, layout: str, size: int) -> None:
    labels = ["good", "medium", "bad", "good", "bad", "medium", "good", "good"]
    ds = MicrographDataset(ws.cache_dir, keys, labels, layout=layout, input_size=size,
                           augment=build_augment(AugmentConfig()), seed=0)
    assert len(ds) == 8
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, size, size) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert y.dtype == torch.int64 and int(y) == ["good", "medium", "bad"].index(labels[i])
    x, _ = ds[0]
    assert torch.equal(x[0], x[2])
    if layout == "image,image,image":
        assert torch.equal(x[0], x[1])
    else:
        assert not torch.allclose(x[0], x[1])


def test_unlabelled_items_have_minus_one(ws, keys) -> None:
    ds = MicrographDataset(ws.cache_dir, keys, None, preload=False)
    assert ds.labels is None and int(ds[0][1]) == -1


def test_same_seed_same_samples_different_seed_different(ws, keys) -> None:
    def make(seed: int) -> MicrographDataset:
        return MicrographDataset(ws.cache_dir, keys, None, augment=build_augment(AugmentConfig()), seed=seed)

    a, b, c = make(3), make(3), make(4)
    forward = [a[i][0] for i in range(len(a))]
    backward = [b[i][0] for i in reversed(range(len(b)))][::-1]  # order does not matter
    for x, y in zip(forward, backward, strict=False):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, c[i][0]) for i, x in enumerate(forward))
    a.set_epoch(1)
    assert not all(torch.equal(x, a[i][0]) for i, x in enumerate(forward))
    a.set_epoch(0)
    assert all(torch.equal(x, a[i][0]) for i, x in enumerate(forward))


def test_pickles_for_dataloader_workers(ws, keys) -> None:
    import pickle

    ds = MicrographDataset(ws.cache_dir, keys, [0] * len(keys), augment=build_augment(AugmentConfig()), seed=9)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(ds[2][0], clone[2][0])


def test_preload_and_lazy_reading_agree(ws, keys) -> None:
    aug = AugmentConfig(seed=2)
    eager = MicrographDataset(ws.cache_dir, keys, None, augment=build_augment(aug), preload=True)
    lazy = MicrographDataset(ws.cache_dir, keys, None, augment=build_augment(aug), preload=False)
    assert torch.equal(eager[5][0], lazy[5][0])


def test_resize_modes() -> None:
    yy, xx = np.mgrid[:256, :256]
    wave = np.cos(2 * np.pi * (5 * xx + 3 * yy) / 256).astype(np.float32)
    small = fit_size(wave, 224, "fourier")  # band-limited: the same wave on the coarser grid
    y2, x2 = np.mgrid[:224, :224]
    np.testing.assert_allclose(small, np.cos(2 * np.pi * (5 * x2 + 3 * y2) / 224), atol=1e-4)
    np.testing.assert_array_equal(fit_size(wave, 224, "crop"), wave[16:240, 16:240])
    assert fit_size(wave, 300, "fourier").shape == (300, 300)


def test_bad_arguments_and_missing_cache(ws, keys, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        MicrographDataset(ws.cache_dir, keys, None, layout="spectrum")
    with pytest.raises(ValueError, match="labels"):
        MicrographDataset(ws.cache_dir, keys, ["good"])
    with pytest.raises(CacheMissError, match="re-run"):
        MicrographDataset(tmp_path, keys, None)


def test_preview_grid_and_png(ws, keys, tmp_path: Path) -> None:
    pairs, augmented = preview_samples(ws.cache_dir, keys[:3], build_augment(AugmentConfig()), k=2, seed=0)
    again = preview_samples(ws.cache_dir, keys[:3], build_augment(AugmentConfig()), k=2, seed=0)[1]
    np.testing.assert_array_equal(augmented[1][1][0], again[1][1][0])
    fig = preview_grid(pairs, augmented, titles=["a", "b", "c"])
    assert len(fig.axes) == 3 * 2 * 3
    out = save_figure_png(fig, tmp_path / "sub" / "grid.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        preview_grid(pairs, augmented[:2])


def _cli() -> click.Group:
    from micrograde.flows.cli.augment import register

    @click.group()
    def main() -> None:
        pass

    register(main)
    return main


def test_cli_preview_writes_png(ws, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(_cli(), ["augment", "preview", "--workspace", str(ws.root), "--out", str(out),
                                      "--n", "3", "--k", "2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG" and "3 micrographs x 2" in res.output


def test_cli_preview_empty_workspace_exits_1(tmp_path: Path) -> None:
    res = CliRunner().invoke(_cli(), ["augment", "preview", "--workspace", str(tmp_path / "empty"),
                                      "--out", str(tmp_path / "g.png")])
    assert res.exit_code == 1 and "No ingested micrographs" in res.output
    assert not (tmp_path / "g.png").exists()
