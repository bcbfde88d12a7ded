"""One contract for every kind of remote (folder and S3), so they behave the same."""

from __future__ import annotations

import hashlib

import boto3
import pytest

from cmfq.errors import FormatVersionError, InvalidInputError
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.remote import FolderRemote, FsspecRemote, Remote, open_remote


def _name(data: bytes, table: str = "events", folder: str = "p") -> PartitionName:
    return PartitionName(table, folder, hashlib.sha256(data).hexdigest())


def test_write_is_create_only_and_reads_back(remote: Remote) -> None:
    data = b"first"
    name = _name(data)
    assert remote.size(name) is None
    assert remote.write(name, data) is True
    assert remote.write(name, b"something else") is False  # never overwritten
    assert remote.read(name) == data and remote.size(name) == len(data)
    listing = remote.list()
    assert listing.partitions == {name: len(data)} and listing.foreign == []
    assert remote.list("p").partitions == {name: 5} and remote.list("other").partitions == {}
    remote.delete(name)
    remote.delete(name)  # deleting twice is fine
    assert remote.list().partitions == {}
    with pytest.raises(FileNotFoundError):
        remote.read(name)


def test_marker_guards_the_format(remote: Remote) -> None:
    assert remote.read_marker() is None
    remote.ensure_marker()
    remote.check_format()
    if isinstance(remote, FolderRemote):
        (remote.root / "cmfq.json").write_text('{"format_version": 99}')
    else:
        assert isinstance(remote, FsspecRemote)
        remote.fs.pipe_file(f"{remote.root}/cmfq.json", b'{"format_version": 99}')
    with pytest.raises(FormatVersionError, match="format version 99"):
        remote.check_format()


def test_foreign_objects_are_never_taken_for_partitions(remote: Remote, s3_server: dict[str, str]) -> None:
    good = _name(b"ok")
    remote.write(good, b"ok")
    # (A folder such as "%2E%2E" is a valid, literal name: it is never decoded into a path.)
    strangers = ["events/p/not-a-hash.parquet", "events/p/../../../etc/passwd.parquet",
                 "events/a/b/" + "a" * 64 + ".parquet", "nope/p/" + "b" * 64 + ".parquet"]
    if isinstance(remote, FolderRemote):
        for rel in strangers[:1]:
            path = remote.root / rel
            path.write_bytes(b"x")
        expected = strangers[:1]
    else:
        assert isinstance(remote, FsspecRemote)
        bucket, _, prefix = remote.root.partition("/")
        s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"], region_name="us-east-1")
        for rel in strangers:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=b"x")
        expected = [s for s in strangers if not s.startswith("nope/")]  # other folders are not listed
    listing = remote.list()
    assert list(listing.partitions) == [good]
    assert sorted(listing.foreign) == sorted(expected)


@pytest.mark.parametrize("url", ["s3://user:secret@bucket/x", "https://user:pw@example.com/x"])
def test_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match="must not contain credentials"):
        open_remote(url)


def test_secret_options_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="never stores secrets"):
        open_remote("s3://bucket/x", {"aws_secret_access_key": "x"})


@pytest.mark.parametrize("port", ["40341", "1403", "50403"])
def test_unreachable_endpoint_is_never_read_as_permission_denied(port: str) -> None:
    # CI once drew port 40341 for a dead endpoint and the "403" in it was taken for HTTP 403.
    from botocore.exceptions import EndpointConnectionError

    from cmfq.warehouse.remote import _remote_error

    cause = EndpointConnectionError(endpoint_url=f"http://127.0.0.1:{port}/bucket/x/cmfq.json")
    for exc in (cause, PermissionError(str(cause))):
        error = _remote_error("s3://bucket/x", "read its marker", exc)
        assert "could not read its marker" in str(error) and error.transient and not error.fatal


def test_http_403_is_permission_denied() -> None:
    from cmfq.warehouse.remote import _remote_error

    error = _remote_error("s3://b/x", "write", OSError("An error occurred (403) when calling PutObject: Forbidden"))
    assert "permission denied to write" in str(error) and error.fatal
