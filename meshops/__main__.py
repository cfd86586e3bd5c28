"""`python -m meshops <command>`: the offline plan and the imperative steps."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from meshops.context import ContextError, Decision, StepInput
from meshops.process import StepFailed, Tools
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
    for name in STEPS:
        sub.add_parser(name, help=f"run the {name} step (normally run by `pulumi up`)")
    return parser


def _plan(args: argparse.Namespace) -> int:
    from components.settings import ConfigError
    from meshops import render_markdown, render_mermaid
    from meshops.base import BaseError, plan_at_ref
    from meshops.diff import annotate
    from meshops.offline import SecureValueError
    from meshops.plan import PlanError, build_plan, render_json, stack_name

    try:
        document = build_plan(args.config, args.stack)
        label = None
        if args.base:
            document, label = annotate(plan_at_ref(args.base, args.config, stack_name(args.config, args.stack)), document), args.base
        elif args.base_config:
            document, label = annotate(build_plan(args.base_config, document["stack"]), document), str(args.base_config)
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


def _step(name: str) -> int:
    """Run one step; stdout is its one JSON result (progress goes to stderr)."""
    step = STEPS[name]
    try:
        inp = StepInput.from_environment(os.environ, needs_decision=step.NEEDS_DECISION)
    except ContextError as error:
        print(f"meshops {name}: {error}", file=sys.stderr)
        return 1
    try:
        result = step.run(inp, Tools())
    except StepFailed as error:
        print(f"meshops {name} [{inp.ctx.cluster}]: {error}; then re-run `pulumi up`: it resumes at this step", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"meshops {name} [{inp.ctx.cluster}]: interrupted; re-run `pulumi up`: it resumes at this step", file=sys.stderr)
        return 130
    print(result.to_json() if isinstance(result, Decision) else json.dumps(result, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        return _plan(args)
    return _step(args.command)


if __name__ == "__main__":
    sys.exit(main())
