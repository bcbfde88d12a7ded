"""The lineage graph as an Altair chart: a layered layout, node shapes by type, colours by kind.

Altair ships with Streamlit and renders offline; a click on a node comes back through
Streamlit's selection events, which the lineage page uses to recenter. The layout puts the
root at x = 0, what it came from to the left (x < 0) and what it fed to the right, one layer
per hop; beyond ``limit`` nodes only the nearest layers are drawn, so a 300-deep chain stays
quick to draw and to read.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import altair as alt
import polars as pl

from cmfq.warehouse.lineage import Lineage

LIMIT = 150


@dataclass(frozen=True)
class Drawing:
    chart: alt.LayerChart
    shown: int
    total: int


def layout(lineage: Lineage, tainted: set[str], limit: int = LIMIT) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Node positions (x = signed hop distance from the root, y = place within the layer)
    and the edges between drawn nodes; the third value is how many nodes exist in all."""
    succ, pred = defaultdict(list), defaultdict(list)
    for e in lineage.edges.iter_rows(named=True):
        succ[e["source"]].append(e["target"])
        pred[e["target"]].append(e["source"])
    layer: dict[str, int] = {lineage.root: 0}
    for nxt, sign in ((pred, -1), (succ, 1)):
        queue = deque([lineage.root])
        seen = {lineage.root}
        while queue:
            node = queue.popleft()
            for other in nxt.get(node, []):
                if other not in seen:
                    seen.add(other)
                    layer.setdefault(other, layer[node] + sign)
                    queue.append(other)
    info = {n["id"]: n for n in lineage.nodes.iter_rows(named=True)}
    ids = sorted((n for n in layer if n in info), key=lambda n: (abs(layer[n]), layer[n], str(info[n]["label"]), n))
    total, ids = len(ids), ids[:limit]
    by_layer: dict[int, list[str]] = defaultdict(list)
    for n in ids:
        by_layer[layer[n]].append(n)
    rows = []
    for x, members in by_layer.items():
        for i, n in enumerate(members):
            node = info[n]
            rows.append({"id": n, "x": x, "y": i - (len(members) - 1) / 2, "type": node["type"],
                         "kind": node["kind"], "label": str(node["label"]), "short": _short(str(node["label"])),
                         "pipeline": node["pipeline"] or "", "status": node["status"] or "",
                         "tainted": n in tainted, "root": n == lineage.root})
    nodes = pl.DataFrame(rows)
    pos = {r["id"]: (r["x"], r["y"]) for r in rows}
    edges = pl.DataFrame([{"x": pos[e["source"]][0], "y": pos[e["source"]][1], "x2": pos[e["target"]][0],
                           "y2": pos[e["target"]][1]} for e in lineage.edges.iter_rows(named=True)
                          if e["source"] in pos and e["target"] in pos],
                         schema={"x": pl.Float64, "y": pl.Float64, "x2": pl.Float64, "y2": pl.Float64})
    return nodes, edges, total


def draw(lineage: Lineage, tainted: set[str], limit: int = LIMIT) -> Drawing:
    nodes, edges, total = layout(lineage, tainted, limit)
    pick = alt.selection_point(name="node", fields=["id"], on="click")
    height = max(260, 46 * int(nodes.group_by("x").len()["len"].max() or 1))
    base_x = alt.X("x:Q", axis=None, scale=alt.Scale(padding=60))
    base_y = alt.Y("y:Q", axis=None, scale=alt.Scale(padding=30))
    links = alt.Chart(edges).mark_rule(color="#9aa5b1", strokeWidth=1.2).encode(
        x=base_x, y=base_y, x2="x2:Q", y2="y2:Q")
    points = alt.Chart(nodes).mark_point(filled=True, size=420, strokeWidth=3).encode(
        x=base_x, y=base_y,
        shape=alt.Shape("type:N", scale=alt.Scale(domain=["artifact", "execution"], range=["circle", "square"]),
                        legend=alt.Legend(title="node")),
        color=alt.Color("kind:N", legend=alt.Legend(title="kind")),
        stroke=alt.condition("datum.tainted", alt.value("#d62728"), alt.value("white")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.85)),
        tooltip=["label:N", "kind:N", "type:N", "pipeline:N", "status:N", "id:N", "tainted:N"],
    ).add_params(pick)
    labels = alt.Chart(nodes).mark_text(dy=-18, fontSize=11, color="#333").encode(
        x=base_x, y=base_y, text="short:N")
    chart = (links + points + labels).properties(height=height).configure_view(strokeWidth=0)
    return Drawing(chart, nodes.height, total)


def _short(label: str, width: int = 28) -> str:
    tail = label.rsplit("/", 1)[-1]
    return tail if len(tail) <= width else tail[: width - 1] + "…"
