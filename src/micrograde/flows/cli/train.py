"""``micrograde train`` and ``micrograde evaluate``."""

from __future__ import annotations

import json

import click

from micrograde.flows.cli.options import db_option, json_option, run_context, workspace_option

__all__ = ["register", "parse_thresholds"]

BALANCE_CHOICES = ("oversample", "undersample", "class-weights", "none")


def parse_thresholds(values: tuple[str, ...]) -> dict[str, float]:
    """``("good=0.7", "bad=0.5")`` -> ``{"good": 0.7, "bad": 0.5}``; a bad item is a usage error."""
    from micrograde.models.infer import check_thresholds

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


@click.command("train")
@workspace_option
@db_option
@click.option("--backbone", default=None, help="Backbone name (see `micrograde train --list-backbones`).")
@click.option("--weights", default="default", show_default=True,
              help='"default" (the backbone\'s pretrained weights), "none" (from scratch) or a weights file.')
@click.option("--epochs", type=click.IntRange(min=2), default=None,
              help="Total epochs: half head-only with the backbone frozen, half fine-tuning (default 8+6).")
@click.option("--balance", type=click.Choice(BALANCE_CHOICES), default="oversample", show_default=True)
@click.option("--group-by", default="session", show_default=True,
              help="Catalogue column that splits train/validation/test without leaks (session, grid_maker...).")
@click.option("--layout", type=click.Choice(["image,spectrum,image", "image,image,image"]),
              default="image,spectrum,image", show_default=True, help="Input channel layout.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-augment", is_flag=True, help="Train without augmentation.")
@click.option("--head", "head", type=click.Choice(["fusion", "network"]), default="fusion", show_default=True,
              help="fusion: the network's features with the physical measures (boosted trees; kept only when it "
                   "beats the network on validation); network: the network's own classifier.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes (torchrun; one per GPU, gloo on CPUs).")
@click.option("--exclude-disputed", is_flag=True, help="Leave out micrographs whose consensus is disputed.")
@threshold_option
@click.option("--list-backbones", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _p, v: _list_backbones(ctx) if v else None,
              help="List the registered backbones and exit.")
def train_cmd(workspace, db, backbone, weights, epochs, balance, group_by, layout, batch_size, seed, no_augment,
              head, nproc, exclude_disputed, thresholds):
    """Fine-tune a pretrained CNN on the consensus labels and save it with its model card.

    \b
    Example:
      micrograde train --workspace ws/ --backbone efficientnet_lite0 --epochs 12 --balance oversample
    """
    from micrograde.models.backbones.registry import DEFAULT_BACKBONE, MissingWeightsError
    from micrograde.models.fusion import FusionConfig
    from micrograde.models.training.recipe import TrainConfig
    from micrograde.models.training.run import TrainDataError, TrainRunConfig
    from micrograde.pipeline.data.augment import AugmentConfig
    from micrograde.pipeline.data.splits import SplitConfig, SplitError

    from micrograde.flows.runtime import prefect_session

    ctx = run_context(workspace, db)
    train = {"backbone": backbone or DEFAULT_BACKBONE, "weights": weights, "balance": balance,
             "batch_size": batch_size, "seed": seed}
    if epochs:
        train |= {"epochs_head": epochs // 2, "epochs_finetune": epochs - epochs // 2}
    try:
        cfg = TrainRunConfig(
            train=TrainConfig(**train),
            split=SplitConfig(group_by=group_by, seed=seed),
            augment=AugmentConfig(enabled=not no_augment, seed=seed),
            fusion=FusionConfig(enabled=head == "fusion", seed=seed),
            layout=layout,
            thresholds=parse_thresholds(thresholds) or None,
            include_disputed=not exclude_disputed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    with prefect_session(ctx.root):
        from micrograde.flows.train import DistributedTrainingError, train_flow

        try:
            outcome = train_flow(ctx, cfg, nproc=nproc)
        except (TrainDataError, SplitError, MissingWeightsError, DistributedTrainingError) as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from exc
        except KeyError as exc:
            raise click.UsageError(f"unknown backbone or option: {exc}") from exc
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
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Which labelled micrographs: a side of the model's own split, or all.")
@click.option("--session", "sessions", multiple=True, help="Evaluate on these sessions instead (repeatable).")
@json_option
def evaluate_cmd(workspace, db, model_id, split, sessions, as_json):
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall, confusion matrix, ROC-AUC.

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
