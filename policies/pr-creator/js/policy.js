// `pr-creator`: reads code, creates feature branches and opens pull requests
// whose diff stays out of sensitive places. A port of ../src/lib.rs that
// gives the same verdicts, reasons and grants for every request.
//
// From the role definition: service `code`, actions `[read, create_branch,
// create_pr]`, forbidden paths `auth/*`, `.ci/*`, `security/*`, at most 500
// changed lines and 10 files per pull request, and existing tests are
// read-only (an agent that may edit the tests can make any change pass).
//
// The pull request's change arrives as a unified diff in the JSON body, and
// the code service applies it the way `git apply` does. So this policy reads
// the diff the way git will, and denies any diff whose file names git could
// read differently from what this policy checked.

import {
  Diff,
  PolicyError,
  allow,
  deny,
  globMatch,
  hasControl,
  hasPrefix,
  isBlank,
  isRead,
  json,
  log,
  member,
  normalize,
  op,
  rustDebug,
  sortedKeys,
  trim,
  trimStart,
} from 'airlock-policy';

// Shows no MCP listing: the SDK's default `visible` hides every item.
export { hideAll as visible } from 'airlock-policy';

const SERVICE = 'code';
const TTL_SECONDS = 120;

// Directories a pull request may not touch, anywhere below them. The role's
// `auth/*` is meant as the whole tree, not one level of it.
const FORBIDDEN_DIRS = ['auth', '.ci', 'security'];
const MAX_CHANGED_LINES = 500;
const MAX_FILES = 10;

// The fields of a `pulls.create` body; `body` is the description.
const PULL_FIELDS = ['title', 'head', 'base', 'diff', 'body'];

export function describe() {
  return { name: 'pr-creator', version: '0.1.0' };
}

export function evaluate(request) {
  const { action } = request;
  if (action.service !== SERVICE) {
    return deny(`pr-creator may only use the ${SERVICE} service, not ${action.service}`);
  }
  if (isRead(action)) {
    return allow({ scopes: ['code:read'], ttlSeconds: TTL_SECONDS });
  }
  try {
    const scope = writeScope(action);
    // Writes are single-use: one token, one branch or pull request.
    return allow({ scopes: [scope], ttlSeconds: TTL_SECONDS, singleUse: true });
  } catch (e) {
    if (e instanceof PolicyError) return deny(`pr-creator: ${e.message}`);
    throw e;
  }
}

// The scope a write may have; throws PolicyError with the reason otherwise.
function writeScope(action) {
  const operation = op(action);
  if (action.method === 'POST' && operation === 'branches.create') {
    createBranch(action);
    return 'branches:create';
  }
  if (action.method === 'POST' && operation === 'pulls.create') {
    createPull(action);
    return 'pulls:create';
  }
  throw new PolicyError(
    `operation ${operation || 'none'} (${action.method} ${action.path}) is not allowed; ` +
      'pr-creator may only read, create branches (branches.create) and open pull requests (pulls.create)',
  );
}

// The body as JSON, its failure prefixed with the operation.
function body(action, operation) {
  try {
    return json(action);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyError(`${operation}: ${e.message}`);
    throw e;
  }
}

// `branches.create`: `{"name": ..., "from": ...}`, never a protected name.
function createBranch(action) {
  const value = body(action, 'branches.create');
  onlyFields(value, ['name', 'from'], 'branches.create');
  const name = required(value, 'branches.create', 'name');
  required(value, 'branches.create', 'from');
  // Case-insensitive: on a case-insensitive file system `Main` and `main`
  // are the same ref file.
  const lower = name.toLowerCase();
  const short = lower.startsWith('refs/heads/') ? lower.slice('refs/heads/'.length) : lower;
  if (short === 'main' || short === 'master' || short.startsWith('release')) {
    throw new PolicyError(`branch name ${name} is protected (main, master, release*); use a feature branch`);
  }
}

// `pulls.create`: `{"title", "head", "base", "diff"}` and an optional
// `body` (the description); the diff is checked file by file.
function createPull(action) {
  const value = body(action, 'pulls.create');
  onlyFields(value, PULL_FIELDS, 'pulls.create');
  required(value, 'pulls.create', 'title');
  required(value, 'pulls.create', 'head');
  required(value, 'pulls.create', 'base');
  const text = required(value, 'pulls.create', 'diff');
  let diff;
  try {
    diff = Diff.parse(text);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyError(`pulls.create: unreadable diff: ${e.message}`);
    throw e;
  }
  checkGitNames(text, diff);
  // Blank diffs are refused above and the parser refuses text without a
  // file; this stays in case either changes.
  if (diff.files.length === 0) throw new PolicyError('pulls.create: the diff changes no files');

  // Every path the change touches: a rename out of `auth/` touches `auth/`.
  // Each distinct path is checked once (a modified file names its path
  // twice) and its key kept for the test rule below, so every path there
  // has one. (Indexed loops: `for...of` costs the interpreter more fuel.)
  const keys = new Map();
  for (let i = 0; i < diff.files.length; i++) {
    const paths = diff.files[i].paths();
    for (let j = 0; j < paths.length; j++) {
      const path = paths[j];
      if (keys.has(path)) continue;
      const key = pathKey(path);
      keys.set(path, key);
      const dir = FORBIDDEN_DIRS.find((d) => hasPrefix(key, d));
      if (dir !== undefined) throw new PolicyError(`path ${path} is forbidden (${dir}/**)`);
    }
  }
  for (let i = 0; i < diff.files.length; i++) {
    const file = diff.files[i];
    // New tests are welcome; changing, deleting or renaming an existing
    // one is how an agent makes a failing change pass.
    const test = file.touchesExisting() ? file.paths().find((p) => isTest(keys.get(p))) : undefined;
    if (test !== undefined) {
      throw new PolicyError(
        `test file ${test} may not be modified, deleted or renamed ` +
          '(existing tests are read-only; adding new test files is allowed)',
      );
    }
    // The line limit cannot measure a binary change.
    if (file.binary) throw new PolicyError(`binary file ${file.path()} may not be changed`);
  }
  if (diff.files.length > MAX_FILES) {
    throw new PolicyError(
      `the diff changes ${diff.files.length} files; at most ${MAX_FILES} are allowed (max-files)`,
    );
  }
  const changed = diff.changedLines();
  if (changed > MAX_CHANGED_LINES) {
    throw new PolicyError(
      `the diff changes ${changed} lines (added + removed); at most ${MAX_CHANGED_LINES} ` +
        'are allowed (max-changed-lines)',
    );
  }
  log.info('pull request within limits', { files: diff.files.length, changed_lines: changed });
}

// Refuse fields this policy does not check: the service might act on them
// (a `patch` next to the `diff`, say) in ways no rule here has looked at.
// Keys go in the Rust SDK's order, so the reason names the same one.
function onlyFields(value, known, operation) {
  const key = sortedKeys(value).find((k) => !known.includes(k));
  if (key !== undefined) {
    throw new PolicyError(
      `${operation}: unknown field ${rustDebug(key)} in the JSON body (known: ${known.join(', ')})`,
    );
  }
}

// A JSON body field that must be a non-empty string.
function required(value, operation, field) {
  const text = member(value, field);
  if (typeof text !== 'string' || isBlank(text)) {
    throw new PolicyError(`${operation}: the JSON body needs a non-empty "${field}" string`);
  }
  return text;
}

// The form of `path` that rules compare: normalised and case-folded (the
// repository may be checked out on a case-insensitive file system, where
// `Auth/login.rs` is `auth/login.rs`). A path that does not normalise is
// one this policy cannot place, so it is an error, and so is one with
// quotes or control characters, which git reads differently.
function pathKey(path) {
  if (hasControl(path) || path.includes('"')) {
    throw new PolicyError(`path ${rustDebug(path)} contains quotes or control characters`);
  }
  const key = normalize(path);
  if (key === undefined) {
    throw new PolicyError(
      `path ${path} does not normalise (absolute, climbs out of the repository, or has a backslash)`,
    );
  }
  // Upper- then lower-casing also folds `ſ` onto `s`, as case-insensitive
  // file systems do: `ſecurity/` would otherwise slip past `security/`.
  return key.toUpperCase().toLowerCase();
}

// A test file: anything in a `tests` directory, `*_test.*` or `test_*.*`.
function isTest(key) {
  const segments = key.split('/');
  const name = segments[segments.length - 1];
  return segments.includes('tests') || globMatch('*_test.*', name) || globMatch('test_*.*', name);
}

// Make sure git will read the same file names the rules above check.
//
// `git apply` takes a file's names from its `diff --git a/OLD b/NEW` header
// and from `rename`/`copy` lines, and strips the first directory from the
// `---`/`+++` names whatever it is. The SDK's parser reads names the same
// way and refuses `---`/`+++` names that disagree with the header; this
// policy asks for more on top, to leave no room between two readings: every
// file must have a plain `diff --git a/OLD b/NEW` header, and every
// `rename`/`copy` name must agree with it. Only regular files may be
// written: a symbolic link could point into a forbidden directory.
//
// Runs after `Diff.parse` succeeded: hunk lines then always start with
// ` `, `+`, `-` or `\`, so the metadata lines matched here cannot be hunk
// content. The lines are found with one regular expression over the text
// rather than a loop over every line, which would cost the interpreter far
// more fuel on a long diff; the result is the same as the Rust policy's
// line-by-line check.
function checkGitNames(text, diff) {
  // Before the first header only blank lines may come, so the first line
  // with anything on it must be a header.
  const lead = text.length - trimStart(text).length;
  if (lead < text.length) {
    const start = text.lastIndexOf('\n', lead) + 1;
    if (!text.startsWith('diff --git ', start)) {
      throw new PolicyError(
        `diff line ${lineNumber(text, start)}: the diff must be in \`git diff\` form, starting with \`diff --git\``,
      );
    }
  }
  const headers = [];
  GIT_LINE.lastIndex = 0;
  for (let m; (m = GIT_LINE.exec(text)); ) {
    const start = m.index;
    // `^` also matches after `\r`, U+2028 and U+2029; lines end at `\n` only.
    if (start > 0 && text[start - 1] !== '\n') continue;
    const line = lineAt(text, start);
    const at = () => lineNumber(text, start);
    if (line.startsWith('diff --git ')) {
      const names = gitHeader(line.slice('diff --git '.length));
      if (names === undefined) {
        throw new PolicyError(`diff line ${at()}: expected \`diff --git a/PATH b/PATH\`, got ${rustDebug(line)}`);
      }
      headers.push(names);
      continue;
    }
    const { old, neu } = headers[headers.length - 1];
    const expected = line.startsWith('rename from ') || line.startsWith('copy from ') ? old : neu;
    const name = RENAME_OR_COPY.exec(line);
    if (name !== null && line.slice(name[0].length) !== expected) {
      throw new PolicyError(`diff line ${at()}: ${rustDebug(line)} does not match its header \`a/${old} b/${neu}\``);
    }
    const mode = fileMode(line);
    if (mode !== undefined && mode !== '100644' && mode !== '100755') {
      throw new PolicyError(`${neu} would get mode ${mode}; only regular files may be changed`);
    }
  }
  // The parser starts a file at every header, so as many files as headers
  // means no file came in without one, and the two lists line up.
  if (headers.length !== diff.files.length) {
    throw new PolicyError('the diff has a file section without a `diff --git` header; send `git diff` output');
  }
  diff.files.forEach((file, i) => {
    const { old, neu } = headers[i];
    const agrees =
      (file.oldPath === undefined || file.oldPath === old) && (file.newPath === undefined || file.newPath === neu);
    if (!agrees) {
      throw new PolicyError(`the \`---\`/\`+++\` names of ${file.path()} do not match its header \`a/${old} b/${neu}\``);
    }
  });
}

// The lines checkGitNames reads.
const GIT_LINE = /^(?:diff --git |rename from |rename to |copy from |copy to |new file mode |new mode |index )/gm;
const RENAME_OR_COPY = /^(?:rename|copy) (?:from|to) /;

// The line that starts at `start`, as Rust's `lines()` gives it.
function lineAt(text, start) {
  const end = text.indexOf('\n', start);
  if (end === -1) return text.slice(start);
  return text.slice(start, text[end - 1] === '\r' ? end - 1 : end);
}

// The 1-based number of the line that starts at `start`.
function lineNumber(text, start) {
  return text.slice(0, start).split('\n').length;
}

// The mode a metadata line gives the file, trimmed: from `new file mode M`,
// `new mode M` or `index A..B M`.
function fileMode(line) {
  if (line.startsWith('new file mode ')) return trim(line.slice('new file mode '.length));
  if (line.startsWith('new mode ')) return trim(line.slice('new mode '.length));
  if (line.startsWith('index ')) {
    const mode = line.slice('index '.length).split(' ')[1];
    return mode === undefined ? undefined : trim(mode);
  }
  return undefined;
}

// `a/OLD b/NEW` into `{ old, neu }`; undefined for quoted names, a missing
// prefix, or names that could be split in more than one place.
function gitHeader(names) {
  if (!names.startsWith('a/')) return undefined;
  const rest = names.slice(2);
  const split = rest.indexOf(' b/');
  if (split === -1) return undefined;
  const neu = rest.slice(split + 3);
  return neu.includes(' b/') ? undefined : { old: rest.slice(0, split), neu };
}
