// Native test harness: run a JS policy's `evaluate` under `node --test`.
//
// The harness plays the host's part for the imports (through the fakes in
// ./fakes, which register.js puts behind the `airlock:policy/...`
// specifiers): an in-memory workflow state whose writes commit only when
// the verdict is allow, as the real host does, and a log recorder.
//
//   import * as policy from './policy.js';
//   import { Harness, request } from 'airlock-policy/testing';
//
//   const h = new Harness(policy);
//   const grant = h.expectAllow(request({ action: { service: 'code', method: 'GET', path: '/x' } }));
//   assert.deepEqual(grant.scopes, ['read']);

import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';

import { sortedKeys } from './airlock-policy.js';
import { newEvaluation, swap } from './fakes/host.js';

/**
 * A request in the shape `evaluate` receives, built from the JSON shape of
 * `airlock policy eval` and the case tables (snake_case fields; `params`,
 * `query` and `headers` as objects whose values are strings or, for a
 * repeated name, arrays of strings). Pairs come out sorted by name, header
 * names in lower case and the method in upper case, as the host makes them;
 * to control their order, give `[name, value]` pairs instead of an object.
 * `body` may also be a Uint8Array. Missing principal fields default to
 * `test-agent`, `test-role`, `test-session` and `wf-test`, and the usage to
 * a 60-second window with nothing counted yet, as in the Rust SDK's builder.
 */
export function request({ principal = {}, action = {}, usage = {}, approval } = {}) {
  return {
    principal: {
      agent: principal.agent ?? 'test-agent',
      role: principal.role ?? 'test-role',
      session: principal.session ?? 'test-session',
      workflow: principal.workflow ?? 'wf-test',
      onBehalfOf: principal.on_behalf_of,
      intent: principal.intent,
    },
    action: buildAction(action),
    usage: {
      requestsTotal: BigInt(usage.requests_total ?? 0),
      requestsInWindow: usage.requests_in_window ?? 0,
      windowSeconds: usage.window_seconds ?? 60,
      grants: sortedEntries(usage.grants ?? {}),
      sessionStartedMs: BigInt(usage.session_started_ms ?? 0),
      nowMs: BigInt(usage.now_ms ?? 0),
    },
    approval: approval && {
      id: approval.id,
      approver: approval.approver,
      approvedAtMs: BigInt(approval.approved_at_ms),
    },
  };
}

function buildAction({
  service = '',
  operation,
  params,
  method = 'GET',
  path = '/',
  query,
  headers,
  body,
  body_base64: base64,
  body_truncated: truncated = false,
}) {
  if (body !== undefined && base64 !== undefined) throw new Error('action: give `body` or `body_base64`, not both');
  if (!/^[A-Za-z]+$/.test(method)) throw new Error(`action.method: ${JSON.stringify(method)} is not an HTTP method`);
  if (!path.startsWith('/')) throw new Error(`action.path: ${JSON.stringify(path)} must start with \`/\``);
  return {
    service,
    operation,
    params: pairs(params),
    method: method.toUpperCase(),
    path,
    query: pairs(query),
    headers: pairs(headers).map(([name, value]) => [name.toLowerCase(), value]),
    body:
      base64 !== undefined ? new Uint8Array(Buffer.from(base64, 'base64'))
      : body instanceof Uint8Array ? body
      : new TextEncoder().encode(body ?? ''),
    bodyTruncated: truncated,
  };
}

// In the host's order: by name, as its BTreeMap keeps them.
function sortedEntries(object) {
  return sortedKeys(object).map((name) => [name, object[name]]);
}

function pairs(spec = {}) {
  if (Array.isArray(spec)) return spec.map(([name, value]) => [name, value]);
  return sortedEntries(spec).flatMap(([name, value]) => (Array.isArray(value) ? value.map((v) => [name, v]) : [[name, value]]));
}

/** Runs a policy module (its `evaluate`) natively, with an in-memory workflow state. */
export class Harness {
  #policy;
  #state;
  #logs = [];

  /** `state` is the initial workflow state, an object of string values. */
  constructor(policy, { state = {} } = {}) {
    this.#policy = policy;
    this.#state = new Map(Object.entries(state));
  }

  /**
   * Evaluate one request. The policy's state writes are committed when the
   * verdict is allow and discarded otherwise, as in the host.
   */
  evaluate(req) {
    const evaluation = newEvaluation(new Map(this.#state));
    const previous = swap(evaluation);
    let verdict;
    try {
      verdict = this.#policy.evaluate(req);
    } finally {
      swap(previous);
    }
    if (verdict.tag === 'allow') {
      for (const [key, value] of evaluation.writes) this.#state.set(key, value);
    }
    this.#logs.push(...evaluation.logs);
    return verdict;
  }

  /** Evaluate and return the grant; fails the test with the verdict otherwise. */
  expectAllow(req) {
    return this.#expect('allow', req);
  }

  /** Evaluate and return the deny reason; fails the test on any other verdict. */
  expectDeny(req) {
    return this.#expect('deny', req);
  }

  /** Evaluate and return the escalation reason; fails the test on any other verdict. */
  expectEscalate(req) {
    return this.#expect('escalate', req);
  }

  #expect(tag, req) {
    const verdict = this.evaluate(req);
    if (verdict.tag !== tag) assert.fail(`expected ${tag}, got ${show(verdict)}`);
    return verdict.val;
  }

  /** A committed workflow state value, or `undefined`. */
  state(key) {
    return this.#state.get(key);
  }

  /** Every log record written so far: `{ level, message, fields }`. */
  get logs() {
    return this.#logs;
  }
}

function show(verdict) {
  return `${verdict.tag} ${JSON.stringify(verdict.val, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
}
