"""A cache of preprocessed simulated micrographs with their true labels, without a catalogue (the
grader reads only the cache), for the grading tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

__all__ = ["cached_collection", "by_session"]


def cached_collection(out: Path, n: int, *, seed: int, sessions=None) -> pd.DataFrame:
    """Simulate ``n`` micrographs (family a), preprocess each into ``out/cache`` as ingest does; the
    truth table gains ``cache_key`` and ``preprocess_key``."""
    from micrograde.pipeline.catalogue.cache import entry_arrays, save_entry
    from micrograde.pipeline.config import PreprocessConfig
    from micrograde.pipeline.io.readers import read_micrographs
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
        save_entry(out / "cache", key, **entry_arrays(pre))
        keys.append(key)
    return truth.assign(cache_key=keys, preprocess_key=cfg.digest())



def by_session(feats, sessions):
    """``feats`` with the session block, each row against the median of its session's rows in ``feats``
    (the reference of every session is among the rows: nothing is loaded)."""
    from micrograde.models.grading.features import reference_median
    from micrograde.models.grading.sessions import add_session_block, reference_keys

    def no_load(keys):
        raise AssertionError(f"every reference is among the rows; asked to load {keys}")

    sessions = list(sessions)
    return add_session_block(feats, sessions, reference_keys(feats.keys, sessions), load=no_load,
                             fallback=reference_median(feats))[0]
