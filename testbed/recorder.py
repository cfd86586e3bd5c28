"""Stand-in for `python3 -m meshops <words>` in the engine differential test
(tests/test_engine_differential.py): it runs no step, it records what ran.

    python3 -m testbed.recorder <words>          # the command text the real engine runs
    recorder.respond(words, env)                  # the same, in-process (tests/chain_driver.py's executor)

Both sides of the differential go through `respond`, so a disagreement can only come
from which commands ran, in what order, with what environment.

- It appends `<resource> <action> <words>` to the file named by $TESTBED_RECORDER_LOG.
  <resource> and <action> come from the words and the environment alone, the way a step
  would see them: `keep X` is X's update; `guard-delete` is the guard's delete; any other
  `X` is X's create, or X's update when PULUMI_COMMAND_STDOUT is set (pulumi-command passes
  the stored stdout to a command run as an update, never to a new resource's create:
  testbed/ENGINE_RULES.md a, b, c; every recorder stdout is non-empty).
- It fails (exit 1 / RecorderFault) when the file named by $TESTBED_RECORDER_FAULTS has a
  line `<resource> <action>`, after writing the log line (as a step that fails does run).
- Its stdout is deterministic JSON: `keep X` reprints PULUMI_COMMAND_STDOUT, like
  meshops.cluster.keep.kept_result (so an update never changes a later step's input); a create
  prints the step, its channel and a digest of its GKE_MESH_* environment (so a new input
  gives a new result, and later steps see the change through `inputs_from_state`);
  `guard-delete` prints a release.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Mapping

LOG_ENV = "TESTBED_RECORDER_LOG"
FAULTS_ENV = "TESTBED_RECORDER_FAULTS"
PREVIOUS_STDOUT = "PULUMI_COMMAND_STDOUT"
LAUNCHER = "python3 -m testbed.recorder "
"""What `python3 -m meshops ` becomes in the engine's command texts."""


class RecorderFault(Exception):
    """An injected failure (the fault file names this resource and action)."""


def identify(words: list[str], env: Mapping[str, str]) -> tuple[str, str]:
    if words[0] == "keep":
        return words[1], "update"
    if words[0] == "guard-delete":
        return "guard", "delete"
    return words[0], "update" if env.get(PREVIOUS_STDOUT) else "create"


def faults(path: str | None) -> set[tuple[str, str]]:
    if not path or not Path(path).exists():
        return set()
    pairs = (line.split() for line in Path(path).read_text().splitlines())
    return {(p[0], p[1]) for p in pairs if len(p) == 2}


def respond(words: list[str], env: Mapping[str, str], log: str | None = None, faults_file: str | None = None) -> str:
    log = log or env.get(LOG_ENV)
    faults_file = faults_file or env.get(FAULTS_ENV)
    resource, action = identify(words, env)
    if log:
        with open(log, "a") as out:
            out.write(f"{resource} {action} {' '.join(words)}\n")
    if (resource, action) in faults(faults_file):
        raise RecorderFault(f"injected fault: {resource} {action}")
    if words[0] == "keep":
        previous = env.get(PREVIOUS_STDOUT, "")
        try:
            ok = isinstance(json.loads(previous), dict)
        except ValueError:
            ok = False
        if not ok:
            raise RecorderFault(f"keep {resource}: {PREVIOUS_STDOUT} is missing or not a result ({previous[:60]!r})")
        return previous
    if words[0] == "guard-delete":
        return json.dumps({"cluster": env.get("GKE_MESH_CLUSTER", ""), "released": True}, sort_keys=True)
    inputs = {k: v for k, v in env.items() if k.startswith("GKE_MESH_")}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    result = {"step": resource, "channel": env.get("GKE_MESH_CHANNEL", ""), "inputs": digest}
    if words[0] == "preflight" and log:
        # Like the real preflight, a new attempt id each time it runs (here: how many commands
        # ran before it, the same on both sides), which every later step has in its triggers.
        with open(log) as lines:
            result["attempt"] = str(sum(1 for _ in lines))
    return json.dumps(result, sort_keys=True)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python3 -m testbed.recorder <words>", file=sys.stderr)
        return 2
    try:
        out = respond(argv, os.environ)
    except RecorderFault as error:
        print(f"recorder: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
