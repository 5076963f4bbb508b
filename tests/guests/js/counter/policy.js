// Probe JS guest `counter`: keeps a counter in a module global and reports
// it as `deny("calls=N session=S")`. In a fresh instance per decision N is
// always 1; any other answer means guest memory leaked from one decision
// (or one session) into the next.

import { deny } from 'airlock-policy';

// Shows no MCP listing: the SDK's default `visible` hides every item.
export { hideAll as visible } from 'airlock-policy';

let calls = 0;

export function describe() {
  return { name: 'counter', version: '0.1.0' };
}

export function evaluate(request) {
  calls += 1;
  return deny(`calls=${calls} session=${request.principal.session}`);
}
