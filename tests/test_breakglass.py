"""`meshops status` and `meshops restore --config …` (break glass), through the real CLI
entry point, against the fake cluster and fleet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meshops.__main__ as cli
from meshops.cluster import breakglass
from meshops.cluster.objects import digest
from meshops.cluster.trust import KEY_ENV, StackKey
from meshops.context import Options
from tests.chain_driver import Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report

STACK_FILE = """config:
  gcp:project: my-project-123456
  gke-mesh:releaseChannel: regular
  gke-mesh:clusters:
    - name: dev-cluster-1
      location: asia-northeast1
"""
PA = "peerauthentications.security.istio.io"


STACK = "organization/gke-mesh/dev"


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """A stack `dev` whose key break-glass reads from the stack's state (here: the driver's)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Pulumi.dev.yaml").write_text(STACK_FILE)
    world = FakeWorld()
    cluster = seed_field_report(world)
    monkeypatch.setattr(cli, "run", world)
    chain = Chain(world, context(), Options(stack=STACK))

    def key_from_state(identity, directory):
        assert identity == STACK and directory == tmp_path
        stored = chain.state.get("stack-key")
        return (StackKey.from_environment({KEY_ENV: stored.stdout}, identity), "") if stored else (None, "no state yet")

    monkeypatch.setattr(breakglass, "key_from_state", key_from_state)
    return world, cluster, chain


def main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_of_a_healthy_cluster(fleet, capsys):
    world, cluster, chain = fleet
    chain.up()
    code, out, err = main(capsys, "status", "--config", "Pulumi.dev.yaml")
    assert code == 0, err
    assert out.splitlines()[0] == "dev-cluster-1: healthy"
    assert "control plane ACTIVE on asm-managed (ISTIOD)" in out and f"owner        {STACK}" in out


def test_status_mid_migration_shows_the_record_and_relaxed_security(fleet, capsys):
    world, cluster, chain = fleet
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    code, out, err = main(capsys, "status", "--config", "Pulumi.dev.yaml", "--format", "json")
    assert code == 3, "exit 3: a migration in flight"
    (status,) = json.loads(out)
    assert status["verdict"] == "in flight"
    assert status["migration"]["phase"] == "uninjected" and status["migration"]["stack"] == STACK
    assert status["migration"]["backup"]["location"].startswith(f"backups/{STACK}/dev-cluster-1/rapid-to-regular/")
    assert status["record_found_at"] == "kube-system" and status["record_checked"] is True
    assert status["security_differs_from_backup"] == [
        "PeerAuthentication istio-system/default", "PeerAuthentication katayan/web", "PeerAuthentication katayan/web:8080",
        "DestinationRule katayan/web"], "PERMISSIVE, and ISTIO_MUTUAL taken out"


def test_restore_by_hand_dry_run_changes_nothing(fleet, capsys):
    world, cluster, chain = fleet
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    calls = len(world.calls)
    code, out, err = main(capsys, "restore", "--config", "Pulumi.dev.yaml", "--cluster", "dev-cluster-1", "--dry-run")
    assert code == 0, err
    assert out.startswith(f"dev-cluster-1: would apply 8 objects from backups/{STACK}/dev-cluster-1/")
    assert "2 peerauthentications.security.istio.io" in out
    assert not [c for c in world.calls[calls:] if c[0] == "kubectl" and c[2] in ("apply", "patch", "delete")]


def test_restore_by_hand_puts_security_back(fleet, capsys):
    world, cluster, chain = fleet
    strict = digest(cluster.objects[(PA, "katayan", "web")])
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    assert digest(cluster.objects[(PA, "katayan", "web")]) != strict
    code, out, err = main(capsys, "restore", "--config", "Pulumi.dev.yaml", "--cluster", "dev-cluster-1")
    assert code == 0, err
    assert "applied and verified by digest 8 objects" in out
    assert digest(cluster.objects[(PA, "katayan", "web")]) == strict


def test_restore_by_hand_refuses_a_swapped_backup(fleet, capsys):
    world, cluster, chain = fleet
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    (manifest,) = Path("backups").rglob("manifest.json")
    manifest.write_text(manifest.read_text().replace('"total":8', '"total":8 '))
    code, out, err = main(capsys, "restore", "--config", "Pulumi.dev.yaml", "--cluster", "dev-cluster-1")
    assert code == 1 and err.count("\n") == 1
    assert "manifest.json is not the one this migration recorded" in err


def test_restore_by_hand_says_what_to_pass_without_a_record(fleet, capsys):
    code, out, err = main(capsys, "restore", "--config", "Pulumi.dev.yaml", "--cluster", "dev-cluster-1")
    assert code == 1 and err.splitlines()[-1] == (
        "meshops restore [dev-cluster-1]: cluster dev-cluster-1: no migration record of this stack names a backup (no stack key: "
        "records cannot be checked); pass --backup URI and --sha256 (from the record.json beside it, once you trust it)")


@pytest.mark.parametrize("argv,expected", [
    (["status", "--config", "Pulumi.dev.yaml", "--cluster", "nope"], "--cluster nope: not in Pulumi.dev.yaml"),
    (["restore", "--config", "Pulumi.dev.yaml"], "--cluster is required with --config"),
    (["status", "--config", "Pulumi.missing.yaml"], "Pulumi.missing.yaml"),
])
def test_user_errors_are_one_line_exit_2(fleet, capsys, argv, expected):
    code, out, err = main(capsys, *argv)
    assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err


def readme_commands() -> list[list[str]]:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("## When a migration fails", 1)[1].split("\n## ", 1)[0]
    return [line.strip().split()[3:] for line in section.splitlines() if line.strip().startswith("python -m meshops ")]


def test_every_command_of_the_bad_day_section_runs(fleet, capsys):
    world, cluster, chain = fleet
    commands = readme_commands()
    assert len(commands) == 4
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")  # a migration in flight, security relaxed
    for argv in commands:
        code, out, err = main(capsys, *argv)
        assert code in (0, 3), (argv, err)
        assert out and not err, argv
    assert main(capsys, "status", "--config", "Pulumi.dev.yaml")[1].count("as in the backup") == 1, "security is back"
