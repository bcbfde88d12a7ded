"""Push and pull between warehouses through a remote (folder and S3)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import cmfq
from cmfq.warehouse.compact import compact
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName, pipeline_folder
from cmfq.warehouse.remote import FolderRemote, FsspecRemote, Remote
from cmfq.warehouse.sync import pull, push, status, verify
from tests.conftest import make_chain


def _facts(root: Path) -> dict[str, pl.DataFrame]:
    with cmfq.Warehouse(root) as wh:
        return {"executions": wh.sql("SELECT id, pipeline, stage, status FROM executions ORDER BY id"),
                "events": wh.sql("SELECT execution_id, artifact_hash, direction FROM events ORDER BY ALL"),
                "edges": wh.sql("SELECT parent_hash, child_hash FROM lineage_edges ORDER BY ALL")}


def _damage(remote: Remote, name: PartitionName, data: bytes) -> None:
    """Replace a remote object's bytes behind cmfq's back."""
    if isinstance(remote, FolderRemote):
        (remote.root / str(name)).write_bytes(data)
    else:
        assert isinstance(remote, FsspecRemote)
        remote.fs.pipe_file(f"{remote.root}/{name}", data)


def test_two_sites_meet_through_a_remote(tmp_path: Path, remote: Remote) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_chain(a, "shared", ["prepare", "train"])
    make_chain(b, "other", ["train", "evaluate"])
    first = push(Layout(a), remote)
    assert first.files == len(list(Layout(a).partitions())) and first.failed == [] and first.bytes > 0
    push(Layout(b), remote)
    again = push(Layout(a), remote)
    assert again.files == 0 and again.skipped == first.files  # a re-push sends nothing
    Layout(c).init("c")
    got = pull(Layout(c), remote)
    assert got.failed == [] and got.files == first.files + len(list(Layout(b).partitions()))
    assert pull(Layout(c), remote).files == 0
    union = _facts(c)
    assert union["executions"].height == 4
    both = pl.concat([_facts(a)["executions"], _facts(b)["executions"]]).sort("id")
    assert union["executions"].equals(both)
    st = status(Layout(c), remote)
    assert st.local_only == [] and st.remote_only == [] and st.both == got.files


def test_pull_refuses_damaged_remote_files_by_name_and_takes_the_rest(tmp_path: Path, remote: Remote) -> None:
    make_chain(tmp_path / "a", "p", ["a", "b", "c"])
    push(Layout(tmp_path / "a"), remote)
    names = sorted(remote.list().partitions)
    flipped, truncated = names[0], names[1]
    original = remote.read(flipped)
    _damage(remote, flipped, original[:-1] + bytes([original[-1] ^ 0xFF]))
    _damage(remote, truncated, remote.read(truncated)[:-30])
    fresh = Layout(tmp_path / "fresh")
    fresh.init("x")
    report = pull(fresh, remote)
    assert report.files == len(names) - 2
    refused = sorted(str(e) for e in report.failed)
    assert len(refused) == 2
    assert all("bytes hash to" in r for r in refused)
    assert {str(flipped), str(truncated)} == {r.split(remote.url + "/")[1].split(":")[0] for r in refused}
    assert not fresh.path(flipped).exists() and not fresh.path(truncated).exists()
    assert len(verify(remote=remote).bad) == 2
    assert verify(remote=remote).bad == []  # the first verify quarantined both on the remote
    assert fresh.quarantine_dir.is_dir()  # and the pull kept the refused bytes aside here


def test_a_damaged_local_file_is_not_pushed(tmp_path: Path, remote: Remote) -> None:
    make_chain(tmp_path / "a", "p", ["a", "b"])
    layout = Layout(tmp_path / "a")
    victim = sorted(layout.partitions())[0]
    layout.path(victim).write_bytes(b"not what was written")
    report = push(layout, remote)
    assert len(report.failed) == 1 and str(victim) in str(report.failed[0])
    assert victim not in remote.list().partitions and report.files == len(list(layout.partitions())) - 1
    bad = verify(layout).bad
    assert len(bad) == 1 and bad[0].path.endswith(str(victim))


def test_one_pipeline_at_a_time_and_dry_run(tmp_path: Path, remote: Remote) -> None:
    layout = Layout(tmp_path / "a")
    make_chain(layout.root, "keep", ["a"])
    make_chain(layout.root, "later", ["b"])
    plan = push(layout, remote, folder=pipeline_folder("keep"), dry_run=True)
    assert plan.planned and all(n.folder == "keep" for n in plan.planned) and remote.list().partitions == {}
    sent = push(layout, remote, folder=pipeline_folder("keep"))
    assert sent.files == len(plan.planned)
    assert {n.folder for n in remote.list().partitions} == {"keep"}
    push(layout, remote)
    other = Layout(tmp_path / "b")
    other.init("b")
    pull(other, remote, folder=pipeline_folder("later"))
    with cmfq.Warehouse(other.root) as wh:
        assert wh.pipelines()["name"].to_list() == ["later"]


def test_compaction_on_the_remote_changes_no_answer(tmp_path: Path, remote: Remote) -> None:
    make_chain(tmp_path / "a", "p", ["a", "b", "c"])
    make_chain(tmp_path / "a", "q", ["d", "e"])
    push(Layout(tmp_path / "a"), remote)
    before = len(remote.list().partitions)
    report = compact(remote)
    assert report.outputs > 0 and len(remote.list().partitions) == before - report.inputs + report.outputs
    fresh = Layout(tmp_path / "fresh")
    fresh.init("f")
    pull(fresh, remote)
    after = _facts(fresh.root)
    original = _facts(tmp_path / "a")
    for key in original:
        assert after[key].equals(original[key]), key
    # A warehouse that pulled before the compaction pulls the compacted files, and its index
    # does not rebuild: the new files name the old ones they replaced.
    assert verify(remote=remote).bad == []


def test_a_file_compacted_away_during_a_pull_is_skipped_not_fatal(tmp_path: Path, remote: Remote) -> None:
    make_chain(tmp_path / "a", "p", ["a", "b"])
    push(Layout(tmp_path / "a"), remote)

    class Compacting:
        """The real remote, with one file really deleted between the listing and its download,
        as a concurrent compaction does."""

        def __init__(self, inner: Remote) -> None:
            self.inner, self.url = inner, inner.url
            self.gone = sorted(inner.list().partitions)[0]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def read(self, name: PartitionName) -> bytes:
            if name == self.gone:
                self.inner.delete(name)
            return self.inner.read(name)

    fresh = Layout(tmp_path / "fresh")
    fresh.init("f")
    racing = Compacting(remote)
    report = pull(fresh, racing)  # type: ignore[arg-type]
    assert report.failed == [] and report.skipped == 1 and report.files == len(remote.list().partitions)
    assert not fresh.path(racing.gone).exists()
    assert pull(fresh, remote).files == 0  # gone from the remote too: nothing left to bring
