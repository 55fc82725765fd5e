"""`micrograde train --nproc N` never puts the catalogue URL (and its password) on torchrun's command line."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from micrograde.flows.context import RunContext


def test_the_run_context_reaches_the_ranks_in_a_private_file(tmp_path, monkeypatch):
    from micrograde.flows import train as train_flows
    from micrograde.models.training.run import TrainRunConfig

    secret_url = "postgresql+psycopg://mg:s3cret-pw@dbhost/micrograde"
    ctx = RunContext(root=tmp_path / "ws", db_url=secret_url, command="micrograde train")
    seen = {}

    def fake_run(cmd, check=False):
        seen["cmd"] = [str(c) for c in cmd]
        context = Path(cmd[cmd.index("micrograde.flows.train_ddp") + 1])
        seen["mode"] = stat.S_IMODE(context.stat().st_mode)
        seen["context"] = json.loads(context.read_text())
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(train_flows.subprocess, "run", fake_run)
    monkeypatch.setattr(RunContext, "workspace", lambda self: type("W", (), {"models_dir": tmp_path / "models"})())
    with pytest.raises(train_flows.DistributedTrainingError):
        train_flows.train_ddp_task.fn(ctx, TrainRunConfig(), "model-x", 2)
    assert not any("s3cret" in part for part in seen["cmd"]), seen["cmd"]
    assert seen["mode"] == 0o600
    assert seen["context"]["db_url"] == secret_url and seen["context"]["command"] == "micrograde train"
    assert not Path(seen["cmd"][seen["cmd"].index("micrograde.flows.train_ddp") + 1]).exists(), "removed afterwards"
