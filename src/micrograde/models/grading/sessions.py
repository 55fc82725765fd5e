"""Each micrograph measured against its own session: the reference set and the ``session`` block.

Detector, voltage, dose, pixel size and the grid shift a session's physical measures as a whole
(spectrum levels, contrast, transmission...), so a forest fitted on three sessions can misread a
fourth. The ``session`` block (:func:`~.features.with_session_block`) gives it, beside the absolute
values, how far each micrograph lies from its session's median. On the development collections
(``bench/dev_grading.py``, 2026-11-29) the physics forest with that block graded held-out sessions
at mean macro-F1 0.637 against 0.536 without it, and 0.609 against 0.555 when the sessions' class
mixes were skewed (70 % good, 70 % bad, 50/30/20, 20/30/50; the medians taken over the skewed
session alone); docs/models.md, "Sessions".

The reference of a session is the first :data:`MAX_REFERENCE` of its micrographs (in the order
the caller gives: ingest order in a workspace), so a session's grades stop moving once it has that
many, and a session of 10,000 micrographs costs no more than one of 64. A session with fewer than
:data:`MIN_REFERENCE` micrographs (or a micrograph with no session) is measured against the
median of the grader's training micrographs instead, which the card keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from micrograde.models.grading.features import Features, reference_median, with_session_block

__all__ = ["MIN_REFERENCE", "MAX_REFERENCE", "reference_keys", "reference_digest", "add_session_block"]

MIN_REFERENCE = 5
MAX_REFERENCE = 64
MEMO_SIZE = 1024  # medians a memo keeps at most (one float32 row per session reference)


def reference_keys(keys: Sequence[str], sessions: Sequence) -> dict[str, list[str]]:
    """The reference of every session among ``sessions`` (one per key): its first :data:`MAX_REFERENCE`
    distinct keys in the given order. A missing session (None, NaN, "") has none."""
    out: dict[str, list[str]] = {}
    for key, session in zip(keys, sessions, strict=True):
        name = _name(session)
        if name is None:
            continue
        ref = out.setdefault(name, [])
        if len(ref) < MAX_REFERENCE and str(key) not in ref:
            ref.append(str(key))
    return out


def reference_digest(keys: Sequence[str], values: Sequence[float] | None = None) -> str:
    """A short digest of a session's reference (what its micrographs' grades depend on beyond their own inputs);
    a reference too small to be used has the same digest whatever it holds. ``values``: the catalogue values
    its micrographs bring to the median (the user's CTF estimates), when the grader reads any."""
    import hashlib

    keys = list(dict.fromkeys(str(k) for k in keys))[:MAX_REFERENCE]
    text = "fallback" if len(keys) < MIN_REFERENCE else ",".join(keys)
    if values is not None and len(keys) >= MIN_REFERENCE:
        text += "|" + ",".join(repr(float(v)) for v in values)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _name(session) -> str | None:
    if session is None or (isinstance(session, float) and np.isnan(session)) or str(session) == "":
        return None
    return str(session)


def add_session_block(feats: Features, sessions: Sequence, references: Mapping[str, Sequence[str]],
                      load: Callable[[list[str]], Features], fallback: np.ndarray,
                      memo: dict[tuple[str, ...], np.ndarray] | None = None) -> tuple[Features, dict[str, int]]:
    """``feats`` with the ``session`` block, and the size of the reference used for each session (0: the
    ``fallback`` median, the training micrographs').

    ``sessions``: the session of each row of ``feats``; ``references``: the reference keys of each session
    (:func:`reference_keys`); ``load``: the :class:`Features` of a list of cache keys (only its physical
    blocks are read; rows already in ``feats`` are not loaded again); ``memo``: medians already computed, by
    reference (a run graded chunk by chunk computes each session's median once)."""
    if len(sessions) != len(feats):
        raise ValueError(f"{len(sessions)} sessions for {len(feats)} micrographs")
    fallback = np.asarray(fallback, dtype=np.float32)
    names = [_name(s) for s in sessions]
    position = {k: i for i, k in enumerate(feats.keys)}
    medians: dict[str | None, np.ndarray] = {None: fallback}
    used: dict[str, int] = {}
    for name in sorted({n for n in names if n is not None}):
        keys = list(dict.fromkeys(str(k) for k in references.get(name, ())))[:MAX_REFERENCE]
        if len(keys) < MIN_REFERENCE:
            medians[name], used[name] = fallback, 0
            continue
        if memo is not None and tuple(keys) in memo:
            medians[name], used[name] = memo[tuple(keys)], len(keys)
            continue
        have = [k for k in keys if k in position]
        rest = [k for k in keys if k not in position]
        parts = [feats.take(np.array([position[k] for k in have], dtype=np.int64))] if have else []
        if rest:
            parts.append(load(rest))
        ref = parts[0] if len(parts) == 1 else _stack(parts)
        medians[name], used[name] = reference_median(ref), len(keys)
        if memo is not None:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[tuple(keys)] = medians[name]
    rows = np.stack([medians[n] for n in names]) if len(names) else np.zeros((0, fallback.size), np.float32)
    return with_session_block(feats, rows), used


def _stack(parts: list[Features]) -> Features:
    blocks = {b: np.vstack([p.blocks[b] for p in parts]) for b in parts[0].blocks if all(b in p.blocks for p in parts)}
    return Features([k for p in parts for k in p.keys], blocks, parts[0].names)
