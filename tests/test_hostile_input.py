"""Hostile input: every config field and CLI argument refuses what is not valid, with one
line naming the key, and nothing accepted can change the structure of a command."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.settings import ConfigError, parse_settings, parse_stack
from meshops.context import ContextError, Decision, Options, StepContext, StepInput
from meshops.review.offline import stack_config
from meshops.steps import STEPS
from tests.conftest import minimal_config

HOSTILE = {
    "double-quote": 'my-project"x',
    "single-quote": "my-project'x",
    "semicolon": "my-project; rm -rf /",
    "command-substitution": "$(reboot)",
    "backticks": "`id`",
    "dollar-brace": "${HOME}",
    "newline": "my-project\nother",
    "carriage-return": "my-project\rx",
    "crlf": "a\r\nb",
    "tab": "my\tproject",
    "nul": "my-project\x00x",
    "bell": "my-project\x07",
    "escape-sequence": "\x1b[31mred",
    "cyrillic-a": "my-proj\u0435ct-123456",
    "fullwidth-letters": "\uff4d\uff59-project-1",
    "zero-width-space": "my-project\u200b-1",
    "right-to-left-override": "my-\u202eproject",
    "leading-dash": "-rf",
    "long-flag": "--project=evil",
    "equals-flag": "--format=yaml",
    "10000-chars": "a" * 10_000,
    "empty": "",
    "whitespace": "   ",
    "path-traversal": "../../etc/passwd",
    "absolute-path": "/etc/passwd",
    "glob": "*",
    "pipe": "a|b",
    "and-and": "a&&b",
    "redirect": "a>b",
    "background": "a&",
    "hash-comment": "a#b",
    "brace-expansion": "{a,b}",
    "tilde": "~root",
    "uppercase": "MY-PROJECT-1",
    "unicode-dash": "my\u2011project-1",
    "emoji": "my-project-\U0001f600",
    "url": "https://evil.example/x",
    "percent-encoding": "my%2Fproject",
    "yaml-int": 42,
    "yaml-float": 4.2,
    "yaml-bool": True,
    "yaml-null": None,
    "yaml-list": ["my-project-123456"],
    "yaml-map": {"name": "x"},
}


def cluster(**fields):
    return {"name": "dev-cluster-1", "location": "asia-northeast1", **fields}


# Each field: (the key an error must name, how to put a value there).
FIELDS = {
    "gcp:project": lambda v: {"gcp:project": v},
    "gke-mesh:releaseChannel": lambda v: {"gke-mesh:releaseChannel": v},
    "gke-mesh:meshFeature": lambda v: {"gke-mesh:meshFeature": v},
    "gke-mesh:clusters[0].name": lambda v: {"gke-mesh:clusters": [cluster(name=v)]},
    "gke-mesh:clusters[0].location": lambda v: {"gke-mesh:clusters": [cluster(location=v)]},
    "gke-mesh:clusters[0].project": lambda v: {"gke-mesh:clusters": [cluster(project=v)]},
    "gke-mesh:clusters[0].membership": lambda v: {"gke-mesh:clusters": [cluster(membership=v)]},
    "gke-mesh:clusters[0].membershipLocation": lambda v: {"gke-mesh:clusters": [cluster(membershipLocation=v)]},
    "gke-mesh:clusters[0].mode": lambda v: {"gke-mesh:clusters": [cluster(mode=v)]},
    "gke-mesh:clusters[0].meshNamespaces[0]": lambda v: {"gke-mesh:clusters": [cluster(meshNamespaces=[v])]},
    "gke-mesh:clusters[0].nodeMachineType": lambda v: {"gke-mesh:clusters": [cluster(mode="create", nodeMachineType=v)]},
    "gke-mesh:clusters[0].nodeCount": lambda v: {"gke-mesh:clusters": [cluster(mode="create", nodeCount=v)]},
    "gke-mesh:apis[0]": lambda v: {"gke-mesh:apis": [v]},
    "gke-mesh:migration.backupUri": lambda v: {"gke-mesh:migration": {"backupUri": v}},
    "gke-mesh:migration.waitTimeout": lambda v: {"gke-mesh:migration": {"waitTimeout": v}},
    "gke-mesh:migration.purgeCrds": lambda v: {"gke-mesh:migration": {"purgeCrds": v}},
}
# Values that happen to be valid for one field (not hostile there).
VALID_FOR = {("gke-mesh:migration.purgeCrds", "yaml-bool"), ("gke-mesh:clusters[0].nodeCount", "yaml-int"),
             ("gke-mesh:migration.backupUri", "uppercase")}


def parse(values):
    return parse_settings(stack_config(values))


CASES = [(field, name) for field in FIELDS for name in HOSTILE if (field, name) not in VALID_FOR]


@pytest.mark.parametrize("field,name", CASES, ids=[f"{f}:{n}" for f, n in CASES])
def test_hostile_value_is_refused_in_one_line_naming_the_key(field, name):
    with pytest.raises(ConfigError) as raised:
        parse(minimal_config(**FIELDS[field](HOSTILE[name])))
    message = str(raised.value)
    assert message.startswith(field), message
    assert "\n" not in message and "\r" not in message and "\x00" not in message and len(message) < 500


def test_at_least_forty_hostile_values():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("name", sorted(set(HOSTILE) - {"uppercase"}))
def test_hostile_stack_names_are_refused(name):
    with pytest.raises(ConfigError, match="^stack name:"):
        parse_stack(HOSTILE[name])


def argv_shapes(ctx: StepContext) -> list[list[str]]:
    """Every argv of every step for `ctx`, reduced to its structure: flag names and
    the number of elements (values may differ, structure may not)."""
    inp = StepInput(ctx, Options(), Decision.placeholder(ctx))
    shapes = []
    for step in STEPS.values():
        for argv in step.commands(inp):
            assert shlex.split(shlex.join(argv)) == argv
            shapes.append([a.split("=", 1)[0] if a.startswith("-") else "<word>" for a in argv])
    return shapes


BENIGN = StepContext(project="my-project-123456", location="asia-northeast1", cluster="dev-cluster-1",
                     fleet_project="my-project-123456", membership="dev-cluster-1", membership_location="asia-northeast1",
                     channel="regular")
BASELINE = argv_shapes(BENIGN)
CROSS_PROJECT_BASELINE = argv_shapes(replace(BENIGN, project="other-project-1"))
"""A cluster outside the fleet host project adds one read (the fleet project's number)."""

text_values = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"[a-z][a-z0-9-]{0,45}[a-z0-9]?", fullmatch=True),
    st.from_regex(r"[a-z]+-[a-z]+[0-9]{1,2}(-[a-z])?", fullmatch=True),
    st.sampled_from([v for v in HOSTILE.values() if isinstance(v, str)]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["gcp:project", "gke-mesh:clusters[0].name", "gke-mesh:clusters[0].location",
                              "gke-mesh:clusters[0].project", "gke-mesh:clusters[0].membership",
                              "gke-mesh:clusters[0].membershipLocation", "gke-mesh:releaseChannel"]), value=text_values)
def test_any_value_is_refused_cleanly_or_leaves_every_argv_shape_intact(field, value):
    try:
        settings_ = parse(minimal_config(**FIELDS[field](value)))
    except ConfigError as error:
        message = str(error)
        assert message.startswith(field.split("[")[0]) and "\n" not in message
        return
    c = settings_.clusters[0]
    ctx = StepContext(project=c.project, location=c.location, cluster=c.name, fleet_project=settings_.project,
                      membership=c.membership, membership_location=c.membership_location, channel=settings_.release_channel)
    assert argv_shapes(ctx) == (BASELINE if ctx.project == ctx.fleet_project else CROSS_PROJECT_BASELINE)
    for part in (c.project, c.location, c.name, c.membership, c.membership_location, settings_.project):
        assert part and not part.startswith("-") and part.isascii() and part.isprintable() and " " not in part


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=60))
def test_step_environment_refuses_anything_unsafe(value):
    env = {**BENIGN.environment(), "GKE_MESH_CLUSTER": value}
    try:
        ctx = StepContext.from_environment(env)
    except ContextError as error:
        assert "\n" not in str(error).replace("\\n", "")
        return
    assert ctx.cluster == value and all(ch.isalnum() or ch in "._/:@=,-" for ch in value) and value.isascii()


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=120))
def test_stack_names_are_plain_path_segments_or_refused(value):
    try:
        name = parse_stack(value)
    except ConfigError:
        return
    assert "/" not in name and ".." not in name and not name.startswith(("-", ".")) and name.isascii()


def test_base_ref_that_looks_like_an_option_is_refused():
    from meshops.review.base import BaseError, plan_at_ref
    from tests.conftest import ROOT

    with pytest.raises(BaseError, match="is not a git ref"):
        plan_at_ref("--upload-pack=touch /tmp/x", ROOT / "Pulumi.dev.yaml", "dev")
