"""Inputs validated before work (src/micrograde/flows/inputs.py): a bad STAR, .cs, threshold or model id
exits 2 with one line, no traceback, nothing ingested and no report folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from click.testing import CliRunner
from helpers_io import write_mrc

from micrograde.flows.cli.main import main
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.workspace import Workspace


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    src = tmp_path / "in"
    src.mkdir()
    write_mrc(src / "m.mrc", np.random.default_rng(0).normal(size=(200, 200)).astype(np.float32), voxel_size=1.0)
    particles = tmp_path / "particles.star"
    starfile.write({"particles": pd.DataFrame({"rlnMicrographName": ["m.mrc"], "rlnCoordinateX": [10.0],
                                               "rlnCoordinateY": [12.0]})}, particles)
    not_star = tmp_path / "notes.star"
    not_star.write_text("these are my notes, not a STAR file\n\x00\x01")
    bad_cs = tmp_path / "exposures.cs"
    bad_cs.write_bytes(b"not a numpy structured array")
    bad_ctf = tmp_path / "micrographs_ctf.star"  # a CTF column that holds text
    starfile.write({"micrographs": pd.DataFrame({"rlnMicrographName": ["m.mrc"], "rlnCtfMaxResolution": ["n/a"]})},
                   bad_ctf)
    return {"src": src, "particles": particles, "not_star": not_star, "bad_cs": bad_cs, "bad_ctf": bad_ctf,
            "ws": tmp_path / "ws"}


def _assess(inputs, *extra: str):
    return CliRunner().invoke(main, ["assess", str(inputs["src"]), "--workspace", str(inputs["ws"]), *extra])


@pytest.mark.parametrize(
    ("option", "key", "message"),
    [
        ("--star", "particles", "lists particles"),
        ("--star", "not_star", "not a micrographs star"),
        ("--cs", "bad_cs", ".cs"),
        ("--star", "bad_ctf", "not numbers"),
        ("--model", None, "no model 'model-nope'"),
    ],
)
def test_a_bad_input_exits_2_with_one_line_before_any_work(inputs, option, key, message):
    value = "model-nope" if key is None else str(inputs[key])
    result = _assess(inputs, option, value)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output
    with Workspace.open(inputs["ws"]) as ws:
        assert micrograph_table(ws).empty, "nothing ingested"
        assert not any(ws.reports_dir.iterdir()), "no report folder"
    assert not (inputs["ws"] / ".prefect" / "micrograde-api.json").exists(), "no Prefect server started"


def test_no_model_at_all_is_exit_1_before_any_work(inputs):
    result = _assess(inputs)
    assert result.exit_code == 1 and "no trained model" in result.output
    with Workspace.open(inputs["ws"]) as ws:
        assert micrograph_table(ws).empty


def test_a_chunk_size_below_one_is_a_usage_error_before_any_work(inputs):
    result = _assess(inputs, "--chunk-size", "0")
    assert result.exit_code == 2 and "--chunk-size" in result.output and "Traceback" not in result.output
    assert not inputs["ws"].exists() or not any((inputs["ws"] / "reports").glob("*"))


def test_a_bad_threshold_is_a_usage_error(inputs):
    result = _assess(inputs, "--threshold", "great=0.5")
    assert result.exit_code == 2 and "unknown class" in result.output


def test_the_assess_flow_checks_its_inputs_before_ingesting(prefect_harness, inputs):
    from micrograde.flows.assess import AssessConfig, assess_flow
    from micrograde.flows.context import RunContext
    from micrograde.flows.inputs import AssessInputError

    with pytest.raises(AssessInputError, match="lists particles"):
        assess_flow(
            [str(inputs["src"])], RunContext(root=inputs["ws"]), None, AssessConfig(star=str(inputs["particles"]))
        )
    with Workspace.open(inputs["ws"]) as ws:
        assert micrograph_table(ws).empty and not any(ws.reports_dir.iterdir())


def _register_grader(ws_root: Path, model_id: str) -> Path:
    """A small grader (a baseline forest) saved and registered in the workspace as `train` would."""
    import json

    from micrograde.models.grading.features import Features
    from micrograde.models.grading.grader import save_heads
    from micrograde.models.grading.heads import fit_head
    from micrograde.pipeline.catalogue.schema import ModelRow
    from micrograde.pipeline.config import LABELS

    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    feats = Features([f"k{i}" for i in range(30)], {"level": (rng.normal(size=(30, 8)) + y[:, None]).astype(np.float32),
                                                    "scores": rng.normal(size=(30, 5)).astype(np.float32)})
    with Workspace.open(ws_root) as ws:
        folder = ws.models_dir / model_id
        folder.mkdir(parents=True)
        card = {"id": model_id, "kind": "grader", "classes": list(LABELS), "head": "baseline",
                "backbone": {"name": "none"}, "input": {"preprocess": {}, "measures": []},
                "files": {"heads": save_heads(folder, {"baseline": fit_head("baseline", feats, y)})}}
        (folder / "card.json").write_text(json.dumps(card))
        with ws.transaction() as s:
            s.add(ModelRow(id=model_id, path=str(folder), backbone="none", card=card))
    return folder


@pytest.mark.parametrize("damage", ["altered", "untrusted"])
def test_an_altered_or_untrusted_grader_is_exit_1_with_one_line_before_any_work(inputs, damage):
    """The grader's files are checked with the other inputs: nothing ingested, no report, no traceback. The
    untrusted case runs the command in a fresh process, as a user does: this test process imported skops
    itself, whose default trust (every scikit-learn estimator) then applies (grader._skops_io)."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    import skops.io as sio
    from sklearn.svm import SVC

    folder = _register_grader(inputs["ws"], "model-damaged")
    heads = folder / "heads.skops"
    if damage == "altered":
        heads.write_bytes(heads.read_bytes() + b"x")
        result = _assess(inputs)
        code, output, message = result.exit_code, result.output, "does not match the SHA-256"
    else:  # a scikit-learn estimator the heads are not made of (skops itself would trust it), digest updated
        data = sio.dumps({"baseline": {"forest": SVC().fit(np.random.default_rng(1).random((9, 2)),
                                                           np.arange(9) % 3)}})
        heads.write_bytes(data)
        card = json.loads((folder / "card.json").read_text())
        card["files"]["heads"]["sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "card.json").write_text(json.dumps(card))
        env = {**os.environ, "MICROGRADE_PREFECT_API": "private", "PREFECT_HOME": str(inputs["ws"] / ".prefect")}
        env.pop("PREFECT_API_URL", None)
        done = subprocess.run([sys.executable, "-m", "micrograde", "assess", str(inputs["src"]), "--workspace",
                               str(inputs["ws"])], capture_output=True, text=True, env=env, timeout=300)
        code, output, message = done.returncode, done.stdout + done.stderr, "does not trust: sklearn.svm"
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model model-damaged") and message in lines[0], output
    assert "Traceback" not in output
    with Workspace.open(inputs["ws"]) as ws:
        assert micrograph_table(ws).empty, "nothing ingested"
        assert not any(ws.reports_dir.iterdir()), "no report folder"
