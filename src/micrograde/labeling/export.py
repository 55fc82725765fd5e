"""Export the labels: consensus, disputed flag and one column per annotator, plus agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from micrograde.labeling.agreement import agreement_report
from micrograde.labeling.consensus import consensus
from micrograde.labeling.store import latest_annotations
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.io.atomic import atomic_open, atomic_write_text

__all__ = ["EXPORT_COLUMNS", "export_table", "export_labels", "agreement_sidecar"]

#: Fixed leading columns of an export; one column per annotator (named after them) follows.
EXPORT_COLUMNS = ["micrograph", "name", "session", "consensus", "disputed", "n_annotators", "support"]


def agreement_sidecar(out: Path) -> Path:
    """Where the agreement summary of an export goes: ``<out>.agreement.json``."""
    out = Path(out)
    return out.with_name(out.name + ".agreement.json")


def export_table(ws: Workspace) -> pd.DataFrame:
    """The export as a table: one row per micrograph with at least one current label, id order.

    Annotator columns hold that annotator's current label (empty when they did not label the
    micrograph). An annotator whose name equals a fixed column gets ``annotator:<name>``.
    """
    latest = latest_annotations(ws)
    if latest.empty:
        return pd.DataFrame(columns=EXPORT_COLUMNS)
    cons = consensus(latest).set_index("micrograph_id")
    wide = latest.pivot(index="micrograph_id", columns="annotator", values="label")
    wide.columns = [f"annotator:{c}" if c in EXPORT_COLUMNS else str(c) for c in wide.columns]
    mics = micrograph_table(ws, ids=[int(i) for i in cons.index]).set_index("id")
    table = pd.DataFrame(
        {
            "micrograph": mics.loc[cons.index, "path"].to_numpy(),
            "name": mics.loc[cons.index, "name"].to_numpy(),
            "session": mics.loc[cons.index, "session"].to_numpy(),
            "consensus": cons["label"].to_numpy(),
            "disputed": cons["disputed"].to_numpy(),
            "n_annotators": cons["n_annotators"].to_numpy(),
            "support": cons["support"].round(4).to_numpy(),
        },
        index=cons.index,
    )
    table = table.join(wide)
    return table.reset_index(drop=True)


def export_labels(ws: Workspace, out: Path) -> pd.DataFrame:
    """Write the export CSV (atomically) and ``<out>.agreement.json``; returns the table written."""
    out = Path(out)
    table = export_table(ws)
    with atomic_open(out, "w") as fh:
        table.to_csv(fh, index=False, lineterminator="\n")
    report = agreement_report(latest_annotations(ws))
    atomic_write_text(agreement_sidecar(out), json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    return table
