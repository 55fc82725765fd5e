"""``micrograde simulate`` on a local click group (exit codes, output, files)."""

from __future__ import annotations

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from micrograde.flows.cli.simulate import register


@pytest.fixture()
def cli() -> click.Group:
    group = click.Group("micrograde")
    register(group)
    return group


def test_simulate_writes_files_and_prints_a_count_table(cli, tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(cli, ["simulate", str(out), "--n", "3", "--seed", "4", "--sessions", "1"])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(out / "truth.csv")
    assert len(truth) == 3 and sorted(truth["label"]) == ["bad", "good", "medium"]
    assert str(out) in result.output
    session = truth["session"][0]
    table_line = next(line for line in result.output.splitlines() if line.startswith(session))
    assert table_line.split()[1:] == ["1", "1", "1", "3"]
    assert all((out / m).is_file() for m in truth["micrograph"])


def test_family_b_and_both_with_or_without_masks(cli, tmp_path):
    out = tmp_path / "b"
    result = CliRunner().invoke(cli, ["simulate", str(out), "--n", "2", "--family", "b", "--sessions", "1",
                                      "--no-masks"])  # fmt: skip
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(out / "truth.csv", keep_default_na=False)
    assert set(truth["family"]) == {"b"} and (truth["mask"] == "").all() and not list(out.rglob("masks"))
    both = tmp_path / "both"
    result = CliRunner().invoke(cli, ["simulate", str(both), "--n", "2", "--family", "both", "--sessions", "1"])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(both / "truth.csv", keep_default_na=False)
    assert sorted(truth["family"]) == ["a", "b"] and all((both / m).is_file() for m in truth["mask"])


@pytest.mark.parametrize(
    "args",
    [["--n", "0"], ["--n", "-3"], ["--n", "2", "--sessions", "0"], ["--n", "2", "--sessions", "99"], [],
     ["--n", "2", "--family", "c"], ["--n", "2", "--family", "b", "--sessions", "5"]],
)
def test_bad_arguments_exit_2(cli, tmp_path, args):
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert not (tmp_path / "x" / "truth.csv").exists()


def test_help_has_a_usage_example(cli):
    result = CliRunner().invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0 and "micrograde simulate sim/ --n" in result.output
