"""`cmfq ui`: the Streamlit app on a warehouse (or a remote read in place)."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from cmfq.cli.main import WarehouseOpt, app, warehouse_of


@app.command()
def ui(
    ctx: typer.Context,
    warehouse: WarehouseOpt = None,
    remote: Annotated[str | None, typer.Option("--remote", "-r", help="Show a remote instead, read in place "
                                                                      "(a saved remote's name, a URL or a folder).")
                      ] = None,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1 keeps it on this machine).")
                    ] = "127.0.0.1",
) -> None:
    """Open the app: overview, executions, artifacts, lineage graph, model and dataset
    comparisons, deployments and an SQL console. Prints the URL to open.

    Example: `cmfq ui -w demo/.cmfq --port 8502`
    """
    from cmfq.cli.render import err
    from cmfq.config import ENV_UI_REMOTE, ENV_UI_REMOTE_OPTIONS, ENV_WAREHOUSE, warehouse_path
    from cmfq.warehouse.layout import Layout

    env = dict(os.environ)
    if remote is not None:
        from cmfq.warehouse.remote import open_remote
        from cmfq.warehouse.remote_config import get_remote

        if "://" in remote or "/" in remote or Path(remote).is_dir():
            url, options = remote, {}
            open_remote(url)  # refuse a bad URL now, not in the browser
        else:
            saved = get_remote(Layout(warehouse_path(warehouse_of(ctx, warehouse))).require(), remote)
            url, options = saved.url, saved.options
        env[ENV_UI_REMOTE] = url
        env[ENV_UI_REMOTE_OPTIONS] = json.dumps(options)
        shown = url
    else:
        layout = Layout(warehouse_path(warehouse_of(ctx, warehouse)).resolve()).require()
        env[ENV_WAREHOUSE] = str(layout.root)
        shown = str(layout.root)
    script = Path(str(resources.files("cmfq.app").joinpath("Overview.py")))
    err().print(f"cmfq app on {shown}: open http://{host}:{port}  (Ctrl-C to stop)", highlight=False)
    args = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
            "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--theme.base", "light", "--client.toolbarMode", "minimal"]
    sys.stdout.flush()
    os.execve(sys.executable, args, env)
