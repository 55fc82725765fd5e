"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits.

Calibrated probabilities are ``softmax(logits / T)``; T > 1 softens an over-confident model.
The argmax (and so accuracy) is unchanged. ECE and the reliability curve are computed by
:mod:`micrograde.pipeline.data.metrics` (numpy only, so reports can use them without torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from micrograde.pipeline.data.metrics import as_indices, expected_calibration_error, reliability_curve

__all__ = [
    "fit_temperature",
    "apply_temperature",
    "calibration_summary",
    "expected_calibration_error",
    "reliability_curve",
]

T_MIN, T_MAX = 0.05, 20.0


def fit_temperature(logits: torch.Tensor | np.ndarray, labels: Sequence | np.ndarray, max_iter: int = 100) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (LBFGS on log T)."""
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits.detach())
    z = z.to(torch.float64).cpu()
    y = torch.as_tensor(as_indices(labels))
    if z.ndim != 2 or z.shape[0] != y.numel() or y.numel() == 0:
        raise ValueError("logits must be (N, C) with N = len(labels) > 0")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t):
        return 1.0
    return float(np.clip(t, T_MIN, T_MAX))


def apply_temperature(logits: torch.Tensor | np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / T)`` as a float64 numpy array."""
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits.detach())
    return torch.softmax(z.to(torch.float64).cpu() / temperature, dim=1).numpy()


def calibration_summary(logits: torch.Tensor | np.ndarray, labels: Sequence | np.ndarray, n_bins: int = 10) -> dict:
    """Fit T on (validation) logits; report ECE and NLL before and after (for the model card)."""
    y = as_indices(labels)
    t = fit_temperature(logits, y)
    before, after = apply_temperature(logits, 1.0), apply_temperature(logits, t)

    def nll(p: np.ndarray) -> float:
        return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], 1e-12, None))))

    return {
        "temperature": t,
        "ece_before": expected_calibration_error(before, y, n_bins),
        "ece_after": expected_calibration_error(after, y, n_bins),
        "nll_before": nll(before),
        "nll_after": nll(after),
        "n": int(y.size),
        "n_bins": n_bins,
        "reliability_after": reliability_curve(after, y, n_bins),
    }
