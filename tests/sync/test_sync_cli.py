"""Sync from the command line, including what goes wrong: bad credentials, no endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmfq.cli.main import app
from tests.conftest import BIN, _free_port, make_chain, start_server, stop_server

runner = CliRunner()


def cmfq(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_remote_commands_push_pull_status_verify(tmp_path: Path, s3_bucket: str, s3_server: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLEKEY")  # moto without auth takes any key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    a, b = tmp_path / "a", tmp_path / "b"
    make_chain(a, "p", ["prepare", "train"])
    url = f"s3://{s3_bucket}/shared"
    code, _, err = cmfq("-w", str(a), "remote", "add", "origin", url, "--endpoint-url", s3_server["endpoint"])
    assert code == 0 and "Added remote origin" in err and "(default)" in err
    code, _, err = cmfq("-w", str(a), "remote", "add", "origin", url)
    assert code == 1 and "exists already" in err
    code, out, _ = cmfq("-w", str(a), "remote", "list", "-f", "json")
    listed = json.loads(out)
    assert listed[0]["name"] == "origin" and listed[0]["default"] is True
    settings = (a / "cmfq.json").read_text()
    assert "AKIDEXAMPLEKEY" not in settings and "very-secret-value" not in settings
    code, _, err = cmfq("-w", str(a), "push", "--dry-run")
    assert code == 0 and "would send" in err
    code, _, err = cmfq("-w", str(a), "push")
    assert code == 0 and "Sent 6 partitions" in err
    code, _, err = cmfq("-w", str(a), "push")
    assert "Sent 0 partitions" in err and "6 already in sync" in err
    code, out, _ = cmfq("-w", str(a), "status", "-f", "json")
    assert json.loads(out)[-1] == {"table": "all", "local_only": 0, "remote_only": 0}
    cmfq("-w", str(b), "init")
    cmfq("-w", str(b), "remote", "add", "origin", url, "--endpoint-url", s3_server["endpoint"])
    code, _, err = cmfq("-w", str(b), "pull", "origin")
    assert code == 0 and "Received 6 partitions" in err
    code, out, _ = cmfq("-w", str(b), "executions", "-f", "json")
    assert len(json.loads(out)) == 2
    assert json.loads((b / "cmfq.json").read_text())["remotes"]["origin"]["last_pull"]
    assert "very-secret-value" not in out + err
    code, _, err = cmfq("-w", str(b), "verify", "--remote", "origin")
    assert code == 0 and "Checked 6 partitions" in err and "0 bad" in err
    code, _, err = cmfq("-w", str(b), "remote", "remove", "origin")
    assert code == 0
    code, _, err = cmfq("-w", str(b), "push", "nope")
    assert code == 1 and err.startswith("error: No remote matches 'nope'")


def test_no_remote_configured(tmp_path: Path) -> None:
    make_chain(tmp_path, "p", ["a"])
    code, _, err = cmfq("-w", str(tmp_path), "push")
    assert code == 1 and "No remote is configured" in err and "cmfq remote add" in err


def test_unreachable_endpoint_fails_fast_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    make_chain(tmp_path, "p", ["a"])
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    cmfq("-w", str(tmp_path), "remote", "add", "origin", "s3://bucket/x", "--endpoint-url", dead)
    started = time.monotonic()
    code, _, err = cmfq("-w", str(tmp_path), "push")
    assert time.monotonic() - started < 30
    assert code == 1 and err.startswith("error: s3://bucket/x: could not") and "Could not connect" in err
    assert "Check that the endpoint is reachable" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def authenticated_s3() -> Iterator[dict[str, str]]:
    """moto with authentication on: the first calls set up a user and its key, then every
    request must be signed with that key."""
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = start_server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], endpoint + "/moto-api/",
                        env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a",
                           aws_secret_access_key="b")
        iam.create_user(UserName="ci")
        iam.put_user_policy(UserName="ci", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket="secured")
        yield {"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        stop_server(proc)


def test_wrong_credentials_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              authenticated_s3: dict[str, str]) -> None:
    make_chain(tmp_path, "p", ["a"])
    cmfq("-w", str(tmp_path), "remote", "add", "origin", "s3://secured/x", "--endpoint-url",
         authenticated_s3["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", authenticated_s3["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    code, _, err = cmfq("-w", str(tmp_path), "push")
    assert code == 1 and "permission denied" in err and "Check the credentials" in err
    assert "not-the-secret" not in err and "Traceback" not in err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", authenticated_s3["secret"])
    code, _, err = cmfq("-w", str(tmp_path), "push")
    assert code == 0 and "Sent 3 partitions" in err
