// Native tests of the JS pr-creator, ported from the Rust policy's tests:
//   node --import ../../../sdk/js/register.js --test
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Harness, request } from 'airlock-policy/testing';
import * as policy from './policy.js';

/** Diff text from its lines. */
const lines = (...ls) => ls.map((l) => `${l}\n`).join('');

/** A `git diff` section modifying `path`: `removed` lines out, `added` in. */
function modify(path, removed, added) {
  let d = lines(
    `diff --git a/${path} b/${path}`,
    'index 83db48f..bf269f4 100644',
    `--- a/${path}`,
    `+++ b/${path}`,
    `@@ -1,${removed + 1} +1,${added + 1} @@`,
    ' fn keep() {}',
  );
  for (let i = 0; i < removed; i++) d += `-let old_${i} = ${i};\n`;
  for (let i = 0; i < added; i++) d += `+let new_${i} = ${i};\n`;
  return d;
}

/** A `git diff` section adding the new file `path` with `count` lines. */
function add(path, count) {
  let d = lines(
    `diff --git a/${path} b/${path}`,
    'new file mode 100644',
    'index 0000000..3b18e51',
    '--- /dev/null',
    `+++ b/${path}`,
    `@@ -0,0 +1,${count} @@`,
  );
  for (let i = 0; i < count; i++) d += `+// line ${i}\n`;
  return d;
}

const remove = (path) =>
  lines(
    `diff --git a/${path} b/${path}`,
    'deleted file mode 100644',
    'index 3b18e51..0000000',
    `--- a/${path}`,
    '+++ /dev/null',
    '@@ -1 +0,0 @@',
    '-gone',
  );

const rename = (from, to) =>
  lines(`diff --git a/${from} b/${to}`, 'similarity index 100%', `rename from ${from}`, `rename to ${to}`);

const binary = (path) =>
  lines(
    `diff --git a/${path} b/${path}`,
    'index 1111111..2222222 100644',
    `Binary files a/${path} and b/${path} differ`,
  );

const pullWithBody = (body) =>
  request({
    action: {
      service: 'code',
      operation: 'pulls.create',
      method: 'POST',
      path: '/repos/acme/api/pulls',
      params: { owner: 'acme', repo: 'api' },
      body,
    },
  });

const pull = (diff) =>
  pullWithBody(JSON.stringify({ title: 'Fix pager', head: 'fix-pager', base: 'main', diff }));

const branch = (body) =>
  request({ action: { service: 'code', operation: 'branches.create', method: 'POST', path: '/repos/acme/api/branches', body } });

const branchNamed = (name) => branch(JSON.stringify({ name, from: 'main' }));

const denied = (diff) => new Harness(policy).expectDeny(pull(diff));

function assertIncludes(text, part) {
  assert.ok(text.includes(part), `${JSON.stringify(text)} does not contain ${JSON.stringify(part)}`);
}

test('describes itself', () => {
  assert.deepEqual(policy.describe(), { name: 'pr-creator', version: '0.1.0' });
});

test('opens a small pull request', () => {
  const h = new Harness(policy);
  const grant = h.expectAllow(pull(modify('src/lib.rs', 10, 10)));
  assert.deepEqual(grant.scopes, ['pulls:create']);
  assert.equal(grant.singleUse, true);
  assert.equal(grant.ttlSeconds, 120);
  assert.deepEqual(h.logs, [
    {
      level: 'info',
      message: 'pull request within limits',
      fields: [
        ['files', '1'],
        ['changed_lines', '20'],
      ],
    },
  ]);
});

test('reads anything in code', () => {
  const h = new Harness(policy);
  const grant = h.expectAllow(
    request({ action: { service: 'code', operation: 'contents.read', method: 'GET', path: '/repos/acme/api/contents/auth/login.rs' } }),
  );
  assert.deepEqual(grant.scopes, ['code:read']);
  assert.equal(grant.singleUse, false);
  const reason = h.expectDeny(request({ action: { service: 'analytics', method: 'GET', path: '/dashboards' } }));
  assertIncludes(reason, 'only use the code service');
});

test('creates feature branches only', () => {
  const h = new Harness(policy);
  const grant = h.expectAllow(branchNamed('fix-pager'));
  assert.deepEqual(grant.scopes, ['branches:create']);
  assert.equal(grant.singleUse, true);
  assert.equal(grant.ttlSeconds, 120);
  for (const name of ['main', 'master', 'Main', 'release', 'release/2.1', 'refs/heads/main']) {
    assertIncludes(h.expectDeny(branchNamed(name)), `pr-creator: branch name ${name} is protected`);
  }
  assertIncludes(h.expectDeny(branch('{"name": "fix-pager"}')), 'needs a non-empty "from" string');
});

test('other writes are denied', () => {
  const h = new Harness(policy);
  for (const [method, path, operation] of [
    ['PUT', '/repos/acme/api/pulls/7/merge', 'pulls.merge'],
    ['PUT', '/repos/acme/api/contents/src/lib.rs', 'contents.write'],
    ['PATCH', '/repos/acme/api/pulls/7', 'pulls.update'],
    // The right operation under the wrong method is still denied.
    ['PUT', '/repos/acme/api/pulls', 'pulls.create'],
  ]) {
    const reason = h.expectDeny(request({ action: { service: 'code', method, path, operation } }));
    assert.ok(reason.startsWith(`pr-creator: operation ${operation} (${method} ${path}) is not allowed`), reason);
  }
  const reason = h.expectDeny(request({ action: { service: 'code', method: 'DELETE', path: '/x' } }));
  assert.ok(reason.startsWith('pr-creator: operation none (DELETE /x) is not allowed'), reason);
});

test('forbidden directories', () => {
  assert.equal(denied(modify('auth/login.rs', 1, 1)), 'pr-creator: path auth/login.rs is forbidden (auth/**)');
  // The whole tree, any case, however the path is spelled.
  for (const [path, dir] of [
    ['auth/oauth/google.rs', 'auth'],
    ['Auth/login.rs', 'auth'],
    ['src/../auth/login.rs', 'auth'],
    ['./security/keys.rs', 'security'],
    ['.CI/deploy.yml', '.ci'],
    // `ſ` (long s) is `s` to a case-insensitive file system.
    ['\u017fecurity/keys.rs', 'security'],
  ]) {
    assertIncludes(denied(modify(path, 1, 1)), `path ${path} is forbidden (${dir}/**)`);
  }
  // Same name elsewhere is fine.
  new Harness(policy).expectAllow(pull(modify('src/auth/session.rs', 1, 1)));
  new Harness(policy).expectAllow(pull(modify('authz.rs', 1, 1)));
});

test('renames are checked on both sides', () => {
  assertIncludes(denied(rename('auth/tokens.rs', 'src/tokens.rs')), 'path auth/tokens.rs is forbidden (auth/**)');
  assertIncludes(denied(rename('src/tokens.rs', 'security/tokens.rs')), 'path security/tokens.rs is forbidden');
});

test('paths that do not normalise are denied', () => {
  for (const path of ['../outside.rs', 'src/../../x.rs', 'src\\lib.rs']) {
    assertIncludes(denied(modify(path, 1, 1)), 'does not normalise');
  }
  // Quoted as Rust's `{:?}` quotes it.
  assertIncludes(denied(add('src/bad\u0007name.rs', 1)), 'path "src/bad\\u{7}name.rs" contains quotes or control characters');
});

test('at most 500 changed lines', () => {
  const h = new Harness(policy);
  h.expectAllow(pull(modify('src/lib.rs', 250, 250)));
  assertIncludes(h.expectDeny(pull(modify('src/lib.rs', 250, 251))), 'the diff changes 501 lines (added + removed); at most 500');
  // Summed over files.
  assertIncludes(h.expectDeny(pull(modify('src/a.rs', 0, 300) + add('src/b.rs', 201))), 'changes 501 lines');
});

test('at most 10 files', () => {
  let ten = '';
  for (let i = 0; i < 10; i++) ten += modify(`src/m${i}.rs`, 1, 1);
  new Harness(policy).expectAllow(pull(ten));
  assertIncludes(denied(ten + add('src/m10.rs', 1)), 'the diff changes 11 files; at most 10');
});

test('existing tests are read-only', () => {
  for (const [diff, path] of [
    [modify('tests/api_test.rs', 1, 1), 'tests/api_test.rs'],
    [modify('src/parser_test.go', 1, 1), 'src/parser_test.go'],
    [modify('pkg/test_util.py', 1, 1), 'pkg/test_util.py'],
    [modify('crates/x/Tests/fixtures.json', 1, 1), 'crates/x/Tests/fixtures.json'],
    [remove('tests/api.rs'), 'tests/api.rs'],
    [rename('tests/old.rs', 'tests/new.rs'), 'tests/old.rs'],
    // Renaming a file into the tests counts too.
    [rename('src/helpers.rs', 'tests/helpers.rs'), 'tests/helpers.rs'],
  ]) {
    assertIncludes(denied(diff), `test file ${path} may not be modified, deleted or renamed`);
  }
});

test('new tests are welcome', () => {
  const diff = modify('src/lib.rs', 2, 3) + add('tests/pager_test.rs', 12) + add('src/test_pager.py', 4);
  assert.deepEqual(new Harness(policy).expectAllow(pull(diff)).scopes, ['pulls:create']);
});

test('body must be whole JSON with every field', () => {
  const h = new Harness(policy);
  assertIncludes(h.expectDeny(pullWithBody('diff --git a/x b/x')), 'pulls.create: body is not valid JSON');
  assertIncludes(h.expectDeny(pullWithBody('{"title": "x", "head": "h", "diff": ""}')), 'needs a non-empty "base" string');
  assertIncludes(
    h.expectDeny(pullWithBody('{"title": "x", "head": "h", "base": "main", "diff": 7}')),
    'needs a non-empty "diff" string',
  );
  const truncated = pull(modify('src/lib.rs', 1, 1));
  truncated.action.body = truncated.action.body.subarray(0, 60);
  truncated.action.bodyTruncated = true;
  assertIncludes(h.expectDeny(truncated), 'pulls.create: body was truncated');
  // A duplicate key is refused with serde_json's message.
  assert.equal(
    h.expectDeny(pullWithBody('{"title": "x", "title": "y"}')),
    'pr-creator: pulls.create: body is not valid JSON: duplicate key "title" at line 1 column 22',
  );
});

test('unknown body fields are denied', () => {
  const h = new Harness(policy);
  const diff = modify('src/lib.rs', 1, 1);
  assertIncludes(
    h.expectDeny(pullWithBody(JSON.stringify({ title: 't', head: 'h', base: 'main', diff, patch: 'x' }))),
    'pulls.create: unknown field "patch" in the JSON body',
  );
  // The first unknown field in the Rust SDK's (code point) order, not JS's
  // (integer-like keys first).
  assertIncludes(
    h.expectDeny(pullWithBody(JSON.stringify({ title: 't', head: 'h', base: 'main', diff, 9: 1, 10: 2 }))),
    'unknown field "10"',
  );
  // The description is a known field.
  h.expectAllow(pullWithBody(JSON.stringify({ title: 't', head: 'h', base: 'main', diff, body: 'Fixes #41' })));
  assertIncludes(h.expectDeny(branch('{"name": "fix", "from": "main", "force": true}')), 'unknown field "force"');
});

test('unreadable diffs are denied', () => {
  assertIncludes(denied('this is not a diff'), 'pulls.create: unreadable diff');
  // A hunk that claims more lines than it has.
  const short = modify('src/lib.rs', 3, 3).replace('@@ -1,4 +1,4 @@', '@@ -1,9 +1,9 @@');
  assertIncludes(denied(short), 'unreadable diff');
  assertIncludes(denied(binary('assets/logo.png')), 'binary file assets/logo.png');
});

// Names git reads differently from a parser that only strips `a/`.
test('git reads the same names', () => {
  // `---`/`+++` with another prefix: git applies this to auth/login.rs.
  const otherPrefix = modify('src/lib.rs', 1, 1)
    .replace('--- a/src/lib.rs', '--- x/auth/login.rs')
    .replace('+++ b/src/lib.rs', '+++ y/auth/login.rs');
  assertIncludes(denied(otherPrefix), 'disagree with the `diff --git` header');
  // No `diff --git` header at all.
  const plain = lines('--- x/auth/login.rs', '+++ y/auth/login.rs', '@@ -1 +1 @@', '-a', '+b');
  assertIncludes(denied(plain), 'must be in `git diff` form');
  // A second file smuggled in after the first one's hunks.
  const smuggled = modify('src/lib.rs', 1, 1) + lines('--- a/auth/login.rs', '+++ b/auth/login.rs', '@@ -1 +1 @@', '-a', '+b');
  assertIncludes(denied(smuggled), 'without a `diff --git` header');
  // Quoted names.
  const quoted = lines(
    'diff --git "a/auth/login.rs" "b/auth/login.rs"',
    '--- "a/auth/login.rs"',
    '+++ "b/auth/login.rs"',
    '@@ -1 +1 @@',
    '-a',
    '+b',
  );
  assertIncludes(denied(quoted), 'quoted file names are not supported');
  // A copy whose target disagrees with its header.
  const copy = lines('diff --git a/src/lib.rs b/src/lib.rs', 'similarity index 100%', 'copy from src/lib.rs', 'copy to auth/new.rs');
  assertIncludes(denied(copy), '"copy to auth/new.rs" does not match its header');
  // Preamble text before the first header.
  assertIncludes(denied(`Subject: fix\n\n${modify('src/lib.rs', 1, 1)}`), 'diff line 1: the diff must be in `git diff` form');
  // A CRLF diff reads as its LF twin.
  new Harness(policy).expectAllow(pull(modify('src/lib.rs', 1, 1).replaceAll('\n', '\r\n')));
});

test('only regular files', () => {
  const symlink = lines(
    'diff --git a/src/link b/src/link',
    'new file mode 120000',
    'index 0000000..1111111',
    '--- /dev/null',
    '+++ b/src/link',
    '@@ -0,0 +1 @@',
    '+../auth/login.rs',
    '\\ No newline at end of file',
  );
  assertIncludes(denied(symlink), 'src/link would get mode 120000; only regular files');
  assertIncludes(denied(modify('src/link', 1, 1).replace('100644', '120000')), 'mode 120000');
  // An executable script is a regular file.
  new Harness(policy).expectAllow(pull(add('scripts/gen.sh', 2).replace('100644', '100755')));
});

test('empty diff is denied', () => {
  for (const blank of ['', '\n\n']) {
    assertIncludes(denied(blank), 'needs a non-empty "diff" string');
  }
});
