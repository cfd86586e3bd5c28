"""`python -m meshops <command>`: the offline plan and the imperative steps."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from meshops.cluster.process import StepFailed, Tools, run
from meshops.context import ContextError
from meshops.steps import STEPS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        self.exit(2, f"meshops: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m meshops", description="gke-mesh operator commands")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    plan = sub.add_parser("plan", help="print a stack's resource graph offline (no cloud, no Pulumi CLI)")
    plan.add_argument("--config", required=True, type=Path, help="stack file, e.g. Pulumi.dev.yaml")
    plan.add_argument("--stack", help="stack name (default: from the file name)")
    plan.add_argument("--format", default="json", choices=["json", "markdown", "mermaid"], help="output format")
    base = plan.add_mutually_exclusive_group()
    base.add_argument("--base", metavar="GIT_REF", help="mark each resource's change against the stack file and program at this ref")
    base.add_argument("--base-config", metavar="PATH", type=Path, help="mark changes against another stack file, same program")
    plan.add_argument("--stack-outputs", metavar="NAME=PATH.json", action="append", default=[],
                      help="outputs of the stack named in gke-mesh:promotion.after (from `pulumi stack output --json`)")
    promote = sub.add_parser("promote", help="copy the release channel from one stack file to the next, once verified")
    promote.add_argument("--from", dest="source", required=True, help="source stack, e.g. staging")
    promote.add_argument("--to", dest="target", required=True, help="target stack, e.g. prod")
    promote.add_argument("--dir", type=Path, default=Path("."), help="folder of the stack files (default: here)")
    promote.add_argument("--source-outputs", type=Path, help="the source stack's `pulumi stack output --json` (else read with the Pulumi CLI)")
    promote.add_argument("--dry-run", action="store_true", help="print the diff without writing")
    rollout = sub.add_parser("rollout", help="preview or up stacks in order through the Pulumi Automation API")
    rollout.add_argument("--stacks", required=True, help="e.g. dev,staging,prod (in order) or a,b;c (waves)")
    rollout.add_argument("--action", choices=["preview", "up"], default="preview")
    rollout.add_argument("--parallel", type=int, default=1, help="stacks of one wave run together (default 1)")
    rollout.add_argument("--dir", type=Path, default=Path("."), help="the Pulumi project folder (default: here)")
    rollout.add_argument("--yes", action="store_true",
                         help="with --action up: update each wave after its preview without asking (the preview still runs)")
    status = sub.add_parser("status", help="read-only, live state of a stack's clusters and any migration in flight")
    status.add_argument("--config", required=True, type=Path, help="stack file, e.g. Pulumi.prod.yaml")
    status.add_argument("--stack", help="stack name (default: from the file name)")
    status.add_argument("--cluster", help="only this cluster")
    status.add_argument("--format", default="text", choices=["text", "json"])
    for name in STEPS:
        step = sub.add_parser(name, help=f"run the {name} step (normally run by `pulumi up`)"
                              + ("; with --config: restore a recorded backup by hand" if name == "restore" else ""))
        if name == "restore":
            step.add_argument("--config", type=Path, help="stack file: restore by hand, outside `pulumi up`")
            step.add_argument("--stack", help="stack name (default: from the file name)")
            step.add_argument("--cluster", help="the cluster to restore (required with --config)")
            step.add_argument("--backup", help="backup location (default: the one the cluster's migration record names)")
            step.add_argument("--sha256", help="sha256 of that backup's manifest.json, when no record names it")
            step.add_argument("--dry-run", action="store_true", help="say what would be applied, change nothing")
    keep = sub.add_parser("keep", help="a step's update: print its previous result, run nothing (normally run by `pulumi up`)")
    keep.add_argument("step", choices=[*STEPS, "guard", "stack-key"])
    sub.add_parser("stack-key", help="draw the stack's key once (normally run by `pulumi up`)")
    sub.add_parser("guard", help="hold a cluster for this stack (normally run by `pulumi up`)")
    sub.add_parser("guard-delete", help="release a cluster; refuses while its migration is in flight (run by `pulumi destroy`)")
    return parser


def _promote(args: argparse.Namespace) -> int:
    from components.settings import ConfigError
    from meshops.promotion.promote import PromoteError, outputs_from_file, outputs_from_pulumi, promote

    def read(stack: str) -> dict:
        return outputs_from_file(args.source_outputs) if args.source_outputs else outputs_from_pulumi(stack, args.dir)

    try:
        diff = promote(args.source, args.target, args.dir, read, args.dry_run)
    except (PromoteError, ConfigError) as error:
        print(f"meshops promote: {error}", file=sys.stderr)
        return 2
    if not diff:
        print(f"Pulumi.{args.target}.yaml already has the channel of {args.source}; nothing to change")
        return 0
    sys.stdout.write(diff)
    print("(dry run: nothing written)" if args.dry_run else f"wrote Pulumi.{args.target}.yaml")
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from meshops.promotion.rollout import AutomationWorkspace, RolloutError, ask_on_terminal, describe_changes, parse_waves, rollout

    def confirmed_by_flag(previews) -> bool:
        for result in previews:
            print(f"--yes: updating after preview: {describe_changes(result)}")
        return True

    confirm = confirmed_by_flag if args.yes else ask_on_terminal() if sys.stdin.isatty() else None
    try:
        waves = parse_waves(args.stacks)
        results = rollout(waves, args.action, AutomationWorkspace(args.dir), args.parallel, print, confirm)
    except RolloutError as error:
        print(f"meshops rollout: {error}", file=sys.stderr)
        return 2
    return 0 if all(r.status == "succeeded" for r in results) else 1


def _plan(args: argparse.Namespace) -> int:
    from components.settings import ConfigError
    from meshops.review import render_markdown, render_mermaid
    from meshops.review.base import BaseError, plan_at_ref
    from meshops.review.diff import annotate
    from meshops.review.offline import SecureValueError
    from meshops.review.plan import PlanError, build_plan, load_stack_outputs, render_json, stack_name

    try:
        outputs = load_stack_outputs(args.stack_outputs)
        document = build_plan(args.config, args.stack, outputs)
        label = None
        if args.base:
            document, label = annotate(plan_at_ref(args.base, args.config, stack_name(args.config, args.stack)), document), args.base
        elif args.base_config:
            document, label = annotate(build_plan(args.base_config, document["stack"], outputs), document), str(args.base_config)
    except (ConfigError, PlanError, SecureValueError, BaseError) as error:
        print(f"meshops plan: {error}", file=sys.stderr)
        return 2
    if args.format == "markdown":
        sys.stdout.write(render_markdown.render(document, label))
    elif args.format == "mermaid":
        sys.stdout.write(render_mermaid.render(document))
    else:
        sys.stdout.write(render_json(document))
    return 0


def _status(args: argparse.Namespace) -> int:
    from components.settings import ConfigError
    from meshops.cluster import breakglass
    from meshops.review.plan import PlanError

    try:
        found = breakglass.targets(args.config, args.stack, args.cluster)
    except (ConfigError, PlanError, breakglass.BreakGlassError, OSError, ValueError) as error:
        print(f"meshops status: {error}", file=sys.stderr)
        return 2
    found = breakglass.with_key(found, _stack_key("status", found[0].stack, args.config))
    statuses = []
    for target in found:
        status, error = breakglass.guarded(breakglass.cluster_status, target, run)
        if error:
            print(f"meshops status [{target.ctx.cluster}]: {error}", file=sys.stderr)
            return 1
        statuses.append(status)
    sys.stdout.write(json.dumps(statuses, indent=2, sort_keys=True) + "\n" if args.format == "json" else breakglass.render(statuses))
    return breakglass.exit_code(statuses)


def _stack_key(command: str, identity: str, config: Path):
    """The stack's key from its state, to check records with; None (said on stderr) when it cannot be read."""
    from meshops.cluster import breakglass

    key, why = breakglass.key_from_state(identity, config.resolve().parent)
    if key is None:
        print(f"meshops {command}: migration records are not checked (cannot read stack {identity}'s key: {why})", file=sys.stderr)
    return key


def _restore_by_hand(args: argparse.Namespace) -> int:
    from components.settings import ConfigError
    from meshops.cluster import breakglass
    from meshops.review.plan import PlanError

    if not args.cluster:
        print("meshops restore: --cluster is required with --config", file=sys.stderr)
        return 2
    try:
        (target,) = breakglass.targets(args.config, args.stack, args.cluster)
    except (ConfigError, PlanError, breakglass.BreakGlassError, OSError, ValueError) as error:
        print(f"meshops restore: {error}", file=sys.stderr)
        return 2
    (target,) = breakglass.with_key([target], _stack_key("restore", target.stack, args.config))
    result, error = breakglass.guarded(breakglass.restore, target, run, args.backup, args.sha256, args.dry_run)
    if error:
        print(f"meshops restore [{args.cluster}]: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(breakglass.restore_text(result))
    return 0


def _run(words: list[str]) -> int:
    """Run one step (or a step's `keep`, or the guard); stdout is its one JSON result,
    progress goes to stderr, a failure is one line on stderr."""
    from meshops.cluster.execute import execute
    from meshops.cluster.keep import KeepError
    from meshops.cluster.process import redact_object_names
    from meshops.steps import STEPS

    name = words[0] if words[0] != "keep" else f"keep {words[1]}"
    cluster = os.environ.get("GKE_MESH_CLUSTER", "?")
    # A step whose output is secret in state (CLUSTER_DATA) logs stderr in plain text, and
    # a failed command's output reaches the logs either way: its lines go out without
    # Kubernetes object names (meshops.cluster.process.redact_object_names).
    private = getattr(STEPS.get(words[1] if words[0] == "keep" else words[0]), "CLUSTER_DATA", False)
    shown = redact_object_names if private else (lambda text: text)
    tools = Tools(log=lambda line: print(shown(line), file=sys.stderr, flush=True)) if private else Tools()
    try:
        out = execute(words, os.environ, tools)
    except (ContextError, KeepError) as error:
        print(f"meshops {name}: {error}", file=sys.stderr)
        return 1
    except StepFailed as error:
        print(f"meshops {name} [{cluster}]: {shown(str(error))}; then re-run `pulumi up`: it resumes at this step", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"meshops {name} [{cluster}]: interrupted; re-run `pulumi up`: it resumes at this step", file=sys.stderr)
        return 130
    if words[0] == "keep":
        print(f"meshops {words[1]} [{cluster}]: inputs changed, result kept: a step runs only when the target channel "
              "or gke-mesh:migration.rerun changes", file=sys.stderr)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        return _plan(args)
    if args.command == "promote":
        return _promote(args)
    if args.command == "rollout":
        return _rollout(args)
    if args.command == "status":
        return _status(args)
    if args.command == "restore" and args.config is not None:
        return _restore_by_hand(args)
    return _run([args.command, args.step] if args.command == "keep" else [args.command])


if __name__ == "__main__":
    sys.exit(main())
