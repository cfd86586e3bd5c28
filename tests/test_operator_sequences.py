"""Operator paths as sequences (hypothesis stateful testing): `pulumi up` with a fault at
any call, a cancel after any step, option edits, channel changes and reverts, a fresh
runner, a second stack on the same cluster, teammates editing Istio objects between
runs, destroy, and the cluster removed from and put back into the config.

Invariants after every action:
- nothing lost: every Istio object the users intend (the seed plus their edits) is live
  as intended, or a migration is in flight and its recorded, verified backup holds it;
- with no migration in flight the cluster is exactly as intended: objects (hence
  PeerAuthentication modes and AuthorizationPolicies) and injected namespaces;
- after every successful `up`, `verify` said verified and that is true.
User edits happen only while no migration is in flight or before its purge (after the
purge the Istio kinds are not served). A user deleting an AuthorizationPolicy while a
migration is in flight is not modelled: the drift check restores it by design (safer).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meshops.cluster.backup_store import CONTENT, MANIFEST, parse
from meshops.cluster.objects import digest
from meshops.cluster.process import StepFailed
from meshops.cluster.record import PHASES
from meshops.context import Options
from tests.chain_driver import ORDER, Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report

BUCKET = "gs://mesh-backups/moves"
VS = "virtualservices.networking.istio.io"
AP = "authorizationpolicies.security.istio.io"
PA = "peerauthentications.security.istio.io"
EDITS = st.sampled_from([
    {"backup_uri": "gs://mesh-backups/elsewhere"}, {"restart_workloads": False}, {"relax_security": False},
    {"remove_authorization_policies": True}, {"purge_crds": False}, {}])


class Operators(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="gke-mesh-sequences-"))
        self.world = FakeWorld(gcs_root=self.folder / "gcs")
        self.cluster = seed_field_report(self.world)
        self.intent = {k: digest(o) for k, o in self.cluster.istio_objects().items()}
        self.injected = self.injected_now()
        self.runners = 0
        self.stack = Chain(self.world, context(channel="regular"), Options(stack="dev", backup_uri=BUCKET),
                           workdir=self.folder / "runner-0")
        self.other = Chain(self.world, context(channel="stable"), Options(stack="other-team", backup_uri=BUCKET),
                           workdir=self.folder / "other-runner")
        self.edits = 0

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ views
    def injected_now(self) -> set[str]:
        return {p["metadata"]["namespace"] for p in self.cluster.injected_pods()}

    def record(self) -> dict | None:
        found = self.cluster.objects.get(("configmaps", "kube-system", "gke-mesh-migration"))
        return json.loads(found["data"]["record"]) if found else None

    def recorded_backup(self, record: dict) -> dict:
        folder = self.folder / "gcs" / record["backup"]["location"].removeprefix("gs://")
        backup = parse((folder / MANIFEST).read_bytes(), (folder / CONTENT).read_bytes(), str(folder))
        return {k: digest(o) for k, o in backup.keyed().items()}

    def editable(self) -> bool:
        record = self.record()
        served = ("customresourcedefinitions", "", VS) in self.cluster.objects
        return served and (record is None or PHASES.index(record["phase"]) < PHASES.index("purging"))

    # ------------------------------------------------------------------ actions
    def _up(self, chain: Chain, **kwargs) -> dict | None:
        try:
            results = chain.up(**kwargs)
        except (StepFailed, Cancelled):
            return None
        finally:
            self.world.faults.clear()
        return results

    # Half the faults land in the first ~80 calls (preflight to the purge), where a stopped
    # run leaves a migration in flight that teammates can still edit around.
    @rule(fault=st.one_of(st.none(), st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=260)))
    def up(self, fault):
        if fault is not None:
            self.world.fail_at_call(fault)
        results = self._up(self.stack)
        if results is not None and "verify" in results:
            assert results["verify"]["verified"] is True
            if ("verify", "create") in self.stack.ran:
                # A channel changed by hand after the last run is not seen by `pulumi up` (no step
                # runs; `meshops status` reports it); whenever verify ran, the channel is the target.
                assert self.cluster.channel == self.stack.ctx.channel
            self.assert_exactly_as_intended()

    @rule(step=st.sampled_from(ORDER))
    def cancel_after(self, step):
        self._up(self.stack, stop_after=step)

    @rule(edit=EDITS)
    def edit_options(self, edit):
        self.stack.options = Options(stack="dev", **{"backup_uri": BUCKET, **edit})

    @rule(channel=st.sampled_from(["rapid", "regular", "stable"]))
    def change_channel(self, channel):
        self.stack.ctx = context(channel=channel)

    @rule()
    def fresh_runner(self):
        self.runners += 1
        self.stack.workdir = self.folder / f"runner-{self.runners}"

    @rule()
    def second_stack_up(self):
        self._up(self.other)

    @rule(kind=st.sampled_from(["add-route", "tighten-policy", "delete-route", "edit-peer-authentication"]))
    def teammate_edits(self, kind):
        if not self.editable():
            return
        event("teammate edit during a migration" if self.record() else "teammate edit between migrations")
        self.edits += 1
        objects = self.cluster.objects
        if kind == "add-route":
            key = (VS, "katayan", f"route-{self.edits}")
            obj = self.cluster.put(VS, {"metadata": {"name": key[2], "namespace": "katayan"}, "spec": {"hosts": [f"h{self.edits}"]}})
        elif kind == "tighten-policy" and (AP, "katayan", "allow-gateway") in objects:
            key = (AP, "katayan", "allow-gateway")
            obj = objects[key]
            obj["spec"] = {"rules": [{"from": [{"source": {"namespaces": [f"team-{self.edits}"]}}]}]}
        elif kind == "delete-route":
            routes = sorted(k for k in objects if k[0] == VS)
            if not routes:
                return
            del objects[routes[0]]
            self.intent.pop(routes[0], None)
            return
        elif kind == "edit-peer-authentication" and (PA, "katayan", "web") in objects:
            key = (PA, "katayan", "web")
            obj = objects[key]
            obj["spec"] = {"mtls": {"mode": "STRICT"}, "selector": {"matchLabels": {"app": f"web-{self.edits}"}}}
        else:
            return
        self.intent[key] = digest(obj)

    @rule(step=st.sampled_from(ORDER[:ORDER.index("purge") + 1]),
          kind=st.sampled_from(["add-route", "tighten-policy", "delete-route", "edit-peer-authentication"]))
    def stop_then_teammate_edits(self, step, kind):
        """The issue's own sequence: a run stops before its purge, a teammate edits, later a retry."""
        self._up(self.stack, stop_after=step)
        self.teammate_edits(kind)

    @rule(step=st.sampled_from(ORDER), channel=st.sampled_from(["rapid", "regular", "stable"]))
    def change_stop_revert(self, step, channel):
        """A channel change that stops half-way, then the PR is reverted (the steps it never
        reached still hold the previous run's triggers)."""
        previous = self.stack.ctx
        self.stack.ctx = context(channel=channel)
        self._up(self.stack, stop_after=step)
        self.stack.ctx = previous

    @rule(channel=st.sampled_from(["rapid", "regular", "stable"]))
    def teammate_changes_the_cluster_channel(self, channel):
        self.cluster.channel = channel

    @rule()
    def destroy(self):
        try:
            self.stack.destroy()
        except StepFailed:
            pass

    @rule()
    def remove_cluster_from_config(self):
        self.stack.in_program = False
        self._up(self.stack)

    @rule()
    def put_cluster_back(self):
        self.stack.in_program = True

    # ------------------------------------------------------------------ invariants
    def assert_exactly_as_intended(self) -> None:
        live = {k: digest(o) for k, o in self.cluster.istio_objects().items()}
        assert live == self.intent, "the cluster differs from what its users intend"
        assert self.injected_now() == self.injected, "injected namespaces differ"

    @invariant()
    def nothing_lost(self):
        record = self.record()
        if record is None:
            self.assert_exactly_as_intended()
            return
        live = {k: digest(o) for k, o in self.cluster.istio_objects().items()}
        held = self.recorded_backup(record) if record.get("backup") else {}
        for key, wanted in self.intent.items():
            assert live.get(key) == wanted or held.get(key) == wanted, f"{key} is neither live as intended nor in the recorded backup"


Operators.TestCase.settings = settings(max_examples=int(os.environ.get("GKE_MESH_SEQUENCES", "200")), stateful_step_count=16, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
test_operator_sequences = Operators.TestCase
