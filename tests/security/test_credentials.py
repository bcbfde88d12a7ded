"""Credentials from the AWS environment never land in metadata, the index, the remote, the
output or the logs of cmfq, through a real push and pull against the local S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmfq.cli.main import app
from tests.conftest import run_cli

KEY_ID = "AKIACMFQLEAKTEST7777"
SECRET = "cmfq-secret-wJalrXUtnFEMI-K7MDENG-bPxRfiCY"
TOKEN = "cmfq-session-token-FwoGZXIvYXdzEJr-9999"
NEEDLES = (SECRET, TOKEN, KEY_ID)
runner = CliRunner()

LOGGER = """
import sys, cmfq
with cmfq.Tracker("creds", warehouse=sys.argv[1], capture_git=False) as t:
    with t.execution("train", params={"lr": 0.1}) as ex:
        ex.log_output(hash="0" * 32, name="model.pkl", kind="model")
        ex.log_metric("loss", 0.5)
"""


def _grep(root: Path) -> list[str]:
    """Files under ``root`` whose bytes hold a credential (text or binary: Parquet, DuckDB)."""
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{p}: {n}" for n in NEEDLES if n.encode() in data]
    return found


def test_credentials_stay_out_of_everything(tmp_path: Path, s3_server: dict[str, str], s3_bucket: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
           "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # moto takes any key; cmfq must not write these anywhere
    a, b = tmp_path / "a", tmp_path / "b"
    # The environment (and the secret in a command-line argument) as a training script sees it.
    proc = subprocess.run([sys.executable, "-c", LOGGER, str(a)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outputs = [proc.stdout, proc.stderr]
    url = f"s3://{s3_bucket}/team"
    steps = [("-w", str(a), "remote", "add", "origin", url, "--endpoint-url", s3_server["endpoint"]),
             ("-w", str(a), "remote", "list"), ("-w", str(a), "remote", "list", "-f", "json"),
             ("-w", str(a), "push"), ("-w", str(a), "status"),
             ("-w", str(b), "init"),
             ("-w", str(b), "remote", "add", "origin", url, "--endpoint-url", s3_server["endpoint"]),
             ("-w", str(b), "pull"), ("-w", str(b), "show", "model.pkl"),
             ("-w", str(b), "executions", "-f", "json"), ("-w", str(b), "sql", "SELECT * FROM executions", "-f", "json"),
             # the in-place reader holds the key in a DuckDB secret: never shown
             ("-w", str(b), "sql", "--remote", "origin", "SELECT * FROM duckdb_secrets()"),
             ("-w", str(b), "sql", "--remote", "origin", "SELECT which_secret('" + url + "/x', 's3') AS s"),
             ("-w", str(b), "sql", "--remote", "origin", "SELECT current_setting('s3_secret_access_key') AS s"),
             # failures, with and without --debug, must not echo them either
             ("-w", str(b), "remote", "add", "bad", url, "--aws-secret-access-key", SECRET),
             ("-w", str(b), "remote", "add", "bad", f"{url}?aws_secret_access_key={SECRET}"),
             ("-w", str(b), "--debug", "push", "nowhere"),
             ("-w", str(b), "sql", "--remote", f"s3://no-such-bucket-{s3_bucket}/x", "SELECT 1")]
    codes, leaks = [], []
    for i, args in enumerate(steps):
        # The installed console script once (a real process, its own logging set-up); the
        # rest in-process, which is the same code and much faster.
        if i == 3:
            done = run_cli(*args, cwd=tmp_path, env=env)
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            result = runner.invoke(app, list(args))
            code, out, err = result.exit_code, result.stdout, result.stderr + "".join(
                traceback.format_exception(result.exception) if result.exception else [])
        codes.append(code)
        outputs += [out, err]
        leaks += [(args[-1][:30], n[:8]) for n in NEEDLES if n in out + err]
    assert codes[:11] == [0] * 11, list(zip(steps, codes, strict=True))
    assert "Received" in outputs[2 + 2 * 7 + 1]  # the pull moved the facts
    assert leaks == []  # not even the key id is echoed
    assert _grep(a) == [] and _grep(b) == []
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"], region_name="us-east-1")
    objects = s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert len(objects) >= 3
    for obj in objects:
        body = s3.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read()
        assert not [n for n in NEEDLES if n.encode() in body], obj["Key"]
