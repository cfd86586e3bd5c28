"""The validators of the gke-mesh policy pack, as plain functions (tests call them with
built arguments; constructing a PolicyPack would start a server)."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

Report = Callable[..., None]
COMMAND = "command:local:Command"
FEATURE_MEMBERSHIP = "gcp:gkehub/featureMembership:FeatureMembership"
REQUIRED_FOR_MANAGEMENT = ("mesh.googleapis.com", "connectgateway.googleapis.com")
DELETING_STEPS = ("purge", "relax-security")
DEFAULT_PROD_PATTERN = r"^prod"


def clusters_protected(args: ResourceValidationArgs, report: Report) -> None:
    """A GKE cluster must be `protect`ed: nothing in this program may delete it."""
    if args.resource_type == "gcp:container/cluster:Cluster" and not args.opts.protect:
        report(f"cluster {args.name} must be protected (protect=True)")


def apis_stay_on(args: ResourceValidationArgs, report: Report) -> None:
    """Destroying the stack must not disable an API other workloads may use."""
    if args.resource_type == "gcp:projects/service:Service" and args.props.get("disableOnDestroy") is not False:
        report(f"API {args.props.get('service')} must set disableOnDestroy=false")


def _ancestors(resource: PolicyResource) -> Iterable[PolicyResource]:
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        node = todo.pop()
        if node.urn not in seen:
            seen.add(node.urn)
            yield node
            todo.extend(node.dependencies)


def _step(resource: PolicyResource) -> str | None:
    create = str(resource.props.get("create", "")) if resource.resource_type == COMMAND else ""
    return create.rsplit(" ", 1)[1] if create.startswith("python3 -m meshops ") else None


def _cluster(resource: PolicyResource) -> str | None:
    return (resource.props.get("environment") or {}).get("GKE_MESH_CLUSTER")


def management_after_apis(args: StackValidationArgs, report: Report) -> None:
    """Mesh management must wait for the mesh and connectgateway APIs (without
    connectgateway provisioning stalls with REVISION_STALLED)."""
    for resource in args.resources:
        if resource.resource_type != FEATURE_MEMBERSHIP:
            continue
        enabled = {a.props.get("service") for a in _ancestors(resource) if a.resource_type == "gcp:projects/service:Service"}
        missing = [api for api in REQUIRED_FOR_MANAGEMENT if api not in enabled]
        if missing:
            report(f"{resource.name} does not depend on {', '.join(missing)}", resource.urn)


def deletions_after_backup(args: StackValidationArgs, report: Report) -> None:
    """No step that deletes cluster objects may run before that cluster's backup."""
    for resource in args.resources:
        if _step(resource) not in DELETING_STEPS:
            continue
        backed_up = any(_step(a) == "backup" and _cluster(a) == _cluster(resource) for a in _ancestors(resource))
        if not backed_up:
            report(f"{resource.name} deletes cluster objects but does not follow {_cluster(resource)}'s backup step", resource.urn)


def _stack_of(args: StackValidationArgs) -> str | None:
    for resource in args.resources:
        match = re.match(r"urn:pulumi:([^:]+)::", resource.urn)
        if match:
            return match.group(1)
    return None


def no_rapid_in_prod(args: StackValidationArgs, report: Report) -> None:
    """Prod-like stacks (name matching `prodStackPattern`, default ^prod) may not target rapid."""
    pattern = (args.get_config() or {}).get("prodStackPattern", DEFAULT_PROD_PATTERN)
    stack = _stack_of(args)
    if stack is None or not re.search(pattern, stack):
        return
    for resource in args.resources:
        if _step(resource) and (resource.props.get("environment") or {}).get("GKE_MESH_CHANNEL") == "rapid":
            report(f"stack {stack} matches {pattern!r} and may not target the rapid channel ({_cluster(resource)})", resource.urn)
            return
