"""``micrograde label ...``: annotators, label import/export, agreement and the labelling web app."""

from __future__ import annotations

import json
import sys

import click

from micrograde.flows.cli.options import db_option, json_option, open_workspace, workspace_option
from micrograde.pipeline.config import EXPERTISE_LEVELS

__all__ = ["register", "label_group"]

_expertise = click.option(
    "--expertise",
    required=True,
    type=click.Choice(EXPERTISE_LEVELS, case_sensitive=False),
    help="Expertise level; consensus weights votes undergrad 1, grad 2, postdoc 3, senior-scientist 4.",
)


@click.group("label")
def label_group() -> None:
    """Annotators, labels, consensus, agreement and the labelling web app.

    \b
    Example:
      micrograde label add-annotator ana --expertise postdoc --workspace ws/
      micrograde label serve --workspace ws/        # then open http://127.0.0.1:8000
    """


@label_group.command("add-annotator")
@click.argument("name")
@_expertise
@workspace_option
@db_option
def add_annotator_cmd(name, expertise, workspace, db):
    """Create an annotator and print their secret login token (shown only this once).

    \b
    Example:
      micrograde label add-annotator "Ana Lopez" --expertise senior-scientist --workspace ws/
    """
    from micrograde.labeling.errors import AnnotatorError
    from micrograde.labeling.store import add_annotator

    ws = open_workspace(workspace, db)
    try:
        row, token = add_annotator(ws, name, expertise)
    except AnnotatorError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"annotator {row.name!r} ({row.expertise}) created. Login token (shown only once; keep it secret):")
    click.echo(token)


@label_group.command("reset-token")
@click.argument("name")
@workspace_option
@db_option
def reset_token_cmd(name, workspace, db):
    """Give an annotator a new token (the old one stops working) and print it once.

    \b
    Example:
      micrograde label reset-token ana --workspace ws/
    """
    from micrograde.labeling.errors import AnnotatorError
    from micrograde.labeling.store import reset_token

    try:
        token = reset_token(open_workspace(workspace, db), name)
    except AnnotatorError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(token)


@label_group.command("deactivate")
@click.argument("name")
@click.option("--activate", is_flag=True, help="Re-activate instead.")
@workspace_option
@db_option
def deactivate_cmd(name, activate, workspace, db):
    """Stop (or with --activate, allow again) an annotator from labelling; their labels stay.

    \b
    Example:
      micrograde label deactivate ana --workspace ws/
    """
    from micrograde.labeling.errors import AnnotatorError
    from micrograde.labeling.store import set_active

    try:
        row = set_active(open_workspace(workspace, db), name, activate)
    except AnnotatorError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"annotator {row.name!r} is now {'active' if row.active else 'inactive'}")


@label_group.command("annotators")
@workspace_option
@db_option
@json_option
def annotators_cmd(workspace, db, as_json):
    """List annotators.

    \b
    Example:
      micrograde label annotators --workspace ws/ --json
    """
    from micrograde.labeling.store import list_annotators

    table = list_annotators(open_workspace(workspace, db))
    if as_json:
        click.echo(table.to_json(orient="records", date_format="iso"))
    elif table.empty:
        click.echo("no annotators yet: micrograde label add-annotator NAME --expertise LEVEL")
    else:
        click.echo(table.drop(columns=["id"]).to_string(index=False))


@label_group.command("import")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False, path_type=str))
@click.option("--annotator", required=True, help="Who gave these labels (created when new).")
@_expertise
@workspace_option
@db_option
def import_cmd(csv_path, annotator, expertise, workspace, db):
    """Import labels from a CSV with columns micrograph,label[,reasons,comment].

    micrograph is a path as ingested or its file name; reasons are tags separated by ';'. Every
    problem is listed with its line number and nothing is imported unless the file is clean.

    \b
    Example:
      micrograde label import labels.csv --workspace ws/ --annotator ana --expertise postdoc
    """
    from micrograde.labeling.errors import LabelImportError
    from micrograde.labeling.store import import_labels

    ws = open_workspace(workspace, db)
    try:
        res = import_labels(ws, csv_path, annotator, expertise)
    except LabelImportError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(
        f"imported {res.n_written} label(s) for {res.annotator} ({res.expertise}); "
        f"{res.n_unchanged} unchanged" + (" ; new annotator (no login token)" if res.created_annotator else "")
    )
    if res.ignored_columns:
        click.echo(f"ignored column(s): {', '.join(res.ignored_columns)}", err=True)


@label_group.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str), help="CSV to write.")
@workspace_option
@db_option
def export_cmd(out, workspace, db):
    """Write consensus labels, the disputed flag and every annotator's label to a CSV
    (agreement in OUT.agreement.json beside it).

    \b
    Example:
      micrograde label export --workspace ws/ --out labels_consensus.csv
    """
    from micrograde.labeling.export import agreement_sidecar, export_labels

    table = export_labels(open_workspace(workspace, db), out)
    if table.empty:
        click.echo(f"no labels yet; wrote an empty {out}", err=True)
        sys.exit(1)
    n_disputed = int(table["disputed"].sum())
    click.echo(f"wrote {len(table)} micrographs ({n_disputed} disputed) to {out} and {agreement_sidecar(out)}")


@label_group.command("agreement")
@workspace_option
@db_option
@json_option
def agreement_cmd(workspace, db, as_json):
    """Print inter-annotator agreement: Cohen's kappa per pair, Fleiss' kappa, per expertise level.

    \b
    Example:
      micrograde label agreement --workspace ws/
    """
    from micrograde.labeling.agreement import agreement_report
    from micrograde.labeling.store import latest_annotations

    latest = latest_annotations(open_workspace(workspace, db))
    if latest.empty:
        click.echo("no labels yet", err=True)
        sys.exit(1)
    report = agreement_report(latest)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())


@label_group.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (keep 127.0.0.1 unless behind a proxy)."
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--enforce-blind", is_flag=True, help="Never show other annotators' labels (no toggle).")
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure (when served over HTTPS by a proxy).")
@workspace_option
@db_option
def serve_cmd(host, port, enforce_blind, secure_cookies, workspace, db):
    """Run the labelling web app.

    \b
    Example:
      micrograde label serve --workspace ws/ --port 8000   # open http://127.0.0.1:8000
    """
    import uvicorn

    from micrograde.labeling.web.app import create_app

    ws = open_workspace(workspace, db)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}; anyone who can reach it sees the login page", err=True)
    app = create_app(ws, enforce_blind=enforce_blind, secure_cookies=secure_cookies)
    click.echo(f"labelling app on http://{host}:{port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(main: click.Group) -> None:
    main.add_command(label_group)
