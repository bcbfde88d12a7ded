"""The lineage graph as compressed adjacency arrays, kept in a file beside the index.

A walk in SQL (``cone_up``/``cone_down`` in sql/lineage.sql) costs one recursive step per
level, about 0.4 ms each: a model at the end of a 300-step chain takes 110 ms to walk up
from, however narrow the chain. The same walk over two sorted arrays per direction (for
node ``n``, its neighbours are ``next[start[n]:start[n + 1]]``, the CSR layout) is a few
numpy operations per level: under 10 ms.

The arrays are built from ``idx.lineage_graph`` (one scan and a sort) and saved under
``_cache/graph-<stamp>/``, where the stamp is the one the index writes with every change to
the graph (sql/index_lineage.sql); they are memory-mapped on use, so a one-shot command pays
nothing to open them. A stale map is never read: the stamp names it. It is built only when an
SQL walk was slow (:data:`BUILD_AFTER_MS`), so warehouses whose walks are shallow never
spend the scan and sort (0.3 s for 1.5 M edges) and deep ones pay it once per change.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np

#: An SQL walk slower than this builds the map, so that the next walks use it.
BUILD_AFTER_MS = 40.0
_ARRAYS = ("up_start", "up_next", "down_start", "down_next")


@dataclass(frozen=True)
class GraphMap:
    """For node ``n``: its parents are ``up_next[up_start[n]:up_start[n + 1]]`` and its
    children ``down_next[down_start[n]:down_start[n + 1]]``."""

    up_start: np.ndarray
    up_next: np.ndarray
    down_start: np.ndarray
    down_next: np.ndarray

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection) -> GraphMap:
        """Read every edge of the index's lineage graph (catalog ``idx``)."""
        cols = con.execute("SELECT parent, child FROM idx.lineage_graph "
                           "WHERE parent IS NOT NULL AND child IS NOT NULL").fetchnumpy()
        parent = np.asarray(cols["parent"], dtype=np.int32)
        child = np.asarray(cols["child"], dtype=np.int32)
        (top,), = con.execute("SELECT coalesce(max(id), 0) FROM idx.nodes").fetchall()
        size = int(top) + 1
        up_start, up_next = _compressed(child, parent, size)
        down_start, down_next = _compressed(parent, child, size)
        return cls(up_start, up_next, down_start, down_next)

    @classmethod
    def load(cls, folder: Path) -> GraphMap | None:
        """The map saved in ``folder``, memory-mapped; None when there is none (or it is
        unreadable: the caller walks in SQL and builds a new one)."""
        try:
            return cls(*(np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS))
        except (OSError, ValueError):
            return None

    def save(self, folder: Path) -> None:
        """Write to ``folder`` atomically (a temporary sibling renamed into place) and remove
        the maps of older stamps beside it. Best effort: the map is a cache."""
        temp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.mkdir(parents=True)
            for name in _ARRAYS:
                np.save(temp / f"{name}.npy", getattr(self, name))
            if folder.exists() and GraphMap.load(folder) is None:
                shutil.rmtree(folder)  # a damaged copy (one that loads is another process's, as good)
            os.rename(temp, folder)
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)  # e.g. another process saved it first
            return
        for old in folder.parent.glob("graph-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def cone(self, direction: Literal["up", "down"], start: int, max_depth: int | None) -> dict[int, int]:
        """Depth of every node up or downstream of ``start`` (start excluded), level by level."""
        offsets, targets = (self.up_start, self.up_next) if direction == "up" else (self.down_start, self.down_next)
        nodes = len(offsets) - 1
        if not 0 <= start < nodes:
            return {}
        seen = np.zeros(nodes, dtype=bool)
        seen[start] = True
        frontier = np.array([start], dtype=np.int64)
        found: list[np.ndarray] = []
        level = 0
        while frontier.size and (max_depth is None or level < max_depth):
            level += 1
            lo, hi = offsets[frontier], offsets[frontier + 1]
            counts = hi - lo
            total = int(counts.sum())
            if total == 0:
                break
            # Every neighbour of the frontier in one gather: the runs lo[i]..hi[i] laid end to end.
            within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            reached = np.asarray(targets[np.repeat(lo, counts) + within])
            reached = np.unique(reached[~seen[reached]])
            seen[reached] = True
            found.append(reached)
            frontier = reached.astype(np.int64)
        depth: dict[int, int] = {}
        for at, level_nodes in enumerate(found, start=1):
            depth.update(dict.fromkeys(level_nodes.tolist(), at))
        return depth


def folder(cache_dir: Path, stamp: str) -> Path:
    """Where the map of the graph with this stamp lives."""
    return cache_dir / f"graph-{stamp}"


def _compressed(key: np.ndarray, value: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the edges key -> value over node ids 0..size-1."""
    order = np.argsort(key, kind="stable")
    start = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=size), out=start[1:])
    return start, value[order]
