"""Deterministic identities for facts imported from other systems.

An import must give the same ids every time it reads the same source, so that importing
twice writes byte-identical partitions (same content hash: no new file) and the views see
one fact. Executions get ``uuid5(NAMESPACE, "<source>:<source id>")`` unless the source
already has a UUID for them (an MLflow run id, an OpenLineage run id, CMF's
``Execution_uuid``), which is then kept as is.

Artifacts are identified by content hash. When a source has none (an MLflow dataset without
digest, an OpenLineage dataset without a hash facet, a CMF metrics artifact), the id is the
md5 of a namespaced identity, e.g. ``md5("openlineage:s3://bucket/raw.csv")``: 32 hex digits
like a DVC hash, stable across imports and sites, and never equal to the hash of real
content in practice. The original identity is kept in the artifact's properties.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from cmfq.ingest.hashing import is_md5

#: The uuid5 namespace of every execution id cmfq derives from another system's ids.
NAMESPACE = uuid.UUID("4f1c7a52-9d0e-5b8a-a3c4-6e2f1d9b7c30")


def execution_id(source: str, source_id: str) -> str:
    """``uuid5(NAMESPACE, "<source>:<source_id>")`` as text."""
    return str(uuid.uuid5(NAMESPACE, f"{source}:{source_id}"))


def uuid_or_derived(value: str, source: str) -> str:
    """``value`` as a canonical UUID string when it is one (with or without dashes), else an
    id derived from it with :func:`execution_id`."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return execution_id(source, str(value))


def identity_hash(scheme: str, identity: str) -> str:
    """The artifact id of something known only by name: ``md5("<scheme>:<identity>")``."""
    return hashlib.md5(f"{scheme}:{identity}".encode()).hexdigest()


def content_hash_or_none(value: object) -> str | None:
    """``value`` when it is a DVC-compatible md5 (``<32 hex>`` or ``<32 hex>.dir``), else None."""
    if isinstance(value, str) and is_md5(value.strip().lower()):
        return value.strip().lower()
    return None


def ms_to_us(ms: int | float | None) -> int | None:
    """Milliseconds since the epoch (MLMD, MLflow) to the warehouse's microseconds."""
    return None if ms is None else int(ms) * 1000


def iso_to_us(text: str) -> int:
    """An ISO 8601 date-time (``Z`` or an offset; a naive one is taken as UTC) to microseconds
    since the epoch. Raises ValueError for anything else."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Java producers write nanoseconds; Python reads at most microseconds.
    if "." in value:
        head, _, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if digits > 6:
            value = head + "." + rest[:6] + rest[digits:]
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_iso(us: int) -> str:
    """Microseconds since the epoch to ISO 8601 in UTC with a ``Z``, e.g. ``2026-11-23T10:00:00.000123Z``."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
