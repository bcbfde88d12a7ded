"""What DVC already knows about a path: hashes from ``.dvc`` files and ``dvc.lock``.

A DVC project records the md5 (``<md5>.dir`` for a folder), size and file count of every
tracked output in small YAML files. Reading them costs microseconds where hashing the data
costs a read of every byte, so loggers take hashes from here. This module only reads those
files; it never imports DVC itself (see :mod:`cmfq.ingest.dvc_repo` for what needs DVC).

    index = DvcIndex()
    tracked = index.lookup(Path("data/raw.csv"))   # None if DVC does not track it
    tracked.out.md5, tracked.out.metafile           # e.g. "d41d…", "data/raw.csv.dvc"
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmfq.errors import CmfqError

DVC_DIR = ".dvc"
DVCFILE_SUFFIX = ".dvc"
LOCKFILE = "dvc.lock"
PIPELINE_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"
#: Directories never searched for metafiles when there is no git to list them.
_SKIP_DIRS = frozenset({".git", DVC_DIR, "node_modules", "__pycache__", ".venv", "venv", ".cmfq"})

_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")
#: A .dvc file exactly as `dvc add` writes it for one output: one match reads all of it (the
#: common case, and the one that must be fast at 10,000 files).
_DVC_ADD = re.compile(r"outs:\n- md5: ([0-9a-f]{32}(?:\.dir)?)\n  size: (\d+)\n(?:  nfiles: (\d+)\n)?"
                      r"  hash: md5\n  path: ([^\n]+)\n?")
_FAST_LINE = re.compile(r"(- |  )(md5|size|nfiles|hash|path): (.+)")
# A YAML plain scalar that needs no interpretation: anything else goes through the YAML parser.
_PLAIN = re.compile(r"[^\s'\"&*!|>%@`#,\[\]{}?:~-][^#:]*(?<!\s)")
_NOT_TEXT = re.compile(r"[-+.0-9_eE]+|true|false|yes|no|on|off|null|y|n|~", re.IGNORECASE)


class DvcError(CmfqError):
    """A DVC project, metafile or command that cmfq cannot use as asked."""


@dataclass(frozen=True)
class DvcOut:
    """One output tracked by DVC, as its ``.dvc`` file or ``dvc.lock`` records it."""

    path: str  # posix, relative to the DVC root
    md5: str | None  # "<32 hex>" or "<32 hex>.dir"; None for outputs hashed otherwise (etag...)
    size: int | None
    nfiles: int | None
    hash_name: str  # "md5" (DVC 3) or "md5-dos2unix" (written by DVC 2: text files normalised)
    metafile: str  # the .dvc file or dvc.lock, posix, relative to the DVC root
    stage: str | None = None  # the dvc.lock stage that produced it
    cache: bool = True

    @property
    def is_dir(self) -> bool:
        return bool(self.md5 and self.md5.endswith(".dir"))

    @property
    def legacy(self) -> bool:
        return self.hash_name != "md5"


@dataclass(frozen=True)
class Tracked:
    """A path DVC tracks: the output that covers it, and where it sits inside that output
    (``sub`` is the path inside a tracked folder, None when the path is the output itself)."""

    root: Path
    out: DvcOut
    sub: str | None = None

    @property
    def path(self) -> str:
        return self.out.path if self.sub is None else f"{self.out.path}/{self.sub}"


# -- reading metafiles ---------------------------------------------------------------------------

def load_yaml(text: str | bytes, what: str) -> Any:
    """Parse YAML with libyaml when available (ten times faster than pure Python)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise DvcError(f"{what} is not valid YAML ({str(exc).splitlines()[0]}).",
                       hint="Fix or restore it (git checkout -- <file>), then log again.") from None


def parse_dvcfile(text: str, metafile: str) -> list[DvcOut]:
    """The outputs of a ``.dvc`` file (``metafile`` is its path relative to the DVC root).

    Files exactly as ``dvc add`` writes them take a line-by-line fast path; anything else
    (comments, quoting, ``deps``, ``wdir``...) goes through the YAML parser.
    """
    base = posixpath.dirname(metafile)
    entries = _fast_outs(text)
    if entries is None:
        data = load_yaml(text, metafile)
        if not isinstance(data, dict):
            return []
        wdir = data.get("wdir")
        if isinstance(wdir, str):
            base = posixpath.join(base, wdir)
        entries = [e for e in data.get("outs") or [] if isinstance(e, dict)]
    return [out for e in entries if (out := _out(e, base, metafile)) is not None]


def parse_lockfile(text: str, metafile: str) -> dict[str, dict[str, Any]]:
    """The stages of a ``dvc.lock`` (schema 2.0, or the stage mapping of DVC 1)."""
    data = load_yaml(text, metafile)
    if not isinstance(data, dict):
        return {}
    stages = data.get("stages") if "stages" in data or "schema" in data else data
    return {str(k): v for k, v in (stages or {}).items() if isinstance(v, dict)}


def stage_wdirs(pipeline: Mapping[str, Any] | None) -> dict[str, str]:
    """Working directory of each stage of a parsed ``dvc.yaml`` (``foreach``/``matrix``
    stages under their base name); ``dvc.lock`` paths are relative to it."""
    wdirs: dict[str, str] = {}
    stages = (pipeline or {}).get("stages") or {}
    for name, stage in stages.items() if isinstance(stages, dict) else ():
        if not isinstance(stage, dict):
            continue
        body = stage.get("do") if isinstance(stage.get("do"), dict) else stage
        wdir = body.get("wdir") if isinstance(body, dict) else None
        if isinstance(wdir, str) and "${" not in wdir and wdir not in ("", "."):
            wdirs[str(name)] = wdir
    return wdirs


def stage_base(name: str) -> str:
    """``train@1`` (a foreach/matrix instance) -> ``train``."""
    return name.split("@", 1)[0]


def lock_entries(stage: Mapping[str, Any], key: str, base: str, metafile: str, name: str) -> list[DvcOut]:
    """The ``deps`` or ``outs`` of one ``dvc.lock`` stage as outputs rooted at the DVC root."""
    entries = stage.get(key) or []
    return [out for e in entries if isinstance(e, dict) and (out := _out(e, base, metafile, name)) is not None]


def lockfile_outs(text: str, metafile: str, pipeline: Mapping[str, Any] | None) -> list[DvcOut]:
    """Every output recorded in a ``dvc.lock``; ``pipeline`` is its parsed ``dvc.yaml``."""
    folder = posixpath.dirname(metafile)
    wdirs = stage_wdirs(pipeline)
    outs: list[DvcOut] = []
    for name, stage in parse_lockfile(text, metafile).items():
        base = posixpath.join(folder, wdirs.get(stage_base(name), ""))
        outs.extend(lock_entries(stage, "outs", base, metafile, name))
    return outs


def read_metafile(root: str | os.PathLike[str], metafile: str | os.PathLike[str]) -> list[DvcOut]:
    """The outputs recorded in one ``.dvc`` file or ``dvc.lock`` under ``root``."""
    return parse_metafile(os.fspath(root), os.fspath(metafile), read_bytes(metafile))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A small file's bytes. Plain ``os.read``: at 10,000 metafiles, building a buffered file
    object for each costs more than reading it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_metafile(root: str, metafile: str, data: bytes) -> list[DvcOut]:
    """The outputs recorded in the bytes of ``metafile`` (absolute, under ``root``)."""
    rel = metafile[len(root) + 1:] if metafile.startswith(root + os.sep) else os.path.relpath(metafile, root)
    rel = rel.replace(os.sep, "/")
    text = data.decode("utf-8")
    if os.path.basename(metafile) != LOCKFILE:
        return parse_dvcfile(text, rel)
    pipeline_file = os.path.join(os.path.dirname(metafile), PIPELINE_FILE)
    pipeline = None
    if os.path.isfile(pipeline_file):
        with open(pipeline_file, encoding="utf-8") as f:
            pipeline = load_yaml(f.read(), PIPELINE_FILE)
    return lockfile_outs(text, rel, pipeline if isinstance(pipeline, dict) else None)


def _fast_outs(text: str) -> list[dict[str, Any]] | None:
    m = _DVC_ADD.fullmatch(text)
    if m is not None:
        md5, size, nfiles, path = m.groups()
        if _PLAIN.fullmatch(path) and not _NOT_TEXT.fullmatch(path):
            entry: dict[str, Any] = {"md5": md5, "size": int(size), "hash": "md5", "path": path}
            if nfiles is not None:
                entry["nfiles"] = int(nfiles)
            return [entry]
    lines = text.splitlines()
    if not lines or lines[0] != "outs:":
        return None
    entries: list[dict[str, Any]] = []
    for line in lines[1:]:
        m = _FAST_LINE.fullmatch(line)
        if m is None:
            return None
        lead, key, value = m.groups()
        if lead == "- ":
            entries.append({})
        elif not entries or key in entries[-1]:
            return None
        if key in ("size", "nfiles"):
            if not value.isdigit():
                return None
            entries[-1][key] = int(value)
        elif key == "md5" and not _MD5.fullmatch(value):
            return None
        elif key == "path" and (not _PLAIN.fullmatch(value) or _NOT_TEXT.fullmatch(value)):
            return None
        else:
            entries[-1][key] = value
    return entries


def _out(entry: Mapping[str, Any], base: str, metafile: str, stage: str | None = None) -> DvcOut | None:
    path = entry.get("path")
    if not isinstance(path, str) or "://" in path or os.path.isabs(path):
        return None  # external outputs (s3://..., /mnt/...) are not in this project
    rel = f"{base}/{path}" if base else path
    if "/." in f"/{rel}" or "//" in rel or rel.endswith("/"):  # the common plain path skips normpath
        rel = posixpath.normpath(rel)
    if rel == ".." or rel.startswith("../"):
        return None
    md5 = entry.get("md5")
    md5 = md5 if isinstance(md5, str) and _MD5.fullmatch(md5) else None
    size, nfiles = entry.get("size"), entry.get("nfiles")
    return DvcOut(path=rel, md5=md5, size=size if isinstance(size, int) else None,
                  nfiles=nfiles if isinstance(nfiles, int) else None,
                  hash_name="md5" if entry.get("hash") == "md5" else "md5-dos2unix",
                  metafile=metafile, stage=stage, cache=entry.get("cache", True) is not False)


# -- finding metafiles -------------------------------------------------------------------------------

def find_root(path: str | os.PathLike[str]) -> Path | None:
    """The DVC project (the folder holding ``.dvc/``) containing ``path``, or None."""
    here = Path(os.path.abspath(path))
    for folder in (here, *here.parents):
        if (folder / DVC_DIR).is_dir():
            return folder
    return None


def find_metafiles(root: Path, *, lockfiles_only: bool = False) -> list[Path]:
    """Every ``.dvc`` file and ``dvc.lock`` of the project at ``root``.

    Inside git, ``git ls-files`` lists them, committed or not; elsewhere the tree is walked,
    skipping folders DVC tracks. (Not ``--exclude-standard``: matching every data file
    against the .gitignore entries DVC writes costs more than the listing itself.)
    """
    return [Path(p) for p in _metafile_paths(os.fspath(root), lockfiles_only)]


def _metafile_paths(root: str, lockfiles_only: bool) -> list[str]:
    # Strings, not Paths: at 10,000 metafiles, pathlib costs more than git's listing.
    patterns = [LOCKFILE, f"*/{LOCKFILE}"] + ([] if lockfiles_only else [f"*{DVCFILE_SUFFIX}"])
    try:
        listed, deleted = (subprocess.run(["git", "ls-files", "-z", *flags, "--", *patterns], cwd=root,
                                          capture_output=True, check=True, timeout=60).stdout
                           for flags in (["-co"], ["-d"]))
    except (OSError, subprocess.SubprocessError):
        return sorted(os.fspath(p) for p in _walk_metafiles(Path(root), lockfiles_only))
    # git knows which committed files are gone from the work tree: no stat of each one here.
    names = set(os.fsdecode(listed).split("\0")) - set(os.fsdecode(deleted).split("\0"))
    return [os.path.join(root, n) for n in sorted(names) if n and _is_metafile(n, lockfiles_only)
            and ("/" not in n or not _SKIP_DIRS.intersection(n.split("/")[:-1]))]


def _is_metafile(name: str, lockfiles_only: bool) -> bool:
    base = posixpath.basename(name)
    return base == LOCKFILE or (not lockfiles_only and base.endswith(DVCFILE_SUFFIX) and base != DVCFILE_SUFFIX)


def _walk_metafiles(root: Path, lockfiles_only: bool) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        tracked = {f[: -len(DVCFILE_SUFFIX)] for f in files if f.endswith(DVCFILE_SUFFIX)}
        # Never descend into data that a .dvc file beside it tracks, nor into other projects.
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and d not in tracked
                   and not (Path(folder, d) / DVC_DIR).is_dir()]
        for f in files:
            if _is_metafile(f, lockfiles_only):
                yield Path(folder, f)


def read_outs(root: str | os.PathLike[str]) -> dict[str, DvcOut]:
    """Every output the project at ``root`` tracks, by path relative to the root.

    The bulk reader: one pass over all metafiles, no data file touched.
    """
    base = os.path.abspath(root)
    outs: dict[str, DvcOut] = {}
    for metafile in _metafile_paths(base, False):
        for out in parse_metafile(base, metafile, read_bytes(metafile)):
            outs[out.path] = out
    return outs


# -- the index loggers use -------------------------------------------------------------------------------

def _absolute(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return text if os.path.isabs(text) and "/." not in text and "//" not in text else os.path.abspath(text)


class DvcIndex:
    """Finds the DVC output covering a path, for a logger that asks again and again.

    Metafiles are parsed once and parsed again only when they change on disk, so a ``dvc
    add`` or ``git checkout`` between two calls is seen. The candidates for a path are the
    ``<ancestor>.dvc`` and ``<ancestor folder>/dvc.lock`` files (checked on every call, so
    new ones are found) and the lock files found elsewhere in the project on first use.
    Paths are handled as strings: at 10,000 lookups, pathlib's objects cost more than the
    lookups themselves.
    """

    def __init__(self) -> None:
        self._roots: dict[str, Path | None] = {}
        # metafile -> ((mtime, size, inode), outputs, git blob id of its bytes)
        self._parsed: dict[str, tuple[tuple[int, int, int], list[DvcOut], str]] = {}
        self._lockfiles: dict[str, list[str]] = {}

    def root_of(self, path: str | os.PathLike[str]) -> Path | None:
        folder = os.path.dirname(_absolute(path))
        if folder not in self._roots:
            self._roots[folder] = find_root(folder)
        return self._roots[folder]

    def outs(self, root: str | os.PathLike[str], metafile: str | os.PathLike[str]) -> list[DvcOut]:
        """The outputs of ``metafile`` ([] if it is gone)."""
        found = self._read(os.fspath(root), os.fspath(metafile))
        return found[1] if found else []

    def blob_id(self, metafile: str | os.PathLike[str]) -> str | None:
        """Git's id of the metafile's bytes as last read (None if never read)."""
        found = self._parsed.get(os.fspath(metafile))
        return found[2] if found else None

    def lookup(self, path: str | os.PathLike[str]) -> Tracked | None:
        """The output tracking ``path`` (itself, or a folder holding it), or None."""
        absolute = _absolute(path)
        root = self.root_of(absolute)
        if root is None:
            return None
        base = os.fspath(root)
        if not absolute.startswith(base + os.sep):
            return None
        rel = absolute[len(base) + 1:].replace(os.sep, "/")
        best: Tracked | None = None
        for metafile in self._candidates(base, rel):
            found = self._read(base, metafile)
            for out in found[1] if found else ():
                if out.path == rel:
                    return Tracked(root, out)
                if rel.startswith(out.path + "/") and (best is None or len(out.path) > len(best.out.path)):
                    best = Tracked(root, out, rel[len(out.path) + 1:])
        return best

    def _read(self, root: str, metafile: str) -> tuple[tuple[int, int, int], list[DvcOut], str] | None:
        try:
            st = os.stat(metafile)
        except OSError:
            self._parsed.pop(metafile, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._parsed.get(metafile)
        if cached is None or cached[0] != stamp:
            data = read_bytes(metafile)
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's id of these bytes
            cached = (stamp, parse_metafile(root, metafile, data), blob)
            self._parsed[metafile] = cached
        return cached

    def _candidates(self, root: str, rel: str) -> Iterator[str]:
        parts = rel.split("/")
        seen: set[str] = set()
        for i in range(len(parts), 0, -1):
            prefix = os.path.join(root, *parts[:i])
            for candidate in (prefix + DVCFILE_SUFFIX, os.path.join(prefix, LOCKFILE)):
                if candidate not in seen:
                    seen.add(candidate)
                    yield candidate
        top = os.path.join(root, LOCKFILE)
        if top not in seen:
            seen.add(top)
            yield top
        if root not in self._lockfiles:
            self._lockfiles[root] = [os.fspath(f) for f in find_metafiles(Path(root), lockfiles_only=True)]
        yield from (f for f in self._lockfiles[root] if f not in seen)
