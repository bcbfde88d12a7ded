"""Commands that create or maintain a warehouse: init, demo, compact."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from cmfq.cli.main import WarehouseOpt, app, warehouse_of
from cmfq.errors import InvalidInputError


@app.command()
def init(ctx: typer.Context, warehouse: WarehouseOpt = None,
         site: Annotated[str | None, typer.Option(help="Name stamped on facts logged here [default: host name].")
                         ] = None) -> None:
    """Create an empty warehouse (loggers also create one on first use)."""
    from cmfq.cli.render import err
    from cmfq.config import default_site, warehouse_path
    from cmfq.warehouse.layout import Layout

    layout = Layout(warehouse_path(warehouse_of(ctx, warehouse)))
    created = layout.init(site or default_site())
    err().print(("Created" if created else "Already a warehouse:") + f" {layout.root}", highlight=False)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder to build the demo in.")] = Path("cmfq-demo"),
    force: Annotated[bool, typer.Option("--force", help="Replace the folder if it exists.")] = False,
) -> None:
    """Build a sample warehouse by running a real 4-stage ML pipeline over sample datasets.

    It creates DIRECTORY/.cmfq (the warehouse) and DIRECTORY/artifacts (the files), then
    prints what to try next. Needs scikit-learn: pip install 'cmfq[demo]'.
    """
    from cmfq.cli.render import err
    from cmfq.data_samples.pipeline import build_demo  # needs scikit-learn; says so if missing

    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise InvalidInputError(f"{directory} exists and is not empty.",
                                    hint="Choose another folder or pass --force to replace it.")
        shutil.rmtree(directory)
    console = err()
    summary = build_demo(directory, echo=lambda line: console.print(line, highlight=False))
    console.print(f"\n{summary}", highlight=False)


@app.command()
def compact(ctx: typer.Context, warehouse: WarehouseOpt = None,
            table: Annotated[list[str] | None, typer.Option("--table", help="Only these tables.")] = None,
            remote: Annotated[str | None, typer.Option("--remote", "-r", help="Compact this remote instead.")
                              ] = None) -> None:
    """Merge the many small partitions of each table into a few large ones (safe while others
    read, log or push; an interrupted run loses nothing)."""
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err
    from cmfq.config import warehouse_path
    from cmfq.warehouse.compact import compact as run_compact
    from cmfq.warehouse.layout import Layout
    from cmfq.warehouse.schema import TABLES

    unknown = sorted(set(table or []) - set(TABLES))
    if unknown:
        raise InvalidInputError(f"Unknown table(s) {unknown}.", hint=f"Tables are {', '.join(TABLES)}.")
    layout = Layout(warehouse_path(warehouse_of(ctx, warehouse))).require()
    started = time.perf_counter()
    if remote is not None:
        from cmfq.warehouse.remote_config import get_remote

        target = get_remote(layout, remote).open()
    with bar("Compacting") as progress:
        report = run_compact(target if remote is not None else layout, table or None, progress=progress)
    console = err()
    for problem in report.skipped:
        console.print(f"[yellow]warning:[/yellow] left alone {problem}", highlight=False, soft_wrap=True)
    console.print(f"Compacted {report.inputs} partitions into {report.outputs} ({report.rows} rows): "
                  f"{report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB "
                  f"in {time.perf_counter() - started:.1f} s.", highlight=False)
