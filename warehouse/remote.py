"""Remotes: where warehouses meet. A folder, ``s3://bucket/prefix``, or any fsspec URL.

A remote has the same layout as a warehouse (``<table>/<pipeline folder>/<sha256>.parquet``)
and no server: sync is listing, copying missing files, and deleting compacted ones. Every
name read from a remote is parsed as a :class:`~cmfq.warehouse.partition.PartitionName`, so
objects such as ``../x`` or absolute paths are never followed; they are reported as foreign.

Credentials never enter the warehouse: S3 takes them from the standard AWS environment,
config files and profiles (boto's chain); a remote's saved options may name an endpoint,
region or profile, but not a key.
"""

from __future__ import annotations

import errno
import json
import os
import re
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cmfq.errors import CmfqError, FormatVersionError, InvalidInputError
from cmfq.warehouse.atomic import write_atomic
from cmfq.warehouse.layout import MARKER, Layout
from cmfq.warehouse.partition import SUFFIX, PartitionName
from cmfq.warehouse.schema import FORMAT_VERSION, TABLES

#: Option names a remote may save in cmfq.json. Anything secret comes from the environment.
SAFE_OPTIONS = {"endpoint_url", "region", "profile", "anon"}
_SECRETISH = re.compile(r"key|secret|token|password|credential|session", re.I)
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
#: Seconds to wait for a stalled S3 server to answer (a slow link may need more).
ENV_READ_TIMEOUT = "CMFQ_REMOTE_TIMEOUT"


class RemoteError(CmfqError):
    """A remote could not be reached, read or written."""

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False,
                 fatal: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient  # worth retrying: timeouts, 5xx, throttling
        self.fatal = fatal  # no file will fare better: access denied, no such bucket


@dataclass(frozen=True)
class Listing:
    """What a remote holds: its partitions with sizes, and objects that are not ours."""

    partitions: dict[PartitionName, int]
    foreign: list[str] = field(default_factory=list)


class Remote(ABC):
    """One interface for every kind of remote; names are partition paths."""

    url: str

    @abstractmethod
    def list(self, folder: str | None = None) -> Listing:
        """Every partition (optionally of one pipeline folder) with its size in bytes."""

    @abstractmethod
    def read(self, name: PartitionName) -> bytes:
        """The bytes of ``name``; FileNotFoundError when it is gone (e.g. compacted)."""

    @abstractmethod
    def write(self, name: PartitionName, data: bytes) -> bool:
        """Create ``name`` with ``data``; False when it exists already (never overwrites)."""

    @abstractmethod
    def size(self, name: PartitionName) -> int | None:
        """Size of ``name`` in bytes, None when it is absent."""

    @abstractmethod
    def delete(self, name: PartitionName) -> None: ...

    @abstractmethod
    def quarantine(self, name: PartitionName) -> str | None:
        """Move ``name`` to ``_quarantine/`` on the remote (moved aside, never deleted);
        returns where it went, None when it is gone already."""

    @abstractmethod
    def read_marker(self) -> dict[str, Any] | None: ...

    @abstractmethod
    def write_marker(self, data: dict[str, Any]) -> None: ...

    def check_format(self) -> None:
        """Refuse a remote written by a newer cmfq."""
        marker = self.read_marker()
        version = (marker or {}).get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatVersionError(f"The remote {self.url}", int(version or 0), FORMAT_VERSION)

    def ensure_marker(self) -> None:
        if self.read_marker() is None:
            self.write_marker({"format_version": FORMAT_VERSION})

    def duckdb_path(self, name: PartitionName) -> str:
        """The path DuckDB reads ``name`` at (a local path or an s3:// URL)."""
        raise NotImplementedError


class FolderRemote(Remote):
    """A remote that is a folder: a shared disk, a mounted bucket, or a local test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self._layout = Layout(root)

    def list(self, folder: str | None = None) -> Listing:
        if not self.root.is_dir():
            return Listing({})
        return Listing({n: self._layout.path(n).stat().st_size for n in self._layout.partitions(folder=folder)
                        if self._layout.path(n).exists()}, _foreign_files(self.root))

    def read(self, name: PartitionName) -> bytes:
        return self._layout.path(name).read_bytes()

    def write(self, name: PartitionName, data: bytes) -> bool:
        return write_atomic(self._layout.path(name), data, exclusive=True)

    def size(self, name: PartitionName) -> int | None:
        try:
            return self._layout.path(name).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, name: PartitionName) -> None:
        self._layout.path(name).unlink(missing_ok=True)

    def quarantine(self, name: PartitionName) -> str | None:
        moved = self._layout.move_to_quarantine(name)
        return None if moved is None else str(moved)

    def read_marker(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / MARKER).read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RemoteError(f"{self.root / MARKER} cannot be read ({exc}).") from None
        return data if isinstance(data, dict) else None

    def write_marker(self, data: dict[str, Any]) -> None:
        write_atomic(self.root / MARKER, json.dumps(data).encode(), exclusive=True)

    def duckdb_path(self, name: PartitionName) -> str:
        return str(self._layout.path(name))


class FsspecRemote(Remote):
    """A remote behind an fsspec filesystem: s3:// through s3fs, or any other protocol
    that can list, put and get."""

    def __init__(self, url: str, fs: Any, root: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs = fs
        self.options = dict(options or {})
        self.root = root.rstrip("/")
        self.protocol = urlparse(url).scheme

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def list(self, folder: str | None = None) -> Listing:
        base = self.root
        found: dict[PartitionName, int] = {}
        foreign: list[str] = []
        prefixes = [f"{self._path(t)}/{folder}" if folder else self._path(t) for t in TABLES]

        def find(prefix: str) -> dict[str, dict[str, Any]]:
            try:
                return dict(self.fs.find(prefix, detail=True, withdirs=False))
            except FileNotFoundError:
                return {}

        entries: dict[str, dict[str, Any]] = {}
        try:
            # One listing per table, side by side: object stores page listings 1,000 keys at a
            # time, so 10,000 partitions are ten round trips one after another otherwise.
            with ThreadPoolExecutor(max_workers=len(prefixes)) as pool:
                for found_here in pool.map(find, prefixes):
                    entries.update(found_here)
        except Exception as exc:  # noqa: BLE001 - every transport error becomes a RemoteError
            raise _remote_error(self.url, "list", exc) from None
        for path, info in entries.items():
            rel = path[len(base) + 1 :] if path.startswith(base + "/") else path
            if not rel.endswith(SUFFIX) or "/.tmp-" in rel:
                continue
            try:
                found[PartitionName.parse(rel)] = int(info.get("size") or 0)
            except InvalidInputError:
                foreign.append(rel)
        return Listing(found, foreign)

    def read(self, name: PartitionName) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(str(name))))
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, f"read {name}", exc) from None

    def write(self, name: PartitionName, data: bytes) -> bool:
        path = self._path(str(name))
        try:
            if self.protocol == "s3":
                self.fs.pipe_file(path, data, mode="create")  # S3 conditional put (If-None-Match)
            else:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno == errno.EINVAL and "precondition" in str(exc).lower():
                return False  # some S3 servers report the failed condition without naming it
            raise _remote_error(self.url, f"write {name}", exc) from None
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, f"write {name}", exc) from None

    def size(self, name: PartitionName) -> int | None:
        try:
            return int(self.fs.info(self._path(str(name)))["size"])
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, f"check {name}", exc) from None

    def delete(self, name: PartitionName) -> None:
        try:
            self.fs.rm_file(self._path(str(name)))
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, f"delete {name}", exc) from None

    def quarantine(self, name: PartitionName) -> str | None:
        source = self._path(str(name))
        target = candidate = self._path(f"_quarantine/{name}")  # outside every table: never listed
        try:
            n = 0
            while self.fs.exists(candidate):
                n += 1
                candidate = f"{target}.{n}"
            self.fs.copy(source, candidate)  # object stores cannot rename: copy, then delete
            self.fs.rm_file(source)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, f"quarantine {name}", exc) from None
        return f"{self.protocol}://{candidate}"

    def read_marker(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.fs.cat_file(self._path(MARKER)))
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, "read its marker", exc) from None
        return data if isinstance(data, dict) else None

    def write_marker(self, data: dict[str, Any]) -> None:
        try:
            self.fs.pipe_file(self._path(MARKER), json.dumps(data).encode())
        except Exception as exc:  # noqa: BLE001
            raise _remote_error(self.url, "write its marker", exc) from None

    def duckdb_path(self, name: PartitionName) -> str:
        return f"{self.protocol}://{self._path(str(name))}"


def open_remote(url: str, options: dict[str, Any] | None = None) -> Remote:
    """The remote at ``url`` (a folder path, ``file://``, ``s3://bucket/prefix``, or any
    fsspec URL), with saved ``options`` (endpoint_url, region, profile, anon)."""
    options = dict(options or {})
    check_options(options)
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or re.fullmatch(r"[A-Za-z]", parsed.scheme or ""):
        path = Path(parsed.path if parsed.scheme == "file" else url).expanduser()
        return FolderRemote(path.resolve())
    # A signed or keyed URL (?X-Amz-Signature=..., ?secret=...) would be saved in cmfq.json.
    if parsed.username or parsed.password or (parsed.query and _SECRETISH.search(parsed.query)):
        raise InvalidInputError("Remote URLs must not contain credentials.",
                                hint="Use the AWS environment, config files or a profile instead.")
    if parsed.scheme == "s3":
        return FsspecRemote(url, _s3fs(options), f"{parsed.netloc}{parsed.path}", options)
    try:
        import fsspec

        fs = fsspec.filesystem(parsed.scheme, **options)
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(f"No filesystem for {parsed.scheme!r} URLs ({exc}).",
                                hint="Use a folder path, file://, s3://, or install the fsspec backend.") from None
    return FsspecRemote(url, fs, f"{parsed.netloc}{parsed.path}", options)


def check_options(options: dict[str, Any]) -> None:
    for key in options:
        if _SECRETISH.search(key):
            raise InvalidInputError(f"Remote option {key!r} looks like a secret; cmfq never stores secrets.",
                                    hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or use --profile.")


def _s3fs(options: dict[str, Any]) -> Any:
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if options.get("endpoint_url"):
        client_kwargs["endpoint_url"] = options["endpoint_url"]
    if options.get("region"):
        client_kwargs["region_name"] = options["region"]
    kwargs: dict[str, Any] = {
        "client_kwargs": client_kwargs,
        # Bounded: an unreachable endpoint fails in seconds, not after minutes of retries.
        "config_kwargs": {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": float(os.environ.get(ENV_READ_TIMEOUT) or READ_TIMEOUT_S),
                          "retries": {"max_attempts": 2, "mode": "standard"}},
        "skip_instance_cache": True,
        # No cached listings: in a long-lived process (the app, a sync loop) a cached listing
        # makes files other sites pushed since look absent, and reading them fail.
        "use_listings_cache": False,
    }
    if options.get("profile"):
        kwargs["profile"] = options["profile"]
    if options.get("anon"):
        kwargs["anon"] = True
    fs = s3fs.S3FileSystem(**kwargs)
    fs.retries = 2  # s3fs's own retry loop (default 5, with waits up to 15 s); ours is in sync.py
    return fs


# An HTTP 403 status, not the digits 403 inside a port or a hash ("127.0.0.1:40341" once read as one).
_HTTP_403 = re.compile(r"(?<![:\w])403(?!\w)")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeout", "Could not connect")


def _remote_error(url: str, action: str, exc: BaseException) -> RemoteError:
    text = _one_line(exc)
    # s3fs may wrap a refused connection in a PermissionError; an unreachable endpoint is checked first.
    unreachable = any(s in text for s in _UNREACHABLE)
    if not unreachable and (isinstance(exc, PermissionError) or "AccessDenied" in text
                            or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text
                            or _HTTP_403.search(text)):
        return RemoteError(f"{url}: permission denied to {action} ({text}).",
                           hint="Check the credentials in your AWS environment or profile.", fatal=True)
    if isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        return RemoteError(f"{url}: the bucket does not exist ({text}).", hint="Create it, or fix the URL.",
                           fatal=True)
    transient = isinstance(exc, TimeoutError | ConnectionError) or any(
        s in text for s in ("Timeout", "timed out", "Could not connect", "Connection", "503", "500",
                            "SlowDown", "ServiceUnavailable", "EBUSY"))
    return RemoteError(f"{url}: could not {action} ({text}).",
                       hint="Check that the endpoint is reachable." if transient else None, transient=transient)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return re.sub(r"\s+", " ", text)[:300]


def _foreign_files(root: Path) -> list[str]:
    """Files in a folder remote's table folders that are not partitions."""
    out = []
    for table in TABLES:
        base = root / table
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                rel = Path(dirpath, f).relative_to(root).as_posix()
                if f.startswith(".tmp-"):
                    continue
                try:
                    PartitionName.parse(rel)
                except InvalidInputError:
                    out.append(rel)
    return out
