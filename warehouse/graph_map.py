"""The lineage graph as compressed adjacency arrays, kept in a file beside the index.

A walk in SQL (``cone_up``/``cone_down`` in sql/lineage.sql) costs one recursive step per
level, about 0.4 ms each: a model at the end of a 300-step chain takes 110 ms to walk up
from, however narrow the chain. The same walk over two sorted arrays per direction (for
node ``n``, its neighbours are ``next[start[n]:start[n + 1]]``, the CSR layout) is a few
numpy operations per level: under 10 ms.

The arrays are built from ``idx.lineage_graph``, read a batch at a time, spread over files by
range of node ids and sorted a range at a time, then written straight into files beside the
index (a graph of tens of millions of edges never sits in memory whole, and a command keeps
to its small DuckDB memory limit), and saved under ``_cache/graph-<stamp>/``, where the stamp
is the one the index writes with every change to the graph (sql/index_lineage.sql); they are
memory-mapped on use, so a one-shot command pays nothing to open them. A stale map is never read: the stamp names it. It is built only when an
SQL walk was slow (:data:`BUILD_AFTER_MS`), so warehouses whose walks are shallow never
spend the scan and sort (0.3 s for 1.5 M edges) and deep ones pay it once per change.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import duckdb
import numpy as np

#: An SQL walk slower than this builds the map, so that the next walks use it.
BUILD_AFTER_MS = 40.0
_ARRAYS = ("up_start", "up_next", "down_start", "down_next")
#: Edges per batch read from DuckDB while building, and per range of nodes sorted at once.
BATCH_EDGES = 1 << 18
SLICE_EDGES = 1 << 20
_EDGES = "FROM idx.lineage_graph WHERE parent IS NOT NULL AND child IS NOT NULL"


@dataclass(frozen=True)
class GraphMap:
    """For node ``n``: its parents are ``up_next[up_start[n]:up_start[n + 1]]`` and its
    children ``down_next[down_start[n]:down_start[n + 1]]``."""

    up_start: np.ndarray
    up_next: np.ndarray
    down_start: np.ndarray
    down_next: np.ndarray
    #: The folder the arrays were built in (memory-mapped from there), which save() renames.
    built_in: Path | None = field(default=None, compare=False)

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection) -> GraphMap:
        """Read every edge of the index's lineage graph (catalog ``idx``). Beside an index
        file the arrays are written into a folder next to it a batch at a time and
        memory-mapped: memory holds a batch and a count and an offset per node, not the
        20 M edges of a big warehouse. An in-memory index (a remote read in place, small)
        keeps them in memory."""
        (top,), = con.execute("SELECT coalesce(max(id), 0) FROM idx.nodes").fetchall()
        size = int(top) + 1
        index_file = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'idx'").fetchone()
        if not index_file or not index_file[0] or not Path(index_file[0]).is_file():
            cols = con.execute(f"SELECT parent, child {_EDGES}").fetchnumpy()
            parent = np.asarray(cols["parent"], dtype=np.int32)
            child = np.asarray(cols["child"], dtype=np.int32)
            return cls(*_compressed(child, parent, size), *_compressed(parent, child, size))
        built = Path(index_file[0]).parent / f".graph-build-{uuid.uuid4().hex}.tmp"
        built.mkdir()
        try:
            for direction, key, value in (("up", "child", "parent"), ("down", "parent", "child")):
                start = _offsets(con, key, size)
                with open(built / f"{direction}_start.npy", "wb") as out:
                    _npy_header(out, start.dtype.type, size + 1)
                    out.write(start.tobytes())
                with open(built / f"{direction}_next.npy", "wb") as out:
                    _npy_header(out, np.int32, int(start[-1]))
                    for values in _sorted_values(con, key, value, start, built):
                        out.write(values.tobytes())
                del start
            graph = cls.load(built)
        except BaseException:
            shutil.rmtree(built, ignore_errors=True)
            raise
        if graph is None:
            shutil.rmtree(built, ignore_errors=True)
            raise OSError(f"the lineage map built in {built} does not load")
        return cls(graph.up_start, graph.up_next, graph.down_start, graph.down_next, built_in=built)

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
            built = self.built_in
            if built is not None and built.is_dir() and built.parent.resolve() == folder.parent.resolve():
                os.rename(built, temp)  # written beside it already: nothing to copy (or to page in)
            else:
                temp.mkdir(parents=True)
                for name in _ARRAYS:
                    np.save(temp / f"{name}.npy", getattr(self, name))
                if built is not None:
                    shutil.rmtree(built, ignore_errors=True)
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


def _offsets(con: duckdb.DuckDBPyConnection, key: str, size: int) -> np.ndarray:
    """CSR offsets over node ids 0..size-1 of the edges grouped by ``key``: node ``n``'s run
    is ``start[n]:start[n + 1]``. 32-bit while the edges fit, as they always have so far."""
    (edges,), = con.execute(f"SELECT count(*) {_EDGES}").fetchall()
    start = np.zeros(size + 1, dtype=np.int32 if edges < 2**31 else np.int64)
    for batch in con.execute(f"SELECT {key} {_EDGES}").to_arrow_reader(BATCH_EDGES):
        nodes, counts = np.unique(batch.column(0).to_numpy(), return_counts=True)
        start[nodes + 1] += counts.astype(start.dtype)
    np.cumsum(start, out=start)
    return start


def _sorted_values(con: duckdb.DuckDBPyConnection, key: str, value: str, start: np.ndarray,
                   scratch: Path) -> Iterator[np.ndarray]:
    """The ``value`` of every edge in (``key``, ``value``) order, a range of keys at a time:
    one scan spreads the edges over files in ``scratch``, one per range of about SLICE_EDGES
    edges, and each file is sorted alone. (DuckDB sorting every edge at once does not fit the
    small memory limit of a one-shot command.)"""
    bounds = np.unique(np.searchsorted(start, np.arange(0, int(start[-1]), SLICE_EDGES), side="right") - 1)
    bounds = np.append(bounds, len(start) - 1)
    paths = [scratch / f"{key}-{i}.bin" for i in range(len(bounds) - 1)]
    files = [open(path, "wb") for path in paths]  # noqa: SIM115 - closed below; one per 1 M edges
    try:
        for batch in con.execute(f"SELECT {key}, {value} {_EDGES}").to_arrow_reader(BATCH_EDGES):
            pairs = np.empty((batch.num_rows, 2), dtype=np.int32)
            pairs[:, 0], pairs[:, 1] = batch.column(0).to_numpy(), batch.column(1).to_numpy()
            part = np.searchsorted(bounds, pairs[:, 0], side="right") - 1
            order = np.argsort(part, kind="stable")
            for i, rows in enumerate(np.split(order, np.searchsorted(part[order], np.arange(1, len(files))))):
                files[i].write(pairs[rows].tobytes())
    finally:
        for f in files:
            f.close()
    for path in paths:
        pairs = np.fromfile(path, dtype=np.int32).reshape(-1, 2)
        path.unlink()
        yield pairs[np.lexsort((pairs[:, 1], pairs[:, 0])), 1]


def _npy_header(out: BinaryIO, dtype: type, length: int) -> None:
    """The header of a .npy file of ``length`` values of ``dtype``; the values follow."""
    np.lib.format.write_array_header_1_0(
        out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (length,)})


def _compressed(key: np.ndarray, value: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the edges key -> value over node ids 0..size-1."""
    order = np.argsort(key, kind="stable")
    start = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=size), out=start[1:])
    return start, value[order]
