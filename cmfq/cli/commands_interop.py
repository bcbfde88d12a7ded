"""Commands that move history in and out: ``cmfq import <kind> SOURCE``, ``cmfq export <format>``.

The ``import`` group itself lives in :mod:`cmfq.cli.import_app`, shared with other modules'
importers (``cmfq import dvc``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from cmfq.cli.import_app import import_app
from cmfq.cli.main import WarehouseOpt, app, open_warehouse, warehouse_of

if TYPE_CHECKING:
    from cmfq.ingest.facts_sink import ImportReport

EXPORT_HELP = "Export the warehouse's history for other tools: OpenLineage RunEvents or CMF's JSON export."
export_app = typer.Typer(name="export", help=EXPORT_HELP, no_args_is_help=True)
app.add_typer(export_app, name="export")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the import report as JSON on stdout.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]


@import_app.command("mlmd")
def import_mlmd(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="The cmflib / ML Metadata SQLite store (cmflib's ./mlmd).")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Import only this pipeline.")] = None,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a cmflib / ML Metadata SQLite store: pipelines, stages, executions, artifacts, metrics.

    Example: `cmfq import mlmd ./mlmd`
    """
    from cmfq.ingest.import_mlmd import import_mlmd as run

    _run_import(ctx, warehouse, as_json, "executions",
                lambda where, progress: run(source, where, pipeline=pipeline, progress=progress))


@import_app.command("cmf-json")
def import_cmf_json(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A JSON file written by `cmf metadata export`.")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Import only this pipeline.")] = None,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import CMF's JSON export (`cmf metadata export`, CmfQuery.dumptojson).

    Example: `cmfq import cmf-json Test-env.json`
    """
    from cmfq.ingest.import_cmf_json import import_cmf_json as run

    _run_import(ctx, warehouse, as_json, "executions",
                lambda where, progress: run(source, where, pipeline=pipeline, progress=progress))


@import_app.command("mlflow")
def import_mlflow(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The tracking store: sqlite:///mlflow.db, or an mlruns/ folder.")],
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Import only this experiment.")
                          ] = None,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an MLflow tracking store: experiments as pipelines, runs as executions (nested runs as
    stages), params, metrics with steps, tags, dataset inputs and logged models.

    Example: `cmfq import mlflow sqlite:///mlflow.db`
    """
    from cmfq.ingest.import_mlflow import import_mlflow as run

    _run_import(ctx, warehouse, as_json, "runs",
                lambda where, progress: run(source, where, experiment=experiment, progress=progress))


@import_app.command("openlineage")
def import_openlineage(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A JSON-lines file of RunEvents, or a folder of .json/.jsonl.")],
    pipeline: Annotated[str | None, typer.Option(
        "--pipeline", "-p", help="Put every run into this pipeline (default: from the events).")] = None,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import OpenLineage RunEvents: jobs as stages, runs as executions, input/output datasets.

    Example: `cmfq import openlineage events.jsonl`
    """
    from cmfq.ingest.import_openlineage import import_openlineage as run

    _run_import(ctx, warehouse, as_json, "runs",
                lambda where, progress: run(source, where, pipeline=pipeline, progress=progress))


@export_app.command("openlineage")
def export_openlineage(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline.")] = None,
    output: OutputOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Write every execution as OpenLineage RunEvents (START, then COMPLETE/FAIL/ABORT), one JSON
    object a line; params and metrics ride in custom facets.

    Example: `cmfq export openlineage --pipeline train > events.jsonl`
    """
    from cmfq.ingest.export_openlineage import export_openlineage as run

    with open_warehouse(ctx, warehouse) as wh, _output(output) as out:
        count = run(wh, out, pipeline=pipeline)
    _done(f"Wrote {count} OpenLineage events", output)


@export_app.command("cmf-json")
def export_cmf_json(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline.")] = None,
    output: OutputOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Write the pipelines in the shape of CMF's JSON export (`cmf metadata export`).

    Example: `cmfq export cmf-json --pipeline Test-env -o Test-env.json`
    """
    from cmfq.ingest.export_cmf_json import export_cmf_json as run

    with open_warehouse(ctx, warehouse) as wh, _output(output) as out:
        count = run(wh, out, pipeline=pipeline)
    _done(f"Wrote {count} pipeline(s) in CMF's JSON shape", output)


def _run_import(ctx: typer.Context, warehouse: Path | None, as_json: bool, unit: str,
                call: Callable[[Path | None, Callable[[int, int], None]], ImportReport]) -> None:
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err

    started = time.perf_counter()
    with bar(f"Importing {unit}") as progress:
        report = call(warehouse_of(ctx, warehouse), progress)
    report.seconds = time.perf_counter() - started
    err().print(report.summary(), highlight=False, markup=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8") as f:
        yield f


def _done(what: str, output: Path | None) -> None:
    from cmfq.cli.render import err

    err().print(what + (f" to {output}." if output else "."), highlight=False)
