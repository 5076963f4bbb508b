// Write Airlock policies in JavaScript: the JS counterpart of the Rust SDK
// (`sdk/src`), with the same helpers and the same messages, so that a policy
// ported from Rust gives the same verdicts byte for byte.
//
// This one module is copied into every component ComponentizeJS builds and
// runs inside StarlingMonkey, so it uses no Node API. StarlingMonkey has no
// ICU: regular expressions cannot use `\p{...}`, hence the explicit
// character tables below.
//
// Policies run in StarlingMonkey's interpreter under a fuel budget, where a
// `for...of` loop or a spread costs some 50 000 fuel (the iterator
// protocol), a plain call about 2 000, and a native search (indexOf, split,
// a regular expression) little per character. So the code here loops with
// indexes and searches text with native methods rather than character by
// character; the same pays off in policies.
//
// Values use the shapes ComponentizeJS gives WIT types: records with
// camelCase fields, variants as `{ tag, val }`, enums as their WIT names
// (`'tools'`, `'resource-templates'`), `option<T>` as a value or
// `undefined`, `u64`/`s64` as BigInt, `list<u8>` as a Uint8Array and
// `list<tuple<string, string>>` as an array of `[name, value]` pairs.
//
// A policy module exports the world's functions: `evaluate`, `describe`
// and `visible` (contract 0.2.0). One that shows no MCP listing re-exports
// the default, which hides everything:
//
//   export { hideAll as visible } from 'airlock-policy';

import * as hostState from 'airlock:policy/state@0.2.0';
import { log as hostLog } from 'airlock:policy/log@0.2.0';

// ---------------------------------------------------------------------------
// Verdicts

/**
 * Let the request through and mint a token as described.
 * `maxResponseBytes` may be a number or a BigInt; `claims` maps claim names
 * to JSON values (serialised here, as the WIT `claims` field wants text).
 */
export function allow({ scopes = [], ttlSeconds, singleUse = false, maxResponseBytes, claims = {} }) {
  return {
    tag: 'allow',
    val: {
      scopes: [...scopes],
      ttlSeconds,
      singleUse,
      maxResponseBytes: maxResponseBytes === undefined ? undefined : BigInt(maxResponseBytes),
      claims: Object.entries(claims).map(([name, value]) => [name, JSON.stringify(value)]),
    },
  };
}

/** Refuse; the reason is shown to the agent and audited. */
export function deny(reason) {
  return { tag: 'deny', val: String(reason) };
}

/** Refuse for now and ask a human; the reason is shown to the approver. */
export function escalate(reason) {
  return { tag: 'escalate', val: String(reason) };
}

// ---------------------------------------------------------------------------
// MCP listings (the world's `visible` export)

/**
 * The default `visible`: hides every item of every MCP listing. A policy
 * that shows none re-exports it, `export { hideAll as visible } from
 * 'airlock-policy';`, since the world requires the export.
 */
export function hideAll(principal, service, kind, names) {
  return names.map(() => false);
}

/** One boolean per name: whether it is in `allowed` (an array or a Set), compared exactly. */
export function showOnly(names, allowed) {
  let set = allowed;
  if (!(allowed instanceof Set)) {
    // An indexed loop: `new Set(array)` walks the iterator protocol, which
    // costs far more fuel in the interpreter.
    set = new Set();
    for (let i = 0; i < allowed.length; i++) set.add(allowed[i]);
  }
  return names.map((name) => set.has(name));
}

/**
 * A refusal a helper reports: an unreadable body or diff. Policies catch
 * this class (and only this one) to turn it into a deny reason; any other
 * exception is a bug and should trap, which the host also denies.
 */
export class PolicyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PolicyError';
  }
}

// ---------------------------------------------------------------------------
// The request's action (the Rust SDK's `Action` accessors)

/** GET and HEAD are reads. */
export function isRead(action) {
  return action.method === 'GET' || action.method === 'HEAD';
}

/** The operation, or `''` when the request matched no route. */
export function op(action) {
  return action.operation ?? '';
}

function lookup(pairs, name) {
  return pairs.find(([key]) => key === name)?.[1];
}

/** A route parameter, e.g. `param(action, 'repo')`; `undefined` if absent. */
export function param(action, name) {
  return lookup(action.params, name);
}

/** The first value of a query parameter; `undefined` if absent. */
export function query(action, name) {
  return lookup(action.query, name);
}

/** A header, by ASCII-case-insensitive name; `undefined` if absent. */
export function header(action, name) {
  const wanted = asciiLower(name);
  return action.headers.find(([key]) => asciiLower(key) === wanted)?.[1];
}

function asciiLower(s) {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

// `ignoreBOM` keeps a leading BOM in the text, as Rust's `from_utf8` does.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** The body as UTF-8 text; throws PolicyError when it is not UTF-8. */
export function bodyText(action) {
  try {
    return utf8.decode(action.body);
  } catch {
    throw new PolicyError(`body is not UTF-8: ${utf8Error(action.body)}`);
  }
}

// Rust's `Utf8Error` display, to keep `bodyText`'s message the Rust SDK's.
// Only runs once decoding has failed, so its byte loop costs nothing on the
// normal path.
function utf8Error(bytes) {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const width = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (width === 0) return `invalid utf-8 sequence of 1 bytes from index ${i}`;
    for (let k = 1; k < width; k++) {
      if (i + k >= bytes.length) return `incomplete utf-8 byte sequence from index ${i}`;
      const c = bytes[i + k];
      // The second byte's range depends on the first (no overlongs, no surrogates).
      const [lo, hi] =
        k > 1 ? [0x80, 0xbf]
        : b === 0xe0 ? [0xa0, 0xbf]
        : b === 0xed ? [0x80, 0x9f]
        : b === 0xf0 ? [0x90, 0xbf]
        : b === 0xf4 ? [0x80, 0x8f]
        : [0x80, 0xbf];
      if (c < lo || c > hi) return `invalid utf-8 sequence of ${k} bytes from index ${i}`;
    }
    i += width;
  }
  return 'invalid utf-8';
}

/**
 * The body parsed as JSON. A truncated body, or one with a duplicate key
 * (which servers resolve differently), is an error: a policy must not decide
 * on half a document or on a guess. Throws PolicyError with the Rust SDK's
 * message prefixes.
 */
export function json(action) {
  if (action.bodyTruncated) {
    throw new PolicyError('body was truncated at the size limit');
  }
  try {
    return parseStrict(action.body);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyError(`body is not valid JSON: ${e.message}`);
    throw e;
  }
}

/**
 * The member `key` of a parsed JSON object; `undefined` when it has no such
 * key or is not an object (the Rust SDK's `Value::get`). Unlike `value[key]`
 * it never reads the prototype (`constructor`, `__proto__`...).
 */
export function member(value, key) {
  return isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The keys of a parsed JSON object in the order the Rust SDK iterates them
 * (by code point); `[]` for anything that is not an object. JS objects list
 * integer-like keys first, so use this wherever the order shows, e.g. when a
 * reason names the first unexpected key.
 */
export function sortedKeys(value) {
  if (!isObject(value)) return [];
  return Object.keys(value).sort(compareCodePoints);
}

const SURROGATE = /[\ud800-\udfff]/;

function compareCodePoints(a, b) {
  // Without surrogates UTF-16 order is code point order, and the native
  // comparison saves a loop over a long common prefix.
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // UTF-16 puts surrogates (astral code points) below U+E000..U+FFFF;
      // move them above to compare by code point, as UTF-8 bytes do.
      if (x >= 0xd800 && y >= 0xd800) {
        x += x >= 0xe000 ? -0x800 : 0x2000;
        y += y >= 0xe000 ? -0x800 : 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------
// Strict JSON, accepting exactly what the Rust SDK's serde_json reader does.
//
// JSON.parse does the parsing: it is native, and an interpreted parser would
// burn the policy's fuel. It agrees with serde_json on syntax but accepts four
// things serde_json refuses, which a scan of the text then looks for:
// duplicate keys (JSON.parse keeps the last), escapes that leave a lone
// surrogate, nesting deeper than 127, and numbers serde_json finds out of
// range. The scan only runs on text JSON.parse accepted, which keeps it simple.

const MAX_DEPTH = 127;
// What the scan stops at: string literals are skipped whole with indexOf,
// and everything else between these characters is `:`, whitespace, numbers
// and literals. Scanning with native searches, not a loop per character,
// keeps the fuel it costs small.
const STRUCTURE = /["{}[\],]/g;
// Only a number with an exponent or 300 digits can be out of range.
const MAYBE_HUGE = /[eE]|\d{300}/;
const NUMBER = /-?\d[\d.eE+-]*/g;
const JSON_WS = /[ \t\n\r]*/y;
const STRING_REST = /(?:[^"\\]+|\\.)*"/y;
const HEX_ESCAPE = /\\(?:u([0-9a-fA-F]{4})|.)/g;

function parseStrict(bytes) {
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new PolicyError('invalid unicode code point');
  }
  return parseStrictText(text);
}

function parseStrictText(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // "JSON.parse: <what> at line L column C of the JSON data" reads like
    // serde_json's "<what> at line L column C" once trimmed.
    throw new PolicyError(String(e.message).replace(/^JSON\.parse: /, '').replace(/ of the JSON data$/, ''));
  }
  scan(text);
  return value;
}

function scan(text) {
  // One frame per open container: a Set of keys for an object, null for an array.
  const frames = [];
  let expectKey = false;
  // Start of the text between the last structural character and the next.
  let from = 0;
  STRUCTURE.lastIndex = 0;
  for (let m; (m = STRUCTURE.exec(text)); ) {
    const at = m.index;
    checkNumbers(text, from, at);
    const c = text[at];
    const frame = frames[frames.length - 1];
    if (c === '"') {
      const end = stringEnd(text, at);
      const token = text.slice(at, end);
      const decoded = token.includes('\\u') ? JSON.parse(token) : null;
      if (decoded !== null && !decoded.isWellFormed()) throw surrogateError(text, at, token);
      if (frame && expectKey) {
        const key = decoded ?? (token.includes('\\') ? JSON.parse(token) : token.slice(1, -1));
        if (frame.has(key)) {
          // serde_json reports it after the whitespace that follows the key.
          JSON_WS.lastIndex = end;
          JSON_WS.test(text);
          throw jsonError(`duplicate key ${rustDebug(key)}`, text, JSON_WS.lastIndex);
        }
        frame.add(key);
        expectKey = false;
      }
      STRUCTURE.lastIndex = end;
      from = end;
      continue;
    }
    if (c === '{' || c === '[') {
      if (frames.length === MAX_DEPTH) throw jsonError('recursion limit exceeded', text, at + 1);
      frames.push(c === '{' ? new Set() : null);
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      frames.pop();
      expectKey = false;
    } else if (frame) {
      // A `,` in an object: a key comes next.
      expectKey = true;
    }
    from = at + 1;
  }
  checkNumbers(text, from, text.length);
}

// The index just past the string literal that opens at `open`. The first
// quote ends it unless a backslash comes right before; only then does the
// literal need reading escape by escape.
function stringEnd(text, open) {
  const close = text.indexOf('"', open + 1);
  if (text[close - 1] !== '\\') return close + 1;
  STRING_REST.lastIndex = open + 1;
  STRING_REST.exec(text);
  return STRING_REST.lastIndex;
}

// Throws for a number in `text[from, to)` that serde_json finds out of range.
function checkNumbers(text, from, to) {
  if (to === from) return;
  const gap = text.slice(from, to);
  if (!MAYBE_HUGE.test(gap)) return;
  NUMBER.lastIndex = 0;
  for (let m; (m = NUMBER.exec(gap)); ) {
    const at = numberOutOfRange(m[0]);
    if (at >= 0) throw jsonError('number out of range', text, from + m.index + at + 1);
  }
}

// The first escape in string literal `token` (at `start` in `text`) that
// leaves a lone surrogate, reported with serde_json's message and position.
function surrogateError(text, start, token) {
  const at = (i) => start + i;
  HEX_ESCAPE.lastIndex = 0;
  for (let m; (m = HEX_ESCAPE.exec(token)); ) {
    if (m[1] === undefined) continue;
    const n = parseInt(m[1], 16);
    const after = m.index + 6;
    // serde_json names a lone trailing surrogate a "leading" one too.
    if (n >= 0xdc00 && n <= 0xdfff) return jsonError('lone leading surrogate in hex escape', text, at(after));
    if (n < 0xd800 || n > 0xdbff) continue;
    if (token[after] !== '\\') return jsonError('unexpected end of hex escape', text, at(after + 1));
    if (token[after + 1] !== 'u') return jsonError('unexpected end of hex escape', text, at(after + 2));
    const n2 = parseInt(token.slice(after + 2, after + 6), 16);
    if (n2 < 0xdc00 || n2 > 0xdfff) return jsonError('lone leading surrogate in hex escape', text, at(after + 6));
    HEX_ESCAPE.lastIndex = after + 6;
  }
  throw new Error('unreachable: no lone surrogate escape');
}

// serde_json's message suffix: 1-based line, and the column in bytes of the
// last byte it read (`end` is the UTF-16 index just past it).
function jsonError(what, text, end) {
  const lineStart = text.lastIndexOf('\n', end - 1) + 1;
  const line = text.slice(0, lineStart).split('\n').length;
  const column = utf8Length(text.slice(lineStart, end));
  return new PolicyError(`${what} at line ${line} column ${column}`);
}

function utf8Length(s) {
  return utf8Encoder.encode(s).length;
}

const U64_MAX = 0xffffffffffffffffn;
const I32_MAX = 0x7fffffff;
const I32_MAX_DIV10 = 214748364;
const I32_MAX_MOD10 = 7;
const POW10 = Array.from({ length: 309 }, (_, k) => Number(`1e${k}`));

// Whether serde_json (without `float_roundtrip`) refuses this number literal
// as out of range: the index in `literal` where it gives up, or -1. A port
// of its parse_integer/parse_decimal/parse_exponent/f64_from_parts, because
// its float arithmetic is not correctly rounded, so near f64::MAX it
// overflows where JS does not.
function numberOutOfRange(literal) {
  // serde_json's result is within a few units in the last place of the
  // true value, so only a number near f64::MAX or beyond needs the port.
  if (Math.abs(Number(literal)) < 1e308) return -1;
  const digit = (i) => literal.charCodeAt(i) - 48;
  const isDigit = (i) => i < literal.length && digit(i) >= 0 && digit(i) <= 9;
  const u64Overflows = (sig, d) => sig >= U64_MAX / 10n && (sig > U64_MAX / 10n || BigInt(d) > U64_MAX % 10n);
  let i = literal[0] === '-' ? 1 : 0;
  let significand = 0n;
  let exponent = 0;
  // Integer digits: once the significand would overflow u64, the rest only
  // scale it.
  while (isDigit(i)) {
    if (u64Overflows(significand, digit(i))) {
      for (; isDigit(i); i++) exponent++;
      break;
    }
    significand = significand * 10n + BigInt(digit(i++));
  }
  if (literal[i] === '.') {
    i++;
    while (isDigit(i)) {
      if (u64Overflows(significand, digit(i))) {
        while (isDigit(i)) i++;
        break;
      }
      significand = significand * 10n + BigInt(digit(i++));
      exponent--;
    }
  }
  if (literal[i] === 'e' || literal[i] === 'E') {
    i++;
    const positiveExp = literal[i] !== '-';
    if (literal[i] === '+' || literal[i] === '-') i++;
    let exp = digit(i++);
    for (; isDigit(i); i++) {
      if (exp >= I32_MAX_DIV10 && (exp > I32_MAX_DIV10 || digit(i) > I32_MAX_MOD10)) {
        return significand !== 0n && positiveExp ? i : -1;
      }
      exp = exp * 10 + digit(i);
    }
    // i32 saturating arithmetic, as serde_json's.
    exponent = Math.max(-I32_MAX - 1, Math.min(I32_MAX, positiveExp ? exponent + exp : exponent - exp));
  }
  let f = Number(significand);
  for (;;) {
    const pow = POW10[Math.abs(exponent)];
    if (pow !== undefined) {
      if (exponent >= 0) {
        f *= pow;
        if (!Number.isFinite(f)) return literal.length - 1;
      }
      return -1;
    }
    if (f === 0) return -1;
    if (exponent >= 0) return literal.length - 1;
    f /= 1e308;
    exponent += 308;
  }
}

// ---------------------------------------------------------------------------
// Rust's text semantics, for exact ports of Rust policies

// Rust's `char::is_whitespace` (Unicode White_Space), which `trim` and
// `split_whitespace` use; JS's `trim` differs (U+FEFF yes, U+0085 no).
// The helpers first look at the end characters, as most text has no
// whitespace to trim and a regular expression costs more fuel.
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE = new RegExp(`[${WS}]`);
const BLANK = new RegExp(`^[${WS}]*$`);
const TRIM_START = new RegExp(`^[${WS}]+`);
const TRIM_END = new RegExp(`[${WS}]+$`);

// Whether UTF-16 code unit `c` is Rust whitespace (no surrogate is).
function isWhitespace(c) {
  return c <= 32 ? c === 32 || (c >= 9 && c <= 13) : c >= 0x85 && WHITESPACE.test(String.fromCharCode(c));
}

/** Rust's `s.trim()`. */
export function trim(s) {
  return trimEnd(trimStart(s));
}

/** Rust's `s.trim().is_empty()`. */
export function isBlank(s) {
  return s === '' || (isWhitespace(s.charCodeAt(0)) && BLANK.test(s));
}

/** Rust's `s.trim_start()`. */
export function trimStart(s) {
  return s !== '' && isWhitespace(s.charCodeAt(0)) ? s.replace(TRIM_START, '') : s;
}

/** Rust's `s.trim_end()`. */
export function trimEnd(s) {
  return s !== '' && isWhitespace(s.charCodeAt(s.length - 1)) ? s.replace(TRIM_END, '') : s;
}

/**
 * Rust's `s.lines()`: split at `\n`, drop one `\r` before it, and no empty
 * last line for a trailing newline.
 */
export function lines(s) {
  const out = s.split('\n');
  const last = out.pop();
  // Most text has no `\r`; skipping the per-line pass then saves fuel.
  if (s.includes('\r')) {
    for (let i = 0; i < out.length; i++) {
      if (out[i].endsWith('\r')) out[i] = out[i].slice(0, -1);
    }
  }
  if (last !== '') out.push(last);
  return out;
}

/** Rust's `char::is_control` for any character of `s` (Unicode Cc). */
export function hasControl(s) {
  return /[\u0000-\u001f\u007f-\u009f]/.test(s);
}

// The code points Rust's `{:?}` writes as `\u{...}`: those it deems not
// printable, and grapheme extenders. Generated with Rust 1.95 by running
// `format!("{:?}", c.to_string())` over every char; pairs `gap.length` in
// base 36, each range starting `gap` after the previous one's end. They
// become a character class, with the characters it names (`\0 \t \n \r "
// \`), for one native search per string; that happens at build time, so no
// evaluation pays for it.
const DEBUG_ESCAPED = (() => {
  const ranges = [];
  let at = 0;
  for (const pair of (
    '1.7 3.1 2.h 2o.x d.0 gj.33 9.1 7.3 8.0 2.0 l.0 69.6 4n.0 13.1 1f.1 4.19 2.0 2.1 2.1 2.8 s.3 ' +
    '7.g b.a 2.0 1b.k h.0 2u.7 2.5 3.1 2.3 x.1 2.0 v.s 2i.a 2.d 18.8 8.2 p.3 2.8 2.2 2.6 g.0 q.4 ' +
    '2.0 c.4 x.f 17.1k 1k.0 2.0 5.7 5.0 4.6 b.1 u.0 3.0 9.1 3.1 n.0 8.0 2.2 5.2 2.0 3.5 3.1 3.0 ' +
    '2.c 3.0 4.3 p.4 2.0 7.3 3.1 n.0 8.0 3.0 3.0 3.3 4.n 5.0 2.6 b.1 4.0 2.b 2.0 a.0 4.0 n.0 8.0 ' +
    '3.0 6.2 5.7 2.0 3.2 2.e 3.3 d.6 2.7 3.0 9.1 3.1 n.0 8.0 3.0 6.2 2.1 2.5 3.1 3.e 3.0 4.3 j.a ' +
    '2.0 7.2 4.0 5.2 3.0 2.0 3.2 3.2 4.2 d.4 2.0 3.2 4.0 4.2 2.k m.5 4.0 9.0 4.0 o.0 h.2 2.2 5.i ' +
    '4.0 3.1 3.3 b.6 b.0 c.0 4.0 o.0 b.0 6.2 3.1 2.0 3.m 4.0 3.3 b.0 4.d c.0 4.0 16.1 2.0 3.4 4.0 ' +
    '4.0 3.3 4.0 b.3 r.1 3.0 j.2 p.0 a.0 2.1 8.8 3.5 8.6 b.1 4.b 1d.0 3.a 9.7 e.10 3.0 2.0 6.0 ' +
    'p.0 2.0 b.0 3.8 2.1 6.0 2.8 b.1 5.v p.1 s.0 2.0 2.0 f.0 11.h 2.4 2.1 6.1c 9.0 7.0 e.10 1a.3 ' +
    '2.5 2.1 3.1 q.1 5.2 h.3 e.0 3.1 7.0 g.0 15.0 2.4 2.1 ai.0 5.1 8.0 2.0 5.1 16.0 5.1 y.0 5.1 ' +
    '8.0 2.0 5.1 g.0 1m.0 5.1 1w.4 u.2 r.5 2f.1 7.1 ht.0 t.2 2i.6 j.c k.2 3.8 j.d e.0 4.e 1h.1 ' +
    '2.6 9.0 3.a a.2 b.5 b.5 c.4 b.5 2i.6 6.1 z.0 2.4 1z.9 w.3 5.1 4.3 3.0 7.6 2.2 17.1 6.a 19.3 ' +
    'r.5 c.2 1m.1 3.2 1l.0 2.8 2.0 3.7 7.c b.5 b.5 f.2d 1d.9 5.2 9.0 u.8 d.1 x.3 3.5 1l.0 2.1 4.0 ' +
    '2.c 1d.7 3.4 g.2 1r.4 18.1 c.a 2.c 2.6 5.0 7.0 4.1 2.4 5d.1r 7r.1 7.1 13.1 7.1 9.0 2.0 2.0 ' +
    '2.0 w.1 1i.0 g.0 f.1 7.0 k.1 4.0 a.g p.7 1c.g 3.1 s.0 e.2 z.1p 3x.3 ij.l c.k 1ed.1 ai.2 3.4 ' +
    '1a.0 2.4 2.1 1l.6 3.e o.8 8.0 8.0 8.0 8.0 8.0 8.0 8.0 8.w 2n.x r.0 2i.b 5z.p h.0 16.5 h.0 ' +
    '2f.3 2u.4 18.0 2n.0 2f.8 1d.0 mlq.2 1k.8 9p.j 1c.3 2.9 x.1 29.1 7.7 66.j i.0 4.0 5.0 q.1 6.3 ' +
    'b.5 1l.7 1x.9 d.n e.0 13.7 q.a 2.b v.5 1d.0 3.3 3.1 3.0 e.0 c.3 8.0 q.0 16.5 3.1 3.a 4.0 9.0 ' +
    '2.1 b.1 x.0 1g.0 2.2 3.1 6.1 2.0 2.n i.1 9.a 7.1 7.1 7.8 8.0 8.0 1p.3 3a.0 3.0 5.2 b.5 8md.b ' +
    'o.3 1e.6ir a7.1 2z.11 8.b 6.4 2.0 p.0 6.0 2.0 3.0 3.0 i3.v h.f b.l 10.0 k.0 5.3 6.0 3s.3 ' +
    '4e.1 w.2 7.1 7.1 7.1 4.2 8.0 8.c 3.1 d.0 r.0 k.0 3.0 g.1 f.x 3g.4 4.3 1a.2 2h.0 e.2 2.1a ' +
    '1a.3m u.2 1e.f s.3 11.8 v.4 13.9 v.0 12.3 f.15 4f.1 b.5 11.3 11.3 15.7 1h.a d.0 g.0 8.0 3.0 ' +
    'c.0 g.0 8.0 3.2 1h.b 8o.8 n.9 9.n 7.0 17.0 a.1w 7.1 2.0 19.0 3.2 2.1 o.0 21.7 a.1b k.0 3.4 ' +
    'y.2 s.4 s.11 1l.3 l.1 1c.e 5.0 4.0 u.9 a.6 a.6 1t.v 12.5 d.8 1j.2 u.1 s.4 r.6 5.b 8.27 22.1i ' +
    '1g.c 1g.6 17.b b.5 13.7 p.7 3.5r w.0 17.2 2.1 3.f 7.7 a.12 15.7 n.a a.l j.3 5.11 t.j o.8 2.0 ' +
    '1j.e 8.3 v.0 3.1 2.b 1e.3 3.1 3.0 5.d q.6 b.8 11.4 2.8 j.7 10.0 4.a 1h.8 2.0 9.3 3.0 h.0 l.a ' +
    'j.0 t.2 3.3 7.0 3.1q 8.0 2.0 5.0 g.0 c.5 1c.0 4.c b.7 3.0 9.1 3.1 n.0 8.0 3.0 6.2 2.0 2.0 ' +
    '5.1 3.1 3.2 2.b 8.r b.0 2.1 2.0 13.0 2.0 3.e 2.0 3.2 2.0 4.0 3.12 1l.7 3.2 2.0 m.0 2.0 4.t ' +
    '1d.0 3.5 2.0 3.0 2.1 2.1 5.7 b.4l 1c.0 3.5 5.1 2.1 s.z 1g.7 3.0 2.1 5.a b.5 e.i 18.0 2.0 3.7 ' +
    '3.5 b.5 l.r s.2 2.0 3.3 2.8 o.54 1c.8 2.1 2.2r 2c.b 9.1 2.1 9.0 3.0 p.0 6.0 3.5 5.0 4.8 b.1x ' +
    '9.1 17.7 5.0 5.q 2.9 15.5 3.3 9.8 2.5 3.2 1b.c 2.1 a.c 22.6 b.2e 2.2 2.0 2.2f z.d b.5 a.0 ' +
    '13.d 2.0 7.9 u.2 x.o 2.6 2.1 2.22 8.0 3.0 13.k 2.8 b.5 7.0 3.0 12.3 3.0 2.0 2.6 b.5 19.3 ' +
    'b.6t k.1 5.8 g.0 11.7 3.2 o.2d 2.e 1f.c po.2t 34.0 6.a 5h.217 2s.c tt.g 7.o 330.4 g8.5a0 v.b ' +
    '4.2 b.1c5 fu.6 w.0 b.3 2a.0 b.5 v.6 2.9 1d.6 g.9 b.0 8.0 m.4 k.bz 1n.5h 2k.4 q.1 q.17 24.4 ' +
    '1l.a e.1r 5.d 6.8 5p3.14 x.2o 38.6po 5.0 8.0 3.0 84.e 2.s 4.1 2.d 5.7 b1.1s3 30.4 e.2 a.6 ' +
    'b.1 2.1 2.31b 72.2 c5.5 o.e i.2m 39.1n 6v.9 14.1 1p.4 4.l 3.6 v.3 1q.k 1v.2 2.3d l.b l.b ' +
    '2g.8 q.3q 2e.0 20.0 3.1 2.1 3.1 5.0 d.0 2.0 8.0 1u.0 5.1 9.0 8.0 t.0 5.0 6.0 2.2 8.0 9h.1 ' +
    '85.1 fn.1i 5.1d 9.0 f.0 8.vn w.5 7.78 1r.41 1a.9 8.1 b.3 3.8v v.h 19.3 b.4 2.cv t.3 b.5x v.1 ' +
    'c.3 2.5b w.0 4.0 3.0 8.1 6.8 3.67 8.0 5.0 3.0 g.0 5i.1 a.1b 1x.6 2.3 b.3 3.ls 1x.23 1q.5d ' +
    '5.0 s.0 3.0 2.1 2.0 b.0 5.0 2.0 2.5 2.3 2.0 2.0 2.0 4.0 3.0 2.1 2.0 2.0 2.0 2.0 2.0 3.0 2.1 ' +
    '5.0 8.0 5.0 5.0 2.0 b.0 i.4 4.0 6.0 i.1f 3.7h 19.3 2t.b g.1 g.0 g.0 12.9 4v.1j u.c 19.3 a.6 ' +
    '3.d 7.49 re.2 i.2 e.2 63.5 d.3 2.e d.3 1l.7 b.5 15.7 v.1 d.3 3.d a.12 9l.7 f.1 e.2 c.2 1m.0 ' +
    '2.3 h.1 d.3 b.6 44.0 2w.sk wyp.v 3dr.1 4gf.1 5rm.e hb.1wh f3.15t 3t8.4 6jv.jdl1'
  ).split(' ')) {
    const [gap, length] = pair.split('.').map((n) => parseInt(n, 36));
    const start = (at += gap);
    const end = (at += length);
    ranges.push(`\\u{${start.toString(16)}}-\\u{${end.toString(16)}}`);
  }
  return new RegExp(`[\\0\\t\\n\\r"\\\\${ranges.join('')}]`, 'gu');
})();

const NAMED_ESCAPES = new Map([
  ['\0', '\\0'],
  ['\t', '\\t'],
  ['\n', '\\n'],
  ['\r', '\\r'],
  ['"', '\\"'],
  ['\\', '\\\\'],
]);

function debugEscape(ch) {
  return NAMED_ESCAPES.get(ch) ?? `\\u{${ch.codePointAt(0).toString(16)}}`;
}

/** `s` quoted as Rust's `format!("{s:?}")` writes a string. */
export function rustDebug(s) {
  return `"${s.replace(DEBUG_ESCAPED, debugEscape)}"`;
}

// ---------------------------------------------------------------------------
// Paths (a port of sdk/src/paths.rs)
//
// Glob syntax: `*` matches any run of characters within one path segment,
// `?` one byte other than `/` (as in the Rust SDK, which matches UTF-8
// bytes), and `**` any number of whole segments (including none). So
// `src/*.rs` matches `src/lib.rs` but not `src/a/b.rs`, and `auth/**`
// matches everything below `auth/`.

/** Whether `path` matches the glob `pattern`. */
export function globMatch(pattern, path) {
  return matchSegments(pattern.split('/'), 0, path.split('/'), 0);
}

// Whether `pattern` from segment `p` on matches `path` from segment `t` on.
function matchSegments(pattern, p, path, t) {
  if (p === pattern.length) return t === path.length;
  if (pattern[p] === '**') {
    for (let skip = t; skip <= path.length; skip++) {
      if (matchSegments(pattern, p + 1, path, skip)) return true;
    }
    return false;
  }
  return t < path.length && matchSegment(pattern[p], path[t]) && matchSegments(pattern, p + 1, path, t + 1);
}

const NON_ASCII = /[^\x00-\x7f]/;

function matchSegment(pattern, text) {
  // `?` is one UTF-8 byte. Literals only ever match at character boundaries,
  // in UTF-8 as in UTF-16, so the code units of the strings give the same
  // answer unless a `?` meets non-ASCII text; then compare the UTF-8 bytes
  // (as strings of one code unit per byte).
  if (pattern.includes('?') && NON_ASCII.test(text)) {
    pattern = utf8Units(pattern);
    text = utf8Units(text);
  }
  // Iterative wildcard matching with one backtrack point: linear in
  // practice and never exponential, whatever the pattern.
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = -1;
  while (t < text.length) {
    const c = pattern.charCodeAt(p);
    if (p < pattern.length && (c === QUESTION || c === text.charCodeAt(t))) {
      p++;
      t++;
    } else if (p < pattern.length && c === STAR) {
      starP = p;
      starT = t;
      p++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern.charCodeAt(p) === STAR) p++;
  return p === pattern.length;
}

const STAR = 0x2a;
const QUESTION = 0x3f;

function utf8Units(s) {
  return String.fromCharCode(...utf8Encoder.encode(s));
}

/**
 * Whether `path` is `dir` itself or lies below it, by whole segments:
 * `hasPrefix('auth/login.rs', 'auth')` is true, `hasPrefix('authz.rs', 'auth')` is not.
 */
export function hasPrefix(path, dir) {
  let end = dir.length;
  while (end > 0 && dir[end - 1] === '/') end--;
  const d = dir.slice(0, end);
  return path === d || (path.startsWith(d) && path[d.length] === '/');
}

/**
 * Normalise a relative path: drop `.` segments, empty segments and a
 * leading `./`; resolve `..`. Returns `undefined` for an absolute path or one
 * that climbs above its root, which a policy should treat as hostile.
 */
export function normalize(path) {
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0')) return undefined;
  const segments = path.split('/');
  const out = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else {
      out.push(segment);
    }
  }
  return out.length === 0 ? undefined : out.join('/');
}

// ---------------------------------------------------------------------------
// Unified diffs (a port of sdk/src/diff.rs)
//
// Counting follows the hunk headers (`@@ -a,b +c,d @@`), so a removed line
// that itself starts with `--- ` or `+++ ` is counted as content, not taken
// for a file header. Anything that does not parse is an error: a policy must
// deny a change it cannot read.
//
// Paths are read the way `git apply` reads them, so that a policy checks the
// files git would really touch: the first path component is stripped from
// `---`/`+++` names whatever it is (`x/auth/login.rs` is `auth/login.rs`),
// `copy to` creates a file, and names that disagree between the
// `diff --git` header and the `---`/`+++` lines are an error, as are quoted
// (C-escaped) names.

/** What happened to one file: `FileChange.status`. */
export const FileStatus = Object.freeze({
  Added: 'added',
  Deleted: 'deleted',
  Modified: 'modified',
  Renamed: 'renamed',
  /** `copy from`/`copy to`: a new file with the content of another. */
  Copied: 'copied',
});

/** One file of a diff. */
export class FileChange {
  constructor() {
    /** Path before the change (`undefined` for a new file). */
    this.oldPath = undefined;
    /** Path after the change (`undefined` for a deleted file). */
    this.newPath = undefined;
    this.status = FileStatus.Modified;
    this.added = 0;
    this.removed = 0;
    /** True for `Binary files ... differ` entries, whose lines are not counted. */
    this.binary = false;
  }

  /** The path after the change, or before it for a deletion. */
  path() {
    return this.newPath ?? this.oldPath ?? '';
  }

  /** Every path this change touches: both sides of a rename. */
  paths() {
    const paths = [];
    if (this.oldPath !== undefined) paths.push(this.oldPath);
    if (this.newPath !== undefined) paths.push(this.newPath);
    return paths;
  }

  /**
   * Whether the change modifies, deletes or moves a file that existed
   * before (a copy leaves its source as it was).
   */
  touchesExisting() {
    return this.status !== FileStatus.Added && this.status !== FileStatus.Copied;
  }
}

/** Why a diff could not be read, with the 1-based line where it went wrong. */
export class DiffError extends PolicyError {
  constructor(line, reason) {
    super(`diff line ${line}: ${reason}`);
    this.name = 'DiffError';
    this.line = line;
    /** The message without its `diff line N: ` prefix. */
    this.reason = reason;
  }
}

/** A parsed diff. */
export class Diff {
  constructor(files) {
    /** @type {FileChange[]} */
    this.files = files;
  }

  /** Parse `text`; throws DiffError when it is not a diff this SDK can read. */
  static parse(text) {
    return new DiffParser().parse(text);
  }

  /** Added plus removed lines over all files. */
  changedLines() {
    let sum = 0;
    for (let i = 0; i < this.files.length; i++) sum += this.files[i].added + this.files[i].removed;
    return sum;
  }
}

// A name from a `---`/`+++` line as `git apply -p1` reads it: `{ name }`,
// with no name for `/dev/null` and the name without its first component
// otherwise, or `{ error }` for a name it cannot read.
function patchName(raw) {
  const name = trimEnd(raw.split('\t')[0]);
  if (name === '/dev/null') return { name: undefined };
  if (name.startsWith('"')) return { error: 'quoted file names are not supported' };
  const slash = name.indexOf('/');
  if (slash === -1 || slash === name.length - 1) {
    return { error: 'file name has no leading directory to strip (expected a/PATH or b/PATH)' };
  }
  return { name: name.slice(slash + 1) };
}

// `a/X b/Y` from a `diff --git` line. Ambiguous when a name contains ` b/`;
// git then relies on the other lines, and so do we (both must agree).
function headerNames(rest) {
  if (rest.startsWith('"') || rest.endsWith('"')) return { error: 'quoted file names are not supported' };
  const split = rest.indexOf(' b/');
  if (split === -1 || !rest.startsWith('a/')) return { error: 'expected `diff --git a/PATH b/PATH`' };
  const a = rest.slice(2, split);
  const b = rest.slice(split + 3);
  if (a === '' || b === '') return { error: 'empty file name in `diff --git` header' };
  return { a, b };
}

// Whether a `---`/`+++` name (undefined for /dev/null) agrees with a header name.
function agrees(name, expected) {
  return name === undefined || name === expected;
}

// `@@ -OLD +NEW`: after `@@ `, the first two words (split at Rust
// whitespace) must be `-` and `+` followed by a range, `START,COUNT` (any
// start) or `START`, where COUNT and START are Rust `u32`s (ASCII digits
// with an optional `+`). One regular expression costs less fuel than
// splitting and testing the words one by one.
const RANGE = `(?:[^${WS},]*,(\\+?[0-9]+)|(\\+?[0-9]+))`;
const HUNK_RANGES = new RegExp(`^@@ [${WS}]*-${RANGE}[${WS}]+\\+${RANGE}(?:[${WS}]|$)`);

// A range's line count (`12,5` is 5 lines, `12` one), or undefined when the
// number does not fit a `u32`.
function lineCount(count, start) {
  const n = Number(count ?? start);
  if (n > 0xffffffff) return undefined;
  return count === undefined ? 1 : n;
}

// Lines that change no counts.
const METADATA = /^(?:\\|index |similarity index|dissimilarity index|old mode|new mode)/;

function fail(i, message) {
  return new DiffError(i + 1, message);
}

class DiffParser {
  constructor() {
    this.files = [];
    this.current = null;
    /** Names from the current `diff --git a/X b/Y` header, if any. */
    this.header = null;
    this.copied = false;
  }

  newFile() {
    this.finish();
    this.copied = false;
    this.current = new FileChange();
    return this.current;
  }

  finish() {
    const file = this.current;
    if (!file) return;
    this.current = null;
    const { oldPath, newPath } = file;
    file.status =
      this.copied ? FileStatus.Copied
      : oldPath === undefined && newPath !== undefined ? FileStatus.Added
      : oldPath !== undefined && newPath === undefined ? FileStatus.Deleted
      : oldPath !== undefined && oldPath !== newPath ? FileStatus.Renamed
      : FileStatus.Modified;
    this.files.push(file);
  }

  // The current file, or a DiffError at 0-based line `i`.
  within(i, what) {
    if (!this.current) throw fail(i, what);
    return this.current;
  }

  parse(text) {
    const all = lines(text);
    for (let i = 0; i < all.length; i++) i = this.read(all, i);
    this.finish();
    if (this.files.length === 0 && !isBlank(text)) throw fail(0, 'no file headers found');
    return new Diff(this.files);
  }

  // Reads line `i` and the lines it owns (a `+++ ` line, a hunk's body);
  // returns the index of the last line read. The Rust parser tries each
  // prefix in turn; no two prefixes share a branch of the switch on the
  // first character, so this reads every line the same way with fewer
  // tests (and less fuel).
  read(all, i) {
    const line = all[i];
    switch (line[0]) {
      case 'd':
        if (line.startsWith('diff --git ')) {
          const names = headerNames(line.slice('diff --git '.length));
          if (names.error) throw fail(i, names.error);
          const file = this.newFile();
          file.oldPath = names.a;
          file.newPath = names.b;
          this.header = names;
          return i;
        }
        if (line.startsWith('deleted file mode')) {
          this.within(i, 'file mode outside a file').newPath = undefined;
          return i;
        }
        break;
      case 'n':
        if (line.startsWith('new file mode')) {
          this.within(i, 'file mode outside a file').oldPath = undefined;
          return i;
        }
        break;
      case 'c':
        if (line.startsWith('copy from ')) {
          this.copied = true;
          this.within(i, 'copy outside a file').oldPath = line.slice('copy from '.length);
          return i;
        }
        if (line.startsWith('copy to ')) {
          this.copied = true;
          this.within(i, 'copy outside a file').newPath = line.slice('copy to '.length);
          return i;
        }
        break;
      case 'r':
        if (line.startsWith('rename from ')) {
          this.within(i, 'rename outside a file').oldPath = line.slice('rename from '.length);
          return i;
        }
        if (line.startsWith('rename to ')) {
          this.within(i, 'rename outside a file').newPath = line.slice('rename to '.length);
          return i;
        }
        break;
      case 'B':
        if (line.startsWith('Binary files ')) {
          this.within(i, 'binary marker outside a file').binary = true;
          return i;
        }
        break;
      case '-':
        if (line.startsWith('--- ')) return this.names(all, i);
        break;
      case '@':
        if (line.startsWith('@@ ')) return this.hunk(all, i);
        break;
    }
    // Metadata that changes no counts, or text before the first file (a
    // commit message, say).
    if (METADATA.test(line) || isBlank(line) || !this.current) return i;
    throw fail(i, 'unexpected line between hunks');
  }

  // The `--- OLD` line at `i` and the `+++ NEW` line after it.
  names(all, i) {
    const next = all[i + 1];
    if (next === undefined || !next.startsWith('+++ ')) {
      throw fail(i + 1, 'expected a `+++ ` line after `--- `');
    }
    const old = patchName(all[i].slice('--- '.length));
    if (old.error) throw fail(i, old.error);
    const neu = patchName(next.slice('+++ '.length));
    if (neu.error) throw fail(i + 1, neu.error);
    // A plain unified diff without `diff --git` starts a file here.
    if (!this.current || this.current.added + this.current.removed > 0) {
      this.header = null;
      this.newFile();
    }
    // git takes the names from these lines; they must name the files the
    // header named, or a reviewer and git disagree.
    if (this.header && !(agrees(old.name, this.header.a) && agrees(neu.name, this.header.b))) {
      throw fail(i, '`---`/`+++` names disagree with the `diff --git` header');
    }
    this.current.oldPath = old.name;
    this.current.newPath = neu.name;
    return i + 1;
  }

  // The hunk whose `@@` header is line `i`, with as many lines as its
  // ranges count.
  hunk(all, i) {
    const file = this.within(i, 'hunk before any file header');
    const ranges = HUNK_RANGES.exec(all[i]);
    let oldLeft = ranges ? lineCount(ranges[1], ranges[2]) : undefined;
    let newLeft = ranges ? lineCount(ranges[3], ranges[4]) : undefined;
    if (oldLeft === undefined || newLeft === undefined) throw fail(i, 'malformed hunk header');
    // The hot loop of a long diff, kept to locals and a switch for fuel.
    let added = 0;
    let removed = 0;
    while (oldLeft > 0 || newLeft > 0) {
      i++;
      if (i >= all.length) throw fail(i, 'diff ends inside a hunk');
      switch (all[i][0]) {
        case '+':
          if (newLeft > 0) {
            added++;
            newLeft--;
            continue;
          }
          break;
        case '-':
          if (oldLeft > 0) {
            removed++;
            oldLeft--;
            continue;
          }
          break;
        // An empty line is a context line whose space was trimmed.
        case ' ':
        case undefined:
          if (oldLeft > 0 && newLeft > 0) {
            oldLeft--;
            newLeft--;
            continue;
          }
          break;
        case '\\':
          continue;
      }
      throw fail(i, 'hunk line does not fit the hunk header');
    }
    file.added += added;
    file.removed += removed;
    return i;
  }
}

// ---------------------------------------------------------------------------
// MCP calls (`action.mcp`, contract 0.2.0)
//
// For a service of kind `mcp` every JSON-RPC message an agent sends is one
// action: its operation is `method` or `method:name`
// (`tools/call:create_pull_request`), and `action.mcp` is the call as the
// host parsed it.
//
//   const call = mcp(action);
//   if (call?.isToolCall('read_file')) {
//     const path = call.argPath('path'); // throws McpError
//     if (!hasPrefix(path, 'src')) return deny(`read_file: ${path} is outside src/`);
//   }
//
// A port of the Rust SDK's `McpCall` (sdk/src/mcp.rs), messages included:
// an error names what the call names (the tool, prompt or resource), else
// its method. `arguments` is the Rust SDK's `args()` (also here under that
// name); `argPath` has no Rust twin.

/**
 * Why an MCP call's arguments cannot be read as asked. The message says why
 * and starts with what the call names, the tool, prompt or resource, else
 * the method ("list_issues: argument `owner` must be a string"), so it can
 * be the deny reason as it is.
 */
export class McpError extends PolicyError {
  constructor(message) {
    super(message);
    this.name = 'McpError';
  }
}

/** The MCP call this action is, or `undefined` for a REST call. */
export function mcp(action) {
  return action.mcp === undefined || action.mcp === null ? undefined : new Mcp(action.mcp);
}

/** One JSON-RPC message an agent sent to an MCP service. */
export class Mcp {
  #arguments;

  constructor(call) {
    /** The JSON-RPC method: `tools/call`, `resources/read`, `initialize`... */
    this.method = call.method;
    /** What the call names (tool or prompt name, resource URI), or `undefined`. */
    this.name = call.name ?? undefined;
    /** The JSON-RPC id as JSON text (`7`, `"a-1"`); `undefined` for a notification. */
    this.id = call.id ?? undefined;
    /** The arguments as the host sent them: JSON text of an object. */
    this.argumentsText = call.arguments;
  }

  /** The tool's name when this is a `tools/call`, else `undefined`. */
  get tool() {
    return this.method === 'tools/call' ? this.name : undefined;
  }

  /** Whether this is a `tools/call` of the tool `name`. */
  isToolCall(name) {
    return this.method === 'tools/call' && this.name === name;
  }

  /**
   * The arguments, parsed as strictly as `json` parses a body (a duplicate
   * key is an error, not a guess). Throws McpError ("NAME: arguments are
   * not a JSON object") when they are not valid JSON or not an object; the
   * parser's reason is its `cause`.
   */
  get arguments() {
    if (this.#arguments === undefined) {
      let value;
      try {
        value = parseStrictText(this.argumentsText);
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
        throw Object.assign(new McpError(`${this.#subject()}: arguments are not a JSON object`), { cause: e });
      }
      if (!isObject(value)) throw new McpError(`${this.#subject()}: arguments are not a JSON object`);
      this.#arguments = value;
    }
    return this.#arguments;
  }

  /** `arguments`, under the Rust SDK's name. */
  args() {
    return this.arguments;
  }

  /**
   * The argument `key` as parsed JSON (`null` for JSON null), `undefined`
   * when absent; own keys only, like `member`. Throws McpError when the
   * arguments are not a JSON object.
   */
  arg(key) {
    return member(this.arguments, key);
  }

  /**
   * The argument `key`, which must be a string. Throws McpError ("NAME:
   * argument `key` must be a string") when it is absent or of another type,
   * or when the arguments are not a JSON object.
   */
  argStr(key) {
    const value = this.arg(key);
    if (typeof value !== 'string') throw new McpError(`${this.#subject()}: argument \`${key}\` must be a string`);
    return value;
  }

  /**
   * The string argument `key`, which must match one of the globs `patterns`
   * (see `globMatch`); throws McpError naming the argument, its value and
   * the patterns otherwise. The value is matched as it is: `src/**` matches
   * `src/../.env`, so for paths prefer `argPath` and match what it returns.
   */
  argMatching(key, patterns) {
    const value = this.argStr(key);
    for (let i = 0; i < patterns.length; i++) {
      if (globMatch(patterns[i], value)) return value;
    }
    throw new McpError(`${this.#subject()}: argument \`${key}\` = ${value} matches none of ${patterns.join(', ')}`);
  }

  /**
   * The argument `key` as a relative path, normalised by `normalize`
   * (`./src//a.rs` is `src/a.rs`), ready for `hasPrefix` and `globMatch`.
   * Throws McpError when it is not a string, or is a path that does not
   * normalise: absolute, empty, climbing above its root, or with a
   * backslash or NUL.
   */
  argPath(key) {
    const value = this.argStr(key);
    const path = normalize(value);
    if (path === undefined) {
      throw new McpError(
        `${this.#subject()}: argument \`${key}\` is ${rustDebug(value)}, not a relative path inside its root ` +
          '(absolute, empty, climbing out with `..`, or with a backslash)',
      );
    }
    return path;
  }

  // What error messages name: the tool, prompt or resource, else the method.
  #subject() {
    return this.name ?? this.method;
  }
}

// ---------------------------------------------------------------------------
// Host imports

/**
 * Workflow-scoped key/value state, shared by every session of a workflow.
 * Reads see the committed state plus this evaluation's own writes; the host
 * commits the writes only if the verdict is allow.
 */
export const state = Object.freeze({
  /** The value of `key`, or `undefined`. */
  get: (key) => hostState.get(key),
  /** Set `key` to `value` (committed only on allow). */
  set: (key, value) => hostState.set(key, value),
  /**
   * Add `delta` (a number or BigInt) to the integer at `key` (absent counts
   * as 0) and return the new value as a BigInt (committed only on allow).
   */
  incr: (key, delta = 1n) => hostState.incr(key, BigInt(delta)),
  /** The integer at `key` as a BigInt, 0n when absent or not an integer. */
  getInt(key) {
    const value = hostState.get(key);
    // Rust's `parse::<i64>()`: optional sign, digits, in range.
    if (value === undefined || !/^[+-]?[0-9]+$/.test(value)) return 0n;
    const n = BigInt(value);
    return BigInt.asIntN(64, n) === n ? n : 0n;
  },
});

// Fields as `[name, value]` pairs or an object, values converted to text.
function fieldPairs(fields) {
  const pairs = Array.isArray(fields) ? fields : Object.entries(fields);
  return pairs.map(([name, value]) => [String(name), String(value)]);
}

/**
 * Bounded structured logging through the host: it keeps a few records per
 * evaluation, so log what explains a decision, not every step. `fields` is
 * an object (in insertion order) or an array of `[name, value]` pairs.
 */
export const log = Object.freeze({
  /** `level` is `'debug'`, `'info'`, `'warn'` or `'error'`. */
  log: (level, message, fields = {}) => hostLog(level, message, fieldPairs(fields)),
  debug: (message, fields) => log.log('debug', message, fields),
  info: (message, fields) => log.log('info', message, fields),
  warn: (message, fields) => log.log('warn', message, fields),
  error: (message, fields) => log.log('error', message, fields),
});

// ---------------------------------------------------------------------------
// Build-time warm-up
//
// ComponentizeJS snapshots the engine after this module has run at build
// time, and every evaluation starts from that snapshot. Functions are
// compiled on their first call and regular expressions on their first use,
// so running the helpers once here leaves much of that work done in the
// snapshot: about 1M fuel less for each decision of a policy that reads a
// diff.
{
  const diff = 'diff --git a/a b/a\nindex 1..2 100644\n--- a/a\n+++ b/a\n@@ -1,2 +1,2 @@\n-a\n+b\n \n\\ x\n';
  const body = JSON.stringify({ diff, n: [1.5e300, 2], q: 'say "hi"', 'k\u00e9': { x: null } });
  json({ body: utf8Encoder.encode(body), bodyTruncated: false });
  Diff.parse(diff).files[0].paths();
  sortedKeys(member({ a: { b: 1 } }, 'a'));
  globMatch('**/*_test.?', 'a/b_test.r');
  hasPrefix(normalize('./a/../b/c'), 'b/');
  rustDebug('a\t"\u00e9\u0301');
  trim(trimStart(trimEnd(' a ')));
  isBlank(' ');
  hasControl('a');
  header({ headers: [['A', 'b']] }, 'a');
  isRead({ method: 'GET' });
  const call = mcp({ mcp: { method: 'tools/call', name: 't', arguments: '{"p":"./a/b","o":"x"}', id: '1' } });
  call.isToolCall('t');
  call.argStr('o');
  call.argPath('p');
  call.argMatching('o', ['x']);
  showOnly(['a'], ['a']);
  hideAll(undefined, '', 'tools', ['a']);
}
