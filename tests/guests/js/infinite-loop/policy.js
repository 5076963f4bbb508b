// Hostile JS guest `infinite-loop`: `evaluate` never returns. It spins in a
// pure compute loop, with no host calls.
//
// The host must answer: deny, class `fuel` (or `deadline` when the fuel
// budget is so large that the wall-clock limit fires first).

export function describe() {
  return { name: 'infinite-loop', version: '0.1.0' };
}

export function evaluate() {
  let n = 0;
  for (;;) n = (n * 1103515245 + 12345) % 2147483648;
}

// Shows no MCP listing (without the SDK, which this guest does not import).
export function visible(principal, service, kind, names) {
  return names.map(() => false);
}
