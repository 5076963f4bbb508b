// Native tests of the JS github-mcp, the same as the Rust and Python policy's:
//   node --import ../../../sdk/js/register.js --test
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Harness, mcpRequest, request, toolCall } from 'airlock-policy/testing';
import * as policy from './policy.js';

const SERVICE = 'github-mcp';
const REPO = { owner: 'acme', repo: 'shop' };

const call = (tool, args = {}) => toolCall(SERVICE, tool, args);
const allowed = (req) => new Harness(policy).expectAllow(req);
const denied = (req) => new Harness(policy).expectDeny(req);
const grantOf = (g) => [g.scopes, g.ttlSeconds, g.singleUse, g.maxResponseBytes, g.claims];

test('describes itself', () => {
  assert.deepEqual(policy.describe(), { name: 'github-mcp', version: '0.1.0' });
});

test('only its own service', () => {
  assert.equal(denied(toolCall('github', 'get_me')), 'github-mcp may only use the github-mcp service, not github');
  assert.equal(
    denied(request({ action: { service: 'code', path: '/x' } })),
    'github-mcp may only use the github-mcp service, not code',
  );
});

test('MCP only', () => {
  const rest = request({ action: { service: SERVICE, method: 'POST', path: '/mcp', body: '{"jsonrpc": "2.0", "id": 1, "method": "ping"}' } });
  assert.equal(denied(rest), 'github-mcp speaks MCP only: POST /mcp is not an MCP call');
  assert.equal(
    denied(request({ action: { service: SERVICE, path: '/repos/acme/shop' } })),
    'github-mcp speaks MCP only: GET /repos/acme/shop is not an MCP call',
  );
});

test('session methods are allowed', () => {
  for (const method of ['initialize', 'notifications/initialized', 'notifications/cancelled', 'ping', 'tools/list']) {
    const args = method === 'initialize' ? { protocolVersion: '2025-06-18' } : undefined;
    assert.deepEqual(grantOf(allowed(mcpRequest(SERVICE, method, { arguments: args }))), [['mcp:session'], 60, false, undefined, []], method);
  }
});

test('other methods are denied', () => {
  for (const [method, name] of [
    ['resources/list'],
    ['resources/read', 'repo://acme/shop/README.md'],
    ['prompts/list'],
    ['prompts/get', 'triage'],
    ['completion/complete'],
    ['logging/setLevel'],
  ]) {
    assert.equal(denied(mcpRequest(SERVICE, method, { name })), `github-mcp does not use MCP method ${method}`);
  }
});

test('get_me', () => {
  assert.deepEqual(grantOf(allowed(call('get_me'))), [['user:read'], 60, false, undefined, []]);
});

test('list_issues in the allowed repository only', () => {
  assert.deepEqual(grantOf(allowed(call('list_issues', { state: 'open', ...REPO }))), [['issues:read'], 60, false, undefined, []]);
  for (const [owner, repo] of [['acme', 'api'], ['evil', 'shop'], ['Acme', 'shop'], ['acme', 'shop/../api'], ['acme/shop', '']]) {
    assert.equal(
      denied(call('list_issues', { owner, repo })),
      `list_issues: repository ${owner}/${repo} is not one github-mcp may use (acme/shop)`,
    );
  }
});

test('required arguments must be strings', () => {
  assert.equal(denied(call('list_issues', { repo: 'shop' })), 'list_issues: argument `owner` must be a string');
  assert.equal(denied(call('list_issues', { owner: 'acme' })), 'list_issues: argument `repo` must be a string');
  assert.equal(denied(call('list_issues', { owner: 'acme', repo: 7 })), 'list_issues: argument `repo` must be a string');
  assert.equal(denied(call('list_issues', { owner: null, repo: 'shop' })), 'list_issues: argument `owner` must be a string');
  assert.equal(denied(call('get_file_contents', REPO)), 'get_file_contents: argument `path` must be a string');
  assert.equal(denied(call('get_file_contents', { path: ['README.md'], ...REPO })), 'get_file_contents: argument `path` must be a string');
  assert.equal(denied(call('create_pull_request', { base: 'main', ...REPO })), 'create_pull_request: argument `head` must be a string');
  // The repository is checked first.
  assert.equal(denied(call('create_pull_request', { head: 'main' })), 'create_pull_request: argument `owner` must be a string');
});

test('arguments must be a JSON object', () => {
  for (const tool of ['list_issues', 'get_file_contents', 'create_pull_request']) {
    for (const args of ['[]', '"acme/shop"', 'not json', '{"owner": "acme", "owner": "evil", "repo": "shop"}']) {
      assert.equal(denied(toolCall(SERVICE, tool, args)), `${tool}: arguments are not a JSON object`);
    }
  }
});

test('reads files in the allowed paths', () => {
  for (const path of ['README.md', 'src/lib.rs', 'src/a/b/c.rs', 'docs/guide.md', 'docs/img/logo.png', 'src/.hidden', 'src/..x']) {
    assert.deepEqual(grantOf(allowed(call('get_file_contents', { path, ...REPO }))), [['contents:read'], 60, false, undefined, []], path);
  }
});

test('other paths are denied', () => {
  for (const path of [
    '/README.md',
    '/src/lib.rs',
    'src/../.env',
    'docs/../../etc/passwd',
    'src/..',
    '../README.md',
    '..',
    '.env',
    'README.md/x',
    'readme.md',
    './README.md',
    './src/lib.rs',
    'src',
    'src/',
    'docs',
    'docs/',
    'src//lib.rs',
    'src/./lib.rs',
    'docs/guide/',
    'src\\lib.rs',
    'src/a\\..\\..\\x',
    'srcs/lib.rs',
    'documents/x.md',
    '.github/workflows/ci.yml',
    '',
  ]) {
    assert.equal(
      denied(call('get_file_contents', { path, ...REPO })),
      `get_file_contents: path ${path} is outside the allowed paths (README.md, src/, docs/)`,
    );
  }
});

test('reads only the allowed repository', () => {
  assert.equal(
    denied(call('get_file_contents', { owner: 'acme', repo: 'api', path: 'README.md' })),
    'get_file_contents: repository acme/api is not one github-mcp may use (acme/shop)',
  );
});

test('opens pull requests from agent branches', () => {
  const grant = allowed(call('create_pull_request', { head: 'agent/fix-pager', base: 'main', title: 'Fix pager', ...REPO }));
  assert.deepEqual(grantOf(grant), [['pulls:write'], 60, true, undefined, []]);
  allowed(call('create_pull_request', { head: 'agent/x/y', base: 'main', ...REPO }));
  for (const head of ['main', 'agent/', 'agent', 'Agent/fix', 'feature/agent/fix', ' agent/fix', 'agents/fix']) {
    assert.equal(
      denied(call('create_pull_request', { head, base: 'main', ...REPO })),
      `create_pull_request: head branch ${head} is not an agent/ branch`,
    );
  }
  assert.equal(
    denied(call('create_pull_request', { head: 'agent/fix', owner: 'evil', repo: 'shop' })),
    'create_pull_request: repository evil/shop is not one github-mcp may use (acme/shop)',
  );
});

const APPROVAL = { id: 'apr_test', approver: 'alice@acme.example', approved_at_ms: 1 };

test('pull requests into another base need a human', () => {
  const args = { title: 'Fix', head: 'agent/fix-1', base: 'release', ...REPO };
  assert.equal(
    new Harness(policy).expectEscalate(call('create_pull_request', args)),
    "create_pull_request: a pull request into release needs a human's approval",
  );
  for (const base of ['Main', 'main ', '', 'develop']) {
    assert.equal(
      new Harness(policy).expectEscalate(call('create_pull_request', { ...args, base })),
      `create_pull_request: a pull request into ${base} needs a human's approval`,
    );
  }
  // With the human's approval of this call, as for main.
  const grant = allowed(toolCall(SERVICE, 'create_pull_request', args, { approval: APPROVAL }));
  assert.deepEqual(grantOf(grant), [['pulls:write'], 60, true, undefined, []]);
  // The head branch and the repository are checked first, and the base must be a string.
  assert.equal(
    denied(call('create_pull_request', { head: 'main', base: 'release', ...REPO })),
    'create_pull_request: head branch main is not an agent/ branch',
  );
  for (const base of [null, 7, ['main']]) {
    assert.equal(
      denied(call('create_pull_request', { head: 'agent/x', base, ...REPO })),
      'create_pull_request: argument `base` must be a string',
    );
  }
  assert.equal(denied(call('create_pull_request', { head: 'agent/x', ...REPO })), 'create_pull_request: argument `base` must be a string');
  assert.equal(
    denied(toolCall(SERVICE, 'create_pull_request', { ...args, base: 7 }, { approval: APPROVAL })),
    'create_pull_request: argument `base` must be a string',
  );
});

test('never merges', () => {
  assert.equal(denied(call('merge_pull_request', { pullNumber: 7, ...REPO })), 'github-mcp never merges pull requests');
  // Whatever its arguments.
  assert.equal(denied(toolCall(SERVICE, 'merge_pull_request', '[]')), 'github-mcp never merges pull requests');
});

test('other tools are denied', () => {
  for (const tool of ['delete_repository', 'push_files', 'create_issue', 'GET_ME', 'get_me ', 'constructor', '__proto__']) {
    assert.equal(denied(call(tool, REPO)), `tool ${tool} is not one github-mcp may call`);
  }
});

test('lists only the tools it may call', () => {
  const h = new Harness(policy);
  const names = ['get_me', 'merge_pull_request', 'list_issues', 'delete_repository', 'get_file_contents', 'create_pull_request', 'GET_ME'];
  assert.deepEqual(h.visible(SERVICE, 'tools', names), [true, false, true, false, true, true, false]);
  assert.deepEqual(h.visibleNames(SERVICE, 'tools', names), ['get_me', 'list_issues', 'get_file_contents', 'create_pull_request']);
  assert.deepEqual(h.visible(SERVICE, 'tools', []), []);
  for (const kind of ['resources', 'resource-templates', 'prompts']) {
    assert.deepEqual(h.visible(SERVICE, kind, ['get_me', 'repo://acme/shop']), [false, false]);
  }
});
