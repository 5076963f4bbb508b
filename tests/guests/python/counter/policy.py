"""Guest `counter` (Python): keeps a counter in a module global and reports it
as `deny("calls=N session=S")`. In a fresh instance per decision N is always
1; any other answer means guest memory leaked from one decision into the next
(S tells the decisions apart).
"""

from airlock_policy import Description, Policy, deny

calls = 0


class WitWorld(Policy):
    def describe(self):
        return Description(name="counter", version="0.1.0")

    def evaluate(self, request):
        global calls
        calls += 1
        return deny(f"calls={calls} session={request.principal.session}")
