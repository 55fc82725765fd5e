"""A cache of preprocessed simulated micrographs with their true labels, without a catalogue (the
grader reads only the cache), for the grading tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["cached_collection"]


def cached_collection(out: Path, n: int, *, seed: int, sessions=None) -> pd.DataFrame:
    """Simulate ``n`` micrographs (family a), preprocess each into ``out/cache`` as ingest does; the
    truth table gains ``cache_key`` and ``preprocess_key``."""
    from micrograde.pipeline.catalogue.cache import save_entry
    from micrograde.pipeline.config import PreprocessConfig
    from micrograde.pipeline.io.readers import read_micrographs
    from micrograde.pipeline.signal.measures import PHYSICAL_NAMES
    from micrograde.pipeline.signal.preprocess import preprocess
    from micrograde.pipeline.sim.files import write_collection

    kwargs = {"sessions": sessions} if sessions is not None else {}
    truth = write_collection(out / "sim", n, seed=seed, **kwargs)
    cfg = PreprocessConfig()
    keys = []
    for rel in truth["micrograph"]:
        path = out / "sim" / rel
        raw = read_micrographs(path)[0]
        dose = json.loads((path.parent / "session.json").read_text())["dose"]
        pre = preprocess(raw.data, raw.pixel_size, cfg, dose=dose)
        key = hashlib.sha256(f"{seed}:{rel}".encode()).hexdigest()[:32]
        values = {**pre.scores, **pre.measures}
        save_entry(out / "cache", key, image=pre.image, spectrum=pre.spectrum, thumbnail=pre.thumbnail,
                   radial=pre.radial, radial_freq=pre.radial_freq, image_pixel_size=np.float32(pre.pixel_size),
                   view=pre.view, view_pixel_size=np.float32(pre.view_pixel_size),
                   measures=np.array([values[n] for n in PHYSICAL_NAMES], dtype=np.float32),
                   measure_names=np.array(PHYSICAL_NAMES))
        keys.append(key)
    return truth.assign(cache_key=keys, preprocess_key=cfg.digest())

