"""The project's real program (`__main__.py`) under the REAL Pulumi engine, against an
emulated fleet and a real Kubernetes API server, for tests/test_program_e2e.py.

    python -m testbed.program_e2e --scenario rapid-to-regular --out result.json --scratch DIR

The test runs this module inside testbed/engine_chain.py's `network_cut_argv()` (a network
namespace with only loopback up), so every server below shares that namespace and nothing
can leave the machine. What runs, all real except where said:
- the Pulumi CLI/engine (testbed/build_pulumi.sh) with the program as an Automation API
  inline program that runs `__main__.py` itself (no pulumi-language-python binary exists
  here: the Python SDK serves the language runtime from this process);
- providers: the stand-in `pulumi-resource-command` (testbed/command-provider) and the
  stand-in `pulumi-resource-gcp` (testbed/gcp_provider), found on PATH;
- the real gcloud 528 against testbed/gcp_emulator (container, gkehub v1/v2, serviceusage,
  cloudresourcemanager, storage: the backups are gs:// objects in the emulator);
- the real kubectl against the real kube-apiserver + etcd + controller-manager
  (testbed/kube_server.py), where testbed/managed_mesh plays Google's managed control plane
  (webhooks that really inject, mdp-controller, CNI, CRD reappearance) and a node (pods
  Running and Ready).

A scenario is a list of actions on one stack; the result (JSON) has, per action, the
engine's outcome and change summary, the emulator's mutating requests, and snapshots of the
cluster (Istio objects by spec, PeerAuthentication modes, namespace injection labels, the
sidecar image of every workload pod).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import runpy
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from testbed import engine_chain
from testbed.gcp_emulator import GcpEmulator
from testbed.gcp_emulator.server import PREFIXES, TOKEN
from testbed.gcp_provider import install_launcher
from testbed.gcp_provider.engine import run as run_operation
from testbed.gcp_provider.rest import TOKEN_ENV, URL_ENV
from testbed.kube_server import KubeServer
from testbed.managed_mesh import ManagedMesh

ROOT = engine_chain.ROOT
FLEET_PROJECT = "my-project-123456"
FLEET_NUMBER = "123456789012"
CLUSTER, LOCATION = "dev-cluster-1", "asia-northeast1"
BUCKET = "e2e-mesh-backups"
STACK = "e2e"
ISTIO_RESOURCES = ("virtualservices.networking.istio.io", "gateways.networking.istio.io", "destinationrules.networking.istio.io",
                   "peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io",
                   "telemetries.telemetry.istio.io")
APP_NAMESPACES = ("katayan", "katayan-gateway")


# ---------------------------------------------------------------------------- the cluster's content
def seed_manifests(revision: str) -> list[dict]:
    """The cluster of the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順'
    (tests/fake_world.py seed_field_report), as real objects: two app namespaces injected by revision label and by the default tag, a Deployment in
    each, a gateway, routing, STRICT mTLS, an ALLOW policy and telemetry."""
    def meta(name: str, ns: str | None = None, **extra: Any) -> dict:
        return {"name": name, **({"namespace": ns} if ns else {}), **extra}

    objects: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("katayan", labels={"istio.io/rev": revision})},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("katayan-gateway", labels={"istio-injection": "enabled"})},
    ]
    for ns in APP_NAMESPACES:
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", ns),
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                 "template": {"metadata": {"labels": {"app": "web"}},
                                              "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}})
        objects.append({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                        "metadata": meta("katayan-virtualservice", ns), "spec": {"gateways": ["katayan-gateway"], "hosts": ["*"]}})
    objects += [
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway", "metadata": meta("katayan-gateway", "katayan-gateway"),
         "spec": {"selector": {"istio": "ingressgateway"}}},
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": meta("web", "katayan"),
         "spec": {"host": "web", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}},
        {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": meta("default", "istio-system"),
         "spec": {"mtls": {"mode": "STRICT"}}},
        {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": meta("web", "katayan"),
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}}},
        {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy", "metadata": meta("allow-gateway", "katayan"),
         "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": ["katayan-gateway"]}}]}]}},
        {"apiVersion": "telemetry.istio.io/v1alpha1", "kind": "Telemetry", "metadata": meta("mesh-default", "istio-system"),
         "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}},
    ]
    return objects


def snapshot(kube: KubeServer, namespaces: tuple[str, ...] = APP_NAMESPACES) -> dict[str, Any]:
    """What must survive a migration, read from the real API server: Istio objects by spec,
    PeerAuthentication modes, and in `namespaces` the injection labels and every pod's sidecar."""
    istio: dict[str, str] = {}
    for resource in ISTIO_RESOURCES:
        done = kube.kubectl("get", resource, "-A", "-o", "json", check=False)
        if done.returncode != 0:
            continue  # the CRD is gone (mid-migration)
        for item in json.loads(done.stdout)["items"]:
            key = f"{item['kind']}/{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
            istio[key] = hashlib.sha256(json.dumps(item.get("spec", {}), sort_keys=True).encode()).hexdigest()[:16]
    labels = {}
    for ns in namespaces:
        found = json.loads(kube.kubectl("get", "namespace", ns, "-o", "json").stdout)["metadata"].get("labels") or {}
        labels[ns] = {k: v for k, v in found.items() if k in ("istio.io/rev", "istio-injection")}
    pods = {}
    for ns in namespaces:
        for pod in json.loads(kube.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            images = [c["image"] for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"]
            pods[f"{ns}/{pod['metadata']['name']}"] = {"sidecar": images[0] if images else None,
                                                       "phase": (pod.get("status") or {}).get("phase")}
    modes = {}
    done = kube.kubectl("get", "peerauthentications.security.istio.io", "-A", "-o", "json", check=False)
    if done.returncode == 0:
        for item in json.loads(done.stdout)["items"]:
            modes[f"{item['metadata']['namespace']}/{item['metadata']['name']}"] = ((item.get("spec") or {}).get("mtls") or {}).get("mode")
    return {"istio": istio, "labels": labels, "pods": pods, "peer_authentication": modes}


def wait_for_injected_pods(kube: KubeServer, namespaces: tuple[str, ...] = APP_NAMESPACES, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = snapshot(kube, namespaces)["pods"]
        if pods and all(p["sidecar"] and p["phase"] == "Running" for p in pods.values()):
            return
        time.sleep(0.5)
    raise RuntimeError(f"seeded pods were not injected and running within {timeout:.0f} s: {snapshot(kube, namespaces)['pods']}")


# ---------------------------------------------------------------------------- the stack
def program() -> None:
    """The project's program, exactly as `pulumi up` runs it."""
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


UPSTREAM = "upstream"
"""The stage before this one (a stack of the same project and backend that only exports
what a deployed stage exports), for the promotion gate's real StackReferences."""


def stack_config(channel: str, migration: dict[str, Any] | None = None, gated: bool = False) -> dict[str, str]:
    config = {
        "gcp:project": FLEET_PROJECT,
        "gke-mesh:releaseChannel": channel,
        "gke-mesh:clusters": json.dumps([{"name": CLUSTER, "location": LOCATION}]),
        # The testbed's stacks change only emulated clusters; they acknowledge that Google does not
        # support the in-place change, as a staging or prod stack must (components/settings.py).
        "gke-mesh:migration": json.dumps({"backupUri": f"gs://{BUCKET}/channel-moves", "waitTimeout": "10m",
                                          "acknowledgeUnsupported": True, **(migration or {})}),
    }
    if gated:
        config["gke-mesh:promotion"] = json.dumps({"after": f"organization/gke-mesh/{UPSTREAM}"})
    return config


def stage_outputs(channel: str, verified: bool) -> dict[str, Any]:
    """What a deployed stage exports (components/platform.py cluster_outputs shape)."""
    return {"release_channel": channel, "clusters": {"upstream-cluster": {
        "release_channel": channel, "last_verify": {"verified": verified, "control_plane_state": "ACTIVE" if verified else "PROVISIONING"}}}}


def engine_env(scratch: Path, emulator: GcpEmulator, kube: KubeServer) -> dict[str, str]:
    """What the engine, its plugins and every command they run see."""
    bin_dir = scratch / "bin"
    install_launcher(bin_dir)
    venv_bin = Path(sys.executable).parent
    env = emulator.gcloud_env(kube.env(exec_plugin=True))
    env.pop("KUBECONFIG", None)  # the steps write their own kubeconfig from `clusters describe`
    env.update({
        **engine_chain.engine_env(scratch / "pulumi-home", scratch / "state",
                                  [bin_dir, engine_chain.provider_bin(), engine_chain.pulumi_bin(), kube.bin_dir, venv_bin],
                                  "program-e2e", base_path=env.get("PATH", "/usr/bin:/bin")),
        URL_ENV: emulator.url,
        TOKEN_ENV: TOKEN,
        **{f"{URL_ENV}_{api}": emulator.url + prefix for api, prefix in PREFIXES.items()},
    })
    return env


def open_stack(scratch: Path, env: dict[str, str], config: dict[str, str], name: str = STACK,
               stack_program: Callable[[], None] = program, runner: str = ""):
    """The stack `name` in the bed's backend; `runner` names another machine's workspace
    (its own project folder and PULUMI_HOME, the same backend)."""
    from pulumi import automation as auto

    for folder in (f"pulumi-home{runner}", "state", f"project-{name}{runner}"):
        (scratch / folder).mkdir(parents=True, exist_ok=True)
    os.environ.clear()
    os.environ.update(env)  # this process too: the inline program, `pulumi login`
    cli = engine_chain.pulumi_bin()
    login = subprocess.run([str(cli / "pulumi"), "login", env["PULUMI_BACKEND_URL"]], capture_output=True, text=True)
    if login.returncode != 0:
        raise RuntimeError(f"pulumi login failed: {login.stderr.strip()}")
    stack = auto.create_or_select_stack(
        stack_name=name, project_name="gke-mesh", program=stack_program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(scratch / f"project-{name}{runner}"), pulumi_home=env["PULUMI_HOME"], env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(cli.parent), skip_version_check=True),
            # main=ROOT: the engine starts providers there, so every Command runs in the
            # project folder as under `pulumi up` (see testbed/engine_chain.py).
            project_settings=auto.ProjectSettings(name="gke-mesh", runtime="python", main=str(ROOT))))
    set_config(stack, config)
    return stack


def set_config(stack, config: dict[str, str]) -> None:
    from pulumi import automation as auto

    stack.set_all_config({key: auto.ConfigValue(value=value) for key, value in config.items()})


# ---------------------------------------------------------------------------- scenarios
class Bed:
    """The running servers and the stack, for one scenario."""

    def __init__(self, scratch: Path, kube: KubeServer, mesh: ManagedMesh, emulator: GcpEmulator):
        self.scratch, self.kube, self.mesh, self.emulator = scratch, kube, mesh, emulator
        self.env = engine_env(scratch, emulator, kube)
        self.stack = None
        self.runner = ""
        self.steps: list[dict[str, Any]] = []

    def seed(self, channel: str) -> None:
        revision = {"regular": "asm-managed"}.get(channel, f"asm-managed-{channel}")
        ca = Path(self.kube.ca_file).read_bytes()
        self.emulator.add_cluster(CLUSTER, LOCATION, channel, endpoint=self.kube.url.removeprefix("https://"), ca_pem=ca,
                                  mesh_hooks=self.mesh)
        self.emulator.create_bucket(BUCKET)
        manifests = "\n".join(json.dumps(o) for o in seed_manifests(revision))
        self.kube.kubectl("apply", "-f", "-", input=manifests)
        wait_for_injected_pods(self.kube)

    def fresh_runner(self, runner: str) -> None:
        """The next action runs on another machine: nothing of this one's disk (workspace,
        PULUMI_HOME) but the shared backend and the bucket."""
        self.runner = runner
        self.env = {**self.env, "PULUMI_HOME": str(self.scratch / f"pulumi-home{runner}")}
        self.stack = None

    def gke_channel(self) -> str:
        return next(c.channel for c in self.emulator.world.clusters.values() if c.name == CLUSTER)

    def action(self, name: str, op: str, config: dict[str, str], stack: str = STACK) -> dict[str, Any]:
        if stack != STACK:  # another stack of the same project on the same cluster
            other = open_stack(self.scratch, self.env, config, name=stack)
            self.emulator.clear_log()
            result = run_operation(other, op)
            result.update(name=name, mutating=[f"{m} {p}" for m, p in self.emulator.mutating_requests()],
                          after=snapshot(self.kube), outputs={}, channel=self.gke_channel())
            self.steps.append(result)
            self.stack = None  # open_stack switched the process's environment: reopen ours next time
            return result
        if self.stack is None:
            self.stack = open_stack(self.scratch, self.env, config, runner=self.runner)
        else:
            set_config(self.stack, config)
        self.emulator.clear_log()
        result = run_operation(self.stack, op)
        result.update(name=name, mutating=[f"{m} {p}" for m, p in self.emulator.mutating_requests()],
                      after=snapshot(self.kube), outputs=self._outputs(), channel=self.gke_channel())
        self.steps.append(result)
        return result

    def upstream(self, outputs: dict[str, Any]) -> None:
        """Deploy the stage before this one with `outputs` (its own stack, same backend)."""
        def export() -> None:
            import pulumi
            for key, value in outputs.items():
                pulumi.export(key, value)

        stack = open_stack(self.scratch, self.env, {}, name=UPSTREAM, stack_program=export)
        done = run_operation(stack, "up", export)
        if not done["ok"]:
            raise RuntimeError(f"upstream stack: {done['error']}")

    def _outputs(self) -> dict[str, Any]:
        try:
            return {k: v.value for k, v in self.stack.outputs().items()}
        except Exception as error:  # no outputs yet
            return {"error": str(error).splitlines()[0] if str(error) else type(error).__name__}


def scenario_rapid_to_regular(bed: Bed) -> None:
    """The operator's day, on a stack gated on the stage before it: adopt a rapid cluster
    (nothing to change); the channel change refused by the gate while that stage has not
    verified regular (nothing may change); the review; `up` with GKE refusing the channel
    change once (a fault at the release channel's PUT, after the teardown); `up` again
    (resumes); `up` once more (nothing); an ordinary run while the stage before has moved
    ahead to another channel (the gate must let it through); an option edit (nothing may
    run again); destroy (the cluster and the mesh stay)."""
    bed.seed("rapid")
    bed.steps.append({"name": "seeded", "after": snapshot(bed.kube)})
    bed.upstream(stage_outputs("rapid", verified=True))
    bed.action("adopt on rapid", "up", stack_config("rapid", gated=True))
    bed.upstream(stage_outputs("regular", verified=False))
    bed.action("gate refuses rapid -> regular", "up", stack_config("regular", gated=True))
    bed.upstream(stage_outputs("regular", verified=True))
    bed.action("preview rapid -> regular", "preview", stack_config("regular", gated=True))
    bed.emulator.fail_next("PUT", r"^/container/v1/projects/[^/]+/locations/[^/]+/clusters/[^/?]+(\?|$)", 503,
                           "injected: the channel change is refused once")
    bed.action("rapid -> regular, channel change refused once", "up", stack_config("regular", gated=True))
    bed.action("rapid -> regular, resumed", "up", stack_config("regular", gated=True))
    bed.action("again", "up", stack_config("regular", gated=True))
    bed.upstream(stage_outputs("stable", verified=False))
    bed.action("ordinary run while the stage before is ahead", "up", stack_config("regular", gated=True))
    bed.action("option edit after success", "up", stack_config("regular", {"waitTimeout": "20m"}, gated=True))
    bed.action("destroy", "destroy", stack_config("regular", {"waitTimeout": "20m"}, gated=True))


LATE_VIRTUAL_SERVICE = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                        "metadata": {"name": "late-change", "namespace": "katayan"},
                        "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]}}


def scenario_operator_paths(bed: Bed) -> None:
    """What operators do between runs (issue "Nothing lost"): a run stops after the backup
    and the mTLS relaxation (GKE refuses the switch to manual once); a teammate adds a
    VirtualService; the retry runs on a fresh CI runner (no local disk, same backend and
    bucket) and stops again after the purge and the channel change (the membership's
    registration is refused once); the PR is reverted (back to rapid) and applied; a second
    stack is pointed at the same cluster."""
    bed.seed("rapid")
    bed.steps.append({"name": "seeded", "after": snapshot(bed.kube), "channel": bed.gke_channel()})
    bed.action("adopt on rapid", "up", stack_config("rapid"))
    bed.emulator.fail_next("PATCH", r"^/gkehub/v2/.*/features/servicemesh(\?|$)", 400,
                           "injected: management switch refused once")  # 400: gcloud retries a 503 here
    bed.action("stopped after relax-security", "up", stack_config("regular"))
    bed.kube.kubectl("apply", "-f", "-", input=json.dumps(LATE_VIRTUAL_SERVICE))
    bed.steps.append({"name": "teammate added a VirtualService", "after": snapshot(bed.kube), "channel": bed.gke_channel()})
    bed.fresh_runner("-runner2")
    # The cluster was registered the GKE way, so re-registration joins with a cluster update.
    bed.emulator.fail_next("PUT", r"^/container/v1/projects/[^/]+/locations/[^/]+/clusters/[^/?]+$", 400,
                           "injected: registration refused once", body_regex=r'"desiredFleet": \{"project": "[a-z]')
    bed.action("fresh runner: stopped after the purge", "up", stack_config("regular"))
    bed.action("PR reverted: back to rapid", "up", stack_config("rapid"))
    bed.action("again on rapid", "up", stack_config("rapid"))
    bed.action("a second stack on the same cluster", "up", stack_config("regular"), stack="intruder")


SCENARIOS: dict[str, Callable[[Bed], None]] = {"rapid-to-regular": scenario_rapid_to_regular,
                                               "operator-paths": scenario_operator_paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    args = parser.parse_args(argv)
    args.scratch.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scenario": args.scenario, "steps": [], "error": ""}
    started = time.monotonic()
    try:
        with KubeServer(controllers=True, istio="old") as kube, ManagedMesh(kube, reappear_delay=1.0) as mesh, \
                GcpEmulator(fleet_project=FLEET_PROJECT, project_numbers={FLEET_PROJECT: FLEET_NUMBER},
                            provisioning_seconds=3.0) as emulator:
            bed = Bed(args.scratch, kube, mesh, emulator)
            try:
                SCENARIOS[args.scenario](bed)
            finally:
                result["steps"] = bed.steps
    except Exception:
        result["error"] = traceback.format_exc()[-4000:]
    result["seconds"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
