"""The cluster's guard: a command resource that is never replaced (it has no triggers), so
its `delete` runs only when the cluster leaves the stack's chain: `pulumi destroy`, the
cluster removed from `gke-mesh:clusters`, or `migration.enabled: false`.

Create draws the guard's id and writes nothing to the cluster: preflight claims the cluster
(ConfigMap kube-system/gke-mesh-owner, signed) for this stack and this guard, only after
every check passed. Update keeps its result. Delete refuses while this stack's migration
record says the cluster was changed and not yet put back (security relaxed, control plane
purged): dropping the stack's hold then would abandon a dismantled cluster without a word.
A record of this stack that changed nothing is cleared; another stack's record is left
alone; the claim is released only when it names this guard (a renamed guard's new resource
may have claimed the cluster since: the old one's delete leaves it).
"""

from __future__ import annotations

import secrets
from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.kube import PLAN_KUBE, cluster_access
from meshops.cluster.process import StepFailed, Tools
from meshops.context import StepInput
from meshops.steps.common import OWNER_READ, RECORD_READ, ledger_of

SUMMARY = ("Holds the cluster for this stack: never replaced; its delete (destroy, cluster removed, migration disabled) "
           "refuses while this stack's migration is in flight past its first change, and releases only its own claim.")
STOPS = "deleting it while a migration of this stack has changed the cluster and not finished"
NEEDS_DECISION = False
NEEDS_BACKUP = False
CLUSTER_DATA = False
OPTIONS = ("stack",)


def commands(inp: StepInput) -> list[list[str]]:
    return []


def delete_commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, OWNER_READ,
            PLAN_KUBE.delete("configmap", [record.OWNER], record.NAMESPACE)]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    """The guard's id: drawn once (the resource is never replaced), kept in state."""
    return {"cluster": inp.ctx.cluster, "stack": inp.options.stack, "guarded": True, "guard_id": secrets.token_hex(8)}


def release(inp: StepInput, tools: Tools) -> dict[str, Any]:
    ctx, runner, stack = inp.ctx, tools.runner, inp.options.stack
    with cluster_access(ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        try:
            found = ledger.read()
        except StepFailed:
            found = None  # another stack's record, or one nobody signed: left alone
        if found is None:
            released = ledger.release(inp.guard_id)
            return {"cluster": ctx.cluster, "released": released}
        if found.touched:
            raise StepFailed(
                f"cluster {ctx.cluster} is mid-migration ({found.describe()}): its mesh security may be relaxed and its "
                f"control plane purged. Finish it first (put the cluster back in the stack and run `pulumi up`), or restore "
                f"by hand: venv/bin/python -m meshops restore --config Pulumi.{stack.rsplit('/', 1)[-1]}.yaml --cluster {ctx.cluster}; only then "
                "remove it (README \"When a migration fails\")")
        ledger.clear()
        released = ledger.release(inp.guard_id)
    tools.log(f"[{ctx.cluster}] guard: an unstarted migration record of stack {stack} was cleared")
    return {"cluster": ctx.cluster, "released": released}
