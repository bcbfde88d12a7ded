"""Quarantine: damaged partitions are moved aside, never deleted, and can be repaired.

A partition that fails verification (bytes that do not hash to its name, a truncated or
foreign file, a wrong schema, a Parquet bomb) is moved to ``_quarantine/<its path>`` the
moment it is found, whether by a query, a pull or ``cmfq verify``. The warehouse keeps
answering from the other files, and the evidence stays on disk for whoever wants to look.

Repair needs no trust in the bad file: a partition's name is the hash of its good bytes, so
any remote holding bytes that hash to that name holds the good copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cmfq.errors import CmfqError, InvalidInputError, PartitionError
from cmfq.warehouse import partition
from cmfq.warehouse.atomic import write_atomic
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import SUFFIX, PartitionName

REPAIR_HINT = "Run `cmfq verify --repair` to fetch a good copy from a remote."


def keep_refused(layout: Layout, name: PartitionName, data: bytes) -> Path:
    """Keep bytes a pull refused, so that the damage can be examined here."""
    target = layout.quarantine_target(name)
    write_atomic(target, data)
    return target


def quarantined_error(exc: PartitionError, where: Path | None, layout: Layout, *,
                      pulled: bool = False) -> PartitionError:
    """``exc`` with a hint that says where the file went and what to do next."""
    if where is None:
        return exc
    rel = where.relative_to(layout.root).as_posix()
    if pulled:
        hint = (f"Refused; kept its bytes in {rel}. The remote's copy is bad: check it with "
                "`cmfq verify --remote`, and re-push it from a site that has a good one.")
    else:
        hint = f"Moved it to {rel} (never deleted). {REPAIR_HINT}"
    return PartitionError(exc.path, exc.problem, hint=hint)


def quarantined(layout: Layout) -> list[PartitionName]:
    """The partitions with a file in quarantine and none in the warehouse: what repair fetches."""
    out: set[PartitionName] = set()
    root = layout.quarantine_dir
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            rel = Path(dirpath, f).relative_to(root).as_posix()
            rel = rel[: rel.index(SUFFIX) + len(SUFFIX)] if SUFFIX in rel else rel
            try:
                name = PartitionName.parse(rel)
            except InvalidInputError:
                continue
            if not layout.path(name).exists():
                out.add(name)
    return sorted(out)


@dataclass
class RepairReport:
    repaired: list[PartitionName] = field(default_factory=list)
    failed: list[CmfqError] = field(default_factory=list)


def repair(names: list[PartitionName], read: Callable[[PartitionName], bytes],
           write: Callable[[PartitionName, bytes], object], source: str) -> RepairReport:
    """Copy each of ``names`` from where ``read`` gets it to where ``write`` puts it, after
    checking that the copy is good: from a remote into the warehouse (``cmfq verify
    --repair``) or from the warehouse onto a remote (``cmfq verify --remote R --repair``)."""
    report = RepairReport()
    for name in names:
        try:
            data = read(name)
        except FileNotFoundError:
            report.failed.append(PartitionError(
                str(name), f"{source} has no copy of it",
                hint="Repair from another place (--remote), or pull from the site that logged it."))
            continue
        except CmfqError as exc:
            report.failed.append(exc)
            continue
        try:
            partition.decode(name, data, where=f"{source}/{name}")  # the copy must be good too
        except CmfqError as exc:
            report.failed.append(exc)
            continue
        write(name, data)
        report.repaired.append(name)
    return report
