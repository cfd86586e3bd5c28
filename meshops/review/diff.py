"""The offline twin of `pulumi preview --diff`: what a change does to each resource.

Rules follow the engine: a resource absent from the base is created, one absent from
the new plan is deleted; a changed input under `replaceOnChanges` (pulumi-command adds
`triggers[*]` to every Command) or under a provider's replace-on-change property
replaces; any other changed input updates (a Command then runs `create` again); inputs
under `ignoreChanges` never count. An input unknown in the new plan but known in the
base counts as changed, as in a preview. An input still unknown in both counts as changed
when a resource it depends on is created or replaced: in a preview the outputs of a
resource being replaced are unknown, so what is computed from them (a step's triggers carry
preflight's attempt id) differs from the stored value (measured: the real engine previews
the release channel as a replace in a channel change, tests/test_program_e2e.py).
"""

from __future__ import annotations

from typing import Any

CHANGES = ("none", "create", "update", "replace", "delete")

# Properties whose change makes the provider replace the resource (from the providers'
# schemas: identity fields). Approximate by design; anything else is an update.
REPLACE_PROPERTIES = {
    "gcp:projects/service:Service": ("project", "service"),
    "gcp:gkehub/feature:Feature": ("name", "location", "project"),
    "gcp:gkehub/featureMembership:FeatureMembership": ("feature", "location", "membership", "membershipLocation", "project"),
    "gcp:container/cluster:Cluster": ("name", "location", "project"),
    "gcp:container/nodePool:NodePool": ("cluster", "location", "project", "nodeConfig"),
    "kubernetes:core/v1:NamespacePatch": ("metadata",),
}


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def changed_inputs(base: dict[str, Any], new: dict[str, Any], ignored: list[str]) -> set[str]:
    skip = {_top(p) for p in ignored}
    return {key for key in set(base) | set(new) if key not in skip and base.get(key) != new.get(key)}


UNKNOWN = "<unknown>"
"""How the offline plan writes a value known only after `up` (meshops/review/offline.py)."""


def _has_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return value == UNKNOWN


def change_of(base: dict[str, Any] | None, new: dict[str, Any], upstream_renewed: bool = False) -> str:
    """none | create | update | replace for one resource of the new plan; `upstream_renewed`:
    a resource it depends on is created or replaced by this change."""
    if base is None:
        return "create"
    ignored = new.get("options", {}).get("ignoreChanges", [])
    changed = changed_inputs(base["inputs"], new["inputs"], ignored)
    if upstream_renewed:
        skip = {_top(p) for p in ignored}
        changed |= {key for key, value in new["inputs"].items() if key not in skip and _has_unknown(value)}
    if not changed:
        return "none"
    replace_on = {_top(p) for p in new.get("options", {}).get("replaceOnChanges", [])}
    replace_on |= set(REPLACE_PROPERTIES.get(new["type"], ()))
    return "replace" if changed & replace_on else "update"


def annotate(base_plan: dict[str, Any] | None, new_plan: dict[str, Any]) -> dict[str, Any]:
    """`new_plan` with a "change" on every resource, plus base-only resources as "delete"."""
    base = {r["urn"]: r for r in (base_plan or {}).get("resources", [])}
    changes: dict[str, str] = {}
    resources = []
    for r in new_plan["resources"]:  # dependencies first (meshops/review/plan.py orders them)
        renewed = any(changes.get(d) in ("create", "replace") for d in r.get("dependsOn", []))
        changes[r["urn"]] = change_of(base.get(r["urn"]), r, renewed)
        resources.append({**r, "change": changes[r["urn"]]})
    urns = {r["urn"] for r in new_plan["resources"]}
    resources += [{**r, "change": "delete"} for urn, r in base.items() if urn not in urns]
    return {**new_plan, "resources": resources}


def summary(plan: dict[str, Any]) -> dict[str, int]:
    counts = {change: 0 for change in CHANGES}
    for resource in plan["resources"]:
        counts[resource.get("change", "none")] += 1
    return counts
