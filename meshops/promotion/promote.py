"""`meshops promote --from staging --to prod`: copy the release channel (and only that)
from one stack file to the next, once the source stack has verified it.

The edit is surgical: the round-trip YAML parser (ruamel.yaml) locates the value, and
only that scalar is replaced in the file's text, so comments, key order, quoting style
elsewhere and indentation stay exactly as they were.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from components.promotion import gate_problem
from components.settings import ConfigError, parse_channel, parse_stack

CHANNEL_KEY = "gke-mesh:releaseChannel"


class PromoteError(Exception):
    """Promotion refused or impossible; the message is one line."""


def _load(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PromoteError(f"{path}: cannot read it ({error.strerror})") from None
    try:
        document = YAML(typ="rt").load(text)
    except YAMLError:
        raise PromoteError(f"{path}: not valid YAML") from None
    config = (document or {}).get("config") if hasattr(document, "get") else None
    if not hasattr(config, "get") or CHANNEL_KEY not in config:
        raise PromoteError(f"{path}: has no config.{CHANNEL_KEY} to promote")
    return text, config


def channel_of(path: Path) -> str:
    _, config = _load(path)
    try:
        return parse_channel(CHANNEL_KEY, config[CHANNEL_KEY])
    except ConfigError as error:
        raise PromoteError(f"{path}: {error}") from None


def _scalar_end(line: str, start: int) -> int:
    if line[start] in "\"'":
        end = line.find(line[start], start + 1)
        return len(line) if end < 0 else end + 1
    comment = line.find(" #", start)
    return len((line if comment < 0 else line[:comment]).rstrip())


def with_channel(path: Path, channel: str) -> tuple[str, str]:
    """(old text, new text) of `path` with only the channel scalar replaced."""
    text, config = _load(path)
    line_number, column = config.lc.value(CHANNEL_KEY)
    lines = text.splitlines(keepends=True)
    line = lines[line_number]
    end = _scalar_end(line.rstrip("\r\n"), column)
    lines[line_number] = line[:column] + channel + line[end:]
    return text, "".join(lines)


def outputs_from_file(path: Path) -> dict:
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PromoteError(f"--source-outputs {path}: cannot read it ({error.strerror})") from None
    except ValueError:
        raise PromoteError(f"--source-outputs {path}: not JSON (use `pulumi stack output --json`)") from None
    return outputs


def outputs_from_pulumi(stack: str, directory: Path) -> dict:
    """The source stack's outputs through the Automation API (needs the Pulumi CLI)."""
    if shutil.which("pulumi") is None:
        raise PromoteError(f"cannot read the outputs of stack {stack}: the Pulumi CLI is not installed; "
                           f"pass --source-outputs PATH.json (from `pulumi stack output --json --stack {stack}`)")
    from pulumi import automation

    try:
        selected = automation.select_stack(stack_name=stack, work_dir=str(directory))
        return {name: value.value for name, value in selected.outputs().items()}
    except automation.errors.CommandError as error:
        last = (str(error).strip().splitlines() or ["failed"])[-1]
        raise PromoteError(f"cannot read the outputs of stack {stack}: {last[:200]}") from None


def promote(source: str, target: str, directory: Path, read_outputs: Callable[[str], dict], dry_run: bool) -> str:
    """Promote `source`'s channel into `target`'s stack file; return the unified diff ('' if none)."""
    parse_stack(source), parse_stack(target)
    if source == target:
        raise PromoteError("--from and --to name the same stack")
    source_file, target_file = directory / f"Pulumi.{source}.yaml", directory / f"Pulumi.{target}.yaml"
    channel = channel_of(source_file)
    problem = gate_problem(source, channel, read_outputs(source))
    if problem:
        raise PromoteError(f"refusing to promote {channel} to {target}: {problem}")
    old, new = with_channel(target_file, channel)
    if old == new:
        return ""
    diff = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{target_file.name}", tofile=f"b/{target_file.name}"))
    if not dry_run:
        target_file.write_text(new, encoding="utf-8")
    return diff
