"""``micrograde demo`` end to end at a reduced size: every step runs and the report has every section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from micrograde.flows.demo import DemoConfig

SECTIONS = (
    "summary",
    "out-of-fold",
    "rejects",
    "warnings",
    "gallery-good",
    "gallery-medium",
    "gallery-bad",
    "scores",
    "timeline",
    "evaluation",
    "model",
)


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_a_full_report(prefect_harness, tmp_path):
    from micrograde.flows.cli.facility import demo_cmd
    from micrograde.pipeline.catalogue.query import micrograph_table
    from micrograde.pipeline.catalogue.workspace import Workspace

    root = tmp_path / "demo"
    result = CliRunner().invoke(demo_cmd, ["--workspace", str(root), "--quick", "--n", "9"])
    assert result.exit_code == 0, result.output[-3000:]
    lines = result.output.strip().splitlines()
    for step in range(1, 7):
        assert f"[{step}/6] " in result.output, f"step {step} not announced"
    assert "out-of-fold estimate on 27 labels: macro-F1" in result.output  # 3 training sessions x 9
    assert "held-back session k2_au_quantifoil: grades agree with its labels at macro-F1" in result.output
    report = Path(lines[-1])
    assert report.parent == root / "reports" and (report / "report.html").is_file()
    html = (report / "report.html").read_text(encoding="utf-8")
    missing = [s for s in SECTIONS if f'id="{s}"' not in html]
    assert not missing, f"report sections missing: {missing}"

    predictions = pd.read_csv(report / "predictions.csv")
    with Workspace.open(root) as ws:
        table = micrograph_table(ws)
    sessions = DemoConfig().sessions  # every simulated session is ingested (the held-back one last)
    assert table["session"].nunique() == sessions and len(table) == sessions * 9
    assert predictions["session"].nunique() == 1 and len(predictions) == 9, "only the held-back session is assessed"
    assert set(predictions["label"]) <= {"good", "medium", "bad"}
    assert (report / "selected.star").is_file()
    truth = pd.read_csv(root / "sim" / "truth.csv")
    assert predictions["session"].iloc[0] == truth["session"].iloc[-1]
