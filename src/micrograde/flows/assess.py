"""The Prefect assess flow: check the inputs, ingest what is new, predict with one model load, write a report folder.

The inputs (STAR, .cs, thresholds, model) are checked before anything else (:mod:`.inputs`). A
report folder has one writer at a time (a lock per folder name in ``WORKSPACE/.locks/``) and is
built in ``WORKSPACE/.staging/`` and published in one step (:mod:`micrograde.pipeline.io.publish`),
so a rolling session report rewritten by the watcher and a sweep at once, or a run killed while
writing, never leaves a mixture or a half-written folder; the run is recorded once its folder is in
place.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from micrograde import __version__
from micrograde.flows.context import RunContext
from micrograde.flows.ingest import import_ctf_task, ingest_flow
from micrograde.flows.inputs import check_assess_inputs
from micrograde.flows.runners import make_task_runner, subflow
from micrograde.pipeline.catalogue.cache import load_entry
from micrograde.pipeline.catalogue.query import features_present, micrograph_paths, micrograph_table, reject_table
from micrograde.pipeline.catalogue.schema import AssessRun
from micrograde.pipeline.catalogue.workspace import new_run_id
from micrograde.pipeline.config import ASSESS_CHUNK_SIZE, FrozenModel, IngestConfig, PreprocessConfig
from micrograde.pipeline.io.digest import digest_of
from micrograde.pipeline.io.locks import file_lock
from micrograde.pipeline.io.publish import remove_stale, staged_folder

if TYPE_CHECKING:
    from micrograde.pipeline.report.outputs import OutputFiles

__all__ = ["AssessConfig", "AssessOutcome", "NothingToAssessError", "assess_flow", "model_preprocess", "predict_chunks",
           "session_references", "workspace_references", "reference_rows", "with_reference_rows"]


class NothingToAssessError(LookupError):
    """No usable micrograph to assess (every input rejected, or an empty selection)."""


class AssessConfig(FrozenModel):
    """Options of one assessment."""

    model_id: str | None = None
    thresholds: dict[str, float] | None = None
    include_medium: bool = False
    star: str | None = None
    cs: str | None = None
    review_url: str | None = None
    sessions: tuple[str, ...] | None = Field(None, description="also assess these catalogued sessions")
    report_name: str | None = Field(None, description="stable folder under reports/ (a rolling report)")
    batch_size: int = Field(64, ge=1)
    num_workers: int = Field(0, ge=0)
    masks: bool = Field(False, description="predict masks: masks/<stem>.mrc, area_<class> and usable_area")
    mask_model: str | None = Field(None, description="mask model id under mask_models/ (default: built on first use)")
    particles: tuple[str, ...] = Field((), description="pick/particle files to filter by the masks (imply masks)")
    particle_margin: float = Field(0.0, ge=0, description="also remove picks within this distance (A) of a mask")
    chunk_size: int = Field(ASSESS_CHUNK_SIZE, ge=1, description="micrographs graded and written per chunk: an "
                            "assessment's memory depends on it, not on the number of micrographs")


@dataclass
class AssessOutcome:
    run_id: str
    report_dir: Path
    n_micrographs: int
    counts: dict[str, int]
    warnings: list[str]
    unmatched: list[str] = field(default_factory=list)
    n_cached: int = 0
    n_rejected: int = 0


def workspace_references(ws, sessions, preprocess_key: str | None,
                         known: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The reference keys of each of ``sessions`` (its first micrographs ingested with ``preprocess_key``, from
    the catalogue: :mod:`micrograde.models.grading.sessions`). ``known``: references already read in this run
    (ingest is over before grading starts), reused, and extended with those read now."""
    from micrograde.models.grading.sessions import MAX_REFERENCE
    from micrograde.pipeline.catalogue.query import session_cache_keys

    known = {} if known is None else known
    names = sorted({str(s) for s in sessions})
    missing = [n for n in names if n not in known]
    if missing:
        known.update(session_cache_keys(ws, missing, limit=MAX_REFERENCE, preprocess_key=preprocess_key))
    return {n: known[n] for n in names}


def reference_rows(ws, references: dict[str, list[str]] | None,
                   known: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame | None:
    """The catalogue rows of the micrographs that stand for each session of ``references`` (session -> cache
    keys), for the features read from the catalogue rather than the cache (the user's CTF estimates): a
    session's median then has every reference micrograph's values, not only those of the micrographs graded
    or labelled beside them. ``known``: rows already read in this run (by session), reused and extended."""
    if not references:
        return None
    known = {} if known is None else known
    missing = [s for s in references if s not in known]
    keys = [k for s in missing for k in references[s]]
    if missing:
        table = micrograph_table(ws, cache_keys=keys) if keys else None
        for s in missing:
            known[s] = (table[table["cache_key"].isin(references[s])] if table is not None
                        else pd.DataFrame(columns=["cache_key"]))
    parts = [known[s] for s in references if len(known[s])]
    return pd.concat(parts, ignore_index=True) if parts else None


def _ctf_read(predictor) -> list[str]:
    """The catalogue features (the user's CTF estimates) a grader reads, besides its session reference."""
    return [n for n in getattr(predictor, "catalogue_features", ()) if n != "session_reference"]


def with_reference_rows(ws, predictor, rows: pd.DataFrame, references: dict[str, list[str]] | None,
                        known: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """``rows`` (catalogue rows to grade) preceded by the reference micrographs' rows
    (:func:`reference_rows`) when the grader reads the user's CTF estimates and measures micrographs against
    their session; otherwise ``rows``. Keyed lookups take the graded rows' own values (they come last)."""
    refs = reference_rows(ws, references, known) if _ctf_read(predictor) else None
    return rows if refs is None else pd.concat([refs, rows], ignore_index=True)


def session_references(ws, predictor, rows: pd.DataFrame, known: dict[str, list[str]] | None = None,
                       known_rows: dict[str, pd.DataFrame] | None = None
                       ) -> tuple[pd.DataFrame, dict[str, list[str]] | None]:
    """For a grader that measures micrographs against their session (``needs_session``): ``rows`` with the
    ``session_reference`` digest of each row's session (its reference keys and, for a grader that reads the
    user's CTF estimates, their values: a new estimate for a reference micrograph grades its session again),
    and the reference keys of those sessions (:func:`workspace_references`; ``known`` as there; ``known_rows``
    as :func:`reference_rows`'s ``known``); otherwise ``rows`` as they are and None."""
    if not getattr(predictor, "needs_session", False):
        return rows, None
    from micrograde.models.grading.sessions import reference_digest

    key = predictor.card["input"]["preprocess"].get("preprocess_key")
    references = workspace_references(ws, rows["session"].dropna().unique(), key, known)
    ctf = _ctf_read(predictor)
    known_rows = {} if known_rows is None else known_rows
    if ctf:
        reference_rows(ws, references, known_rows)  # one query for the sessions not read yet in this run

    def values(session: str, keys: list[str]) -> list[float] | None:
        if not ctf:
            return None
        by_key = known_rows[session].drop_duplicates("cache_key", keep="last").set_index("cache_key")
        return [float(pd.to_numeric(by_key.at[k, n], errors="coerce"))
                if k in by_key.index and n in by_key.columns else float("nan") for k in keys for n in ctf]

    digests = {s: reference_digest(k, values(s, k)) for s, k in references.items()}
    return rows.assign(session_reference=[digests.get(str(s), "none") for s in rows["session"]]), references


def _reference_warnings(ws, predictor, table: pd.DataFrame, known: dict[str, list[str]] | None = None) -> list:
    """Warnings for the sessions a session-measuring grader graded against its training median (too few
    micrographs to stand for themselves). ``known``: the references the run's grading read
    (:func:`workspace_references`), so the catalogue is not asked again."""
    if not getattr(predictor, "needs_session", False) or "session" not in table.columns:
        return []
    from micrograde.models.grading.sessions import MIN_REFERENCE
    from micrograde.pipeline.report.ood import reference_warnings

    key = predictor.card["input"]["preprocess"].get("preprocess_key")
    refs = workspace_references(ws, table["session"].dropna().unique(), key, known)
    return reference_warnings({s: len(keys) for s, keys in refs.items()}, minimum=MIN_REFERENCE)


def predict_chunks(ws, predictor, ids: Sequence[int], cfg: AssessConfig, consensus: pd.DataFrame | None = None,
                   counts: dict | None = None, known: dict[str, list[str]] | None = None) -> Iterator[pd.DataFrame]:
    """The predictions table of micrographs ``ids``, ``cfg.chunk_size`` micrographs at a time (in id order).

    Each chunk reads its own catalogue rows and cached inputs and is dropped by the caller before
    the next is made, so no per-micrograph data of the whole run is held here. ``counts`` (when
    given) gains ``n_cached``: predictions found in the model's prediction cache. ``known`` (when given)
    gains the sessions' references read for the grading (:func:`workspace_references`).
    """
    from micrograde.models.batch_predict import predict_cached
    from micrograde.models.thresholds import apply_thresholds
    from micrograde.pipeline.features import feature_names
    from micrograde.pipeline.report.outputs import prediction_table

    thresholds = cfg.thresholds if cfg.thresholds is not None else predictor.thresholds
    ids = list(ids)
    chunks = [ids[start : start + cfg.chunk_size] for start in range(0, len(ids), cfg.chunk_size)]
    # one set of CTF columns for the whole run, so every chunk has the same columns: a query of the
    # stored features alone, chunk by chunk, stopping once every CTF column has a value
    ctf = features_present(ws, ids, feature_names("ctf"), chunk_size=cfg.chunk_size)
    known = {} if known is None else known  # each session's reference, read from the catalogue once per run
    known_rows: dict[str, pd.DataFrame] = {}  # and its micrographs' catalogue rows (CTF estimates), likewise
    for part in chunks:
        rows, references = session_references(ws, predictor, micrograph_table(ws, part), known, known_rows)
        probs, n_cached = predict_cached(predictor, ws.cache_dir, list(rows["cache_key"]), batch_size=cfg.batch_size,
                                         num_workers=cfg.num_workers, progress=False,
                                         extra=with_reference_rows(ws, predictor, rows, references, known_rows),
                                         references=references)
        if counts is not None:
            counts["n_cached"] = counts.get("n_cached", 0) + n_cached
        labels, confidence = apply_thresholds(probs, thresholds)
        table = prediction_table(rows, probs, labels, confidence, consensus, ctf_columns=sorted(ctf))
        del rows, probs, labels, confidence
        yield table


@task(name="predict-and-report", cache_policy=NO_CACHE)
def report_task(ctx: RunContext, name: str, model_id: str, ids: list[int], rejects: pd.DataFrame, run_info: dict,
                cfg: AssessConfig) -> tuple[Path, OutputFiles, int, list[str], int]:
    """Grade ``ids`` chunk by chunk into the report folder ``reports/<name>/`` (one writer at a time,
    built aside and published in one step), then write the report page and the selection files
    and record the run. ``predictions.csv``/``.parquet`` are appended per chunk; only the report
    columns of each micrograph stay in memory (:mod:`micrograde.pipeline.report.stream`)."""
    from tqdm.auto import tqdm

    from micrograde.flows.masks import StoredMask, compute_masks, load_run_mask_model, write_mask_outputs
    from micrograde.labeling.consensus import consensus_table
    from micrograde.models.grading.grader import load_grader
    from micrograde.pipeline.report.ood import ood_warnings
    from micrograde.pipeline.report.outputs import write_outputs
    from micrograde.pipeline.report.stream import PredictionSink

    ws = ctx.workspace()
    predictor = load_grader(ws.models_dir / model_id)
    consensus = consensus_table(ws)
    masking = cfg.masks or bool(cfg.particles)
    mask_model = load_run_mask_model(ws.root, cfg.mask_model, progress=ctx.progress) if masking else None

    def get_images(key: str):
        entry = load_entry(ws.cache_dir, key)
        return entry["thumbnail"], entry["spectrum"]

    masks: dict[str, StoredMask] = {}  # cache key -> where its mask was written (small)
    stems: dict[str, int] = {}

    def get_masks(key: str):
        return load_entry(ws.cache_dir, key)["thumbnail"], masks[key].full()

    if mask_model is not None:
        weights = mask_model.card["files"]["weights"]["sha256"][:12]
        run_info = {**run_info, "mask_model": f"{mask_model.card.get('id')} (weights sha256 {weights})"}
    report_dir, staging = ws.reports_dir / name, ws.root / ".staging"

    def lock_of(folder: str) -> Path:
        return ws.root / ".locks" / f"report-{folder}.lock"

    counts: dict[str, int] = {}
    references: dict[str, list[str]] = {}  # sessions' references, read once for grading and warnings
    with file_lock(lock_of(name)):
        remove_stale(staging, name, lock_of)
        with staged_folder(report_dir, staging) as folder:
            sink = PredictionSink(folder)
            try:
                with tqdm(total=len(ids), desc="predict", unit="micrograph", disable=not ctx.progress) as bar:
                    for chunk in predict_chunks(ws, predictor, ids, cfg, consensus, counts, references):
                        if mask_model is not None:  # masks of this chunk: written now, only their names kept
                            chunk, results = compute_masks(mask_model, chunk, stems=stems)
                            write_mask_outputs(folder, chunk, results)
                            masks.update({k: StoredMask(folder / "masks" / f"{r.stem}.mrc", r.pixel_size, r.stem)
                                          for k, r in results.items()})
                            del results
                        sink.add(chunk)
                        bar.update(len(chunk))
                        del chunk
                table = sink.close()
            except BaseException:
                sink.abort()
                raise
            warnings = ood_warnings(table, predictor.card) + _reference_warnings(ws, predictor, table, references)
            run_info = {**run_info, "inputs_digest": digest_of(sorted(table["cache_key"]))}
            files = write_outputs(folder, table, card=predictor.card, rejects=rejects, get_images=get_images,
                                  run_info=run_info, warnings=warnings, review_url=cfg.review_url, star=cfg.star,
                                  cs=cfg.cs, include_medium=cfg.include_medium, predictions_written=True,
                                  get_masks=get_masks if mask_model is not None else None)
            if mask_model is not None and cfg.particles:
                write_mask_outputs(folder, table, masks, particles=cfg.particles, margin_A=cfg.particle_margin,
                                   write_masks=False)
        with ws.transaction() as s:
            s.add(AssessRun(id=run_info["run_id"], model_id=run_info["model_id"], report_dir=str(report_dir),
                            command=ctx.command, n_micrographs=len(table)))
    return report_dir, files, len(table), [w.message for w in warnings], counts.get("n_cached", 0)


def _assess_name() -> str:
    return f"assess-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@flow(name="micrograde-assess", flow_run_name=_assess_name, validate_parameters=False, task_runner=make_task_runner())
def assess_flow(sources: Sequence[str], ctx: RunContext, ingest_cfg: IngestConfig | None = None,
                cfg: AssessConfig | None = None) -> AssessOutcome:
    """Ingest what is new in ``sources`` (a subflow), grade with one model load, write a report folder.

    With no sources, ``cfg.sessions`` chooses catalogued micrographs (the facility's session reports).
    """
    cfg = cfg or AssessConfig()
    ws = ctx.workspace()
    model_id = check_assess_inputs(ws, cfg)
    card_pre = model_preprocess(ws.models_dir / model_id)
    ingest_cfg = (ingest_cfg or IngestConfig()).model_copy(update={"preprocess": card_pre})
    ids: list[int] = []
    rejects = pd.DataFrame(columns=["path", "reason", "detail"])
    n_rejected = 0
    if sources:
        summary = subflow(ingest_flow)(sources, ctx, ingest_cfg)
        ids += summary.micrograph_ids
        n_rejected = summary.rejected
        rejects = pd.DataFrame(summary.rejects, columns=["path", "reason", "detail"])
    if cfg.sessions:
        chosen = micrograph_paths(ws, sessions=cfg.sessions, preprocess_key=card_pre.digest())
        ids += [int(i) for i in chosen["id"] if int(i) not in set(ids)]
        folders = {str(Path(p).parent) for p in chosen["path"]}
        all_rejects = reject_table(ws)
        rejects = pd.concat(
            [rejects, all_rejects[all_rejects["path"].map(lambda p: str(Path(p.split("#")[0]).parent) in folders)]]
        )
        rejects = rejects.drop_duplicates("path", keep="last")
        n_rejected = len(rejects)
    if not ids:
        raise NothingToAssessError(
            "no usable micrographs to assess" + (f" ({n_rejected} rejected)" if n_rejected else "")
        )
    if cfg.star or cfg.cs:  # the user's CTF estimates join the features (a STAR without them only selects)
        import_ctf_task(ctx, cfg.star, cfg.cs, sorted(set(ids)), strict=False)
    if cfg.particles:  # names checked against the assessed micrographs before any grading
        from micrograde.flows.masks import check_particle_inputs

        check_particle_inputs(cfg.particles, [str(p) for p in micrograph_paths(ws, sorted(set(ids)))["path"]])
    run_id = new_run_id("assess-")
    run_info = {
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "micrograde_version": __version__,
        "command_line": ctx.command or "",
        "model_id": model_id,
        "host": platform.node(),
    }
    report_dir, files, n, warnings, n_cached = report_task(ctx, cfg.report_name or run_id, model_id,
                                                           sorted(set(ids)), rejects, run_info, cfg)
    return AssessOutcome(run_id, report_dir, n, files.counts, warnings, files.unmatched, n_cached, n_rejected)


def model_preprocess(model_dir: Path) -> PreprocessConfig:
    """The preprocessing a model was trained with (from its card): new micrographs must match it."""
    from micrograde.models.cards import read_card

    pre = read_card(model_dir)["input"].get("preprocess", {})
    fields = set(PreprocessConfig.model_fields)
    return PreprocessConfig(**{k: v for k, v in pre.items() if k in fields})
