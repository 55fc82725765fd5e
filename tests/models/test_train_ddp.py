"""`micrograde train --nproc 2`: data-parallel fine-tuning through torchrun (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from micrograde.flows.cli.main import main
from micrograde.pipeline.catalogue.schema import ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace

pytestmark = pytest.mark.slow


def test_train_with_two_processes_registers_one_model(prefect_harness, sim_collection, tmp_path):
    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.labeling.store import import_labels

    src, truth = sim_collection
    sim = shutil.copytree(src, tmp_path / "sim")
    root = tmp_path / "ws"
    ingest_flow([str(sim)], RunContext(root=root))
    truth[["micrograph", "label"]].to_csv(tmp_path / "labels.csv", index=False)
    with Workspace.open(root) as ws:
        import_labels(ws, tmp_path / "labels.csv", "senior", "senior-scientist")
    result = CliRunner().invoke(main, ["train", "--workspace", str(root), "--nproc", "2", "--backbone", "lenet",
                                       "--weights", "none", "--epochs", "2", "--batch-size", "4", "--no-augment"])
    assert result.exit_code == 0, result.output
    with Workspace.open(root) as ws, ws.session() as s:
        rows = s.execute(select(ModelRow)).scalars().all()
    assert len(rows) == 1
    card = json.loads((root / "models" / rows[0].id / "card.json").read_text())
    assert card["backbone"]["name"] == "lenet" and card["weights"]["pretrained"] is False
    assert len(card["history"]) == 2 and card["metrics"]["n"] > 0
