"""Helpers to query a recorded program run as a graph."""

from __future__ import annotations

from collections import Counter

from meshops.review.offline import ProgramRun, Registration


class Graph:
    def __init__(self, run: ProgramRun):
        self.run = run
        self.by_urn = {r.urn: r for r in run.registrations}

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.run.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (found,) = [r for r in self.run.registrations if r.name == name]
        return found

    def counts(self) -> Counter:
        return Counter(r.type for r in self.run.registrations)

    def ancestors(self, registration: Registration) -> set[str]:
        """Every URN `registration` waits for, directly or transitively."""
        seen: set[str] = set()
        todo = list(registration.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo.extend(self.by_urn[urn].dependencies if urn in self.by_urn else [])
        return seen

    def api(self, project: str, service: str) -> Registration:
        (found,) = [r for r in self.of_type("gcp:projects/service:Service")
                    if r.inputs["project"] == project and r.inputs["service"] == service]
        return found
