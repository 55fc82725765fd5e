"""Preprocessing cost of one K3-size micrograph (4092x5760 float32): what the feature registry changes.

Run by hand (never in the test suite), once on each tree to compare:
    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python bench/bench_features.py
Prints the minimum CPU and wall time of three ``preprocess`` calls after a warm-up.
"""

import time

import numpy as np

from micrograde.pipeline.config import PreprocessConfig
from micrograde.pipeline.signal.preprocess import preprocess

img = np.random.default_rng(0).poisson(30.0, (4092, 5760)).astype(np.float32)
cfg = PreprocessConfig()
preprocess(img, 0.83, cfg, dose=40.0)  # warm-up
cpu, wall = [], []
for _ in range(3):
    c0, w0 = time.process_time(), time.perf_counter()
    preprocess(img, 0.83, cfg, dose=40.0)
    cpu.append(time.process_time() - c0)
    wall.append(time.perf_counter() - w0)
print(f"cpu min {min(cpu):.2f} s, wall min {min(wall):.2f} s, cpu all {[round(x,2) for x in cpu]}")
