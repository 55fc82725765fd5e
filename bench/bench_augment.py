"""Benchmark: augmented training samples per second per core at the default input size.

    .venv/bin/python bench/bench_augment.py [--n 400] [--input-size 224] [--interpolation linear|cubic]

Measures (one thread for OpenCV, torch and numpy's FFT) the full ``MicrographDataset.__getitem__``
path on preloaded entries: reseed, augmentation of image + spectrum with the default
``AugmentConfig``, channel stacking and tensor conversion. Target: >= 300 samples/s per core,
so augmentation never starves training (a DataLoader with w workers gives about w times that).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from micrograde.models.training.dataset import MicrographDataset  # noqa: E402
from micrograde.pipeline.catalogue.cache import save_entry  # noqa: E402
from micrograde.pipeline.data.augment import AugmentConfig, apply_augment, build_augment, derive_seed, reseed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="samples per timing")
    ap.add_argument("--entries", type=int, default=32, help="distinct cached micrographs")
    ap.add_argument("--input-size", type=int, default=224)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        keys = []
        for i in range(args.entries):
            key = f"{i:032x}"
            img = cv2.GaussianBlur(rng.standard_normal((256, 256)).astype(np.float32), (0, 0), 2.0)
            save_entry(Path(tmp), key, image=(img - img.mean()) / img.std(),
                       spectrum=rng.standard_normal((256, 256)).astype(np.float32))
            keys.append(key)
        compose = build_augment(AugmentConfig())
        ds = MicrographDataset(Path(tmp), keys, None, input_size=args.input_size, augment=compose, seed=0)
        for i in range(20):  # warm up
            ds[i % len(ds)]
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(args.n):
            ds.set_epoch(i // len(ds))
            ds[i % len(ds)]
        full_wall = args.n / (time.perf_counter() - t0)
        full = args.n / (time.process_time() - c0)
        image, spectrum = ds.arrays(0, augmented=False)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(args.n):
            reseed(compose, derive_seed(0, 0, i))
            apply_augment(compose, image, spectrum)
        aug_wall = args.n / (time.perf_counter() - t0)
        aug_only = args.n / (time.process_time() - c0)
    # per core = samples per CPU-second of this (single-threaded) process; wall-clock also shown,
    # which is lower when other processes share the cores
    print(f"input size {args.input_size}, default AugmentConfig, 1 thread, {args.n} samples")
    print(
        f"dataset __getitem__ (augment + stack + tensor): {full:7.0f} samples/s per core (wall clock {full_wall:.0f}/s)"
    )
    print(
        f"augmentation alone (image + spectrum):          {aug_only:7.0f} samples/s per core "
        f"(wall clock {aug_wall:.0f}/s)"
    )
    print("target >= 300 samples/s per core:", "met" if full >= 300 else "NOT met")
    return 0 if full >= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
