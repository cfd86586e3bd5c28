"""Keep traffic flowing while sidecars go away: STRICT mTLS -> PERMISSIVE, and (opt-in)
AuthorizationPolicies removed. The backup holds the originals; `restore` puts them back."""

from __future__ import annotations

import json
from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import planned_reads, planned_writes, read_backup
from meshops.cluster.drift import compare_applies, supplement_if_drifted
from meshops.cluster.inventory import crds
from meshops.cluster.kube import PLAN_KUBE, cluster_access, in_batches, items
from meshops.cluster.objects import (
    AUTHORIZATION_POLICY, DESTINATION_RULE, PEER_AUTHENTICATION, istio_kinds, permissive_patch, without_mutual_tls
)
from meshops.cluster.process import Tools
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, backup_ref, ledger_of, owner_of, skipped, this_run, write_copy

SUMMARY = ('Compares the live Istio objects with the backup (what changed since goes into a supplementary backup), then turns '
           'STRICT PeerAuthentications PERMISSIVE, takes ISTIO_MUTUAL out of DestinationRules (auto mTLS) and removes '
           'AuthorizationPolicies only if asked, so traffic flows while sidecars go away.')
STOPS = 'no verified backup; a migration record that is not this run\'s'
NEEDS_DECISION = True
NEEDS_BACKUP = True
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("relax_security", "remove_authorization_policies")


def commands(inp: StepInput) -> list[list[str]]:
    k, found = PLAN_KUBE, []
    if inp.options.relax_security:
        found += [k.get(PEER_AUTHENTICATION, all_namespaces=True),
                  k.merge_patch(PEER_AUTHENTICATION, "<name>", "<namespace>", {"spec": {"mtls": {"mode": "PERMISSIVE"}}}),
                  k.get(DESTINATION_RULE, all_namespaces=True), k.replace()]
    if inp.options.remove_authorization_policies:
        found += [k.get(AUTHORIZATION_POLICY, all_namespaces=True), k.delete(AUTHORIZATION_POLICY, ["<name>"], "<namespace>")]
    if not found:
        return []
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, *planned_reads("<backup-location>"),
            k.get("customresourcedefinitions"), k.get("<istio-resource>", all_namespaces=True),
            *planned_writes("<backup-location>/supplement-<n>"), RECORD_WRITE, *found]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    opts = inp.options
    if not (opts.relax_security or opts.remove_authorization_policies):
        return {"cluster": inp.ctx.cluster, "relaxed": 0, "relaxed_destination_rules": 0, "removed": 0}
    relaxed, relaxed_rules, removed = [], [], []
    ref = backup_ref(inp)
    with cluster_access(inp.ctx, tools.runner) as kube:
        ledger = ledger_of(inp, tools.runner, kube)
        current = this_run(ledger, inp, ref, step="relax-security")
        backup = read_backup(current.backup, tools.runner, owner_of(inp), current.run_id)  # nothing changes without a verified backup
        if compare_applies(current):  # every try: a teammate may have edited since the last one
            current, ref, backup = supplement_if_drifted(inp, tools, ledger, current, backup)
        current = ledger.advance(current, "relaxed")  # before any change: the record never under-states
        write_copy(ledger, current)  # the first change of the cluster: the copy beside the backup says so too
        served = {k.resource for k in istio_kinds(crds(tools.runner, kube))}
        if opts.relax_security and PEER_AUTHENTICATION in served:
            for pa in items(tools.runner, kube.get(PEER_AUTHENTICATION, all_namespaces=True)):
                patch = permissive_patch(pa)
                if patch:
                    meta = pa["metadata"]
                    tools.runner(kube.merge_patch(PEER_AUTHENTICATION, meta["name"], meta["namespace"], patch))
                    relaxed.append(f"{meta['namespace']}/{meta['name']}")
        if opts.relax_security and DESTINATION_RULE in served:
            for dr in items(tools.runner, kube.get(DESTINATION_RULE, all_namespaces=True)):
                plain = without_mutual_tls(dr)
                if plain is not None:  # replaced from stdin: its spec is cluster data, kept out of argv
                    tools.runner(kube.replace(), input=json.dumps(plain))
                    relaxed_rules.append(f"{dr['metadata']['namespace']}/{dr['metadata']['name']}")
        if opts.remove_authorization_policies and AUTHORIZATION_POLICY in served:
            by_ns: dict[str, list[str]] = {}
            for ap in items(tools.runner, kube.get(AUTHORIZATION_POLICY, all_namespaces=True)):
                by_ns.setdefault(ap["metadata"]["namespace"], []).append(ap["metadata"]["name"])
            doomed = [f"{ns}/{n}" for ns, names in sorted(by_ns.items()) for n in sorted(names)]
            # Written before deleting: the drift check must know these are ours, not a teammate's deletions.
            current = ledger.advance(current, current.phase, removed_policies=tuple(sorted({*current.removed_policies, *doomed})))
            for ns, names in sorted(by_ns.items()):
                for batch in in_batches(sorted(names)):
                    tools.runner(kube.delete(AUTHORIZATION_POLICY, batch, ns))
                removed += [f"{ns}/{n}" for n in sorted(names)]
    tools.log(f"[{inp.ctx.cluster}] relax-security: {len(relaxed)} PeerAuthentications PERMISSIVE, {len(relaxed_rules)} "
              f"DestinationRules without ISTIO_MUTUAL, {len(removed)} AuthorizationPolicies removed")
    # Counts only: a later update of this resource gets its stdout in its environment
    # (PULUMI_COMMAND_STDOUT), where a list of thousands of names would not fit. The names
    # relax-security removed are in the migration record; the rest are in the backup.
    return {"cluster": inp.ctx.cluster, "relaxed": len(relaxed), "relaxed_destination_rules": len(relaxed_rules),
            "removed": len(removed)}
