"""Artifacts' bytes: push, pull and status of logged artifacts through a DVC remote.

The warehouse holds facts; the bytes of datasets and models live where DVC keeps them: in a
DVC remote, one object per file at ``files/md5/<2 hex>/<30 hex>`` and, for a folder, a
``<md5>.dir`` object listing its files (``[{"md5": ..., "relpath": ...}]``, DVC's JSON). cmfq
writes exactly that layout, so ``dvc pull`` finds what ``cmfq artifacts push`` sent, and the
other way round.

    store = open_store(Path.cwd(), hashes)           # the DVC project's default remote and cache
    items = select(wh, artifact="model.pkl")         # the model and everything upstream of it
    push(store, items); pull(store, items); status(store, items)

In a DVC project the remote is the project's (``dvc remote add -d``, with its credentials
and options) and pulled objects also land in its cache, as ``dvc pull`` does. Outside one,
give a remote URL (a folder, ``s3://bucket/prefix``...): artifacts logged anywhere can be
pushed into a DVC-layout remote from where they are on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cmfq.errors import CmfqError, InvalidInputError
from cmfq.ingest.hashing import CHUNK, file_md5, is_md5

if TYPE_CHECKING:
    from cmfq.ingest.hashing import HashCache
    from cmfq.warehouse.query import Warehouse



class ArtifactStoreError(CmfqError):
    """A DVC remote or project that cannot be used to move artifacts' bytes."""


# -- what to move ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One logged artifact whose bytes can move: a file or a folder, by DVC md5."""

    hash: str
    kind: str
    name: str
    uri: str | None
    properties: dict[str, Any]

    @property
    def is_dir(self) -> bool:
        return self.hash.endswith(".dir")

    def local_paths(self, root: Path, *, relocate: bool = False) -> list[Path]:
        """Where its bytes belong, best first: its path in the DVC project under ``root``
        when it was DVC-tracked, the relative path it was logged under, and (``relocate``
        off) the absolute path of its URI."""
        paths: list[Path | None] = []
        dvc = self.properties.get("dvc")
        if isinstance(dvc, dict) and isinstance(dvc.get("path"), str):
            paths.append(_inside(root, dvc["path"]))
        name = Path(self.name)
        if "://" not in self.name and not name.is_absolute():
            paths.append(_inside(root, self.name))
        if self.uri and self.uri.startswith("file://"):
            from urllib.parse import unquote, urlparse

            path = Path(unquote(urlparse(self.uri).path))
            paths.append(root / path.name if relocate else path)
        return [p for p in dict.fromkeys(paths) if p is not None]


def select(wh: Warehouse, *, pipeline: str | None = None, artifact: str | None = None,
           execution: str | None = None) -> list[Item]:
    """The artifacts with bytes to move: those of ``pipeline``, those ``execution`` read or
    wrote, ``artifact`` with its whole upstream lineage, or (no filter) every one logged.

    Environments and artifacts known only by a name-derived id are left out: they have no
    bytes of their own.
    """
    if sum(x is not None for x in (pipeline, artifact, execution)) > 1:
        raise InvalidInputError("Choose one of --pipeline, --artifact and --execution.")
    args: list[Any]
    if artifact is not None:
        graph = wh.lineage(artifact, "up")
        hashes = [r["id"] for r in graph.nodes.iter_rows(named=True) if r["type"] == "artifact"]
        where, args = "a.hash IN (SELECT unnest(?::VARCHAR[]))", [hashes]
    elif execution is not None:
        where, args = ("a.hash IN (SELECT artifact_hash FROM events WHERE execution_id = ?)",
                       [wh.resolve_execution(execution)])
    elif pipeline is not None:
        where, args = ("a.hash IN (SELECT e.artifact_hash FROM events e JOIN executions x "
                       "ON x.id = e.execution_id WHERE x.pipeline = ?)", [pipeline])
    else:
        where, args = "true", []
    rows = wh.sql(f"SELECT a.hash, a.kind, a.name, a.uri, a.properties::VARCHAR AS properties "
                  f"FROM artifacts a WHERE {where} AND a.kind <> 'env' ORDER BY a.name, a.hash", args)
    items = [Item(r["hash"], r["kind"], r["name"], r["uri"], json.loads(r["properties"] or "{}"))
             for r in rows.iter_rows(named=True)]
    return [i for i in items if is_md5(i.hash)]


# -- where bytes are -------------------------------------------------------------------------------

@dataclass
class Store:
    """A DVC-layout remote, the DVC cache of the project (None outside one), the folder
    artifacts are restored under, and a hash cache for what is on disk."""

    remote: Any  # dvc_data HashFileDB rooted at <remote>/files/md5
    cache: Any | None  # the project's HashFileDB, or None
    root: Path
    hashes: HashCache
    url: str
    project: Path | None = None
    relocate: bool = False  # restoring under another folder than where artifacts were logged

    def destination(self, item: Item) -> Path | None:
        paths = item.local_paths(self.root, relocate=self.relocate)
        return paths[0] if paths else None


def open_store(where: Path, hashes: HashCache, *, remote: str | None = None, endpoint_url: str | None = None,
               to: Path | None = None) -> Store:
    """The store for a project at or above ``where``.

    In a DVC project: its default remote, or the DVC remote named ``remote``, or ``remote``
    as a URL; and its cache. Outside one, ``remote`` must be a URL or folder path.
    ``endpoint_url`` is the S3 endpoint for a URL remote; ``to`` restores artifacts under
    another folder than the project.
    """
    from cmfq.ingest.dvc import find_root

    project = find_root(where)
    target = (to or project or where).resolve()
    if project is None:
        if remote is None:
            raise ArtifactStoreError(
                f"{where} is not inside a DVC project, so there is no DVC remote to use.",
                hint="Pass --remote with a folder or s3://bucket/prefix URL (a DVC-layout remote), or run "
                "`dvc init && dvc remote add -d <name> <url>` in the project.")
        return Store(_url_odb(remote, endpoint_url), None, target, hashes, remote, relocate=to is not None)
    repo = _open_repo(project)
    try:
        if remote is not None and _looks_like_url(remote):
            odb, url = _url_odb(remote, endpoint_url), remote
        else:
            odb = _project_odb(repo, remote)
            url = odb.fs.unstrip_protocol(odb.path).removesuffix("/files/md5")
        return Store(odb, repo.cache.local, target, hashes, url, project, relocate=to is not None)
    finally:
        repo.close()


def _open_repo(project: Path) -> Any:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        return Repo(str(project))
    except DvcException as exc:
        raise ArtifactStoreError(f"DVC cannot open the project at {project}: {exc}.",
                                 hint="Check it with `dvc doctor`.") from None


def _project_odb(repo: Any, name: str | None) -> Any:
    from dvc.config import NoRemoteError, RemoteConfigError, RemoteNotFoundError

    try:
        return repo.cloud.get_remote_odb(name, "push")
    except NoRemoteError:
        raise ArtifactStoreError(
            f"The DVC project at {repo.root_dir} has no default remote.",
            hint="Add one with `dvc remote add -d <name> <url>` (a folder or s3://bucket/prefix), "
            "or pass --remote <name or URL>.") from None
    except RemoteNotFoundError:
        raise ArtifactStoreError(f"The DVC project at {repo.root_dir} has no remote named {name!r}.",
                                 hint="List them with `dvc remote list`.") from None
    except RemoteConfigError as exc:
        raise ArtifactStoreError(f"DVC remote {name or '(default)'}: {exc}.") from None


def _url_odb(url: str, endpoint_url: str | None) -> Any:
    from dvc.data_cloud import Remote
    from dvc.fs import get_cloud_fs

    options: dict[str, Any] = {"url": url if _looks_like_url(url) else os.path.abspath(url)}
    if endpoint_url:
        options["endpointurl"] = endpoint_url
    try:
        cls, config, fs_path = get_cloud_fs({}, **options)
        return Remote("cmfq", fs_path, cls(**config)).odb
    except Exception as exc:  # noqa: BLE001 - unknown scheme, missing plugin, bad option: all the user's to fix
        raise ArtifactStoreError(f"Cannot use {url!r} as a DVC remote: {exc}.",
                                 hint="Give a folder path or a URL DVC supports (s3://bucket/prefix needs "
                                 "dvc-s3; --endpoint-url for a local S3 server).") from None


def _looks_like_url(text: str) -> bool:
    return "://" in text or os.sep in text or text.startswith(".") or Path(text).is_dir()


# -- operations ----------------------------------------------------------------------------------

@dataclass
class Report:
    """What a push or pull did, per artifact and in objects."""

    artifacts: int = 0
    objects: int = 0  # sent or fetched
    present: int = 0  # already where they had to be
    restored: list[str] = field(default_factory=list)  # local paths written (pull)
    problems: list[str] = field(default_factory=list)  # one line per artifact that could not move


def push(store: Store, items: Iterable[Item]) -> Report:
    """Send the objects of ``items`` the remote lacks, from the DVC cache or from the files
    on disk (checked against their hash first). A folder's ``.dir`` object goes last: its
    presence promises its files."""
    report = Report()
    sources: dict[str, _Source] = {}
    complete = 0
    for item in items:
        report.artifacts += 1
        try:
            sources.update(_push_sources(store, item))
        except _Missing as exc:
            if _complete_on_remote(store, item):
                complete += 1  # nothing here to send, and nothing missing there
            else:
                report.problems.append(f"{item.name} ({item.hash[:12]}): {exc}")
    present = set(store.remote.oids_exist(list(sources)))
    report.present = len(present) + complete
    todo = sorted((oid for oid in sources if oid not in present), key=lambda o: (o.endswith(".dir"), o))
    for oid in todo:
        with sources[oid].path() as path:
            store.remote.add(path, _local_fs(), oid, check_exists=False)
        report.objects += 1
    return report


def pull(store: Store, items: Iterable[Item], *, force: bool = False) -> Report:
    """Fetch the objects of ``items`` (into the DVC cache too, in a DVC project) and write
    each artifact where it belongs; files already holding the right bytes are left alone,
    different ones only with ``force``."""
    report = Report()
    for item in items:
        report.artifacts += 1
        dest = store.destination(item)
        try:
            listing = _listing(store, item.hash) if item.is_dir else None
            files = ({dest / rel: md5 for rel, md5 in listing.items()} if dest is not None and listing is not None
                     else {dest: item.hash} if dest is not None else {})
            oids = [*(listing or {}).values(), item.hash] if listing is not None else [item.hash]
            report.objects += _fetch_into_cache(store, oids)
            for path, md5 in files.items():
                wrote = _restore(store, path, md5, force=force)
                if wrote is None:
                    report.present += 1
                else:
                    report.restored.append(str(path))
            if dest is None:
                report.problems.append(f"{item.name} ({item.hash[:12]}): no local path to restore it to; "
                                       + ("it is in the DVC cache" if store.cache is not None else "skipped"))
        except _Missing as exc:
            report.problems.append(f"{item.name} ({item.hash[:12]}): {exc}")
    return report


def status(store: Store, items: Iterable[Item]) -> list[dict[str, Any]]:
    """Per artifact: whether its bytes are on disk (``ok``, ``modified``, ``missing``), in
    the DVC cache (None outside a DVC project) and complete on the remote."""
    rows = []
    for item in items:
        dest = store.destination(item)
        listing = _listing(store, item.hash, quiet=True) if item.is_dir else None
        oids = [*(listing or {}).values(), item.hash]
        on_remote = _complete_on_remote(store, item, listing)
        in_cache = None if store.cache is None else (
            (listing is not None or not item.is_dir) and all(store.cache.exists(o) for o in oids))
        rows.append({"hash": item.hash, "kind": item.kind, "name": item.name,
                     "workspace": _workspace_state(store, dest, item.hash), "cache": in_cache,
                     "remote": on_remote, "path": str(dest) if dest is not None else None})
    return rows


# -- internals ----------------------------------------------------------------------------------------

def _complete_on_remote(store: Store, item: Item, listing: dict[str, str] | None = None) -> bool:
    """Whether the remote holds every object of ``item`` (a folder: its listing and files)."""
    if item.is_dir and listing is None:
        try:
            listing = _listing(store, item.hash, quiet=True)
        except _Missing:
            return False
        if listing is None:
            return False
    oids = [*(listing or {}).values(), item.hash]
    return set(store.remote.oids_exist(oids)) == set(oids)


class _Missing(Exception):
    """The bytes of an artifact are nowhere to be found."""


@dataclass(frozen=True)
class _Source:
    file: str | None = None  # a local file holding the object's bytes
    data: bytes | None = None  # or the bytes themselves (a .dir listing made here)

    def path(self) -> _TempPath:
        return _TempPath(self.file, self.data)


class _TempPath:
    def __init__(self, file: str | None, data: bytes | None) -> None:
        self.file, self.data = file, data
        self.tmp: str | None = None

    def __enter__(self) -> str:
        if self.file is not None:
            return self.file
        fd, tmp = tempfile.mkstemp(prefix=".cmfq-")
        with os.fdopen(fd, "wb") as f:
            f.write(self.data or b"")
        self.tmp = tmp
        return tmp

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            os.unlink(self.tmp)


def _push_sources(store: Store, item: Item) -> dict[str, _Source]:
    """Where each object of ``item`` can be read from: the cache, else the local copy."""
    cached = _cache_listing(store, item.hash) if item.is_dir else None
    if store.cache is not None and (cached is not None or not item.is_dir):
        oids = [*(cached or {}).values(), item.hash]
        if all(store.cache.exists(o) for o in oids):
            return {o: _Source(file=store.cache.oid_to_path(o)) for o in oids}
    candidates = [p for p in item.local_paths(store.root) if p.exists()]
    for dest in candidates:
        if not item.is_dir:
            if dest.is_file() and store.hashes.file(dest)[0] == item.hash:
                return {item.hash: _Source(file=str(dest))}
            continue
        entries = sorted(({"md5": store.hashes.file(p)[0], "relpath": p.relative_to(dest).as_posix()}
                          for p in dest.rglob("*") if p.is_file()), key=lambda e: e["relpath"])
        listing = json.dumps(entries, sort_keys=True).encode()
        if hashlib.md5(listing).hexdigest() + ".dir" == item.hash:
            sources = {e["md5"]: _Source(file=str(dest / e["relpath"])) for e in entries}
            sources[item.hash] = _Source(data=listing)
            return sources
    if candidates:
        raise _Missing(f"{candidates[0]} holds other bytes now, and the logged version is not in a DVC cache")
    raise _Missing("not in a DVC cache and no local copy found")


def _cache_listing(store: Store, dir_md5: str) -> dict[str, str] | None:
    if store.cache is None or not store.cache.exists(dir_md5):
        return None
    with open(store.cache.oid_to_path(dir_md5), "rb") as f:
        return _parse_listing(f.read())


def _listing(store: Store, dir_md5: str, *, quiet: bool = False) -> dict[str, str] | None:
    """relpath -> md5 of a folder artifact, from the cache or else the remote."""
    found = _cache_listing(store, dir_md5)
    if found is not None:
        return found
    try:
        with store.remote.fs.open(store.remote.oid_to_path(dir_md5), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if quiet:
            return None
        raise _Missing("its folder listing is neither in the DVC cache nor on the remote") from None
    if hashlib.md5(data).hexdigest() + ".dir" != dir_md5:
        raise _Missing("the remote's folder listing does not match its hash")
    return _parse_listing(data)


def _parse_listing(data: bytes) -> dict[str, str]:
    try:
        return {e["relpath"]: e["md5"] for e in json.loads(data)}
    except (ValueError, KeyError, TypeError):
        raise _Missing("its folder listing is not DVC's JSON") from None


def _fetch_into_cache(store: Store, oids: list[str]) -> int:
    """Copy the objects the DVC cache lacks from the remote (none outside a DVC project),
    checking each one's md5 before DVC may trust it."""
    if store.cache is None:
        return 0
    missing = [o for o in oids if not store.cache.exists(o)]
    for oid in sorted(missing, key=lambda o: (o.endswith(".dir"), o)):
        try:
            store.cache.add(store.remote.oid_to_path(oid), store.remote.fs, oid, check_exists=False)
        except FileNotFoundError:
            raise _Missing(f"object {oid} is not on the remote") from None
        cached = Path(store.cache.oid_to_path(oid))
        actual = file_md5(cached) + (".dir" if oid.endswith(".dir") else "")
        if actual != oid:
            cached.unlink()
            raise _Missing(f"object {oid} on the remote is damaged (its bytes hash to {actual})")
    return len(missing)


def _restore(store: Store, dest: Path, md5: str, *, force: bool) -> Path | None:
    """Write object ``md5`` at ``dest`` (None if it already holds those bytes)."""
    if dest.is_file():
        if store.hashes.file(dest)[0] == md5:
            return None
        if not force:
            raise _Missing(f"{dest} exists with other bytes; pass --force to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _open_object(store, md5) as src:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".cmfq-")
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                raise _Missing(f"object {md5} is damaged (its bytes hash to {digest.hexdigest()})")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


def _open_object(store: Store, oid: str) -> Any:
    if store.cache is not None and store.cache.exists(oid):
        return open(store.cache.oid_to_path(oid), "rb")
    try:
        stream: BinaryIO = store.remote.fs.open(store.remote.oid_to_path(oid), "rb")
    except FileNotFoundError:
        raise _Missing(f"object {oid} is neither in the DVC cache nor on the remote") from None
    return stream


def _workspace_state(store: Store, dest: Path | None, md5: str) -> str | None:
    if dest is None:
        return None
    if not dest.exists():
        return "missing"
    actual = store.hashes.directory(dest)[0] if dest.is_dir() else store.hashes.file(dest)[0]
    return "ok" if actual == md5 else "modified"


def _local_fs() -> Any:
    from dvc_objects.fs.local import LocalFileSystem

    return LocalFileSystem()


def _inside(root: Path, rel: str) -> Path | None:
    # Normalised, not resolved: a DVC symlink into the cache must stay where it is.
    path = Path(os.path.normpath(root / rel))
    return path if path == root or root in path.parents else None
