"""Config validation, pure: no Pulumi runtime involved."""

from __future__ import annotations

import json

import pytest

from components.settings import CHANNELS, REQUIRED_APIS, ConfigError, Migration, parse_settings, region_of
from meshops.review.offline import stack_config
from tests.conftest import STACK_FILES, minimal_config, stack_values


def parse(values):
    return parse_settings(stack_config(values))


def cluster(**fields):
    return {"name": "dev-cluster-1", "location": "asia-northeast1", **fields}


def test_minimal_config_gets_documented_defaults():
    settings = parse(minimal_config())
    assert settings.project == "my-project-123456"
    assert settings.release_channel == "regular"
    assert settings.apis == REQUIRED_APIS
    assert settings.mesh_feature == "adopt"
    assert settings.migration == Migration(acknowledge_unsupported=True)  # minimal_config acknowledges (tests/conftest.py)
    (only,) = settings.clusters
    assert (only.project, only.membership, only.membership_location, only.mode) == (
        "my-project-123456", "dev-cluster-1", "asia-northeast1", "adopt")


@pytest.mark.parametrize("written", ["RAPID", "Regular", " stable ", "rapid"])
def test_channel_is_case_insensitive(written):
    assert parse(minimal_config(**{"gke-mesh:releaseChannel": written})).release_channel in CHANNELS


def test_zone_maps_to_its_region_for_the_membership():
    settings = parse(minimal_config(**{"gke-mesh:clusters": [cluster(location="asia-northeast1-b")]}))
    assert settings.clusters[0].membership_location == "asia-northeast1"
    assert region_of("us-central1-a") == "us-central1"
    assert region_of("europe-west4") == "europe-west4"


def test_membership_can_differ_from_cluster_name():
    settings = parse(minimal_config(**{"gke-mesh:clusters": [cluster(membership="dev-membership-x", membershipLocation="global")]}))
    assert (settings.clusters[0].membership, settings.clusters[0].membership_location) == ("dev-membership-x", "global")


def test_extra_apis_are_added_after_the_required_ones():
    settings = parse(minimal_config(**{"gke-mesh:apis": ["monitoring.googleapis.com"]}))
    assert settings.apis == REQUIRED_APIS + ("monitoring.googleapis.com",)


def test_migration_options_and_durations():
    settings = parse(minimal_config(**{"gke-mesh:migration": {"waitTimeout": "45m", "relaxSecurity": False, "backupUri": "gs://bkt-1/mesh/"}}))
    assert settings.migration.wait_timeout_seconds == 2700
    assert settings.migration.relax_security is False
    assert settings.migration.backup_uri == "gs://bkt-1/mesh/"
    assert parse(minimal_config(**{"gke-mesh:migration": {"waitTimeout": 600}})).migration.wait_timeout_seconds == 600


def test_projects_lists_fleet_project_first_once():
    settings = parse(minimal_config(**{"gke-mesh:clusters": [
        cluster(project="other-project-1"), cluster(name="b", project="my-project-123456"), cluster(name="c", project="other-project-1")]}))
    assert settings.projects == ("my-project-123456", "other-project-1")


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_example_stacks_are_valid(path):
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    assert parse_settings(stack_config(stack_values(path)), stack).clusters


# Each row: config overrides, the key the error must name (exactly, at the start of the line).
BAD = [
    ({"gcp:project": None}, "gcp:project"),
    ({"gcp:project": "My_Project"}, "gcp:project"),
    ({"gcp:project": "short"}, "gcp:project"),
    ({"gcp:project": "a" * 31}, "gcp:project"),
    ({"gcp:project": "trailing-hyphen-"}, "gcp:project"),
    ({"gcp:project": "1starts-with-digit"}, "gcp:project"),
    ({"gcp:project": "proj; rm -rf /"}, "gcp:project"),
    ({"gke-mesh:releaseChannel": None}, "gke-mesh:releaseChannel"),
    ({"gke-mesh:releaseChannel": "extended"}, "gke-mesh:releaseChannel"),
    ({"gke-mesh:releaseChannel": "UNSPECIFIED"}, "gke-mesh:releaseChannel"),
    ({"gke-mesh:releaseChannel": "fast"}, "gke-mesh:releaseChannel"),
    ({"gke-mesh:releaseChannel": "$(reboot)"}, "gke-mesh:releaseChannel"),
    ({"gke-mesh:releaseChanel": "regular"}, "gke-mesh:releaseChanel"),
    ({"gke-mesh:cluster": []}, "gke-mesh:cluster"),
    ({"gke-mesh:clusters": None}, "gke-mesh:clusters"),
    ({"gke-mesh:clusters": []}, "gke-mesh:clusters"),
    ({"gke-mesh:clusters": {"name": "x"}}, "gke-mesh:clusters"),
    ({"gke-mesh:clusters": ["dev-cluster-1"]}, "gke-mesh:clusters[0]"),
    ({"gke-mesh:clusters": [{"location": "asia-northeast1"}]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [{"name": "dev-cluster-1"}]}, "gke-mesh:clusters[0].location"),
    ({"gke-mesh:clusters": [cluster(name="Dev_Cluster")]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [cluster(name="c" * 41)]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [cluster(name="-leading")]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [cluster(name="x\ny")]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [cluster(name=42)]}, "gke-mesh:clusters[0].name"),
    ({"gke-mesh:clusters": [cluster(location="tokyo")]}, "gke-mesh:clusters[0].location"),
    ({"gke-mesh:clusters": [cluster(location="asia-northeast1-ab")]}, "gke-mesh:clusters[0].location"),
    ({"gke-mesh:clusters": [cluster(project="Bad Project")]}, "gke-mesh:clusters[0].project"),
    ({"gke-mesh:clusters": [cluster(membership="m" * 64)]}, "gke-mesh:clusters[0].membership"),
    ({"gke-mesh:clusters": [cluster(membership="`id`")]}, "gke-mesh:clusters[0].membership"),
    ({"gke-mesh:clusters": [cluster(membershipLocation="asia-northeast1-a")]}, "gke-mesh:clusters[0].membershipLocation"),
    ({"gke-mesh:clusters": [cluster(mode="import")]}, "gke-mesh:clusters[0].mode"),
    ({"gke-mesh:clusters": [cluster(locaton="asia-northeast1")]}, "gke-mesh:clusters[0].locaton"),
    ({"gke-mesh:clusters": [cluster(), cluster()]}, "gke-mesh:clusters[1].name"),
    ({"gke-mesh:clusters": [cluster(), cluster(name="other", membership="dev-cluster-1")]}, "gke-mesh:clusters[1].membership"),
    ({"gke-mesh:clusters": [cluster(nodeCount=3)]}, "gke-mesh:clusters[0].nodeCount"),
    ({"gke-mesh:clusters": [cluster(mode="create", nodeCount=0)]}, "gke-mesh:clusters[0].nodeCount"),
    ({"gke-mesh:clusters": [cluster(mode="create", membership="other")]}, "gke-mesh:clusters[0].membership"),
    ({"gke-mesh:clusters": [cluster(meshNamespaces="default")]}, "gke-mesh:clusters[0].meshNamespaces"),
    ({"gke-mesh:clusters": [cluster(meshNamespaces=["istio-system"])]}, "gke-mesh:clusters[0].meshNamespaces[0]"),
    ({"gke-mesh:clusters": [cluster(meshNamespaces=["a", "a"])]}, "gke-mesh:clusters[0].meshNamespaces[1]"),
    ({"gke-mesh:apis": "monitoring.googleapis.com"}, "gke-mesh:apis"),
    ({"gke-mesh:apis": ["monitoring"]}, "gke-mesh:apis[0]"),
    ({"gke-mesh:apis": ["meshtelemetry.googleapis.com"]}, "gke-mesh:apis[0]"),
    ({"gke-mesh:apis": ["mesh.googleapis.com"]}, "gke-mesh:apis[0]"),
    ({"gke-mesh:apis": ["logging.googleapis.com", "logging.googleapis.com"]}, "gke-mesh:apis[1]"),
    ({"gke-mesh:meshFeature": "replace"}, "gke-mesh:meshFeature"),
    ({"gke-mesh:migration": ["enabled"]}, "gke-mesh:migration"),
    ({"gke-mesh:migration": {"enable": True}}, "gke-mesh:migration.enable"),
    ({"gke-mesh:migration": {"enabled": "yes"}}, "gke-mesh:migration.enabled"),
    ({"gke-mesh:migration": {"purgeCrds": 1}}, "gke-mesh:migration.purgeCrds"),
    ({"gke-mesh:migration": {"waitTimeout": "30 minutes"}}, "gke-mesh:migration.waitTimeout"),
    ({"gke-mesh:migration": {"waitTimeout": "10s"}}, "gke-mesh:migration.waitTimeout"),
    ({"gke-mesh:migration": {"waitTimeout": "9h"}}, "gke-mesh:migration.waitTimeout"),
    ({"gke-mesh:migration": {"backupUri": "/var/backups"}}, "gke-mesh:migration.backupUri"),
    ({"gke-mesh:migration": {"backupUri": "../outside"}}, "gke-mesh:migration.backupUri"),
    ({"gke-mesh:migration": {"backupUri": "s3://bucket"}}, "gke-mesh:migration.backupUri"),
    ({"gke-mesh:migration": {"backupUri": "backups; rm -rf ~"}}, "gke-mesh:migration.backupUri"),
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[f"{i}-{k}" for i, (_, k) in enumerate(BAD)])
def test_bad_value_is_refused_naming_the_key(overrides, key):
    values = minimal_config(**overrides)
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ConfigError) as raised:
        parse(values)
    message = str(raised.value)
    assert message.startswith(key + ":"), message
    assert "\n" not in message and len(message) < 400, message


def test_unknown_key_suggests_the_nearest_known_key():
    with pytest.raises(ConfigError, match=r"did you mean gke-mesh:releaseChannel\?"):
        parse(minimal_config(**{"gke-mesh:releaseChanel": "regular"}))
    with pytest.raises(ConfigError, match=r"did you mean location\?"):
        parse(minimal_config(**{"gke-mesh:clusters": [cluster(locaton="x")]}))


def test_refused_channels_say_why():
    with pytest.raises(ConfigError, match="no extended channel"):
        parse(minimal_config(**{"gke-mesh:releaseChannel": "extended"}))


def test_malformed_structured_text_is_one_clear_line():
    with pytest.raises(ConfigError, match=r"^gke-mesh:clusters: .*not valid structured config"):
        parse_settings({"gcp:project": "my-project-123456", "gke-mesh:releaseChannel": "rapid", "gke-mesh:clusters": "[{"})


def test_other_namespaces_are_left_alone():
    values = minimal_config(**{"gcp:region": "asia-northeast1", "kubernetes:context": "x"})
    assert parse(values).project == "my-project-123456"


def test_error_message_shows_hostile_value_on_one_line():
    with pytest.raises(ConfigError) as raised:
        parse(minimal_config(**{"gke-mesh:clusters": [cluster(name="a\nb\x00c" + "z" * 500)]}))
    assert "\n" not in str(raised.value) and "\x00" not in str(raised.value)
    assert json.dumps("a\nb")[1:-1] in str(raised.value)


def test_membership_links_match_by_project_id_or_number():
    from meshops.cluster.fleet_state import registers

    base = "//container.googleapis.com/projects/{}/locations/asia-northeast1/clusters/dev-cluster-1"
    assert registers(base.format("my-project-123456"), "my-project-123456", "asia-northeast1", "dev-cluster-1")
    assert registers(base.format("123456789012"), "my-project-123456", "asia-northeast1", "dev-cluster-1")
    assert not registers(base.format("other-project-1"), "my-project-123456", "asia-northeast1", "dev-cluster-1")
    assert not registers(base.format("my-project-123456") + "-2", "my-project-123456", "asia-northeast1", "dev-cluster-1")
    assert not registers(base.format("my-project-123456").replace("asia-northeast1", "asia-northeast1-a"),
                         "my-project-123456", "asia-northeast1", "dev-cluster-1")


def test_with_the_resolved_number_only_this_projects_number_matches():
    """A multi-project fleet: two clusters of one name and location differ only in the
    project number of their membership links (issue "Correct on a real fleet", item 2)."""
    from meshops.cluster.fleet_state import registers

    link = "//container.googleapis.com/projects/{}/locations/asia-northeast1/clusters/dev-cluster-1"
    ours, theirs = "123456789012", "999999999999"
    assert registers(link.format(ours), "my-project-123456", "asia-northeast1", "dev-cluster-1", ours)
    assert not registers(link.format(theirs), "my-project-123456", "asia-northeast1", "dev-cluster-1", ours)
    assert registers(link.format("my-project-123456"), "my-project-123456", "asia-northeast1", "dev-cluster-1", ours)
