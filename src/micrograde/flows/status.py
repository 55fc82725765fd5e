"""Workspace status: what is ingested, rejected, labelled and trained (for ``micrograde status``)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from micrograde.pipeline.catalogue.files import file_counts
from micrograde.pipeline.catalogue.query import reject_counts
from micrograde.pipeline.catalogue.schema import Annotation, Annotator, Micrograph, ModelRow, SessionRow
from micrograde.pipeline.catalogue.workspace import Workspace

__all__ = ["workspace_status", "status_lines"]


def workspace_status(ws: Workspace) -> dict:
    """Counts per session, rejects per reason, labels and models, as a JSON-ready dict."""
    with ws.session() as s:
        counts = s.execute(
            select(SessionRow.name, func.count(Micrograph.id))
            .join(Micrograph, Micrograph.session_id == SessionRow.id, isouter=True)
            .group_by(SessionRow.name)
            .order_by(SessionRow.name)
        ).all()
        per_session = {str(name): int(n) for name, n in counts}
        ann = pd.DataFrame(
            s.execute(select(Annotation.id, Annotation.micrograph_id, Annotation.annotator_id, Annotation.label)).all(),
            columns=["id", "micrograph_id", "annotator_id", "label"],
        )
        n_annotators = s.execute(select(func.count(Annotator.id))).scalar_one()
        models = s.execute(
            select(ModelRow.id, ModelRow.backbone, ModelRow.created_at).order_by(ModelRow.created_at)
        ).all()
    latest = ann.sort_values("id").drop_duplicates(["micrograph_id", "annotator_id"], keep="last")
    latest = latest[latest["label"].notna()]
    rejects = reject_counts(ws)
    return {
        "workspace": str(ws.root),
        "micrographs": int(sum(per_session.values())),
        "sessions": {k: int(v) for k, v in per_session.items()},
        "rejected": int(sum(rejects.values())),
        "reject_reasons": rejects,
        "files": file_counts(ws),
        "annotators": int(n_annotators),
        "annotations": int(len(ann)),
        "labelled": int(latest["micrograph_id"].nunique()),
        "models": [{"id": m.id, "backbone": m.backbone, "created_at": m.created_at.isoformat()} for m in models],
        "reports": sorted(p.name for p in ws.reports_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
    }


def status_lines(status: dict) -> list[str]:
    lines = [f"workspace {status['workspace']}", f"micrographs ingested: {status['micrographs']}"]
    lines += [f"  session {name}: {n}" for name, n in status["sessions"].items()]
    files = status["files"]
    lines.append(f"files seen: {sum(files.values())} (ingested {files['ingested']}, rejected {files['rejected']}, "
                 f"superseded by a newer version {files['superseded']})")
    lines.append(f"rejected files: {status['rejected']}")
    lines += [f"  {reason}: {n}" for reason, n in status["reject_reasons"].items()]
    lines.append(
        f"labelled micrographs: {status['labelled']} "
        f"({status['annotations']} annotations by {status['annotators']} annotators)"
    )
    lines.append(
        f"models: {len(status['models'])}" + (f" (latest {status['models'][-1]['id']})" if status["models"] else "")
    )
    lines.append(f"reports: {len(status['reports'])}")
    return lines
