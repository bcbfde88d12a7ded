"""Our md5s equal what `dvc add` writes, for files and directories (real DVC, real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from cmfq.ingest.hashing import HashCache, file_md5, is_md5
from tests.conftest import write_tree

TREE = {
    "data/a-b.txt": "one\n",
    "data/a.b.txt": "two\r\n",  # DVC 3 hashes bytes as they are: no CRLF normalisation
    "data/a/b.txt": "three",
    "data/B.txt": "upper",
    "data/é.txt": "unicode name",
    "data/.hidden": "dot file",
    "data/empty.txt": "",
    "data/sub/deeper/x.bin": b"\x00\x01\x02" * 1000,
    "single.csv": "a,b\n1,2\n",
    "empty.bin": b"",
    "naïve-ñame.txt": "unicode file",
}


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dvcrepo")
    write_tree(root, TREE)
    (root / "data" / "empty-dir").mkdir()  # empty folders are ignored by DVC and by us
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    from dvc.repo import Repo

    repo = Repo.init(str(root))
    for target in ["data", "single.csv", "empty.bin", "naïve-ñame.txt"]:
        repo.add(str(root / target))
    return root


def _dvc_entry(root: Path, target: str) -> dict[str, object]:
    meta = yaml.safe_load((root / f"{target}.dvc").read_text("utf-8"))
    return dict(meta["outs"][0])


@pytest.mark.parametrize("target", ["single.csv", "empty.bin", "naïve-ñame.txt"])
def test_file_md5_matches_dvc(dvc_repo: Path, target: str) -> None:
    entry = _dvc_entry(dvc_repo, target)
    md5, size = HashCache().file(dvc_repo / target)
    assert md5 == entry["md5"] == file_md5(dvc_repo / target)
    assert size == entry["size"]


def test_directory_hash_matches_dvc(dvc_repo: Path) -> None:
    entry = _dvc_entry(dvc_repo, "data")
    md5, size, nfiles = HashCache().directory(dvc_repo / "data")
    assert md5 == entry["md5"] and md5.endswith(".dir")
    assert size == entry["size"]
    assert nfiles == entry["nfiles"]


def test_cache_skips_unchanged_files_and_notices_changes(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("v1")
    cache = HashCache(tmp_path / "cache.sqlite")
    first, _ = cache.file(f)
    # A second cache reads the persisted entry: same answer without the in-memory dict.
    assert HashCache(tmp_path / "cache.sqlite").file(f)[0] == first
    f.write_text("v2 longer")
    assert cache.file(f)[0] == file_md5(f) != first


def test_is_md5() -> None:
    assert is_md5("d41d8cd98f00b204e9800998ecf8427e")
    assert is_md5("d41d8cd98f00b204e9800998ecf8427e.dir")
    assert not is_md5("D41D8CD98F00B204E9800998ECF8427E")
    assert not is_md5("model.pkl")
