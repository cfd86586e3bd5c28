"""Delivery you can trust (issue 12): what the workflows run where, with which identity
and which secret, read from the workflow YAML itself; the policy pack's venv; the pinned
engine. (Schema and zizmor checks of the same files are in tests/test_review.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = yaml.safe_load((WORKFLOWS / "preview.yml").read_text())
UP = yaml.safe_load((WORKFLOWS / "pulumi-up.yml").read_text())
DEPLOY = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
DOCUMENTS = {"preview.yml": PREVIEW, "pulumi-up.yml": UP, "deploy.yml": DEPLOY}

# The commit each release tag points to, read from the action's own repository (its git
# history, `git rev-parse <tag>^{commit}`), not from a third party's workflow.
RELEASES = {
    "actions/checkout": ("11d5960a326750d5838078e36cf38b85af677262", "v4.4.0"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "google-github-actions/auth": ("c200f3691d83b41bf9bbd8638997a462592937ed", "v2.1.13"),
    "google-github-actions/setup-gcloud": ("e427ad8a34f8676edf47cf7d7925499adf3eb74f", "v2.2.1"),
    "pulumi/actions": ("8582a9e8cc630786854029b4e09281acd6794b58", "v6.6.1"),
}


def triggers(document: dict) -> dict:
    return document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def pulumi_steps(job: dict) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").startswith("pulumi/actions@")]


def run_script(job: dict, name_part: str) -> str:
    return next(s["run"] for s in steps(job) if name_part in s.get("name", ""))


# ------------------------------------------------------------------ item 5: policy pack

@pytest.mark.parametrize("workflow,job", [("preview.yml", "preview"), ("pulumi-up.yml", "up")])
def test_every_pulumi_run_in_ci_runs_the_policy_pack_with_its_venv_installed_first(workflow, job):
    job = DOCUMENTS[workflow]["jobs"][job]
    runs = pulumi_steps(job)
    assert runs and all(s["with"]["policyPacks"] == "policy" for s in runs)
    venv = next(i for i, s in enumerate(steps(job)) if s.get("run", "").strip() == "make policy-venv")
    assert venv < steps(job).index(runs[0]), "the pack's venv exists before pulumi runs it"


def test_policy_venv_target_builds_the_venv_the_pack_names(tmp_path):
    assert yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]["virtualenv"] == "venv"
    dry = subprocess.run(["make", "-n", "-B", "policy-venv"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m venv policy/venv" in dry and "pip install" in dry and "-r policy/requirements.txt" in dry
    pins = dict(line.split("==") for line in (ROOT / "policy" / "requirements.txt").read_text().split() if "==" in line)
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert f"pulumi-policy=={pins['pulumi-policy']}" in dev, "the tests run the rules with the pack's pulumi-policy"
    assert f"pulumi=={pins['pulumi']}" in (ROOT / "requirements.txt").read_text()
    assert "policy/venv/" in (ROOT / ".gitignore").read_text()


# ------------------------------------------------------- item 7: PR code, identities, secrets

def test_no_workflow_holds_a_passphrase_or_passes_secrets_to_pulumi_up():
    for name in DOCUMENTS:
        text = (WORKFLOWS / name).read_text()
        assert "secrets.PULUMI_CONFIG_PASSPHRASE" not in text, name
        assert "secrets: inherit" not in text, name
        assert set(re.findall(r"secrets\.(\w+)", text)) <= {"GITHUB_TOKEN"}, name
    for job in DEPLOY["jobs"].values():
        assert "secrets" not in job


def test_pull_request_code_gets_only_the_preview_identity_in_the_preview_environment():
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "GCP_DEPLOY_SERVICE_ACCOUNT" not in text
    assert list(triggers(PREVIEW)) == ["pull_request"], "never pull_request_target"
    for name, job in PREVIEW["jobs"].items():
        holds_identity = (job.get("permissions") or {}).get("id-token") == "write"
        assert holds_identity == (name == "preview"), name
        if holds_identity:
            assert job["environment"] == "preview"
            (auth,) = [s for s in steps(job) if s.get("uses", "").startswith("google-github-actions/auth@")]
            assert auth["with"]["service_account"] == "${{ vars.GCP_PREVIEW_SERVICE_ACCOUNT }}"
    up = UP["jobs"]["up"]
    (auth,) = [s for s in steps(up) if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert auth["with"]["service_account"] == "${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT }}"
    assert up["environment"] == "${{ inputs.stack }}"
    assert list(triggers(UP)) == ["workflow_call"] and list(triggers(DEPLOY)) == ["push"]
    assert triggers(DEPLOY)["push"]["branches"] == ["main"]


def test_only_dev_is_previewed_with_credentials_from_a_pull_request():
    env = PREVIEW["env"]
    stacks, credentialed = json.loads(env["STACKS"]), json.loads(env["PREVIEW_STACKS"])
    assert stacks == ["dev", "staging", "prod"] and credentialed == ["dev"]
    assert PREVIEW["jobs"]["preview"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.preview) }}"


def stack_selection(tmp_path: Path, changed_files: list[str]) -> dict[str, list[str]]:
    """Run the `stacks` job's selection step as CI does (bash, python3, the env of the workflow)."""
    script = run_script(PREVIEW["jobs"]["stacks"], "Allowlisted stacks")
    script = script.replace('git diff --name-only "origin/${BASE_REF}...HEAD" > "$RUNNER_TEMP/changed-files"',
                            'printf "%s\\n" $CHANGED > "$RUNNER_TEMP/changed-files"')
    output = tmp_path / "output"
    env = {**os.environ, **PREVIEW["env"], "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output),
           "CHANGED": " ".join(changed_files)}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=True, cwd=tmp_path)
    return {k: json.loads(v) for k, v in (line.split("=", 1) for line in output.read_text().splitlines())}


@pytest.mark.parametrize("changed,expected_changed,expected_preview", [
    (["Pulumi.dev.yaml"], ["dev"], ["dev"]),
    (["Pulumi.prod.yaml"], ["prod"], []),
    (["Pulumi.evil.yaml"], [], []),
    (["Pulumi.evil.yaml", "README.md"], [], []),
    (["components/cluster.py"], ["dev", "staging", "prod"], ["dev"]),
    (["policy/rules.py"], ["dev", "staging", "prod"], ["dev"]),
    (["README.md"], [], []),
])
def test_stacks_come_from_the_allowlist_never_from_file_names(tmp_path, changed, expected_changed, expected_preview):
    assert stack_selection(tmp_path, changed) == {"changed": expected_changed, "preview": expected_preview}


def test_matrix_json_is_built_by_a_json_tool():
    script = run_script(PREVIEW["jobs"]["stacks"], "Allowlisted stacks")
    assert "json.dumps" in script and "Pulumi.*.yaml" not in script and "IFS=," not in script


def test_pulumi_up_refuses_a_stack_outside_the_allowlist():
    up = UP["jobs"]["up"]
    assert steps(up)[0]["name"] == "Stack allowlisted"
    script = steps(up)[0]["run"]
    for stack, code in (("dev", 0), ("prod", 0), ("evil", 1), ("prod-2", 1)):
        assert subprocess.run(["bash", "-c", script], env={**os.environ, "STACK": stack}, capture_output=True).returncode == code


# --------------------------------------------------------------- item 8: reproducible engine

def test_the_pulumi_cli_is_pinned_to_the_engine_the_testbed_runs():
    testbed = re.search(r"^PULUMI_CLI_VERSION=v(\S+)", (ROOT / "testbed" / "build_pulumi.sh").read_text(), re.M).group(1)
    runs = [s for d in (PREVIEW, UP) for job in d["jobs"].values() for s in pulumi_steps(job)]
    assert len(runs) == 3
    for step in runs:
        assert str(step["with"]["pulumi-version"]) == testbed == "3.274.1"
        assert step["with"]["upsert"] is False, "CI never creates a stack (its secrets provider would be lost)"


@pytest.mark.parametrize("content,ok", [
    ("secretsprovider: gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/gke-mesh-dev\nencryptedkey: Q2lR\nconfig: {}\n", True),
    ("config: {}\n", False),
    ("encryptionsalt: v1:abc\nconfig: {}\n", False),
    ("secretsprovider: gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/gke-mesh-prod\nencryptedkey: Q2lR\n", False),
])
def test_ci_runs_only_stacks_initialised_with_their_own_kms_key(tmp_path, content, ok):
    (tmp_path / "Pulumi.dev.yaml").write_text(content)
    for job in (PREVIEW["jobs"]["preview"], UP["jobs"]["up"]):
        script = run_script(job, "Stack initialised")
        done = subprocess.run(["bash", "-c", script], env={**os.environ, "STACK": "dev"}, cwd=tmp_path, capture_output=True, text=True)
        assert (done.returncode == 0) == ok, done.stdout
        runs = pulumi_steps(job)
        assert steps(job).index(next(s for s in steps(job) if "Stack initialised" in s.get("name", ""))) < steps(job).index(runs[0])


# ------------------------------------------------------------ item 9: SHA-pinned deploy path

def deploy_path_jobs():
    for name, document in DOCUMENTS.items():
        for job_name, job in document["jobs"].items():
            if (job.get("permissions") or {}).get("id-token") == "write" and "steps" in job:
                yield f"{name}:{job_name}", job


def test_the_deploy_path_is_pinned_to_verified_release_commits():
    jobs = dict(deploy_path_jobs())
    assert set(jobs) == {"preview.yml:preview", "pulumi-up.yml:up"}
    for where, job in jobs.items():
        for step in steps(job):
            if "uses" in step:
                action, sha = step["uses"].split("@")
                assert RELEASES[action][0] == sha, f"{where}: {step['uses']}"


def test_every_action_is_sha_pinned_with_its_tag_in_a_comment():
    for name in DOCUMENTS:
        for line in (WORKFLOWS / name).read_text().splitlines():
            match = re.search(r"uses: ([\w.-]+/[\w.-]+)@(\S+)(.*)", line)
            if match and not match.group(1).startswith("."):
                action, ref, comment = match.groups()
                assert (ref, comment.strip()) == (RELEASES[action][0], f"# {RELEASES[action][1]}"), f"{name}: {line.strip()}"


def test_pulumi_up_previews_before_it_updates():
    commands = [s["with"]["command"] for s in pulumi_steps(UP["jobs"]["up"])]
    assert commands == ["preview", "up"]


# ------------------------------------------------------------------------ README says so

def test_readme_says_what_runs_where_with_which_identity():
    readme = (ROOT / "README.md").read_text()
    for needle in ("environment:preview", "refs/heads/main", "job_workflow_ref", "make policy-venv",
                   "pulumi preview --policy-pack policy", "3.274.1", "gke-mesh-dev", "encryptedkey",
                   "patch", "--yes", "PREVIEW_STACKS"):
        assert needle in readme, needle


# ----------------------------------------------- item 13: object names out of plain logs

FAILURE = ('`kubectl rollout restart deployment/checkout --namespace=storefront` failed (exit 1): '
           'Error from server (NotFound): deployments.apps "checkout" not found, deployments/checkout')


@pytest.mark.parametrize("step,private", [("uninject", True), ("restore", True), ("keep purge", True), ("preflight", False)])
def test_cluster_data_steps_keep_object_names_out_of_failure_and_progress_lines(monkeypatch, capsys, step, private):
    import meshops.cluster.execute
    from meshops.__main__ import main
    from meshops.cluster.process import StepFailed

    def execute(words, environ, tools):
        tools.log("[c1] progress: `kubectl label namespace storefront istio-injection- …` ok")
        raise StepFailed(FAILURE)

    monkeypatch.setattr(meshops.cluster.execute, "execute", execute)
    monkeypatch.setenv("GKE_MESH_CLUSTER", "c1")
    assert main(step.split()) == 1
    err = capsys.readouterr().err
    for name in ("checkout", "storefront"):
        assert (name in err) != private, err
    if private:
        assert "`kubectl rollout restart deployment/<name> --namespace=<namespace>` failed (exit 1)" in err
        assert 'deployments.apps "<name>" not found' in err and "kubectl label namespace <name>" in err


def test_the_pull_request_preview_needs_no_kubernetes_write_right():
    """Issue "Trust", item 14: previewing a NamespacePatch is a server-side dry-run patch
    (needs `patch` RBAC); the PR preview excludes those resources, and the README's Workload
    Identity condition admits the preview identity only for preview.yml on a pull request
    into main."""
    (step,) = pulumi_steps(PREVIEW["jobs"]["preview"])
    assert step["with"]["command"] == "preview" and step["with"]["exclude"] == "**$kubernetes:core/v1:NamespacePatch::**"
    urn = ("urn:pulumi:dev::gke-mesh::gke-mesh:platform:MeshPlatform$gke-mesh:platform:ClusterMesh$"
           "gke-mesh:injection:MeshNamespaces$kubernetes:core/v1:NamespacePatch::dev-cluster-1-katayan-injection")
    glob = re.escape(step["with"]["exclude"]).replace(r"\*\*", ".*")  # the engine's `**` (deployment.go, getMatcher)
    assert re.fullmatch(glob, urn)
    readme = (ROOT / "README.md").read_text()
    condition = readme.split("attribute condition:", 1)[1].split("```", 2)[1]
    assert 'assertion.environment == "preview" && assertion.event_name == "pull_request"' in condition
    assert 'assertion.job_workflow_ref.startsWith("ORG/REPO/.github/workflows/preview.yml@refs/pull/")' in condition
    assert "and needs no Kubernetes write right" in readme and "identity `get` and `patch` on `namespaces`" not in readme
