"""Execution ids: UUIDv7, time-ordered and unique across sites without coordination."""

from __future__ import annotations

import os
import time
import uuid


def uuid7(unix_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) string: 48 bits of Unix milliseconds, then 74 random bits.

    Sorting the strings sorts by creation time to the millisecond, which keeps partitions
    and the index roughly in time order.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def uuid7_time_ms(value: str) -> int:
    """The Unix milliseconds embedded in a UUIDv7 string."""
    return uuid.UUID(value).int >> 80
