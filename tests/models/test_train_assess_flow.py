"""Train on simulated, labelled sessions, evaluate on a held-out session, assess it and check the outputs."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
import pytest
import starfile
from click.testing import CliRunner
from sqlalchemy import select

from micrograde.flows.cli.main import main
from micrograde.pipeline.catalogue.cache import load_measures
from micrograde.pipeline.catalogue.schema import Micrograph, ModelRow
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.features import IMAGE_FEATURES

pytestmark = pytest.mark.slow

HELD_OUT = "falcon4i_cu_quantifoil"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_harness):
    """A workspace with three labelled sessions ingested, one unlabelled, and one grader trained."""
    from micrograde.flows.context import RunContext
    from micrograde.flows.ingest import ingest_flow
    from micrograde.flows.train import train_flow
    from micrograde.labeling.store import import_labels
    from micrograde.models.grading import GraderConfig
    from micrograde.pipeline.sim.files import write_collection

    base = tmp_path_factory.mktemp("trained")
    truth = write_collection(base / "sim", 96, seed=11)
    root = base / "ws"
    ingest_flow([str(base / "sim")], RunContext(root=root))
    labelled = truth[truth["session"] != HELD_OUT]
    labels = base / "labels.csv"
    labelled[["micrograph", "label"]].to_csv(labels, index=False)
    with Workspace.open(root) as ws:
        import_labels(ws, labels, "senior", "senior-scientist")
    outcome = train_flow(RunContext(root=root, command="pytest train"), GraderConfig())
    return base, root, truth, outcome


def test_model_is_registered_with_a_complete_card(trained):
    _base, root, truth, outcome = trained
    card = json.loads((outcome.model_dir / "card.json").read_text())
    assert card["kind"] == "grader" and card["classes"] == ["good", "medium", "bad"]
    assert card["backbone"]["name"] == "efficientnet_lite0" and card["weights"]["pretrained"] is True
    assert card["command_line"] == "pytest train" and card["training"]["data_digest"]
    # leave-one-session-out over the three labelled sessions; the held-out session was never seen
    ev = card["evaluation"]
    assert ev["protocol"] == "leave-one-session-out" and ev["n_folds"] == 3
    assert HELD_OUT not in card["training"]["groups"] and len(card["training"]["groups"]) == 3
    assert ev["n_labelled"] == card["training"]["n_fitted"] == int((truth["session"] != HELD_OUT).sum())
    assert {"temperature", "ece_before", "ece_after"} <= set(card["calibration"])
    assert card["head"]["kind"] == ev["chosen"] and card["metrics"] == ev["oof"]
    assert card["input"]["measures"] and "crystalline_area" in card["input"]["measures"]
    with Workspace.open(root) as ws, ws.session() as s:
        assert s.get(ModelRow, outcome.model_id) is not None
        # ingest cached every score and measure the heads read, with finite values
        key = s.execute(select(Micrograph.cache_key)).scalars().first()
        cached = load_measures(ws.cache_dir, key)
        assert tuple(cached) == IMAGE_FEATURES
        assert np.isfinite(cached["crystalline_area"]) and np.isfinite(cached["defocus_um"])


def test_assess_held_out_session_writes_report_and_selections(trained, tmp_path):
    base, root, truth, outcome = trained
    held = truth[truth["session"] == HELD_OUT]
    star_in = tmp_path / "micrographs_ctf.star"
    names = [f"MotionCorr/job002/{HELD_OUT}/{p.split('/')[-1][:-4]}_fractions.mrc" for p in held["micrograph"]]
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                           "rlnMicrographPixelSize": [0.95], "rlnVoltage": [300.0]})
    mics = pd.DataFrame({"rlnMicrographName": names, "rlnOpticsGroup": 1,
                         "rlnDefocusU": np.linspace(10000, 20000, len(names)), "rlnCtfMaxResolution": 4.0})
    starfile.write({"optics": optics, "micrographs": mics}, star_in)
    result = CliRunner().invoke(main, ["assess", str(base / "sim" / HELD_OUT), "--workspace", str(root),
                                       "--star", str(star_in), "--include-medium"])
    assert result.exit_code == 0, result.output
    report_dir = root / "reports" / result.output.strip().splitlines()[-1].split("/")[-1]
    assert (report_dir / "report.html").is_file()
    pred = pd.read_csv(report_dir / "predictions.csv")
    assert list(pred.columns[:6]) == ["micrograph", "label", "p_good", "p_medium", "p_bad", "confidence"]
    assert len(pred) == len(held)
    assert np.allclose(pred[["p_good", "p_medium", "p_bad"]].sum(axis=1), 1.0, atol=1e-5)
    # the STAR's CTF estimates joined the features: a column, a histogram; no defocus without _rlnDefocusV
    assert (pred["ctf_resolution_A"] == 4.0).all() and "ctf_defocus_um" not in pred.columns
    assert list(pred.columns).index("ctf_resolution_A") > list(pred.columns).index("defocus_quality")
    assert "CTF estimate histograms by class" in (report_dir / "report.html").read_text()
    selected = starfile.read(report_dir / "selected.star")
    chosen = {p.split("/")[-1] for p in pred.loc[pred["label"].isin(["good", "medium"]), "micrograph"]}
    assert {n.split("/")[-1].replace("_fractions", "") for n in selected["micrographs"]["rlnMicrographName"]} == chosen
    assert list(selected["micrographs"].columns) == list(mics.columns)
    assert selected["optics"].equals(optics) or selected["optics"].to_dict() == optics.to_dict()
    again = CliRunner().invoke(main, ["assess", str(base / "sim" / HELD_OUT), "--workspace", str(root)])
    assert again.exit_code == 0, again.output
    second = pd.read_csv(root / "reports" / again.output.strip().splitlines()[-1].split("/")[-1] / "predictions.csv")
    assert second.set_index("micrograph")["p_good"].equals(pred.set_index("micrograph")["p_good"])
    assert (second["ctf_resolution_A"] == 4.0).all(), "imported estimates stay with the micrographs"


def test_evaluate_grades_the_labelled_micrographs_the_model_never_saw(trained):
    _base, root, truth, outcome = trained
    from micrograde.flows.context import RunContext
    from micrograde.flows.train import ModelNotFoundError, evaluate_flow
    from micrograde.labeling.store import import_labels

    with pytest.raises(ModelNotFoundError, match="not trained on"):  # every label so far was used in training
        evaluate_flow(RunContext(root=root), outcome.model_id)
    held = truth[truth["session"] == HELD_OUT]
    labels = root.parent / "held_labels.csv"
    held[["micrograph", "label"]].to_csv(labels, index=False)
    with Workspace.open(root) as ws:
        import_labels(ws, labels, "checker", "postdoc")
    result = evaluate_flow(RunContext(root=root), outcome.model_id)
    assert result["n"] == len(held)  # only the session it never saw
    assert result["out_of_fold"]["n"] == int((truth["session"] != HELD_OUT).sum())
    # chance is 1/3 for three balanced classes
    assert result["metrics"]["macro_f1"] > 0.5, result["metrics"]
    everything = evaluate_flow(RunContext(root=root), outcome.model_id, split="all")
    assert everything["n"] == len(truth)


def test_bad_inputs_are_quarantined_and_listed_in_the_report(trained, tmp_path):
    base, root, truth, _outcome = trained
    src = tmp_path / "incoming"
    src.mkdir()
    good = sorted((base / "sim" / HELD_OUT).glob("*.mrc"))[:2]
    for f in good:
        (src / f.name).write_bytes(f.read_bytes())
    (src / "empty_0001.mrc").write_bytes(b"")
    (src / "notes_0002.mrc").write_text("exposure notes, not an image\n" * 10)
    result = CliRunner().invoke(main, ["assess", str(src), "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    report_dir = root / "reports" / result.output.strip().splitlines()[-1].split("/")[-1]
    html = (report_dir / "report.html").read_text()
    rejects = html[html.index('id="rejects"'):html.index('id="warnings"')]
    assert "empty_0001.mrc" in rejects and "notes_0002.mrc" in rejects
    assert 'data-reason="empty-file"' in rejects and 'data-reason="not-an-image"' in rejects
    assert len(pd.read_csv(report_dir / "predictions.csv")) == len(good)
    assert "2 rejected" in result.output


def test_unknown_model_and_mismatched_card_are_clear_errors(trained):
    import shutil

    base, root, _truth, outcome = trained
    sources = [str(base / "sim" / HELD_OUT), "--workspace", str(root)]
    unknown = CliRunner().invoke(main, ["assess", *sources, "--model", "model-nope"])
    assert unknown.exit_code == 2  # a usage error, found before any work
    assert "no model 'model-nope'" in unknown.output and outcome.model_id in unknown.output
    bad_dir = root / "models" / "model-two-classes"
    shutil.copytree(outcome.model_dir, bad_dir)
    card = json.loads((bad_dir / "card.json").read_text())
    card["classes"] = ["good", "bad"]
    (bad_dir / "card.json").write_text(json.dumps(card))
    with Workspace.open(root) as ws, ws.transaction() as s:
        old = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # never the "latest" model
        s.add(ModelRow(id="model-two-classes", path=str(bad_dir), backbone="efficientnet_lite0", card=card,
                       created_at=old))
    mismatch = CliRunner().invoke(main, ["assess", *sources, "--model", "model-two-classes"])
    assert mismatch.exit_code == 1
    assert "predicts classes ['good', 'bad']" in mismatch.output


def test_labelled_table_order_does_not_depend_on_ingest_order(trained):
    from micrograde.flows.train import labelled_table

    _base, root, _truth, _outcome = trained
    with Workspace.open(root) as ws:
        table = labelled_table(ws)
    ordered = table.sort_values(["session", "path", "frame"]).reset_index(drop=True)
    assert table["id"].tolist() == ordered["id"].tolist()


def test_assess_with_masks_writes_label_maps_areas_and_filtered_picks(trained, tmp_path):
    """``assess --masks --mask-model --particles``: masks per micrograph, area columns, Masks section,
    picks filtered; an unmatched pick file is a usage error before any work."""
    from micrograde.models.segmentation.default import mask_model_dir
    from micrograde.models.segmentation.store import save_mask_model
    from micrograde.models.segmentation.train import MaskTrainConfig, simulated_examples, train_mask_model
    from micrograde.pipeline.io.label_maps import read_label_map

    base, root, truth, _outcome = trained
    cfg = MaskTrainConfig(steps=2, batch_size=2, crop=64)  # a stand-in model: its masks mean nothing
    net, card = train_mask_model(cfg, simulated_examples(2, seed=1, family="a", cfg=cfg.input), model_id="tiny")
    save_mask_model(mask_model_dir(root, "tiny"), net, card)
    held = truth[truth["session"] == HELD_OUT]
    first = held["micrograph"].iloc[0].split("/")[-1][:-4]
    box = tmp_path / f"{first}.box"
    box.write_text("".join(f"{x}\t{y}\t64\t64\n" for x, y in [(10, 10), (400, 300), (900, 900), (5000, 5000)]))
    n_reports = len(list((root / "reports").iterdir()))
    stray = tmp_path / "nowhere_0001.box"
    stray.write_text("1\t1\t10\t10\n")
    refused = CliRunner().invoke(main, ["assess", str(base / "sim" / HELD_OUT), "--workspace", str(root), "--masks",
                                        "--mask-model", "tiny", "--particles", str(stray)])
    assert refused.exit_code == 2 and "nowhere_0001" in refused.output
    assert len(list((root / "reports").iterdir())) == n_reports
    result = CliRunner().invoke(main, ["assess", str(base / "sim" / HELD_OUT), "--workspace", str(root), "--masks",
                                       "--mask-model", "tiny", "--particles", str(box)])
    assert result.exit_code == 0, result.output
    report_dir = root / "reports" / result.output.strip().splitlines()[-1].split("/")[-1]
    pred = pd.read_csv(report_dir / "predictions.csv")
    areas = ["area_carbon", "area_contamination", "area_crystalline", "area_empty"]
    assert np.allclose(pred[areas].sum(axis=1) + pred["usable_area"], 1.0, atol=1e-4)
    masks = sorted((report_dir / "masks").glob("*.mrc"))
    assert len(masks) == len(held)
    mask, pixel_size = read_label_map(report_dir / "masks" / f"{first}.mrc")
    assert pixel_size == pytest.approx(0.95) and mask.shape == (1024, 1024)
    assert 'id="masks"' in (report_dir / "report.html").read_text()
    summary = pd.read_csv(report_dir / "particles_summary.csv")
    assert summary["picks"].tolist() == [4] and summary["outside"].tolist() == [1]
    kept = (report_dir / "particles_selected.box").read_text().splitlines()
    assert len(kept) == summary["kept"].iloc[0]
