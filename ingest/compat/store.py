"""Where cmflib-style code logs: the warehouse that stands for cmflib's ``filepath``."""

from __future__ import annotations

import os
from pathlib import Path

from cmfq.config import DEFAULT_WAREHOUSE, ENV_WAREHOUSE


def warehouse_for(filepath: str | os.PathLike[str]) -> Path:
    """``$CMFQ_WAREHOUSE`` when set, else ``.cmfq`` in the folder of ``filepath`` (cmflib's
    ``mlmd`` file), so that ``Cmf("mlmd")``, ``CmfQuery("mlmd")`` and ``cmfq`` run in that folder
    all find the same warehouse."""
    env = os.environ.get(ENV_WAREHOUSE)
    if env:
        return Path(env).expanduser()
    return Path(filepath).expanduser().parent / DEFAULT_WAREHOUSE
