"""Pull-request review: the markdown runbook, the mermaid graph, `--base`, and the CI
workflows. Golden files change only deliberately: `UPDATE_GOLDEN=1 make test`, then
read the diff before committing it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshops.review import render_markdown, render_mermaid
from meshops.review.diff import annotate, summary
from meshops.review.plan import build_plan
from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL
from tests.conftest import ROOT, STACK_FILES

GOLDEN = ROOT / "tests" / "golden"
CHAIN = (*CHAIN_BEFORE_CHANNEL, "release-channel", *CHAIN_AFTER_CHANNEL)
BIN = Path(sys.executable).parent


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{name} missing: run UPDATE_GOLDEN=1 make test and review it"
    assert text == path.read_text(), f"{name} differs from the golden file; if intended: UPDATE_GOLDEN=1 make test, review the diff"


def stack_file(tmp_path: Path, name: str, edit) -> Path:
    values = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    edit(values["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_golden_markdown_and_mermaid(path):
    plan = build_plan(path)
    stack = plan["stack"]
    check_golden(f"{stack}.md", render_markdown.render(plan))
    check_golden(f"{stack}.mmd", render_mermaid.render(plan))


def rapid_to_regular(tmp_path) -> dict:
    base = stack_file(tmp_path, "dev", lambda c: c.update({"gke-mesh:releaseChannel": "rapid"}))
    return annotate(build_plan(base, "dev"), build_plan(ROOT / "Pulumi.dev.yaml"))


def test_golden_rapid_to_regular_runbook_is_in_the_readme(tmp_path):
    text = render_markdown.render(rapid_to_regular(tmp_path), "Pulumi.dev.yaml with releaseChannel: rapid")
    check_golden("dev-rapid-to-regular.md", text)
    assert text in (ROOT / "README.md").read_text(), "README's rapid -> regular example is stale"


def test_readme_shows_the_dev_graph():
    assert (GOLDEN / "dev.mmd").read_text() in (ROOT / "README.md").read_text()


def test_channel_change_marks_the_whole_chain_and_nothing_else(tmp_path):
    plan = rapid_to_regular(tmp_path)
    changed = {(r["step"], r["change"]) for r in plan["resources"] if r["change"] != "none"}
    # The release channel too: its triggers carry preflight's attempt id, unknown in a preview
    # while preflight is replaced (the real engine previews it as a replace: test_program_e2e).
    assert changed == {(step, "replace") for step in CHAIN}


def test_unrelated_edit_changes_only_what_it_touches(tmp_path):
    base = stack_file(tmp_path, "dev", lambda c: None)
    new = stack_file(tmp_path, "new", lambda c: c.update({"gke-mesh:apis": ["monitoring.googleapis.com"]}))
    plan = annotate(build_plan(base, "dev"), build_plan(new, "dev"))
    changed = [(r["step"], r["change"]) for r in plan["resources"] if r["change"] != "none"]
    assert changed == [("api:monitoring.googleapis.com", "create")]


def test_option_edit_updates_only_the_steps_that_read_it(tmp_path):
    """An update of a chain step runs its `keep` (nothing against the cluster)."""
    base = stack_file(tmp_path, "dev", lambda c: None)
    new = stack_file(tmp_path, "new", lambda c: c.update({"gke-mesh:migration": {**c["gke-mesh:migration"], "waitTimeout": "45m"}}))
    plan = annotate(build_plan(base, "dev"), build_plan(new, "dev"))
    assert [(r["step"], r["change"]) for r in plan["resources"] if r["change"] != "none"] == [("wait-ready", "update")]


def test_new_cluster_is_all_creates(tmp_path):
    base = stack_file(tmp_path, "dev", lambda c: None)
    new = stack_file(tmp_path, "new", lambda c: c["gke-mesh:clusters"].append({"name": "dev-cluster-2", "location": "asia-northeast1"}))
    plan = annotate(build_plan(base, "dev"), build_plan(new, "dev"))
    changes = {r["change"] for r in plan["resources"] if r["cluster"] == "dev-cluster-2"}
    assert changes == {"create"}
    assert {r["change"] for r in plan["resources"] if r["cluster"] != "dev-cluster-2"} == {"none"}


def test_removed_cluster_is_all_deletes(tmp_path):
    base = stack_file(tmp_path, "dev", lambda c: c["gke-mesh:clusters"].append({"name": "dev-cluster-2", "location": "asia-northeast1"}))
    new = stack_file(tmp_path, "new", lambda c: None)
    plan = annotate(build_plan(base, "dev"), build_plan(new, "dev"))
    gone = [r for r in plan["resources"] if r["cluster"] == "dev-cluster-2"]
    assert gone and {r["change"] for r in gone} == {"delete"}
    assert summary(plan)["delete"] == len(gone) and summary(plan)["replace"] == summary(plan)["update"] == 0
    assert "## Removed from the stack" in render_markdown.render(plan, "base")


def test_base_git_ref_compares_file_and_program(tmp_path):
    """A throwaway repository: commit the dev stack on rapid, move it to regular, plan --base HEAD."""
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("releaseChannel: regular", "releaseChannel: rapid"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "rapid"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    stack.write_text(stack.read_text().replace("releaseChannel: rapid", "releaseChannel: regular"))
    done = subprocess.run([sys.executable, "-m", "meshops", "plan", "--config", "Pulumi.dev.yaml", "--base", "HEAD"],
                          cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    changed = {(r["step"], r["change"]) for r in json.loads(done.stdout)["resources"] if r["change"] != "none"}
    # The release channel too: its triggers carry preflight's attempt id, unknown in a preview
    # while preflight is replaced (the real engine previews it as a replace: test_program_e2e).
    assert changed == {(step, "replace") for step in CHAIN}


def test_mermaid_stays_readable_at_ten_clusters(tmp_path):
    many = stack_file(tmp_path, "many", lambda c: c.update({"gke-mesh:clusters": [
        {"name": f"c{i}", "location": "asia-northeast1"} for i in range(10)]}))
    text = render_mermaid.render(build_plan(many, "dev-many"))
    nodes = [line for line in text.splitlines() if line.strip().startswith("n") and "[" in line]
    edges = [line for line in text.splitlines() if "-->" in line]
    assert text.count("subgraph c") == 10
    assert len(nodes) == len({line.split("[")[0].strip() for line in nodes}), "node ids are unique"
    defined = {line.split("[")[0].strip() for line in nodes}
    assert all(set(e.split(" --> ")[0].split() + e.split(" --> ")[1].split()) <= defined for e in edges)
    assert len(edges) <= 17 * 10 + 2, f"{len(edges)} edges: too many to read"


def test_markdown_escapes_table_text():
    plan = build_plan(ROOT / "Pulumi.dev.yaml")
    text = render_markdown.render(plan)
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "`backup`" in line]
    assert table_rows and "&lt;revision&gt;" in table_rows[0] and "\\*.istio.io" in table_rows[0]


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_workflows_match_the_github_schema():
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_above_low():
    done = subprocess.run([str(BIN / "zizmor"), "--offline", "--config", str(ROOT / ".github" / "zizmor.yml"), "--format", "json",
                           "--min-severity", "medium", str(ROOT / ".github" / "workflows")], capture_output=True, text=True, timeout=120)
    findings = json.loads(done.stdout or "[]")
    assert findings == [], [f["ident"] for f in findings]


def test_workflows_follow_the_promotion_order_and_least_privilege():
    deploy = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    jobs = deploy["jobs"]
    assert (jobs["dev"]["needs"], jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("test", "dev", "staging")
    for workflow in WORKFLOWS:
        document = yaml.safe_load(workflow.read_text())
        assert document["permissions"] == {}, f"{workflow.name}: top-level permissions must be empty"
        text = workflow.read_text()
        assert "credentials_json" not in text, "Workload Identity Federation only, never a JSON key"
        for line in text.splitlines():
            if "uses:" in line and "@" in line and "./" not in line:
                ref = line.split("@", 1)[1].split()[0]
                assert len(ref) == 40 or "#" in line, f"{workflow.name}: {line.strip()} is neither SHA-pinned nor commented"
    up = yaml.safe_load((ROOT / ".github/workflows/pulumi-up.yml").read_text())["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"


def test_runbook_without_base_says_not_compared_never_unchanged():
    text = render_markdown.render(build_plan(ROOT / "Pulumi.dev.yaml"))
    header = text.split("\n## ", 1)[0]
    assert "changes: not compared" in header and "BASE=" in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| #", "| change"))]
    change_cells = [line.split(" | ")[0][2:] if line.startswith("| not") else line.split(" | ")[2] for line in rows]
    assert rows and set(change_cells) == {"not compared"}, set(change_cells)
    assert "unchanged" not in text and "(·)" not in text


def test_readme_quick_start_leads_with_the_markdown_runbook():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.strip().splitlines()[0].startswith("make plan STACK=dev FORMAT=markdown")


def big_stack(tmp_path, n: int, **migration) -> Path:
    projects = ["my-project-123456", "fleet-apps-234567", "fleet-data-345678"]
    return stack_file(tmp_path, f"big{n}", lambda c: c.update({
        "gke-mesh:clusters": [{"name": f"cluster-{i:02d}", "location": ["asia-northeast1", "europe-west4-b", "us-central1"][i % 3],
                               "project": projects[i % 3], **({"meshNamespaces": ["shop"]} if i % 7 == 0 else {})}
                              for i in range(n)],
        "gke-mesh:migration": {**c["gke-mesh:migration"], **migration}}))


def check_mermaid_structure(text: str) -> tuple[set[str], list[str]]:
    """Every line is one of the forms the renderer writes; subgraphs close; ids are unique;
    edges join defined nodes or subgraphs. Returns (node ids, edge lines)."""
    import re

    forms = [r"flowchart TB", r'  subgraph (\w+)\["[^"\n]+"\]', r"    direction (TB|LR)", r"  end",
             r'    (n\d+)\["[^"\n]+"\](:::\w+)?', r"  (n\d+) --> (n\d+)", r'  (n\d+) -\.->\|"[^"\n]+"\| (n\d+)', r"  classDef \w+ \S+"]
    nodes, subgraphs, edges, depth = [], [], [], 0
    for line in text.rstrip("\n").split("\n"):
        match = next((m for m in (re.fullmatch(f, line) for f in forms) if m), None)
        assert match, f"not a form the renderer writes: {line!r}"
        if line.startswith("  subgraph"):
            depth += 1
            subgraphs.append(match.group(1))
        elif line == "  end":
            depth -= 1
        elif line.startswith("    n"):
            nodes.append(match.group(1))
        elif "--" in line or "-." in line:
            edges.append(line)
            assert {match.group(1), match.group(2)} <= set(nodes), line
        assert depth in (0, 1)
    assert depth == 0
    assert len(nodes) == len(set(nodes)) and len(subgraphs) == len(set(subgraphs)) and not set(nodes) & set(subgraphs)
    assert '"' not in "".join(re.sub(r'\["[^"\n]*"\]|\|"[^"\n]*"\|', "", line) for line in text.split("\n"))
    return set(nodes), edges


@pytest.mark.parametrize("migration", [{}, {"maxParallel": 1000}], ids=["one-at-a-time", "all-parallel"])
def test_mermaid_of_sixty_clusters_fits_mermaids_limit(tmp_path, migration):
    plan = build_plan(big_stack(tmp_path, 60, **migration), "dev-big")
    text = render_mermaid.render(plan)
    assert len(text) < render_mermaid.MERMAID_MAX_TEXT, len(text)
    nodes, edges = check_mermaid_structure(text)
    titles = " ".join(line for line in text.splitlines() if line.startswith("  subgraph c"))
    assert all(f"cluster-{i:02d}" in titles for i in range(60)), "every cluster is named"
    assert "(× " in titles, "clusters with the same chain are drawn once"
    labels = [line.split('["', 1)[1].split('"]')[0] for line in text.splitlines() if line.startswith("    n")]
    assert labels.count("namespace shop") >= 1 and labels.count("kubernetes-provider") >= 1
    provider = {line.split("[")[0].strip() for line in text.splitlines() if '["kubernetes-provider"]' in line}
    assert all(any(e.startswith(f"  {p} --> ") for e in edges) for p in provider), "the provider feeds its namespaces"
    crossing = [e for e in edges if "then the next cluster" in e]
    assert bool(crossing) == (not migration), "maxParallel's edges between clusters are drawn, and only then"


def test_mermaid_draws_every_cluster_while_it_fits(tmp_path):
    plan = build_plan(big_stack(tmp_path, 12), "dev-big")
    text = render_mermaid.render(plan)
    check_mermaid_structure(text)
    assert "(× " not in text and text.count("  subgraph c") == 12


def test_provider_and_promotion_gate_feed_what_they_serve():
    dev = render_mermaid.render(build_plan(ROOT / "Pulumi.dev.yaml"))
    _, edges = check_mermaid_structure(dev)
    ids = {line.split('["', 1)[1].split('"]')[0]: line.split("[")[0].strip() for line in dev.splitlines() if line.startswith("    n")}
    for namespace in ("namespace katayan", "namespace katayan-gateway"):
        assert f"  {ids['kubernetes-provider']} --> {ids[namespace]}" in edges
    prod = render_mermaid.render(build_plan(ROOT / "Pulumi.prod.yaml"))
    _, edges = check_mermaid_structure(prod)
    gates = [line.split("[")[0].strip() for line in prod.splitlines() if '["promotion gate' in line]
    assert len(gates) == 2 and all(any(e.startswith(f"  {g} --> ") for e in edges) for g in gates)
