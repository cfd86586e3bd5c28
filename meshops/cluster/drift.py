"""Drift: Istio objects changed between this run's backup and the first step that changes
them (a teammate's edit between a failed run and its retry). relax-security and purge
compare the live objects with the backup before they change anything; what differs goes
into a supplementary backup of the same run, which the migration record then names and
every later step uses (see docs/architecture.md, "The migration record").
"""

from __future__ import annotations

import json
from dataclasses import replace

from meshops.cluster.backup_store import Backup, BackupStore, run_location
from meshops.cluster.inventory import crds, live_objects
from meshops.cluster.objects import AUTHORIZATION_POLICY, DESTINATION_RULE, PEER_AUTHENTICATION, digest, identity, istio_kinds
from meshops.cluster.process import Tools
from meshops.cluster.record import BackupRef, Ledger, MigrationRecord, signed_document
from meshops.context import StepInput


def unrelaxed(live: dict, backed_up: dict) -> dict:
    """`live` with relax-security's change undone: every mTLS mode the backup has STRICT is
    STRICT again, whatever weaker mode the cluster has now (PERMISSIVE, which relax-security
    set, or DISABLE, UNSET or no mode at all, which a teammate may have set on top of it: a
    workload mode left out inherits the namespace's or the mesh's). A port setting the
    teammate removed stays removed (the port then takes the workload's mode, STRICT again).
    Whatever else a teammate changed meanwhile (a label, a selector) is theirs and is kept. A
    mode weakened on purpose during the migration comes back STRICT: the safer reading, since
    the two cannot be told apart, and a weaker mode than the backup's must never end `verified`."""
    result = json.loads(json.dumps(live))
    spec, original = result.setdefault("spec", {}), backed_up.get("spec") or {}
    if (original.get("mtls") or {}).get("mode") == "STRICT" and (spec.get("mtls") or {}).get("mode") != "STRICT":
        spec["mtls"] = {**(spec.get("mtls") or {}), "mode": "STRICT"}
    ports = spec.get("portLevelMtls") or {}
    for port, value in (original.get("portLevelMtls") or {}).items():
        if (value or {}).get("mode") == "STRICT" and port in ports and (ports.get(port) or {}).get("mode") != "STRICT":
            ports[port] = {**(ports.get(port) or {}), "mode": "STRICT"}
    return result


def remutualed(live: dict, backed_up: dict) -> dict:
    """`live` with relax-security's DestinationRule change undone: `tls: ISTIO_MUTUAL` back
    wherever the backup had it and the live rule has no `tls` (its traffic policy, its port
    settings matched by port, its subsets matched by name). Whatever else a teammate changed
    meanwhile (a subset added) is theirs and is kept."""
    result = json.loads(json.dumps(live))
    mutual = {"mode": "ISTIO_MUTUAL"}

    def put_back(policy: dict | None, original: dict | None) -> None:
        if not isinstance(policy, dict) or not isinstance(original, dict):
            return
        if (original.get("tls") or {}).get("mode") == "ISTIO_MUTUAL" and "tls" not in policy:
            policy["tls"] = dict(mutual)
        ports = {json.dumps((p or {}).get("port"), sort_keys=True): p for p in original.get("portLevelSettings") or []}
        for port in policy.get("portLevelSettings") or []:
            before = ports.get(json.dumps((port or {}).get("port"), sort_keys=True))
            if isinstance(port, dict) and ((before or {}).get("tls") or {}).get("mode") == "ISTIO_MUTUAL" and "tls" not in port:
                port["tls"] = dict(mutual)

    spec, original = result.get("spec") or {}, backed_up.get("spec") or {}
    if "trafficPolicy" in spec:
        put_back(spec["trafficPolicy"], original.get("trafficPolicy"))
    subsets = {(s or {}).get("name"): s for s in original.get("subsets") or []}
    for subset in spec.get("subsets") or []:
        if isinstance(subset, dict) and "trafficPolicy" in subset:
            put_back(subset["trafficPolicy"], (subsets.get(subset.get("name")) or {}).get("trafficPolicy"))
    return result


def drifted(backup: Backup, live: dict[str, list[dict]], removed_by_us: set[str],
            deletions_are_intent: bool) -> tuple[Backup | None, int]:
    """A supplementary backup holding what changed since `backup` (None if nothing did), and
    how many objects differ.

    - An object equal to its backup (after undoing relax-security's change) keeps the backup's.
    - An object added or changed since is taken from the cluster (PeerAuthentications with
      relax-security's change undone).
    - An object gone since is kept when this run removed it (an AuthorizationPolicy
      relax-security deleted, named in the record), or when `deletions_are_intent` is
      False (from the purge on, deletions are ours); otherwise a teammate deleted it and it
      stays deleted (restoring, say, an ALLOW policy could widen access)."""
    kept = backup.keyed()
    now = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for r, objs in live.items() for o in objs}
    merged, differ = {}, 0
    for key, obj in now.items():
        candidate = obj
        if key in kept and key[0] == PEER_AUTHENTICATION:
            candidate = unrelaxed(obj, kept[key])
        elif key in kept and key[0] == DESTINATION_RULE:
            candidate = remutualed(obj, kept[key])
        if key in kept and digest(candidate) == digest(kept[key]):
            merged[key] = kept[key]
        else:
            merged[key], differ = candidate, differ + 1
    for key, obj in kept.items():
        if key not in now:
            # A kind not served now (an archive-only kind whose CRD the purge removed) says
            # nothing about its objects: they stay as backed up.
            if key[0] not in live or not deletions_are_intent or \
                    f"{key[1]}/{key[2]}" in removed_by_us and key[0] == AUTHORIZATION_POLICY:
                merged[key] = obj
            else:
                differ += 1
    if not differ:
        return None, 0
    objects: dict[str, list[dict]] = {r: [] for r in set(backup.objects) | set(live)}
    for (resource, _, _), obj in sorted(merged.items()):
        objects[resource].append(obj)
    return replace(backup, objects=objects), differ


def compare_applies(current: MigrationRecord) -> bool:
    """Whether the live Istio objects are the users' to compare: before the purge starts, or
    once restore has put them back and verified them (a resumed run, a revert, a `rerun`)."""
    return not current.reached("purging") or current.restore_verified


def deletions_are_intent(current: MigrationRecord) -> bool:
    """Whether an object gone since the backup was deleted by a teammate on purpose: only
    before the purge (or after a verified restore), and never under a record re-created from
    its copy, whose phase may under-state what this run already removed."""
    return (not current.reached("purging") or current.restore_verified) and not current.recovered


def write_supplement(inp: StepInput, tools: Tools, ledger: Ledger, current: MigrationRecord,
                     supplement: Backup) -> tuple[MigrationRecord, BackupRef, Backup]:
    """Write `supplement` as this run's next supplementary backup and record it (the record
    first names it, then its signed copy beside the main backup is rewritten)."""
    ref = current.backup
    main = run_location(ref.location)
    location = f"{main}/supplement-{len(current.earlier_backups) + 1}"
    new_ref = BackupStore(location, tools.runner).write(supplement)
    current = ledger.advance(current, current.phase, backup=new_ref, earlier_backups=(*current.earlier_backups, ref))
    BackupStore(main, tools.runner).write_record(signed_document(ledger.key, inp.ctx, current))
    return current, new_ref, supplement


def supplement_if_drifted(inp: StepInput, tools: Tools, ledger: Ledger, current: MigrationRecord,
                          backup: Backup) -> tuple[MigrationRecord, BackupRef, Backup]:
    """Compare the live Istio objects with this run's backup; when they differ, write a
    supplementary backup of the same run and record it. Returns the record, the reference
    and the backup every later step uses (the supplement, read back and verified, or `backup`)."""
    live = live_objects(tools.runner, ledger.kube, istio_kinds(crds(tools.runner, ledger.kube)))
    # After a verified restore the cluster holds the backup as restore wrote it (revision labels moved).
    compared = backup.as_restored(inp.decision.from_revision, inp.decision.to_revision) if current.restore_verified else backup
    supplement, differ = drifted(compared, live, set(current.removed_policies), deletions_are_intent(current))
    if supplement is None:
        return current, current.backup, backup
    current, new_ref, supplement = write_supplement(inp, tools, ledger, current, supplement)
    tools.log(f"[{inp.ctx.cluster}] {differ} Istio objects changed since the backup; "
              f"a supplementary backup of this run holds them at {new_ref.location}")
    return current, new_ref, supplement


def archive_additions(backup: Backup, archive_now: list[dict]) -> Backup | None:
    """`backup` with the objects of istio-system/asm-system added since it was taken (the
    purge deletes those namespaces: a NetworkPolicy or a Service added meanwhile would be
    lost), or None when there are none."""
    kept = {identity(o) for o in backup.archive}
    added = [o for o in archive_now if identity(o) not in kept]
    return replace(backup, archive=[*backup.archive, *added]) if added else None
