// The evaluation the fake host imports act on. testing.js swaps in a fresh
// one around each `Harness.evaluate`; a policy called outside a harness
// writes into the default one.

export function newEvaluation(committed = new Map()) {
  return { committed, writes: new Map(), logs: [] };
}

export let current = newEvaluation();

/** Make `evaluation` the one the imports act on; returns the previous one. */
export function swap(evaluation) {
  const previous = current;
  current = evaluation;
  return previous;
}
