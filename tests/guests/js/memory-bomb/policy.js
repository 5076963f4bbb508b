// Hostile JS guest `memory-bomb`: `evaluate` allocates 1 MiB buffers, writes
// every page of each, and keeps them all, without bound. Sooner or later
// `memory.grow` is refused by the host's memory cap and the engine fails.
//
// The host must answer: deny, class `memory`.

const CHUNK = 1 << 20;
const PAGE = 1 << 16;

export function describe() {
  return { name: 'memory-bomb', version: '0.1.0' };
}

export function evaluate() {
  const hoard = [];
  for (;;) {
    // Non-zero writes, so every page is really touched, never left to a
    // zeroed-allocation shortcut.
    const chunk = new Uint8Array(CHUNK);
    for (let i = 0; i < CHUNK; i += PAGE) chunk[i] = hoard.length | 1;
    hoard.push(chunk);
  }
}

// Shows no MCP listing (without the SDK, which this guest does not import).
export function visible(principal, service, kind, names) {
  return names.map(() => false);
}
