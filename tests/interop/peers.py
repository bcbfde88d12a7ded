"""Heavy peers (cmflib, mlflow) in throwaway virtualenvs of their own, created once and cached.

Their pins clash with ours (cmflib 0.1.0 wants dvc 3.51.1 and protobuf 4.25; mlflow pulls a
web stack), so they never enter the project's virtualenv: tests and benchmarks drive them as
subprocesses. The cache is ``$CMFQ_TEST_CACHE`` (default ``~/.cache/cmfq-tests``), kept across
checkouts: ``venvs/`` holds a virtualenv per peer, reused while its requirements are unchanged,
and ``stores/`` what the peers wrote for the tests (see peer_stores.py), reused while the
scripts that wrote them are unchanged.

``make test`` runs ``python -m tests.interop.peers`` before pytest, so that the slow part
(installing the peers, a few minutes on a cold cache, and running them) happens in its install
phase, not inside timed tests. A peer that cannot be installed fails that step, loudly.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("CMFQ_TEST_CACHE") or Path.home() / ".cache" / "cmfq-tests")
PEERS: dict[str, list[str]] = {
    "cmflib": ["cmflib==0.1.0"],  # pins ml-metadata 1.15.0, dvc 3.51.1, protobuf 4.25
    "mlflow": ["mlflow==3.17.2"],  # the newest that resolves from the index here
}
#: Seconds a virtualenv may take to install (a cold pip cache needs a few minutes).
INSTALL_TIMEOUT = 1800


def peer_venv(name: str, root: Path | None = None) -> Path:
    """The virtualenv of peer ``name`` under ``root`` (default: the cache's ``venvs/``; the
    peer benchmarks keep theirs in ``bench/.venvs/``), created on first use; later calls
    return at once."""
    requirements = PEERS[name]
    folder = (root or CACHE / "venvs") / f"{name}-{_digest(requirements)}"
    return _cached(folder, lambda venv: _install(venv, requirements))


def cached_store(name: str, inputs: Iterable[Path], build: Callable[[Path], None]) -> Path:
    """The folder ``build(folder)`` filled, built once and kept while the peers' requirements
    and the bytes of ``inputs`` (the scripts that write it) are unchanged. The folder is not
    moved after ``build``: stores such as MLflow's hold their own absolute paths."""
    texts = [f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in sorted(inputs)]
    return _cached(CACHE / "stores" / f"{name}-{_digest([repr(PEERS), *texts])}", build)


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join([sys.version, *parts]).encode()).hexdigest()[:12]


def _cached(folder: Path, build: Callable[[Path], None]) -> Path:
    ready = folder / ".ready"
    if ready.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name.rsplit('-', 1)[0]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building the same thing
        if ready.is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        started = time.monotonic()
        try:
            build(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        ready.write_text(f"built in {time.monotonic() - started:.0f} s\n")
    return folder


def _install(venv: Path, requirements: Sequence[str]) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *requirements],
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{proc.stderr[-3000:]}")


def run_peer(name: str, args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             timeout: float = 600, venvs: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the peer's virtualenv (under ``venvs``, see :func:`peer_venv`),
    its ``bin/`` first on PATH (cmflib runs ``dvc``, ``git`` and ``pip`` as subprocesses)."""
    venv = peer_venv(name, venvs)
    full = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    full.pop("VIRTUAL_ENV", None)
    return subprocess.run([str(venv / "bin" / "python"), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def check(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a peer run, or an assertion error with its stderr."""
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout


def prepare(names: Sequence[str]) -> None:
    """Install the peers and build the stores they write for the tests, peers side by side
    (each is mostly downloads and one subprocess)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.interop.peer_stores import BUILDERS

    def one(peer: str) -> str:
        started = time.monotonic()
        venv = peer_venv(peer)
        store = BUILDERS[peer]()
        return f"{peer}: {venv}, {store} ({time.monotonic() - started:.0f} s)"

    with ThreadPoolExecutor(len(names) or 1) as pool:
        for line in pool.map(one, names):
            print(line, flush=True)


if __name__ == "__main__":  # python -m tests.interop.peers [name...]: everything ahead of time
    prepare(sys.argv[1:] or list(PEERS))
