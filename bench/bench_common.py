"""Pieces the benchmark scripts share: one row of a rate table, and writing a result file.

Imported by the scripts of this folder (``bench/`` is on ``sys.path`` when a script runs)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["rate_row", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"


def rate_row(n: int, seconds: float, read_s: float, rss_mb: float) -> dict:
    """The common columns of a throughput row: count, time, rate, plain-read time and ratio, peak RSS."""
    return {
        "n": n,
        "seconds": round(seconds, 2),
        "micrographs_per_s": round(n / seconds, 2),
        "plain_read_s": round(read_s, 2),
        "ratio_to_plain_read": round(seconds / read_s, 1),
        "peak_rss_mb": round(rss_mb),
    }


def write_result(res: dict, name: str, quick: bool, started: float) -> Path:
    """Stamp ``res`` with the total time and the command line, write ``results/<name>.json``
    (``<name>-quick.json`` for a smoke run) atomically, and say where."""
    from micrograde.pipeline.io.atomic import atomic_write_text

    res["total_seconds"] = round(time.perf_counter() - started, 1)
    res["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    out = RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}\n")
    return out
