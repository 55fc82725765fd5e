"""``micrograde train`` and ``micrograde evaluate``."""

from __future__ import annotations

import json

import click

from micrograde.flows.cli.options import db_option, json_option, run_context, workspace_option

__all__ = ["register", "parse_thresholds"]

BALANCE_CHOICES = ("oversample", "undersample", "class-weights", "none")


def parse_thresholds(values: tuple[str, ...]) -> dict[str, float]:
    """``("good=0.7", "bad=0.5")`` -> ``{"good": 0.7, "bad": 0.5}``; a bad item is a usage error."""
    from micrograde.models.thresholds import check_thresholds

    out = {}
    for item in values:
        label, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError("expected LABEL=P")
            out[label.strip()] = float(value)
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: {exc}", param_hint="--threshold") from None
    try:
        return check_thresholds(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threshold") from None


threshold_option = click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="LABEL=P",
    help="Only call LABEL when its probability is at least P (repeatable), e.g. --threshold good=0.7.",
)


def _heads(_ctx, _param, value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    from micrograde.models.grading import HEADS

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in HEADS]
    if unknown:
        raise click.BadParameter(f"unknown head(s) {', '.join(unknown)}; heads are {', '.join(HEADS)}")
    return names


@click.command("train")
@workspace_option
@db_option
@click.option("--heads", callback=_heads, default=None, metavar="A,B,...",
              help="Candidate heads cross-validation chooses from (default: baseline,physics,embedding,combined,"
                   "blend; the baseline is always evaluated).")
@click.option("--finetune", type=click.Choice(["auto", "never", "cv"]), default="auto", show_default=True,
              help="Fine-tuned network as a candidate: cv = evaluate it in the same folds (slow on CPU); auto = only "
                   "when a CUDA GPU is present.")
@click.option("--backbone", default=None, help="Pretrained backbone (see `micrograde train --list-backbones`).")
@click.option("--weights", default="default", show_default=True,
              help='"default" (the backbone\'s ImageNet weights) or a weights file; "none" (from scratch) for '
                   "the fine-tuning candidate only.")
@click.option("--embed-views", type=click.Choice(["field", "crops"]), default="field", show_default=True,
              help="What the frozen backbone sees of each micrograph at 8 A/px: the whole field, or up to 8 crops "
                   "of 512 A on a grid (the layout before the field).")
@click.option("--group-by", default="session", show_default=True,
              help="Catalogue column the cross-validation folds keep whole (session, grid_maker...).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=2), default=None,
              help="Fine-tuning candidate: total epochs, half head-only, half fine-tuning (default 8+6).")
@click.option("--balance", type=click.Choice(BALANCE_CHOICES), default="oversample", show_default=True,
              help="Fine-tuning candidate: class balancing (the other heads weight classes by their counts).")
@click.option("--layout", type=click.Choice(["image,spectrum,image", "image,image,image"]),
              default="image,spectrum,image", show_default=True, help="Fine-tuning candidate: input channels.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Fine-tuning candidate and feature extraction: batch size.")
@click.option("--no-augment", is_flag=True, help="Fine-tuning candidate: train without augmentation.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Fine-tuning candidate: data-parallel processes per run (torchrun; one per GPU, gloo on CPUs).")
@click.option("--exclude-disputed", is_flag=True, help="Leave out micrographs whose consensus is disputed.")
@threshold_option
@click.option("--list-backbones", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _p, v: _list_backbones(ctx) if v else None,
              help="List the registered backbones and exit.")
def train_cmd(workspace, db, heads, finetune, backbone, weights, embed_views, group_by, seed, epochs, balance, layout,
              batch_size, no_augment, nproc, exclude_disputed, thresholds):
    """Train a grader on the consensus labels and save it with its model card.

    Every candidate head (a baseline on the power-spectrum profile and scores; forests on every
    physical measure; a linear head on frozen ImageNet features of the micrograph at 8 A/px; a forest on
    both; the blend of the physical forest and the linear head) is cross-validated with folds that keep
    sessions whole (leave-one-session-out with 3 or more labelled sessions). The physical forest, which
    also measures each micrograph against its own session, is refitted on every label unless another
    head beats it out of fold beyond the noise (then that head is), and never when it is below the
    baseline. The summary and the
    card give the out-of-fold figures with the choice repeated inside each fold (the honest estimate
    for a new session), and the chosen head's own figure beside it (optimistic: chosen on it).

    \b
    Example:
      micrograde train --workspace ws/
      micrograde train --workspace ws/ --finetune cv --epochs 12     # also try fine-tuning (slow on CPU)
    """
    from micrograde.flows.runtime import prefect_session
    from micrograde.models.backbones.registry import DEFAULT_BACKBONE, MissingWeightsError, get_spec
    from micrograde.models.grading import EmbedderConfig, GraderConfig, TrainDataError
    from micrograde.models.grading.heads import needs_embedding
    from micrograde.models.training.ddp_entry import DistributedTrainingError
    from micrograde.models.training.recipe import TrainConfig
    from micrograde.pipeline.data.augment import AugmentConfig

    ctx = run_context(workspace, db)
    recipe = {"backbone": backbone or DEFAULT_BACKBONE, "weights": weights, "balance": balance,
              "batch_size": batch_size, "seed": seed}
    if epochs:
        recipe |= {"epochs_head": epochs // 2, "epochs_finetune": epochs - epochs // 2}
    try:
        cfg = GraderConfig(
            **({"heads": heads} if heads else {}),
            finetune=finetune,
            embedder=EmbedderConfig(backbone=backbone or DEFAULT_BACKBONE,
                                    weights="default" if weights == "none" else weights, batch_size=batch_size,
                                    layout=embed_views),
            group_by=group_by,
            recipe=TrainConfig(**recipe),
            augment=AugmentConfig(enabled=not no_augment, seed=seed),
            layout=layout,
            nproc=nproc,
            thresholds=parse_thresholds(thresholds) or None,
            include_disputed=not exclude_disputed,
            seed=seed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if needs_embedding(cfg.heads) and (weights == "none" or get_spec(cfg.embedder.backbone).default_weights == "none"
                                       and weights == "default"):
        raise click.UsageError(
            f"heads {', '.join(h for h in cfg.heads if needs_embedding([h]))} read frozen pretrained "
            f"features: backbone {cfg.embedder.backbone} with weights {weights!r} has none; pass a "
            "weights file, another --backbone, or --heads baseline,physics"
        )
    with prefect_session(ctx.root):
        from micrograde.flows.train import train_flow

        try:
            outcome = train_flow(ctx, cfg)
        except (TrainDataError, MissingWeightsError, DistributedTrainingError) as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from exc
    ev = outcome.card["evaluation"]
    oof = ev["oof"]
    click.echo(f"out-of-fold estimate ({ev['protocol']}, {ev['n_labelled']} labels, head chosen inside each fold): "
               f"macro-F1 {oof['macro_f1']:.3f}, accuracy {oof['accuracy']:.3f}, ECE {oof['ece']:.3f}; shipped head "
               f"{ev['chosen']!r} (its own out-of-fold macro-F1 {ev['chosen_oof']['macro_f1']:.3f}, optimistic); "
               f"baseline macro-F1 {ev['baseline_oof']['macro_f1']:.3f}")
    click.echo(f"model {outcome.model_id} saved in {outcome.model_dir}")


def _list_backbones(ctx: click.Context) -> None:
    from micrograde.models.backbones.registry import BACKBONES, DEFAULT_BACKBONE

    for name, spec in BACKBONES.items():
        default = " (default)" if name == DEFAULT_BACKBONE else ""
        click.echo(f"{name}{default}: {spec.family}, input {spec.input_size} px, weights: {spec.default_weights}")
    ctx.exit(0)


@click.command("evaluate")
@workspace_option
@db_option
@click.option("--model", "model_id", default=None, help="Model id (default: the latest).")
@click.option("--split", type=click.Choice(["unseen", "all"]), default="unseen", show_default=True,
              help="unseen: labelled micrographs the model was not trained on (labels added since); all: every "
                   "labelled micrograph, training ones included (optimistic).")
@click.option("--session", "sessions", multiple=True, help="Only these sessions (repeatable).")
@json_option
def evaluate_cmd(workspace, db, model_id, split, sessions, as_json):
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall, confusion matrix, ROC-AUC on
    labelled micrographs the model never saw (its out-of-fold estimate is printed beside them).

    \b
    Example:
      micrograde evaluate --workspace ws/ --session grid9
    """
    from micrograde.flows.runtime import prefect_session

    ctx = run_context(workspace, db)
    with prefect_session(ctx.root):
        from micrograde.flows.train import ModelNotFoundError, evaluate_flow

        try:
            result = evaluate_flow(ctx, model_id, list(sessions) or None, split)
        except ModelNotFoundError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    m = result["metrics"]
    click.echo(f"model {result['model_id']} on {result['evaluated_on']} ({result['n']} micrographs)")
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro"):
        if m.get(key) is not None:
            click.echo(f"  {key}: {m[key]:.3f}")
    for line in _confusion_lines(m):
        click.echo(line)
    oof = result.get("out_of_fold")
    if oof:
        click.echo(f"  (its out-of-fold estimate at training: macro-F1 {oof['macro_f1']:.3f}, accuracy "
                   f"{oof['accuracy']:.3f} on {oof['n']} labels)")


def _confusion_lines(m: dict) -> list[str]:
    cm = m.get("confusion_matrix")
    labels = m.get("labels") or ["good", "medium", "bad"]
    if not cm:
        return []
    lines = ["  confusion (rows: consensus, columns: predicted)", "  " + " " * 8 + "".join(f"{x:>8}" for x in labels)]
    lines += ["  " + f"{labels[i]:>8}" + "".join(f"{v:>8}" for v in row) for i, row in enumerate(cm)]
    return lines


def register(main: click.Group) -> None:
    main.add_command(train_cmd)
    main.add_command(evaluate_cmd)
