"""One error tree for everything cmfq raises on purpose.

Every error carries a message that names the thing, and a ``hint`` that says what to do.
The CLI prints ``str(err)`` (message and hint) as one red line and exits 1; ``--debug``
shows the traceback. Attributes such as ``path`` stay machine-readable for the app and
for JSON output.
"""

from __future__ import annotations

from collections.abc import Sequence


class CmfqError(Exception):
    """Root of every error cmfq raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        sep = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{sep}{self.hint}"


class WarehouseError(CmfqError):
    """The warehouse folder is missing, unreadable or of an unknown format."""


class FormatVersionError(WarehouseError):
    """Data written by a newer cmfq than this one."""

    def __init__(self, what: str, found: int, supported: int) -> None:
        super().__init__(
            f"{what} has format version {found}, but this cmfq reads versions up to {supported}.",
            hint="Upgrade cmfq (pip install -U cmfq) to read it.",
        )
        self.found = found
        self.supported = supported


class PartitionError(WarehouseError):
    """A partition file whose bytes, name or schema cannot be trusted."""

    def __init__(self, path: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"{path}: {problem}.",
            hint=hint or "Run `cmfq verify` to check every partition; the others stay usable.",
        )
        self.path = path
        self.problem = problem


class StorageError(WarehouseError):
    """The operating system refused a read or write: permissions, a full disk, a bad path."""

    def __init__(self, message: str, *, hint: str, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.errno = errno

    @classmethod
    def from_os_error(cls, exc: OSError) -> StorageError:
        """The one line a user reads for an ``OSError``: what failed, on which file, what to do."""
        import errno as e

        where = f" ({exc.filename})" if exc.filename else ""
        code = exc.errno or 0
        if code in (e.EACCES, e.EPERM):
            hint = "Check the folder's owner and mode, or choose another warehouse with --warehouse."
        elif code in (e.ENOSPC, e.EDQUOT, e.EFBIG):
            hint = ("Free some space (or raise the quota) and run the command again; "
                    "calls that returned are kept in the journal and replayed.")
        elif code == e.EROFS:
            hint = "The file system is read-only: copy the warehouse somewhere writable to change it."
        elif code in (e.ENOTDIR, e.ENOENT, e.EISDIR, e.EEXIST):
            hint = "Check the path given with --warehouse or $CMFQ_WAREHOUSE."
        else:
            hint = "Check the disk and the path, then run the command again."
        reason = exc.strerror or str(exc) or type(exc).__name__
        return cls(f"{reason}{where}.", hint=hint, path=None if exc.filename is None else str(exc.filename),
                   errno=exc.errno)


class InvalidInputError(CmfqError):
    """A value given by the user that cmfq cannot accept (bad name, bad filter, bad option)."""


class NotFoundError(CmfqError):
    """No artifact, execution or pipeline matches what was asked for."""

    def __init__(self, what: str, ref: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"No {what} matches {ref!r}.",
            hint=hint or "List what exists with `cmfq artifacts` or `cmfq executions`.",
        )
        self.what = what
        self.ref = ref


class AmbiguousError(CmfqError):
    """A name or hash prefix that matches more than one thing."""

    def __init__(self, what: str, ref: str, candidates: Sequence[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" ..." if len(candidates) > 10 else "")
        super().__init__(
            f"{ref!r} matches {len(candidates)} {what}s: {shown}.",
            hint="Give a longer prefix or the full hash.",
        )
        self.what = what
        self.ref = ref
        self.candidates = list(candidates)


class QueryError(CmfqError):
    """A SQL statement that DuckDB refused."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message, hint=hint or "Run `cmfq sql \"SHOW TABLES\"` to see the views you can query."
        )


__all__ = [
    "AmbiguousError",
    "CmfqError",
    "FormatVersionError",
    "InvalidInputError",
    "NotFoundError",
    "PartitionError",
    "QueryError",
    "StorageError",
    "WarehouseError",
]
