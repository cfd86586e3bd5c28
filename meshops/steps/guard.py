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
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.kube import PLAN_KUBE, cluster_access
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.common import OWNER_READ, RECORD_READ, finish, ledger_of, rolled_back

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
    return [gcloud.describe_cluster(inp.ctx), OWNER_READ, RECORD_READ, gcloud.describe_mesh(inp.ctx.fleet_project),
            PLAN_KUBE.delete("configmap", [record.OWNER], record.NAMESPACE)]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    """The guard's id: drawn once (the resource is never replaced), kept in state."""
    return {"cluster": inp.ctx.cluster, "stack": inp.options.stack, "guarded": True, "guard_id": secrets.token_hex(8)}


def release(inp: StepInput, tools: Tools) -> dict[str, Any]:
    """Let the cluster go only when nothing of this stack's is half-way on it:
    - a record this stack cannot verify, while the cluster is not another stack's, stops it
      (forged, or an unreadable one: nothing proves the cluster is settled);
    - this stack's record that changed the cluster, or an older version of it put back (its
      signed copy beside the backup says the run went further, or is over), stops it;
    - with no record at all, mesh management MANUAL stops it (a run stopped half-way whose
      record was deleted leaves it so; the guard has no other trace of it).
    An untouched record is dropped (and marked over beside its backup), then the claim is
    released if it is this guard's."""
    ctx, runner, stack = inp.ctx, tools.runner, inp.options.stack
    with cluster_access(ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        held = ledger.owner()
        theirs = held is not None and not ledger.is_ours(held, inp.legacy_guard)
        try:
            found = ledger.read()
        except StepFailed as error:
            if theirs:  # another stack holds the cluster and its record: nothing here is this stack's
                return {"cluster": ctx.cluster, "released": False}
            raise StepFailed(f"cluster {ctx.cluster}: the guard will not let the cluster go: {error}") from None
        if found is None:
            refuse_if_manual(inp, runner)
            return {"cluster": ctx.cluster, "released": ledger.release(inp.guard_id, inp.legacy_guard)}
        problem = rolled_back(ledger, found)
        if found.touched or problem:
            raise StepFailed(
                f"cluster {ctx.cluster} is mid-migration ({found.describe()}{'; ' + problem if problem else ''}): its mesh "
                f"security may be relaxed and its control plane purged. Finish it first (put the cluster back in the stack "
                f"and run `pulumi up`), or restore by hand: venv/bin/python -m meshops restore --config "
                f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml --cluster {ctx.cluster}; only then remove it (README \"When a migration fails\")")
        finish(ledger, found, "dropped")
        ledger.clear()
        released = ledger.release(inp.guard_id, inp.legacy_guard)
    tools.log(f"[{ctx.cluster}] guard: an unstarted migration record of stack {stack} was cleared")
    return {"cluster": ctx.cluster, "released": released}


def refuse_if_manual(inp: StepInput, runner) -> None:
    state = mesh_state(run_json(runner, gcloud.describe_mesh(inp.ctx.fleet_project)), inp.ctx.membership_location,
                       inp.ctx.membership)
    if state.management == "MANAGEMENT_MANUAL":
        raise StepFailed(f"cluster {inp.ctx.cluster}: mesh management of {inp.ctx.membership} is MANUAL and there is no migration "
                         "record: a migration may have stopped half-way and its record been deleted. The guard will not let the "
                         "cluster go: check `venv/bin/python -m meshops status`, finish or restore by hand, set management back, "
                         "then remove it")
