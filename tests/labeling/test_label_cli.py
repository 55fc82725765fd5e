"""The ``micrograde label`` commands, run through click."""

from __future__ import annotations

import json

import click
import pandas as pd
from click.testing import CliRunner
from helpers_label import add_micrographs

from micrograde.flows.cli.label import register
from micrograde.labeling import store
from micrograde.pipeline.catalogue.workspace import Workspace


def cli() -> click.Group:
    @click.group()
    def main() -> None:
        pass

    register(main)
    return main


def test_label_commands(tmp_path):
    root = tmp_path / "ws"
    with Workspace.open(root) as ws:
        add_micrographs(ws, 3)
    run = CliRunner().invoke
    main, w = cli(), ["--workspace", str(root)]

    r = run(main, ["label", "add-annotator", "ana", "--expertise", "postdoc", *w])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    with Workspace.open(root) as ws:
        assert store.authenticate(ws, token).name == "ana"
    assert run(main, ["label", "add-annotator", "ana", "--expertise", "grad", *w]).exit_code == 2
    assert run(main, ["label", "add-annotator", "bob", "--expertise", "professor", *w]).exit_code == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("micrograph,label\nmic_000.mrc,good\nnope.mrc,good\nmic_001.mrc,great\n")
    r = run(main, ["label", "import", str(bad), "--annotator", "ben", "--expertise", "grad", *w])
    assert r.exit_code == 1 and "line 3" in r.output and "line 4" in r.output

    good = tmp_path / "good.csv"
    good.write_text("micrograph,label\nmic_000.mrc,good\nmic_001.mrc,bad\nmic_002.mrc,good\n")
    r = run(main, ["label", "import", str(good), "--annotator", "ben", "--expertise", "grad", *w])
    assert r.exit_code == 0 and "imported 3" in r.output
    good.write_text("micrograph,label\nmic_000.mrc,good\nmic_001.mrc,good\nmic_002.mrc,good\n")
    assert run(main, ["label", "import", str(good), "--annotator", "ana", "--expertise", "postdoc", *w]).exit_code == 0

    r = run(main, ["label", "agreement", *w])
    assert r.exit_code == 0 and "Cohen" in r.output and "Fleiss" in r.output
    r = run(main, ["label", "agreement", "--json", *w])
    assert json.loads(r.output)["n_labels"] == 6

    out = tmp_path / "export.csv"
    r = run(main, ["label", "export", "--out", str(out), *w])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    assert list(table["consensus"]) == ["good", "good", "good"] and {"ana", "ben"} <= set(table.columns)
    assert bool(table.loc[1, "disputed"])  # postdoc good (3) vs grad bad (2): support 3/5

    r = run(main, ["label", "deactivate", "ana", *w])
    assert r.exit_code == 0 and "inactive" in r.output
    r = run(main, ["label", "annotators", "--json", *w])
    assert {a["name"]: a["active"] for a in json.loads(r.output)} == {"ana": False, "ben": True}
    assert "--port" in run(main, ["label", "serve", "--help"]).output


def test_agreement_and_export_with_no_labels(tmp_path):
    main, w = cli(), ["--workspace", str(tmp_path / "ws")]
    assert CliRunner().invoke(main, ["label", "agreement", *w]).exit_code == 1
    assert CliRunner().invoke(main, ["label", "export", "--out", str(tmp_path / "e.csv"), *w]).exit_code == 1
