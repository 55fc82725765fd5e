"""Make ``import torchvision`` (and so ``import timm``) work when torchvision's C++ ops cannot load.

A CPU-only torch paired with a CUDA-linked torchvision wheel cannot load ``torchvision._C``;
torchvision's ``_meta_registrations`` then registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` (unconditionally) and import fails with
``RuntimeError: operator torchvision::nms does not exist``. The other meta registrations
(roi_align, ps_roi_align, roi_pool, ps_roi_pool, deform_conv2d and their backward ops) are
guarded by ``torchvision.extension._has_ops()`` and need nothing.

:func:`ensure_torchvision` is called explicitly (never on import) before importing timm. It
does nothing when torchvision imports cleanly. Otherwise it defines the *schemas* of the ops
torchvision needs at import time, with no kernels, and imports torchvision again: calling
one of those ops then fails loudly ("no kernel"), which micrograde never does (it uses neither
``torchvision.ops`` nor ``torchvision.io``).
"""

from __future__ import annotations

import sys
import threading

__all__ = ["ensure_torchvision", "TORCHVISION_SCHEMAS"]

#: Schemas of the ops that ``torchvision/_meta_registrations.py`` registers fake kernels for
#: without checking whether the extension loaded (from torchvision's csrc/ops/nms.cpp, qnms).
TORCHVISION_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_LOCK = threading.Lock()
_LIBRARY = None  # the torch.library.Library that owns the shim schemas (kept alive here)
_SHIMMED = False


def _op_exists(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _purge_torchvision() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision() -> bool:
    """Import torchvision, defining missing op schemas first if its extension cannot load.

    Returns True when the shim was needed (now or earlier in this process), False when
    torchvision imported on its own. Other import errors propagate unchanged.
    """
    global _LIBRARY, _SHIMMED
    with _LOCK:
        try:
            import torchvision  # noqa: F401

            return _SHIMMED
        except RuntimeError as exc:
            if "torchvision::" not in str(exc):
                raise
        _purge_torchvision()
        import torch

        missing = {n: s for n, s in TORCHVISION_SCHEMAS.items() if not _op_exists(n)}
        if missing:
            if _LIBRARY is None:
                _LIBRARY = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
            for schema in missing.values():
                _LIBRARY.define(schema)
        _SHIMMED = True
        import torchvision  # noqa: F401,F811  (raises again if something else is wrong)

        return True
