"""`make rehearse`: a stack's channel change rehearsed on an emulated copy of its clusters
under the real engine (testbed/rehearse.py), and its one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed import engine_chain

ROOT = Path(__file__).resolve().parent.parent


def rehearse(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.rehearse", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def stack_file(tmp_path: Path, clusters: int = 1, **config) -> Path:
    values = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    first = values["config"]["gke-mesh:clusters"][0]
    values["config"]["gke-mesh:clusters"] = [{**first, "name": f"{first['name']}-{i}" if i else first["name"]} for i in range(clusters)]
    values["config"].update(config)
    path = tmp_path / "Pulumi.rehearsal.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("args,message", [
    (["--from", "regular"], "--from regular: the stack already targets regular; name the channel its clusters are on now"),
    (["--from", "rapid", "--seed", "missing.json"], "--seed missing.json: not a JSON file from `kubectl get ... -A -o json`"),
])
def test_refusals_are_one_line_before_anything_starts(tmp_path, args, message):
    done = rehearse("--config", str(stack_file(tmp_path)), *args, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("make rehearse: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_more_clusters_than_api_servers_allowed_is_refused(tmp_path):
    done = rehearse("--config", str(stack_file(tmp_path, clusters=4)), "--from", "rapid", timeout=60)
    assert done.returncode == 2 and "4 clusters; a rehearsal runs at most 3" in done.stderr


@pytest.mark.e2e
def test_a_seeded_rehearsal_restores_a_real_clusters_objects_across_a_crd_version_change(tmp_path):
    missing = engine_chain.missing_binaries()
    if missing:
        pytest.skip("testbed not built: " + "; ".join(missing))
    # What `kubectl get ... -A -o json` prints for a real cluster (server fields included),
    # at versions the source channel's (older) Istio CRDs serve.
    seed = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
         "metadata": {"name": "reviews", "namespace": "shop", "uid": "u1", "resourceVersion": "9", "creationTimestamp": "2025-06-01T00:00:00Z",
                      "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
         "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}},
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "shop"},
         "spec": {"host": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": "shop"},
         "spec": {"mtls": {"mode": "STRICT"}}, "status": {}},
    ]}
    seed_file = tmp_path / "istio.json"
    seed_file.write_text(json.dumps(seed))
    report_file = tmp_path / "report.json"
    done = rehearse("--config", str(stack_file(tmp_path)), "--from", "rapid", "--seed", str(seed_file), "--json", str(report_file))
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_file.read_text())
    (cluster,) = report["clusters"].values()
    assert cluster["verified"] and cluster["revision"] == "asm-managed"
    assert cluster["istio_objects_before"] == cluster["istio_objects_after"] == 3 and not cluster["lost"] and not cluster["changed"]
    assert cluster["outage_window_seconds"] is not None and cluster["outage_window_seconds"] > 0
    assert "meshNamespaces" in " ".join(report["notes"]), "what the rehearsal leaves out is said"
    assert "rehearsal report: rapid -> regular" in done.stdout and "outage window" in done.stdout
