"""`cmfq import dvc`: a DVC pipeline's stage runs (dvc.yaml + dvc.lock, at a commit or over
the git history) as executions with lineage. Registered on the shared `cmfq import` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cmfq.cli.import_app import import_app
from cmfq.cli.main import WarehouseOpt, warehouse_of


@import_app.command("dvc")
def import_dvc_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The DVC project (a folder inside it).")] = Path("."),
    history: Annotated[bool, typer.Option("--history", help="Every commit of the git history, not only the "
                                                              "current one.")] = False,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Pipeline name [default: the "
                                                 "repository's name].", show_default=False)] = None,
    rev: Annotated[str, typer.Option("--rev", help="The commit to import (or to start the history from).")] = "HEAD",
    warehouse: WarehouseOpt = None,
) -> None:
    """Import a DVC pipeline's stage runs as lineage: dvc.yaml + dvc.lock (commands, params,
    deps and outs by md5, metrics files) at the current commit, or with --history at every
    commit that changed a dvc.lock. Importing again adds nothing.

    Example: `cmfq import dvc . --history`
    """
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err
    from cmfq.config import warehouse_path
    from cmfq.ingest.import_dvc import import_dvc
    from cmfq.warehouse.layout import Layout

    layout = Layout(warehouse_path(warehouse_of(ctx, warehouse)))
    with bar("Reading commits") as progress:
        report = import_dvc(layout, path, history=history, pipeline=pipeline, rev=rev, progress=progress)
    for note in report.notes:
        err().print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)
    where = f"{report.commits} commits" if report.commits else "the working tree"
    err().print(f"Imported {report.executions} new runs of pipeline {report.pipeline} ({report.runs} found in "
                f"{where}; {report.artifacts} artifacts, {report.metrics} metrics) into {report.partitions} "
                f"partitions in {report.seconds:.1f} s.", highlight=False, markup=False)
