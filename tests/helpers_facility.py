"""Helpers for the facility tests: slow writers, truncated files, a tiny trained model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd


def write_slowly(src: Path, dst: Path, *, chunks: int = 4, pause: float = 0.3, stop_after: int | None = None) -> None:
    """Copy ``src`` to ``dst`` in ``chunks`` pieces with ``pause`` s between them, like a detector PC
    writing over the network. ``stop_after`` chunks: leave the file truncated (the transfer died)."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // chunks)
    with open(dst, "wb") as fh:
        for i in range(chunks):
            if stop_after is not None and i >= stop_after:
                return
            fh.write(data[i * step : (i + 1) * step])
            fh.flush()
            time.sleep(pause)


class Microscope(threading.Thread):
    """Writes files into a watch folder one after another: each as (src, dst, kwargs for write_slowly)."""

    def __init__(self, plan: list[tuple[Path, Path, dict]], gap: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.plan, self.gap = plan, gap
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for src, dst, kwargs in self.plan:
                write_slowly(src, dst, **kwargs)
                time.sleep(self.gap)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def labels_csv(path: Path, truth: pd.DataFrame, sim_dir: Path) -> Path:
    """A labels CSV (absolute paths as ingested) from a simulator truth table."""
    table = pd.DataFrame({"micrograph": [str((sim_dir / m).resolve()) for m in truth["micrograph"]],
                          "label": truth["label"]})
    table.to_csv(path, index=False)
    return path


def train_tiny_model(root: Path, truth: pd.DataFrame, sim_dir: Path) -> str:
    """Label the ingested micrographs with the truth and train a grader on the cheapest head; returns the model id.

    Runs the train flow (a subflow when called inside a flow, as :func:`tiny_train_flow` does).
    """
    from micrograde.flows.context import RunContext
    from micrograde.flows.train import train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.grading import GraderConfig

    ctx = RunContext(root=root, command="test")
    ws = ctx.workspace()
    import_labels(ws, labels_csv(root / "truth-labels.csv", truth, sim_dir), "ana", "senior-scientist")
    return train_flow(ctx, GraderConfig(heads=("baseline",), finetune="never")).model_id


def tiny_train_flow():
    from prefect import flow

    @flow(name="test-tiny-train", validate_parameters=False)
    def _flow(root: Path, truth: pd.DataFrame, sim_dir: Path) -> str:
        return train_tiny_model(root, truth, sim_dir)

    return _flow
