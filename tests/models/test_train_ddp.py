"""`micrograde train --finetune cv --nproc 2`: the fine-tuning candidate trained data-parallel through torchrun
(gloo, 2 CPU processes) in every fold and evaluated beside the other heads."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from micrograde.flows.cli.main import main
from micrograde.pipeline.catalogue.schema import ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace

pytestmark = pytest.mark.slow


def test_fine_tuning_candidate_with_two_processes_is_cross_validated(prefect_harness, tmp_path):
    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.labeling.store import import_labels
    from micrograde.pipeline.sim.files import write_collection

    sim = tmp_path / "sim"
    truth = write_collection(sim, 24, seed=5)  # 4 sessions of 6: enough labels for a choice between heads
    root = tmp_path / "ws"
    ingest_flow([str(sim)], RunContext(root=root))
    truth[["micrograph", "label"]].to_csv(tmp_path / "labels.csv", index=False)
    with Workspace.open(root) as ws:
        import_labels(ws, tmp_path / "labels.csv", "senior", "senior-scientist")
    result = CliRunner().invoke(main, ["train", "--workspace", str(root), "--heads", "baseline", "--finetune", "cv",
                                       "--nproc", "2", "--backbone", "lenet", "--weights", "none", "--epochs", "2",
                                       "--batch-size", "4", "--no-augment"])
    assert result.exit_code == 0, result.output
    assert re.search(r"fine-tuning: fold (\d+)/\1 done", result.output)  # every fold fine-tuned
    with Workspace.open(root) as ws, ws.session() as s:
        rows = s.execute(select(ModelRow)).scalars().all()
    assert len(rows) == 1
    card = json.loads((root / "models" / rows[0].id / "card.json").read_text())
    finetune = next(c for c in card["evaluation"]["candidates"] if c["name"] == "finetune")
    assert finetune["skipped"] is None and finetune["macro_f1"] is not None  # evaluated in the same folds
    assert card["train_config"]["nproc"] == 2 and card["train_config"]["recipe"]["backbone"] == "lenet"
    if card["head"]["kind"] == "finetune":  # a fine-tuned network ships in network/
        assert (root / "models" / rows[0].id / "network" / "model.pt").is_file()
