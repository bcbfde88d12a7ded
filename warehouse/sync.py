"""Sync: push missing partitions to a remote, pull missing ones back. Nothing else.

Partitions are immutable and named by their content, so sync needs no coordination:
``push`` lists the remote once and uploads what it lacks (create-only, so concurrent
pushers never overwrite each other, and a re-push writes nothing), ``pull`` downloads what
the local warehouse lacks and verifies each file's hash and schema before it enters. Either
can be interrupted at any point and simply run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TypeVar

from cmfq.errors import CmfqError, FormatVersionError, PartitionError
from cmfq.warehouse import faults, partition
from cmfq.warehouse.atomic import write_atomic
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.quarantine import REPAIR_HINT, keep_refused, quarantined_error
from cmfq.warehouse.remote import Remote, RemoteError

Progress = Callable[[int, int], None]
T = TypeVar("T")

WORKERS = 16
ATTEMPTS = 3


@dataclass
class SyncReport:
    files: int = 0  # sent or received
    bytes: int = 0
    skipped: int = 0  # already on the other side
    planned: list[PartitionName] = field(default_factory=list)  # --dry-run
    failed: list[CmfqError] = field(default_factory=list)
    failed_names: set[PartitionName] = field(default_factory=set)
    foreign: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Status:
    local_only: list[PartitionName]
    remote_only: list[PartitionName]
    both: int
    foreign: list[str]


@dataclass
class VerifyReport:
    checked: int = 0
    bad: list[CmfqError] = field(default_factory=list)  # damaged (quarantined) or of a newer format
    bad_names: list[PartitionName] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    temp_removed: int = 0


def push(layout: Layout, remote: Remote, *, folder: str | None = None, dry_run: bool = False,
         progress: Progress | None = None, workers: int = WORKERS) -> SyncReport:
    """Upload the local partitions the remote lacks (of one pipeline folder, or all)."""
    started = time.perf_counter()
    remote.check_format()
    listing = remote.list(folder)
    local = sorted(layout.partitions(folder=folder))
    missing = [n for n in local if n not in listing.partitions]
    report = SyncReport(skipped=len(local) - len(missing), foreign=listing.foreign)
    if dry_run:
        report.planned = missing
        report.seconds = time.perf_counter() - started
        return report
    if missing:
        remote.ensure_marker()

    def send(name: PartitionName) -> int:
        data = layout.path(name).read_bytes()
        partition.inspect(name, data)  # a damaged local file must not spread
        _retry(lambda: remote.write(name, data))
        faults.point("sync.after_send")
        return len(data)

    _run(missing, send, report, progress, workers)
    _check_sizes(layout, remote, folder, missing, report)
    report.seconds = time.perf_counter() - started
    return report


def _check_sizes(layout: Layout, remote: Remote, folder: str | None, sent: list[PartitionName],
                 report: SyncReport) -> None:
    """After the uploads, one listing confirms every file arrived whole (one request for all
    files instead of one per file)."""
    sent = [n for n in sent if n not in report.failed_names]
    if not sent:
        return
    after = remote.list(folder).partitions
    for name in sent:
        want = layout.path(name).stat().st_size
        if after.get(name) != want:
            report.files -= 1
            report.bytes -= want
            report.failed.append(RemoteError(
                f"{remote.url}/{name}: holds {after.get(name)} bytes after upload, expected {want}.",
                hint="Run the push again; if it persists, `cmfq verify --remote`."))


def pull(layout: Layout, remote: Remote, *, folder: str | None = None, progress: Progress | None = None,
         workers: int = WORKERS) -> SyncReport:
    """Download the remote partitions the local warehouse lacks, verifying each one."""
    started = time.perf_counter()
    remote.check_format()
    listing = remote.list(folder)
    local = set(layout.partitions(folder=folder))
    missing = sorted(n for n in listing.partitions if n not in local)
    report = SyncReport(skipped=len(listing.partitions) - len(missing), foreign=listing.foreign)

    vanished: list[PartitionName] = []

    def fetch(name: PartitionName) -> int:
        try:
            data = _retry(lambda: remote.read(name))
        except FileNotFoundError:
            # Compacted away since the listing: its rows are in the file that replaced it,
            # which the next pull brings.
            vanished.append(name)
            return 0
        try:
            partition.inspect(name, data, where=f"{remote.url}/{name}")  # hash and schema, before use
        except PartitionError as exc:
            raise quarantined_error(exc, keep_refused(layout, name, data), layout, pulled=True) from None
        write_atomic(layout.path(name), data, exclusive=True)
        faults.point("sync.after_send")
        return len(data)

    _run(missing, fetch, report, progress, workers)
    report.files -= len(vanished)
    report.skipped += len(vanished)
    report.seconds = time.perf_counter() - started
    return report


def status(layout: Layout, remote: Remote) -> Status:
    listing = remote.list()
    local = set(layout.partitions())
    remote_names = set(listing.partitions)
    return Status(sorted(local - remote_names), sorted(remote_names - local), len(local & remote_names),
                  listing.foreign)


def verify(layout: Layout | None = None, remote: Remote | None = None, *, progress: Progress | None = None,
           workers: int = WORKERS) -> VerifyReport:
    """Check every partition's hash, format version, schema and readability (local or remote).

    A damaged file is moved to ``_quarantine/`` where it lies (never deleted), so that the
    rest keeps answering; a file of a newer format is reported and left in place.
    """
    report = VerifyReport()
    if remote is not None:
        listing = remote.list()
        names = sorted(listing.partitions)
        report.foreign = listing.foreign
        where, load, aside = remote.url, remote.read, remote.quarantine
        fix = ("`cmfq push` from a site with a good copy restores it "
               "(`cmfq verify --remote NAME --repair` checks and restores in one go).")
    else:
        assert layout is not None
        report.temp_removed = len(layout.clean_temp())
        names = sorted(layout.partitions())
        where, aside, fix = str(layout.root), layout.move_to_quarantine, REPAIR_HINT

        def load(name: PartitionName) -> bytes:
            return layout.path(name).read_bytes()

    def check(name: PartitionName) -> int:
        try:
            data = _retry(lambda: load(name))
        except FileNotFoundError:
            return 0  # compacted away since the listing
        try:
            partition.decode(name, data, where=f"{where}/{name}")  # rows too: truly readable
        except PartitionError as exc:
            moved = aside(name)
            raise PartitionError(exc.path, exc.problem, hint=f"Moved it to {moved} (never deleted). {fix}"
                                 if moved else exc.hint) from None
        return 0

    sync = SyncReport()
    _run(names, check, sync, progress, workers)
    report.checked = len(names)
    report.bad = [e for e in sync.failed if isinstance(e, PartitionError | FormatVersionError)]
    report.bad_names = sorted(sync.failed_names)
    for e in sync.failed:
        if e not in report.bad:
            raise e
    return report


def _run(names: Iterable[PartitionName], work: Callable[[PartitionName], int], report: SyncReport,
         progress: Progress | None, workers: int) -> None:
    """Do ``work`` for every name in parallel; one file's failure never stops the others,
    but a remote that is down (every file failing the same way) stops the run early."""
    names = list(names)
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, n): n for n in names}
        try:
            for future in as_completed(futures):
                done += 1
                try:
                    size = future.result()
                except (PartitionError, FormatVersionError, RemoteError) as exc:
                    report.failed.append(exc)
                    report.failed_names.add(futures[future])
                    if isinstance(exc, RemoteError) and _remote_down(report.failed):
                        raise exc from None
                else:
                    report.files += 1
                    report.bytes += size
                if progress:
                    progress(done, len(names))
        finally:
            for f in futures:
                f.cancel()


def _remote_down(failed: list[CmfqError]) -> bool:
    """Denied access stops at once; a remote still failing after retries, three files in
    a row, is down."""
    last = failed[-1]
    if isinstance(last, RemoteError) and last.fatal:
        return True
    recent = failed[-3:]
    return len(recent) == 3 and all(isinstance(e, RemoteError) and e.transient for e in recent)


def _retry(call: Callable[[], T]) -> T:
    """Retry transient remote errors (timeouts, 5xx, throttling) with backoff; never a hash
    mismatch or a permission error."""
    delay = 0.2
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except RemoteError as exc:
            if not exc.transient or attempt == ATTEMPTS:
                raise
            time.sleep(delay)
            delay *= 4
    raise AssertionError("unreachable")
