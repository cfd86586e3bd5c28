"""The stack's key: 32 random bytes drawn once, kept only in this stack's Pulumi state.

A `command.local.Command` running `python3 -m meshops stack-key`, with no triggers (never
replaced) and `keep` as its update: its stdout is drawn on the stack's first `up` and
stays the same for the stack's life, stored as a secret output. Every step gets it from
state in its environment and signs the migration record, the owner claim and the record's
copy beside the backup with it (meshops/cluster/trust.py). Nothing signed can be forged
without reading this stack's state; nothing unsigned is acted on.
"""

from __future__ import annotations

from components.migration import StepSpec
from meshops.cluster.execute import STACK_KEY
from meshops.context import command_line


def stack_key_spec() -> StepSpec:
    """Secret (cluster_data: stdout stored encrypted, kept out of logs), never replaced, no delete."""
    return StepSpec(step=STACK_KEY, create=command_line(STACK_KEY), update=command_line(f"keep {STACK_KEY}"), delete=None,
                    environment={}, cluster_data=True)
