"""The validators of the gke-mesh policy pack, as plain functions (tests call them with
built arguments; constructing a PolicyPack would start a server)."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

Report = Callable[..., None]
COMMAND = "command:local:Command"
FEATURE_MEMBERSHIP = "gcp:gkehub/featureMembership:FeatureMembership"
REQUIRED_FOR_MANAGEMENT = ("mesh.googleapis.com", "connectgateway.googleapis.com")
DELETING_STEPS = ("purge", "relax-security")
DEFAULT_PROD_PATTERN = r"^prod"
DEFAULT_DEV_PATTERN = r"^(dev|test)\b"
UNKNOWN = object()
"""What `_get` returns for a value the engine does not know yet (a preview: an upstream
resource is created or replaced). Stack policies read values through `_get`, so an unknown
value never raises `UnknownValueError`, which the policy SDK turns into an *advisory*
"can't run policy during preview" for the whole policy: the mandatory rules would then not
stop a bad preview. Every value the rules decide on comes from stack config (known in a
preview); the unknowns are the steps' state-fed inputs (decision, backup reference,
triggers), which no rule reads."""


def _get(mapping: Any, *path: str) -> Any:
    """mapping[path[0]][path[1]]..., None when absent, UNKNOWN when unknown in a preview."""
    node = mapping
    for key in path:
        if node is UNKNOWN or node is None:
            return node
        try:
            node = node.get(key) if hasattr(node, "get") else None
        except UnknownValueError:
            return UNKNOWN
    return node


def clusters_protected(args: ResourceValidationArgs, report: Report) -> None:
    """A GKE cluster must be `protect`ed: nothing in this program may delete it."""
    if args.resource_type == "gcp:container/cluster:Cluster" and not args.opts.protect:
        report(f"cluster {args.name} must be protected (protect=True)")


def apis_stay_on(args: ResourceValidationArgs, report: Report) -> None:
    """Destroying the stack must not disable an API other workloads may use."""
    if args.resource_type == "gcp:projects/service:Service" and _get(args.props, "disableOnDestroy") is not False:
        service = _get(args.props, "service")
        report(f"API {'(unknown)' if service is UNKNOWN else service} must set disableOnDestroy=false")


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
    if resource.resource_type != COMMAND:
        return None
    create = _get(resource.props, "create")
    if not isinstance(create, str):
        return None
    return create.rsplit(" ", 1)[1] if create.startswith("python3 -m meshops ") else None


def _env(resource: PolicyResource, key: str) -> Any:
    return _get(resource.props, "environment", key)


def _cluster(resource: PolicyResource) -> str | None:
    """The step's cluster: GKE_MESH_CLUSTER, or (should it be unknown) the resource name
    without its step suffix (`<cluster>-<step>`)."""
    cluster = _env(resource, "GKE_MESH_CLUSTER")
    if isinstance(cluster, str):
        return cluster
    step = _step(resource)
    return resource.name[: -len(step) - 1] if step and resource.name.endswith("-" + step) else None


def _descendants(resource: PolicyResource, resources: list[PolicyResource]) -> Iterable[PolicyResource]:
    dependents: dict[str, list[PolicyResource]] = {}
    for candidate in resources:
        for dependency in candidate.dependencies:
            dependents.setdefault(dependency.urn, []).append(candidate)
    seen: set[str] = set()
    todo = list(dependents.get(resource.urn, []))
    while todo:
        node = todo.pop()
        if node.urn not in seen:
            seen.add(node.urn)
            yield node
            todo.extend(dependents.get(node.urn, []))


def management_after_apis(args: StackValidationArgs, report: Report) -> None:
    """Mesh management must wait for the mesh and connectgateway APIs (without
    connectgateway provisioning stalls with REVISION_STALLED)."""
    for resource in args.resources:
        if resource.resource_type != FEATURE_MEMBERSHIP:
            continue
        enabled = {_get(a.props, "service") for a in _ancestors(resource) if a.resource_type == "gcp:projects/service:Service"}
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


def _pattern(args: StackValidationArgs, key: str, default: str) -> re.Pattern[str]:
    return re.compile((args.get_config() or {}).get(key, default), re.IGNORECASE)


def no_rapid_in_prod(args: StackValidationArgs, report: Report) -> None:
    """Prod-like stacks (name matching `prodStackPattern`, default ^prod, case-insensitive)
    may not target rapid."""
    pattern = _pattern(args, "prodStackPattern", DEFAULT_PROD_PATTERN)
    stack = _stack_of(args)
    if stack is None or not pattern.search(stack):
        return
    for resource in args.resources:
        channel = _env(resource, "GKE_MESH_CHANNEL") if _step(resource) else None
        if isinstance(channel, str) and channel.lower() == "rapid":
            report(f"stack {stack} matches {pattern.pattern!r} and may not target the rapid channel ({_cluster(resource)})", resource.urn)
            return


def backups_in_a_bucket(args: StackValidationArgs, report: Report) -> None:
    """Outside dev-like stacks (name matching `devStackPattern`, default ^(dev|test)\\b,
    case-insensitive) a backup step's `backupUri` must be `gs://`: a local folder does not
    outlive the machine that ran `pulumi up`."""
    stack = _stack_of(args)
    if stack is not None and _pattern(args, "devStackPattern", DEFAULT_DEV_PATTERN).search(stack):
        return
    for resource in args.resources:
        if _step(resource) != "backup":
            continue
        uri = _env(resource, "GKE_MESH_BACKUP_URI")
        if uri is UNKNOWN:
            report(f"{resource.name}: backupUri is not known in this preview; it must be a gs:// URI in stack {stack}", resource.urn)
        elif not (isinstance(uri, str) and uri.startswith("gs://")):
            report(f"{resource.name}: backupUri {uri!r} is not gs://; stack {stack} is not dev-like, so the backup must be in a bucket",
                   resource.urn)


def relaxed_security_is_restored(args: StackValidationArgs, report: Report) -> None:
    """A cluster's relax-security step must have that cluster's restore step among its
    descendants: what is relaxed is put back."""
    for resource in args.resources:
        if _step(resource) != "relax-security":
            continue
        cluster = _cluster(resource)
        if not any(_step(d) == "restore" and _cluster(d) == cluster for d in _descendants(resource, args.resources)):
            report(f"{resource.name} relaxes security but no restore step of {cluster} follows it", resource.urn)
