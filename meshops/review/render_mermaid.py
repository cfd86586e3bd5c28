"""The plan as a Mermaid flowchart: shared APIs, the fleet Feature and the promotion gate
on top, one subgraph per cluster, changes coloured. APIs of a project are one node, and
edges implied by a longer path are dropped, so 10 clusters stay readable.

Mermaid refuses a diagram longer than 50 000 characters (its default `maxTextSize`). A stack
whose drawing would pass BUDGET draws clusters with the same chain once: one subgraph for
every set of clusters with the same nodes, changes and edges (to each other and to the
shared nodes), titled with their names and "× N"; edges between clusters (maxParallel's
"start after that cluster verified") become dotted edges between those subgraphs. If that
is still too long, the APIs of every project become one node."""

from __future__ import annotations

from typing import Any

_STYLES = {
    "replace": "fill:#f8d7da,stroke:#842029",
    "update": "fill:#fff3cd,stroke:#664d03",
    "create": "fill:#d1e7dd,stroke:#0f5132",
    "delete": "fill:#e2e3e5,stroke:#41464b,stroke-dasharray:4 2",
}
MERMAID_MAX_TEXT = 50_000
"""mermaid's default `maxTextSize`: a longer diagram is not drawn at all."""
BUDGET = 40_000
"""Above this, clusters with the same chain are drawn once (room left for a longer title or style)."""
_NAMES_IN_TITLE = 2_000
"""Characters of cluster names in a grouped subgraph's title; more are counted, not listed."""


def _node_key(r: dict[str, Any]) -> str:
    if r["step"] and r["step"].startswith("api:"):
        return f"apis:{r['inputs'].get('project')}"
    return r["urn"]


def _reduce(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Drop u->v when v is also reachable from u through another node."""
    succ: dict[str, set[str]] = {}
    for u, v in edges:
        succ.setdefault(u, set()).add(v)

    def reachable(start: str, skip_direct: str) -> bool:
        todo = [n for n in succ.get(start, ()) if n != skip_direct]
        seen = set(todo)
        while todo:
            node = todo.pop()
            if node == skip_direct:
                return True
            for nxt in succ.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return {(u, v) for u, v in edges if not reachable(u, v)}


class _Graph:
    """Nodes (by key, in plan order), their labels, clusters and changes, and reduced edges."""

    def __init__(self, plan: dict[str, Any]):
        shown = [r for r in plan["resources"] if r["step"]]
        self.keys: list[str] = []
        self.labels: dict[str, tuple[str, str]] = {}
        self.cluster: dict[str, str | None] = {}
        for r in shown:
            key = _node_key(r)
            if key not in self.labels:
                self.keys.append(key)
                self.cluster[key] = r["cluster"]
                self.labels[key] = (_label(r, key), r.get("change", "none"))
            elif r.get("change", "none") != "none":
                label, change = self.labels[key]
                self.labels[key] = (label, "update" if change == "none" else change)
        key_of = {r["urn"]: _node_key(r) for r in shown}
        edges = {(key_of[d], key_of[r["urn"]]) for r in shown for d in r["dependsOn"] if d in key_of and key_of[d] != key_of[r["urn"]]}
        # What feeds a resource without being one of its dependencies: a provider feeds the
        # resources it manages (an option, not a dependency); the promotion gate is read
        # before anything is registered and can refuse the whole stack, so it feeds every
        # cluster's first step.
        by_cluster: dict[str, list[str]] = {}
        for key in self.keys:
            if self.cluster[key]:
                by_cluster.setdefault(self.cluster[key], []).append(key)
        gates = [key for key in self.keys if self.labels[key][0].startswith("promotion gate")]
        for members in by_cluster.values():
            providers = [k for k in members if self.labels[k][0] == "kubernetes-provider"]
            edges |= {(p, k) for p in providers for k in members if self.labels[k][0].startswith("namespace ")}
            first = next((k for k in members if self.labels[k][0] == "guard"), None) or next(
                (k for k in members if not any(v == k and self.cluster[u] == self.cluster[k] for u, v in edges)), None)
            edges |= {(gate, first) for gate in gates if first}
        self.edges = _reduce(edges)
        self.clusters = sorted(by_cluster)
        self.members = by_cluster


def _label(r: dict[str, Any], key: str) -> str:
    if key.startswith("apis:"):
        return f"APIs {r['inputs'].get('project')}"
    if r["step"] == "mesh-namespace":
        return f"namespace {(r['inputs'].get('metadata') or {}).get('name', '?')}"
    if r["step"] == "promotion-gate":
        return f"promotion gate: outputs of {r['name']}"
    return r["step"]


def _node(node_id: str, label: str, change: str) -> str:
    text = label if change == "none" else f"{label} ({change})"
    return f'    {node_id}["{text}"]' + (f":::{change}" if change != "none" else "")


def _styles(changes: set[str]) -> list[str]:
    return [f"  classDef {change} {_STYLES[change]}" for change in sorted(changes - {"none"})]


def _shared_title(g: _Graph) -> str:
    gated = any(label.startswith("promotion gate") for label, _ in g.labels.values())
    return f'  subgraph shared["shared: APIs{", fleet Feature and promotion gate" if gated else " and fleet Feature"}"]'


def _expanded(g: _Graph) -> str:
    ids = {key: f"n{number}" for number, key in enumerate(g.keys)}
    lines = ["flowchart TB", _shared_title(g), "    direction LR"]
    lines += [_node(ids[k], *g.labels[k]) for k in g.keys if not g.cluster[k]]
    lines.append("  end")
    for number, cluster in enumerate(g.clusters):
        lines += [f'  subgraph c{number}["{cluster}"]', "    direction TB"]
        lines += [_node(ids[k], *g.labels[k]) for k in g.members[cluster]]
        lines.append("  end")
    lines += [f"  {ids[u]} --> {ids[v]}" for u, v in sorted(g.edges, key=lambda e: (int(ids[e[0]][1:]), int(ids[e[1]][1:])))]
    return "\n".join(lines + _styles({change for _, change in g.labels.values()})) + "\n"


def _grouped(g: _Graph, one_api_node: bool) -> str:
    """Clusters with the same drawing drawn once; with `one_api_node`, every project's APIs as one node."""
    def shared(key: str) -> str:
        return "apis:*" if one_api_node and key.startswith("apis:") else key

    def local(key: str) -> str:
        return g.labels[key][0] if g.cluster[key] else shared(key)

    signature: dict[str, tuple] = {}
    for cluster in g.clusters:
        own = set(g.members[cluster])
        nodes = tuple(sorted(g.labels[k] for k in own))
        edges = tuple(sorted({(local(u), local(v)) for u, v in g.edges
                              if (u in own or v in own) and (u in own or not g.cluster[u]) and (v in own or not g.cluster[v])}))
        signature[cluster] = (nodes, edges)
    groups: dict[tuple, list[str]] = {}
    for cluster in g.clusters:
        groups.setdefault(signature[cluster], []).append(cluster)
    group_of = {cluster: number for number, members in enumerate(groups.values()) for cluster in members}

    shared_keys: list[str] = []
    for key in g.keys:
        if not g.cluster[key] and shared(key) not in shared_keys:
            shared_keys.append(shared(key))
    ids: dict[tuple, str] = {}
    lines = ["flowchart TB", _shared_title(g), "    direction LR"]
    projects = sum(1 for k in g.keys if k.startswith("apis:"))
    for key in shared_keys:
        ids[(None, key)] = f"n{len(ids)}"
        label, change = (f"APIs of each cluster's project ({projects} projects)", "none") if key == "apis:*" else g.labels[key]
        if key == "apis:*":
            changes = {g.labels[k][1] for k in g.keys if k.startswith("apis:")} - {"none"}
            change = sorted(changes)[0] if len(changes) == 1 else ("update" if changes else "none")
        lines.append(_node(ids[(None, key)], label, change))
    lines.append("  end")
    for number, members in enumerate(groups.values()):
        title = _title(members)
        lines += [f'  subgraph c{number}["{title}"]', "    direction TB"]
        for key in g.members[members[0]]:
            ids[(number, g.labels[key][0])] = f"n{len(ids)}"
            lines.append(_node(ids[(number, g.labels[key][0])], *g.labels[key]))
        lines.append("  end")

    def node_id(key: str) -> str:
        return ids[(group_of[g.cluster[key]], g.labels[key][0])] if g.cluster[key] else ids[(None, shared(key))]

    solid, dotted = set(), set()
    for u, v in g.edges:
        crossing = g.cluster[u] and g.cluster[v] and g.cluster[u] != g.cluster[v]
        (dotted if crossing else solid).add((node_id(u), node_id(v)))
    order = {node: int(node[1:]) for node in ids.values()}
    lines += [f"  {u} --> {v}" for u, v in sorted(solid, key=lambda e: (order[e[0]], order[e[1]]))]
    lines += [f'  {u} -.->|"then the next cluster"| {v}' for u, v in sorted(dotted, key=lambda e: (order[e[0]], order[e[1]]))]
    return "\n".join(lines + _styles({change for _, change in g.labels.values()})) + "\n"


def _title(members: list[str]) -> str:
    if len(members) == 1:
        return members[0]
    listed, length = [], 0
    for name in members:
        if length + len(name) > _NAMES_IN_TITLE:
            break
        listed.append(name)
        length += len(name) + 2
    more = f" and {len(members) - len(listed)} more" if len(listed) < len(members) else ""
    return f"{', '.join(listed)}{more} (× {len(members)})"


def render(plan: dict[str, Any]) -> str:
    g = _Graph(plan)
    text = _expanded(g)
    if len(text) > BUDGET:
        text = _grouped(g, one_api_node=False)
    if len(text) > BUDGET:
        text = _grouped(g, one_api_node=True)
    return text
