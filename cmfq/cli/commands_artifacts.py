"""Commands for artifacts: list them, and move their bytes through a DVC remote."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmfq.cli.main import LimitOpt, OffsetOpt, WarehouseOpt, app, open_warehouse, warehouse_of
from cmfq.cli.render import Format
from cmfq.errors import CmfqError

if TYPE_CHECKING:
    from cmfq.ingest.hashing import HashCache
    from cmfq.warehouse.artifact_store import Item, Store

artifacts_app = typer.Typer(
    help="List artifacts (content-addressed: one row per distinct content), newest first; or move "
    "their bytes through a DVC remote with `cmfq artifacts push|pull|status`.\n\n"
    "Example: `cmfq artifacts --kind model`, `cmfq artifacts push --artifact model.pkl`",
    invoke_without_command=True,
)
# A group, so that `cmfq artifacts` lists them (the callback) and `cmfq artifacts push` moves them.
app.add_typer(artifacts_app, name="artifacts")

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output: a table for people, json/csv for scripts.")]
PipelineSel = Annotated[str | None, typer.Option("--pipeline", "-p", help="Every artifact of this pipeline.")]
ArtifactSel = Annotated[str | None, typer.Option(
    "--artifact", "-a", help="This artifact (hash, prefix or name) and everything upstream of it.")]
ExecutionSel = Annotated[str | None, typer.Option("--execution", "-e", help="What this execution read and wrote.")]
RemoteOpt = Annotated[str | None, typer.Option(
    "--remote", "-r", help="A DVC remote of the project by name, or a folder / s3:// URL "
    "[default: the project's default DVC remote].", show_default=False)]
EndpointOpt = Annotated[str | None, typer.Option(help="S3 endpoint for a URL remote, e.g. http://127.0.0.1:9000.")]
ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", help="The DVC project (or folder) artifacts belong to [default: the current folder].",
    show_default=False)]


@artifacts_app.callback()
def artifacts(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="dataset, model, featureset, metrics, env...")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only names containing this text.")] = None,
    execution: Annotated[str | None, typer.Option("--execution", "-e", help="Only those one execution used.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    warehouse: WarehouseOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """List artifacts (content-addressed: one row per distinct content), newest first, a page
    at a time (--limit, --offset)."""
    if ctx.invoked_subcommand is not None:
        return
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        rows = wh.artifacts(kind, name=name, execution=execution, limit=offset + limit + 1)
        emit_page(rows, format, limit, offset, counted=False)


@artifacts_app.command("push")
def artifacts_push(
    ctx: typer.Context, pipeline: PipelineSel = None, artifact: ArtifactSel = None, execution: ExecutionSel = None,
    remote: RemoteOpt = None, endpoint_url: EndpointOpt = None, project: ProjectOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Send the bytes of logged artifacts to a DVC remote, from the DVC cache or from the
    files on disk (checked against their logged hash), in DVC's layout: `dvc pull` finds them.

    Example: `cmfq artifacts push --artifact artifacts/model/model.pkl` (the model and its lineage)
    """
    from cmfq.warehouse.artifact_store import push

    started = time.perf_counter()
    store, items = _prepare(ctx, warehouse, project, remote, endpoint_url, pipeline, artifact, execution)
    report = push(store, items)
    _problems(report.problems)
    _say(f"Pushed {report.objects} objects of {report.artifacts} artifacts to {store.url} "
         f"({report.present} already there) in {time.perf_counter() - started:.1f} s.")
    _fail_if(report.problems, "pushed")


@artifacts_app.command("pull")
def artifacts_pull(
    ctx: typer.Context, pipeline: PipelineSel = None, artifact: ArtifactSel = None, execution: ExecutionSel = None,
    remote: RemoteOpt = None, endpoint_url: EndpointOpt = None, project: ProjectOpt = None,
    to: Annotated[Path | None, typer.Option("--to", help="Restore under this folder instead of the project.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite local files that hold other bytes.")] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Fetch the bytes of logged artifacts from a DVC remote (into the DVC cache too) and
    write them where they were logged, checking every file's md5.

    Example: `cmfq artifacts pull --artifact artifacts/model/model.pkl`
    """
    from cmfq.warehouse.artifact_store import pull

    started = time.perf_counter()
    store, items = _prepare(ctx, warehouse, project, remote, endpoint_url, pipeline, artifact, execution, to=to)
    report = pull(store, items, force=force)
    _problems(report.problems)
    _say(f"Pulled {report.artifacts} artifacts from {store.url}: {len(report.restored)} files written, "
         f"{report.present} already in place, {report.objects} objects fetched into the DVC cache, "
         f"in {time.perf_counter() - started:.1f} s.")
    _fail_if(report.problems, "pulled")


@artifacts_app.command("status")
def artifacts_status(
    ctx: typer.Context, pipeline: PipelineSel = None, artifact: ArtifactSel = None, execution: ExecutionSel = None,
    remote: RemoteOpt = None, endpoint_url: EndpointOpt = None, project: ProjectOpt = None,
    warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
) -> None:
    """Say where the bytes of logged artifacts are: on disk (ok / modified / missing), in the
    DVC cache, and complete on the remote.

    Example: `cmfq artifacts status --pipeline tumor-classifier`
    """
    import polars as pl

    from cmfq.cli.render import emit
    from cmfq.warehouse.artifact_store import status

    store, items = _prepare(ctx, warehouse, project, remote, endpoint_url, pipeline, artifact, execution)
    schema = {"hash": pl.String, "kind": pl.String, "name": pl.String, "workspace": pl.String,
              "cache": pl.Boolean, "remote": pl.Boolean, "path": pl.String}
    emit(pl.DataFrame(status(store, items), schema=schema), format)


# -- helpers ----------------------------------------------------------------------------------------

def _prepare(ctx: typer.Context, warehouse: Path | None, project: Path | None, remote: str | None,
             endpoint_url: str | None, pipeline: str | None, artifact: str | None, execution: str | None,
             *, to: Path | None = None) -> tuple[Store, list[Item]]:
    from cmfq.warehouse.artifact_store import open_store, select

    hashes = _hashes(ctx, warehouse)
    store = open_store((project or Path.cwd()).resolve(), hashes, remote=remote, endpoint_url=endpoint_url, to=to)
    with open_warehouse(ctx, warehouse) as wh:
        items = select(wh, pipeline=pipeline, artifact=artifact, execution=execution)
    return store, items


def _hashes(ctx: typer.Context, warehouse: Path | None) -> HashCache:
    from cmfq.config import warehouse_path
    from cmfq.ingest.hashing import HashCache
    from cmfq.warehouse.layout import Layout

    layout = Layout(warehouse_path(warehouse_of(ctx, warehouse))).require()
    return HashCache(layout.cache_dir / "hashes.sqlite")


def _say(text: str) -> None:
    from cmfq.cli.render import err

    err().print(text, highlight=False, markup=False)


def _warn(text: str) -> None:
    from cmfq.cli.render import err

    err().print(f"[yellow]warning:[/yellow] {text}", highlight=False, soft_wrap=True)


def _problems(problems: list[str]) -> None:
    for problem in problems:
        _warn(problem)


def _fail_if(problems: list[str], verb: str) -> None:
    if problems:
        raise CmfqError(f"{len(problems)} artifacts could not be {verb} (listed above).",
                        hint="`cmfq artifacts status` shows where each one's bytes are.")
