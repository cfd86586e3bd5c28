"""One module per imperative step. Each has `commands(ctx)`, the CLI calls it may make
(for the plan and for review), and `run(ctx, runner)`, which makes them."""

from __future__ import annotations

from types import ModuleType

from meshops.steps import release_channel

STEPS: dict[str, ModuleType] = {
    "release-channel": release_channel,
}
