"""Damaged and tampered partitions: named, quarantined (never deleted), the rest still answers.

Every kind of damage below is injected into a real warehouse (or a remote), then met by each
of the three ways cmfq reads partitions: a query, a pull and ``cmfq verify``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.warehouse import partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.remote import open_remote
from cmfq.warehouse.schema import TABLES
from cmfq.warehouse.sync import pull
from tests.conftest import make_chain

EXECUTIONS = 3


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse of three executions (one executions partition each), copied by each test."""
    root = tmp_path_factory.mktemp("template") / "wh"
    make_chain(root, "p", ["a", "b", "c"])
    return root


def _victims(root: Path) -> list[PartitionName]:
    return sorted(Layout(root).partitions(["executions"]))


def _place(root: Path, victim: PartitionName, data: bytes) -> str:
    """Replace ``victim`` by ``data`` under the name its bytes hash to (so only the content is wrong)."""
    (root / str(victim)).unlink()
    name = PartitionName("executions", victim.folder, hashlib.sha256(data).hexdigest())
    (root / str(name)).write_bytes(data)
    return str(name)


def _parquet(rows: pa.Table, table: str = "executions") -> bytes:
    rows = rows.replace_schema_metadata({partition.META_VERSION: b"1", partition.META_TABLE: table.encode()})
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    return buf.getvalue()


def _rows(root: Path, victim: PartitionName) -> pa.Table:
    return partition.decode(victim, (root / str(victim)).read_bytes()).rows


def flip(root: Path, v: list[PartitionName]) -> list[str]:
    data = bytearray((root / str(v[0])).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / str(v[0])).write_bytes(bytes(data))
    return [str(v[0])]


def truncate(root: Path, v: list[PartitionName]) -> list[str]:
    (root / str(v[0])).write_bytes((root / str(v[0])).read_bytes()[:-37])
    return [str(v[0])]


def rename(root: Path, v: list[PartitionName]) -> list[str]:
    target = PartitionName("executions", v[0].folder, "f" * 64)
    (root / str(v[0])).rename(root / str(target))
    return [str(target)]


def swap(root: Path, v: list[PartitionName]) -> list[str]:
    a, b = root / str(v[0]), root / str(v[1])
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    return [str(v[0]), str(v[1])]


def alter_rows(root: Path, v: list[PartitionName]) -> list[str]:
    # A well-formed cmfq partition, valid schema and version, but its rows are not the ones
    # its name vouches for: someone rewrote a parameter in place.
    rows = _rows(root, v[0])
    rows = rows.set_column(rows.schema.get_field_index("params"), "params",
                           pa.array(['{"i": 999}'] * rows.num_rows))
    (root / str(v[0])).write_bytes(partition.encode(TABLES["executions"], rows))
    return [str(v[0])]


def missing_column(root: Path, v: list[PartitionName]) -> list[str]:
    return [_place(root, v[0], _parquet(_rows(root, v[0]).drop_columns(["status"])))]


def extra_column(root: Path, v: list[PartitionName]) -> list[str]:
    rows = _rows(root, v[0])
    return [_place(root, v[0], _parquet(rows.append_column("surprise", pa.array([1] * rows.num_rows))))]


def retyped_column(root: Path, v: list[PartitionName]) -> list[str]:
    rows = _rows(root, v[0])
    i = rows.schema.get_field_index("git_dirty")
    return [_place(root, v[0], _parquet(rows.set_column(i, "git_dirty", pa.array(["yes"] * rows.num_rows))))]


@functools.cache
def _bomb() -> bytes:
    # 60 M rows of nulls compress to ~140 kB; decoding them would take gigabytes.
    return _parquet(pa.table({"id": pa.nulls(60_000_000, pa.string())}))


def bomb(root: Path, v: list[PartitionName]) -> list[str]:
    return [_place(root, v[0], _bomb())]


DAMAGE: dict[str, tuple[Callable[[Path, list[PartitionName]], list[str]], str]] = {
    "flipped-byte": (flip, "bytes hash to"),
    "truncated": (truncate, "bytes hash to"),
    "renamed": (rename, "bytes hash to"),
    "swapped": (swap, "bytes hash to"),
    "altered-rows": (alter_rows, "bytes hash to"),
    "missing-column": (missing_column, "missing columns ['status']"),
    "extra-column": (extra_column, "unexpected columns ['surprise']"),
    "retyped-column": (retyped_column, "retyped columns git_dirty"),
    "parquet-bomb": (bomb, "declares 60000000 rows"),
}


def _damaged_copy(template: Path, dest: Path, kind: str) -> tuple[list[str], str]:
    shutil.copytree(template, dest)
    hurt, message = DAMAGE[kind]
    return hurt(dest, _victims(dest)), message


def _assert_quarantined(root: Path, bad: list[str]) -> None:
    for rel in bad:
        assert not (root / rel).exists()
        assert (root / "_quarantine" / rel).is_file()  # moved aside, bytes kept


@pytest.mark.parametrize("kind", DAMAGE)
def test_detected_on_pull_verify_and_query(tmp_path: Path, template: Path, kind: str) -> None:
    # On pull: refused by name, its bytes kept aside here, the rest of the pull completes.
    remote_dir = tmp_path / "remote"
    bad, message = _damaged_copy(template, remote_dir, kind)  # a warehouse folder is a folder remote
    good = set(Layout(remote_dir).partitions()) - {PartitionName.parse(rel) for rel in bad}
    sink = Layout(tmp_path / "sink")
    sink.init("x")
    report = pull(sink, open_remote(str(remote_dir)))
    assert sorted(str(e).split(": ", 1)[0].removeprefix(f"{remote_dir}/") for e in report.failed) == sorted(bad)
    assert all(message in str(e) and "kept its bytes in _quarantine/" in str(e) for e in report.failed)
    assert set(sink.partitions()) == good and report.files == len(good)
    for rel in bad:
        assert (remote_dir / rel).is_file()  # a pull never changes the remote
        assert (sink.quarantine_dir / rel).read_bytes() == (remote_dir / rel).read_bytes()

    # On verify (the damaged folder as a warehouse now): named, quarantined, exit 1; then clean.
    result = CliRunner().invoke(app, ["-w", str(remote_dir), "verify"])
    assert result.exit_code == 1
    for rel in bad:
        assert f"bad: {remote_dir}/{rel}: " in result.stderr and message in result.stderr
    assert f"{len(bad)} bad" in result.stderr and "cmfq verify --repair" in result.stderr
    _assert_quarantined(remote_dir, bad)
    assert set(Layout(remote_dir).partitions()) == good

    # On a query: named, quarantined, and the other executions answer as before.
    wh_dir = tmp_path / "wh"
    bad, message = _damaged_copy(template, wh_dir, kind)
    with cmfq.Warehouse(wh_dir) as wh:
        assert len(wh.problems) == len(bad)
        for rel in bad:
            problem = next(p for p in wh.problems if p.startswith(rel))
            assert message in problem and f"Moved it to _quarantine/{rel}" in problem
        assert wh.executions().height == EXECUTIONS - len(bad)
    _assert_quarantined(wh_dir, bad)  # found once: later queries are neither slowed nor warned again


def test_verify_repair_fetches_good_copies_from_the_remote(tmp_path: Path, template: Path) -> None:
    wh_dir = tmp_path / "wh"
    shutil.copytree(template, wh_dir)
    runner = CliRunner()
    assert runner.invoke(app, ["-w", str(wh_dir), "remote", "add", "origin", str(tmp_path / "remote")]).exit_code == 0
    assert runner.invoke(app, ["-w", str(wh_dir), "push"]).exit_code == 0
    bad = swap(wh_dir, _victims(wh_dir)) + flip(wh_dir, sorted(Layout(wh_dir).partitions(["events"])))
    with cmfq.Warehouse(wh_dir) as wh:  # a query finds and quarantines them first
        assert len(wh.problems) == 3
    result = runner.invoke(app, ["-w", str(wh_dir), "verify", "--repair"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("repaired: ") == 3 and "0 bad, 3 repaired" in result.stderr
    for rel in bad:
        assert (wh_dir / "_quarantine" / rel).is_file()  # the evidence stays
    with cmfq.Warehouse(wh_dir) as wh:
        assert wh.problems == [] and wh.executions().height == EXECUTIONS
        assert wh.sql("SELECT count(*) FROM events").item() == 2 * EXECUTIONS
    assert runner.invoke(app, ["-w", str(wh_dir), "verify"]).exit_code == 0


def test_repair_without_a_good_copy_says_so(tmp_path: Path, template: Path) -> None:
    wh_dir = tmp_path / "wh"
    shutil.copytree(template, wh_dir)
    runner = CliRunner()
    runner.invoke(app, ["-w", str(wh_dir), "remote", "add", "origin", str(tmp_path / "empty")])
    flip(wh_dir, _victims(wh_dir))
    result = runner.invoke(app, ["-w", str(wh_dir), "verify", "--repair", "--from", "origin"])
    assert result.exit_code == 1
    assert "not repaired: " in result.stderr and "has no copy of it" in result.stderr
    misuse = runner.invoke(app, ["-w", str(wh_dir), "verify", "--from", "origin"])
    assert misuse.exit_code == 1 and "--from goes with --repair" in misuse.stderr


def test_bad_file_on_s3_is_quarantined_there_and_repaired_from_a_site(
        tmp_path: Path, template: Path, s3_bucket: str, s3_server: dict[str, str]) -> None:
    wh_dir = tmp_path / "wh"
    shutil.copytree(template, wh_dir)
    runner = CliRunner()
    url = f"s3://{s3_bucket}/team"
    runner.invoke(app, ["-w", str(wh_dir), "remote", "add", "origin", url, "--endpoint-url", s3_server["endpoint"]])
    assert runner.invoke(app, ["-w", str(wh_dir), "push"]).exit_code == 0
    remote = open_remote(url, {"endpoint_url": s3_server["endpoint"]})
    victim = _victims(wh_dir)[0]
    remote.fs.pipe_file(f"{s3_bucket}/team/{victim}", b"PAR1 not really" * 10)  # overwritten behind our back
    result = runner.invoke(app, ["-w", str(wh_dir), "verify", "--remote", "origin"])
    assert result.exit_code == 1 and f"bad: {url}/{victim}: " in result.stderr
    assert f"Moved it to s3://{s3_bucket}/team/_quarantine/{victim}" in result.stderr
    assert remote.fs.exists(f"{s3_bucket}/team/_quarantine/{victim}") and victim not in remote.list().partitions
    assert runner.invoke(app, ["-w", str(wh_dir), "push"]).exit_code == 0  # a site's push restores it
    assert remote.read(victim) == (wh_dir / str(victim)).read_bytes()
    remote.fs.pipe_file(f"{s3_bucket}/team/{victim}", b"PAR1 again" * 10)
    result = runner.invoke(app, ["-w", str(wh_dir), "verify", "--remote", "origin", "--repair"])
    assert result.exit_code == 0 and "1 bad, 1 repaired" in result.stderr, result.stderr
    assert remote.fs.exists(f"{s3_bucket}/team/_quarantine/{victim}.1")  # both bad copies kept
    assert runner.invoke(app, ["-w", str(wh_dir), "verify", "--remote", "origin"]).exit_code == 0
    assert remote.read(victim) == (wh_dir / str(victim)).read_bytes()


def test_cli_warns_by_name_on_read(tmp_path: Path, template: Path) -> None:
    wh_dir = tmp_path / "wh"
    bad, _ = _damaged_copy(template, wh_dir, "flipped-byte")
    result = CliRunner().invoke(app, ["-w", str(wh_dir), "executions", "-f", "json"])
    assert result.exit_code == 0
    assert f"warning: skipped {bad[0]}: bytes hash to" in result.stderr and "cmfq verify --repair" in result.stderr


def test_repaired_partition_is_picked_up(tmp_path: Path) -> None:
    wh_dir = tmp_path / "wh"
    make_chain(wh_dir, "p", ["a", "b"])
    layout = Layout(wh_dir)
    victim = layout.path(sorted(layout.partitions(["executions"]))[0])
    backup = tmp_path / "backup"
    shutil.copy(victim, backup)
    flip(wh_dir, [sorted(layout.partitions(["executions"]))[0]])
    with cmfq.Warehouse(wh_dir) as wh:
        assert wh.executions().height == 1
    shutil.copy(backup, victim)
    with cmfq.Warehouse(wh_dir) as wh:
        assert wh.problems == [] and wh.executions().height == 2


def test_strangers_and_temp_files_are_ignored(tmp_path: Path) -> None:
    wh_dir = tmp_path / "wh"
    make_chain(wh_dir, "p", ["a"])
    folder = next((wh_dir / "executions").iterdir())
    (folder / "notes.txt").write_text("hello")
    (folder / ".tmp-123-abc.parquet").write_bytes(b"half written")
    (folder / "NOT-A-HASH.parquet").write_bytes(b"junk")
    with cmfq.Warehouse(wh_dir) as wh:
        assert wh.problems == [] and wh.executions().height == 1
