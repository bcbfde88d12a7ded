"""Damaged partitions are refused by name; everything else stays queryable."""

from __future__ import annotations

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
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from tests.conftest import make_chain


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-37])


def _rename(path: Path) -> None:
    path.rename(path.with_name("f" * 64 + ".parquet"))


def _wrong_schema(path: Path) -> None:
    # A valid Parquet file with a name that matches its bytes, but not our schema.
    table = pa.table({"id": ["x"], "surprise": [1]}).replace_schema_metadata(
        {b"cmfq.format_version": b"1", b"cmfq.table": b"executions"})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    name = PartitionName.for_bytes("executions", "p", data)
    path.unlink()
    target = path.parents[2] / str(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped byte": (_flip, "bytes hash to"),
    "truncated": (_truncate, "bytes hash to"),
    "renamed": (_rename, "bytes hash to"),
    "wrong schema": (_wrong_schema, "schema does not match table executions"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_partition_is_named_and_skipped(tmp_path: Path, damage: str) -> None:
    wh_dir = tmp_path / "wh"
    make_chain(wh_dir, "p", ["a", "b", "c"])
    layout = Layout(wh_dir)
    victim = sorted(n for n in layout.partitions(["executions"]))[0]
    hurt, message = DAMAGE[damage]
    hurt(layout.path(victim))
    with cmfq.Warehouse(wh_dir) as wh:
        assert len(wh.problems) == 1 and message in wh.problems[0]
        assert wh.problems[0].startswith("executions/")
        assert wh.executions().height == 2  # the other two executions answer as before
    result = CliRunner().invoke(app, ["-w", str(wh_dir), "executions", "-f", "json"])
    assert result.exit_code == 0
    assert "warning: skipped executions/" in result.stderr and "cmfq verify" in result.stderr


def test_repaired_partition_is_picked_up(tmp_path: Path) -> None:
    wh_dir = tmp_path / "wh"
    make_chain(wh_dir, "p", ["a", "b"])
    layout = Layout(wh_dir)
    victim = layout.path(sorted(layout.partitions(["executions"]))[0])
    backup = tmp_path / "backup"
    shutil.copy(victim, backup)
    _flip(victim)
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
