"""`crash-tracker`: reads crash reports and stack traces, nothing else.

A port of the Rust policy in `../src/lib.rs`; the two answer every request alike.

From the role definition: services `[crash-reporting]`, actions `[read]`,
responses capped at 50 KB.
"""

from airlock_policy import Description, Policy, allow, deny, is_read

SERVICE = "crash-reporting"
MAX_RESPONSE_BYTES = 50 * 1024


class WitWorld(Policy):
    def describe(self):
        return Description(name="crash-tracker", version="0.1.0")

    def evaluate(self, request):
        action = request.action
        if action.service != SERVICE:
            return deny(f"crash-tracker may only use the {SERVICE} service, not {action.service}")
        if not is_read(action):
            return deny(f"crash-tracker is read-only: {action.method} is not allowed")
        return allow(["crash-reporting:read"], 300, max_response_bytes=MAX_RESPONSE_BYTES)
