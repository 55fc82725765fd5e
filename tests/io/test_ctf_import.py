"""The user's CTF estimates (src/micrograde/pipeline/io/ctf.py, pipeline/catalogue/ctf.py): RELION STAR and
cryoSPARC .cs files written by their own libraries read back; bad files fail clearly before any work; rows
match catalogued micrographs by name, unmatched names are reported, and re-ingesting keeps the values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile
from click.testing import CliRunner
from cryosparc.dataset import Dataset
from helpers_io import write_mrc

from micrograde.pipeline.catalogue.ctf import import_ctf
from micrograde.pipeline.catalogue.ingest import ingest_file
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.config import IngestConfig
from micrograde.pipeline.features import feature_names
from micrograde.pipeline.io.ctf import CtfFormatError, NoCtfColumnsError, ctf_from_cs, ctf_from_star

NAMES = ["MotionCorr/job002/Movies/a_fractions.mrc", "MotionCorr/job002/Movies/b_fractions.mrc",
         "MotionCorr/job002/Movies/zz_fractions.mrc"]


def _star(path, *, optics: bool = True, ice: bool = True, **override):
    mics = pd.DataFrame({
        "rlnMicrographName": NAMES,
        "rlnOpticsGroup": [1, 1, 1],
        "rlnDefocusU": [15000.0, 21000.0, 9000.0],
        "rlnDefocusV": [14000.0, 20000.0, 8000.0],
        "rlnCtfAstigmatism": [1000.0, 1000.0, 1000.0],
        "rlnCtfFigureOfMerit": [0.21, 0.05, 0.3],
        "rlnCtfMaxResolution": [3.2, 8.5, 4.0],
        **({"rlnCtfIceRingDensity": [0.01, 0.9, 0.02]} if ice else {}),
    })
    for k, v in override.items():
        if v is None:
            mics = mics.drop(columns=[k])
        else:
            mics[k] = v
    blocks = {"micrographs": mics}
    if optics:
        blocks = {"optics": pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                                          "rlnMicrographPixelSize": [0.83], "rlnVoltage": [300.0],
                                          "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1]}),
                  **blocks}
    starfile.write(blocks, path)
    return path


def _cs(path, *, ctf: bool = True):
    fields = [("micrograph_blob/path", "O")]
    if ctf:
        fields += [("ctf/df1_A", "f4"), ("ctf/df2_A", "f4"), ("ctf/ctf_fit_to_A", "f4"),
                   ("ctf_stats/ice_thickness_rel", "f4")]
    dset = Dataset.allocate(2, fields)
    dset["micrograph_blob/path"] = ["J3/imported/012345678901234567_a.mrc", "J3/imported/012345678901234568_b.mrc"]
    if ctf:
        dset["ctf/df1_A"] = [15500.0, 20000.0]
        dset["ctf/df2_A"] = [14500.0, 19000.0]
        dset["ctf/ctf_fit_to_A"] = [3.5, 6.0]
        dset["ctf_stats/ice_thickness_rel"] = [1.02, 1.4]
    dset.save(path)
    return path


@pytest.mark.parametrize("optics", [True, False])
def test_a_relion_ctffind_star_reads_back(tmp_path, optics):
    got = ctf_from_star(_star(tmp_path / "micrographs_ctf.star", optics=optics))
    t = got.table
    assert list(t["micrograph"]) == NAMES
    assert list(t.columns) == ["micrograph", *feature_names("ctf")]
    assert t["ctf_resolution_A"].tolist() == pytest.approx([3.2, 8.5, 4.0])
    assert t["ctf_figure_of_merit"].tolist() == pytest.approx([0.21, 0.05, 0.3])
    assert t["ctf_astigmatism_A"].tolist() == pytest.approx([1000.0] * 3)
    assert t["ctf_defocus_um"].tolist() == pytest.approx([1.45, 2.05, 0.85])
    assert t["ctf_ice_ring_density"].tolist() == pytest.approx([0.01, 0.9, 0.02])
    assert t["ctf_ice_thickness"].isna().all(), "RELION gives no relative ice thickness"
    assert "ctf_ice_thickness" not in got.columns


def test_a_star_before_relion_5_has_no_ice_ring_density(tmp_path):
    got = ctf_from_star(_star(tmp_path / "r4.star", ice=False))
    assert "ctf_ice_ring_density" not in got.columns and got.table["ctf_ice_ring_density"].isna().all()


def test_bad_star_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError):
        ctf_from_star(tmp_path / "missing.star")
    motion = _star(tmp_path / "corrected.star", ice=False, rlnDefocusU=None, rlnDefocusV=None,
                   rlnCtfAstigmatism=None, rlnCtfFigureOfMerit=None, rlnCtfMaxResolution=None)
    with pytest.raises(NoCtfColumnsError, match="no CTF columns.*_rlnCtfMaxResolution"):
        ctf_from_star(motion)
    text = _star(tmp_path / "text.star", rlnCtfMaxResolution=["3.2", "n/a", "4.0"])
    with pytest.raises(CtfFormatError, match="rlnCtfMaxResolution holds values that are not numbers"):
        ctf_from_star(text)
    garbage = tmp_path / "notes.star"
    garbage.write_text("my notes\n\x00\x01")
    with pytest.raises(CtfFormatError):
        ctf_from_star(garbage)


def test_a_cryosparc_patch_ctf_dataset_reads_back(tmp_path):
    got = ctf_from_cs(_cs(tmp_path / "exposures.cs"))
    t = got.table
    assert list(t["micrograph"]) == ["J3/imported/012345678901234567_a.mrc", "J3/imported/012345678901234568_b.mrc"]
    assert t["ctf_resolution_A"].tolist() == pytest.approx([3.5, 6.0])
    assert t["ctf_defocus_um"].tolist() == pytest.approx([1.5, 1.95])
    assert t["ctf_astigmatism_A"].tolist() == pytest.approx([1000.0, 1000.0])
    assert t["ctf_ice_thickness"].tolist() == pytest.approx([1.02, 1.4])
    assert t["ctf_figure_of_merit"].isna().all()


def test_bad_cs_files_fail_clearly(tmp_path):
    with pytest.raises(NoCtfColumnsError, match="no CTF fields"):
        ctf_from_cs(_cs(tmp_path / "plain.cs", ctf=False))
    no_path = Dataset.allocate(1, [("ctf/df1_A", "f4")])
    no_path.save(tmp_path / "particles.cs")
    with pytest.raises(CtfFormatError, match="micrograph_blob/path"):
        ctf_from_cs(tmp_path / "particles.cs")
    (tmp_path / "bad.cs").write_bytes(b"not a dataset")
    with pytest.raises(CtfFormatError, match="not a cryoSPARC .cs dataset"):
        ctf_from_cs(tmp_path / "bad.cs")


def _ingest_two(workspace, folder, cfg=None):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [write_mrc(folder / f"{n}.mrc", rng.normal(size=(128, 128)).astype(np.float32), voxel_size=1.0)
             for n in ("a", "b")]
    for p in paths:
        ingest_file(workspace, p, cfg or IngestConfig())
    return paths


def test_import_matches_by_stem_reports_unmatched_and_survives_reingest(workspace, tmp_path):
    paths = _ingest_two(workspace, tmp_path / "data")
    done = import_ctf(workspace, [ctf_from_star(_star(tmp_path / "m.star"))])
    assert done.matched == 2 and done.unmatched == [NAMES[2]]
    assert any("matched no micrograph" in line for line in done.lines())
    table = micrograph_table(workspace).set_index("name")
    assert table.loc["a.mrc", "ctf_resolution_A"] == pytest.approx(3.2)
    assert table.loc["b.mrc", "ctf_defocus_um"] == pytest.approx(2.05)
    assert np.isfinite(table.loc["a.mrc", "ice_ring_score"]), "computed features stay beside imported ones"

    # cryoSPARC values of other columns join; a column both give takes the later file's value
    import_ctf(workspace, [ctf_from_cs(_cs(tmp_path / "e.cs"))])
    table = micrograph_table(workspace).set_index("name")
    assert table.loc["a.mrc", "ctf_ice_thickness"] == pytest.approx(1.02)
    assert table.loc["a.mrc", "ctf_resolution_A"] == pytest.approx(3.5)
    assert table.loc["a.mrc", "ctf_figure_of_merit"] == pytest.approx(0.21)

    # a corrected pixel size recomputes the micrograph: its imported estimates are kept
    for p in paths:
        assert ingest_file(workspace, p, IngestConfig(pixel_size=1.3)).updated == 1
    table = micrograph_table(workspace).set_index("name")
    assert table.loc["a.mrc", "pixel_size"] == pytest.approx(1.3)
    assert table.loc["a.mrc", "ctf_resolution_A"] == pytest.approx(3.5)
    assert table.loc["b.mrc", "ctf_ice_thickness"] == pytest.approx(1.4)


def test_features_present_names_the_ctf_columns_some_micrograph_has_reading_chunk_by_chunk(workspace, tmp_path):
    from micrograde.pipeline.catalogue.query import features_present
    from micrograde.pipeline.features import feature_names

    _ingest_two(workspace, tmp_path / "data")
    ids = [int(i) for i in micrograph_table(workspace)["id"]]
    assert features_present(workspace, ids, feature_names("ctf"), chunk_size=1) == set()
    import_ctf(workspace, [ctf_from_star(_star(tmp_path / "m.star"))])
    table = micrograph_table(workspace)
    expected = {n for n in feature_names("ctf") if table[n].notna().any()}
    assert expected and expected != set(feature_names("ctf"))
    for chunk in (1, 2, 1000):
        assert features_present(workspace, ids, feature_names("ctf"), chunk_size=chunk) == expected
    assert features_present(workspace, ids[:0], feature_names("ctf")) == set()
    assert features_present(workspace, ids, ("ice_ring_score",)) == {"ice_ring_score"}


def test_ingest_cli_stores_the_estimates_and_refuses_a_bad_star_before_any_work(tmp_path, prefect_harness):
    from micrograde.flows.cli.main import main

    src = tmp_path / "data"
    src.mkdir()
    rng = np.random.default_rng(1)
    for n in ("a", "b"):
        write_mrc(src / f"{n}.mrc", rng.normal(size=(128, 128)).astype(np.float32), voxel_size=1.0)
    garbage = tmp_path / "notes.star"
    garbage.write_text("my notes\n\x00\x01")
    ws = tmp_path / "ws"
    bad = CliRunner().invoke(main, ["ingest", str(src), "--workspace", str(ws), "--star", str(garbage)])
    assert bad.exit_code == 2, bad.output
    assert "Error:" in bad.output and "Traceback" not in bad.output
    assert not ws.exists(), "nothing done: not even a workspace"
    no_ctf = _star(tmp_path / "corrected.star", ice=False, rlnDefocusU=None, rlnDefocusV=None,
                   rlnCtfAstigmatism=None, rlnCtfFigureOfMerit=None, rlnCtfMaxResolution=None)
    bad = CliRunner().invoke(main, ["ingest", str(src), "--workspace", str(ws), "--star", str(no_ctf)])
    assert bad.exit_code == 2 and "no CTF columns" in bad.output and not ws.exists(), bad.output

    good = CliRunner().invoke(main, ["ingest", str(src), "--workspace", str(ws), "--workers", "1",
                                     "--star", str(_star(tmp_path / "m.star"))])
    assert good.exit_code == 0, good.output
    assert "CTF estimates imported: 2 micrographs" in good.output
    from micrograde.pipeline.catalogue.workspace import Workspace

    with Workspace.open(ws) as opened:
        table = micrograph_table(opened).set_index("name")
    assert table.loc["b.mrc", "ctf_resolution_A"] == pytest.approx(8.5)


def test_the_ingest_flow_imports_no_pandas_without_a_ctf_file():
    """pandas (about 0.3 s of CPU) loads when a STAR or .cs is read, not for a plain ingest."""
    import subprocess
    import sys

    code = ("import sys, micrograde.flows.ingest; from micrograde.pipeline.io.ctf import read_ctf; "
            "read_ctf(None, None); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
