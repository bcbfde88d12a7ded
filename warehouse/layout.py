"""Where things live inside a warehouse folder.

::

    <root>/
      cmfq.json                               # marker: format version, site name, remotes
      <table>/<pipeline folder>/<sha256>.parquet   # immutable partitions (see partition.py)
      _journal/<writer>.<seq>.jsonl           # crash-safe buffers of live or dead writers
      _cache/index.duckdb                     # local query index, rebuildable from partitions
      _quarantine/                            # bad files moved aside, never deleted
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmfq.errors import FormatVersionError, InvalidInputError, WarehouseError
from cmfq.warehouse.atomic import TMP_PREFIX, write_atomic
from cmfq.warehouse.partition import SUFFIX, PartitionName
from cmfq.warehouse.schema import FORMAT_VERSION, TABLES

MARKER = "cmfq.json"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def journal_dir(self) -> Path:
        return self.root / "_journal"

    @property
    def cache_dir(self) -> Path:
        return self.root / "_cache"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "_quarantine"

    def exists(self) -> bool:
        return self.marker.is_file()

    def path(self, name: PartitionName) -> Path:
        return self.root / str(name)

    def init(self, site: str) -> bool:
        """Create the warehouse if it does not exist; True when it was created."""
        if self.exists():
            self.check_version()
            return False
        if self.root.exists() and not self.root.is_dir():
            raise WarehouseError(f"{self.root} exists and is not a folder.", hint="Choose another path.")
        self.root.mkdir(parents=True, exist_ok=True)
        settings = {"format_version": FORMAT_VERSION, "site": site, "remotes": {}}
        return write_atomic(self.marker, _dumps(settings), exclusive=True)

    def require(self) -> Layout:
        """Raise a helpful error unless this is a warehouse of a version we can read."""
        if not self.exists():
            raise WarehouseError(
                f"No cmfq warehouse at {self.root}.",
                hint="Create one with `cmfq init`, run `cmfq demo`, or log with "
                "cmfq.Tracker(warehouse=...); choose another with --warehouse or CMFQ_WAREHOUSE.",
            )
        self.check_version()
        return self

    def settings(self) -> dict[str, Any]:
        try:
            data = json.loads(self.marker.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise WarehouseError(f"{self.marker} cannot be read ({exc}).",
                                 hint="Fix or restore that file; it is plain JSON.") from None
        if not isinstance(data, dict):
            raise WarehouseError(f"{self.marker} is not a JSON object.", hint="Restore that file.")
        return data

    def save_settings(self, settings: dict[str, Any]) -> None:
        write_atomic(self.marker, _dumps(settings))

    def check_version(self) -> None:
        version = self.settings().get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatVersionError(f"The warehouse at {self.root}", int(version or 0), FORMAT_VERSION)

    def partitions(self, tables: Iterable[str] | None = None, folder: str | None = None
                   ) -> Iterator[PartitionName]:
        """Every partition on disk, by listing folders (temp files and strangers skipped)."""
        for table in tables or TABLES:
            table_dir = self.root / table
            try:
                folders = [e.name for e in os.scandir(table_dir) if e.is_dir()]
            except FileNotFoundError:
                continue
            for f in folders if folder is None else [folder]:
                try:
                    entries = list(os.scandir(table_dir / f))
                except FileNotFoundError:
                    continue
                for e in entries:
                    if e.name.endswith(SUFFIX) and not e.name.startswith(TMP_PREFIX):
                        try:
                            yield PartitionName(table, f, e.name[: -len(SUFFIX)])
                        except InvalidInputError:
                            continue  # not ours; `cmfq verify` reports strangers


    def move_to_quarantine(self, name: PartitionName) -> Path | None:
        """Move the file of ``name`` to ``_quarantine/<same path>`` (``.1``, ``.2``... when
        one of that name is there already); None when it is gone already."""
        target = self.quarantine_target(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path(name), target)  # same file system: a rename, never a copy and delete
        except FileNotFoundError:
            return None  # another process quarantined (or compacted) it first
        return target

    def quarantine_target(self, name: PartitionName) -> Path:
        """A free path in quarantine for a file of ``name``: a second bad copy keeps the first."""
        target = candidate = self.quarantine_dir / str(name)
        n = 0
        while candidate.exists():
            n += 1
            candidate = target.with_name(f"{target.name}.{n}")
        return candidate

    def clean_temp(self, older_than_s: float = 3600) -> list[Path]:
        """Remove temp files of writes that died (kill -9 between write and rename); a live
        writer's temp file is seconds old, so anything older than an hour is debris."""
        import time

        cutoff = time.time() - older_than_s
        removed = []
        for table in TABLES:
            for dirpath, _dirs, files in os.walk(self.root / table):
                for f in files:
                    path = Path(dirpath) / f
                    if f.startswith(TMP_PREFIX) and path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
                        removed.append(path)
        return removed


def _dumps(settings: dict[str, Any]) -> bytes:
    return (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode()
