"""A partition: one immutable Parquet file named by the sha256 of its bytes.

Only this module knows how a partition path looks::

    <table>/<pipeline folder>/<sha256 of the file bytes>.parquet

The pipeline folder is a safe encoding of the pipeline name (percent-encoding, shortened
with a hash when long). It only groups files so that one pipeline can be listed, pushed or
pulled alone; readers never take the pipeline from the folder, the rows carry it. Two names
that share a folder are therefore harmless. The folder is deliberately not ``key=value``
(hive style): engines would then add a column named after it, shadowing the real one.

Readers never trust a name: :func:`decode` checks the bytes' hash, the format version, the
table and the schema before a single row is used.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from cmfq.errors import FormatVersionError, InvalidInputError, PartitionError
from cmfq.warehouse.schema import FORMAT_VERSION, TABLES, TableSpec

SUFFIX = ".parquet"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(r"[A-Za-z0-9_%~-][A-Za-z0-9_.%~-]{0,159}")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_MAX_FOLDER = 120
NO_PIPELINE = "_"

# A partition that declares more than this is refused before it is decoded (Parquet bomb).
MAX_ROWS = 50_000_000
MAX_UNCOMPRESSED_BYTES = 4 << 30

META_VERSION = b"cmfq.format_version"
META_TABLE = b"cmfq.table"
META_REPLACES = b"cmfq.replaces"


def pipeline_folder(pipeline: str | None) -> str:
    """The folder name for ``pipeline``: readable when it can be, never a path.

    >>> pipeline_folder("example-get-started")
    'example-get-started'
    >>> pipeline_folder("../etc")
    '%2E.%2Fetc'
    """
    if not pipeline:
        return NO_PIPELINE
    out = []
    for i, ch in enumerate(pipeline):
        if ch in _SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    folder = "".join(out)
    if len(folder) > _MAX_FOLDER:
        digest = hashlib.sha256(pipeline.encode("utf-8")).hexdigest()[:16]
        folder = folder[: _MAX_FOLDER - 17].rstrip("%0123456789ABCDEF") + "~" + digest
    return folder


@dataclass(frozen=True, order=True)
class PartitionName:
    """The relative path of a partition as a value: ``str()`` and :meth:`parse` round-trip."""

    table: str
    folder: str
    digest: str

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise InvalidInputError(f"Unknown table {self.table!r} in a partition name.")
        if not _FOLDER.fullmatch(self.folder):
            raise InvalidInputError(f"Unsafe pipeline folder {self.folder!r} in a partition name.")
        if not _DIGEST.fullmatch(self.digest):
            raise InvalidInputError(f"{self.digest!r} is not a sha256 hex digest.")

    def __str__(self) -> str:
        return f"{self.table}/{self.folder}/{self.digest}{SUFFIX}"

    @classmethod
    def parse(cls, relpath: str) -> PartitionName:
        """Parse ``table/folder/digest.parquet``; anything else (``..``, absolute paths,
        extra segments, backslashes) raises :class:`InvalidInputError`."""
        parts = relpath.split("/")
        if len(parts) != 3 or not parts[2].endswith(SUFFIX) or "\\" in relpath:
            raise InvalidInputError(
                f"{relpath!r} is not a partition path (expected <table>/<pipeline>/<sha256>.parquet)."
            )
        return cls(parts[0], parts[1], parts[2][: -len(SUFFIX)])

    @classmethod
    def for_bytes(cls, table: str, pipeline: str | None, data: bytes) -> PartitionName:
        return cls(table, pipeline_folder(pipeline), hashlib.sha256(data).hexdigest())


def encode(spec: TableSpec, rows: pa.Table, *, replaces: list[str] | None = None) -> bytes:
    """Serialize rows of ``spec`` as Parquet bytes carrying the format version.

    The bytes are deterministic for the same rows and library versions, so writing the same
    facts twice yields the same file name.
    """
    rows = rows.select(spec.columns).cast(spec.schema)
    meta = {META_VERSION: str(FORMAT_VERSION).encode(), META_TABLE: spec.name.encode()}
    if replaces:
        meta[META_REPLACES] = ",".join(replaces).encode()
    rows = rows.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(rows, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()


@dataclass(frozen=True)
class Inspected:
    """A partition whose bytes, version, table and schema were checked."""

    name: PartitionName
    num_rows: int
    replaces: tuple[str, ...]


@dataclass(frozen=True)
class Decoded:
    name: PartitionName
    rows: pa.Table
    replaces: tuple[str, ...]


def inspect(name: PartitionName, data: bytes, *, where: str | None = None) -> Inspected:
    """Check ``data`` against ``name`` without decoding its rows (only the footer is read).

    Raises :class:`PartitionError` naming the file for a hash mismatch, unreadable or
    truncated bytes, a wrong table or schema, or declared sizes beyond the limits;
    :class:`FormatVersionError` for a newer format.
    """
    return _inspect(name, data, where)[0]


def decode(name: PartitionName, data: bytes, *, where: str | None = None) -> Decoded:
    """:func:`inspect`, then the rows in the current schema."""
    inspected, pf = _inspect(name, data, where)
    try:
        rows = pf.read()
    except Exception as exc:
        raise PartitionError(where or str(name), f"cannot be decoded ({exc})") from None
    return Decoded(name, rows.cast(TABLES[name.table].schema), inspected.replaces)


def _inspect(name: PartitionName, data: bytes, where: str | None) -> tuple[Inspected, pq.ParquetFile]:
    label = where or str(name)
    actual = hashlib.sha256(data).hexdigest()
    if actual != name.digest:
        raise PartitionError(
            label,
            f"bytes hash to {actual[:12]}…, not to its name",
            hint="The file was changed or damaged after it was written. Run `cmfq verify`.",
        )
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PartitionError(label, f"not a readable Parquet file ({exc})") from None
    md = pf.metadata
    declared = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    if md.num_rows > MAX_ROWS or declared > MAX_UNCOMPRESSED_BYTES:
        raise PartitionError(label, f"declares {md.num_rows} rows / {declared} bytes, over the limits")
    kv = md.metadata or {}
    try:
        version = int(kv.get(META_VERSION, b"0"))
    except ValueError:
        version = 0
    if version > FORMAT_VERSION:
        raise FormatVersionError(label, version, FORMAT_VERSION)
    if version < 1:
        raise PartitionError(label, "has no cmfq format version; it was not written by cmfq")
    if kv.get(META_TABLE, b"").decode() != name.table:
        raise PartitionError(label, f"holds table {kv.get(META_TABLE, b'?').decode()!r}, not {name.table!r}")
    _check_schema(label, TABLES[name.table], pf.schema_arrow)
    replaces = tuple(r for r in kv.get(META_REPLACES, b"").decode().split(",") if r)
    return Inspected(name, md.num_rows, replaces), pf


def _check_schema(label: str, spec: TableSpec, schema: pa.Schema) -> None:
    got = {f.name: f.type for f in schema}
    want = {f.name: f.type for f in spec.schema}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    retyped = sorted(n for n in set(want) & set(got) if got[n] != want[n])
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if retyped:
        problems.append("retyped columns " + ", ".join(f"{n} ({got[n]} != {want[n]})" for n in retyped))
    if problems:
        raise PartitionError(label, "schema does not match table " + spec.name + ": " + "; ".join(problems))
