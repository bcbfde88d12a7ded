"""Commands that move partitions between a warehouse and its remotes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmfq.cli.main import WarehouseOpt, app, warehouse_of

if TYPE_CHECKING:
    from rich.console import Console

    from cmfq.errors import CmfqError
    from cmfq.warehouse.layout import Layout
    from cmfq.warehouse.partition import PartitionName
    from cmfq.warehouse.remote import Remote
    from cmfq.warehouse.sync import SyncReport

remote_app = typer.Typer(help="Manage remotes: where warehouses push and pull (folder, s3://, any fsspec URL).",
                         no_args_is_help=True)
app.add_typer(remote_app, name="remote")

RemoteArg = Annotated[str | None, typer.Argument(help="Remote name [default: the default remote].",
                                                 show_default=False)]
PipelineOpt = Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline's partitions.")]


def _layout(ctx: typer.Context, warehouse: Path | None) -> Layout:
    from cmfq.config import warehouse_path
    from cmfq.warehouse.layout import Layout

    return Layout(warehouse_path(warehouse_of(ctx, warehouse))).require()


@remote_app.command("add")
def remote_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A short name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="A folder path, file://…, s3://bucket/prefix or another fsspec URL.")],
    default: Annotated[bool, typer.Option("--default", help="Make it the default remote.")] = False,
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint, e.g. http://127.0.0.1:9000.")] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile to take credentials from.")] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Add a remote. Credentials are never saved: S3 reads them from the AWS environment,
    config files or --profile.

    Example: `cmfq remote add origin s3://ml-metadata/team-a --endpoint-url http://127.0.0.1:9000`
    """
    from cmfq.cli.render import err
    from cmfq.warehouse.remote_config import add_remote

    saved = add_remote(_layout(ctx, warehouse), name, url,
                       {"endpoint_url": endpoint_url, "region": region, "profile": profile}, default=default)
    err().print(f"Added remote {saved.name} -> {saved.url}" + (" (default)" if saved.default else ""),
                highlight=False)


@remote_app.command("list")
def remote_list(ctx: typer.Context, warehouse: WarehouseOpt = None,
                format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table") -> None:
    """List remotes with their options (never secrets) and when they were last synced."""
    import polars as pl

    from cmfq.cli.render import Format, emit
    from cmfq.warehouse.remote_config import list_remotes

    rows = [{"name": r.name, "url": r.url, "default": r.default,
             "options": ", ".join(f"{k}={v}" for k, v in sorted(r.options.items())),
             "last_push": r.last_push, "last_pull": r.last_pull} for r in list_remotes(_layout(ctx, warehouse))]
    schema = {"name": pl.String, "url": pl.String, "default": pl.Boolean, "options": pl.String,
              "last_push": pl.String, "last_pull": pl.String}
    emit(pl.DataFrame(rows, schema=schema), Format(format))


@remote_app.command("remove")
def remote_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The remote to forget.")],
                  warehouse: WarehouseOpt = None) -> None:
    """Forget a remote (nothing on it is deleted)."""
    from cmfq.cli.render import err
    from cmfq.warehouse.remote_config import remove_remote

    remove_remote(_layout(ctx, warehouse), name)
    err().print(f"Removed remote {name}.", highlight=False)


@app.command()
def push(ctx: typer.Context, remote: RemoteArg = None, pipeline: PipelineOpt = None,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be sent.")] = False,
         warehouse: WarehouseOpt = None) -> None:
    """Upload the partitions the remote does not have yet. Safe to repeat, to interrupt and
    to run from many machines at once: files are named by their content and never overwritten."""
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err
    from cmfq.warehouse.partition import pipeline_folder
    from cmfq.warehouse.remote_config import get_remote, record_sync
    from cmfq.warehouse.sync import push as run_push

    layout = _layout(ctx, warehouse)
    saved = get_remote(layout, remote)
    with bar(f"Pushing to {saved.name}") as progress:
        report = run_push(layout, saved.open(), folder=pipeline_folder(pipeline) if pipeline else None,
                          dry_run=dry_run, progress=progress)
    console = err()
    if dry_run:
        for name in report.planned:
            console.print(f"would send {name}", highlight=False)
        console.print(f"{len(report.planned)} partitions to send, {report.skipped} already on {saved.name}.")
        return
    _summary(console, "Sent", report, saved.name)
    if not report.failed:
        record_sync(layout, saved.name, "push")
    else:
        raise typer.Exit(1)


@app.command()
def pull(ctx: typer.Context, remote: RemoteArg = None, pipeline: PipelineOpt = None,
         artifact: Annotated[str | None, typer.Option(
             "--artifact", "-a", help="Only this artifact's lineage chain, up and down (hash, prefix or name).")] = None,
         since: Annotated[str | None, typer.Option(
             help="Only executions started on or after this date (YYYY-MM-DD or ISO time, UTC).")] = None,
         warehouse: WarehouseOpt = None) -> None:
    """Download the partitions this warehouse does not have yet, verifying every file's hash
    and schema first. A bad file is refused by name; the rest of the pull completes.

    With --artifact or --since, the remote is queried in place and only the matching facts are
    written here, as new partitions. Example: `cmfq pull origin --artifact models/model.pkl`
    """
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err
    from cmfq.warehouse.partition import pipeline_folder
    from cmfq.warehouse.remote_config import get_remote, record_sync
    from cmfq.warehouse.sync import pull as run_pull

    layout = _layout(ctx, warehouse)
    saved = get_remote(layout, remote)
    if artifact is not None or since is not None:
        _selective(layout, saved.open(), saved.name, artifact, since)
        return
    with bar(f"Pulling from {saved.name}") as progress:
        report = run_pull(layout, saved.open(), folder=pipeline_folder(pipeline) if pipeline else None,
                          progress=progress)
    _summary(err(), "Received", report, saved.name)
    if report.failed:
        raise typer.Exit(1)
    record_sync(layout, saved.name, "pull")


def _selective(layout: Layout, remote: Remote, name: str, artifact: str | None, since: str | None) -> None:
    import datetime as dt

    from cmfq.cli.render import err
    from cmfq.errors import InvalidInputError
    from cmfq.warehouse.selective_pull import pull_lineage, pull_since

    if artifact is not None and since is not None:
        raise InvalidInputError("Give --artifact or --since, not both.")
    if artifact is not None:
        report = pull_lineage(layout, remote, artifact)
        what = f"the lineage of {artifact}"
    else:
        try:
            when = dt.datetime.fromisoformat(str(since))
        except ValueError:
            raise InvalidInputError(f"--since {since!r} is not a date.", hint="Use YYYY-MM-DD or an ISO time.") from None
        report = pull_since(layout, remote, when)
        what = f"executions since {since}"
    rows = ", ".join(f"{n} {t}" for t, n in report.rows.items() if n)
    err().print(f"Pulled {what} from {name}: {report.executions} executions, {report.artifacts} artifacts "
                f"({rows or 'nothing'}) into {report.partitions} new partitions, in {report.seconds:.1f} s.",
                highlight=False)


def _summary(console: Console, verb: str, report: SyncReport, remote: str) -> None:
    for problem in report.failed:
        console.print(f"[red]refused:[/red] {problem}", highlight=False, soft_wrap=True)
    if report.foreign:
        console.print(f"[yellow]note:[/yellow] {len(report.foreign)} objects on {remote} are not cmfq "
                      f"partitions and were ignored (e.g. {report.foreign[0]!r}).", highlight=False)
    console.print(f"{verb} {report.files} partitions ({report.bytes / 1e6:.2f} MB), {report.skipped} already "
                  f"in sync, {len(report.failed)} refused, in {report.seconds:.1f} s.", highlight=False)


@app.command()
def status(ctx: typer.Context, remote: RemoteArg = None, warehouse: WarehouseOpt = None,
           format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table") -> None:
    """What is only here, only on the remote, and on both (partitions per table)."""
    import polars as pl

    from cmfq.cli.render import Format, emit
    from cmfq.warehouse.remote_config import get_remote
    from cmfq.warehouse.schema import TABLES
    from cmfq.warehouse.sync import status as run_status

    layout = _layout(ctx, warehouse)
    saved = get_remote(layout, remote)
    st = run_status(layout, saved.open())
    rows = [{"table": t, "local_only": sum(n.table == t for n in st.local_only),
             "remote_only": sum(n.table == t for n in st.remote_only)} for t in TABLES]
    rows.append({"table": "all", "local_only": len(st.local_only), "remote_only": len(st.remote_only)})
    emit(pl.DataFrame(rows), Format(format), title=f"{layout.root} vs {saved.name} ({st.both} partitions on both)")


@app.command()
def verify(ctx: typer.Context,
           remote: Annotated[str | None, typer.Option("--remote", "-r", help="Check this remote instead.")] = None,
           repair: Annotated[bool, typer.Option(
               "--repair", help="Replace each bad or quarantined file with a good copy: fetched from the "
               "default remote (or --from), or, with --remote, uploaded from this warehouse.")] = False,
           source: Annotated[str | None, typer.Option(
               "--from", help="With --repair: the remote to fetch good copies from [default: the default "
               "remote].", show_default=False)] = None,
           warehouse: WarehouseOpt = None) -> None:
    """Check every partition: bytes hash to the name, known format version, right schema,
    readable rows. Each bad file is named and moved to _quarantine/ (never deleted), and the
    exit code is 1.

    Example: `cmfq verify --repair` re-fetches damaged files from the default remote.
    """
    from cmfq.cli.progress import bar
    from cmfq.cli.render import err
    from cmfq.errors import FormatVersionError, InvalidInputError
    from cmfq.warehouse.remote_config import get_remote
    from cmfq.warehouse.sync import verify as run_verify

    if source is not None and (remote is not None or not repair):
        raise InvalidInputError("--from goes with --repair of the local warehouse.",
                                hint="Use `cmfq verify --repair --from NAME`, or `--remote NAME --repair`.")
    layout = _layout(ctx, warehouse)
    target = get_remote(layout, remote).open() if remote else None
    with bar("Verifying") as progress:
        report = run_verify(None if target else layout, target, progress=progress)
    console = err()
    for problem in report.bad:
        console.print(f"[red]bad:[/red] {problem}", highlight=False, soft_wrap=True)
    for name in report.foreign:
        console.print(f"[yellow]foreign:[/yellow] {name} is not a partition name", highlight=False)
    where = target.url if target else str(layout.root)
    if report.temp_removed:
        console.print(f"Removed {report.temp_removed} temp files left by interrupted writes.", highlight=False)
    summary = f"Checked {report.checked} partitions in {where}: {len(report.bad)} bad"
    unrepaired = len(report.bad)
    if repair:
        fixed, failed = _repair(layout, target, report.bad_names, source)
        for problem in failed:
            console.print(f"[red]not repaired:[/red] {problem}", highlight=False, soft_wrap=True)
        summary += f", {fixed} repaired"
        unrepaired = len(failed) + sum(isinstance(e, FormatVersionError) for e in report.bad)
    console.print(summary + ".", highlight=False)
    if unrepaired:
        raise typer.Exit(1)


def _repair(layout: Layout, target: Remote | None, bad: list[PartitionName], source: str | None
            ) -> tuple[int, list[CmfqError]]:
    """Good copies for bad files: remote -> warehouse, or warehouse -> ``target``."""
    from cmfq.cli.render import err
    from cmfq.warehouse.atomic import write_atomic
    from cmfq.warehouse.quarantine import quarantined, repair
    from cmfq.warehouse.remote_config import get_remote

    if target is None:
        saved = get_remote(layout, source)
        origin = saved.open()
        report = repair(quarantined(layout), origin.read,
                        lambda n, d: write_atomic(layout.path(n), d, exclusive=True), origin.url)
        where = saved.name
    else:
        on_remote = target.list().partitions
        report = repair([n for n in bad if n not in on_remote], lambda n: layout.path(n).read_bytes(),
                        target.write, str(layout.root))
        where = str(layout.root)
    for name in report.repaired:
        err().print(f"[green]repaired:[/green] {name} (a good copy from {where})", highlight=False)
    return len(report.repaired), report.failed
