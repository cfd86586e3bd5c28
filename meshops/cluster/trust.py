"""The stack's key: what makes the migration record, the owner claim and the record's copy
beside the backup checkable.

Those documents live where others can write them (a ConfigMap in kube-system, an object in
the backup bucket). Each carries an HMAC-SHA256 over its content and the cluster it is
about, keyed with 32 random bytes that exist only in this stack's Pulumi state: the
`stack-key` command resource prints them once (stored as a secret output, never replaced)
and every step receives them in its environment. A document whose MAC does not verify was
not written by this stack (it was forged, written by another stack, or by a gke-mesh
version before signing) and is never acted on. Whoever can decrypt the stack's state can
already run `pulumi up` as the stack: the key adds no power they lack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

KEY_ENV = "GKE_MESH_STACK_KEY"
"""The stack-key resource's stdout (`{"key": "<64 hex digits>"}`), from Pulumi state."""
SIGNATURE_FIELD = "mac"


class MissingKey(Exception):
    """The environment carries no usable key (a hand-run step, or state written before keys)."""


def new_key_result() -> str:
    """What the stack-key resource prints when created: a fresh key, never printed again."""
    return json.dumps({"key": secrets.token_hex(32)}, sort_keys=True)


@dataclass(frozen=True)
class StackKey:
    """HMAC signing bound to one stack identity (`<org>/<project>/<stack>`)."""

    secret: bytes
    stack: str

    @classmethod
    def from_environment(cls, env: Mapping[str, str], stack: str) -> "StackKey":
        try:
            value = json.loads(env.get(KEY_ENV, ""))["key"]
            secret = bytes.fromhex(value)
        except (ValueError, TypeError, KeyError):
            raise MissingKey(f"environment variable {KEY_ENV} is missing or not a stack key; run steps through `pulumi up`") from None
        if len(secret) != 32:
            raise MissingKey(f"environment variable {KEY_ENV} holds a key of {len(secret)} bytes, expected 32")
        return cls(secret, stack)

    def sign(self, purpose: str, subject: Mapping[str, Any]) -> str:
        """MAC of `subject` for `purpose` (e.g. "record"), bound to this stack."""
        message = json.dumps({"purpose": purpose, "stack": self.stack, "subject": subject},
                             sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verifies(self, purpose: str, subject: Mapping[str, Any], mac: Any) -> bool:
        return isinstance(mac, str) and hmac.compare_digest(self.sign(purpose, subject), mac)
