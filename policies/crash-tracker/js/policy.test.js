// Native tests of the JS crash-tracker, ported from the Rust policy's tests:
//   node --import ../../../sdk/js/register.js --test
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Harness, request } from 'airlock-policy/testing';
import * as policy from './policy.js';

test('describes itself', () => {
  assert.deepEqual(policy.describe(), { name: 'crash-tracker', version: '0.1.0' });
});

test('reads crash reports', () => {
  const h = new Harness(policy);
  for (const method of ['GET', 'HEAD']) {
    const grant = h.expectAllow(
      request({ action: { service: 'crash-reporting', operation: 'crashes.read', method, path: '/crashes/123' } }),
    );
    assert.deepEqual(grant, {
      scopes: ['crash-reporting:read'],
      ttlSeconds: 300,
      singleUse: false,
      maxResponseBytes: 51200n,
      claims: [],
    });
  }
});

test('never writes', () => {
  const h = new Harness(policy);
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const reason = h.expectDeny(request({ action: { service: 'crash-reporting', method, path: '/crashes/123' } }));
    assert.equal(reason, `crash-tracker is read-only: ${method} is not allowed`);
  }
});

test('no other service', () => {
  const reason = new Harness(policy).expectDeny(request({ action: { service: 'analytics', method: 'GET', path: '/metrics' } }));
  assert.equal(reason, 'crash-tracker may only use the crash-reporting service, not analytics');
});
