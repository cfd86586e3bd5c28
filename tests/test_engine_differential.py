"""Differential: tests/chain_driver.py's Chain against the REAL Pulumi engine.

The same sequence of program versions for one cluster runs through
(a) the real engine: the Pulumi CLI v3.274.1 built from Go modules (testbed/build_pulumi.sh),
    the stand-in `pulumi-resource-command` (testbed/command-provider, built by
    testbed/build_command_provider.sh) and the project's own MigrationChain/ReleaseChannel
    components as a Python Automation API inline program (testbed/engine_chain.py: no
    pulumi-language-python binary needed), in a network namespace with only loopback up; and
(b) tests/chain_driver.py's Chain, with its executor swapped for the same recorder.
Every `python3 -m meshops <words>` becomes the recorder (testbed/recorder.py), which logs
`<resource> <action> <words>`, prints a deterministic result and fails on request.

Per operation the test asserts that both sides ran the same (resource, action) sequence,
succeeded or failed alike, and left the same resources in state with the same stdout and
environment; a disagreement fails with a readable diff of every operation.

Skipped, with the reason, when the testbed binaries are not built:
    bash testbed/build_pulumi.sh && bash testbed/build_command_provider.sh
Run: pytest -m e2e tests/test_engine_differential.py
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import pytest

from meshops.cluster.process import StepFailed
from meshops.context import Options, StepContext
from testbed import engine_chain
from testbed.recorder import RecorderFault, respond
from tests.chain_driver import Chain, context
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

BUCKET = "gs://mesh-backups/moves"


def _version(op: str = "up", channel: str = "regular", faults: tuple[tuple[str, str], ...] = (), rerun: str = "",
             in_program: bool = True, **options: Any) -> dict[str, Any]:
    return {"op": op, "ctx": asdict(context(channel=channel)), "options": {"stack": "dev", "backup_uri": BUCKET, **options},
            "rerun": rerun, "reregister": True, "in_program": in_program, "faults": [list(f) for f in faults]}


SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("first up", _version()),
    ("option edit (backupUri): keep-updates", _version(backup_uri="gs://mesh-backups/elsewhere")),
    ("option edit (backupUri) with a fault at backup's keep-update",
     _version(backup_uri="gs://mesh-backups/third", faults=(("backup", "update"),))),
    ("channel change regular -> rapid: replaces", _version(channel="rapid", backup_uri="gs://mesh-backups/elsewhere")),
    ("channel -> stable with a fault at uninject's create", _version(channel="stable", faults=(("uninject", "create"),))),
    ("retry, fault cleared", _version(channel="stable")),
    ("rerun value r1", _version(channel="stable", rerun="r1")),
    ("cluster removed from the program: guard delete", _version(channel="stable", rerun="r1", in_program=False)),
    ("cluster put back", _version(channel="stable", rerun="r1")),
    ("destroy with a failing guard delete", _version("destroy", channel="stable", faults=(("guard", "delete"),))),
    ("destroy again, guard delete passes", _version("destroy", channel="stable")),
]

ENGINE_OP_ACTION = {"create": "create", "create-replacement": "create", "update": "update",
                    "delete": "delete", "delete-replaced": "delete", "discard": "delete", "discard-replaced": "delete"}


@pytest.fixture(scope="module")
def engine_ready() -> None:
    missing = engine_chain.missing_binaries()
    if missing:
        pytest.skip("real-engine testbed not built: " + "; ".join(missing))


class _NoWorld:
    """Chain's `world`: the recorder acts on nothing, so no calls and no tools."""

    calls: list = []

    def tools(self) -> None:
        return None


def run_chain(sequence: list[dict[str, Any]], scratch: Path) -> list[dict[str, Any]]:
    """The chain driver over the sequence, with the recorder as its executor."""
    log, faults = scratch / "chain-recorder.log", scratch / "chain-faults"
    log.touch()

    def executor(words: list[str], env: Mapping[str, str], tools: Any) -> str:
        try:
            return respond(words, env, log=str(log), faults_file=str(faults))
        except RecorderFault as error:
            raise StepFailed(str(error)) from None

    chain = Chain(_NoWorld(), context(), executor=executor)
    results = []
    for version in sequence:
        chain.ctx, chain.options = StepContext(**version["ctx"]), Options(**version["options"])
        chain.rerun, chain.reregister, chain.in_program = version["rerun"], version["reregister"], version["in_program"]
        faults.write_text("".join(f"{r} {a}\n" for r, a in version["faults"]))
        offset = len(log.read_text().splitlines())
        ok, error = True, ""
        try:
            chain.up() if version["op"] == "up" else chain.destroy()
        except StepFailed as failure:
            ok, error = False, str(failure)
        ran = [line.split(" ", 2) for line in log.read_text().splitlines()[offset:]]
        results.append({"ok": ok, "error": error, "ran": ran, "driver_ran": [list(r) for r in chain.ran],
                        "state": [{"name": n, "stdout": s.stdout, "environment": s.environment, "pending_delete": False}
                                  for n, s in chain.state.items()]})
    return results


def run_engine(sequence: list[dict[str, Any]], scratch: Path) -> tuple[dict[str, Any], str]:
    prefix, network = engine_chain.network_cut_argv()
    (scratch / "sequence.json").write_text(json.dumps(sequence))
    out = scratch / "engine.json"
    env = {k: v for k, v in os.environ.items() if k not in engine_chain.PROXY_VARS}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([*prefix, sys.executable, "-m", "testbed.engine_chain", "--sequence", str(scratch / "sequence.json"),
                           "--out", str(out), "--scratch", str(scratch / "engine")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    result = json.loads(out.read_text()) if out.exists() else {}
    if done.returncode != 0 or "crash" in result:
        pytest.fail(f"engine run failed (exit {done.returncode}, {network}):\n{result.get('crash', '')}\n"
                    f"stderr:\n{done.stderr[-4000:]}")
    return result, network


def _pairs(ran: list[list[str]]) -> list[str]:
    return [f"{r[0]} {r[1]}" for r in ran]


def _live(state: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: {"stdout": s["stdout"], "environment": s["environment"]} for s in state if not s["pending_delete"]}


def compare(labels: list[str], engine: list[dict[str, Any]], chain: list[dict[str, Any]]) -> tuple[list[str], str]:
    """(problems, report): problems is empty when the two sides agree everywhere."""
    problems, report = [], []
    for number, (label, e, c) in enumerate(zip(labels, engine, chain)):
        head = f"#{number} {label}"
        e_ran, c_ran = _pairs(e["ran"]), _pairs(c["ran"])
        report.append(f"{head}\n  engine: ok={e['ok']} ran={e_ran} ({e['seconds']}s)\n"
                      f"  chain:  ok={c['ok']} ran={c_ran}\n  engine ops: {[' '.join(o) for o in e['engine_ops']]}")
        pending = [s["name"] for s in e["state"] if s["pending_delete"]]
        if pending:
            report.append(f"  engine pending deletes (not modelled by the chain driver): {pending}")
        if e_ran != c_ran:
            diff = "\n".join(difflib.unified_diff(c_ran, e_ran, "chain_driver", "real engine", lineterm="", n=2))
            problems.append(f"{head}: (resource, action) sequences differ:\n{diff}")
        if e["ok"] != c["ok"]:
            problems.append(f"{head}: engine ok={e['ok']} but chain ok={c['ok']}\n  engine error: {e['error'][-600:]}\n"
                            f"  chain error: {c['error']}")
        # Each side's own consistency: the driver's labels vs what its recorder saw; the
        # engine's steps vs what its recorder saw (every command that ran is one of the
        # engine's create/update/delete steps on that resource).
        if [" ".join(r) for r in c["driver_ran"]] != c_ran:
            problems.append(f"{head}: chain_driver's `ran` {c['driver_ran']} differs from its executor's log {c_ran}")
        steps = Counter(f"{name} {ENGINE_OP_ACTION[op]}" for name, op in e["engine_ops"] if op in ENGINE_OP_ACTION)
        unexplained = Counter(e_ran) - steps
        if unexplained:
            problems.append(f"{head}: engine recorder lines with no matching engine step: {sorted(unexplained.elements())}")
        e_live, c_live = _live(e["state"]), _live(c["state"])
        if set(e_live) != set(c_live):
            problems.append(f"{head}: resources in state differ: only engine {sorted(set(e_live) - set(c_live))}, "
                            f"only chain {sorted(set(c_live) - set(e_live))}")
        for name in sorted(set(e_live) & set(c_live)):
            for key in ("stdout", "environment"):
                if e_live[name][key] != c_live[name][key]:
                    a = json.dumps(c_live[name][key], indent=1, sort_keys=True).splitlines()
                    b = json.dumps(e_live[name][key], indent=1, sort_keys=True).splitlines()
                    diff = "\n".join(difflib.unified_diff(a, b, "chain_driver", "real engine", lineterm="", n=1))
                    problems.append(f"{head}: {name}.{key} differs:\n{diff}")
    return problems, "\n".join(report)


def test_chain_driver_agrees_with_the_real_engine(engine_ready, capsys) -> None:
    labels = [label for label, _ in SEQUENCE]
    sequence = [version for _, version in SEQUENCE]
    with tempfile.TemporaryDirectory(prefix="gke-mesh-differential-") as folder:
        scratch = Path(folder)
        engine, network = run_engine(sequence, scratch)
        chain = run_chain(sequence, scratch)
    problems, report = compare(labels, engine["results"], chain)
    with capsys.disabled():
        print(f"\n[engine differential] {engine['pulumi_version']}, stand-in command provider, {network}\n{report}")
    assert not problems, "chain_driver disagrees with the real engine:\n\n" + "\n\n".join(problems) + "\n\nAll operations:\n" + report
    # The sequence did what it is meant to exercise (guards against a vacuous pass).
    assert [r["ok"] for r in engine["results"]] == [True, True, False, True, False, True, True, True, True, False, True]
    assert ["guard", "delete"] in [r[:2] for r in engine["results"][7]["ran"]]
    assert engine["results"][-1]["state"] == []
