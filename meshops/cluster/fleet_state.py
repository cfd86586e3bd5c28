"""Reading `gcloud container fleet mesh describe` for one membership."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Condition:
    code: str
    details: str = ""
    severity: str = ""


BLOCKING_PROVISIONING = ("LEGACY_MC_SECRETS", "MANAGED_CNI_NOT_ENABLED", "NON_STANDARD_BINARY_USAGE",
                         "UNSUPPORTED_GATEWAY_CLASS", "CONFIG_VALIDATION_ERROR")
_MODERNIZATION_NOT_BLOCKING = ("MODERNIZATION_SCHEDULED", "MODERNIZATION_WILL_BE_SCHEDULED", "MODERNIZATION_COMPLETED",
                               "MODERNIZATION_ABORTED")


@dataclass(frozen=True)
class MeshState:
    """The servicemesh state of one membership. `found` is False when the fleet has none."""

    found: bool
    management: str = ""
    control_plane_state: str = "UNKNOWN"
    control_plane_details: tuple[Condition, ...] = ()
    implementation: str = "UNKNOWN"
    data_plane_state: str = "UNKNOWN"
    data_plane_details: tuple[Condition, ...] = ()
    conditions: tuple[Condition, ...] = field(default_factory=tuple)

    def ready_revision(self) -> str | None:
        """The revision named by a REVISION_READY detail ('Ready: asm-managed'), if any."""
        for detail in self.control_plane_details:
            if detail.code == "REVISION_READY" and ":" in detail.details:
                return detail.details.split(":", 1)[1].strip()
        return None

    def modernization_in_progress(self) -> str | None:
        """The condition code of a control plane modernization that is under way, if any.

        The servicemesh condition codes (gcloud's generated gkehub v1 client,
        gkehub_v1_messages.py, MembershipState Condition Code) name five:
        MODERNIZATION_SCHEDULED and _WILL_BE_SCHEDULED (announced), _IN_PROGRESS,
        _COMPLETED and _ABORTED (over). Only IN_PROGRESS blocks; a MODERNIZATION_* code not
        in that list blocks unless its severity is INFO (Google's docs give SCHEDULED as
        INFO): the safer reading of a code this version does not know."""
        for condition in self.conditions:
            if condition.code == "MODERNIZATION_IN_PROGRESS":
                return condition.code
            if (condition.code.startswith("MODERNIZATION_") and condition.code not in _MODERNIZATION_NOT_BLOCKING
                    and condition.severity != "INFO"):
                return condition.code
        return None

    def blocking_provisioning(self) -> list[Condition]:
        """Conditions the membership reports now that would stop the new control plane: legacy
        multi-cluster secrets, managed CNI off, a non-standard proxy binary, an unsupported
        gateway class, configuration that fails validation (gcloud 528's gkehub v1 messages,
        MembershipState condition codes; Cloud Service Mesh troubleshooting, "Resolve feature
        state conditions"). A new installation lands on TRAFFIC_DIRECTOR, which enforces them."""
        return [c for c in self.conditions if c.code in BLOCKING_PROVISIONING]

    def codes(self) -> list[str]:
        return [c.code for c in (*self.control_plane_details, *self.data_plane_details, *self.conditions)]

    def summary(self) -> str:
        detail = "; ".join(f"{d.code} {d.details!r}" for d in self.control_plane_details) or "no details"
        return f"control plane {self.control_plane_state} ({detail}), data plane {self.data_plane_state}"


def fleet_default_management(described: Any) -> str:
    """The mesh management the fleet gives a membership that joins it (gkehub v1
    Feature.fleetDefaultMemberConfig.mesh.management), or "" when the fleet sets none."""
    if not isinstance(described, dict):
        return ""
    return str((((described.get("fleetDefaultMemberConfig") or {}).get("mesh") or {}).get("management")) or "")


def _conditions(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(Condition(str(c.get("code", "")), str(c.get("details", "")), str(c.get("severity", "")))
                 for c in raw if isinstance(c, dict))


def _entry(mapping: Any, location: str, membership: str) -> dict | None:
    """Keys are full names with the project *number*; match on location and membership."""
    suffix = f"/locations/{location}/memberships/{membership}"
    for key, value in (mapping or {}).items():
        if str(key).endswith(suffix) and isinstance(value, dict):
            return value
    return None


def mesh_state(described: Any, location: str, membership: str) -> MeshState:
    if not isinstance(described, dict):
        return MeshState(found=False)
    spec = _entry(described.get("membershipSpecs"), location, membership) or {}
    state = _entry(described.get("membershipStates"), location, membership)
    management = str((spec.get("mesh") or {}).get("management", ""))
    if state is None:
        return MeshState(found=bool(spec), management=management)
    mesh = state.get("servicemesh") or {}
    control = mesh.get("controlPlaneManagement") or {}
    data = mesh.get("dataPlaneManagement") or {}
    return MeshState(
        found=True,
        management=management,
        control_plane_state=str(control.get("state", "UNKNOWN")),
        control_plane_details=_conditions(control.get("details")),
        implementation=str(control.get("implementation", "UNKNOWN")),
        data_plane_state=str(data.get("state", "UNKNOWN")),
        data_plane_details=_conditions(data.get("details")),
        conditions=_conditions(mesh.get("conditions")),
    )


def membership_listed(memberships: Any, name: str, location: str) -> bool:
    """Whether `gcloud container fleet memberships list` output holds membership `name` in `location`."""
    return any(str(m.get("name", "")).endswith(f"/locations/{location}/memberships/{name}") for m in memberships or [])


def registers(resource_link: str, project: str, location: str, cluster: str, project_number: str | None = None) -> bool:
    """Whether a membership's GKE resource link names this cluster. The project segment may
    be the project id or its number. With `project_number` (preflight resolves it) the
    number must be exactly this project's: in a multi-project fleet two clusters of one
    name and location differ only there. Without it (the program's offline-capable check)
    any number is accepted, and preflight is the exact check before anything changes."""
    prefix, _, rest = resource_link.partition("/projects/")
    owner, _, tail = rest.partition("/")
    same_project = owner == project or (owner == project_number if project_number else owner.isdigit())
    return (prefix in ("", "//container.googleapis.com", "https://container.googleapis.com/v1")
            and same_project and tail == f"locations/{location}/clusters/{cluster}")
