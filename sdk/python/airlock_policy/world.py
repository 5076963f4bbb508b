"""The policy world's exports, with the defaults a policy need not write.

componentize-py instantiates the `WitWorld` class of `policy.py` and calls
its methods, and the generated `wit_world.WitWorld` declares every export
abstract: a class that lacks one cannot be instantiated, and the build
fails. `Policy` gives the exports a policy may leave out their default:

    from airlock_policy import Description, Policy, allow

    class WitWorld(Policy):
        def describe(self):
            return Description(name="read-only", version="1.0.0")

        def evaluate(self, request):
            ...

`visible` (contract 0.2.0) hides every item of an MCP listing unless the
policy overrides it: an agent sees only what some rule could allow, and a
policy that never thought about MCP shows nothing.
"""

import wit_world


def hide_all(names) -> list[bool]:
    """The answer that hides every one of `names`."""
    return [False] * len(names)


def show_only(names, allowed) -> list[bool]:
    """One bool per name: whether it is in `allowed` (compared exactly)."""
    allowed = frozenset(allowed)
    return [name in allowed for name in names]


class Policy(wit_world.WitWorld):
    """Base class for a policy's `WitWorld`: `evaluate` and `describe` are
    the policy's to write; `visible` hides everything until overridden."""

    def visible(self, principal, service, kind, names):
        """Which of `names` (tools, resources, resource templates or prompts,
        as `kind`, a `Listing`, says) of MCP `service` the principal may see,
        one bool per name. The default hides them all."""
        return hide_all(names)
