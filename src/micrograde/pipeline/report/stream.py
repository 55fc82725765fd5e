"""Predictions written chunk by chunk, so an assessment's memory does not grow with its size.

:class:`PredictionSink` appends each chunk of the predictions table to ``predictions.csv`` and
``predictions.parquet`` (one row group per chunk) in a folder that is published as a whole
afterwards (:mod:`micrograde.pipeline.io.publish`), and keeps only the columns the report page and
the selection files read (:data:`REPORT_COLUMNS`: a few numbers and short strings per micrograph;
wider per-micrograph columns, such as feature values, go to the files only).

The files are the same whatever the chunk size: columns in :func:`~.page.prediction_frame` order
(every chunk must have the same columns), floats written one by one, and time stamps written per
value (ISO 8601 with microseconds, e.g. ``2026-03-01 10:00:00.000000+00:00``) rather than in a
format pandas would choose for the whole column.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

import pandas as pd

from micrograde.pipeline.masks import DEFECT_CLASSES, area_column
from micrograde.pipeline.report.page import PREDICTION_COLUMNS, check_predictions, prediction_frame

__all__ = ["REPORT_COLUMNS", "PredictionSink"]

#: Columns kept for the report page, the out-of-distribution warnings and the selection files (the
#: masks' area columns of ``assess --masks`` for its Masks section).
REPORT_COLUMNS: tuple[str, ...] = (*PREDICTION_COLUMNS, "voltage_kv", *(area_column(n) for n in DEFECT_CLASSES),
                                   "usable_area")


def _stamp_text(value) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    return pd.Timestamp(value).isoformat(sep=" ", timespec="microseconds")


class PredictionSink:
    """Append prediction chunks to ``folder/predictions.csv`` and ``.parquet``; :meth:`close` returns
    the report table (the :data:`REPORT_COLUMNS` of every row, in order)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.csv_path, self.parquet_path = folder / "predictions.csv", folder / "predictions.parquet"
        self._csv: IO[str] | None = None
        self._parquet: Any = None  # a pyarrow.parquet.ParquetWriter once the first chunk is written
        self._schema: Any = None  # its pyarrow schema
        self._columns: list[str] | None = None
        self._kept: list[pd.DataFrame] = []
        self.n_rows = 0
        self.n_chunks = 0

    def add(self, chunk: pd.DataFrame) -> None:
        """Write one chunk (rows in the order they should appear) and keep its report columns."""
        check_predictions(chunk)
        frame = prediction_frame(chunk)
        if self._columns is None:
            self._columns = list(frame.columns)
        elif list(frame.columns) != self._columns:
            raise ValueError(f"a predictions chunk has columns {list(frame.columns)}, the first had {self._columns}")
        self._write_csv(frame)
        self._write_parquet(frame)
        self._kept.append(frame.loc[:, [c for c in frame.columns if c in REPORT_COLUMNS]].copy())
        self.n_rows += len(frame)
        self.n_chunks += 1

    def _write_csv(self, frame: pd.DataFrame) -> None:
        out = frame.copy()
        for col in out.columns:
            if isinstance(out[col].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[col]):
                out[col] = out[col].map(_stamp_text).astype(object)
        first = self._csv is None
        if first:
            self._csv = open(self.csv_path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        out.to_csv(self._csv, index=False, header=first, lineterminator="\n")

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = frame.copy()
        for col in out.columns:  # mixed object columns (e.g. None + str) as text for Arrow
            if out[col].dtype == object:
                out[col] = out[col].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        if self._schema is None:
            schema = pa.Schema.from_pandas(out, preserve_index=False)
            # a column with no value in the first chunk: text (the other chunks may have some)
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
            self._schema = pa.schema(fields, metadata=schema.metadata)
            self._parquet = pq.ParquetWriter(self.parquet_path, self._schema)
        for f in self._schema:
            if pa.types.is_string(f.type) and out[f.name].dtype != object:
                out[f.name] = out[f.name].map(lambda v: None if v != v else str(v)).astype(object)
            elif not pa.types.is_string(f.type) and out[f.name].dtype == object:
                out[f.name] = pd.to_numeric(out[f.name], errors="coerce") if (
                    pa.types.is_floating(f.type) or pa.types.is_integer(f.type)) else out[f.name]
        self._parquet.write_table(pa.Table.from_pandas(out, schema=self._schema, preserve_index=False))

    def close(self) -> pd.DataFrame:
        """Finish both files (flushed to disk) and return the report table."""
        if self._csv is not None:
            self._csv.flush()
            os.fsync(self._csv.fileno())
            self._csv.close()
            self._csv = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        kept, self._kept = self._kept, []
        if not kept:
            return pd.DataFrame(columns=list(REPORT_COLUMNS))
        return pd.concat(kept, ignore_index=True)

    def abort(self) -> None:
        """Close the files without finishing them (the staged folder is removed by its owner)."""
        for handle in (self._csv, self._parquet):
            if handle is not None:
                with contextlib.suppress(Exception):  # the folder is thrown away anyway
                    handle.close()
        self._csv = self._parquet = None
        self._kept = []
