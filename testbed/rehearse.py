"""`make rehearse STACK=dev`: rehearse a stack's channel change before touching a real fleet.

    python -m testbed.rehearse --config Pulumi.dev.yaml --from rapid [--seed istio.json] [--keep DIR]

The stack's own program runs under the real Pulumi engine (testbed/program_e2e.py's
machinery) against an emulated copy of its clusters: each cluster gets a real API server
(testbed/kube_server.py) with a stand-in managed control plane on the `--from` channel
(testbed/managed_mesh), registered in the Google API emulator (testbed/gcp_emulator) under
the stack's own projects, locations and memberships. The clusters hold either a sample
mesh (the one of the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順')
or, with `--seed`, the Istio objects of a real cluster, read-only exported with

    kubectl get virtualservices,destinationrules,gateways,serviceentries,sidecars,envoyfilters,\
peerauthentications,authorizationpolicies,requestauthentications,telemetries -A -o json > istio.json

The source channel's control plane serves Istio's older CRDs and the target's the newer ones
(the two versions testbed/build_kube.sh loads), so the rehearsal shows whether restore
succeeds across a CRD version change. It prints the engine's steps as they run and closes
with a report: per step its time, per cluster the mesh outage window (first workload pod
without a sidecar until every one runs the new revision's proxy), the Istio objects before
and after, and the verify result. Exit 0 when every cluster verified with nothing lost.

What is left out, and said so in the output: `meshNamespaces` (the Kubernetes provider is
not built here), the promotion gate (the stage before is not in the rehearsal's backend).
Nothing leaves the machine: the rehearsal re-runs itself in a network namespace with only
loopback up when it can.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from testbed import engine_chain, program_e2e
from testbed.gcp_emulator import GcpEmulator
from testbed.kube_server import KubeServer
from testbed.managed_mesh import ManagedMesh

MAX_CLUSTERS = 3
"""Each cluster is a real API server (~600 MB); a rehearsal of more is refused."""
IN_NAMESPACE = "GKE_MESH_REHEARSAL_NETWORK_CUT"
STRIPPED_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "ownerReferences")


class RehearsalError(Exception):
    """A user error: one line, exit 2."""


# ---------------------------------------------------------------------------- the stack
def load(config_path: Path) -> tuple[Any, dict[str, Any]]:
    from components.settings import ConfigError, parse_settings
    from meshops.review.offline import stack_config
    from meshops.review.plan import load_stack_file, project_defaults

    try:
        values = load_stack_file(config_path)
        return parse_settings(stack_config(acknowledged(values), project_defaults())), values
    except (ConfigError, OSError, ValueError) as error:
        raise RehearsalError(f"{config_path}: {error}") from None


def acknowledged(values: dict[str, Any]) -> dict[str, Any]:
    """A rehearsal changes only emulated clusters: the stack's acknowledgement that Google does
    not support the in-place change (gke-mesh:migration.acknowledgeUnsupported) is not asked."""
    migration = values.get("gke-mesh:migration")
    return {**values, "gke-mesh:migration": {**(migration if isinstance(migration, dict) else {}), "acknowledgeUnsupported": True}}


def rehearsal_config(values: dict[str, Any], scratch: Path, notes: list[str]) -> dict[str, str]:
    """The stack's configuration with what the rehearsal cannot run taken out (each noted)."""
    config = acknowledged(values)
    clusters = []
    for cluster in config.get("gke-mesh:clusters", []):
        if cluster.get("meshNamespaces"):
            notes.append(f"cluster {cluster['name']}: meshNamespaces {cluster['meshNamespaces']} left out "
                         "(the Kubernetes provider is not built here); the migration relabels them itself")
            cluster = {k: v for k, v in cluster.items() if k != "meshNamespaces"}
        clusters.append(cluster)
    config["gke-mesh:clusters"] = clusters
    if config.pop("gke-mesh:promotion", None) is not None:
        notes.append("promotion gate left out (the stage before is not in the rehearsal's backend)")
    migration = dict(config.get("gke-mesh:migration") or {})
    if not str(migration.get("backupUri", "backups")).startswith("gs://"):
        migration["backupUri"] = str(scratch / "backups")
        migration["allowLocalBackup"] = True
        notes.append(f"local backupUri replaced by {migration['backupUri']}")
    config["gke-mesh:migration"] = migration
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


# ---------------------------------------------------------------------------- the clusters
def seed_objects(seed: Path | None, revision: str) -> tuple[list[dict], tuple[str, ...]]:
    """The objects to load and the namespaces whose pods and labels are watched."""
    if seed is None:
        return program_e2e.seed_manifests(revision), program_e2e.APP_NAMESPACES
    try:
        document = json.loads(seed.read_text())
    except (OSError, ValueError) as error:
        raise RehearsalError(f"--seed {seed}: not a JSON file from `kubectl get ... -A -o json` ({error})") from None
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("kind") and i.get("metadata") for i in items):
        raise RehearsalError(f"--seed {seed}: expected a kubectl List with items (kubectl get ... -A -o json)")
    objects, namespaces = [], sorted({i["metadata"].get("namespace") for i in items} - {None, "istio-system"})
    for ns in namespaces:
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio.io/rev": revision}}})
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rehearsal-workload", "namespace": ns},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rehearsal"}},
                                 "template": {"metadata": {"labels": {"app": "rehearsal"}},
                                              "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}})
    for item in items:
        metadata = {k: v for k, v in item["metadata"].items() if k not in STRIPPED_METADATA}
        metadata.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
        objects.append({k: v for k, v in item.items() if k != "status"} | {"metadata": metadata})
    return objects, tuple(namespaces)


class OutageWatch(threading.Thread):
    """Samples a cluster's pods once a second: when the first one ran without a sidecar and
    when every one last ran the target proxy again."""

    def __init__(self, kube: KubeServer, namespaces: tuple[str, ...]):
        super().__init__(daemon=True)
        self.kube, self.namespaces = kube, namespaces
        self.first_without: float | None = None
        self.last_back: float | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                pods = program_e2e.snapshot(self.kube, self.namespaces)["pods"]
            except Exception:  # the API server is busy or a CRD is mid-deletion: next sample
                continue
            now = time.monotonic()
            if any(p["sidecar"] is None for p in pods.values()):
                self.first_without = self.first_without or now
                self.last_back = None
            elif self.first_without and pods and self.last_back is None:
                self.last_back = now

    def window(self) -> float | None:
        return None if self.first_without is None or self.last_back is None else round(self.last_back - self.first_without, 1)


# ---------------------------------------------------------------------------- the run
def prepare(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The stack, checked before any server starts."""
    settings, values = load(args.config)
    if len(settings.clusters) > MAX_CLUSTERS:
        raise RehearsalError(f"{args.config}: {len(settings.clusters)} clusters; a rehearsal runs at most {MAX_CLUSTERS} "
                             "(one API server each): rehearse a stack file with fewer")
    if args.source == settings.release_channel:
        raise RehearsalError(f"--from {args.source}: the stack already targets {args.source}; name the channel its clusters are on now")
    if args.seed is not None:
        seed_objects(args.seed, "asm-managed")
    return settings, values


def rehearse(args: argparse.Namespace) -> int:
    settings, values = prepare(args)
    source = args.source
    scratch = Path(tempfile.mkdtemp(prefix="gke-mesh-rehearsal-")) if args.keep is None else args.keep
    scratch.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    config = rehearsal_config(values, scratch, notes)
    revision = {"regular": "asm-managed"}.get(source, f"asm-managed-{source}")
    objects, namespaces = seed_objects(args.seed, revision)
    say = print
    say(f"rehearsal of {args.config.name}: {len(settings.clusters)} cluster(s), {source} -> {settings.release_channel}")
    for note in notes:
        say(f"  note: {note}")
    numbers = {p: str(200000000000 + i) for i, p in enumerate(sorted({settings.project, *(c.project for c in settings.clusters)}))}
    report: dict[str, Any] = {"config": str(args.config), "from": source, "to": settings.release_channel, "notes": notes, "clusters": {}}
    with ExitStack() as stack:
        emulator = stack.enter_context(GcpEmulator(fleet_project=settings.project, project_numbers=numbers, provisioning_seconds=5.0))
        uri = settings.migration.backup_uri
        if uri.startswith("gs://"):
            emulator.create_bucket(uri.removeprefix("gs://").split("/", 1)[0])
        beds = {}
        for cluster in settings.clusters:
            started = time.monotonic()
            kube = stack.enter_context(KubeServer(controllers=True, istio="old"))
            mesh = stack.enter_context(ManagedMesh(kube, istio="old"))
            emulator.add_cluster(cluster.name, cluster.location, source, project=cluster.project, membership=cluster.membership,
                                 membership_location=cluster.membership_location, endpoint=kube.url.removeprefix("https://"),
                                 ca_pem=Path(kube.ca_file).read_bytes(), mesh_hooks=mesh)
            kube.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objects))
            program_e2e.wait_for_injected_pods(kube, namespaces)
            mesh.istio = "new"  # the target channel's control plane serves the newer Istio CRDs
            before = program_e2e.snapshot(kube, namespaces)
            beds[cluster.name] = (kube, before, OutageWatch(kube, namespaces))
            say(f"  cluster {cluster.name}: API server up, {len(before['istio'])} Istio objects, "
                f"{len(before['pods'])} injected pods ({time.monotonic() - started:.0f} s)")
        env = program_e2e.engine_env(scratch, emulator, next(iter(beds.values()))[0])
        pulumi_stack = program_e2e.open_stack(scratch, env, config, name="rehearsal")
        for _kube, _before, watch in beds.values():
            watch.start()
        started = time.monotonic()
        result, timings = up_with_progress(pulumi_stack, say)
        report["seconds"] = round(time.monotonic() - started, 1)
        report["steps"] = timings
        outputs = {}
        try:
            outputs = {k: v.value for k, v in pulumi_stack.outputs().items()}
        except Exception:
            pass
        ok = result["ok"]
        for name, (kube, before, watch) in beds.items():
            watch.stopped.set()
            after = program_e2e.snapshot(kube, namespaces)
            last = ((outputs.get("clusters") or {}).get(name) or {}).get("last_verify") or {}
            lost = sorted(set(before["istio"]) - set(after["istio"]))
            changed = sorted(k for k in set(before["istio"]) & set(after["istio"]) if before["istio"][k] != after["istio"][k])
            report["clusters"][name] = {"verified": last.get("verified") is True, "outage_window_seconds": watch.window(),
                                        "istio_objects_before": len(before["istio"]), "istio_objects_after": len(after["istio"]),
                                        "lost": lost, "changed": changed, "revision": last.get("revision")}
            ok = ok and last.get("verified") is True and not lost and not changed
        if not result["ok"]:
            report["error"] = result["error"][-2000:]
    print_report(report, say)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


def up_with_progress(stack, say) -> tuple[dict[str, Any], dict[str, float]]:
    from pulumi import automation as auto

    started: dict[str, float] = {}
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    def on_event(event) -> None:
        pre, out = getattr(event, "resource_pre_event", None), getattr(event, "res_outputs_event", None)
        if pre is not None and str(pre.metadata.op.value) not in ("same", "read"):
            name = pre.metadata.urn.split("::")[-1]
            if not pre.metadata.type.startswith(("gke-mesh:", "pulumi:")):  # components and the stack: no work of their own
                started.setdefault(name, time.monotonic())
            say(f"  [{time.monotonic() - t0:6.1f} s] {pre.metadata.op.value:<18} {name}")
        elif out is not None:
            name = out.metadata.urn.split("::")[-1]
            if name in started and name not in timings:
                timings[name] = round(time.monotonic() - started[name], 1)

    try:
        stack.up(on_event=on_event, color="never")
        return {"ok": True, "error": ""}, timings
    except auto.CommandError as failure:
        return {"ok": False, "error": str(failure)}, timings


def print_report(report: dict[str, Any], say) -> None:
    say("")
    say(f"rehearsal report: {report['from']} -> {report['to']}, `pulumi up` {report.get('seconds')} s")
    for name, seconds in sorted(report.get("steps", {}).items(), key=lambda kv: -kv[1])[:8]:
        say(f"  step {name}: {seconds} s")
    for name, c in report["clusters"].items():
        window = "not measured" if c["outage_window_seconds"] is None else f"{c['outage_window_seconds']} s"
        say(f"  cluster {name}: verified {c['verified']}, revision {c['revision']}, outage window {window}, "
            f"Istio objects {c['istio_objects_before']} -> {c['istio_objects_after']}"
            + (f", LOST {c['lost']}" if c["lost"] else "") + (f", CHANGED {c['changed']}" if c["changed"] else ""))
    if report.get("error"):
        say(f"  `pulumi up` failed: {report['error'].strip().splitlines()[-1]}")
    say("  (the outage window here has no real provisioning time in it: Google takes ~10-15 min; see bench/README.md)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make rehearse", description="Rehearse a stack's channel change on an emulated copy of its clusters.")
    parser.add_argument("--config", type=Path, required=True, help="the stack file, e.g. Pulumi.dev.yaml")
    parser.add_argument("--from", dest="source", required=True, choices=["rapid", "regular", "stable"],
                        help="the channel the stack's clusters are on now")
    parser.add_argument("--seed", type=Path, help="Istio objects of a real cluster (kubectl get ... -A -o json)")
    parser.add_argument("--keep", type=Path, help="keep the scratch folder (logs, state) here")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)
    try:
        prepare(args)
    except RehearsalError as error:
        print(f"make rehearse: {error}", file=sys.stderr)
        return 2
    missing = engine_chain.missing_binaries()
    if missing:
        print(f"make rehearse: the testbed is not built: {'; '.join(missing)} (run: make testbed)", file=sys.stderr)
        return 2
    if os.environ.get(IN_NAMESPACE) != "1":
        cut, note = engine_chain.network_cut_argv()
        if cut:
            os.execvpe(cut[0], [*cut, sys.executable, "-m", "testbed.rehearse", *(argv if argv is not None else sys.argv[1:])],
                       {**os.environ, IN_NAMESPACE: "1"})
        print(f"make rehearse: {note}", file=sys.stderr)
    try:
        return rehearse(args)
    except RehearsalError as error:
        print(f"make rehearse: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
