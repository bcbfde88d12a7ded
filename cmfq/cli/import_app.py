"""The ``cmfq import`` group, shared by every module that adds an importer.

Importers live in different ``commands_<topic>.py`` modules (``mlmd``, ``cmf-json``, ``mlflow``
and ``openlineage`` in ``commands_interop``, ``dvc`` in ``commands_import_dvc``); each does::

    from cmfq.cli.import_app import import_app

    @import_app.command("dvc")
    def import_dvc(...): ...

This module registers the group on the main app when it is first imported, so the group
exists once however many modules add to it, and in whatever order they are discovered.
"""

from __future__ import annotations

import typer

from cmfq.cli.main import app

import_app = typer.Typer(
    name="import",
    help="Import history from other tools into the warehouse: a cmflib/ML Metadata store, a CMF JSON "
    "export, an MLflow tracking store, OpenLineage events, DVC pipelines (`cmfq import dvc . --history`)."
    "\n\nImporting the same source again adds nothing; a malformed record stops the import with its name, "
    "and nothing of it is written.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
