"""Shared fixtures: builders that make real warehouses and files in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import cmfq

if TYPE_CHECKING:
    from cmfq.warehouse.remote import Remote

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A test never sees the developer's warehouse or site name.
    monkeypatch.delenv("CMFQ_WAREHOUSE", raising=False)
    monkeypatch.setenv("CMFQ_SITE", "test-site")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``{"relative/path": content}`` under ``root``; returns ``root``."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def make_files(tmp_path: Path) -> Callable[[Mapping[str, str | bytes]], Path]:
    return lambda files: write_tree(tmp_path, files)


@pytest.fixture
def warehouse_dir(tmp_path: Path) -> Path:
    return tmp_path / ".cmfq"


@pytest.fixture
def tracker(warehouse_dir: Path) -> Iterator[cmfq.Tracker]:
    t = cmfq.Tracker("test-pipeline", warehouse=warehouse_dir, capture_git=False)
    yield t
    t.close()


def make_chain(warehouse: Path, pipeline: str, stages: list[str], *, root: str = "raw") -> list[str]:
    """Log a linear chain root -> stage1 -> ... ; returns the artifact hashes in order."""
    hashes = [_fake_hash(f"{pipeline}/{root}")]
    with cmfq.Tracker(pipeline, warehouse=warehouse, capture_git=False, capture_env=False) as t:
        for i, stage in enumerate(stages):
            with t.execution(stage, params={"i": i}) as ex:
                ex.log_input(hash=hashes[-1], name=f"{root}" if i == 0 else f"{stages[i - 1]}.out")
                out = _fake_hash(f"{pipeline}/{stage}/{i}")
                ex.log_output(hash=out, name=f"{stage}.out", kind="model" if i == len(stages) - 1 else "dataset")
                hashes.append(out)
            t.flush()  # one partition per execution, as a slow real pipeline writes them
    return hashes


def _fake_hash(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s")


def start_server(cmd: list[str], health: str, timeout: float = 20,
                 env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own process group and wait until ``health`` answers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})})
    try:
        _wait_http(health, proc, timeout)
    except BaseException:
        stop_server(proc)
        raise
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop only the process group we started."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 API (moto) on a free loopback port, shared by the session."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = start_server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], endpoint + "/moto-api/")
    try:
        yield {"endpoint": endpoint, "key": "test", "secret": "test"}
    finally:
        stop_server(proc)


@pytest.fixture
def s3_bucket(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
              ) -> Iterator[str]:
    """A fresh bucket per test; AWS credentials for it in the environment (as users set them)."""
    import urllib.request

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = "cmfq-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    client = boto3.client("s3", endpoint_url=s3_server["endpoint"], region_name="us-east-1",
                          aws_access_key_id=s3_server["key"], aws_secret_access_key=s3_server["secret"])
    client.create_bucket(Bucket=name)
    yield name
    urllib.request.urlopen(urllib.request.Request(s3_server["endpoint"] + "/moto-api/reset", method="POST"))


def remote_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Remote, list[str]]:
    """An empty remote of ``kind`` (folder or s3 on the local moto server), and the arguments
    (URL, endpoint) a child process needs to open it."""
    from cmfq.warehouse.remote import open_remote

    if kind == "folder":
        url = str(tmp_path / "remote")
        return open_remote(url), [url]
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_server")["endpoint"]
    url = f"s3://{bucket}/r"
    return open_remote(url, {"endpoint_url": endpoint}), [url, endpoint]


def run_cli(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed ``cmfq`` console script as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "cmfq"), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse (three real sklearn pipelines), built once for the session."""
    from cmfq.data_samples.pipeline import build_demo

    summary = build_demo(tmp_path_factory.mktemp("demo") / "demo", echo=lambda line: None)
    return summary.warehouse
