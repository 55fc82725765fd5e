"""Sessions from acquisition metadata or the nearest non-generic folder, and the voltage per session from the
EPU header (src/micrograde/pipeline/catalogue/sessions.py, ingest.py): a 200 kV header gives the 200 kV defocus."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_io import fei1_records, write_mrc

from micrograde.pipeline.catalogue.cache import load_measures
from micrograde.pipeline.catalogue.ingest import ingest_file
from micrograde.pipeline.catalogue.query import micrograph_table
from micrograde.pipeline.catalogue.schema import SessionRow
from micrograde.pipeline.catalogue.sessions import resolve_session, session_folder
from micrograde.pipeline.config import IngestConfig, SessionMeta
from micrograde.pipeline.signal.measures import electron_wavelength


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("grid7/Images-Disc1/GridSquare_8841/Data/FoilHole_1_Data_2.mrc", "grid7"),  # EPU
        ("project/Movies/movie_0001.tif", "project"),  # RELION
        ("project/MotionCorr/job002/Movies/m.mrc", "project"),
        ("grid3/micrographs/good/m.mrc", "grid3"),  # a folder per class
        ("2026-11-20_krios/frames/m.tif", "2026-11-20_krios"),
        ("grid9/m.mrc", "grid9"),
    ],
)
def test_the_session_is_the_nearest_folder_that_is_not_generic(tmp_path, rel, expected):
    assert session_folder(tmp_path / rel).name == expected


def test_acquisition_metadata_names_the_session_folder(tmp_path):
    epu = tmp_path / "facility" / "Supervisor_20261120_grid4"
    data = epu / "Images-Disc1" / "GridSquare_1" / "Data"
    data.mkdir(parents=True)
    (epu / "EpuSession.dm").write_text("<EpuSessionXml/>")
    assert session_folder(data / "FoilHole_1.mrc") == epu
    serialem = tmp_path / "facility" / "session_b"
    (serialem / "batch" / "stack").mkdir(parents=True)
    (serialem / "nav.nav").write_text("AdocVersion = 2.00")
    assert session_folder(serialem / "batch" / "stack" / "m.tif") == serialem


def test_an_explicit_session_or_session_file_wins(tmp_path):
    path = tmp_path / "grid7" / "Data" / "m.mrc"
    path.parent.mkdir(parents=True)
    assert resolve_session(path, IngestConfig()).name == "grid7"
    (path.parent / "session.json").write_text(json.dumps({"name": "krios-grid7", "voltage_kv": 200}))
    meta = resolve_session(path, IngestConfig())
    assert (meta.name, meta.voltage_kv) == ("krios-grid7", 200)
    assert resolve_session(path, IngestConfig(session="mine")).name == "mine"
    header = {"voltage": 300.0, "microscope": "TITAN"}
    meta = resolve_session(path, IngestConfig(meta=SessionMeta(voltage_kv=120)), header)
    assert (meta.voltage_kv, meta.microscope) == (120, "TITAN")


def _thon_rings(shape: tuple[int, int], pixel_size: float, defocus_um: float, voltage_kv: float) -> np.ndarray:
    """Noise seen through a CTF, sin(pi lambda dz k^2), at ``voltage_kv``: Thon rings of that defocus."""
    rng = np.random.default_rng(0)
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    k2 = kx**2 + ky**2
    ctf = np.sin(np.pi * electron_wavelength(voltage_kv) * defocus_um * 1e4 * k2) * np.exp(-k2 * 40.0)
    image = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * ctf).real
    return (100.0 + 10.0 * image / image.std()).astype(np.float32)


def test_a_200_kv_epu_header_gives_the_200_kv_defocus(workspace, tmp_path):
    true_defocus = 2.0
    data = _thon_rings((1024, 1024), 1.0, true_defocus, 200.0)
    records = fei1_records(1, when=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), pixel_size_m=1.0e-10)
    records["HT"] = 200000.0  # V: a 200 kV microscope (Glacios, Talos Arctica)
    folder = tmp_path / "glacios" / "Images-Disc1" / "GridSquare_2" / "Data"
    folder.mkdir(parents=True)
    path = write_mrc(folder / "FoilHole_1_Data_1.mrc", data, voxel_size=None, ext_header=records)

    ingest_file(workspace, path, IngestConfig())
    row = micrograph_table(workspace).iloc[0]
    assert (row.session, row.voltage_kv, row.voltage_source) == ("glacios", pytest.approx(200.0), "header")
    with workspace.session() as s:
        assert s.query(SessionRow).one().voltage_kv == pytest.approx(200.0), "the session knows its voltage"
    found = load_measures(workspace.cache_dir, row.cache_key)["defocus_um"]
    assert found == pytest.approx(true_defocus, abs=0.15)

    # the same micrograph read as 300 kV (what 0.1.0 did): the defocus is off by the wavelength ratio
    wrong = ingest_file(workspace, path, IngestConfig(meta=SessionMeta(voltage_kv=300.0)))
    assert wrong.updated == 1
    row = micrograph_table(workspace).iloc[0]
    assert (row.voltage_kv, row.voltage_source) == (pytest.approx(300.0), "option")
    at_300 = load_measures(workspace.cache_dir, row.cache_key)["defocus_um"]
    ratio = electron_wavelength(200.0) / electron_wavelength(300.0)
    assert at_300 == pytest.approx(true_defocus * ratio, rel=0.08) and abs(at_300 - true_defocus) > 0.3


def test_a_file_without_voltage_uses_its_sessions_and_says_300_is_assumed_otherwise(workspace, tmp_path):
    session = tmp_path / "talos"
    session.mkdir()
    plain = write_mrc(session / "b.mrc", _thon_rings((256, 256), 1.0, 1.5, 200.0), voxel_size=1.0)
    ingest_file(workspace, plain, IngestConfig())
    row = micrograph_table(workspace).iloc[0]
    assert row.voltage_kv is None and row.voltage_source == "default"
    with workspace.transaction() as s:
        s.query(SessionRow).filter(SessionRow.name == "talos").one().voltage_kv = 200.0
    other = write_mrc(session / "c.mrc", _thon_rings((256, 256), 1.0, 1.5, 200.0)[::-1].copy(), voxel_size=1.0)
    ingest_file(workspace, other, IngestConfig())
    rows = micrograph_table(workspace).set_index("name")
    assert (rows.loc["c.mrc", "voltage_kv"], rows.loc["c.mrc", "voltage_source"]) == (200.0, "catalogue")
    assert Path(rows.loc["c.mrc", "path"]).parent == session
