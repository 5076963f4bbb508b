// `crash-tracker`: reads crash reports and stack traces, nothing else. A port
// of ../src/lib.rs that gives the same verdicts for every request.
//
// From the role definition: services `[crash-reporting]`, actions `[read]`,
// responses capped at 50 KB.

import { allow, deny, isRead } from 'airlock-policy';

// Shows no MCP listing: the SDK's default `visible` hides every item.
export { hideAll as visible } from 'airlock-policy';

const SERVICE = 'crash-reporting';
const MAX_RESPONSE_BYTES = 50 * 1024;

export function describe() {
  return { name: 'crash-tracker', version: '0.1.0' };
}

export function evaluate(request) {
  const { action } = request;
  if (action.service !== SERVICE) {
    return deny(`crash-tracker may only use the ${SERVICE} service, not ${action.service}`);
  }
  if (!isRead(action)) {
    return deny(`crash-tracker is read-only: ${action.method} is not allowed`);
  }
  return allow({
    scopes: ['crash-reporting:read'],
    ttlSeconds: 300,
    maxResponseBytes: MAX_RESPONSE_BYTES,
  });
}
