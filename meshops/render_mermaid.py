"""The plan as a Mermaid flowchart: shared APIs and the fleet Feature on top, one
subgraph per cluster, changes coloured. APIs of a project are one node, and edges
implied by a longer path are dropped, so 10 clusters stay readable."""

from __future__ import annotations

from typing import Any

_STYLES = {
    "replace": "fill:#f8d7da,stroke:#842029",
    "update": "fill:#fff3cd,stroke:#664d03",
    "create": "fill:#d1e7dd,stroke:#0f5132",
    "delete": "fill:#e2e3e5,stroke:#41464b,stroke-dasharray:4 2",
}


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


def render(plan: dict[str, Any]) -> str:
    shown = [r for r in plan["resources"] if r["step"]]
    ids: dict[str, str] = {}
    labels: dict[str, tuple[str, str]] = {}
    for r in shown:
        key = _node_key(r)
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            label = f"APIs {r['inputs'].get('project')}" if key.startswith("apis:") else r["step"]
            if r["step"] == "mesh-namespace":
                label = f"namespace {(r['inputs'].get('metadata') or {}).get('name', '?')}"
            labels[key] = (label, r.get("change", "none"))
        elif r.get("change", "none") != "none":
            labels[key] = (labels[key][0], "update" if labels[key][1] == "none" else labels[key][1])
    key_of = {r["urn"]: _node_key(r) for r in shown}
    edges = {(key_of[d], key_of[r["urn"]]) for r in shown for d in r["dependsOn"] if d in key_of and key_of[d] != key_of[r["urn"]]}
    lines = ["flowchart TB"]

    def node(key: str) -> str:
        label, change = labels[key]
        text = label if change == "none" else f"{label} ({change})"
        return f'    {ids[key]}["{text}"]' + (f":::{change}" if change != "none" else "")

    lines += ['  subgraph shared["shared: APIs and fleet Feature"]', "    direction LR"]
    lines += [node(k) for k in ids if not any(r["cluster"] for r in shown if _node_key(r) == k)]
    lines.append("  end")
    for number, cluster in enumerate(sorted({r["cluster"] for r in shown if r["cluster"]})):
        lines += [f'  subgraph c{number}["{cluster}"]', "    direction TB"]
        lines += [node(k) for k in ids if any(r["cluster"] == cluster for r in shown if _node_key(r) == k)]
        lines.append("  end")
    lines += [f"  {ids[u]} --> {ids[v]}" for u, v in sorted(_reduce(edges), key=lambda e: (int(ids[e[0]][1:]), int(ids[e[1]][1:])))]
    used = {change for _, change in labels.values()} - {"none"}
    lines += [f"  classDef {change} {_STYLES[change]}" for change in sorted(used)]
    return "\n".join(lines) + "\n"
