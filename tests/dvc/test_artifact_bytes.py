"""Artifacts' bytes through DVC remotes (a folder, and S3 on the local moto server): log with
dvc=True, push, wipe the cache and the files, pull a model's lineage back byte for byte;
push from a project without DVC into a DVC-layout remote that `dvc pull` reads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from tests.conftest import write_tree
from tests.dvc.conftest import commit_all, dvc_add, dvc_init, git

runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["folder", "s3"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(url, DVC remote options) of an empty remote."""
    if request.param == "folder":
        return str(tmp_path / "dvc-remote"), {}
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/dvcstore", {"endpointurl": request.getfixturevalue("s3_server")["endpoint"]}


def _add_remote(root: Path, url: str, options: dict[str, str]) -> None:
    git(root, "status")  # the project exists
    lines = ["[core]", "    remote = store", "['remote \"store\"']", f"    url = {url}"]
    lines += [f"    {k} = {v}" for k, v in options.items()]
    (root / ".dvc" / "config").write_text("\n".join(lines) + "\n")


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".dvc" not in p.parts and ".git" not in p.parts
            and p.suffix != ".dvc" and p.name not in (".gitignore", ".dvcignore")}


def _log_pipeline(root: Path, wh: Path) -> dict[str, str]:
    write_tree(root, {"data/raw/a.csv": "x,y\n1,2\n", "data/raw/b.csv": "x,y\n3,4\n", "data/raw/empty.csv": "",
                      "data/raw/ünï.csv": "x,y\n5,6\n"})
    with cmfq.Tracker("demo", warehouse=wh, capture_env=False, dvc=True, git_commit=True) as t:
        with t.execution("prepare") as ex:
            ex.log_input("data/raw")  # not tracked: an input is never dvc-added
            write_tree(root, {"data/prepared/train.csv": "1,2\n3,4\n", "data/prepared/test.csv": "5,6\n"})
            prepared = ex.log_output("data/prepared")
        with t.execution("train") as ex:
            ex.log_input("data/prepared")
            write_tree(root, {"models/model.pkl": bytes(range(256)) * 40})
            model = ex.log_output("models/model.pkl", kind="model")
        with t.execution("unrelated") as ex:
            write_tree(root, {"other.bin": b"not in the model's lineage"})
            ex.log_output("other.bin")
    return {"prepared": prepared, "model": model}


def test_round_trip_through_the_projects_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               remote_url: tuple[str, dict[str, str]]) -> None:
    root, wh = tmp_path / "proj", tmp_path / "wh"
    dvc_init(root).close()
    _add_remote(root, *remote_url)
    commit_all(root, "init")
    monkeypatch.chdir(root)
    logged = _log_pipeline(root, wh)
    tracked = _digests(root)

    code, out, _ = cli("-w", str(wh), "artifacts", "status", "--artifact", "models/model.pkl", "-f", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == {"data/raw", "data/prepared", "models/model.pkl"}
    assert rows["models/model.pkl"]["cache"] is True and rows["models/model.pkl"]["remote"] is False
    assert rows["data/raw"]["cache"] is False and rows["data/raw"]["workspace"] == "ok"

    code, _, err = cli("-w", str(wh), "artifacts", "push", "--artifact", "models/model.pkl")
    assert code == 0, err
    assert "Pushed 9 objects of 3 artifacts" in err  # raw: 4 files + listing, prepared: 2 + listing, model
    code, _, err = cli("-w", str(wh), "artifacts", "push", "--artifact", "models/model.pkl")
    assert code == 0 and "Pushed 0 objects" in err  # nothing left to send

    shutil.rmtree(root / ".dvc" / "cache")
    for gone in ("data/raw", "data/prepared", "models/model.pkl", "other.bin"):  # the .dvc files stay
        shutil.rmtree(root / gone) if (root / gone).is_dir() else (root / gone).unlink()
    code, _, err = cli("-w", str(wh), "artifacts", "push", "--artifact", "models/model.pkl")
    assert code == 0 and "Pushed 0 objects of 3 artifacts" in err  # gone here, complete there: not a problem
    code, out, _ = cli("-w", str(wh), "artifacts", "status", "-e", _producer(wh, logged["model"]), "-f", "json")
    assert [r["workspace"] for r in json.loads(out) if r["name"] == "models/model.pkl"] == ["missing"]

    code, _, err = cli("-w", str(wh), "artifacts", "pull", "--artifact", "models/model.pkl")
    assert code == 0, err
    restored = _digests(root)
    assert restored == {k: v for k, v in tracked.items() if k != "other.bin"}  # byte-identical, lineage only
    with contextlib.chdir(root):
        import dvc.repo

        with dvc.repo.Repo(str(root)) as repo:  # DVC agrees: its cache holds what the .dvc files name
            assert repo.status(targets=["models/model.pkl.dvc", "data/prepared.dvc"]) == {}


def _producer(wh: Path, digest: str) -> str:
    with cmfq.Warehouse(wh) as w:
        return str(w.producer(digest)["id"][0])


def test_push_from_a_project_without_dvc_then_dvc_pull_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                remote_url: tuple[str, dict[str, str]]) -> None:
    url, options = remote_url
    plain, wh = tmp_path / "plain", tmp_path / "wh"
    files = {"ds/a.txt": "alpha\n", "ds/sub/b.txt": "beta\n", "model.bin": b"\x00\x01" * 500}
    write_tree(plain, files)
    monkeypatch.chdir(plain)
    with cmfq.Tracker("no-dvc", warehouse=wh, capture_env=False, capture_git=False) as t, t.execution("train") as ex:
        ex.log_input("ds")
        ex.log_output("model.bin", kind="model")
    args = ["-w", str(wh), "artifacts", "push", "--pipeline", "no-dvc", "--remote", url]
    args += ["--endpoint-url", options["endpointurl"]] if options else []
    code, _, err = cli(*args)
    assert code == 0 and "Pushed 4 objects of 2 artifacts" in err, err  # 2 files + listing, model

    # A DVC project tracking the same bytes pulls them from that remote with DVC itself.
    other = tmp_path / "other"
    repo = dvc_init(other, files)
    dvc_add(repo, "ds", "model.bin")
    repo.close()
    _add_remote(other, url, options)
    shutil.rmtree(other / ".dvc" / "cache")
    shutil.rmtree(other / "ds")
    (other / "model.bin").unlink()
    with contextlib.chdir(other):
        import dvc.repo

        with dvc.repo.Repo(str(other)) as repo:
            stats = repo.pull()
    assert stats["stats"]["fetched"] == 4  # DVC found every object cmfq pushed
    assert _digests(other) == _digests(plain)

    # And back: a fresh folder pulls from the remote with cmfq alone.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    args = ["-w", str(wh), "artifacts", "pull", "--pipeline", "no-dvc", "--remote", url]
    code, _, err = cli(*args + (["--endpoint-url", options["endpointurl"]] if options else []))
    assert code == 0, err
    assert _digests(fresh) == _digests(plain)


def test_no_remote_and_damaged_objects_are_clear(project: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    write_tree(project, {"m.bin": b"model"})
    with cmfq.Tracker("p", warehouse=wh, capture_env=False, dvc=True) as t, t.execution("train") as ex:
        ex.log_output("m.bin")
    code, _, err = cli("-w", str(wh), "artifacts", "push")
    assert code == 1 and "has no default remote" in err and "dvc remote add -d" in err
    code, _, err = cli("-w", str(wh), "artifacts", "push", "--remote", "nope")
    assert code == 1 and "no remote named 'nope'" in err

    remote = tmp_path / "r"
    code, _, err = cli("-w", str(wh), "artifacts", "push", "--remote", str(remote))
    assert code == 0, err
    (obj,) = [p for p in remote.rglob("*") if p.is_file()]
    assert obj.relative_to(remote).as_posix().startswith("files/md5/")  # DVC 3's layout
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")
    shutil.rmtree(project / ".dvc" / "cache")
    (project / "m.bin").unlink()
    code, _, err = cli("-w", str(wh), "artifacts", "pull", "--remote", str(remote))
    assert code == 1 and "damaged" in err and not (project / "m.bin").exists()
    obj.write_bytes(b"model")  # repaired
    write_tree(project, {"m.bin": b"something else"})
    code, _, err = cli("-w", str(wh), "artifacts", "pull", "--remote", str(remote))
    assert code == 1 and "--force" in err and (project / "m.bin").read_bytes() == b"something else"
    code, _, err = cli("-w", str(wh), "artifacts", "pull", "--remote", str(remote), "--force")
    assert code == 0 and (project / "m.bin").read_bytes() == b"model"
