"""PredictionSink: predictions.csv/.parquet appended chunk by chunk are the same files whatever the chunk size."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers_report import make_predictions

from micrograde.pipeline.report.page import prediction_frame
from micrograde.pipeline.report.stream import REPORT_COLUMNS, PredictionSink


def _write(folder, table: pd.DataFrame, chunk: int) -> pd.DataFrame:
    folder.mkdir()
    sink = PredictionSink(folder)
    for start in range(0, len(table), chunk):
        sink.add(table.iloc[start : start + chunk])
    return sink.close()


def _table(n: int = 37) -> pd.DataFrame:
    table = make_predictions(n, seed=3).assign(thumb_feature=range(n))  # a column the report does not read
    table["acquired_at"] = table["acquired_at"].dt.tz_localize("UTC")
    table.loc[5, "acquired_at"] += pd.Timedelta(microseconds=250)  # one stamp with a fraction of a second
    table["detector"] = [None] * 10 + ["K3"] * (n - 10)  # no value at all in the first chunk
    return table


def test_chunked_files_equal_one_chunk_and_report_table_keeps_only_report_columns(tmp_path):
    table = _table()
    small = _write(tmp_path / "small", table, 4)
    whole = _write(tmp_path / "whole", table, len(table))
    for name in ("predictions.csv", "predictions.parquet"):
        assert (tmp_path / "small" / name).is_file()
    assert (tmp_path / "small" / "predictions.csv").read_bytes() == (
        tmp_path / "whole" / "predictions.csv"
    ).read_bytes()
    pa, pb = (pd.read_parquet(tmp_path / d / "predictions.parquet") for d in ("small", "whole"))
    pd.testing.assert_frame_equal(pa, pb)
    assert pa["detector"].isna().sum() == 10 and (pa["detector"].iloc[10:] == "K3").all()
    pd.testing.assert_frame_equal(small, whole)
    assert "thumb_feature" not in small.columns and set(small.columns) <= set(REPORT_COLUMNS)
    assert len(small) == len(table) and list(small["micrograph"]) == list(table["micrograph"])

    csv = pd.read_csv(tmp_path / "small" / "predictions.csv")
    assert list(csv.columns) == list(prediction_frame(table).columns) and len(csv) == len(table)
    assert list(csv["thumb_feature"]) == list(range(len(table)))
    stamps = pd.to_datetime(csv["acquired_at"], utc=True)
    assert (stamps == table["acquired_at"].reset_index(drop=True)).all(), "time stamps round-trip exactly"
    assert csv["acquired_at"].iloc[0] == "2026-03-01 10:00:00.000000+00:00", "one format for every stamp"
    assert csv["acquired_at"].iloc[5] == "2026-03-01 10:10:00.000250+00:00"
    pd.testing.assert_series_equal(csv["p_good"], table["p_good"].reset_index(drop=True), check_exact=True)


def test_a_chunk_with_other_columns_is_refused(tmp_path):
    sink = PredictionSink(tmp_path)
    table = make_predictions(8)
    sink.add(table.iloc[:4])
    with pytest.raises(ValueError, match="columns"):
        sink.add(table.iloc[4:].drop(columns=["contrast"]))
    sink.abort()


def test_a_chunk_with_an_unknown_label_is_refused_before_anything_is_written(tmp_path):
    sink = PredictionSink(tmp_path)
    with pytest.raises(ValueError, match="unknown label"):
        sink.add(make_predictions(4).assign(label="maybe"))
    assert not (tmp_path / "predictions.csv").exists()
    assert sink.close().empty
