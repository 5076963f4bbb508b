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
//   h.expectDeny(toolCall('github', 'merge_pull_request', { pullNumber: 7 }));
//   assert.deepEqual(h.visible('github', 'tools', ['get_me', 'merge_pull_request']), [true, false]);

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
    principal: buildPrincipal(principal),
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

function buildPrincipal(principal) {
  return {
    agent: principal.agent ?? 'test-agent',
    role: principal.role ?? 'test-role',
    session: principal.session ?? 'test-session',
    workflow: principal.workflow ?? 'wf-test',
    onBehalfOf: principal.on_behalf_of,
    intent: principal.intent,
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
  mcp,
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
    mcp: mcp === undefined || mcp === null ? undefined : buildMcp(mcp),
  };
}

// `action.mcp` from its JSON form, `{ method, name, arguments, id }`:
// `arguments` an object (default `{}`) and `id` any JSON value, both turned
// into compact JSON text with sorted keys, as the host turns them.
function buildMcp({ method, name, arguments: args = {}, id, ...unknown }) {
  const extra = Object.keys(unknown);
  if (extra.length > 0) throw new Error(`action.mcp: unknown field \`${extra[0]}\``);
  if (typeof method !== 'string' || method === '') throw new Error('action.mcp.method: expected a non-empty string');
  if (name !== undefined && name !== null && typeof name !== 'string') throw new Error('action.mcp.name: expected a string');
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new Error('action.mcp.arguments: expected an object');
  return {
    method,
    name: name ?? undefined,
    arguments: jsonText(args),
    id: id === undefined || id === null ? undefined : jsonText(id),
  };
}

/** Compact JSON text with keys sorted at every depth, as serde_json writes a value. */
function jsonText(value) {
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${sortedKeys(value).map((k) => `${JSON.stringify(k)}:${jsonText(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// What an MCP call's `name` is, by method, as the host reads it from `params`.
const MCP_NAME_KEYS = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'resources/subscribe': 'uri',
  'resources/unsubscribe': 'uri',
};

/**
 * The request the host makes of one JSON-RPC message to MCP service
 * `service`: operation `method`, or `method:name` when the call names
 * something; `POST /mcp`; the message (`{"jsonrpc": "2.0", "id", "method",
 * "params"}`) as the body; and `action.mcp` set as the host sets it.
 *
 * `name` is the tool or prompt name (`tools/call`, `prompts/get`) or the
 * resource URI (`resources/read`, `resources/subscribe`,
 * `resources/unsubscribe`), required for those methods and refused for the
 * others. `arguments` (an object, default `{}`) are `params.arguments` for
 * `tools/call` and `prompts/get`, and the other `params` (but `_meta`) for
 * any other method; a string is used verbatim as `mcp.arguments` and
 * spliced into the body, to test text the host never sends. `id` (a number
 * or a string) defaults to 1, or to none for `notifications/...` methods;
 * `id: null` makes a notification. `principal`, `usage` and `approval` are
 * as for `request`, and `action` adds action fields (`headers`...).
 */
export function mcpRequest(service, method, { name, arguments: args, id, principal, usage, approval, action = {} } = {}) {
  if (id === undefined) id = method.startsWith('notifications/') ? null : 1;
  if (id !== null && typeof id !== 'string' && !Number.isSafeInteger(id)) {
    throw new Error(`mcpRequest: the JSON-RPC id must be an integer or a string, not ${String(id)}`);
  }
  const key = MCP_NAME_KEYS[method];
  if (key === undefined && name !== undefined) throw new Error(`mcpRequest: ${method} names nothing, so it takes no name`);
  if (key !== undefined && !name) throw new Error(`mcpRequest: ${method} needs a name (\`params.${key}\`)`);
  const raw = typeof args === 'string' ? args : undefined;
  const namesTool = method === 'tools/call' || method === 'prompts/get';
  const message = { jsonrpc: '2.0', ...(id === null ? {} : { id }), method };
  let body;
  let seen = {};
  if (raw !== undefined) {
    // Text the host never produces, spliced in as it is.
    const head = jsonText(message).slice(0, -1);
    body = namesTool
      ? `${head},"params":{${JSON.stringify(key)}:${JSON.stringify(name)},"arguments":${raw}}}`
      : `${head},"params":${raw}}`;
  } else {
    const given = { ...(args ?? {}) };
    let params;
    if (namesTool) {
      params = { [key]: name, arguments: given };
      seen = given;
    } else {
      params = { ...(key === undefined ? {} : { [key]: name }), ...given };
      seen = { ...params };
      delete seen._meta;
    }
    if (namesTool || Object.keys(params).length > 0) message.params = params;
    body = jsonText(message);
  }
  const req = request({
    principal,
    usage,
    approval,
    action: {
      ...action,
      service,
      operation: name === undefined ? method : `${method}:${name}`,
      method: 'POST',
      path: '/mcp',
      body,
      mcp: { method, name, arguments: seen, id },
    },
  });
  if (raw !== undefined) req.action.mcp.arguments = raw;
  return req;
}

/** The request of a `tools/call` of `tool` with `args` (see `mcpRequest`). */
export function toolCall(service, tool, args = {}, options = {}) {
  return mcpRequest(service, 'tools/call', { ...options, name: tool, arguments: args });
}

const LISTINGS = ['tools', 'resources', 'resource-templates', 'prompts'];

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

  /**
   * Ask the policy's `visible` which of `names` (of `kind`: `'tools'`,
   * `'resources'`, `'resource-templates'` or `'prompts'`) on MCP `service`
   * the principal (the `request` default, overridden by `principal`) may
   * see. Its state writes are discarded, as in the host. An answer that is
   * not one boolean per name fails the test (the host would hide everything).
   */
  visible(service, kind, names, { principal = {} } = {}) {
    if (!LISTINGS.includes(kind)) throw new Error(`listing: ${JSON.stringify(kind)} is not one of ${LISTINGS.join(', ')}`);
    const evaluation = newEvaluation(new Map(this.#state));
    const previous = swap(evaluation);
    let answer;
    try {
      answer = this.#policy.visible(buildPrincipal(principal), service, kind, [...names]);
    } finally {
      swap(previous);
    }
    this.#logs.push(...evaluation.logs);
    if (!Array.isArray(answer) || answer.length !== names.length || !answer.every((b) => typeof b === 'boolean')) {
      assert.fail(`visible must answer one boolean per name (${names.length}), got ${JSON.stringify(answer)}`);
    }
    return answer;
  }

  /** The names `visible` lets the principal see, in order. */
  visibleNames(service, kind, names, options) {
    const seen = this.visible(service, kind, names, options);
    return names.filter((_, i) => seen[i]);
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
