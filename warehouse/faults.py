"""Named crash points, for the crash tests only.

The torture tests (tests/reliability/) must kill a process at moments a random timer almost
never hits: between a Parquet file's write and its rename, after a compacted file is written
but before its inputs are deleted. Product code marks those moments with :func:`point`.

Unless ``CMFQ_FAULT`` is set, a point is one dictionary lookup and nothing else. With
``CMFQ_FAULT=<name>`` (or ``<name>:<n>``, the n-th time that point is reached) the process
stops itself with SIGSTOP there, so the test that started it sees it frozen at that exact
line and ends it with SIGKILL: the same thing a power cut or ``kill -9`` does to a process.
"""

from __future__ import annotations

import os
import signal

ENV = "CMFQ_FAULT"

#: Every point the code marks (the tests iterate over these; a typo in one is caught there).
POINTS = (
    "atomic.before_rename",  # temp file written and fsynced, not yet renamed to its name
    "atomic.before_dir_fsync",  # renamed, directory not yet fsynced
    "writer.before_journal_drop",  # partitions durable, journal segment not yet deleted
    "compact.after_write",  # compacted file written, no input deleted yet
    "compact.mid_delete",  # the first input deleted, the others not yet
    "sync.after_send",  # one partition pushed or pulled, the others not yet
)

_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Stop this process here if ``CMFQ_FAULT`` names this point (see the module docstring)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGSTOP)
