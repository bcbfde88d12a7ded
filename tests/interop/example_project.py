"""CMF's example-get-started project for the tests: the stage scripts, params.yaml and a small
raw data file of the same shape, run by cmfq's compatibility layer or by the real cmflib."""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.interop.peers import check, run_peer

HERE = Path(__file__).parent
EXAMPLE = HERE / "example_get_started"
STAGES = [("parse", ["artifacts/data.xml.gz", "artifacts/parsed"]),
          ("featurize", ["artifacts/parsed", "artifacts/features"]),
          ("train", ["artifacts/features", "artifacts/model"]),
          ("test", ["artifacts/model", "artifacts/features", "artifacts/test_results"])]
WORDS = ("python pandas numpy list dict error import class function loop array string java spring maven "
         "thread sql join index query model train data").split()


def write_posts(path: Path, count: int = 300, seed: int = 7) -> Path:
    """A gzipped file of StackOverflow posts as XML lines, the shape of CMF's data.xml.gz."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(1, count + 1):
            tags = "".join(f"&lt;{t}&gt;" for t in rng.sample(["python", "java", "sql", "r", "c++"], 2))
            title = " ".join(rng.choices(WORDS, k=6))
            body = "&lt;p&gt;" + " ".join(rng.choices(WORDS, k=25)) + "&lt;/p&gt;"
            f.write(f'  <row Id="{i}" PostTypeId="1" CreationDate="2010-07-{1 + i % 28:02d}T10:00:00.000" '
                    f'Score="{i % 7}" ViewCount="{10 * i}" Body="{body}" OwnerUserId="{i % 50}" '
                    f'LastActivityDate="2010-08-01T00:00:00.000" Title="{title}" Tags="{tags}" AnswerCount="1" />\n')
    return path


def make_project(root: Path, *, scripts: Path = EXAMPLE / "src", params: Path = EXAMPLE / "params.yaml",
                 use: str = "cmflib") -> Path:
    """CMF's example project in ``root``: the stage scripts (import lines pointed at ``use``),
    params.yaml, artifacts/data.xml.gz and artifacts/labels.csv."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    for script in sorted(scripts.glob("*.py")):
        text = script.read_text("utf-8")
        if use == "cmfq":
            text = adapt_imports(text)
        (root / "src" / script.name).write_text(text, "utf-8")
    shutil.copy(params, root / "params.yaml")
    data = write_posts(root / "artifacts" / "data.xml.gz")
    (root / "artifacts" / "labels.csv").write_text(f"File, Lines, Size\ndata.xml.gz, 300, {data.stat().st_size}\n")
    return root


def adapt_imports(text: str) -> str:
    """The only change a cmflib script needs: its import lines."""
    text = re.sub(r"^from cmflib\.cmf import Cmf$", "from cmfq.compat.cmf import Cmf", text, flags=re.M)
    return re.sub(r"^from cmflib\.cmfquery import CmfQuery$", "from cmfq.compat.cmfquery import CmfQuery", text,
                  flags=re.M)


def run_stages(root: Path, python: str | None = None, env: dict[str, str] | None = None) -> None:
    """Run the four logging stages in order with ``python`` (default: ours)."""
    for name, args in STAGES:
        proc = subprocess.run([python or sys.executable, f"src/{name}.py", *args], cwd=root, capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 0, f"{name}.py failed:\n{proc.stderr[-3000:]}"


def git_dvc_init(root: Path) -> None:
    """What cmflib insists on before it logs: a git repo with a remote, DVC with a default remote."""
    script = f"""
set -e
cd {root}
git init -q . && git config user.email t@example.invalid && git config user.name test
git commit -q --allow-empty -m init
git remote add cmf_origin https://git.invalid/example.git
dvc init -q && dvc remote add -d -q local {root.parent / (root.name + '-dvc-remote')}
git add .dvc .dvcignore && git commit -q -m "dvc init"
"""
    check(run_peer("cmflib", ["-c", f"import subprocess; subprocess.run({script!r}, shell=True, check=True)"]))


