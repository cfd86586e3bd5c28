"""The plan as a runbook a reviewer reads top to bottom: per cluster, the ordered steps,
what each does, what protects the cluster and what can stop it, and the exact calls."""

from __future__ import annotations

import shlex
from typing import Any

from meshops.review.diff import summary
from meshops.steps import STEPS

MARK = {"none": "·", "create": "+ create", "update": "~ update", "replace": "± replace", "delete": "- delete"}
NOT_COMPARED = "not compared"
"""A plan without a base (`BASE=`/`--base`) knows nothing of changes: saying "unchanged" would be a lie."""


def _mark(resource: dict[str, Any]) -> str:
    return MARK[resource["change"]] if "change" in resource else NOT_COMPARED
_CLUSTER_ROLES_AFTER_CHAIN = ("membership", "mesh-management", "kubernetes-provider", "mesh-namespace", "cluster", "node-pool")


def _md(text: str) -> str:
    """Text for a table cell: no accidental HTML, emphasis or column breaks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _env(resource: dict[str, Any]) -> dict[str, str]:
    return resource["inputs"].get("environment") or {}


def _counts_line(plan: dict[str, Any]) -> str:
    counts = summary(plan)
    if "change" not in (plan["resources"][0] if plan["resources"] else {}):
        return f"{len(plan['resources'])} resources; changes: {NOT_COMPARED}"
    parts = [f"{n} {change}" for change, n in counts.items() if n and change != "none"]
    return f"{len(plan['resources'])} resources; changes: {', '.join(parts) or 'none'}"


def _step_rows(resources: list[dict[str, Any]]) -> list[str]:
    rows = ["| # | step | change | what it does | what can stop it |", "|---|---|---|---|---|"]
    for number, r in enumerate(resources, 1):
        step = STEPS[r["step"]]
        rows.append(f"| {number} | `{r['step']}` | {_mark(r)} | {_md(step.SUMMARY)} | {_md(step.STOPS) or '–'} |")
    return rows


def _calls(resources: list[dict[str, Any]]) -> list[str]:
    lines = ["<details><summary>Exact CLI calls (placeholders in &lt;angle brackets&gt; are found at run time)</summary>", ""]
    for r in resources:
        lines += [f"**{r['step']}**", "", "```sh", *(shlex.join(argv) for argv in r["commands"]), "```", ""]
    return lines + ["</details>"]


def render(plan: dict[str, Any], base_label: str | None = None) -> str:
    resources = plan["resources"]
    channels = sorted({_env(r).get("GKE_MESH_CHANNEL") for r in resources if r["step"] == "release-channel"} - {None})
    clusters = sorted({r["cluster"] for r in resources if r["cluster"]})
    out = [f"# Runbook: stack `{plan['stack']}`", "",
           f"Target channel **{', '.join(channels) or 'n/a'}** · {len(clusters)} cluster(s) · {_counts_line(plan)}"]
    if not base_label and not any("change" in r for r in resources):
        out += ["", f"Changes: **{NOT_COMPARED}**. This lists every step as declared; nothing here says what would run. "
                "To mark each resource with its change, compare with the deployed code: "
                "`make plan STACK=<stack> FORMAT=markdown BASE=origin/main`."]
    if base_label:
        out += ["", f"Changes are relative to `{base_label}`: ± replace re-runs a step, ~ update keeps a step's last result and runs nothing (only `release-channel` acts on an update: it changes the channel), · unchanged."]
    shared = [r for r in resources if r["cluster"] is None and r["step"]]
    out += ["", "## Shared by every cluster", "", "| change | role | resource |", "|---|---|---|"]
    out += [f"| {_mark(r)} | `{r['step']}` | {r['name']} |" for r in shared]
    for cluster in clusters:
        own = [r for r in resources if r["cluster"] == cluster]
        chain = [r for r in own if r["step"] in STEPS]
        channel = next((r for r in chain if r["step"] == "release-channel"), None)
        env = _env(channel) if channel else {}
        out += ["", f"## Cluster `{cluster}`", "",
                f"project `{env.get('GKE_MESH_PROJECT', '?')}` · location `{env.get('GKE_MESH_LOCATION', '?')}` · "
                f"membership `{env.get('GKE_MESH_MEMBERSHIP', '?')}` in `{env.get('GKE_MESH_MEMBERSHIP_LOCATION', '?')}`", ""]
        if any(r["step"] == "backup" for r in chain):
            out += ["Protection: a migration record in the cluster (kube-system/gke-mesh-migration) names this run and its backup; "
                    "nothing is deleted before `backup` has verified it; `relax-security` keeps traffic flowing while sidecars "
                    "are away; `restore` puts every object back, security first, before `reinject` restarts anything; "
                    "`verify` compares the cluster with the backup before it clears the record.", ""]
        out += _step_rows(chain)
        declared = [r for r in own if r["step"] in _CLUSTER_ROLES_AFTER_CHAIN]
        if declared:
            out += ["", "Declared alongside: " + ", ".join(f"`{r['step']}` {r['name']} ({_mark(r)})" for r in declared)]
        out += ["", *_calls(chain)]
    deleted = [r for r in resources if r.get("change") == "delete"]
    if deleted:
        out += ["", "## Removed from the stack", ""] + [f"- `{r['step'] or r['type']}` {r['name']}" for r in deleted]
    return "\n".join(out) + "\n"
