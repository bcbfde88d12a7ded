"""Logging in a DVC + git project: stale .dvc files are reported, `dvc=True` versions
outputs through DVC's API, `git_commit=True` commits their .dvc files, and the code
version (commit, branch, dirty paths) is recorded; bad set-ups fail with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cmfq
from cmfq.ingest.dvc import DvcError
from cmfq.ingest.dvc_repo import StaleDvcWarning
from cmfq.ingest.gitinfo import MAX_DIRTY_PATHS, git_info, strip_credentials
from cmfq.ingest.hashing import file_md5
from tests.conftest import run_cli, write_tree
from tests.dvc.conftest import commit_all, dvc_add, dvc_repro, git


def _tracker(tmp_path: Path, **kwargs: object) -> cmfq.Tracker:
    return cmfq.Tracker("p", warehouse=tmp_path / "wh", capture_env=False, **kwargs)  # type: ignore[arg-type]


def _props(tmp_path: Path, digest: str) -> dict[str, object]:
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        return wh.artifact(digest)["properties"]


def _recorded_md5(dvcfile: Path) -> str:
    return str(yaml.safe_load(dvcfile.read_text("utf-8"))["outs"][0]["md5"])


@pytest.mark.parametrize("change", ["same size", "other size", "file in folder", "file added to folder"])
def test_stale_dvc_file_is_reported_and_not_trusted(project: Path, tmp_path: Path, change: str) -> None:
    import dvc.repo

    write_tree(project, {"model.bin": b"A" * 64, "ds/x.csv": "1\n", "ds/y.csv": "2\n"})
    with dvc.repo.Repo(str(project)) as repo:
        repo.scm_context.quiet = True
        dvc_add(repo, "model.bin", "ds")
    commit_all(project, "track")
    target = {"same size": "model.bin", "other size": "model.bin"}.get(change, "ds")
    if change == "same size":
        (project / "model.bin").write_bytes(b"B" * 64)  # only DVC's state (inode, mtime) can tell
    elif change == "other size":
        (project / "model.bin").write_bytes(b"A" * 65)
    elif change == "file in folder":
        (project / "ds" / "x.csv").write_text("9\n")
    else:
        (project / "ds" / "z.csv").write_text("3\n")
    with _tracker(tmp_path) as t, t.execution("train") as ex:
        with pytest.warns(StaleDvcWarning, match=f"{target} changed since {target}.dvc recorded it"):
            digest = ex.log_input(target)
    recorded = _recorded_md5(project / f"{target}.dvc")
    assert digest != recorded  # logged under the bytes' real hash, never the stale one
    props = _props(tmp_path, digest)
    assert props["dvc"] == {"path": target, "file": f"{target}.dvc", "commit": git(project, "rev-parse", "HEAD"),
                            "stale": True, "recorded_md5": recorded}


def test_fresh_paths_raise_no_warning_and_inner_file_is_checked(project: Path, tmp_path: Path,
                                                                recwarn: pytest.WarningsRecorder) -> None:
    import dvc.repo

    write_tree(project, {"ds/x.csv": "1\n", "ds/sub/y.csv": "2\n"})
    with dvc.repo.Repo(str(project)) as repo:
        repo.scm_context.quiet = True
        dvc_add(repo, "ds")
    with _tracker(tmp_path) as t, t.execution("train") as ex:
        whole, inner = ex.log_input("ds"), ex.log_input("ds/sub")
    assert not [w for w in recwarn if issubclass(w.category, StaleDvcWarning)]
    assert whole == _recorded_md5(project / "ds.dvc")
    assert _props(tmp_path, inner)["dvc"] == {"path": "ds/sub", "file": "ds.dvc", "commit": None}  # not committed


def test_dvc_true_adds_untracked_outputs_and_commits_them(project: Path, tmp_path: Path) -> None:
    write_tree(project, {"out/model.pkl": b"\x80weights" * 100, "out/features/a.parquet": b"PAR1",
                         "out/features/b.parquet": b"PAR2", "out/notes.txt": "scratch"})
    before = git(project, "rev-parse", "HEAD")
    with _tracker(tmp_path, dvc=True, git_commit=True) as t, t.execution("train") as ex:
        model = ex.log_output("out/model.pkl", kind="model")
        features = ex.log_output("out/features", kind="featureset")
        notes = ex.log_output("out/notes.txt", dvc=False)  # per call: left alone
        again = ex.log_output("out/model.pkl", kind="model")  # tracked now: nothing to add
    assert model == again == file_md5(project / "out/model.pkl") == _recorded_md5(project / "out/model.pkl.dvc")
    assert features == _recorded_md5(project / "out/features.dvc")
    assert not (project / "out/notes.txt.dvc").exists()
    log = git(project, "log", "--format=%H %s", f"{before}..HEAD").splitlines()
    assert len(log) == 2 and all(f"p/train, execution {ex.id}" in line for line in log)
    assert git(project, "status", "--porcelain", "--", "out/model.pkl.dvc", "out/features.dvc", "out/.gitignore") == ""
    commits = {_props(tmp_path, h)["dvc"]["commit"] for h in (model, features)}  # type: ignore[index]
    assert commits == {line.split()[0] for line in log}
    assert "dvc" not in _props(tmp_path, notes)


def test_dvc_add_refreshes_a_stale_dvc_file(project: Path, tmp_path: Path) -> None:
    import dvc.repo

    write_tree(project, {"model.bin": b"v1"})
    with dvc.repo.Repo(str(project)) as repo:
        repo.scm_context.quiet = True
        dvc_add(repo, "model.bin")
    (project / "model.bin").write_bytes(b"version 2")
    with _tracker(tmp_path) as t, t.execution("train") as ex:
        digest = ex.log_output("model.bin", dvc=True)
    assert digest == file_md5(project / "model.bin") == _recorded_md5(project / "model.bin.dvc")
    assert "stale" not in _props(tmp_path, digest)["dvc"]  # type: ignore[operator]


def test_outputs_of_the_stage_dvc_repro_is_running_are_not_taken_from_dvc_lock(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder) -> None:
    write_tree(project, {"dvc.yaml": "stages:\n  train:\n    cmd: echo v1 > model.txt\n    outs: [model.txt]\n"})
    import dvc.repo

    with dvc.repo.Repo(str(project)) as repo:
        dvc_repro(repo)
    (project / "model.txt").write_text("v2 being written by the running stage\n")
    monkeypatch.setenv("DVC_STAGE", "train")
    with _tracker(tmp_path, dvc=True) as t, t.execution("train") as ex:
        digest = ex.log_output("model.txt")  # no `dvc add`: DVC holds the lock and records it itself
    assert digest == file_md5(project / "model.txt")
    assert not [w for w in recwarn if issubclass(w.category, StaleDvcWarning)]
    assert not (project / "model.txt.dvc").exists()


def test_code_version_with_bounded_dirty_paths(project: Path, tmp_path: Path) -> None:
    git(project, "remote", "add", "origin", "https://bob:p@ss@w0rd@git.example.com/team/proj.git")
    write_tree(project, {f"scratch/{i:03}.txt": str(i) for i in range(MAX_DIRTY_PATHS + 10)})
    with _tracker(tmp_path) as t, t.execution("train") as ex:
        pass
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        row = wh.execution(ex.id)
    assert row["git_repo"] == "https://git.example.com/team/proj.git"  # no credentials, even with '@' in them
    assert row["git_commit"] == git(project, "rev-parse", "HEAD") and row["git_branch"] == "main"
    assert row["git_dirty"] is True
    assert row["properties"]["git_dirty_count"] == MAX_DIRTY_PATHS + 10
    assert row["properties"]["git_dirty_paths"] == [f"scratch/{i:03}.txt" for i in range(MAX_DIRTY_PATHS)]


def test_detached_head_is_recorded_and_refused_for_commits(project: Path, tmp_path: Path) -> None:
    sha = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "-q", "--detach")
    info = git_info(project)
    assert (info.commit, info.branch, info.detached) == (sha, None, True)
    with pytest.raises(DvcError, match="detached") as err:
        _tracker(tmp_path, dvc=True, git_commit=True)
    assert "git switch -c" in str(err.value)
    with _tracker(tmp_path, dvc=True) as t, t.execution("train") as ex:  # dvc add without commit is fine
        write_tree(project, {"m.bin": b"m"})
        assert ex.log_output("m.bin") == _recorded_md5(project / "m.bin.dvc")


def test_no_dvc_or_no_git_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    with pytest.raises(DvcError, match="not inside a DVC project") as err:
        _tracker(tmp_path, dvc=True)
    assert "dvc init" in str(err.value)
    with pytest.raises(DvcError, match="not inside a git repository"):
        _tracker(tmp_path, git_commit=True)
    nogit = tmp_path / "nogit"
    nogit.mkdir()
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q", "--no-scm"], cwd=nogit, check=True)
    monkeypatch.chdir(nogit)
    with pytest.raises(DvcError, match="not inside a git repository"):
        _tracker(tmp_path, dvc=True, git_commit=True)
    with _tracker(tmp_path, dvc=True) as t, t.execution("s") as ex:  # DVC without git: add works
        write_tree(nogit, {"x.txt": "x"})
        digest = ex.log_output("x.txt")
    assert _props(tmp_path, digest)["dvc"] == {"path": "x.txt", "file": "x.txt.dvc", "commit": None}


def test_a_script_with_a_bad_setup_exits_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import cmfq\ncmfq.Tracker('p', warehouse='wh', dvc=True)\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and "DvcError" in proc.stderr and "dvc init" in proc.stderr
    assert run_cli("-w", str(tmp_path / "wh"), "init", cwd=tmp_path).returncode == 0
    proc = run_cli("-w", str(tmp_path / "wh"), "artifacts", "push", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "not inside a DVC project" in proc.stderr and "--remote" in proc.stderr


def test_dirty_paths_of_renames_and_odd_names(project: Path) -> None:
    write_tree(project, {"a.txt": "a", "spaced name.txt": "s"})
    commit_all(project, "files")
    git(project, "mv", "a.txt", "b.txt")
    write_tree(project, {"spaced name.txt": "changed", "new\nline.txt": "n"})
    info = git_info(project)
    assert info.dirty and sorted(info.dirty_paths) == ["b.txt", "new\nline.txt", "spaced name.txt"]


def test_strip_credentials() -> None:
    assert strip_credentials("https://user:tok@host/x.git") == "https://host/x.git"
    assert strip_credentials("https://u:p@ss@host/x.git") == "https://host/x.git"
    assert strip_credentials("ssh://git@host:22/x.git") == "ssh://host:22/x.git"
    assert strip_credentials("git@github.com:org/x.git") == "git@github.com:org/x.git"  # no secret in scp form
    assert strip_credentials("https://host/a@b/x.git") == "https://host/a@b/x.git"


def test_dvc_metafiles_from_another_version_of_dvc(project: Path, tmp_path: Path) -> None:
    # A .dvc file written by DVC 2 has no `hash: md5`, and its md5 of a text file reads CRLF as LF.
    import hashlib

    legacy = hashlib.md5(b"crlf\n").hexdigest()
    write_tree(project, {"old.txt": "crlf\r\n", "old.txt.dvc": f"outs:\n- md5: {legacy}\n  size: 6\n  path: old.txt\n",
                         "gone.txt": "changed\r\n", "gone.txt.dvc": f"outs:\n- md5: {legacy}\n  size: 6\n  path: gone.txt\n"})
    with _tracker(tmp_path) as t, t.execution("s") as ex:
        digest = ex.log_input("old.txt")
        with pytest.warns(StaleDvcWarning):
            changed = ex.log_input("gone.txt")
    assert digest == file_md5(project / "old.txt") != legacy  # cmfq's id stays the plain md5
    assert _props(tmp_path, digest)["dvc"] == {"path": "old.txt", "file": "old.txt.dvc", "commit": None,
                                               "hash": "md5-dos2unix"}
    assert _props(tmp_path, changed)["dvc"]["stale"] is True  # type: ignore[index]
