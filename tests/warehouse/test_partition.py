"""Partition names and bytes: the value object round-trips, bad files are refused by name."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmfq.errors import FormatVersionError, InvalidInputError, PartitionError
from cmfq.warehouse import partition
from cmfq.warehouse.partition import PartitionName, pipeline_folder
from cmfq.warehouse.schema import METRICS, TABLES

DIGEST = "a" * 64


def _metrics_bytes(n: int = 3) -> bytes:
    rows = [{"execution_id": "e", "name": "loss", "step": i, "value": i / 10, "at": i} for i in range(n)]
    return partition.encode(METRICS, pa.Table.from_pylist(rows, schema=METRICS.schema))


@given(st.sampled_from(sorted(TABLES)), st.text(min_size=0, max_size=300), st.binary(max_size=64))
def test_name_round_trips_for_any_pipeline(table: str, pipeline: str, data: bytes) -> None:
    name = PartitionName.for_bytes(table, pipeline, data)
    assert PartitionName.parse(str(name)) == name


@given(st.text(max_size=400))
def test_pipeline_folder_is_never_a_path(pipeline: str) -> None:
    folder = pipeline_folder(pipeline)
    assert "/" not in folder and "\\" not in folder and "\x00" not in folder
    assert folder not in (".", "..") and not folder.startswith(".")
    assert 0 < len(folder) <= 160


def test_pipeline_folder_is_readable_for_ordinary_names() -> None:
    assert pipeline_folder("example-get-started") == "example-get-started"
    assert pipeline_folder("../../etc/passwd").startswith("%2E.%2F")
    assert pipeline_folder(None) == pipeline_folder("") == "_"


@pytest.mark.parametrize("bad", ["../x/" + DIGEST + ".parquet", "/etc/passwd", "executions/p/../../x.parquet",
                                 "executions/p/" + DIGEST + ".csv", "nope/p/" + DIGEST + ".parquet",
                                 "executions/p/" + "A" * 64 + ".parquet", "executions\\p\\x.parquet",
                                 "executions/.hidden/" + DIGEST + ".parquet", "executions/p/q/" + DIGEST + ".parquet"])
def test_parse_refuses_anything_but_a_partition_path(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        PartitionName.parse(bad)


def test_encode_is_deterministic_and_decodes_back() -> None:
    data = _metrics_bytes()
    assert data == _metrics_bytes()
    name = PartitionName.for_bytes("metrics", "p", data)
    decoded = partition.decode(name, data)
    assert decoded.rows.num_rows == 3
    assert decoded.rows.schema == METRICS.schema


def test_hash_mismatch_names_the_file() -> None:
    data = _metrics_bytes()
    name = PartitionName("metrics", "p", DIGEST)
    with pytest.raises(PartitionError, match=f"metrics/p/{DIGEST}.parquet: bytes hash to"):
        partition.decode(name, data)


def test_truncated_file_is_refused() -> None:
    data = _metrics_bytes()[:-20]
    name = PartitionName.for_bytes("metrics", "p", data)
    with pytest.raises(PartitionError, match="not a readable Parquet file"):
        partition.decode(name, data)


def test_wrong_table_and_wrong_schema_are_refused() -> None:
    data = _metrics_bytes()
    as_events = PartitionName.for_bytes("events", "p", data)
    with pytest.raises(PartitionError, match="holds table 'metrics', not 'events'"):
        partition.decode(as_events, data)
    retyped = pa.Table.from_pylist([{"execution_id": "e", "name": "x", "step": "one", "value": 1.0, "at": 0}])
    import io

    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(retyped.replace_schema_metadata({b"cmfq.format_version": b"1", b"cmfq.table": b"metrics"}), buf)
    name = PartitionName.for_bytes("metrics", "p", buf.getvalue())
    with pytest.raises(PartitionError, match=r"retyped columns .*step \(string != int64\)"):
        partition.decode(name, buf.getvalue())


def test_newer_format_version_is_refused_with_upgrade_hint() -> None:
    import io

    import pyarrow.parquet as pq
    rows = pa.Table.from_pylist([], schema=METRICS.schema).replace_schema_metadata(
        {b"cmfq.format_version": b"99", b"cmfq.table": b"metrics"})
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    name = PartitionName.for_bytes("metrics", "p", buf.getvalue())
    with pytest.raises(FormatVersionError, match="Upgrade cmfq"):
        partition.decode(name, buf.getvalue())
