"""The cluster's guard: a command resource that is never replaced (it has no triggers), so
its `delete` runs only when the cluster leaves the stack's chain: `pulumi destroy`, the
cluster removed from `gke-mesh:clusters`, or `migration.enabled: false`.

Create claims the cluster for this stack (ConfigMap kube-system/gke-mesh-owner) and
refuses when another stack holds it; update keeps its result. Delete refuses while this stack's
migration record says the cluster was changed and not yet put back (security relaxed,
control plane purged): dropping the stack's hold then would abandon a dismantled
cluster without a word. A record of this stack that changed nothing is cleared; another
stack's record is left alone.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.kube import PLAN_KUBE, cluster_access
from meshops.cluster.process import StepFailed, Tools
from meshops.context import StepInput
from meshops.steps.common import OWNER_READ, RECORD_READ

SUMMARY = ("Holds the cluster for this stack: never replaced; its delete (destroy, cluster removed, migration disabled) "
           "refuses while this stack's migration is in flight past its first change.")
STOPS = "deleting it while a migration of this stack has changed the cluster and not finished"
NEEDS_DECISION = False
NEEDS_BACKUP = False
CLUSTER_DATA = False
OPTIONS = ("stack",)


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_cluster(inp.ctx), OWNER_READ, PLAN_KUBE.create()]


def delete_commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, OWNER_READ,
            PLAN_KUBE.delete("configmap", [record.OWNER], record.NAMESPACE)]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    with cluster_access(inp.ctx, tools.runner) as kube:
        record.claim(tools.runner, kube, inp.options.stack, inp.ctx.cluster)
    return {"cluster": inp.ctx.cluster, "stack": inp.options.stack, "guarded": True}


def release(inp: StepInput, tools: Tools) -> dict[str, Any]:
    ctx, runner, stack = inp.ctx, tools.runner, inp.options.stack
    with cluster_access(ctx, runner) as kube:
        found = record.read(runner, kube)
        if found is None or found.stack != stack:
            record.release(runner, kube, stack)
            return {"cluster": ctx.cluster, "released": True}
        if found.touched:
            raise StepFailed(
                f"cluster {ctx.cluster} is mid-migration ({found.describe()}): its mesh security may be relaxed and its "
                f"control plane purged. Finish it first (put the cluster back in the stack and run `pulumi up`), or restore "
                f"by hand: python -m meshops restore --config Pulumi.{stack}.yaml --cluster {ctx.cluster}; only then remove it "
                "(README \"When a migration fails\")")
        record.clear(runner, kube)
        record.release(runner, kube, stack)
    tools.log(f"[{ctx.cluster}] guard: released; an unstarted migration record of stack {stack} was cleared")
    return {"cluster": ctx.cluster, "released": True}
