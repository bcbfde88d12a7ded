"""The ``cmfq import`` group, shared by every importer.

Each source lives in its own ``commands_<topic>.py`` module and adds a subcommand here with
``@import_app.command("<source>")`` (``cmfq import dvc``, ...). Keeping the group in this
one module, registered once on import, means no importer module owns it and none has to
look for it: Python's module cache makes ``app.add_typer`` run exactly once.
"""

from __future__ import annotations

import typer

from cmfq.cli.main import app

import_app = typer.Typer(
    help="Import runs recorded by other tools into the warehouse, one subcommand per source.\n\n"
    "Example: `cmfq import dvc . --history`",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
