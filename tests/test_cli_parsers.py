"""The parser checker itself (tests/cli_parsers.py): gcloud preloaded and forked per argv
answers exactly as one `gcloud` process per argv does."""

from __future__ import annotations

import os
import tempfile

import pytest

from tests import cli_parsers
from tests.cli_parsers import PRELOAD_FAILURES, binary, preloaded_gcloud, why_unavailable

ARGV = {
    "accepted": ["container", "clusters", "describe", "dev-cluster-1", "--project=my-project-123456", "--location=asia-northeast1"],
    "flag-typo": ["container", "clusters", "update", "c1", "--release-chanel=regular"],
    "storage-from-stdin": ["storage", "cp", "-", "gs://my-project-123456-mesh-backups/x/record.json"],
    # What gcloud sees of its installation, interpreter, sys.path, environment and config
    # folder, and every property's value: printed on stdout.
    "info": ["info", "--format=json"],
    "every-property": ["config", "list", "--all", "--format=json"],
}


def files_in(folder: str) -> dict[str, bytes | None]:
    """Each file under a gcloud config folder and its content; for logs and the files that
    hold only the time of a prompt or check, just that they are there."""
    found: dict[str, bytes | None] = {}
    for root, _, names in os.walk(folder):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), folder)
            if relative.startswith("logs" + os.sep) or name.startswith(".last_"):
                found["logs" if relative.startswith("logs") else relative] = None
            else:
                with open(os.path.join(root, name), "rb") as file:
                    found[relative] = file.read()
    return found


@pytest.mark.parametrize("args", ARGV.values(), ids=ARGV.keys())
def test_preloaded_gcloud_answers_as_one_gcloud_process_per_argv(args, monkeypatch):
    reason = why_unavailable("gcloud")
    if reason:
        pytest.skip(reason)
    monkeypatch.delenv("GKE_MESH_GCLOUD_PRELOAD", raising=False)
    wrapper = binary("gcloud")
    preloaded = preloaded_gcloud(wrapper)
    assert preloaded is not None, f"gcloud could not be preloaded: {PRELOAD_FAILURES.get(wrapper)}"
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as forked:
        cli_parsers._not_on_gce(one)
        cli_parsers._not_on_gce(forked)
        answer = cli_parsers._one_process([wrapper, *args], one)
        forked_answer = preloaded.run(args, config=forked, timeout=120)
        assert [part.replace(forked, "<config>") if isinstance(part, str) else part for part in forked_answer] == \
            [part.replace(one, "<config>") if isinstance(part, str) else part for part in answer]
        assert files_in(forked) == files_in(one)
    assert answer[1] or answer[2], "gcloud said something"
