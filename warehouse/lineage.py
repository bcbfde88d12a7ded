"""A lineage graph (artifacts and executions) and its renderings: tree, DOT, Mermaid, JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from cmfq.warehouse.text import printable

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse


@dataclass(frozen=True)
class Lineage:
    """Nodes (``id, type, label, kind, pipeline, status``) and data-flow edges
    (``source, target``: artifact -> execution for an input, execution -> artifact for an
    output) around a ``root`` artifact hash or execution id."""

    root: str
    nodes: pl.DataFrame
    edges: pl.DataFrame

    @classmethod
    def build(cls, wh: Warehouse, *, root: str, artifacts: list[str], executions: list[str],
              nodes: list[int]) -> Lineage:
        """The graph of these artifacts (hashes, and their index node ids) and executions."""
        from cmfq.warehouse.query import in_list

        if (resident := wh._resident()) is not None:
            return cls(root, *resident.graph(artifacts, executions, nodes))
        frame = wh.sql(
            """SELECT h AS id, 'artifact' AS type, coalesce(a.name, h) AS label,
                      coalesce(a.kind, '?') AS kind, NULL::VARCHAR AS pipeline, NULL::VARCHAR AS status
               FROM unnest(?::VARCHAR[]) t(h) LEFT JOIN artifacts a ON a.hash = h
               UNION ALL
               SELECT id, 'execution', stage, coalesce(type, 'execution'), pipeline, status
               FROM executions WHERE id IN (SELECT unnest(?::VARCHAR[]))
               ORDER BY type, label, id""", [artifacts, executions])
        # The events of the graph's artifacts (index probes on their node ids), kept where the
        # execution is in the graph too.
        where, args = in_list("node", nodes)
        edges = wh.sql(
            f"""WITH e AS MATERIALIZED (SELECT execution_id, artifact_hash, direction FROM idx.events WHERE {where})
                SELECT DISTINCT CASE direction WHEN 'in' THEN artifact_hash ELSE execution_id END AS source,
                       CASE direction WHEN 'in' THEN execution_id ELSE artifact_hash END AS target
                FROM e WHERE execution_id IN (SELECT unnest(?::VARCHAR[]))
                ORDER BY source, target""", [*args, executions])
        return cls(root, frame, edges)

    # -- renderings -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": self.nodes.to_dicts(), "edges": self.edges.to_dicts()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_dot(self) -> str:
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for n in self.nodes.iter_rows(named=True):
            shape = "box, style=rounded" if n["type"] == "execution" else "ellipse"
            extra = ", penwidth=2" if n["id"] == self.root else ""
            lines.append(f"  {_dot_id(n['id'])} [label={_dot_str(_label(n))}, shape={shape}{extra}];")
        for e in self.edges.iter_rows(named=True):
            lines.append(f"  {_dot_id(e['source'])} -> {_dot_id(e['target'])};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        lines = ["flowchart LR"]
        for n in self.nodes.iter_rows(named=True):
            text = _mermaid_str(_label(n))
            shape = f'(["{text}"])' if n["type"] == "execution" else f'["{text}"]'
            lines.append(f"  {_mermaid_id(n['id'])}{shape}")
        for e in self.edges.iter_rows(named=True):
            lines.append(f"  {_mermaid_id(e['source'])} --> {_mermaid_id(e['target'])}")
        lines.append(f"  style {_mermaid_id(self.root)} stroke-width:3px")
        return "\n".join(lines) + "\n"

    def to_tree(self, direction: str = "up") -> str:
        """Text tree from the root: upstream (what it came from), downstream, or both.

        Indentation grows only where the graph branches, so a 300-step chain stays readable;
        a node reached twice is printed once and then referred to.
        """
        info = {n["id"]: n for n in self.nodes.iter_rows(named=True)}
        ups: dict[str, list[str]] = defaultdict(list)
        downs: dict[str, list[str]] = defaultdict(list)
        for e in self.edges.iter_rows(named=True):
            ups[e["target"]].append(e["source"])
            downs[e["source"]].append(e["target"])
        out = [_tree_label(info.get(self.root), self.root)]
        if direction in ("up", "both"):
            _tree(out, self.root, ups, info, "", "↑ ", set())
        if direction in ("down", "both"):
            _tree(out, self.root, downs, info, "", "↓ ", set())
        return "\n".join(out) + "\n"


def _tree(out: list[str], node: str, nxt: dict[str, list[str]], info: dict[str, dict[str, Any]],
          prefix: str, arrow: str, seen: set[str]) -> None:
    # Iterative over linear runs, recursive only at branches: deep chains cannot overflow.
    while True:
        kids = sorted(set(nxt.get(node, [])), key=lambda k: (_sort_label(info.get(k)), k))
        if not kids:
            return
        if len(kids) == 1:
            kid = kids[0]
            out.append(prefix + arrow + _tree_label(info.get(kid), kid) + (" (shown above)" if kid in seen else ""))
            if kid in seen:
                return
            seen.add(kid)
            node = kid
            continue
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            repeat = kid in seen
            out.append(prefix + ("└─ " if last else "├─ ") + _tree_label(info.get(kid), kid)
                       + (" (shown above)" if repeat else ""))
            if not repeat:
                seen.add(kid)
                _tree(out, kid, nxt, info, prefix + ("   " if last else "│  "), arrow, seen)
        return


def _sort_label(n: dict[str, Any] | None) -> str:
    return str(n["label"]) if n else ""


def _tree_label(n: dict[str, Any] | None, node_id: str) -> str:
    if n is None:
        return node_id
    label = printable(str(n["label"]), newlines=False)
    if n["type"] == "execution":
        return f"[{label}] {node_id[:13]} · {printable(str(n['pipeline']), newlines=False)} · {n['status']}"
    return f"{label}  ({n['kind']} {node_id[:8]})"


def _label(n: dict[str, Any]) -> str:
    label = printable(str(n["label"]), newlines=False)  # one line of name, one of id
    if n["type"] == "execution":
        return f"{label}\n{n['id'][:13]} {n['status']}"
    return f"{label}\n{n['kind']} {n['id'][:8]}"


def _dot_id(value: str) -> str:
    return _dot_str(value)


def _dot_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _mermaid_id(value: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in value)


def _mermaid_str(value: str) -> str:
    return (value.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;")
            .replace(">", "&gt;").replace("\n", "<br/>"))
