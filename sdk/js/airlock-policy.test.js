// Tests of the SDK, most ported from the Rust SDK's (sdk/src):
//   node --import ./register.js --test
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Diff,
  DiffError,
  FileStatus,
  Mcp,
  McpError,
  PolicyError,
  allow,
  bodyText,
  deny,
  escalate,
  globMatch,
  hasPrefix,
  header,
  hideAll,
  isBlank,
  isRead,
  json,
  lines,
  log,
  mcp,
  member,
  normalize,
  op,
  param,
  query,
  rustDebug,
  showOnly,
  sortedKeys,
  state,
  trim,
} from 'airlock-policy';
import { Harness, mcpRequest, request, toolCall } from 'airlock-policy/testing';

// --------------------------------------------------------------- verdicts

test('verdicts have the shapes ComponentizeJS lowers', () => {
  assert.deepEqual(allow({ scopes: ['a:read'], ttlSeconds: 30 }), {
    tag: 'allow',
    val: { scopes: ['a:read'], ttlSeconds: 30, singleUse: false, maxResponseBytes: undefined, claims: [] },
  });
  assert.deepEqual(
    allow({ scopes: [], ttlSeconds: 5, singleUse: true, maxResponseBytes: 1024, claims: { ticket: 'T-1', n: 2 } }).val,
    { scopes: [], ttlSeconds: 5, singleUse: true, maxResponseBytes: 1024n, claims: [['ticket', '"T-1"'], ['n', '2']] },
  );
  assert.deepEqual(deny('no'), { tag: 'deny', val: 'no' });
  assert.deepEqual(escalate('ask'), { tag: 'escalate', val: 'ask' });
});

// ---------------------------------------------------------------- actions

test('action accessors', () => {
  const { action } = request({
    action: {
      service: 'code',
      method: 'head',
      path: '/x',
      params: { repo: 'api', owner: 'acme' },
      query: { label: ['a', 'b'] },
      headers: { 'Content-Type': 'application/json' },
    },
  });
  assert.equal(isRead(action), true);
  assert.equal(op(action), '');
  assert.equal(param(action, 'repo'), 'api');
  assert.equal(param(action, 'nope'), undefined);
  assert.equal(query(action, 'label'), 'a');
  assert.equal(header(action, 'CONTENT-type'), 'application/json');
  assert.equal(isRead(request({ action: { method: 'POST' } }).action), false);
});

const withBody = (body, truncated = false) => request({ action: { method: 'POST', body, body_truncated: truncated } }).action;

test('body text must be UTF-8', () => {
  assert.equal(bodyText(withBody('h\u00e9')), 'h\u00e9');
  // Rust's from_utf8 keeps a BOM, and so does this.
  assert.equal(bodyText(withBody(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]))), '\ufeffa');
  assert.throws(() => bodyText(withBody(new Uint8Array([0x61, 0xff]))), {
    name: 'PolicyError',
    message: 'body is not UTF-8: invalid utf-8 sequence of 1 bytes from index 1',
  });
  assert.throws(() => bodyText(withBody(new Uint8Array([0xe2, 0x82]))), {
    message: 'body is not UTF-8: incomplete utf-8 byte sequence from index 0',
  });
  assert.throws(() => bodyText(withBody(new Uint8Array([0xed, 0xa0, 0x80]))), {
    message: 'body is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0',
  });
});

test('json refuses duplicate keys at any depth', () => {
  assert.deepEqual(json(withBody('{"a": 1, "b": [1, {"c": null}]}')), { a: 1, b: [1, { c: null }] });
  assert.throws(() => json(withBody('{"diff": "x", "diff": "y"}')), {
    message: 'body is not valid JSON: duplicate key "diff" at line 1 column 20',
  });
  // Escapes are read before comparing.
  assert.throws(() => json(withBody('{"a": [{"k": 1, "\\u006b": 2}]}')), /duplicate key "k"/);
  assert.throws(() => json(withBody('{} trailing')), PolicyError);
});

test('json refuses what serde_json refuses', () => {
  const refused = (body, message) =>
    assert.throws(() => json(withBody(body)), { message: `body is not valid JSON: ${message}` });
  refused('["\\ud800"]', 'unexpected end of hex escape at line 1 column 9');
  refused('"\\udc00"', 'lone leading surrogate in hex escape at line 1 column 7');
  refused('[1.7976931348623158e308]', 'number out of range at line 1 column 23');
  refused('[1e400]', 'number out of range at line 1 column 6');
  refused('['.repeat(128) + ']'.repeat(128), 'recursion limit exceeded at line 1 column 128');
  assert.equal(json(withBody('['.repeat(127) + ']'.repeat(127))).length, 1);
  assert.equal(json(withBody('[1.7976931348623157e308, 0e999999, "\\ud83d\\ude00"]'))[2], '\u{1f600}');
  assert.throws(() => json(withBody(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))), PolicyError);
  assert.throws(() => json(withBody('{"a": 1}', true)), { message: 'body was truncated at the size limit' });
});

test('object keys in the Rust SDK order', () => {
  const value = json(withBody('{"b": 1, "10": 2, "9": 3, "\\uffff": 4, "\\ud83d\\ude00": 5, "a": 6}'));
  assert.deepEqual(sortedKeys(value), ['10', '9', 'a', 'b', '\uffff', '\u{1f600}']);
  assert.deepEqual(sortedKeys([1]), []);
  assert.equal(member(value, 'a'), 6);
  assert.equal(member(value, 'constructor'), undefined);
  assert.equal(member('text', 'length'), undefined);
});

// ------------------------------------------------------------------ paths

test('single star stays in segment', () => {
  assert.ok(globMatch('src/*.rs', 'src/lib.rs'));
  assert.ok(!globMatch('src/*.rs', 'src/a/lib.rs'));
  assert.ok(globMatch('*_test.*', 'parser_test.go'));
  assert.ok(!globMatch('*_test.*', 'parser.go'));
  assert.ok(globMatch('test_?.py', 'test_a.py'));
  // `?` is one UTF-8 byte, as in the Rust SDK.
  assert.ok(!globMatch('test_?.py', 'test_\u00e9.py'));
  assert.ok(globMatch('test_??.py', 'test_\u00e9.py'));
});

test('double star crosses segments', () => {
  assert.ok(globMatch('auth/**', 'auth/login.rs'));
  assert.ok(globMatch('auth/**', 'auth/a/b/c.rs'));
  assert.ok(globMatch('**/*_test.rs', 'a/b/x_test.rs'));
  assert.ok(globMatch('**/*_test.rs', 'x_test.rs'));
  assert.ok(!globMatch('auth/**', 'authz/login.rs'));
});

test('pathological pattern is fast', () => {
  assert.ok(!globMatch('*a'.repeat(50).replaceAll('**', '*b*'), `${'a'.repeat(200)}c`));
});

test('prefix is by segment', () => {
  assert.ok(hasPrefix('auth/login.rs', 'auth/'));
  assert.ok(hasPrefix('auth', 'auth'));
  assert.ok(!hasPrefix('authz.rs', 'auth'));
});

test('normalize refuses escapes', () => {
  assert.equal(normalize('./src//lib.rs'), 'src/lib.rs');
  assert.equal(normalize('src/../auth/x'), 'auth/x');
  assert.equal(normalize('../etc/passwd'), undefined);
  assert.equal(normalize('/etc/passwd'), undefined);
  assert.equal(normalize('a\\b'), undefined);
  assert.equal(normalize('.'), undefined);
});

// ------------------------------------------------------------------- diff

const MODIFY = `diff --git a/src/lib.rs b/src/lib.rs
index 83db48f..bf269f4 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@
 fn a() {}
-fn b() {}
+fn b() { 1 }
+--- not a header
 fn c() {}
`;

const summary = (diff) => diff.files.map((f) => [f.path(), f.status, f.added, f.removed]);

test('counts modified lines by hunk', () => {
  const d = Diff.parse(MODIFY);
  assert.deepEqual(summary(d), [['src/lib.rs', FileStatus.Modified, 2, 1]]);
  assert.equal(d.changedLines(), 3);
  // CRLF line ends read as LF ones.
  assert.deepEqual(summary(Diff.parse(MODIFY.replaceAll('\n', '\r\n'))), summary(d));
});

test('new, deleted and renamed files', () => {
  const d = Diff.parse(`diff --git a/tests/new_test.rs b/tests/new_test.rs
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/tests/new_test.rs
@@ -0,0 +1,2 @@
+#[test]
+fn t() {}
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/auth/x.rs b/src/x.rs
similarity index 100%
rename from auth/x.rs
rename to src/x.rs
`);
  assert.deepEqual(summary(d), [
    ['tests/new_test.rs', FileStatus.Added, 2, 0],
    ['old.rs', FileStatus.Deleted, 0, 1],
    ['src/x.rs', FileStatus.Renamed, 0, 0],
  ]);
  assert.deepEqual(d.files[2].paths(), ['auth/x.rs', 'src/x.rs']);
});

test('plain unified diff without git header', () => {
  const d = Diff.parse('--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1,2 @@\n x\n+z\n');
  assert.equal(d.files.length, 2);
  assert.equal(d.changedLines(), 3);
});

test('paths are read as git apply reads them', () => {
  // git strips any first component, not only `a/` and `b/`.
  assert.equal(Diff.parse('--- x/auth/login.rs\n+++ y/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n').files[0].path(), 'auth/login.rs');
  // A header naming one file and ---/+++ naming another is refused.
  assert.throws(
    () => Diff.parse('diff --git a/src/lib.rs b/src/lib.rs\n--- x/auth/login.rs\n+++ b/auth/login.rs\n@@ -1 +1 @@\n-a\n+b\n'),
    { name: 'DiffError', line: 2, message: 'diff line 2: `---`/`+++` names disagree with the `diff --git` header' },
  );
  // `copy to` creates a file; its source is a path it touches too.
  const f = Diff.parse(
    'diff --git a/auth/key.rs b/src/key.rs\nsimilarity index 100%\ncopy from auth/key.rs\ncopy to src/key.rs\n',
  ).files[0];
  assert.equal(f.status, FileStatus.Copied);
  assert.deepEqual(f.paths(), ['auth/key.rs', 'src/key.rs']);
  assert.equal(f.touchesExisting(), false);
  // Quoted names are refused rather than misread.
  assert.throws(() => Diff.parse('diff --git "a/auth/l\\303\\266.rs" "b/auth/l\\303\\266.rs"\n'), /quoted/);
  assert.throws(() => Diff.parse('--- "a/auth/x"\n+++ "b/auth/x"\n@@ -1 +1 @@\n-a\n+b\n'), /quoted/);
});

test('malformed diffs are errors', () => {
  assert.throws(() => Diff.parse('@@ -1 +1 @@\n-x\n+y\n'), DiffError);
  assert.throws(() => Diff.parse('--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n x\n'), {
    line: 5,
    reason: 'diff ends inside a hunk',
  });
  assert.throws(() => Diff.parse('just some prose'), { message: 'diff line 1: no file headers found' });
  assert.throws(() => Diff.parse('--- a/a\n@@ -1 +1 @@\n'), { line: 2, reason: 'expected a `+++ ` line after `--- `' });
  assert.throws(() => Diff.parse('--- a/a\n+++ b/a\n@@ -1 1 @@\n'), { reason: 'malformed hunk header' });
  assert.deepEqual(Diff.parse(' \n\u0085\n').files, []);
});

// --------------------------------------------------------- Rust semantics

test('lines split as Rust splits them', () => {
  assert.deepEqual(lines(''), []);
  assert.deepEqual(lines('\n'), ['']);
  assert.deepEqual(lines('a\n\n'), ['a', '']);
  assert.deepEqual(lines('a\r\nb\r'), ['a', 'b\r']);
  assert.deepEqual(lines('a\r\r\n'), ['a\r']);
});

test('whitespace is Rust whitespace', () => {
  assert.equal(trim('\u0085 a\u3000'), 'a');
  assert.equal(trim('\ufeffa'), '\ufeffa');
  assert.ok(isBlank(' \t\u2028'));
  assert.ok(!isBlank('\ufeff'));
});

test('rustDebug quotes like Rust {:?}', () => {
  assert.equal(rustDebug('plain'), '"plain"');
  assert.equal(rustDebug('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(rustDebug('\0\t\r\n\u0007\u007f'), '"\\0\\t\\r\\n\\u{7}\\u{7f}"');
  // Printable non-ASCII stays; combining marks and invisible formats do not.
  assert.equal(rustDebug("\u00e9'\u{1f600}"), "\"\u00e9'\u{1f600}\"");
  assert.equal(rustDebug('e\u0301\u200b\u00a0\u{e0001}'), '"e\\u{301}\\u{200b}\\u{a0}\\u{e0001}"');
});

// ---------------------------------------------------- imports and harness

/** Counts grants in state and allows at most two (the Rust SDK's TwoTickets). */
const twoTickets = {
  evaluate() {
    const n = state.incr('tickets', 1);
    log.info('ticket', { n });
    if (n > 2) return deny(`ticket ${n} over the limit of 2`);
    return allow({ ttlSeconds: 30 });
  },
};

test('writes commit only on allow', () => {
  const h = new Harness(twoTickets);
  const r = request({ action: { service: 'issues', method: 'POST', path: '/tickets' } });
  h.expectAllow(r);
  h.expectAllow(r);
  assert.equal(h.state('tickets'), '2');
  assert.match(h.expectDeny(r), /ticket 3/);
  // The denied evaluation's increment was discarded.
  assert.equal(h.state('tickets'), '2');
  assert.equal(h.logs.length, 3);
  assert.deepEqual(h.logs[2], { level: 'info', message: 'ticket', fields: [['n', '3']] });
});

test('starts from given state', () => {
  const h = new Harness(twoTickets, { state: { tickets: '2' } });
  h.expectDeny(request());
});

test('state reads its own writes and counts like the host', () => {
  const h = new Harness({
    evaluate() {
      state.set('word', 'x');
      const seen = [state.get('word'), state.getInt('word'), state.incr('word', 5n), state.get('missing')];
      state.set('big', '9223372036854775807');
      seen.push(state.incr('big', 1), state.getInt('big'));
      return deny(seen.map(String).join(' '));
    },
  });
  assert.equal(h.expectDeny(request()), 'x 0 5 undefined 9223372036854775807 9223372036854775807');
  assert.equal(h.state('word'), undefined);
});

test('request builder follows the host', () => {
  const r = request({
    principal: { agent: 'a', on_behalf_of: 'alice' },
    action: { service: 's', method: 'post', path: '/p', headers: { B: '1', A: '2' }, body_base64: 'aGk=' },
    usage: { requests_total: 3, grants: { 'x.y': 1 } },
    approval: { id: 'ap-1', approver: 'bob', approved_at_ms: 5 },
  });
  assert.equal(r.principal.role, 'test-role');
  assert.equal(r.principal.onBehalfOf, 'alice');
  assert.equal(r.action.method, 'POST');
  assert.deepEqual(r.action.headers, [['a', '2'], ['b', '1']]);
  assert.deepEqual([...r.action.body], [0x68, 0x69]);
  assert.equal(r.usage.requestsTotal, 3n);
  assert.equal(r.usage.windowSeconds, 60);
  assert.deepEqual(r.usage.grants, [['x.y', 1]]);
  assert.deepEqual(r.approval, { id: 'ap-1', approver: 'bob', approvedAtMs: 5n });
  assert.throws(() => request({ action: { body: 'x', body_base64: 'eA==' } }), /not both/);
});

// -------------------------------------------------------------------- MCP

function call({ method = 'tools/call', name = 'read_file', args = '{}', id = '7' } = {}) {
  return new Mcp({ method, name, arguments: args, id });
}

test('REST calls have no MCP call', () => {
  assert.equal(mcp(request({ action: { service: 'code', path: '/x' } }).action), undefined);
});

test('method, name, id and tool', () => {
  const c = call({ args: '{"path": "src/lib.rs"}' });
  assert.deepEqual([c.method, c.name, c.id, c.tool], ['tools/call', 'read_file', '7', 'read_file']);
  assert.ok(c.isToolCall('read_file'));
  assert.ok(!c.isToolCall('write_file'));
  // Only a `tools/call` names a tool: a prompt or a resource is no tool.
  const prompt = call({ method: 'prompts/get' });
  assert.equal(prompt.tool, undefined);
  assert.ok(!prompt.isToolCall('read_file'));
  assert.equal(call({ method: 'resources/read', name: 'repo://a' }).tool, undefined);
  const ping = new Mcp({ method: 'ping', arguments: '{}' });
  assert.deepEqual([ping.tool, ping.id], [undefined, undefined]);
  assert.ok(!ping.isToolCall(undefined));
});

test('arguments are parsed strictly', () => {
  const c = call({ args: '{"b": [1, {"c": null}], "a": "x"}' });
  assert.deepEqual(c.arguments, { a: 'x', b: [1, { c: null }] });
  assert.equal(c.argumentsText, '{"b": [1, {"c": null}], "a": "x"}');
  for (const bad of ['{"path": "src/a", "path": "/etc/passwd"}', '{"a": {"x": 1, "x": 2}}', '[1]', '"x"', 'null', '{', '', '{"n": NaN}', '{"n": 1e400}']) {
    assert.throws(
      () => call({ args: bad }).arguments,
      (e) => e instanceof McpError && e instanceof PolicyError && e.message === 'read_file: arguments are not a JSON object',
      bad,
    );
  }
  assert.deepEqual(c.args(), c.arguments);
  // Errors name what the call names, else its method.
  assert.throws(() => call({ method: 'resources/read', name: 'repo://a', args: '[]' }).args(), {
    message: 'repo://a: arguments are not a JSON object',
  });
  assert.throws(() => new Mcp({ method: 'initialize', arguments: '[]' }).args(), { message: 'initialize: arguments are not a JSON object' });
  // The parser's reason stays at hand for debugging.
  assert.throws(
    () => call({ args: '{"a": 1, "a": 2}' }).arguments,
    (e) => e.cause instanceof PolicyError && e.cause.message.startsWith('duplicate key "a"'),
  );
});

test('string arguments', () => {
  const c = call({ args: '{"owner": "acme", "n": 7, "none": null, "list": ["a"]}' });
  assert.equal(c.argStr('owner'), 'acme');
  assert.equal(c.arg('n'), 7);
  assert.equal(c.arg('none'), null);
  assert.equal(c.arg('missing'), undefined);
  // Own keys only: nothing from the prototype.
  assert.equal(c.arg('constructor'), undefined);
  for (const key of ['n', 'none', 'list', 'missing', 'toString']) {
    assert.throws(() => c.argStr(key), { name: 'McpError', message: `read_file: argument \`${key}\` must be a string` });
  }
  assert.throws(() => new Mcp({ method: 'ping', arguments: '{}' }).argStr('owner'), { message: 'ping: argument `owner` must be a string' });
  // Unreadable arguments are reported as such, whatever was asked.
  assert.throws(() => call({ args: '[]' }).argStr('owner'), { message: 'read_file: arguments are not a JSON object' });
  assert.throws(() => call({ args: '[]' }).arg('owner'), { message: 'read_file: arguments are not a JSON object' });
});

test('path arguments are normalised', () => {
  const c = call({
    args: JSON.stringify({ a: './src//lib.rs', b: 'src/../docs/x.md', c: '../x', d: '/etc/passwd', e: 'src\\x', f: '.', g: 1 }),
  });
  assert.equal(c.argPath('a'), 'src/lib.rs');
  assert.equal(c.argPath('b'), 'docs/x.md');
  assert.ok(hasPrefix(c.argPath('a'), 'src'));
  for (const key of ['c', 'd', 'e', 'f']) {
    assert.throws(
      () => c.argPath(key),
      (e) => e instanceof McpError && new RegExp(`^read_file: argument \`${key}\` is ".*", not a relative path inside its root`).test(e.message),
    );
  }
  assert.throws(() => c.argPath('g'), { message: 'read_file: argument `g` must be a string' });
});

test('glob arguments', () => {
  const c = call({ args: JSON.stringify({ path: 'src/a/lib.rs', sneaky: 'src/../.env', n: 1 }) });
  assert.equal(c.argMatching('path', ['docs/**', 'src/**']), 'src/a/lib.rs');
  assert.throws(() => c.argMatching('path', ['docs/**', '*.md']), {
    message: 'read_file: argument `path` = src/a/lib.rs matches none of docs/**, *.md',
  });
  assert.throws(() => c.argMatching('n', ['**']), { message: 'read_file: argument `n` must be a string' });
  // The value is matched as it is, `..` and all; `argPath` resolves it first.
  assert.equal(c.argMatching('sneaky', ['src/**']), 'src/../.env');
  assert.equal(c.argPath('sneaky'), '.env');
});

const plain = {
  describe: () => ({ name: 'plain', version: '1' }),
  evaluate: () => deny('no'),
  visible: hideAll,
};

const showsTools = {
  evaluate: () => allow({ ttlSeconds: 1 }),
  visible(principal, service, kind, names) {
    state.incr('listings');
    log.info('listing', { kind, n: names.length, seen: state.get('listings') });
    if (principal.agent !== 'test-agent' || service !== 'tools' || kind !== 'tools') return hideAll(principal, service, kind, names);
    return showOnly(names, new Set(['get_me', 'list_issues']));
  },
};

test('the default visible hides everything', () => {
  const h = new Harness(plain);
  assert.deepEqual(h.visible('tools', 'tools', ['a', 'b', 'c']), [false, false, false]);
  assert.deepEqual(h.visible('tools', 'prompts', []), []);
  assert.deepEqual(showOnly(['a', 'b'], ['b']), [false, true]);
});

test('visible answers one boolean per name', () => {
  const h = new Harness(showsTools);
  const names = ['get_me', 'merge', 'list_issues', 'get_me'];
  assert.deepEqual(h.visible('tools', 'tools', names), [true, false, true, true]);
  assert.deepEqual(h.visibleNames('tools', 'tools', names), ['get_me', 'list_issues', 'get_me']);
  assert.deepEqual(h.visible('tools', 'resource-templates', names), [false, false, false, false]);
  assert.deepEqual(h.visible('other', 'tools', names), [false, false, false, false]);
  assert.deepEqual(h.visible('tools', 'tools', names, { principal: { agent: 'intruder' } }), [false, false, false, false]);
  // Writes are discarded, reads see them within the call; logs are kept.
  assert.equal(h.state('listings'), undefined);
  assert.deepEqual(h.logs.slice(0, 2).map((r) => r.fields), [
    [['kind', 'tools'], ['n', '4'], ['seen', '1']],
    [['kind', 'tools'], ['n', '4'], ['seen', '1']],
  ]);
  assert.throws(() => h.visible('tools', 'tool', names), /not one of/);
  const wrong = new Harness({ visible: () => [true] });
  assert.throws(() => wrong.visible('tools', 'tools', ['a', 'b']), /one boolean per name/);
});

test('tool calls are built as the host builds them', () => {
  const r = toolCall('github', 'create_pull_request', { repo: 'shop', owner: 'acme', draft: true });
  const a = r.action;
  assert.deepEqual([a.service, a.operation, a.method, a.path], ['github', 'tools/call:create_pull_request', 'POST', '/mcp']);
  assert.equal(
    new TextDecoder().decode(a.body),
    '{"id":1,"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"draft":true,"owner":"acme","repo":"shop"},"name":"create_pull_request"}}',
  );
  assert.deepEqual(a.mcp, {
    method: 'tools/call',
    name: 'create_pull_request',
    arguments: '{"draft":true,"owner":"acme","repo":"shop"}',
    id: '1',
  });
  const c = mcp(a);
  assert.equal(c.tool, 'create_pull_request');
  assert.equal(c.argStr('owner'), 'acme');
  assert.deepEqual(mcp(toolCall('github', 'get_me').action).arguments, {});
  assert.equal(toolCall('github', 'get_me', {}, { id: 'a-1' }).action.mcp.id, '"a-1"');
  assert.equal(toolCall('github', 'get_me', {}, { principal: { agent: 'x' } }).principal.agent, 'x');
});

test('other MCP methods', () => {
  const init = mcpRequest('github', 'initialize', { arguments: { protocolVersion: '2025-06-18', _meta: { x: 1 } } });
  assert.equal(init.action.operation, 'initialize');
  assert.equal(init.action.mcp.name, undefined);
  assert.equal(init.action.mcp.id, '1');
  // The params are the arguments, but `_meta`, which stays in the body.
  assert.deepEqual(mcp(init.action).arguments, { protocolVersion: '2025-06-18' });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(init.action.body)).params._meta, { x: 1 });
  const notification = mcpRequest('github', 'notifications/initialized');
  assert.equal(notification.action.mcp.id, undefined);
  assert.equal(new TextDecoder().decode(notification.action.body), '{"jsonrpc":"2.0","method":"notifications/initialized"}');
  // A resource is named by its URI, which is among the arguments too.
  const read = mcpRequest('github', 'resources/read', { name: 'repo://acme/shop/README.md' });
  assert.equal(read.action.operation, 'resources/read:repo://acme/shop/README.md');
  assert.deepEqual(mcp(read.action).arguments, { uri: 'repo://acme/shop/README.md' });
  assert.equal(mcpRequest('github', 'ping', { id: null }).action.mcp.id, undefined);
  assert.throws(() => mcpRequest('github', 'tools/call'), /needs a name/);
  assert.throws(() => mcpRequest('github', 'ping', { name: 'x' }), /takes no name/);
  assert.throws(() => mcpRequest('github', 'ping', { id: 1.5 }), /integer or a string/);
});

test('arguments the host never sends', () => {
  const r = toolCall('github', 'list_issues', '[1, 2]');
  assert.equal(r.action.mcp.arguments, '[1, 2]');
  assert.deepEqual(JSON.parse(new TextDecoder().decode(r.action.body)).params, { name: 'list_issues', arguments: [1, 2] });
  assert.throws(() => mcp(r.action).arguments, McpError);
  const dup = toolCall('github', 'list_issues', '{"owner": "acme", "owner": "evil"}');
  assert.throws(() => mcp(dup.action).argStr('owner'), { message: 'list_issues: arguments are not a JSON object' });
});

test('MCP calls in the JSON form', () => {
  const r = request({
    action: { service: 'g', method: 'POST', path: '/mcp', mcp: { method: 'tools/call', name: 'get_me', arguments: { b: 1, a: 'é', 10: 0, 9: 0 }, id: 7 } },
  });
  // Keys sorted as serde_json sorts them (by code point, not integers first).
  assert.deepEqual(r.action.mcp, { method: 'tools/call', name: 'get_me', arguments: '{"10":0,"9":0,"a":"é","b":1}', id: '7' });
  const ping = request({ action: { mcp: { method: 'ping' } } });
  assert.deepEqual(ping.action.mcp, { method: 'ping', name: undefined, arguments: '{}', id: undefined });
  assert.throws(() => request({ action: { mcp: { name: 'x' } } }), /method/);
  assert.throws(() => request({ action: { mcp: { method: 'ping', args: {} } } }), /unknown field `args`/);
  assert.throws(() => request({ action: { mcp: { method: 'ping', arguments: [] } } }), /expected an object/);
});
