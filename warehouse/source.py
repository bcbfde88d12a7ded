"""Where an index loads partitions from: the local warehouse, or a remote read in place.

A source lists its partitions, vouches for them, and tells DuckDB where to read them. The
local source reads every file's bytes and checks hash, format version and schema before
DuckDB sees it. A remote source, queried in place, cannot hash a file without downloading
it: it trusts the listing, and DuckDB reads only the columns and row groups a query needs
(verification happens when files are pulled, or with ``cmfq verify --remote``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from cmfq.errors import PartitionError
from cmfq.warehouse import partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.quarantine import quarantined_error
from cmfq.warehouse.remote import Remote


class Source(ABC):
    @abstractmethod
    def partitions(self, tables: Iterable[str] | None = None) -> dict[PartitionName, int]:
        """Every partition (of these tables) with its size in bytes."""

    @abstractmethod
    def inspect(self, names: list[PartitionName]) -> tuple[list[partition.Inspected], list[PartitionError]]:
        """The partitions that may be loaded, and the problems of those that may not."""

    @abstractmethod
    def path(self, name: PartitionName) -> str:
        """Where DuckDB reads ``name``."""


class LocalSource(Source):
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def partitions(self, tables: Iterable[str] | None = None) -> dict[PartitionName, int]:
        out = {}
        for name in self.layout.partitions(tables):
            try:
                out[name] = self.layout.path(name).stat().st_size
            except FileNotFoundError:
                continue  # compacted away while we listed
        return out

    def inspect(self, names: list[PartitionName]) -> tuple[list[partition.Inspected], list[PartitionError]]:
        # sha256 and footer parsing release the GIL: two threads keep both cores busy.
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(self._inspect_one, names))
        return ([r for r in results if isinstance(r, partition.Inspected)],
                [r for r in results if isinstance(r, PartitionError)])

    def _inspect_one(self, name: PartitionName) -> partition.Inspected | PartitionError:
        try:
            data = self.layout.path(name).read_bytes()
        except OSError as exc:
            return PartitionError(str(name), f"cannot be read ({exc.strerror or exc})")
        try:
            return partition.inspect(name, data)
        except PartitionError as exc:
            # Damaged or tampered: moved aside so that every later read is not slowed (and
            # warned) by it again; the bytes are kept for whoever investigates.
            return quarantined_error(exc, self.layout.move_to_quarantine(name), self.layout)

    def path(self, name: PartitionName) -> str:
        return str(self.layout.path(name))


class RemoteSource(Source):
    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self._listing: dict[PartitionName, int] | None = None

    def partitions(self, tables: Iterable[str] | None = None) -> dict[PartitionName, int]:
        if self._listing is None:
            self.remote.check_format()
            self._listing = self.remote.list().partitions
        wanted = set(tables) if tables is not None else None
        return {n: s for n, s in self._listing.items() if wanted is None or n.table in wanted}

    def inspect(self, names: list[PartitionName]) -> tuple[list[partition.Inspected], list[PartitionError]]:
        return [partition.Inspected(n, 0, ()) for n in names], []

    def path(self, name: PartitionName) -> str:
        return self.remote.duckdb_path(name)
