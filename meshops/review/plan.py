"""`meshops plan`: the resource graph of a stack, offline.

Runs the real program under mocks (meshops.review.offline) with the stack file's config and
prints every registered resource with its direct dependencies, its step role, its
cluster, its inputs and the CLI calls it makes (docs/architecture.md §7).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from meshops.cluster.execute import STACK_KEY
from meshops.context import DECISION_KEY, ContextError, Decision, StepInput, step_of
from meshops.review.offline import PROJECT, ROOT, Registration, run_program, stack_config
from meshops.steps import GUARD, STEPS, guard

_ROLE_BY_TYPE = {
    "gcp:gkehub/feature:Feature": "mesh-feature",
    "gcp:gkehub/featureMembership:FeatureMembership": "mesh-management",
    "gke-mesh:fleet:Membership": "membership",
    "gcp:container/cluster:Cluster": "cluster",
    "gcp:container/nodePool:NodePool": "node-pool",
    "pulumi:providers:kubernetes": "kubernetes-provider",
    "pulumi:pulumi:StackReference": "promotion-gate",
    "kubernetes:core/v1:NamespacePatch": "mesh-namespace",
}
_CLUSTER_COMPONENT = "gke-mesh:platform:ClusterMesh"


class PlanError(Exception):
    """The plan cannot be made; the message is one line for the user."""


def load_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` map of a stack file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanError(f"--config {path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PlanError(f"--config {path}: not valid YAML{where}") from None
    if document is None:
        return {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise PlanError(f"--config {path}: expected a stack file with a `config:` mapping")
    return document.get("config") or {}


def project_defaults(project_file: Path = ROOT / "Pulumi.yaml") -> dict[str, Any]:
    """Defaults declared in Pulumi.yaml's typed config, as the CLI applies them."""
    declared = (yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}).get("config") or {}
    return {key: spec["default"] for key, spec in declared.items() if isinstance(spec, dict) and "default" in spec}


def stack_name(path: Path, explicit: str | None) -> str:
    from components.settings import parse_stack

    if explicit is not None:
        return parse_stack(explicit)
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.startswith("Pulumi.") and name.endswith(suffix) and len(name) > len("Pulumi.") + len(suffix):
            return parse_stack(name[len("Pulumi."):-len(suffix)])
    raise PlanError(f"--config {path}: cannot tell the stack from the file name; pass --stack NAME")


def role_of(registration: Registration) -> str | None:
    if registration.type == "gcp:projects/service:Service":
        return f"api:{registration.inputs.get('service')}"
    if registration.type == "command:local:Command":
        return step_of(str(registration.inputs.get("create", "")))
    return _ROLE_BY_TYPE.get(registration.type)


def commands_of(registration: Registration) -> list[list[str]]:
    """The external CLI calls a resource's step makes."""
    if registration.type != "command:local:Command":
        return []
    create = str(registration.inputs.get("create", ""))
    step = step_of(create)
    if step == STACK_KEY:
        return []  # draws random bytes, calls nothing
    module = guard if step == GUARD else STEPS.get(step or "")
    if module is None:
        return [["sh", "-c", create]]
    env = dict(registration.inputs.get("environment") or {})
    env.pop(DECISION_KEY, None)  # known only once preflight has run
    try:
        inp = StepInput.from_environment(env, needs_decision=False, needs_channel=module is not guard, needs_key=False)
    except ContextError:
        return [["<step-environment-unknown>"]]
    return module.commands(StepInput(inp.ctx, inp.options, Decision.placeholder(inp.ctx)))


def load_stack_outputs(pairs: list[str]) -> dict[str, dict]:
    """`NAME=PATH.json` pairs: what `pulumi stack output --json` printed for stack NAME."""
    found = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise PlanError(f"--stack-outputs {pair!r}: expected NAME=PATH.json, e.g. organization/gke-mesh/dev=dev.json")
        try:
            found[name] = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise PlanError(f"--stack-outputs {name}: cannot read {path} ({error.strerror})") from None
        except ValueError:
            raise PlanError(f"--stack-outputs {name}: {path} is not JSON (use `pulumi stack output --json`)") from None
        if not isinstance(found[name], dict):
            raise PlanError(f"--stack-outputs {name}: {path} must hold a JSON object of stack outputs")
    return found


def build_plan(config_path: Path, stack: str | None = None, stack_outputs: dict[str, dict] | None = None) -> dict[str, Any]:
    """Run the program for a stack file and return the plan document."""
    name = stack_name(config_path, stack)
    config = stack_config(load_stack_file(config_path), project_defaults())
    registrations = run_program(config, name, stack_outputs=stack_outputs).registrations
    by_urn = {r.urn: r for r in registrations}

    def cluster_of(registration: Registration) -> str | None:
        node: Registration | None = registration
        while node is not None:
            if node.type == _CLUSTER_COMPONENT:
                return node.name
            node = by_urn.get(node.parent)
        return None

    resources = [
        {
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "parent": r.parent if r.parent in by_urn else None,
            "dependsOn": r.dependencies,
            "step": role_of(r),
            "cluster": cluster_of(r),
            "inputs": r.inputs,
            "commands": commands_of(r),
            "options": r.options,
        }
        for r in ordered(registrations)
    ]
    return {"project": PROJECT, "stack": name, "resources": resources}


def ordered(registrations: list[Registration]) -> list[Registration]:
    """Dependencies (and parents) before dependents, ties by URN: the same order on every
    run, although the SDK registers resources concurrently."""
    by_urn = {r.urn: r for r in registrations}
    done: set[str] = set()
    result: list[Registration] = []

    def visit(registration: Registration) -> None:
        if registration.urn in done:
            return
        done.add(registration.urn)
        for urn in sorted({registration.parent, *registration.dependencies}):
            if urn in by_urn:
                visit(by_urn[urn])
        result.append(registration)

    for registration in sorted(registrations, key=lambda r: r.urn):
        visit(registration)
    return result


def render_json(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
