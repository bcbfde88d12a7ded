"""Hashes taken from DVC's metafiles equal what `dvc add` / `dvc repro` recorded, and what
cmfq computes itself: files, folders, empty files, unicode names, dvc.lock outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import cmfq
from cmfq.ingest.dvc import DvcIndex, parse_dvcfile, read_outs
from cmfq.ingest.hashing import HashCache
from tests.conftest import write_tree
from tests.dvc.conftest import commit_all, dvc_add, dvc_init, dvc_repro

TREE: dict[str, str | bytes] = {
    "data/a-b.txt": "one\n",
    "data/a.b.txt": "two\r\n",
    "data/a/b.txt": "three",
    "data/é.txt": "unicode name",
    "data/.hidden": "dot file",
    "data/empty.txt": "",
    "single.csv": "a,b\n1,2\n",
    "empty.bin": b"",
    "naïve ñame.txt": "unicode file, space in its name",
    "日本語.bin": b"\x00\xff" * 100,
    "odd: name #1.txt": "YAML needs quotes for this name",
}
TARGETS = ["data", "single.csv", "empty.bin", "naïve ñame.txt", "日本語.bin", "odd: name #1.txt"]


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hashes") / "proj"
    repo = dvc_init(root, TREE)
    (root / "data" / "empty-dir").mkdir()
    dvc_add(repo, *TARGETS)
    write_tree(root, {"dvc.yaml": DVC_YAML, "params.yaml": "lr: 0.5\n", "src/in.txt": "stage input\n"})
    dvc_repro(repo)
    repo.close()
    commit_all(root, "track data")
    return root


DVC_YAML = """\
stages:
  copy:
    cmd: mkdir -p out && cp src/in.txt out/copied.txt && echo done > out/flag.txt
    deps: [src/in.txt]
    params: [lr]
    outs: [out]
  inner:
    wdir: src
    cmd: cp in.txt inner.txt
    deps: [in.txt]
    outs: [inner.txt]
  each:
    foreach: [x, y]
    do:
      cmd: echo ${item} > each-${item}.txt
      outs: ["each-${item}.txt"]
"""


def _recorded(root: Path, target: str) -> dict[str, object]:
    return dict(yaml.safe_load((root / f"{target}.dvc").read_text("utf-8"))["outs"][0])


@pytest.mark.parametrize("target", TARGETS)
def test_metafile_hash_equals_dvc_add_and_our_own(added: Path, target: str) -> None:
    recorded = _recorded(added, target)
    tracked = DvcIndex().lookup(added / target)
    assert tracked is not None and tracked.sub is None
    assert (tracked.out.md5, tracked.out.size, tracked.out.nfiles) == (
        recorded["md5"], recorded["size"], recorded.get("nfiles"))
    path = added / target
    ours = HashCache().directory(path)[0] if path.is_dir() else HashCache().file(path)[0]
    assert ours == recorded["md5"]


def test_fast_path_reads_what_yaml_reads(added: Path) -> None:
    for target in TARGETS:
        text = (added / f"{target}.dvc").read_text("utf-8")
        via_yaml = yaml.safe_load(text)["outs"][0]
        (out,) = parse_dvcfile(text, f"{target}.dvc")
        assert (out.path, out.md5, out.size, out.nfiles) == (
            via_yaml["path"], via_yaml["md5"], via_yaml["size"], via_yaml.get("nfiles"))
        assert out.hash_name == "md5" and not out.legacy


def test_lockfile_outputs_with_wdir_and_foreach(added: Path) -> None:
    outs = read_outs(added)
    assert {"out", "src/inner.txt", "each-x.txt", "each-y.txt", *TARGETS} <= outs.keys()
    assert outs["out"].is_dir and outs["out"].nfiles == 2 and outs["out"].stage == "copy"
    assert outs["src/inner.txt"].md5 == HashCache().file(added / "src/inner.txt")[0]
    assert outs["each-y.txt"].stage == "each@y" and outs["each-y.txt"].metafile == "dvc.lock"
    assert outs["out"].md5 == HashCache().directory(added / "out")[0]


def test_tracker_takes_hashes_from_dvc_and_records_where(added: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import cmfq.ingest.hashing as hashing

    monkeypatch.chdir(added)
    reads: list[str] = []
    real = hashing.file_md5
    monkeypatch.setattr(hashing, "file_md5", lambda p: reads.append(str(p)) or real(p))
    head = commit_all(added, "nothing new")
    with cmfq.Tracker("p", warehouse=tmp_path / "wh", capture_env=False) as t:
        with t.execution("train") as ex:
            logged = {target: ex.log_input(target) for target in [*TARGETS, "out", "src/inner.txt", "data/a/b.txt"]}
    assert reads == []  # DVC's state vouched for every file: nothing was read
    wh = cmfq.Warehouse(tmp_path / "wh")
    for target in TARGETS:
        assert logged[target] == _recorded(added, target)["md5"]
    model = wh.artifact(logged["data"])
    assert model["properties"]["nfiles"] == 6
    assert model["properties"]["dvc"] == {"path": "data", "file": "data.dvc", "commit": head}
    stage_out = wh.artifact(logged["src/inner.txt"])["properties"]["dvc"]
    assert stage_out == {"path": "src/inner.txt", "file": "dvc.lock", "stage": "inner", "commit": head}
    inside = wh.artifact(logged["data/a/b.txt"])["properties"]["dvc"]
    assert inside["path"] == "data/a/b.txt" and inside["file"] == "data.dvc" and "stale" not in inside


def test_json_listing_of_a_directory_is_dvcs(added: Path) -> None:
    # The .dir object DVC wrote is the listing cmfq writes for a folder pushed from disk.
    md5 = _recorded(added, "data")["md5"]
    assert isinstance(md5, str)
    obj = added / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    entries = json.loads(obj.read_bytes())
    assert obj.read_bytes() == json.dumps(entries, sort_keys=True).encode()
    assert [e["relpath"] for e in entries] == sorted(e["relpath"] for e in entries)
