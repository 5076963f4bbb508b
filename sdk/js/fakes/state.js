// Fake `airlock:policy/state@0.2.0` for native tests, with the host's
// semantics: reads see the committed state plus this evaluation's writes.

import { current } from './host.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export function get(key) {
  return current.writes.get(key) ?? current.committed.get(key);
}

export function set(key, value) {
  current.writes.set(key, value);
}

export function incr(key, delta) {
  const value = get(key);
  // Like the host: a value that is not an i64 counts as 0, and the sum saturates.
  let n = value !== undefined && /^[+-]?[0-9]+$/.test(value) ? BigInt(value) : 0n;
  if (n < I64_MIN || n > I64_MAX) n = 0n;
  const next = n + delta < I64_MIN ? I64_MIN : n + delta > I64_MAX ? I64_MAX : n + delta;
  set(key, String(next));
  return next;
}
