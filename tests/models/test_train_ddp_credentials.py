"""`micrograde train --finetune cv --nproc N` puts nothing but file paths on torchrun's command line: the ranks
read the labelled rows from a private temporary file and never open the catalogue (no URL, no password)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest


def test_the_ranks_get_the_labelled_rows_in_a_private_folder_and_no_catalogue_url(tmp_path, monkeypatch):
    from micrograde.models.training import ddp_entry
    from micrograde.models.training.run import TrainRunConfig

    table = pd.DataFrame({"cache_key": ["a" * 32, "b" * 32], "label": ["good", "bad"], "session": ["s1", "s2"]})
    seen = {}

    def fake_run(cmd, check=False):
        seen["cmd"] = [str(c) for c in cmd]
        rows = Path(cmd[cmd.index("micrograde.models.training.ddp_entry") + 1])
        seen["mode"] = stat.S_IMODE(rows.parent.stat().st_mode)
        seen["rows"] = pd.read_parquet(rows)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(ddp_entry.subprocess, "run", fake_run)
    with pytest.raises(ddp_entry.DistributedTrainingError, match="exit code 1"):
        ddp_entry.run_torchrun(table, tmp_path / "cache", tmp_path / "out", TrainRunConfig(), "model-x", 2)
    args = seen["cmd"][seen["cmd"].index("micrograde.models.training.ddp_entry") + 1:]
    assert all(Path(a).is_absolute() or a == "model-x" for a in args), args  # paths and the model id only
    assert not any("postgres" in part or "sqlite" in part for part in seen["cmd"])
    assert seen["mode"] == 0o700  # only this user can read the rows
    assert seen["rows"].equals(table)
    assert not Path(args[0]).exists(), "removed afterwards"
