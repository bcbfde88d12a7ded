"""Where the warehouse is and who this site is, from options, environment and defaults."""

from __future__ import annotations

import os
import socket
from pathlib import Path

ENV_WAREHOUSE = "CMFQ_WAREHOUSE"
ENV_UI_REMOTE = "CMFQ_UI_REMOTE"  # set by `cmfq ui --remote`: the app reads that remote in place
ENV_UI_REMOTE_OPTIONS = "CMFQ_UI_REMOTE_OPTIONS"  # its saved options as JSON (never secrets)
ENV_SITE = "CMFQ_SITE"
DEFAULT_WAREHOUSE = ".cmfq"


def warehouse_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The warehouse folder: ``explicit``, else ``$CMFQ_WAREHOUSE``, else ``./.cmfq``."""
    chosen = explicit or os.environ.get(ENV_WAREHOUSE) or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser()


def default_site() -> str:
    """The name this machine's facts are stamped with: ``$CMFQ_SITE`` or the host name."""
    return os.environ.get(ENV_SITE) or socket.gethostname() or "local"
