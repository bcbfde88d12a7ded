"""Every user-facing failure ends in one actionable line and exit code 1, never a traceback
(``--debug`` shows it): bad paths, permission denied, a full disk, a stalled S3 server.
Each runs the installed ``cmfq`` in a real process."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, make_chain, run_cli


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-600:])
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert all(n in err for n in needles), err
    return err


def test_bad_warehouse_paths(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    one_line(run_cli("-w", str(tmp_path / "a-file"), "pipelines"), "No cmfq warehouse at", "cmfq init")
    one_line(run_cli("-w", str(tmp_path / "a-file" / "sub"), "init"), "Not a directory", "--warehouse")
    debug = run_cli("--debug", "-w", str(tmp_path / "a-file" / "sub"), "init")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "NotADirectoryError" in debug.stderr


def _as_nobody() -> list[str]:
    """Root ignores file modes: run the child as `nobody` then, through setpriv."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to see a denial")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder `nobody` can reach (pytest's own tmp is private to root)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="cmfq-perm-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.thorough
def test_permission_denied(shared_tmp: Path) -> None:
    wh = shared_tmp / "wh"
    make_chain(wh, "p", ["a"])
    assert run_cli("-w", str(wh), "pipelines").returncode == 0  # the index exists
    for p in [wh, *wh.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)  # readable by all, writable by none
    prefix = _as_nobody()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, str(BIN / "cmfq"), "-w", str(wh), *args], capture_output=True, text=True,
                              timeout=120, cwd="/")

    one_line(cli("annotate", "pipeline", "p", "tag:x", "y"), "Permission denied", "owner and mode")
    one_line(cli("pipelines"), "Permission denied", "_cache")  # the index folder is not writable
    wh.chmod(0o700)  # not even readable
    proc = cli("pipelines")  # refused by the option parser itself: a usage error, exit 2
    assert proc.returncode == 2 and "readable" in proc.stderr and "Traceback" not in proc.stderr


def _fill_limit(limit: int) -> Callable[[], None]:
    """A file-size limit for the child: writes past it fail with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A 2 MB tmpfs when this process may mount one (root in a VM or privileged container),
    else a folder plus a file-size limit on the child."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                                   capture_output=True).returncode == 0
    try:
        yield mnt, None if mounted else _fill_limit(64 * 1024)
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full(small_disk: tuple[Path, Callable[[], None] | None], tmp_path: Path) -> None:
    disk, limit = small_disk
    source = tmp_path / "source"
    make_chain(source, "p", [f"s{i}" for i in range(30)])
    wh = disk / "wh"
    assert run_cli("-w", str(wh), "init").returncode == 0
    if limit is None:  # tmpfs: fill it up to the last few kilobytes
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(free - 8 * 1024, 0))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "cmfq"), "-w", str(wh), *args], capture_output=True, text=True,
                              timeout=120, preexec_fn=limit, cwd=tmp_path)

    assert cli("remote", "add", "src", str(source)).returncode in (0, 1)
    err = one_line(cli("pull", "src"))
    assert ("No space left" in err or "File too large" in err) and "Free some space" in err, err
    assert "Traceback" in subprocess.run([str(BIN / "cmfq"), "--debug", "-w", str(wh), "pull", "src"],
                                         capture_output=True, text=True, timeout=120, preexec_fn=limit).stderr


@pytest.fixture
def stalled_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung S3 endpoint."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        sock.close()


@pytest.mark.thorough
def test_stalled_s3_server_times_out_with_bounded_retries(tmp_path: Path, stalled_server: str) -> None:
    make_chain(tmp_path / "wh", "p", ["a"])
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "CMFQ_REMOTE_TIMEOUT": "1"}
    assert run_cli("-w", str(tmp_path / "wh"), "remote", "add", "origin", "s3://bucket/x", "--endpoint-url",
                   stalled_server, env=env).returncode == 0
    started = time.monotonic()
    proc = run_cli("-w", str(tmp_path / "wh"), "push", env=env)
    elapsed = time.monotonic() - started
    one_line(proc, "s3://bucket/x")
    assert elapsed < 30, elapsed  # 1 s reads, two tries by botocore, bounded retries by cmfq
