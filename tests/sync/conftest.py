"""Remotes for the sync tests: every contract runs against a folder and against real S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cmfq.warehouse.remote import Remote, open_remote


@pytest.fixture(params=["folder", "s3"])
def remote_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(url, options) of an empty remote."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_server")["endpoint"]
    return f"s3://{bucket}/team-a", {"endpoint_url": endpoint}


@pytest.fixture
def remote(remote_spec: tuple[str, dict[str, Any]]) -> Remote:
    url, options = remote_spec
    return open_remote(url, options)
