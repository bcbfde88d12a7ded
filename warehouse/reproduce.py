"""How to get an execution's code and inputs back: the shell commands ``cmfq show`` prints.

Text only: nothing here imports DVC or git, it reads what the warehouse recorded (the
execution's commit and dirty flag, and each input's ``dvc`` properties: its path in the
project, its ``.dvc``/``dvc.lock`` file and the commit holding that version of it).
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from cmfq.ingest.hashing import is_md5

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse


def reproduce_commands(wh: Warehouse, record: dict[str, Any]) -> list[str]:
    """Shell commands, run from the DVC project's root, that bring back an execution's code
    and inputs: ``git checkout`` of its commit, ``git checkout <commit> -- <file>`` for
    inputs whose ``.dvc``/``dvc.lock`` version was committed elsewhere, ``dvc pull`` of its
    DVC-tracked inputs, and ``cmfq artifacts pull`` for the others."""
    rows = wh.sql("SELECT a.hash, a.kind, a.properties::VARCHAR AS properties FROM events e "
                  "JOIN artifacts a ON a.hash = e.artifact_hash "
                  "WHERE e.execution_id = ? AND e.direction = 'in' ORDER BY a.name", [record["id"]])
    commit = record.get("git_commit")
    lines = [f"git checkout {commit}"] if commit else []
    if record.get("git_dirty"):
        count = (record.get("properties") or {}).get("git_dirty_count")
        lines.append(f"# the run had uncommitted changes{f' in {count} paths' if count else ''}: "
                     "this checkout is not exactly the code that ran")
    elsewhere: dict[str, list[str]] = {}
    targets: list[str] = []
    others = False
    for r in rows.iter_rows(named=True):
        if r["kind"] == "env" or not is_md5(r["hash"]):
            continue
        dvc = json.loads(r["properties"] or "{}").get("dvc")
        if not isinstance(dvc, dict) or not dvc.get("path") or dvc.get("stale") or not dvc.get("commit"):
            others = True  # not in a committed DVC version: only cmfq knows where its bytes went
            continue
        if dvc["commit"] != commit and dvc.get("file"):
            elsewhere.setdefault(dvc["commit"], []).append(dvc["file"])
        targets.append(dvc["path"])
    for sha, files in elsewhere.items():
        lines.append(f"git checkout {sha} -- {' '.join(shlex.quote(f) for f in sorted(set(files)))}")
    if targets:
        lines.append("dvc pull " + " ".join(shlex.quote(t) for t in sorted(set(targets))))
    if others:
        lines.append(f"cmfq artifacts pull --execution {record['id']}")
    return lines
