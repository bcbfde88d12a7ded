"""cmfq: an analytics-first, columnar metadata warehouse for ML and data pipelines.

Log with :class:`Tracker` or the :func:`track` decorator, query with :class:`Warehouse` (or plain DuckDB SQL, or the
``cmfq`` command). Importing ``cmfq`` is cheap: the logging path loads pyarrow only, and the
query stack (duckdb, polars) loads when a :class:`Warehouse` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cmfq.errors import CmfqError

__version__ = "0.1.0"
__all__ = ["CmfqError", "Execution", "Tracker", "Warehouse", "__version__", "track"]

if TYPE_CHECKING:
    from cmfq.ingest.decorator import track
    from cmfq.ingest.tracker import Execution, Tracker
    from cmfq.warehouse.query import Warehouse

_LAZY = {
    "Tracker": "cmfq.ingest.tracker",
    "Execution": "cmfq.ingest.tracker",
    "Warehouse": "cmfq.warehouse.query",
    "track": "cmfq.ingest.decorator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmfq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
