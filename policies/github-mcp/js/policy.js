// `github-mcp`: an agent working on one repository through GitHub's MCP
// server: it may read its issues and some of its files and open pull
// requests from `agent/` branches, and never merges. A pull request into
// `main` is allowed; one into any other base branch escalates to a human,
// and once approved the identical call (carrying the approval) is allowed,
// once. A port of ../src/lib.rs that gives the same verdicts, reasons and
// grants for every request.
//
// Every JSON-RPC message the agent sends is one decision. The session's own
// housekeeping (`initialize`, `ping`, notifications, `tools/list`) is
// allowed; each `tools/call` is decided by its tool and its arguments;
// `tools/list` shows only the tools some call could be allowed.

import { McpError, allow, deny, escalate, hideAll, mcp, showOnly } from 'airlock-policy';

const SERVICE = 'github-mcp';
const TTL_SECONDS = 60;

// The repositories, as `owner/repo`, the tools may name.
const ALLOWED_REPOS = ['acme/shop'];

// Methods of the MCP session itself: they name no repository and change nothing.
const SESSION_METHODS = new Set(['initialize', 'notifications/initialized', 'notifications/cancelled', 'ping', 'tools/list']);

// The tools some call may be allowed, which are all `tools/list` shows.
const VISIBLE_TOOLS = new Set(['get_me', 'list_issues', 'get_file_contents', 'create_pull_request']);

// Files `get_file_contents` may read: these, and anything under `READABLE_DIRS`.
const READABLE_FILES = ['README.md'];
const READABLE_DIRS = ['src/', 'docs/'];

const AGENT_BRANCH_PREFIX = 'agent/';

// The base branch a pull request may target without a human's approval.
const DEFAULT_BASE = 'main';

/** A rule refused the call; the message is the reason. */
class Refused extends Error {}

export function describe() {
  return { name: 'github-mcp', version: '0.1.0' };
}

export function evaluate(request) {
  const { action } = request;
  if (action.service !== SERVICE) {
    return deny(`github-mcp may only use the ${SERVICE} service, not ${action.service}`);
  }
  const call = mcp(action);
  if (call === undefined) {
    return deny(`github-mcp speaks MCP only: ${action.method} ${action.path} is not an MCP call`);
  }
  if (SESSION_METHODS.has(call.method)) return allow({ scopes: ['mcp:session'], ttlSeconds: TTL_SECONDS });
  if (call.method !== 'tools/call') return deny(`github-mcp does not use MCP method ${call.method}`);
  const tool = call.tool ?? '';
  try {
    return toolCall(tool, call, request.approval != null);
  } catch (e) {
    // "list_issues: argument `owner` must be a string",
    // "list_issues: arguments are not a JSON object"
    if (e instanceof McpError) return deny(e.message);
    if (e instanceof Refused) return deny(e.message);
    throw e;
  }
}

export function visible(principal, service, kind, names) {
  if (kind !== 'tools') return hideAll(principal, service, kind, names);
  return showOnly(names, VISIBLE_TOOLS);
}

// The verdict on a `tools/call` of `tool`; throws McpError for an argument
// that cannot be read and Refused for one a rule refuses. `approved`: the
// request carries a human's approval of exactly this call.
function toolCall(tool, call, approved) {
  switch (tool) {
    case 'get_me':
      return allow({ scopes: ['user:read'], ttlSeconds: TTL_SECONDS });
    case 'list_issues':
      checkRepo(tool, call);
      return allow({ scopes: ['issues:read'], ttlSeconds: TTL_SECONDS });
    case 'get_file_contents': {
      checkRepo(tool, call);
      const path = call.argStr('path');
      if (!readable(path)) {
        throw new Refused(`get_file_contents: path ${path} is outside the allowed paths (README.md, src/, docs/)`);
      }
      return allow({ scopes: ['contents:read'], ttlSeconds: TTL_SECONDS });
    }
    case 'create_pull_request': {
      checkRepo(tool, call);
      const head = call.argStr('head');
      if (!(head.startsWith(AGENT_BRANCH_PREFIX) && head.length > AGENT_BRANCH_PREFIX.length)) {
        throw new Refused(`create_pull_request: head branch ${head} is not an agent/ branch`);
      }
      // Into any branch but main only with a human's approval of this very
      // call (the host checks it is for this request).
      const base = call.argStr('base');
      if (base !== DEFAULT_BASE && !approved) {
        return escalate(`create_pull_request: a pull request into ${base} needs a human's approval`);
      }
      // One token, one pull request.
      return allow({ scopes: ['pulls:write'], ttlSeconds: TTL_SECONDS, singleUse: true });
    }
    case 'merge_pull_request':
      return deny('github-mcp never merges pull requests');
    default:
      return deny(`tool ${tool} is not one github-mcp may call`);
  }
}

// The call's `owner` and `repo` arguments must name an allowed repository.
function checkRepo(tool, call) {
  const owner = call.argStr('owner');
  const repo = call.argStr('repo');
  if (!ALLOWED_REPOS.includes(`${owner}/${repo}`)) {
    throw new Refused(`${tool}: repository ${owner}/${repo} is not one github-mcp may use (${ALLOWED_REPOS.join(', ')})`);
  }
}

// A relative path with no `..`, `.` or empty segment and no backslash, that
// is an allowed file or lies under an allowed directory.
function readable(path) {
  const clean =
    !path.startsWith('/') &&
    !path.includes('\\') &&
    path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
  return clean && (READABLE_FILES.includes(path) || READABLE_DIRS.some((d) => path.startsWith(d) && path.length > d.length));
}
