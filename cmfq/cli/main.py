"""The ``cmfq`` command line: a thin client of the query API.

Every command resolves the warehouse (``--warehouse/-w``, else ``$CMFQ_WAREHOUSE``, else
``./.cmfq``), calls one :class:`cmfq.Warehouse` method and hands the frame to a renderer.
Errors end in one red line and exit code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer._click.core import Context as ClickContext  # typer 0.29 vendors click
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from cmfq.errors import CmfqError

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse
    from cmfq.warehouse.remote import Remote

ENV_DEBUG = "CMFQ_DEBUG"


class _Boundary(TyperGroup):
    """Turns every failure into one line on stderr and exit code 1: cmfq's own errors as they
    are, the operating system's (permissions, full disk, bad paths) with what to do, anything
    else as a bug to report. ``--debug`` (or $CMFQ_DEBUG) re-raises with the traceback."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # `cmfq executions | head`: the reader left; not an error worth a line.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:
            if os.environ.get(ENV_DEBUG) or (ctx.obj or {}).get("debug"):
                raise
            _fail(_one_line(exc))


def _one_line(exc: Exception) -> str:
    from cmfq.errors import StorageError

    if isinstance(exc, CmfqError):
        return str(exc)
    if isinstance(exc, OSError):
        return str(StorageError.from_os_error(exc))
    import duckdb

    first = " ".join(str(exc).split("\n\n")[0].split())[:300]
    if isinstance(exc, duckdb.Error):
        if "No space left" in first or "disk is full" in first.lower():
            return f"{first}. Free some space (or raise the quota) and run the command again."
        return f"DuckDB: {first}. Run again with --debug for the details."
    return (f"unexpected {type(exc).__name__}: {first}. This is a bug in cmfq: run again with --debug "
            "and report the traceback.")


def _fail(message: str) -> None:
    from cmfq.cli.render import err

    err().print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Boundary,
    name="cmfq",
    help="A columnar metadata warehouse for ML pipelines: log runs, sync them, ask questions in SQL.\n\n"
    "Start with `cmfq demo` to build a sample warehouse, then `cmfq pipelines`, `cmfq executions`, "
    "`cmfq lineage <model>` and `cmfq sql \"SELECT * FROM executions\"`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

WarehouseOpt = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", help="Warehouse folder [default: $CMFQ_WAREHOUSE or ./.cmfq].",
                 show_default=False),
]

LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many rows.")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Skip this many rows first (the next page).")]


@app.callback()
def _main(
    ctx: typer.Context,
    warehouse: WarehouseOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    ctx.obj = {"warehouse": warehouse, "debug": debug}


def warehouse_of(ctx: typer.Context, explicit: Path | None) -> Path | None:
    """The warehouse a command works on: its own -w, else the global one."""
    return explicit or (ctx.obj or {}).get("warehouse")


def open_warehouse(ctx: typer.Context, explicit: Path | None, remote: str | None = None) -> Warehouse:
    """Open the warehouse (or, with ``remote``, a remote read in place: a saved remote's name
    or a URL) with a progress bar for large loads and warnings for partitions that failed
    verification."""
    from cmfq.cli.progress import index_progress
    from cmfq.cli.render import err
    from cmfq.warehouse.connection import ENV_MEMORY_LIMIT, QUERY_MEMORY_LIMIT
    from cmfq.warehouse.query import Warehouse

    target: Path | str | Remote | None = warehouse_of(ctx, explicit)
    if remote is not None:
        target = _remote_target(target, remote)
    with index_progress() as progress:
        # One question per process: a small buffer pool (unless $CMFQ_MEMORY_LIMIT says otherwise).
        wh = Warehouse(target, progress=progress,
                       query_memory_limit=None if os.environ.get(ENV_MEMORY_LIMIT) else QUERY_MEMORY_LIMIT)
    for problem in wh.problems:
        err().print(f"[yellow]warning:[/yellow] skipped {problem}", highlight=False, soft_wrap=True)
    if wh.mode == "memory":
        err().print("[yellow]warning:[/yellow] the index is busy in another process; "
                    "answered from the partitions directly.")
    return wh


def _remote_target(warehouse: Path | str | None, remote: str) -> Remote:
    """A remote given as a URL or folder path, or by the name it is saved under here."""
    from cmfq.config import warehouse_path
    from cmfq.warehouse.layout import Layout
    from cmfq.warehouse.remote import open_remote
    from cmfq.warehouse.remote_config import get_remote

    if "://" in remote or "/" in remote or Path(remote).is_dir():
        return open_remote(remote)
    return get_remote(Layout(warehouse_path(warehouse)).require(), remote).open()


def run() -> None:
    """Console-script entry point."""
    sys.exit(app())


def _register_commands() -> None:
    """Commands live in ``cmfq/cli/commands_<topic>.py`` modules; importing one registers its
    commands on ``app``. A new topic is a new module, with no list to update here."""
    import importlib
    import pkgutil

    import cmfq.cli

    for module in sorted(m.name for m in pkgutil.iter_modules(cmfq.cli.__path__) if m.name.startswith("commands_")):
        importlib.import_module(f"cmfq.cli.{module}")


_register_commands()
