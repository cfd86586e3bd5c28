"""Keep README tables and Pulumi.yaml true to the code."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields

import yaml

from components.settings import _CLUSTER_KEYS, _MIGRATION_KEYS, KNOWN_KEYS, Cluster, Migration, Settings
from tests.conftest import ROOT, minimal_config, run

README = (ROOT / "README.md").read_text()
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def table_after(heading: str) -> dict[str, list[str]]:
    """First markdown table after `heading`: first-column key (backticks stripped) -> cells."""
    section = README.split(heading, 1)[1]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_config_table_lists_exactly_the_known_keys():
    assert set(table_after("## Configuration")) == {"gcp:project", *KNOWN_KEYS}


def test_cluster_table_lists_exactly_the_cluster_keys():
    assert set(table_after("Each entry of `gke-mesh:clusters`:")) == set(_CLUSTER_KEYS)


def test_migration_table_matches_keys_and_defaults():
    table = table_after("`gke-mesh:migration`:\n")
    assert set(table) == set(_MIGRATION_KEYS)
    defaults = Migration()
    for key, (attr, _) in _MIGRATION_KEYS.items():
        documented = table[key][1].strip("`")
        actual = getattr(defaults, attr)
        if attr == "wait_timeout_seconds":
            assert documented == f"{actual // 60}m"
        elif actual == "":
            assert documented == "none", key
        elif actual == ():
            assert documented == "[]", key
        else:
            assert documented == (str(actual).lower() if isinstance(actual, bool) else str(actual)), key


def test_cluster_defaults_in_readme_match_the_dataclass():
    table = table_after("Each entry of `gke-mesh:clusters`:")
    defaults = {f.name: f.default for f in fields(Cluster)}
    assert table["mode"][1] == f"`{defaults['mode']}`"
    assert table["nodeMachineType"][1] == f"`{defaults['node_machine_type']}`"
    assert table["nodeCount"][1] == f"`{defaults['node_count']}`"


def test_outputs_table_matches_the_program_outputs():
    documented = set(table_after("## Outputs"))
    outputs = run(minimal_config(), preview=False).outputs
    cluster = outputs["clusters"]["dev-cluster-1"]
    actual = set(outputs) | {f"clusters.<name>.{k}" for k in cluster} | {f"clusters.<name>.last_verify.{k}" for k in cluster["last_verify"]}
    assert documented == actual


def test_project_file_declares_typed_keys_with_true_defaults():
    assert PROJECT["name"] == "gke-mesh"
    assert PROJECT["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    declared = PROJECT["config"]
    for key, spec in declared.items():
        assert f"gke-mesh:{key}" in KNOWN_KEYS, key
        assert spec["type"] in ("string", "integer", "boolean", "array"), key
        assert spec.get("description"), key
        if spec["type"] == "array":
            assert spec["items"]["type"] in ("string", "integer", "boolean"), key
    settings_defaults = {f.name: f.default for f in fields(Settings)}
    assert declared["meshFeature"]["default"] == settings_defaults["mesh_feature"]
    assert declared["apis"]["default"] == []
    assert "default" not in declared["releaseChannel"], "required keys have no default"


def test_project_file_comments_document_every_structured_key():
    text = (ROOT / "Pulumi.yaml").read_text()
    for key in _CLUSTER_KEYS:
        assert re.search(rf"^#\s+{key}\b", text, re.M), key
    for key in _MIGRATION_KEYS:
        assert re.search(rf"\b{key} \(", text), key


def rbac_table() -> dict[str, set[str]]:
    """verb -> resources (backticked names; `*.istio.io` stands for every Istio kind)."""
    documented: dict[str, set[str]] = {}
    for line in README.split("### Kubernetes RBAC the steps use", 1)[1].split("###", 1)[0].splitlines():
        if line.startswith("| ") and "`" in line:
            verbs, resources = [c.strip() for c in line.strip("|").split("|")[:2]]
            for verb in verbs.split(","):
                documented.setdefault(verb.split("(")[0].strip(), set()).update(re.findall(r"`([^`]+)`", resources))
    return documented


def kubectl_permissions(calls: list[list[str]]) -> set[tuple[str, str]]:
    """(verb, resource) pairs a list of kubectl argv needs."""
    used = set()
    for argv in (c for c in calls if c[0] == "kubectl"):
        verb, rest = argv[2], argv[3:]
        mesh_namespace = any(a in ("--namespace=istio-system", "--namespace=asm-system") for a in rest)
        if verb == "get" and mesh_namespace and rest[0].count(",") > 2:  # every namespaced kind api-resources lists
            used.add(("get", "*"))
        elif verb in ("get", "delete", "patch"):
            used |= {(verb, r if r.endswith("s") or "." in r else r + "s") for r in rest[0].split(",")}
        elif verb == "label":
            used.add(("patch", "namespaces"))
        elif verb == "rollout" and rest[0] == "restart":
            used |= {("patch", ref.split("/")[0] + "s") for ref in rest[1:] if "/" in ref}
        elif verb == "rollout":  # status: reads the workload and its replica sets, and watches
            used |= {("get", ref.split("/")[0] + "s") for ref in rest[1:] if "/" in ref} | {("watch", "deployments")}
        elif verb in ("create", "replace"):  # only gke-mesh's own config maps (owner claim, migration record)
            used.add(("create" if verb == "create" else "update", "configmaps"))
        elif verb == "apply":
            used |= {("create", "*.istio.io"), ("patch", "*.istio.io")}
    return used


def test_rbac_table_covers_every_kubectl_call_of_a_migration(tmp_path, monkeypatch):
    from meshops.context import Options
    from tests.chain_driver import Chain, context
    from tests.fake_world import FakeWorld, seed_field_report

    monkeypatch.chdir(tmp_path)
    world = FakeWorld()
    seed_field_report(world)
    Chain(world, context(), Options(stack="dev", remove_authorization_policies=True)).up()
    documented = rbac_table()
    used = kubectl_permissions(world.calls)
    assert len(used) > 20
    for verb, resource in sorted(used):
        allowed = documented.get(verb, set())
        istio = resource.endswith("istio.io") and "*.istio.io" in allowed
        assert resource in allowed or istio, f"README RBAC table lacks {verb} on {resource}"


# What the repository must never cite: files outside it, or an unnamed report instead of its
# public source (name the article or the Google page). This file alone spells them out.
OUTSIDE_CITATIONS = re.compile(r"DOMAIN\.md|DESIGN\.md|\.\./shared|/work/shared|field[\s-]+report", re.IGNORECASE)


def test_no_tracked_file_cites_files_outside_the_repository():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    found = []
    for name in names:
        path = ROOT / name
        if not name or name == "tests/test_docs.py" or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_CITATIONS.search(line):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
        found += [f"{name}: {m.group(0)!r} across lines" for m in OUTSIDE_CITATIONS.finditer(text) if "\n" in m.group(0)]
    assert len(names) > 100 and not found, "\n".join(found)
